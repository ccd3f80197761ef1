//! The [`Cache`] handle and the process-wide default.

use std::{
    fmt,
    future::Future,
    sync::{
        Arc, Mutex, OnceLock, Weak,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::sync::watch;

use crate::{
    coord::{
        Local,
        breaker::Breaker,
        events,
        flight::{Flights, Waiters},
        reads::Part,
    },
    error::{Error, ErrorKind},
    policy::Policy,
    stats::{Counters, Registry, Stats},
    store::{Lease, Raw, Store},
    wire::{
        codec::CodecKind,
        key::{self, KeyPart},
    },
};

/// How much longer a write may take per byte of its value: 1 ms per 8 KiB (8 MB/s, a slow
/// link), on top of `op_timeout` (a 16 MiB value gets 2 s more). A bound, not a wait: a
/// healthy write ends as soon as Redis answers.
const WRITE_BYTES_PER_MS: usize = 8 * 1024;

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

pub(crate) struct Inner {
    store: Store,
    namespace: String,
    op_timeout: Duration,
    null_ttl: Option<Duration>,
    ttl_jitter: f64,
    codec: CodecKind,
    stats: Registry,
    breaker: Breaker,
    lock_ttl: Duration,
    fill_event_max: usize,
    max_value_size: usize,
    /// Pub/sub channel of fill/release/invalidate events: `<namespace>:__events`.
    channel: String,
    /// Flights, reads and waiters of this process; the event listener holds it weakly.
    local: Arc<Local>,
    /// Invalidations that failed, retried in the background.
    pending: Mutex<Vec<String>>,
    pending_counts: PendingCounts,
    /// Dropped with the cache: stops its background tasks.
    _shutdown: watch::Sender<()>,
}

#[derive(Debug, Default)]
struct PendingCounts {
    deferred: AtomicU64,
    recovered: AtomicU64,
    dropped: AtomicU64,
}

/// Most keys kept for a later invalidation; past it, failures are only logged and counted.
const MAX_PENDING: usize = 100_000;

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.inner.store.name())
            .field("namespace", &self.inner.namespace)
            .field("op_timeout", &self.inner.op_timeout)
            .field("codec", &self.inner.codec)
            .finish_non_exhaustive()
    }
}

/// What a cache is made of besides its backend, as [`CacheBuilder::build`] checked it.
///
/// [`CacheBuilder::build`]: crate::CacheBuilder::build
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) namespace: String,
    pub(crate) op_timeout: Duration,
    pub(crate) null_ttl: Option<Duration>,
    pub(crate) ttl_jitter: f64,
    pub(crate) codec: CodecKind,
    /// Consecutive failures, cooldown.
    pub(crate) breaker: (u32, Duration),
    pub(crate) lock_ttl: Duration,
    pub(crate) fill_event_max: usize,
    pub(crate) max_value_size: usize,
}

impl Cache {
    /// Makes the cache on `store` and starts its background tasks (the invalidation retry
    /// loop; with Redis, the pub/sub listener and a first connection attempt).
    pub(crate) fn start(store: Store, settings: Settings) -> Cache {
        let (shutdown, shutdown_rx) = watch::channel(());
        let channel = key::join(&settings.namespace, "__events");
        let cache = Cache {
            inner: Arc::new(Inner {
                store,
                namespace: settings.namespace,
                op_timeout: settings.op_timeout,
                null_ttl: settings.null_ttl,
                ttl_jitter: settings.ttl_jitter,
                codec: settings.codec,
                stats: Registry::default(),
                breaker: Breaker::new(settings.breaker.0, settings.breaker.1),
                lock_ttl: settings.lock_ttl,
                fill_event_max: settings.fill_event_max,
                max_value_size: settings.max_value_size,
                channel: channel.clone(),
                local: Arc::default(),
                pending: Mutex::new(Vec::new()),
                pending_counts: PendingCounts::default(),
                _shutdown: shutdown,
            }),
        };
        tokio::spawn(retry_invalidations(
            Arc::downgrade(&cache.inner),
            shutdown_rx.clone(),
        ));
        if cache.inner.store.is_shared() {
            tokio::spawn(events::listen(
                Arc::downgrade(&cache.inner.local),
                cache.inner.store.clone(),
                channel,
                shutdown_rx,
            ));
            // Start connecting now, without waiting: the first calls find the connection
            // ready, and a Redis that is down is simply retried later.
            let warm = cache.clone();
            tokio::spawn(async move {
                if let Err(e) = warm.ping().await {
                    tracing::warn!(error = %e, "redis not reachable at start-up; calls run uncached until it is");
                }
            });
        }
        cache
    }

