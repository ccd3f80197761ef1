// Sliding expiration (`sliding = true`) alone and with the options it goes with (`null_ttl`,
// `lock = false`); `sliding = false` is the default. Runs against the in-memory backend.
#![deny(warnings)]

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

use cached_runtime::{Cache, cache_aside};

static LOADS: AtomicU32 = AtomicU32::new(0);

struct Sessions {
    cache: Cache,
}

impl Sessions {
    #[cache_aside(key = "session:<token>", ttl = 1800, sliding = true, cache = self.cache)]
    async fn session(&self, token: &str) -> Option<u64> {
        LOADS.fetch_add(1, SeqCst);
        token.parse().ok()
    }

    #[cache_aside(
        key = "profile:<id>",
        ttl = 600,
        null_ttl = 30,
        sliding = true,
        lock = false,
        cache = self.cache
    )]
    async fn profile(&self, id: u64) -> Result<Option<String>, String> {
        Ok((id > 0).then(|| format!("user {id}")))
    }

    #[cache_aside(key = "fixed:<id>", ttl = 60, sliding = false, cache = self.cache)]
    async fn fixed(&self, id: u64) -> u64 {
        id
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sessions = Sessions {
        cache: Cache::builder().memory().build().await.unwrap(),
    };
    assert_eq!(sessions.session("7").await, Some(7));
    assert_eq!(sessions.session("7").await, Some(7));
    assert_eq!(LOADS.load(SeqCst), 1);
    assert_eq!(sessions.profile(0).await, Ok(None));
    assert_eq!(sessions.profile(1).await, Ok(Some("user 1".into())));
    assert_eq!(sessions.fixed(3).await, 3);
}
