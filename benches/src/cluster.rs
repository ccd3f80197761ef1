//! The scenarios on a Redis Cluster of the bench's own (3 primaries, no replicas, on
//! loopback): hit latency and the cold-key stampede with the standalone scenarios' value,
//! counts and method, and the cost of the event channel's design — classic `PUBLISH`, which a
//! cluster broadcasts over its bus to every node, against sharded `SPUBLISH`, which stays in
//! the shard that owns the channel's slot.

use std::{
    collections::HashMap,
    hint::black_box,
    io::{self, BufRead, BufReader, Write as _},
    net::{SocketAddr, TcpStream},
    sync::{
        Arc, Barrier,
        atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    thread,
    time::{Duration, Instant},
};

use cached_runtime::Cache;
use redis::{
    aio::MultiplexedConnection,
    cluster_async::ClusterConnection,
    cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr},
};

use crate::{
    Config,
    contenders::{BODY_TIME, Client, ClusterSetup, Floor, Hand, Ours},
    pin::Pinned,
    redis_util::{
        self, CLUSTER_SLOTS, LocalCluster, commandstats_sum, cpu_seconds, delta, info_sum,
        key_slot, slot_tags,
    },
    report::{Report, Section},
    scenarios::{
        Contenders, HIT_SLICES, HOT_KEYS, LatencyRun, Runs, StampedeRun, Who, anomalies, fresh_ids,
        hot_id, latency_pass, prime, ratio, rotated, stampede_pass, stat,
    },
    stats::{Agg, Dist, agg, dist, fmt_ns},
    value::{SIZES, TARGET_SIZE, make_value},
};

/// Primaries of the bench's cluster.
pub(crate) const PRIMARIES: usize = 3;

/// The cluster and what the scenarios need of it.
pub(crate) struct ClusterEnv {
    cluster: LocalCluster,
    /// Seeds for the cluster clients: every node.
    urls: Vec<String>,
    /// One connection per node, in the cluster's node order, for `INFO` and `PUBSUB`.
    admins: Vec<MultiplexedConnection>,
    /// The node (index) serving each slot.
    owners: Vec<usize>,
}

impl ClusterEnv {
    /// Starts the cluster and connects to every node; `Err` says why that failed.
    pub(crate) async fn start() -> Result<ClusterEnv, String> {
        let cluster = tokio::task::spawn_blocking(|| LocalCluster::start(PRIMARIES))
            .await
            .map_err(|e| format!("cluster start-up task: {e}"))??;
        let mut admins = Vec::new();
        for url in cluster.urls() {
            // As the standalone side channel: waits as long as it takes for a reply (INFO on a
            // loaded machine can take longer than redis-rs's default response timeout).
            let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
            let conn = client
                .get_multiplexed_async_connection_with_config(
                    &redis::AsyncConnectionConfig::new()
                        .set_response_timeout(Some(Duration::from_secs(30))),
                )
                .await
                .map_err(|e| format!("cannot connect to {url}: {e}"))?;
            admins.push(conn);
        }
        let owners = cluster.slot_owners()?;
        Ok(ClusterEnv {
            urls: cluster.urls(),
            cluster,
            admins,
            owners,
        })
    }

    /// The node serving `key`.
    fn owner(&self, key: &str) -> usize {
        self.owners[usize::from(key_slot(key.as_bytes()))]
    }

    /// Pins the bench and every node to CPU 0, as the single-task scenarios do.
    fn pin(&self, cfg: &Config) -> Option<Pinned> {
        if !cfg.pin {
            return None;
        }
        let mut pids = vec![std::process::id()];
        pids.extend(self.cluster.pids());
        Pinned::to_cpu(&pids, 0)
    }

    fn pin_note(cfg: &Config, pinned: bool) -> &'static str {
        if pinned {
            "The bench (all threads) and the three redis-server nodes pinned to CPU 0 with `taskset` for this scenario, as in the standalone single-task scenarios."
        } else if !cfg.pin {
            "Not pinned (`--no-pin`)."
        } else {
            "Not pinned: `taskset` is not available."
        }
    }

    /// Subscribers of a classic pub/sub channel on each node (`PUBSUB NUMSUB` is per node).
    async fn numsub(&self, channel: &str) -> Vec<u64> {
        let mut out = Vec::new();
        for admin in &self.admins {
            out.push(redis_util::numsub(admin, channel).await);
        }
        out
    }
}

/// The note every cluster section carries.
pub(crate) fn cluster_note(redis_version: &str) -> String {
    format!(
        "The cluster: {PRIMARIES} primaries, no replicas, each a `redis-server` {redis_version} started by the bench on a free loopback port (`--cluster-enabled yes --cluster-node-timeout 1000`, no persistence), joined with `redis-cli --cluster create … --cluster-replicas 0`; every client is given all {PRIMARIES} nodes as seeds."
    )
}

