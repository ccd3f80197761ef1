use cached_runtime::cache_aside;

struct Repo;

impl Repo {
    #[cache_aside(key = "user:<id>", ttl = 600)]
    async fn user(self, id: u64) -> Option<String> {
        Some(format!("{id}"))
    }
}

fn main() {}
