//! The caching patterns: what the macros expand into. `#[cache_aside]`'s read path
//! (`aside.rs`) and miss path (`load.rs`), `#[invalidates]` (`invalidate.rs`), `#[cache_put]`
//! (`put.rs`), and what they are made of: the cache an annotation uses and its keys
//! (`target.rs`), the return type's shape (`shape.rs`) and value operations (`value.rs`), the
//! body as a future or a detachable task (`body.rs`), freshness and early refresh
//! (`freshness.rs`).

pub(crate) mod aside;
pub(crate) mod body;
pub(crate) mod freshness;
pub(crate) mod invalidate;
pub(crate) mod load;
pub(crate) mod put;
pub(crate) mod shape;
pub(crate) mod tagged;
pub(crate) mod target;
pub(crate) mod through;
pub(crate) mod value;
