//! [`CacheBuilder`]: the options of a [`Cache`], checked once by [`CacheBuilder::build`].

use std::{fmt, time::Duration};

use crate::{
    cache::{Cache, Settings, write_timeout},
    error::Error,
    store::{
        Store,
        connect::{self, TlsOptions},
    },
    wire::{
        codec::{CodecKind, DEFAULT_MAX_VALUE_SIZE, HEADER_LEN},
        key,
    },
};

/// Default bound on every Redis round trip: see [`CacheBuilder::op_timeout`].
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_millis(250);

/// Default lease duration: see [`CacheBuilder::lock_ttl`].
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(5);

/// Default largest value a fill event carries: see [`CacheBuilder::fill_event_max_value`].
pub const DEFAULT_FILL_EVENT_MAX_VALUE: usize = 4096;

/// Redis' own limit on a string value: see [`CacheBuilder::max_value_size`].
const REDIS_MAX_VALUE: usize = 512 * 1024 * 1024;

/// Default namespace: see [`CacheBuilder::namespace`].
pub const DEFAULT_NAMESPACE: &str = "cache";

#[derive(Clone)]
enum BackendChoice {
    Redis(String),
    #[cfg(feature = "cluster")]
    Cluster(Vec<String>),
    #[cfg(feature = "sentinel")]
    Sentinel {
        sentinels: Vec<String>,
        master_name: String,
    },
    Memory,
}

/// Shows the URL with its user info redacted: a builder may be logged.
impl fmt::Debug for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendChoice::Redis(url) => {
                f.debug_tuple("Redis").field(&connect::redact(url)).finish()
            }
            #[cfg(feature = "cluster")]
            BackendChoice::Cluster(urls) => f
                .debug_tuple("Cluster")
                .field(&urls.iter().map(|u| connect::redact(u)).collect::<Vec<_>>())
                .finish(),
            #[cfg(feature = "sentinel")]
            BackendChoice::Sentinel {
                sentinels,
                master_name,
            } => f
                .debug_struct("Sentinel")
                .field(
                    "sentinels",
                    &sentinels
                        .iter()
                        .map(|url| connect::redact(url))
                        .collect::<Vec<_>>(),
                )
                .field("master_name", master_name)
                .finish(),
            BackendChoice::Memory => f.write_str("Memory"),
        }
    }
}

/// The primary's own credentials behind Sentinel (user name, password): never shown.
#[cfg(feature = "sentinel")]
#[derive(Clone)]
struct MasterAuth(String, String);

#[cfg(feature = "sentinel")]
impl fmt::Debug for MasterAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
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
    breaker: (u32, Duration),
    lock_ttl: Duration,
    fill_event_max: usize,
    max_value_size: usize,
    tls: TlsOptions,
    #[cfg(feature = "sentinel")]
    sentinel_master_auth: Option<MasterAuth>,
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
            breaker: (5, Duration::from_secs(1)),
            lock_ttl: DEFAULT_LOCK_TTL,
            fill_event_max: DEFAULT_FILL_EVENT_MAX_VALUE,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            tls: TlsOptions::default(),
            #[cfg(feature = "sentinel")]
            sentinel_master_auth: None,
        }
    }
}