    /// The key prefix.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// `"redis"` or `"memory"`.
    pub fn backend_name(&self) -> &'static str {
        self.inner.store.name()
    }

    /// One round trip to the backend, bounded by `op_timeout`: for readiness checks.
    pub async fn ping(&self) -> Result<(), Error> {
        self.timed(self.inner.store.ping()).await
    }

    /// Hit/miss/error counters, total and per annotated function.
    pub fn stats(&self) -> Stats {
        let mut stats = self.inner.stats.snapshot();
        stats.breaker_opens = self.inner.breaker.opens.load(Relaxed);
        stats.breaker_rejections = self.inner.breaker.rejected.load(Relaxed);
        stats.breaker_open = self.inner.breaker.is_open();
        let pending = &self.inner.pending_counts;
        stats.invalidations_deferred = pending.deferred.load(Relaxed);
        stats.invalidations_recovered = pending.recovered.load(Relaxed);
        stats.invalidations_dropped = pending.dropped.load(Relaxed);
        stats.invalidations_pending = self.inner.pending.lock().map_or(0, |p| p.len() as u64);
        stats
    }

    /// The full Redis key for a template rendered from `segments` (used by the macros;
    /// exposed so tools can compute keys the same way).
    #[doc(hidden)]
    pub fn render_key(&self, lits: &[&str], args: &[&dyn KeyPart]) -> String {
        key::render(&self.inner.namespace, lits, args)
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
        let mut deleted = 0;
        for group in self.inner.store.by_slot(&full) {
            deleted += self.timed(self.inner.store.del(&group)).await?;
        }
        Ok(deleted)
    }

    pub(crate) fn codec(&self) -> CodecKind {
        self.inner.codec
    }

    pub(crate) fn max_value_size(&self) -> usize {
        self.inner.max_value_size
    }

    pub(crate) fn counters(&self, site: &'static Policy) -> &Counters {
        self.inner.stats.site(site)
    }

    pub(crate) async fn get_raw(&self, key: &str) -> Result<Option<Raw>, Error> {
        self.timed(self.inner.store.get(key)).await
    }

    /// [`get_raw`](Self::get_raw), sharing one round trip with concurrent reads of `key`
    /// (see `reads.rs`).
    pub(crate) async fn get_coalesced(&self, key: &str) -> Result<Option<Raw>, Error> {
        match self.inner.local.reads.join(key) {
            Part::Lead(lead) => {
                let answer = self.get_raw(key).await;
                lead.finish(&answer);
                answer
            }
            Part::Join(joined) => match joined.wait().await {
                Some(answer) => answer,
                None => self.get_raw(key).await,
            },
            Part::Alone(_active) => self.get_raw(key).await,
        }
    }

    pub(crate) async fn set_raw(
        &self,
        key: &str,
        value: Arc<[u8]>,
        ttl: Duration,
    ) -> Result<(), Error> {
        let limit = self.write_timeout(value.len());
        self.timed_within(limit, self.inner.store.set(key, value, ttl))
            .await
    }

    /// A write's bound: `op_timeout`, plus 1 ms per 32 KiB of value (sending a large value
    /// takes time of its own; a write that lands must not be counted as a failure).
    fn write_timeout(&self, bytes: usize) -> Duration {
        write_timeout(self.inner.op_timeout, bytes)
    }

    /// Deletes entries with their leases, announces it to other instances, and forgets local
    /// flights and reads of those keys — before the delete and again after it, so that no call
    /// that starts once this returns joins a load or read that began before the delete landed.
    pub(crate) async fn invalidate_keys(&self, keys: &[String]) -> Result<u64, Error> {
        let forget = || {
            for key in keys {
                self.inner.local.forget(key);
            }
        };
        forget();
        let mut deleted = Ok(0);
        for group in self.inner.store.by_slot(keys) {
            match self
                .timed(self.inner.store.invalidate(&group, &self.inner.channel))
                .await
            {
                Ok(n) => deleted = deleted.map(|d| d + n),
                Err(error) => {
                    deleted = Err(error);
                    break;
                }
            }
        }
        forget();
        for key in keys {
            self.wake_local(key);
        }
        deleted
    }

    pub(crate) fn flights(&self) -> &Flights {
        &self.inner.local.flights
    }

    pub(crate) fn waiters(&self) -> &Waiters {
        &self.inner.local.waiters
    }

    pub(crate) fn lock_ttl(&self) -> Duration {
        self.inner.lock_ttl
    }

    /// Whether other processes share the entries (Redis), and their events arrive through
    /// pub/sub.
    pub(crate) fn is_shared(&self) -> bool {
        self.inner.store.is_shared()
    }

    /// Takes the lease of `key`: `Some(token)` if we got it (also when it replaced a foreign
    /// value under the lease key: then `repaired` is set).
    pub(crate) async fn lease(&self, key: &str) -> Result<Leased, Error> {
        let token = format!("{:016x}", rand::random::<u64>());
        let got = self
            .timed(self.inner.store.try_lease(key, &token, self.inner.lock_ttl))
            .await?;
        Ok(Leased {
            token: (got != Lease::Held).then_some(token),
            repaired: got == Lease::Repaired,
        })
    }

    /// Stores under the lease; `false`: the lease was lost (expired or voided by an
    /// invalidation), nothing was stored.
    pub(crate) async fn put_leased(
        &self,
        key: &str,
        token: &str,
        value: Arc<[u8]>,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let limit = self.write_timeout(value.len());
        let stored = self
            .timed_within(
                limit,
                self.inner.store.put_leased(
                    key,
                    token,
                    value,
                    ttl,
                    &self.inner.channel,
                    self.inner.fill_event_max,
                ),
            )
            .await;
        self.wake_local(key);
        stored
    }

    pub(crate) async fn release(&self, key: &str, token: &str) -> Result<(), Error> {
        let released = self
            .timed(self.inner.store.release(key, token, &self.inner.channel))
            .await;
        self.wake_local(key);
        released
    }

    /// The memory backend has no pub/sub: wake this process's waiters directly. (With Redis,
    /// the event channel wakes every instance, this one included.)
    fn wake_local(&self, key: &str) {
        if !self.is_shared() {
            self.inner.local.waiters.wake(key, None);
        }
    }

    /// Keeps `keys` for a background retry of their invalidation.
    pub(crate) fn defer_invalidation(&self, keys: &[String]) {
        let mut pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        let counts = &self.inner.pending_counts;
        if pending.len() + keys.len() > MAX_PENDING {
            counts.dropped.fetch_add(keys.len() as u64, Relaxed);
            tracing::error!(
                ?keys,
                "too many pending invalidations; these stay stale until their TTL"
            );
            return;
        }
        pending.extend_from_slice(keys);
        counts.deferred.fetch_add(keys.len() as u64, Relaxed);
    }

    /// The TTLs of a site, jittered.
    pub(crate) fn ttls(&self, site: &Policy) -> Ttls {
        let ttl = Duration::from_secs(site.ttl_secs);
        let null_ttl = if site.null_ttl_secs > 0 {
            Duration::from_secs(site.null_ttl_secs)
        } else {
            self.inner
                .null_ttl
                .unwrap_or(Duration::from_secs(60))
                .min(ttl)
        };
        Ttls {
            ttl: self.jitter(ttl),
            null_ttl: self.jitter(null_ttl),
            extra: Duration::from_secs(site.stale_secs.max(site.fail_safe_secs)),
        }
    }

    fn jitter(&self, ttl: Duration) -> Duration {
        if self.inner.ttl_jitter == 0.0 {
            return ttl;
        }
        let cut = rand::random::<f64>() * self.inner.ttl_jitter;
        ttl.mul_f64(1.0 - cut).max(Duration::from_millis(1))
    }

    /// One backend round trip: through the circuit breaker, bounded by `op_timeout`.
    async fn timed<T>(&self, op: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        self.timed_within(self.inner.op_timeout, op).await
    }

    /// One backend round trip through the circuit breaker, bounded by `limit`. Only failures
    /// that say Redis is unhealthy count toward the breaker; a reply about one key (e.g.
    /// `WRONGTYPE`) is an answer from a working Redis.
    async fn timed_within<T>(
        &self,
        limit: Duration,
        op: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let Some(admit) = self.inner.breaker.admit() else {
            return Err(Error::new(
                ErrorKind::CircuitOpen,
                "circuit breaker open: redis failed repeatedly, skipping it for now",
            ));
        };
        let result = match tokio::time::timeout(limit, op).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{} did not answer within {limit:?}",
                    self.inner.store.name()
                ),
            )),
        };
        match &result {
            Err(error) if error.is_unhealthy() => self.inner.breaker.failure(admit),
            _ => self.inner.breaker.success(admit),
        }
        if result.as_ref().is_err_and(Error::is_unhealthy) {
            // A node that follows a primary through Sentinel looks for it again.
            self.inner.store.failed();
        }
        result
    }
}

