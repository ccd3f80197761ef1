//! The in-process store: entries in a bounded LRU map with per-entry expiry, leases in a map
//! of deadlines, with the semantics of the Redis scripts (`commands.rs`). Nothing is shared
//! with other processes, so there are no events: the cache wakes local waiters itself.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{Lease, Raw};

#[derive(Debug)]
pub(crate) struct Memory {
    map: moka::sync::Cache<String, MemEntry>,
    /// Leases: entry key -> (token, deadline).
    leases: std::sync::Mutex<HashMap<String, (String, Instant)>>,
    /// Tag versions: tag key -> (version, deadline).
    tags: std::sync::Mutex<HashMap<String, (u64, Instant)>>,
}

#[derive(Clone, Debug)]
pub(crate) struct MemEntry {
    bytes: Arc<[u8]>,
    ttl: Duration,
}

struct MemExpiry;

impl moka::Expiry<String, MemEntry> for MemExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &MemEntry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &MemEntry,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    /// A read by [`Memory::get_ex`] sets the expiry it asked for; any other read leaves it.
    fn expire_after_read(
        &self,
        _key: &String,
        _value: &MemEntry,
        _read_at: std::time::Instant,
        duration_until_expiry: Option<Duration>,
        _last_modified_at: std::time::Instant,
    ) -> Option<Duration> {
        READ_TTL.take().or(duration_until_expiry)
    }
}

thread_local! {
    /// The expiry that the read in progress on this thread sets ([`Memory::get_ex`]). moka
    /// calls [`MemExpiry::expire_after_read`] inside `get`, on the reading thread, with the
    /// entry it returns: the read and the new expiry are one step, as `GETEX` is in Redis (a
    /// write or delete of the key in between cannot be undone by it).
    static READ_TTL: std::cell::Cell<Option<Duration>> = const { std::cell::Cell::new(None) };
}

impl Memory {
    /// At most `max_entries` entries.
    pub(crate) fn new(max_entries: u64) -> Memory {
        Memory {
            // Least recently used entries go first, and a new key is always admitted (moka's
            // default, TinyLFU, refuses new keys that are not yet popular once the cache is
            // full: a cache-aside miss would then never be stored).
            map: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .expire_after(MemExpiry)
                .build(),
            leases: Default::default(),
            tags: Default::default(),
        }
    }

    fn tags(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Instant)>> {
        self.tags.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, key: &str) -> Option<Raw> {
        self.map.get(key).map(|e| Raw::Shared(e.bytes))
    }

    /// Reads `key` and sets its expiry to `ttl` from now.
    pub(crate) fn get_ex(&self, key: &str, ttl: Duration) -> Option<Raw> {
        READ_TTL.set(Some(ttl));
        let read = self.map.get(key);
        // Not taken if there was no entry to read.
        READ_TTL.set(None);
        read.map(|e| Raw::Shared(e.bytes))
    }

    pub(crate) fn set(&self, key: &str, bytes: Arc<[u8]>, ttl: Duration) {
        self.map.insert(key.to_owned(), MemEntry { bytes, ttl });
    }

    /// Sets the expiry of `key` to `ttl` from now; `false` if there is no such key.
    pub(crate) fn touch(&self, key: &str, ttl: Duration) -> bool {
        match self.map.get(key) {
            Some(entry) => {
                self.set(key, entry.bytes, ttl);
                true
            }
            None => false,
        }
    }

    pub(crate) fn try_lease(&self, key: &str, token: &str, ttl: Duration) -> Lease {
        let mut leases = self.leases();
        let now = Instant::now();
        // Expired leases are dropped here (not only replaced), so that the map does not keep
        // one per key ever loaded: whenever it reaches 2048, 4096, ... entries (a scan per
        // doubling, so amortized O(1) however many leases are live).
        if leases.len() >= 2048 && leases.len().is_power_of_two() {
            leases.retain(|_, (_, deadline)| *deadline > now);
        }
        match leases.get(key) {
            Some((_, deadline)) if *deadline > now => Lease::Held,
            _ => {
                leases.insert(key.to_owned(), (token.to_owned(), now + ttl));
                Lease::Taken
            }
        }
    }

    /// Stores `bytes` if the lease `token` on `key` is still valid, and releases it.
    pub(crate) fn put_leased(
        &self,
        key: &str,
        token: &str,
        bytes: Arc<[u8]>,
        ttl: Duration,
    ) -> bool {
        let mut leases = self.leases();
        match leases.get(key) {
            Some((t, deadline)) if t == token && *deadline > Instant::now() => {
                leases.remove(key);
                self.set(key, bytes, ttl);
                true
            }
            _ => false,
        }
    }

