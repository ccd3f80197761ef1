use cached_runtime::cache_aside;

#[cache_aside(key = "product:<id>", ttl = 600, tags = "products")]
async fn product(id: u64) -> Option<String> {
    let _ = id;
    None
}

fn main() {}
