//! `#[cache_put]` (write-through) on a real Redis, the shared Redis Cluster and the memory
//! backend: what each return shape stores, that `#[cache_aside]` readers of every shape read a
//! put value (and each other's) on both codecs, that a put supersedes a load in flight, and
//! that a put or invalidation that fails while Redis is paused never leaves the old value
//! served by this process.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::SeqCst},
    },
    time::{Duration, Instant},
};

use cached_runtime::{Cache, Json, cache_aside, cache_put, invalidates};
use serde::{Deserialize, Serialize};
use tests::{RedisServer, TestRedis, backends};
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

fn user(id: u64, name: &str) -> User {
    User {
        id,
        name: name.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
struct DbError;

/// A table of users behind `#[cache_aside]` readers of every return shape and `#[cache_put]`
/// writers, all on the key `user:<id>`.
struct Repo {
    cache: Cache,
    db: Mutex<HashMap<u64, User>>,
    loads: AtomicU64,
}

impl Repo {
    fn new(cache: Cache) -> Self {
        Repo {
            cache,
            db: Mutex::default(),
            loads: AtomicU64::new(0),
        }
    }

    fn loads(&self) -> u64 {
        self.loads.load(SeqCst)
    }

    fn row(&self, id: u64) -> Option<User> {
        self.loads.fetch_add(1, SeqCst);
        self.db.lock().unwrap().get(&id).cloned()
    }

    #[cache_aside(key = "user:<id>", ttl = 600, cache = self.cache)]
    async fn find(&self, id: u64) -> Result<Option<User>, DbError> {
        Ok(self.row(id))
    }

    #[cache_aside(key = "user:<id>", ttl = 600, cache = self.cache)]
    async fn find_option(&self, id: u64) -> Option<User> {
        self.row(id)
    }

    #[cache_aside(key = "user:<id>", ttl = 600, cache = self.cache)]
    async fn find_plain(&self, id: u64) -> User {
        self.row(id).unwrap_or_else(|| user(id, "?"))
    }

    #[cache_aside(key = "user:<id>", ttl = 600, cache = self.cache)]
    async fn find_result(&self, id: u64) -> Result<User, DbError> {
        self.row(id).ok_or(DbError)
    }

    /// `Result<Option<User>, E>`: `Ok(Some)` stores, `Ok(None)` deletes, `Err` writes nothing.
    #[cache_put(key = "user:<id>", ttl = 600, cache = self.cache)]
    async fn save(&self, id: u64, name: Option<&str>, fail: bool) -> Result<Option<User>, DbError> {
        if fail {
            return Err(DbError);
        }
        let mut db = self.db.lock().unwrap();
        match name {
            Some(name) => {
                db.insert(id, user(id, name));
                Ok(Some(user(id, name)))
            }
            None => {
                db.remove(&id);
                Ok(None)
            }
        }
    }

    /// A plain `T`.
    #[cache_put(key = "user:<id>", ttl = 600, cache = self.cache)]
    async fn save_plain(&self, id: u64, name: &str) -> User {
        self.db.lock().unwrap().insert(id, user(id, name));
        user(id, name)
    }

    /// `Option<T>`.
    #[cache_put(key = "user:<id>", ttl = 600, cache = self.cache)]
    async fn save_option(&self, id: u64, name: &str) -> Option<User> {
        self.db.lock().unwrap().insert(id, user(id, name));
        Some(user(id, name))
    }

    /// `Result<T, E>`.
    #[cache_put(key = "user:<id>", ttl = 600, cache = self.cache)]
    async fn save_result(&self, id: u64, name: &str, fail: bool) -> Result<User, DbError> {
        if fail {
            return Err(DbError);
        }
        self.db.lock().unwrap().insert(id, user(id, name));
        Ok(user(id, name))
    }

    #[invalidates(key = "user:<id>", cache = self.cache)]
    async fn rename(&self, id: u64, name: &str) -> Result<(), DbError> {
        self.db.lock().unwrap().insert(id, user(id, name));
        Ok(())
    }
}

/// Every backend, each with the default codec (bincode) and with JSON.
async fn backends_and_codecs() -> Vec<(Cache, String, Option<TestRedis>)> {
    let mut out = Vec::new();
    for (cache, redis) in backends().await {
        let json = match &redis {
            Some(redis) => redis
                .cache_builder()
                .namespace(format!("{}json", redis.namespace()))
                .codec(Json)
                .build()
                .await
                .unwrap(),
            None => Cache::builder()
                .memory()
                .namespace("memjson")
                .codec(Json)
                .build()
                .await
                .unwrap(),
        };
        if redis.is_some() {
            json.ping().await.unwrap();
        }
        let name = cache.backend_name();
        out.push((cache, format!("{name}, bincode"), None));
        out.push((json, format!("{name}, json"), redis));
    }
    out
}

#[tokio::test]
async fn each_shape_stores_deletes_or_keeps() {
    for (cache, _redis) in backends().await {
        let name = cache.backend_name();
        let repo = Repo::new(cache.clone());
        repo.db.lock().unwrap().insert(1, user(1, "Ada"));
        assert_eq!(repo.find(1).await, Ok(Some(user(1, "Ada"))));

        // Ok(Some(v)): stored; the reader hits it without running its body.
        assert_eq!(
            repo.save(1, Some("Grace"), false).await,
            Ok(Some(user(1, "Grace")))
        );
        let loads = repo.loads();
        assert_eq!(repo.find(1).await, Ok(Some(user(1, "Grace"))), "{name}");
        assert_eq!(repo.loads(), loads, "{name}: a hit");

        // Err: nothing written, the cached value stays.
        assert_eq!(repo.save(1, Some("Edsger"), true).await, Err(DbError));
        assert_eq!(repo.find(1).await, Ok(Some(user(1, "Grace"))), "{name}");
        assert_eq!(repo.loads(), loads, "{name}: still a hit");

        // Ok(None): the key is deleted; the next read loads (and caches "not found").
        assert_eq!(repo.save(1, None, false).await, Ok(None));
        assert_eq!(repo.find(1).await, Ok(None), "{name}");
        assert_eq!(repo.loads(), loads + 1, "{name}: a miss after the delete");

        // Plain T, Option<T>, Result<T, E>: each stores its value.
        repo.save_plain(1, "Barbara").await;
        assert_eq!(repo.find(1).await, Ok(Some(user(1, "Barbara"))), "{name}");
        repo.save_option(1, "Frances").await;
        assert_eq!(repo.find(1).await, Ok(Some(user(1, "Frances"))), "{name}");
        assert_eq!(repo.save_result(1, "Radia", true).await, Err(DbError));
        assert_eq!(repo.find(1).await, Ok(Some(user(1, "Frances"))), "{name}");
        assert_eq!(
            repo.save_result(1, "Radia", false).await,
            Ok(user(1, "Radia"))
        );
        assert_eq!(repo.find(1).await, Ok(Some(user(1, "Radia"))), "{name}");
        assert_eq!(
            repo.loads(),
            loads + 1,
            "{name}: every read after a put hit"
        );

        let stats = cache.stats();
        let save = stats.function("save").unwrap();
        assert_eq!(
            (save.writes, save.invalidations),
            (1, 1),
            "{name}: {save:?}"
        );
        assert_eq!(save.put_failures, 0);
        // The TTL is the put's (600 s, less the cache's jitter of 0).
        if let Some(redis) = &_redis {
            let key = format!("{}:user:1", cache.namespace());
            let ttl: i64 = redis.cmd(&["PTTL", &key]);
            assert!(ttl > 590_000 && ttl <= 600_000, "{name}: PTTL {ttl}");
        }
    }
}

/// A value stored by a put of any shape is read by `#[cache_aside]` readers of every shape,
/// and readers read each other's values, on bincode and JSON.
#[tokio::test]
async fn readers_of_every_shape_read_put_values_and_each_others() {
    for (cache, codec, _redis) in backends_and_codecs().await {
        let repo = Repo::new(cache.clone());
        let mut id = 0;
        // Every writer (three puts, and the readers themselves on a miss) under every reader.
        for writer in 0..7 {
            for reader in 0..4 {
                id += 1;
                let stored = user(id, "stored");
                repo.db.lock().unwrap().insert(id, stored.clone());
                match writer {
                    0 => drop(repo.save_plain(id, "stored").await),
                    1 => drop(repo.save_option(id, "stored").await),
                    2 => drop(repo.save(id, Some("stored"), false).await),
                    3 => drop(repo.find(id).await),
                    4 => drop(repo.find_option(id).await),
                    5 => drop(repo.find_plain(id).await),
                    _ => drop(repo.find_result(id).await),
                }
                // Changed behind the cache's back: a reader that ran its body would see it.
                repo.db.lock().unwrap().insert(id, user(id, "changed"));
                let loads = repo.loads();
                let read = match reader {
                    0 => repo.find(id).await.unwrap(),
                    1 => repo.find_option(id).await,
                    2 => Some(repo.find_plain(id).await),
                    _ => repo.find_result(id).await.ok(),
                };
                assert_eq!(
                    read,
                    Some(stored),
                    "{codec}: writer {writer}, reader {reader}"
                );
                assert_eq!(
                    repo.loads(),
                    loads,
                    "{codec}: writer {writer}, reader {reader}: a hit"
                );
            }
        }
        assert_eq!(cache.stats().total.decode_errors, 0, "{codec}");
    }
}

/// A table of counters whose first load blocks between reading the row and returning, until
/// the test lets it go.
struct Gated {
    cache: Cache,
    db: Arc<Mutex<HashMap<u32, u64>>>,
    loads: AtomicU64,
    /// Notified by the first load once it has read the row (and holds the lease).
    started: Notify,
    /// Awaited by the first load before it returns.
    proceed: Notify,
}

impl Gated {
    fn new(cache: Cache, db: Arc<Mutex<HashMap<u32, u64>>>) -> Self {
        Gated {
            cache,
            db,
            loads: AtomicU64::new(0),
            started: Notify::new(),
            proceed: Notify::new(),
        }
    }

    #[cache_aside(key = "item:<id>", ttl = 600, cache = self.cache)]
    async fn get(&self, id: u32) -> Option<u64> {
        let first = self.loads.fetch_add(1, SeqCst) == 0;
        let value = self.db.lock().unwrap().get(&id).copied();
        if first {
            self.started.notify_one();
            self.proceed.notified().await;
        }
        value
    }

    #[cache_put(key = "item:<id>", ttl = 600, cache = self.cache)]
    async fn set(&self, id: u32, value: u64) -> Option<u64> {
        self.db.lock().unwrap().insert(id, value);
        Some(value)
    }
}

/// A load that began before a put (it read v1 and holds the lease) finishes after it: its
/// guarded write is rejected, and the put's value stays. On Redis, a caller in another
/// instance that waits for that load is woken by the put and takes its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_supersedes_a_load_in_flight() {
    for (cache, redis) in backends().await {
        let name = cache.backend_name();
        let db: Arc<Mutex<HashMap<u32, u64>>> = Arc::default();
        db.lock().unwrap().insert(1, 1);
        let repo = Arc::new(Gated::new(cache.clone(), db.clone()));
        let slow = {
            let repo = repo.clone();
            tokio::spawn(async move { repo.get(1).await })
        };
        repo.started.notified().await;
        // Another instance's caller waits for the slow load's lease.
        let other = match &redis {
            Some(redis) => {
                let other = Arc::new(Gated::new(redis.cache().await, db.clone()));
                other.loads.store(1, SeqCst); // its loads do not block
                let waiting = {
                    let other = other.clone();
                    tokio::spawn(async move { other.get(1).await })
                };
                let until = Instant::now() + Duration::from_secs(5);
                while other.cache.stats().total.lock_waits == 0 && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                assert_eq!(other.cache.stats().total.lock_waits, 1, "{name}");
                Some((other, waiting))
            }
            None => None,
        };
        assert_eq!(repo.set(1, 2).await, Some(2));
        if let Some((other, waiting)) = other {
            assert_eq!(waiting.await.unwrap(), Some(2), "{name}: the put's value");
            assert_eq!(other.loads.load(SeqCst), 1, "{name}: it did not load");
        }
        repo.proceed.notify_one();
        assert_eq!(
            slow.await.unwrap(),
            Some(1),
            "the slow caller gets what it read"
        );
        let loads = repo.loads.load(SeqCst);
        assert_eq!(repo.get(1).await, Some(2), "{name}: the put's value stays");
        assert_eq!(repo.loads.load(SeqCst), loads, "{name}: a hit");
        let stats = cache.stats();
        assert_eq!(stats.function("get").unwrap().lease_rejected, 1, "{name}");
        assert_eq!(stats.function("set").unwrap().writes, 1, "{name}");
        if let Some(redis) = &redis {
            let lock = format!("{{{}:item:1}}:lock", cache.namespace());
            let exists: i64 = redis.cmd(&["EXISTS", &lock]);
            assert_eq!(exists, 0, "{name}: no lease left behind");
        }
    }
}

/// `INFO commandstats` as `command -> calls`.
fn commandstats(server: &RedisServer) -> HashMap<String, u64> {
    let info: String = server.cmd(&["INFO", "commandstats"]);
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(":calls=")?;
            Some((name.to_owned(), rest.split(',').next()?.parse().ok()?))
        })
        .collect()
}

