//! The miss path of cache-aside: one load per key in this process (a single flight), under the
//! key's lease in Redis across processes, and the write of its result.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::future::Either;

use super::{
    tagged,
    value::{Encoded, Hit, Ops, unix_ms},
};
use crate::{
    cache::Cache,
    coord::flight::{Fill, Leader, Role, Waiting},
    error::Error,
    policy::Policy,
    stats::{Counters, bump},
    wire::codec,
};

/// One call of an annotated function: what every step of a load needs.
pub(crate) struct Call<'a, R> {
    pub(crate) cache: &'a Cache,
    pub(crate) site: &'a Policy,
    pub(crate) key: &'a str,
    /// The tags the call's entry carries (full names; empty for an untagged function).
    pub(crate) tags: &'a [String],
    pub(crate) ops: &'a Ops<R>,
    pub(crate) counters: &'a Counters,
}

impl<R> Clone for Call<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Call<'_, R> {}

/// A miss: with the site's lock, [`load_locked`]; without, [`load_unlocked`].
///
/// Not an `async fn`: its future is the chosen one itself, without a second copy of the call
/// and the body around it.
pub(crate) fn load<'a, R, F: Future<Output = R> + 'a>(
    call: Call<'a, R>,
    body: F,
) -> impl Future<Output = R> + 'a {
    if call.site.lock {
        Either::Left(load_locked(call, body))
    } else {
        Either::Right(load_unlocked(call, body))
    }
}

/// A refresh: under the key's lease (or not at all: someone else is loading it), run the body
/// and store its result. Its caller is served the current value either way.
pub(crate) async fn refresh_under_lease<R, F: Future<Output = R>>(
    call: Call<'_, R>,
    leader: Leader,
    body: F,
) {
    let Call {
        cache,
        site,
        key,
        counters,
        ..
    } = call;
    let lease = match cache.lease(key).await {
        Ok(leased) => {
            if leased.repaired {
                repaired_lease(call);
            }
            match leased.token {
                Some(token) => Lease::new(cache, key, token),
                None => return,
            }
        }
        Err(_) => return,
    };
    bump(&counters.refreshes);
    tracing::debug!(function = site.name(), key, outcome = "refresh");
    let (result, encoded) = run(call, body).await;
    let stored = to_store(&leader, call.ops, encoded, &result);
    drop(result);
    if stored.is_none() {
        tracing::warn!(
            function = site.name(),
            key,
            "refresh failed; the cached value stays"
        );
    }
    store_or_release(call, leader, lease, stored).await;
}

/// Ends a flight with its result.
fn finish<R>(leader: Leader, ops: &Ops<R>, bytes: Arc<[u8]>, value: &R) {
    let fill = fill(&leader, ops, bytes, value);
    leader.finish(Some(fill));
}

/// What a flight's waiters get: the entry, and the value itself when they can clone it (and
/// there are any).
fn fill<R>(leader: &Leader, ops: &Ops<R>, bytes: Arc<[u8]>, value: &R) -> Fill {
    let value = match ops.share {
        Some(share) if leader.has_waiters() => Some((share.wrap)(value)),
        _ => None,
    };
    Fill { bytes, value }
}

/// What a lease holder stores, and what its flight's waiters get: `None` when its result is
/// not to be cached (an `Err`, or it does not encode).
type Stored = Option<((Arc<[u8]>, Duration), Fill)>;

fn to_store<R>(
    leader: &Leader,
    ops: &Ops<R>,
    encoded: Option<(Arc<[u8]>, Duration)>,
    value: &R,
) -> Stored {
    encoded.map(|encoded| {
        let fill = fill(leader, ops, encoded.0.clone(), value);
        (encoded, fill)
    })
}

/// Ends a lease holder's load: stores its result under the lease and ends its flight, or, with
/// nothing to store, gives the lease up (so that one waiter loads next) and ends the flight
/// empty. The write is sent before this process's waiters are woken (its first poll queues
/// the command): waiters in other processes, woken by the write's event, then start as early
/// as the local ones.
async fn store_or_release<R>(call: Call<'_, R>, leader: Leader, lease: Lease, stored: Stored) {
    match stored {
        Some((encoded, fill)) => {
            let write = write(call, encoded, Some(&lease.token));
            tokio::pin!(write);
            let done = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(write.as_mut().poll(cx).is_ready())
            })
            .await;
            leader.finish(Some(fill));
            if !done {
                write.await;
            }
        }
        None => {
            drop(leader);
            release(call, &lease.token).await;
        }
    }
    lease.settle();
}

