//! Tags and cascade invalidation: `tags = [...]` on `#[cache_aside]` and `#[cache_put]`,
//! `#[invalidates(tags)]` and `Cache::invalidate_tags`, on a Redis of its own, the shared 3-primary cluster (where one
//! tag's entries live in many slots) and the memory backend.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::SeqCst},
    },
    time::Duration,
};

use cached_runtime::{Cache, cache_aside, cache_put, invalidates};
use serde::{Deserialize, Serialize};
use tests::{RedisCluster, RedisServer, TestRedis, backends};
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
    category: u32,
    price: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct DbError;

/// A catalogue: products in categories, counting the loads that reach it. `gate`, when set,
/// holds the next product load, after it read its row, until released (it announces itself on
/// `started`).
#[derive(Default)]
struct Db {
    products: Mutex<HashMap<u64, Product>>,
    loads: AtomicU64,
    gate: Mutex<Option<Arc<Gate>>>,
}

#[derive(Default)]
struct Gate {
    started: Notify,
    release: Notify,
}

struct Catalog {
    cache: Cache,
    db: Arc<Db>,
}

impl Catalog {
    fn new(cache: Cache) -> Self {
        let db = Db::default();
        for (id, category) in [(1, 5), (2, 5), (3, 6)] {
            db.products.lock().unwrap().insert(
                id,
                Product {
                    id,
                    category,
                    price: 100,
                },
            );
        }
        Catalog {
            cache,
            db: Arc::new(db),
        }
    }

    /// Another instance of the service on the same database and Redis.
    fn sharing(&self, cache: Cache) -> Self {
        Catalog {
            cache,
            db: self.db.clone(),
        }
    }

    fn loads(&self) -> u64 {
        self.db.loads.load(SeqCst)
    }

    #[cache_aside(
        key = "product:<id>",
        ttl = 600,
        tags = ["category:<category>", "products"],
        cache = self.cache
    )]
    async fn product(&self, id: u64, category: u32) -> Option<Product> {
        self.db.loads.fetch_add(1, SeqCst);
        let _ = category;
        let row = self.db.products.lock().unwrap().get(&id).cloned();
        let gate = self.db.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            gate.started.notify_one();
            gate.release.notified().await;
        }
        row
    }

    /// The same entry as `product`, read by a function that names no tags.
    #[cache_aside(key = "product:<id>", ttl = 600, cache = self.cache)]
    async fn product_untagged(&self, id: u64) -> Option<Product> {
        self.db.loads.fetch_add(1, SeqCst);
        self.db.products.lock().unwrap().get(&id).cloned()
    }

    #[cache_aside(key = "category:<category>:count", ttl = 600, tags = ["category:<category>"], cache = self.cache)]
    async fn count(&self, category: u32) -> usize {
        self.db.loads.fetch_add(1, SeqCst);
        let products = self.db.products.lock().unwrap();
        products.values().filter(|p| p.category == category).count()
    }

    /// Cascade: the product's own entry and everything tagged with its category.
    #[invalidates(key = "product:<id>", tags = ["category:<category>"], cache = self.cache)]
    async fn set_price(&self, id: u64, category: u32, price: u64) -> Result<(), DbError> {
        let _ = category;
        let mut products = self.db.products.lock().unwrap();
        products.get_mut(&id).ok_or(DbError)?.price = price;
        Ok(())
    }

    /// Write-through of a product, its entry carrying the same tags as `product`'s.
    #[cache_put(
        key = "product:<id>",
        ttl = 600,
        tags = ["category:<category>", "products"],
        cache = self.cache
    )]
    async fn save(&self, id: u64, category: u32, price: u64) -> Option<Product> {
        let product = Product {
            id,
            category,
            price,
        };
        let mut products = self.db.products.lock().unwrap();
        products.insert(id, product.clone());
        Some(product)
    }

    #[invalidates(tags = ["products"], cache = self.cache)]
    async fn reprice_all(&self, price: u64) -> Result<(), DbError> {
        for product in self.db.products.lock().unwrap().values_mut() {
            product.price = price;
        }
        Ok(())
    }

    fn set_in_db(&self, id: u64, price: u64) {
        self.db.products.lock().unwrap().get_mut(&id).unwrap().price = price;
    }

    /// Every product and count read once.
    async fn read_all(&self) -> Vec<u64> {
        let mut prices = Vec::new();
        for (id, category) in [(1, 5), (2, 5), (3, 6)] {
            prices.push(self.product(id, category).await.unwrap().price);
        }
        self.count(5).await;
        self.count(6).await;
        prices
    }
}

