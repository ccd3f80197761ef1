use cached_runtime::invalidates;

#[invalidates(key = "user:<id>", stale = 10)]
async fn rename(id: u64) {
    let _ = id;
}

fn main() {}
