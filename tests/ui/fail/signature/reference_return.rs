use cached_runtime::cache_aside;

#[cache_aside(key = "user:<id>", ttl = 600)]
async fn name(id: u64) -> Option<&'static str> {
    (id == 1).then_some("Ada")
}

fn main() {}
