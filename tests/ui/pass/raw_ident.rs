use cached_runtime::cache_aside;

#[cache_aside(key = "kind:<type>:<r#match>", ttl = 600)]
async fn kind(r#type: &str, r#match: u8) -> Option<String> {
    Some(format!("{type}{match}", type = r#type, match = r#match))
}

fn main() {
    let _ = kind("a", 1);
}
