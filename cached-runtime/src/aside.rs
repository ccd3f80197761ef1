//! Cache-aside and invalidate-on-write: the functions the macros expand into.

use std::{
    future::Future,
    marker::PhantomData,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use serde::{Serialize, de::DeserializeOwned};

pub use crate::value::Share;
use crate::{
    Cache,
    body::{Body, Task, Unspawned},
    cache::Ttls,
    codec::{CodecKind, Decoded, Meta},
    flight::Role,
    key::KeyPart,
    load::{Call, decode_raw, load, refresh_under_lease},
    nullish,
    stats::{Site, bump},
    value::{Encoded, Hit, Ops, unix_ms},
};

/// Anything an annotation's `cache = ...` may give: a [`Cache`], a reference to one, an
/// `Arc<Cache>`, or an `Option` of those (`None` runs uncached).
#[diagnostic::on_unimplemented(
    message = "`cache = ...` must give a `Cache`, `&Cache`, `Arc<Cache>` or an `Option` of them, not `{Self}`",
    label = "not a cache",
    note = "e.g. `cache = self.cache` for a field `cache: cached_runtime::Cache`"
)]
pub trait AsCache {
    /// The cache to use, if any.
    fn as_cache(&self) -> Option<&Cache>;
}

impl AsCache for Cache {
    fn as_cache(&self) -> Option<&Cache> {
        Some(self)
    }
}

impl<T: AsCache + ?Sized> AsCache for &T {
    fn as_cache(&self) -> Option<&Cache> {
        (**self).as_cache()
    }
}

impl<T: AsCache + ?Sized> AsCache for std::sync::Arc<T> {
    fn as_cache(&self) -> Option<&Cache> {
        (**self).as_cache()
    }
}

impl<T: AsCache> AsCache for Option<T> {
    fn as_cache(&self) -> Option<&Cache> {
        self.as_ref().and_then(AsCache::as_cache)
    }
}

/// What the macros bind the `cache = ...` expression to (a coercion at the user's expression,
/// so that something that is not a cache is reported there, once).
#[doc(hidden)]
pub type CacheRef<'a> = &'a (dyn AsCache + Sync);

/// The process-wide cache, for annotations without `cache = ...`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Global;

impl AsCache for Global {
    fn as_cache(&self) -> Option<&Cache> {
        crate::global()
    }
}

fn uncached(site: &Site) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            function = site.name,
            "no cache: `cached_runtime::set_global` was not called and the annotation has no `cache = ...`; \
             annotated functions run uncached (this is logged once)"
        );
    }
}

/// Renders a key from the template's text pieces and the placeholders' values, or nothing
/// when there is no cache to use it with.
#[doc(hidden)]
pub fn key(cache: CacheRef<'_>, lits: &[&str], args: &[&dyn KeyPart]) -> Option<String> {
    cache.as_cache().map(|c| c.render_key(lits, args))
}

/// One key template of `#[invalidates]`: text pieces and values.
#[doc(hidden)]
pub type Template<'a> = (&'a [&'a str], &'a [&'a dyn KeyPart]);

/// Renders several keys (for `#[invalidates]`).
#[doc(hidden)]
pub fn keys(cache: CacheRef<'_>, templates: &[Template<'_>]) -> Vec<String> {
    match cache.as_cache() {
        Some(c) => templates
            .iter()
            .map(|(lits, args)| c.render_key(lits, args))
            .collect(),
        None => Vec::new(),
    }
}

/// A probe of the return type `R`: `probe::<R>().shape()` picks its shape.
#[doc(hidden)]
pub const fn probe<R>() -> Probe<R> {
    Probe(PhantomData)
}

/// How a return type maps onto a cached value: [`Res`] for `Result<T, E>` (an `Err` is never
/// stored), [`Plain`] for everything else. A top-level `Option` needs no shape of its own: a
/// `None` is recognised through serde and stored as a null marker.
#[doc(hidden)]
pub trait Shape<R>: Copy {
    /// What is stored.
    type Value: Serialize + DeserializeOwned;
    /// The value to store, or `None` for a result that must not be cached.
    fn store(result: &R) -> Option<&Self::Value>;
    /// A cached value as the result.
    fn from_value(value: Self::Value) -> R;
}

/// Whether a write succeeded (so its invalidation should run).
#[doc(hidden)]
pub trait Outcome<R>: Copy {
    /// `false` for an `Err`.
    fn succeeded(result: &R) -> bool;
}

/// Shape of any return type that is not a `Result`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Plain;

/// Shape of `Result<T, E>` (and aliases of it).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Res;

impl<T: Serialize + DeserializeOwned> Shape<T> for Plain {
    type Value = T;
    fn store(r: &T) -> Option<&T> {
        Some(r)
    }
    fn from_value(v: T) -> T {
        v
    }
}

impl<T: Serialize + DeserializeOwned, E> Shape<Result<T, E>> for Res {
    type Value = T;
    fn store(r: &Result<T, E>) -> Option<&T> {
        r.as_ref().ok()
    }
    fn from_value(v: T) -> Result<T, E> {
        Ok(v)
    }
}

impl<R> Outcome<R> for Plain {
    fn succeeded(_: &R) -> bool {
        true
    }
}

impl<T, E> Outcome<Result<T, E>> for Res {
    fn succeeded(r: &Result<T, E>) -> bool {
        r.is_ok()
    }
}

/// Picks the shape of a return type where it is concrete, seeing through type aliases:
/// `Probe::<R>::new().shape()` is the inherent method (→ [`Res`]) when `R` is a `Result`, and
/// otherwise the method of the `Deref` target (→ [`Plain`]). No trait import is needed.
#[doc(hidden)]
pub struct Probe<R>(PhantomData<fn() -> R>);

impl<R> Probe<R> {
    /// A probe for `R`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

impl<T, E> Probe<Result<T, E>> {
    /// `Result<T, E>`.
    pub fn shape(&self) -> Res {
        Res
    }
}

impl<R: Clone + Send + Sync + 'static> Probe<R> {
    /// A type waiters can clone: they clone one decoded value instead of each decoding the
    /// bytes. (Types that are not `Clone` get `None` through the `Deref` fallback.)
    pub fn sharing(&self) -> Option<Share<R>> {
        Some(Share {
            wrap: |r| Arc::new(r.clone()),
            unwrap: |any| any.downcast_ref::<R>().cloned(),
        })
    }
}

impl<R> std::fmt::Debug for Probe<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::any::type_name::<R>())
    }
}

