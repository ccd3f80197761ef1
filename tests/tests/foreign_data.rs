//! Foreign data under our keys and lost leases, on real `redis-server` processes: a fault in
//! one key stays in that key, and nobody waits on a lease that is gone.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::SeqCst},
    },
    time::{Duration, Instant},
};

use cached_runtime::{Cache, cache_aside};
use tests::RedisServer;
use tokio::sync::Barrier;

/// A repository whose load takes `load_time` and returns `value`, counting its loads.
struct Repo {
    cache: Cache,
    value: u64,
    load_time: Duration,
    loads: AtomicU64,
}

impl Repo {
    fn new(cache: Cache, value: u64, load_time: Duration) -> Arc<Self> {
        Arc::new(Repo {
            cache,
            value,
            load_time,
            loads: AtomicU64::new(0),
        })
    }

    #[cache_aside(key = "item:<id>", ttl = 60, cache = self.cache)]
    async fn get(&self, id: u32) -> u64 {
        self.loads.fetch_add(1, SeqCst);
        tokio::time::sleep(self.load_time).await;
        self.value + u64::from(id)
    }

    #[cache_aside(key = "item:<id>", ttl = 60, lock = false, cache = self.cache)]
    async fn get_unlocked(&self, id: u32) -> u64 {
        self.loads.fetch_add(1, SeqCst);
        tokio::time::sleep(self.load_time).await;
        self.value + u64::from(id)
    }
}

async fn cache_on(server: &RedisServer) -> Cache {
    let cache = Cache::builder()
        .redis(server.url())
        .namespace("app")
        .build()
        .await
        .unwrap();
    cache.ping().await.unwrap();
    cache
}

fn key_type(server: &RedisServer, key: &str) -> String {
    server.cmd::<String>(&["TYPE", key])
}

/// A hash under one entry key makes that key's calls run their bodies, once, and then it is a
/// string entry again; the breaker does not open, and a healthy key keeps all its hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_under_one_key_is_replaced_and_other_keys_keep_their_hits() {
    let server = RedisServer::spawn();
    let repo = Repo::new(cache_on(&server).await, 100, Duration::ZERO);
    assert_eq!(repo.get(1).await, 101, "the healthy key, now cached");
    let _: i64 = server.cmd(&["HSET", "app:item:2", "field", "value"]);
    let _: i64 = server.cmd(&["RPUSH", "app:item:3", "a", "b"]);
    for _ in 0..6 {
        assert_eq!(repo.get(2).await, 102);
        assert_eq!(repo.get_unlocked(3).await, 103);
    }
    for _ in 0..20 {
        assert_eq!(repo.get(1).await, 101);
    }
    let stats = repo.cache.stats();
    println!("after 6 reads each of a hash key and a list key: {stats:?}");
    assert_eq!(
        key_type(&server, "app:item:2"),
        "string",
        "the hash was replaced"
    );
    assert_eq!(
        key_type(&server, "app:item:3"),
        "string",
        "the list was replaced"
    );
    let get = stats.function("get").unwrap();
    assert_eq!(
        get.hits,
        20 + 5,
        "20 hits of the healthy key, 5 of the repaired one"
    );
    assert_eq!(stats.breaker_opens, 0);
    assert_eq!(stats.breaker_rejections, 0);
    assert_eq!(stats.total.repairs, 2, "one repair per poisoned key");
    assert_eq!(stats.total.errors, 0);
    assert_eq!(
        repo.loads.load(SeqCst),
        3,
        "one load per key: the repaired entries are hits afterwards"
    );
}

