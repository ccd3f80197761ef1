use cached_runtime::invalidates;

#[invalidates(key = "product:<id>", tags = [])]
async fn set_price(id: u64) {
    let _ = id;
}

fn main() {}
