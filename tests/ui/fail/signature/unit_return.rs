use cached_runtime::cache_aside;

#[cache_aside(key = "user:<id>", ttl = 600)]
async fn touch(id: u64) -> () {
    println!("{id}");
}

fn main() {}
