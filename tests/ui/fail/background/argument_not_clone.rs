// With `timeout`, a slow load goes on in the background with clones of the arguments.
use cached_runtime::cache_aside;

struct Filter {
    id: u64,
}

#[cache_aside(key = "user:<id>", ttl = 60, fail_safe = 600, timeout = 100)]
async fn user(id: u64, filter: Filter) -> Option<u64> {
    Some(id + filter.id)
}

fn main() {}
