//! The [`Cache`] handle and the process-wide default; its tag operations are in `tags.rs`.

mod tags;

use std::{
    fmt,
    future::Future,
    sync::{Arc, Weak, atomic::Ordering::Relaxed},
    time::Duration,
};

use tokio::sync::watch;

use crate::{
    coord::{
        Local,
        breaker::Breaker,
        events,
        flight::{Flights, Waiters},
        reads::Part,
    },
    error::{Error, ErrorKind},
    pending::Pending,
    policy::Policy,
    stats::{Counters, Registry, Stats},
    store::{Lease, Raw, Store},
    wire::{
        codec::{self, CodecKind},
        key::{self, KeyPart},
    },
};

/// How much longer a write may take per byte of its value: 1 ms per 8 KiB (8 MB/s, a slow
/// link), on top of `op_timeout` (a 16 MiB value gets 2 s more). A bound, not a wait: a
/// healthy write ends as soon as Redis answers.
const WRITE_BYTES_PER_MS: usize = 8 * 1024;

/// A handle to a cache: Redis or in-process, with its namespace, codec and counters.
///
/// Cheap to clone (one `Arc`), `Send + Sync + 'static`. Build one at start-up and pass it to
/// annotations with `cache = ...`, or install it with [`set_global`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cached_runtime::Error> {
/// use std::time::Duration;
///
/// let cache = cached_runtime::Cache::builder()
///     .memory() // or .redis("redis://127.0.0.1:6379/0")
///     .namespace("app")
///     .op_timeout(Duration::from_millis(100))
///     .build()
///     .await?;
/// assert_eq!(cache.namespace(), "app");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    store: Store,
    namespace: String,
    op_timeout: Duration,
    null_ttl: Option<Duration>,
    ttl_jitter: f64,
    codec: CodecKind,
    stats: Registry,
    /// One per shard of the store (one for a single Redis server or memory).
    breakers: Box<[Breaker]>,
    lock_ttl: Duration,
    fill_event_max: usize,
    max_value_size: usize,
    /// Pub/sub channel of fill/release/invalidate events: `<namespace>:__events`.
    channel: String,
    /// Flights, reads and waiters of this process; the event listener holds it weakly.
    local: Arc<Local>,
    /// Invalidations that failed, retried in the background.
    pending: Pending,
    /// Dropped with the cache: stops its background tasks.
    _shutdown: watch::Sender<()>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.inner.store.name())
            .field("namespace", &self.inner.namespace)
            .field("op_timeout", &self.inner.op_timeout)
            .field("codec", &self.inner.codec)
            .finish_non_exhaustive()
    }
}

/// What a cache is made of besides its backend, as [`CacheBuilder::build`] checked it.
///
/// [`CacheBuilder::build`]: crate::CacheBuilder::build
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) namespace: String,
    pub(crate) op_timeout: Duration,
    pub(crate) null_ttl: Option<Duration>,
    pub(crate) ttl_jitter: f64,
    pub(crate) codec: CodecKind,
    /// Consecutive failures, cooldown.
    pub(crate) breaker: (u32, Duration),
    pub(crate) lock_ttl: Duration,
    pub(crate) fill_event_max: usize,
    pub(crate) max_value_size: usize,
}

impl Cache {
    /// Makes the cache on `store` and starts its background tasks (the invalidation retry
    /// loop; with Redis, the pub/sub listener and a first connection attempt).
    pub(crate) fn start(store: Store, settings: Settings) -> Cache {
        let (shutdown, shutdown_rx) = watch::channel(());
        let channel = key::join(&settings.namespace, "__events");
        let shards = store.shards();
        let cache = Cache {
            inner: Arc::new(Inner {
                store,
                namespace: settings.namespace,
                op_timeout: settings.op_timeout,
                null_ttl: settings.null_ttl,
                ttl_jitter: settings.ttl_jitter,
                codec: settings.codec,
                stats: Registry::default(),
                breakers: match shards {
                    1 => vec![Breaker::new(settings.breaker.0, settings.breaker.1)],
                    _ => (0..shards)
                        .map(|i| Breaker::for_shard(i, settings.breaker.0, settings.breaker.1))
                        .collect(),
                }
                .into_boxed_slice(),
                lock_ttl: settings.lock_ttl,
                fill_event_max: settings.fill_event_max,
                max_value_size: settings.max_value_size,
                channel: channel.clone(),
                local: Arc::default(),
                pending: Pending::default(),
                _shutdown: shutdown,
            }),
        };
        tokio::spawn(retry_invalidations(
            Arc::downgrade(&cache.inner),
            shutdown_rx.clone(),
        ));
        if let Some(maintenance) = cache.inner.store.maintenance(shutdown_rx.clone()) {
            tokio::spawn(maintenance);
        }
        if cache.inner.store.is_shared() {
            tokio::spawn(events::listen(
                Arc::downgrade(&cache.inner.local),
                cache.inner.store.clone(),
                channel,
                shutdown_rx,
            ));
            // Start connecting now, without waiting: the first calls find the connection
            // ready, and a Redis that is down is simply retried later.
            let warm = cache.clone();
            tokio::spawn(async move {
                if let Err(e) = warm.ping().await {
                    tracing::warn!(error = %e, "redis not reachable at start-up; calls run uncached until it is");
                    return;
                }
                let check = tokio::time::timeout(warm.inner.op_timeout, warm.inner.store.check());
                if let Ok(Ok(Some(problem))) = check.await {
                    tracing::error!("{problem}");
                }
            });
        }
        cache
    }