/// A `Cache` on the cluster, answering.
pub(crate) async fn cluster_cache(urls: &[String], namespace: &str) -> Cache {
    let cache = Cache::builder()
        .redis_cluster(urls.iter().cloned())
        .namespace(namespace)
        .build()
        .await
        .expect("a valid cluster cache configuration");
    // The cluster client connects in the background: wait until it answers.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = cache.ping().await {
        assert!(
            Instant::now() < deadline,
            "the cluster cache does not answer PING: {e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cache
}

async fn hand_cluster(
    urls: &[String],
    prefix: &'static str,
    setup: ClusterSetup,
) -> Hand<ClusterConnection> {
    Hand::connect_cluster(urls, prefix, setup)
        .await
        .expect("hand-written: connect to the cluster")
}

/// How many of `keys` each node serves, as `a/b/c`.
fn spread(env: &ClusterEnv, keys: impl IntoIterator<Item = String>) -> String {
    let mut counts = vec![0usize; env.admins.len()];
    for key in keys {
        counts[env.owner(&key)] += 1;
    }
    counts
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("/")
}

// ---------------------------------------------------------------------------------------------
// Hit latency on the cluster.

pub(crate) async fn hit_latency(
    env: &ClusterEnv,
    cfg: &Config,
    report: &mut Report,
    redis_version: &str,
) {
    let contenders: Contenders = vec![
        (
            Who::HandCluster,
            Arc::new(Client::HandCluster(
                hand_cluster(&env.urls, "hand-c", ClusterSetup::Plain).await,
            )),
        ),
        (
            Who::HandClusterLikeOurs,
            Arc::new(Client::HandCluster(
                hand_cluster(&env.urls, "hand-crt", ClusterSetup::LikeTheRuntime).await,
            )),
        ),
        (
            Who::OursCluster,
            Arc::new(Client::Ours(Ours {
                cache: cluster_cache(&env.urls, "ours-c").await,
            })),
        ),
    ];
    let mut sec = Section::new(
        format!(
            "Redis Cluster: hit latency — one task, {} calls per round in {HIT_SLICES} slices interleaved across contenders (each after {} warm-up calls), {} rounds ({} at 100 KiB)",
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
            "Redis commands per hit (INFO commandstats, all nodes)",
        ],
    );
    let pinned = env.pin(cfg);
    for size in SIZES {
        eprintln!("cluster: hit latency, {}", size.label);
        prime(&contenders, "hot", size.bytes).await;
        let rounds = if size.bytes > 64 * 1024 {
            cfg.big_rounds
        } else {
            cfg.rounds
        };
        let mut runs: Runs<LatencyRun> = HashMap::new();
        for round in 0..rounds {
            let mut slices: HashMap<Who, Vec<LatencyRun>> = HashMap::new();
            for slice in 0..HIT_SLICES {
                for (who, c) in rotated(&contenders, round + slice) {
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
        // Commands per hit: a separate pass of sequential calls, counted on every node.
        let mut counted = HashMap::new();
        for (who, c) in &contenders {
            let before = commandstats_sum(&env.admins).await;
            for i in 0..cfg.count_calls {
                let _ = black_box(c.get("hot", size.bytes, i as u64 % HOT_KEYS).await);
            }
            let cmds = delta(&before, &commandstats_sum(&env.admins).await);
            counted.insert(*who, cmds);
        }
        let calls = cfg.count_calls;
        for (who, _) in &contenders {
            let c = &counted[who];
            sec.row(vec![
                size.label.to_owned(),
                format!("{}{}", who.label(), anomalies(&runs[who], true)),
                stat(&runs, *who, |r| r.dist.mean).ns(),
                stat(&runs, *who, |r| r.dist.p50).ns(),
                stat(&runs, *who, |r| r.dist.p99).ns(),
                if *who == Who::HandCluster {
                    "1.00 (baseline)".to_owned()
                } else {
                    ratio(&runs, *who, Who::HandCluster, |r| r.dist.p50).ratio()
                },
                format!(
                    "{:.2} ({})",
                    c.total as f64 / calls as f64,
                    c.per_call(calls)
                ),
            ]);
        }
        if size.bytes == TARGET_SIZE {
            let r = ratio(&runs, Who::OursCluster, Who::HandCluster, |r| r.dist.p50);
            report.cluster_target(
                "cluster: hit latency p50 ≤ 1.05× hand-written (redis-rs `ClusterConnection`)",
                format!(
                    "{} ({} vs {}; p99 {} vs {}; the hand-written code on a client set up as the runtime's: {})",
                    r.ratio(),
                    stat(&runs, Who::OursCluster, |r| r.dist.p50).ns(),
                    stat(&runs, Who::HandCluster, |r| r.dist.p50).ns(),
                    stat(&runs, Who::OursCluster, |r| r.dist.p99).ns(),
                    stat(&runs, Who::HandCluster, |r| r.dist.p99).ns(),
                    ratio(&runs, Who::HandClusterLikeOurs, Who::HandCluster, |r| r.dist.p50)
                        .ratio(),
                ),
                Some(r.med <= 1.05),
            );
            let c = &counted[&Who::OursCluster];
            report.cluster_target(
                "cluster: one Redis command per hit",
                format!(
                    "{:.2} commands ({}) per hit, all nodes",
                    c.total as f64 / calls as f64,
                    c.per_call(calls)
                ),
                Some(c.total == calls as u64),
            );
        }
    }
    sec.note(ClusterEnv::pin_note(cfg, pinned.is_some()));
    drop(pinned);
    sec.note(cluster_note(redis_version));
    sec.note(format!(
        "hand-written: the standalone hand-written contender's code (`GET` + bincode decode) on one redis-rs `ClusterConnection` (`ClusterClient::new(seeds).get_async_connection()`); ours: `#[cache_aside]` with default options on `Cache::builder().redis_cluster(seeds)`. The {HOT_KEYS} hot keys of each are spread over the nodes ({} for ours' 1 KiB keys). The third contender is the hand-written code on a redis-rs client set up as the runtime sets up its own with the default options (connection timeout 1 s, response timeout 2298 ms on each node's connection and no overall request timeout, on a connection made in the background): it tells the client's settings from the runtime's own work.",
        spread(
            env,
            (0..HOT_KEYS).map(|id| format!("ours-c:hot:{TARGET_SIZE}:{id}"))
        )
    ));
    sec.note("Redis commands: `INFO commandstats` deltas summed over the nodes, over a separate pass of sequential calls. Round trips are not counted on the cluster: its clients connect to the addresses the nodes announce, so the loopback proxy cannot sit in between.");
    report.sections.push(sec);
}

// ---------------------------------------------------------------------------------------------
// Cold-key stampede on the cluster.

pub(crate) async fn stampede(
    env: &ClusterEnv,
    cfg: &Config,
    report: &mut Report,
    redis_version: &str,
) {
    let n = cfg.stampede_instances;
    let channel = "ours-cst:__events";
    let mut hand = Vec::new();
    let mut ours = Vec::new();
    for _ in 0..n {
        hand.push(Arc::new(Client::HandCluster(
            hand_cluster(&env.urls, "hand-cst", ClusterSetup::Plain).await,
        )));
        ours.push(Arc::new(Client::Ours(Ours {
            cache: cluster_cache(&env.urls, "ours-cst").await,
        })));
    }
    let floor = Arc::new(Client::Floor(Floor::default()));
    let sets: Vec<(Who, Vec<Arc<Client>>)> = vec![
        (Who::HandCluster, hand),
        (Who::OursCluster, ours),
        (Who::Floor, vec![floor; n]),
    ];
    // Every instance of ours subscribed before anything starts (on whichever node).
    let mut subscribed = env.numsub(channel).await;
    for _ in 0..200 {
        if subscribed.iter().sum::<u64>() >= n as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        subscribed = env.numsub(channel).await;
    }
    let subscriber_nodes: Vec<usize> = (0..subscribed.len())
        .filter(|&i| subscribed[i] > 0)
        .collect();
    for (_, instances) in &sets {
        for c in instances {
            let _ = c.get_slow("warm", 64, fresh_ids(1)).await;
        }
    }

    let mut sec = Section::new(
        format!(
            "Redis Cluster: cold-key stampede — {} concurrent callers of one cold key across {n} instances (a `Cache` or `ClusterConnection` each; {} callers per instance), body takes {} ms, {} rounds",
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
            "Redis commands, all nodes (last round)",
        ],
    );
    // Rounds whose key was served by a node holding ours' subscriptions, of all rounds.
    let (mut local_key, mut all_keys) = (0, 0);
    // Ours at ~1 KiB, per round: the node serving the key, and p99 − body.
    let mut per_round = Vec::new();
    for size in SIZES {
        eprintln!("cluster: stampede, {}", size.label);
        let mut runs: Runs<StampedeRun> = HashMap::new();
        for round in 0..cfg.rounds {
            for (who, instances) in rotated(&sets, round) {
                let run =
                    stampede_pass(&env.admins, &instances, cfg.stampede_callers, size.bytes).await;
                if who == Who::OursCluster {
                    all_keys += 1;
                    let key = format!("ours-cst:st:{}:{}", size.bytes, run.id);
                    let owner = env.owner(&key);
                    local_key += usize::from(subscriber_nodes.contains(&owner));
                    if size.bytes == TARGET_SIZE {
                        per_round.push(format!(
                            "node {}: {}",
                            owner + 1,
                            fmt_ns(run.dist.p99 - run.body_ns)
                        ));
                    }
                }
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
                if *who == Who::HandCluster {
                    "1.00 (baseline)".to_owned()
                } else {
                    ratio(&runs, *who, Who::HandCluster, |r| r.dist.p99).ratio()
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
            let body_runs = stat(&runs, Who::OursCluster, |r| r.body_runs as f64);
            report.cluster_target(
                "cluster stampede: the body runs once",
                format!(
                    "{} executions per round (max over {} rounds: {:.0}; hand-written: {})",
                    body_runs.show(|x| format!("{x:.0}")),
                    body_runs.rounds,
                    body_runs.max,
                    stat(&runs, Who::HandCluster, |r| r.body_runs as f64)
                        .show(|x| format!("{x:.0}")),
                ),
                Some(body_runs.max == 1.0),
            );
            let over = stat(&runs, Who::OursCluster, |r| r.dist.p99 - r.body_ns);
            report.cluster_target(
                "cluster stampede: caller p99 ≤ body time + 5 ms",
                format!(
                    "p99 {} = body {} + {} (the body starts {} after the first caller; p99 of caller end − body end {}; the floor — one in-process single flight, no cache — p99 − body: {}; hand-written: {})",
                    stat(&runs, Who::OursCluster, |r| r.dist.p99).ns(),
                    stat(&runs, Who::OursCluster, |r| r.body_ns).ns(),
                    over.show(|x| format!("{:.2} ms", x / 1e6)),
                    stat(&runs, Who::OursCluster, |r| r.before_body).ns(),
                    stat(&runs, Who::OursCluster, |r| r.after_body_p99).ns(),
                    stat(&runs, Who::Floor, |r| r.dist.p99 - r.body_ns).ns(),
                    stat(&runs, Who::HandCluster, |r| r.dist.p99 - r.body_ns).ns(),
                ),
                Some(over.med <= 5e6),
            );
        }
    }
    sec.note("Unpinned: the bench and the nodes on every CPU.");
    sec.note(cluster_note(redis_version));
    sec.note(format!(
        "The four instances stand for four processes, each with its own cluster connection; ours' four `Cache`s share the namespace. Their event subscriptions (`PUBSUB NUMSUB {channel}` per node, in node order): {}. The stampede key's slot was on a node holding these subscriptions in {local_key} of {all_keys} stampedes; in the others the fill event reached them over the cluster bus. Ours at 1 KiB, round by round, the node serving the key and p99 − body: {}.",
        subscribed
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("/"),
        per_round.join("; ")
    ));
    sec.note("The floor, the body and the figures are those of the standalone stampede (same callers, body, clocks; see its notes). Redis commands: every command the nodes executed during the last round's stampede, summed.");
    report.sections.push(sec);
}

// ---------------------------------------------------------------------------------------------
// The event channel: `PUBLISH` against `SPUBLISH`.

/// How events are published and who listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Fanout {
    sharded: bool,
    /// Application instances listening: classic, one subscription each, on node `i % 3`;
    /// sharded, one subscription per shard each (on every node, to its slots' channels).
    instances: usize,
}

impl Fanout {
    fn label(self) -> String {
        match (self.sharded, self.instances) {
            (false, 1) => "`PUBLISH` on one channel; 1 instance: one subscription, on node 1".to_owned(),
            (true, 1) => "`SPUBLISH` on the key's slot's channel; 1 instance: one connection per shard (3), each `SSUBSCRIBE`d to its shard's slot channels".to_owned(),
            (false, n) => format!("`PUBLISH` on one channel; {n} instances: one subscription each, on nodes 1…{n}"),
            (true, n) => format!("`SPUBLISH` on the key's slot's channel; {n} instances: one connection per shard each ({})", n * PRIMARIES),
        }
    }

    /// The classic contender with the same listeners (the ratios' baseline).
    fn baseline(self) -> Fanout {
        Fanout {
            sharded: false,
            ..self
        }
    }
}

const EVENT_CHANNEL: &str = "cbench-ev:__events";
/// A fill event's prefix, as the runtime's scripts write it (`wire/event.rs`).
const FILL_PREFIX: &[u8] = b"\x01f:";
/// Passes so far: every pass has event keys and a stop message of its own, so that a message
/// of an earlier pass still on its way over the cluster bus is not taken for one of this pass.
static PASSES: AtomicU32 = AtomicU32::new(0);

/// The message that ends a pass's listeners.
fn stop_message(pass: u32) -> Vec<u8> {
    format!("stop:{pass}").into_bytes()
}

/// One pass of one contender at one event size.
struct EventsRun {
    /// Sequential publishes: each command's latency.
    latency: Dist,
    /// Concurrent publishes: messages per second.
    rate: f64,
    /// Back-to-back publishes: from before the command to its receipt by a subscriber.
    delivery: Dist,
    /// The same, for events published about every millisecond.
    delivery_paced: Dist,
    /// Receipts of both passes ÷ the receipts expected (one per message and instance).
    delivered: f64,
    /// Cluster-bus messages sent for pub/sub per message (concurrent pass, all nodes).
    bus: f64,
    /// CPU time of all nodes per message, µs (concurrent pass).
    cpu_us: f64,
    errors: u64,
}

/// One subscriber connection on a thread of its own: subscribes with `commands` (packed),
/// reads `confirmations` replies, then records `(sequence number, receipt)` of every event
/// until the stop message.
struct Subscriber {
    handle: thread::JoinHandle<Vec<(u32, Instant)>>,
}

impl Subscriber {
    fn spawn(
        pass: u32,
        port: u16,
        commands: Vec<u8>,
        confirmations: usize,
        ready: Arc<Barrier>,
        received: Arc<AtomicU64>,
    ) -> Subscriber {
        let handle = thread::spawn(move || {
            let subscribed = (|| -> io::Result<BufReader<TcpStream>> {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                // A safety net only: the stop message ends the loop.
                stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                stream.write_all(&commands)?;
                let mut reader = BufReader::new(stream);
                for _ in 0..confirmations {
                    if let Resp::Error(e) = read_resp(&mut reader)? {
                        return Err(io::Error::other(e));
                    }
                }
                Ok(reader)
            })();
            // Ready even if that failed: the pass then counts fewer receipts than expected.
            ready.wait();
            let mut out = Vec::new();
            let stop = stop_message(pass);
            let mut reader = match subscribed {
                Ok(reader) => reader,
                Err(e) => {
                    eprintln!("⚠ event listener on port {port}: cannot subscribe: {e}");
                    return out;
                }
            };
            loop {
                let mut parts = match read_resp(&mut reader) {
                    Ok(Resp::Array(parts)) => parts,
                    Ok(_) => continue,
                    Err(e) => {
                        eprintln!("⚠ event listener on port {port} stopped: {e}");
                        break;
                    }
                };
                // `message` / `smessage`, the channel, the payload.
                let Some(Resp::Bulk(payload)) = parts.pop() else {
                    continue;
                };
                let at = Instant::now();
                if payload == stop {
                    break;
                }
                if let Some((of, seq)) = parse_seq(&payload)
                    && of == pass
                {
                    out.push((seq, at));
                    received.fetch_add(1, Relaxed);
                }
            }
            out
        });
        Subscriber { handle }
    }
}

/// A RESP2 value, as a listener reads them.
enum Resp {
    Simple,
    Error(String),
    Int,
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Resp>),
}

/// Reads one RESP2 value. The listeners read their sockets themselves, with `std`'s reads,
/// which retry a read a signal interrupted (a socket with a read timeout is not restarted by
/// the kernel: `EINTR`).
fn read_resp(r: &mut impl BufRead) -> io::Result<Resp> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.len() < 3 || !line.ends_with(b"\r\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let text = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
    let number = || {
        text.parse::<i64>()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad RESP length"))
    };
    Ok(match line[0] {
        b'+' => Resp::Simple,
        b'-' => Resp::Error(text),
        b':' => Resp::Int,
        b'$' => match usize::try_from(number()?) {
            Ok(len) => {
                let mut bytes = vec![0; len + 2];
                r.read_exact(&mut bytes)?;
                bytes.truncate(len);
                Resp::Bulk(bytes)
            }
            Err(_) => Resp::Nil,
        },
        b'*' => match usize::try_from(number()?) {
            Ok(len) => Resp::Array((0..len).map(|_| read_resp(r)).collect::<Result<_, _>>()?),
            Err(_) => Resp::Nil,
        },
        _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "not RESP")),
    })
}

/// The pass and sequence number in an event's key (`\x01f:cbench-ev:<pass>:<seq>\0<value>`).
fn parse_seq(payload: &[u8]) -> Option<(u32, u32)> {
    let rest = payload.strip_prefix(FILL_PREFIX)?;
    let key_end = rest.iter().position(|&b| b == 0)?;
    let key = std::str::from_utf8(&rest[..key_end]).ok()?;
    let mut parts = key.rsplit(':');
    let seq = parts.next()?.parse().ok()?;
    let pass = parts.next()?.parse().ok()?;
    Some((pass, seq))
}

fn event_key(pass: u32, seq: u32) -> String {
    format!("cbench-ev:{pass}:{seq}")
}

fn event_payload(pass: u32, seq: u32, value: &[u8]) -> Vec<u8> {
    let key = event_key(pass, seq);
    let mut out = Vec::with_capacity(FILL_PREFIX.len() + key.len() + 1 + value.len());
    out.extend_from_slice(FILL_PREFIX);
    out.extend_from_slice(key.as_bytes());
    out.push(0);
    out.extend_from_slice(value);
    out
}

/// A route to the primary serving `key`'s slot.
fn route_to(key: &str) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
        key.as_bytes(),
        SlotAddr::Master,
    )))
}

