// `stale` refreshes in a background task: a borrowed argument cannot go there.
use cached_runtime::cache_aside;

#[cache_aside(key = "user:<name>", ttl = 60, stale = 30)]
async fn by_name(name: &str) -> Option<u64> {
    Some(name.len() as u64)
}

fn main() {}
