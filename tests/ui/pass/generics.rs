// Generic functions: the value type, a key type and the error type may be generic.
#![allow(dead_code)]

use cached_runtime::{KeyPart, cache_aside};
use serde::{Serialize, de::DeserializeOwned};

#[cache_aside(key = "any:<id>", ttl = 600)]
async fn get<T: Serialize + DeserializeOwned + Send>(id: u64) -> Option<T> {
    None
}

#[cache_aside(key = "by:<id>", ttl = 600)]
async fn by<K, T, E>(id: K) -> Result<Vec<T>, E>
where
    K: KeyPart + Send + Sync,
    T: Serialize + DeserializeOwned + Send,
    E: Send,
{
    Ok(Vec::new())
}

struct Store<T>(std::marker::PhantomData<T>);

impl<T: Serialize + DeserializeOwned + Send + Sync> Store<T> {
    #[cache_aside(key = "store:<id>", ttl = 600)]
    async fn load(&self, id: u64) -> Option<T> {
        None
    }
}

fn main() {
    drop(get::<String>(1));
    drop(by::<&str, u8, std::io::Error>("x"));
}
