use cached_runtime::{cache_aside, invalidates, Cache};

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

    /// Tags alone.
    #[invalidates(tags = ["products"], cache = self.cache)]
    async fn reprice_all(&self) -> Result<(), std::io::Error> {
        Ok(())
    }

    /// A cascade: a key and tags.
    #[invalidates(key = "product:<id>", tags = ["category:<category>"], cache = self.cache)]
    async fn set_price(&self, id: u64, category: u32) {
        let _ = (id, category);
    }
}

fn main() {}
