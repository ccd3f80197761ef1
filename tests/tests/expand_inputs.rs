//! The inputs of the expansion snapshots (`tests/expand/*.rs`, checked by
//! `cargo test -p cached-macros`) must also compile.
#![allow(dead_code, unreachable_pub)]

#[path = "../expand/cache_aside_global.rs"]
mod cache_aside_global;
#[path = "../expand/cache_aside_method.rs"]
mod cache_aside_method;
#[path = "../expand/cache_aside_policy.rs"]
mod cache_aside_policy;
#[path = "../expand/cache_aside_sliding.rs"]
mod cache_aside_sliding;
#[path = "../expand/cache_put.rs"]
mod cache_put;
#[path = "../expand/cache_put_tags.rs"]
mod cache_put_tags;
#[path = "../expand/invalidates.rs"]
mod invalidates;

#[tokio::test]
async fn expansion_inputs_run_uncached_without_a_global_cache() {
    assert_eq!(cache_aside_global::price("sku", 1).await, Some(1999));
    assert_eq!(cache_aside_policy::report(3).await, "report 3");
    assert_eq!(
        cache_aside_sliding::profile(4).await,
        Some("user 4".to_owned())
    );
}
