use cached_runtime::cache_put;

#[cache_put(key = "product:<id>", ttl = 600, tags = ["category:<cat>"])]
async fn save(id: u64, category: u32) -> Option<u32> {
    Some(category)
}

fn main() {}