/// A put is one request: `DEL` of the lease, then `SET` of the entry, and only if there was a
/// lease (a load in flight, whose waiters must wake) a `PUBLISH` of the fill event.
#[tokio::test]
async fn a_put_is_one_request_of_two_commands() {
    let server = RedisServer::spawn();
    let cache = Cache::builder()
        .redis(server.url())
        .namespace("one")
        .build()
        .await
        .unwrap();
    cache.ping().await.unwrap();
    let repo = Repo::new(cache);
    repo.save_plain(1, "Ada").await;
    let before = commandstats(&server);
    repo.save_plain(1, "Grace").await;
    let after = commandstats(&server);
    let mut ran: Vec<(String, u64)> = after
        .iter()
        .map(|(name, calls)| (name.clone(), calls - before.get(name).copied().unwrap_or(0)))
        .filter(|(name, calls)| *calls > 0 && name != "info")
        .collect();
    ran.sort();
    let ran: Vec<(&str, u64)> = ran.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    assert_eq!(ran, [("del", 1), ("set", 1)]);

    // A load in flight holds the lease: the put voids it and publishes the fill event.
    let lock = "{one:user:1}:lock";
    let _: () = server.cmd(&["SET", lock, "00000000000000aa", "PX", "5000"]);
    let before = commandstats(&server);
    repo.save_plain(1, "Edsger").await;
    let after = commandstats(&server);
    let published = after["publish"] - before.get("publish").copied().unwrap_or(0);
    assert_eq!(published, 1);
    assert_eq!(server.cmd::<i64>(&["EXISTS", lock]), 0, "the lease is void");
}

