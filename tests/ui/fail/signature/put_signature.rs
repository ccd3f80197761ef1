use cached_runtime::cache_put;

struct Repo;

#[cache_put(key = "user:<id>", ttl = 600)]
fn not_async(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}

#[cache_put(key = "user:<id>", ttl = 600)]
async fn returns_nothing(id: u64) {
    let _ = id;
}

impl Repo {
    #[cache_put(key = "user:<id>", ttl = 600)]
    async fn mut_self(&mut self, id: u64) -> Option<u64> {
        Some(id)
    }
}

fn main() {}
