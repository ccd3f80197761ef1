//! Which cache an annotation uses (`cache = ...`, or the process-wide one), and its keys.

use std::sync::atomic::AtomicBool;

use crate::{cache::Cache, global::global, policy::Policy, wire::key::KeyPart};

/// Anything an annotation's `cache = ...` may give: a [`Cache`], a reference to one, an
/// `Arc<Cache>`, or an `Option` of those (`None` runs uncached).
#[diagnostic::on_unimplemented(
    message = "`cache = ...` must give a `Cache`, `&Cache`, `Arc<Cache>` or an `Option` of them, not `{Self}`",
    label = "not a cache",
    note = "e.g. `cache = self.cache` for a field `cache: cached_runtime::Cache`"
)]
pub trait AsCache {
    /// The cache to use, if any.
    fn as_cache(&self) -> Option<&Cache>;
}

impl AsCache for Cache {
    fn as_cache(&self) -> Option<&Cache> {
        Some(self)
    }
}

impl<T: AsCache + ?Sized> AsCache for &T {
    fn as_cache(&self) -> Option<&Cache> {
        (**self).as_cache()
    }
}

impl<T: AsCache + ?Sized> AsCache for std::sync::Arc<T> {
    fn as_cache(&self) -> Option<&Cache> {
        (**self).as_cache()
    }
}

impl<T: AsCache> AsCache for Option<T> {
    fn as_cache(&self) -> Option<&Cache> {
        self.as_ref().and_then(AsCache::as_cache)
    }
}

/// What the macros bind the `cache = ...` expression to (a coercion at the user's expression,
/// so that something that is not a cache is reported there, once).
#[doc(hidden)]
pub type CacheRef<'a> = &'a (dyn AsCache + Sync);

/// The process-wide cache, for annotations without `cache = ...`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Global;

impl AsCache for Global {
    fn as_cache(&self) -> Option<&Cache> {
        global()
    }
}

pub(crate) fn uncached(site: &Policy) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            function = site.name(),
            "no cache: `cached_runtime::set_global` was not called and the annotation has no `cache = ...`; \
             annotated functions run uncached (this is logged once)"
        );
    }
}

/// Renders a key from the template's text pieces and the placeholders' values, or nothing
/// when there is no cache to use it with.
#[doc(hidden)]
pub fn key(cache: CacheRef<'_>, lits: &[&str], args: &[&dyn KeyPart]) -> Option<String> {
    cache.as_cache().map(|c| c.render_key(lits, args))
}

/// One key template of `#[invalidates]`: text pieces and values.
#[doc(hidden)]
pub type Template<'a> = (&'a [&'a str], &'a [&'a dyn KeyPart]);

/// Renders several keys (for `#[invalidates]`).
#[doc(hidden)]
pub fn keys(cache: CacheRef<'_>, templates: &[Template<'_>]) -> Vec<String> {
    match cache.as_cache() {
        Some(c) => templates
            .iter()
            .map(|(lits, args)| c.render_key(lits, args))
            .collect(),
        None => Vec::new(),
    }
}

/// Renders an annotation's tags (full names, as keys are rendered), or nothing when there is
/// no cache.
#[doc(hidden)]
pub fn tags(cache: CacheRef<'_>, templates: &[Template<'_>]) -> Vec<String> {
    keys(cache, templates)
}
