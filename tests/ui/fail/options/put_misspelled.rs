use cached_runtime::cache_put;

#[cache_put(key = "a:<id>", tll = 600)]
async fn typo(id: u64) -> Option<u64> {
    Some(id)
}

#[cache_put(key = "b:<id>", expire = 600)]
async fn other_name(id: u64) -> Option<u64> {
    Some(id)
}

#[cache_put(key = "c:<id>", key = "d:<id>", ttl = 600)]
async fn two_keys(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {}
