//! A top-level `Some(v)` is stored exactly as `v`: [`Bare`] strips the `Some` when a value is
//! encoded and puts it back when an `Option` is decoded from a stored value. So `Option<User>`,
//! `User`, `Result<User, E>` and `Result<Option<User>, E>` read each other's entries under one
//! key — in bincode too, which would otherwise write a tag byte before an `Option`'s value — and
//! a `#[cache_put]` of any of them fills the `#[cache_aside]` of any other.
//!
//! Only the top level: `Some(Some(v))` is stored as `Some(v)`, and `vec![Some(1)]` as itself.
//! A top-level `None` is never encoded: it is the null marker (or a delete), decided before
//! encoding (see `nullish.rs`); encoding one here is an error, never a value that would decode as
//! something else. Everything but `serialize_some`/`deserialize_option` is forwarded unchanged.

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Visitor, ser};

/// A value as it is stored: `Bare(&Some(v))` serializes as `v`, and `Bare::<Option<T>>`
/// deserializes `v` as `Some(v)`.
pub(crate) struct Bare<T>(pub(crate) T);

impl<T: Serialize + ?Sized> Serialize for Bare<&T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Strip(serializer))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Bare<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(Restore(deserializer)).map(Bare)
    }
}

/// A serializer that writes a top-level `Some(v)` as `v`.
struct Strip<S>(S);

/// Forwards serializer methods to the wrapped one.
macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
        fn $name(self, $($arg: $ty),*) -> Result<$ret, S::Error> {
            self.0.$name($($arg),*)
        }
    )*};
}

