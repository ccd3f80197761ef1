//! Cache-aside and invalidate-on-write: the functions the macros expand into.

use std::{
    future::Future,
    marker::PhantomData,
    sync::{Arc, atomic::AtomicBool},
    time::{Duration, Instant},
};

use serde::{Serialize, de::DeserializeOwned};

use crate::{
    Cache,
    body::{Body, Job, Task, Unspawned},
    cache::Ttls,
    codec::{self, CodecKind, Decoded, Meta},
    flight::{Fill, Leader, Role, Waiting},
    key::KeyPart,
    nullish,
    stats::{Counters, Site, bump},
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

/// How waiters of a flight take the leader's decoded value: a clone of it, type-erased.
#[doc(hidden)]
pub struct Share<R> {
    wrap: fn(&R) -> Arc<dyn std::any::Any + Send + Sync>,
    unwrap: fn(&(dyn std::any::Any + Send + Sync)) -> Option<R>,
}

impl<R> Clone for Share<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Share<R> {}

impl<R> std::fmt::Debug for Share<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Share")
    }
}

impl<R> std::ops::Deref for Probe<R> {
    type Target = PlainProbe;
    fn deref(&self) -> &PlainProbe {
        &PlainProbe
    }
}

/// The serde work for one return type, as plain function pointers: [`ops`] is where
/// the `Serialize + DeserializeOwned` bounds are checked (the macros span it at the user's
/// return type, so an unmet bound is reported there, once), and [`cache_aside`] needs none.
#[doc(hidden)]
pub struct Ops<R> {
    decode: DecodeFn<R>,
    encode: fn(CodecKind, &R, Duration, Ttls) -> Option<Encoded>,
    /// Whether a result is a failure (an `Err`), for `fail_safe`.
    failed: fn(&R) -> bool,
    share: Option<Share<R>>,
}

impl<R> Clone for Ops<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Ops<R> {}

impl<R> std::fmt::Debug for Ops<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops").finish_non_exhaustive()
    }
}

/// Decodes an entry: codec, bytes, the cache's `max_value_size`.
type DecodeFn<R> = fn(CodecKind, &[u8], usize) -> Result<Hit<R>, crate::Error>;

enum Hit<R> {
    Value(R, Meta),
    Null(R, Meta),
}

impl<R> Hit<R> {
    fn into_parts(self) -> (R, Meta, bool) {
        match self {
            Hit::Value(r, meta) => (r, meta, false),
            Hit::Null(r, meta) => (r, meta, true),
        }
    }
}

struct Encoded {
    bytes: Result<Vec<u8>, crate::Error>,
    ttl: Duration,
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

/// One call of an annotated function: what every step of a load needs.
pub(crate) struct Call<'a, R> {
    pub(crate) cache: &'a Cache,
    pub(crate) site: &'static Site,
    pub(crate) key: &'a str,
    pub(crate) ops: &'a Ops<R>,
    pub(crate) counters: &'a Counters,
}

impl<R> Call<'_, R> {
    /// The call's context, owned, for a background task.
    fn job(&self) -> Job<R> {
        Job {
            cache: self.cache.clone(),
            key: self.key.to_owned(),
            site: self.site,
            ops: *self.ops,
        }
    }
}

impl<R> Clone for Call<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Call<'_, R> {}

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

