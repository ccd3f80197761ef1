//! The cache on a local Redis Cluster of 3 primaries (shared by the tests of this file that run
//! at the same time, each in a namespace of its own): keys on every shard, invalidations and
//! deletes across hash slots, stampede protection across instances woken through the cluster's
//! pub/sub, the lease closing the stale-set race, and foreign data repaired.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::SeqCst},
    },
    time::{Duration, Instant},
};

use cached_runtime::{Cache, cache_aside, invalidates};
use tests::{RedisCluster, TestRedis};
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
    /// Loads run by this instance.
    loads: AtomicU64,
}

impl Repo {
    fn new(cache: Cache, source: &Arc<Source>, load_time: Duration) -> Arc<Repo> {
        Arc::new(Repo {
            cache,
            source: source.clone(),
            load_time,
            loads: AtomicU64::new(0),
        })
    }

    #[cache_aside(key = "item:<id>", ttl = 60, cache = self.cache)]
    async fn get(&self, id: u32) -> Option<u64> {
        self.source.loads.fetch_add(1, SeqCst);
        self.loads.fetch_add(1, SeqCst);
        let value = self.source.values.lock().unwrap().get(&id).copied();
        tokio::time::sleep(self.load_time).await;
        value
    }

    #[cache_aside(key = "item:<id>", ttl = 60, lock = false, cache = self.cache)]
    async fn get_unlocked(&self, id: u32) -> Option<u64> {
        self.source.loads.fetch_add(1, SeqCst);
        self.loads.fetch_add(1, SeqCst);
        let value = self.source.values.lock().unwrap().get(&id).copied();
        tokio::time::sleep(self.load_time).await;
        value
    }

    #[invalidates(key = "item:<id>", cache = self.cache)]
    async fn set(&self, id: u32, value: u64) {
        self.source.values.lock().unwrap().insert(id, value);
    }
}

