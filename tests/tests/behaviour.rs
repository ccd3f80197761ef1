//! The behavioural suite of `#[cache_aside]` and `#[invalidates]`, run against a real Redis
//! (spawned by the harness, or `REDIS_URL`), a local 3-primary Redis Cluster (shared by the
//! tests running at the same time) and the memory backend.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::SeqCst},
    },
    time::Duration,
};

use cached_runtime::{Cache, Json, cache_aside, invalidates};
use serde::{Deserialize, Serialize};
use tests::{TestRedis, backends};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum DbError {
    Unavailable,
}

type DbResult<T> = Result<T, DbError>;

/// The source of truth, counting the loads that reach it.
#[derive(Default)]
struct Db {
    users: Mutex<HashMap<u64, User>>,
    loads: AtomicU64,
    fail: std::sync::atomic::AtomicBool,
}

struct Repo {
    cache: Cache,
    db: Db,
}

impl Repo {
    fn new(cache: Cache) -> Self {
        let db = Db::default();
        for (id, name) in [(1, "Ada"), (2, "Grace"), (3, "Edsger")] {
            db.users.lock().unwrap().insert(
                id,
                User {
                    id,
                    name: name.into(),
                    tags: vec!["seed".into()],
                },
            );
        }
        Repo { cache, db }
    }

    fn loads(&self) -> u64 {
        self.db.loads.load(SeqCst)
    }

    #[cache_aside(key = "user:<id>", ttl = 600, null_ttl = 30, cache = self.cache)]
    async fn find(&self, id: u64) -> Result<Option<User>, DbError> {
        self.db.loads.fetch_add(1, SeqCst);
        if self.db.fail.load(SeqCst) {
            return Err(DbError::Unavailable);
        }
        Ok(self.db.users.lock().unwrap().get(&id).cloned())
    }

    /// A `Result` alias and a plain `Option`.
    #[cache_aside(key = "name:<id>", ttl = 600, cache = self.cache)]
    async fn name(&self, id: u64) -> DbResult<String> {
        self.db.loads.fetch_add(1, SeqCst);
        let users = self.db.users.lock().unwrap();
        users
            .get(&id)
            .map(|u| u.name.clone())
            .ok_or(DbError::Unavailable)
    }

    #[cache_aside(key = "by-name:<name>", ttl = 600, cache = self.cache)]
    async fn by_name(&self, name: String) -> Option<u64> {
        self.db.loads.fetch_add(1, SeqCst);
        let users = self.db.users.lock().unwrap();
        users.values().find(|u| u.name == name).map(|u| u.id)
    }

    #[cache_aside(key = "count", ttl = 600, cache = self.cache)]
    async fn count(&self) -> usize {
        self.db.loads.fetch_add(1, SeqCst);
        self.db.users.lock().unwrap().len()
    }

    #[invalidates(keys = ["user:<id>", "name:<id>", "count"], cache = self.cache)]
    async fn rename(&self, id: u64, name: String) -> Result<(), DbError> {
        if self.db.fail.load(SeqCst) {
            return Err(DbError::Unavailable);
        }
        let mut users = self.db.users.lock().unwrap();
        let user = users.get_mut(&id).ok_or(DbError::Unavailable)?;
        user.name = name;
        Ok(())
    }
}

fn full_key(cache: &Cache, rel: &str) -> String {
    format!("{}:{rel}", cache.namespace())
}

#[tokio::test]
async fn hit_after_miss_runs_the_body_once() {
    for (cache, _redis) in backends().await {
        let repo = Repo::new(cache.clone());
        let first = repo.find(1).await.unwrap().unwrap();
        let second = repo.find(1).await.unwrap().unwrap();
        assert_eq!(first, second);
        assert_eq!(first.name, "Ada");
        assert_eq!(repo.loads(), 1, "{}", cache.backend_name());
        let stats = cache.stats();
        let find = stats.function("find").unwrap();
        assert_eq!((find.hits, find.misses, find.writes), (1, 1, 1));
        assert_eq!(find.hit_ratio(), Some(0.5));
    }
}

#[tokio::test]
async fn entries_live_in_redis_under_readable_keys_with_their_ttl() {
    let redis = TestRedis::new();
    let cache = redis.cache().await;
    let repo = Repo::new(cache.clone());
    repo.find(42).await.unwrap(); // absent: cached as "not found" with null_ttl = 30
    repo.find(2).await.unwrap();
    let key = full_key(&cache, "user:2");
    assert_eq!(key, format!("{}:user:2", redis.namespace()));
    let ttl: i64 = redis.cmd(&["TTL", &key]);
    assert!((599..=600).contains(&ttl), "TTL {ttl}");
    let null_ttl: i64 = redis.cmd(&["TTL", &full_key(&cache, "user:42")]);
    assert!((29..=30).contains(&null_ttl), "null TTL {null_ttl}");
}

