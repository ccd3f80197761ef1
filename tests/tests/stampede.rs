//! Stampede protection, leases and Redis faults, on real `redis-server` processes.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::SeqCst},
    },
    time::Duration,
};

use cached_runtime::{Cache, cache_aside, invalidates};
use tests::{RedisServer, TestRedis};
use tokio::sync::Barrier;

/// A source of truth with versioned values and a slow, counted load.
#[derive(Default)]
struct Source {
    values: Mutex<HashMap<u32, u64>>,
    loads: AtomicU64,
}

struct Repo {
    cache: Cache,
    source: Arc<Source>,
    load_time: Duration,
}

impl Repo {
    #[cache_aside(key = "item:<id>", ttl = 60, cache = self.cache)]
    async fn get(&self, id: u32) -> Option<u64> {
        self.source.loads.fetch_add(1, SeqCst);
        let value = self.source.values.lock().unwrap().get(&id).copied();
        tokio::time::sleep(self.load_time).await;
        value
    }

    #[cache_aside(key = "item:<id>", ttl = 60, lock = false, cache = self.cache)]
    async fn get_unlocked(&self, id: u32) -> Option<u64> {
        self.source.loads.fetch_add(1, SeqCst);
        let value = self.source.values.lock().unwrap().get(&id).copied();
        tokio::time::sleep(self.load_time).await;
        value
    }

    #[invalidates(key = "item:<id>", cache = self.cache)]
    async fn set(&self, id: u32, value: u64) {
        self.source.values.lock().unwrap().insert(id, value);
    }
}

async fn redis_cache(url: &str, namespace: &str) -> Cache {
    let cache = Cache::builder()
        .redis(url)
        .namespace(namespace)
        .build()
        .await
        .unwrap();
    cache.ping().await.unwrap();
    cache
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_callers_of_a_cold_key_in_one_process_load_once() {
    let redis = TestRedis::new();
    let source = Arc::new(Source::default());
    source.values.lock().unwrap().insert(1, 7);
    let repo = Arc::new(Repo {
        cache: redis_cache(&redis.url(), redis.namespace()).await,
        source: source.clone(),
        load_time: Duration::from_millis(100),
    });
    let barrier = Arc::new(Barrier::new(1000));
    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let (repo, barrier) = (repo.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                repo.get(1).await
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), Some(7));
    }
    let loads = source.loads.load(SeqCst);
    let stats = repo.cache.stats();
    let get = stats.function("get").unwrap();
    println!("1000 callers, 1 process: {loads} load(s); {get:?}");
    assert_eq!(loads, 1);
    assert_eq!(get.writes, 1);
    assert_eq!(get.hits + get.misses, 1000);
    assert_eq!(get.lock_waits + 1, get.misses, "every other miss waited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_times_a_hundred_callers_load_once() {
    let redis = TestRedis::new();
    let source = Arc::new(Source::default());
    source.values.lock().unwrap().insert(1, 9);
    let mut repos = Vec::new();
    for _ in 0..4 {
        // Four instances: each its own Cache, connections and pub/sub listener.
        repos.push(Arc::new(Repo {
            cache: redis_cache(&redis.url(), redis.namespace()).await,
            source: source.clone(),
            load_time: Duration::from_millis(100),
        }));
    }
    // Let every listener subscribe before the stampede.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let barrier = Arc::new(Barrier::new(400));
    let mut calls = Vec::new();
    for repo in &repos {
        for _ in 0..100 {
            let (repo, barrier) = (repo.clone(), barrier.clone());
            calls.push(tokio::spawn(async move {
                barrier.wait().await;
                repo.get(1).await
            }));
        }
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), Some(9));
    }
    let loads = source.loads.load(SeqCst);
    let waits: u64 = repos
        .iter()
        .map(|r| r.cache.stats().function("get").map_or(0, |c| c.lock_waits))
        .sum();
    let wakeups: u64 = repos
        .iter()
        .map(|r| r.cache.stats().function("get").map_or(0, |c| c.wakeups))
        .sum();
    println!(
        "4 instances x 100 callers: {loads} load(s), {waits} lock waits, {wakeups} pub/sub wake-ups"
    );
    assert_eq!(loads, 1);
    assert!(
        wakeups >= 1,
        "waiters in other instances were woken, not timed out"
    );
}

