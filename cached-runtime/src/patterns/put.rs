//! Write-through: what `#[cache_put]` expands into. The body (the write to the database) runs
//! first; its result is then stored under the key, over whatever is there, voiding any load in
//! flight for the key — or, for a `None`, the key is deleted. A write that fails deletes the
//! key instead, so that the old value is never left behind. With tags, the entry carries the
//! versions its tags had before the body ran, as a load's does.

use std::{future::Future, time::Duration, time::Instant};

use super::{
    invalidate::delete,
    shape::Shape,
    tagged,
    target::{CacheRef, uncached},
    value::{Encoded, meta},
};
use crate::{
    cache::{Cache, Ttls},
    error::{Error, ErrorKind},
    policy::Policy,
    stats::{Counters, bump},
    wire::{codec::CodecKind, nullish, tags::Stamp},
};

/// What a `#[cache_put]` does with its function's result, decided where the return type is
/// known: [`put_ops`] checks that it is cacheable (the macros span the call at the user's return
/// type, so an unmet `Serialize` bound is reported there).
#[doc(hidden)]
pub struct PutOps<R> {
    /// Codec, result, how long the body took, TTLs, the tags the entry carries.
    plan: fn(CodecKind, &R, Duration, Ttls, &[Stamp<'_>]) -> Plan,
}

impl<R> Clone for PutOps<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for PutOps<R> {}

impl<R> std::fmt::Debug for PutOps<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutOps").finish_non_exhaustive()
    }
}

/// What to do with a result.
enum Plan {
    /// An `Err`: the write failed, the cache is left as it is.
    Keep,
    /// A `None`: the entry is gone, delete the key.
    Delete,
    /// A value: store it.
    Store(Encoded),
}

/// The [`PutOps`] of return type `R` with shape `S` (`probe::<R>().shape()`).
#[doc(hidden)]
pub fn put_ops<R, S: Shape<R>>(_shape: S) -> PutOps<R> {
    PutOps { plan: plan::<R, S> }
}

