//! Read-through without an attribute: for keys computed at run time, closures, and types
//! the annotations cannot reach. [`Cache::get_or_load`] and [`Entry::get_or_load`] run the path
//! `#[cache_aside]` expands into (single flight, lease, null caching, fail-open), with the
//! policy given per call; [`Cache::get`], [`Entry::put`] and [`Cache::remove`] read, write
//! through and invalidate one entry.

use std::{
    future::Future,
    marker::PhantomData,
    sync::atomic::{AtomicBool, Ordering::Relaxed},
    time::Duration,
};

use serde::{Serialize, de::DeserializeOwned};

use super::{
    aside::{aside, checked},
    body::Lazy,
    freshness::{Freshness, freshness},
    invalidate::delete,
    put,
    shape::{Res, ops},
    tagged::{self, pair},
};
use crate::{
    cache::Cache,
    error::Error,
    policy::{Policy, Site, duration_ms},
    stats::bump,
    wire::{
        codec::{self, Decoded},
        key, nullish,
    },
};

/// Where read-through calls are counted when their [`Entry`] names no [`Site`].
static READ_THROUGH: Site = Site::new("read_through");

/// An [`Entry`] that has no TTL yet: [`Entry::ttl`] gives it one, and with it
/// [`get_or_load`](Entry::get_or_load) and [`put`](Entry::put).
#[derive(Debug, Clone, Copy)]
pub struct NoTtl;

/// An [`Entry`] with a TTL.
#[derive(Debug, Clone, Copy)]
pub struct HasTtl;

/// One cache entry and how to cache it, built per call: the read-through form of every
/// `#[cache_aside]` option. Made by [`Cache::entry`]; a TTL is required before loading or
/// storing (a missing one is a compile error, not a default).
///
/// ```
/// use std::time::Duration;
/// use cached_runtime::{Cache, Key};
///
/// # #[derive(serde::Serialize, serde::Deserialize)] struct User { name: String }
/// # async fn query(_: u64) -> Result<Option<User>, std::io::Error> { Ok(None) }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = Cache::builder().memory().namespace("app").build().await?;
/// let id = 42;
/// let user: Option<User> = cache
///     .entry(&Key::new("user").part(id))   // app:user:42, as key = "user:<id>" renders it
///     .ttl(Duration::from_secs(600))
///     .null_ttl(Duration::from_secs(30))   // a `None` is cached for 30 s
///     .tags([Key::new("tenant").part("acme")])
///     .stale(Duration::from_secs(60))
///     .get_or_load(|| query(id))
///     .await?;
/// # let _ = user; Ok(()) }
/// ```
///
/// Options that contradict sliding expiration (`stale`, `early_refresh`, `fail_safe`,
/// `timeout`, `tags`: see the README) win over it: with any of them, `sliding(true)` is
/// ignored and a warning is logged once.
#[must_use = "an entry does nothing until it is loaded, read, stored or removed"]
pub struct Entry<'c, S = HasTtl> {
    cache: &'c Cache,
    /// The full key.
    key: String,
    /// Full tag names.
    tags: Vec<String>,
    policy: Policy,
    state: PhantomData<S>,
}

impl<S> std::fmt::Debug for Entry<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key)
            .field("tags", &self.tags)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// Read-through: the value cached under `key` (relative to the namespace: `"user:42"` is
    /// `app:user:42`), or, on a miss, `loader`'s result, stored for `ttl`. The guarantees of
    /// `#[cache_aside]`: one load per key at a time across every process (single flight and
    /// lease), an `Err` never stored, a `None` (for `T = Option<U>`) stored for the null TTL,
    /// and any cache failure runs `loader` instead, logged and counted — never an error of its
    /// own. [`Cache::entry`] takes the other options.
    ///
    /// `key` is used as given; build keys from values with [`Key`](crate::Key), which escapes
    /// them as the annotations' templates do.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = cached_runtime::Cache::builder().memory().namespace("app").build().await?;
    /// let load = || async { Ok::<_, std::io::Error>(vec![1u32, 2, 3]) };
    /// let top = cache.get_or_load("top:ids", Duration::from_secs(60), load).await?;
    /// assert_eq!(top, [1, 2, 3]);
    /// # Ok(()) }
    /// ```
    pub fn get_or_load<'c, T, E, F, Fut>(
        &'c self,
        key: &str,
        ttl: Duration,
        loader: F,
    ) -> impl Future<Output = Result<T, E>> + use<'c, T, E, F, Fut>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.entry(key).ttl(ttl).get_or_load(loader)
    }

    /// The entry under `key` (relative to the namespace), to give options and then load,
    /// read, store or remove it: see [`Entry`].
    pub fn entry(&self, key: &str) -> Entry<'_, NoTtl> {
        Entry {
            cache: self,
            key: key::full(self.namespace(), key),
            tags: Vec::new(),
            policy: Policy::with_ttl_ms(&READ_THROUGH, 0, 0),
            state: PhantomData,
        }
    }

    /// The value cached under `key` (relative to the namespace), if there is a fresh one
    /// that decodes as `T`. A cached "not found" reads as `Some(None)` for `T = Option<U>`. A
    /// cache failure reads as `None` (logged and counted), as does an entry whose tags were
    /// invalidated, or one past its TTL kept only for `stale`/`fail_safe`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = cached_runtime::Cache::builder().memory().namespace("app").build().await?;
    /// cache.entry("greeting").ttl(Duration::from_secs(60)).put(&"hello").await?;
    /// assert_eq!(cache.get::<String>("greeting").await.as_deref(), Some("hello"));
    /// assert_eq!(cache.get::<String>("nothing").await, None);
    /// # Ok(()) }
    /// ```
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.entry(key).get().await
    }

    /// Write-through: stores `value` under `key` (relative to the namespace) for `ttl`, as
    /// `#[cache_put]` stores a result — over whatever is there, voiding any load in flight for
    /// the key (which then cannot store its older value), and waking the key's waiters in every
    /// process. `None` (for an `Option`) removes the entry instead. A store that fails deletes
    /// the key instead, so that the old value is not left behind (queued and retried if that
    /// fails too): the `Err` says the value was not stored.
    pub async fn put<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), Error> {
        self.entry(key).ttl(ttl).put(value).await
    }

    /// Removes the entry under `key` (relative to the namespace) as `#[invalidates]` does:
    /// its lease is voided too, so a load in flight cannot store its older value, and the
    /// other processes' waiters are told. A failure is retried once, then queued and retried
    /// in the background; until it lands, this process does not serve the key. The `Err`
    /// says it was queued.
    pub async fn remove(&self, key: &str) -> Result<(), Error> {
        self.entry(key).remove().await
    }
}

