//! Attribute macros of [`cached-runtime`](https://docs.rs/cached-runtime): depend on that crate,
//! which re-exports them, not on this one.
//!
//! The macros only parse and check their arguments and expand into one call into
//! `cached_runtime::__private`; everything that runs lives in the runtime.

mod attr;
mod detach;
mod errors;
mod expand;
mod item;
mod template;

#[cfg(test)]
mod snapshots;

use proc_macro::TokenStream;

/// Caches an `async fn`'s result (cache-aside, or lazy loading).
///
/// On a call, the key is rendered from the arguments and read from the cache. A hit returns
/// the cached value without running the body; a miss runs the body and stores its result for
/// `ttl` seconds. An `Err` is never stored; a `None` is stored as a "not found" marker for
/// `null_ttl` seconds. A cache that fails (Redis down, timeout, undecodable value) makes the
/// call run its body: the cache never adds an error.
///
/// | option | meaning |
/// |---|---|
/// | `key = "user:<id>"` | required; literal text and `<param>`/`<param.field>`/`<self.field>` placeholders. The Redis key is `<namespace>:<rendered>` |
/// | `ttl = 600` | required; seconds, > 0 |
/// | `null_ttl = 30` | seconds a `None` is cached; default the cache's `null_ttl`, else `min(ttl, 60)`; at most `ttl` |
/// | `lock = false` | turn off stampede protection (on by default: one load per key at a time, under a lease) |
/// | `stale = 30` | seconds past `ttl` an expired value is still served at once while one background task refreshes it (stale-while-revalidate) |
/// | `early_refresh = 1.0` | XFetch β: refresh a hot value in the background, probabilistically, before it expires, so callers never see it expire |
/// | `fail_safe = 3600` | seconds past `ttl` an expired value may stand in for a body that fails (`Err`) |
/// | `timeout = 250` | with `fail_safe` or `early_refresh`: milliseconds a caller waits for a load while a cached value could stand in; then it gets that value, and the load goes on in the background and is stored |
/// | `tags = ["category:<cat>", "products"]` | tag templates (the key's placeholder rules): the entry carries these tags, and is not served once one of them is invalidated (`#[invalidates(tags = ...)]`, `Cache::invalidate_tags`), also when that lands while its load runs. A tagged hit reads the tags' versions with the entry (one `MGET` on one server) |
/// | `sliding = true` | sliding expiration: every hit resets the entry's TTL to `ttl` in the same round trip (`GETEX`), so an entry read at least once per `ttl` never expires; not with `stale`, `early_refresh`, `fail_safe`, `timeout` or `tags`, which assume a fixed expiry. A `None` still expires `null_ttl` after it was stored |
/// | `cache = self.cache` | any expression giving a `Cache`, `&Cache`, `Arc<Cache>` or `Option` of them; default the global cache |
/// | `crate = "cached_runtime"` | path of the runtime crate, if renamed |
///
/// Return types: `T`, `Option<T>`, `Result<T, E>`, `Result<Option<T>, E>` (type aliases of
/// `Result` are fine) with `T: Serialize + DeserializeOwned`.
///
/// With `stale`, `early_refresh` or `timeout` the body can run in a background task, on clones
/// of `self` and of the arguments: they must be `Clone + Send + Sync + 'static`, and arguments
/// owned (`String`, not `&str`).
///
/// ```
/// use cached_runtime::{cache_aside, Cache};
///
/// struct Repo { cache: Cache }
///
/// impl Repo {
///     #[cache_aside(key = "price:<sku>", ttl = 300, cache = self.cache)]
///     async fn price(&self, sku: &str) -> Option<u64> {
///         Some(1999)
///     }
/// }
/// ```
///
/// Misuse is a compile error at the offending token:
///
/// ```compile_fail
/// #[cached_runtime::cache_aside(key = "user:<id>", ttl = 0)] // `ttl` must be greater than zero
/// async fn user(id: u64) -> Option<String> { None }
/// ```
#[proc_macro_attribute]
pub fn cache_aside(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(attr::Kind::CacheAside, args.into(), item.into()).into()
}

