//! cached-runtime side by side with a hand-written cache-aside and the `cached` crate, against
//! one `redis-server`, in one run. BENCHMARKS.md describes the method and holds the latest run.
//!
//! ```text
//! cargo run --release -p benches                      # full run (several minutes)
//! cargo run --release -p benches -- --smoke           # every scenario, tiny counts (CI)
//! cargo run --release -p benches -- --scenario miss   # one scenario
//! cargo run --release -p benches -- --scenario cluster  # the three cluster scenarios
//! ```
//!
//! Starts its own `redis-server` on a free loopback port (or uses `REDIS_URL`), and for the
//! cluster scenarios a Redis Cluster of three of them; prints a markdown table per scenario and
//! the product targets as met or missed in this run. Progress goes to stderr; the report to
//! stdout (and to `--out FILE`).

mod cluster;
mod contenders;
mod pin;
mod profile;
mod proxy;
mod put;
mod redis_util;
mod report;
mod scenarios;
mod sliding;
mod stats;
mod tags;
mod value;

use std::{
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use contenders::{CachedFn, MAIN_URL, PROXY_URL};
use report::Report;
use scenarios::Env;

const SCENARIOS: [&str; 11] = [
    "hit-latency",
    "sliding",
    "throughput",
    "miss",
    "stampede",
    "paused",
    "tags",
    "write-through",
    "cluster-hit-latency",
    "cluster-stampede",
    "cluster-events",
];

/// `--scenario cluster`: every scenario on the Redis Cluster.
const CLUSTER_SCENARIOS: [&str; 3] = ["cluster-hit-latency", "cluster-stampede", "cluster-events"];

/// Counts and durations of a run.
pub(crate) struct Config {
    pub(crate) smoke: bool,
    /// `--scenario`s given (none: all of them).
    pub(crate) only: Vec<String>,
    pub(crate) out: Option<PathBuf>,
    /// Pin the bench and redis-server to one CPU for the single-task scenarios.
    pub(crate) pin: bool,
    pub(crate) rounds: usize,
    /// Rounds of the hit-latency scenario at 100 KiB (the longest: 20,000 calls of ~0.3 ms).
    pub(crate) big_rounds: usize,
    pub(crate) hit_warmup: usize,
    pub(crate) hit_calls: usize,
    pub(crate) tput_tasks: usize,
    pub(crate) tput_warmup: Duration,
    pub(crate) tput_duration: Duration,
    pub(crate) tput_slices: usize,
    pub(crate) miss_warmup: usize,
    pub(crate) miss_calls: usize,
    pub(crate) count_calls: usize,
    pub(crate) stampede_callers: usize,
    pub(crate) stampede_instances: usize,
    pub(crate) paused_calls: usize,
    pub(crate) paused_rounds: usize,
    pub(crate) paused_timeout: Duration,
    pub(crate) cached_budget: Duration,
    /// Events published per pass of the cluster's event scenario, sequentially and then again
    /// by `events_tasks` concurrent tasks.
    pub(crate) events_messages: usize,
    pub(crate) events_tasks: usize,
    /// Events published about a millisecond apart per pass, for their delivery latency.
    pub(crate) events_paced: usize,
    /// `--profile WHAT`: see `profile.rs`.
    pub(crate) profile: Option<String>,
    pub(crate) profile_calls: usize,
    /// `--extra-subscribers N`: N more idle `Cache`s in ours' namespace (experiment: the cost
    /// of announcing every fill to every instance).
    pub(crate) extra_subscribers: usize,
}

impl Config {
    fn full() -> Self {
        Config {
            smoke: false,
            only: Vec::new(),
            out: None,
            pin: true,
            rounds: 5,
            big_rounds: 3,
            hit_warmup: 2_000,
            hit_calls: 20_000,
            tput_tasks: 64,
            tput_warmup: Duration::from_millis(100),
            tput_duration: Duration::from_millis(1_200),
            tput_slices: 4,
            miss_warmup: 20,
            miss_calls: 1_000,
            count_calls: 200,
            stampede_callers: 1_000,
            stampede_instances: 4,
            paused_calls: 200,
            paused_rounds: 3,
            paused_timeout: Duration::from_millis(50),
            cached_budget: Duration::from_secs(2),
            events_messages: 20_000,
            events_tasks: 64,
            events_paced: 500,
            profile: None,
            profile_calls: 20_000,
            extra_subscribers: 0,
        }
    }

    fn smoke() -> Self {
        Config {
            smoke: true,
            rounds: 1,
            big_rounds: 1,
            hit_warmup: 50,
            hit_calls: 300,
            tput_warmup: Duration::from_millis(50),
            tput_duration: Duration::from_millis(100),
            tput_slices: 1,
            miss_warmup: 5,
            miss_calls: 30,
            count_calls: 20,
            stampede_callers: 100,
            paused_calls: 10,
            paused_rounds: 1,
            cached_budget: Duration::from_millis(600),
            events_messages: 500,
            events_paced: 50,
            ..Config::full()
        }
    }

    fn from_args(args: impl IntoIterator<Item = String>) -> Result<Config, String> {
        let args: Vec<String> = args.into_iter().collect();
        let env_smoke = std::env::var("BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0");
        let mut cfg = if env_smoke || args.iter().any(|a| a == "--smoke") {
            Config::smoke()
        } else {
            Config::full()
        };
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--smoke" => {}
                "--scenario" => {
                    let name = it.next().ok_or("--scenario needs a name")?;
                    if name == "cluster" {
                        cfg.only.extend(CLUSTER_SCENARIOS.map(String::from));
                    } else if SCENARIOS.contains(&name.as_str()) {
                        cfg.only.push(name);
                    } else {
                        return Err(format!(
                            "unknown scenario `{name}`; one of: {}, or cluster (the three cluster-*)",
                            SCENARIOS.join(", ")
                        ));
                    }
                }
                "--rounds" => {
                    let n: usize = it
                        .next()
                        .and_then(|n| n.parse().ok())
                        .filter(|&n| n > 0)
                        .ok_or("--rounds needs a positive number")?;
                    cfg.rounds = n;
                    cfg.big_rounds = n.min(3);
                    cfg.paused_rounds = n.min(3);
                }
                "--no-pin" => cfg.pin = false,
                "--profile" => {
                    cfg.profile = Some(it.next().ok_or("--profile needs a name")?);
                }
                "--extra-subscribers" => {
                    cfg.extra_subscribers = it
                        .next()
                        .and_then(|n| n.parse().ok())
                        .ok_or("--extra-subscribers needs a number")?;
                }
                "--calls" => {
                    cfg.profile_calls = it
                        .next()
                        .and_then(|n| n.parse().ok())
                        .ok_or("--calls needs a number")?;
                }
                "--out" => cfg.out = Some(it.next().ok_or("--out needs a file")?.into()),
                "-h" | "--help" => return Err(usage()),
                other => return Err(format!("unknown argument `{other}`\n\n{}", usage())),
            }
        }
        Ok(cfg)
    }

    fn runs(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }

    fn runs_cluster(&self) -> bool {
        CLUSTER_SCENARIOS.iter().any(|s| self.runs(s))
    }
}

