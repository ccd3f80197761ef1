// Methods: `&self` receivers, `cache = self.cache`, `cache = ` an `Arc<Cache>`, `<self.field>`
// and `<param.field>` placeholders, and every built-in placeholder type. Runs against the
// in-memory backend.
#![allow(unused_variables)]

use std::sync::Arc;

use cached_runtime::{Cache, cache_aside, invalidates};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

struct Query {
    id: u64,
    page: (u32, u8),
}

struct Repo {
    cache: Cache,
    shared: Arc<Cache>,
    tenant: String,
    loads: std::sync::atomic::AtomicU32,
}

impl Repo {
    #[cache_aside(key = "user:<id>", ttl = 600, cache = self.cache)]
    async fn user(&self, id: u64) -> Option<User> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Some(User { id, name: "Ada".into() })
    }

    #[cache_aside(key = "t:<self.tenant>:user:<id>", ttl = 600, cache = self.shared)]
    async fn tenant_user(&self, id: u64) -> Option<User> {
        None
    }

    #[cache_aside(key = "q:<q.id>:<q.page.0>:<q.page.1>", ttl = 60, cache = &self.cache)]
    async fn search(&self, q: Query) -> Vec<User> {
        let _ = q.page;
        Vec::new()
    }

    #[cache_aside(key = "typed:<id>", ttl = 60, cache = self.cache)]
    async fn typed_receiver(self: &Self, id: u32) -> u32 {
        id
    }

    #[cache_aside(
        key = "all:<s>:<r>:<b>:<c>:<i8>:<u16>:<i32>:<u64>:<i128>:<usize>",
        ttl = 60,
        cache = self.cache,
    )]
    async fn every_type(
        &self,
        s: String,
        r: &str,
        b: bool,
        c: char,
        i8: i8,
        u16: u16,
        i32: i32,
        u64: u64,
        i128: i128,
        usize: usize,
    ) -> String {
        format!("{s}{r}{b}{c}{i8}{u16}{i32}{u64}{i128}{usize}")
    }

    #[invalidates(keys = ["user:<id>", "t:<self.tenant>:user:<id>"], cache = self.cache)]
    async fn rename(&self, id: u64, name: &str) -> Result<(), std::io::Error> {
        Ok(())
    }

    #[invalidates(key = "user:<id>", keys = ["users:all"], cache = self.shared)]
    async fn delete(&self, id: u64) {}
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cache = Cache::builder().memory().namespace("ui").build().await.unwrap();
        let repo = Repo {
            cache: cache.clone(),
            shared: Arc::new(cache),
            tenant: "acme".into(),
            loads: Default::default(),
        };
        let ada = Some(User { id: 7, name: "Ada".into() });
        assert_eq!(repo.user(7).await, ada);
        assert_eq!(repo.user(7).await, ada);
        assert_eq!(repo.loads.load(std::sync::atomic::Ordering::SeqCst), 1);
        repo.rename(7, "Grace").await.unwrap();
        assert_eq!(repo.user(7).await, ada);
        assert_eq!(repo.loads.load(std::sync::atomic::Ordering::SeqCst), 2);

        assert_eq!(repo.tenant_user(1).await, None);
        let q = Query { id: 1, page: (2, 3) };
        assert!(repo.search(q).await.is_empty());
        assert_eq!(repo.typed_receiver(5).await, 5);
        let all = repo
            .every_type("s".into(), "r", true, 'c', -1, 2, -3, 4, -5, 6)
            .await;
        assert_eq!(all, "srtruec-12-34-56");
        repo.delete(7).await;
    });
}
