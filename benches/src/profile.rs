//! `--profile WHAT`: one contender's hot path in a loop, for `valgrind --tool=callgrind`
//! (instruction counts are stable where timings on this machine are not) or `perf`. Not part of
//! the report; BENCHMARKS.md ("Reproduce", "Findings") shows what each mode measures.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6390/0 valgrind --tool=callgrind \
//!     target/release/benches --profile ours-hit --calls 12000
//! ```
//!
//! `WHAT`, on a current-thread runtime: `hand-hit`, `ours-hit`, `ours-sliding-hit` (ours with
//! `sliding = true`: a hit is `GETEX`), `ours-read-through-hit` (`Cache::get_or_load`),
//! `cached-hit`, `memory-hit` (a cached 1 KiB value), `hand-miss`, `ours-miss`, `cached-miss`
//! (cold keys, trivial body), `hand-put`, `ours-put` (the write-through scenario's writes of a
//! 1 KiB value),
//! `ours-open` (ours with the circuit breaker open: a Redis that refuses connections), `direct`
//! (the body alone), `hand-cluster-hit`, `hand-cluster-rt-hit` (its redis-rs client set up as
//! the runtime's), `ours-cluster-hit` and their `-miss` variants (on a Redis Cluster the mode
//! starts, or at the comma-separated `REDIS_CLUSTER_URLS`) — per call: the whole program's instructions at two `--calls` counts,
//! subtracted (the loop's async function may be inlined into its caller, so a
//! `--toggle-collect` on it can come out empty); `first-polls` (every caller of a stampede
//! polled once, before its `GET` is answered), `wake-floor` / `wake-memory` (1000 waiters
//! after the body, polled by hand), `clone`, `decode`, `decode-limit` — these run inside
//! synchronous `measured_*` functions: `--toggle-collect='*measured_wake*'` and the like.
//!
//! On the bench's 2-worker runtime, timed: `ours-stampede`, `memory-stampede`,
//! `floor-stampede` (`--calls` stampedes; prints medians of p99 − body, the body's start and
//! the tail after it; `STAMPEDE_WINDOWS=1` adds per-instance tails and the windows after each
//! body as `CLOCK_MONOTONIC` instants for `perf report --time`; `STAMPEDE_WORKERS=1` runs one
//! worker).

