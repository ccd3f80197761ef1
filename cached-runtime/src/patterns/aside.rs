//! Cache-aside (lazy loading): what `#[cache_aside]` expands into. The read path is here; the
//! miss path (single flight, lease, write) is in `load.rs`.

use std::future::Future;

use super::{
    body::{Body, Task, Unspawned},
    freshness::{Freshness, freshness},
    load::{Call, decode_raw, load, refresh_under_lease},
    tagged,
    target::{CacheRef, uncached},
    value::Ops,
};
use crate::{
    cache::Cache,
    coord::flight::Role,
    error::Error,
    policy::Policy,
    stats::{Counters, bump},
    store::Raw,
    wire::codec,
};

/// Cache-aside (lazy loading): read the key; on a hit return the cached value without running
/// `body`; on a miss run `body`, store its result (an `Err` is never stored, a `None` is stored
/// as a null marker for the null TTL) and return it. Any cache failure runs `body` instead.
///
/// With the site's lock on (the default), a miss is a single flight: one caller per key in this
/// process loads, under a lease in Redis that other processes wait on; see [`load_locked`].
///
/// `body` is a future, or a [`Detached`](crate::body::Detached) maker of an owned one: then a
/// refresh (`stale`, `early_refresh`) runs in a task of its own while every caller is served
/// the current value, and a load that outlives `timeout` goes on in the background.
///
/// [`load_locked`]: crate::load::load_locked
#[doc(hidden)]
pub fn cache_aside<'a, R, B>(
    cache: CacheRef<'a>,
    key: Option<String>,
    site: &'a Policy,
    ops: Ops<R>,
    body: B,
) -> impl Future<Output = R> + use<'a, R, B>
where
    B: Body<R>,
{
    aside(cache, key, Vec::new(), site, ops, body)
}

/// [`cache_aside`] for a function with `tags`: its entry carries them (full names, as
/// [`tags`](crate::__private::tags) renders them), and is served only while none of them has
/// been invalidated since its load began.
#[doc(hidden)]
pub fn cache_aside_tagged<'a, R, B>(
    cache: CacheRef<'a>,
    key: Option<String>,
    tags: Vec<String>,
    site: &'a Policy,
    ops: Ops<R>,
    body: B,
) -> impl Future<Output = R> + use<'a, R, B>
where
    B: Body<R>,
{
    aside(cache, key, tags, site, ops, body)
}

