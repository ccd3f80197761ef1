//! The contenders, behind one [`Client`] type so every scenario drives them the same way:
//!
//! - [`Hand`]: the hand-written cache-aside of the guides on one redis-rs multiplexed
//!   connection (`GET` + bincode decode on a hit, `SET EX` on a miss), optionally with the
//!   guides' lock (`SET lock NX PX` + sleep-and-retry) and a tokio timeout on each command;
//!   the same code on a redis-rs `ClusterConnection` for the cluster scenarios;
//! - [`Ours`]: `#[cache_aside]` on a [`Cache`] (Redis or memory backend), default options
//!   (and, for the sliding scenario, `sliding = true`);
//! - the `cached` crate's `#[concurrent_cached]` on its `AsyncRedisCache` store;
//! - [`Client::Direct`]: the body alone, no cache.
//! - [`Client::Floor`]: the stampede's floor, an ideal in-process single flight.

use std::{
    future::Future,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use cached::macros::concurrent_cached;
use cached_runtime::{Cache, cache_aside};
use redis::{
    AsyncCommands,
    aio::{ConnectionLike, MultiplexedConnection},
    cluster_async::ClusterConnection,
};

use crate::value::{Value, make_value};

/// TTL of every entry, all contenders.
pub(crate) const TTL_SECS: u64 = 600;
/// How long a stampede body takes.
pub(crate) const BODY_TIME: Duration = Duration::from_millis(100);
/// The hand-written lock: lease length and sleep between retries (the guides' loop).
pub(crate) const HAND_LOCK_TTL: Duration = Duration::from_secs(5);
pub(crate) const HAND_LOCK_RETRY: Duration = Duration::from_millis(50);

/// How many times a slow body ran (stampede scenario), and the longest it took (ns).
pub(crate) static BODY_RUNS: AtomicU64 = AtomicU64::new(0);
pub(crate) static BODY_NS: AtomicU64 = AtomicU64::new(0);
/// Start and end of the body execution that started first.
pub(crate) static FIRST_BODY: Mutex<Option<(Instant, Instant)>> = Mutex::new(None);

/// The gate of [`gated_body`] (`--profile wake-*`): a permit lets one body finish.
pub(crate) static GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);

/// A body that waits for a permit of [`GATE`], then builds the value.
pub(crate) async fn gated_body(size: u32, id: u64) -> Value {
    GATE.acquire()
        .await
        .expect("the gate is never closed")
        .forget();
    make_value(size, id)
}

/// An error a contender returned to its caller (only `cached` does: a Redis failure becomes
/// the function's `Err`).
#[derive(Debug, Clone)]
pub(crate) struct BenchError(#[allow(dead_code)] pub(crate) String);

/// The trivial body: builds the value.
pub(crate) async fn fast_body(size: u32, id: u64) -> Value {
    make_value(size, id)
}

/// The stampede body: counted, takes [`BODY_TIME`].
pub(crate) async fn slow_body(size: u32, id: u64) -> Value {
    let started = Instant::now();
    BODY_RUNS.fetch_add(1, Relaxed);
    tokio::time::sleep(BODY_TIME).await;
    let value = make_value(size, id);
    let ended = Instant::now();
    BODY_NS.fetch_max((ended - started).as_nanos() as u64, Relaxed);
    let mut first = FIRST_BODY.lock().unwrap_or_else(|e| e.into_inner());
    if first.is_none_or(|(s, _)| started < s) {
        *first = Some((started, ended));
    }
    value
}

fn encode(value: &Value) -> Option<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).ok()
}

fn decode(bytes: &[u8]) -> Option<Value> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .ok()
        .map(|(v, _)| v)
}

// ---------------------------------------------------------------------------------------------
// 1. Hand-written.

/// The guides' cache-aside, written by hand on one multiplexed connection (or, for the
/// cluster scenarios, on one redis-rs `ClusterConnection`: the same code, another `C`).
pub(crate) struct Hand<C = MultiplexedConnection> {
    conn: C,
    prefix: &'static str,
    /// A tokio timeout around each command (the paused scenario); `None`: redis-rs's own.
    timeout: Option<Duration>,
    /// The guides' lock: `SET {key}:lock <token> NX PX 5000`, else sleep 50 ms and retry.
    lock: bool,
    pub(crate) hits: AtomicU64,
}

