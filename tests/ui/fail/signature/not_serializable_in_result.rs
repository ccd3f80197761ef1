use cached_runtime::cache_aside;

struct User;

#[cache_aside(key = "user:<id>", ttl = 600)]
async fn user(id: u64) -> Result<Option<User>, std::io::Error> {
    println!("{id}");
    Ok(None)
}

fn main() {}