/// Whatever is under a lease key that is not a lease of ours — another type, a string without
/// expiry, a string that is not one of our tokens — is replaced by our lease at once: the call
/// runs its body and stores its result, it does not wait out `lock_ttl`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_value_on_a_lease_key_is_replaced_not_waited_on() {
    let server = RedisServer::spawn();
    let repo = Repo::new(cache_on(&server).await, 100, Duration::ZERO);
    server.cmd::<i64>(&["HSET", "{app:item:1}:lock", "field", "value"]);
    server.cmd::<()>(&["SET", "{app:item:2}:lock", "0123456789abcdef"]);
    server.cmd::<()>(&["SET", "{app:item:3}:lock", "not a token", "PX", "60000"]);
    for id in 1..=3 {
        let started = Instant::now();
        assert_eq!(repo.get(id).await, 100 + u64::from(id));
        println!(
            "lease key {id} held foreign data: the call took {:?}",
            started.elapsed()
        );
        let lock = format!("{{app:item:{id}}}:lock");
        assert_eq!(
            key_type(&server, &lock),
            "none",
            "our lease, released after the write"
        );
        assert_eq!(key_type(&server, &format!("app:item:{id}")), "string");
    }
    let get = *repo.cache.stats().function("get").unwrap();
    assert_eq!(get.writes, 3, "each result was stored under our lease");
    assert_eq!(get.repairs, 3);
    assert_eq!(get.lock_waits, 0, "nobody waited on a foreign lease");
    assert_eq!(get.errors, 0);
}

/// Instance A holds the lease with a 3 s load; 20 callers in instance B wait on it. The
/// dataset is lost (`lose`: FLUSHALL, or a restart with nothing persisted) 150 ms later: B
/// notices the lease is gone and loads itself, long before A's load ends; A's late write is
/// rejected.
async fn a_lost_lease_is_noticed(lose: impl FnOnce(&mut RedisServer)) {
    let mut server = RedisServer::spawn();
    let a = Repo::new(cache_on(&server).await, 1000, Duration::from_secs(3));
    let b = Repo::new(cache_on(&server).await, 2000, Duration::from_millis(10));
    tokio::time::sleep(Duration::from_millis(200)).await; // both listeners subscribed
    let holder = {
        let a = a.clone();
        tokio::spawn(async move { a.get(1).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        key_type(&server, "{app:item:1}:lock"),
        "string",
        "A holds the lease"
    );
    let started = Instant::now();
    let barrier = Arc::new(Barrier::new(20));
    let waiters: Vec<_> = (0..20)
        .map(|_| {
            let (b, barrier) = (b.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                b.get(1).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    lose(&mut server);
    for waiter in waiters {
        assert_eq!(
            waiter.await.unwrap(),
            2001,
            "B's callers were served by B's load"
        );
    }
    let waited = started.elapsed();
    println!("B's 20 callers were served {waited:?} after they started");
    assert!(
        !holder.is_finished(),
        "B's callers were served while A's load still ran (not after lock_ttl or A's value)"
    );
    assert_eq!(b.loads.load(SeqCst), 1, "B loaded once for its 20 callers");
    assert_eq!(
        holder.await.unwrap(),
        1001,
        "A's caller gets A's own result"
    );
    let a_stats = *a.cache.stats().function("get").unwrap();
    println!("A: {a_stats:?}");
    assert_eq!(a_stats.writes, 0, "A's late write was not stored");
    assert_eq!(
        a_stats.lease_rejected + a_stats.errors,
        1,
        "A's late write was rejected (or failed on the new connection), and counted"
    );
    let b_stats = *b.cache.stats().function("get").unwrap();
    println!("B: {b_stats:?}");
    assert_eq!(
        b_stats.lock_waits, 20,
        "each of B's callers waited, counted once"
    );
    // Whatever is cached now is B's result, never A's late one.
    if server.get_raw("app:item:1").is_some() {
        assert_eq!(b.get(1).await, 2001);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_notice_a_lease_lost_to_flushall() {
    a_lost_lease_is_noticed(|server| server.cmd::<()>(&["FLUSHALL"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_notice_a_lease_lost_to_a_restart_with_an_empty_dataset() {
    a_lost_lease_is_noticed(|server| server.restart()).await;
}
