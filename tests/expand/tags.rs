use cached_runtime::{cache_aside, invalidates, Cache};

struct Catalog {
    cache: Cache,
}

impl Catalog {
    #[cache_aside(key = "product:<id>", ttl = 600, tags = ["category:<category>", "products"], cache = self.cache)]
    async fn product(&self, id: u64, category: u32) -> Option<String> {
        let _ = category;
        Some(id.to_string())
    }

    #[invalidates(key = "product:<id>", tags = ["category:<category>"], cache = self.cache)]
    async fn set_price(&self, id: u64, category: u32, price: u64) -> Result<(), std::io::Error> {
        let _ = (id, category, price);
        Ok(())
    }
}