/// A second `Cache` on the same Redis (another instance of the service), for the Redis
/// backends.
async fn second_instance(cache: &Cache, redis: &Option<TestRedis>) -> Option<Cache> {
    let redis = redis.as_ref()?;
    let other = redis.cache().await;
    assert_eq!(other.namespace(), cache.namespace());
    Some(other)
}

#[tokio::test]
async fn invalidating_a_tag_voids_exactly_the_entries_that_carry_it() {
    for (cache, redis) in backends().await {
        let name = cache.backend_name();
        let catalog = Catalog::new(cache.clone());
        catalog.read_all().await;
        assert_eq!(catalog.loads(), 5, "{name}");
        catalog.read_all().await;
        assert_eq!(catalog.loads(), 5, "{name}: all hits on the second pass");

        // The database changes behind the cache; the category's tag is invalidated.
        catalog.set_in_db(1, 150);
        assert_eq!(cache.invalidate_tags(&["category:5"]).await.unwrap(), 1);
        let before = catalog.loads();
        let prices = catalog.read_all().await;
        assert_eq!(prices, [150, 100, 100], "{name}");
        assert_eq!(
            catalog.loads() - before,
            3,
            "{name}: products 1 and 2 and category 5's count reloaded, the rest hit"
        );

        // Another instance on the same Redis sees it too, at once.
        if let Some(other) = second_instance(&cache, &redis).await {
            let other = catalog.sharing(other);
            other.read_all().await;
            catalog.set_in_db(3, 170);
            other.cache.invalidate_tags(&["products"]).await.unwrap();
            assert_eq!(catalog.product(3, 6).await.unwrap().price, 170, "{name}");
        }
    }
}

#[tokio::test]
async fn invalidates_cascades_over_keys_and_tags_in_one_call() {
    for (cache, _redis) in backends().await {
        let name = cache.backend_name();
        let catalog = Catalog::new(cache.clone());
        catalog.read_all().await;
        let before = catalog.loads();
        catalog.set_price(2, 5, 120).await.unwrap();
        assert_eq!(catalog.read_all().await, [100, 120, 100], "{name}");
        assert_eq!(
            catalog.loads() - before,
            3,
            "{name}: category 5's entries reloaded"
        );

        let before = catalog.loads();
        catalog.reprice_all(90).await.unwrap();
        assert_eq!(catalog.read_all().await, [90, 90, 90], "{name}");
        assert_eq!(
            catalog.loads() - before,
            3,
            "{name}: every product reloaded, the counts (not tagged `products`) hit"
        );
        let stats = cache.stats();
        assert_eq!(stats.function("set_price").unwrap().invalidations, 1);
        assert_eq!(stats.function("reprice_all").unwrap().invalidations, 1);
    }
}