/// A miss: with the site's lock, [`load_locked`]; without, [`load_unlocked`].
pub(crate) async fn load<R, F: Future<Output = R>>(call: Call<'_, R>, body: F) -> R {
    if call.site.lock {
        load_locked(call, body).await
    } else {
        load_unlocked(call, body).await
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

/// A refresh: under the key's lease (or not at all: someone else is loading it), run the body
/// and store its result. Its caller is served the current value either way.
pub(crate) async fn refresh_under_lease<R, F: Future<Output = R>>(
    call: Call<'_, R>,
    leader: Leader,
    body: F,
) {
    let Call {
        cache,
        site,
        key,
        counters,
        ..
    } = call;
    let lease = match cache.lease(key).await {
        Ok(leased) => {
            if leased.repaired {
                repaired_lease(call);
            }
            match leased.token {
                Some(token) => Lease::new(cache, key, token),
                None => return,
            }
        }
        Err(_) => return,
    };
    bump(&counters.refreshes);
    tracing::debug!(function = site.name, key, outcome = "refresh");
    let (result, encoded) = run(call, body).await;
    let stored = to_store(&leader, call.ops, encoded, &result);
    drop(result);
    if stored.is_none() {
        tracing::warn!(
            function = site.name,
            key,
            "refresh failed; the cached value stays"
        );
    }
    store_or_release(call, leader, lease, stored).await;
}

/// Ends a flight with its result.
fn finish<R>(leader: Leader, ops: &Ops<R>, bytes: Arc<[u8]>, value: &R) {
    let fill = fill(&leader, ops, bytes, value);
    leader.finish(Some(fill));
}

/// What a flight's waiters get: the entry, and the value itself when they can clone it (and
/// there are any).
fn fill<R>(leader: &Leader, ops: &Ops<R>, bytes: Arc<[u8]>, value: &R) -> Fill {
    let value = match ops.share {
        Some(share) if leader.has_waiters() => Some((share.wrap)(value)),
        _ => None,
    };
    Fill { bytes, value }
}

/// What a lease holder stores, and what its flight's waiters get: `None` when its result is
/// not to be cached (an `Err`, or it does not encode).
type Stored = Option<((Arc<[u8]>, Duration), Fill)>;

fn to_store<R>(
    leader: &Leader,
    ops: &Ops<R>,
    encoded: Option<(Arc<[u8]>, Duration)>,
    value: &R,
) -> Stored {
    encoded.map(|encoded| {
        let fill = fill(leader, ops, encoded.0.clone(), value);
        (encoded, fill)
    })
}

/// Ends a lease holder's load: stores its result under the lease and ends its flight, or, with
/// nothing to store, gives the lease up (so that one waiter loads next) and ends the flight
/// empty. The write is sent before this process's waiters are woken (its first poll queues
/// the command): waiters in other processes, woken by the write's event, then start as early
/// as the local ones.
async fn store_or_release<R>(call: Call<'_, R>, leader: Leader, lease: Lease, stored: Stored) {
    match stored {
        Some((encoded, fill)) => {
            let write = write(call, encoded, Some(&lease.token));
            tokio::pin!(write);
            let done = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(write.as_mut().poll(cx).is_ready())
            })
            .await;
            leader.finish(Some(fill));
            if !done {
                write.await;
            }
        }
        None => {
            drop(leader);
            release(call, &lease.token).await;
        }
    }
    lease.settle();
}

/// A leader's result as a waiter's own: a clone of the shared value, else decoded.
fn take_fill<R>(cache: &Cache, fill: &Fill, ops: &Ops<R>, counters: &Counters) -> Option<R> {
    if let (Some(value), Some(share)) = (&fill.value, ops.share)
        && let Some(value) = (share.unwrap)(&**value)
    {
        return Some(value);
    }
    decode_shared(cache, &fill.bytes, ops, counters)
}

/// Values at least this large are decoded off the async worker (see [`decode_raw`]).
const BLOCKING_DECODE: usize = 256 * 1024;

/// Decodes an entry with the cache's codec and size limit. A large value is decoded inside
/// `block_in_place` on a multi-thread runtime: the worker's other tasks move to another
/// thread meanwhile instead of waiting for the decode (a 5 MB value takes tens of ms).
fn decode_raw<R>(cache: &Cache, ops: &Ops<R>, raw: &[u8]) -> Result<Hit<R>, crate::Error> {
    let (codec, max) = (cache.codec(), cache.max_value_size());
    if raw.len() >= BLOCKING_DECODE && on_multi_thread_runtime() {
        tokio::task::block_in_place(|| (ops.decode)(codec, raw, max))
    } else {
        (ops.decode)(codec, raw, max)
    }
}

