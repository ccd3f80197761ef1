use cached_runtime::cache_aside;

#[cache_aside(key = "product:<id>", ttl = 600, tags = ["category:<cat>"])]
async fn product(id: u64, category: u32) -> Option<String> {
    let _ = (id, category);
    None
}

fn main() {}
