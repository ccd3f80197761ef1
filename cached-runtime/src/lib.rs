//! Declarative Redis caching for async Rust.
//!
//! Put `#[cache_aside]` on the read functions of a repository and `#[invalidates]` on its
//! writes; they expand into one call into this crate, which does the work. The README has
//! every option.
//!
//! # Redis
//!
//! Build one [`Cache`] per process and share it (it is a cheap `Arc` clone):
//!
//! ```no_run
//! use cached_runtime::Cache;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), cached_runtime::Error> {
//!     let cache = Cache::builder()
//!         .redis("redis://127.0.0.1:6379/0") // rediss:// with the `tls` feature
//!         .namespace("app")                  // keys are app:<key>
//!         .build()
//!         .await?;
//!     cached_runtime::set_global(cache)?; // for annotations without `cache = ...`
//!     Ok(())
//! }
//! ```
//!
//! [`CacheBuilder::build`] does not connect: it fails only for an invalid configuration and
//! starts connecting in the background. A Redis that is down (at start-up or later) is not an
//! error for anyone: calls run their bodies, each failure is logged and counted in
//! [`Cache::stats`], and the connection is re-made automatically once Redis answers.
//!
//! # In memory
//!
//! The memory backend keeps entries in this process — for tests and single-instance
//! services. The annotations are the same:
//!
//! ```
//! use cached_runtime::{cache_aside, invalidates, Cache};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! struct User { id: u64, name: String }
//!
//! struct Users { cache: Cache /* , db: PgPool, ... */ }
//!
//! impl Users {
//!     /// Read from the cache, or from the database on a miss (then cached for 10 minutes).
//!     /// A `None` is cached too, for a short while, so absent rows do not hit the database.
//!     #[cache_aside(key = "user:<id>", ttl = 600, cache = self.cache)]
//!     async fn find(&self, id: u64) -> Result<Option<User>, std::io::Error> {
//!         Ok(Some(User { id, name: "Ada".into() })) // the query
//!     }
//!
//!     /// Write to the database, then delete the cached entry.
//!     #[invalidates(key = "user:<id>", cache = self.cache)]
//!     async fn rename(&self, id: u64, name: &str) -> Result<(), std::io::Error> {
//!         Ok(()) // the update
//!     }
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let users = Users { cache: Cache::builder().memory().namespace("app").build().await? };
//!     users.find(42).await?;            // miss: runs the body, stores app:user:42
//!     users.find(42).await?;            // hit: the body does not run
//!     users.rename(42, "Grace").await?; // deletes app:user:42
//!     assert_eq!(users.cache.stats().total.hits, 1);
//!     Ok(())
//! }
//! ```
//!
//! # Without an attribute
//!
//! [`Cache::get_or_load`] is the same read-through for closures and keys computed at run
//! time ([`Key`] renders them as the templates do); [`Cache::entry`] takes every other
//! option per call, and [`Cache::get`], [`Cache::put`] and [`Cache::remove`] read, write
//! through and invalidate one entry.
//!
//! The cache never breaks the application: a Redis error, a timeout (every round trip is
//! bounded by [`CacheBuilder::op_timeout`]) or a value that does not decode makes the call run
//! its own body; the event is logged with `tracing` and counted in [`Cache::stats`].
#![cfg_attr(docsrs, feature(doc_cfg))]

// The layers, each importing only from those below it (see ARCHITECTURE.md):
// patterns (what the macros call) -> the cache handle -> coordination -> stores -> wire format.
mod patterns;

mod builder;
mod cache;
mod error;
mod global;
mod pending;
mod policy;
mod stats;

mod coord;

mod store;

mod wire;

pub use builder::{
    CacheBuilder, DEFAULT_FILL_EVENT_MAX_VALUE, DEFAULT_LOCK_TTL, DEFAULT_NAMESPACE,
    DEFAULT_OP_TIMEOUT,
};
pub use cache::Cache;
pub use error::{Error, ErrorKind};
pub use global::{global, set_global};
pub use patterns::target::AsCache;
pub use patterns::through::{Entry, HasTtl, NoTtl};
pub use policy::Site;
pub use stats::{Counts, FunctionStats, Stats};
pub use wire::codec::{Bincode, Codec, CodecKind, DEFAULT_MAX_VALUE_SIZE, Json};
pub use wire::key::{Key, KeyPart, KeyWriter, MAX_KEY_LEN};

/// Caches an `async fn`'s result in Redis (cache-aside / lazy loading).
///
/// See the crate documentation and README for every option.
pub use cached_macros::cache_aside;

/// Deletes cached entries after an `async fn` (a write) succeeds.
///
/// See the crate documentation and README for every option.
pub use cached_macros::invalidates;

/// Stores an `async fn`'s result (a write's new value) in the cache: write-through.
///
/// See the crate documentation and README for every option.
pub use cached_macros::cache_put;

/// Not public API: what the macros expand into. Nothing here is covered by semver.
#[doc(hidden)]
pub mod __private {
    pub use crate::patterns::aside::{cache_aside, cache_aside_tagged};
    pub use crate::patterns::body::{Body, Detached, owned};
    pub use crate::patterns::invalidate::{invalidate, invalidate_tagged};
    pub use crate::patterns::put::{PutOps, cache_put, cache_put_tagged, put_ops};
    pub use crate::patterns::shape::{Outcome, Plain, PlainProbe, Probe, Res, Shape, ops, probe};
    pub use crate::patterns::target::{CacheRef, Global, Template, key, keys, tags};
    pub use crate::patterns::value::Share;
    /// The caching policy of one function (the name the expansions use).
    pub use crate::policy::{Policy, Site};
    pub use crate::wire::codec::wire;
    pub use crate::wire::key::KeyPart;

    /// The messages of the event channel, parsed (for the tests of what the scripts emit).
    pub mod events {
        /// `(kind letter, key, carried value)` of an event message; `None` if it is not one.
        pub fn parse(payload: &[u8]) -> Option<(char, String, Option<Vec<u8>>)> {
            use crate::wire::event::{Kind, parse};
            parse(payload).map(|e| {
                let kind = match e.kind {
                    Kind::Filled => 'f',
                    Kind::Released => 'r',
                    Kind::Invalidated => 'i',
                    Kind::TagInvalidated => 't',
                };
                (kind, e.key.to_owned(), e.value.map(<[u8]>::to_vec))
            })
        }
    }
}

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
