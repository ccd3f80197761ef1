use cached_runtime::cache_aside;

#[allow(non_snake_case)]
#[cache_aside(key = "site:<__SITE>", ttl = 600)]
async fn site(__SITE: u64) -> Option<u64> {
    Some(__SITE + 1)
}

fn main() {
    let _ = site(1);
}