#[tokio::test]
async fn an_untagged_reader_of_a_tagged_entry_still_honours_its_tags() {
    for (cache, _redis) in backends().await {
        let name = cache.backend_name();
        let catalog = Catalog::new(cache.clone());
        catalog.product(1, 5).await;
        assert_eq!(catalog.product_untagged(1).await.unwrap().price, 100);
        assert_eq!(catalog.loads(), 1, "{name}: the untagged reader hit");
        catalog.set_in_db(1, 130);
        cache.invalidate_tags(&["products"]).await.unwrap();
        assert_eq!(
            catalog.product_untagged(1).await.unwrap().price,
            130,
            "{name}: the entry carried `products`"
        );
        // The untagged reader stored a value without tags; the tagged reader does not take
        // it as carrying its tags, and reloads.
        let before = catalog.loads();
        assert_eq!(catalog.product(1, 5).await.unwrap().price, 130);
        assert_eq!(catalog.loads() - before, 1, "{name}");
        assert_eq!(catalog.product(1, 5).await.unwrap().price, 130);
        assert_eq!(catalog.loads() - before, 1, "{name}: and then hits");
    }
}

/// A tagged put's entry is served to the tagged and the untagged reader of its key, and
/// invalidating one of its tags voids it for both, in this instance and another.
#[tokio::test]
async fn a_tagged_put_is_served_until_one_of_its_tags_is_invalidated() {
    for (cache, redis) in backends().await {
        let name = cache.backend_name();
        let catalog = Catalog::new(cache.clone());
        assert_eq!(catalog.save(1, 5, 140).await.unwrap().price, 140);
        assert_eq!(catalog.product(1, 5).await.unwrap().price, 140, "{name}");
        assert_eq!(catalog.product_untagged(1).await.unwrap().price, 140);
        assert_eq!(
            catalog.loads(),
            0,
            "{name}: both readers hit the put's entry"
        );
        if let Some(other) = second_instance(&cache, &redis).await {
            let other = catalog.sharing(other);
            assert_eq!(other.product(1, 5).await.unwrap().price, 140, "{name}");
            assert_eq!(catalog.loads(), 0, "{name}: another instance hits it too");
        }

        // Changed behind the cache; the entry's category is invalidated.
        catalog.set_in_db(1, 160);
        assert_eq!(cache.invalidate_tags(&["category:5"]).await.unwrap(), 1);
        assert_eq!(catalog.product(1, 5).await.unwrap().price, 160, "{name}");
        assert_eq!(catalog.loads(), 1, "{name}: reloaded");

        // Put again; the untagged reader honours the put entry's tags.
        catalog.save(1, 5, 170).await;
        assert_eq!(catalog.product_untagged(1).await.unwrap().price, 170);
        assert_eq!(catalog.loads(), 1, "{name}: a hit");
        catalog.reprice_all(180).await.unwrap();
        assert_eq!(
            catalog.product_untagged(1).await.unwrap().price,
            180,
            "{name}: the put's entry carried `products`"
        );
        assert_eq!(catalog.loads(), 2, "{name}");

        let stats = cache.stats();
        let save = stats.function("save").unwrap();
        assert_eq!((save.writes, save.put_failures), (2, 0), "{name}: {save:?}");
    }
}

/// A put whose body runs while one of its tags is invalidated (its write may have missed the
/// change the invalidation is for) stores an entry that is never served.
#[tokio::test]
async fn a_put_that_raced_a_tag_invalidation_is_never_served() {
    struct Racing {
        cache: Cache,
        loads: AtomicU64,
    }
    impl Racing {
        #[cache_put(key = "row:<id>", ttl = 600, tags = ["group:<group>"], cache = self.cache)]
        async fn save(&self, id: u64, group: u32, value: u64) -> u64 {
            let _ = id;
            // Another writer changes the group and invalidates it while this write runs.
            self.cache
                .invalidate_tags(&[&format!("group:{group}")])
                .await
                .unwrap();
            value
        }

        #[cache_aside(key = "row:<id>", ttl = 600, tags = ["group:<group>"], cache = self.cache)]
        async fn get(&self, id: u64, group: u32) -> u64 {
            let _ = (id, group);
            self.loads.fetch_add(1, SeqCst);
            0
        }
    }
    for (cache, _redis) in backends().await {
        let name = cache.backend_name();
        let racing = Racing {
            cache: cache.clone(),
            loads: AtomicU64::new(0),
        };
        assert_eq!(racing.save(1, 2, 42).await, 42);
        assert_eq!(racing.get(1, 2).await, 0, "{name}: the raced entry is void");
        assert_eq!(racing.loads.load(SeqCst), 1, "{name}");
    }
}

