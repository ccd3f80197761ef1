use cached_runtime::cache_put;

#[cache_put(key = "product:<id>", ttl = 600, tags = [])]
async fn save(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {}
