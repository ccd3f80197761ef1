//! Property tests of the two formats the cache writes to Redis: rendered keys and stored values.
//!
//! - Keys: rendering is injective (different values never share a key), escapes every glob,
//!   brace, whitespace and control character, and stays within `MAX_KEY_LEN`.
//! - Values: the 16-byte header and both codecs round-trip arbitrary values, the null marker
//!   included; corrupt or hostile bytes are errors, never panics; an encoding over
//!   `max_value_size` is rejected without being decoded.
//!
//! The allocation bound of decoding is in `decode_alloc.rs` (it needs the whole test binary's
//! allocator to itself).

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Debug,
    sync::LazyLock,
};

use cached_runtime::{__private::wire, Cache, CodecKind, KeyPart, MAX_KEY_LEN};
use proptest::{prelude::*, test_runner::Config};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

const HEADER_LEN: usize = 16;
const SHORTENED_SUFFIX_LEN: usize = 2 + 40; // "%h" + SHA-1 in hex

fn config(cases: u32) -> Config {
    Config {
        cases,
        // Failures are reported with their shrunk input; no regression files in the tree.
        failure_persistence: None,
        ..Config::default()
    }
}

/// A memory cache with namespace `app`, built once on a runtime kept for the whole binary.
static CACHE: LazyLock<(tokio::runtime::Runtime, Cache)> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cache = rt
        .block_on(Cache::builder().memory().namespace("app").build())
        .expect("cache");
    (rt, cache)
});

fn render(lits: &[&str], args: &[&dyn KeyPart]) -> String {
    CACHE.1.render_key(lits, args)
}

/// `"user:<s>:<n>"`.
fn key_str_int(s: &str, n: i64) -> String {
    render(&["user:", ":", ""], &[&s, &n])
}

/// `"t:<a>:<b>"`.
fn key_str_str(a: &str, b: &str) -> String {
    render(&["t:", ":", ""], &[&a, &b])
}

