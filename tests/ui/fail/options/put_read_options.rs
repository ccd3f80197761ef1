// Options of #[cache_aside] (and #[invalidates]) that a put has no use for: each is an error
// that says why, at the option.
use cached_runtime::cache_put;

#[cache_put(key = "a:<id>", ttl = 600, null_ttl = 30)]
async fn null_ttl(id: u64) -> Option<u64> {
    Some(id)
}

#[cache_put(key = "b:<id>", ttl = 600, lock = false)]
async fn lock(id: u64) -> Option<u64> {
    Some(id)
}

#[cache_put(key = "c:<id>", ttl = 600, stale = 30)]
async fn stale(id: u64) -> Option<u64> {
    Some(id)
}

#[cache_put(key = "d:<id>", ttl = 600, early_refresh = 1.0)]
async fn early_refresh(id: u64) -> Option<u64> {
    Some(id)
}

#[cache_put(key = "e:<id>", ttl = 600, fail_safe = 3600)]
async fn fail_safe(id: u64) -> Option<u64> {
    Some(id)
}

#[cache_put(key = "f:<id>", ttl = 600, timeout = 250)]
async fn timeout(id: u64) -> Option<u64> {
    Some(id)
}

#[cache_put(keys = ["g:<id>", "h:<id>"], ttl = 600)]
async fn keys(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {}
