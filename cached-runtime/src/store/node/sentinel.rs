//! The primary of a Redis Sentinel group: found through the sentinels, and followed after a
//! failover.
//!
//! A node made by [`Node::sentinel`] starts without a connection. One background task asks the
//! sentinels where the primary is (redis-rs' `SentinelClient`: `SENTINEL MASTERS` on up to
//! three sentinels at once, skipping a primary flagged down, then `ROLE` on the one named),
//! connects to it and stores the connection in the node's cell. It asks again:
//!
//! - at once when a sentinel announces `+switch-master` for our master: one subscription per
//!   sentinel, each in a task of its own, re-made with a backoff when lost (a re-made one also
//!   prompts a lookup: a message may have been missed meanwhile);
//! - at most every [`MIN_LOOKUP_INTERVAL`] when calls fail in a way that says the server is
//!   unhealthy: a timeout, a refused, reset or dropped connection, `READONLY` (a primary that
//!   was demoted), `LOADING`, `MASTERDOWN`... (see `Error::is_unhealthy`).
//!
//! A lookup that fails is logged, credentials scrubbed, and retried with a backoff
//! ([`RETRY_MIN`] doubling to [`RETRY_MAX`]) until one succeeds; a `+switch-master` cuts the
//! wait short. A lookup that names the server the node is on already changes nothing. No call
//! waits for a lookup (but the calls made before the first one ends, within `op_timeout`):
//! meanwhile calls use the connection they find, and a failing one runs its body.
//!
//! The tasks end when the last handle on the node is dropped ([`Follow`] holds the sender of
//! their `closed` channel).

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwapOption;
use futures_util::StreamExt;
use redis::{
    ConnectionAddr, ConnectionInfo, TlsMode,
    sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType},
};
use tokio::sync::{Notify, watch};

use super::{Link, Node, Shared};
use crate::{
    error::Error,
    store::{
        commands,
        connect::{self, TlsOptions, redact, scrub},
    },
};

/// Bound on one lookup: asking the sentinels, checking the primary's role, connecting to it.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Least time between two lookups prompted by failed calls.
const MIN_LOOKUP_INTERVAL: Duration = Duration::from_millis(250);
/// First wait before a failed lookup is retried; it doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest wait before a failed lookup is retried.
const RETRY_MAX: Duration = Duration::from_secs(1);
/// Bound on connecting and subscribing to one sentinel.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait before a lost subscription to a sentinel is re-made.
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(5);
/// The sentinels' announcement of a new primary: `<master name> <old ip> <old port> <new ip>
/// <new port>`.
const SWITCH_MASTER: &str = "+switch-master";

/// What a node that follows a primary holds of the follower.
pub(super) struct Follow {
    master_name: String,
    signals: Arc<Signals>,
    /// Dropped with the node: ends its background tasks.
    _alive: watch::Sender<()>,
}

/// Why the lookup task should ask the sentinels again.
#[derive(Default)]
struct Signals {
    /// A call failed since the last lookup started: set by the first such call, which alone
    /// notifies [`failed`](Self::failed); cleared when a lookup starts.
    wanted: AtomicBool,
    failed: Notify,
    /// A sentinel announced a new primary, or a subscription to one was re-made.
    switched: Notify,
}

impl Follow {
    /// A call failed in a way that says the server is unhealthy: look again (rate-limited).
    pub(super) fn failed(&self) {
        let wanted = &self.signals.wanted;
        if !wanted.load(Ordering::Relaxed) && !wanted.swap(true, Ordering::AcqRel) {
            self.signals.failed.notify_one();
        }
    }

    pub(super) fn master_name(&self) -> &str {
        &self.master_name
    }
}

