// An unknown option with nothing close by name, while `ttl` is missing: the error at the
// option says how to write it as the TTL, and there is no separate "needs a TTL".
use cached_runtime::cache_aside;

#[cache_aside(key = "user:<id>", expire = 600)]
async fn user(id: u64) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