/// The fallback of [`Probe`].
#[doc(hidden)]
#[derive(Debug)]
pub struct PlainProbe;

impl PlainProbe {
    /// Anything but a `Result`.
    pub fn shape(&self) -> Plain {
        Plain
    }

    /// A type that is not `Clone + Send + Sync + 'static`: waiters decode.
    pub fn sharing<R>(&self) -> Option<Share<R>> {
        None
    }
}

impl<R> std::ops::Deref for Probe<R> {
    type Target = PlainProbe;
    fn deref(&self) -> &PlainProbe {
        &PlainProbe
    }
}

/// Checks that `R` is cacheable with shape `S` and returns its [`Ops`]; `share` is how
/// waiters take a leader's value (`Probe::sharing`).
#[doc(hidden)]
pub fn ops<R, S: Shape<R>>(_shape: S, share: Option<Share<R>>) -> Ops<R> {
    Ops {
        decode: decode::<R, S>,
        encode: encode::<R, S>,
        failed: |r| S::store(r).is_none(),
        share,
    }
}

fn decode<R, S: Shape<R>>(
    codec: CodecKind,
    bytes: &[u8],
    max_value_size: usize,
) -> Result<Hit<R>, crate::Error> {
    match codec.decode_entry::<S::Value>(bytes, max_value_size)? {
        Decoded::Value(value, meta) => Ok(Hit::Value(S::from_value(value), meta)),
        // A null marker is only meaningful for a type with a `None`; under any other type (two
        // templates sharing a key) it is a decode error: reload and overwrite it.
        Decoded::Null(meta) => nullish::none::<S::Value>()
            .map(|none| Hit::Null(S::from_value(none), meta))
            .ok_or_else(|| {
                crate::Error::new(
                    crate::ErrorKind::Codec,
                    "a cached \"not found\" under a key whose function has no `None`",
                )
            }),
    }
}