/// A leader's result as a waiter's own: a clone of the shared value, else decoded.
fn take_fill<R>(cache: &Cache, fill: &Fill, ops: &Ops<R>, counters: &Counters) -> Option<R> {
    if let (Some(value), Some(share)) = (&fill.value, ops.share)
        && let Some(value) = (share.unwrap)(&**value)
    {
        return Some(value);
    }
    decode_shared(cache, &fill.bytes, ops, counters)
}

/// Values at least this large are decoded off the async worker (see [`decode_raw`]).
const BLOCKING_DECODE: usize = 256 * 1024;

/// Decodes an entry with the cache's codec and size limit. A large value is decoded inside
/// `block_in_place` on a multi-thread runtime: the worker's other tasks move to another
/// thread meanwhile instead of waiting for the decode (a 5 MB value takes tens of ms).
pub(crate) fn decode_raw<R>(cache: &Cache, ops: &Ops<R>, raw: &[u8]) -> Result<Hit<R>, Error> {
    let (codec, max) = (cache.codec(), cache.max_value_size());
    if raw.len() >= BLOCKING_DECODE && on_multi_thread_runtime() {
        tokio::task::block_in_place(|| (ops.decode)(codec, raw, max))
    } else {
        (ops.decode)(codec, raw, max)
    }
}

/// Whether this thread runs a multi-thread Tokio runtime's tasks (where `block_in_place` is
/// allowed).
fn on_multi_thread_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// A lease key held foreign data and our lease replaced it: counted and logged.
fn repaired_lease<R>(call: Call<'_, R>) {
    bump(&call.counters.repairs);
    tracing::warn!(
        function = call.site.name(),
        key = call.key,
        "the lease key held data that is not ours; replaced by our lease"
    );
}

/// A result shared by another caller's load: decoded, not counted as a hit.
fn decode_shared<R>(cache: &Cache, raw: &[u8], ops: &Ops<R>, counters: &Counters) -> Option<R> {
    match decode_raw(cache, ops, raw) {
        Ok(hit) => Some(hit.into_parts().0),
        Err(_) => {
            bump(&counters.decode_errors);
            None
        }
    }
}

/// Runs the body and encodes its result: `None` for a result that is not to be cached (an
/// `Err`), does not encode (counted and logged), or whose tags' versions could not be read
/// before the body ran (then nothing is stored: a value without them could outlive an
/// invalidation).
async fn run<R, F: Future<Output = R>>(
    call: Call<'_, R>,
    body: F,
) -> (R, Option<(Arc<[u8]>, Duration)>) {
    let Call {
        cache,
        site,
        key,
        tags,
        ops,
        counters,
    } = call;
    let versions = if tags.is_empty() {
        Some(Vec::new())
    } else {
        // Boxed: the tag round trips' future is large, and untagged loads would carry its room.
        match Box::pin(tagged::stamps(call)).await {
            Ok(versions) => Some(versions),
            Err(error) => {
                bump(&counters.errors);
                tracing::warn!(function = site.name(), key, %error, "tag versions not read; the result is not cached");
                None
            }
        }
    };
    let started = Instant::now();
    let result = body.await;
    let Some(versions) = versions else {
        return (result, None);
    };
    let stamps = tagged::pair(tags, &versions);
    let encoded = match (ops.encode)(
        cache.codec(),
        &result,
        started.elapsed(),
        cache.ttls(site),
        &stamps,
    ) {
        Some(Encoded {
            bytes: Ok(bytes),
            ttl,
        }) => Some((bytes.into(), ttl)),
        Some(Encoded {
            bytes: Err(error), ..
        }) => {
            bump(&counters.errors);
            tracing::warn!(function = site.name(), key, %error, "value does not encode; not cached");
            None
        }
        None => None,
    };
    (result, encoded)
}