impl Node {
    /// The primary of the Sentinel group `master_name`, found through the sentinels at
    /// `sentinels` (`redis://[user[:password]@]host[:port][/db]`, `rediss://` with the `tls`
    /// feature) and followed after a failover. The user info of the URLs authenticates to the
    /// sentinels and, unless `master_auth` (user name, password; an empty one: none) is given,
    /// to the primary; the database is the primary's; the primary is reached with TLS if the
    /// sentinels are, with the same TLS options.
    ///
    /// Fails only for invalid configuration: no sentinels, a bad master name, a bad URL, URLs
    /// that disagree on their scheme, credentials, database or protocol, or no Tokio runtime
    /// (the lookups run in background tasks, started here). Nothing is connected here.
    pub(crate) fn sentinel(
        sentinels: &[String],
        master_name: &str,
        master_auth: Option<(&str, &str)>,
        tls: &TlsOptions,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Node, Error> {
        if sentinels.is_empty() {
            return Err(Error::config(
                "redis_sentinel needs at least one sentinel URL",
            ));
        }
        check_master_name(master_name)?;
        let clients = sentinels
            .iter()
            .map(|url| connect::client(url, tls))
            .collect::<Result<Vec<_>, _>>()?;
        let first = clients[0].get_connection_info();
        for (url, client) in sentinels.iter().zip(&clients).skip(1) {
            if !same_settings(first, client.get_connection_info()) {
                return Err(Error::config(format!(
                    "the sentinel URLs must agree on their scheme (`redis://`, `rediss://`, \
                     `#insecure`), user name, password, database and protocol: `{}` and `{}` \
                     differ",
                    redact(&sentinels[0]),
                    redact(url)
                )));
            }
        }
        let secrets = Arc::new(Secrets::new(sentinels, master_auth));
        let lookups = lookup_client(&clients, master_name, master_auth, tls, &secrets)?;
        // Sentinels have no databases: subscribe to them without selecting one.
        let subscribers = sentinels
            .iter()
            .zip(&clients)
            .map(|(url, client)| {
                let info = client.get_connection_info();
                let db0 = info.redis_settings().clone().set_db(0);
                redis::Client::open(info.clone().set_redis_settings(db0)).map_err(|e| {
                    Error::config(format!(
                        "invalid sentinel URL `{}`: {}",
                        redact(url),
                        secrets.clean(&e.to_string())
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::config("redis_sentinel: build() must be called inside a Tokio runtime")
        })?;

        let signals = Arc::new(Signals::default());
        let (alive, closed) = watch::channel(());
        let shared = Arc::new(Shared {
            link: ArcSwapOption::empty(),
            linked: Notify::new(),
            looked_up: AtomicBool::new(false),
            moves: watch::Sender::new(()),
            db: first.redis_settings().db(),
            follow: Some(Follow {
                master_name: master_name.to_owned(),
                signals: signals.clone(),
                _alive: alive,
            }),
        });
        runtime.spawn(follow(
            Follower {
                node: Arc::downgrade(&shared),
                lookups,
                master_name: master_name.to_owned(),
                signals: signals.clone(),
                secrets: secrets.clone(),
                connect_timeout,
                response_timeout,
            },
            closed.clone(),
        ));
        for (url, client) in sentinels.iter().zip(subscribers) {
            runtime.spawn(watch_switches(Watcher {
                client,
                sentinel: redact(url),
                master_name: master_name.to_owned(),
                signals: signals.clone(),
                secrets: secrets.clone(),
                closed: closed.clone(),
            }));
        }
        Ok(Node { shared })
    }
}

/// A master name as the sentinels know it: not empty, no spaces or control characters (a
/// sentinel's configuration could not hold them).
fn check_master_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::config(
            "redis_sentinel: the master name is empty (the name the sentinels monitor the primary under, as in `sentinel monitor <name> ...`)",
        ));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::config(format!(
            "redis_sentinel: the master name {name:?} holds a space or a control character"
        )));
    }
    Ok(())
}

/// Whether two sentinel URLs agree on what is shared: TLS (and `#insecure`), credentials,
/// database and protocol.
fn same_settings(a: &ConnectionInfo, b: &ConnectionInfo) -> bool {
    let (ra, rb) = (a.redis_settings(), b.redis_settings());
    tls_of(a.addr()) == tls_of(b.addr())
        && ra.username() == rb.username()
        && ra.password() == rb.password()
        && ra.db() == rb.db()
        && ra.protocol() == rb.protocol()
}

/// `None` without TLS; with it, whether certificates go unchecked (`#insecure`).
fn tls_of(addr: &ConnectionAddr) -> Option<bool> {
    match addr {
        ConnectionAddr::TcpTls { insecure, .. } => Some(*insecure),
        _ => None,
    }
}

/// redis-rs' lookup of the primary: to the sentinels with the URLs' credentials, to the
/// primary with `master_auth` or the same ones, its database, and TLS like the sentinels.
#[cfg_attr(not(feature = "tls"), allow(unused_variables))]
fn lookup_client(
    sentinels: &[redis::Client],
    master_name: &str,
    master_auth: Option<(&str, &str)>,
    tls: &TlsOptions,
    secrets: &Secrets,
) -> Result<SentinelClient, Error> {
    let invalid = |e: redis::RedisError| {
        Error::config(format!("redis_sentinel: {}", secrets.clean(&e.to_string())))
    };
    let info = sentinels[0].get_connection_info();
    let settings = info.redis_settings();
    let addrs = sentinels
        .iter()
        .map(|client| client.get_connection_info().addr().clone());
    let mut builder = SentinelClientBuilder::new(addrs, master_name, SentinelServerType::Master)
        .map_err(invalid)?
        .set_client_to_sentinel_protocol(settings.protocol())
        .set_client_to_redis_protocol(settings.protocol())
        .set_client_to_redis_db(settings.db());
    if let Some(username) = settings.username() {
        builder = builder.set_client_to_sentinel_username(username);
    }
    if let Some(password) = settings.password() {
        builder = builder.set_client_to_sentinel_password(password);
    }
    let (username, password) = match master_auth {
        Some((username, password)) => (
            Some(username).filter(|u| !u.is_empty()),
            Some(password).filter(|p| !p.is_empty()),
        ),
        None => (settings.username(), settings.password()),
    };
    if let Some(username) = username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = password {
        builder = builder.set_client_to_redis_password(password);
    }
    if let Some(insecure) = tls_of(info.addr()) {
        builder = builder.set_client_to_redis_tls_mode(if insecure {
            TlsMode::Insecure
        } else {
            TlsMode::Secure
        });
        #[cfg(feature = "tls")]
        if let Some(certificates) = connect::certificates(tls) {
            builder = builder
                .set_client_to_sentinel_certificates(certificates.clone())
                .set_client_to_redis_certificates(certificates);
        }
    }
    builder.build().map_err(invalid)
}

/// What must never show in a message: the sentinel URLs' credentials and the primary's.
struct Secrets {
    urls: Vec<String>,
    words: Vec<String>,
}

impl Secrets {
    fn new(urls: &[String], master_auth: Option<(&str, &str)>) -> Secrets {
        let words = master_auth
            .map(|(username, password)| vec![username.to_owned(), password.to_owned()])
            .unwrap_or_default();
        Secrets {
            urls: urls.to_vec(),
            words,
        }
    }

