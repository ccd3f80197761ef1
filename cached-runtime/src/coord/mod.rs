//! Coordination between the calls of one process, and with other processes through the
//! store's events: single flights of loads, coalesced reads, waiters woken by events, the
//! circuit breakers.

pub(crate) mod breaker;
pub(crate) mod events;
pub(crate) mod flight;
pub(crate) mod reads;

use std::sync::Arc;

use crate::wire::event::{Event, Kind};
use flight::{Flights, Waiters};
use reads::Reads;

/// What the calls of one cache in this process share: loads and reads in flight, and the
/// callers waiting for another process's load.
#[derive(Debug, Default)]
pub(crate) struct Local {
    pub(crate) flights: Flights,
    pub(crate) reads: Reads,
    pub(crate) waiters: Waiters,
}

impl Local {
    /// Forgets the loads and reads in flight of `key`: calls that start from now on do not
    /// join them (their result may predate an invalidation).
    pub(crate) fn forget(&self, key: &str) {
        self.flights.forget(key);
        self.reads.forget(key);
    }

    /// Forgets every load and read in flight: after a tag invalidation, any of them may be of
    /// an entry that carries the tag.
    pub(crate) fn forget_all(&self) {
        self.flights.forget_all();
        self.reads.forget_all();
    }

    /// An event from the channel: an invalidation voids local flights and reads of its key (a
    /// tag's, all of them); every other event wakes the key's waiters (a fill hands them the
    /// value when it carries it).
    pub(crate) fn on_event(&self, event: Event<'_>) {
        match event.kind {
            Kind::TagInvalidated => return self.forget_all(),
            Kind::Invalidated => self.forget(event.key),
            Kind::Filled | Kind::Released => {}
        }
        self.waiters.wake(event.key, event.value.map(Arc::from));
    }
}