fn usage() -> String {
    format!(
        "usage: cargo run --release -p benches -- [--smoke] [--scenario NAME]... [--rounds N] [--no-pin] [--out FILE]\n\
         \n  --smoke          every scenario with tiny counts, in seconds (also: BENCH_SMOKE=1)\
         \n  --scenario NAME  only this one (may be repeated): {}, or cluster (the three cluster-*)\
         \n  --rounds N       rounds per scenario (default 5; paused and 100 KiB hit latency: at most 3)\
         \n  --no-pin         do not pin the bench and redis-server to one CPU in single-task scenarios\
         \n  --out FILE       also write the report (markdown) to FILE\
         \n  --extra-subscribers N   experiment: N more idle caches on ours' event channel\
         \n  --profile WHAT [--calls N]   one hot path in a loop, for callgrind (see profile.rs)\
         \n\nStarts its own redis-server (must be on PATH), or uses REDIS_URL; the cluster scenarios\
         \nalways start a cluster of their own (redis-server and redis-cli on PATH).",
        SCENARIOS.join(", ")
    )
}

fn main() -> ExitCode {
    let cfg = match Config::from_args(std::env::args().skip(1)) {
        Ok(cfg) => cfg,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    if let Some(what) = &cfg.profile {
        return profile::main(what, cfg.profile_calls);
    }
    let started = Instant::now();
    let redis_url = std::env::var("REDIS_URL")
        .ok()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    let server = match redis_url {
        Some(_) => None,
        None => {
            eprintln!("starting redis-server");
            Some(tests::RedisServer::spawn())
        }
    };
    let url = redis_url.unwrap_or_else(|| server.as_ref().map(|s| s.url()).unwrap_or_default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let out = cfg.out.clone();
    let markdown = runtime.block_on(async move {
        tokio::spawn(run(cfg, url, server, started))
            .await
            .expect("the bench task")
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    println!("{markdown}");
    if let Some(path) = out
        && let Err(e) = std::fs::write(&path, &markdown)
    {
        eprintln!("cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

async fn run(
    cfg: Config,
    url: String,
    server: Option<tests::RedisServer>,
    started: Instant,
) -> String {
    // The side channel (INFO, PUBSUB NUMSUB) waits as long as it takes: on a loaded machine a
    // reply can take longer than redis-rs's default response timeout.
    let admin = redis::Client::open(url.as_str())
        .expect("a valid REDIS_URL")
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("cannot connect to redis");
    let redis_version = redis_util::server_info(&admin, "redis_version").await;
    let proxy = proxy::Proxy::start(&url).await.expect("start the proxy");
    let _ = MAIN_URL.set(url.clone());
    let _ = PROXY_URL.set(proxy.url().to_owned());
    // Ours through the proxy in a namespace of its own: one `Cache` per event channel, so
    // that a fill is announced to exactly one subscriber, as for a single app instance.
    let main = scenarios::contenders(&url, CachedFn::Main, true, "ours").await;
    let counted = scenarios::contenders(proxy.url(), CachedFn::Proxy, false, "ours-rt").await;
    let mut extra = Vec::new();
    for _ in 0..cfg.extra_subscribers {
        extra.push(scenarios::redis_cache(&url, "ours", None).await);
    }
    let env = Env {
        url: url.clone(),
        admin,
        server,
        main,
        proxy,
        counted,
        _extra: extra,
    };

    let mut report = Report {
        preamble: preamble(&cfg, &env, &redis_version),
        ..Report::default()
    };
    if cfg.runs("hit-latency") {
        scenarios::hit_latency(&env, &cfg, &mut report).await;
    }
    if cfg.runs("sliding") {
        sliding::sliding(&env, &cfg, &mut report).await;
    }
    if cfg.runs("throughput") {
        scenarios::throughput(&env, &cfg, &mut report).await;
    }
    if cfg.runs("miss") {
        scenarios::miss(&env, &cfg, &mut report).await;
    }
    if cfg.runs("stampede") {
        scenarios::stampede(&env, &cfg, &mut report).await;
    }
    if cfg.runs("paused") {
        scenarios::paused(&env, &cfg, &mut report).await;
    }
    if cfg.runs("tags") {
        tags::tags(&env, &cfg, &mut report).await;
    }
    if cfg.runs("write-through") {
        put::write_through(&env, &cfg, &mut report).await;
    }
    if cfg.runs_cluster() {
        run_cluster(&cfg, &mut report, &redis_version).await;
    }
    let mut md = report.markdown();
    md.push_str(&format!(
        "\nwall time: {:.1} s\n",
        started.elapsed().as_secs_f64()
    ));
    md
}

/// The scenarios on a Redis Cluster of the bench's own, started here and stopped after them.
/// If it cannot be started (no `redis-cli`, say), the report says so and the run goes on.
async fn run_cluster(cfg: &Config, report: &mut Report, redis_version: &str) {
    eprintln!("starting a Redis Cluster of {} nodes", cluster::PRIMARIES);
    let env = match cluster::ClusterEnv::start().await {
        Ok(env) => env,
        Err(e) => {
            eprintln!("cannot start the Redis Cluster: {e}");
            let mut sec =
                report::Section::new("Redis Cluster scenarios: not run", vec!["scenario", "why"]);
            for name in CLUSTER_SCENARIOS.iter().filter(|s| cfg.runs(s)) {
                sec.row(vec![
                    (*name).to_owned(),
                    format!(
                        "⚠ the bench could not start its Redis Cluster: {}",
                        e.replace('\n', " ")
                    ),
                ]);
            }
            report.sections.push(sec);
            return;
        }
    };
    if cfg.runs("cluster-hit-latency") {
        cluster::hit_latency(&env, cfg, report, redis_version).await;
    }
    if cfg.runs("cluster-stampede") {
        cluster::stampede(&env, cfg, report, redis_version).await;
    }
    if cfg.runs("cluster-events") {
        cluster::events(&env, cfg, report, redis_version).await;
    }
    // The caches' background tasks let go of the nodes before they are killed.
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(env);
}

fn preamble(cfg: &Config, env: &Env, redis_version: &str) -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("unknown CPU");
    let mem_kib: f64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let sizes = value::SIZES
        .iter()
        .map(|s| {
            format!(
                "{} → {} B",
                s.label,
                value::encoded_len(&value::make_value(s.bytes, 1))
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let command = match (cfg.only.as_slice(), cfg.smoke) {
        ([], false) => "cargo run --release -p benches".to_owned(),
        ([], true) => "cargo run --release -p benches -- --smoke".to_owned(),
        (only, smoke) => {
            let cluster = CLUSTER_SCENARIOS
                .iter()
                .all(|s| only.iter().any(|o| o == s));
            let mut names: Vec<&str> = only
                .iter()
                .map(String::as_str)
                .filter(|o| !(cluster && CLUSTER_SCENARIOS.contains(o)))
                .collect();
            if cluster {
                names.push("cluster");
            }
            format!(
                "cargo run --release -p benches --{}{}",
                if smoke { " --smoke" } else { "" },
                names
                    .iter()
                    .map(|n| format!(" --scenario {n}"))
                    .collect::<String>()
            )
        }
    };
    let mut lines = vec![
        format!(
            "## {} run\n",
            if cfg.smoke { "Smoke" } else { "Full" }
        ),
        format!("- command: `{command}`"),
        format!(
            "- machine: {cpus} CPUs ({cpu}), {:.1} GiB RAM, Linux {}",
            mem_kib / 1024.0 / 1024.0,
            kernel.trim()
        ),
        format!(
            "- versions: {}; redis-server {redis_version} ({}); cached-runtime {} at commit {}; cached {} (values in MessagePack via rmp-serde {}); redis-rs {}; tokio {}; bincode {}",
            env!("BENCH_RUSTC_VERSION"),
            if env.server.is_some() {
                "spawned by the bench on 127.0.0.1"
            } else {
                "REDIS_URL"
            },
            env!("BENCH_V_CACHED_RUNTIME"),
            env!("BENCH_GIT_COMMIT"),
            env!("BENCH_V_CACHED"),
            env!("BENCH_V_RMP_SERDE"),
            env!("BENCH_V_REDIS"),
            env!("BENCH_V_TOKIO"),
            env!("BENCH_V_BINCODE"),
        ),
        format!(
            "- tokio multi-thread runtime, {cpus} worker threads; the bench, its tasks and redis-server share the machine"
        ),
        format!("- allocator: {}", allocator()),
        format!("- value sizes (a struct with strings and vectors; bincode length): {sizes}"),
        "- contenders: hand-written = redis-rs multiplexed connection, `GET` + bincode decode on a hit, `SET EX` on a miss; ours = `#[cache_aside]` with default options (lock on) on a `Cache` (one `ConnectionManager`); `cached` = `#[concurrent_cached]` on an `AsyncRedisCache` (one multiplexed connection per function); ours on the memory backend for scale".to_owned(),
        "- each figure: median across rounds (min–max); a ratio is taken within each round against the hand-written contender of that round, then its median (min–max) across rounds".to_owned(),
    ];
    if cfg.extra_subscribers > 0 {
        lines.push(format!(
            "- experiment: {} extra idle `Cache`s in ours' namespace (`--extra-subscribers`), each subscribed to its event channel",
            cfg.extra_subscribers
        ));
    }
    lines
}

/// The allocator behind Rust's `System` (the bench sets no global allocator): glibc's malloc,
/// unless another one is preloaded (`LD_PRELOAD=…/libjemalloc.so.2`; see BENCHMARKS.md).
fn allocator() -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let preloaded = std::env::var("LD_PRELOAD").unwrap_or_default();
    for (lib, name) in [
        ("libjemalloc", "jemalloc"),
        ("libmimalloc", "mimalloc"),
        ("libtcmalloc", "tcmalloc"),
    ] {
        if maps.contains(lib) {
            return format!("{name}, preloaded (`LD_PRELOAD={}`)", preloaded.trim());
        }
    }
    "the system's malloc (glibc; Rust's default `System` allocator)".to_owned()
}
