// With `stale`, the body runs in a background task that owns a clone of `self`.
use cached_runtime::{Cache, cache_aside};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cache_aside(key = "user:<id>", ttl = 60, stale = 30, cache = self.cache)]
    async fn user(&self, id: u64) -> Option<u64> {
        Some(id)
    }
}

fn main() {}