/// How the hand-written cluster contender's redis-rs client is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClusterSetup {
    /// `ClusterClient::new(seeds).get_async_connection()`: redis-rs' defaults (no response
    /// timeout).
    Plain,
    /// As cached-runtime sets up its cluster client with the default options: a connection
    /// timeout of 1 s and a response timeout of 2298 ms (`op_timeout` 250 ms plus 1 ms per 8
    /// KiB of the 16 MiB `max_value_size`) on each node's connection and no overall timeout on
    /// the request, on a connection that connects in the background.
    LikeTheRuntime,
}

impl Hand<ClusterConnection> {
    /// A hand-written contender on the cluster with these seed nodes (no lock, no timeout of
    /// its own).
    pub(crate) async fn connect_cluster(
        seeds: &[String],
        prefix: &'static str,
        setup: ClusterSetup,
    ) -> redis::RedisResult<Hand<ClusterConnection>> {
        let conn = match setup {
            ClusterSetup::Plain => {
                redis::cluster::ClusterClient::new(seeds.to_vec())?
                    .get_async_connection()
                    .await?
            }
            ClusterSetup::LikeTheRuntime => {
                let (connect, response) = (Duration::from_secs(1), Duration::from_millis(2298));
                let conn = redis::cluster::ClusterClientBuilder::new(seeds.to_vec())
                    .connection_timeout(connect)
                    .response_timeout(response)
                    .overall_response_timeout(None)
                    .build()?
                    .get_pending_async_connection_with_config(
                        redis::cluster::ClusterConfig::new()
                            .set_connection_timeout(connect)
                            .set_response_timeout(response),
                    );
                // Connected before the first measured call.
                let _: String = redis::cmd("PING").query_async(&mut conn.clone()).await?;
                conn
            }
        };
        Ok(Hand {
            conn,
            prefix,
            timeout: None,
            lock: false,
            hits: AtomicU64::new(0),
        })
    }
}

impl Hand {
    pub(crate) async fn connect(
        url: &str,
        prefix: &'static str,
        timeout: Option<Duration>,
        lock: bool,
    ) -> redis::RedisResult<Hand> {
        let conn = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        Ok(Hand {
            conn,
            prefix,
            timeout,
            lock,
            hits: AtomicU64::new(0),
        })
    }
}

impl<C: ConnectionLike + Clone + Send + Sync> Hand<C> {
    async fn op<T>(&self, fut: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        match self.timeout {
            Some(t) => tokio::time::timeout(t, fut).await.ok()?.ok(),
            None => fut.await.ok(),
        }
    }

    /// Read; on a hit decode and return; on a miss run `body` and `SET EX` its result. A
    /// failed read runs the body and skips the write.
    pub(crate) async fn get<F, Fut>(&self, space: &str, size: u32, id: u64, body: F) -> Value
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Value>,
    {
        let key = format!("{}:{space}:{size}:{id}", self.prefix);
        let mut conn = self.conn.clone();
        let deadline = tokio::time::Instant::now() + HAND_LOCK_TTL * 2;
        loop {
            match self.op(conn.get::<_, Option<Vec<u8>>>(&key)).await {
                Some(Some(bytes)) => {
                    if let Some(value) = decode(&bytes) {
                        self.hits.fetch_add(1, Relaxed);
                        return value;
                    }
                }
                Some(None) => {}
                None => return body().await,
            }
            if !self.lock {
                break;
            }
            let lock_key = format!("{key}:lock");
            let token = format!("{:x}", id ^ (std::process::id() as u64) << 32);
            let got: Option<Option<String>> = self
                .op(redis::cmd("SET")
                    .arg(&lock_key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(HAND_LOCK_TTL.as_millis() as u64)
                    .query_async(&mut conn))
                .await;
            match got {
                Some(Some(_)) => {
                    let value = body().await;
                    if let Some(bytes) = encode(&value) {
                        let _: Option<()> = self.op(conn.set_ex(&key, bytes, TTL_SECS)).await;
                    }
                    let _: Option<i64> = self.op(conn.del(&lock_key)).await;
                    return value;
                }
                Some(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(HAND_LOCK_RETRY).await;
                }
                // Redis failing, or waited too long: load without the lock.
                _ => break,
            }
        }
        let value = body().await;
        if let Some(bytes) = encode(&value) {
            let _: Option<()> = self.op(conn.set_ex(&key, bytes, TTL_SECS)).await;
        }
        value
    }
}

// ---------------------------------------------------------------------------------------------
// 2. and 4. Ours.

/// `#[cache_aside]` with default options (lock on), on whatever backend `cache` has.
pub(crate) struct Ours {
    pub(crate) cache: Cache,
}

impl Ours {
    #[cache_aside(key = "<space>:<size>:<id>", ttl = 600, cache = self.cache)]
    pub(crate) async fn get(&self, space: &'static str, size: u32, id: u64) -> Value {
        fast_body(size, id).await
    }

