//! Statics named like the macro's inputs and outputs do not clash with generated code.
#![allow(non_upper_case_globals)]

use cached_runtime::{cache_aside, invalidates};

static cache: u8 = 0;
static key: u8 = 0;
static keys: u8 = 0;
static CACHE: u8 = 0;
static SITE: u8 = 0;

#[cache_aside(key = "user:<id>", ttl = 600)]
async fn user(id: u64) -> Option<String> {
    Some(format!("{id}{cache}{key}{CACHE}{SITE}"))
}

#[invalidates(key = "user:<id>")]
async fn rename(id: u64) {
    let _ = (id, keys);
}

fn main() {
    let _ = (user(1), rename(1));
}