/// The slot ranges of each primary: `(first slot, last slot, port)`.
fn slot_map(cluster: &RedisCluster) -> Vec<(u16, u16, u16)> {
    cluster
        .nodes()
        .into_iter()
        .flat_map(|node| {
            node.slots
                .iter()
                .map(|&(start, end)| (start, end, node.port))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The primary serving `key` in `map`.
fn owner(map: &[(u16, u16, u16)], key: &str) -> u16 {
    let slot = tests::key_slot(key.as_bytes());
    map.iter()
        .find(|&&(start, end, _)| (start..=end).contains(&slot))
        .map(|&(_, _, port)| port)
        .unwrap_or_else(|| panic!("no primary serves slot {slot} of {key}"))
}

/// A cache on the cluster with every node as a seed, the list rotated by `rotate` (the event
/// listener subscribes through the first seed: instances rotated differently listen on
/// different nodes).
async fn cluster_cache(redis: &TestRedis, rotate: usize, lock_ttl: Duration) -> Cache {
    let mut seeds = redis.cluster().expect("a cluster").urls();
    let len = seeds.len();
    seeds.rotate_left(rotate % len);
    let cache = Cache::builder()
        .redis_cluster(seeds)
        .namespace(redis.namespace())
        .lock_ttl(lock_ttl)
        .build()
        .await
        .expect("valid cluster configuration");
    cache.ping().await.expect("the cluster answers");
    cache
}

/// Waits until `count` subscriptions to `channel` exist over the nodes of the cluster.
async fn wait_for_subscribers(cluster: &RedisCluster, channel: &str, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let subscribed: u64 = cluster
            .ports()
            .into_iter()
            .map(|port| cluster.cmd_on::<Vec<(String, u64)>>(port, &["PUBSUB", "NUMSUB", channel]))
            .map(|reply| reply[0].1)
            .sum();
        if subscribed >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {subscribed} of {count} subscriptions to {channel} after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_keys_over_every_primary_all_hit_on_the_second_pass() {
    let redis = TestRedis::new_cluster();
    let cluster = redis.cluster().unwrap();
    let source = Arc::new(Source::default());
    for id in 0..60 {
        source.values.lock().unwrap().insert(id, u64::from(id) * 10);
    }
    let repo = Repo::new(redis.cache().await, &source, Duration::ZERO);
    let map = slot_map(cluster);
    let mut per_primary: BTreeMap<u16, usize> = BTreeMap::new();
    for id in 0..60 {
        let key = format!("{}:item:{id}", redis.namespace());
        *per_primary.entry(owner(&map, &key)).or_default() += 1;
    }
    println!("60 keys per primary: {per_primary:?}");
    let primaries: HashSet<u16> = cluster.primaries().into_iter().collect();
    assert_eq!(primaries.len(), 3);
    assert_eq!(
        per_primary.keys().copied().collect::<HashSet<_>>(),
        primaries,
        "the keys land on all 3 primaries"
    );

    for id in 0..60 {
        assert_eq!(repo.get(id).await, Some(u64::from(id) * 10));
    }
    assert_eq!(source.loads.load(SeqCst), 60);
    for id in 0..60 {
        let key = format!("{}:item:{id}", redis.namespace());
        let primary = cluster.primary_for_key(&key);
        assert_eq!(
            cluster.cmd_on::<i64>(primary, &["EXISTS", &key]),
            1,
            "{key} is stored on its primary {primary}"
        );
    }
    for id in 0..60 {
        assert_eq!(repo.get(id).await, Some(u64::from(id) * 10));
    }
    let stats = repo.cache.stats();
    let get = *stats.function("get").unwrap();
    println!("two passes over 60 keys: {get:?}");
    assert_eq!(source.loads.load(SeqCst), 60, "the second pass ran no body");
    assert_eq!((get.hits, get.misses, get.writes), (60, 60, 60));
    assert_eq!(get.errors, 0);
    assert_eq!(stats.breaker_opens, 0);
    assert_eq!(stats.breaker_rejections, 0);
    assert!(!stats.breaker_open);
}

/// A profile, its posts and its friends: three entries of one user, in three hash slots.
struct Profiles {
    cache: Cache,
    /// Bumped by every update; what the loads return.
    version: AtomicU64,
    /// Milliseconds each load takes.
    load_ms: AtomicU64,
    loads: AtomicU64,
}

impl Profiles {
    async fn load(&self) -> u64 {
        self.loads.fetch_add(1, SeqCst);
        let version = self.version.load(SeqCst);
        tokio::time::sleep(Duration::from_millis(self.load_ms.load(SeqCst))).await;
        version
    }

    #[cache_aside(key = "profile:<id>", ttl = 60, cache = self.cache)]
    async fn profile(&self, id: u64) -> u64 {
        let _ = id;
        self.load().await
    }

    #[cache_aside(key = "posts:<id>", ttl = 60, cache = self.cache)]
    async fn posts(&self, id: u64) -> u64 {
        let _ = id;
        self.load().await
    }

    #[cache_aside(key = "friends:<id>", ttl = 60, cache = self.cache)]
    async fn friends(&self, id: u64) -> u64 {
        let _ = id;
        self.load().await
    }

    #[invalidates(keys = ["profile:<id>", "posts:<id>", "friends:<id>"], cache = self.cache)]
    async fn update(&self, id: u64) {
        let _ = id;
        self.version.fetch_add(1, SeqCst);
    }

    async fn all(self: &Arc<Self>, id: u64) -> [u64; 3] {
        [
            self.profile(id).await,
            self.posts(id).await,
            self.friends(id).await,
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_and_a_delete_across_slots_remove_every_key_and_lease() {
    let redis = TestRedis::new_cluster();
    let cluster = redis.cluster().unwrap();
    let ns = redis.namespace();
    let map = slot_map(cluster);
    let keys_of = |id: u64| ["profile", "posts", "friends"].map(|what| format!("{ns}:{what}:{id}"));
    // A user whose three entries live on three different primaries.
    let id = (0..1000)
        .find(|&id| {
            let owners: HashSet<u16> = keys_of(id).iter().map(|k| owner(&map, k)).collect();
            owners.len() == 3
        })
        .expect("some id spreads over the 3 primaries");
    let keys = keys_of(id);
    let slots: HashSet<u16> = keys.iter().map(|k| cluster.slot_of(k)).collect();
    assert_eq!(slots.len(), 3, "{keys:?} in three slots");
    let exists = |key: &str| redis.cmd::<i64>(&["EXISTS", key]);
    let leases = keys.clone().map(|k| format!("{{{k}}}:lock"));

    let profiles = Arc::new(Profiles {
        cache: redis.cache().await,
        version: AtomicU64::new(1),
        load_ms: AtomicU64::new(0),
        loads: AtomicU64::new(0),
    });
    assert_eq!(profiles.all(id).await, [1, 1, 1]);
    for key in &keys {
        assert_eq!(exists(key), 1, "{key} cached");
    }

    // One invalidation deletes the three entries.
    profiles.update(id).await;
    for key in &keys {
        assert_eq!(exists(key), 0, "{key} still cached after the update");
    }
    assert_eq!(
        profiles.all(id).await,
        [2, 2, 2],
        "reloaded after the update"
    );
    assert_eq!(profiles.loads.load(SeqCst), 6);

    // Loads in flight hold the three leases; an update deletes them too, and the loads'
    // results (read before the update) are not stored.
    profiles.update(id).await;
    profiles.load_ms.store(400, SeqCst);
    let loading = {
        let profiles = profiles.clone();
        tokio::spawn(async move { profiles.all_at_once(id).await })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while leases.iter().any(|lease| exists(lease) == 0) {
        assert!(
            Instant::now() < deadline,
            "the three loads hold their leases"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    profiles.update(id).await;
    for key in keys.iter().chain(&leases) {
        assert_eq!(exists(key), 0, "{key} left after the update");
    }
    assert_eq!(
        loading.await.unwrap(),
        [3, 3, 3],
        "the loads return what they read"
    );
    for key in &keys {
        assert_eq!(
            exists(key),
            0,
            "{key}: a load's result stored after the update"
        );
    }
    let stats = profiles.cache.stats();
    let rejected: u64 = ["profile", "posts", "friends"]
        .iter()
        .map(|f| stats.function(f).unwrap().lease_rejected)
        .sum();
    assert_eq!(rejected, 3, "the three writes were refused: {stats:?}");
    profiles.load_ms.store(0, SeqCst);
    assert_eq!(profiles.all(id).await, [4, 4, 4]);

    // `Cache::delete` across slots: the three entries and one that does not exist.
    let relative = keys.clone().map(|k| k[ns.len() + 1..].to_owned());
    let mut doomed: Vec<&str> = relative.iter().map(String::as_str).collect();
    doomed.push("absent:1");
    assert_eq!(profiles.cache.delete(&doomed).await.unwrap(), 3);
    for key in &keys {
        assert_eq!(exists(key), 0, "{key} survived Cache::delete");
    }
    let stats = profiles.cache.stats();
    println!("after the updates and the delete: {:?}", stats.total);
    assert_eq!(stats.function("update").unwrap().invalidations, 3);
    assert_eq!(stats.total.errors, 0);
    assert_eq!(stats.total.invalidation_failures, 0);
    assert_eq!(stats.breaker_opens, 0);
}

impl Profiles {
    /// The three loads concurrently.
    async fn all_at_once(self: &Arc<Self>, id: u64) -> [u64; 3] {
        let (a, b, c) = tokio::join!(self.profile(id), self.posts(id), self.friends(id));
        [a, b, c]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_times_fifty_callers_load_once_woken_by_the_event() {
    let redis = TestRedis::new_cluster();
    let cluster = redis.cluster().unwrap();
    let source = Arc::new(Source::default());
    // A key whose slot is not on the node the first instance listens on: its fill event
    // reaches that instance through the cluster bus.
    let first_node = cluster.ports()[0];
    let id = (0..)
        .find(|id| {
            cluster.primary_for_key(&format!("{}:item:{id}", redis.namespace())) != first_node
        })
        .unwrap();
    source.values.lock().unwrap().insert(id, 9);
    let lock_ttl = Duration::from_secs(10);
    let mut repos = Vec::new();
    for i in 0..4 {
        let cache = cluster_cache(&redis, i, lock_ttl).await;
        repos.push(Repo::new(cache, &source, Duration::from_millis(200)));
    }
    let channel = format!("{}:__events", redis.namespace());
    wait_for_subscribers(cluster, &channel, 4).await;

    let barrier = Arc::new(Barrier::new(200));
    let mut calls = Vec::new();
    for repo in &repos {
        for _ in 0..50 {
            let (repo, barrier) = (repo.clone(), barrier.clone());
            calls.push(tokio::spawn(async move {
                barrier.wait().await;
                let started = Instant::now();
                let value = repo.get(id).await;
                (value, started.elapsed())
            }));
        }
    }
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for call in calls {
        let (value, took) = call.await.unwrap();
        assert_eq!(value, Some(9));
        slowest = slowest.max(took);
    }
    let wall = started.elapsed();
    let loads = source.loads.load(SeqCst);
    let per_instance: Vec<(u64, u64, u64)> = repos
        .iter()
        .map(|r| {
            let counts = *r.cache.stats().function("get").unwrap();
            (r.loads.load(SeqCst), counts.lock_waits, counts.wakeups)
        })
        .collect();
    println!(
        "4 instances x 50 callers on a cluster (body 200 ms, lock_ttl 10 s): {loads} load(s), \
         all served in {wall:?} (slowest call {slowest:?}); (loads, lock waits, wake-ups) per \
         instance: {per_instance:?}"
    );
    assert_eq!(loads, 1, "one load across the four instances");
    assert!(
        wall < Duration::from_secs(3),
        "the waiters were woken long before lock_ttl: {wall:?}"
    );
    for (i, &(loads, _, wakeups)) in per_instance.iter().enumerate() {
        if loads == 0 {
            assert!(
                wakeups >= 1,
                "instance {i} waited on the lease and was woken by the fill event: {per_instance:?}"
            );
        }
    }
    for repo in &repos {
        let stats = repo.cache.stats();
        assert_eq!(stats.total.errors, 0, "{stats:?}");
        assert_eq!(stats.breaker_opens, 0);
    }
}

/// A load that began before a write must not store its stale result after the write's
/// invalidation. `lock = false` shows the race is real: without the lease, v1 is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stale_set_race_is_closed_by_the_lease() {
    // Both namespaces taken first: the cluster stays up between the two cases.
    let namespaces = [TestRedis::new_cluster(), TestRedis::new_cluster()];
    for (locked, redis) in [true, false].into_iter().zip(&namespaces) {
        let source = Arc::new(Source::default());
        source.values.lock().unwrap().insert(1, 1);
        let repo = Repo::new(redis.cache().await, &source, Duration::from_millis(300));
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

/// Many readers and writers in three instances over keys on every shard, against a source of
/// truth with varied latency; after quiescing, every cached entry must equal the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_readers_and_writers_leave_no_stale_entry() {
    const KEYS: u32 = 6;
    let redis = TestRedis::new_cluster();
    let cluster = redis.cluster().unwrap();
    let map = slot_map(cluster);
    let owners: HashSet<u16> = (0..KEYS)
        .map(|id| owner(&map, &format!("{}:item:{id}", redis.namespace())))
        .collect();
    println!("{KEYS} keys over {} primaries", owners.len());
    assert!(owners.len() >= 2, "the keys span shards");
    let source = Arc::new(Source::default());
    for id in 0..KEYS {
        source.values.lock().unwrap().insert(id, 0);
    }
    let mut repos = Vec::new();
    for i in 0..3 {
        let cache = cluster_cache(&redis, i, Duration::from_secs(5)).await;
        repos.push(Repo::new(
            cache,
            &source,
            Duration::from_millis(5 + 7 * i as u64),
        ));
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
                let id = (x % u64::from(KEYS)) as u32;
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
    for id in 0..KEYS {
        let truth = source.values.lock().unwrap().get(&id).copied();
        let loads = source.loads.load(SeqCst);
        let cached = repos[0].get(id).await;
        let was_hit = source.loads.load(SeqCst) == loads;
        if was_hit && cached != truth {
            stale += 1;
        }
    }
    let errors: u64 = repos.iter().map(|r| r.cache.stats().total.errors).sum();
    println!("randomized race on a cluster: {stale} stale entries, {errors} errors");
    assert_eq!(stale, 0);
    assert_eq!(errors, 0);
}

/// A hash under one entry key and a list under another make those keys' calls run their
/// bodies once, and then they are string entries again; foreign data under a lease key is
/// replaced, not waited on. No breaker opens, and a healthy key keeps all its hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_data_under_entry_and_lease_keys_is_repaired_without_the_breaker() {
    let redis = TestRedis::new_cluster();
    let ns = redis.namespace();
    let source = Arc::new(Source::default());
    for id in 1..=6 {
        source
            .values
            .lock()
            .unwrap()
            .insert(id, 100 + u64::from(id));
    }
    let repo = Repo::new(redis.cache().await, &source, Duration::ZERO);
    assert_eq!(repo.get(1).await, Some(101), "the healthy key, now cached");
    let _: i64 = redis.cmd(&["HSET", &format!("{ns}:item:2"), "field", "value"]);
    let _: i64 = redis.cmd(&["RPUSH", &format!("{ns}:item:3"), "a", "b"]);
    let _: i64 = redis.cmd(&["HSET", &format!("{{{ns}:item:4}}:lock"), "field", "value"]);
    redis.cmd::<()>(&["SET", &format!("{{{ns}:item:5}}:lock"), "0123456789abcdef"]);
    redis.cmd::<()>(&[
        "SET",
        &format!("{{{ns}:item:6}}:lock"),
        "not a token",
        "PX",
        "60000",
    ]);
    for _ in 0..6 {
        assert_eq!(repo.get(2).await, Some(102));
        assert_eq!(repo.get_unlocked(3).await, Some(103));
    }
    for id in 4..=6 {
        let started = Instant::now();
        assert_eq!(repo.get(id).await, Some(100 + u64::from(id)));
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "a foreign lease on item:{id} was waited on: {took:?}"
        );
    }
    for _ in 0..20 {
        assert_eq!(repo.get(1).await, Some(101));
    }
    for id in 2..=6 {
        let key = format!("{ns}:item:{id}");
        assert_eq!(redis.cmd::<String>(&["TYPE", &key]), "string", "{key}");
        let lease = format!("{{{key}}}:lock");
        assert_eq!(redis.cmd::<String>(&["TYPE", &lease]), "none", "{lease}");
    }
    let stats = repo.cache.stats();
    println!("after foreign data under 5 keys: {stats:?}");
    let get = *stats.function("get").unwrap();
    assert_eq!(
        get.hits,
        20 + 5,
        "20 hits of the healthy key, 5 of the repaired hash"
    );
    assert_eq!(stats.total.repairs, 5, "one repair per poisoned key");
    assert_eq!(get.lock_waits, 0, "nobody waited on a foreign lease");
    assert_eq!(stats.total.errors, 0);
    assert_eq!(stats.breaker_opens, 0);
    assert_eq!(stats.breaker_rejections, 0);
    assert_eq!(
        source.loads.load(SeqCst),
        6,
        "one load per key: the repaired entries are hits afterwards"
    );
}
