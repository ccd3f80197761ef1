use cached_runtime::cache_aside;

fn user_key(id: u64) -> String {
    format!("user:{id}")
}

#[cache_aside(key = user_key(id), ttl = 600)]
async fn user(id: u64) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
