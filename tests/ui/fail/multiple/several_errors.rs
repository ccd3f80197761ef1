use cached_runtime::cache_aside;

#[cache_aside(key = "u:<nope>", ttl = 600, null_ttl = 1.5, bogus = 1)]
fn user(id: u64) -> Option<String> {
    Some(format!("{id}"))
}

fn main() {}
