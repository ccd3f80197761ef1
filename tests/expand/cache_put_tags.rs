use cached_runtime::{Cache, cache_put};

pub struct Catalog {
    cache: Cache,
}

impl Catalog {
    #[cache_put(key = "product:<id>", ttl = 600, tags = ["category:<category>", "products"], cache = self.cache)]
    pub async fn save(&self, id: u64, category: u32, price: u64) -> Option<u64> {
        let _ = (id, category);
        Some(price)
    }
}
