use cached_runtime::invalidates;

#[invalidates(keys = "user:<id>")]
async fn rename(id: u64) {
    let _ = id;
}

fn main() {}