fn encode<R, S: Shape<R>>(
    codec: CodecKind,
    result: &R,
    load: Duration,
    ttls: Ttls,
) -> Option<Encoded> {
    let value = S::store(result)?;
    // A value is kept past its logical expiry for `stale` / `fail_safe`; a "not found" is not.
    let (value, logical, physical) = if nullish::is_none(value) {
        (None, ttls.null_ttl, ttls.null_ttl)
    } else {
        (Some(value), ttls.ttl, ttls.ttl + ttls.extra)
    };
    let meta = Meta {
        load_ms: u32::try_from(load.as_millis()).unwrap_or(u32::MAX),
        expires_at_ms: unix_ms().saturating_add(logical.as_millis() as u64),
    };
    Some(Encoded {
        bytes: codec.encode_entry(value, meta),
        ttl: physical,
    })
}

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
pub async fn cache_aside<R, B>(
    cache: CacheRef<'_>,
    key: Option<String>,
    site: &'static Site,
    ops: Ops<R>,
    body: B,
) -> R
where
    B: Body<R>,
{
    let (Some(cache), Some(key)) = (cache.as_cache(), key) else {
        uncached(site);
        return body.into_load().await;
    };
    let counters = cache.counters(site);
    let call = Call {
        cache,
        site,
        key: &key,
        ops: &ops,
        counters,
    };
    // An expired value still in Redis thanks to `fail_safe`: the answer if the body fails.
    let mut fallback = None;
    // With stampede protection, concurrent reads of the key share one round trip.
    let read = if site.lock {
        cache.get_coalesced(&key).await
    } else {
        cache.get_raw(&key).await
    };
    match read {
        Ok(Some(raw)) if raw.len() > cache.max_value_size() => {
            bump(&counters.oversized);
            tracing::warn!(
                function = site.name,
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
                            function = site.name,
                            key,
                            outcome = if null { "null_hit" } else { "hit" }
                        );
                        return value;
                    }
                    Freshness::RefreshEarly => {
                        bump(&counters.hits);
                        return Box::pin(refresh(call, value, false, body)).await;
                    }
                    Freshness::Stale => {
                        bump(&counters.hits);
                        return Box::pin(refresh(call, value, true, body)).await;
                    }
                    Freshness::Expired => fallback = Some(value),
                }
            }
            Err(error) => {
                bump(&counters.decode_errors);
                tracing::warn!(function = site.name, key, %error, "cached value does not decode; reloading");
            }
        },
        Ok(None) => {}
        // Foreign data under our key (a hash, a list...): a miss, and the load's write
        // replaces it. Redis itself is fine.
        Err(error) if error.is_wrong_type() => {
            bump(&counters.repairs);
            tracing::warn!(function = site.name, key, %error, "the key holds data that is not ours; replacing it");
        }
        Err(error) => {
            // Redis is failing, or refused this key: serve from the body and do not queue a
            // write behind it.
            bump(&counters.errors);
            bump(&counters.misses);
            if error.is_circuit_open() {
                tracing::debug!(function = site.name, key, outcome = "breaker_open");
            } else {
                tracing::warn!(function = site.name, key, %error, "cache read failed; running the body");
            }
            return body.into_load().await;
        }
    }
    bump(&counters.misses);
    tracing::debug!(function = site.name, key, outcome = "miss");
    let result = match (fallback, site.timeout_limit()) {
        // With `timeout` and an expired value to fall back on, the caller stops waiting for a
        // slow load; the load goes on in the background and is stored (a body that cannot be
        // detached is abandoned instead).
        (Some(old), Some(limit)) => {
            let outcome = match body.spawn(call.job(), Task::Load) {
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
                    tokio::time::timeout(limit, Box::pin(load(call, body.into_load())))
                        .await
                        .ok()
                }
            };
            match outcome {
                Some(result) => (result, Some(old)),
                None => {
                    bump(&counters.fail_safe_served);
                    tracing::warn!(
                        function = site.name,
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
        (fallback, _) => (load(call, body.into_load()).await, fallback),
    };
    match result {
        (result, Some(old)) if (ops.failed)(&result) => {
            bump(&counters.fail_safe_served);
            tracing::warn!(
                function = site.name,
                key,
                "the body failed; serving the expired value (fail_safe)"
            );
            old
        }
        (result, _) => result,
    }
}

enum Freshness {
    Fresh,
    /// Fresh, but XFetch picked this call to refresh it early.
    RefreshEarly,
    /// Past expiry, within `stale`.
    Stale,
    /// Past expiry and `stale`; kept only for `fail_safe`.
    Expired,
}

fn freshness(site: &Site, meta: Meta, null: bool) -> Freshness {
    if null || meta.expires_at_ms == 0 {
        return Freshness::Fresh;
    }
    let now = unix_ms();
    if now < meta.expires_at_ms {
        // XFetch (Vattani et al., VLDB 2015): refresh when now - Δ·β·ln(U) ≥ expiry, U ∈ (0, 1].
        if site.early_beta > 0.0 {
            let u: f64 = 1.0 - rand::random::<f64>();
            let ahead = f64::from(meta.load_ms) * site.early_beta * -u.ln();
            if now as f64 + ahead >= meta.expires_at_ms as f64 {
                return Freshness::RefreshEarly;
            }
        }
        return Freshness::Fresh;
    }
    if now < meta.expires_at_ms + site.stale_secs * 1000 {
        Freshness::Stale
    } else {
        Freshness::Expired
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
            tracing::debug!(function = site.name, key, outcome = "stale");
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

/// Invalidate-on-write: run `body`; if it succeeded, delete every key and its lease in one
/// round trip (retried once). A failed delete is logged, counted and queued for a background
/// retry; it never turns the write's success into an error.
#[doc(hidden)]
pub async fn invalidate<S, R, F>(
    cache: CacheRef<'_>,
    keys: Vec<String>,
    site: &'static Site,
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
    let mut last_error = None;
    for _attempt in 0..2 {
        match cache.invalidate_keys(&keys).await {
            Ok(deleted) => {
                bump(&counters.invalidations);
                tracing::debug!(
                    function = site.name,
                    ?keys,
                    deleted,
                    outcome = "invalidated"
                );
                return result;
            }
            Err(error) => {
                bump(&counters.errors);
                last_error = Some(error);
            }
        }
    }
    bump(&counters.invalidation_failures);
    cache.defer_invalidation(&keys);
    if let Some(error) = last_error {
        tracing::error!(
            function = site.name,
            ?keys,
            %error,
            "invalidation failed twice; queued for retry (until then, at most the entries' TTL of staleness)"
        );
    }
    result
}
