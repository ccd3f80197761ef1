//! How values are turned into bytes: a [`Codec`] for the payload and a fixed header in front.
//!
//! Every stored value starts with a 16-byte header:
//!
//! | bytes | field |
//! |---|---|
//! | 0 | magic `0xCA` |
//! | 1 | format version (`2`) |
//! | 2 | codec id ([`Codec::ID`]) |
//! | 3 | flags: bit 0 = null marker (a cached `None`); bit 1 = a tag section follows |
//! | 4..8 | duration of the load that produced the value, in ms (little endian) |
//! | 8..16 | logical expiry, Unix time in ms (little endian) |
//!
//! With bit 1 set, the tags the entry carries and their versions follow the header (see
//! `tags.rs`), then the payload.
//!
//! A value whose magic, version or codec id does not match, or whose payload does not decode,
//! is treated as a miss and overwritten by the next load: changing a struct or the codec never
//! breaks callers.
//!
//! The payload is the value as its codec encodes it, except that a top-level `Some(v)` is
//! encoded as `v` (see `bare.rs`), so that `Option<T>` and `T` read each other's entries.
//! Format version 1 encoded it as the codec does (in bincode, a tag byte first); its entries
//! are reloaded, never misread.

use serde::{Serialize, de::DeserializeOwned};

use super::{
    bare::Bare,
    tags::{self, Stamp, Stamps},
};
use crate::error::{Error, ErrorKind};

const MAGIC: u8 = 0xCA;
/// 2: a top-level `Some(v)` is stored as `v` (`bare.rs`).
const VERSION: u8 = 2;
pub(crate) const HEADER_LEN: usize = 16;
const FLAG_NULL: u8 = 1;
const FLAG_TAGS: u8 = 2;

/// Default largest value (encoded, header included) a cache stores or reads: see
/// [`CacheBuilder::max_value_size`](crate::CacheBuilder::max_value_size).
pub const DEFAULT_MAX_VALUE_SIZE: usize = 16 * 1024 * 1024;

/// Ceiling of what decoding one value may allocate, for a cache whose largest value is
/// `max_value_size` bytes: 16 × it (a decoded value can legitimately be that much larger than
/// its encoding: a `u128` is one byte on the wire), rounded up to 1 MiB, 16 MiB, 256 MiB or
/// 4 GiB. Bincode checks every length prefix against it before allocating, so a corrupt or
/// hostile value cannot claim more memory than that.
pub(crate) fn decode_budget(max_value_size: usize) -> usize {
    let wanted = max_value_size.saturating_mul(16);
    BUDGETS
        .iter()
        .copied()
        .find(|&budget| budget >= wanted)
        .unwrap_or(BUDGETS[BUDGETS.len() - 1])
}

/// The decode budgets bincode is instantiated with (its limit is a const generic: one decoder
/// per budget, so few of them).
const BUDGETS: [usize; 4] = [1 << 20, 1 << 24, 1 << 28, u32::MAX as usize];

/// A serialization format for cached values.
///
/// The two built-in codecs are [`Bincode`] (the default: compact and fast) and [`Json`]
/// (readable in `redis-cli`). The codec's [`ID`](Codec::ID) is stored in each value's header,
/// so switching codecs turns old entries into misses instead of decode errors.
pub trait Codec: Send + Sync + 'static {
    /// The id written into each value's header. 1 and 2 are taken by the built-in codecs.
    const ID: u8;
    /// Appends `value`'s encoding to `out`.
    fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), Error>;
    /// Decodes a whole payload.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, Error>;
}

/// bincode 2 with its standard configuration (varint integers, little endian) and a decode
/// limit (see [`CacheBuilder::max_value_size`](crate::CacheBuilder::max_value_size)).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

/// JSON through `serde_json`: larger and slower than [`Bincode`], readable with `redis-cli`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Codec for Bincode {
    const ID: u8 = 1;
    fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
        bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
            .map(drop)
            .map_err(|e| Error::with_source(ErrorKind::Codec, "bincode encode failed", e))
    }
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, Error> {
        self.decode_within(bytes, decode_budget(DEFAULT_MAX_VALUE_SIZE))
    }
}

