//! Write-through: what `#[cache_put]` expands into. The body (the write to the database) runs
//! first; its result is then stored under the key, over whatever is there, voiding any load in
//! flight for the key — or, for a `None`, the key is deleted. A write that fails deletes the
//! key instead, so that the old value is never left behind.

use std::{future::Future, time::Duration, time::Instant};

use super::{
    invalidate::delete,
    shape::Shape,
    target::{CacheRef, uncached},
    value::{Encoded, unix_ms},
};
use crate::{
    cache::{Cache, Ttls},
    policy::Policy,
    stats::{Counters, bump},
    wire::{
        codec::{CodecKind, Meta},
        nullish,
    },
};

/// What a `#[cache_put]` does with its function's result, decided where the return type is
/// known: [`put_ops`] checks that it is cacheable (the macros span the call at the user's return
/// type, so an unmet `Serialize` bound is reported there).
#[doc(hidden)]
pub struct PutOps<R> {
    plan: fn(CodecKind, &R, Duration, Ttls) -> Plan,
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
fn plan<R, S: Shape<R>>(codec: CodecKind, result: &R, took: Duration, ttls: Ttls) -> Plan {
    let Some(value) = S::store(result) else {
        return Plan::Keep;
    };
    if nullish::is_none(value) {
        return Plan::Delete;
    }
    let meta = Meta {
        load_ms: u32::try_from(took.as_millis()).unwrap_or(u32::MAX),
        expires_at_ms: unix_ms().saturating_add(ttls.ttl.as_millis() as u64),
    };
    Plan::Store(Encoded {
        bytes: codec.encode_entry(Some(value), meta),
        ttl: ttls.ttl + ttls.extra,
    })
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
    site: &'static Policy,
    ops: PutOps<R>,
    body: F,
) -> R
where
    F: Future<Output = R>,
{
    let started = Instant::now();
    let result = body.await;
    let (Some(cache), Some(key)) = (cache.as_cache(), key) else {
        uncached(site);
        return result;
    };
    let counters = cache.counters(site);
    match (ops.plan)(cache.codec(), &result, started.elapsed(), cache.ttls(site)) {
        Plan::Keep => {}
        Plan::Delete => {
            Box::pin(delete(cache, site, counters, vec![key], Vec::new())).await;
        }
        Plan::Store(encoded) => Box::pin(store(cache, site, counters, key, encoded)).await,
    }
    result
}

/// Stores an encoded value over the key; if that fails, deletes the key instead.
async fn store(
    cache: &Cache,
    site: &'static Policy,
    counters: &Counters,
    key: String,
    Encoded { bytes, ttl }: Encoded,
) {
    match bytes {
        Ok(bytes) if bytes.len() > cache.max_value_size() => {
            bump(&counters.oversized);
            tracing::warn!(
                function = site.name,
                key,
                bytes = bytes.len(),
                max_value_size = cache.max_value_size(),
                "value larger than max_value_size; not stored, deleting the key instead"
            );
        }
        Ok(bytes) => match cache.put(&key, bytes, ttl).await {
            Ok(()) => {
                bump(&counters.writes);
                tracing::debug!(function = site.name, key, outcome = "put");
                return;
            }
            Err(error) => {
                bump(&counters.errors);
                tracing::warn!(
                    function = site.name,
                    key,
                    %error,
                    "cache write failed; deleting the key instead"
                );
            }
        },
        Err(error) => {
            bump(&counters.errors);
            tracing::warn!(
                function = site.name,
                key,
                %error,
                "value does not encode; deleting the key instead"
            );
        }
    }
    bump(&counters.put_failures);
    delete(cache, site, counters, vec![key], Vec::new()).await;
}