struct Events {
    conn: ClusterConnection,
    /// The sharded channel of each slot: `cbench-ev:__events:{<tag>}`.
    channels: Vec<String>,
}

impl Events {
    /// Publishes `payload` as the event of `key`, on the primary serving `key`.
    async fn publish(&self, sharded: bool, key: &str, payload: &[u8]) -> redis::RedisResult<()> {
        let mut cmd = if sharded {
            let mut cmd = redis::cmd("SPUBLISH");
            cmd.arg(&self.channels[usize::from(key_slot(key.as_bytes()))]);
            cmd
        } else {
            let mut cmd = redis::cmd("PUBLISH");
            cmd.arg(EVENT_CHANNEL);
            cmd
        };
        cmd.arg(payload);
        self.conn
            .clone()
            .route_command(cmd, route_to(key))
            .await
            .map(drop)
    }
}

/// `SUBSCRIBE` / `SSUBSCRIBE` commands of one connection to node `node`, packed, and the
/// number of confirmations they get.
fn subscribe_commands(
    env: &ClusterEnv,
    events: &Events,
    sharded: bool,
    node: usize,
) -> (Vec<u8>, usize) {
    if !sharded {
        return (
            redis::cmd("SUBSCRIBE")
                .arg(EVENT_CHANNEL)
                .get_packed_command(),
            1,
        );
    }
    // One `SSUBSCRIBE` per slot: the channels of one command must share a slot.
    let mut packed = Vec::new();
    let mut count = 0;
    for slot in 0..usize::from(CLUSTER_SLOTS) {
        if env.owners[slot] == node {
            packed.extend(
                redis::cmd("SSUBSCRIBE")
                    .arg(&events.channels[slot])
                    .get_packed_command(),
            );
            count += 1;
        }
    }
    (packed, count)
}