/// A load that began before a tag invalidation (it read the database's old row) finishes
/// after it: its value is never served, in this instance or another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_that_began_before_a_tag_invalidation_is_never_served() {
    for (cache, redis) in backends().await {
        let name = cache.backend_name();
        let catalog = Arc::new(Catalog::new(cache.clone()));
        let gate = Arc::new(Gate::default());
        *catalog.db.gate.lock().unwrap() = Some(gate.clone());
        let slow = {
            let catalog = catalog.clone();
            tokio::spawn(async move { catalog.product(1, 5).await })
        };
        // The load has read the row (price 100) and is still in its body when the row is
        // written and its category's tag invalidated.
        gate.started.notified().await;
        catalog.set_in_db(1, 999);
        cache.invalidate_tags(&["category:5"]).await.unwrap();
        gate.release.notify_one();
        let served = slow.await.unwrap().unwrap();
        assert_eq!(
            served.price, 100,
            "{name}: the racing call answers what it read"
        );
        assert_eq!(
            catalog.product(1, 5).await.unwrap().price,
            999,
            "{name}: the raced value is not served"
        );
        if let Some(other) = second_instance(&cache, &redis).await {
            let other = catalog.sharing(other);
            assert_eq!(other.product(1, 5).await.unwrap().price, 999, "{name}");
        }
    }
}

