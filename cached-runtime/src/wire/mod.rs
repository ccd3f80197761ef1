//! What is written to Redis: keys (`key.rs`), stored values with their header (`codec.rs`,
//! with `bounded.rs` bounding what a decode may allocate, `nullish.rs` recognising a `None`,
//! `bare.rs` storing a top-level `Some(v)` as `v`), the messages of the event channel
//! (`event.rs`), and tags (`tags.rs`).

pub(crate) mod bare;
pub(crate) mod bounded;
pub(crate) mod codec;
pub(crate) mod event;
pub(crate) mod key;
pub(crate) mod nullish;
#[cfg(feature = "cluster")]
pub(crate) mod slot;
pub(crate) mod tags;
