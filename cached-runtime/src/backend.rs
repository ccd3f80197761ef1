//! Where entries live: Redis, or an in-process map with the same semantics.

use std::{
    collections::HashMap,
    ops::Deref,
    sync::{Arc, LazyLock},
    time::{Duration, Instant},
};

use redis::aio::ConnectionManager;

use crate::{
    Error,
    connect::{self, TlsOptions},
};

/// Raw bytes of an entry, owned (from Redis) or shared (from memory).
#[derive(Debug)]
pub(crate) enum Raw {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Raw {
    /// The bytes, shareable.
    pub(crate) fn to_shared(&self) -> Arc<[u8]> {
        match self {
            Raw::Owned(v) => Arc::from(&v[..]),
            Raw::Shared(v) => v.clone(),
        }
    }
}

impl Deref for Raw {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Raw::Owned(v) => v,
            Raw::Shared(v) => v,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Redis {
        conn: ConnectionManager,
        /// Boxed: with TLS parameters a client is several hundred bytes.
        client: Box<redis::Client>,
    },
    Memory(Arc<Memory>),
}

#[derive(Debug)]
pub(crate) struct Memory {
    map: moka::sync::Cache<String, MemEntry>,
    /// Leases: lock key -> (token, deadline).
    leases: std::sync::Mutex<HashMap<String, (String, Instant)>>,
}

/// Takes the lease (KEYS[1]) with our token ARGV[1] for ARGV[2] ms if nobody holds it: 1.
/// Our leases are strings of 16 hex digits that always expire; anything else under the lease
/// key (another type, no expiry, another format) is foreign and is replaced rather than waited
/// on: 2. Held by another loader: 0.
static TRY_LEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
local kind = redis.call('TYPE', KEYS[1])['ok']
local foreign = kind ~= 'string' or redis.call('PTTL', KEYS[1]) < 0
if not foreign then
  local held = redis.call('GET', KEYS[1])
  foreign = #held ~= 16 or string.find(held, '[^0-9a-f]') ~= nil
end
if foreign then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0",
    )
});

/// What [`Backend::try_lease`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lease {
    /// Ours now.
    Taken,
    /// Ours now, replacing foreign data under the lease key.
    Repaired,
    /// Another loader holds it.
    Held,
}

/// Stores the value if the lease is still ours, releases it and announces the key.
static PUT_LEASED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  local event = 'f:' .. KEYS[1]
  if #ARGV[2] <= tonumber(ARGV[5]) then
    event = event .. '\0' .. ARGV[2]
  end
  redis.call('PUBLISH', ARGV[4], event)
  return 1
end
return 0",
    )
});

/// Releases a lease we still hold (compare-and-delete) and wakes the waiters.
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  redis.call('PUBLISH', ARGV[2], 'r:' .. KEYS[1])
  return 1
end
return 0",
    )
});

/// Deletes entries with their leases (voiding loads in flight) and announces them.
/// KEYS: entry1, lock1, entry2, lock2, ...
static INVALIDATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local n = redis.call('DEL', unpack(KEYS))
for i = 1, #KEYS, 2 do
  redis.call('PUBLISH', ARGV[1], 'i:' .. KEYS[i])
end
return n",
    )
});

/// The lease key of an entry: same hash slot (`{entry}` is its hash tag).
pub(crate) fn lock_key(key: &str) -> String {
    format!("{{{key}}}:lock")
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
}

