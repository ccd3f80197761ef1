//! Faults of a Redis Cluster under load, on real `redis-server` processes: a primary killed
//! and failed over to its replica, a primary without replica killed for good, a node that
//! hangs (`SIGSTOP`) under an instance's event subscription or while the cache's scripts first
//! run, and a cache pointed at one node of a cluster with `redis(url)`. Run with `--nocapture`
//! for the measurements.

use std::{
    collections::BTreeMap,
    fmt::{self, Write as _},
    sync::{
        Arc, Mutex, Once,
        atomic::{AtomicBool, AtomicU64, Ordering::SeqCst},
    },
    time::{Duration, Instant},
};

use cached_runtime::{Cache, cache_aside, invalidates};
use tests::{NodeState, RedisCluster, key_slot};
use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
    span,
};

/// The bound on every round trip of the caches here.
const OP_TIMEOUT: Duration = Duration::from_millis(200);
/// The bound asserted on every call: `OP_TIMEOUT` a few times over (a miss is up to three
/// round trips), with room for a noisy machine.
const CALL_BOUND: Duration = Duration::from_secs(2);

/// One caller's view of the cache: its loads are counted, so that a call that ran no body is
/// known to be a hit (each caller has keys of its own: no other caller's load can serve it).
struct Repo {
    cache: Cache,
    loads: AtomicU64,
}

impl Repo {
    #[cache_aside(key = "item:<id>", ttl = 600, cache = self.cache)]
    async fn get(&self, id: u32) -> u64 {
        self.loads.fetch_add(1, SeqCst);
        value_of(id)
    }

    #[invalidates(key = "item:<id>", cache = self.cache)]
    async fn changed(&self, id: u32) {
        let _ = id;
    }

    #[cache_aside(key = "slow:<id>", ttl = 600, cache = self.cache)]
    async fn slow(&self, id: u32) -> u64 {
        self.loads.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        value_of(id)
    }
}

fn value_of(id: u32) -> u64 {
    u64::from(id) * 7 + 1
}

/// A cache on `cluster` with every node as a seed, `first` first: its event listener
/// subscribes through that node.
async fn cluster_cache_via(cluster: &RedisCluster, namespace: &str, first: u16) -> Cache {
    let mut seeds = cluster.urls();
    let at = cluster.ports().iter().position(|&p| p == first).unwrap();
    seeds.swap(0, at);
    let cache = Cache::builder()
        .redis_cluster(seeds)
        .namespace(namespace)
        .op_timeout(OP_TIMEOUT)
        .build()
        .await
        .expect("valid cluster configuration");
    cache.ping().await.expect("the cluster answers");
    cache
}

async fn cluster_cache(cluster: &RedisCluster, namespace: &str) -> Cache {
    cluster_cache_via(cluster, namespace, cluster.ports()[0]).await
}

/// Subscriptions to `channel` over the running nodes of `cluster`.
fn subscriptions(cluster: &RedisCluster, channel: &str) -> u64 {
    cluster
        .nodes()
        .into_iter()
        .filter(|node| node.state == NodeState::Running)
        .map(|node| cluster.cmd_on::<Vec<(String, u64)>>(node.port, &["PUBSUB", "NUMSUB", channel]))
        .map(|reply| reply[0].1)
        .sum()
}

/// Waits (at most 10 s) until `count` subscriptions to `channel` exist on the running nodes.
async fn wait_for_subscriptions(cluster: &RedisCluster, channel: &str, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while subscriptions(cluster, channel) < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} subscriptions to {channel} after 10 s",
            subscriptions(cluster, channel)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `per_primary` ids whose keys (`<namespace>:item:<id>`) each primary serves, by primary
/// port, primaries in slot order.
fn ids_per_primary(
    cluster: &RedisCluster,
    namespace: &str,
    per_primary: usize,
) -> Vec<(u16, Vec<u32>)> {
    let nodes = cluster.nodes();
    let primaries = cluster.primaries();
    let owner = |id: u32| {
        let slot = key_slot(format!("{namespace}:item:{id}").as_bytes());
        nodes
            .iter()
            .find(|n| n.slots.iter().any(|&(s, e)| (s..=e).contains(&slot)))
            .map(|n| n.port)
            .expect("every slot is served")
    };
    let mut ids: BTreeMap<u16, Vec<u32>> = primaries.iter().map(|&p| (p, Vec::new())).collect();
    for id in 0.. {
        if ids.values().all(|v| v.len() >= per_primary) {
            break;
        }
        let list = ids.get_mut(&owner(id)).expect("a primary");
        if list.len() < per_primary {
            list.push(id);
        }
    }
    primaries
        .into_iter()
        .map(|p| (p, ids.remove(&p).unwrap()))
        .collect()
}