/// A tag per row (`user:<id>`) does not leak: tag keys expire with the entries that carry
/// them.
#[tokio::test]
async fn tag_keys_expire_with_their_entries() {
    struct Users {
        cache: Cache,
    }
    impl Users {
        #[cache_aside(key = "user:<id>", ttl = 1, tags = ["user:<id>", "users"], cache = self.cache)]
        async fn user(&self, id: u64) -> u64 {
            id * 2
        }
    }
    for redis in [TestRedis::new(), TestRedis::new_cluster()] {
        let users = Users {
            cache: redis.cache().await,
        };
        for id in 0..1000 {
            assert_eq!(users.user(id).await, id * 2);
        }
        let pattern = format!("*{}:*", redis.namespace());
        let ttl: i64 = redis.cmd(&["PTTL", &format!("{{{}:user:999}}:tag", redis.namespace())]);
        assert!(
            ttl > 0 && ttl <= 1000,
            "the tag lives as long as its entry: {ttl} ms"
        );
        let shared: i64 = redis.cmd(&["PTTL", &format!("{{{}:users}}:tag", redis.namespace())]);
        assert!(
            shared > 0 && shared <= 1000,
            "and a shared tag as its last entry: {shared} ms"
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let left: Vec<String> = redis.cmd(&["KEYS", &pattern]);
        println!(
            "keys left 1.5 s after 1000 entries with ttl = 1 and their tags: {}",
            left.len()
        );
        assert!(left.is_empty(), "left: {:?}", &left[..left.len().min(5)]);
    }
}

/// Invalidating a tag carried by many entries is one script per slot of the tag: no
/// `KEYS`/`SCAN`, and nothing that grows with the entries.
#[tokio::test]
async fn invalidating_a_tag_costs_the_same_for_one_entry_or_a_thousand() {
    let redis = TestRedis::new();
    let cache = redis.cache().await;
    let catalog = Catalog::new(cache.clone());
    for id in 10..1010 {
        catalog.db.products.lock().unwrap().insert(
            id,
            Product {
                id,
                category: 7,
                price: 1,
            },
        );
        catalog.product(id, 7).await;
    }
    redis.cmd::<()>(&["CONFIG", "RESETSTAT"]);
    assert_eq!(cache.invalidate_tags(&["category:7"]).await.unwrap(), 1);
    let info: String = redis.cmd(&["INFO", "commandstats"]);
    let calls: Vec<&str> = info
        .lines()
        .filter(|l| l.starts_with("cmdstat_"))
        .map(|l| l.split_once(":calls=").map_or(l, |(name, _)| name))
        .collect();
    println!("commands of one tag invalidation over 1000 entries: {calls:?}");
    assert!(
        calls
            .iter()
            .all(|c| !c.contains("scan") && !c.contains("keys")),
        "{calls:?}"
    );
    let evals: u64 = info
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(
        evals <= 2,
        "one script (EVALSHA, or EVAL the first time): {info}"
    );
    let before = catalog.loads();
    catalog.product(500, 7).await;
    assert_eq!(catalog.loads() - before, 1, "and the entries are void");
}

/// Tag invalidations that fail while Redis does not answer are queued and applied once it
/// does; the call that made them still succeeds.
#[tokio::test]
async fn tag_invalidations_that_fail_are_retried_on_recovery() {
    let redis = TestRedis::new();
    let Some(server) = redis.server() else { return };
    let cache = redis
        .cache_builder()
        .op_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let catalog = Catalog::new(cache.clone());
    catalog.read_all().await;
    server.pause();
    catalog.reprice_all(50).await.unwrap();
    let stats = cache.stats();
    assert_eq!(
        stats.function("reprice_all").unwrap().invalidation_failures,
        1
    );
    assert!(stats.invalidations_pending >= 1);
    server.resume();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cache.stats().invalidations_pending > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "not applied on recovery"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await; // the breaker's cooldown
    assert_eq!(catalog.read_all().await, [50, 50, 50]);
}

/// A Redis that a test can freeze: the whole server, or the cluster node that serves the
/// `products` tag's key.
trait Freezable {
    fn freeze(&self);
    fn thaw(&self);
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    fn set(&self, key: &str, value: &[u8]);
}

impl Freezable for RedisServer {
    fn freeze(&self) {
        self.pause();
    }
    fn thaw(&self) {
        self.resume();
    }
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.get_raw(key)
    }
    fn set(&self, key: &str, value: &[u8]) {
        self.set_raw(key, value);
    }
}

/// A private cluster (pausing a node of the shared one would fail other tests) and the node
/// to freeze.
struct FrozenNode {
    cluster: RedisCluster,
    port: u16,
}

impl Freezable for FrozenNode {
    fn freeze(&self) {
        self.cluster.pause_node(self.port);
    }
    fn thaw(&self) {
        self.cluster.resume_node(self.port);
    }
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.cluster.get_raw(key)
    }
    fn set(&self, key: &str, value: &[u8]) {
        self.cluster.set_raw(key, value);
    }
}