/// Whether this thread runs a multi-thread Tokio runtime's tasks (where `block_in_place` is
/// allowed).
fn on_multi_thread_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// A lease key held foreign data and our lease replaced it: counted and logged.
fn repaired_lease<R>(call: Call<'_, R>) {
    bump(&call.counters.repairs);
    tracing::warn!(
        function = call.site.name,
        key = call.key,
        "the lease key held data that is not ours; replaced by our lease"
    );
}

/// A result shared by another caller's load: decoded, not counted as a hit.
fn decode_shared<R>(cache: &Cache, raw: &[u8], ops: &Ops<R>, counters: &Counters) -> Option<R> {
    match decode_raw(cache, ops, raw) {
        Ok(hit) => Some(hit.into_parts().0),
        Err(_) => {
            bump(&counters.decode_errors);
            None
        }
    }
}

/// Runs the body and encodes its result: `None` for a result that is not to be cached (an
/// `Err`) or does not encode (counted and logged).
async fn run<R, F: Future<Output = R>>(
    call: Call<'_, R>,
    body: F,
) -> (R, Option<(Arc<[u8]>, Duration)>) {
    let Call {
        cache,
        site,
        key,
        ops,
        counters,
    } = call;
    let started = Instant::now();
    let result = body.await;
    let encoded = match (ops.encode)(cache.codec(), &result, started.elapsed(), cache.ttls(site)) {
        Some(Encoded {
            bytes: Ok(bytes),
            ttl,
        }) => Some((bytes.into(), ttl)),
        Some(Encoded {
            bytes: Err(error), ..
        }) => {
            bump(&counters.errors);
            tracing::warn!(function = site.name, key, %error, "value does not encode; not cached");
            None
        }
        None => None,
    };
    (result, encoded)
}

/// Stores an encoded result: under the lease `token` if given (rejected if the lease was
/// lost), else with a plain `SET`. Counts the outcome.
async fn write<R>(call: Call<'_, R>, (bytes, ttl): (Arc<[u8]>, Duration), token: Option<&str>) {
    let Call {
        cache,
        site,
        key,
        counters,
        ..
    } = call;
    if bytes.len() > cache.max_value_size() {
        bump(&counters.oversized);
        if !site
            .oversize_logged
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                function = site.name,
                key,
                bytes = bytes.len(),
                max_value_size = cache.max_value_size(),
                "result larger than max_value_size; not cached (logged once per function)"
            );
        }
        if let Some(token) = token {
            release(call, token).await;
        }
        return;
    }
    let stored = match token {
        Some(token) => cache.put_leased(key, token, bytes, ttl).await,
        None => cache.set_raw(key, bytes, ttl).await.map(|()| true),
    };
    match stored {
        Ok(true) => bump(&counters.writes),
        Ok(false) => {
            bump(&counters.lease_rejected);
            tracing::debug!(
                function = site.name,
                key,
                "lease lost during the load (invalidated or expired); result not stored"
            );
        }
        Err(error) => {
            bump(&counters.errors);
            tracing::warn!(function = site.name, key, %error, "cache write failed");
        }
    }
}

/// Gives up a lease after a load whose result is not stored, so that one waiter loads next.
async fn release<R>(call: Call<'_, R>, token: &str) {
    let Call {
        cache,
        site,
        key,
        counters,
        ..
    } = call;
    if let Err(error) = cache.release(key, token).await {
        bump(&counters.errors);
        tracing::debug!(function = site.name, key, %error, "lease release failed; it expires by itself");
    }
}

/// A lease held by this call. Dropped without [`settle`](Lease::settle) — the call was
/// cancelled, e.g. by its caller or by `timeout` — it is released in the background, so that
/// others need not wait out `lock_ttl`. (A process that dies releases nothing: the lease
/// expires.)
struct Lease {
    cache: Cache,
    key: String,
    token: String,
    settled: bool,
}

impl Lease {
    fn new(cache: &Cache, key: &str, token: String) -> Self {
        Lease {
            cache: cache.clone(),
            key: key.to_owned(),
            token,
            settled: false,
        }
    }

