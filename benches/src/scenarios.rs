//! The five scenarios: hit latency, throughput, miss, stampede, paused Redis. Every scenario
//! interleaves the contenders inside each round (rotating their order from round to round), so
//! that the machine's noise falls on all of them alike; ratios are taken within a round,
//! against the hand-written contender of that round, and the median over rounds is reported
//! with its min–max.

use std::{
    collections::HashMap,
    future::Future,
    hint::black_box,
    ops::Range,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use cached_runtime::Cache;
use redis::aio::MultiplexedConnection;
use tokio::sync::Barrier;

use crate::{
    Config,
    contenders::{
        BODY_NS, BODY_RUNS, BODY_TIME, CachedFn, Client, FAULT_URL, FIRST_BODY, Floor, Hand, Ours,
    },
    proxy::Proxy,
    redis_util::{
        CommandDelta, commandstats, commandstats_sum, delta, numsub, unlink_matching, wait_ready,
    },
    report::{Report, Section},
    stats::{Agg, Dist, agg, dist, fmt_ns},
    value::{SIZES, TARGET_SIZE},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Who {
    Hand,
    HandLock,
    Ours,
    Cached,
    Memory,
    Direct,
    Floor,
    /// The cluster scenarios' contenders.
    HandCluster,
    HandClusterLikeOurs,
    OursCluster,
    /// The sliding scenario's `sliding = true`.
    OursSliding,
}

impl Env {
    /// Pins the bench and redis-server to one CPU (single-task scenarios), if asked and
    /// possible: see `pin.rs`. Unpinned when the result is dropped.
    pub(crate) fn pin(&self, cfg: &Config) -> Option<crate::pin::Pinned> {
        if !cfg.pin {
            return None;
        }
        let server = self.server.as_ref()?.pid()?;
        crate::pin::Pinned::to_cpu(&[std::process::id(), server], 0)
    }

    pub(crate) fn pin_note(&self, cfg: &Config, pinned: bool) -> &'static str {
        if pinned {
            "The bench (all threads) and redis-server pinned to CPU 0 with `taskset` for this scenario (unpinned, loopback round trips on a small shared VM can settle at ~20 µs or ~100 µs by chance: see BENCHMARKS.md, section Loopback latency)."
        } else if !cfg.pin {
            "Not pinned (`--no-pin`)."
        } else if self.server.is_none() {
            "Not pinned: the server is REDIS_URL's, not the bench's."
        } else {
            "Not pinned: `taskset` is not available."
        }
    }
}

impl Who {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Who::Hand => "hand-written (baseline)",
            Who::HandLock => "hand-written + guides' lock",
            Who::Ours => "ours, `#[cache_aside]` on Redis",
            Who::Cached => "`cached` 4.1 `#[concurrent_cached]` (AsyncRedisCache)",
            Who::Memory => "ours, memory backend",
            Who::Direct => "body called directly (no cache)",
            Who::Floor => {
                "floor: one in-process single flight (tokio `OnceCell`; no cache, no Redis)"
            }
            Who::HandCluster => {
                "hand-written on the cluster, redis-rs `ClusterConnection` (baseline)"
            }
            Who::HandClusterLikeOurs => {
                "hand-written on the cluster, its redis-rs client set up as the runtime's"
            }
            Who::OursCluster => "ours, `#[cache_aside]` on `redis_cluster`",
            Who::OursSliding => {
                "ours, `#[cache_aside(sliding = true)]` on Redis (a hit is `GETEX`)"
            }
        }
    }
}

/// Keys the hit scenarios cycle through.
pub(crate) const HOT_KEYS: u64 = 64;

/// Slices per round of the hit-latency scenario, interleaved across contenders.
pub(crate) const HIT_SLICES: usize = 50;

static NEXT_ID: AtomicU64 = AtomicU64::new(1_000_000);

/// `n` ids never used before in this run (cold keys).
pub(crate) fn fresh_ids(n: usize) -> u64 {
    NEXT_ID.fetch_add(n as u64, Relaxed)
}

pub(crate) type Contenders = Vec<(Who, Arc<Client>)>;

/// What the scenarios share.
pub(crate) struct Env {
    pub(crate) url: String,
    pub(crate) admin: MultiplexedConnection,
    pub(crate) server: Option<tests::RedisServer>,
    /// One instance of each contender on the server, shared by the hit scenarios.
    pub(crate) main: Contenders,
    /// The same contenders, connected through the round-trip-counting proxy.
    pub(crate) proxy: Proxy,
    pub(crate) counted: Contenders,
    /// Idle caches kept subscribed to ours' channel (`--extra-subscribers`).
    pub(crate) _extra: Vec<Cache>,
}

pub(crate) async fn redis_cache(url: &str, namespace: &str, op_timeout: Option<Duration>) -> Cache {
    let mut builder = Cache::builder().redis(url).namespace(namespace);
    if let Some(timeout) = op_timeout {
        builder = builder.op_timeout(timeout);
    }
    let cache = builder.build().await.expect("a valid cache configuration");
    cache.ping().await.expect("redis answers PING");
    cache
}

pub(crate) async fn memory_cache() -> Cache {
    Cache::builder()
        .memory()
        .namespace("mem")
        .build()
        .await
        .expect("a valid cache configuration")
}

/// One instance of each contender on the server at `url`; `cached` uses the store of `cached`.
pub(crate) async fn contenders(
    url: &str,
    cached: CachedFn,
    memory: bool,
    namespace: &str,
) -> Contenders {
    let hand = Hand::connect(url, "hand", None, false)
        .await
        .expect("hand-written: connect");
    let mut out: Contenders = vec![
        (Who::Hand, Arc::new(Client::Hand(hand))),
        (
            Who::Ours,
            Arc::new(Client::Ours(Ours {
                cache: redis_cache(url, namespace, None).await,
            })),
        ),
        (Who::Cached, Arc::new(Client::Cached(cached))),
    ];
    if memory {
        out.push((
            Who::Memory,
            Arc::new(Client::Ours(Ours {
                cache: memory_cache().await,
            })),
        ));
    }
    out
}