    /// The key prefix.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// `"redis"` or `"memory"`.
    pub fn backend_name(&self) -> &'static str {
        self.inner.store.name()
    }

    /// One round trip to the backend, bounded by `op_timeout`: for readiness checks.
    pub async fn ping(&self) -> Result<(), Error> {
        if self.inner.breakers.len() == 1 {
            return self.timed("", self.inner.store.ping()).await;
        }
        // A cluster's PING goes to every primary: its failure says nothing about one shard,
        // so it moves no breaker.
        match tokio::time::timeout(self.inner.op_timeout, self.inner.store.ping()).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{} did not answer within {:?}",
                    self.inner.store.name(),
                    self.inner.op_timeout
                ),
            )),
        }
    }

    /// Hit/miss/error counters, total and per annotated function.
    pub fn stats(&self) -> Stats {
        let mut stats = self.inner.stats.snapshot();
        let breakers = &self.inner.breakers;
        stats.breaker_opens = breakers.iter().map(|b| b.opens.load(Relaxed)).sum();
        stats.breaker_rejections = breakers.iter().map(|b| b.rejected.load(Relaxed)).sum();
        stats.breaker_open = breakers.iter().any(Breaker::is_open);
        self.inner.pending.report(&mut stats);
        stats
    }

    /// The full Redis key for a template rendered from `segments` (used by the macros;
    /// exposed so tools can compute keys the same way).
    #[doc(hidden)]
    pub fn render_key(&self, lits: &[&str], args: &[&dyn KeyPart]) -> String {
        key::render(&self.inner.namespace, lits, args)
    }

    /// Deletes entries by their key relative to the namespace (`"user:42"` deletes
    /// `app:user:42`) as `#[invalidates]` does — with their leases, so that a load in flight
    /// cannot store its older value, telling the other instances — in one round trip per hash
    /// slot. Returns how many existed. Unlike [`remove`](Self::remove), a failure is returned,
    /// not queued.
    ///
    /// Values are not escaped here: pass keys exactly as the annotations render them (or build
    /// them with [`Key`](crate::Key)).
    pub async fn delete(&self, keys: &[&str]) -> Result<u64, Error> {
        let full: Vec<String> = keys
            .iter()
            .map(|k| key::full(&self.inner.namespace, k))
            .collect();
        let outcome = self.invalidate_keys(&full).await;
        match outcome.error {
            Some(error) => Err(error),
            None => Ok(outcome.deleted),
        }
    }

    pub(crate) fn codec(&self) -> CodecKind {
        self.inner.codec
    }

    pub(crate) fn max_value_size(&self) -> usize {
        self.inner.max_value_size
    }

    pub(crate) fn counters(&self, policy: &Policy) -> &Counters {
        self.inner.stats.site(policy.site)
    }

    pub(crate) async fn get_raw(&self, key: &str) -> Result<Option<Raw>, Error> {
        self.timed(key, self.inner.store.get(key)).await
    }

    /// [`get_raw`](Self::get_raw), sharing one round trip with concurrent reads of `key`
    /// (see `reads.rs`).
    pub(crate) async fn get_coalesced(&self, key: &str) -> Result<Option<Raw>, Error> {
        match self.inner.local.reads.join(key) {
            Part::Lead(lead) => {
                let answer = self.get_raw(key).await;
                lead.finish(&answer);
                answer
            }
            Part::Join(joined) => match joined.wait().await {
                Some(answer) => answer,
                None => self.get_raw(key).await,
            },
            Part::Alone(_active) => self.get_raw(key).await,
        }
    }

    /// Reads `key` and resets its expiry to `ttl` (sliding expiration), in one round trip.
    pub(crate) async fn get_ex_raw(&self, key: &str, ttl: Duration) -> Result<Option<Raw>, Error> {
        self.timed(key, self.inner.store.get_ex(key, ttl)).await
    }

    /// [`get_ex_raw`](Self::get_ex_raw), sharing one round trip with concurrent reads of `key`
    /// as [`get_coalesced`](Self::get_coalesced) does: the expiry is reset once for all of
    /// them. (Written out rather than sharing a generic body with `get_coalesced`, which
    /// made every call's future larger.)
    pub(crate) async fn get_ex_coalesced(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Raw>, Error> {
        match self.inner.local.reads.join(key) {
            Part::Lead(lead) => {
                let answer = self.get_ex_raw(key, ttl).await;
                lead.finish(&answer);
                answer
            }
            Part::Join(joined) => match joined.wait().await {
                Some(answer) => answer,
                None => self.get_ex_raw(key, ttl).await,
            },
            Part::Alone(_active) => self.get_ex_raw(key, ttl).await,
        }
    }

    pub(crate) async fn set_raw(
        &self,
        key: &str,
        value: Arc<[u8]>,
        ttl: Duration,
    ) -> Result<(), Error> {
        let limit = self.write_timeout(value.len());
        self.timed_within(key, limit, self.inner.store.set(key, value, ttl))
            .await
    }

    /// A write's bound: `op_timeout`, plus 1 ms per 32 KiB of value (sending a large value
    /// takes time of its own; a write that lands must not be counted as a failure).
    fn write_timeout(&self, bytes: usize) -> Duration {
        write_timeout(self.inner.op_timeout, bytes)
    }

    /// Deletes entries with their leases, announces it to other instances, and forgets local
    /// flights and reads of those keys — before the delete and again after it, so that no call
    /// that starts once this returns joins a load or read that began before the delete landed.
    /// Keys of different hash slots are deleted in one atomic step per slot, all sent at once;
    /// the result says which keys were not deleted.
    pub(crate) async fn invalidate_keys(&self, keys: &[String]) -> Invalidated {
        let forget = || {
            for key in keys {
                self.inner.local.forget(key);
            }
        };
        forget();
        let groups = self.inner.store.by_slot(keys);
        let deletes = groups.iter().map(|group| {
            self.timed(
                &group[0],
                self.inner.store.invalidate(group, &self.inner.channel),
            )
        });
        let results = futures_util::future::join_all(deletes).await;
        forget();
        for key in keys {
            self.wake_local(key);
        }
        let mut outcome = Invalidated::default();
        for (group, result) in groups.into_iter().zip(results) {
            match result {
                Ok(deleted) => outcome.deleted += deleted,
                Err(error) => {
                    outcome.failed.extend(group);
                    outcome.error = Some(error);
                }
            }
        }
        outcome
    }

    pub(crate) fn flights(&self) -> &Flights {
        &self.inner.local.flights
    }

    pub(crate) fn waiters(&self) -> &Waiters {
        &self.inner.local.waiters
    }

    pub(crate) fn lock_ttl(&self) -> Duration {
        self.inner.lock_ttl
    }

    /// Whether other processes share the entries (Redis), and their events arrive through
    /// pub/sub.
    pub(crate) fn is_shared(&self) -> bool {
        self.inner.store.is_shared()
    }

    /// Takes the lease of `key`: `Some(token)` if we got it (also when it replaced a foreign
    /// value under the lease key: then `repaired` is set).
    pub(crate) async fn lease(&self, key: &str) -> Result<Leased, Error> {
        let token = format!("{:016x}", rand::random::<u64>());
        let got = self
            .timed(
                key,
                self.inner.store.try_lease(key, &token, self.inner.lock_ttl),
            )
            .await?;
        Ok(Leased {
            token: (got != Lease::Held).then_some(token),
            repaired: got == Lease::Repaired,
        })
    }

    /// Stores under the lease; `false`: the lease was lost (expired or voided by an
    /// invalidation), nothing was stored.
    pub(crate) async fn put_leased(
        &self,
        key: &str,
        token: &str,
        value: Arc<[u8]>,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let limit = self.write_timeout(value.len());
        let stored = self
            .timed_within(
                key,
                limit,
                self.inner.store.put_leased(
                    key,
                    token,
                    value,
                    ttl,
                    &self.inner.channel,
                    self.inner.fill_event_max,
                ),
            )
            .await;
        self.wake_local(key);
        stored
    }

    /// A write-through: stores `value` under `key` over whatever is there, voiding the key's
    /// lease in the same atomic step (a load in flight cannot store its older result over it)
    /// and waking the key's waiters in every process, who then read it. Local flights and
    /// reads of the key are forgotten before and after, as for an invalidation: no call that
    /// starts once this returns joins a load or read that began before it.
    pub(crate) async fn write_through(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), Error> {
        self.inner.local.forget(key);
        let limit = self.write_timeout(value.len());
        let stored = self
            .timed_within(
                key,
                limit,
                self.inner.store.put(key, value, ttl, &self.inner.channel),
            )
            .await;
        self.inner.local.forget(key);
        self.wake_local(key);
        stored
    }

    pub(crate) async fn release(&self, key: &str, token: &str) -> Result<(), Error> {
        let released = self
            .timed(
                key,
                self.inner.store.release(key, token, &self.inner.channel),
            )
            .await;
        self.wake_local(key);
        released
    }

    /// The memory backend has no pub/sub: wake this process's waiters directly. (With Redis,
    /// the event channel wakes every instance, this one included.)
    fn wake_local(&self, key: &str) {
        if !self.is_shared() {
            self.inner.local.waiters.wake(key, None);
        }
    }

    /// Keeps `keys` for a background retry of their invalidation.
    pub(crate) fn defer_invalidation(&self, keys: &[String]) {
        self.inner.pending.defer(keys);
    }

    /// Keeps `tags` (full names) for a background retry of their invalidation.
    pub(crate) fn defer_tag_invalidation(&self, tags: &[String]) {
        self.inner.pending.defer_tags(tags);
    }

    /// Whether this cache holds back entries of `key` for a function with `tags` (full names)
    /// before reading them: a delete of the key, or an invalidation of one of the tags, is
    /// queued for retry, so the cached value may be one that a write replaced; it is not
    /// served until the queue lands. One relaxed load per kind when nothing is queued.
    #[inline]
    pub(crate) fn holds(&self, key: &str, tags: &[String]) -> bool {
        let pending = &self.inner.pending;
        pending.holds(key) || (pending.holds_tags() && tags.iter().any(|t| pending.holds_tag(t)))
    }

    /// Whether the entry `raw` carries a tag whose invalidation is queued for retry in this
    /// cache: it is not served until that lands. One relaxed load when no tag is queued.
    #[inline]
    pub(crate) fn holds_entry(&self, raw: &[u8]) -> bool {
        let pending = &self.inner.pending;
        pending.holds_tags()
            && codec::is_tagged(raw)
            && codec::stamps(raw).is_ok_and(|mut stamps| stamps.any(|s| pending.holds_tag(s.tag)))
    }

    /// The TTLs of a site, jittered.
    pub(crate) fn ttls(&self, site: &Policy) -> Ttls {
        let ttl = Duration::from_millis(site.ttl_ms);
        let null_ttl = if site.null_ttl_ms > 0 {
            Duration::from_millis(site.null_ttl_ms)
        } else {
            self.inner
                .null_ttl
                .unwrap_or(Duration::from_secs(60))
                .min(ttl)
        };
        Ttls {
            ttl: self.jitter(ttl),
            null_ttl: self.jitter(null_ttl),
            extra: site.extra(),
            sliding: site.sliding,
        }
    }

    /// The expiry a hit of a sliding site sets: its TTL, jittered as a write's.
    pub(crate) fn sliding_ttl(&self, site: &Policy) -> Duration {
        self.jitter(Duration::from_millis(site.ttl_ms))
    }

    fn jitter(&self, ttl: Duration) -> Duration {
        if self.inner.ttl_jitter == 0.0 {
            return ttl;
        }
        let cut = rand::random::<f64>() * self.inner.ttl_jitter;
        ttl.mul_f64(1.0 - cut).max(Duration::from_millis(1))
    }

    /// One round trip for `key` (or keys of its slot): through the circuit breaker of its
    /// shard, bounded by `op_timeout`.
    async fn timed<T>(
        &self,
        key: &str,
        op: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        self.timed_within(key, self.inner.op_timeout, op).await
    }

    /// One backend round trip through the circuit breaker, bounded by `limit`. Only failures
    /// that say Redis is unhealthy count toward the breaker; a reply about one key (e.g.
    /// `WRONGTYPE`) is an answer from a working Redis.
    async fn timed_within<T>(
        &self,
        key: &str,
        limit: Duration,
        op: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let breakers = &self.inner.breakers;
        let breaker = &breakers[self.inner.store.shard_of(key) % breakers.len()];
        let Some(admit) = breaker.admit() else {
            return Err(Error::new(
                ErrorKind::CircuitOpen,
                "circuit breaker open: redis failed repeatedly, skipping it for now",
            ));
        };
        let result = match tokio::time::timeout(limit, op).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{} did not answer within {limit:?}",
                    self.inner.store.name()
                ),
            )),
        };
        match &result {
            Err(error) if error.is_unhealthy() => breaker.failure(admit),
            _ => breaker.success(admit),
        }
        if result.as_ref().is_err_and(Error::is_unhealthy) {
            // A node that follows a primary through Sentinel looks for it again.
            self.inner.store.failed();
        }
        result
    }
}

