//! Serving hot keys across expiry: stale-while-revalidate, XFetch early refresh and fail-safe,
//! against a real Redis and the memory backend. (TTLs are whole seconds, so these tests wait
//! a little over a second for an entry to expire.)

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering::SeqCst},
    },
    time::Duration,
};

use cached_runtime::{Cache, cache_aside};
use tests::backends;
use tokio::sync::{Barrier, RwLock};

#[derive(Default)]
struct Source {
    value: Mutex<u64>,
    loads: AtomicU64,
    failing: AtomicBool,
    /// Held (written) by a test: loads block until it lets go.
    gate: RwLock<()>,
}

/// With `stale`, `early_refresh` or `timeout` the body runs in a background task that owns a
/// clone of `self`: the repository is `Clone`.
#[derive(Clone)]
struct Repo {
    cache: Cache,
    source: Arc<Source>,
}

impl Repo {
    async fn load(&self) -> Result<u64, String> {
        self.source.loads.fetch_add(1, SeqCst);
        drop(self.source.gate.read().await);
        tokio::time::sleep(Duration::from_millis(30)).await;
        if self.source.failing.load(SeqCst) {
            return Err("database down".into());
        }
        Ok(*self.source.value.lock().unwrap())
    }

    #[cache_aside(key = "swr", ttl = 1, stale = 30, cache = self.cache)]
    async fn swr(&self) -> Result<u64, String> {
        self.load().await
    }

    #[cache_aside(key = "early", ttl = 2, early_refresh = 100.0, cache = self.cache)]
    async fn early(&self) -> Result<u64, String> {
        self.load().await
    }

    #[cache_aside(key = "bounded", ttl = 1, fail_safe = 60, timeout = 200, cache = self.cache)]
    async fn bounded(&self) -> Result<u64, String> {
        self.load().await
    }

    #[cache_aside(key = "safe", ttl = 1, fail_safe = 60, cache = self.cache)]
    async fn safe(&self) -> Result<u64, String> {
        self.load().await
    }
}

fn repo(cache: &Cache) -> Arc<Repo> {
    Arc::new(Repo {
        cache: cache.clone(),
        source: Arc::new(Source::default()),
    })
}

/// Waits (at most 10 s: a deadlock detector, not a timing assertion) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `fut`, failing the test if it does not finish within 10 s — for calls that must not
/// wait for a body the test holds.
async fn without_waiting_for_the_body<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("a caller waited for the body the test is holding")
}