impl Bincode {
    /// Decodes with at most `budget` bytes claimed by the value's primitives and containers
    /// (rounded up to one of [`BUDGETS`]).
    fn decode_within<T: DeserializeOwned>(self, bytes: &[u8], budget: usize) -> Result<T, Error> {
        let standard = bincode::config::standard();
        let decoded = if budget <= BUDGETS[0] {
            decode_bounded(bytes, standard.with_limit::<{ BUDGETS[0] }>())
        } else if budget <= BUDGETS[1] {
            decode_bounded(bytes, standard.with_limit::<{ BUDGETS[1] }>())
        } else if budget <= BUDGETS[2] {
            decode_bounded(bytes, standard.with_limit::<{ BUDGETS[2] }>())
        } else {
            decode_bounded(bytes, standard.with_limit::<{ BUDGETS[3] }>())
        };
        let (value, trailing) = decoded
            .map_err(|e| Error::with_source(ErrorKind::Codec, "bincode decode failed", e))?;
        if trailing {
            return Err(Error::new(
                ErrorKind::Codec,
                "bincode decode left trailing bytes",
            ));
        }
        Ok(value)
    }
}

/// Decodes one value from `bytes`: bincode checks every string's and byte buffer's length
/// against the config's limit before allocating, and [`bounded`](crate::bounded) keeps a
/// sequence's or map's length prefix from pre-allocating past the input's size. Returns the
/// value and whether bytes are left behind it.
fn decode_bounded<T: DeserializeOwned, C: bincode::config::Config>(
    bytes: &[u8],
    config: C,
) -> Result<(T, bool), bincode::error::DecodeError> {
    let mut decoder = bincode::serde::BorrowedSerdeDecoder::from_slice(bytes, config, ());
    let value = super::bounded::deserialize(decoder.as_deserializer(), bytes.len())?;
    // The slice decoder does not tell how much it read: one more byte decodes only if some
    // are left.
    let trailing = <u8 as serde::Deserialize>::deserialize(decoder.as_deserializer()).is_ok();
    Ok((value, trailing))
}

impl Codec for Json {
    const ID: u8 = 2;
    fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
        serde_json::to_writer(out, value)
            .map_err(|e| Error::with_source(ErrorKind::Codec, "json encode failed", e))
    }
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, Error> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::with_source(ErrorKind::Codec, "json decode failed", e))
    }
}

/// The codec a [`Cache`](crate::Cache) uses; pass [`Bincode`] or [`Json`] to
/// [`CacheBuilder::codec`](crate::CacheBuilder::codec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CodecKind {
    /// [`Bincode`].
    #[default]
    Bincode,
    /// [`Json`].
    Json,
}

impl From<Bincode> for CodecKind {
    fn from(_: Bincode) -> Self {
        CodecKind::Bincode
    }
}

impl From<Json> for CodecKind {
    fn from(_: Json) -> Self {
        CodecKind::Json
    }
}

/// Whether an entry's logical expiry (from its header) is still ahead of `now_ms`. Entries
/// kept past it for `stale`/`fail_safe` are not fresh; unreadable headers count as not fresh.
pub(crate) fn is_fresh(bytes: &[u8], now_ms: u64) -> bool {
    match bytes.split_first_chunk::<HEADER_LEN>() {
        Some((header, _)) if header[0] == MAGIC && header[1] == VERSION => {
            let expires = le_u64(header);
            expires == 0 || now_ms < expires
        }
        _ => false,
    }
}

/// The tags an entry carries, with their versions when it was loaded (none for an untagged
/// entry). An unreadable header or tag section is an error: the entry is treated as a miss.
pub(crate) fn stamps(bytes: &[u8]) -> Result<Stamps<'_>, Error> {
    match bytes.split_first_chunk::<HEADER_LEN>() {
        Some((header, rest)) if header[0] == MAGIC && header[1] == VERSION => {
            if header[3] & FLAG_TAGS == 0 {
                Ok(Stamps::default())
            } else {
                Ok(tags::read_section(rest)?.0)
            }
        }
        _ => Err(Error::new(ErrorKind::Codec, "unknown value format")),
    }
}