    /// The load ended: its write or release consumed the lease.
    fn settle(mut self) {
        self.settled = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (cache, key, token) = (
                self.cache.clone(),
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.token),
            );
            runtime.spawn(async move {
                let _ = cache.release(&key, &token).await;
            });
        }
    }
}

/// `lock = false`: run the body and store its result with a plain `SET`.
pub(crate) async fn load_unlocked<R, F: Future<Output = R>>(call: Call<'_, R>, body: F) -> R {
    let (result, encoded) = run(call, body).await;
    if let Some(encoded) = encoded {
        // Boxed: a Redis write's future is large, and [`load`] (whose future every call of
        // `cache_aside` holds) would otherwise be as large as it.
        Box::pin(write(call, encoded, None)).await;
    }
    result
}

/// A miss with stampede protection.
///
/// - In this process, concurrent misses of one key form a single flight: the first caller
///   leads, the others wait for its encoded result.
/// - Across processes, the leader takes a lease in Redis (`SET {key}:lock <token> NX PX`).
///   Without it, the leader waits — woken through pub/sub when the value lands or the lease is
///   released, or after `lock_ttl` — then reads the value, or takes the lease in turn.
/// - The lease guards the write: the result is stored only if the lease is still ours,
///   atomically. `#[invalidates]` deletes the lease with the value, so a load that began before
///   a write can never store its stale result after the write's invalidation.
async fn load_locked<R, F: Future<Output = R>>(call: Call<'_, R>, body: F) -> R {
    let Call {
        cache,
        site,
        key,
        ops,
        counters,
    } = call;
    let mut waited = false;
    loop {
        match cache.flights().join(key) {
            // Boxed: the lease, the load and the write are most of this future's state, and
            // only the leader needs them; a waiter's future (one per concurrent caller) stays
            // small.
            Role::Leader(leader) => return Box::pin(lead(call, leader, body, waited)).await,
            Role::Waiter(flight) => {
                if !std::mem::replace(&mut waited, true) {
                    bump(&counters.lock_waits);
                }
                match tokio::time::timeout(cache.lock_ttl() * 2, flight.wait()).await {
                    Ok(Some(fill)) => {
                        if let Some(value) = take_fill(cache, &fill, ops, counters) {
                            return value;
                        }
                    }
                    // The leader's load failed or was cancelled: go round, so one waiter
                    // becomes the next leader and the rest keep waiting.
                    Ok(None) => continue,
                    Err(_) => {}
                }
                tracing::debug!(
                    function = site.name,
                    key,
                    "waited too long for a local load; loading"
                );
                return body.await;
            }
        }
    }
}

/// How long a caller waits on another process's lease before asking Redis again whether it
/// still exists: a lease lost to `FLUSHALL`, a restart with an empty dataset or an eviction
/// announces nothing, and the caller must not sit out `lock_ttl` for it. One check per waited
/// key and `Cache` (only the flight leader waits on the lease).
const LEASE_CHECK: Duration = Duration::from_millis(500);