pub(crate) fn rotated<T: Clone>(v: &[T], round: usize) -> Vec<T> {
    let mut v = v.to_vec();
    if !v.is_empty() {
        let n = v.len();
        v.rotate_left(round % n);
    }
    v
}

pub(crate) async fn prime(clients: &Contenders, space: &'static str, size: u32) {
    for (_, c) in clients {
        for id in 0..HOT_KEYS {
            let _ = c.get(space, size, id).await;
        }
    }
}

/// Per-round results by contender, in round order.
pub(crate) type Runs<T> = HashMap<Who, Vec<T>>;

/// A statistic over rounds, and its ratio to the baseline's in the same round.
pub(crate) fn stat<T>(runs: &Runs<T>, who: Who, f: impl Fn(&T) -> f64) -> Agg {
    agg(runs.get(&who).into_iter().flatten().map(f))
}

pub(crate) fn ratio<T>(runs: &Runs<T>, who: Who, base: Who, f: impl Fn(&T) -> f64) -> Agg {
    let (Some(a), Some(b)) = (runs.get(&who), runs.get(&base)) else {
        return agg([]);
    };
    agg(a.iter().zip(b).map(|(x, y)| f(x) / f(y)))
}

// ---------------------------------------------------------------------------------------------
// Round trips.

/// Commands (`INFO commandstats`) and round trips (proxy) of `calls` sequential calls.
pub(crate) struct Counted {
    pub(crate) cmds: CommandDelta,
    pub(crate) round_trips: u64,
    pub(crate) calls: usize,
}

impl Counted {
    pub(crate) fn commands(&self) -> String {
        format!(
            "{:.2} ({})",
            self.cmds.total as f64 / self.calls as f64,
            self.cmds.per_call(self.calls)
        )
    }

    pub(crate) fn trips(&self) -> f64 {
        self.round_trips as f64 / self.calls as f64
    }
}

pub(crate) async fn count_pass(
    env: &Env,
    client: &Client,
    space: &'static str,
    size: u32,
    ids: impl Fn(usize) -> u64,
    calls: usize,
) -> Counted {
    counted_calls(env, calls, |i| {
        let id = ids(i);
        async move {
            let _ = black_box(client.get(space, size, id).await);
        }
    })
    .await
}

/// The commands (`INFO commandstats`) and round trips (the proxy's, for a client connected
/// through it) of `call(i)` for each `i` in `0..calls`, one after the other.
pub(crate) async fn counted_calls<F: Future>(
    env: &Env,
    calls: usize,
    mut call: impl FnMut(usize) -> F,
) -> Counted {
    let before = commandstats(&env.admin).await;
    let trips = env.proxy.round_trips();
    for i in 0..calls {
        call(i).await;
    }
    let round_trips = env.proxy.round_trips() - trips;
    let after = commandstats(&env.admin).await;
    Counted {
        cmds: delta(&before, &after),
        round_trips,
        calls,
    }
}

/// `call(arg(i))` for each `i` in `range`, untimed: a warm-up before [`timed_calls`].
pub(crate) async fn warm_up<A, F: Future>(
    range: Range<usize>,
    arg: impl Fn(usize) -> A,
    mut call: impl FnMut(A) -> F,
) {
    for i in range {
        let _ = black_box(call(arg(i)).await);
    }
}

/// `call(arg(i))` for each `i` in `range`, timed: the latencies (ns) in order, and how many
/// results `failed`. `arg(i)` is taken before the clock starts; what the call drops itself is
/// timed, its result is dropped after the clock stops.
pub(crate) async fn timed_calls<A, F: Future>(
    range: Range<usize>,
    arg: impl Fn(usize) -> A,
    mut call: impl FnMut(A) -> F,
    failed: impl Fn(&F::Output) -> bool,
) -> (Vec<u64>, u64) {
    let mut samples = Vec::with_capacity(range.len());
    let mut errors = 0;
    for i in range {
        let arg = arg(i);
        let started = Instant::now();
        let result = call(arg).await;
        samples.push(started.elapsed().as_nanos() as u64);
        errors += u64::from(failed(&result));
        drop(black_box(result));
    }
    (samples, errors)
}

// ---------------------------------------------------------------------------------------------
// Scenario 1: hit latency.

pub(crate) struct LatencyRun {
    pub(crate) dist: Dist,
    errors: u64,
    /// Calls the contender did not count as hits (where it counts them).
    non_hits: Option<u64>,
    /// The measured calls' latencies (ns), sorted.
    samples: Vec<u64>,
}

impl LatencyRun {
    /// One run out of several slices of one contender.
    pub(crate) fn merge(slices: Vec<LatencyRun>) -> LatencyRun {
        let mut samples: Vec<u64> = slices
            .iter()
            .flat_map(|r| r.samples.iter().copied())
            .collect();
        LatencyRun {
            dist: dist(&mut samples),
            errors: slices.iter().map(|r| r.errors).sum(),
            non_hits: slices.iter().map(|r| r.non_hits).sum(),
            samples,
        }
    }
}

pub(crate) async fn latency_pass(
    client: Arc<Client>,
    space: &'static str,
    size: u32,
    warmup: usize,
    calls: usize,
    ids: fn(usize, u64) -> u64,
    base: u64,
) -> LatencyRun {
    tokio::spawn(async move {
        let client = &*client;
        let mut get = |id| client.get(space, size, id);
        warm_up(0..warmup, |i| ids(i, base), &mut get).await;
        let hits = client.hits();
        let (mut samples, errors) = timed_calls(
            warmup..warmup + calls,
            |i| ids(i, base),
            &mut get,
            |result| result.is_err(),
        )
        .await;
        let non_hits = hits
            .zip(client.hits())
            .map(|(a, b)| calls as u64 - (b - a).min(calls as u64));
        LatencyRun {
            dist: dist(&mut samples),
            errors,
            non_hits,
            samples,
        }
    })
    .await
    .expect("latency task")
}

