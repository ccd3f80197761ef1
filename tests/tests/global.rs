//! The process-wide cache: annotations without `cache = ...` use it once it is set, and run
//! uncached before. (A test binary of its own: the global cache is set once per process.)

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use cached_runtime::{Cache, cache_aside, invalidates};
use tests::TestRedis;

static LOADS: AtomicU64 = AtomicU64::new(0);

#[cache_aside(key = "greeting:<lang>", ttl = 60)]
async fn greeting(lang: &str) -> Option<String> {
    LOADS.fetch_add(1, SeqCst);
    match lang {
        "en" => Some("hello".into()),
        "fr" => Some("bonjour".into()),
        _ => None,
    }
}

#[invalidates(key = "greeting:<lang>")]
async fn forget(lang: &str) {
    let _ = lang;
}

#[tokio::test]
async fn global_cache_is_used_once_set() {
    // Not set yet: uncached, correct.
    assert_eq!(greeting("en").await.as_deref(), Some("hello"));
    assert_eq!(greeting("en").await.as_deref(), Some("hello"));
    assert_eq!(LOADS.load(SeqCst), 2);
    forget("en").await; // nothing to invalidate, no panic

    let redis = TestRedis::new();
    let cache = redis.cache().await;
    cached_runtime::set_global(cache.clone()).unwrap();
    let again = Cache::builder().build().await.unwrap();
    let err = cached_runtime::set_global(again).unwrap_err();
    assert_eq!(err.kind(), cached_runtime::ErrorKind::GlobalAlreadySet);

    assert_eq!(greeting("fr").await.as_deref(), Some("bonjour"));
    assert_eq!(greeting("fr").await.as_deref(), Some("bonjour"));
    assert_eq!(greeting("xx").await, None);
    assert_eq!(greeting("xx").await, None);
    assert_eq!(LOADS.load(SeqCst), 4);
    let key = format!("{}:greeting:fr", redis.namespace());
    let exists: i64 = redis.cmd(&["EXISTS", &key]);
    assert_eq!(exists, 1);
    forget("fr").await;
    let exists: i64 = redis.cmd(&["EXISTS", &key]);
    assert_eq!(exists, 0);
    assert_eq!(greeting("fr").await.as_deref(), Some("bonjour"));
    assert_eq!(LOADS.load(SeqCst), 5);
    let stats = cache.stats();
    assert_eq!(stats.function("greeting").unwrap().null_hits, 1);
    assert_eq!(stats.function("forget").unwrap().invalidations, 1);
}