/// The gap between two paced events (a tokio timer: about a millisecond or a little more).
const PACE: Duration = Duration::from_millis(1);

/// One task publishing the events `seqs` in turn, `pace` apart: each command's latency, and
/// when each was sent.
async fn publish_in_turn(
    pass: u32,
    events: &Arc<Events>,
    fanout: Fanout,
    payloads: &Arc<Vec<Vec<u8>>>,
    seqs: std::ops::Range<usize>,
    pace: Option<Duration>,
    errors: &Arc<AtomicU64>,
) -> (Dist, Vec<Instant>) {
    let (events, payloads, errors) = (events.clone(), payloads.clone(), errors.clone());
    tokio::spawn(async move {
        let mut samples = Vec::with_capacity(seqs.len());
        let mut sent = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(pace) = pace {
                tokio::time::sleep(pace).await;
            }
            let key = event_key(pass, seq as u32);
            let started = Instant::now();
            let result = events.publish(fanout.sharded, &key, &payloads[seq]).await;
            samples.push(started.elapsed().as_nanos() as u64);
            sent.push(started);
            errors.fetch_add(u64::from(result.is_err()), Relaxed);
        }
        (dist(&mut samples), sent)
    })
    .await
    .expect("publisher task")
}

/// Pub/sub messages the nodes sent each other over the cluster bus so far.
async fn bus_messages(env: &ClusterEnv) -> f64 {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("INFO");
    info_sum(&env.admins, &cmd, "cluster_stats_messages_publish_sent").await
        + info_sum(
            &env.admins,
            &cmd,
            "cluster_stats_messages_publishshard_sent",
        )
        .await
}

