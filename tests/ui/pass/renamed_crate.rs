// `crate = "..."` with the runtime imported under another name.
extern crate cached_runtime as cr;

use cr::{cache_aside, invalidates};

#[cache_aside(key = "user:<id>", ttl = 600, crate = "cr")]
async fn user(id: u64) -> Option<String> {
    None
}

#[invalidates(key = "user:<id>", crate = "::cr")]
async fn rename(id: u64) -> Result<(), std::io::Error> {
    Ok(())
}

mod nested {
    #[cr::cache_aside(key = "n:<id>", ttl = 60, crate = "cr")]
    pub async fn find(id: u64) -> u64 {
        id
    }
}

fn main() {
    drop(user(1));
    drop(rename(1));
    drop(nested::find(1));
}