/// Whether an entry carries tags (a flag in its header; `false` for what is not an entry).
#[inline]
pub(crate) fn is_tagged(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN && bytes[3] & FLAG_TAGS != 0
}

/// Metadata kept in a value's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Meta {
    /// How long the load that produced the value took, in ms.
    pub(crate) load_ms: u32,
    /// Logical expiry, Unix ms (0 = none recorded).
    pub(crate) expires_at_ms: u64,
}

/// A decoded entry.
#[derive(Debug, PartialEq)]
pub(crate) enum Decoded<T> {
    Value(T, Meta),
    Null(Meta),
}

impl CodecKind {
    fn id(self) -> u8 {
        match self {
            CodecKind::Bincode => Bincode::ID,
            CodecKind::Json => Json::ID,
        }
    }

    /// Encodes a value (or, with `None`, the null marker) behind the header.
    pub(crate) fn encode_entry<T: Serialize + ?Sized>(
        self,
        value: Option<&T>,
        meta: Meta,
    ) -> Result<Vec<u8>, Error> {
        self.encode_tagged_entry(value, meta, &[])
    }

    /// [`encode_entry`](Self::encode_entry) for an entry that carries `stamps`: its tags, at
    /// the versions they had when its load began.
    pub(crate) fn encode_tagged_entry<T: Serialize + ?Sized>(
        self,
        value: Option<&T>,
        meta: Meta,
        stamps: &[Stamp<'_>],
    ) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(HEADER_LEN + 64);
        let mut flags = if value.is_none() { FLAG_NULL } else { 0 };
        if !stamps.is_empty() {
            flags |= FLAG_TAGS;
        }
        out.extend_from_slice(&[MAGIC, VERSION, self.id(), flags]);
        out.extend_from_slice(&meta.load_ms.to_le_bytes());
        out.extend_from_slice(&meta.expires_at_ms.to_le_bytes());
        tags::write_section(&mut out, stamps)?;
        if let Some(value) = value {
            let value = Bare(value);
            match self {
                CodecKind::Bincode => Bincode.encode(&value, &mut out)?,
                CodecKind::Json => Json.encode(&value, &mut out)?,
            }
        }
        Ok(out)
    }

    /// Decodes an entry written by [`encode_entry`](Self::encode_entry) with the same codec,
    /// allocating at most [`decode_budget`]`(max_value_size)` for it. An entry longer than
    /// `max_value_size` is an error without being decoded.
    pub(crate) fn decode_entry<T: DeserializeOwned>(
        self,
        bytes: &[u8],
        max_value_size: usize,
    ) -> Result<Decoded<T>, Error> {
        if bytes.len() > max_value_size {
            return Err(Error::new(
                ErrorKind::Codec,
                format!(
                    "value of {} bytes is larger than max_value_size ({max_value_size} bytes); not decoded",
                    bytes.len()
                ),
            ));
        }
        let Some((header, payload)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(Error::new(
                ErrorKind::Codec,
                "value shorter than its header",
            ));
        };
        if header[0] != MAGIC || header[1] != VERSION {
            return Err(Error::new(
                ErrorKind::Codec,
                format!(
                    "unknown value format (magic {:#04x}, version {})",
                    header[0], header[1]
                ),
            ));
        }
        if header[2] != self.id() {
            return Err(Error::new(
                ErrorKind::Codec,
                format!(
                    "value written by codec {}, cache reads codec {}",
                    header[2],
                    self.id()
                ),
            ));
        }
        let [_, _, _, _, l0, l1, l2, l3, ..] = *header;
        let meta = Meta {
            load_ms: u32::from_le_bytes([l0, l1, l2, l3]),
            expires_at_ms: le_u64(header),
        };
        if header[3] & FLAG_NULL != 0 {
            return Ok(Decoded::Null(meta));
        }
        let payload = if header[3] & FLAG_TAGS != 0 {
            tags::read_section(payload)?.1
        } else {
            payload
        };
        let Bare(value) = match self {
            CodecKind::Bincode => Bincode.decode_within(payload, decode_budget(max_value_size))?,
            CodecKind::Json => Json.decode(payload)?,
        };
        Ok(Decoded::Value(value, meta))
    }
}