/// Stores an encoded result: under the lease `token` if given (rejected if the lease was
/// lost), else with a plain `SET`. Counts the outcome.
async fn write<R>(call: Call<'_, R>, (bytes, ttl): (Arc<[u8]>, Duration), token: Option<&str>) {
    let Call {
        cache,
        site,
        key,
        counters,
        ..
    } = call;
    if bytes.len() > cache.max_value_size() {
        bump(&counters.oversized);
        if !site
            .site
            .oversize_logged
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                function = site.name(),
                key,
                bytes = bytes.len(),
                max_value_size = cache.max_value_size(),
                "result larger than max_value_size; not cached (logged once per function)"
            );
        }
        if let Some(token) = token {
            release(call, token).await;
        }
        return;
    }
    let stored = match token {
        Some(token) => cache.put_leased(key, token, bytes, ttl).await,
        None => cache.set_raw(key, bytes, ttl).await.map(|()| true),
    };
    match stored {
        Ok(true) => bump(&counters.writes),
        Ok(false) => {
            bump(&counters.lease_rejected);
            tracing::debug!(
                function = site.name(),
                key,
                "lease lost during the load (invalidated or expired); result not stored"
            );
        }
        Err(error) => {
            bump(&counters.errors);
            tracing::warn!(function = site.name(), key, %error, "cache write failed");
            // Whether the write landed is unknown: give the lease up (a no-op if it did), so
            // that the next caller does not wait for it until `lock_ttl`.
            if let Some(token) = token {
                release(call, token).await;
            }
        }
    }
}

/// Gives up a lease after a load whose result is not stored, so that one waiter loads next.
async fn release<R>(call: Call<'_, R>, token: &str) {
    let Call {
        cache,
        site,
        key,
        counters,
        ..
    } = call;
    if let Err(error) = cache.release(key, token).await {
        bump(&counters.errors);
        tracing::debug!(function = site.name(), key, %error, "lease release failed; it expires by itself");
    }
}

/// A lease held by this call. Dropped without [`settle`](Lease::settle) — the call was
/// cancelled, e.g. by its caller or by `timeout` — it is released in the background, so that
/// others need not wait out `lock_ttl`. (A process that dies releases nothing: the lease
/// expires.)
struct Lease {
    cache: Cache,
    key: String,
    token: String,
    settled: bool,
}

impl Lease {
    fn new(cache: &Cache, key: &str, token: String) -> Self {
        Lease {
            cache: cache.clone(),
            key: key.to_owned(),
            token,
            settled: false,
        }
    }

    /// The load ended: its write or release consumed the lease.
    fn settle(mut self) {
        self.settled = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (cache, key, token) = (
                self.cache.clone(),
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.token),
            );
            runtime.spawn(async move {
                let _ = cache.release(&key, &token).await;
            });
        }
    }
}

/// `lock = false`: run the body and store its result with a plain `SET`.
pub(crate) async fn load_unlocked<R, F: Future<Output = R>>(call: Call<'_, R>, body: F) -> R {
    let (result, encoded) = run(call, body).await;
    if let Some(encoded) = encoded {
        // Boxed: a Redis write's future is large, and [`load`] (whose future every call of
        // `cache_aside` holds) would otherwise be as large as it.
        Box::pin(write(call, encoded, None)).await;
    }
    result
}

/// A miss with stampede protection.
///
/// - In this process, concurrent misses of one key form a single flight: the first caller
///   leads, the others wait for its encoded result.
/// - Across processes, the leader takes a lease in Redis (`SET {key}:lock <token> NX PX`).
///   Without it, the leader waits — woken through pub/sub when the value lands or the lease is
///   released, or after `lock_ttl` — then reads the value, or takes the lease in turn.
/// - The lease guards the write: the result is stored only if the lease is still ours,
///   atomically. `#[invalidates]` deletes the lease with the value, so a load that began before
///   a write can never store its stale result after the write's invalidation.
async fn load_locked<R, F: Future<Output = R>>(call: Call<'_, R>, body: F) -> R {
    let Call {
        cache,
        site,
        key,
        ops,
        counters,
        ..
    } = call;
    let mut waited = false;
    loop {
        match cache.flights().join(key) {
            // Boxed: the lease, the load and the write are most of this future's state, and
            // only the leader needs them; a waiter's future (one per concurrent caller) stays
            // small.
            Role::Leader(leader) => return Box::pin(lead(call, leader, body, waited)).await,
            Role::Waiter(flight) => {
                if !std::mem::replace(&mut waited, true) {
                    bump(&counters.lock_waits);
                }
                match tokio::time::timeout(cache.lock_ttl() * 2, flight.wait()).await {
                    Ok(Some(fill)) => {
                        if let Some(value) = take_fill(cache, &fill, ops, counters) {
                            return value;
                        }
                    }
                    // The leader's load failed or was cancelled: go round, so one waiter
                    // becomes the next leader and the rest keep waiting.
                    Ok(None) => continue,
                    Err(_) => {}
                }
                tracing::debug!(
                    function = site.name(),
                    key,
                    "waited too long for a local load; loading"
                );
                return body.await;
            }
        }
    }
}

