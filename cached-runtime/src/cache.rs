//! The [`Cache`] handle, its builder and the process-wide default.

use std::{
    fmt,
    future::Future,
    sync::{Arc, OnceLock},
    time::Duration,
};

use crate::{
    Error, ErrorKind, Stats,
    backend::{Backend, Raw},
    codec::CodecKind,
    key::{self, Seg},
    stats::{Counters, Registry, Site},
};

/// Default bound on every Redis round trip: see [`CacheBuilder::op_timeout`].
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_millis(250);

/// Default namespace: see [`CacheBuilder::namespace`].
pub const DEFAULT_NAMESPACE: &str = "cache";

/// A handle to a cache: Redis or in-process, with its namespace, codec and counters.
///
/// Cheap to clone (one `Arc`), `Send + Sync + 'static`. Build one at start-up and pass it to
/// annotations with `cache = ...`, or install it with [`set_global`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cached_runtime::Error> {
/// use std::time::Duration;
///
/// let cache = cached_runtime::Cache::builder()
///     .memory() // or .redis("redis://127.0.0.1:6379/0")
///     .namespace("app")
///     .op_timeout(Duration::from_millis(100))
///     .build()
///     .await?;
/// assert_eq!(cache.namespace(), "app");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    backend_name: &'static str,
    namespace: String,
    op_timeout: Duration,
    null_ttl: Option<Duration>,
    ttl_jitter: f64,
    codec: CodecKind,
    stats: Registry,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.inner.backend_name)
            .field("namespace", &self.inner.namespace)
            .field("op_timeout", &self.inner.op_timeout)
            .field("codec", &self.inner.codec)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
enum BackendChoice {
    Redis(String),
    Memory,
}

/// Configures a [`Cache`]; made by [`Cache::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `.build().await`"]
pub struct CacheBuilder {
    backend: BackendChoice,
    namespace: String,
    op_timeout: Duration,
    null_ttl: Option<Duration>,
    ttl_jitter: f64,
    codec: CodecKind,
    memory_capacity: u64,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        CacheBuilder {
            backend: BackendChoice::Memory,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            op_timeout: DEFAULT_OP_TIMEOUT,
            null_ttl: None,
            ttl_jitter: 0.0,
            codec: CodecKind::Bincode,
            memory_capacity: 100_000,
        }
    }
}

impl CacheBuilder {
    /// Store entries in Redis at `url`: `redis://[user[:password]@]host[:port][/db]`, or
    /// `rediss://…` with the `tls` feature. The connection is made lazily and re-made
    /// automatically after a failure; a Redis that is down at start-up is not an error.
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.backend = BackendChoice::Redis(url.into());
        self
    }

    /// Store entries in this process (the default): a bounded in-memory map with per-entry
    /// TTLs, same semantics as Redis. Handy for tests, examples and single-instance services.
    pub fn memory(mut self) -> Self {
        self.backend = BackendChoice::Memory;
        self
    }

    /// Prefix of every key: an entry's key is `<namespace>:<rendered template>`. Default
    /// `"cache"`. Put a version in it (`"app:v2"`) to roll out a schema change without
    /// flushing anything: old entries are simply no longer read and expire by TTL.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Bound on every Redis round trip; past it the call runs its body instead. Default 250 ms:
    /// far above a healthy Redis's latency (well under a millisecond on a LAN), low enough that
    /// a stalled Redis adds at most that much to a call.
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// Default TTL of cached "not found" results (`None`) for annotations without `null_ttl`.
    /// Without it: `min(ttl, 60 s)`. Never longer than the annotation's `ttl`.
    pub fn null_ttl(mut self, ttl: Duration) -> Self {
        self.null_ttl = Some(ttl);
        self
    }

    /// Shorten each TTL by a random fraction up to `fraction` (0.0 to 0.5, default 0.0), so
    /// entries written together do not all expire together (the guides' "TTL with jitter").
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        self.ttl_jitter = fraction;
        self
    }

    /// Value format: [`Bincode`](crate::Bincode) (default) or [`Json`](crate::Json).
    pub fn codec(mut self, codec: impl Into<CodecKind>) -> Self {
        self.codec = codec.into();
        self
    }

    /// Maximum number of entries of the memory backend (default 100 000); least recently
    /// used entries are evicted past it.
    pub fn memory_capacity(mut self, entries: u64) -> Self {
        self.memory_capacity = entries;
        self
    }

    /// Checks the configuration and makes the cache. Fails only for invalid configuration;
    /// must be called inside a Tokio runtime.
    pub async fn build(self) -> Result<Cache, Error> {
        key::check_namespace(&self.namespace).map_err(Error::config)?;
        if self.op_timeout.is_zero() {
            return Err(Error::config("op_timeout must be greater than zero"));
        }
        if self.null_ttl.is_some_and(|t| t.as_millis() == 0) {
            return Err(Error::config("null_ttl must be at least 1 ms"));
        }
        if !(0.0..=0.5).contains(&self.ttl_jitter) {
            return Err(Error::config(format!(
                "ttl_jitter must be between 0.0 and 0.5, got {}",
                self.ttl_jitter
            )));
        }
        if self.memory_capacity == 0 {
            return Err(Error::config("memory_capacity must be at least 1"));
        }
        let (backend, backend_name) = match &self.backend {
            BackendChoice::Redis(url) => (
                Backend::redis(url, self.op_timeout.max(Duration::from_secs(1)))?,
                "redis",
            ),
            BackendChoice::Memory => (Backend::memory(self.memory_capacity), "memory"),
        };
        let cache = Cache {
            inner: Arc::new(Inner {
                backend,
                backend_name,
                namespace: self.namespace,
                op_timeout: self.op_timeout,
                null_ttl: self.null_ttl,
                ttl_jitter: self.ttl_jitter,
                codec: self.codec,
                stats: Registry::default(),
            }),
        };
        if let Backend::Redis(_) = cache.inner.backend {
            // Start connecting now, without waiting: the first calls find the connection
            // ready, and a Redis that is down is simply retried later.
            let warm = cache.clone();
            tokio::spawn(async move {
                if let Err(e) = warm.ping().await {
                    tracing::warn!(error = %e, "redis not reachable at start-up; calls run uncached until it is");
                }
            });
        }
        Ok(cache)
    }
}

