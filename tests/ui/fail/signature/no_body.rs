use cached_runtime::cache_aside;

trait Repo {
    #[cache_aside(key = "user:<id>", ttl = 600)]
    async fn user(&self, id: u64) -> Option<u64>;
}

fn main() {}