    #[cache_aside(key = "<space>:<size>:<id>", ttl = 600, cache = self.cache)]
    pub(crate) async fn get_slow(&self, space: &'static str, size: u32, id: u64) -> Value {
        slow_body(size, id).await
    }

    /// [`get`](Self::get) with sliding expiration: a hit is `GETEX key PX 600000`.
    #[cache_aside(key = "<space>:<size>:<id>", ttl = 600, sliding = true, cache = self.cache)]
    pub(crate) async fn get_sliding(&self, space: &'static str, size: u32, id: u64) -> Value {
        fast_body(size, id).await
    }

    /// [`get`](Self::get) without the attribute: `Cache::get_or_load` on the key the
    /// attribute renders, with the same TTL and body.
    pub(crate) async fn get_read_through(&self, space: &'static str, size: u32, id: u64) -> Value {
        let key = cached_runtime::Key::default()
            .part(space)
            .part(size)
            .part(id);
        let loaded = self
            .cache
            .get_or_load(&key, Duration::from_secs(600), || async {
                Ok::<_, std::convert::Infallible>(fast_body(size, id).await)
            })
            .await;
        match loaded {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    #[cache_aside(key = "gated:<size>:<id>", ttl = 600, cache = self.cache)]
    pub(crate) async fn get_gated(&self, size: u32, id: u64) -> Value {
        gated_body(size, id).await
    }
}

// ---------------------------------------------------------------------------------------------
// 3. `cached` 4.x: `#[concurrent_cached]` with an `AsyncRedisCache` (multiplexed connection).
//
// Each annotated function owns one store (a static, so one connection): a function per
// server/role, and four for the stampede's four "instances". The `create` block is the
// documented way to give the store its connection string without the environment variable;
// it builds the same `AsyncRedisCache` that `redis = true` builds.

/// Connection strings of the `cached` stores, set before their first call.
pub(crate) static MAIN_URL: OnceLock<String> = OnceLock::new();
pub(crate) static PROXY_URL: OnceLock<String> = OnceLock::new();
pub(crate) static FAULT_URL: OnceLock<String> = OnceLock::new();

fn url(cell: &OnceLock<String>) -> &str {
    cell.get()
        .map_or("redis://127.0.0.1:6379/0", String::as_str)
}

macro_rules! cached_fn {
    ($name:ident, $url:expr, $body:ident) => {
        #[concurrent_cached(
                                    ty = "cached::AsyncRedisCache<String, Value>",
                                    create = {
                                        cached::AsyncRedisCache::builder("cached-bench")
                                            .ttl(Duration::from_secs(TTL_SECS))
                                            .connection_string(url($url))
                                            .build()
                                            .await
                                            .expect("cached: cannot build its AsyncRedisCache")
                                    },
                                    convert = { format!("{space}:{size}:{id}") },
                                    map_error = |e| BenchError(format!("{e:?}"))
                                )]
        pub(crate) async fn $name(
            space: &'static str,
            size: u32,
            id: u64,
        ) -> Result<Value, BenchError> {
            let _ = space; // part of the key only
            Ok($body(size, id).await)
        }
    };
}

cached_fn!(cached_main, &MAIN_URL, fast_body);
cached_fn!(cached_proxy, &PROXY_URL, fast_body);
cached_fn!(cached_fault, &FAULT_URL, fast_body);
cached_fn!(cached_slow_0, &MAIN_URL, slow_body);
cached_fn!(cached_slow_1, &MAIN_URL, slow_body);
cached_fn!(cached_slow_2, &MAIN_URL, slow_body);
cached_fn!(cached_slow_3, &MAIN_URL, slow_body);

/// Which `cached` function (store) a client calls.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CachedFn {
    Main,
    Proxy,
    Fault,
    /// One of the four stampede instances (0..4).
    Slow(usize),
}

// ---------------------------------------------------------------------------------------------

