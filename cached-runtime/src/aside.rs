//! Cache-aside and invalidate-on-write: the functions the macros expand into.

use std::{future::Future, marker::PhantomData, sync::atomic::AtomicBool, time::Instant};

use serde::{Serialize, de::DeserializeOwned};

use crate::{
    Cache,
    codec::{Decoded, Meta},
    key::Seg,
    stats::{Site, bump},
};

/// Anything an annotation's `cache = ...` may give: a [`Cache`], a reference to one, an
/// `Arc<Cache>`, or an `Option` of those (`None` runs uncached).
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

/// Renders a key, or nothing when there is no cache to use it with.
#[doc(hidden)]
pub fn key(cache: &impl AsCache, segments: &[Seg<'_>]) -> Option<String> {
    cache.as_cache().map(|c| c.render_key(segments))
}

/// Renders several keys (for `#[invalidates]`).
#[doc(hidden)]
pub fn keys(cache: &impl AsCache, templates: &[&[Seg<'_>]]) -> Vec<String> {
    match cache.as_cache() {
        Some(c) => templates.iter().map(|t| c.render_key(t)).collect(),
        None => Vec::new(),
    }
}

/// What to do with a function's result.
#[doc(hidden)]
#[derive(Debug)]
pub enum Store<'a, V> {
    /// Cache this value.
    Value(&'a V),
    /// Cache the null marker (a `None`).
    Null,
    /// Do not cache (an `Err`).
    Skip,
}

/// How a return type maps onto cached values. Implemented by the four shape markers below;
/// the macros pick one with [`probe`].
#[doc(hidden)]
pub trait Shape<R>: Copy {
    /// What is stored.
    type Value: Serialize + DeserializeOwned;
    /// Classifies a result.
    fn store(result: &R) -> Store<'_, Self::Value>;
    /// A cached value as the result.
    fn from_value(value: Self::Value) -> R;
    /// A cached null marker as the result, if the shape has a "not found".
    fn from_null() -> Option<R>;
}

/// Whether a write succeeded (so its invalidation should run). Implemented by the shape markers.
#[doc(hidden)]
pub trait Outcome<R>: Copy {
    /// `false` for an `Err`.
    fn succeeded(result: &R) -> bool;
}

/// Shape of `T`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Plain;
/// Shape of `Option<T>`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Opt;
/// Shape of `Result<T, E>`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Res;
/// Shape of `Result<Option<T>, E>`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct ResOpt;

impl<T: Serialize + DeserializeOwned> Shape<T> for Plain {
    type Value = T;
    fn store(r: &T) -> Store<'_, T> {
        Store::Value(r)
    }
    fn from_value(v: T) -> T {
        v
    }
    fn from_null() -> Option<T> {
        None
    }
}

impl<T: Serialize + DeserializeOwned> Shape<Option<T>> for Opt {
    type Value = T;
    fn store(r: &Option<T>) -> Store<'_, T> {
        match r {
            Some(v) => Store::Value(v),
            None => Store::Null,
        }
    }
    fn from_value(v: T) -> Option<T> {
        Some(v)
    }
    fn from_null() -> Option<Option<T>> {
        Some(None)
    }
}

impl<T: Serialize + DeserializeOwned, E> Shape<Result<T, E>> for Res {
    type Value = T;
    fn store(r: &Result<T, E>) -> Store<'_, T> {
        match r {
            Ok(v) => Store::Value(v),
            Err(_) => Store::Skip,
        }
    }
    fn from_value(v: T) -> Result<T, E> {
        Ok(v)
    }
    fn from_null() -> Option<Result<T, E>> {
        None
    }
}

impl<T: Serialize + DeserializeOwned, E> Shape<Result<Option<T>, E>> for ResOpt {
    type Value = T;
    fn store(r: &Result<Option<T>, E>) -> Store<'_, T> {
        match r {
            Ok(Some(v)) => Store::Value(v),
            Ok(None) => Store::Null,
            Err(_) => Store::Skip,
        }
    }
    fn from_value(v: T) -> Result<Option<T>, E> {
        Ok(Some(v))
    }
    fn from_null() -> Option<Result<Option<T>, E>> {
        Some(Ok(None))
    }
}

impl<R> Outcome<R> for Plain {
    fn succeeded(_: &R) -> bool {
        true
    }
}
impl<R> Outcome<R> for Opt {
    fn succeeded(_: &R) -> bool {
        true
    }
}
impl<T, E> Outcome<Result<T, E>> for Res {
    fn succeeded(r: &Result<T, E>) -> bool {
        r.is_ok()
    }
}
impl<T, E> Outcome<Result<Option<T>, E>> for ResOpt {
    fn succeeded(r: &Result<Option<T>, E>) -> bool {
        r.is_ok()
    }
}

/// Picks the shape of a return type by autoref specialization, so that type aliases
/// (`type Result<T> = std::result::Result<T, MyError>`) are seen through:
/// `(&&&Probe::<R>::new()).shape()`.
#[doc(hidden)]
pub mod probe {
    use super::*;

    /// Carries the return type.
    pub struct Probe<R>(PhantomData<fn() -> R>);

    impl<R> Probe<R> {
        /// A probe for `R`.
        #[allow(clippy::new_without_default)]
        pub const fn new() -> Self {
            Probe(PhantomData)
        }
    }

