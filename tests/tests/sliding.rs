//! Sliding expiration (`sliding = true`): every hit resets the entry's TTL in the same round
//! trip, against a real Redis, the Redis Cluster and the memory backend. (TTLs are whole
//! seconds, so these tests wait a few seconds.)

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use cached_runtime::{Cache, cache_aside, invalidates};
use tests::{RedisServer, TestRedis, backends};
use tokio::sync::Barrier;

#[derive(Default)]
struct Source {
    /// Loads per id.
    loads: Mutex<HashMap<u64, u64>>,
    /// Rows of `profile`; absent ids are "not found".
    profiles: Mutex<HashMap<u64, String>>,
}

struct Repo {
    cache: Cache,
    source: Source,
}

impl Repo {
    fn new(cache: &Cache) -> Arc<Repo> {
        Arc::new(Repo {
            cache: cache.clone(),
            source: Source::default(),
        })
    }

    fn load(&self, id: u64) -> u64 {
        let mut loads = self.source.loads.lock().unwrap();
        let n = loads.entry(id).or_default();
        *n += 1;
        *n
    }

    fn loads(&self, id: u64) -> u64 {
        self.source
            .loads
            .lock()
            .unwrap()
            .get(&id)
            .copied()
            .unwrap_or(0)
    }

    #[cache_aside(key = "session:<id>", ttl = 1, sliding = true, cache = self.cache)]
    async fn session(&self, id: u64) -> String {
        format!("session {id}, load {}", self.load(id))
    }

    #[invalidates(key = "session:<id>", cache = self.cache)]
    async fn log_out(&self, id: u64) {
        let _ = id;
    }

    #[cache_aside(key = "long:<id>", ttl = 10, sliding = true, cache = self.cache)]
    async fn long(&self, id: u64) -> u64 {
        self.load(id)
    }

    #[cache_aside(key = "unlocked:<id>", ttl = 10, sliding = true, lock = false, cache = self.cache)]
    async fn unlocked(&self, id: u64) -> u64 {
        self.load(id)
    }

    #[cache_aside(key = "profile:<id>", ttl = 10, null_ttl = 1, sliding = true, cache = self.cache)]
    async fn profile(&self, id: u64) -> Option<String> {
        self.load(id);
        self.source.profiles.lock().unwrap().get(&id).cloned()
    }

    /// The same key as [`slid`](Self::slid), without `sliding`: its values carry a logical
    /// expiry.
    #[cache_aside(key = "shared:<id>", ttl = 1, cache = self.cache)]
    async fn fixed(&self, id: u64) -> u64 {
        100 + self.load(id)
    }

    #[cache_aside(key = "shared:<id>", ttl = 60, sliding = true, cache = self.cache)]
    async fn slid(&self, id: u64) -> u64 {
        200 + self.load(id)
    }
}

/// The entry's full key, in `redis`'s namespace (or the memory backend's).
fn full_key(cache: &Cache, key: &str) -> String {
    format!("{}:{key}", cache.namespace())
}