impl<'c, S> Entry<'c, S> {
    /// How long a loaded or stored value is cached (jittered as the cache is configured).
    pub fn ttl(self, ttl: Duration) -> Entry<'c, HasTtl> {
        let mut policy = self.policy;
        policy.ttl_ms = duration_ms(ttl);
        Entry {
            cache: self.cache,
            key: self.key,
            tags: self.tags,
            policy,
            state: PhantomData,
        }
    }

    /// How long a `None` is cached (default: the cache's
    /// [`null_ttl`](crate::CacheBuilder::null_ttl), at most the TTL).
    pub fn null_ttl(mut self, ttl: Duration) -> Self {
        self.policy.null_ttl_ms = duration_ms(ttl).max(1);
        self
    }

    /// Tags the entry carries, relative to the namespace (`"category:5"` is the tag
    /// `app:category:5`, as `tags = ["category:<cat>"]` renders it): once
    /// [`Cache::invalidate_tags`] (or an `#[invalidates(tags = ...)]`) invalidates one of
    /// them, the entry is not served.
    pub fn tags<I>(mut self, tags: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let namespace = self.cache.namespace();
        self.tags
            .extend(tags.into_iter().map(|t| key::full(namespace, t.as_ref())));
        self
    }

    /// Stampede protection (on by default): one load per key at a time, in this process
    /// (single flight) and across processes (a lease in Redis). `false`: every miss loads.
    pub fn lock(mut self, on: bool) -> Self {
        self.policy.lock = on;
        self
    }

    /// Stale-while-revalidate: for `window` past its TTL a value is still served while one
    /// caller refreshes it. The caller that starts the refresh runs it and is then served the
    /// value it had (a read-through loader is not moved into a task of its own).
    pub fn stale(mut self, window: Duration) -> Self {
        self.policy.stale_ms = duration_ms(window);
        self
    }

    /// Probabilistic early refresh (XFetch) with factor `beta` (1.0 is the usual; larger
    /// refreshes earlier). A `beta` that is not a positive number turns it off.
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.policy.early_beta = if beta.is_finite() && beta > 0.0 {
            beta
        } else {
            0.0
        };
        self
    }

    /// Fail-safe: for `window` past its TTL a value stands in for a loader that fails.
    pub fn fail_safe(mut self, window: Duration) -> Self {
        self.policy.fail_safe_ms = duration_ms(window);
        self
    }

    /// With [`fail_safe`](Self::fail_safe): a load slower than `limit` is abandoned and the
    /// expired value served instead.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.policy.timeout_ms = duration_ms(limit).max(1);
        self
    }

    /// Sliding expiration: every hit resets the entry's TTL, in the same round trip.
    pub fn sliding(mut self, on: bool) -> Self {
        self.policy.sliding = on;
        self
    }

    /// Counts the calls under `site` in [`Stats`](crate::Stats) (default: `"read_through"`).
    pub fn site(mut self, site: &'static Site) -> Self {
        self.policy.site = site;
        self
    }

    /// The entry's full Redis key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What [`Cache::get`] does, for this entry's key and tags: a fresh value that decodes as
    /// `T`, or `None`. With tags given here, an entry not carrying all of them is not served.
    pub async fn get<T: DeserializeOwned>(self) -> Option<T> {
        let Entry {
            cache,
            key,
            tags,
            policy,
            ..
        } = self;
        let counters = cache.counters(&policy);
        // Not while an invalidation of the key or of one of its tags is queued (see `aside`).
        if cache.holds(&key, &tags) {
            bump(&counters.misses);
            return None;
        }
        let read = match cache.get_coalesced(&key).await {
            Ok(Some(raw)) if !tags.is_empty() || codec::is_tagged(&raw) => {
                checked(cache, raw, &tags, None).await
            }
            read => read,
        };
        let raw = match read {
            Ok(Some(raw)) if cache.holds_entry(&raw) => {
                bump(&counters.misses);
                return None;
            }
            Ok(Some(raw)) => raw,
            Ok(None) => {
                bump(&counters.misses);
                return None;
            }
            Err(error) => {
                bump(&counters.errors);
                bump(&counters.misses);
                if !error.is_circuit_open() {
                    tracing::warn!(function = policy.name(), key, %error, "cache read failed");
                }
                return None;
            }
        };
        let decoded = cache
            .codec()
            .decode_entry::<T>(&raw, cache.max_value_size());
        let (value, null) = match decoded {
            Ok(Decoded::Value(value, meta)) => {
                let fresh = matches!(
                    freshness(&policy, meta, false),
                    Freshness::Fresh | Freshness::RefreshEarly
                );
                (fresh.then_some(value), false)
            }
            // A "not found" is a value only for a type with a `None`.
            Ok(Decoded::Null(_)) => (nullish::none::<T>(), true),
            Err(error) => {
                bump(&counters.decode_errors);
                tracing::warn!(function = policy.name(), key, %error, "cached value does not decode");
                (None, false)
            }
        };
        bump(match (&value, null) {
            (None, _) => &counters.misses,
            (Some(_), false) => &counters.hits,
            (Some(_), true) => &counters.null_hits,
        });
        value
    }

    /// What [`Cache::remove`] does, for this entry's key and tags: the key is deleted and its
    /// tags (if any were given here) invalidated, as `#[invalidates(key = ..., tags = [...])]`
    /// does.
    pub async fn remove(self) -> Result<(), Error> {
        let Entry {
            cache,
            key,
            tags,
            policy,
            ..
        } = self;
        let counters = cache.counters(&policy);
        delete(cache, &policy, counters, vec![key], tags).await
    }
}

