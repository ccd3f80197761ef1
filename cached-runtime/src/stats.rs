//! Hit/miss counters, per cache and per annotated function.

use std::sync::{
    Arc, OnceLock, RwLock,
    atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
};

/// Identifies one annotated function; the macros emit one `static` per function.
#[doc(hidden)]
#[derive(Debug)]
pub struct Site {
    pub(crate) name: &'static str,
    pub(crate) ttl_secs: u64,
    /// 0 = not given in the attribute.
    pub(crate) null_ttl_secs: u64,
    slot: OnceLock<usize>,
}

impl Site {
    /// `name` is shown in [`Stats`]; TTLs are in seconds, `null_ttl_secs == 0` means "not given".
    pub const fn new(name: &'static str, ttl_secs: u64, null_ttl_secs: u64) -> Self {
        Site {
            name,
            ttl_secs,
            null_ttl_secs,
            slot: OnceLock::new(),
        }
    }

    fn slot(&self) -> usize {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        *self.slot.get_or_init(|| NEXT.fetch_add(1, Relaxed))
    }
}

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
    /// Calls that found nothing usable and ran the body.
    misses,
    /// Redis errors and timeouts (reads, writes and deletes); each made the call fall back to
    /// the body or skip the cache write.
    errors,
    /// Values that were present but did not decode (schema or codec change, corruption);
    /// counted as misses too, and overwritten by the fresh value.
    decode_errors,
    /// Entries written after a miss.
    writes,
    /// Successful invalidations (one per call of an `#[invalidates]` function).
    invalidations,
    /// Invalidations that failed twice (after one retry); the entries stay until their TTL.
    invalidation_failures,
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

/// A function's name and counters.
type Slot = (&'static str, Arc<Counters>);

/// The per-site counters of one cache, indexed by [`Site::slot`].
#[derive(Debug, Default)]
pub(crate) struct Registry {
    sites: RwLock<Vec<Option<Slot>>>,
}

impl Registry {
    pub(crate) fn site(&self, site: &'static Site) -> Arc<Counters> {
        let slot = site.slot();
        if let Some(Some((_, c))) = self
            .sites
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(slot)
        {
            return c.clone();
        }
        let mut sites = self.sites.write().unwrap_or_else(|e| e.into_inner());
        if sites.len() <= slot {
            sites.resize(slot + 1, None);
        }
        sites[slot]
            .get_or_insert_with(|| (site.name, Arc::default()))
            .1
            .clone()
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let sites = self.sites.read().unwrap_or_else(|e| e.into_inner());
        let mut stats = Stats::default();
        for (name, counters) in sites.iter().flatten() {
            let counts = counters.snapshot();
            stats.total.add(&counts);
            stats.functions.push(FunctionStats { name, counts });
        }
        stats
    }
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}
