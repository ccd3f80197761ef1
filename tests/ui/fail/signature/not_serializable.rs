use cached_runtime::cache_aside;

struct User {
    name: String,
}

#[cache_aside(key = "user:<id>", ttl = 600)]
async fn user(id: u64) -> Option<User> {
    Some(User { name: format!("user {id}") })
}

fn main() {}
