use cached_runtime::invalidates;

#[invalidates(keys = [])]
async fn rename(id: u64, name: &str) -> Result<(), std::io::Error> {
    println!("{id}: {name}");
    Ok(())
}

fn main() {}
