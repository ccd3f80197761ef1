// Bodies that run in the background (`stale`, `early_refresh`, `timeout`): `self` is cloned
// and every use of it in the body goes to the clone — in closures, macros, `Self::f(self)` —
// while `self::` paths stay module paths; `mut` and pattern-bound arguments are cloned too.
// Runs against the in-memory backend.
#![deny(warnings)]

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering::SeqCst},
};

use cached_runtime::{Cache, cache_aside};

fn double(x: u64) -> u64 {
    x * 2
}

#[derive(Clone)]
struct Repo {
    cache: Cache,
    loads: Arc<AtomicU32>,
    scale: u64,
}

impl Repo {
    fn scaled(repo: &Self, x: u64) -> u64 {
        x * repo.scale
    }

    #[cache_aside(key = "a:<id>", ttl = 60, stale = 30, cache = self.cache)]
    async fn a(&self, mut id: u64) -> Option<u64> {
        self.loads.fetch_add(1, SeqCst);
        id += 1;
        let add = |x: u64| x + self.scale;
        let shown = format!("{}", self.scale);
        Some(Self::scaled(self, add(self::double(id))) + shown.len() as u64)
    }

    #[cache_aside(key = "b:<label>", ttl = 60, early_refresh = 1.0, cache = self.cache)]
    async fn b(&self, label: String, (x, mut y): (u64, u64)) -> Result<String, String> {
        y += x;
        Ok(format!("{label}{y}"))
    }

    #[cache_aside(key = "c:<id>", ttl = 60, fail_safe = 60, timeout = 100, cache = self.cache)]
    async fn c(self: &Arc<Self>, id: u64) -> Option<u64> {
        let me: &Arc<Self> = self;
        Some(id + me.scale)
    }
}

#[cache_aside(key = "free:<id>", ttl = 60, stale = 5)]
async fn free(id: u64) -> u64 {
    id
}

#[tokio::main]
async fn main() {
    let cache = Cache::builder().memory().build().await.unwrap();
    let repo = Arc::new(Repo {
        cache,
        loads: Arc::default(),
        scale: 3,
    });
    // a: id 1 → 2 → double 4 → +3 = 7 → ×3 = 21, + "3".len() = 22
    assert_eq!(repo.a(1).await, Some(22));
    assert_eq!(repo.a(1).await, Some(22));
    assert_eq!(repo.loads.load(SeqCst), 1);
    assert_eq!(repo.b("n".into(), (1, 2)).await, Ok("n3".into()));
    assert_eq!(repo.c(1).await, Some(4));
    assert_eq!(free(7).await, 7);
}
