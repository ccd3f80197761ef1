use cached_runtime::cache_aside;

#[derive(Debug)]
pub struct Unavailable;

/// Hot and important: served stale while refreshing, refreshed early, and kept for an hour
/// to stand in for a failing source.
#[cache_aside(
    key = "rates:<currency>",
    ttl = 60,
    stale = 30,
    early_refresh = 1.0,
    fail_safe = 3600
)]
pub async fn rates(currency: &str) -> Result<Vec<(String, f64)>, Unavailable> {
    let _ = currency;
    Ok(vec![])
}

#[cache_aside(key = "report:<day>", ttl = 600, lock = false)]
pub async fn report(day: u32) -> String {
    format!("report {day}")
}
