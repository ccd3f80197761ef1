use cached_runtime::cache_aside;

#[cache_aside(key = "point:<a>", ttl = 600)]
async fn point((a, b): (u32, u32)) -> Option<String> {
    Some(format!("{a},{b}"))
}

fn main() {}
