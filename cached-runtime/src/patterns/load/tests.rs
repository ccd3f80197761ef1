use super::*;
use crate::{
    patterns::{
        aside::cache_aside,
        invalidate::invalidate,
        shape::{Plain, ops, probe},
        target::CacheRef,
        value::Share,
    },
    policy::{Policy, Site},
    wire::codec::{CodecKind, Meta},
};

static SITE: Policy = {
    static SITE: Site = Site::new("tests::site");
    Policy::new(&SITE, 60, 0)
};

#[tokio::test]
async fn a_miss_waits_for_the_lease_holder_and_takes_its_value_memory_backend() {
    let cache = Cache::builder()
        .memory()
        .lock_ttl(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    let key = cache.render_key(&["k"], &[]);
    // Someone (a refresh, another flight) holds the lease of an absent key.
    let token = cache.lease(&key).await.unwrap().token.unwrap();
    let waiter = {
        let (cache, key) = (cache.clone(), key.clone());
        tokio::spawn(async move {
            let cache_ref: CacheRef<'_> = &cache;
            cache_aside(
                cache_ref,
                Some(key),
                &SITE,
                ops::<u64, _>(Plain, None),
                async { 2u64 },
            )
            .await
        })
    };
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let bytes = CodecKind::Bincode
        .encode_entry(Some(&1u64), Meta::default())
        .unwrap();
    assert!(
        cache
            .put_leased(&key, &token, bytes.into(), Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert_eq!(
        waiter.await.unwrap(),
        1,
        "the waiter took the holder's value"
    );
    let counts = *cache.stats().function("site").unwrap();
    assert_eq!(
        (counts.lock_waits, counts.wakeups, counts.writes),
        (1, 1, 0)
    );
}

static LOCKED: Policy = {
    static SITE: Site = Site::new("race::locked");
    Policy::new(&SITE, 600, 0)
};
static UNLOCKED: Policy = {
    static SITE: Site = Site::new("race::unlocked");
    Policy::new(&SITE, 600, 0).without_lock()
};
static WRITE: Policy = {
    static SITE: Site = Site::new("race::write");
    Policy::new(&SITE, 0, 0)
};

/// Concurrent readers (cache-aside with a load of varied latency that reads the source at
/// its start) and writers (update the source, then invalidate) over a few keys; after
/// quiescing, the number of keys whose cached entry differs from the source.
async fn race(site: &'static Policy, seed: u64) -> usize {
    use std::{collections::HashMap, sync::Mutex};
    const KEYS: u64 = 3;
    let cache = Cache::builder().memory().build().await.unwrap();
    let source: Arc<Mutex<HashMap<u64, u64>>> = Arc::default();
    let read = move |cache: Cache, source: Arc<Mutex<HashMap<u64, u64>>>, id: u64, delay: u64| async move {
        let cache_ref: CacheRef<'_> = &cache;
        let key = cache.render_key(&["item:", ""], &[&id]);
        cache_aside(
            cache_ref,
            Some(key),
            site,
            ops::<u64, _>(Plain, None),
            async {
                let value = source.lock().unwrap().get(&id).copied().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                value
            },
        )
        .await
    };
    let mut tasks = Vec::new();
    for t in 0..12u64 {
        let (cache, source) = (cache.clone(), source.clone());
        tasks.push(tokio::spawn(async move {
            let mut x = (seed ^ t).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            for step in 0..30u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let id = (x >> 8) % KEYS;
                if (x >> 16).is_multiple_of(3) {
                    let cache_ref: CacheRef<'_> = &cache;
                    let keys = vec![cache.render_key(&["item:", ""], &[&id])];
                    invalidate(cache_ref, keys, &WRITE, Plain, async {
                        source.lock().unwrap().insert(id, t * 1000 + step + 1);
                    })
                    .await;
                } else {
                    read(cache.clone(), source.clone(), id, (x >> 24) % 8).await;
                }
                tokio::time::sleep(Duration::from_millis((x >> 32) % 3)).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut stale = 0;
    for id in 0..KEYS {
        let truth = source.lock().unwrap().get(&id).copied().unwrap_or(0);
        let key = cache.render_key(&["item:", ""], &[&id]);
        if let Some(raw) = cache.get_raw(&key).await.unwrap() {
            let cached = decode_shared(
                &cache,
                &raw,
                &ops::<u64, _>(Plain, None),
                cache.counters(site),
            );
            if cached != Some(truth) {
                stale += 1;
            }
        }
    }
    stale
}

/// The randomized stale-set race: with leases, no entry is ever left stale; without them
/// (`lock = false`) the same workload leaves stale entries — the test can see the race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_randomized_race_leaves_stale_entries_only_without_leases() {
    let mut locked = Vec::new();
    let mut unlocked = Vec::new();
    for seed in 1..=20u64 {
        locked.push(race(&LOCKED, seed).await);
        unlocked.push(race(&UNLOCKED, seed).await);
        if unlocked.iter().sum::<usize>() > 0 && seed >= 3 {
            break;
        }
    }
    println!("stale entries per round (3 keys each): leases {locked:?}, no leases {unlocked:?}");
    assert!(locked.iter().all(|&n| n == 0), "leases: {locked:?}");
    assert!(
        unlocked.iter().sum::<usize>() > 0,
        "without leases the race should leave a stale entry within 20 rounds: {unlocked:?}"
    );
}

static SHARED: Policy = {
    static SITE: Site = Site::new("tests::shared");
    Policy::new(&SITE, 60, 0)
};
static CLONES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A value that counts its clones.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Counted(String);

impl Clone for Counted {
    fn clone(&self) -> Self {
        CLONES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Counted(self.0.clone())
    }
}

/// Waiters of a flight take a clone of the leader's value (a `Clone` type), not a decode
/// of its bytes each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_clone_the_leaders_value() {
    let cache = Cache::builder().memory().build().await.unwrap();
    let key = cache.render_key(&["shared"], &[]);
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (cache, key, barrier) = (cache.clone(), key.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let cache_ref: CacheRef<'_> = &cache;
                let ops = ops::<Counted, _>(Plain, probe::<Counted>().sharing());
                cache_aside(cache_ref, Some(key), &SHARED, ops, async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Counted("v".into())
                })
                .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Counted("v".into()));
    }
    let counts = *cache.stats().function("shared").unwrap();
    assert_eq!((counts.misses, counts.writes), (50, 1));
    // One clone into the flight, one out of it per waiter.
    assert_eq!(
        CLONES.load(std::sync::atomic::Ordering::SeqCst),
        1 + counts.lock_waits as usize
    );
    assert_eq!(counts.lock_waits, 49);
    let not_send: Option<Share<std::rc::Rc<u8>>> = probe::<std::rc::Rc<u8>>().sharing();
    assert!(not_send.is_none(), "not Send: decoded");
}

static SIZES: Policy = {
    static SITE: Site = Site::new("tests::sizes");
    Policy::new(&SITE, 60, 0)
};

/// Every call holds [`cache_aside`]'s future, with [`load`]'s inside it (1000 at once in a
/// stampede): the leader's lease, load and write and the Redis write of `lock = false` are
/// boxed on their own so that neither carries them. 1 KiB: glibc serves blocks up to 1032
/// bytes from its per-thread cache.
#[tokio::test]
async fn the_futures_every_caller_holds_stay_small() {
    let cache = Cache::builder().memory().build().await.unwrap();
    let plain = ops::<u64, _>(Plain, None);
    let call = Call {
        cache: &cache,
        site: &SIZES,
        key: "k",
        tags: &[],
        ops: &plain,
        counters: cache.counters(&SIZES),
    };
    let load = std::mem::size_of_val(&load(call, async { 1u64 }));
    assert!(load <= 1024, "load's future is {load} bytes");
    let aside = std::mem::size_of_val(&cache_aside(
        &cache,
        Some("k".into()),
        &SIZES,
        ops::<u64, _>(Plain, None),
        async { 1u64 },
    ));
    assert!(aside <= 1536, "cache_aside's future is {aside} bytes");
}
