//! Credentials in a Redis URL, and TLS keys, are never shown: not by the builder's `Debug`, not
//! by an error's `Display`/`Debug` or its source chain, not in stats, not in log lines. Also:
//! an ACL user's URL works against a real redis-server, and a wrong password only makes calls
//! run their bodies.

use std::{
    error::Error as _,
    fmt::{self, Write as _},
    sync::{
        Mutex, Once,
        atomic::{AtomicU64, Ordering::SeqCst},
    },
    time::Duration,
};

use cached_runtime::{Cache, cache_aside};
use tests::RedisServer;
use tracing::{
    Event, Metadata, Subscriber,
    field::{Field, Visit},
    span,
};

// ---------------------------------------------------------------------------------------------
// Every log line of this test binary, formatted with all its fields.

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, "{}={value} ", field.name());
    }
}

fn push(line: String) {
    LOG.lock().unwrap_or_else(|e| e.into_inner()).push(line);
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &span::Attributes<'_>) -> span::Id {
        let mut line = format!("span {} ", span.metadata().name());
        span.record(&mut Line(&mut line));
        push(line);
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, values: &span::Record<'_>) {
        let mut line = String::from("span record ");
        values.record(&mut Line(&mut line));
        push(line);
    }

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = format!(
            "{} {} ",
            event.metadata().level(),
            event.metadata().target()
        );
        event.record(&mut Line(&mut line));
        push(line);
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(Capture).expect("no other subscriber");
    });
}

