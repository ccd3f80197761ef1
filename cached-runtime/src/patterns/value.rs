//! A return type's value as the load handles it without knowing the type: the serde work as
//! function pointers ([`Ops`]), what it gives ([`Hit`], [`Encoded`]), and how a flight's
//! waiters share a decoded value ([`Share`]).

use std::{sync::Arc, time::Duration};

use crate::{
    cache::Ttls,
    error::Error,
    wire::{
        codec::{CodecKind, Meta},
        tags::Stamp,
    },
};

/// How waiters of a flight take the leader's decoded value: a clone of it, type-erased.
#[doc(hidden)]
pub struct Share<R> {
    pub(crate) wrap: fn(&R) -> Arc<dyn std::any::Any + Send + Sync>,
    pub(crate) unwrap: fn(&(dyn std::any::Any + Send + Sync)) -> Option<R>,
}

impl<R> Clone for Share<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Share<R> {}

impl<R> std::fmt::Debug for Share<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Share")
    }
}

/// The serde work for one return type, as plain function pointers: `shape::ops` is where
/// the `Serialize + DeserializeOwned` bounds are checked (the macros span it at the user's
/// return type, so an unmet bound is reported there, once), and `cache_aside` needs none.
#[doc(hidden)]
pub struct Ops<R> {
    pub(crate) decode: DecodeFn<R>,
    /// Codec, result, how long its load took, TTLs, the tags it carries.
    pub(crate) encode: fn(CodecKind, &R, Duration, Ttls, &[Stamp<'_>]) -> Option<Encoded>,
    /// Whether a result is a failure (an `Err`), for `fail_safe`.
    pub(crate) failed: fn(&R) -> bool,
    pub(crate) share: Option<Share<R>>,
}

impl<R> Clone for Ops<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Ops<R> {}

impl<R> std::fmt::Debug for Ops<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops").finish_non_exhaustive()
    }
}

/// Decodes an entry: codec, bytes, the cache's `max_value_size`.
pub(crate) type DecodeFn<R> = fn(CodecKind, &[u8], usize) -> Result<Hit<R>, Error>;

pub(crate) enum Hit<R> {
    Value(R, Meta),
    Null(R, Meta),
}

impl<R> Hit<R> {
    pub(crate) fn into_parts(self) -> (R, Meta, bool) {
        match self {
            Hit::Value(r, meta) => (r, meta, false),
            Hit::Null(r, meta) => (r, meta, true),
        }
    }
}

pub(crate) struct Encoded {
    pub(crate) bytes: Result<Vec<u8>, Error>,
    pub(crate) ttl: Duration,
}

/// The header of a value stored now after a load of `took`: logically expiring `logical` from
/// now, or never (0) for a sliding entry, whose only expiry is Redis's TTL.
pub(crate) fn meta(took: Duration, logical: Duration, sliding: bool) -> Meta {
    Meta {
        load_ms: u32::try_from(took.as_millis()).unwrap_or(u32::MAX),
        expires_at_ms: if sliding {
            0
        } else {
            unix_ms().saturating_add(u64::try_from(logical.as_millis()).unwrap_or(u64::MAX))
        },
    }
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