/// A cache whose breaker opens after two failed round trips and stays open for 3 s: the
/// queued delete cannot land before the test has put the old value back.
async fn paused_cache(server: &RedisServer, namespace: &str) -> Cache {
    let cache = Cache::builder()
        .redis(server.url())
        .namespace(namespace)
        .op_timeout(Duration::from_millis(100))
        .circuit_breaker(2, Duration::from_secs(3))
        .build()
        .await
        .unwrap();
    cache.ping().await.unwrap();
    cache
}

/// What happens to the old value after a write whose cache update fails while Redis is paused:
/// Redis is resumed and the old entry put back (as if the update had been lost); from then on,
/// reads in this process must never return it.
async fn old_value_is_never_served(write: impl AsyncFnOnce(&Repo), namespace: &str) {
    let server = RedisServer::spawn();
    let cache = paused_cache(&server, namespace).await;
    let repo = Repo::new(cache.clone());
    repo.db.lock().unwrap().insert(1, user(1, "old"));
    assert_eq!(repo.find(1).await, Ok(Some(user(1, "old"))));
    let key = format!("{namespace}:user:1");
    let old = server.get_raw(&key).expect("cached");

    server.pause();
    let started = Instant::now();
    write(&repo).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "the write took {took:?}");
    let stats = cache.stats();
    assert_eq!(stats.invalidations_deferred, 1, "{stats:?}");
    assert_eq!(stats.invalidations_pending, 1, "{stats:?}");
    server.resume();
    // What was sent during the pause runs now; then the old entry is put back.
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.set_raw(&key, &old);

    let until = Instant::now() + Duration::from_secs(10);
    let mut reads = 0;
    let mut bypassed = 0;
    loop {
        let loads = repo.loads();
        let read = repo.find(1).await;
        reads += 1;
        assert_eq!(read, Ok(Some(user(1, "new"))), "read {reads}");
        bypassed += repo.loads() - loads;
        if cache.stats().invalidations_recovered == 1 || Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = cache.stats();
    assert_eq!(stats.invalidations_recovered, 1, "{stats:?}");
    assert_eq!(stats.invalidations_pending, 0, "{stats:?}");
    println!("{reads} reads before the queued delete landed, {bypassed} ran the body");
    // The delete landed: the next read loads the new value and stores it; then hits.
    assert_eq!(repo.find(1).await, Ok(Some(user(1, "new"))));
    let loads = repo.loads();
    assert_eq!(repo.find(1).await, Ok(Some(user(1, "new"))));
    assert_eq!(repo.loads(), loads, "hits again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_while_redis_is_paused_returns_ok_and_never_leaves_the_old_value_served() {
    old_value_is_never_served(
        async |repo: &Repo| {
            assert_eq!(
                repo.save(1, Some("new"), false).await,
                Ok(Some(user(1, "new")))
            );
            let counts = *repo.cache.stats().function("save").unwrap();
            assert_eq!(counts.put_failures, 1, "{counts:?}");
            assert_eq!(counts.invalidation_failures, 1, "{counts:?}");
        },
        "putpause",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_while_redis_is_paused_never_leaves_the_old_value_served() {
    old_value_is_never_served(
        async |repo: &Repo| {
            assert_eq!(repo.rename(1, "new").await, Ok(()));
            let counts = *repo.cache.stats().function("rename").unwrap();
            assert_eq!(counts.invalidation_failures, 1, "{counts:?}");
        },
        "invpause",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_through_put_while_redis_is_paused_never_leaves_the_old_value_served() {
    old_value_is_never_served(
        async |repo: &Repo| {
            repo.db.lock().unwrap().insert(1, user(1, "new"));
            let put = repo
                .cache
                .put("user:1", &user(1, "new"), Duration::from_secs(600))
                .await;
            assert!(put.is_err(), "not stored, and said so");
            let counts = *repo.cache.stats().function("read_through").unwrap();
            assert_eq!(counts.put_failures, 1, "{counts:?}");
        },
        "apiputpause",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_through_remove_while_redis_is_paused_never_leaves_the_old_value_served() {
    old_value_is_never_served(
        async |repo: &Repo| {
            repo.db.lock().unwrap().insert(1, user(1, "new"));
            assert!(
                repo.cache.remove("user:1").await.is_err(),
                "queued, and said so"
            );
        },
        "apirmpause",
    )
    .await;
}