/// One call as a caller saw it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    id: u32,
    /// When it began, since the start of the run.
    began: Duration,
    took: Duration,
    hit: bool,
}

impl Seen {
    fn ended(&self) -> Duration {
        self.began + self.took
    }
}

/// Callers that keep calling `get` over their own ids until stopped, each checking every
/// value, recording every call.
struct Load {
    stop: Arc<AtomicBool>,
    callers: Vec<tokio::task::JoinHandle<Vec<Seen>>>,
    started: Instant,
}

impl Load {
    fn start(repos: &[Arc<Repo>], ids: &[Vec<u32>]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let callers = repos
            .iter()
            .zip(ids)
            .map(|(repo, ids)| {
                let (repo, ids, stop) = (repo.clone(), ids.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    while !stop.load(SeqCst) {
                        for &id in &ids {
                            let loads = repo.loads.load(SeqCst);
                            let began = started.elapsed();
                            let call = Instant::now();
                            let value = repo.get(id).await;
                            let took = call.elapsed();
                            assert_eq!(value, value_of(id), "item:{id}");
                            seen.push(Seen {
                                id,
                                began,
                                took,
                                hit: repo.loads.load(SeqCst) == loads,
                            });
                        }
                        // A caller on a healthy shard must not spin the workers.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    seen
                })
            })
            .collect();
        Load {
            stop,
            callers,
            started,
        }
    }

    async fn stop(self) -> Vec<Seen> {
        self.stop.store(true, SeqCst);
        let mut all = Vec::new();
        for caller in self.callers {
            all.extend(caller.await.expect("no caller panicked"));
        }
        all
    }
}

