// `#[invalidates]` suggests the nearest option too, and `kye` stands in for the key.
use cached_runtime::invalidates;

#[invalidates(kye = "user:<id>")]
async fn rename(id: u64) -> Result<(), std::io::Error> {
    let _ = id;
    Ok(())
}

fn main() {}