/// The logical expiry in a header (bytes 8..16).
fn le_u64(header: &[u8; HEADER_LEN]) -> u64 {
    let [.., e0, e1, e2, e3, e4, e5, e6, e7] = *header;
    u64::from_le_bytes([e0, e1, e2, e3, e4, e5, e6, e7])
}

/// Not public API: the stored value format, for property tests and fuzzing. Nothing here is
/// covered by semver.
#[doc(hidden)]
pub mod wire {
    use serde::{Serialize, de::DeserializeOwned};

    use super::{CodecKind, Decoded, Meta};
    use crate::error::Error;

    /// Encodes `value` (`None`: the null marker) as a cache stores it, header included. A
    /// top-level `Some(v)` of an `Option` is stored as `v`; a top-level `None` of one is an
    /// error (a cache stores it as the null marker).
    pub fn encode<T: Serialize + ?Sized>(
        codec: CodecKind,
        value: Option<&T>,
        load_ms: u32,
        expires_at_ms: u64,
    ) -> Result<Vec<u8>, Error> {
        codec.encode_entry(
            value,
            Meta {
                load_ms,
                expires_at_ms,
            },
        )
    }

    /// Decodes a stored value as a cache with this `max_value_size` reads it: `Ok(Some(v))`,
    /// `Ok(None)` for the null marker, `Err` for anything else (never a panic).
    pub fn decode<T: DeserializeOwned>(
        codec: CodecKind,
        bytes: &[u8],
        max_value_size: usize,
    ) -> Result<Option<T>, Error> {
        Ok(match codec.decode_entry::<T>(bytes, max_value_size)? {
            Decoded::Value(value, _) => Some(value),
            Decoded::Null(_) => None,
        })
    }