/// The escaping rules of `key.rs`, written per character.
fn escape_reference(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let escape = if c.is_ascii() {
            matches!(
                c,
                '%' | ':' | '*' | '?' | '[' | ']' | '\\' | '{' | '}' | '#' | '\0'..=' ' | '\x7f'
            )
        } else {
            c.is_whitespace() || c.is_control()
        };
        if escape {
            for b in c.to_string().bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Inverse of the escaping, for one key segment: `None` if it is not a valid escape (a raw
/// `:` or a `%` not followed by two upper-case hex digits).
fn unescape(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b':' => return None,
            b'%' => {
                let hex = segment.get(i + 1..i + 3)?;
                if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Strings that stress escaping: separators, `%` and hex digits (so that `a:b`, `a%3Ab` and
/// `a%253Ab` all come up), braces, globs, whitespace (ASCII and Unicode), controls, and
/// multi-byte characters. Short, so that two draws are often equal or nearly so.
fn tricky_string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            'a',
            'b',
            ':',
            '%',
            '3',
            'A',
            '2',
            '5',
            'h',
            '{',
            '}',
            '*',
            '?',
            '[',
            ']',
            '\\',
            '#',
            ' ',
            '\t',
            '\n',
            '\0',
            '\x7f',
            '\u{a0}',
            '\u{85}',
            '\u{2028}',
            '\u{3000}',
            'é',
            '日',
            '\u{1F600}',
            '\u{200b}',
        ]),
        0..8,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// Any string: tricky ones, arbitrary Unicode (controls included), and long ones that push
/// the key past `MAX_KEY_LEN`.
fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => tricky_string(),
        3 => any::<String>(),
        1 => (tricky_string(), 0..200usize, any::<char>())
            .prop_map(|(s, n, c)| format!("{}{s}", c.to_string().repeat(n))),
    ]
}

/// Checks what every rendered key must satisfy; returns whether it was shortened.
fn assert_well_formed(key: &str) -> Result<bool, TestCaseError> {
    prop_assert!(key.starts_with("app:"), "{key:?} lacks the namespace");
    prop_assert!(key.len() <= MAX_KEY_LEN, "{} bytes: {key:?}", key.len());
    for c in key.chars() {
        prop_assert!(
            !matches!(c, '*' | '?' | '[' | ']' | '\\' | '{' | '}' | '#')
                && !c.is_whitespace()
                && !c.is_control(),
            "{c:?} in {key:?}"
        );
    }
    // Every `%` starts an escape (`%XX`, upper-case hex) or, once, the hash suffix `%h`.
    let shortened = key.contains("%h");
    if shortened {
        let cut = key.len() - SHORTENED_SUFFIX_LEN;
        prop_assert_eq!(&key[cut..cut + 2], "%h");
        prop_assert!(
            key[cut + 2..]
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "hash suffix of {key:?}"
        );
        prop_assert!(!key[..cut].contains("%h"));
    }
    Ok(shortened)
}

proptest! {
    #![proptest_config(config(800))]

    /// (String, i64): the key is the reference rendering and parses back to the values.
    #[test]
    fn keys_of_string_and_int_are_injective(
        (a, m) in (any_value(), any::<i64>()),
        (b, n) in (any_value(), any::<i64>()),
    ) {
        let (ka, kb) = (key_str_int(&a, m), key_str_int(&b, n));
        prop_assert_eq!(&ka, &key_str_int(&a, m), "rendering is deterministic");
        if (&a, m) != (&b, n) {
            prop_assert_ne!(&ka, &kb, "{:?} and {:?} share a key", (&a, m), (&b, n));
        } else {
            prop_assert_eq!(&ka, &kb);
        }
        for (key, s, i) in [(&ka, &a, m), (&kb, &b, n)] {
            if !assert_well_formed(key)? {
                prop_assert_eq!(key, &format!("app:user:{}:{i}", escape_reference(s)));
                let rest = key.strip_prefix("app:user:").expect("prefix");
                let (seg, int) = rest.rsplit_once(':').expect("two segments");
                prop_assert_eq!(unescape(seg), Some(s.clone()));
                prop_assert_eq!(int.parse::<i64>().ok(), Some(i));
            }
        }
    }

    /// (String, String) in `t:<a>:<b>`: moving a `:` (or its escape) between the two values
    /// never yields the same key.
    #[test]
    fn keys_of_two_strings_are_injective(
        (a1, a2) in (any_value(), any_value()),
        (b1, b2) in prop_oneof![
            (any_value(), any_value()).boxed(),
            // A close neighbour of the first pair: its text split at another place, or with a
            // `:` moved across the separator.
            (any_value(), any_value(), any::<prop::sample::Index>())
                .prop_map(|(x, y, at)| {
                    let joined = format!("{x}:{y}");
                    let cut = at.index(joined.len() + 1);
                    let cut = (0..=cut).rev().find(|&c| joined.is_char_boundary(c)).unwrap_or(0);
                    (joined[..cut].to_owned(), joined[cut..].to_owned())
                })
                .boxed(),
        ],
    ) {
        let (ka, kb) = (key_str_str(&a1, &a2), key_str_str(&b1, &b2));
        prop_assert_eq!(&ka, &key_str_str(&a1, &a2), "rendering is deterministic");
        if (&a1, &a2) != (&b1, &b2) {
            prop_assert_ne!(&ka, &kb, "{:?} and {:?} share a key", (&a1, &a2), (&b1, &b2));
        } else {
            prop_assert_eq!(&ka, &kb);
        }
        for (key, x, y) in [(&ka, &a1, &a2), (&kb, &b1, &b2)] {
            if !assert_well_formed(key)? {
                let rest = key.strip_prefix("app:t:").expect("prefix");
                let (sx, sy) = rest.split_once(':').expect("two segments");
                prop_assert_eq!(unescape(sx), Some(x.clone()));
                prop_assert_eq!(unescape(sy), Some(y.clone()));
            }
        }
    }

    /// Long values: shortened keys of different values still differ, and keep the start of
    /// the full rendering (cut on a character boundary).
    #[test]
    fn shortened_keys_stay_distinct(
        base in "[a-z%:{ é]{300,700}",
        tail_a in any_value(),
        tail_b in any_value(),
    ) {
        let (a, b) = (format!("{base}{tail_a}"), format!("{base}{tail_b}"));
        let (ka, kb) = (key_str_str(&a, "x"), key_str_str(&b, "x"));
        prop_assert!(assert_well_formed(&ka)?, "{} bytes, not shortened", ka.len());
        prop_assert!(assert_well_formed(&kb)?);
        prop_assert_eq!(a == b, ka == kb);
        let full = format!("app:t:{}:x", escape_reference(&a));
        let prefix = &ka[..ka.len() - SHORTENED_SUFFIX_LEN];
        prop_assert!(full.starts_with(prefix));
        prop_assert!(prefix.len() + 4 > MAX_KEY_LEN - SHORTENED_SUFFIX_LEN, "cut too early");
    }

    /// Every kind of placeholder value at once: a well-formed key, equal to the reference
    /// rendering while it is short enough.
    #[test]
    fn keys_never_hold_glob_brace_space_or_control(
        s in any_value(),
        c in any::<char>(),
        flag in any::<bool>(),
        n in any::<i128>(),
        u in any::<u64>(),
    ) {
        let key = render(&["m:", ":", ":", ":", ":", ""], &[&s, &c, &flag, &n, &u]);
        if !assert_well_formed(&key)? {
            let expected = format!(
                "app:m:{}:{}:{flag}:{n}:{u}",
                escape_reference(&s),
                escape_reference(&c.to_string())
            );
            prop_assert_eq!(key, expected);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Plain,
    Tagged(String),
    Pair { a: u32, b: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    tags: Vec<String>,
    nick: Option<String>,
    attrs: HashMap<String, Vec<u8>>,
    scores: BTreeMap<u32, i64>,
    kind: Kind,
    initial: char,
    active: bool,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Plain),
        any::<String>().prop_map(Kind::Tagged),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(a, b)| Kind::Pair { a, b }),
    ]
}

fn profile() -> impl Strategy<Value = Profile> {
    (
        any::<u64>(),
        any::<String>(),
        prop::collection::vec(any::<String>(), 0..4),
        any::<Option<String>>(),
        prop::collection::hash_map(
            any::<String>(),
            prop::collection::vec(any::<u8>(), 0..8),
            0..4,
        ),
        prop::collection::btree_map(any::<u32>(), any::<i64>(), 0..4),
        kind(),
        any::<char>(),
        any::<bool>(),
    )
        .prop_map(
            |(id, name, tags, nick, attrs, scores, kind, initial, active)| Profile {
                id,
                name,
                tags,
                nick,
                attrs,
                scores,
                kind,
                initial,
                active,
            },
        )
}

fn codec() -> impl Strategy<Value = CodecKind> {
    prop_oneof![Just(CodecKind::Bincode), Just(CodecKind::Json)]
}

fn codec_id(codec: CodecKind) -> u8 {
    match codec {
        CodecKind::Bincode => 1,
        _ => 2,
    }
}

/// Encodes `value` (or the null marker), checks the header against the format's table, and
/// decodes it back.
fn round_trip<T>(
    codec: CodecKind,
    value: Option<&T>,
    load_ms: u32,
    expires_at_ms: u64,
) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = wire::encode(codec, value, load_ms, expires_at_ms).expect("encodes");
    prop_assert!(bytes.len() >= HEADER_LEN);
    prop_assert_eq!(bytes[0], 0xCA, "magic");
    prop_assert_eq!(bytes[1], 2, "version");
    prop_assert_eq!(bytes[2], codec_id(codec), "codec id");
    prop_assert_eq!(bytes[3] & 1, u8::from(value.is_none()), "null flag");
    prop_assert_eq!(&bytes[4..8], &load_ms.to_le_bytes()[..]);
    prop_assert_eq!(&bytes[8..16], &expires_at_ms.to_le_bytes()[..]);
    if value.is_none() {
        prop_assert_eq!(bytes.len(), HEADER_LEN, "the null marker is a bare header");
    }
    let decoded = wire::decode::<T>(codec, &bytes, bytes.len()).expect("decodes");
    prop_assert_eq!(decoded.as_ref(), value);
    // Exactly at the limit is accepted; one byte under it is rejected (below).
    prop_assert!(wire::decode::<T>(codec, &bytes, bytes.len() - 1).is_err());
    Ok(())
}

proptest! {
    #![proptest_config(config(250))]

    #[test]
    fn values_round_trip_under_both_codecs(
        codec in codec(),
        value in prop::option::of(profile()),
        load_ms in any::<u32>(),
        expires_at_ms in any::<u64>(),
    ) {
        round_trip(codec, value.as_ref(), load_ms, expires_at_ms)?;
    }

    /// A `None` inside a cached value is a value, not the null marker. A top-level `None` is
    /// only ever the null marker: encoding it as a value is an error (a top-level `Some(v)` is
    /// stored as `v`, so a `None` there could not be told from a value).
    #[test]
    fn null_marker_is_distinct_from_a_none_value(
        codec in codec(),
        value in prop::option::of(any::<Option<String>>()),
        load_ms in any::<u32>(),
        expires_at_ms in any::<u64>(),
    ) {
        match &value {
            Some(None) => {
                let refused = wire::encode(codec, value.as_ref(), load_ms, expires_at_ms);
                prop_assert!(refused.is_err_and(|e| e.is_codec()));
            }
            _ => round_trip(codec, value.as_ref(), load_ms, expires_at_ms)?,
        }
        let nested = value.map(Some);
        round_trip(codec, nested.as_ref(), load_ms, expires_at_ms)?;
    }

    #[test]
    fn collections_round_trip(
        codec in codec(),
        strings in prop::collection::vec(any::<String>(), 0..16),
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        numbers in prop::collection::vec(any::<u64>(), 0..64),
        map in prop::collection::hash_map(any::<String>(), prop::collection::vec(any::<u8>(), 0..16), 0..8),
        load_ms in any::<u32>(),
        expires_at_ms in any::<u64>(),
    ) {
        round_trip(codec, Some(&strings), load_ms, expires_at_ms)?;
        round_trip(codec, Some(&bytes), load_ms, expires_at_ms)?;
        round_trip(codec, Some(&numbers), load_ms, expires_at_ms)?;
        round_trip(codec, Some(&map), load_ms, expires_at_ms)?;
        round_trip(codec, Some(&(strings.concat())), load_ms, expires_at_ms)?;
    }
}

/// Damaged or foreign bytes, built from a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(prop::sample::Index),
    FlipBits(Vec<(prop::sample::Index, u8)>),
    /// A valid header for the codec, then random bytes.
    HeaderThen(Vec<u8>),
    /// A valid header, then a bincode varint length (`0xFB` u16, `0xFC` u32, `0xFD` u64,
    /// `0xFE` u128) of the given value, repeated (for nested containers), then random bytes.
    HugeLength {
        marker: u8,
        len: u64,
        repeat: usize,
        tail: Vec<u8>,
    },
    Random(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let huge = prop_oneof![
        Just(u64::MAX),
        Just(u64::from(u32::MAX)),
        Just(1 << 20),
        Just((1 << 20) - 1),
        Just(1 << 24),
        any::<u64>(),
    ];
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        prop::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..4)
            .prop_map(Mutation::FlipBits),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Mutation::HeaderThen),
        (
            prop::sample::select(vec![0xFBu8, 0xFC, 0xFD, 0xFE]),
            huge,
            1..4usize,
            prop::collection::vec(any::<u8>(), 0..16)
        )
            .prop_map(|(marker, len, repeat, tail)| Mutation::HugeLength {
                marker,
                len,
                repeat,
                tail
            }),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Mutation::Random),
    ]
}

