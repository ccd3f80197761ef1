use cached_runtime::cache_aside;

struct Query {
    id: u64,
}

#[cache_aside(key = "q:<q.page>", ttl = 600)]
async fn search(q: Query) -> Option<String> {
    Some(format!("{}", q.id))
}

fn main() {}