/// Encodes a result exactly as a `#[cache_aside]` of the same value stores it (header, codec,
/// jittered TTL); a top-level `Some(v)` is stored as `v` (see `wire/bare.rs`), so that readers
/// returning `T` and `Option<T>` both read it.
fn plan<R, S: Shape<R>>(
    codec: CodecKind,
    result: &R,
    took: Duration,
    ttls: Ttls,
    stamps: &[Stamp<'_>],
) -> Plan {
    let Some(value) = S::store(result) else {
        return Plan::Keep;
    };
    if nullish::is_none(value) {
        return Plan::Delete;
    }
    Plan::Store(encode(codec, value, took, ttls, stamps))
}

/// A value as a write-through stores it: behind the header (its logical expiry `ttl` from now,
/// none for a sliding entry), carrying `stamps`, for `ttl` plus `stale`/`fail_safe` in Redis.
pub(crate) fn encode<V: serde::Serialize + ?Sized>(
    codec: CodecKind,
    value: &V,
    took: Duration,
    ttls: Ttls,
    stamps: &[Stamp<'_>],
) -> Encoded {
    Encoded {
        bytes: codec.encode_tagged_entry(Some(value), meta(took, ttls.ttl, ttls.sliding), stamps),
        ttl: ttls.ttl + ttls.extra,
    }
}

/// Write-through: run `body`; if it returned a value (`Ok(v)`, `Some(v)`, `Ok(Some(v))` or a
/// plain `T`), store it under `key` in one round trip that also voids the key's lease (a load
/// that began before cannot store its older result over it) and wakes the key's waiters in
/// every process. `None` deletes the key as `#[invalidates]` does; `Err` writes nothing.
///
/// A store that fails (a Redis error, a timeout, a value that does not encode or is too large)
/// deletes the key instead — retried once, then queued — so the old value is not left behind;
/// it is logged and counted, and the caller still gets its result.
#[doc(hidden)]
pub async fn cache_put<R, F>(
    cache: CacheRef<'_>,
    key: Option<String>,
    site: &Policy,
    ops: PutOps<R>,
    body: F,
) -> R
where
    F: Future<Output = R>,
{
    put(cache, key, Vec::new(), site, ops, body).await
}

/// [`cache_put`] for a function with `tags` (full names, as
/// [`tags`](crate::__private::tags) renders them): before `body` runs, the tags' current
/// versions are read (created where missing), and the stored entry carries them, as a tagged
/// load's does. It is served to `#[cache_aside]` readers of the key while none of its tags has
/// been invalidated since, and an invalidation that lands while `body` runs voids it. If the
/// versions cannot be read, nothing is stored: the key is deleted instead, as for a failed
/// store.
#[doc(hidden)]
pub async fn cache_put_tagged<R, F>(
    cache: CacheRef<'_>,
    key: Option<String>,
    tags: Vec<String>,
    site: &Policy,
    ops: PutOps<R>,
    body: F,
) -> R
where
    F: Future<Output = R>,
{
    put(cache, key, tags, site, ops, body).await
}

async fn put<R, F>(
    cache: CacheRef<'_>,
    key: Option<String>,
    tags: Vec<String>,
    site: &Policy,
    ops: PutOps<R>,
    body: F,
) -> R
where
    F: Future<Output = R>,
{
    // Read before the body: an invalidation of a tag while it runs (its write may have missed
    // the change that the invalidation is for) then voids the entry.
    let versions = match cache.as_cache() {
        Some(cache) if key.is_some() && !tags.is_empty() => {
            // Boxed: the tag round trips' future is large, and untagged puts would carry its
            // room.
            Some(Box::pin(tagged::stamp(cache, site, &tags)).await)
        }
        _ => None,
    };
    let started = Instant::now();
    let result = body.await;
    let (Some(cache), Some(key)) = (cache.as_cache(), key) else {
        uncached(site);
        return result;
    };
    let counters = cache.counters(site);
    // Versions that could not be read: a value is not stored without them (it could outlive an
    // invalidation), the key is deleted instead.
    let (versions, stamp_error) = match versions {
        None => (Vec::new(), None),
        Some(Ok(versions)) => (versions, None),
        Some(Err(error)) => (Vec::new(), Some(error)),
    };
    let stamps = tagged::pair(&tags, &versions);
    match (ops.plan)(
        cache.codec(),
        &result,
        started.elapsed(),
        cache.ttls(site),
        &stamps,
    ) {
        Plan::Keep => {}
        // A failure of either is logged, counted and queued: the write's result stands.
        Plan::Delete => {
            let _ = Box::pin(delete(cache, site, counters, vec![key], Vec::new())).await;
        }
        Plan::Store(encoded) => match stamp_error {
            None => {
                let _ = Box::pin(store(cache, site, counters, key, encoded)).await;
            }
            Some(error) => {
                let _ = Box::pin(unstamped(cache, site, counters, key, error)).await;
            }
        },
    }
    result
}

/// A value that cannot be stored because its tags' versions could not be read (it could outlive
/// an invalidation): the key is deleted instead, so the old value does not stay either. Gives
/// back `error`.
pub(crate) async fn unstamped(
    cache: &Cache,
    site: &Policy,
    counters: &Counters,
    key: String,
    error: Error,
) -> Error {
    bump(&counters.errors);
    bump(&counters.put_failures);
    tracing::warn!(
        function = site.name(),
        key,
        %error,
        "tag versions not read; deleting the key instead"
    );
    // A failed delete is queued, and reported by `delete` itself.
    let _ = delete(cache, site, counters, vec![key], Vec::new()).await;
    error
}

/// Stores an encoded value over the key; if that fails, deletes the key instead (the `Err`
/// says why it was not stored).
pub(crate) async fn store(
    cache: &Cache,
    site: &Policy,
    counters: &Counters,
    key: String,
    Encoded { bytes, ttl }: Encoded,
) -> Result<(), Error> {
    let error = match bytes {
        Ok(bytes) if bytes.len() > cache.max_value_size() => {
            bump(&counters.oversized);
            tracing::warn!(
                function = site.name(),
                key,
                bytes = bytes.len(),
                max_value_size = cache.max_value_size(),
                "value larger than max_value_size; not stored, deleting the key instead"
            );
            Error::new(
                ErrorKind::Codec,
                format!(
                    "the value is {} bytes, over max_value_size ({})",
                    bytes.len(),
                    cache.max_value_size()
                ),
            )
        }
        Ok(bytes) => match cache.write_through(&key, bytes, ttl).await {
            Ok(()) => {
                bump(&counters.writes);
                tracing::debug!(function = site.name(), key, outcome = "put");
                return Ok(());
            }
            Err(error) => {
                bump(&counters.errors);
                tracing::warn!(
                    function = site.name(),
                    key,
                    %error,
                    "cache write failed; deleting the key instead"
                );
                error
            }
        },
        Err(error) => {
            bump(&counters.errors);
            tracing::warn!(
                function = site.name(),
                key,
                %error,
                "value does not encode; deleting the key instead"
            );
            error
        }
    };
    bump(&counters.put_failures);
    // A failed delete is queued, and reported by `delete` itself.
    let _ = delete(cache, site, counters, vec![key], Vec::new()).await;
    Err(error)
}
