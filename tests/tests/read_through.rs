//! The read-through API (`Cache::get_or_load`, `Cache::entry`, `get`, `put`, `remove`, `Key`)
//! on a real Redis, the shared Redis Cluster and the memory backend: it caches as
//! `#[cache_aside]` does (null caching, errors never cached, one load per key under a
//! stampede), shares entries with the annotations, honours tags, and fails open.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::SeqCst},
    },
    time::Duration,
};

use cached_runtime::{Cache, Key, Site, cache_aside, cache_put};
use serde::{Deserialize, Serialize};
use tests::{backends, unreachable_url};
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

const TTL: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_load_caches_values_and_nones_but_not_errors() {
    for (cache, redis) in backends().await {
        let name = cache.backend_name();
        let loads = AtomicU64::new(0);
        let load = |value: Result<Option<User>, DbError>| {
            loads.fetch_add(1, SeqCst);
            async move { value }
        };
        let key = Key::new("user").part(42u64);
        let found = Ok(Some(user(42, "Ada")));
        assert_eq!(
            cache.get_or_load(&key, TTL, || load(found.clone())).await,
            found
        );
        assert_eq!(
            cache.get_or_load(&key, TTL, || load(Err(DbError))).await,
            found,
            "{name}"
        );
        assert_eq!(loads.load(SeqCst), 1, "{name}: the second call was a hit");
        if let Some(redis) = &redis {
            let full = format!("{}:user:42", cache.namespace());
            assert!(
                redis.get_raw(&full).is_some(),
                "{name}: stored under {full}"
            );
        }

        // An error is returned, never stored.
        let failing = Key::new("user").part(7u64);
        assert_eq!(
            cache
                .get_or_load(&failing, TTL, || load(Err(DbError)))
                .await,
            Err(DbError)
        );
        assert_eq!(
            cache.get_or_load(&failing, TTL, || load(Ok(None))).await,
            Ok(None)
        );
        assert_eq!(loads.load(SeqCst), 3, "{name}");
        // The `None` is: a null hit, also for `get`.
        assert_eq!(
            cache
                .get_or_load(&failing, TTL, || load(Err(DbError)))
                .await,
            Ok(None)
        );
        assert_eq!(loads.load(SeqCst), 3, "{name}: a null hit");
        assert_eq!(
            cache.get::<Option<User>>(&failing).await,
            Some(None),
            "{name}"
        );
        assert_eq!(cache.get::<User>(&failing).await, None, "{name}");
        let total = cache.stats().function("read_through").copied().unwrap();
        assert_eq!((total.hits, total.null_hits), (1, 2), "{name}: {total:?}");
        assert_eq!(total.misses, 4, "{name}: 3 loads and a `get` as `User`");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stampede_of_read_through_calls_loads_once() {
    for (cache, _redis) in backends().await {
        let name = cache.backend_name();
        let loads = Arc::new(AtomicU64::new(0));
        let calls = (0..64).map(|_| {
            let (cache, loads) = (cache.clone(), loads.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load("hot", TTL, || async {
                        loads.fetch_add(1, SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, DbError>(7u32)
                    })
                    .await
            })
        });
        for call in futures_util::future::join_all(calls).await {
            assert_eq!(call.unwrap(), Ok(7), "{name}");
        }
        assert_eq!(loads.load(SeqCst), 1, "{name}");
    }
}

/// Annotated functions on the same keys as the read-through calls below.
struct Users {
    cache: Cache,
    loads: AtomicU64,
}

impl Users {
    #[cache_aside(key = "user:<id>", ttl = 600, cache = self.cache)]
    async fn find(&self, id: u64) -> Result<Option<User>, DbError> {
        self.loads.fetch_add(1, SeqCst);
        Ok(Some(user(id, "from the database")))
    }

    #[cache_put(key = "user:<id>", ttl = 600, cache = self.cache)]
    async fn save(&self, id: u64, name: &str) -> Result<User, DbError> {
        Ok(user(id, name))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_through_and_the_annotations_share_entries() {
    for (cache, _redis) in backends().await {
        let name = cache.backend_name();
        let users = Users {
            cache: cache.clone(),
            loads: AtomicU64::new(0),
        };
        // A key with a value that needs escaping, rendered both ways.
        let odd = Key::new("user").part(1u64);
        assert_eq!(users.find(1).await, Ok(Some(user(1, "from the database"))));
        assert_eq!(
            cache.get::<User>(&odd).await,
            Some(user(1, "from the database")),
            "{name}"
        );
        assert_eq!(
            cache.get::<Option<User>>(&odd).await,
            Some(Some(user(1, "from the database"))),
            "{name}"
        );

        // A read-through put is read by the annotation, and an annotated put by `get`.
        cache.put("user:2", &user(2, "put"), TTL).await.unwrap();
        assert_eq!(users.find(2).await, Ok(Some(user(2, "put"))), "{name}");
        assert_eq!(users.loads.load(SeqCst), 1, "{name}: a hit");
        users.save(3, "saved").await.unwrap();
        let loaded = cache
            .get_or_load("user:3", TTL, || async { Err::<User, _>(DbError) })
            .await;
        assert_eq!(loaded, Ok(user(3, "saved")), "{name}");

        // `put` of a `None` and `remove` delete, as the annotations do.
        cache.put("user:2", &None::<User>, TTL).await.unwrap();
        assert_eq!(cache.get::<User>("user:2").await, None, "{name}");
        cache.remove("user:3").await.unwrap();
        assert_eq!(cache.get::<User>("user:3").await, None, "{name}");
        assert_eq!(
            users.find(3).await,
            Ok(Some(user(3, "from the database"))),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_tags_are_honoured_and_invalidated() {
    for (cache, _redis) in backends().await {
        let name = cache.backend_name();
        let loads = AtomicU64::new(0);
        let product = |id: u64| {
            let loads = &loads;
            let cache = &cache;
            async move {
                cache
                    .entry(&Key::new("product").part(id))
                    .ttl(TTL)
                    .tags([Key::new("category").part(5u32), Key::new("products")])
                    .get_or_load(|| async move {
                        loads.fetch_add(1, SeqCst);
                        Ok::<_, DbError>(id * 10)
                    })
                    .await
            }
        };
        assert_eq!(product(1).await, Ok(10));
        assert_eq!(product(2).await, Ok(20));
        assert_eq!(product(1).await, Ok(10));
        assert_eq!(loads.load(SeqCst), 2, "{name}: a hit");
        // An untagged `get` honours the entry's tags.
        assert_eq!(cache.get::<u64>("product:1").await, Some(10), "{name}");

        cache.invalidate_tags(&["category:5"]).await.unwrap();
        assert_eq!(cache.get::<u64>("product:1").await, None, "{name}: voided");
        assert_eq!(product(1).await, Ok(10));
        assert_eq!(product(2).await, Ok(20));
        assert_eq!(loads.load(SeqCst), 4, "{name}: both reloaded");

        // A tagged put, voided by its tag.
        cache
            .entry("product:3")
            .ttl(TTL)
            .tags(["category:5", "products"])
            .put(&30u64)
            .await
            .unwrap();
        assert_eq!(product(3).await, Ok(30), "{name}: the put value");
        assert_eq!(loads.load(SeqCst), 4, "{name}");
        cache.invalidate_tags(&["products"]).await.unwrap();
        assert_eq!(cache.get::<u64>("product:3").await, None, "{name}");

        // Removing an entry with its tags: cascade.
        assert_eq!(product(1).await, Ok(10));
        assert_eq!(product(2).await, Ok(20));
        cache
            .entry("product:1")
            .tags(["category:5"])
            .remove()
            .await
            .unwrap();
        assert_eq!(cache.get::<u64>("product:1").await, None, "{name}");
        assert_eq!(
            cache.get::<u64>("product:2").await,
            None,
            "{name}: by its tag"
        );
    }
}

/// A load that began before a read-through put finishes after it: its write is rejected and
/// the put's value stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_supersedes_a_read_through_load_in_flight() {
    for (cache, _redis) in backends().await {
        let name = cache.backend_name();
        let (started, proceed) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let slow = {
            let (cache, started, proceed) = (cache.clone(), started.clone(), proceed.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load("item:1", TTL, || async move {
                        started.notify_one();
                        proceed.notified().await;
                        Ok::<_, DbError>(1u64)
                    })
                    .await
            })
        };
        started.notified().await;
        cache.put("item:1", &2u64, TTL).await.unwrap();
        proceed.notify_one();
        assert_eq!(
            slow.await.unwrap(),
            Ok(1),
            "{name}: the slow caller gets what it loaded"
        );
        assert_eq!(
            cache.get::<u64>("item:1").await,
            Some(2),
            "{name}: the put's value stays"
        );
        let counts = cache.stats().function("read_through").copied().unwrap();
        assert_eq!(counts.lease_rejected, 1, "{name}: {counts:?}");
    }
}

static PROFILES: Site = Site::new("profiles");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_options_sliding_null_ttl_and_site() {
    for (cache, redis) in backends().await {
        let name = cache.backend_name();
        let entry = || {
            cache
                .entry("session:1")
                .ttl(Duration::from_secs(2))
                .sliding(true)
        };
        let load = || async { Ok::<_, DbError>(1u8) };
        assert_eq!(entry().site(&PROFILES).get_or_load(load).await, Ok(1));
        // Read every 0.5 s for 3 s: past its TTL, it stays because each hit slides it.
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let value = entry()
                .site(&PROFILES)
                .get_or_load(|| async { Err::<u8, _>(DbError) })
                .await;
            assert_eq!(value, Ok(1), "{name}: still cached");
        }
        let counts = cache.stats().function("profiles").copied().unwrap();
        assert_eq!((counts.misses, counts.hits), (1, 6), "{name}: {counts:?}");
        if let Some(redis) = &redis {
            let full = format!("{}:session:1", cache.namespace());
            let pttl: i64 = redis.cmd(&["PTTL", &full]);
            assert!(pttl > 1000, "{name}: the TTL was reset ({pttl} ms)");
        }

        // `null_ttl`: a `None` expires sooner than the TTL.
        let none = || {
            cache
                .entry("absent")
                .ttl(TTL)
                .null_ttl(Duration::from_millis(300))
                .get_or_load(|| async { Ok::<Option<u8>, DbError>(None) })
        };
        assert_eq!(none().await, Ok(None));
        assert_eq!(
            cache.get::<Option<u8>>("absent").await,
            Some(None),
            "{name}"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            cache.get::<Option<u8>>("absent").await,
            None,
            "{name}: expired"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_values_are_served_while_one_caller_refreshes() {
    for (cache, _redis) in backends().await {
        let name = cache.backend_name();
        let loads = AtomicU64::new(0);
        let read = || {
            cache
                .entry("rates")
                .ttl(Duration::from_millis(300))
                .stale(Duration::from_secs(30))
                .get_or_load(|| async { Ok::<_, DbError>(loads.fetch_add(1, SeqCst) + 1) })
        };
        assert_eq!(read().await, Ok(1));
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Stale: served, and this caller refreshed it.
        assert_eq!(read().await, Ok(1), "{name}: the stale value");
        assert_eq!(loads.load(SeqCst), 2, "{name}: refreshed");
        assert_eq!(read().await, Ok(2), "{name}: the refreshed value");
        let counts = cache.stats().function("read_through").copied().unwrap();
        assert_eq!(counts.stale_served, 1, "{name}: {counts:?}");
    }
}

#[tokio::test]
async fn read_through_fails_open() {
    let cache = Cache::builder()
        .redis(unreachable_url())
        .op_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    for round in 0..3u32 {
        let value = cache
            .get_or_load("user:1", TTL, || async move { Ok::<_, DbError>(round) })
            .await;
        assert_eq!(value, Ok(round), "every call runs its loader");
    }
    assert_eq!(cache.get::<u32>("user:1").await, None);
    assert!(
        cache.put("user:1", &1u32, TTL).await.is_err(),
        "not stored, and said so"
    );
    assert!(cache.remove("user:1").await.is_err(), "queued, and said so");
    let counts = cache.stats().function("read_through").copied().unwrap();
    assert!(counts.errors >= 4, "{counts:?}");
}
