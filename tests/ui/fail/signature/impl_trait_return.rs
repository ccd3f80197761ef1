use cached_runtime::cache_aside;

#[cache_aside(key = "user:<id>", ttl = 600)]
async fn name(id: u64) -> impl std::fmt::Display {
    id
}

fn main() {}
