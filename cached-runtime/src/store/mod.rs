//! Where entries live: one Redis server (standalone, or the primary found through Redis
//! Sentinel), a Redis Cluster, or this process's memory with the same semantics.
//!
//! [`Store`] is the one interface the layers above call: read, write, touch and delete
//! entries, take and release a key's lease, write under a lease or over it, invalidate, and
//! find the client to subscribe to events with. Every operation touches one hash slot (a multi-key
//! operation is given keys of one slot: [`Store::by_slot`] groups them). Dispatch is a
//! `match` on the store's kind: no trait objects, no boxed futures.

#[cfg(feature = "cluster")]
mod cluster;
mod commands;
pub(crate) mod connect;
mod memory;
mod node;

use std::{future::Future, ops::Deref, pin::Pin, sync::Arc, time::Duration};

use tokio::sync::watch;

#[cfg(feature = "cluster")]
use cluster::Cluster;
use connect::TlsOptions;
use memory::Memory;
use node::Node;

use crate::error::Error;

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

/// What [`Store::try_lease`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lease {
    /// Ours now.
    Taken,
    /// Ours now, replacing foreign data under the lease key.
    Repaired,
    /// Another loader holds it.
    Held,
}

/// The lease key of an entry: same hash slot (`{entry}` is its hash tag). Built by hand: a
/// `format!` costs ten times as much, on every lease and write-through.
pub(crate) fn lock_key(key: &str) -> String {
    let mut lock = String::with_capacity(key.len() + 7);
    lock.push('{');
    lock.push_str(key);
    lock.push_str("}:lock");
    lock
}

#[derive(Clone, Debug)]
pub(crate) enum Store {
    Node(Node),
    #[cfg(feature = "cluster")]
    Cluster(Cluster),
    Memory(Arc<Memory>),
}

/// Runs `$body` with `$conn` bound to a Redis store's connection, or `$memory` with `$mem`
/// bound to the memory store.
macro_rules! dispatch {
    ($store:expr, $conn:ident => $body:expr, $mem:ident => $memory:expr) => {
        match $store {
            Store::Node(node) => {
                let $conn = node.conn();
                $body
            }
            #[cfg(feature = "cluster")]
            Store::Cluster(cluster) => {
                let $conn = cluster.conn();
                $body
            }
            Store::Memory($mem) => $memory,
        }
    };
}

impl Store {
    /// One Redis server; see [`Node::new`].
    pub(crate) fn node(
        url: &str,
        tls: &TlsOptions,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Store, Error> {
        Ok(Store::Node(Node::new(
            url,
            tls,
            connect_timeout,
            response_timeout,
        )?))
    }

    /// A Redis Cluster; see [`Cluster::new`].
    #[cfg(feature = "cluster")]
    pub(crate) fn cluster(
        seeds: &[String],
        tls: &TlsOptions,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Store, Error> {
        Ok(Store::Cluster(Cluster::new(
            seeds,
            tls,
            connect_timeout,
            response_timeout,
        )?))
    }

    /// The primary of a Redis Sentinel group, found through the sentinels and followed after a
    /// failover; see [`Node::sentinel`].
    #[cfg(feature = "sentinel")]
    pub(crate) fn sentinel(
        sentinels: &[String],
        master_name: &str,
        master_auth: Option<(&str, &str)>,
        tls: &TlsOptions,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Store, Error> {
        Ok(Store::Node(Node::sentinel(
            sentinels,
            master_name,
            master_auth,
            tls,
            connect_timeout,
            response_timeout,
        )?))
    }

    pub(crate) fn memory(max_entries: u64) -> Store {
        Store::Memory(Arc::new(Memory::new(max_entries)))
    }

    /// `"redis"`, `"redis-cluster"` or `"memory"`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Store::Node(_) => "redis",
            #[cfg(feature = "cluster")]
            Store::Cluster(_) => "redis-cluster",
            Store::Memory(_) => "memory",
        }
    }

    /// How many circuit breakers the cache keeps: one per shard of a cluster (its primary and
    /// replicas), else one.
    pub(crate) fn shards(&self) -> usize {
        match self {
            #[cfg(feature = "cluster")]
            Store::Cluster(_) => cluster::MAX_SHARDS,
            _ => 1,
        }
    }

    /// The shard that serves `key`, below [`shards`](Self::shards).
    #[inline]
    pub(crate) fn shard_of(&self, key: &str) -> usize {
        match self {
            #[cfg(feature = "cluster")]
            Store::Cluster(cluster) => cluster.shard_of(key),
            _ => {
                let _ = key;
                0
            }
        }
    }

    /// The store's own background work (a cluster's slot map refresh), to run until
    /// `shutdown`.
    pub(crate) fn maintenance(
        &self,
        shutdown: watch::Receiver<()>,
    ) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        match self {
            #[cfg(feature = "cluster")]
            Store::Cluster(cluster) => Some(Box::pin(cluster.clone().maintain(shutdown))),
            _ => {
                drop(shutdown);
                None
            }
        }
    }

