use cached_runtime::cache_aside;

#[cache_aside(key = "price:<sku>:<region>", ttl = 300, null_ttl = 30)]
pub async fn price(sku: &str, region: u16) -> Option<u64> {
    let _ = (sku, region);
    Some(1999)
}
