//! Feeds arbitrary bytes to the stored-value decoder (`wire::decode`) for several value types
//! under both codecs, with a small `max_value_size`.
//!
//! Fails (a crash for libFuzzer) on:
//! - a panic anywhere in decoding;
//! - an allocation past `ALLOC_SLACK + 2 × decode_budget(MAX_VALUE_SIZE)` during one decode
//!   (the counting allocator's limit makes that allocation fail, which aborts);
//! - a value that decodes but does not survive `encode` → `decode` unchanged.
//!
//! The first input byte picks the target: bits 0..4 the type, bit 4 the codec, bit 5 whether
//! a valid header for that codec is put in front of the rest (so the fuzzer spends its time in
//! the payload decoders), bit 6 the header's null flag.

#![no_main]

use std::{
    alloc::System,
    collections::{BTreeMap, HashMap},
    fmt::Debug,
};

use cached_runtime::{__private::wire, CodecKind};
use cap::Cap;
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// A small cache limit: its decode budget is the smallest one (1 MiB).
const MAX_VALUE_SIZE: usize = 4096;
/// Room for the error values and messages decoding builds on the way out.
const ALLOC_SLACK: usize = 64 * 1024;
const HEADER_LEN: usize = 16;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Kind {
    Plain,
    Tagged(String),
    Pair { a: u32, b: Vec<u8> },
}

/// A recursive type: hostile bytes can nest it once per byte (the decoder stops at 128 levels).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Tree {
    Leaf(u8),
    Node(Box<Tree>, Option<Box<Tree>>),
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: Option<i32>,
    attrs: HashMap<String, Vec<u8>>,
    kind: Kind,
    wide: u128,
    initial: char,
    flag: bool,
}

fn check<T>(codec: CodecKind, bytes: &[u8])
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let budget = wire::decode_budget(MAX_VALUE_SIZE);
    let before = ALLOC.allocated();
    ALLOC
        .set_limit(before + 2 * budget + ALLOC_SLACK)
        .expect("limit above current use");
    let decoded = wire::decode::<T>(codec, bytes, MAX_VALUE_SIZE);
    ALLOC.set_limit(usize::MAX).expect("no limit");
    if bytes.len() > MAX_VALUE_SIZE {
        assert!(decoded.is_err(), "a value over max_value_size was decoded");
    }
    if let Ok(Some(value)) = decoded {
        let again = wire::encode(codec, Some(&value), 0, 0).expect("a decoded value encodes");
        let back = wire::decode::<T>(codec, &again, usize::MAX)
            .expect("a re-encoded value decodes")
            .expect("and is not the null marker");
        assert_eq!(back, value, "decode → encode → decode changed the value");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&select, rest)) = data.split_first() else {
        return;
    };
    let codec = if select & 0x10 == 0 {
        CodecKind::Bincode
    } else {
        CodecKind::Json
    };
    let framed;
    let bytes = if select & 0x20 != 0 {
        let mut header = wire::encode(codec, Some(&0u8), 0, 0).expect("encodes");
        header.truncate(HEADER_LEN);
        if select & 0x40 != 0 {
            header[3] |= 1;
        }
        header.extend_from_slice(rest);
        framed = header;
        &framed[..]
    } else {
        rest
    };
    match select & 0x0f {
        0 => check::<Vec<String>>(codec, bytes),
        1 => check::<String>(codec, bytes),
        2 => check::<Vec<u8>>(codec, bytes),
        3 => check::<Vec<u64>>(codec, bytes),
        4 => check::<Record>(codec, bytes),
        5 => check::<HashMap<String, Vec<u8>>>(codec, bytes),
        6 => check::<Vec<Vec<u8>>>(codec, bytes),
        7 => check::<Option<Vec<Record>>>(codec, bytes),
        8 => check::<BTreeMap<u32, Vec<String>>>(codec, bytes),
        9 => check::<(u128, i64, char, bool)>(codec, bytes),
        10 => check::<Vec<Vec<Vec<u64>>>>(codec, bytes),
        11 => check::<Kind>(codec, bytes),
        12 => check::<Tree>(codec, bytes),
        _ => check::<Option<String>>(codec, bytes),
    }
});
