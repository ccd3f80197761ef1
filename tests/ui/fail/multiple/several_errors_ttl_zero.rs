use cached_runtime::cache_aside;

#[cache_aside(ttl = 0, bogus = 1, key = "u:<nope>")]
async fn user(id: u64) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
