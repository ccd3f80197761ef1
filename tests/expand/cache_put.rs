use cached_runtime::{Cache, cache_put};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
}

#[derive(Debug)]
pub struct DbError;

pub struct Users {
    cache: Cache,
}

impl Users {
    #[cache_put(key = "user:<id>", ttl = 600, cache = self.cache)]
    pub async fn rename(&self, id: u64, name: String) -> Result<Option<User>, DbError> {
        Ok(Some(User { id, name }))
    }
}