pub(crate) fn hot_id(i: usize, _base: u64) -> u64 {
    i as u64 % HOT_KEYS
}

fn cold_id(i: usize, base: u64) -> u64 {
    base + i as u64
}

pub(crate) fn anomalies(runs: &[LatencyRun], expect_hits: bool) -> String {
    let errors: u64 = runs.iter().map(|r| r.errors).sum();
    let non_hits: u64 = runs.iter().filter_map(|r| r.non_hits).sum();
    let calls: usize = runs.iter().map(|r| r.dist.n).sum();
    let mut out = String::new();
    if errors > 0 {
        out.push_str(&format!(" ⚠ {errors} errors"));
    }
    if expect_hits && non_hits > 0 {
        out.push_str(&format!(" ⚠ {non_hits} of {calls} calls were not hits"));
    }
    if !expect_hits && runs.iter().any(|r| r.non_hits.is_some()) && non_hits < calls as u64 {
        out.push_str(&format!(
            " ⚠ {} of {calls} calls hit",
            calls as u64 - non_hits
        ));
    }
    out
}

pub(crate) async fn hit_latency(env: &Env, cfg: &Config, report: &mut Report) {
    let mut sec = Section::new(
        format!(
            "Hit latency — one task, {} calls per round in {HIT_SLICES} slices interleaved across contenders (each after {} warm-up calls), {} rounds ({} at 100 KiB)",
            cfg.hit_calls,
            cfg.hit_warmup / HIT_SLICES,
            cfg.rounds,
            cfg.big_rounds
        ),
        vec![
            "value",
            "contender",
            "mean",
            "p50",
            "p99",
            "p50 ÷ hand-written",
            "Redis commands per hit (INFO commandstats)",
            "round trips per hit",
        ],
    );
    let pinned = env.pin(cfg);
    for size in SIZES {
        eprintln!("hit latency, {}", size.label);
        prime(&env.main, "hot", size.bytes).await;
        prime(&env.counted, "hot", size.bytes).await;
        let mut runs: Runs<LatencyRun> = HashMap::new();
        let rounds = if size.bytes > 64 * 1024 {
            cfg.big_rounds
        } else {
            cfg.rounds
        };
        // Each round's calls in interleaved slices, so that every contender sees the same
        // phases of this VM's (bimodal) loopback latency.
        for round in 0..rounds {
            let mut slices: HashMap<Who, Vec<LatencyRun>> = HashMap::new();
            for slice in 0..HIT_SLICES {
                for (who, c) in rotated(&env.main, round + slice) {
                    let run = latency_pass(
                        c,
                        "hot",
                        size.bytes,
                        cfg.hit_warmup / HIT_SLICES,
                        cfg.hit_calls / HIT_SLICES,
                        hot_id,
                        0,
                    )
                    .await;
                    slices.entry(who).or_default().push(run);
                }
            }
            for (who, slices) in slices {
                runs.entry(who).or_default().push(LatencyRun::merge(slices));
            }
        }
        let mut counted = HashMap::new();
        for (who, c) in &env.counted {
            counted.insert(
                *who,
                count_pass(
                    env,
                    c,
                    "hot",
                    size.bytes,
                    |i| i as u64 % HOT_KEYS,
                    cfg.count_calls,
                )
                .await,
            );
        }
        for (who, _) in &env.main {
            let mean = stat(&runs, *who, |r| r.dist.mean);
            let p50 = stat(&runs, *who, |r| r.dist.p50);
            let p99 = stat(&runs, *who, |r| r.dist.p99);
            let r = ratio(&runs, *who, Who::Hand, |r| r.dist.p50);
            let c = counted.get(who);
            sec.row(vec![
                size.label.to_owned(),
                format!("{}{}", who.label(), anomalies(&runs[who], true)),
                mean.ns(),
                p50.ns(),
                p99.ns(),
                if *who == Who::Hand {
                    "1.00 (baseline)".to_owned()
                } else {
                    r.ratio()
                },
                c.map_or("n/a (in-process)".to_owned(), Counted::commands),
                c.map_or("n/a".to_owned(), |c| format!("{:.2}", c.trips())),
            ]);
        }
        if size.bytes == TARGET_SIZE {
            let r = ratio(&runs, Who::Ours, Who::Hand, |r| r.dist.p50);
            report.target(
                "hit latency p50 ≤ 1.05× hand-written",
                format!(
                    "{} ({} vs {})",
                    r.ratio(),
                    stat(&runs, Who::Ours, |r| r.dist.p50).ns(),
                    stat(&runs, Who::Hand, |r| r.dist.p50).ns()
                ),
                Some(r.med <= 1.05),
            );
            let c = &counted[&Who::Ours];
            report.target(
                "exactly one Redis round trip per hit",
                format!(
                    "{:.2} round trips, {:.2} commands ({}) per hit",
                    c.trips(),
                    c.cmds.total as f64 / c.calls as f64,
                    c.cmds.per_call(c.calls)
                ),
                Some(c.round_trips == c.calls as u64 && c.cmds.total == c.calls as u64),
            );
        }
    }
    sec.note(env.pin_note(cfg, pinned.is_some()));
    drop(pinned);
    sec.note("Redis commands: the `calls=` deltas of `INFO commandstats` over a separate pass of sequential calls (the `INFO` calls themselves excluded). Round trips: the same pass, counted by a loopback proxy between the contender and Redis (a client write after a server reply starts a round trip).");
    report.sections.push(sec);
}

// ---------------------------------------------------------------------------------------------
// Scenario 2: hit throughput.