/// Repos on `cache` (one per caller) and each caller's ids: `per_caller` ids of every
/// primary.
fn callers(
    cache: &Cache,
    ids: &[(u16, Vec<u32>)],
    count: usize,
    per_caller: usize,
) -> (Vec<Arc<Repo>>, Vec<Vec<u32>>) {
    let repos = (0..count)
        .map(|_| {
            Arc::new(Repo {
                cache: cache.clone(),
                loads: AtomicU64::new(0),
            })
        })
        .collect();
    let own = (0..count)
        .map(|c| {
            ids.iter()
                .flat_map(|(_, ids)| ids[c * per_caller..(c + 1) * per_caller].iter().copied())
                .collect()
        })
        .collect();
    (repos, own)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_failed_over_to_its_replica_costs_no_error_and_its_keys_hit_again() {
    const CALLERS: usize = 4;
    const PER_CALLER: usize = 3;
    let mut cluster = RedisCluster::start(3, 1);
    let cache = cluster_cache(&cluster, "failover").await;
    // One more id per primary than the callers take: the last one of the lost slots is the
    // probe's own.
    let ids = ids_per_primary(&cluster, "failover", CALLERS * PER_CALLER + 1);
    let (victim, lost) = (ids[0].0, ids[0].1.clone());
    let (repos, own) = callers(&cache, &ids, CALLERS, PER_CALLER);
    for (repo, ids) in repos.iter().zip(&own) {
        for &id in ids {
            assert_eq!(repo.get(id).await, value_of(id));
        }
    }
    // Another instance, whose event listener subscribes through the primary to be killed.
    let watcher = Repo {
        cache: cluster_cache_via(&cluster, "failover", victim).await,
        loads: AtomicU64::new(0),
    };
    let channel = "failover:__events";
    wait_for_subscriptions(&cluster, channel, 2).await;
    assert!(
        cluster.cmd_on::<Vec<(String, u64)>>(victim, &["PUBSUB", "NUMSUB", channel])[0].1 >= 1,
        "the watcher listens on {victim}"
    );
    // What was written survives the failover.
    cluster.wait_replicated(Duration::from_secs(10));
    let stats = cache.stats();
    assert_eq!(stats.total.errors, 0, "{stats:?}");

    let load = Load::start(&repos, &own);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.kill_node(victim);
    let killed_at = load.started.elapsed();
    let promoted =
        tokio::task::block_in_place(|| cluster.wait_for_failover(victim, Duration::from_secs(20)));
    let promoted_at = load.started.elapsed();
    // Keep calling until a key of the lost slots has hit again (or 15 s), then one more
    // second.
    let lost_hit_again = |seen: &[Seen]| {
        seen.iter()
            .filter(|s| s.began > killed_at && s.hit && lost.contains(&s.id))
            .map(Seen::ended)
            .min()
    };
    let deadline = killed_at + Duration::from_secs(15);
    let mut again = None;
    // The callers report their calls when stopped: meanwhile a probe of our own, on a key of
    // the lost slots that no caller uses, tells when they hit again.
    let probe = Repo {
        cache: cache.clone(),
        loads: AtomicU64::new(0),
    };
    let probe_id = *lost.last().unwrap();
    let mut probe_seen = Vec::new();
    while load.started.elapsed() < deadline {
        let loads = probe.loads.load(SeqCst);
        let began = load.started.elapsed();
        let call = Instant::now();
        assert_eq!(probe.get(probe_id).await, value_of(probe_id));
        let took = call.elapsed();
        let hit = probe.loads.load(SeqCst) == loads;
        probe_seen.push(Seen {
            id: probe_id,
            began,
            took,
            hit,
        });
        if hit {
            again = Some(began + took);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut seen = load.stop().await;
    seen.extend(probe_seen);
    // Calls in flight at the kill count for the time a call took; only calls begun after it
    // tell whether the lost slots answer.
    let max_call = seen
        .iter()
        .filter(|s| s.ended() > killed_at)
        .map(|s| s.took)
        .max()
        .unwrap_or_default();
    let after_kill: Vec<&Seen> = seen.iter().filter(|s| s.began > killed_at).collect();
    let first_hit = lost_hit_again(&seen).into_iter().chain(again).min();
    let healthy_hits = after_kill
        .iter()
        .filter(|s| s.hit && !lost.contains(&s.id))
        .count();
    let healthy_calls = after_kill.iter().filter(|s| !lost.contains(&s.id)).count();
    let lost_calls = after_kill.iter().filter(|s| lost.contains(&s.id)).count();
    let stats = cache.stats();
    println!(
        "failover of primary {victim} to {promoted}: promoted (as the cluster reports it) \
         {:?} after the kill; first hit on a key of the lost slots {:?} after the kill; \
         {} calls begun after the kill, every one returned the body's value, the slowest took \
         {max_call:?}; keys of the other shards: {healthy_hits} hits of {healthy_calls} calls; \
         keys of the lost slots: {lost_calls} calls; breaker opened {} time(s), {} round \
         trips skipped, {} errors",
        promoted_at - killed_at,
        first_hit.map(|t| t - killed_at),
        after_kill.len(),
        stats.breaker_opens,
        stats.breaker_rejections,
        stats.total.errors,
    );
    assert!(
        max_call < CALL_BOUND,
        "a call took {max_call:?} during the failover"
    );
    assert_eq!(
        healthy_hits, healthy_calls,
        "the keys of the other shards kept hitting (their breakers stayed closed)"
    );
    let first_hit = first_hit.expect("a key of the lost slots hit again after the failover");
    assert!(
        first_hit - killed_at < Duration::from_secs(15),
        "hits on the lost slots resumed {:?} after the kill",
        first_hit - killed_at
    );
    // After the failover, every key of the lost slots is a hit again, on the same Cache.
    for (repo, ids) in repos.iter().zip(&own) {
        for &id in ids.iter().filter(|id| lost.contains(id)) {
            let loads = repo.loads.load(SeqCst);
            assert_eq!(repo.get(id).await, value_of(id));
            assert_eq!(
                repo.loads.load(SeqCst),
                loads,
                "item:{id} is a hit after the failover"
            );
        }
    }

    // The watcher's listener lost its node and subscribed through another: a caller waiting
    // there on a lease held here is woken by the fill event, not by a lease check.
    wait_for_subscriptions(&cluster, channel, 2).await;
    let loader = repos[0].clone();
    let before = loader.loads.load(SeqCst);
    let loading = {
        let loader = loader.clone();
        tokio::spawn(async move { loader.slow(1).await })
    };
    while loader.loads.load(SeqCst) == before {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let waited = Instant::now();
    assert_eq!(watcher.slow(1).await, value_of(1));
    let waited = waited.elapsed();
    assert_eq!(loading.await.unwrap(), value_of(1));
    let counts = *watcher.cache.stats().function("slow").unwrap();
    println!(
        "after the failover, a caller of the instance that listened through the killed node \
         waited {waited:?} for another instance's load (300 ms); {counts:?}"
    );
    assert_eq!(watcher.loads.load(SeqCst), 0, "the watcher did not load");
    assert_eq!(counts.wakeups, 1, "woken by the fill event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_lost_without_replica_leaves_the_other_shards_hitting() {
    const CALLERS: usize = 3;
    const PER_CALLER: usize = 3;
    let mut cluster = RedisCluster::start(3, 0);
    let cache = cluster_cache(&cluster, "lost").await;
    let ids = ids_per_primary(&cluster, "lost", CALLERS * PER_CALLER);
    let (victim, dead) = (ids[1].0, ids[1].1.clone());
    let (repos, own) = callers(&cache, &ids, CALLERS, PER_CALLER);
    for (repo, ids) in repos.iter().zip(&own) {
        for &id in ids {
            assert_eq!(repo.get(id).await, value_of(id));
        }
    }
    let loads_before: u64 = repos.iter().map(|r| r.loads.load(SeqCst)).sum();
    assert_eq!(loads_before, (3 * CALLERS * PER_CALLER) as u64);

    let load = Load::start(&repos, &own);
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.kill_node(victim);
    let killed_at = load.started.elapsed();
    // Through the node timeout (1 s), the others flagging the node as failed, and on.
    let mut breaker_seen_open = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        breaker_seen_open |= cache.stats().breaker_open;
    }
    let seen = load.stop().await;
    // Calls begun after the kill (one in flight at the kill may have been answered before it).
    let after_kill: Vec<&Seen> = seen.iter().filter(|s| s.began > killed_at).collect();
    let (dead_calls, healthy_calls): (Vec<&Seen>, Vec<&Seen>) =
        after_kill.iter().partition(|s| dead.contains(&s.id));
    let healthy_misses: Vec<&&Seen> = healthy_calls.iter().filter(|s| !s.hit).collect();
    let max_healthy = healthy_calls
        .iter()
        .map(|s| s.took)
        .max()
        .unwrap_or_default();
    let max_dead = dead_calls.iter().map(|s| s.took).max().unwrap_or_default();
    let stats = cache.stats();
    println!(
        "primary {victim} killed, no replica: keys of the other shards {} calls, {} not hits, \
         slowest {max_healthy:?}; keys of the dead shard {} calls (each ran its body), slowest \
         {max_dead:?}; breaker opened {} time(s) (seen open: {breaker_seen_open}), {} round \
         trips skipped, {} errors",
        healthy_calls.len(),
        healthy_misses.len(),
        dead_calls.len(),
        stats.breaker_opens,
        stats.breaker_rejections,
        stats.total.errors,
    );
    assert!(healthy_calls.len() > 100, "the healthy shards were called");
    assert!(
        healthy_misses.is_empty(),
        "calls on the other shards ran their bodies: {healthy_misses:?}"
    );
    assert!(
        max_healthy < CALL_BOUND,
        "a call on a healthy shard took {max_healthy:?}"
    );
    assert!(!dead_calls.is_empty(), "the dead shard was called");
    assert!(
        dead_calls.iter().all(|s| !s.hit),
        "a key of the dead shard was a hit"
    );
    assert!(
        max_dead < CALL_BOUND,
        "a call on the dead shard took {max_dead:?}"
    );
    // A call that was not a hit ran its body once.
    let loads_after: u64 = repos.iter().map(|r| r.loads.load(SeqCst)).sum();
    let not_hits = seen.iter().filter(|s| !s.hit).count();
    assert_eq!(loads_after - loads_before, not_hits as u64);
    assert!(stats.breaker_opens >= 1, "the dead shard's breaker opened");
}

/// The cache's scripts (lease, guarded write, invalidation) run for the first time on a
/// cluster's nodes (a new deployment, restarted nodes) while one primary hangs: on the other
/// shards every call stays within its bound, every miss is stored and hits next time, and an
/// invalidation deletes, without errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_first_run_while_a_primary_hangs_work_on_the_other_shards() {
    let cluster = RedisCluster::start(3, 0);
    let cache = cluster_cache(&cluster, "scripts").await;
    let ids = ids_per_primary(&cluster, "scripts", 3);
    // Connected to every node (a DEL on every shard runs no script).
    let keys: Vec<String> = ids
        .iter()
        .flat_map(|(_, ids)| ids.iter().map(|id| format!("item:{id}")))
        .collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(cache.delete(&keys).await.unwrap(), 0);
    let victim = ids[2].0;
    cluster.pause_node(victim);
    let repo = Repo {
        cache: cache.clone(),
        loads: AtomicU64::new(0),
    };
    let healthy: Vec<u32> = ids[..2].iter().flat_map(|(_, ids)| ids.clone()).collect();
    let mut slowest = Duration::ZERO;
    let mut timed = |took: Duration| slowest = slowest.max(took);
    for _pass in 0..2 {
        for &id in &healthy {
            let call = Instant::now();
            assert_eq!(repo.get(id).await, value_of(id));
            timed(call.elapsed());
        }
    }
    let call = Instant::now();
    repo.changed(healthy[0]).await;
    timed(call.elapsed());
    cluster.resume_node(victim);
    let stats = cache.stats();
    println!(
        "primary {victim} hanging, scripts run for the first time on the others: the slowest \
         call took {slowest:?}; {} bodies for {} keys; {stats:?}",
        repo.loads.load(SeqCst),
        healthy.len()
    );
    assert!(slowest < CALL_BOUND, "a call took {slowest:?}");
    assert_eq!(
        repo.loads.load(SeqCst),
        healthy.len() as u64,
        "every miss was stored: the second pass hit"
    );
    let key = format!("scripts:item:{}", healthy[0]);
    assert_eq!(
        cluster.cmd::<i64>(&["EXISTS", &key]),
        0,
        "{key} invalidated"
    );
    assert_eq!(stats.total.errors, 0);
    assert_eq!(stats.total.invalidation_failures, 0);
}

/// Readiness pings while one primary hangs fail (a cluster's PING goes to every primary); that
/// says nothing about the shard of slot 0, whose breaker must stay closed: its keys keep
/// hitting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pings_while_a_primary_hangs_leave_the_shard_of_slot_0_cached() {
    let cluster = RedisCluster::start(3, 0);
    let cache = cluster_cache(&cluster, "pings").await;
    let ids = ids_per_primary(&cluster, "pings", 3);
    let repo = Repo {
        cache: cache.clone(),
        loads: AtomicU64::new(0),
    };
    for (_, ids) in &ids {
        for &id in ids {
            assert_eq!(repo.get(id).await, value_of(id));
        }
    }
    // The shard serving slot 0 is the first; freeze another.
    cluster.pause_node(ids[1].0);
    let failed = {
        let mut failed = 0;
        for _ in 0..10 {
            failed += u32::from(cache.ping().await.is_err());
        }
        failed
    };
    let loads = repo.loads.load(SeqCst);
    for &id in &ids[0].1 {
        assert_eq!(repo.get(id).await, value_of(id));
    }
    let stats = cache.stats();
    println!("{failed} of 10 pings failed with a primary hanging; then: {stats:?}");
    assert_eq!(
        repo.loads.load(SeqCst),
        loads,
        "the keys of the shard of slot 0 still hit: {stats:?}"
    );
    assert_eq!(stats.breaker_opens, 0, "{stats:?}");
}

// ---------------------------------------------------------------------------------------------
// Warnings and errors of this test binary, formatted with their fields.

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, "{}={value} ", field.name());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::WARN
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = format!("{} ", event.metadata().level());
        event.record(&mut Line(&mut line));
        LOG.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(Capture).expect("no other subscriber");
    });
}