impl Backend {
    /// A lazily connecting, auto-reconnecting Redis connection (see `connect.rs`). Fails only
    /// for a bad URL or TLS configuration. `response_timeout`: redis-rs's own bound on a round
    /// trip, the longest the cache allows (it bounds each round trip itself).
    pub(crate) fn redis(
        url: &str,
        tls: &TlsOptions,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Self, Error> {
        let client = connect::client(url, tls)?;
        let conn = connect::manager(client.clone(), connect_timeout, response_timeout)?;
        Ok(Backend::Redis {
            conn,
            client: Box::new(client),
        })
    }

    pub(crate) fn memory(max_entries: u64) -> Self {
        Backend::Memory(Arc::new(Memory {
            // Least recently used entries go first, and a new key is always admitted (moka's
            // default, TinyLFU, refuses new keys that are not yet popular once the cache is
            // full: a cache-aside miss would then never be stored).
            map: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .expire_after(MemExpiry)
                .build(),
            leases: Default::default(),
        }))
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Raw>, Error> {
        match self {
            Backend::Redis { conn, .. } => {
                let v: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(v.map(Raw::Owned))
            }
            Backend::Memory(mem) => Ok(mem.map.get(key).map(|e| Raw::Shared(e.bytes))),
        }
    }

    pub(crate) async fn set(
        &self,
        key: &str,
        value: Arc<[u8]>,
        ttl: Duration,
    ) -> Result<(), Error> {
        match self {
            Backend::Redis { conn, .. } => {
                redis::cmd("SET")
                    .arg(key)
                    .arg(&*value)
                    .arg("PX")
                    .arg(ttl.as_millis().max(1) as u64)
                    .exec_async(&mut conn.clone())
                    .await?;
                Ok(())
            }
            Backend::Memory(mem) => {
                mem.map
                    .insert(key.to_owned(), MemEntry { bytes: value, ttl });
                Ok(())
            }
        }
    }

    /// Deletes all `keys` in one round trip; returns how many existed.
    pub(crate) async fn del(&self, keys: &[String]) -> Result<u64, Error> {
        match self {
            Backend::Redis { conn, .. } => Ok(redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn.clone())
                .await?),
            Backend::Memory(mem) => Ok(keys
                .iter()
                .map(|key| u64::from(mem.map.remove(key).is_some()))
                .sum()),
        }
    }

    pub(crate) async fn ping(&self) -> Result<(), Error> {
        match self {
            Backend::Redis { conn, .. } => {
                let _: String = redis::cmd("PING").query_async(&mut conn.clone()).await?;
                Ok(())
            }
            Backend::Memory(_) => Ok(()),
        }
    }
}

impl Backend {
    /// Takes the lease of `key` for `ttl` if nobody holds it.
    pub(crate) async fn try_lease(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<Lease, Error> {
        match self {
            Backend::Redis { conn, .. } => {
                let got: i64 = TRY_LEASE
                    .key(lock_key(key))
                    .arg(token)
                    .arg(ttl.as_millis().max(1) as u64)
                    .invoke_async(&mut conn.clone())
                    .await?;
                Ok(match got {
                    1 => Lease::Taken,
                    2 => Lease::Repaired,
                    _ => Lease::Held,
                })
            }
            Backend::Memory(mem) => {
                let mut leases = mem.leases.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                // Expired leases are dropped here (not only replaced), so that the map does not
                // keep one per key ever loaded: whenever it reaches 2048, 4096, ... entries (a
                // scan per doubling, so amortized O(1) however many leases are live).
                if leases.len() >= 2048 && leases.len().is_power_of_two() {
                    leases.retain(|_, (_, deadline)| *deadline > now);
                }
                match leases.get(key) {
                    Some((_, deadline)) if *deadline > now => Ok(Lease::Held),
                    _ => {
                        leases.insert(key.to_owned(), (token.to_owned(), now + ttl));
                        Ok(Lease::Taken)
                    }
                }
            }
        }
    }

    /// Stores `value` only if the lease `token` on `key` is still valid (not expired, not
    /// voided by an invalidation), then releases it and wakes waiters; its fill event carries
    /// the value if it is at most `inline` bytes. `false`: rejected.
    pub(crate) async fn put_leased(
        &self,
        key: &str,
        token: &str,
        value: Arc<[u8]>,
        ttl: Duration,
        channel: &str,
        inline: usize,
    ) -> Result<bool, Error> {
        match self {
            Backend::Redis { conn, .. } => {
                let stored: i64 = PUT_LEASED
                    .key(key)
                    .key(lock_key(key))
                    .arg(token)
                    .arg(&*value)
                    .arg(ttl.as_millis().max(1) as u64)
                    .arg(channel)
                    .arg(inline)
                    .invoke_async(&mut conn.clone())
                    .await?;
                Ok(stored == 1)
            }
            Backend::Memory(mem) => {
                let mut leases = mem.leases.lock().unwrap_or_else(|e| e.into_inner());
                match leases.get(key) {
                    Some((t, deadline)) if t == token && *deadline > Instant::now() => {
                        leases.remove(key);
                        mem.map
                            .insert(key.to_owned(), MemEntry { bytes: value, ttl });
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            }
        }
    }

    /// Releases the lease `token` on `key` if still held, and wakes waiters.
    pub(crate) async fn release(&self, key: &str, token: &str, channel: &str) -> Result<(), Error> {
        match self {
            Backend::Redis { conn, .. } => {
                let _: i64 = RELEASE
                    .key(key)
                    .key(lock_key(key))
                    .arg(token)
                    .arg(channel)
                    .invoke_async(&mut conn.clone())
                    .await?;
                Ok(())
            }
            Backend::Memory(mem) => {
                let mut leases = mem.leases.lock().unwrap_or_else(|e| e.into_inner());
                if leases.get(key).is_some_and(|(t, _)| t == token) {
                    leases.remove(key);
                }
                Ok(())
            }
        }
    }

    /// Deletes entries and their leases in one round trip and announces the invalidation.
    pub(crate) async fn invalidate(&self, keys: &[String], channel: &str) -> Result<u64, Error> {
        match self {
            Backend::Redis { conn, .. } => {
                let mut invocation = INVALIDATE.prepare_invoke();
                for key in keys {
                    invocation.key(key).key(lock_key(key));
                }
                Ok(invocation
                    .arg(channel)
                    .invoke_async(&mut conn.clone())
                    .await?)
            }
            Backend::Memory(mem) => {
                let mut leases = mem.leases.lock().unwrap_or_else(|e| e.into_inner());
                Ok(keys
                    .iter()
                    .map(|key| {
                        leases.remove(key);
                        u64::from(mem.map.remove(key).is_some())
                    })
                    .sum())
            }
        }
    }

    /// The client, for the pub/sub listener (Redis only).
    pub(crate) fn client(&self) -> Option<&redis::Client> {
        match self {
            Backend::Redis { client, .. } => Some(client.as_ref()),
            Backend::Memory(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expired leases of the memory backend do not pile up: keys loaded once and never again
    /// leave no lease behind for long.
    #[tokio::test]
    async fn expired_memory_leases_are_pruned() {
        let backend = Backend::memory(10);
        let Backend::Memory(mem) = &backend else {
            unreachable!("a memory backend")
        };
        for i in 0..10_000 {
            let got = backend
                .try_lease(
                    &format!("k{i}"),
                    "0123456789abcdef",
                    Duration::from_millis(1),
                )
                .await
                .unwrap();
            assert_eq!(got, Lease::Taken);
            if i % 1000 == 999 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let held = mem.leases.lock().unwrap().len();
        assert!(held < 4096, "{held} leases kept for 10 000 expired ones");
    }
}