    /// `text` with every URL and credential replaced by `***`.
    fn clean(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for url in &self.urls {
            text = scrub(&text, url);
        }
        for word in &self.words {
            // As `scrub`: a fragment this short would mangle the message and hide little.
            if word.len() >= 3 {
                text = text.replace(word.as_str(), "***");
            }
        }
        text
    }
}

// ---------------------------------------------------------------------------------------------
// The lookup task.

/// What the lookup task owns.
struct Follower {
    node: Weak<Shared>,
    lookups: SentinelClient,
    master_name: String,
    signals: Arc<Signals>,
    secrets: Arc<Secrets>,
    connect_timeout: Duration,
    response_timeout: Duration,
}

/// What a lookup found.
enum Found {
    /// The server the node is on already.
    Same,
    /// Another server (or the first one), now the node's: `from` → `to`.
    Moved { from: Option<String>, to: String },
}

enum Failure {
    /// The node is gone: stop.
    Gone,
    /// Why the lookup failed, for the log (credentials scrubbed).
    Failed(String),
}

/// Looks up the primary at once, then whenever there is a reason to (see the module docs),
/// until the node is dropped (`closed`).
async fn follow(mut f: Follower, mut closed: watch::Receiver<()>) {
    // While lookups fail: the wait before the next one.
    let mut retry: Option<Duration> = None;
    let mut last: Option<Instant> = None;
    loop {
        if let Some(last) = last {
            let go = match retry {
                Some(delay) => pause(&f.signals, &mut closed, delay).await,
                None => reason(&f.signals, &mut closed, last).await,
            };
            if !go {
                return;
            }
        }
        f.signals.wanted.store(false, Ordering::Release);
        last = Some(Instant::now());
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(LOOKUP_TIMEOUT, lookup(&mut f)) => outcome
                .unwrap_or_else(|_| Err(Failure::Failed(format!(
                    "no answer within {LOOKUP_TIMEOUT:?}"
                )))),
            _ = closed.changed() => return,
        };
        let master = f.master_name.as_str();
        match outcome {
            Ok(Found::Same) => {
                if retry.take().is_some() {
                    tracing::info!(
                        master,
                        "the sentinels answer again; the primary is unchanged"
                    );
                }
            }
            Ok(Found::Moved { from: None, to }) => {
                retry = None;
                tracing::info!(master, primary = %to, "found the primary through the sentinels");
            }
            Ok(Found::Moved {
                from: Some(from),
                to,
            }) => {
                retry = None;
                tracing::info!(master, primary = %to, previous = %from, "the primary moved; following it");
            }
            Err(Failure::Gone) => return,
            Err(Failure::Failed(error)) => {
                // Calls waiting for a first primary stop waiting: there is none yet.
                if let Some(node) = f.node.upgrade()
                    && !node.looked_up.swap(true, Ordering::AcqRel)
                {
                    node.linked.notify_waiters();
                }
                if retry.is_none() {
                    tracing::warn!(
                        master,
                        %error,
                        "cannot find the primary through the sentinels; retrying (calls run their bodies meanwhile)"
                    );
                } else {
                    tracing::debug!(master, %error, "cannot find the primary through the sentinels yet");
                }
                retry = Some(retry.map_or(RETRY_MIN, |delay| (delay * 2).min(RETRY_MAX)));
            }
        }
    }
}

