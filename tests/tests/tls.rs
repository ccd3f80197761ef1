//! `rediss://` against real TLS redis-servers (certificates made with `openssl` by the
//! harness): a private CA, mutual TLS, a wrong CA, webpki roots, `#insecure`, invalid PEM. A
//! TLS failure never panics, in a call or in a background task: it is a counted Redis error and
//! the call runs its body.

use std::{
    sync::{
        Mutex, Once,
        atomic::{AtomicU64, Ordering::SeqCst},
    },
    time::Duration,
};

use cached_runtime::{Cache, CacheBuilder, cache_aside};
use tests::{ClientAuth, TlsRedisServer};

/// Every panic of this test binary, on any thread (the runtime's background tasks included).
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            PANICS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{}: {info}", thread.name().unwrap_or("?")));
            previous(info);
        }));
    });
}

/// Fails the test if anything panicked, after giving the background tasks (pub/sub listener,
/// start-up ping) time to try their handshakes.
async fn assert_no_panic() {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let panics = PANICS.lock().unwrap_or_else(|e| e.into_inner());
    assert!(panics.is_empty(), "panicked: {panics:#?}");
}

#[cache_aside(key = "sq:<n>", ttl = 60, cache = cache)]
async fn square(cache: &Cache, n: u64, calls: &AtomicU64) -> u64 {
    calls.fetch_add(1, SeqCst);
    n * n
}

fn builder(url: String) -> CacheBuilder {
    Cache::builder()
        .redis(url)
        .namespace("tls")
        // A failed handshake is an error at once; a short timeout only bounds a stuck one.
        .op_timeout(Duration::from_millis(500))
}

/// Calls `square` three times: all return the body's value. Returns how many times the body
/// ran.
async fn three_calls(cache: &Cache) -> u64 {
    let calls = AtomicU64::new(0);
    for _ in 0..3 {
        assert_eq!(square(cache, 7, &calls).await, 49);
    }
    calls.load(SeqCst)
}

