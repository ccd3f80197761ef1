// `timeout` is in milliseconds (unlike `ttl`, `stale` and `fail_safe`, in seconds).
use cached_runtime::cache_aside;

#[cache_aside(key = "user:<id>", ttl = 60, fail_safe = 600, timeout = 250i32)]
async fn user(id: u64) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
