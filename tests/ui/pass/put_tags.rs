use cached_runtime::{cache_aside, cache_put, Cache};

struct Catalog {
    cache: Cache,
    tenant: u32,
}

impl Catalog {
    #[cache_aside(
        key = "product:<id>",
        ttl = 600,
        tags = ["category:<category>", "products", "tenant:<self.tenant>"],
        cache = self.cache
    )]
    async fn product(&self, id: u64, category: u32) -> Option<String> {
        let _ = (id, category);
        None
    }

    /// The same entry, written through with the same tags.
    #[cache_put(
        key = "product:<id>",
        ttl = 600,
        tags = ["category:<category>", "products", "tenant:<self.tenant>"],
        cache = self.cache
    )]
    async fn save(&self, id: u64, category: u32, name: String) -> Result<Option<String>, std::io::Error> {
        let _ = (id, category);
        Ok(Some(name))
    }
}

/// A free function on the global cache.
#[cache_put(key = "user:<id>", ttl = 60, tags = ["team:<team>"])]
async fn save_user(id: u64, team: u32) -> u64 {
    id + u64::from(team)
}

fn main() {}