async fn throughput_pass(
    admin: &MultiplexedConnection,
    own_keys: bool,
    client: Arc<Client>,
    size: u32,
    tasks: usize,
    warmup: Duration,
    duration: Duration,
) -> Slice {
    let before = commandstats(admin).await;
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (client, counting, stop) = (client.clone(), counting.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut done, mut errors, mut all) = (0u64, 0u64, 0u64);
                let mut i = t as u64;
                while !stop.load(Relaxed) {
                    // `own_keys`: task t reads key t only, so no two tasks read one key at once.
                    let key = if own_keys { t as u64 } else { i % HOT_KEYS };
                    let result = client.get("hot", size, key).await;
                    all += 1;
                    if counting.load(Relaxed) {
                        done += 1;
                        errors += u64::from(result.is_err());
                    }
                    drop(black_box(result));
                    i += 1;
                    // The memory backend never waits: without this, two tasks would keep both
                    // workers forever. A no-op until the task's cooperative budget runs out,
                    // which a contender on Redis spends on its own I/O anyway.
                    tokio::task::coop::consume_budget().await;
                }
                (done, errors, all)
            })
        })
        .collect();
    // The clock runs on a thread of its own, so busy workers cannot stretch the window.
    let elapsed = {
        let (counting, stop) = (counting.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(warmup);
            counting.store(true, Relaxed);
            let started = Instant::now();
            std::thread::sleep(duration);
            counting.store(false, Relaxed);
            let elapsed = started.elapsed();
            stop.store(true, Relaxed);
            elapsed
        })
        .await
        .expect("throughput clock")
    };
    let (mut done, mut errors, mut all) = (0, 0, 0);
    for h in handles {
        let (d, e, a) = h.await.expect("throughput task");
        done += d;
        errors += e;
        all += a;
    }
    Slice {
        calls: done,
        secs: elapsed.as_secs_f64(),
        errors,
        all_calls: all,
        commands: delta(&before, &commandstats(admin).await).total,
    }
}

/// Calls counted over some time.
#[derive(Clone, Copy, Default)]
struct Slice {
    calls: u64,
    secs: f64,
    errors: u64,
    /// Calls including the warm-up, and the Redis commands run meanwhile (all of them).
    all_calls: u64,
    commands: u64,
}

impl Slice {
    fn add(&mut self, other: Slice) {
        self.calls += other.calls;
        self.secs += other.secs;
        self.errors += other.errors;
        self.all_calls += other.all_calls;
        self.commands += other.commands;
    }

    fn rate(&self) -> f64 {
        self.calls as f64 / self.secs
    }

    fn commands_per_call(&self) -> f64 {
        self.commands as f64 / self.all_calls.max(1) as f64
    }
}

pub(crate) async fn throughput(env: &Env, cfg: &Config, report: &mut Report) {
    let mut sec = Section::new(
        format!(
            "Hit throughput — {} concurrent tasks sharing one contender instance (one connection), {:.1} s per contender per round in {} interleaved slices (each after {:.1} s warm-up), {} rounds",
            cfg.tput_tasks,
            cfg.tput_duration.as_secs_f64(),
            cfg.tput_slices,
            cfg.tput_warmup.as_secs_f64(),
            cfg.rounds
        ),
        vec![
            "value",
            "contender",
            "calls/s",
            "÷ hand-written",
            "÷ `cached`",
            "Redis commands per call",
        ],
    );
    // Every size with the 64 keys shared by all tasks, then ~1 KiB with a key per task.
    let passes = SIZES.iter().map(|size| (*size, false)).chain(
        SIZES
            .iter()
            .filter(|s| s.bytes == TARGET_SIZE)
            .map(|s| (*s, true)),
    );
    for (size, own_keys) in passes {
        eprintln!(
            "hit throughput, {}{}",
            size.label,
            if own_keys { ", a key per task" } else { "" }
        );
        prime(&env.main, "hot", size.bytes).await;
        let mut runs: Runs<Slice> = HashMap::new();
        let slice = cfg.tput_duration / cfg.tput_slices as u32;
        for round in 0..cfg.rounds {
            let mut round_runs: HashMap<Who, Slice> = HashMap::new();
            for s in 0..cfg.tput_slices {
                for (who, c) in rotated(&env.main, round + s) {
                    let r = throughput_pass(
                        &env.admin,
                        own_keys,
                        c,
                        size.bytes,
                        cfg.tput_tasks,
                        cfg.tput_warmup,
                        slice,
                    )
                    .await;
                    round_runs.entry(who).or_default().add(r);
                }
            }
            for (who, r) in round_runs {
                runs.entry(who).or_default().push(r);
            }
        }
        for (who, _) in &env.main {
            let errors: u64 = runs[who].iter().map(|r| r.errors).sum();
            sec.row(vec![
                if own_keys {
                    format!("{}, a key per task", size.label)
                } else {
                    size.label.to_owned()
                },
                format!(
                    "{}{}",
                    who.label(),
                    if errors > 0 {
                        format!(" ⚠ {errors} errors")
                    } else {
                        String::new()
                    }
                ),
                stat(&runs, *who, Slice::rate).show(|x| format!("{x:.0}")),
                if *who == Who::Hand {
                    "1.00 (baseline)".to_owned()
                } else {
                    ratio(&runs, *who, Who::Hand, Slice::rate).ratio()
                },
                ratio(&runs, *who, Who::Cached, Slice::rate).ratio(),
                if *who == Who::Memory {
                    "n/a (in-process)".to_owned()
                } else {
                    stat(&runs, *who, Slice::commands_per_call).show(|x| format!("{x:.2}"))
                },
            ]);
        }
        if size.bytes == TARGET_SIZE && !own_keys {
            let hand = ratio(&runs, Who::Ours, Who::Hand, Slice::rate);
            let cached = ratio(&runs, Who::Ours, Who::Cached, Slice::rate);
            let hand_cached = ratio(&runs, Who::Hand, Who::Cached, Slice::rate);
            let calls = |who| stat(&runs, who, Slice::rate).med;
            report.target(
                "64-task hit throughput ≥ 0.95× hand-written",
                format!(
                    "{} ({:.0} vs {:.0} calls/s)",
                    hand.ratio(),
                    calls(Who::Ours),
                    calls(Who::Hand)
                ),
                Some(hand.med >= 0.95),
            );
            report.target(
                "64-task hit throughput ≥ 1.2× `cached`",
                format!(
                    "{} ({:.0} vs {:.0} calls/s; hand-written ÷ `cached`: {})",
                    cached.ratio(),
                    calls(Who::Ours),
                    calls(Who::Cached),
                    hand_cached.ratio()
                ),
                Some(cached.med >= 1.2),
            );
        }
    }
    sec.note("Unpinned: the bench and redis-server on every CPU.");
    sec.note("Each task reads the 64 keys in turn, starting at its own offset, so at any moment several tasks may read the same key. Redis commands per call: `INFO commandstats` deltas over each pass (warm-up included) ÷ the calls made in it. Ours is below 1 because concurrent reads of one key in one `Cache` share one `GET` (read coalescing, part of stampede protection); the others send one `GET` per call. The last rows (\"a key per task\") take coalescing out: each task reads a key of its own, so every call is one `GET` for everyone.");
    report.sections.push(sec);
}

