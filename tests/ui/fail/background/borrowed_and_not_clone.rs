// Both problems of a background body in one build: a borrowed argument, and a `self` that
// cannot be cloned into the task.
use cached_runtime::{Cache, cache_aside};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cache_aside(key = "user:<name>", ttl = 60, stale = 30, cache = self.cache)]
    async fn by_name(&self, name: &str) -> Option<u64> {
        Some(name.len() as u64)
    }
}

fn main() {}