fn varint(marker: u8, len: u64) -> Vec<u8> {
    let mut out = vec![marker];
    match marker {
        0xFB => out.extend_from_slice(&(len as u16).to_le_bytes()),
        0xFC => out.extend_from_slice(&(len as u32).to_le_bytes()),
        0xFD => out.extend_from_slice(&len.to_le_bytes()),
        _ => out.extend_from_slice(&u128::from(len).to_le_bytes()),
    }
    out
}

fn apply(codec: CodecKind, valid: &[u8], mutation: &Mutation) -> Vec<u8> {
    let header = || {
        let mut h = wire::encode(codec, Some(&0u8), 0, 0).expect("encodes");
        h.truncate(HEADER_LEN);
        h
    };
    match mutation {
        Mutation::Truncate(at) => valid[..at.index(valid.len() + 1)].to_vec(),
        Mutation::FlipBits(flips) => {
            let mut out = valid.to_vec();
            for (at, mask) in flips {
                let i = at.index(out.len());
                out[i] ^= mask;
            }
            out
        }
        Mutation::HeaderThen(tail) => [header(), tail.clone()].concat(),
        Mutation::HugeLength {
            marker,
            len,
            repeat,
            tail,
        } => {
            let mut out = header();
            for _ in 0..*repeat {
                out.extend(varint(*marker, *len));
            }
            out.extend_from_slice(tail);
            out
        }
        Mutation::Random(bytes) => bytes.clone(),
    }
}