    impl<R> Clone for Probe<R> {
        fn clone(&self) -> Self {
            *self
        }
    }
    impl<R> Copy for Probe<R> {}

    /// `Result<Option<T>, E>`.
    pub trait ProbeResOpt {
        /// The shape.
        fn shape(self) -> ResOpt
        where
            Self: Sized,
        {
            ResOpt
        }
    }
    impl<T, E> ProbeResOpt for &&&Probe<Result<Option<T>, E>> {}

    /// `Result<T, E>`.
    pub trait ProbeRes {
        /// The shape.
        fn shape(self) -> Res
        where
            Self: Sized,
        {
            Res
        }
    }
    impl<T, E> ProbeRes for &&Probe<Result<T, E>> {}

    /// `Option<T>`.
    pub trait ProbeOpt {
        /// The shape.
        fn shape(self) -> Opt
        where
            Self: Sized,
        {
            Opt
        }
    }
    impl<T> ProbeOpt for &Probe<Option<T>> {}

    /// Anything else.
    pub trait ProbePlain {
        /// The shape.
        fn shape(self) -> Plain
        where
            Self: Sized,
        {
            Plain
        }
    }
    impl<R> ProbePlain for Probe<R> {}
}

/// Checks that `R` is cacheable with this shape; the macros span the call at the user's
/// return type so that an unmet bound is reported there.
#[doc(hidden)]
pub fn cacheable<R, S: Shape<R>>(shape: S) -> S {
    shape
}

/// Cache-aside (lazy loading): read the key; on a hit return the cached value without running
/// `body`; on a miss run `body`, store its result (an `Err` is never stored, a `None` is stored
/// as a null marker for the null TTL) and return it. Any cache failure runs `body` instead.
#[doc(hidden)]
pub async fn cache_aside<C, S, R, F>(
    cache: &C,
    key: Option<String>,
    site: &'static Site,
    _shape: S,
    body: F,
) -> R
where
    C: AsCache + ?Sized,
    S: Shape<R>,
    F: Future<Output = R>,
{
    let (Some(cache), Some(key)) = (cache.as_cache(), key) else {
        uncached(site);
        return body.await;
    };
    let counters = cache.counters(site);
    match cache.get_raw(&key).await {
        Ok(Some(raw)) => match cache.codec().decode_entry::<S::Value>(&raw) {
            Ok(Decoded::Value(value, _)) => {
                bump(&counters.hits);
                tracing::debug!(function = site.name, key, outcome = "hit");
                return S::from_value(value);
            }
            Ok(Decoded::Null(_)) => {
                if let Some(none) = S::from_null() {
                    bump(&counters.null_hits);
                    tracing::debug!(function = site.name, key, outcome = "null_hit");
                    return none;
                }
                // A null marker under a key whose function cannot return "not found"
                // (two templates sharing a key): reload and overwrite it.
                bump(&counters.decode_errors);
            }
            Err(error) => {
                bump(&counters.decode_errors);
                tracing::warn!(function = site.name, key, %error, "cached value does not decode; reloading");
            }
        },
        Ok(None) => {}
        Err(error) => {
            // Redis is failing: serve from the body and do not queue a write behind it.
            bump(&counters.errors);
            bump(&counters.misses);
            tracing::warn!(function = site.name, key, %error, "cache read failed; running the body");
            return body.await;
        }
    }
    bump(&counters.misses);
    tracing::debug!(function = site.name, key, outcome = "miss");

    let started = Instant::now();
    let result = body.await;
    let load = started.elapsed();

    let (ttl, null_ttl) = cache.ttls(site);
    let (value, ttl) = match S::store(&result) {
        Store::Value(v) => (Some(v), ttl),
        Store::Null => (None, null_ttl),
        Store::Skip => return result,
    };
    let meta = Meta {
        load_ms: u32::try_from(load.as_millis()).unwrap_or(u32::MAX),
        expires_at_ms: unix_ms().saturating_add(ttl.as_millis() as u64),
    };
    match cache.codec().encode_entry(value, meta) {
        Ok(bytes) => match cache.set_raw(&key, bytes, ttl).await {
            Ok(()) => bump(&counters.writes),
            Err(error) => {
                bump(&counters.errors);
                tracing::warn!(function = site.name, key, %error, "cache write failed");
            }
        },
        Err(error) => {
            bump(&counters.errors);
            tracing::warn!(function = site.name, key, %error, "value does not encode; not cached");
        }
    }
    result
}

/// Invalidate-on-write: run `body`; if it succeeded, delete every key in one round trip
/// (retried once). A failed delete is logged and counted, never turned into an error.
#[doc(hidden)]
pub async fn invalidate<C, S, R, F>(
    cache: &C,
    keys: Vec<String>,
    site: &'static Site,
    _shape: S,
    body: F,
) -> R
where
    C: AsCache + ?Sized,
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
        match cache.del_raw(&keys).await {
            Ok(deleted) => {
                bump(&counters.invalidations);
                tracing::debug!(function = site.name, ?keys, deleted, outcome = "invalidated");
                return result;
            }
            Err(error) => {
                bump(&counters.errors);
                last_error = Some(error);
            }
        }
    }
    bump(&counters.invalidation_failures);
    if let Some(error) = last_error {
        tracing::error!(
            function = site.name,
            ?keys,
            %error,
            "invalidation failed twice; the entries stay stale until their TTL expires"
        );
    }
    result
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