/// While a tag invalidation that failed is queued, this process serves no entry that carries
/// the tag, to a reader that names it or one that does not, even when Redis still holds the
/// entry and the tag's old version: Redis is frozen during the invalidation, then thawed and
/// the tag's old version put back (as if the invalidation had been lost). A tagged put whose
/// versions cannot be read meanwhile deletes its key instead. Once the queue lands, entries
/// are served again. (The cache's breaker opens after two failed round trips and stays open
/// for 3 s, so that the queue cannot land before the old version is back.) The memory backend
/// cannot fail an invalidation, so nothing is ever queued there.
async fn queued_tag_invalidation_blocks_serving(cache: Cache, redis: &impl Freezable, name: &str) {
    let catalog = Catalog::new(cache.clone());
    assert_eq!(catalog.product(1, 5).await.unwrap().price, 100);
    assert_eq!(catalog.product(2, 5).await.unwrap().price, 100);
    let tag_key = format!("{{{}:products}}:tag", cache.namespace());
    let version = redis.get(&tag_key).expect("the tag has a version");

    redis.freeze();
    let started = std::time::Instant::now();
    catalog.reprice_all(150).await.unwrap();
    assert_eq!(catalog.save(2, 5, 300).await.unwrap().price, 300);
    let took = started.elapsed();
    redis.thaw();
    assert!(
        took < Duration::from_secs(2),
        "{name}: the writes took {took:?}"
    );
    let stats = cache.stats();
    let reprice = stats.function("reprice_all").unwrap();
    assert_eq!(reprice.invalidation_failures, 1, "{name}: {reprice:?}");
    let save = stats.function("save").unwrap();
    assert_eq!(
        (save.put_failures, save.writes),
        (1, 0),
        "{name}: the put's versions were not read: {save:?}"
    );
    // The tag's invalidation, and the put's delete if its key is on the frozen node too.
    assert!(stats.invalidations_pending >= 1, "{name}: {stats:?}");
    // What was sent during the freeze runs now; then the tag's old version is put back.
    tokio::time::sleep(Duration::from_millis(200)).await;
    redis.set(&tag_key, &version);

    let until = std::time::Instant::now() + Duration::from_secs(10);
    let mut reads = 0;
    let before = catalog.loads();
    loop {
        reads += 1;
        let tagged = catalog.product(1, 5).await.unwrap().price;
        let untagged = catalog.product_untagged(1).await.unwrap().price;
        let put = catalog.product(2, 5).await.unwrap().price;
        assert_eq!(
            (tagged, untagged, put),
            (150, 150, 300),
            "{name}: read {reads}"
        );
        // Counted once it landed (a retry in flight has taken it out of the queue already).
        let stats = cache.stats();
        if stats.invalidations_recovered == stats.invalidations_deferred
            || std::time::Instant::now() > until
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = cache.stats();
    assert_eq!(
        (stats.invalidations_pending, stats.invalidations_recovered),
        (0, stats.invalidations_deferred),
        "{name}: {stats:?}"
    );
    println!(
        "{name}: {reads} rounds of reads before the queue landed, {} ran a body",
        catalog.loads() - before
    );
    // Landed: the next reads load and store; then they hit.
    assert_eq!(catalog.product(1, 5).await.unwrap().price, 150, "{name}");
    assert_eq!(catalog.product(2, 5).await.unwrap().price, 300, "{name}");
    let before = catalog.loads();
    assert_eq!(catalog.product(1, 5).await.unwrap().price, 150, "{name}");
    assert_eq!(catalog.product_untagged(1).await.unwrap().price, 150);
    assert_eq!(catalog.product(2, 5).await.unwrap().price, 300, "{name}");
    assert_eq!(catalog.loads(), before, "{name}: hits again");
}

/// A cache whose round trips give up after 100 ms and whose breaker opens after two failures
/// for 3 s.
fn faulty(builder: cached_runtime::CacheBuilder) -> cached_runtime::CacheBuilder {
    builder
        .op_timeout(Duration::from_millis(100))
        .circuit_breaker(2, Duration::from_secs(3))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_tag_invalidation_blocks_serving_its_entries_on_redis() {
    let server = RedisServer::spawn();
    let cache = faulty(Cache::builder().redis(server.url()).namespace("tagq"))
        .build()
        .await
        .unwrap();
    cache.ping().await.unwrap();
    queued_tag_invalidation_blocks_serving(cache, &server, "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_tag_invalidation_blocks_serving_its_entries_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let namespace = "tagqc";
    let cache = faulty(
        Cache::builder()
            .redis_cluster(cluster.urls())
            .namespace(namespace),
    )
    .build()
    .await
    .unwrap();
    cache.ping().await.unwrap();
    let port = cluster.primary_for_key(&format!("{{{namespace}:products}}:tag"));
    let node = FrozenNode { cluster, port };
    queued_tag_invalidation_blocks_serving(cache, &node, "cluster").await;
}