impl<'c> Entry<'c, HasTtl> {
    /// Read-through with this entry's options: what [`Cache::get_or_load`] does.
    ///
    /// The loader is called only on a miss, once per key at a time, in the caller; with `stale`
    /// or `early_refresh` the caller that starts a refresh runs it, and with `timeout` a load
    /// that outlives the limit is abandoned (an annotated function's body is moved into a task
    /// of its own instead).
    pub fn get_or_load<T, E, F, Fut>(
        self,
        loader: F,
    ) -> impl Future<Output = Result<T, E>> + use<'c, T, E, F, Fut>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let Entry {
            cache,
            key,
            tags,
            policy,
            ..
        } = self;
        let policy = settled(policy, &tags);
        async move {
            aside(
                cache,
                Some(key),
                tags,
                &policy,
                ops::<Result<T, E>, Res>(Res, None),
                Lazy(loader),
            )
            .await
        }
    }

    /// What [`Cache::put`] does, with this entry's options: its tags (at their current
    /// versions) are recorded with the value; `stale`/`fail_safe` keep it in Redis for that
    /// much longer; `sliding` stores it without a logical expiry.
    pub async fn put<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        let Entry {
            cache,
            key,
            tags,
            policy,
            ..
        } = self;
        let policy = settled(policy, &tags);
        let counters = cache.counters(&policy);
        if nullish::is_none(value) {
            return delete(cache, &policy, counters, vec![key], Vec::new()).await;
        }
        let versions = if tags.is_empty() {
            Vec::new()
        } else {
            match tagged::stamp(cache, &policy, &tags).await {
                Ok(versions) => versions,
                Err(error) => {
                    return Err(put::unstamped(cache, &policy, counters, key, error).await);
                }
            }
        };
        let encoded = put::encode(
            cache.codec(),
            value,
            Duration::ZERO,
            cache.ttls(&policy),
            &pair(&tags, &versions),
        );
        put::store(cache, &policy, counters, key, encoded).await
    }
}

/// `policy` without `sliding` where an option that contradicts it was given too.
fn settled(mut policy: Policy, tags: &[String]) -> Policy {
    if policy.sliding
        && (policy.stale_ms > 0
            || policy.fail_safe_ms > 0
            || policy.early_beta > 0.0
            || policy.timeout_ms > 0
            || !tags.is_empty())
    {
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Relaxed) {
            tracing::warn!(
                function = policy.name(),
                "`sliding` is ignored beside `stale`, `early_refresh`, `fail_safe`, `timeout` or `tags` (logged once)"
            );
        }
        policy.sliding = false;
    }
    policy
}
