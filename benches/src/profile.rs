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

use std::{hint::black_box, process::ExitCode, sync::Arc, time::Duration};

use crate::{
    contenders::{CachedFn, Client, Hand, MAIN_URL, Ours},
    scenarios::{memory_cache, redis_cache},
    value::TARGET_SIZE,
};

pub(crate) fn main(what: &str, calls: usize) -> ExitCode {
    if let Some(memory) = match what {
        "ours-stampede" => Some(false),
        "memory-stampede" => Some(true),
        _ => None,
    } {
        return stampedes(memory, calls);
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

/// `ours-stampede` / `memory-stampede`: `calls` rounds of the stampede scenario (1000 callers
/// of one cold key across 4 caches, body 100 ms) on the bench's 2-worker runtime, for `perf`;
/// prints each round's caller p99 minus the body time.
fn stampedes(memory: bool, rounds: usize) -> ExitCode {
    let server = (!memory).then(|| {
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
            let cache = if memory {
                memory_cache().await
            } else {
                redis_cache(&url, "pst", None).await
            };
            instances.push(Arc::new(Client::Ours(Ours { cache })));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut extra = Vec::new();
        for round in 0..rounds {
            let id = 5_000_000 + round as u64;
            let barrier = Arc::new(tokio::sync::Barrier::new(1000));
            let tasks: Vec<_> = (0..1000)
                .map(|i| {
                    let client = instances[i % 4].clone();
                    let barrier = barrier.clone();
                    tokio::spawn(async move {
                        barrier.wait().await;
                        let started = std::time::Instant::now();
                        let _ = black_box(client.get_slow("pst", TARGET_SIZE, id).await);
                        started.elapsed()
                    })
                })
                .collect();
            let mut lat = Vec::new();
            for t in tasks {
                lat.push(t.await.expect("caller"));
            }
            lat.sort();
            let p99 = lat[lat.len() * 99 / 100];
            extra.push(p99.as_secs_f64() * 1e3 - 100.0);
        }
        extra.sort_by(f64::total_cmp);
        eprintln!(
            "{} stampede, {rounds} rounds: caller p99 − 100 ms: median {:.2} ms, min {:.2}, max {:.2}",
            if memory { "memory" } else { "ours" },
            extra[extra.len() / 2],
            extra[0],
            extra[extra.len() - 1]
        );
    });
    drop(server);
    ExitCode::SUCCESS
}
