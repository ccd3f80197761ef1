//! The process-wide default cache, for annotations without `cache = ...`.

use std::sync::OnceLock;

use crate::{
    cache::Cache,
    error::{Error, ErrorKind},
};

static GLOBAL: OnceLock<Cache> = OnceLock::new();

/// Installs the process-wide default cache, used by annotations without `cache = ...`.
/// Call it once at start-up; a second call returns an error and changes nothing.
///
/// Until it is called, annotated functions without `cache = ...` run uncached (a warning is
/// logged once).
pub fn set_global(cache: Cache) -> Result<(), Error> {
    GLOBAL.set(cache).map_err(|_| {
        Error::new(
            ErrorKind::GlobalAlreadySet,
            "the global cache is already set; set_global may be called once per process",
        )
    })
}

/// The process-wide default cache, if [`set_global`] was called.
pub fn global() -> Option<&'static Cache> {
    GLOBAL.get()
}
