// Every return shape `#[cache_put]` accepts, on free functions, methods and generic functions,
// with `cache = ...` and `crate = ...`.
#![allow(dead_code, unused_variables)]

use cached_runtime::{Cache, cache_aside, cache_put};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug)]
struct DbError;

type Result<T> = std::result::Result<T, DbError>;

#[cache_put(key = "plain:<id>", ttl = 600)]
async fn plain(id: u64) -> User {
    User { id, name: "Ada".into() }
}

#[cache_put(key = "option:<id>", ttl = 600)]
async fn option(id: u64) -> Option<User> {
    None
}

#[cache_put(key = "result:<id>", ttl = 600)]
async fn result(id: u64) -> std::result::Result<User, DbError> {
    Err(DbError)
}

#[cache_put(key = "result_option:<id>", ttl = 600)]
async fn result_option(id: u64) -> std::result::Result<Option<User>, DbError> {
    Ok(None)
}

#[cache_put(key = "alias:<id>", ttl = 600, crate = "cached_runtime")]
async fn alias(id: u64) -> Result<Option<User>> {
    Ok(None)
}

#[cache_put(key = "generic:<id>", ttl = 600)]
async fn generic<T: Serialize + serde::de::DeserializeOwned + Send>(id: u64, value: T) -> T {
    value
}

struct Users {
    cache: Cache,
    tenant: u32,
}

impl Users {
    #[cache_aside(key = "<self.tenant>:user:<id>", ttl = 600, cache = self.cache)]
    async fn find(&self, id: u64) -> Result<Option<User>> {
        Ok(None)
    }

    /// Renames a user; `find` reads the new value.
    #[cache_put(key = "<self.tenant>:user:<id>", ttl = 600, cache = self.cache)]
    pub async fn rename(&self, id: u64, name: String) -> Result<User> {
        Ok(User { id, name })
    }
}

fn main() {}
