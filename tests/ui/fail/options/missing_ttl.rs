use cached_runtime::cache_aside;

#[cache_aside(key = "user:<id>")]
async fn user(id: u64) -> Option<String> {
    Some(format!("{id}"))
}

fn main() {}
