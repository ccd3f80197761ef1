use cached_runtime::{Cache, cache_aside};

#[derive(Debug)]
pub struct Unavailable;

/// Refreshes run in the background, so the client is `Clone` and the arguments are owned.
#[derive(Clone)]
pub struct RatesApi {
    pub cache: Cache,
    pub base_url: String,
}

impl RatesApi {
    /// Hot and important: served stale while refreshing, refreshed early, and kept for an
    /// hour to stand in for a failing source.
    #[cache_aside(
        key = "rates:<currency>",
        ttl = 60,
        stale = 30,
        early_refresh = 1.0,
        fail_safe = 3600,
        cache = self.cache
    )]
    pub async fn rates(&self, mut currency: String) -> Result<Vec<(String, f64)>, Unavailable> {
        currency.make_ascii_uppercase();
        let _ = (&self.base_url, self::Unavailable);
        Ok(vec![(currency, 1.0)])
    }
}

#[cache_aside(key = "report:<day>", ttl = 600, lock = false)]
pub async fn report(day: u32) -> String {
    format!("report {day}")
}