    /// Checks, once connected, that the store is what it was configured as: a Redis server
    /// given with `redis(url)` that is a node of a cluster is reported (most keys would be
    /// answered with `MOVED`). `Ok(Some(problem))` says what is wrong.
    pub(crate) async fn check(&self) -> Result<Option<String>, Error> {
        match self {
            Store::Node(node) => {
                let info: String = redis::cmd("INFO")
                    .arg("cluster")
                    .query_async(&mut node.conn())
                    .await?;
                Ok(info
                    .lines()
                    .any(|line| line.trim() == "cluster_enabled:1")
                    .then(|| {
                        "this Redis server is a node of a Redis Cluster: it answers only the keys of its own slots (the others get MOVED and run uncached); use CacheBuilder::redis_cluster with the cluster's node URLs"
                            .to_owned()
                    }))
            }
            _ => Ok(None),
        }
    }

    /// Whether other processes share the entries, and events arrive through pub/sub.
    pub(crate) fn is_shared(&self) -> bool {
        !matches!(self, Store::Memory(_))
    }

    /// The client to subscribe to the event channel with (a shared store only; `None` while
    /// there is no server to subscribe to yet: ask again later). `attempt` counts the tries
    /// since the last subscription that worked.
    pub(crate) fn subscriber(&self, attempt: u32) -> Option<redis::Client> {
        match self {
            Store::Node(node) => {
                let _ = attempt;
                node.subscriber()
            }
            #[cfg(feature = "cluster")]
            Store::Cluster(cluster) => Some(cluster.subscriber(attempt)),
            Store::Memory(_) => None,
        }
    }

    /// Changes whenever the store moves to another server (a primary followed through
    /// Sentinel): the event listener then subscribes on the new one. `None`: it never moves.
    pub(crate) fn moves(&self) -> Option<tokio::sync::watch::Receiver<()>> {
        if let Store::Node(node) = self {
            Some(node.moves())
        } else {
            None
        }
    }

    /// A round trip failed in a way that says the server is unhealthy (see
    /// `Error::is_unhealthy`): a node that follows a primary through Sentinel asks the
    /// sentinels where it is (in the background, rate-limited). Cheap; never waits.
    pub(crate) fn failed(&self) {
        if let Store::Node(node) = self {
            node.failed();
        }
    }

    /// `keys` in groups of one hash slot each (in the order of their first key), for the
    /// multi-key operations.
    pub(crate) fn by_slot(&self, keys: &[String]) -> Vec<Vec<String>> {
        match self {
            #[cfg(feature = "cluster")]
            Store::Cluster(_) => {
                let mut groups: Vec<(u16, Vec<String>)> = Vec::new();
                for key in keys {
                    let slot = crate::wire::slot::of(key.as_bytes());
                    match groups.iter_mut().find(|(s, _)| *s == slot) {
                        Some((_, group)) => group.push(key.clone()),
                        None => groups.push((slot, vec![key.clone()])),
                    }
                }
                groups.into_iter().map(|(_, group)| group).collect()
            }
            _ if keys.is_empty() => Vec::new(),
            _ => vec![keys.to_vec()],
        }
    }

    /// The positions of `keys` in groups of one hash slot each (in the order of their first
    /// key): on a single server or in memory, one group of all.
    pub(crate) fn slot_groups(&self, keys: &[&str]) -> Vec<Vec<usize>> {
        match self {
            #[cfg(feature = "cluster")]
            Store::Cluster(_) => {
                let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
                for (i, key) in keys.iter().enumerate() {
                    let slot = crate::wire::slot::of(key.as_bytes());
                    match groups.iter_mut().find(|(s, _)| *s == slot) {
                        Some((_, group)) => group.push(i),
                        None => groups.push((slot, vec![i])),
                    }
                }
                groups.into_iter().map(|(_, group)| group).collect()
            }
            _ if keys.is_empty() => Vec::new(),
            _ => vec![(0..keys.len()).collect()],
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Raw>, Error> {
        dispatch!(self, conn => commands::get(conn, key).await, mem => Ok(mem.get(key)))
    }

    /// Reads `key` and sets its expiry to `ttl` from now, atomically, in one round trip.
    pub(crate) async fn get_ex(&self, key: &str, ttl: Duration) -> Result<Option<Raw>, Error> {
        dispatch!(self, conn => commands::get_ex(conn, key, ttl).await, mem => Ok(mem.get_ex(key, ttl)))
    }

    pub(crate) async fn set(
        &self,
        key: &str,
        value: Arc<[u8]>,
        ttl: Duration,
    ) -> Result<(), Error> {
        dispatch!(self, conn => commands::set(conn, key, value, ttl).await, mem => {
            mem.set(key, value, ttl);
            Ok(())
        })
    }

    /// Sets the expiry of `key` to `ttl` from now; `false` if there is no such key.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, Error> {
        dispatch!(self, conn => commands::touch(conn, key, ttl).await, mem => Ok(mem.touch(key, ttl)))
    }

    pub(crate) async fn ping(&self) -> Result<(), Error> {
        dispatch!(self, conn => commands::ping(conn).await, _mem => Ok(()))
    }

    /// Takes the lease of `key` for `ttl` if nobody holds it.
    pub(crate) async fn try_lease(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<Lease, Error> {
        dispatch!(self, conn => commands::try_lease(conn, key, token, ttl).await, mem => {
            Ok(mem.try_lease(key, token, ttl))
        })
    }

    /// Stores `value` only if the lease `token` on `key` is still valid (not expired, not
    /// voided by an invalidation), then releases it and wakes waiters; its fill event carries
    /// the value if it is at most `inline` bytes. `false`: rejected.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn put_leased(
        &self,
        key: &str,
        token: &str,
        value: Arc<[u8]>,
        ttl: Duration,
        channel: &str,
        inline: usize,
    ) -> Result<bool, Error> {
        dispatch!(self, conn => {
            commands::put_leased(conn, key, token, value, ttl, channel, inline).await
        }, mem => Ok(mem.put_leased(key, token, value, ttl)))
    }

    /// Stores `value` whoever holds the lease of `key` and deletes the lease, in one atomic
    /// step (a write-through: a load in flight can no longer store its result), then wakes the
    /// voided load's waiters, if it had any. The value is owned: a Redis store sends it from
    /// where it is, only the memory store makes it shareable.
    pub(crate) async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        channel: &str,
    ) -> Result<(), Error> {
        dispatch!(self, conn => commands::put(conn, key, &value, ttl, channel).await, mem => {
            mem.put(key, value.into(), ttl);
            Ok(())
        })
    }

