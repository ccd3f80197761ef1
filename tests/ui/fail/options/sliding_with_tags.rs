use cached_runtime::cache_aside;

#[cache_aside(key = "product:<id>", ttl = 600, sliding = true, tags = ["category:<category>"])]
async fn product(id: u64, category: u32) -> Option<String> {
    let _ = category;
    Some(id.to_string())
}

fn main() {}
