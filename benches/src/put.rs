//! Scenario `write-through`: `#[cache_put]` against what it replaces by hand — the guides'
//! write-through, a bincode `SET EX` of the new value after the write — one task, on the same
//! server, in the same run. Latency per write (the body only builds the value: it stands for a
//! database write that takes no time), Redis commands and round trips per write.

use std::{collections::HashMap, hint::black_box, sync::Arc};

use cached_runtime::{Cache, cache_put};
use redis::{AsyncCommands, aio::MultiplexedConnection};

use crate::{
    Config,
    contenders::TTL_SECS,
    redis_util::unlink_matching,
    report::{Report, Section},
    scenarios::{
        Counted, Env, HOT_KEYS, counted_calls, redis_cache, rotated, timed_calls, warm_up,
    },
    stats::{Agg, Dist, agg, dist},
    value::{SIZES, TARGET_SIZE, Value, make_value},
};

/// Slices per round, interleaved across the two contenders.
const SLICES: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Who {
    Hand,
    Ours,
}

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::Hand => "hand-written `SET EX` after the write (baseline)",
            Who::Ours => "ours, `#[cache_put]` on Redis",
        }
    }
}

/// A repository whose write is cached through by `#[cache_put]`.
pub(crate) struct Writer {
    cache: Cache,
}

impl Writer {
    #[cache_put(key = "put:<id>", ttl = 600, cache = self.cache)]
    async fn save(&self, size: u32, id: u64) -> Value {
        make_value(size, id)
    }
}

pub(crate) enum Client {
    /// The write, then `SET hand:put:<id> <bincode> EX 600` on a multiplexed connection.
    Hand(MultiplexedConnection),
    Ours(Writer),
}

impl Client {
    /// The `--profile` modes `hand-put` and `ours-put` (see `profile.rs`).
    pub(crate) async fn for_profile(ours: bool, url: &str) -> Client {
        let who = if ours { Who::Ours } else { Who::Hand };
        Client::connect(who, url, "ours-put-profile").await
    }

    async fn connect(who: Who, url: &str, namespace: &str) -> Client {
        match who {
            Who::Hand => Client::Hand(
                redis::Client::open(url)
                    .expect("a valid url")
                    .get_multiplexed_async_connection()
                    .await
                    .expect("hand-written: connect"),
            ),
            Who::Ours => Client::Ours(Writer {
                cache: redis_cache(url, namespace, None).await,
            }),
        }
    }

    /// One write; `false` if the hand-written `SET` failed.
    pub(crate) async fn put(&self, size: u32, id: u64) -> bool {
        match self {
            Client::Hand(conn) => {
                let value = make_value(size, id);
                let Ok(bytes) = bincode::serde::encode_to_vec(&value, bincode::config::standard())
                else {
                    return false;
                };
                let mut conn = conn.clone();
                let set: redis::RedisResult<()> =
                    conn.set_ex(format!("hand:put:{id}"), bytes, TTL_SECS).await;
                black_box(value);
                set.is_ok()
            }
            Client::Ours(writer) => {
                black_box(writer.save(size, id).await);
                true
            }
        }
    }
}

/// `calls` sequential writes over the hot keys, in a task of their own.
async fn pass(client: Arc<Client>, size: u32, warmup: usize, calls: usize) -> (Vec<u64>, u64) {
    tokio::spawn(async move {
        let client = &*client;
        let mut put = |i: usize| client.put(size, i as u64 % HOT_KEYS);
        warm_up(0..warmup, |i| i, &mut put).await;
        timed_calls(0..calls, |i| i, &mut put, |ok| !*ok).await
    })
    .await
    .expect("write-through task")
}

/// Commands and round trips of `calls` sequential writes through the proxy.
async fn count(env: &Env, client: &Client, size: u32, calls: usize) -> Counted {
    client.put(size, 0).await; // connects, and loads any script once per server
    counted_calls(env, calls, |i| async move {
        client.put(size, i as u64 % HOT_KEYS).await;
    })
    .await
}