impl CacheBuilder {
    /// Store entries in Redis at `url`: `redis://[user[:password]@]host[:port][/db]`, or
    /// `rediss://…` with the `tls` feature. The connection is made lazily and re-made
    /// automatically after a failure; a Redis that is down at start-up is not an error.
    ///
    /// TLS (`tls` feature): rustls with its `ring` crypto provider, which is installed as the
    /// process-wide rustls default unless the application installed one before `build()`. The
    /// server's certificate is checked against the built-in webpki (Mozilla) roots, or the CA
    /// given to `tls_root_ca`; `tls_client_auth`
    /// adds a client certificate. `rediss://host:port/0#insecure` accepts any server
    /// certificate (development only: a warning is logged at `build()`). A failed handshake is
    /// a Redis error like any other: the call runs its body.
    ///
    /// The URL's user info is never shown: the builder's `Debug`, errors and log lines print
    /// `redis://***@host:port/db`.
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.backend = BackendChoice::Redis(url.into());
        self
    }

    /// Store entries in a Redis Cluster, found through `nodes`: URLs of some of its nodes
    /// (`redis://[user[:password]@]host:port`, or `rediss://…` with the `tls` feature; one
    /// reachable node is enough, the others are learned from it). Credentials and TLS settings
    /// of the first URL are used for every node.
    ///
    /// Every operation touches one hash slot: an entry and its lease key share one
    /// (`app:user:42`, `{app:user:42}:lock`), and an invalidation of keys in several slots
    /// is one atomic delete per slot, all sent at once. `MOVED` and `ASK` replies are followed.
    /// The circuit breaker is per shard (a primary and its replicas): a failing primary
    /// turns the cache off for its own keys only. Events that wake other instances' waiters
    /// are published with `PUBLISH`, which the cluster broadcasts to every node.
    ///
    /// Like [`redis`](Self::redis), nothing is connected at `build()`.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), cached_runtime::Error> {
    /// let cache = cached_runtime::Cache::builder()
    ///     .redis_cluster(["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"])
    ///     .namespace("app")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub fn redis_cluster<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.backend = BackendChoice::Cluster(nodes.into_iter().map(Into::into).collect());
        self
    }

    /// Store entries in the primary of a Redis Sentinel group: the sentinels at `sentinels`
    /// (`redis://[user[:password]@]host[:port][/db]`, `rediss://…` with the `tls` feature) say
    /// where the primary monitored as `master_name` is, and the cache follows it when they
    /// fail it over to a replica. Like [`redis`](Self::redis), nothing is connected by
    /// [`build`](Self::build): the primary is looked up in the background, and until it is
    /// found (and while it is away) calls run their bodies.
    ///
    /// - **Credentials.** A URL's user info authenticates to the sentinels (their
    ///   `requirepass` or ACL user) and, by default, to the primary too: one password for the
    ///   whole group is the common set-up. If the data nodes have credentials of their own, give
    ///   them with [`sentinel_master_auth`](Self::sentinel_master_auth).
    /// - **Database.** The URLs' `/db` is the primary's database (sentinels have none).
    /// - **TLS.** With `rediss://` URLs the primary is reached with TLS too, and `tls_root_ca`
    ///   / `tls_client_auth` apply to both; `#insecure` turns verification off for both. The
    ///   primary's certificate is checked against the address the sentinels report (an IP
    ///   address unless they run with `announce-hostnames yes`).
    ///
    /// The URLs must agree on all of that (a sentinel group shares its credentials).
    /// `build()` fails for an empty list, an empty master name or a bad URL, with a message
    /// that shows no credentials.
    ///
    /// **Failover.** The primary is looked up again at once when a sentinel announces
    /// `+switch-master` (the cache subscribes to every sentinel), and, at most every 250 ms,
    /// when calls fail in a way that says the server is unhealthy: a timeout, a refused or
    /// dropped connection, a `READONLY` reply from a primary that was demoted. Lookups run in
    /// a background task; no call waits for one. While the primary is away calls run their
    /// bodies (each bounded by [`op_timeout`](Self::op_timeout)); once the sentinels have
    /// promoted a replica, hits resume on it, without rebuilding the cache.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cached_runtime::Error> {
    /// let cache = cached_runtime::Cache::builder()
    ///     .redis_sentinel(
    ///         [
    ///             "redis://:s3cret@sentinel-1:26379/0",
    ///             "redis://:s3cret@sentinel-2:26379/0",
    ///             "redis://:s3cret@sentinel-3:26379/0",
    ///         ],
    ///         "mymaster",
    ///     )
    ///     .namespace("app")
    ///     .build()
    ///     .await?;
    /// cache.ping().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
    pub fn redis_sentinel(
        mut self,
        sentinels: impl IntoIterator<Item = impl Into<String>>,
        master_name: impl Into<String>,
    ) -> Self {
        self.backend = BackendChoice::Sentinel {
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            master_name: master_name.into(),
        };
        self
    }

    /// The primary's own credentials, with [`redis_sentinel`](Self::redis_sentinel), when
    /// they are not those of the sentinel URLs: `username` (empty: the `default` user) and
    /// `password` (empty: no authentication at all, for a primary without a password behind
    /// sentinels with one). Never shown: the builder's `Debug` prints `"***"`. Without
    /// `redis_sentinel`, [`build`](Self::build) fails.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = cached_runtime::Cache::builder()
    ///     .redis_sentinel(["redis://sentinel-1:26379", "redis://sentinel-2:26379"], "mymaster")
    ///     .sentinel_master_auth("app", std::env::var("REDIS_PASSWORD")?)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
    pub fn sentinel_master_auth(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.sentinel_master_auth = Some(MasterAuth(username.into(), password.into()));
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

    /// Circuit breaker: after `failures` consecutive round trips that say Redis is unhealthy
    /// (timeouts, broken connections, `LOADING`, `BUSY`...; not replies about one key),
    /// calls skip Redis for `cooldown` and go straight to their bodies, without waiting out a
    /// timeout each; then one call probes Redis and closes the breaker if it answers.
    /// Default: 5 failures, 1 s.
    pub fn circuit_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.breaker = (failures, cooldown);
        self
    }

    /// How long a loader's lease lasts (default 5 s): callers in other processes wait at most
    /// this long for its value before loading themselves; a loader that dies holds nothing
    /// longer. Its result is stored only if the lease is still valid when the load ends.
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// Largest value (encoded, in bytes) that travels with its fill event (default 4 KiB; 0:
    /// never). When a lease holder stores a value, every `Cache` on the namespace hears of it
    /// through one pub/sub message; with the value inside, callers waiting in other processes
    /// take it from the message instead of reading it with one more round trip. Larger values
    /// are announced without it (each pub/sub subscriber receives every fill event), and so is
    /// a `#[cache_put]`'s value, which waiters read.
    pub fn fill_event_max_value(mut self, bytes: usize) -> Self {
        self.fill_event_max = bytes;
        self
    }

    /// Largest value, encoded and with its 16-byte header, that the cache stores or reads
    /// (default [`DEFAULT_MAX_VALUE_SIZE`], 16 MiB; at most Redis' own limit, 512 MiB).
    ///
    /// - A result larger than this is returned to its caller (and shared with the callers
    ///   waiting for it in this process) but not stored: counted in `oversized`, logged once
    ///   per function.
    /// - A stored value larger than this is a miss, without being decoded.
    /// - Decoding a value never allocates more than 16 × this (rounded up to 1 MiB, 16 MiB,
    ///   256 MiB or 4 GiB): a corrupt or hostile length prefix is a decode error, not an
    ///   allocation.
    ///
    /// Values of 256 KiB and more are decoded with `tokio::task::block_in_place` on a
    /// multi-thread runtime, so a large decode does not hold up the other tasks of its worker;
    /// a write's timeout grows with its value's size (`op_timeout` plus 1 ms per 8 KiB).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cached_runtime::Error> {
    /// let cache = cached_runtime::Cache::builder()
    ///     .max_value_size(1024 * 1024) // 1 MiB
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// Trust only the CA certificate(s) in `pem` (PEM, one or more `BEGIN CERTIFICATE`
    /// blocks) for the server's certificate of a `rediss://` URL, instead of the built-in
    /// webpki (Mozilla) roots: for a Redis whose certificate a private CA signed. Invalid PEM
    /// makes [`build`](Self::build) fail; so does this option with a plain `redis://` URL (the
    /// memory backend ignores it; `#insecure` in the URL overrides it). Only with the `tls`
    /// feature.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = cached_runtime::Cache::builder()
    ///     .redis("rediss://redis.internal:6380/0")
    ///     .tls_root_ca(std::fs::read("/etc/redis/ca.pem")?)
    ///     .build()
    ///     .await?;
    /// cache.ping().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_root_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.root_ca = Some(pem.into());
        self
    }

    /// Mutual TLS: present the client certificate (chain) `cert_pem` and its private key
    /// `key_pem` (PEM: PKCS#8, PKCS#1 or SEC1) to a `rediss://` server that requires one
    /// (`tls-auth-clients yes`). Invalid PEM, or a key that does not match the certificate,
    /// makes [`build`](Self::build) fail; so does this option with a plain `redis://` URL (the
    /// memory backend ignores it). The key is never printed (the builder's `Debug` shows `<redacted>`). Only with the `tls`
    /// feature.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = cached_runtime::Cache::builder()
    ///     .redis("rediss://redis.internal:6380/0")
    ///     .tls_root_ca(std::fs::read("/etc/redis/ca.pem")?)
    ///     .tls_client_auth(
    ///         std::fs::read("/etc/app/client.pem")?,
    ///         std::fs::read("/etc/app/client.key")?,
    ///     )
    ///     .build()
    ///     .await?;
    /// cache.ping().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_client_auth(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.client_auth = Some((cert_pem.into(), key_pem.into()));
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
        if self.breaker.0 == 0 || self.breaker.1.is_zero() {
            return Err(Error::config(
                "circuit_breaker needs at least 1 failure and a cooldown greater than zero",
            ));
        }
        if self.lock_ttl.as_millis() == 0 {
            return Err(Error::config("lock_ttl must be at least 1 ms"));
        }
        if !(HEADER_LEN + 1..=REDIS_MAX_VALUE).contains(&self.max_value_size) {
            return Err(Error::config(format!(
                "max_value_size must be between {} bytes and 512 MiB (Redis' limit), got {}",
                HEADER_LEN + 1,
                self.max_value_size
            )));
        }
        if self.memory_capacity == 0 {
            return Err(Error::config("memory_capacity must be at least 1"));
        }
        #[cfg(feature = "sentinel")]
        if self.sentinel_master_auth.is_some()
            && !matches!(self.backend, BackendChoice::Sentinel { .. })
        {
            return Err(Error::config(
                "sentinel_master_auth needs a Sentinel backend (redis_sentinel)",
            ));
        }
        let connect_timeout = self.op_timeout.max(Duration::from_secs(1));
        // The longest round trip the cache allows (a write of the largest value): the cache
        // bounds each round trip itself, redis-rs must not cut one short.
        let response_timeout = write_timeout(self.op_timeout, self.max_value_size);
        let store = match &self.backend {
            BackendChoice::Redis(url) => {
                Store::node(url, &self.tls, connect_timeout, response_timeout)?
            }
            #[cfg(feature = "cluster")]
            BackendChoice::Cluster(urls) => {
                Store::cluster(urls, &self.tls, connect_timeout, response_timeout)?
            }
            #[cfg(feature = "sentinel")]
            BackendChoice::Sentinel {
                sentinels,
                master_name,
            } => Store::sentinel(
                sentinels,
                master_name,
                self.sentinel_master_auth
                    .as_ref()
                    .map(|MasterAuth(user, password)| (user.as_str(), password.as_str())),
                &self.tls,
                connect_timeout,
                response_timeout,
            )?,
            BackendChoice::Memory => Store::memory(self.memory_capacity),
        };
        Ok(Cache::start(
            store,
            Settings {
                namespace: self.namespace,
                op_timeout: self.op_timeout,
                null_ttl: self.null_ttl,
                ttl_jitter: self.ttl_jitter,
                codec: self.codec,
                breaker: self.breaker,
                lock_ttl: self.lock_ttl,
                fill_event_max: self.fill_event_max,
                max_value_size: self.max_value_size,
            },
        ))
    }
}

impl Cache {
    /// Starts configuring a cache. Defaults: memory backend, namespace `"cache"`,
    /// bincode, `op_timeout` 250 ms.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }
}
