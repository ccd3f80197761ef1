//! Invalidations that failed twice, kept for a background retry (the cache's retry loop
//! applies them once the store answers again).

use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering::Relaxed},
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