/// Waits `delay` before a lookup is retried, or less if a sentinel announces a new primary;
/// `false`: the node is gone.
async fn pause(signals: &Signals, closed: &mut watch::Receiver<()>, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = signals.switched.notified() => true,
        _ = closed.changed() => false,
    }
}

/// Waits for a reason to look the primary up again: a `+switch-master` at once, failed calls
/// no sooner than [`MIN_LOOKUP_INTERVAL`] after the lookup that started at `last`; `false`:
/// the node is gone.
async fn reason(signals: &Signals, closed: &mut watch::Receiver<()>, last: Instant) -> bool {
    tokio::select! {
        _ = signals.switched.notified() => true,
        _ = signals.failed.notified() => {
            let due = tokio::time::Instant::from_std(last + MIN_LOOKUP_INTERVAL);
            tokio::select! {
                _ = tokio::time::sleep_until(due) => true,
                _ = signals.switched.notified() => true,
                _ = closed.changed() => false,
            }
        }
        _ = closed.changed() => false,
    }
}

/// Asks the sentinels for the primary; if it is not the node's server, connects to it and
/// makes it the node's.
async fn lookup(f: &mut Follower) -> Result<Found, Failure> {
    let secrets = f.secrets.clone();
    let failed = |e: &dyn std::fmt::Display| Failure::Failed(secrets.clean(&e.to_string()));
    let client = f
        .lookups
        .async_get_client()
        .await
        .map_err(|e| failed(&Error::from(e)))?;
    let addr = client.get_connection_info().addr().clone();
    let from = {
        let node = f.node.upgrade().ok_or(Failure::Gone)?;
        let current = node.link.load();
        match &*current {
            Some(link) if *link.client.get_connection_info().addr() == addr => {
                return Ok(Found::Same);
            }
            Some(link) => Some(link.client.get_connection_info().addr().to_string()),
            None => None,
        }
    };
    let conn = connect::manager(client.clone(), f.connect_timeout, f.response_timeout)
        .map_err(|e| failed(&e))?;
    // Connect now, so that calls find the connection ready.
    commands::ping(conn.clone())
        .await
        .map_err(|e| failed(&format_args!("the primary {addr} does not answer: {e}")))?;
    let node = f.node.upgrade().ok_or(Failure::Gone)?;
    node.link.store(Some(Arc::new(Link { conn, client })));
    node.looked_up.store(true, Ordering::Release);
    node.linked.notify_waiters();
    node.moves.send_replace(());
    Ok(Found::Moved {
        from,
        to: addr.to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// The subscriptions to `+switch-master`.

/// What one sentinel's subscription task owns.
struct Watcher {
    client: redis::Client,
    /// The sentinel's URL, redacted.
    sentinel: String,
    master_name: String,
    signals: Arc<Signals>,
    secrets: Arc<Secrets>,
    closed: watch::Receiver<()>,
}

/// Subscribes to one sentinel's `+switch-master` announcements and prompts a lookup on each
/// about our master; re-subscribes with a capped backoff when the subscription is lost.
async fn watch_switches(mut w: Watcher) {
    let mut backoff = RETRY_MIN;
    let mut subscribed_before = false;
    loop {
        let subscribe = async {
            let mut pubsub = w.client.get_async_pubsub().await?;
            pubsub.subscribe(SWITCH_MASTER).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let subscribed = tokio::select! {
            subscribed = tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribe) => subscribed,
            _ = w.closed.changed() => return,
        };
        let sentinel = w.sentinel.as_str();
        match subscribed {
            Ok(Ok(pubsub)) => {
                backoff = RETRY_MIN;
                tracing::debug!(sentinel, "subscribed to the sentinel's +switch-master");
                // An announcement may have been missed while the subscription was down.
                if std::mem::replace(&mut subscribed_before, true) {
                    w.signals.switched.notify_one();
                }
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        message = messages.next() => message,
                        _ = w.closed.changed() => return,
                    };
                    let Some(message) = message else { break };
                    let payload = message.get_payload_bytes();
                    if names_master(payload, &w.master_name) {
                        tracing::info!(
                            sentinel,
                            switch = %String::from_utf8_lossy(payload),
                            "the sentinel announced a new primary (+switch-master)"
                        );
                        w.signals.switched.notify_one();
                    }
                }
                tracing::debug!(
                    sentinel,
                    "subscription to the sentinel lost; re-subscribing"
                );
            }
            Ok(Err(e)) => {
                let error = w.secrets.clean(&Error::from(e).to_string());
                tracing::debug!(sentinel, %error, "cannot subscribe to the sentinel yet");
            }
            Err(_) => {
                tracing::debug!(
                    sentinel,
                    "cannot subscribe to the sentinel yet: no answer within {SUBSCRIBE_TIMEOUT:?}"
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = w.closed.changed() => return,
        }
        backoff = (backoff * 2).min(RESUBSCRIBE_MAX);
    }
}

/// Whether a `+switch-master` payload is about `master`.
fn names_master(payload: &[u8], master: &str) -> bool {
    payload.split(|&b| b == b' ').next() == Some(master.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_master_payloads() {
        assert!(names_master(
            b"mymaster 127.0.0.1 6379 127.0.0.1 6380",
            "mymaster"
        ));
        assert!(!names_master(
            b"mymaster-2 127.0.0.1 6379 127.0.0.1 6380",
            "mymaster"
        ));
        assert!(!names_master(b"", "mymaster"));
    }

    #[test]
    fn master_names() {
        assert!(check_master_name("mymaster").is_ok());
        for bad in ["", "my master", "tab\there", "nl\n"] {
            let err = check_master_name(bad).unwrap_err();
            assert!(err.is_config(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_cleaned() {
        let secrets = Secrets::new(
            &["redis://sentinel-user:S3ntinelPw@h:26379".to_owned()],
            Some(("app", "PrimaryPw")),
        );
        let cleaned =
            secrets.clean("failed for sentinel-user/S3ntinelPw at h:26379, then PrimaryPw");
        for secret in ["sentinel-user", "S3ntinelPw", "PrimaryPw"] {
            assert!(!cleaned.contains(secret), "{cleaned}");
        }
        assert!(cleaned.contains("h:26379"), "{cleaned}");
    }
}