    /// Stores `bytes` whoever holds the lease of `key`, and deletes the lease (a write-through:
    /// a load in flight cannot store its older result over it).
    pub(crate) fn put(&self, key: &str, bytes: Arc<[u8]>, ttl: Duration) {
        let mut leases = self.leases();
        leases.remove(key);
        self.set(key, bytes, ttl);
    }

    pub(crate) fn release(&self, key: &str, token: &str) {
        let mut leases = self.leases();
        if leases.get(key).is_some_and(|(t, _)| t == token) {
            leases.remove(key);
        }
    }

    /// The entry `key` (if given) and the current versions of the tags `tag_keys`.
    pub(crate) fn read_with_tags(
        &self,
        key: Option<&str>,
        tag_keys: &[String],
    ) -> (Option<Raw>, Vec<Option<u64>>) {
        let entry = key.and_then(|key| self.get(key));
        let tags = self.tags();
        let now = Instant::now();
        let versions = tag_keys
            .iter()
            .map(|k| match tags.get(k) {
                Some((version, deadline)) if *deadline > now => Some(*version),
                _ => None,
            })
            .collect();
        (entry, versions)
    }

    /// As the Redis script: each tag's version (`fresh` where it has none), alive at least
    /// `ttl` from now.
    pub(crate) fn stamp_tags(&self, tag_keys: &[String], fresh: &[u64], ttl: Duration) -> Vec<u64> {
        let mut tags = self.tags();
        let now = Instant::now();
        // Expired tags are dropped whenever the map reaches 2048, 4096, ... of them (as leases).
        if tags.len() >= 2048 && tags.len().is_power_of_two() {
            tags.retain(|_, (_, deadline)| *deadline > now);
        }
        tag_keys
            .iter()
            .zip(fresh)
            .map(|(k, fresh)| {
                let until = now + ttl;
                let slot = tags.entry(k.clone()).or_insert((*fresh, until));
                if slot.1 <= now {
                    *slot = (*fresh, until);
                } else if slot.1 < until {
                    slot.1 = until;
                }
                slot.0
            })
            .collect()
    }

    /// Gives each tag that has a version the fresh one from `fresh`.
    pub(crate) fn invalidate_tags(&self, tag_keys: &[String], fresh: &[u64]) -> u64 {
        let mut tags = self.tags();
        let now = Instant::now();
        tag_keys
            .iter()
            .zip(fresh)
            .map(|(k, fresh)| match tags.get_mut(k) {
                Some(slot) if slot.1 > now => {
                    slot.0 = *fresh;
                    1
                }
                _ => 0,
            })
            .sum()
    }

    /// Deletes entries with their leases.
    pub(crate) fn invalidate(&self, keys: &[String]) -> u64 {
        let mut leases = self.leases();
        keys.iter()
            .map(|key| {
                leases.remove(key);
                u64::from(self.map.remove(key).is_some())
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expired leases do not pile up: keys loaded once and never again leave no lease behind
    /// for long.
    #[test]
    fn expired_leases_are_pruned() {
        let mem = Memory::new(10);
        for i in 0..10_000 {
            let got = mem.try_lease(
                &format!("k{i}"),
                "0123456789abcdef",
                Duration::from_millis(1),
            );
            assert_eq!(got, Lease::Taken);
            if i % 1000 == 999 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let held = mem.leases().len();
        assert!(held < 4096, "{held} leases kept for 10 000 expired ones");
    }

    #[test]
    fn get_ex_resets_the_expiry_and_other_reads_do_not() {
        let mem = Memory::new(10);
        assert!(mem.get_ex("k", Duration::from_secs(1)).is_none());
        mem.set("k", Arc::from(&b"v"[..]), Duration::from_millis(60));
        mem.set("other", Arc::from(&b"o"[..]), Duration::from_millis(60));
        assert_eq!(
            mem.get_ex("k", Duration::from_secs(60)).as_deref(),
            Some(&b"v"[..])
        );
        // A plain read (of this key or another) is not a reset.
        assert!(mem.get("other").is_some());
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(mem.get("k").as_deref(), Some(&b"v"[..]));
        assert!(mem.get("other").is_none(), "a plain read kept its expiry");
        // A shorter TTL shortens it, as `GETEX PX` does.
        assert!(mem.get_ex("k", Duration::from_millis(20)).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(mem.get("k").is_none());
    }

    #[test]
    fn touch_keeps_the_value_and_resets_its_expiry() {
        let mem = Memory::new(10);
        assert!(!mem.touch("k", Duration::from_secs(1)));
        mem.set("k", Arc::from(&b"v"[..]), Duration::from_millis(30));
        assert!(mem.touch("k", Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(mem.get("k").as_deref(), Some(&b"v"[..]));
    }
}
