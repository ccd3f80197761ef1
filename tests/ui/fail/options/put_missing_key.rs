use cached_runtime::cache_put;

#[cache_put(ttl = 600)]
async fn save(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}

fn main() {}
