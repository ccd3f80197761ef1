//! "Is this value a `None`?" for any `Serialize` type, and "make a `None`" for any
//! `Deserialize` type, so that `Option<T>` at the top of a cached value (`Option<User>`,
//! `Result<Option<User>, E>`) is cached as a null marker with its own short TTL — without
//! the macros having to recognise `Option` by name (type aliases would defeat that).

use std::fmt;

use serde::{
    Deserialize, Serialize, Serializer,
    de::{self, Visitor},
    ser::{self, Impossible},
};

/// `true` if serializing `value` starts with `serialize_none`: the value is an `Option`
/// (or a type that serializes like one) holding `None`. Stops at the first call, so it costs
/// one virtual-free call, whatever the value's size.
pub(crate) fn is_none<T: Serialize + ?Sized>(value: &T) -> bool {
    matches!(value.serialize(Probe), Err(Found::None))
}

/// Builds the `None` of `T`, if `T` deserializes from a `None` (an `Option`).
pub(crate) fn none<T: for<'de> Deserialize<'de>>() -> Option<T> {
    T::deserialize(NoneDeserializer).ok()
}

#[derive(Debug)]
enum Found {
    None,
    Other,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probe")
    }
}

impl std::error::Error for Found {}

impl ser::Error for Found {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Found::Other
    }
}

struct Probe;

macro_rules! other {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {$(
        fn $name(self, $(_: $arg),*) -> Result<(), Found> {
            Err(Found::Other)
        }
    )*};
}

impl Serializer for Probe {
    type Ok = ();
    type Error = Found;
    type SerializeSeq = Impossible<(), Found>;
    type SerializeTuple = Impossible<(), Found>;
    type SerializeTupleStruct = Impossible<(), Found>;
    type SerializeTupleVariant = Impossible<(), Found>;
    type SerializeMap = Impossible<(), Found>;
    type SerializeStruct = Impossible<(), Found>;
    type SerializeStructVariant = Impossible<(), Found>;

    fn serialize_none(self) -> Result<(), Found> {
        Err(Found::None)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Found> {
        Err(Found::Other)
    }

    other!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), Found> {
        Err(Found::Other)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Found> {
        Err(Found::Other)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Found> {
        Err(Found::Other)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Found> {
        Err(Found::Other)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Found> {
        Err(Found::Other)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Found> {
        Err(Found::Other)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Found> {
        Err(Found::Other)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Found> {
        Err(Found::Other)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Found> {
        Err(Found::Other)
    }
}

#[derive(Debug)]
struct NotAnOption;

impl fmt::Display for NotAnOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an option")
    }
}

impl std::error::Error for NotAnOption {}

impl de::Error for NotAnOption {
    fn custom<T: fmt::Display>(_: T) -> Self {
        NotAnOption
    }
}

struct NoneDeserializer;

impl<'de> de::Deserializer<'de> for NoneDeserializer {
    type Error = NotAnOption;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, NotAnOption> {
        Err(NotAnOption)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotAnOption> {
        visitor.visit_none()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct User {
        name: String,
    }

    #[test]
    fn detects_top_level_none_only() {
        assert!(is_none(&None::<User>));
        assert!(!is_none(&Some(User { name: "a".into() })));
        assert!(!is_none(&Some(None::<u8>)));
        assert!(!is_none(&()));
        assert!(!is_none(&0u8));
        assert!(!is_none(&vec![None::<u8>]));
        assert!(!is_none(&User { name: "a".into() }));
    }

    #[test]
    fn builds_none_for_options_only() {
        assert_eq!(none::<Option<User>>(), Some(None));
        assert_eq!(none::<User>(), None);
        assert_eq!(none::<u64>(), None);
        assert_eq!(none::<Vec<u8>>(), None);
        assert_eq!(none::<()>(), None);
    }
}
