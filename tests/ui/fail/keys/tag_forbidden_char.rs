use cached_runtime::invalidates;

#[invalidates(tags = ["category:*"])]
async fn reprice() {}

fn main() {}
