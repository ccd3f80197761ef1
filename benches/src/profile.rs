//! `--profile WHAT`: one contender's hot path in a loop, on a current-thread runtime, for
//! `valgrind --tool=callgrind` (instruction counts are stable where timings on this machine are
//! not). Not part of the report; see BENCHMARKS.md for how it was used.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6390/0 valgrind --tool=callgrind \
//!     target/release/benches --profile ours-hit --calls 20000
//! ```
//!
//! `WHAT`: `hand-hit`, `ours-hit`, `cached-hit`, `memory-hit` (a cached 1 KiB value),
//! `hand-miss`, `ours-miss`, `cached-miss` (cold keys, trivial body), `ours-open` (ours with
//! the circuit breaker open: a Redis that refuses connections), `direct` (the body alone). The measured calls run inside [`measured`], so callgrind's
//! inclusive cost of that function (and `--toggle-collect=*measured*`) is the loop's.

use std::{
    hint::black_box,
    process::ExitCode,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use crate::{
    contenders::{CachedFn, Client, Floor, Hand, MAIN_URL, Ours},
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
    let uses_redis = matches!(who.as_str(), "hand-hit" | "ours-hit" | "cached-hit");
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
            other => {
                eprintln!(
                    "unknown --profile `{other}`: hand-hit, ours-hit, cached-hit, memory-hit, hand-miss, ours-miss, cached-miss, ours-open, direct"
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
    code
}

/// The measured calls.
#[inline(never)]
async fn measured(client: &Client, space: &'static str, calls: usize, id: &dyn Fn(usize) -> u64) {
    for i in 0..calls {
        let _ = black_box(client.get(space, TARGET_SIZE, id(i)).await);
    }
}

/// `decode` / `decode-limit`: bincode-decode the 1 KiB value `calls` times with the standard
/// configuration (the hand-written contender's), or with the decode limit cached-runtime's
/// `Bincode` codec sets (`with_limit::<MAX_VALUE_LEN>()`).
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
            let config =
                bincode::config::standard().with_limit::<{ cached_runtime::MAX_VALUE_LEN }>();
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
        for (name, values) in ["caller p99 − body", "body starts after", "p99 of end − body end"]
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
