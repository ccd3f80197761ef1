//! The caching policy of one annotated function, as its attribute gives it.

use std::sync::{
    OnceLock,
    atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed},
};

/// What an annotated function's attribute says: its name, TTLs, stampede protection,
/// stale-while-revalidate, fail-safe, early refresh and timeout. The macros emit one `static`
/// per function (as `__private::Site`, the name the expansions use).
#[doc(hidden)]
#[derive(Debug)]
pub struct Policy {
    pub(crate) name: &'static str,
    pub(crate) ttl_secs: u64,
    /// 0 = not given in the attribute.
    pub(crate) null_ttl_secs: u64,
    /// Stampede protection (single flight + lease); `lock = false` turns it off.
    pub(crate) lock: bool,
    /// Seconds a value may be served stale while one caller refreshes it (0 = off).
    pub(crate) stale_secs: u64,
    /// Seconds past expiry a value may stand in for a failing body (0 = off).
    pub(crate) fail_safe_secs: u64,
    /// XFetch β for probabilistic early refresh (0 = off).
    pub(crate) early_beta: f64,
    /// Milliseconds a load may take when a fail-safe value could stand in (0 = no limit).
    pub(crate) timeout_ms: u64,
    /// Sliding expiration: a hit resets the entry's TTL (`GETEX`), and values carry no logical
    /// expiry.
    pub(crate) sliding: bool,
    /// Where its counters are in each cache's registry (see `stats.rs`).
    index: OnceLock<usize>,
    /// Whether a result too large to store was logged already (logged once per function).
    pub(crate) oversize_logged: AtomicBool,
}

impl Policy {
    /// `name` is shown in [`Stats`]; TTLs are in seconds, `null_ttl_secs == 0` means "not given".
    pub const fn new(name: &'static str, ttl_secs: u64, null_ttl_secs: u64) -> Self {
        Policy {
            name,
            ttl_secs,
            null_ttl_secs,
            lock: true,
            stale_secs: 0,
            fail_safe_secs: 0,
            early_beta: 0.0,
            timeout_ms: 0,
            sliding: false,
            index: OnceLock::new(),
            oversize_logged: AtomicBool::new(false),
        }
    }

    /// `timeout = ms`.
    pub const fn timeout(mut self, ms: u64) -> Self {
        self.timeout_ms = ms;
        self
    }

    pub(crate) fn timeout_limit(&self) -> Option<std::time::Duration> {
        (self.timeout_ms > 0).then(|| std::time::Duration::from_millis(self.timeout_ms))
    }

    /// `stale = secs`.
    pub const fn stale(mut self, secs: u64) -> Self {
        self.stale_secs = secs;
        self
    }

    /// `fail_safe = secs`.
    pub const fn fail_safe(mut self, secs: u64) -> Self {
        self.fail_safe_secs = secs;
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

    /// A number of its own, for the counter registries: 0, 1, 2... in the order functions
    /// are first called.
    pub(crate) fn index(&self) -> usize {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        *self.index.get_or_init(|| NEXT.fetch_add(1, Relaxed))
    }
}
