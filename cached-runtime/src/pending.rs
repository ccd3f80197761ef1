//! Invalidations that failed twice, kept for a background retry (the cache's retry loop
//! applies them once the store answers again). Until a key's delete lands, this process does
//! not serve the key's cached value (see [`Pending::holds`]); until a tag's invalidation lands,
//! it serves no entry that carries the tag (see [`Pending::holds_tag`]).

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
};

use crate::stats::Stats;

/// Most keys kept for a later invalidation; past it, failures are only logged and counted.
const MAX_PENDING: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct Pending {
    keys: Mutex<Vec<String>>,
    /// Tags (full names) whose invalidation failed.
    tags: Mutex<Vec<String>>,
    deferred: AtomicU64,
    recovered: AtomicU64,
    dropped: AtomicU64,
    /// The keys queued (in `keys` or being retried) until their delete lands, each with how
    /// many times it is queued: their cached values are not served meanwhile.
    held: Held,
    /// The same for the tags queued in `tags`: entries that carry them are not served.
    held_tags: Held,
}

/// The keys (or tags) with a queued invalidation, for [`Pending::holds`] and
/// [`Pending::holds_tag`].
#[derive(Debug, Default)]
struct Held {
    names: Mutex<HashMap<String, usize>>,
    /// How many names `names` has: what a read checks first (one relaxed load when it is 0).
    len: AtomicUsize,
}

impl Held {
    fn names(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks `names` as queued, once more each.
    fn hold(&self, names: &[String]) {
        let mut held = self.names();
        for name in names {
            *held.entry(name.clone()).or_default() += 1;
        }
        self.len.store(held.len(), Relaxed);
    }

    /// After a retry of `tried`: those not in `failed` landed (each occurrence in `failed`
    /// keeps one of its name's).
    fn landed(&self, tried: &[String], failed: &[String]) {
        let mut failed: Vec<&String> = failed.iter().collect();
        let mut held = self.names();
        for name in tried {
            if let Some(at) = failed.iter().position(|f| *f == name) {
                failed.swap_remove(at);
                continue;
            }
            if let Some(count) = held.get_mut(name) {
                *count -= 1;
                if *count == 0 {
                    held.remove(name);
                }
            }
        }
        self.len.store(held.len(), Relaxed);
    }

    /// Whether any name is held: one relaxed load.
    #[inline]
    fn any(&self) -> bool {
        self.len.load(Relaxed) != 0
    }

    #[inline]
    fn holds(&self, name: &str) -> bool {
        self.any() && self.holds_slow(name)
    }

    #[cold]
    fn holds_slow(&self, name: &str) -> bool {
        self.names().contains_key(name)
    }
}

impl Pending {
    fn keys(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tags(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.tags.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `tags` for a retry of their invalidation (as [`defer`](Self::defer) keys).
    pub(crate) fn defer_tags(&self, tags: &[String]) {
        if tags.is_empty() {
            return;
        }
        let mut pending = self.tags();
        if pending.len() + tags.len() > MAX_PENDING {
            self.dropped.fetch_add(tags.len() as u64, Relaxed);
            tracing::error!(
                ?tags,
                "too many pending tag invalidations; their entries stay stale until their TTL"
            );
            return;
        }
        pending.extend_from_slice(tags);
        self.deferred.fetch_add(tags.len() as u64, Relaxed);
        self.held_tags.hold(tags);
    }

    /// After a retry of the tags `tried`: those not in `failed` were invalidated (as
    /// [`landed`](Self::landed) for keys).
    pub(crate) fn landed_tags(&self, tried: &[String], failed: &[String]) {
        self.held_tags.landed(tried, failed);
    }

    /// Whether `tag` (a full name) has an invalidation queued that has not landed yet.
    #[inline]
    pub(crate) fn holds_tag(&self, tag: &str) -> bool {
        self.held_tags.holds(tag)
    }

    /// Whether any tag has an invalidation queued: one relaxed load.
    #[inline]
    pub(crate) fn holds_tags(&self) -> bool {
        self.held_tags.any()
    }

    /// The tags to retry now (empty if none).
    pub(crate) fn take_tags(&self) -> Vec<String> {
        std::mem::take(&mut *self.tags())
    }

    /// After a retry of tags: `done` were invalidated, `left` go back in the queue.
    pub(crate) fn settle_tags(&self, done: usize, left: Vec<String>) {
        if done > 0 {
            self.recovered.fetch_add(done as u64, Relaxed);
            tracing::info!(
                tags = done,
                "pending tag invalidations applied after redis recovered"
            );
        }
        if !left.is_empty() {
            self.tags().extend(left);
        }
    }

    /// Keeps `keys` for a retry (or, past [`MAX_PENDING`], logs and counts them as dropped).
    pub(crate) fn defer(&self, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let mut pending = self.keys();
        if pending.len() + keys.len() > MAX_PENDING {
            self.dropped.fetch_add(keys.len() as u64, Relaxed);
            tracing::error!(
                ?keys,
                "too many pending invalidations; these stay stale until their TTL"
            );
            return;
        }
        pending.extend_from_slice(keys);
        self.deferred.fetch_add(keys.len() as u64, Relaxed);
        self.held.hold(keys);
    }

    /// After a retry of `tried`: the keys not in `failed` were deleted (each occurrence in
    /// `failed` keeps one of its key's).
    pub(crate) fn landed(&self, tried: &[String], failed: &[String]) {
        self.held.landed(tried, failed);
    }

    /// Whether `key` has a delete queued that has not landed yet.
    #[inline]
    pub(crate) fn holds(&self, key: &str) -> bool {
        self.held.holds(key)
    }

    /// The keys to retry now (empty if none).
    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.keys())
    }