impl Inner {
    /// One attempt at the invalidations that failed before.
    pub(crate) async fn retry_pending(self: &Arc<Self>) {
        let keys = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.is_empty() {
                return;
            }
            std::mem::take(&mut *pending)
        };
        let cache = Cache {
            inner: self.clone(),
        };
        let mut done = 0;
        for chunk in keys.chunks(256) {
            if cache.invalidate_keys(chunk).await.is_err() {
                break;
            }
            done += chunk.len();
        }
        if done > 0 {
            self.pending_counts
                .recovered
                .fetch_add(done as u64, Relaxed);
            tracing::info!(
                keys = done,
                "pending invalidations applied after redis recovered"
            );
        }
        if done < keys.len() {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.extend_from_slice(&keys[done..]);
        }
    }
}

/// Retries invalidations that failed, until they succeed; stops when the cache is dropped.
async fn retry_invalidations(inner: Weak<Inner>, mut shutdown: watch::Receiver<()>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        inner.retry_pending().await;
    }
}

/// The bound on a write of `bytes`: `op_timeout` plus 1 ms per [`WRITE_BYTES_PER_MS`].
pub(crate) fn write_timeout(op_timeout: Duration, bytes: usize) -> Duration {
    op_timeout + Duration::from_millis((bytes / WRITE_BYTES_PER_MS) as u64)
}

