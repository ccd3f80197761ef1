//! Bounded values, write timeouts that follow the value's size, exact counters and the memory
//! backend's eviction.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::SeqCst},
    },
    time::{Duration, Instant},
};

use cached_runtime::{Cache, cache_aside};
use tests::{RedisServer, TestRedis};
use tokio::sync::Barrier;

struct Blobs {
    cache: Cache,
    len: usize,
    loads: AtomicU64,
}

/// A value of `len` bytes (a `String`: serde writes it in one piece, where a `Vec<u8>` goes
/// element by element — slow in a debug build).
fn blob(id: u32, len: usize) -> String {
    char::from(b'a' + (id % 26) as u8).to_string().repeat(len)
}

impl Blobs {
    #[cache_aside(key = "blob:<id>", ttl = 60, cache = self.cache)]
    async fn get(&self, id: u32) -> String {
        self.loads.fetch_add(1, SeqCst);
        blob(id, self.len)
    }

    #[cache_aside(key = "blob:<id>", ttl = 60, lock = false, cache = self.cache)]
    async fn get_unlocked(&self, id: u32) -> String {
        self.loads.fetch_add(1, SeqCst);
        blob(id, self.len)
    }
}

fn blobs(cache: Cache, len: usize) -> Arc<Blobs> {
    Arc::new(Blobs {
        cache,
        len,
        loads: AtomicU64::new(0),
    })
}

const MIB: usize = 1024 * 1024;

/// A result larger than `max_value_size` is returned but not stored, with or without the
/// lease; the lease is given up, not left to expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_larger_than_max_value_size_is_returned_not_stored() {
    let redis = TestRedis::new();
    let cache = redis
        .cache_builder()
        .max_value_size(MIB)
        .build()
        .await
        .unwrap();
    let memory = Cache::builder()
        .memory()
        .max_value_size(MIB)
        .build()
        .await
        .unwrap();
    for cache in [cache, memory] {
        let repo = blobs(cache, 2 * MIB);
        for _ in 0..3 {
            assert_eq!(repo.get(1).await.len(), 2 * MIB);
            assert_eq!(repo.get_unlocked(2).await.len(), 2 * MIB);
        }
        let stats = repo.cache.stats();
        println!("{}: {:?}", repo.cache.backend_name(), stats.total);
        assert_eq!(repo.loads.load(SeqCst), 6, "nothing was cached");
        assert_eq!(stats.total.writes, 0);
        assert_eq!(stats.total.oversized, 6);
        assert_eq!(stats.total.errors, 0);
        assert_eq!(
            stats.total.lock_waits, 0,
            "the lease was released each time"
        );
    }
    assert_eq!(
        redis.get_raw(&format!("{}:blob:1", redis.namespace())),
        None
    );
}

/// A stored value larger than `max_value_size` (written by a cache with a larger limit) is a
/// miss without being decoded, and the fresh result replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_value_larger_than_max_value_size_is_a_miss() {
    let redis = TestRedis::new();
    let large = blobs(redis.cache().await, 2 * MIB);
    assert_eq!(large.get(1).await.len(), 2 * MIB);
    assert_eq!(large.cache.stats().total.writes, 1);
    let small = blobs(
        redis
            .cache_builder()
            .max_value_size(MIB)
            .build()
            .await
            .unwrap(),
        1000,
    );
    assert_eq!(small.get(1).await.len(), 1000, "not the stored 2 MiB value");
    assert_eq!(
        small.get(1).await.len(),
        1000,
        "the fresh result was stored"
    );
    let counts = small.cache.stats().total;
    assert_eq!(
        (
            counts.oversized,
            counts.decode_errors,
            counts.writes,
            counts.hits
        ),
        (1, 0, 1, 1)
    );
}

/// A write gets `op_timeout` plus time for its size: a 32 MiB value with a 50 ms `op_timeout`
/// is stored and counted as a write, not as a timeout (that would have been reported as a
/// failure although the value landed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_write_is_given_time_for_its_size() {
    let redis = TestRedis::new();
    let cache = redis
        .cache_builder()
        .op_timeout(Duration::from_millis(50))
        .max_value_size(64 * MIB)
        .build()
        .await
        .unwrap();
    cache.ping().await.unwrap();
    for (name, unlocked) in [("get", false), ("get_unlocked", true)] {
        let repo = blobs(cache.clone(), 32 * MIB);
        let id = u32::from(unlocked);
        let started = Instant::now();
        let value = if unlocked {
            repo.get_unlocked(id).await
        } else {
            repo.get(id).await
        };
        assert_eq!(value.len(), 32 * MIB);
        println!("{name}: a 32 MiB miss took {:?}", started.elapsed());
        let key = format!("{}:blob:{id}", redis.namespace());
        let len: usize = redis.cmd(&["STRLEN", &key]);
        assert!(len > 32 * MIB, "{name}: the value landed");
    }
    let counts = cache.stats().total;
    println!("{counts:?}");
    assert_eq!((counts.writes, counts.errors), (2, 0));
}

struct Flaky {
    cache: Cache,
    loads: AtomicU64,
}

impl Flaky {
    /// Always fails: an `Err` is never stored, so every waiter goes round again.
    #[cache_aside(key = "flaky", ttl = 60, cache = self.cache)]
    async fn get(&self) -> Result<u64, String> {
        self.loads.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        Err("down".into())
    }
}