    /// The most that decoding one value may claim for its contents, in bytes, for a cache with
    /// this `max_value_size` (bincode; what is actually allocated can exceed it by container
    /// growth: at most about twice).
    pub fn decode_budget(max_value_size: usize) -> usize {
        super::decode_budget(max_value_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct User {
        id: u64,
        name: String,
        tags: Vec<String>,
    }

    fn user() -> User {
        User {
            id: 7,
            name: "Ada".into(),
            tags: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn round_trips_for_both_codecs() {
        let meta = Meta {
            load_ms: 12,
            expires_at_ms: 1_700_000_000_000,
        };
        for codec in [CodecKind::Bincode, CodecKind::Json] {
            let bytes = codec.encode_entry(Some(&user()), meta).unwrap();
            assert_eq!(
                codec
                    .decode_entry::<User>(&bytes, DEFAULT_MAX_VALUE_SIZE)
                    .unwrap(),
                Decoded::Value(user(), meta)
            );
            let null = codec.encode_entry::<User>(None, meta).unwrap();
            assert_eq!(null.len(), HEADER_LEN);
            assert_eq!(
                codec
                    .decode_entry::<User>(&null, DEFAULT_MAX_VALUE_SIZE)
                    .unwrap(),
                Decoded::Null(meta)
            );
        }
    }

    #[test]
    fn json_payload_is_readable() {
        let bytes = CodecKind::Json
            .encode_entry(Some(&user()), Meta::default())
            .unwrap();
        assert_eq!(
            &bytes[HEADER_LEN..],
            br#"{"id":7,"name":"Ada","tags":["a","b"]}"#
        );
    }

    #[test]
    fn mismatches_are_errors_not_panics() {
        let bytes = CodecKind::Bincode
            .encode_entry(Some(&user()), Meta::default())
            .unwrap();
        // Other codec.
        assert!(
            CodecKind::Json
                .decode_entry::<User>(&bytes, DEFAULT_MAX_VALUE_SIZE)
                .unwrap_err()
                .is_codec()
        );
        // Bytes left behind a whole value.
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            CodecKind::Bincode
                .decode_entry::<User>(&longer, DEFAULT_MAX_VALUE_SIZE)
                .unwrap_err()
                .is_codec()
        );
        // Other type.
        assert!(
            CodecKind::Bincode
                .decode_entry::<Vec<u64>>(&bytes, DEFAULT_MAX_VALUE_SIZE)
                .is_err()
        );
        // Garbage, truncation, a value written by another program.
        for junk in [
            &b""[..],
            b"\xCA\x02",
            b"hello world, not ours",
            &bytes[..bytes.len() - 1],
        ] {
            assert!(
                CodecKind::Bincode
                    .decode_entry::<User>(junk, DEFAULT_MAX_VALUE_SIZE)
                    .is_err()
            );
        }
    }

    /// A recursive type (a tree, a linked list) nests once per input byte: a hostile value is
    /// an error, not a stack overflow; a value of ordinary depth decodes.
    #[test]
    fn nesting_is_bounded() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        enum Tree {
            Leaf,
            Node(Box<Tree>),
        }
        fn tree(depth: usize) -> Tree {
            (0..depth).fold(Tree::Leaf, |t, _| Tree::Node(Box::new(t)))
        }
        for codec in [CodecKind::Bincode, CodecKind::Json] {
            let shallow = codec
                .encode_entry(Some(&tree(50)), Meta::default())
                .unwrap();
            assert_eq!(
                codec
                    .decode_entry::<Tree>(&shallow, DEFAULT_MAX_VALUE_SIZE)
                    .unwrap(),
                Decoded::Value(tree(50), Meta::default())
            );
        }
        // Node, Node, ... a million times (bincode: variant index 1 is one byte), then Leaf.
        let mut hostile = CodecKind::Bincode
            .encode_entry(Some(&Tree::Leaf), Meta::default())
            .unwrap();
        hostile.truncate(HEADER_LEN);
        hostile.resize(HEADER_LEN + 1_000_000, 1);
        hostile.push(0);
        let error = CodecKind::Bincode
            .decode_entry::<Tree>(&hostile, DEFAULT_MAX_VALUE_SIZE)
            .unwrap_err();
        assert!(error.is_codec(), "{error}");
        // The same in JSON: `{"Node":{"Node":...}}`.
        let mut json = CodecKind::Json
            .encode_entry(Some(&Tree::Leaf), Meta::default())
            .unwrap();
        json.truncate(HEADER_LEN);
        json.extend(b"{\"Node\":".repeat(100_000));
        json.extend(b"\"Leaf\"");
        json.extend(b"}".repeat(100_000));
        assert!(
            CodecKind::Json
                .decode_entry::<Tree>(&json, DEFAULT_MAX_VALUE_SIZE)
                .unwrap_err()
                .is_codec()
        );
    }

    #[test]
    fn hostile_length_prefix_does_not_allocate() {
        // A header, then a bincode varint length of u64::MAX for a Vec<u8>/String.
        let mut bytes = CodecKind::Bincode
            .encode_entry(Some(&0u8), Meta::default())
            .unwrap();
        bytes.truncate(HEADER_LEN);
        bytes.push(253); // varint marker: u64 follows
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(
            CodecKind::Bincode
                .decode_entry::<Vec<u8>>(&bytes, DEFAULT_MAX_VALUE_SIZE)
                .is_err()
        );
        assert!(
            CodecKind::Bincode
                .decode_entry::<String>(&bytes, DEFAULT_MAX_VALUE_SIZE)
                .is_err()
        );
        assert!(
            CodecKind::Bincode
                .decode_entry::<Vec<String>>(&bytes, DEFAULT_MAX_VALUE_SIZE)
                .is_err()
        );
        // A length just under the limit, with no bytes behind it, must fail fast too.
        bytes.truncate(HEADER_LEN + 1);
        bytes.extend_from_slice(
            &((super::decode_budget(DEFAULT_MAX_VALUE_SIZE) as u64) - 1).to_le_bytes(),
        );
        assert!(
            CodecKind::Bincode
                .decode_entry::<Vec<u64>>(&bytes, DEFAULT_MAX_VALUE_SIZE)
                .is_err()
        );
    }
}
