use cached_runtime::invalidates;

#[invalidates(key = "user:<id>", ttl = 600)]
async fn rename(id: u64, name: &str) -> Result<(), std::io::Error> {
    println!("{id}: {name}");
    Ok(())
}

fn main() {}