/// The flight leader's part of [`load_locked`]: the lease (or waiting for another process's
/// load), the load, the write. `waited`: the caller was counted in `lock_waits` already.
async fn lead<R, F: Future<Output = R>>(
    call: Call<'_, R>,
    leader: Leader,
    body: F,
    mut waited: bool,
) -> R {
    let Call {
        cache,
        site,
        key,
        ops,
        counters,
    } = call;
    // Take the distributed lease, or wait for whoever holds it.
    let deadline = tokio::time::Instant::now() + cache.lock_ttl();
    let token = loop {
        // Registered before the attempt: a fill or release that follows a failed attempt
        // wakes us.
        let registration = cache.waiters().register(key);
        let notified = registration.waiting.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match cache.lease(key).await {
            Ok(leased) => {
                if leased.repaired {
                    repaired_lease(call);
                }
                if let Some(token) = leased.token {
                    break Some(Lease::new(cache, key, token));
                }
            }
            Err(error) => {
                bump(&counters.errors);
                tracing::debug!(function = site.name, key, %error, "no lease (redis failing); loading without storing");
                break None;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::debug!(
                function = site.name,
                key,
                "lease holder too slow; loading without storing"
            );
            break None;
        }
        if !std::mem::replace(&mut waited, true) {
            bump(&counters.lock_waits);
        }
        let check = deadline.min(tokio::time::Instant::now() + LEASE_CHECK);
        match wait_for_fill(cache, key, check, counters, &registration.waiting, notified).await {
            Some(raw) => {
                if let Some(value) = decode_shared(cache, &raw, ops, counters) {
                    finish(leader, ops, raw, &value);
                    return value;
                }
            }
            None => continue,
        }
    };

    let (result, encoded) = run(call, body).await;
    match (encoded, token) {
        (encoded, Some(lease)) => {
            let stored = to_store(&leader, ops, encoded, &result);
            store_or_release(call, leader, lease, stored).await;
        }
        // Redis failing or the holder too slow: share the result here, store nothing.
        (Some((bytes, _)), None) => finish(leader, ops, bytes, &result),
        (None, None) => drop(leader),
    }
    result
}

/// Waits until another process fills `key` (returns its bytes: from the fill event if it
/// carried them, else read), releases its lease or invalidates the key (`None`: try the lease
/// again), or `deadline` passes (`None`: check the lease again). A key that holds foreign data
/// (`WRONGTYPE`) reads as empty: the holder's write replaces it.
async fn wait_for_fill(
    cache: &Cache,
    key: &str,
    deadline: tokio::time::Instant,
    counters: &Counters,
    waiting: &Waiting,
    notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
) -> Option<Arc<[u8]>> {
    // Only a fresh value counts as filled: an expired one kept for `stale`/`fail_safe` is
    // what the load is replacing.
    match cache.get_raw(key).await {
        Ok(Some(raw)) if codec::is_fresh(&raw, unix_ms()) => return Some(raw.to_shared()),
        Ok(_) => {}
        Err(error) if error.is_unhealthy() => return None,
        Err(_) => {}
    }
    if tokio::time::timeout_at(deadline, notified).await.is_ok() {
        bump(&counters.wakeups);
        if let Some(bytes) = waiting.filled()
            && codec::is_fresh(&bytes, unix_ms())
        {
            return Some(bytes);
        }
        if let Ok(Some(raw)) = cache.get_raw(key).await
            && codec::is_fresh(&raw, unix_ms())
        {
            return Some(raw.to_shared());
        }
    }
    None
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

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::CodecKind;

    static SITE: Site = Site::new("tests::site", 60, 0);

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

    static LOCKED: Site = Site::new("race::locked", 600, 0);
    static UNLOCKED: Site = Site::new("race::unlocked", 600, 0).without_lock();
    static WRITE: Site = Site::new("race::write", 0, 0);

    /// Concurrent readers (cache-aside with a load of varied latency that reads the source at
    /// its start) and writers (update the source, then invalidate) over a few keys; after
    /// quiescing, the number of keys whose cached entry differs from the source.
    async fn race(site: &'static Site, seed: u64) -> usize {
        use std::{collections::HashMap, sync::Mutex};
        const KEYS: u64 = 3;
        let cache = Cache::builder().memory().build().await.unwrap();
        let source: Arc<Mutex<HashMap<u64, u64>>> = Arc::default();
        let read = move |cache: Cache,
                         source: Arc<Mutex<HashMap<u64, u64>>>,
                         id: u64,
                         delay: u64| async move {
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
        println!(
            "stale entries per round (3 keys each): leases {locked:?}, no leases {unlocked:?}"
        );
        assert!(locked.iter().all(|&n| n == 0), "leases: {locked:?}");
        assert!(
            unlocked.iter().sum::<usize>() > 0,
            "without leases the race should leave a stale entry within 20 rounds: {unlocked:?}"
        );
    }

    static SHARED: Site = Site::new("tests::shared", 60, 0);
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

    static SIZES: Site = Site::new("tests::sizes", 60, 0);

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
}