impl Cache {
    /// Starts configuring a cache. Defaults: memory backend, namespace `"cache"`,
    /// bincode, `op_timeout` 250 ms.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// The key prefix.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// `"redis"` or `"memory"`.
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend_name
    }

    /// One round trip to the backend, bounded by `op_timeout`: for readiness checks.
    pub async fn ping(&self) -> Result<(), Error> {
        self.timed(self.inner.backend.ping()).await
    }

    /// Hit/miss/error counters, total and per annotated function.
    pub fn stats(&self) -> Stats {
        self.inner.stats.snapshot()
    }

    /// The full Redis key for a template rendered from `segments` (used by the macros;
    /// exposed so tools can compute keys the same way).
    #[doc(hidden)]
    pub fn render_key(&self, segments: &[Seg<'_>]) -> String {
        key::render(&self.inner.namespace, segments)
    }

    /// Deletes entries by their key relative to the namespace (`"user:42"` deletes
    /// `app:user:42`), in one round trip. Returns how many existed.
    ///
    /// Values are not escaped here: pass keys exactly as the annotations render them.
    pub async fn delete(&self, keys: &[&str]) -> Result<u64, Error> {
        let full: Vec<String> = keys
            .iter()
            .map(|k| key::join(&self.inner.namespace, k))
            .collect();
        self.timed(self.inner.backend.del(&full)).await
    }

    pub(crate) fn codec(&self) -> CodecKind {
        self.inner.codec
    }

    pub(crate) fn counters(&self, site: &'static Site) -> Arc<Counters> {
        self.inner.stats.site(site)
    }

    pub(crate) async fn get_raw(&self, key: &str) -> Result<Option<Raw>, Error> {
        self.timed(self.inner.backend.get(key)).await
    }

    pub(crate) async fn set_raw(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), Error> {
        self.timed(self.inner.backend.set(key, value, ttl)).await
    }

    pub(crate) async fn del_raw(&self, keys: &[String]) -> Result<u64, Error> {
        self.timed(self.inner.backend.del(keys)).await
    }

    /// The TTLs of a site: (value TTL, null TTL), jittered.
    pub(crate) fn ttls(&self, site: &Site) -> (Duration, Duration) {
        let ttl = Duration::from_secs(site.ttl_secs);
        let null_ttl = if site.null_ttl_secs > 0 {
            Duration::from_secs(site.null_ttl_secs)
        } else {
            self.inner
                .null_ttl
                .unwrap_or(Duration::from_secs(60))
                .min(ttl)
        };
        (self.jitter(ttl), self.jitter(null_ttl))
    }

    fn jitter(&self, ttl: Duration) -> Duration {
        if self.inner.ttl_jitter == 0.0 {
            return ttl;
        }
        let cut = rand::random::<f64>() * self.inner.ttl_jitter;
        ttl.mul_f64(1.0 - cut).max(Duration::from_millis(1))
    }

    async fn timed<T>(&self, op: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        match tokio::time::timeout(self.inner.op_timeout, op).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{} did not answer within {:?}",
                    self.inner.backend_name, self.inner.op_timeout
                ),
            )),
        }
    }
}

static GLOBAL: OnceLock<Cache> = OnceLock::new();

/// Installs the process-wide default cache, used by annotations without `cache = ...`.
/// Call it once at start-up; a second call returns an error and changes nothing.
///
/// Until it is called, annotated functions without `cache = ...` run uncached (a warning is
/// logged once).
pub fn set_global(cache: Cache) -> Result<(), Error> {
    GLOBAL.set(cache).map_err(|_| {
        Error::new(
            ErrorKind::GlobalAlreadySet,
            "the global cache is already set; set_global may be called once per process",
        )
    })
}

/// The process-wide default cache, if [`set_global`] was called.
pub fn global() -> Option<&'static Cache> {
    GLOBAL.get()
}
