//! In-process single flight: concurrent misses for one key in one `Cache` run the body once;
//! the others wait for the leader's result and take a clone of its value (or decode its
//! encoded entry, for types that are not `Clone`).

use std::{
    any::Any,
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
};

use tokio::sync::Notify;

/// The outcome a leader shares: the encoded entry, or `None` when its result was not
/// cacheable (an `Err`) or it was cancelled — waiters then go round again.
pub(crate) type Outcome = Option<Fill>;

/// A leader's result as its waiters take it.
#[derive(Clone, Debug)]
pub(crate) struct Fill {
    /// The encoded entry (any waiter can decode it).
    pub(crate) bytes: Arc<[u8]>,
    /// The decoded value, for types that are `Clone`: a waiter clones it instead of decoding
    /// the bytes (about 2.5× cheaper for a 1 KiB struct, and it is done by every waiter).
    pub(crate) value: Option<Arc<dyn Any + Send + Sync>>,
}

#[cfg(test)]
impl Fill {
    pub(crate) fn bytes(bytes: Arc<[u8]>) -> Self {
        Fill { bytes, value: None }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: Arc<Mutex<HashMap<String, Arc<Flight>>>>,
}

/// A value handed once from a leader to whoever waits: a flight's outcome, a shared read's
/// answer. The first [`set`](Handoff::set) wins; waiters are woken by [`wake`](Handoff::wake)
/// (a leader sets before it wakes, also when it is dropped unfinished).
#[derive(Debug)]
pub(crate) struct Handoff<T> {
    value: OnceLock<T>,
    done: Notify,
}

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Handoff {
            value: OnceLock::new(),
            done: Notify::new(),
        }
    }
}

impl<T> Handoff<T> {
    /// Sets the value, unless it is set already.
    pub(crate) fn set(&self, value: T) {
        let _ = self.value.set(value);
    }

    /// Wakes everyone waiting.
    pub(crate) fn wake(&self) {
        self.done.notify_waiters();
    }

    /// Waits until the value is set and [`wake`](Handoff::wake) follows (or it was set
    /// before this waits).
    pub(crate) async fn wait(&self) -> &T {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(value) = self.value.get() {
                return value;
            }
            notified.await;
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Flight {
    outcome: Handoff<Outcome>,
    /// How many callers joined as waiters.
    waiters: AtomicUsize,
}

pub(crate) enum Role {
    Leader(Leader),
    Waiter(Arc<Flight>),
}

/// The leader of a flight. Dropping it without [`finish`](Leader::finish) (a cancelled
/// caller) releases the waiters with no outcome. It owns what it needs, so that a background
/// refresh can lead.
#[derive(Debug)]
pub struct Leader {
    map: Arc<Mutex<HashMap<String, Arc<Flight>>>>,
    key: String,
    flight: Arc<Flight>,
}

impl Flights {
    pub(crate) fn join(&self, key: &str) -> Role {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(flight) = map.get(key) {
            flight.waiters.fetch_add(1, Relaxed);
            return Role::Waiter(flight.clone());
        }
        let flight = Arc::new(Flight::default());
        map.insert(key.to_owned(), flight.clone());
        Role::Leader(Leader {
            map: self.map.clone(),
            key: key.to_owned(),
            flight,
        })
    }

    /// Forgets the flight of `key` (after an invalidation): later callers start a new load
    /// instead of joining one that may return pre-invalidation data.
    pub(crate) fn forget(&self, key: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        // Most writes find no load in flight: then the key is not even hashed.
        if !map.is_empty() {
            map.remove(key);
        }
    }

    /// Forgets every flight (after a tag invalidation, which may void any of them).
    pub(crate) fn forget_all(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl Flight {
    /// Waits for the leader's outcome.
    pub(crate) async fn wait(&self) -> Outcome {
        self.outcome.wait().await.clone()
    }
}

impl Leader {
    /// Whether anyone waits for this flight yet (then sharing a decoded value pays).
    pub(crate) fn has_waiters(&self) -> bool {
        self.flight.waiters.load(Relaxed) > 0
    }

    /// Publishes the outcome to the waiters and ends the flight.
    pub(crate) fn finish(self, outcome: Outcome) {
        self.flight.outcome.set(outcome);
        // Drop does the rest.
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.flight.outcome.set(None);
        {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            if map
                .get(&self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                map.remove(&self.key);
            }
        }
        self.flight.outcome.wake();
    }
}

/// Local waiters for keys being loaded by another process, woken by the pub/sub listener.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    map: Mutex<HashMap<String, Arc<Waiting>>>,
}

/// The waiters of one key: woken together; a fill event that carried the value leaves it here.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    pub(crate) notify: Notify,
    filled: Mutex<Option<Arc<[u8]>>>,
}

impl Waiting {
    /// The value of the last fill event, if it carried one.
    pub(crate) fn filled(&self) -> Option<Arc<[u8]>> {
        self.filled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A registration for wake-ups on one key; unregisters on drop.
pub(crate) struct Registration<'a> {
    waiters: &'a Waiters,
    key: &'a str,
    pub(crate) waiting: Arc<Waiting>,
}

impl Waiters {
    pub(crate) fn register<'a>(&'a self, key: &'a str) -> Registration<'a> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let waiting = map.entry(key.to_owned()).or_default().clone();
        Registration {
            waiters: self,
            key,
            waiting,
        }
    }

    /// Wakes everyone waiting on `key`, leaving them `value` if the event carried it (or
    /// clearing an earlier one); returns whether anyone was waiting.
    pub(crate) fn wake(&self, key: &str, value: Option<Arc<[u8]>>) -> bool {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some(waiting) => {
                *waiting.filled.lock().unwrap_or_else(|e| e.into_inner()) = value;
                waiting.notify.notify_waiters();
                true
            }
            None => false,
        }
    }
}

impl Waiters {
    /// Wakes every waiter of every key (events may have been lost: they check again).
    pub(crate) fn wake_all(&self) {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for waiting in map.values() {
            waiting.notify.notify_waiters();
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut map = self.waiters.map.lock().unwrap_or_else(|e| e.into_inner());
        // The map's Arc plus ours: nobody else waits on this key.
        if Arc::strong_count(&self.waiting) == 2 {
            map.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_many_waiters() {
        let flights = Flights::default();
        let Role::Leader(leader) = flights.join("k") else {
            panic!("first is the leader")
        };
        let Role::Waiter(w1) = flights.join("k") else {
            panic!("second waits")
        };
        let waiter = tokio::spawn(async move { w1.wait().await });
        tokio::task::yield_now().await;
        leader.finish(Some(Fill::bytes(Arc::from(&b"v"[..]))));
        assert_eq!(
            waiter.await.unwrap().map(|fill| fill.bytes).as_deref(),
            Some(&b"v"[..])
        );
        assert!(matches!(flights.join("k"), Role::Leader(_)), "flight ended");
    }

    #[tokio::test]
    async fn a_dropped_leader_releases_waiters_empty() {
        let flights = Flights::default();
        let leader = flights.join("k");
        let Role::Waiter(w) = flights.join("k") else {
            panic!()
        };
        drop(leader);
        assert!(w.wait().await.is_none());
    }

    #[tokio::test]
    async fn forget_starts_a_new_flight() {
        let flights = Flights::default();
        let _old = flights.join("k");
        flights.forget("k");
        assert!(matches!(flights.join("k"), Role::Leader(_)));
    }
}
