//! What decoding a stored value may allocate: at most about twice
//! `wire::decode_budget(max_value_size)` (the budget, plus container growth), whatever the
//! bytes say.
//!
//! The binary's global allocator counts every allocation (`cap`). Around each decode its limit
//! is set to what is in use plus the bound, so an allocation past the bound fails, and the
//! process aborts with "memory allocation of N bytes failed": that abort is this test's
//! failure. The tests hold one lock so that no other thread allocates meanwhile.

use std::{alloc::System, collections::HashMap, sync::Mutex};

use cached_runtime::{__private::wire, CodecKind};
use cap::Cap;
use proptest::{prelude::*, test_runner::Config};
use serde::{Deserialize, de::DeserializeOwned};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A small cache limit; its budget is the smallest, 1 MiB.
const MAX_VALUE_SIZE: usize = 4096;
/// Room for the error value and its message.
const SLACK: usize = 64 * 1024;
const HEADER_LEN: usize = 16;

/// Decodes `bytes` as `T` with the allocator capped at the bound (aborts past it).
fn decode_capped<T: DeserializeOwned>(codec: CodecKind, bytes: &[u8]) {
    let bound = 2 * wire::decode_budget(MAX_VALUE_SIZE) + SLACK;
    ALLOC
        .set_limit(ALLOC.allocated() + bound)
        .expect("limit above current use");
    let decoded = wire::decode::<T>(codec, bytes, MAX_VALUE_SIZE);
    ALLOC.set_limit(usize::MAX).expect("no limit");
    drop(decoded);
}

fn header(codec: CodecKind) -> Vec<u8> {
    let mut h = wire::encode(codec, Some(&0u8), 0, 0).expect("encodes");
    h.truncate(HEADER_LEN);
    h
}

/// A bincode varint of `len` with the given marker (`0xFB` u16, `0xFC` u32, `0xFD` u64).
fn varint(marker: u8, len: u64) -> Vec<u8> {
    let mut out = vec![marker];
    match marker {
        0xFB => out.extend_from_slice(&(len as u16).to_le_bytes()),
        0xFC => out.extend_from_slice(&(len as u32).to_le_bytes()),
        _ => out.extend_from_slice(&len.to_le_bytes()),
    }
    out
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // only decoded
struct Flat {
    id: u64,
    name: String,
    tags: Vec<String>,
    data: Vec<u8>,
    ids: Vec<u64>,
}

/// Bytes that claim large lengths: a header, then one or two length prefixes (the second for
/// the first element of a container), then a few bytes.
fn hostile() -> impl Strategy<Value = Vec<u8>> {
    let len = prop_oneof![
        Just(u64::MAX),
        Just(u64::from(u32::MAX)),
        Just(1 << 20),
        Just((1 << 20) - 64),
        Just(1 << 19),
        Just(43_690),
        any::<u64>(),
        0..5000u64,
    ];
    let prefix = (prop::sample::select(vec![0xFBu8, 0xFC, 0xFD]), len);
    (
        prop::collection::vec(prefix, 1..3),
        prop::collection::vec(any::<u8>(), 0..32),
        any::<bool>(),
    )
        .prop_map(|(prefixes, tail, with_id)| {
            let mut out = header(CodecKind::Bincode);
            if with_id {
                out.push(7); // a leading u64 field (`Flat::id`)
            }
            for (marker, len) in prefixes {
                out.extend(varint(marker, len));
            }
            out.extend(tail);
            out
        })
}

fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => hostile(),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(|tail| {
            [header(CodecKind::Json), tail].concat()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

proptest! {
    #![proptest_config(Config { cases: 400, failure_persistence: None, ..Config::default() })]

    /// Strings, byte and integer vectors, vectors of strings and a struct of them stay within
    /// the bound for any bytes, under both codecs.
    #[test]
    fn decoding_stays_within_twice_the_budget(bytes in any_bytes()) {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        for codec in [CodecKind::Bincode, CodecKind::Json] {
            decode_capped::<Vec<String>>(codec, &bytes);
            decode_capped::<String>(codec, &bytes);
            decode_capped::<Vec<u8>>(codec, &bytes);
            decode_capped::<Vec<u64>>(codec, &bytes);
            decode_capped::<Flat>(codec, &bytes);
            decode_capped::<HashMap<String, Vec<u8>>>(codec, &bytes);
            decode_capped::<Vec<Vec<Vec<u64>>>>(codec, &bytes);
        }
    }
}

/// A map's length prefix does not make the decoder pre-allocate for it: serde would reserve
/// up to 1 MiB of entries from the length (for `(String, Vec<u8>)`, hashbrown rounds that up to
/// 32 768 buckets, about 1.6 MiB), and the first key's length claims the whole 1 MiB budget on
/// top: 26 bytes would allocate about 2.5 MiB for a 4 KiB `max_value_size` (bound: 2 MiB +
/// 64 KiB). The decoder caps every container's size hint at the input's length.
#[test]
fn map_length_prefix_counts_against_the_budget() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut bytes = header(CodecKind::Bincode);
    bytes.extend(varint(0xFC, u64::from(u32::MAX))); // map of 4 294 967 295 entries
    bytes.extend(varint(0xFC, (1 << 20) - 64)); // first key: a string of ~1 MiB
    eprintln!("decoding {bytes:02x?}; an abort here is this test failing");
    decode_capped::<HashMap<String, Vec<u8>>>(CodecKind::Bincode, &bytes);
}

/// Nor does a sequence's: each level of a nested vector would pre-allocate up to 1 MiB
/// (serde's cap, independent of `max_value_size`) before any element is read, so 43 bytes
/// would allocate about 3 MiB (3 145 696 bytes) for a three-level `Vec`.
#[test]
fn nested_sequence_length_prefixes_count_against_the_budget() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut bytes = header(CodecKind::Bincode);
    for _ in 0..3 {
        bytes.extend(varint(0xFD, u64::MAX));
    }
    eprintln!("decoding {bytes:02x?}; an abort here is this test failing");
    decode_capped::<Vec<Vec<Vec<u64>>>>(CodecKind::Bincode, &bytes);
}
