//! The cached value: a struct with strings and vectors (not a flat byte array), built at three
//! sizes. A size is the length of its bincode (standard configuration) encoding.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// What every contender caches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Value {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) tags: Vec<String>,
    pub(crate) scores: Vec<u32>,
    pub(crate) items: Vec<Item>,
}

/// One line of a value's `items`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Item {
    pub(crate) sku: String,
    pub(crate) title: String,
    pub(crate) qty: u32,
    pub(crate) price_cents: u64,
}

/// A value size of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Size {
    /// Target length of the bincode encoding.
    pub(crate) bytes: u32,
    pub(crate) label: &'static str,
}

pub(crate) const SIZES: [Size; 3] = [
    Size {
        bytes: 64,
        label: "64 B",
    },
    Size {
        bytes: 1024,
        label: "1 KiB",
    },
    Size {
        bytes: 100 * 1024,
        label: "100 KiB",
    },
];

/// The ~1 KiB size, which the product targets are stated for.
pub(crate) const TARGET_SIZE: u32 = 1024;

fn build(id: u64, items: usize) -> Value {
    Value {
        id,
        name: format!("user-{id:05}"),
        email: format!("user-{id:05}@example.org"),
        tags: vec!["vip".to_owned(), "beta".to_owned()],
        scores: vec![7, 42, 1_000, 65_000],
        items: (0..items as u64)
            .map(|i| Item {
                sku: format!("SKU-{:06}", i * 7 + id % 1000),
                title: format!("Item {i} of order {id}, blue"),
                qty: (i % 9 + 1) as u32,
                price_cents: 1_999 + i * 13,
            })
            .collect(),
    }
}

/// The bincode (standard configuration) length of a value.
pub(crate) fn encoded_len(value: &Value) -> usize {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("a Value always encodes")
        .len()
}

/// How many items make a value of about `bytes` (the smallest count reaching it).
fn items_for(bytes: u32) -> usize {
    static TABLE: OnceLock<Vec<(u32, usize)>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        SIZES
            .iter()
            .map(|size| {
                // The length grows with the item count: binary search the smallest count.
                let target = size.bytes as usize;
                let (mut lo, mut hi) = (0, 1);
                while encoded_len(&build(1, hi)) < target {
                    hi *= 2;
                }
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    if encoded_len(&build(1, mid)) < target {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                (size.bytes, lo)
            })
            .collect()
    });
    table
        .iter()
        .find(|(b, _)| *b == bytes)
        .map_or(0, |(_, n)| *n)
}

/// The value of `id` at size `bytes` (one of [`SIZES`]): what every body returns.
pub(crate) fn make_value(bytes: u32, id: u64) -> Value {
    build(id, items_for(bytes))
}