fn log_lines() -> Vec<String> {
    LOG.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

// ---------------------------------------------------------------------------------------------

/// Fails if `secret` appears in `shown`.
fn assert_hidden(secret: &str, shown: &str, what: &str) {
    assert!(!shown.contains(secret), "{what} shows `{secret}`: {shown}");
}

/// An error as every way of printing it shows it: `Display`, `Debug`, and each source.
fn everything_shown(err: &cached_runtime::Error) -> String {
    let mut shown = format!("{err} | {err:?}");
    let mut source = err.source();
    while let Some(e) = source {
        let _ = write!(shown, " | {e} | {e:?}");
        source = e.source();
    }
    shown
}

/// Fails if any captured log line shows `secret`.
fn assert_logs_hide(secret: &str) {
    for line in log_lines() {
        assert_hidden(secret, &line, "a log line");
    }
}

#[cache_aside(key = "n:<n>", ttl = 60, cache = cache)]
async fn double(cache: &Cache, n: u64, calls: &AtomicU64) -> u64 {
    calls.fetch_add(1, SeqCst);
    n * 2
}

/// Three calls; returns how many ran the body. Each returns the body's value.
async fn three_calls(cache: &Cache) -> u64 {
    let calls = AtomicU64::new(0);
    for _ in 0..3 {
        assert_eq!(double(cache, 21, &calls).await, 42);
    }
    calls.load(SeqCst)
}

#[test]
fn the_builder_debug_hides_the_user_info_and_the_tls_key() {
    for (url, secret, shown) in [
        (
            "redis://alice:Pw9secret@127.0.0.1:6379/0",
            "Pw9secret",
            "\"redis://***@127.0.0.1:6379/0\"",
        ),
        (
            "redis://:Pw9secret@cache.internal:6380/2",
            "Pw9secret",
            "\"redis://***@cache.internal:6380/2\"",
        ),
        (
            "redis://Tok9Abc@host:abc",
            "Tok9Abc",
            "\"redis://***@host:abc\"",
        ),
        (
            "redis://u%3ATok9Abc@host",
            "Tok9Abc",
            "\"redis://***@host\"",
        ),
        (
            "redis://alice@127.0.0.1",
            "alice",
            "\"redis://***@127.0.0.1\"",
        ),
        ("Tok9Abc@host:6379", "Tok9Abc", "\"***@host:6379\""),
        (
            "redis://u:p@ss-Tok9Abc@h:1/0?protocol=resp3",
            "Tok9Abc",
            "\"redis://***@h:1/0?protocol=resp3\"",
        ),
    ] {
        let debug = format!("{:?}", Cache::builder().redis(url).namespace("app"));
        assert_hidden(secret, &debug, "the builder's Debug");
        assert!(debug.contains(shown), "{url}: {debug}");
    }

    let debug = format!(
        "{:?}",
        Cache::builder()
            .redis("rediss://h:6380/0")
            .tls_root_ca("-----BEGIN CERTIFICATE-----\nQ0FDRVJU\n-----END CERTIFICATE-----\n")
            .tls_client_auth(
                "-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n",
                "-----BEGIN PRIVATE KEY-----\nS2V5TWF0ZXJpYWw=\n-----END PRIVATE KEY-----\n",
            )
    );
    for material in ["S2V5TWF0ZXJpYWw", "PRIVATE KEY", "Q0VSVA", "Q0FDRVJU"] {
        assert_hidden(material, &debug, "the builder's Debug");
    }
    assert!(debug.contains("<redacted>"), "{debug}");
}

#[tokio::test]
async fn build_errors_hide_the_user_info() {
    capture_logs();
    let secret = "Tok7Xq";
    for url in [
        // Unparseable.
        "redis://Tok7Xq@host:abc",
        "redis://user:Tok7Xq@host:abc",
        "redis://u%3ATok7Xq@host:abc",
        "redis://u:p@ss@Tok7Xq@host:abc/0",
        "Tok7Xq@host:6379",
        "alice:Tok7Xq@host:6379",
        "redis:alice:Tok7Xq@host",
        "http://alice:Tok7Xq@host",
        // Parseable, but invalid.
        "redis://alice:Tok7Xq@127.0.0.1:1/notadb",
        "redis://alice:Tok7Xq@127.0.0.1:1/0?protocol=bogus",
        "redis://alice:Tok7Xq@0.0.0.0:1/0",
        "rediss://alice:Tok7Xq@127.0.0.1:1/0#bogus",
    ] {
        let err = Cache::builder().redis(url).build().await.expect_err(url);
        assert!(err.is_config(), "{url}: {err:?}");
        let shown = everything_shown(&err);
        assert_hidden(secret, &shown, url);
        assert!(
            shown.contains("***"),
            "{url}: the URL is shown redacted: {shown}"
        );
        println!("{url} -> {err}");
    }
    let err = Cache::builder()
        .redis("redis://alice:Tok7Xq@127.0.0.1:1/0")
        .tls_root_ca("-----BEGIN CERTIFICATE-----\n")
        .build()
        .await
        .expect_err("TLS options need rediss://");
    assert_hidden(secret, &everything_shown(&err), "a TLS option error");
    assert_logs_hide(secret);
}

#[tokio::test]
async fn runtime_errors_and_stats_hide_the_user_info() {
    capture_logs();
    let secret = "Tok5Rt";
    for url in [
        "redis://u%3ATok5Rt@127.0.0.1:1/0",
        "redis://alice:p@ss@Tok5Rt@127.0.0.1:1/0",
        "redis://:Tok5Rt@127.0.0.1:1/0?protocol=resp3",
    ] {
        let cache = Cache::builder()
            .redis(url)
            .namespace("secrets")
            .op_timeout(Duration::from_millis(200))
            .build()
            .await
            .expect(url);
        assert_eq!(three_calls(&cache).await, 3, "{url}: bodies run");
        let err = cache.ping().await.expect_err("nothing listens on port 1");
        assert_hidden(secret, &everything_shown(&err), url);
        assert_hidden(secret, &format!("{cache:?}"), "the cache's Debug");
        assert_hidden(secret, &format!("{:?}", cache.stats()), "the stats");
        assert!(cache.stats().total.errors >= 1);
    }
    // `#insecure` logs a warning at build time, with the URL redacted.
    let _cache = Cache::builder()
        .redis("rediss://alice:Tok5Rt@127.0.0.1:1/0#insecure")
        .build()
        .await
        .expect("`#insecure` is accepted");
    assert!(
        log_lines()
            .iter()
            .any(|line| line.contains("url=rediss://***@127.0.0.1:1/0#insecure")),
        "{:#?}",
        log_lines()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_logs_hide(secret);
}

/// An ACL user (`alice`, password `s3cret`) on a real server.
fn server_with_alice() -> RedisServer {
    let server = RedisServer::spawn();
    let ok: String = server.cmd(&[
        "ACL", "SETUSER", "alice", "on", ">s3cret", "~*", "&*", "+@all",
    ]);
    assert_eq!(ok, "OK");
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_url_works() {
    capture_logs();
    let server = server_with_alice();
    let url = format!("redis://alice:s3cret@127.0.0.1:{}/0", server.port());
    let cache = Cache::builder()
        .redis(url)
        .namespace("acl")
        .build()
        .await
        .expect("valid configuration");
    cache.ping().await.expect("alice may PING");
    assert_eq!(three_calls(&cache).await, 1, "cached after the first call");
    let total = cache.stats().total;
    assert_eq!((total.hits, total.errors), (2, 0), "{total:?}");
    assert!(server.get_raw("acl:n:21").is_some(), "stored");
    let clients: String = server.cmd(&["CLIENT", "LIST"]);
    assert!(
        clients.lines().any(|c| c.contains("user=alice")),
        "the cache connects as alice: {clients}"
    );
    assert_logs_hide("s3cret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_runs_the_bodies_and_shows_no_password() {
    capture_logs();
    let server = server_with_alice();
    let secret = "Wr0ngPw";
    let url = format!("redis://alice:{secret}@127.0.0.1:{}/0", server.port());
    let builder = Cache::builder().redis(url).namespace("acl");
    assert_hidden(secret, &format!("{builder:?}"), "the builder's Debug");
    let cache = builder.build().await.expect("valid configuration");
    assert_eq!(three_calls(&cache).await, 3, "every call runs its body");
    let total = cache.stats().total;
    assert!(total.errors >= 1 && total.hits == 0, "{total:?}");
    let err = cache.ping().await.expect_err("the password is wrong");
    let shown = everything_shown(&err);
    println!("wrong password: {err}");
    assert_hidden(secret, &shown, "the ping error");
    assert_hidden(secret, &format!("{:?}", cache.stats()), "the stats");
    assert_hidden(secret, &format!("{cache:?}"), "the cache's Debug");
    assert!(server.get_raw("acl:n:21").is_none(), "nothing stored");
    // The background listener fails to authenticate too, and logs it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_logs_hide(secret);
}