/// What a lease attempt got.
#[derive(Debug)]
pub(crate) struct Leased {
    /// Our token, if we hold the lease now.
    pub(crate) token: Option<String>,
    /// The lease key held foreign data (another type, no expiry, not our token) and was
    /// replaced by our lease.
    pub(crate) repaired: bool,
}

/// How long an entry lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ttls {
    /// Logical lifetime of a value: fresh until then.
    pub(crate) ttl: Duration,
    /// Lifetime of a "not found".
    pub(crate) null_ttl: Duration,
    /// How long a value is kept in Redis past its logical expiry (`max(stale, fail_safe)`).
    pub(crate) extra: Duration,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls() {
        for url in [
            "redis://127.0.0.1:1",
            "redis://127.0.0.1:1/3",
            "redis://user:secret@127.0.0.1:1/0",
            "redis://:secret@localhost",
        ] {
            let cache = Cache::builder().redis(url).build().await;
            assert!(cache.is_ok(), "{url}: {cache:?}");
        }
        let tls = Cache::builder()
            .redis("rediss://127.0.0.1:1/0")
            .build()
            .await;
        if cfg!(feature = "tls") {
            assert!(tls.is_ok(), "{tls:?}");
        } else {
            let err = tls.unwrap_err();
            assert!(err.is_config(), "{err}");
        }
        let bad = Cache::builder().redis("redis://user:secret@").build().await;
        if let Err(err) = bad {
            assert!(
                !format!("{err}{err:?}").contains("secret"),
                "password leaked: {err:?}"
            );
        }
    }
}
