// Every return shape `#[cache_aside]` accepts: `T`, `Option<T>`, `Result<T, E>`,
// `Result<Option<T>, E>`, and an alias of `Result`.
#![allow(dead_code, unused_variables)]

use cached_runtime::cache_aside;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug)]
struct DbError;

type Result<T> = std::result::Result<T, DbError>;

#[cache_aside(key = "plain:<id>", ttl = 600)]
async fn plain(id: u64) -> User {
    User { id, name: "Ada".into() }
}

#[cache_aside(key = "count:<id>", ttl = 600)]
async fn count(id: u64) -> u64 {
    id
}

#[cache_aside(key = "list:<id>", ttl = 600)]
async fn list(id: u64) -> Vec<(u32, String)> {
    Vec::new()
}

#[cache_aside(key = "option:<id>", ttl = 600, null_ttl = 30, lock = false)]
async fn option(id: u64) -> Option<User> {
    None
}

#[cache_aside(key = "result:<id>", ttl = 600)]
async fn result(id: u64) -> std::result::Result<User, DbError> {
    Err(DbError)
}

#[cache_aside(key = "result_option:<id>", ttl = 600, null_ttl = 600)]
async fn result_option(id: u64) -> std::result::Result<Option<User>, DbError> {
    Ok(None)
}

#[cache_aside(key = "alias:<id>", ttl = 600)]
async fn alias(id: u64) -> Result<Option<User>> {
    Ok(None)
}

#[cache_aside(key = "alias_plain:<id>", ttl = 600u64)]
async fn alias_plain(id: u64) -> Result<User> {
    Err(DbError)
}

#[cache_aside(key = "io:<id>", ttl = 600)]
async fn io(id: u64) -> std::io::Result<String> {
    Ok(String::new())
}

fn main() {}
