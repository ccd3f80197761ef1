use cached_runtime::{Cache, cache_aside};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cache_aside(key = "repo:<self>", ttl = 600, cache = self.cache)]
    async fn size(&self) -> Option<usize> {
        Some(1)
    }
}

fn main() {}