/// Deletes cached entries after an `async fn` (a write) succeeds: invalidate-on-write.
///
/// The body runs first; if it returns `Ok` (or anything that is not a `Result`), every listed
/// key is deleted in one round trip. Deleting, not updating, is the guides' rule: it cannot
/// race another writer into leaving an old value behind. A failed delete is retried once,
/// then logged and counted; it never turns the write's success into an error.
///
/// | option | meaning |
/// |---|---|
/// | `key = "user:<id>"` | a key template, as in `#[cache_aside]`; may be repeated |
/// | `keys = ["user:<id>", "users:all"]` | several templates |
/// | `tags = ["category:<cat>"]` | tags to invalidate (cascade): every entry that carried one of them when it was stored is no longer served, in any instance. Alone or with `key`/`keys` |
/// | `cache = self.cache` | as in `#[cache_aside]` |
/// | `crate = "cached_runtime"` | as in `#[cache_aside]` |
///
/// ```
/// use cached_runtime::{invalidates, Cache};
///
/// struct Repo { cache: Cache }
///
/// impl Repo {
///     #[invalidates(keys = ["user:<id>", "team:<team>:members"], cache = self.cache)]
///     async fn move_user(&self, id: u64, team: u32) -> Result<(), std::io::Error> {
///         Ok(())
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn invalidates(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(attr::Kind::Invalidates, args.into(), item.into()).into()
}

/// Stores an `async fn`'s result under a key after it runs: write-through (the guides' "every
/// write to the primary database also writes to the cache").
///
/// The body (the write) runs first. What it returns decides what is stored:
///
/// | return | stored |
/// |---|---|
/// | `T` | `T` |
/// | `Result<T, E>` | `Ok(v)` stores `v`; `Err` writes nothing |
/// | `Option<T>` | `Some(v)` stores `v`; `None` deletes the key, as `#[invalidates]` does |
/// | `Result<Option<T>, E>` | `Ok(Some(v))` stores `v`; `Ok(None)` deletes the key; `Err` writes nothing |
///
/// A value is stored as `#[cache_aside]` stores it (same header, codec and TTL jitter), so a
/// `#[cache_aside]` on the same key reads it — as `v` if it returns `T` or `Result<T, E>`, as
/// `Some(v)` if it returns `Option<T>` or `Result<Option<T>, E>`. The store is one round trip
/// that also voids the key's lease: a load that began before the write cannot store its older
/// result over it, and callers waiting for that load (in any process) take the new value.
///
/// A store that fails (Redis down, a timeout, a value that does not encode) deletes the key
/// instead — retried once, then queued and retried in the background — so that the old value
/// is not left behind; until the delete lands, this process does not serve the key. It is
/// logged and counted; the function still returns its own result.
///
/// | option | meaning |
/// |---|---|
/// | `key = "user:<id>"` | required; a key template, as in `#[cache_aside]` |
/// | `ttl = 600` | required; seconds the stored value lives, > 0 |
/// | `tags = ["category:<cat>", "products"]` | the entry carries these tags, as a `#[cache_aside]` load's does: invalidating one of them (`#[invalidates(tags = ...)]`, `Cache::invalidate_tags`) voids it, also when that lands while the body runs. Their versions are read before the body (one more round trip); if that fails, the key is deleted instead of stored |
/// | `cache = self.cache` | as in `#[cache_aside]` |
/// | `crate = "cached_runtime"` | as in `#[cache_aside]` |
///
/// ```
/// use cached_runtime::{cache_aside, cache_put, Cache};
///
/// struct Repo { cache: Cache }
///
/// impl Repo {
///     #[cache_aside(key = "price:<sku>", ttl = 300, cache = self.cache)]
///     async fn price(&self, sku: &str) -> Option<u64> {
///         Some(1999) // SELECT
///     }
///
///     /// The new price is cached as soon as the UPDATE succeeds: `price` reads it.
///     #[cache_put(key = "price:<sku>", ttl = 300, cache = self.cache)]
///     async fn set_price(&self, sku: &str, cents: u64) -> Result<u64, std::io::Error> {
///         Ok(cents) // UPDATE ... RETURNING price
///     }
/// }
/// ```
///
/// Options that concern reading are a compile error:
///
/// ```compile_fail
/// #[cached_runtime::cache_put(key = "user:<id>", ttl = 60, stale = 30)] // `stale` belongs on the #[cache_aside]
/// async fn save(id: u64) -> Option<String> { None }
/// ```
#[proc_macro_attribute]
pub fn cache_put(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(attr::Kind::CachePut, args.into(), item.into()).into()
}
