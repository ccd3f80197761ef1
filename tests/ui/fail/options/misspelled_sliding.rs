use cached_runtime::cache_aside;

#[cache_aside(key = "user:<id>", ttl = 600, slidng = true)]
async fn user(id: u64) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