/// A contender instance.
pub(crate) enum Client {
    Hand(Hand),
    /// The hand-written contender on a Redis Cluster.
    HandCluster(Hand<ClusterConnection>),
    Ours(Ours),
    /// Ours with `sliding = true` (the sliding scenario).
    OursSliding(Ours),
    /// Ours without an attribute: `Cache::get_or_load` (the read-through scenario).
    OursReadThrough(Ours),
    Cached(CachedFn),
    /// The body alone.
    Direct,
    /// The stampede's floor: an ideal single flight in this process and nothing else — one
    /// `tokio::sync::OnceCell` per key; the first caller runs the body, every other caller
    /// waits on the cell (woken when it is set) and clones the value. No cache, no Redis.
    Floor(Floor),
}

/// See [`Client::Floor`].
#[derive(Default)]
pub(crate) struct Floor {
    cells: Mutex<std::collections::HashMap<u64, Arc<tokio::sync::OnceCell<Value>>>>,
}

impl Floor {
    async fn get_slow(&self, size: u32, id: u64) -> Value {
        self.get_with(id, || slow_body(size, id)).await
    }

    pub(crate) async fn get_gated(&self, size: u32, id: u64) -> Value {
        self.get_with(id, || gated_body(size, id)).await
    }

    async fn get_with<F: Future<Output = Value>>(
        &self,
        id: u64,
        body: impl FnOnce() -> F,
    ) -> Value {
        let cell = self
            .cells
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_default()
            .clone();
        cell.get_or_init(body).await.clone()
    }
}

impl Client {
    /// One call of the trivial-body function.
    pub(crate) async fn get(
        &self,
        space: &'static str,
        size: u32,
        id: u64,
    ) -> Result<Value, BenchError> {
        match self {
            Client::Hand(h) => Ok(h.get(space, size, id, || fast_body(size, id)).await),
            Client::HandCluster(h) => Ok(h.get(space, size, id, || fast_body(size, id)).await),
            Client::Ours(o) => Ok(o.get(space, size, id).await),
            Client::OursSliding(o) => Ok(o.get_sliding(space, size, id).await),
            Client::OursReadThrough(o) => Ok(o.get_read_through(space, size, id).await),
            Client::Cached(CachedFn::Main) => cached_main(space, size, id).await,
            Client::Cached(CachedFn::Proxy) => cached_proxy(space, size, id).await,
            Client::Cached(CachedFn::Fault) => cached_fault(space, size, id).await,
            Client::Cached(CachedFn::Slow(_)) => unreachable!("slow stores serve get_slow"),
            Client::Direct | Client::Floor(_) => Ok(fast_body(size, id).await),
        }
    }

    /// One call of the slow-body (stampede) function.
    pub(crate) async fn get_slow(
        &self,
        space: &'static str,
        size: u32,
        id: u64,
    ) -> Result<Value, BenchError> {
        match self {
            Client::Hand(h) => Ok(h.get(space, size, id, || slow_body(size, id)).await),
            Client::HandCluster(h) => Ok(h.get(space, size, id, || slow_body(size, id)).await),
            Client::Ours(o) => Ok(o.get_slow(space, size, id).await),
            Client::OursSliding(_) => unreachable!("the sliding contender serves get"),
            Client::OursReadThrough(_) => unreachable!("the read-through contender serves get"),
            Client::Cached(CachedFn::Slow(i)) => match i % 4 {
                0 => cached_slow_0(space, size, id).await,
                1 => cached_slow_1(space, size, id).await,
                2 => cached_slow_2(space, size, id).await,
                _ => cached_slow_3(space, size, id).await,
            },
            Client::Cached(_) => unreachable!("only the slow stores serve get_slow"),
            Client::Direct => Ok(slow_body(size, id).await),
            Client::Floor(f) => Ok(f.get_slow(size, id).await),
        }
    }

    /// Calls answered from the cache so far, where the contender counts them.
    pub(crate) fn hits(&self) -> Option<u64> {
        match self {
            Client::Hand(h) => Some(h.hits.load(Relaxed)),
            Client::HandCluster(h) => Some(h.hits.load(Relaxed)),
            Client::Ours(o) | Client::OursSliding(o) | Client::OursReadThrough(o) => {
                Some(o.cache.stats().total.hits)
            }
            _ => None,
        }
    }

    pub(crate) fn cache(&self) -> Option<&Cache> {
        match self {
            Client::Ours(o) | Client::OursSliding(o) | Client::OursReadThrough(o) => Some(&o.cache),
            _ => None,
        }
    }
}