impl<S: Serializer> Serializer for Strip<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = S::SerializeSeq;
    type SerializeTuple = S::SerializeTuple;
    type SerializeTupleStruct = S::SerializeTupleStruct;
    type SerializeTupleVariant = S::SerializeTupleVariant;
    type SerializeMap = S::SerializeMap;
    type SerializeStruct = S::SerializeStruct;
    type SerializeStructVariant = S::SerializeStructVariant;

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        // The inner serializer, not `self`: only the top level is stripped.
        value.serialize(self.0)
    }

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        Err(ser::Error::custom(
            "a top-level None is stored as a null marker, not encoded",
        ))
    }

    forward! {
        serialize_bool(v: bool) -> S::Ok;
        serialize_i8(v: i8) -> S::Ok;
        serialize_i16(v: i16) -> S::Ok;
        serialize_i32(v: i32) -> S::Ok;
        serialize_i64(v: i64) -> S::Ok;
        serialize_i128(v: i128) -> S::Ok;
        serialize_u8(v: u8) -> S::Ok;
        serialize_u16(v: u16) -> S::Ok;
        serialize_u32(v: u32) -> S::Ok;
        serialize_u64(v: u64) -> S::Ok;
        serialize_u128(v: u128) -> S::Ok;
        serialize_f32(v: f32) -> S::Ok;
        serialize_f64(v: f64) -> S::Ok;
        serialize_char(v: char) -> S::Ok;
        serialize_str(v: &str) -> S::Ok;
        serialize_bytes(v: &[u8]) -> S::Ok;
        serialize_unit() -> S::Ok;
        serialize_unit_struct(name: &'static str) -> S::Ok;
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str) -> S::Ok;
        serialize_seq(len: Option<usize>) -> S::SerializeSeq;
        serialize_tuple(len: usize) -> S::SerializeTuple;
        serialize_tuple_struct(name: &'static str, len: usize) -> S::SerializeTupleStruct;
        serialize_tuple_variant(
            name: &'static str, index: u32, variant: &'static str, len: usize
        ) -> S::SerializeTupleVariant;
        serialize_map(len: Option<usize>) -> S::SerializeMap;
        serialize_struct(name: &'static str, len: usize) -> S::SerializeStruct;
        serialize_struct_variant(
            name: &'static str, index: u32, variant: &'static str, len: usize
        ) -> S::SerializeStructVariant;
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, value)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, value)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// A deserializer that reads a top-level `Option` as `Some` of the stored value (a stored
/// value is never a `None`: that is the null marker, read before the payload).
struct Restore<D>(D);

/// Forwards deserializer methods to the wrapped one.
macro_rules! forward_de {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $name<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.0.$name($($arg,)* visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Restore<D> {
    type Error = D::Error;

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        // The inner deserializer: an `Option` inside the value is read as written.
        visitor.visit_some(self.0)
    }

    forward_de! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use crate::wire::codec::{CodecKind, DEFAULT_MAX_VALUE_SIZE, Decoded, HEADER_LEN, Meta};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct User {
        id: u64,
        name: String,
        tags: Vec<String>,
    }

    fn user() -> User {
        User {
            id: 7,
            name: "Ada".into(),
            tags: vec!["a".into()],
        }
    }

    const CODECS: [CodecKind; 2] = [CodecKind::Bincode, CodecKind::Json];

    fn encode<T: Serialize>(codec: CodecKind, value: &T) -> Vec<u8> {
        codec.encode_entry(Some(value), Meta::default()).unwrap()
    }

    fn decode<T: for<'de> Deserialize<'de>>(codec: CodecKind, bytes: &[u8]) -> Option<T> {
        match codec.decode_entry::<T>(bytes, DEFAULT_MAX_VALUE_SIZE) {
            Ok(Decoded::Value(v, _)) => Some(v),
            _ => None,
        }
    }

    #[test]
    fn a_top_level_some_is_stored_as_its_value() {
        for codec in CODECS {
            assert_eq!(encode(codec, &Some(user())), encode(codec, &user()));
            assert_eq!(encode(codec, &Some(5u8)), encode(codec, &5u8));
            assert_eq!(
                encode(codec, &Some(vec![1u32, 2])),
                encode(codec, &vec![1u32, 2])
            );
        }
    }

    #[test]
    fn every_shape_reads_every_other() {
        for codec in CODECS {
            let plain = encode(codec, &user());
            let some = encode(codec, &Some(user()));
            for bytes in [&plain, &some] {
                assert_eq!(decode::<User>(codec, bytes), Some(user()), "{codec:?}");
                assert_eq!(
                    decode::<Option<User>>(codec, bytes),
                    Some(Some(user())),
                    "{codec:?}"
                );
            }
        }
    }

    #[test]
    fn only_the_top_level_is_stripped() {
        for codec in CODECS {
            // Some(Some(v)) is stored as Some(v), Some(None) as None, both inside the value.
            let nested = encode(codec, &Some(Some(3u16)));
            assert_eq!(
                decode::<Option<Option<u16>>>(codec, &nested),
                Some(Some(Some(3)))
            );
            let inner_none = encode(codec, &Some(None::<u16>));
            assert_eq!(
                decode::<Option<Option<u16>>>(codec, &inner_none),
                Some(Some(None))
            );
            // An Option inside the value keeps its encoding.
            let v = vec![Some(1u8), None];
            assert_eq!(
                decode::<Vec<Option<u8>>>(codec, &encode(codec, &v)),
                Some(v)
            );
        }
        // In bincode an inner Option keeps its tag byte: 1 then the value.
        let bytes = encode(CodecKind::Bincode, &Some(Some(3u16)));
        assert_eq!(&bytes[HEADER_LEN..], &[1, 3]);
    }

    #[test]
    fn a_top_level_none_is_not_encoded() {
        for codec in CODECS {
            assert!(
                codec
                    .encode_entry(Some(&None::<User>), Meta::default())
                    .unwrap_err()
                    .is_codec()
            );
        }
    }

    /// Entries written before a top-level `Some` was stripped (format version 1: bincode wrote a
    /// tag byte first) are not misread: they are decode errors, and reloaded.
    #[test]
    fn entries_of_the_old_layout_are_reloaded_not_misread() {
        let mut old = encode(CodecKind::Bincode, &Some(5u8));
        old[1] = 1;
        old.truncate(HEADER_LEN);
        old.extend([1, 5]); // Some(5) as format version 1 stored it
        for result in [
            CodecKind::Bincode.decode_entry::<Option<u8>>(&old, DEFAULT_MAX_VALUE_SIZE),
            CodecKind::Bincode
                .decode_entry::<u8>(&old, DEFAULT_MAX_VALUE_SIZE)
                .map(|d| match d {
                    Decoded::Value(v, m) => Decoded::Value(Some(v), m),
                    Decoded::Null(m) => Decoded::Null(m),
                }),
        ] {
            assert!(result.unwrap_err().is_codec());
        }
        assert!(!crate::wire::codec::is_fresh(&old, 0));
    }
}