impl Inner {
    /// One attempt at the invalidations that failed before.
    pub(crate) async fn retry_pending(self: &Arc<Self>) {
        let cache = Cache {
            inner: self.clone(),
        };
        let tags = self.pending.take_tags();
        if !tags.is_empty() {
            let outcome = cache.invalidate_tag_names(&tags).await;
            self.pending.landed_tags(&tags, &outcome.failed);
            self.pending
                .settle_tags(tags.len() - outcome.failed.len(), outcome.failed);
        }
        let keys = self.pending.take();
        if keys.is_empty() {
            return;
        }
        let mut done = 0;
        let mut left = Vec::new();
        let mut chunks = keys.chunks(256);
        for chunk in chunks.by_ref() {
            let outcome = cache.invalidate_keys(chunk).await;
            done += chunk.len() - outcome.failed.len();
            self.pending.landed(chunk, &outcome.failed);
            if !outcome.failed.is_empty() {
                left = outcome.failed;
                break;
            }
        }
        left.extend(chunks.flatten().cloned());
        self.pending.settle(done, left);
    }
}

/// Retries invalidations that failed, until they succeed; stops when the cache is dropped.
async fn retry_invalidations(inner: Weak<Inner>, mut shutdown: watch::Receiver<()>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        inner.retry_pending().await;
    }
}

