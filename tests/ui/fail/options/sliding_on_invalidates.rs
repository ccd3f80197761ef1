use cached_runtime::invalidates;

#[invalidates(key = "user:<id>", sliding = true)]
async fn user(id: u64) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