/// Not an `async fn`: that would move each argument into a local of its own, and the future
/// would hold both (the compiler does not overlap them); the `async move` block uses them in
/// place.
#[allow(clippy::manual_async_fn)]
pub(crate) fn aside<'a, R, B>(
    cache: CacheRef<'a>,
    key: Option<String>,
    tags: Vec<String>,
    site: &'a Policy,
    ops: Ops<R>,
    body: B,
) -> impl Future<Output = R> + use<'a, R, B>
where
    B: Body<R>,
{
    async move {
        let (Some(cache), Some(key)) = (cache.as_cache(), key) else {
            uncached(site);
            return body.into_load().await;
        };
        let counters = cache.counters(site);
        // May this process serve the key? Not while a write's delete of it, or its invalidation
        // of one of the function's tags, failed and is queued: the cached value may be the one
        // the write replaced. It is not served (nor overwritten) until the queue lands.
        if cache.holds(&key, &tags) {
            held(site, counters, &key);
            return body.into_load().await;
        }
        // Made where it is used rather than kept: a `Call` held across the awaits below would take
        // room in this future, which every caller holds, beside the locals it points to.
        macro_rules! call {
            () => {
                Call {
                    cache,
                    site,
                    key: &key,
                    tags: &tags,
                    ops: &ops,
                    counters,
                }
            };
        }
        // An expired value still in Redis thanks to `fail_safe`: the answer if the body fails.
        let mut fallback = None;
        let mut read = if !tags.is_empty() {
            // Boxed: the tagged read's future (several round trips on a cluster) is large, and
            // untagged calls would carry its room.
            Box::pin(read_tagged(cache, &key, &tags)).await
        } else if site.sliding {
            // A sliding site's read also resets the entry's TTL, in the same round trip.
            if site.lock {
                cache.get_ex_coalesced(&key, cache.sliding_ttl(site)).await
            } else {
                cache.get_ex_raw(&key, cache.sliding_ttl(site)).await
            }
        } else if site.lock {
            // With stampede protection, concurrent reads of the key share one round trip.
            cache.get_coalesced(&key).await
        } else {
            cache.get_raw(&key).await
        };
        // An entry written with tags (by a function that has them) is served to an untagged one
        // only while its tags keep their versions.
        if tags.is_empty()
            && let Ok(Some(raw)) = &read
            && codec::is_tagged(raw)
            && let Ok(Some(raw)) = std::mem::replace(&mut read, Ok(None))
        {
            read = Box::pin(checked(cache, raw, &tags, None)).await;
        }
        // Nor an entry that carries a tag whose invalidation is queued here.
        if let Ok(Some(raw)) = &read
            && cache.holds_entry(raw)
        {
            held(site, counters, &key);
            return body.into_load().await;
        }
        match read {
            Ok(Some(raw)) if raw.len() > cache.max_value_size() => {
                bump(&counters.oversized);
                tracing::warn!(
                    function = site.name(),
                    key,
                    bytes = raw.len(),
                    max_value_size = cache.max_value_size(),
                    "cached value larger than max_value_size; not decoded, reloading"
                );
            }
            Ok(Some(raw)) => match decode_raw(cache, &ops, &raw) {
                Ok(hit) => {
                    let (value, meta, null) = hit.into_parts();
                    match freshness(site, meta, null) {
                        Freshness::Fresh => {
                            bump(if null {
                                &counters.null_hits
                            } else {
                                &counters.hits
                            });
                            tracing::debug!(
                                function = site.name(),
                                key,
                                outcome = if null { "null_hit" } else { "hit" }
                            );
                            return value;
                        }
                        Freshness::RefreshEarly => {
                            bump(&counters.hits);
                            return Box::pin(refresh(call!(), value, false, body)).await;
                        }
                        Freshness::Stale => {
                            bump(&counters.hits);
                            return Box::pin(refresh(call!(), value, true, body)).await;
                        }
                        Freshness::Expired => fallback = Some(value),
                        Freshness::Gone => {}
                    }
                }
                Err(error) => {
                    bump(&counters.decode_errors);
                    tracing::warn!(function = site.name(), key, %error, "cached value does not decode; reloading");
                }
            },
            Ok(None) => {}
            // Foreign data under our key (a hash, a list...): a miss, and the load's write
            // replaces it. Redis itself is fine.
            Err(error) if error.is_wrong_type() => {
                bump(&counters.repairs);
                tracing::warn!(function = site.name(), key, %error, "the key holds data that is not ours; replacing it");
            }
            Err(error) => {
                // Redis is failing, or refused this key: serve from the body and do not queue a
                // write behind it.
                bump(&counters.errors);
                bump(&counters.misses);
                if error.is_circuit_open() {
                    tracing::debug!(function = site.name(), key, outcome = "breaker_open");
                } else {
                    tracing::warn!(function = site.name(), key, %error, "cache read failed; running the body");
                }
                return body.into_load().await;
            }
        }
        bump(&counters.misses);
        tracing::debug!(function = site.name(), key, outcome = "miss");
        let result = match (fallback, site.timeout_limit()) {
            // With `timeout` and an expired value to fall back on, the caller stops waiting for a
            // slow load; the load goes on in the background and is stored (a body that cannot be
            // detached is abandoned instead).
            (Some(old), Some(limit)) => {
                let outcome = match body.spawn(call!().job(), Task::Load) {
                    Ok(task) => match tokio::time::timeout(limit, task).await {
                        Ok(Ok(Some(result))) => Some(result),
                        Ok(Ok(None)) => None,
                        Ok(Err(error)) if error.is_panic() => {
                            std::panic::resume_unwind(error.into_panic())
                        }
                        // The runtime is shutting down.
                        Ok(Err(_)) => None,
                        Err(_) => None,
                    },
                    Err(Unspawned { body, .. }) => {
                        tokio::time::timeout(limit, Box::pin(load(call!(), body.into_load())))
                            .await
                            .ok()
                    }
                };
                match outcome {
                    Some(result) => (result, Some(old)),
                    None => {
                        bump(&counters.fail_safe_served);
                        tracing::warn!(
                            function = site.name(),
                            key,
                            ?limit,
                            "load slower than `timeout`; serving the expired value (fail_safe)"
                        );
                        return old;
                    }
                }
            }
            // Not boxed: a caller that waits for another's load (all but one in a stampede) needs
            // little state, and it shares the read's room in this future (which stays 1088 bytes);
            // the parts that need more box themselves — the flight leader's lease, load and write
            // (`lead`), `lock = false`'s Redis write. The box this was before cost every waiter an
            // allocation: without it the stampede's p99 − body fell from 6.6–7.4 to 5.6–5.9 ms
            // (`benches --profile ours-stampede --calls 100`, 3 runs each).
            (fallback, _) => (load(call!(), body.into_load()).await, fallback),
        };
        match result {
            (result, Some(old)) if (ops.failed)(&result) => {
                bump(&counters.fail_safe_served);
                tracing::warn!(
                    function = site.name(),
                    key,
                    "the body failed; serving the expired value (fail_safe)"
                );
                old
            }
            (result, _) => result,
        }
    }
}