// ---------------------------------------------------------------------------------------------
// Scenario 3: miss path.

pub(crate) async fn miss(env: &Env, cfg: &Config, report: &mut Report) {
    let mut sec = Section::new(
        format!(
            "Miss path — one task, {} cold keys per round (after {} warm-up misses), trivial body, {} rounds",
            cfg.miss_calls, cfg.miss_warmup, cfg.rounds
        ),
        vec![
            "value",
            "contender",
            "mean",
            "p50",
            "p99",
            "p50 ÷ hand-written",
            "Redis commands per miss (INFO commandstats)",
            "round trips per miss",
        ],
    );
    let pinned = env.pin(cfg);
    for size in SIZES {
        eprintln!("miss path, {}", size.label);
        let mut runs: Runs<LatencyRun> = HashMap::new();
        for round in 0..cfg.rounds {
            for (who, c) in rotated(&env.main, round) {
                // A fresh memory cache per pass: cold keys are not kept around.
                let client = if who == Who::Memory {
                    Arc::new(Client::Ours(Ours {
                        cache: memory_cache().await,
                    }))
                } else {
                    c
                };
                let base = fresh_ids(cfg.miss_warmup + cfg.miss_calls);
                let run = latency_pass(
                    client,
                    "miss",
                    size.bytes,
                    cfg.miss_warmup,
                    cfg.miss_calls,
                    cold_id,
                    base,
                )
                .await;
                runs.entry(who).or_default().push(run);
                unlink_matching(&env.admin, "*miss*").await;
            }
        }
        let mut counted = HashMap::new();
        for (who, c) in &env.counted {
            let base = fresh_ids(cfg.count_calls);
            counted.insert(
                *who,
                count_pass(
                    env,
                    c,
                    "miss",
                    size.bytes,
                    |i| base + i as u64,
                    cfg.count_calls,
                )
                .await,
            );
            unlink_matching(&env.admin, "*miss*").await;
        }
        for (who, _) in &env.main {
            let c = counted.get(who);
            sec.row(vec![
                size.label.to_owned(),
                format!("{}{}", who.label(), anomalies(&runs[who], false)),
                stat(&runs, *who, |r| r.dist.mean).ns(),
                stat(&runs, *who, |r| r.dist.p50).ns(),
                stat(&runs, *who, |r| r.dist.p99).ns(),
                if *who == Who::Hand {
                    "1.00 (baseline)".to_owned()
                } else {
                    ratio(&runs, *who, Who::Hand, |r| r.dist.p50).ratio()
                },
                c.map_or("n/a (in-process)".to_owned(), Counted::commands),
                c.map_or("n/a".to_owned(), |c| format!("{:.2}", c.trips())),
            ]);
        }
        if size.bytes == TARGET_SIZE {
            let c = &counted[&Who::Ours];
            report.target(
                "miss path ≤ 3 round trips including the lease",
                format!(
                    "{:.2} round trips per miss ({:.2} commands: {}; hand-written {:.2} round trips)",
                    c.trips(),
                    c.cmds.total as f64 / c.calls as f64,
                    c.cmds.per_call(c.calls),
                    counted[&Who::Hand].trips()
                ),
                Some(c.trips() <= 3.0),
            );
        }
    }
    sec.note(env.pin_note(cfg, pinned.is_some()));
    drop(pinned);
    sec.note("Redis commands include the commands a Lua script runs inside Redis (`INFO commandstats` counts them too) and every command of a pipeline; round trips count neither twice (see the hit-latency notes).");
    report.sections.push(sec);
}

// ---------------------------------------------------------------------------------------------
// Scenario 4: cold-key stampede.

pub(crate) struct StampedeRun {
    pub(crate) dist: Dist,
    pub(crate) body_runs: u64,
    /// The longest body execution, measured (ns).
    pub(crate) body_ns: f64,
    /// From the first caller's start to the (first) body's start (ns).
    pub(crate) before_body: f64,
    /// p99 over callers of their end minus the (first) body's end (ns; 0 if before it).
    pub(crate) after_body_p99: f64,
    /// Commands Redis executed during the pass (`INFO commandstats`, summed over `admins`).
    pub(crate) cmds: CommandDelta,
    pub(crate) errors: u64,
    /// The id of the stampede's key.
    pub(crate) id: u64,
}

