//! How a return type maps onto a cached value, picked at compile time where the type is
//! concrete: [`Probe`] finds the [`Shape`] (`Result` or not) and whether waiters can share a
//! decoded value, and [`ops`] turns them into the [`Ops`] the runtime calls.

use std::{marker::PhantomData, sync::Arc, time::Duration};

use serde::{Serialize, de::DeserializeOwned};

use super::value::{Encoded, Hit, Ops, Share, meta};
use crate::{
    cache::Ttls,
    error::{Error, ErrorKind},
    wire::{
        codec::{CodecKind, Decoded},
        nullish,
        tags::Stamp,
    },
};

/// A probe of the return type `R`: `probe::<R>().shape()` picks its shape.
#[doc(hidden)]
pub const fn probe<R>() -> Probe<R> {
    Probe(PhantomData)
}

/// How a return type maps onto a cached value: [`Res`] for `Result<T, E>` (an `Err` is never
/// stored), [`Plain`] for everything else. A top-level `Option` needs no shape of its own: a
/// `None` is recognised through serde and stored as a null marker.
#[doc(hidden)]
pub trait Shape<R>: Copy {
    /// What is stored.
    type Value: Serialize + DeserializeOwned;
    /// The value to store, or `None` for a result that must not be cached.
    fn store(result: &R) -> Option<&Self::Value>;
    /// A cached value as the result.
    fn from_value(value: Self::Value) -> R;
}

/// Whether a write succeeded (so its invalidation should run).
#[doc(hidden)]
pub trait Outcome<R>: Copy {
    /// `false` for an `Err`.
    fn succeeded(result: &R) -> bool;
}

/// Shape of any return type that is not a `Result`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Plain;

/// Shape of `Result<T, E>` (and aliases of it).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Res;

impl<T: Serialize + DeserializeOwned> Shape<T> for Plain {
    type Value = T;
    fn store(r: &T) -> Option<&T> {
        Some(r)
    }
    fn from_value(v: T) -> T {
        v
    }
}

impl<T: Serialize + DeserializeOwned, E> Shape<Result<T, E>> for Res {
    type Value = T;
    fn store(r: &Result<T, E>) -> Option<&T> {
        r.as_ref().ok()
    }
    fn from_value(v: T) -> Result<T, E> {
        Ok(v)
    }
}

impl<R> Outcome<R> for Plain {
    fn succeeded(_: &R) -> bool {
        true
    }
}

impl<T, E> Outcome<Result<T, E>> for Res {
    fn succeeded(r: &Result<T, E>) -> bool {
        r.is_ok()
    }
}

/// Picks the shape of a return type where it is concrete, seeing through type aliases:
/// `Probe::<R>::new().shape()` is the inherent method (→ [`Res`]) when `R` is a `Result`, and
/// otherwise the method of the `Deref` target (→ [`Plain`]). No trait import is needed.
#[doc(hidden)]
pub struct Probe<R>(PhantomData<fn() -> R>);

impl<R> Probe<R> {
    /// A probe for `R`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

impl<T, E> Probe<Result<T, E>> {
    /// `Result<T, E>`.
    pub fn shape(&self) -> Res {
        Res
    }
}

impl<R: Clone + Send + Sync + 'static> Probe<R> {
    /// A type waiters can clone: they clone one decoded value instead of each decoding the
    /// bytes. (Types that are not `Clone` get `None` through the `Deref` fallback.)
    pub fn sharing(&self) -> Option<Share<R>> {
        Some(Share {
            wrap: |r| Arc::new(r.clone()),
            unwrap: |any| any.downcast_ref::<R>().cloned(),
        })
    }
}

impl<R> std::fmt::Debug for Probe<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::any::type_name::<R>())
    }
}

/// The fallback of [`Probe`].
#[doc(hidden)]
#[derive(Debug)]
pub struct PlainProbe;

impl PlainProbe {
    /// Anything but a `Result`.
    pub fn shape(&self) -> Plain {
        Plain
    }

    /// A type that is not `Clone + Send + Sync + 'static`: waiters decode.
    pub fn sharing<R>(&self) -> Option<Share<R>> {
        None
    }
}

impl<R> std::ops::Deref for Probe<R> {
    type Target = PlainProbe;
    fn deref(&self) -> &PlainProbe {
        &PlainProbe
    }
}

/// Checks that `R` is cacheable with shape `S` and returns its [`Ops`]; `share` is how
/// waiters take a leader's value (`Probe::sharing`).
#[doc(hidden)]
pub fn ops<R, S: Shape<R>>(_shape: S, share: Option<Share<R>>) -> Ops<R> {
    Ops {
        decode: decode::<R, S>,
        encode: encode::<R, S>,
        failed: |r| S::store(r).is_none(),
        share,
    }
}

fn decode<R, S: Shape<R>>(
    codec: CodecKind,
    bytes: &[u8],
    max_value_size: usize,
) -> Result<Hit<R>, Error> {
    match codec.decode_entry::<S::Value>(bytes, max_value_size)? {
        Decoded::Value(value, meta) => Ok(Hit::Value(S::from_value(value), meta)),
        // A null marker is only meaningful for a type with a `None`; under any other type (two
        // templates sharing a key) it is a decode error: reload and overwrite it.
        Decoded::Null(meta) => nullish::none::<S::Value>()
            .map(|none| Hit::Null(S::from_value(none), meta))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Codec,
                    "a cached \"not found\" under a key whose function has no `None`",
                )
            }),
    }
}

fn encode<R, S: Shape<R>>(
    codec: CodecKind,
    result: &R,
    load: Duration,
    ttls: Ttls,
    stamps: &[Stamp<'_>],
) -> Option<Encoded> {
    let value = S::store(result)?;
    // A value is kept past its logical expiry for `stale` / `fail_safe`; a "not found" is not.
    let (value, logical, physical) = if nullish::is_none(value) {
        (None, ttls.null_ttl, ttls.null_ttl)
    } else {
        (Some(value), ttls.ttl, ttls.ttl + ttls.extra)
    };
    // A sliding value has no logical expiry: freshness comes from Redis's TTL alone.
    let meta = meta(load, logical, ttls.sliding && value.is_some());
    Some(Encoded {
        bytes: codec.encode_tagged_entry(value, meta, stamps),
        ttl: physical,
    })
}