/// How long a caller waits on another process's lease before asking Redis again whether it
/// still exists: a lease lost to `FLUSHALL`, a restart with an empty dataset or an eviction
/// announces nothing, and the caller must not sit out `lock_ttl` for it. One check per waited
/// key and `Cache` (only the flight leader waits on the lease).
const LEASE_CHECK: Duration = Duration::from_millis(500);

/// The flight leader's part of [`load_locked`]: the lease (or waiting for another process's
/// load), the load, the write. `waited`: the caller was counted in `lock_waits` already.
async fn lead<R, F: Future<Output = R>>(
    call: Call<'_, R>,
    leader: Leader,
    body: F,
    mut waited: bool,
) -> R {
    let Call {
        cache,
        site,
        key,
        ops,
        counters,
        ..
    } = call;
    // Take the distributed lease, or wait for whoever holds it.
    let deadline = tokio::time::Instant::now() + cache.lock_ttl();
    let token = loop {
        // Registered before the attempt: a fill or release that follows a failed attempt
        // wakes us.
        let registration = cache.waiters().register(key);
        let notified = registration.waiting.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match cache.lease(key).await {
            Ok(leased) => {
                if leased.repaired {
                    repaired_lease(call);
                }
                if let Some(token) = leased.token {
                    break Some(Lease::new(cache, key, token));
                }
            }
            Err(error) => {
                bump(&counters.errors);
                tracing::debug!(function = site.name(), key, %error, "no lease (redis failing); loading without storing");
                break None;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::debug!(
                function = site.name(),
                key,
                "lease holder too slow; loading without storing"
            );
            break None;
        }
        if !std::mem::replace(&mut waited, true) {
            bump(&counters.lock_waits);
        }
        let check = deadline.min(tokio::time::Instant::now() + LEASE_CHECK);
        match wait_for_fill(cache, key, check, counters, &registration.waiting, notified).await {
            Some(raw) => {
                // It carries a tag whose invalidation is queued here: not served, and this
                // load's result not stored (as for the read that found it).
                if cache.holds_entry(&raw) {
                    break None;
                }
                // Another process's load may have begun before a tag invalidation.
                if !call.tags.is_empty() || codec::is_tagged(&raw) {
                    match tagged::valid(cache, &raw, call.tags, None).await {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(_) => break None,
                    }
                }
                if let Some(value) = decode_shared(cache, &raw, ops, counters) {
                    finish(leader, ops, raw, &value);
                    return value;
                }
            }
            None => continue,
        }
    };

    let (result, encoded) = run(call, body).await;
    match (encoded, token) {
        (encoded, Some(lease)) => {
            let stored = to_store(&leader, ops, encoded, &result);
            store_or_release(call, leader, lease, stored).await;
        }
        // Redis failing or the holder too slow: share the result here, store nothing.
        (Some((bytes, _)), None) => finish(leader, ops, bytes, &result),
        (None, None) => drop(leader),
    }
    result
}

/// Waits until another process fills `key` (returns its bytes: from the fill event if it
/// carried them, else read), releases its lease or invalidates the key (`None`: try the lease
/// again), or `deadline` passes (then the key is read once more: its bytes if it was filled
/// meanwhile, else `None`: check the lease again). A key that holds foreign data
/// (`WRONGTYPE`) reads as empty: the holder's write replaces it.
async fn wait_for_fill(
    cache: &Cache,
    key: &str,
    deadline: tokio::time::Instant,
    counters: &Counters,
    waiting: &Waiting,
    notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
) -> Option<Arc<[u8]>> {
    // Only a fresh value counts as filled: an expired one kept for `stale`/`fail_safe` is
    // what the load is replacing.
    match cache.get_raw(key).await {
        Ok(Some(raw)) if codec::is_fresh(&raw, unix_ms()) => return Some(raw.to_shared()),
        Ok(_) => {}
        Err(error) if error.is_unhealthy() => return None,
        Err(_) => {}
    }
    if tokio::time::timeout_at(deadline, notified).await.is_ok() {
        bump(&counters.wakeups);
        if let Some(bytes) = waiting.filled()
            && codec::is_fresh(&bytes, unix_ms())
        {
            return Some(bytes);
        }
    }
    // Woken, or at the lease check: the value may have landed without its event reaching us
    // (a subscription to a node that hangs says nothing). Taking the lease again before
    // reading would run the body for a value that is already there.
    if let Ok(Some(raw)) = cache.get_raw(key).await
        && codec::is_fresh(&raw, unix_ms())
    {
        return Some(raw.to_shared());
    }
    None
}

#[cfg(test)]
mod tests;
