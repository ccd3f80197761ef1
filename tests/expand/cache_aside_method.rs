use cached_runtime::{Cache, cache_aside};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
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
    /// Finds a user.
    #[cache_aside(key = "user:<id>", ttl = 600, cache = self.cache)]
    pub async fn find(&self, id: u64) -> Result<Option<User>, DbError> {
        Ok(Some(User {
            id,
            name: "Ada".into(),
        }))
    }
}
