//! What a cached call is and how it caches: a [`Site`] (a name and its counters, one `static`
//! per annotated function or per read-through caller) and a [`Policy`] (TTLs, stampede
//! protection, stale-while-revalidate, fail-safe, early refresh, timeout, sliding), a `Copy`
//! value that an annotation fixes at compile time and a read-through call builds per call.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

/// Where cached calls are counted: a name, shown in [`Stats`](crate::Stats), and that name's
/// counters in each cache. Every annotated function has one of its own; read-through calls
/// ([`Cache::entry`](crate::Cache::entry)) are counted under `"read_through"` unless given one.
///
/// It lives in a `static`, so that finding its counters is an index, not a lookup by name:
///
/// ```
/// use cached_runtime::Site;
///
/// static USER_PROFILES: Site = Site::new("user_profiles");
/// assert_eq!(USER_PROFILES.name(), "user_profiles");
/// ```
#[derive(Debug)]
pub struct Site {
    name: &'static str,
    /// Where its counters are in each cache's registry (see `stats.rs`).
    index: OnceLock<usize>,
    /// Whether a result too large to store was logged already (logged once per site).
    pub(crate) oversize_logged: AtomicBool,
}

impl Site {
    /// A site named `name`.
    pub const fn new(name: &'static str) -> Self {
        Site {
            name,
            index: OnceLock::new(),
            oversize_logged: AtomicBool::new(false),
        }
    }

    /// Its name, as [`Stats`](crate::Stats) shows it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A number of its own, for the counter registries: 0, 1, 2... in the order sites are
    /// first used.
    pub(crate) fn index(&self) -> usize {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        *self.index.get_or_init(|| NEXT.fetch_add(1, Relaxed))
    }
}

/// How a call caches: what an annotated function's attribute says (the macros emit it as a
/// `static` beside the function's [`Site`]), or what a read-through call's
/// [`Entry`](crate::Entry) was given. Durations are kept in milliseconds.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub(crate) site: &'static Site,
    pub(crate) ttl_ms: u64,
    /// 0 = not given (the cache's default, at most `ttl`).
    pub(crate) null_ttl_ms: u64,
    /// Stampede protection (single flight + lease); `lock = false` turns it off.
    pub(crate) lock: bool,
    /// How long a value may be served stale while one caller refreshes it (0 = off).
    pub(crate) stale_ms: u64,
    /// How long past expiry a value may stand in for a failing body (0 = off).
    pub(crate) fail_safe_ms: u64,
    /// XFetch β for probabilistic early refresh (0 = off).
    pub(crate) early_beta: f64,
    /// How long a load may take when a fail-safe value could stand in (0 = no limit).
    pub(crate) timeout_ms: u64,
    /// Sliding expiration: a hit resets the entry's TTL (`GETEX`), and values carry no logical
    /// expiry.
    pub(crate) sliding: bool,
}

const fn ms(secs: u64) -> u64 {
    secs.saturating_mul(1000)
}

/// Milliseconds of a duration given at run time, saturating.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Policy {
    /// The policy of `site`: TTLs in seconds, `null_ttl_secs == 0` means "not given".
    pub const fn new(site: &'static Site, ttl_secs: u64, null_ttl_secs: u64) -> Self {
        Policy::with_ttl_ms(site, ms(ttl_secs), ms(null_ttl_secs))
    }

    pub(crate) const fn with_ttl_ms(site: &'static Site, ttl_ms: u64, null_ttl_ms: u64) -> Self {
        Policy {
            site,
            ttl_ms,
            null_ttl_ms,
            lock: true,
            stale_ms: 0,
            fail_safe_ms: 0,
            early_beta: 0.0,
            timeout_ms: 0,
            sliding: false,
        }
    }

    /// `timeout = ms`.
    pub const fn timeout(mut self, ms: u64) -> Self {
        self.timeout_ms = ms;
        self
    }

    pub(crate) fn timeout_limit(&self) -> Option<Duration> {
        (self.timeout_ms > 0).then(|| Duration::from_millis(self.timeout_ms))
    }

    /// `stale = secs`.
    pub const fn stale(mut self, secs: u64) -> Self {
        self.stale_ms = ms(secs);
        self
    }

    /// `fail_safe = secs`.
    pub const fn fail_safe(mut self, secs: u64) -> Self {
        self.fail_safe_ms = ms(secs);
        self
    }

    /// `early_refresh = beta`.
    pub const fn early_refresh(mut self, beta: f64) -> Self {
        self.early_beta = beta;
        self
    }

    /// `lock = false`: no single flight, no lease; a miss is read, body, `SET`.
    pub const fn without_lock(mut self) -> Self {
        self.lock = false;
        self
    }

    /// `sliding = true`: a hit reads the entry and resets its TTL to `ttl` in one round trip
    /// (`GETEX key PX <ttl>`), so an entry read at least once per `ttl` stays cached; values
    /// are stored without a logical expiry (Redis's TTL is their only one). A null marker keeps
    /// its own: it is served for `null_ttl` after it was stored, however often it is read.
    pub const fn sliding(mut self) -> Self {
        self.sliding = true;
        self
    }

    /// The name of its site, for logs.
    pub(crate) fn name(&self) -> &'static str {
        self.site.name
    }

    /// How long past its logical expiry a value is kept in Redis (`stale`, `fail_safe`).
    pub(crate) fn extra(&self) -> Duration {
        Duration::from_millis(self.stale_ms.max(self.fail_safe_ms))
    }
}
