//! Invalidate-on-write: what `#[invalidates]` expands into.

use std::future::Future;

use super::{
    shape::Outcome,
    target::{CacheRef, uncached},
};
use crate::{
    cache::{Cache, Invalidated},
    error::{Error, ErrorKind},
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
    site: &Policy,
    shape: S,
    body: F,
) -> R
where
    S: Outcome<R>,
    F: Future<Output = R>,
{
    invalidate_tagged(cache, keys, Vec::new(), site, shape, body).await
}

/// [`invalidate`] that also invalidates `tags` (full names): every entry that carries one of
/// them stops being served, in every instance. Keys and tags are sent at once.
#[doc(hidden)]
pub async fn invalidate_tagged<S, R, F>(
    cache: CacheRef<'_>,
    keys: Vec<String>,
    tags: Vec<String>,
    site: &Policy,
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
    // A failure is logged, counted and queued: the write's result stands.
    let _ = delete(cache, site, counters, keys, tags).await;
    result
}

/// Deletes every key and its lease and invalidates every tag, in one round trip per hash slot,
/// all sent at once, retried once; what still fails is logged, counted and queued for a
/// background retry (and neither the keys nor entries that carry the tags are served from this
/// cache until it lands). An `Err` says what failed and that it was queued.
pub(crate) async fn delete(
    cache: &Cache,
    site: &Policy,
    counters: &Counters,
    keys: Vec<String>,
    tags: Vec<String>,
) -> Result<(), Error> {
    // Keys of several hash slots (on a cluster) are deleted per slot, tags updated per slot:
    // what failed is retried once, then queued, without touching the groups that succeeded.
    let (mut keys, mut tags) = (keys, tags);
    let mut deleted = 0;
    let mut last_error = None;
    for _attempt in 0..2 {
        let (by_key, by_tag) = futures_util::future::join(cache.invalidate_keys(&keys), async {
            if tags.is_empty() {
                Invalidated::default()
            } else {
                cache.invalidate_tag_names(&tags).await
            }
        })
        .await;
        deleted += by_key.deleted;
        if by_key.failed.is_empty() && by_tag.failed.is_empty() {
            bump(&counters.invalidations);
            tracing::debug!(
                function = site.name(),
                ?keys,
                ?tags,
                deleted,
                outcome = "invalidated"
            );
            return Ok(());
        }
        bump(&counters.errors);
        last_error = by_key.error.or(by_tag.error);
        keys = by_key.failed;
        tags = by_tag.failed;
    }
    bump(&counters.invalidation_failures);
    cache.defer_invalidation(&keys);
    cache.defer_tag_invalidation(&tags);
    let error = last_error.unwrap_or_else(|| Error::new(ErrorKind::Redis, "invalidation failed"));
    tracing::error!(
        function = site.name(),
        ?keys,
        ?tags,
        %error,
        "invalidation failed twice; queued for retry (until it lands this process does not serve these keys, nor entries that carry these tags; other instances may, for at most the entries' TTL)"
    );
    Err(error)
}