/// Decodes `bytes` as several value types under `codec`: no panic, and nothing over `max` is
/// decoded.
fn decode_all(codec: CodecKind, bytes: &[u8], max: usize) -> Result<(), TestCaseError> {
    fn one<T: DeserializeOwned>(
        codec: CodecKind,
        bytes: &[u8],
        max: usize,
    ) -> Result<(), TestCaseError> {
        let result = wire::decode::<T>(codec, bytes, max);
        if bytes.len() > max {
            prop_assert!(result.is_err(), "{} bytes over a {max} limit", bytes.len());
        }
        Ok(())
    }
    one::<Vec<String>>(codec, bytes, max)?;
    one::<String>(codec, bytes, max)?;
    one::<Vec<u8>>(codec, bytes, max)?;
    one::<Vec<u64>>(codec, bytes, max)?;
    one::<Profile>(codec, bytes, max)?;
    one::<HashMap<String, Vec<u8>>>(codec, bytes, max)?;
    one::<Option<Kind>>(codec, bytes, max)?;
    one::<(u128, char, bool)>(codec, bytes, max)?;
    Ok(())
}

proptest! {
    #![proptest_config(config(300))]

    /// Corrupt, truncated and hostile encodings are errors (or, by chance, other values),
    /// never panics, for every target type and both codecs.
    #[test]
    fn damaged_values_never_panic(
        codec in codec(),
        value in profile(),
        mutation in mutation(),
        max in prop_oneof![Just(4096usize), Just(64usize), Just(1usize << 20)],
    ) {
        let valid = wire::encode(codec, Some(&value), 7, 9).expect("encodes");
        let bytes = apply(codec, &valid, &mutation);
        decode_all(codec, &bytes, max)?;
        // The same bytes read by the other codec.
        let other = if codec == CodecKind::Bincode { CodecKind::Json } else { CodecKind::Bincode };
        decode_all(other, &bytes, max)?;
    }

    /// An encoding longer than `max_value_size` is rejected before decoding: even a valid one.
    #[test]
    fn values_over_max_value_size_are_rejected(
        codec in codec(),
        value in profile(),
        short_by in 1..64usize,
    ) {
        let bytes = wire::encode(codec, Some(&value), 1, 2).expect("encodes");
        let max = bytes.len().saturating_sub(short_by);
        prop_assert!(wire::decode::<Profile>(codec, &bytes, max).is_err());
        prop_assert!(wire::decode::<Profile>(codec, &bytes, 0).is_err());
        let null = wire::encode::<Profile>(codec, None, 1, 2).expect("encodes");
        prop_assert!(wire::decode::<Profile>(codec, &null, HEADER_LEN - 1).is_err());
        prop_assert_eq!(wire::decode::<Profile>(codec, &bytes, bytes.len()).ok(), Some(Some(value)));
    }
}

#[test]
fn decode_budget_rounds_up_sixteen_times_the_limit() {
    assert_eq!(wire::decode_budget(0), 1 << 20);
    assert_eq!(wire::decode_budget(4096), 1 << 20);
    assert_eq!(wire::decode_budget(1 << 16), 1 << 20);
    assert_eq!(wire::decode_budget((1 << 16) + 1), 1 << 24);
    assert_eq!(wire::decode_budget(16 << 20), 1 << 28);
    assert_eq!(wire::decode_budget(usize::MAX), u32::MAX as usize);
}
