// A misspelled option is probably the one it is close to: one error, at the typo, saying so
// (not a second one about `ttl` missing).
use cached_runtime::cache_aside;

#[cache_aside(key = "user:<id>", tll = 600)]
async fn user(id: u64) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