/// Serves `current` — a value that is stale, or that XFetch picked for early refresh — and
/// refreshes it: one refresh per key in this process (the flight), under the key's lease
/// across processes. A [`Detached`](crate::body::Detached) body refreshes in a task of its own,
/// so that no caller waits for it; a body that cannot be detached (the macros always detach
/// with these options) runs the same refresh in this caller, which then returns `current`.
async fn refresh<R, B: Body<R>>(call: Call<'_, R>, current: R, stale: bool, body: B) -> R {
    let Call {
        site,
        key,
        counters,
        ..
    } = call;
    let served = |current: R| {
        if stale {
            bump(&counters.stale_served);
            tracing::debug!(function = site.name(), key, outcome = "stale");
        }
        current
    };
    let leader = match call.cache.flights().join(key) {
        Role::Leader(leader) => leader,
        // A refresh or load of this key is under way here already.
        Role::Waiter(_) => return served(current),
    };
    match body.spawn(call.job(), Task::Refresh(leader)) {
        Ok(_detached) => served(current),
        Err(Unspawned {
            body,
            task: Task::Refresh(leader),
            ..
        }) => {
            refresh_under_lease(call, leader, body.into_load()).await;
            served(current)
        }
        // `spawn` gives back the task it was given: a refresh.
        Err(Unspawned { .. }) => served(current),
    }
}

/// A call that does not serve the key's entry because an invalidation is queued (see
/// [`Cache::holds`]): a miss, whose body's result is not stored.
fn held(site: &Policy, counters: &Counters, key: &str) {
    bump(&counters.misses);
    tracing::debug!(
        function = site.name(),
        key,
        outcome = "pending_invalidation"
    );
}

/// Reads a tagged function's entry with its tags' versions: the entry if it may be served,
/// else none (a miss).
async fn read_tagged(cache: &Cache, key: &str, tags: &[String]) -> Result<Option<Raw>, Error> {
    let (raw, versions) = cache.read_tagged(key, tags).await?;
    match raw {
        Some(raw) => checked(cache, raw, tags, Some(&versions)).await,
        None => Ok(None),
    }
}

/// `raw` if it may be served (see [`tagged::valid`]), else none. A malformed tag section is
/// left to the decode, which reports it and reloads; an entry that carries a tag whose
/// invalidation is queued, to the caller, which does not serve it (without reading its tags).
pub(crate) async fn checked(
    cache: &Cache,
    raw: Raw,
    tags: &[String],
    known: Option<&[Option<u64>]>,
) -> Result<Option<Raw>, Error> {
    if cache.holds_entry(&raw) {
        return Ok(Some(raw));
    }
    match tagged::valid(cache, &raw, tags, known).await {
        Ok(true) => Ok(Some(raw)),
        Ok(false) => Ok(None),
        Err(error) if error.is_codec() => Ok(Some(raw)),
        Err(error) => Err(error),
    }
}
