//! Invalidate-on-write: what `#[invalidates]` expands into.

use std::future::Future;

use super::{
    shape::Outcome,
    target::{CacheRef, uncached},
};
use crate::{
    cache::Cache,
    policy::Policy,
    stats::{Counters, bump},
};

/// Invalidate-on-write: run `body`; if it succeeded, delete every key and its lease in one
/// round trip (retried once). A failed delete is logged, counted and queued for a background
/// retry; it never turns the write's success into an error.
#[doc(hidden)]
pub async fn invalidate<S, R, F>(
    cache: CacheRef<'_>,
    keys: Vec<String>,
    site: &'static Policy,
    _shape: S,
    body: F,
) -> R
where
    S: Outcome<R>,
    F: Future<Output = R>,
{
    let result = body.await;
    if !S::succeeded(&result) {
        return result;
    }
    let Some(cache) = cache.as_cache() else {
        uncached(site);
        return result;
    };
    let counters = cache.counters(site);
    delete(cache, site, counters, keys).await;
    result
}

/// Deletes every key and its lease in one round trip per hash slot, retried once; what still
/// fails is logged, counted and queued for a background retry (and not served from this cache
/// until it lands). `true` if every key was deleted now.
pub(crate) async fn delete(
    cache: &Cache,
    site: &'static Policy,
    counters: &Counters,
    keys: Vec<String>,
) -> bool {
    // Keys of several hash slots (on a cluster) are deleted per slot: what failed is retried
    // once, then queued, without touching the groups that were deleted.
    let mut left = keys;
    let mut deleted = 0;
    let mut last_error = None;
    for _attempt in 0..2 {
        let outcome = cache.invalidate_keys(&left).await;
        deleted += outcome.deleted;
        if outcome.failed.is_empty() {
            bump(&counters.invalidations);
            tracing::debug!(
                function = site.name,
                keys = ?left,
                deleted,
                outcome = "invalidated"
            );
            return true;
        }
        bump(&counters.errors);
        last_error = outcome.error;
        left = outcome.failed;
    }
    bump(&counters.invalidation_failures);
    cache.defer_invalidation(&left);
    if let Some(error) = last_error {
        tracing::error!(
            function = site.name,
            keys = ?left,
            %error,
            "invalidation failed twice; queued for retry (until it lands this process does not serve these keys; other instances may, for at most the entries' TTL)"
        );
    }
    false
}
