use cached_runtime::cache_put;

#[cache_put(key = "user:<id>")]
async fn save(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}

fn main() {}