/// `lock_waits` counts callers that waited, once each: here 50 callers of a body that always
/// fails, so that each waiter is woken and goes round several times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_waits_counts_each_waiting_caller_once() {
    let redis = TestRedis::new();
    let memory = Cache::builder().memory().build().await.unwrap();
    for cache in [redis.cache().await, memory] {
        let repo = Arc::new(Flaky {
            cache,
            loads: AtomicU64::new(0),
        });
        let barrier = Arc::new(Barrier::new(50));
        let calls: Vec<_> = (0..50)
            .map(|_| {
                let (repo, barrier) = (repo.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    repo.get().await
                })
            })
            .collect();
        for call in calls {
            assert!(call.await.unwrap().is_err());
        }
        let counts = *repo.cache.stats().function("get").unwrap();
        println!(
            "{}: {} loads, {counts:?}",
            repo.cache.backend_name(),
            repo.loads.load(SeqCst)
        );
        assert_eq!(counts.misses, 50);
        assert!(
            counts.lock_waits <= 49,
            "at most every caller but the first waited: {}",
            counts.lock_waits
        );
        assert!(
            repo.loads.load(SeqCst) > 2,
            "waiters went round and loaded in turn (each counted as one wait)"
        );
    }
}

struct Numbers {
    cache: Cache,
}

impl Numbers {
    #[cache_aside(key = "n:<id>", ttl = 600, cache = self.cache)]
    async fn get(&self, id: u32) -> u32 {
        id
    }
}

/// The memory backend evicts the least recently used entries and always admits new keys:
/// after 10 000 keys through a 100-entry cache, the last 100 are all cached, and so are 100
/// new keys after that.
#[tokio::test]
async fn the_memory_backend_evicts_least_recently_used_and_admits_new_keys() {
    let cache = Cache::builder()
        .memory()
        .memory_capacity(100)
        .build()
        .await
        .unwrap();
    let repo = Numbers { cache };
    for id in 0..10_000 {
        repo.get(id).await;
    }
    let before = repo.cache.stats().total.hits;
    for id in 9_900..10_000 {
        repo.get(id).await;
    }
    let recent = repo.cache.stats().total.hits - before;
    for id in 20_000..20_100 {
        repo.get(id).await;
    }
    let before = repo.cache.stats().total.hits;
    for id in 20_000..20_100 {
        repo.get(id).await;
    }
    let new = repo.cache.stats().total.hits - before;
    // Reading the oldest keys again misses: they were evicted.
    let before = repo.cache.stats().total.hits;
    for id in 0..100 {
        repo.get(id).await;
    }
    let oldest = repo.cache.stats().total.hits - before;
    println!(
        "hits: the last 100 of 10 000 keys {recent}/100, 100 new keys {new}/100, the first 100 {oldest}/100"
    );
    assert!(recent >= 95, "recent keys stay: {recent}/100");
    assert!(new >= 95, "new keys are admitted: {new}/100");
    assert_eq!(oldest, 0, "the least recently used keys went first");
}

struct Big {
    cache: Cache,
}

impl Big {
    /// About 5 MB in bincode: 1.25 M short strings (costly to decode).
    #[cache_aside(key = "big", ttl = 600, cache = self.cache)]
    async fn big(&self) -> Vec<String> {
        (0..1_250_000).map(|i| format!("{:03}", i % 1000)).collect()
    }

    #[cache_aside(key = "small:<id>", ttl = 600, cache = self.cache)]
    async fn small(&self, id: u32) -> u32 {
        id
    }
}

/// Small hits next to decodes of a 5 MB value, on a two-worker runtime: the small hits' latency
/// is printed (not asserted: this machine's timings are noisy) with and without the large
/// decodes running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_hits_next_to_a_large_decode() {
    let server = RedisServer::spawn();
    let cache = Cache::builder()
        .redis(server.url())
        .namespace("app")
        .build()
        .await
        .unwrap();
    let repo = Arc::new(Big { cache });
    let big_len = repo.big().await.len();
    let bytes: usize = server.cmd(&["STRLEN", "app:big"]);
    for id in 0..8 {
        repo.small(id).await;
    }
    /// Small hits, one after another, for `window`.
    async fn small_hits(repo: Arc<Big>, window: Duration) -> Vec<Duration> {
        let mut times = Vec::new();
        let end = Instant::now() + window;
        let mut i = 0u32;
        while Instant::now() < end {
            let started = Instant::now();
            repo.small(i % 8).await;
            times.push(started.elapsed());
            i = i.wrapping_add(1);
        }
        times.sort();
        times
    }
    let quantiles = |t: &[Duration]| (t[t.len() / 2], t[t.len() * 99 / 100], t[t.len() - 1]);
    let window = Duration::from_secs(1);
    let alone = small_hits(repo.clone(), window).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let decoder = {
        let (repo, stop) = (repo.clone(), stop.clone());
        tokio::spawn(async move {
            let mut decodes = 0;
            while !stop.load(SeqCst) {
                assert_eq!(repo.big().await.len(), big_len);
                decodes += 1;
            }
            decodes
        })
    };
    let beside: Vec<_> = (0..4)
        .map(|_| tokio::spawn(small_hits(repo.clone(), window)))
        .collect();
    let mut next_to = Vec::new();
    for task in beside {
        next_to.extend(task.await.unwrap());
    }
    stop.store(true, SeqCst);
    let decodes = decoder.await.unwrap();
    next_to.sort();
    println!(
        "small hits alone ({} hits; p50, p99, max): {:?}; 4 tasks of small hits ({} hits) next to {decodes} decodes of a {bytes}-byte value: {:?}",
        alone.len(),
        quantiles(&alone),
        next_to.len(),
        quantiles(&next_to)
    );
    assert!(decodes > 0);
    assert_eq!(repo.cache.stats().function("big").unwrap().hits, decodes);
}
