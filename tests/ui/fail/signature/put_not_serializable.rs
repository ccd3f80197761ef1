use cached_runtime::cache_put;

struct User {
    name: String,
}

#[cache_put(key = "user:<id>", ttl = 600)]
async fn save(id: u64) -> Result<User, std::io::Error> {
    Ok(User { name: format!("user {id}") })
}

fn main() {}