    /// Releases the lease `token` on `key` if still held, and wakes waiters.
    pub(crate) async fn release(&self, key: &str, token: &str, channel: &str) -> Result<(), Error> {
        dispatch!(self, conn => commands::release(conn, key, token, channel).await, mem => {
            mem.release(key, token);
            Ok(())
        })
    }

    /// Deletes entries (of one hash slot) and their leases in one round trip and announces
    /// the invalidation.
    pub(crate) async fn invalidate(&self, keys: &[String], channel: &str) -> Result<u64, Error> {
        dispatch!(self, conn => commands::invalidate(conn, keys, channel).await, mem => {
            Ok(mem.invalidate(keys))
        })
    }
}

impl Store {
    /// The entry `key` (if given) and the versions of the tags whose keys are `tag_keys`, all
    /// of one hash slot, in one round trip.
    pub(crate) async fn read_with_tags(
        &self,
        key: Option<&str>,
        tag_keys: &[String],
    ) -> Result<(Option<Raw>, Vec<Option<u64>>), Error> {
        dispatch!(self, conn => commands::read_with_tags(conn, key, tag_keys).await, mem => {
            Ok(mem.read_with_tags(key, tag_keys))
        })
    }

    /// The versions of tags (keys of one hash slot) for a load that begins now: created with
    /// the versions in `fresh` where missing, each tag key alive at least `ttl`.
    pub(crate) async fn stamp_tags(
        &self,
        tag_keys: &[String],
        fresh: &[u64],
        ttl: Duration,
    ) -> Result<Vec<u64>, Error> {
        dispatch!(self, conn => commands::stamp_tags(conn, tag_keys, fresh, ttl).await, mem => {
            Ok(mem.stamp_tags(tag_keys, fresh, ttl))
        })
    }

    /// Gives tags (keys of one hash slot) the versions in `fresh`, voiding every entry that
    /// carries them, and announces it. How many tags had a version.
    pub(crate) async fn invalidate_tags(
        &self,
        tag_keys: &[String],
        fresh: &[u64],
        channel: &str,
    ) -> Result<u64, Error> {
        dispatch!(self, conn => commands::invalidate_tags(conn, tag_keys, fresh, channel).await, mem => {
            Ok(mem.invalidate_tags(tag_keys, fresh))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_get_ex() {
        let store = Store::memory(10);
        assert!(
            store
                .get_ex("absent", Duration::from_secs(1))
                .await
                .unwrap()
                .is_none()
        );
        store
            .set("k", Arc::from(&b"v"[..]), Duration::from_millis(50))
            .await
            .unwrap();
        let read = store.get_ex("k", Duration::from_secs(60)).await.unwrap();
        assert_eq!(read.as_deref(), Some(&b"v"[..]));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let kept = store.get("k").await.unwrap();
        assert_eq!(
            kept.as_deref(),
            Some(&b"v"[..]),
            "the read reset the expiry"
        );
    }

    #[tokio::test]
    async fn memory_touch() {
        let store = Store::memory(10);
        store
            .set("k", Arc::from(&b"v"[..]), Duration::from_secs(1))
            .await
            .unwrap();
        assert!(store.touch("k", Duration::from_secs(5)).await.unwrap());
        assert!(!store.touch("absent", Duration::from_secs(5)).await.unwrap());
    }
}