#[tokio::test]
async fn absent_rows_are_cached_as_null_markers() {
    for (cache, _redis) in backends().await {
        let repo = Repo::new(cache.clone());
        assert_eq!(repo.find(404).await, Ok(None));
        assert_eq!(repo.find(404).await, Ok(None));
        assert_eq!(repo.by_name("nobody".into()).await, None);
        assert_eq!(repo.by_name("nobody".into()).await, None);
        assert_eq!(repo.loads(), 2);
        assert_eq!(cache.stats().total.null_hits, 2);
    }
}

#[tokio::test]
async fn null_ttl_defaults_to_at_most_a_minute_and_the_builder_can_change_it() {
    let redis = TestRedis::new();
    #[cache_aside(key = "absent:<id>", ttl = 600, cache = cache)]
    async fn absent(cache: &Cache, id: u64) -> Option<u64> {
        let _ = id;
        None
    }
    let cache = redis.cache().await;
    absent(&cache, 1).await;
    let ttl: i64 = redis.cmd(&["TTL", &full_key(&cache, "absent:1")]);
    assert!((59..=60).contains(&ttl), "default null TTL {ttl}");

    let short = redis
        .cache_builder()
        .null_ttl(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    absent(&short, 2).await;
    let ttl: i64 = redis.cmd(&["TTL", &full_key(&short, "absent:2")]);
    assert!((4..=5).contains(&ttl), "builder null TTL {ttl}");
}

#[tokio::test]
async fn errors_are_never_cached() {
    for (cache, redis) in backends().await {
        let repo = Repo::new(cache.clone());
        repo.db.fail.store(true, SeqCst);
        assert_eq!(repo.find(1).await, Err(DbError::Unavailable));
        assert_eq!(repo.find(1).await, Err(DbError::Unavailable));
        assert_eq!(repo.loads(), 2);
        if let Some(redis) = &redis {
            let exists: i64 = redis.cmd(&["EXISTS", &full_key(&cache, "user:1")]);
            assert_eq!(exists, 0);
        }
        repo.db.fail.store(false, SeqCst);
        assert_eq!(repo.find(1).await.unwrap().unwrap().name, "Ada");
        assert_eq!(repo.name(9).await, Err(DbError::Unavailable));
        assert_eq!(repo.name(9).await, Err(DbError::Unavailable));
        assert_eq!(repo.loads(), 5);
    }
}

#[tokio::test]
async fn invalidation_deletes_and_the_next_read_reloads() {
    for (cache, redis) in backends().await {
        let repo = Repo::new(cache.clone());
        assert_eq!(repo.find(1).await.unwrap().unwrap().name, "Ada");
        assert_eq!(repo.name(1).await.unwrap(), "Ada");
        assert_eq!(repo.count().await, 3);
        assert_eq!(repo.loads(), 3);
        repo.rename(1, "Ada Lovelace".into()).await.unwrap();
        if let Some(redis) = &redis {
            for rel in ["user:1", "name:1", "count"] {
                let exists: i64 = redis.cmd(&["EXISTS", &full_key(&cache, rel)]);
                assert_eq!(exists, 0, "{rel} still cached after the write");
            }
        }
        assert_eq!(repo.find(1).await.unwrap().unwrap().name, "Ada Lovelace");
        assert_eq!(repo.name(1).await.unwrap(), "Ada Lovelace");
        assert_eq!(repo.loads(), 5);
        assert_eq!(repo.find(1).await.unwrap().unwrap().name, "Ada Lovelace");
        assert_eq!(repo.loads(), 5);
        assert_eq!(cache.stats().function("rename").unwrap().invalidations, 1);
    }
}

#[tokio::test]
async fn a_failed_write_does_not_invalidate() {
    for (cache, _redis) in backends().await {
        let repo = Repo::new(cache.clone());
        repo.find(1).await.unwrap();
        repo.db.fail.store(true, SeqCst);
        assert_eq!(repo.rename(1, "X".into()).await, Err(DbError::Unavailable));
        repo.db.fail.store(false, SeqCst);
        assert_eq!(repo.find(1).await.unwrap().unwrap().name, "Ada");
        assert_eq!(repo.loads(), 1, "the entry survived the failed write");
        let stats = cache.stats();
        assert_eq!(stats.function("rename").map_or(0, |c| c.invalidations), 0);
    }
}

#[tokio::test]
async fn hostile_strings_render_to_distinct_escaped_keys() {
    let hostile = [
        "a:b", "a", "b:c", "*", "user:*", "?", "[abc]", "\\", "{tag}", "%", "%25", "%3A", "a b",
        "a\tb", "a\nb", "", " ", "é", "\u{a0}", "\u{0}", "#",
    ];
    for (cache, redis) in backends().await {
        let repo = Repo::new(cache.clone());
        for (i, name) in hostile.iter().enumerate() {
            repo.db.users.lock().unwrap().insert(
                100 + i as u64,
                User {
                    id: 100 + i as u64,
                    name: (*name).into(),
                    tags: vec![],
                },
            );
        }
        for _round in 0..2 {
            for (i, name) in hostile.iter().enumerate() {
                assert_eq!(
                    repo.by_name((*name).into()).await,
                    Some(100 + i as u64),
                    "{name:?}"
                );
            }
        }
        // One load per distinct name: no two names shared a key.
        assert_eq!(repo.loads(), hostile.len() as u64);
        if let Some(redis) = redis {
            let pattern = format!("{}:by-name:*", cache.namespace());
            let keys: Vec<String> = redis.cmd(&["KEYS", &pattern]);
            assert_eq!(keys.len(), hostile.len());
            for key in &keys {
                let value = key
                    .strip_prefix(&format!("{}:by-name:", cache.namespace()))
                    .unwrap();
                assert!(
                    !value.contains([':', '*', '?', '[', ']', '\\', ' ', '\n', '{', '}']),
                    "unescaped key {key:?}"
                );
            }
            assert!(keys.contains(&format!("{}:by-name:%2A", cache.namespace())));
            assert!(keys.contains(&format!("{}:by-name:a%3Ab", cache.namespace())));
        }
    }
}

#[tokio::test]
async fn an_undecodable_value_is_a_miss_and_is_repaired() {
    let redis = TestRedis::new();
    let cache = redis.cache().await;
    let repo = Repo::new(cache.clone());
    let key = full_key(&cache, "user:1");
    for junk in [
        &b"not ours"[..],
        b"",
        b"\xCA\x01\x01\x00garbage-after-a-valid-looking-header",
    ] {
        redis.set_raw(&key, junk);
        assert_eq!(repo.find(1).await.unwrap().unwrap().name, "Ada");
        let repaired = redis.get_raw(&key).unwrap();
        assert_eq!(repaired[0], 0xCA, "the fresh value overwrote the bad one");
        assert_eq!(repo.find(1).await.unwrap().unwrap().name, "Ada");
    }
    let find = *cache.stats().function("find").unwrap();
    assert_eq!(find.decode_errors, 3);
    assert_eq!(find.hits, 3);
    assert_eq!(repo.loads(), 3);
}

#[tokio::test]
async fn switching_codec_turns_old_entries_into_misses() {
    let redis = TestRedis::new();
    let bincode = redis.cache().await;
    let json = redis.cache_builder().codec(Json).build().await.unwrap();
    let repo = Repo::new(bincode);
    repo.find(2).await.unwrap();
    let repo = Repo::new(json.clone());
    assert_eq!(repo.find(2).await.unwrap().unwrap().name, "Grace");
    assert_eq!(json.stats().function("find").unwrap().decode_errors, 1);
    let raw = redis.get_raw(&full_key(&json, "user:2")).unwrap();
    let text = String::from_utf8(raw[16..].to_vec()).unwrap();
    assert_eq!(text, r#"{"id":2,"name":"Grace","tags":["seed"]}"#);
}

#[tokio::test]
async fn long_keys_are_shortened_and_stay_distinct() {
    for (cache, _redis) in backends().await {
        let repo = Repo::new(cache.clone());
        let a = "n".repeat(1000);
        let b = format!("{a}x");
        repo.db.users.lock().unwrap().insert(
            7,
            User {
                id: 7,
                name: a.clone(),
                tags: vec![],
            },
        );
        assert_eq!(repo.by_name(a.clone()).await, Some(7));
        assert_eq!(repo.by_name(b.clone()).await, None);
        assert_eq!(repo.by_name(a).await, Some(7));
        assert_eq!(repo.by_name(b).await, None);
        assert_eq!(repo.loads(), 2);
    }
}

#[tokio::test]
async fn unreachable_redis_at_build_time_serves_from_the_body() {
    let cache = Cache::builder()
        .redis(tests::unreachable_url())
        .namespace("down")
        .op_timeout(Duration::from_millis(100))
        .build()
        .await
        .expect("a Redis that is down is not a configuration error");
    assert!(cache.ping().await.is_err());
    let repo = Repo::new(cache.clone());
    for _ in 0..3 {
        assert_eq!(repo.find(1).await.unwrap().unwrap().name, "Ada");
    }
    repo.rename(1, "Ada L.".into())
        .await
        .expect("writes succeed without Redis");
    assert_eq!(repo.find(1).await.unwrap().unwrap().name, "Ada L.");
    assert_eq!(repo.loads(), 4);
    let stats = cache.stats();
    assert!(stats.total.errors >= 4, "{stats:?}");
    assert_eq!(stats.function("rename").unwrap().invalidation_failures, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_then_restarted() {
    let mut server = tests::RedisServer::spawn();
    let cache = Cache::builder()
        .redis(server.url())
        .namespace("killed")
        .op_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let repo = Repo::new(cache.clone());
    repo.find(1).await.unwrap();
    repo.find(1).await.unwrap();
    assert_eq!(repo.loads(), 1);

    server.kill();
    for _ in 0..3 {
        assert_eq!(repo.find(1).await.unwrap().unwrap().name, "Ada");
    }
    repo.rename(1, "Ada K.".into())
        .await
        .expect("writes still succeed while Redis is down");
    assert_eq!(repo.find(1).await.unwrap().unwrap().name, "Ada K.");
    assert_eq!(repo.loads(), 5);

    server.restart();
    // The connection manager reconnects by itself; give it a few tries.
    let mut up = false;
    for _ in 0..100 {
        if cache.ping().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "reconnected after the restart");
    // The rename's invalidation failed and is queued: the key is not served from the cache
    // until the queued delete has landed.
    for _ in 0..100 {
        if cache.stats().invalidations_pending == 0 {
            break;
        }
        let loads = repo.loads();
        assert_eq!(repo.find(1).await.unwrap().unwrap().name, "Ada K.");
        assert_eq!(
            repo.loads(),
            loads + 1,
            "not served while its delete is queued"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        cache.stats().invalidations_pending,
        0,
        "the queued delete landed"
    );
    repo.find(1).await.unwrap();
    let before = repo.loads();
    assert_eq!(repo.find(1).await.unwrap().unwrap().name, "Ada K.");
    assert_eq!(repo.loads(), before, "hits resume after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_redis_times_out_into_the_body() {
    let server = tests::RedisServer::spawn();
    let cache = Cache::builder()
        .redis(server.url())
        .namespace("paused")
        .op_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let repo = Repo::new(cache.clone());
    repo.find(1).await.unwrap();
    server.pause();
    for _ in 0..3 {
        assert_eq!(repo.find(1).await.unwrap().unwrap().name, "Ada");
    }
    repo.rename(1, "P".into()).await.expect("write succeeds");
    server.resume();
    assert!(cache.stats().total.errors >= 3);
    let mut reloaded = false;
    for _ in 0..50 {
        if repo.find(1).await.unwrap().unwrap().name == "P" {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The invalidation during the pause failed and was queued; it is applied once Redis
    // answers, so the new name shows up.
    assert!(
        reloaded,
        "the queued invalidation was applied after the resume"
    );
}

#[tokio::test]
async fn methods_free_functions_and_generics() {
    #[cache_aside(key = "sq:<n>", ttl = 60, cache = cache)]
    async fn square(cache: &Cache, n: i64, calls: &AtomicU64) -> i64 {
        calls.fetch_add(1, SeqCst);
        n * n
    }

    #[cache_aside(key = "generic:<id>", ttl = 60, cache = cache)]
    async fn generic<T: Serialize + serde::de::DeserializeOwned + Default + Send>(
        cache: Arc<Cache>,
        id: u64,
    ) -> Option<T> {
        let _ = id;
        Some(T::default())
    }

    for (cache, _redis) in backends().await {
        let calls = AtomicU64::new(0);
        assert_eq!(square(&cache, -3, &calls).await, 9);
        assert_eq!(square(&cache, -3, &calls).await, 9);
        assert_eq!(square(&cache, 3, &calls).await, 9);
        assert_eq!(calls.load(SeqCst), 2);
        let shared = Arc::new(cache.clone());
        assert_eq!(
            generic::<String>(shared.clone(), 1).await,
            Some(String::new())
        );
        assert_eq!(generic::<String>(shared, 1).await, Some(String::new()));
        assert_eq!(cache.stats().function("generic").unwrap().hits, 1);
    }
}

#[tokio::test]
async fn invalid_configuration_is_an_error_not_a_panic() {
    let cases = [
        Cache::builder().redis("http://localhost:6379"),
        Cache::builder().redis("not a url"),
        Cache::builder().namespace("has space"),
        Cache::builder().namespace("glob*"),
        Cache::builder().namespace("trailing:"),
        Cache::builder().op_timeout(Duration::ZERO),
        Cache::builder().null_ttl(Duration::ZERO),
        Cache::builder().ttl_jitter(0.9),
        Cache::builder().memory_capacity(0),
    ];
    for builder in cases {
        let err = builder
            .clone()
            .build()
            .await
            .expect_err(&format!("{builder:?}"));
        assert!(err.is_config(), "{err}");
        assert!(!err.to_string().is_empty());
    }
    let err = Cache::builder()
        .redis("redis://user:hunter2@")
        .build()
        .await
        .err();
    if let Some(err) = err {
        assert!(
            !err.to_string().contains("hunter2"),
            "password leaked: {err}"
        );
    }
}
