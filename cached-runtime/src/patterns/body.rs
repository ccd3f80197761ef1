//! The body of an annotated function as the runtime receives it: a future borrowed from the
//! call (the default), or — for `stale`, `early_refresh` and `timeout` — a maker of an owned
//! future that can run in a task of its own, so that no caller waits for a refresh and a
//! load that outlives `timeout` still finishes and is stored.

use std::future::Future;

use tokio::task::JoinHandle;
use tracing::Instrument;

use super::{load, value};
use crate::{cache::Cache, coord::flight::Leader, policy::Policy};

/// A function body that [`cache_aside`](crate::__private::cache_aside) can run.
///
/// Any future is one (it runs in the caller). [`Detached`] is one that can also run in the
/// background.
#[doc(hidden)]
pub trait Body<R>: Sized {
    /// The load, run by the caller.
    type Load: Future<Output = R>;

    /// The body as a future for the caller to await.
    fn into_load(self) -> Self::Load;

    /// Runs `task` in a task of its own, if this body can outlive its caller; gives everything
    /// back if not.
    fn spawn(self, job: Job<R>, task: Task) -> Result<JoinHandle<Option<R>>, Unspawned<Self>> {
        drop(job);
        Err(Unspawned { body: self, task })
    }
}

impl<R, F: Future<Output = R>> Body<R> for F {
    type Load = F;

    fn into_load(self) -> F {
        self
    }
}

/// A body made only when it is needed: the closure runs on a miss, not on a hit (the
/// read-through API's loader). It runs in the caller.
pub(crate) struct Lazy<M>(pub(crate) M);

impl<R, M, F> Body<R> for Lazy<M>
where
    M: FnOnce() -> F,
    F: Future<Output = R>,
{
    type Load = F;

    fn into_load(self) -> F {
        (self.0)()
    }
}

/// A body that can run in the background: `make` clones what the body needs (`self` and the
/// arguments) into an owned future. The macros generate it for `stale`, `early_refresh` and
/// `timeout`.
#[doc(hidden)]
pub struct Detached<M>(pub M);

impl<R, M, F> Body<R> for Detached<M>
where
    R: Send + 'static,
    M: FnOnce() -> F,
    F: Future<Output = R> + Send + 'static,
{
    type Load = F;

    fn into_load(self) -> F {
        (self.0)()
    }

    fn spawn(self, job: Job<R>, task: Task) -> Result<JoinHandle<Option<R>>, Unspawned<Self>> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(Unspawned { body: self, task });
        };
        let load = (self.0)();
        Ok(runtime.spawn(background(job, task, load).in_current_span()))
    }
}

/// What a background task needs of its call, owned.
#[doc(hidden)]
pub struct Job<R> {
    pub(crate) cache: Cache,
    pub(crate) key: String,
    pub(crate) tags: Vec<String>,
    pub(crate) site: Policy,
    pub(crate) ops: value::Ops<R>,
}

impl<R> load::Call<'_, R> {
    /// The call's context, owned, for a background task.
    pub(crate) fn job(&self) -> Job<R> {
        Job {
            cache: self.cache.clone(),
            key: self.key.to_owned(),
            tags: self.tags.to_vec(),
            site: *self.site,
            ops: *self.ops,
        }
    }
}

/// What a background task does.
#[doc(hidden)]
#[derive(Debug)]
pub enum Task {
    /// Refresh a value callers are being served meanwhile, leading this process's flight of
    /// the key.
    Refresh(Leader),
    /// A load whose caller may stop waiting (`timeout`); its result is still stored.
    Load,
}

/// A body that could not be spawned (no Tokio runtime, or not [`Detached`]), given back.
#[doc(hidden)]
pub struct Unspawned<B> {
    pub(crate) body: B,
    pub(crate) task: Task,
}

impl<B> std::fmt::Debug for Unspawned<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unspawned")
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

impl<M> std::fmt::Debug for Detached<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Detached")
    }
}

impl<R> std::fmt::Debug for Job<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("key", &self.key)
            .field("site", &self.site.name())
            .finish_non_exhaustive()
    }
}

async fn background<R, F: Future<Output = R>>(job: Job<R>, task: Task, load: F) -> Option<R> {
    let counters = job.cache.counters(&job.site);
    let call = load::Call {
        cache: &job.cache,
        site: &job.site,
        key: &job.key,
        tags: &job.tags,
        ops: &job.ops,
        counters,
    };
    match task {
        Task::Refresh(leader) => {
            load::refresh_under_lease(call, leader, load).await;
            None
        }
        Task::Load => Some(load::load(call, load).await),
    }
}

/// What a [`Detached`] body may hold: it runs in a task that outlives its call.
#[diagnostic::on_unimplemented(
    message = "`{Self}` must be `Clone + Send + Sync + 'static`: with `stale`, `early_refresh` or `timeout`, the body runs in a background task that owns clones of `self` and of the arguments",
    label = "cloned into the background task",
    note = "derive `Clone` (shared state behind an `Arc`), or take an owned type; without these options the body runs in the caller and needs none of this"
)]
#[doc(hidden)]
pub trait Owned: Clone + Send + Sync + 'static {}

impl<T: Clone + Send + Sync + 'static> Owned for T {}

/// A clone of `value` for a [`Detached`] body.
#[doc(hidden)]
pub fn owned<T: Owned>(value: &T) -> T {
    value.clone()
}