    /// After a retry: `done` keys were invalidated, `left` go back in the queue.
    pub(crate) fn settle(&self, done: usize, left: Vec<String>) {
        if done > 0 {
            self.recovered.fetch_add(done as u64, Relaxed);
            tracing::info!(
                keys = done,
                "pending invalidations applied after redis recovered"
            );
        }
        if !left.is_empty() {
            self.keys().extend(left);
        }
    }

    /// Its counters, into `stats`.
    pub(crate) fn report(&self, stats: &mut Stats) {
        stats.invalidations_deferred = self.deferred.load(Relaxed);
        stats.invalidations_recovered = self.recovered.load(Relaxed);
        stats.invalidations_dropped = self.dropped.load(Relaxed);
        stats.invalidations_pending = (self.keys().len() + self.tags().len()) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|&n| n.to_owned()).collect()
    }

    /// A key is held from its deferral until its last queued delete lands, also while a retry
    /// has taken it out of the queue.
    #[test]
    fn keys_are_held_until_their_delete_lands() {
        let pending = Pending::default();
        assert!(!pending.holds("a"));
        pending.defer(&keys(&["a", "b"]));
        pending.defer(&keys(&["a"]));
        let taken = pending.take();
        assert!(
            pending.holds("a") && pending.holds("b"),
            "taken, not landed"
        );
        // "b" and one "a" landed; the other "a" failed again.
        pending.landed(&taken, &keys(&["a"]));
        pending.settle(2, keys(&["a"]));
        assert!(pending.holds("a"));
        assert!(!pending.holds("b"));
        let taken = pending.take();
        pending.landed(&taken, &[]);
        pending.settle(1, Vec::new());
        assert!(!pending.holds("a"));
        assert_eq!(pending.held.len.load(Relaxed), 0);
    }

    /// A tag is held from its deferral until its queued invalidation lands.
    #[test]
    fn tags_are_held_until_their_invalidation_lands() {
        let pending = Pending::default();
        assert!(!pending.holds_tags());
        pending.defer_tags(&keys(&["app:t1", "app:t2"]));
        assert!(pending.holds_tags() && pending.holds_tag("app:t1"));
        assert!(!pending.holds("app:t1"), "a tag is not a key");
        let taken = pending.take_tags();
        assert!(pending.holds_tag("app:t2"), "taken, not landed");
        pending.landed_tags(&taken, &keys(&["app:t2"]));
        pending.settle_tags(1, keys(&["app:t2"]));
        assert!(!pending.holds_tag("app:t1"));
        assert!(pending.holds_tag("app:t2"));
        let taken = pending.take_tags();
        pending.landed_tags(&taken, &[]);
        assert!(!pending.holds_tags());
    }
}
