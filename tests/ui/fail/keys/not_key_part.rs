use cached_runtime::cache_aside;

#[cache_aside(key = "blob:<bytes>", ttl = 600)]
async fn blob(bytes: Vec<u8>) -> Option<usize> {
    Some(bytes.len())
}

fn main() {}
