use cached_runtime::cache_aside;

#[cache_aside(key = "pair:<a><b>", ttl = 600)]
async fn pair(a: u32, b: u32) -> Option<String> {
    Some(format!("{a}{b}"))
}

fn main() {}