/// One stampede of `callers` over `instances` on a cold key; the commands are counted on
/// every server of `admins` (one, or the nodes of a cluster).
pub(crate) async fn stampede_pass(
    admins: &[MultiplexedConnection],
    instances: &[Arc<Client>],
    callers: usize,
    size: u32,
) -> StampedeRun {
    let id = fresh_ids(1);
    let before = commandstats_sum(admins).await;
    BODY_RUNS.store(0, Relaxed);
    BODY_NS.store(0, Relaxed);
    *FIRST_BODY.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let barrier = Arc::new(Barrier::new(callers));
    let handles: Vec<_> = (0..callers)
        .map(|i| {
            let client = instances[i % instances.len()].clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let started = Instant::now();
                let result = client.get_slow("st", size, id).await;
                (started, Instant::now(), result.is_err())
            })
        })
        .collect();
    let mut spans = Vec::with_capacity(callers);
    let mut errors = 0;
    for h in handles {
        let (started, ended, err) = h.await.expect("stampede caller");
        spans.push((started, ended));
        errors += u64::from(err);
    }
    let body_runs = BODY_RUNS.load(Relaxed);
    let body_ns = BODY_NS.load(Relaxed) as f64;
    let mut samples: Vec<u64> = spans
        .iter()
        .map(|(s, e)| (*e - *s).as_nanos() as u64)
        .collect();
    let first_start = spans.iter().map(|(s, _)| *s).min();
    let (before_body, after_body_p99) = match (
        *FIRST_BODY.lock().unwrap_or_else(|e| e.into_inner()),
        first_start,
    ) {
        (Some((body_start, body_end)), Some(first)) => {
            let mut after: Vec<u64> = spans
                .iter()
                .map(|(_, e)| e.saturating_duration_since(body_end).as_nanos() as u64)
                .collect();
            (
                body_start.saturating_duration_since(first).as_nanos() as f64,
                dist(&mut after).p99,
            )
        }
        _ => (f64::NAN, f64::NAN),
    };
    // Let the losers' writes and the pub/sub messages settle before the next contender.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let cmds = delta(&before, &commandstats_sum(admins).await);
    StampedeRun {
        dist: dist(&mut samples),
        body_runs,
        body_ns,
        before_body,
        after_body_p99,
        cmds,
        errors,
        id,
    }
}