fn error_lines() -> Vec<String> {
    LOG.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|line| line.starts_with("ERROR"))
        .cloned()
        .collect()
}

#[cache_aside(key = "n:<n>", ttl = 60, cache = cache)]
async fn double(cache: &Cache, n: u64, calls: &AtomicU64) -> u64 {
    calls.fetch_add(1, SeqCst);
    n * 2
}

/// `redis(url)` at one node of a cluster is a configuration mistake that `build()` cannot see:
/// once connected, the cache logs an error that says to use `redis_cluster`. The calls still
/// return their bodies' values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pointed_at_a_cluster_node_logs_that_redis_cluster_is_needed() {
    capture_logs();
    let cluster = RedisCluster::shared();
    let url = cluster.urls()[0].clone();
    let cache = Cache::builder()
        .redis(url.clone())
        .namespace("one-node")
        .op_timeout(OP_TIMEOUT)
        .build()
        .await
        .expect("a cluster node's URL is a valid Redis URL");
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = loop {
        if let Some(line) = error_lines()
            .into_iter()
            .find(|line| line.contains("redis_cluster"))
        {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "no error naming redis_cluster logged within 10 s for a cache at {url}; errors: {:?}",
            error_lines()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("logged: {error}");
    assert!(error.contains("Cluster"), "{error}");
    // Keys of every slot, those of other nodes answered with MOVED: each call returns its
    // body's value.
    let calls = AtomicU64::new(0);
    for n in 0..30 {
        assert_eq!(double(&cache, n, &calls).await, n * 2);
    }
    let stats = cache.stats();
    println!("30 calls through one node of a cluster: {:?}", stats.total);
    assert!(
        stats.total.errors > 0,
        "the other nodes' keys failed: {stats:?}"
    );
}

/// An instance whose event listener subscribed through a node that then hangs (`SIGSTOP`)
/// gets no events, and nothing tells it: a caller there waiting on another instance's lease
/// learns of the fill by its periodic lease check (every 500 ms), and takes the value that
/// landed — it does not run the body again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_whose_listener_hangs_takes_the_value_at_its_lease_check() {
    let cluster = RedisCluster::start(3, 0);
    let primaries = cluster.primaries();
    let (frozen, other) = (primaries[2], primaries[0]);
    let id = (0..)
        .find(|id| cluster.primary_for_key(&format!("frozen:slow:{id}")) != frozen)
        .unwrap();
    let loader = Arc::new(Repo {
        cache: cluster_cache_via(&cluster, "frozen", other).await,
        loads: AtomicU64::new(0),
    });
    let watcher = Repo {
        cache: cluster_cache_via(&cluster, "frozen", frozen).await,
        loads: AtomicU64::new(0),
    };
    let channel = "frozen:__events";
    wait_for_subscriptions(&cluster, channel, 2).await;
    assert_eq!(
        cluster.cmd_on::<Vec<(String, u64)>>(frozen, &["PUBSUB", "NUMSUB", channel])[0].1,
        1,
        "the watcher listens on {frozen}"
    );
    // Every script of the cache loaded on every node first (loading one goes to all nodes).
    assert_eq!(loader.slow(id + 1_000_000).await, value_of(id + 1_000_000));
    cluster.pause_node(frozen);
    let loading = {
        let loader = loader.clone();
        tokio::spawn(async move { loader.slow(id).await })
    };
    while loader.loads.load(SeqCst) == 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let waited = Instant::now();
    assert_eq!(watcher.slow(id).await, value_of(id));
    let waited = waited.elapsed();
    assert_eq!(loading.await.unwrap(), value_of(id));
    cluster.resume_node(frozen);
    let counts = *watcher.cache.stats().function("slow").unwrap();
    println!(
        "a caller whose listener hangs waited {waited:?} for another instance's load (300 ms); \
         it ran the body {} time(s); {counts:?}",
        watcher.loads.load(SeqCst)
    );
    assert_eq!(
        counts.lock_waits, 1,
        "it waited on the other instance's lease"
    );
    assert_eq!(
        watcher.loads.load(SeqCst),
        0,
        "the value had landed: the waiter ran the body again instead of reading it"
    );
    assert!(waited < Duration::from_secs(2), "{waited:?}");
}