async fn stampede<F, Fut>(n: usize, call: F) -> Vec<Result<u64, String>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<u64, String>> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let barrier = barrier.clone();
            let fut = call();
            tokio::spawn(async move {
                barrier.wait().await;
                fut.await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_serves_the_old_value_and_refreshes_once_in_the_background() {
    for (cache, _redis) in backends().await {
        let repo = repo(&cache);
        *repo.source.value.lock().unwrap() = 1;
        assert_eq!(repo.swr().await, Ok(1));
        *repo.source.value.lock().unwrap() = 2;
        tokio::time::sleep(Duration::from_millis(1100)).await; // expired, within `stale`
        // The source hangs while 50 callers cross the expiry: none of them may wait for it.
        let held = repo.source.gate.write().await;
        let results = without_waiting_for_the_body(stampede(50, || {
            let repo = repo.clone();
            async move { repo.swr().await }
        }))
        .await;
        let stale = results.iter().filter(|r| **r == Ok(1)).count();
        let during = *cache.stats().function("swr").unwrap();
        eventually("the refresh started", || {
            repo.source.loads.load(SeqCst) == 2
        })
        .await;
        drop(held);
        eventually("the refresh stored the new value", || {
            cache.stats().function("swr").unwrap().writes == 2
        })
        .await;
        let counts = *cache.stats().function("swr").unwrap();
        println!(
            "{}: across expiry with the source hanging, {stale} of 50 callers got the stale value at once; {counts:?}",
            cache.backend_name()
        );
        assert_eq!(stale, 50, "every caller was served the stale value");
        assert_eq!(during.stale_served, 50);
        assert_eq!(counts.refreshes, 1, "exactly one refresh");
        assert_eq!(repo.source.loads.load(SeqCst), 2);
        assert_eq!(repo.swr().await, Ok(2), "the refreshed value is cached");
        assert_eq!(repo.source.loads.load(SeqCst), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_refresh_keeps_a_hot_key_from_expiring() {
    for (cache, _redis) in backends().await {
        let repo = repo(&cache);
        assert_eq!(repo.early().await, Ok(0));
        // An early refresh runs in the background: with the source hanging, callers are
        // still served at once until one of them starts a refresh.
        let held = repo.source.gate.write().await;
        without_waiting_for_the_body(async {
            while repo.source.loads.load(SeqCst) < 2 {
                assert_eq!(repo.early().await, Ok(0));
            }
            // While that refresh runs, more callers picked for refresh start no other.
            let results = stampede(20, || {
                let repo = repo.clone();
                async move { repo.early().await }
            })
            .await;
            assert!(results.iter().all(|r| *r == Ok(0)));
        })
        .await;
        assert_eq!(repo.source.loads.load(SeqCst), 2, "one refresh at a time");
        drop(held);
        eventually("the early refresh stored", || {
            cache.stats().function("early").unwrap().writes == 2
        })
        .await;
        // Hot traffic for longer than the TTL: with XFetch the value is refreshed before it
        // expires, so no call after the first is a miss.
        for _ in 0..30 {
            let results = stampede(10, || {
                let repo = repo.clone();
                async move { repo.early().await }
            })
            .await;
            assert!(results.iter().all(|r| *r == Ok(0)));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let counts = *cache.stats().function("early").unwrap();
        println!(
            "{}: 3 s of hot traffic on a 2 s TTL: {counts:?}",
            cache.backend_name()
        );
        assert_eq!(counts.misses, 1, "only the very first call missed");
        assert!(counts.refreshes >= 1);
        assert_eq!(repo.source.loads.load(SeqCst), 1 + counts.refreshes);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_safe_serves_the_expired_value_when_the_body_fails() {
    for (cache, _redis) in backends().await {
        let repo = repo(&cache);
        *repo.source.value.lock().unwrap() = 7;
        assert_eq!(repo.safe().await, Ok(7));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        repo.source.failing.store(true, SeqCst);
        assert_eq!(
            repo.safe().await,
            Ok(7),
            "expired value instead of the error"
        );
        assert_eq!(cache.stats().function("safe").unwrap().fail_safe_served, 1);
        // The body recovers: the next call reloads.
        repo.source.failing.store(false, SeqCst);
        *repo.source.value.lock().unwrap() = 8;
        assert_eq!(repo.safe().await, Ok(8));
    }
}

#[tokio::test]
async fn fail_safe_without_a_value_returns_the_error() {
    for (cache, _redis) in backends().await {
        let repo = repo(&cache);
        repo.source.failing.store(true, SeqCst);
        assert_eq!(repo.safe().await, Err("database down".into()));
        assert_eq!(repo.swr().await, Err("database down".into()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_serves_the_fail_safe_value_and_the_slow_load_still_lands() {
    for (cache, _redis) in backends().await {
        let repo = repo(&cache);
        *repo.source.value.lock().unwrap() = 4;
        assert_eq!(repo.bounded().await, Ok(4));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        *repo.source.value.lock().unwrap() = 5;
        let held = repo.source.gate.write().await; // the source hangs
        assert_eq!(
            without_waiting_for_the_body(repo.bounded()).await,
            Ok(4),
            "the expired value after `timeout`, not a wait for the source"
        );
        assert_eq!(repo.source.loads.load(SeqCst), 2, "the load was started");
        assert_eq!(
            cache.stats().function("bounded").unwrap().fail_safe_served,
            1
        );
        // The source answers: the load that the caller stopped waiting for finishes in the
        // background and stores its result; nobody loads again.
        drop(held);
        eventually("the slow load stored its result", || {
            cache.stats().function("bounded").unwrap().writes == 2
        })
        .await;
        assert_eq!(repo.bounded().await, Ok(5), "{}", cache.backend_name());
        assert_eq!(
            repo.source.loads.load(SeqCst),
            2,
            "the slow load was not abandoned"
        );
    }
}
