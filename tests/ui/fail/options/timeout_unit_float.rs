// `timeout = 0.5` is half a second written in seconds; `timeout` takes milliseconds.
use cached_runtime::cache_aside;

#[cache_aside(key = "user:<id>", ttl = 60, fail_safe = 600, timeout = 0.5)]
async fn user(id: u64) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
