// `timeout` without a value: the error says what it takes, in milliseconds.
use cached_runtime::cache_aside;

#[cache_aside(key = "user:<id>", ttl = 60, fail_safe = 600, timeout)]
async fn user(id: u64) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
