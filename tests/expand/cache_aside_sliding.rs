use cached_runtime::{Cache, cache_aside};

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Session {
    pub user: u64,
}

pub struct Sessions {
    pub cache: Cache,
}

impl Sessions {
    /// Stays cached while it is used: every hit resets its TTL to 30 minutes.
    #[cache_aside(key = "session:<token>", ttl = 1800, sliding = true, cache = self.cache)]
    pub async fn session(&self, token: &str) -> Option<Session> {
        let _ = token;
        None
    }
}

#[cache_aside(
    key = "profile:<id>",
    ttl = 600,
    null_ttl = 30,
    sliding = true,
    lock = false
)]
pub async fn profile(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}
