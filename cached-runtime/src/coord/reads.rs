//! Read coalescing: concurrent reads of one key in one `Cache` share one `GET`. When a burst
//! of callers hits a cold key at once, one round trip per process goes to Redis instead of one
//! per caller, and the load's lease is not queued behind hundreds of identical reads.
//!
//! A read joins only a `GET` still in flight; an invalidation through this `Cache` (or an
//! invalidation event from another one) forgets the key's flight, so that a call that starts
//! after an invalidation never takes the answer of a `GET` sent before it.

use std::{
    collections::HashMap,
    hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState},
    sync::{
        Arc, Mutex,
        atomic::{
            AtomicBool, AtomicUsize,
            Ordering::{Acquire, Relaxed, Release},
        },
    },
};

use super::flight::Handoff;
use crate::{error::Error, store::Raw};

const SHARDS: usize = 16;

/// What a read shares: the entry, nothing, or the error (its kind and message).
type Shared = Result<Option<Arc<[u8]>>, Error>;

#[derive(Debug, Default)]
struct Read {
    key: String,
    /// `None` inside: the leader was cancelled; waiters read for themselves.
    outcome: Handoff<Option<Shared>>,
    joined: AtomicBool,
}

/// Reads in flight by the key's hash (computed once per call with a keyed hasher; the map
/// itself does not hash again). Two keys with the same hash do not share: the second reads
/// for itself.
///
/// A read that starts while no other read of this `Cache` is in flight goes alone and touches
/// no map (one atomic increment and decrement): sequential callers pay nothing for coalescing,
/// and in a burst the second reader of a key leads the shared read.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    hasher: RandomState,
    shards: [Mutex<Shard>; SHARDS],
    /// Reads in flight that sent (or will send) a `GET` of their own.
    active: AtomicUsize,
}

/// One of [`Reads::active`], given back on drop.
pub(crate) struct Active<'a>(&'a AtomicUsize);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Release);
    }
}

type Shard = HashMap<u64, Arc<Read>, BuildHasherDefault<Prehashed>>;

/// The identity hasher for keys that are hashes already.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// This caller's part in a read of a key.
pub(crate) enum Part<'a> {
    /// Send the `GET`, then [`Lead::finish`].
    Lead(Lead<'a>),
    /// Wait for the leader's answer.
    Join(Joined),
    /// Read alone: no other read was in flight, or another key with the same hash is being
    /// read.
    Alone(Active<'a>),
}

pub(crate) struct Lead<'a> {
    _active: Active<'a>,
    reads: &'a Reads,
    hash: u64,
    read: Arc<Read>,
}

pub(crate) struct Joined(Arc<Read>);

impl Reads {
    fn shard(&self, hash: u64) -> &Mutex<Shard> {
        &self.shards[(hash >> 59) as usize % SHARDS]
    }

    pub(crate) fn join(&self, key: &str) -> Part<'_> {
        let active = Active(&self.active);
        if self.active.fetch_add(1, Acquire) == 0 {
            return Part::Alone(active);
        }
        let hash = self.hasher.hash_one(key);
        let mut map = self.shard(hash).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(read) = map.get(&hash) {
            if read.key != key {
                return Part::Alone(active);
            }
            read.joined.store(true, Relaxed);
            drop(active);
            return Part::Join(Joined(read.clone()));
        }
        let read = Arc::new(Read {
            key: key.to_owned(),
            ..Read::default()
        });
        map.insert(hash, read.clone());
        Part::Lead(Lead {
            _active: active,
            reads: self,
            hash,
            read,
        })
    }

    /// Later reads of `key` send a `GET` of their own.
    pub(crate) fn forget(&self, key: &str) {
        let hash = self.hasher.hash_one(key);
        let mut map = self.shard(hash).lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&hash).is_some_and(|read| read.key == key) {
            map.remove(&hash);
        }
    }

    /// Later reads of every key send a `GET` of their own (after a tag invalidation).
    pub(crate) fn forget_all(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}

impl Lead<'_> {
    /// Shares the answer with whoever joined, and ends the read.
    pub(crate) fn finish(self, answer: &Result<Option<Raw>, Error>) {
        if self.read.joined.load(Relaxed) {
            let shared = match answer {
                Ok(Some(raw)) => Ok(Some(raw.to_shared())),
                Ok(None) => Ok(None),
                Err(error) => Err(error.shallow_clone()),
            };
            self.read.outcome.set(Some(shared));
        }
        // Drop ends it.
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        self.read.outcome.set(None);
        {
            let mut map = self
                .reads
                .shard(self.hash)
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if map
                .get(&self.hash)
                .is_some_and(|r| Arc::ptr_eq(r, &self.read))
            {
                map.remove(&self.hash);
            }
        }
        if self.read.joined.load(Relaxed) {
            self.read.outcome.wake();
        }
    }
}

impl Joined {
    /// The leader's answer, or `None` if it was cancelled.
    pub(crate) async fn wait(self) -> Option<Result<Option<Raw>, Error>> {
        self.0
            .outcome
            .wait()
            .await
            .as_ref()
            .map(|shared| match shared {
                Ok(bytes) => Ok(bytes.clone().map(Raw::Shared)),
                Err(error) => Err(error.shallow_clone()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn joiners_take_the_leaders_answer() {
        let reads = Reads::default();
        let Part::Alone(_first) = reads.join("other") else {
            panic!("a read with none in flight goes alone")
        };
        let Part::Lead(lead) = reads.join("k") else {
            panic!("first leads")
        };
        let Part::Join(joined) = reads.join("k") else {
            panic!("second joins")
        };
        let waiter = tokio::spawn(joined.wait());
        tokio::task::yield_now().await;
        lead.finish(&Ok(Some(Raw::Owned(b"v".to_vec()))));
        let answer = waiter.await.unwrap().unwrap().unwrap().unwrap();
        assert_eq!(&*answer, b"v");
        assert!(matches!(reads.join("k"), Part::Lead(_)), "the read ended");
        drop(_first);
        assert!(matches!(reads.join("k"), Part::Alone(_)), "none in flight");
    }

    #[tokio::test]
    async fn a_cancelled_leader_lets_joiners_read_themselves() {
        let reads = Reads::default();
        let _first = reads.join("other");
        let lead = reads.join("k");
        let Part::Join(joined) = reads.join("k") else {
            panic!()
        };
        drop(lead);
        assert!(joined.wait().await.is_none());
    }

    #[test]
    fn forget_starts_a_new_read() {
        let reads = Reads::default();
        let _first = reads.join("other");
        let _old = reads.join("k");
        reads.forget("k");
        assert!(matches!(reads.join("k"), Part::Lead(_)));
    }
}