use std::{
    hint::black_box,
    process::ExitCode,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use crate::{
    contenders::{CachedFn, Client, ClusterSetup, Floor, Hand, MAIN_URL, Ours},
    redis_util::LocalCluster,
    scenarios::{memory_cache, redis_cache},
    value::TARGET_SIZE,
};

pub(crate) fn main(what: &str, calls: usize) -> ExitCode {
    if let Some(kind) = match what {
        "ours-stampede" => Some(Stampede::Ours),
        "memory-stampede" => Some(Stampede::Memory),
        "floor-stampede" => Some(Stampede::Floor),
        _ => None,
    } {
        return stampedes(kind, calls);
    }
    if let Some(ours) = match what {
        "hand-put" => Some(false),
        "ours-put" => Some(true),
        _ => None,
    } {
        return puts(ours, calls);
    }
    if what == "first-polls" {
        return first_polls(calls);
    }
    if let Some(floor) = match what {
        "wake-memory" => Some(false),
        "wake-floor" => Some(true),
        _ => None,
    } {
        wake(floor, calls);
        return ExitCode::SUCCESS;
    }
    if what == "clone" {
        let value = crate::value::make_value(TARGET_SIZE, 1);
        for _ in 0..calls {
            black_box(black_box(&value).clone());
        }
        return ExitCode::SUCCESS;
    }
    if let Some(limit) = match what {
        "decode" => Some(false),
        "decode-limit" => Some(true),
        _ => None,
    } {
        decode_only(limit, calls);
        return ExitCode::SUCCESS;
    }
    let (who, miss) = match what.strip_suffix("-miss") {
        Some(who) => (format!("{who}-hit"), true),
        None => (what.to_owned(), false),
    };
    let uses_redis = matches!(
        who.as_str(),
        "hand-hit" | "ours-hit" | "ours-sliding-hit" | "ours-read-through-hit" | "cached-hit"
    );
    let on_cluster = who.contains("-cluster");
    // The cluster modes: a cluster of the bench's own, or the nodes in REDIS_CLUSTER_URLS.
    let (cluster, cluster_urls) = match std::env::var("REDIS_CLUSTER_URLS") {
        Ok(urls) if on_cluster && !urls.trim().is_empty() => {
            (None, urls.split(',').map(|u| u.trim().to_owned()).collect())
        }
        _ if on_cluster => match LocalCluster::start(crate::cluster::PRIMARIES) {
            Ok(cluster) => {
                let urls = cluster.urls();
                (Some(cluster), urls)
            }
            Err(e) => {
                eprintln!("cannot start a Redis Cluster: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => (None, Vec::new()),
    };
    let server = match std::env::var("REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let _ = MAIN_URL.set(url.trim().to_owned());
            None
        }
        _ if uses_redis => {
            let server = tests::RedisServer::spawn();
            let _ = MAIN_URL.set(server.url());
            Some(server)
        }
        _ => None,
    };
    let url = MAIN_URL.get().cloned().unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // Compute the value-size table now, not inside the measured calls.
    black_box(crate::value::make_value(TARGET_SIZE, 0));
    let code = runtime.block_on(async {
        let client = Arc::new(match who.as_str() {
            "hand-hit" => Client::Hand(
                Hand::connect(&url, "hand", None, false)
                    .await
                    .expect("connect"),
            ),
            "ours-hit" => Client::Ours(Ours {
                cache: redis_cache(&url, "ours", None).await,
            }),
            "ours-sliding-hit" => Client::OursSliding(Ours {
                cache: redis_cache(&url, "ours-slide", None).await,
            }),
            "ours-read-through-hit" => Client::OursReadThrough(Ours {
                cache: redis_cache(&url, "ours", None).await,
            }),
            "cached-hit" => Client::Cached(CachedFn::Main),
            "memory-hit" => Client::Ours(Ours {
                cache: memory_cache().await,
            }),
            "ours-open" => Client::Ours(Ours {
                cache: cached_runtime::Cache::builder()
                    .redis(tests::unreachable_url())
                    .op_timeout(Duration::from_millis(50))
                    .build()
                    .await
                    .expect("a valid configuration"),
            }),
            "direct" => Client::Direct,
            "hand-cluster-hit" | "hand-cluster-rt-hit" => Client::HandCluster(
                Hand::connect_cluster(
                    &cluster_urls,
                    "hand",
                    if who == "hand-cluster-hit" {
                        ClusterSetup::Plain
                    } else {
                        ClusterSetup::LikeTheRuntime
                    },
                )
                .await
                .expect("connect to the cluster"),
            ),
            "ours-cluster-hit" => Client::Ours(Ours {
                cache: crate::cluster::cluster_cache(&cluster_urls, "ours").await,
            }),
            other => {
                eprintln!(
                    "unknown --profile `{other}`: hand-hit, ours-hit, ours-sliding-hit, ours-read-through-hit, cached-hit, memory-hit, hand-miss, ours-miss, cached-miss, hand-put, ours-put, ours-open, direct, hand-cluster-hit, hand-cluster-rt-hit, ours-cluster-hit, hand-cluster-miss, ours-cluster-miss, first-polls, wake-floor, wake-memory, clone, decode, decode-limit, ours-stampede, memory-stampede, floor-stampede"
                );
                return ExitCode::from(2);
            }
        });
        // Prime (or, for ours-open, trip the breaker), then warm up.
        let space = if miss { "pmiss" } else { "hot" };
        let base = 1_000_000_000 + u64::from(std::process::id()) * 1_000_000;
        let id = |i: usize| if miss { base + i as u64 } else { 1 };
        for i in 0..1_000 {
            let _ = black_box(client.get(space, TARGET_SIZE, id(i)).await);
        }
        if let Some(cache) = client.cache() {
            eprintln!("{what}: before the measured calls: {:?}", cache.stats().total);
        }
        measured(&client, space, calls, &|i| id(1_000 + i)).await;
        if let Some(cache) = client.cache() {
            let stats = cache.stats();
            eprintln!(
                "{what}: after: {:?}; breaker open: {}, rejections: {}",
                stats.total, stats.breaker_open, stats.breaker_rejections
            );
        }
        ExitCode::SUCCESS
    });
    drop(server);
    drop(cluster);
    code
}

/// The measured calls.
#[inline(never)]
async fn measured(client: &Client, space: &'static str, calls: usize, id: &dyn Fn(usize) -> u64) {
    for i in 0..calls {
        let _ = black_box(client.get(space, TARGET_SIZE, id(i)).await);
    }
}

/// `hand-put` / `ours-put`: `calls` writes of a 1 KiB value over the write-through scenario's
/// 64 keys, by hand (`SET EX`) or through `#[cache_put]`, after 1000 unmeasured ones.
fn puts(ours: bool, calls: usize) -> ExitCode {
    let server = match std::env::var("REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let _ = MAIN_URL.set(url.trim().to_owned());
            None
        }
        _ => {
            let server = tests::RedisServer::spawn();
            let _ = MAIN_URL.set(server.url());
            Some(server)
        }
    };
    let url = MAIN_URL.get().cloned().unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    black_box(crate::value::make_value(TARGET_SIZE, 0));
    runtime.block_on(async {
        let client = crate::put::Client::for_profile(ours, &url).await;
        for i in 0..1_000 {
            black_box(
                client
                    .put(TARGET_SIZE, i % crate::scenarios::HOT_KEYS)
                    .await,
            );
        }
        measured_puts(&client, calls).await;
    });
    drop(server);
    ExitCode::SUCCESS
}

#[inline(never)]
async fn measured_puts(client: &crate::put::Client, calls: usize) {
    for i in 0..calls {
        black_box(
            client
                .put(TARGET_SIZE, i as u64 % crate::scenarios::HOT_KEYS)
                .await,
        );
    }
}

/// `decode` / `decode-limit`: bincode-decode the 1 KiB value `calls` times with the standard
/// configuration (the hand-written contender's), or with the decode limit cached-runtime's
/// `Bincode` codec sets for its default `max_value_size` (`with_limit::<0x1000_0000>()`, 256 MiB).
fn decode_only(limit: bool, calls: usize) {
    let bytes = bincode::serde::encode_to_vec(
        crate::value::make_value(TARGET_SIZE, 1),
        bincode::config::standard(),
    )
    .expect("encodes");
    measured_decode(&bytes, limit, calls);
}

#[inline(never)]
fn measured_decode(bytes: &[u8], limit: bool, calls: usize) {
    for _ in 0..calls {
        let value: crate::value::Value = if limit {
            let config = bincode::config::standard().with_limit::<0x1000_0000>();
            bincode::serde::decode_from_slice(black_box(bytes), config)
                .expect("decodes")
                .0
        } else {
            bincode::serde::decode_from_slice(black_box(bytes), bincode::config::standard())
                .expect("decodes")
                .0
        };
        black_box(value);
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Stampede {
    Ours,
    Memory,
    Floor,
}

/// `ours-stampede` / `memory-stampede` / `floor-stampede`: `calls` rounds of the stampede
/// scenario (1000 callers of one cold key across 4 instances, body 100 ms) on the bench's
/// 2-worker runtime, for `perf`; prints the median (min, max) over rounds of the caller p99 minus the longest body execution,
/// measured (the stampede target's figure).
fn stampedes(kind: Stampede, rounds: usize) -> ExitCode {
    let server = (kind == Stampede::Ours).then(|| {
        let server = tests::RedisServer::spawn();
        let _ = MAIN_URL.set(server.url());
        server
    });
    // STAMPEDE_WORKERS=1 separates work from parallelism (the bench's runtime has 2).
    let workers = std::env::var("STAMPEDE_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let url = MAIN_URL.get().cloned().unwrap_or_default();
        let mut instances = Vec::new();
        for _ in 0..4 {
            instances.push(Arc::new(match kind {
                Stampede::Ours => Client::Ours(Ours {
                    cache: redis_cache(&url, "pst", None).await,
                }),
                Stampede::Memory => Client::Ours(Ours {
                    cache: memory_cache().await,
                }),
                Stampede::Floor => Client::Floor(Floor::default()),
            }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut figures: [Vec<f64>; 3] = Default::default();
        for round in 0..rounds {
            let id = 5_000_000 + round as u64;
            crate::contenders::BODY_NS.store(0, Relaxed);
            *crate::contenders::FIRST_BODY
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = None;
            let barrier = Arc::new(tokio::sync::Barrier::new(1000));
            let tasks: Vec<_> = (0..1000)
                .map(|i| {
                    let client = instances[i % 4].clone();
                    let barrier = barrier.clone();
                    tokio::spawn(async move {
                        barrier.wait().await;
                        let started = Instant::now();
                        let value = black_box(client.get_slow("pst", TARGET_SIZE, id).await);
                        let ended = Instant::now();
                        drop(value);
                        (started, ended)
                    })
                })
                .collect();
            let mut spans = Vec::new();
            for t in tasks {
                spans.push(t.await.expect("caller"));
            }
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let mut lat: Vec<Duration> = spans.iter().map(|(s, e)| *e - *s).collect();
            lat.sort();
            let body = Duration::from_nanos(crate::contenders::BODY_NS.load(Relaxed));
            let (body_start, body_end) = crate::contenders::FIRST_BODY
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .expect("a body ran");
            let first = spans.iter().map(|(s, _)| *s).min().expect("callers");
            let mut after: Vec<Duration> = spans
                .iter()
                .map(|(_, e)| e.saturating_duration_since(body_end))
                .collect();
            after.sort();
            if std::env::var_os("STAMPEDE_WINDOWS").is_some() {
                // For `perf record -k CLOCK_MONOTONIC` + `perf report --time`: the window from
                // the first body's end to the last caller's (Instant is CLOCK_MONOTONIC here).
                let last = spans.iter().map(|(_, e)| *e).max().expect("callers");
                eprintln!("window {body_end:?} {last:?}");
                let mut groups = String::new();
                for g in 0..4 {
                    let mut ends: Vec<f64> = spans
                        .iter()
                        .skip(g)
                        .step_by(4)
                        .map(|(_, e)| {
                            if *e >= body_end {
                                ms(*e - body_end)
                            } else {
                                -ms(body_end - *e)
                            }
                        })
                        .collect();
                    ends.sort_by(f64::total_cmp);
                    groups += &format!(
                        " [{:.2} {:.2} {:.2} {:.2}]",
                        ends[0],
                        ends[ends.len() / 2],
                        ends[ends.len() * 99 / 100],
                        ends[ends.len() - 1]
                    );
                }
                eprintln!("groups (end − body end: min p50 p99 max){groups}");
            }
            figures[0].push(ms(lat[lat.len() * 99 / 100]) - ms(body));
            figures[1].push(ms(body_start.saturating_duration_since(first)));
            figures[2].push(ms(after[after.len() * 99 / 100]));
        }
        let mut line = format!("{kind:?} stampede, {rounds} rounds, median (min–max) in ms:");
        for (name, values) in [
            "caller p99 − body",
            "body starts after",
            "p99 of end − body end",
        ]
        .iter()
        .zip(&mut figures)
        {
            values.sort_by(f64::total_cmp);
            line += &format!(
                " {name} {:.2} ({:.2}–{:.2});",
                values[values.len() / 2],
                values[0],
                values[values.len() - 1]
            );
        }
        eprintln!("{line}");
    });
    drop(server);
    ExitCode::SUCCESS
}

/// `first-polls`: `calls` rounds of 1000 calls of one cold key on one `Cache` (Redis), each
/// polled once inside [`measured_first_polls`] — what every caller of a stampede does before
/// the first `GET` is answered (for callgrind: instructions ÷ (1000 × calls)). The calls are
/// then awaited (trivial body), so the next round starts clean.
fn first_polls(rounds: usize) -> ExitCode {
    let server = tests::RedisServer::spawn();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let ours = Ours {
            cache: redis_cache(&server.url(), "fp", None).await,
        };
        let base = 2_000_000_000 + u64::from(std::process::id()) * 1_000_000;
        for round in 0..rounds {
            let mut calls: Vec<_> = (0..1000)
                .map(|_| Box::pin(ours.get("fp", TARGET_SIZE, base + round as u64)))
                .collect();
            measured_first_polls(&mut calls);
            for call in calls {
                black_box(call.await);
            }
        }
        eprintln!("first-polls: {:?}", ours.cache.stats().total);
    });
    drop(server);
    ExitCode::SUCCESS
}

#[inline(never)]
fn measured_first_polls<F: Future + ?Sized>(calls: &mut [std::pin::Pin<Box<F>>]) {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for call in calls {
        let _ = black_box(call.as_mut().poll(&mut cx));
    }
}

/// `wake-memory` / `wake-floor`: `calls` rounds of 1000 callers of one cold key whose body waits
/// for a gate — ours on the memory backend, or the floor (a `OnceCell`) — on a current-thread
/// runtime, polled by hand: every caller once ([`measured_first_polls`]: the leader starts the
/// body, the others wait), then, after the gate opens, until all are done ([`measured_wake`]:
/// the leader ends its load, the waiters are woken and each takes its value). For callgrind:
/// the second function's instructions ÷ (1000 × calls) are what a waiter costs after the body.
fn wake(floor: bool, rounds: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    black_box(crate::value::make_value(TARGET_SIZE, 0));
    runtime.block_on(async {
        let ours = Ours {
            cache: memory_cache().await,
        };
        let floor_cells = Floor::default();
        for round in 0..rounds {
            let id = 7_000_000 + round as u64;
            let mut calls: Vec<std::pin::Pin<Box<dyn Future<Output = crate::value::Value> + '_>>> =
                (0..1000)
                    .map(|_| -> std::pin::Pin<Box<dyn Future<Output = _> + '_>> {
                        if floor {
                            Box::pin(floor_cells.get_gated(TARGET_SIZE, id))
                        } else {
                            Box::pin(ours.get_gated(TARGET_SIZE, id))
                        }
                    })
                    .collect();
            measured_first_polls(&mut calls);
            crate::contenders::GATE.add_permits(1);
            let done = measured_wake(&mut calls);
            assert_eq!(done, 1000, "every caller done after one pass");
        }
        if !floor {
            eprintln!("wake-memory: {:?}", ours.cache.stats().total);
        }
    });
}

/// Polls every call once more; returns how many finished.
#[inline(never)]
fn measured_wake<F: Future + ?Sized>(calls: &mut [std::pin::Pin<Box<F>>]) -> usize {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut done = 0;
    for call in calls {
        if let std::task::Poll::Ready(value) = call.as_mut().poll(&mut cx) {
            black_box(value);
            done += 1;
        }
    }
    done
}
