//! Statics and unit structs named like generated locals must not clash with them.
#![allow(non_upper_case_globals)]

use cached_runtime::{cache_aside, invalidates};

static __cache: u8 = 0;
static __key: u8 = 0;
static __keys: u8 = 0;

#[cache_aside(key = "user:<id>", ttl = 600)]
async fn user(id: u64) -> Option<String> {
    Some(format!("{id}{__cache}{__key}"))
}

#[invalidates(key = "user:<id>")]
async fn rename(id: u64) {
    let _ = (id, __keys);
}

fn main() {
    let _ = (user(1), rename(1));
}