/// The cache works: one miss, two hits, no error; its event listener subscribed over TLS.
async fn assert_works(cache: &Cache, server: &TlsRedisServer) {
    cache.ping().await.expect("ping over TLS");
    assert_eq!(three_calls(cache).await, 1, "cached after the first call");
    let total = cache.stats().total;
    assert_eq!(
        (total.misses, total.hits, total.errors),
        (1, 2, 0),
        "{total:?}"
    );
    assert!(
        server.server().get_raw("tls:sq:7").is_some(),
        "stored in Redis"
    );
    // The pub/sub listener connects with the same TLS settings (the cache knows only the TLS
    // port): it is subscribed to the event channel.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, subscribers): (String, u64) =
            server.server().cmd(&["PUBSUB", "NUMSUB", "tls:__events"]);
        if subscribers == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener never subscribed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The cache does not work, and that changes nothing for callers: every call runs its body and
/// returns its value, failures are counted, `ping` is a Redis error.
async fn assert_degrades(cache: &Cache) -> cached_runtime::Error {
    assert_eq!(three_calls(cache).await, 3, "every call runs its body");
    let total = cache.stats().total;
    assert!(total.errors >= 1, "errors counted: {total:?}");
    assert_eq!(total.hits, 0, "{total:?}");
    let err = cache.ping().await.expect_err("ping fails");
    assert!(
        err.is_redis() || err.is_circuit_open() || err.is_timeout(),
        "{err:?}"
    );
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_trusted() {
    record_panics();
    let server = TlsRedisServer::spawn(ClientAuth::No);
    let cache = builder(server.tls_url())
        .tls_root_ca(server.pki().ca.clone())
        .build()
        .await
        .expect("valid TLS configuration");
    assert_works(&cache, &server).await;
    assert_no_panic().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localhost_matches_the_certificate_name() {
    record_panics();
    let server = TlsRedisServer::spawn(ClientAuth::No);
    let url = format!("rediss://localhost:{}/0", server.tls_port());
    let cache = builder(url)
        .tls_root_ca(server.pki().ca.clone())
        .build()
        .await
        .expect("valid TLS configuration");
    cache.ping().await.expect("ping over TLS, by name");
    assert_eq!(three_calls(&cache).await, 1);
    assert_no_panic().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_client_certificate() {
    record_panics();
    let server = TlsRedisServer::spawn(ClientAuth::Required);
    let pki = server.pki();
    let cache = builder(server.tls_url())
        .tls_root_ca(pki.ca.clone())
        .tls_client_auth(pki.client_cert.clone(), pki.client_key.clone())
        .build()
        .await
        .expect("valid TLS configuration");
    assert_works(&cache, &server).await;
    assert_no_panic().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_without_a_client_certificate_runs_the_bodies() {
    record_panics();
    let server = TlsRedisServer::spawn(ClientAuth::Required);
    let cache = builder(server.tls_url())
        .tls_root_ca(server.pki().ca.clone())
        .build()
        .await
        .expect("valid TLS configuration");
    let err = assert_degrades(&cache).await;
    println!("no client certificate: {err}");
    assert_no_panic().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_runs_the_bodies() {
    record_panics();
    let server = TlsRedisServer::spawn(ClientAuth::No);
    let cache = builder(server.tls_url())
        .tls_root_ca(server.pki().other_ca.clone())
        .build()
        .await
        .expect("valid TLS configuration");
    let err = assert_degrades(&cache).await;
    assert_no_panic().await;
    // Once the breaker's cooldown is over, the error says what is wrong.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let err = cache
        .ping()
        .await
        .map_or(err, |()| panic!("ping succeeded"));
    let text = format!("{err}");
    println!("wrong CA: {text}");
    assert!(
        err.is_redis() && text.to_lowercase().contains("certificate"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webpki_roots_do_not_trust_a_private_ca() {
    record_panics();
    let server = TlsRedisServer::spawn(ClientAuth::No);
    let cache = builder(server.tls_url())
        .build()
        .await
        .expect("valid TLS configuration");
    assert_degrades(&cache).await;
    assert_no_panic().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_skips_certificate_verification() {
    record_panics();
    let server = TlsRedisServer::spawn(ClientAuth::No);
    let cache = builder(format!("{}#insecure", server.tls_url()))
        .build()
        .await
        .expect("`#insecure` is accepted");
    assert_works(&cache, &server).await;
    assert_no_panic().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_to_a_tls_port_runs_the_bodies() {
    record_panics();
    let server = TlsRedisServer::spawn(ClientAuth::No);
    let cache = builder(format!("redis://127.0.0.1:{}/0", server.tls_port()))
        .build()
        .await
        .expect("valid configuration");
    assert_degrades(&cache).await;
    assert_no_panic().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_pem_fails_build_without_showing_the_key() {
    record_panics();
    let dir = std::env::temp_dir().join(format!("tls-pem-{}", std::process::id()));
    let pki = tests::Pki::generate(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let url = "rediss://127.0.0.1:1/0".to_owned();
    let key_text = String::from_utf8(pki.client_key.clone()).unwrap();
    let key_body = key_text.lines().nth(1).unwrap().to_owned();
    let cases: Vec<(&str, CacheBuilder)> = vec![
        ("garbage CA", builder(url.clone()).tls_root_ca("not PEM")),
        (
            "broken CA",
            builder(url.clone())
                .tls_root_ca("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        ),
        (
            "key as certificate",
            builder(url.clone()).tls_client_auth(pki.client_key.clone(), pki.client_key.clone()),
        ),
        (
            "certificate as key",
            builder(url.clone()).tls_client_auth(pki.client_cert.clone(), pki.client_cert.clone()),
        ),
        (
            "truncated key",
            builder(url.clone()).tls_client_auth(
                pki.client_cert.clone(),
                key_text[..key_text.len() / 2].to_owned(),
            ),
        ),
        (
            "the server's key",
            builder(url.clone()).tls_client_auth(pki.client_cert.clone(), pki.server_key.clone()),
        ),
        (
            "TLS options on a plain URL",
            builder("redis://127.0.0.1:1/0".into()).tls_root_ca(pki.ca.clone()),
        ),
    ];
    for (case, builder) in cases {
        let debug = format!("{builder:?}");
        assert!(
            !debug.contains(&key_body),
            "{case}: the builder shows the key: {debug}"
        );
        let err = builder.build().await.expect_err(case);
        assert!(err.is_config(), "{case}: {err:?}");
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("tls_"), "{case}: names the option: {shown}");
        assert!(
            !shown.contains(&key_body),
            "{case}: the error shows the key: {shown}"
        );
        println!("{case}: {err}");
    }
    assert_no_panic().await;
}
