// The expansion is warning-free, even under `unused_qualifications`.
#![deny(warnings, unused_qualifications, clippy::all)]
#![deny(unused_results, unused_extern_crates, rust_2018_idioms)]
#![deny(missing_debug_implementations, unreachable_pub, unsafe_code)]

use cached_runtime::{Cache, cache_aside, invalidates};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug)]
struct Repo {
    cache: Cache,
}

impl Repo {
    /// Finds a user.
    #[cache_aside(key = "user:<id>", ttl = 600, null_ttl = 30, cache = self.cache)]
    async fn find(&self, id: u64) -> Result<Option<User>, std::io::Error> {
        Ok(Some(User { id, name: "Ada".into() }))
    }

    /// Renames a user.
    #[invalidates(key = "user:<id>", cache = self.cache)]
    async fn rename(&self, id: u64, name: &str) -> Result<(), std::io::Error> {
        let _ = name;
        Ok(())
    }
}

#[cache_aside(key = "global:<id>", ttl = 60)]
async fn global(id: u64) -> u64 {
    id
}

#[invalidates(key = "global:<id>")]
async fn forget(id: u64) {
    let _ = id;
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let repo = Repo {
            cache: Cache::builder().memory().build().await.unwrap(),
        };
        let user = repo.find(1).await.unwrap().unwrap();
        assert_eq!((user.id, user.name.as_str()), (1, "Ada"));
        repo.rename(1, "Grace").await.unwrap();
        assert_eq!(global(3).await, 3);
        forget(3).await;
    });
}
