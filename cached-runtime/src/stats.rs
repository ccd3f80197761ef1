//! Hit/miss counters, per cache and per annotated function.

use std::sync::{
    OnceLock,
    atomic::{AtomicU64, Ordering::Relaxed},
};

use crate::policy::Site;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $(pub(crate) $name: AtomicU64,)*
        }

        /// A snapshot of counters. Fields may be added, so do not construct it.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct Counts {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Counters {
            fn snapshot(&self) -> Counts {
                Counts { $($name: self.$name.load(Relaxed),)* }
            }
        }

        impl Counts {
            fn add(&mut self, other: &Counts) {
                $(self.$name += other.$name;)*
            }
        }
    };
}

counters! {
    /// Calls answered from the cache with a value.
    hits,
    /// Calls answered from the cache with a cached "not found" (`None`).
    null_hits,
    /// Calls that found nothing usable: they ran the body, or waited for another caller's
    /// load (see `lock_waits`).
    misses,
    /// Redis errors and timeouts (reads, writes and deletes); each made the call fall back to
    /// the body or skip the cache write.
    errors,
    /// Values that were present but did not decode (schema or codec change, corruption);
    /// counted as misses too, and overwritten by the fresh value.
    decode_errors,
    /// Entries written after a miss, or by a `#[cache_put]`.
    writes,
    /// Successful invalidations (one per call of an `#[invalidates]` function, or of a
    /// `#[cache_put]` that deleted its key).
    invalidations,
    /// Invalidations that failed twice (after one retry); their keys are queued and retried
    /// in the background (see [`Stats::invalidations_deferred`]).
    invalidation_failures,
    /// Misses that waited for another caller's load instead of running the body (in this
    /// process, or in another through the Redis lease): one per caller that waited, however
    /// long and however many times it was woken.
    lock_waits,
    /// Waits ended by a notification that the value landed (not by a timeout).
    wakeups,
    /// Loads whose result was not stored because their lease was lost: it expired, or an
    /// invalidation voided it, so the value may already be stale.
    lease_rejected,
    /// Keys that held data that was not ours — another Redis type under an entry key, a lease
    /// key with a foreign value or no expiry — and were replaced (the call ran its body).
    repairs,
    /// Results not stored, or stored values not read, because they were larger than
    /// [`max_value_size`](crate::CacheBuilder::max_value_size).
    oversized,
    /// Expired values served at once while one caller refreshed them (`stale`).
    stale_served,
    /// Refreshes of a value before or just after its expiry (`stale`, `early_refresh`).
    refreshes,
    /// Expired values returned because the body failed (`fail_safe`).
    fail_safe_served,
    /// `#[cache_put]` writes that did not land — a Redis error or timeout, or a value that does
    /// not encode or is larger than `max_value_size` — so the key was deleted instead (or its
    /// delete queued, see `invalidation_failures`): the old value is never left behind.
    put_failures,
}

impl Counts {
    /// `(hits + null_hits) / (hits + null_hits + misses)`, or `None` before the first lookup.
    /// The guides suggest looking at TTLs and the working set when this stays below 0.8.
    pub fn hit_ratio(&self) -> Option<f64> {
        let hits = self.hits + self.null_hits;
        let total = hits + self.misses;
        (total > 0).then(|| hits as f64 / total as f64)
    }
}

/// Counters of one [`Cache`](crate::Cache): totals and one entry per annotated function that
/// has used it.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Sum over all functions.
    pub total: Counts,
    /// Per function, in order of first use.
    pub functions: Vec<FunctionStats>,
    /// How often the circuit breaker opened (on a Redis Cluster, the breakers of all shards).
    pub breaker_opens: u64,
    /// Round trips skipped because the breaker was open.
    pub breaker_rejections: u64,
    /// Whether the breaker is open (or half-open) now; on a Redis Cluster, whether any shard's
    /// is.
    pub breaker_open: bool,
    /// Keys whose invalidation failed twice and was queued for a background retry.
    pub invalidations_deferred: u64,
    /// Queued invalidations applied later, once Redis answered.
    pub invalidations_recovered: u64,
    /// Queued invalidations still waiting.
    pub invalidations_pending: u64,
    /// Invalidations given up because the queue was full (the entries expire by TTL).
    pub invalidations_dropped: u64,
}

impl Stats {
    /// The counters of the function whose name (`module::path::fn_name`) ends with `name`.
    pub fn function(&self, name: &str) -> Option<&Counts> {
        self.functions
            .iter()
            .find(|f| f.name == name || f.name.ends_with(&format!("::{name}")))
            .map(|f| &f.counts)
    }
}

/// Counters of one annotated function.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FunctionStats {
    /// `module::path::fn_name`.
    pub name: &'static str,
    /// Its counters.
    pub counts: Counts,
}

const SEGMENT: usize = 64;
const SEGMENTS: usize = 64;

/// The counters of one annotated function in one cache.
#[derive(Debug, Default)]
struct Slot {
    name: OnceLock<&'static str>,
    counters: Counters,
}

/// The per-site counters of one cache, indexed by [`Site::index`]: segments of slots allocated
/// on first use and never moved, so the hot path is lock-free and shares no written cache
/// line but the counters themselves. Sites past `SEGMENT * SEGMENTS` share one overflow slot.
#[derive(Debug)]
pub(crate) struct Registry {
    segments: [OnceLock<Box<[Slot; SEGMENT]>>; SEGMENTS],
    overflow: Slot,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            segments: [const { OnceLock::new() }; SEGMENTS],
            overflow: Slot::default(),
        }
    }
}

impl Registry {
    pub(crate) fn site(&self, site: &'static Site) -> &Counters {
        let slot = site.index();
        let entry = match self.segments.get(slot / SEGMENT) {
            Some(segment) => &segment
                .get_or_init(|| Box::new(std::array::from_fn(|_| Slot::default())))[slot % SEGMENT],
            None => &self.overflow,
        };
        entry.name.get_or_init(|| {
            if std::ptr::eq(entry, &self.overflow) {
                "(other functions)"
            } else {
                site.name()
            }
        });
        &entry.counters
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let mut stats = Stats::default();
        let slots = self
            .segments
            .iter()
            .filter_map(OnceLock::get)
            .flat_map(|segment| segment.iter())
            .chain(std::iter::once(&self.overflow));
        for slot in slots {
            if let Some(name) = slot.name.get() {
                let counts = slot.counters.snapshot();
                stats.total.add(&counts);
                stats.functions.push(FunctionStats { name, counts });
            }
        }
        stats
    }
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}