/// Milliseconds `key` has left in Redis.
fn pttl(redis: &TestRedis, cache: &Cache, key: &str) -> i64 {
    redis.cmd(&["PTTL", &full_key(cache, key)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_read_every_400_ms_outlives_its_ttl_and_an_unread_one_expires() {
    for (cache, _redis) in backends().await {
        let repo = Repo::new(&cache);
        let read = repo.session(1).await;
        assert_eq!(read, "session 1, load 1");
        assert_eq!(repo.session(2).await, "session 2, load 1");
        // 3 s with `ttl = 1`: every read pushes the expiry of session 1 back by a second.
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert_eq!(repo.session(1).await, read, "{}", cache.backend_name());
        }
        assert_eq!(
            repo.loads(1),
            1,
            "{}: the body ran once",
            cache.backend_name()
        );
        assert_eq!(
            repo.session(2).await,
            "session 2, load 2",
            "{}: the unread entry expired",
            cache.backend_name()
        );
        let counts = *cache.stats().function("session").unwrap();
        println!("{}: {counts:?}", cache.backend_name());
        assert_eq!((counts.hits, counts.misses), (8, 3));

        // An invalidation still deletes a sliding entry.
        repo.log_out(1).await;
        assert_eq!(repo.session(1).await, "session 1, load 2");
    }
}

#[tokio::test]
async fn a_hit_resets_the_ttl_in_redis_to_the_full_ttl() {
    for (cache, redis) in backends().await {
        let Some(redis) = redis else { continue };
        let repo = Repo::new(&cache);
        assert_eq!(repo.long(1).await, 1);
        assert_eq!(repo.unlocked(2).await, 1);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        for key in ["long:1", "unlocked:2"] {
            let left = pttl(&redis, &cache, key);
            assert!(left <= 8000, "{key}: {left} ms left before the hit");
        }
        assert_eq!(repo.long(1).await, 1);
        assert_eq!(repo.unlocked(2).await, 1);
        for key in ["long:1", "unlocked:2"] {
            let left = pttl(&redis, &cache, key);
            println!(
                "{}: {key}: {left} ms left after a hit",
                cache.backend_name()
            );
            assert!(
                (9000..=10_000).contains(&left),
                "{}: {key}: {left} ms left after a hit of a 10 s TTL",
                cache.backend_name()
            );
        }
        assert_eq!((repo.loads(1), repo.loads(2)), (1, 1));
    }
}

/// `calls=` of every command in `INFO commandstats`.
fn commandstats(server: &RedisServer) -> HashMap<String, u64> {
    let info: String = server.cmd(&["INFO", "commandstats"]);
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(":calls=")?;
            let calls = rest.split(',').next()?.parse().ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// The commands run between two `commandstats`, without the side channel's and the cache's
/// own housekeeping (`INFO`, `PING`, the event subscription).
fn ran(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> HashMap<String, u64> {
    after
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "info" | "ping" | "subscribe"))
        .map(|(name, n)| (name.clone(), n - before.get(name).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sliding_hit_is_one_getex_on_the_server_and_no_get() {
    let server = RedisServer::spawn();
    let cache = Cache::builder()
        .redis(server.url())
        .namespace("slide")
        .build()
        .await
        .unwrap();
    cache.ping().await.unwrap();
    let repo = Repo::new(&cache);
    assert_eq!(repo.long(1).await, 1);
    assert_eq!(repo.unlocked(2).await, 1);

    let before = commandstats(&server);
    for _ in 0..10 {
        assert_eq!(repo.long(1).await, 1);
        assert_eq!(repo.unlocked(2).await, 1);
    }
    let sequential = ran(&before, &commandstats(&server));
    let hits = |name| cache.stats().function(name).unwrap().hits;
    assert_eq!((hits("long"), hits("unlocked")), (10, 10));
    assert_eq!(
        sequential,
        HashMap::from([("getex".to_owned(), 20)]),
        "one GETEX per hit and nothing else"
    );

    // Concurrent hits of one key share a GETEX (read coalescing), as plain reads share a GET.
    let before = commandstats(&server);
    let barrier = Arc::new(Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (repo, barrier) = (repo.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                repo.long(1).await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 1);
    }
    let concurrent = ran(&before, &commandstats(&server));
    println!("50 concurrent hits: {concurrent:?}");
    assert_eq!(hits("long"), 60);
    assert_eq!(concurrent.keys().collect::<Vec<_>>(), ["getex"]);
    assert!(concurrent["getex"] < 50, "{concurrent:?}");
    let left: i64 = server.cmd(&["PTTL", "slide:long:1"]);
    assert!(left > 9000, "{left} ms left after the shared GETEX");
    assert_eq!(repo.loads(1), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_not_found_is_looked_up_again_after_null_ttl_however_often_it_is_read() {
    for (cache, redis) in backends().await {
        let repo = Repo::new(&cache);
        assert_eq!(repo.profile(7).await, None);
        // Read often for longer than `null_ttl`: each hit resets the key's TTL, but the
        // marker is served only until `null_ttl` after it was stored.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(repo.profile(7).await, None);
        }
        assert_eq!(
            repo.loads(7),
            1,
            "{}: served from the cache",
            cache.backend_name()
        );
        repo.source
            .profiles
            .lock()
            .unwrap()
            .insert(7, "Ada".to_owned());
        tokio::time::sleep(Duration::from_millis(600)).await;
        if let Some(redis) = &redis {
            // Still in Redis: the hits slid its TTL past `null_ttl`.
            assert!(pttl(redis, &cache, "profile:7") > 0);
        }
        assert_eq!(
            repo.profile(7).await,
            Some("Ada".to_owned()),
            "{}: the absent row was looked up again",
            cache.backend_name()
        );
        assert_eq!(repo.loads(7), 2);
        let counts = *cache.stats().function("profile").unwrap();
        assert_eq!((counts.null_hits, counts.misses), (3, 2), "{counts:?}");
        // A value found slides as any other.
        assert_eq!(repo.profile(7).await, Some("Ada".to_owned()));
        assert_eq!(repo.loads(7), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sliding_site_reads_the_values_of_a_site_without_sliding_under_its_key() {
    for (cache, redis) in backends().await {
        let repo = Repo::new(&cache);
        // Stored by the site without `sliding` (a logical expiry 1 s on), read by the sliding
        // one: a hit, and the read slides the key's TTL to the sliding site's 60 s.
        assert_eq!(repo.fixed(1).await, 101);
        assert_eq!(repo.slid(1).await, 101, "{}", cache.backend_name());
        if let Some(redis) = &redis {
            assert!(pttl(redis, &cache, "shared:1") > 59_000);
        }
        // Past that logical expiry the value is still in Redis, and fresh for the sliding
        // site (Redis's TTL decides); the other site reloads it, as it would its own.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(repo.slid(1).await, 101, "{}", cache.backend_name());
        assert_eq!(repo.loads(1), 1);
        assert_eq!(repo.fixed(1).await, 102);

        // Stored by the sliding site (no logical expiry), read by the other: a hit.
        assert_eq!(repo.slid(2).await, 201);
        assert_eq!(repo.fixed(2).await, 201, "{}", cache.backend_name());
        assert_eq!(repo.loads(2), 1);
        let decode_errors = cache.stats().total.decode_errors;
        assert_eq!(decode_errors, 0);
    }
}