pub(crate) async fn stampede(env: &Env, cfg: &Config, report: &mut Report) {
    let n = cfg.stampede_instances;
    let mut sets: Vec<(Who, Vec<Arc<Client>>)> = Vec::new();
    let mut hand = Vec::new();
    let mut hand_lock = Vec::new();
    let mut ours = Vec::new();
    let mut memory = Vec::new();
    let mut cached = Vec::new();
    for i in 0..n {
        hand.push(Arc::new(Client::Hand(
            Hand::connect(&env.url, "hand-st", None, false)
                .await
                .expect("connect"),
        )));
        hand_lock.push(Arc::new(Client::Hand(
            Hand::connect(&env.url, "handlock-st", None, true)
                .await
                .expect("connect"),
        )));
        ours.push(Arc::new(Client::Ours(Ours {
            cache: redis_cache(&env.url, "ours-st", None).await,
        })));
        memory.push(Arc::new(Client::Ours(Ours {
            cache: memory_cache().await,
        })));
        cached.push(Arc::new(Client::Cached(CachedFn::Slow(i))));
    }
    sets.push((Who::Hand, hand));
    sets.push((Who::HandLock, hand_lock));
    sets.push((Who::Ours, ours));
    sets.push((Who::Cached, cached));
    sets.push((Who::Memory, memory));
    // The floor: one flight shared by every caller of every instance (the body runs once and
    // 999 callers clone its value, as with ours), with nothing else around it.
    let floor = Arc::new(Client::Floor(Floor::default()));
    sets.push((Who::Floor, vec![floor; n]));
    // Every instance of ours subscribed to the event channel before anything starts.
    for _ in 0..100 {
        if numsub(&env.admin, "ours-st:__events").await >= n as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Warm every instance (connections, scripts): one load each of a key of its own.
    for (_, instances) in &sets {
        for c in instances {
            let _ = c.get_slow("warm", 64, fresh_ids(1)).await;
        }
    }

    let mut sec = Section::new(
        format!(
            "Cold-key stampede — {} concurrent callers of one cold key across {n} instances (a `Cache`, connection or `cached` store each; {} callers per instance), body takes {} ms, {} rounds",
            cfg.stampede_callers,
            cfg.stampede_callers / n,
            BODY_TIME.as_millis(),
            cfg.rounds
        ),
        vec![
            "value",
            "contender",
            "body executions",
            "body time (measured)",
            "caller p50",
            "caller p99",
            "caller max",
            "p99 − body time",
            "first body starts after",
            "p99 of caller end − first body end",
            "p99 ÷ hand-written",
            "Redis commands (last round)",
        ],
    );
    for size in SIZES {
        eprintln!("stampede, {}", size.label);
        let mut runs: Runs<StampedeRun> = HashMap::new();
        for round in 0..cfg.rounds {
            for (who, instances) in rotated(&sets, round) {
                let run = stampede_pass(
                    std::slice::from_ref(&env.admin),
                    &instances,
                    cfg.stampede_callers,
                    size.bytes,
                )
                .await;
                runs.entry(who).or_default().push(run);
            }
        }
        for (who, _) in &sets {
            let errors: u64 = runs[who].iter().map(|r| r.errors).sum();
            sec.row(vec![
                size.label.to_owned(),
                format!(
                    "{}{}",
                    who.label(),
                    if errors > 0 {
                        format!(" ⚠ {errors} errors")
                    } else {
                        String::new()
                    }
                ),
                stat(&runs, *who, |r| r.body_runs as f64).show(|x| format!("{x:.0}")),
                stat(&runs, *who, |r| r.body_ns).ns(),
                stat(&runs, *who, |r| r.dist.p50).ns(),
                stat(&runs, *who, |r| r.dist.p99).ns(),
                stat(&runs, *who, |r| r.dist.max).ns(),
                stat(&runs, *who, |r| r.dist.p99 - r.body_ns).ns(),
                stat(&runs, *who, |r| r.before_body).ns(),
                stat(&runs, *who, |r| r.after_body_p99).ns(),
                if *who == Who::Hand {
                    "1.00 (baseline)".to_owned()
                } else {
                    ratio(&runs, *who, Who::Hand, |r| r.dist.p99).ratio()
                },
                runs[who].last().map_or("–".to_owned(), |r| {
                    if r.cmds.total == 0 {
                        "0".to_owned()
                    } else {
                        format!("{} ({})", r.cmds.total, r.cmds.per_call(1))
                    }
                }),
            ]);
        }
        if size.bytes == TARGET_SIZE {
            let body_runs = stat(&runs, Who::Ours, |r| r.body_runs as f64);
            report.target(
                "stampede: the body runs once",
                format!(
                    "{} executions per round (max over {} rounds: {:.0}; hand-written + lock: {}, `cached`: {})",
                    body_runs.show(|x| format!("{x:.0}")),
                    body_runs.rounds,
                    body_runs.max,
                    stat(&runs, Who::HandLock, |r| r.body_runs as f64).show(|x| format!("{x:.0}")),
                    stat(&runs, Who::Cached, |r| r.body_runs as f64).show(|x| format!("{x:.0}")),
                ),
                Some(body_runs.max == 1.0),
            );
            let p99 = stat(&runs, Who::Ours, |r| r.dist.p99);
            let over = stat(&runs, Who::Ours, |r| r.dist.p99 - r.body_ns);
            let body = stat(&runs, Who::Ours, |r| r.body_ns);
            report.target(
                "stampede: caller p99 ≤ body time + 5 ms",
                format!(
                    "p99 {} = body {} + {} (the body starts {} after the first caller; p99 of caller end − body end {}; nominal body {}; the floor — one in-process single flight, no cache — p99 − body: {}; memory backend: {}; hand-written + lock: {})",
                    p99.ns(),
                    body.ns(),
                    // Two decimals: the median is compared with 5 ms, and "5.0 ms" may be over.
                    over.show(|x| format!("{:.2} ms", x / 1e6)),
                    stat(&runs, Who::Ours, |r| r.before_body).ns(),
                    stat(&runs, Who::Ours, |r| r.after_body_p99).ns(),
                    fmt_ns(BODY_TIME.as_nanos() as f64),
                    stat(&runs, Who::Floor, |r| r.dist.p99 - r.body_ns).ns(),
                    stat(&runs, Who::Memory, |r| r.dist.p99 - r.body_ns).ns(),
                    stat(&runs, Who::HandLock, |r| r.dist.p99 - r.body_ns).ns(),
                ),
                Some(over.med <= 5e6),
            );
        }
    }
    sec.note("Unpinned: the bench and redis-server on every CPU.");
    sec.note(format!("The four instances stand for four processes: each has its own connection(s); ours' four `Cache`s share the namespace, `cached`'s four functions share the key prefix. The memory backend shares nothing between instances, so up to {n} executions are expected there."));
    sec.note("The floor is what any cache of this scenario costs at least in this process: one `tokio::sync::OnceCell` shared by all 1000 callers, the first runs the body, the others wait on the cell (woken when it is set) and each clones the value — no key, no Redis, no lease, no pub/sub. Its p99 − body time is the machine's: waking 999 tasks and cloning 999 values (45 allocations each at 1 KiB) on 2 shared cores.");
    sec.note("Redis commands: every command Redis executed during the last round's stampede (`INFO commandstats`; a script's inner commands included), for all callers together.");
    sec.note(format!("body time: the longest execution of the body in the round, measured ({} ms `tokio::time::sleep` + building the value; the timer rounds up to the next millisecond). Callers start their clock when they leave the barrier.", BODY_TIME.as_millis()));
    sec.note("hand-written + guides' lock: `GET`; on a miss `SET {key}:lock <token> NX PX 5000`; the holder runs the body, `SET EX`s the value and `DEL`s the lock; the others sleep 50 ms and start over.");
    report.sections.push(sec);
}

// ---------------------------------------------------------------------------------------------
// Scenario 5: Redis paused.

struct PausedRun {
    all: Dist,
    /// Ours: the calls made while the breaker was open.
    open: Option<Dist>,
    done: usize,
    errors: usize,
}

#[allow(clippy::too_many_arguments)]
async fn paused_pass(
    server: Option<&tests::RedisServer>,
    url: &str,
    client: Arc<Client>,
    size: u32,
    calls: usize,
    budget: Option<Duration>,
) -> PausedRun {
    // A key that is cached, so that a healthy Redis would answer with a hit.
    for _ in 0..2 {
        let _ = client.get("paused", size, 1).await;
    }
    if let Some(server) = server {
        server.pause();
    }
    let run = tokio::spawn(async move {
        let started = Instant::now();
        let (mut all, mut open) = (Vec::with_capacity(calls), Vec::new());
        let mut errors = 0;
        for _ in 0..calls {
            if budget.is_some_and(|b| started.elapsed() >= b) {
                break;
            }
            let breaker_open = client.cache().is_some_and(|c| c.stats().breaker_open);
            let t = Instant::now();
            let result =
                tokio::time::timeout(Duration::from_secs(2), client.get("paused", size, 1)).await;
            let ns = t.elapsed().as_nanos() as u64;
            all.push(ns);
            if breaker_open {
                open.push(ns);
            }
            errors += usize::from(!matches!(result, Ok(Ok(_))));
            drop(black_box(result));
        }
        let done = all.len();
        PausedRun {
            all: dist(&mut all),
            open: client.cache().map(|_| dist(&mut open)),
            done,
            errors,
        }
    })
    .await
    .expect("paused task");
    if let Some(server) = server {
        server.resume();
        wait_ready(url).await;
        // Let the answers to the requests that timed out drain.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    run
}

pub(crate) async fn paused(env: &Env, cfg: &Config, report: &mut Report) {
    // Pause the bench's own server; with REDIS_URL, start one to pause.
    let own;
    let (server, url) = match &env.server {
        Some(s) => (s, env.url.clone()),
        None => {
            eprintln!("REDIS_URL is set: starting a redis-server of our own to pause");
            own = tokio::task::spawn_blocking(tests::RedisServer::spawn)
                .await
                .expect("spawn redis-server");
            let url = own.url();
            (&own, url)
        }
    };
    let _ = FAULT_URL.set(url.clone());
    let timeout = cfg.paused_timeout;
    let who_all = [Who::Hand, Who::Ours, Who::Cached, Who::Memory, Who::Direct];
    let mut sec = Section::new(
        format!(
            "Redis paused (SIGSTOP) for the duration of {} sequential calls of a cached key, {} rounds",
            cfg.paused_calls, cfg.paused_rounds
        ),
        vec![
            "value",
            "contender",
            "Redis timeout",
            "calls done",
            "errors returned",
            "p50",
            "p99",
            "total",
            "total ÷ hand-written",
            "added per call over the body, p50 (mean)",
        ],
    );
    // Pinned like the other single-task scenarios (only when pausing the bench's own server).
    let pinned = if env.server.is_some() {
        env.pin(cfg)
    } else {
        None
    };
    for size in SIZES {
        eprintln!("redis paused, {}", size.label);
        let mut runs: Runs<PausedRun> = HashMap::new();
        for round in 0..cfg.paused_rounds {
            for who in rotated(&who_all, round) {
                let client = Arc::new(match who {
                    Who::Hand => Client::Hand(
                        Hand::connect(&url, "hand-p", Some(timeout), false)
                            .await
                            .expect("connect"),
                    ),
                    Who::Ours => Client::Ours(Ours {
                        cache: redis_cache(&url, "ours-p", Some(timeout)).await,
                    }),
                    Who::Cached => Client::Cached(CachedFn::Fault),
                    Who::Memory => Client::Ours(Ours {
                        cache: memory_cache().await,
                    }),
                    _ => Client::Direct,
                });
                let uses_redis = matches!(who, Who::Hand | Who::Ours | Who::Cached);
                let budget = (who == Who::Cached).then_some(cfg.cached_budget);
                let run = paused_pass(
                    uses_redis.then_some(server),
                    &url,
                    client,
                    size.bytes,
                    cfg.paused_calls,
                    budget,
                )
                .await;
                runs.entry(who).or_default().push(run);
            }
        }
        let direct = &runs[&Who::Direct];
        let added = |who: Who, f: &dyn Fn(&Dist) -> f64| {
            agg(runs[&who].iter().zip(direct).map(|(r, d)| {
                let calls = if who == Who::Ours {
                    r.open.as_ref().unwrap_or(&r.all)
                } else {
                    &r.all
                };
                f(calls) - f(&d.all)
            }))
        };
        let total = |r: &PausedRun| r.all.mean * cfg.paused_calls as f64;
        for who in who_all {
            let rs = &runs[&who];
            let done = agg(rs.iter().map(|r| r.done as f64));
            let extrapolated = rs.iter().any(|r| r.done < cfg.paused_calls);
            sec.row(vec![
                size.label.to_owned(),
                who.label().to_owned(),
                match who {
                    Who::Hand => format!("tokio timeout {} ms per command", timeout.as_millis()),
                    Who::Ours => format!(
                        "`op_timeout` {} ms, default breaker (5 failures, 1 s)",
                        timeout.as_millis()
                    ),
                    Who::Cached => "none of its own: redis-rs' default response timeout; outer bound 2 s per call".to_owned(),
                    _ => "n/a (no Redis)".to_owned(),
                },
                format!("{}/{}", done.show(|x| format!("{x:.0}")), cfg.paused_calls),
                agg(rs.iter().map(|r| r.errors as f64)).show(|x| format!("{x:.0}")),
                stat(&runs, who, |r| r.all.p50).ns(),
                stat(&runs, who, |r| r.all.p99).ns(),
                format!(
                    "{}{}",
                    if extrapolated { "≈ " } else { "" },
                    stat(&runs, who, total).ns()
                ),
                if who == Who::Hand {
                    "1.00 (baseline)".to_owned()
                } else {
                    ratio(&runs, who, Who::Hand, total).ratio()
                },
                if who == Who::Direct {
                    "0 (baseline)".to_owned()
                } else {
                    format!(
                        "{} ({})",
                        added(who, &|d| d.p50).ns(),
                        added(who, &|d| d.mean).ns()
                    )
                },
            ]);
        }
        if size.bytes == TARGET_SIZE {
            let p50 = added(Who::Ours, &|d| d.p50);
            let mean = added(Who::Ours, &|d| d.mean);
            let open_calls = agg(runs[&Who::Ours]
                .iter()
                .map(|r| r.open.as_ref().map_or(0.0, |d| d.n as f64)));
            report.target(
                "Redis paused: once the breaker is open, added latency per call ≤ 5 µs over the body",
                format!(
                    "{} at p50 ({} mean) over {} open-breaker calls of {}; hand-written {}",
                    p50.ns(),
                    mean.ns(),
                    open_calls.show(|x| format!("{x:.0}")),
                    cfg.paused_calls,
                    added(Who::Hand, &|d| d.p50).ns(),
                ),
                Some(p50.med <= 5_000.0),
            );
        }
    }
    sec.note(if env.server.is_some() {
        env.pin_note(cfg, pinned.is_some())
    } else {
        "Not pinned: a redis-server of the bench's own, since REDIS_URL's cannot be paused."
    });
    drop(pinned);
    sec.note(format!("Redis is stopped with SIGSTOP after the key is cached and continued after the calls: connections stay open and nothing is answered. A failed read runs the body (hand-written and ours); `cached` returns the Redis error to its caller instead (`errors returned`), without running the body. `cached` has no timeout of its own: it waits for redis-rs' response timeout, so its calls are stopped after {:.1} s per round and its total is extrapolated from the calls done (≈).", cfg.cached_budget.as_secs_f64()));
    sec.note("added per call: the contender's per-call latency minus the body's (called directly in the same round); for ours, only over the calls made while the breaker was open (the first 5 calls each wait out `op_timeout` to open it).");
    report.sections.push(sec);
}
