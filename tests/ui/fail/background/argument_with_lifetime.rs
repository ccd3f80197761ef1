// A type that borrows (a lifetime) cannot go into the background task of `early_refresh`.
use std::borrow::Cow;

use cached_runtime::cache_aside;

#[cache_aside(key = "user:<name>", ttl = 60, early_refresh = 1.0)]
async fn by_name<'a>(name: Cow<'a, str>) -> Option<u64> {
    Some(name.len() as u64)
}

fn main() {}