/// The child side of the multi-process test: run by the parent as a separate process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process_stampede() {
    let (Ok(url), Ok(namespace), Ok(start_at)) = (
        std::env::var("STAMPEDE_URL"),
        std::env::var("STAMPEDE_NS"),
        std::env::var("STAMPEDE_START_MS"),
    ) else {
        return; // only meaningful when run by the parent
    };
    let source = Arc::new(Source::default());
    source.values.lock().unwrap().insert(1, 11);
    let repo = Arc::new(Repo {
        cache: redis_cache(&url, &namespace).await,
        source: source.clone(),
        load_time: Duration::from_millis(100),
    });
    let start_at: u64 = start_at.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(start_at.saturating_sub(now))).await;
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let repo = repo.clone();
            tokio::spawn(async move { repo.get(1).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), Some(11));
    }
    println!("\nCHILD_LOADS={}", source.loads.load(SeqCst));
}

#[test]
fn four_processes_times_a_hundred_callers_load_once() {
    let server = RedisServer::spawn();
    let start_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 1500;
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "child_process_stampede",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("STAMPEDE_URL", server.url())
                .env("STAMPEDE_NS", "procs")
                .env("STAMPEDE_START_MS", start_at.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut total = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let loads: u64 = stdout
            .lines()
            .find_map(|l| l.split("CHILD_LOADS=").nth(1))
            .expect("child reported its loads")
            .trim()
            .parse()
            .unwrap();
        total += loads;
    }
    println!("4 processes x 100 callers: {total} load(s)");
    assert_eq!(total, 1);
}