/// The bound on a write of `bytes`: `op_timeout` plus 1 ms per [`WRITE_BYTES_PER_MS`].
pub(crate) fn write_timeout(op_timeout: Duration, bytes: usize) -> Duration {
    op_timeout + Duration::from_millis((bytes / WRITE_BYTES_PER_MS) as u64)
}

/// What [`Cache::invalidate_keys`] did.
#[derive(Debug, Default)]
pub(crate) struct Invalidated {
    /// Entries that existed and were deleted.
    pub(crate) deleted: u64,
    /// Keys whose slot's delete failed.
    pub(crate) failed: Vec<String>,
    /// The last failure.
    pub(crate) error: Option<Error>,
}

/// What a lease attempt got.
#[derive(Debug)]
pub(crate) struct Leased {
    /// Our token, if we hold the lease now.
    pub(crate) token: Option<String>,
    /// The lease key held foreign data (another type, no expiry, not our token) and was
    /// replaced by our lease.
    pub(crate) repaired: bool,
}

/// How long an entry lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ttls {
    /// Logical lifetime of a value: fresh until then.
    pub(crate) ttl: Duration,
    /// Lifetime of a "not found".
    pub(crate) null_ttl: Duration,
    /// How long a value is kept in Redis past its logical expiry (`max(stale, fail_safe)`).
    pub(crate) extra: Duration,
    /// Sliding expiration: a value gets no logical expiry (its TTL in Redis, reset by every
    /// hit, is its only one); a "not found" keeps its own.
    pub(crate) sliding: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls() {
        for url in [
            "redis://127.0.0.1:1",
            "redis://127.0.0.1:1/3",
            "redis://user:secret@127.0.0.1:1/0",
            "redis://:secret@localhost",
        ] {
            let cache = Cache::builder().redis(url).build().await;
            assert!(cache.is_ok(), "{url}: {cache:?}");
        }
        let tls = Cache::builder()
            .redis("rediss://127.0.0.1:1/0")
            .build()
            .await;
        if cfg!(feature = "tls") {
            assert!(tls.is_ok(), "{tls:?}");
        } else {
            let err = tls.unwrap_err();
            assert!(err.is_config(), "{err}");
        }
        let bad = Cache::builder().redis("redis://user:secret@").build().await;
        if let Err(err) = bad {
            assert!(
                !format!("{err}{err:?}").contains("secret"),
                "password leaked: {err:?}"
            );
        }
    }
}
