use cached_runtime::cache_aside;

#[cache_aside(key = "user:<user_id>", ttl = 600)]
async fn user(id: u64, tenant: u32) -> Option<String> {
    Some(format!("{id}{tenant}"))
}

fn main() {}