/// A load that began before a write must not store its stale result after the write's
/// invalidation. `lock = false` shows the race is real: without the lease, v1 is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stale_set_race_is_closed_by_the_lease() {
    for locked in [true, false] {
        let redis = TestRedis::new();
        let source = Arc::new(Source::default());
        source.values.lock().unwrap().insert(1, 1);
        let repo = Arc::new(Repo {
            cache: redis_cache(&redis.url(), redis.namespace()).await,
            source: source.clone(),
            load_time: Duration::from_millis(300),
        });
        // A slow load reads v1...
        let slow = {
            let repo = repo.clone();
            tokio::spawn(async move {
                if locked {
                    repo.get(1).await
                } else {
                    repo.get_unlocked(1).await
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(source.loads.load(SeqCst), 1, "the slow load has read v1");
        // ...meanwhile a write sets v2 and invalidates...
        repo.set(1, 2).await;
        // ...then the load finishes.
        assert_eq!(slow.await.unwrap(), Some(1));
        let next = repo.get(1).await;
        if locked {
            assert_eq!(next, Some(2), "the next read sees the write");
            let rejected = repo.cache.stats().function("get").unwrap().lease_rejected;
            assert_eq!(rejected, 1);
        } else {
            assert_eq!(next, Some(1), "without the lease the stale v1 was stored");
        }
    }
}

/// Many readers and writers over a few keys against a source of truth with varied latency;
/// after quiescing, every cached entry must equal the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_readers_and_writers_leave_no_stale_entry() {
    let redis = TestRedis::new();
    let source = Arc::new(Source::default());
    for id in 0..4 {
        source.values.lock().unwrap().insert(id, 0);
    }
    let mut repos = Vec::new();
    for i in 0..3 {
        repos.push(Arc::new(Repo {
            cache: redis_cache(&redis.url(), redis.namespace()).await,
            source: source.clone(),
            load_time: Duration::from_millis(5 + 7 * i),
        }));
    }
    let mut tasks = Vec::new();
    for t in 0..24u64 {
        let repo = repos[t as usize % repos.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            for step in 0..40u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let id = (x % 4) as u32;
                if x % 5 == 0 {
                    repo.set(id, t * 1000 + step).await;
                } else {
                    repo.get(id).await;
                }
                tokio::time::sleep(Duration::from_millis(x % 4)).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut stale = 0;
    for id in 0..4 {
        let truth = source.values.lock().unwrap().get(&id).copied();
        let loads = source.loads.load(SeqCst);
        let cached = repos[0].get(id).await;
        let was_hit = source.loads.load(SeqCst) == loads;
        if was_hit && cached != truth {
            stale += 1;
        }
    }
    println!("randomized race: {stale} stale entries");
    assert_eq!(stale, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_lease_holder_does_not_block_others_past_lock_ttl() {
    let redis = TestRedis::new();
    let source = Arc::new(Source::default());
    source.values.lock().unwrap().insert(1, 5);
    let cache = |ttl| redis.cache_builder().lock_ttl(ttl).build();
    let holder = Arc::new(Repo {
        cache: cache(Duration::from_millis(500)).await.unwrap(),
        source: source.clone(),
        load_time: Duration::from_secs(30),
    });
    let other = Repo {
        cache: cache(Duration::from_millis(500)).await.unwrap(),
        source: source.clone(),
        load_time: Duration::from_millis(10),
    };
    let stuck = {
        let holder = holder.clone();
        tokio::spawn(async move { holder.get(1).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(source.loads.load(SeqCst), 1, "the holder is loading");
    stuck.abort(); // cancelled mid-load: its lease is released behind it
    let _ = stuck.await;
    assert_eq!(other.get(1).await, Some(5));
    assert_eq!(
        source.loads.load(SeqCst),
        2,
        "the other caller loaded itself"
    );
    assert_eq!(other.get(1).await, Some(5), "and stored its value");
    assert_eq!(source.loads.load(SeqCst), 2);

    // A holder whose process died releases nothing: its lease (written here as that process
    // would have) just expires, and the next caller waits at most that long, then loads.
    let key = format!("{}:item:2", redis.namespace());
    let dead: Option<String> = redis.cmd(&[
        "SET",
        &format!("{{{key}}}:lock"),
        "00000000000dead0", // a token of ours (anything else is foreign and replaced)
        "NX",
        "PX",
        "400",
    ]);
    assert!(dead.is_some());
    source.values.lock().unwrap().insert(2, 6);
    assert_eq!(other.get(2).await, Some(6));
    assert_eq!(source.loads.load(SeqCst), 3);
    let counts = *other.cache.stats().function("get").unwrap();
    assert!(
        counts.lock_waits >= 1,
        "it waited for the dead lease: {counts:?}"
    );
    assert_eq!(other.get(2).await, Some(6), "and then stored its value");
    assert_eq!(source.loads.load(SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_opens_the_breaker_and_hits_resume_after() {
    let server = RedisServer::spawn();
    let cache = Cache::builder()
        .redis(server.url())
        .namespace("pause")
        .op_timeout(Duration::from_millis(50))
        .circuit_breaker(3, Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    cache.ping().await.unwrap();
    let source = Arc::new(Source::default());
    source.values.lock().unwrap().insert(1, 3);
    let repo = Repo {
        cache: cache.clone(),
        source: source.clone(),
        load_time: Duration::ZERO,
    };
    assert_eq!(repo.get(1).await, Some(3));
    server.pause();
    let started = std::time::Instant::now();
    for _ in 0..200 {
        assert_eq!(repo.get(1).await, Some(3));
    }
    let paused_for = started.elapsed();
    let stats = cache.stats();
    println!(
        "200 calls while paused: {paused_for:?} in total, breaker opened {} time(s), {} round trips skipped",
        stats.breaker_opens, stats.breaker_rejections
    );
    assert!(stats.breaker_opens >= 1);
    assert!(stats.breaker_rejections > 100, "most calls skipped Redis");
    server.resume();
    let mut resumed = false;
    for _ in 0..100 {
        let loads = source.loads.load(SeqCst);
        repo.get(1).await;
        if source.loads.load(SeqCst) == loads {
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(resumed, "hits resume after SIGCONT");
    assert!(!cache.stats().breaker_open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_that_fail_while_redis_is_down_are_applied_on_recovery() {
    let mut server = RedisServer::spawn();
    let cache = Cache::builder()
        .redis(server.url())
        .namespace("recover")
        .op_timeout(Duration::from_millis(100))
        .circuit_breaker(100, Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    cache.ping().await.unwrap();
    let source = Arc::new(Source::default());
    source.values.lock().unwrap().insert(1, 1);
    let repo = Repo {
        cache: cache.clone(),
        source: source.clone(),
        load_time: Duration::ZERO,
    };
    assert_eq!(repo.get(1).await, Some(1));
    // Keep the entry across the restart: snapshot it and restore it by hand afterwards.
    let key = "recover:item:1";
    let raw = server.get_raw(key).unwrap();
    server.pause();
    repo.set(1, 2).await; // the write succeeds; its invalidation fails and is queued
    let stats = cache.stats();
    assert_eq!(stats.invalidations_deferred, 1);
    server.resume();
    let mut applied = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if cache.stats().invalidations_recovered == 1 {
            applied = true;
            break;
        }
    }
    assert!(
        applied,
        "the queued invalidation was applied once Redis answered"
    );
    assert!(server.get_raw(key).is_none() || server.get_raw(key) != Some(raw));
    assert_eq!(repo.get(1).await, Some(2));
    server.kill();
}

/// `GET` calls Redis has executed so far (`INFO commandstats`).
fn gets(server: &RedisServer) -> u64 {
    let info: String = server.cmd(&["INFO", "commandstats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_in_another_process_takes_a_small_value_from_the_fill_event() {
    // With the value in the fill event (the default for values up to 4 KiB), the waiting
    // instance reads nothing after it is woken; with `fill_event_max_value(0)` it reads once.
    // (The holder's guarded write runs one `GET` of its lease inside its script: counted too.)
    for (limit, expected_gets) in [(None, 1), (Some(0), 2)] {
        let server = RedisServer::spawn();
        let source = Arc::new(Source::default());
        source.values.lock().unwrap().insert(1, 11);
        let cache = |limit: Option<usize>| {
            let builder = Cache::builder().redis(server.url()).namespace("fill");
            let builder = match limit {
                Some(max) => builder.fill_event_max_value(max),
                None => builder,
            };
            async move {
                let cache = builder.build().await.unwrap();
                cache.ping().await.unwrap();
                cache
            }
        };
        // Shorter than the waiter's periodic lease check (500 ms), which reads again.
        let holder = Arc::new(Repo {
            cache: cache(limit).await,
            source: source.clone(),
            load_time: Duration::from_millis(350),
        });
        let waiter = Arc::new(Repo {
            cache: cache(limit).await,
            source: source.clone(),
            load_time: Duration::from_millis(350),
        });
        // Both subscribed to the event channel.
        while server.cmd::<Vec<(String, u64)>>(&["PUBSUB", "NUMSUB", "fill:__events"])[0].1 < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let loading = {
            let holder = holder.clone();
            tokio::spawn(async move { holder.get(1).await })
        };
        while source.loads.load(SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let waiting = {
            let waiter = waiter.clone();
            tokio::spawn(async move { waiter.get(1).await })
        };
        // The waiter has read once (a miss) and checked once more before waiting.
        while waiter.cache.stats().total.lock_waits == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        let before = gets(&server);
        assert_eq!(loading.await.unwrap(), Some(11));
        assert_eq!(waiting.await.unwrap(), Some(11));
        let after = gets(&server);
        let counts = waiter.cache.stats().total;
        println!(
            "fill_event_max_value {limit:?}: GETs from the fill on (1 in the holder's script): {}; {counts:?}",
            after - before
        );
        assert_eq!(source.loads.load(SeqCst), 1, "one load");
        assert_eq!(counts.wakeups, 1, "woken by the fill event");
        assert_eq!(after - before, expected_gets);
    }
}
