use cached_runtime::cache_aside;

#[cache_aside(key = "user:<id>", ttl = 600, null_ttl = 0)]
async fn user(id: u64) -> Option<String> {
    Some(format!("{id}"))
}

fn main() {}