pub(crate) async fn write_through(env: &Env, cfg: &Config, report: &mut Report) {
    let calls = cfg.hit_calls / SLICES;
    let mut sec = Section::new(
        format!(
            "Write-through — one task, {} writes per round over {HOT_KEYS} keys, in {SLICES} slices interleaved across contenders ({} warm-up writes before each), {} rounds",
            calls * SLICES,
            cfg.hit_warmup / SLICES,
            cfg.rounds
        ),
        vec![
            "value",
            "contender",
            "mean",
            "p50",
            "p99",
            "p50 ÷ hand-written",
            "Redis commands per write (INFO commandstats)",
            "round trips per write",
        ],
    );
    let who = [Who::Hand, Who::Ours];
    let mut main = Vec::new();
    let mut counted = Vec::new();
    for w in who {
        main.push((w, Arc::new(Client::connect(w, &env.url, "ours-put").await)));
        counted.push((w, Client::connect(w, env.proxy.url(), "ours-put-rt").await));
    }
    let pinned = env.pin(cfg);
    for size in SIZES {
        eprintln!("write-through, {}", size.label);
        let mut runs: HashMap<Who, Vec<(Dist, u64)>> = HashMap::new();
        for round in 0..cfg.rounds {
            let mut slices: HashMap<Who, (Vec<u64>, u64)> = HashMap::new();
            for slice in 0..SLICES {
                for (w, client) in rotated(&main, round + slice) {
                    let (samples, errors) =
                        pass(client, size.bytes, cfg.hit_warmup / SLICES, calls).await;
                    let entry = slices.entry(w).or_default();
                    entry.0.extend(samples);
                    entry.1 += errors;
                }
            }
            for (w, (mut samples, errors)) in slices {
                runs.entry(w)
                    .or_default()
                    .push((dist(&mut samples), errors));
            }
        }
        let mut trips = HashMap::new();
        for (w, client) in &counted {
            trips.insert(*w, count(env, client, size.bytes, cfg.count_calls).await);
        }
        let stat = |w: Who, f: fn(&Dist) -> f64| agg(runs[&w].iter().map(|(d, _)| f(d)));
        let ratio = |f: fn(&Dist) -> f64| -> Agg {
            agg(runs[&Who::Ours]
                .iter()
                .zip(&runs[&Who::Hand])
                .map(|((o, _), (h, _))| f(o) / f(h)))
        };
        for w in who {
            let errors: u64 = runs[&w].iter().map(|(_, e)| e).sum();
            let counted = &trips[&w];
            sec.row(vec![
                size.label.to_owned(),
                if errors > 0 {
                    format!("{} ⚠ {errors} errors", w.label())
                } else {
                    w.label().to_owned()
                },
                stat(w, |d| d.mean).ns(),
                stat(w, |d| d.p50).ns(),
                stat(w, |d| d.p99).ns(),
                match w {
                    Who::Hand => "1.00 (baseline)".to_owned(),
                    Who::Ours => ratio(|d| d.p50).ratio(),
                },
                counted.commands(),
                format!("{:.2}", counted.trips()),
            ]);
        }
        if size.bytes == TARGET_SIZE {
            let r = ratio(|d| d.p50);
            report.target(
                "write-through: `#[cache_put]` p50 ≤ 1.1× a hand-written `SET EX`",
                format!(
                    "{} ({:.2} round trips per write; hand-written {:.2})",
                    r.ratio(),
                    trips[&Who::Ours].trips(),
                    trips[&Who::Hand].trips()
                ),
                Some(r.med <= 1.1),
            );
        }
        unlink_matching(&env.admin, "*put:*").await;
    }
    sec.note(env.pin_note(cfg, pinned.is_some()));
    drop(pinned);
    sec.note("Both write the same value under one of 64 keys per call, after a body that only builds it. Ours sends two commands per write in one request (`DEL` of the key's lease, then `SET … PX` of the entry with its 16-byte header), and a `PUBLISH` of the fill event in a second round trip only when the `DEL` removed a lease — never here, as no load is in flight; hand-written sends one `SET … EX`.");
    report.sections.push(sec);
}
