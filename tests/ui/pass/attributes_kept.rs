// Docs, other attributes and the visibility are put back on the function.
#![deny(dead_code)]

use cached_runtime::cache_aside;

mod repo {
    use cached_runtime::cache_aside;

    /// Visible to the crate: `main` calls it, so `pub(crate)` must survive the expansion.
    #[cache_aside(key = "user:<id>", ttl = 600)]
    pub(crate) async fn user(id: u64) -> Option<String> {
        None
    }
}

/// Never called: compiles under `deny(dead_code)` only if the `allow` below is kept.
#[cache_aside(key = "unused:<id>", ttl = 600)]
#[allow(dead_code)]
#[doc = "More docs."]
async fn unused(id: u64) -> Option<String> {
    None
}

#[allow(dead_code)]
/// Attributes before the macro are kept too.
#[cache_aside(key = "unused2:<id>", ttl = 600)]
async fn unused2(id: u64) -> Option<String> {
    None
}

fn main() {
    drop(repo::user(1));
}