async fn events_pass(
    env: &ClusterEnv,
    events: &Arc<Events>,
    cfg: &Config,
    fanout: Fanout,
    value: &Arc<[u8]>,
) -> EventsRun {
    let ports = env.cluster.ports();
    let pass = PASSES.fetch_add(1, Relaxed);
    // Listeners: (node, commands, confirmations) per connection.
    let mut plan = Vec::new();
    for instance in 0..fanout.instances {
        if fanout.sharded {
            for node in 0..ports.len() {
                plan.push((node, subscribe_commands(env, events, true, node)));
            }
        } else {
            let node = instance % ports.len();
            plan.push((node, subscribe_commands(env, events, false, node)));
        }
    }
    let ready = Arc::new(Barrier::new(plan.len() + 1));
    let received = Arc::new(AtomicU64::new(0));
    let subscribers: Vec<Subscriber> = plan
        .into_iter()
        .map(|(node, (commands, confirmations))| {
            Subscriber::spawn(
                pass,
                ports[node],
                commands,
                confirmations,
                ready.clone(),
                received.clone(),
            )
        })
        .collect();
    {
        let ready = ready.clone();
        tokio::task::spawn_blocking(move || ready.wait())
            .await
            .expect("subscribers ready");
    }
    let n = cfg.events_messages;
    let paced = cfg.events_paced;
    // Sequence numbers: [0, n) sequential, [n, 2n) concurrent, [2n, 2n + paced) paced.
    let payloads: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..(2 * n + paced) as u32)
            .map(|seq| event_payload(pass, seq, value))
            .collect(),
    );
    let errors = Arc::new(AtomicU64::new(0));

    // 1. One task, back-to-back publishes, pinned like the other single-task passes.
    let pinned = env.pin(cfg);
    let (latency, sent) =
        publish_in_turn(pass, events, fanout, &payloads, 0..n, None, &errors).await;
    drop(pinned);

    // 2. Concurrent publishes, unpinned: messages per second, bus messages, the nodes' CPU.
    let (bus0, cpu0) = (bus_messages(env).await, cpu_seconds(&env.admins).await);
    let next = Arc::new(AtomicUsize::new(n));
    let started = Instant::now();
    let tasks: Vec<_> = (0..cfg.events_tasks)
        .map(|_| {
            let (events, payloads, errors, next) = (
                events.clone(),
                payloads.clone(),
                errors.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let seq = next.fetch_add(1, Relaxed);
                    if seq >= 2 * n {
                        return;
                    }
                    let key = event_key(pass, seq as u32);
                    let result = events.publish(fanout.sharded, &key, &payloads[seq]).await;
                    errors.fetch_add(u64::from(result.is_err()), Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("concurrent publisher");
    }
    let secs = started.elapsed().as_secs_f64();
    let (bus1, cpu1) = (bus_messages(env).await, cpu_seconds(&env.admins).await);

    // 3. One task, an event every millisecond or so, unpinned: how late a sporadic event is.
    let (_, sent_paced) = publish_in_turn(
        pass,
        events,
        fanout,
        &payloads,
        2 * n..2 * n + paced,
        Some(PACE),
        &errors,
    )
    .await;

    // Every receipt in, then stop the listeners.
    let expected = ((2 * n + paced) * fanout.instances) as u64;
    let deadline = Instant::now() + Duration::from_secs(3);
    while received.load(Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if fanout.sharded {
        // One stop per node, on the channel of a slot it serves.
        for node in 0..ports.len() {
            if let Some(slot) = env.owners.iter().position(|&o| o == node) {
                let mut cmd = redis::cmd("SPUBLISH");
                cmd.arg(&events.channels[slot]).arg(stop_message(pass));
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::new(slot as u16, SlotAddr::Master),
                ));
                let _ = events.conn.clone().route_command(cmd, route).await;
            }
        }
    } else {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(EVENT_CHANNEL).arg(stop_message(pass));
        let _ = events
            .conn
            .clone()
            .route_command(cmd, route_to("stop"))
            .await;
    }
    let receipts: Vec<Vec<(u32, Instant)>> = tokio::task::spawn_blocking(move || {
        subscribers
            .into_iter()
            .map(|s| s.handle.join().unwrap_or_default())
            .collect()
    })
    .await
    .expect("join subscribers");
    let total: usize = receipts.iter().map(Vec::len).sum();
    let delivery = |from: usize, sent: &[Instant]| {
        let mut late: Vec<u64> = receipts
            .iter()
            .flatten()
            .filter_map(|&(seq, at)| {
                let i = (seq as usize).checked_sub(from)?;
                let sent = sent.get(i)?;
                Some(at.saturating_duration_since(*sent).as_nanos() as u64)
            })
            .collect();
        dist(&mut late)
    };
    EventsRun {
        latency,
        rate: n as f64 / secs,
        delivery: delivery(0, &sent),
        delivery_paced: delivery(2 * n, &sent_paced),
        delivered: total as f64 / expected as f64,
        bus: (bus1 - bus0) / n as f64,
        cpu_us: (cpu1 - cpu0) * 1e6 / n as f64,
        errors: errors.load(Relaxed),
    }
}

pub(crate) async fn events(
    env: &ClusterEnv,
    cfg: &Config,
    report: &mut Report,
    redis_version: &str,
) {
    let conn = redis::cluster::ClusterClient::new(env.urls.clone())
        .expect("a valid cluster configuration")
        .get_async_connection()
        .await
        .expect("connect to the cluster");
    let tags = slot_tags();
    let events = Arc::new(Events {
        conn,
        channels: tags
            .iter()
            .map(|tag| format!("{EVENT_CHANNEL}:{{{tag}}}"))
            .collect(),
    });
    let fanouts: Vec<Fanout> = [1, PRIMARIES]
        .into_iter()
        .flat_map(|instances| [false, true].map(|sharded| Fanout { sharded, instances }))
        .collect();
    let mut sec = Section::new(
        format!(
            "Redis Cluster: event channel, `PUBLISH` vs `SPUBLISH` — per round and contender {} fill events published back to back by one task, {} more by {} concurrent tasks, then {} by one task about a millisecond apart; {} rounds",
            cfg.events_messages,
            cfg.events_messages,
            cfg.events_tasks,
            cfg.events_paced,
            cfg.rounds
        ),
        vec![
            "event",
            "publish, listeners",
            "publish p50",
            "publish p99",
            "p50 ÷ `PUBLISH`",
            "messages/s, concurrent",
            "÷ `PUBLISH`",
            "publish → receipt p50 (p99), back to back",
            "publish → receipt p50 (p99, max), one per ms",
            "receipts ÷ expected",
            "cluster-bus messages per event",
            "CPU of all nodes per event",
        ],
    );
    for size in SIZES.iter().filter(|s| s.bytes <= TARGET_SIZE) {
        let value = make_value(size.bytes, 1);
        let value: Arc<[u8]> = bincode::serde::encode_to_vec(&value, bincode::config::standard())
            .expect("a Value encodes")
            .into();
        // The length of a typical event of the run (the key's numbers vary in length).
        let event_len = event_payload(10, cfg.events_messages as u32, &value).len();
        eprintln!("cluster: events, {event_len} B");
        let mut runs: HashMap<Fanout, Vec<EventsRun>> = HashMap::new();
        for round in 0..cfg.rounds {
            for fanout in rotated(&fanouts, round) {
                let run = events_pass(env, &events, cfg, fanout, &value).await;
                runs.entry(fanout).or_default().push(run);
            }
        }
        let of = |f: Fanout, g: &dyn Fn(&EventsRun) -> f64| agg(runs[&f].iter().map(g));
        let vs = |f: Fanout, g: &dyn Fn(&EventsRun) -> f64| -> Agg {
            agg(runs[&f]
                .iter()
                .zip(&runs[&f.baseline()])
                .map(|(a, b)| g(a) / g(b)))
        };
        for &fanout in &fanouts {
            let errors: u64 = runs[&fanout].iter().map(|r| r.errors).sum();
            let short = runs[&fanout].iter().filter(|r| r.delivered < 1.0).count();
            sec.row(vec![
                format!("fill event of a {} value (~{event_len} B)", size.label),
                format!(
                    "{}{}{}",
                    fanout.label(),
                    if errors > 0 {
                        format!(" ⚠ {errors} errors")
                    } else {
                        String::new()
                    },
                    if short > 0 {
                        format!(" ⚠ receipts missing in {short} rounds")
                    } else {
                        String::new()
                    }
                ),
                of(fanout, &|r| r.latency.p50).ns(),
                of(fanout, &|r| r.latency.p99).ns(),
                if fanout.sharded {
                    vs(fanout, &|r| r.latency.p50).ratio()
                } else {
                    "1.00 (baseline)".to_owned()
                },
                of(fanout, &|r| r.rate).show(|x| format!("{x:.0}")),
                if fanout.sharded {
                    vs(fanout, &|r| r.rate).ratio()
                } else {
                    "1.00 (baseline)".to_owned()
                },
                format!(
                    "{} ({})",
                    of(fanout, &|r| r.delivery.p50).ns(),
                    of(fanout, &|r| r.delivery.p99).ns()
                ),
                format!(
                    "{} ({}, {})",
                    of(fanout, &|r| r.delivery_paced.p50).ns(),
                    of(fanout, &|r| r.delivery_paced.p99).ns(),
                    of(fanout, &|r| r.delivery_paced.max).ns()
                ),
                of(fanout, &|r| r.delivered).show(|x| format!("{x:.3}")),
                of(fanout, &|r| r.bus).show(|x| format!("{x:.2}")),
                of(fanout, &|r| r.cpu_us * 1e3).ns(),
            ]);
        }
    }
    sec.note(cluster_note(redis_version));
    sec.note(format!(
        "A fill event as the runtime's scripts publish it: `\\x01f:<key>\\0<value>`, the value being the bincode encoding of the bench's value. `PUBLISH` goes to `{EVENT_CHANNEL}` (one channel, as the runtime's `<namespace>:__events`); a cluster forwards every `PUBLISH` over its bus to every other node, whoever subscribes there. `SPUBLISH` goes to the channel of the key's slot, `{EVENT_CHANNEL}:{{<tag>}}` with a tag hashing to that slot, and stays in that shard (with replicas it would also go to the shard's replicas). A channel per slot because a Lua script may only `SPUBLISH` to a channel in the slot of its keys (Redis answers `Script attempted to access a non local key`): a sharded listener `SSUBSCRIBE`s to the channels of every slot of its node, {} commands of one channel each (the channels of one command must share a slot).",
        CLUSTER_SLOTS as usize / PRIMARIES
    ));
    sec.note("Every publish is sent, as in the runtime's scripts, to the primary serving the event's key (keys `cbench-ev:<pass>:<n>`, spread over the nodes), on one redis-rs `ClusterConnection` with `route_command`; the listeners are blocking sockets on threads of their own, speaking RESP themselves. The back-to-back pass is pinned with the nodes to CPU 0 like the single-task scenarios (unless `--no-pin`); the concurrent and the paced passes are not.");
    sec.note("publish p50/p99: the command's round trip, back to back. publish → receipt: from just before the command to a listener's receipt, over every receipt of the back-to-back pass, and of the paced pass (a `tokio::time::sleep` of 1 ms before each event: what sporadic fill events see). messages/s: the concurrent pass. Cluster-bus messages: `cluster_stats_messages_publish_sent` + `…_publishshard_sent` of `CLUSTER INFO`, all nodes. CPU: `used_cpu_user` + `used_cpu_sys` of all nodes over the concurrent pass (the cluster's own background work included). Ratios: within a round, against `PUBLISH` with the same listeners.");
    report.sections.push(sec);
}
