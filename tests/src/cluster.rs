//! A local Redis Cluster for the cluster suites: real `redis-server` processes in cluster mode
//! on free loopback ports, joined with `redis-cli --cluster create`, with fault injection
//! (kill, pause, restart a node) and waits for failovers.
//!
//! Also home to small helpers shared with the Sentinel harness: a removed-on-drop directory,
//! short-timeout probes, `INFO` parsing and a bounded wait loop.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    fmt::Write as _,
    fs::{self, File},
    io,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, Weak, atomic::AtomicBool},
    thread,
    time::{Duration, Instant},
};

use crate::{
    POLL_INTERVAL, READY_TIMEOUT, RedisServer, SPAWN_ATTEMPTS, StartError, build_cmd, free_port,
    log_tail, make_temp_dir, start_with, try_run,
};

/// The number of hash slots of a Redis Cluster.
pub const CLUSTER_SLOTS: u16 = 16384;

/// `cluster-node-timeout` of every node, in milliseconds: a node unreachable for this long is
/// suspected, then failed over.
pub const CLUSTER_NODE_TIMEOUT_MS: u64 = 1000;

/// How long `redis-cli --cluster create` may run.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a new cluster may take to agree on its configuration after `redis-cli` is done.
const FORMATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`RedisCluster::kill_primary_with_replica`] and friends wait for the failover.
const DEFAULT_FAILOVER_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the cluster's state is polled while waiting.
const TOPOLOGY_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Connect timeout of one state probe.
const QUICK_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Read/write timeout of one state probe.
const QUICK_IO_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one replication barrier waits for the replicas' acknowledgements while polling.
pub(crate) const BARRIER_POLL_WAIT: Duration = Duration::from_millis(100);

/// Whether a cluster node serves slots or replicates a primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A primary (`master` in `CLUSTER NODES`).
    Primary,
    /// A replica (`slave` in `CLUSTER NODES`).
    Replica,
}

/// What the harness did to a node's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Running and answering.
    Running,
    /// Frozen with `SIGSTOP` ([`RedisCluster::pause_node`]).
    Paused,
    /// Killed ([`RedisCluster::kill_node`]); [`RedisCluster::restart_node`] brings it back.
    Killed,
}

/// One node of a [`RedisCluster`], as a running node currently reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node's client port on 127.0.0.1.
    pub port: u16,
    /// The node's cluster id (40 hex digits).
    pub id: String,
    /// Primary or replica, as reported.
    pub role: Role,
    /// The port of the primary this node replicates (replicas only).
    pub primary: Option<u16>,
    /// The slot ranges (inclusive) the node serves (primaries only).
    pub slots: Vec<(u16, u16)>,
    /// Whether the reporting node flags this one as failing (`fail` or `fail?`).
    pub failing: bool,
    /// What the harness did to the node's process.
    pub state: NodeState,
}

/// A Redis Cluster of `redis-server` processes owned by the test, on free loopback ports.
///
/// Every node runs without persistence in a private directory (log: `redis.log`, cluster
/// config: `nodes.conf`) with `cluster-node-timeout 1000`, `cluster-replica-validity-factor 0`
/// (a replica may always take over), `cluster-require-full-coverage no` (the other slots keep
/// working while a primary without replica is down), `cluster-allow-replica-migration no` (the
/// topology only changes through failovers) and `repl-diskless-sync-delay 0`.
///
/// Dropping it kills every process and removes the directories.
#[derive(Debug)]
pub struct RedisCluster {
    /// In start order: the first `primaries` nodes were made primaries by `redis-cli`.
    nodes: Vec<Node>,
    primaries: usize,
    replicas_per_primary: usize,
    /// Slots each node served just before the harness last killed or paused it.
    slots_before_fault: Mutex<HashMap<u16, Vec<(u16, u16)>>>,
    /// Holds the node directories; dropped (removed) after the nodes.
    dir: TempDir,
}

#[derive(Debug)]
struct Node {
    server: RedisServer,
    bus_port: u16,
}

impl Node {
    fn state(&self) -> NodeState {
        if self.server.child.is_none() {
            NodeState::Killed
        } else if self.server.paused.load(std::sync::atomic::Ordering::SeqCst) {
            NodeState::Paused
        } else {
            NodeState::Running
        }
    }
}

/// The cluster handed out by [`RedisCluster::shared`] while someone holds it. Only a weak
/// reference: statics are never dropped, and the last test to let go of the cluster must be
/// the one that stops its processes.
static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());

impl RedisCluster {
    /// A cluster of 3 primaries without replicas, shared by the tests of this process that
    /// hold it at the same time: the first caller starts it (about 2 s), later callers get the
    /// same one while any earlier `Arc` is alive, and the processes are stopped when the last
    /// `Arc` is dropped. Tests sharing it must keep to keys of their own (a namespace each)
    /// and must not inject faults.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn shared() -> Arc<RedisCluster> {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cluster) = shared.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(RedisCluster::start(3, 0));
        *shared = Arc::downgrade(&cluster);
        cluster
    }

    /// Starts `primaries * (1 + replicas_per_primary)` nodes, joins them with
    /// `redis-cli --cluster create … --cluster-replicas R`, and waits (at most 30 s) until every
    /// node reports `cluster_state:ok`, all nodes agree on the slot map (all 16384 slots
    /// assigned) and on who replicates whom, and every replica is in sync and acknowledges
    /// writes (see [`wait_replicated`](Self::wait_replicated)).
    ///
    /// # Panics
    ///
    /// If `primaries < 3` (`redis-cli` refuses smaller clusters), if `redis-server` or
    /// `redis-cli` is not on `PATH`, or if the cluster does not form in time (the message holds
    /// the tail of every node's log).
    pub fn start(primaries: usize, replicas_per_primary: usize) -> RedisCluster {
        assert!(
            primaries >= 3,
            "RedisCluster::start: redis-cli --cluster create needs at least 3 primaries, got \
             {primaries}"
        );
        let dir = TempDir(make_temp_dir());
        let total = primaries * (1 + replicas_per_primary);
        let mut nodes = Vec::with_capacity(total);
        for index in 0..total {
            let node_dir = dir.0.join(format!("node-{index}"));
            fs::create_dir(&node_dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", node_dir.display()));
            nodes.push(spawn_node(node_dir));
        }
        let cluster = RedisCluster {
            nodes,
            primaries,
            replicas_per_primary,
            slots_before_fault: Mutex::new(HashMap::new()),
            dir,
        };
        let cli_log = cluster.dir.0.join("redis-cli.log");
        if let Err(e) = create_cluster(&cluster.ports(), replicas_per_primary, &cli_log) {
            panic!(
                "redis-cli --cluster create failed: {e}\n{}",
                cluster.logs_report()
            );
        }
        if let Err(e) = wait_until(FORMATION_TIMEOUT, || cluster.check(true).map(drop)) {
            panic!(
                "the cluster did not form within {FORMATION_TIMEOUT:?}: {e}\nredis-cli output:\n{}\n{}",
                log_tail(&cli_log, 0),
                cluster.logs_report()
            );
        }
        cluster
    }

    /// The number of primaries the cluster was created with.
    pub fn primary_count(&self) -> usize {
        self.primaries
    }

    /// The number of replicas per primary the cluster was created with.
    pub fn replicas_per_primary(&self) -> usize {
        self.replicas_per_primary
    }

    /// The client port of every node, in start order (killed nodes included).
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|node| node.server.port).collect()
    }

    /// `redis://127.0.0.1:PORT` for every node, in start order (killed nodes included).
    pub fn urls(&self) -> Vec<String> {
        self.ports().into_iter().map(node_url).collect()
    }

    /// `redis://127.0.0.1:PORT` for every current primary serving slots (see
    /// [`primaries`](Self::primaries)): seeds for a cluster client.
    pub fn seed_urls(&self) -> Vec<String> {
        self.primaries().into_iter().map(node_url).collect()
    }

    /// The ports of the nodes currently serving slots, lowest slot first, as a running node
    /// reports them (a killed primary not yet failed over is included).
    ///
    /// # Panics
    ///
    /// If no node answers.
    pub fn primaries(&self) -> Vec<u16> {
        let view = self.current_view();
        let mut owners: Vec<(u16, u16)> = view
            .iter()
            .filter(|entry| entry.role == Some(Role::Primary) && !entry.slots.is_empty())
            .map(|entry| (entry.slots[0].0, entry.port))
            .collect();
        owners.sort_unstable();
        owners.into_iter().map(|(_, port)| port).collect()
    }

    /// The ports of the nodes currently reported as replicas of `primary`.
    ///
    /// # Panics
    ///
    /// If no node answers.
    pub fn replicas_of(&self, primary: u16) -> Vec<u16> {
        self.nodes()
            .into_iter()
            .filter(|node| node.role == Role::Replica && node.primary == Some(primary))
            .map(|node| node.port)
            .collect()
    }

    /// Every node, in start order, as the first running node reports it (`CLUSTER NODES`),
    /// with the harness's own knowledge of its process state. Nodes that one does not know yet,
    /// or knows without a role (still in handshake), are left out.
    ///
    /// # Panics
    ///
    /// If no node answers, or the reply cannot be parsed.
    pub fn nodes(&self) -> Vec<ClusterNode> {
        let view = self.current_view();
        self.nodes
            .iter()
            .filter_map(|node| {
                let entry = view.iter().find(|e| e.port == node.server.port)?;
                Some(ClusterNode {
                    port: entry.port,
                    id: entry.id.clone(),
                    role: entry.role?,
                    primary: entry.primary,
                    slots: entry.slots.clone(),
                    failing: entry.is_failing(),
                    state: node.state(),
                })
            })
            .collect()
    }

    /// The hash slot of `key` (CRC16 of the key or of its `{hash tag}`, modulo 16384); see
    /// [`key_slot`].
    pub fn slot_of(&self, key: &str) -> u16 {
        key_slot(key.as_bytes())
    }

    /// The port of the node currently serving `key`'s slot, as the first running node reports.
    ///
    /// # Panics
    ///
    /// If no node answers, or no node serves the slot.
    pub fn primary_for_key(&self, key: &str) -> u16 {
        let slot = self.slot_of(key);
        owner_of(&self.current_view(), slot)
            .unwrap_or_else(|| panic!("no node serves slot {slot} (key {key:?})"))
    }

    /// Runs one command on the node at `port` (fresh connection) and returns its reply.
    ///
    /// # Panics
    ///
    /// If the command fails or its reply does not convert to `T`.
    pub fn cmd_on<T: redis::FromRedisValue>(&self, port: u16, args: &[&str]) -> T {
        self.try_cmd_on(port, args)
            .unwrap_or_else(|e| panic!("Redis command {args:?} on node {port} failed: {e}"))
    }

    /// Like [`cmd_on`](Self::cmd_on) but returns the error instead of panicking.
    pub fn try_cmd_on<T: redis::FromRedisValue>(
        &self,
        port: u16,
        args: &[&str],
    ) -> redis::RedisResult<T> {
        try_run(&node_url(port), &build_cmd(args))
    }

    /// Runs a single-key command (the key is `args[1]`, e.g. `["PTTL", "k"]`) on the node
    /// serving the key's slot, following one `MOVED` redirection.
    ///
    /// # Panics
    ///
    /// If `args` has no key, the command fails, or its reply does not convert to `T`.
    pub fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("Redis command {args:?} on the cluster failed: {e}"))
    }

    /// Like [`cmd`](Self::cmd) but returns the error instead of panicking.
    ///
    /// # Panics
    ///
    /// If `args` has no key.
    pub fn try_cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> redis::RedisResult<T> {
        let key = args
            .get(1)
            .unwrap_or_else(|| panic!("RedisCluster::cmd needs a key as args[1]: {args:?}"));
        self.try_query(key, &build_cmd(args))
    }

    /// Runs `cmd`, whose keys are all in `key`'s slot, on the node serving that slot, following
    /// one `MOVED` redirection.
    pub fn try_query<T: redis::FromRedisValue>(
        &self,
        key: &str,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        let owner = self.primary_for_key(key);
        match try_run(&node_url(owner), cmd) {
            Err(e) => match e.redirect_node() {
                Some((addr, _slot)) => try_run(&format!("redis://{addr}"), cmd),
                None => Err(e),
            },
            ok => ok,
        }
    }

    /// Sets `key` to the raw bytes `value`, on the node serving its slot.
    ///
    /// # Panics
    ///
    /// If the command fails.
    pub fn set_raw(&self, key: &str, value: &[u8]) {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        self.try_query::<()>(key, &cmd).unwrap_or_else(|e| {
            panic!(
                "Redis SET {key:?} <{} bytes> on the cluster failed: {e}",
                value.len()
            )
        });
    }

    /// The raw bytes stored at `key`, or `None` if it does not exist.
    ///
    /// # Panics
    ///
    /// If the command fails.
    pub fn get_raw(&self, key: &str) -> Option<Vec<u8>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        self.try_query(key, &cmd)
            .unwrap_or_else(|e| panic!("Redis GET {key:?} on the cluster failed: {e}"))
    }

    /// `KEYS pattern` on every running primary serving slots, concatenated.
    ///
    /// # Panics
    ///
    /// If a primary does not answer.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        self.running_primaries()
            .into_iter()
            .flat_map(|port| self.cmd_on::<Vec<String>>(port, &["KEYS", pattern]))
            .collect()
    }

    /// The sum of `DBSIZE` over the running primaries serving slots.
    ///
    /// # Panics
    ///
    /// If a primary does not answer.
    pub fn dbsize_total(&self) -> u64 {
        self.running_primaries()
            .into_iter()
            .map(|port| self.cmd_on::<u64>(port, &["DBSIZE"]))
            .sum()
    }

    /// `FLUSHALL` on every running primary serving slots (replicas follow).
    ///
    /// # Panics
    ///
    /// If a primary does not answer.
    pub fn flushall(&self) {
        for port in self.running_primaries() {
            self.cmd_on::<()>(port, &["FLUSHALL"]);
        }
    }

    /// Kills the node at `port` (`SIGKILL`) and reaps it. Idempotent.
    ///
    /// # Panics
    ///
    /// If no node of this cluster has that port.
    pub fn kill_node(&mut self, port: u16) {
        self.remember_slots(port);
        self.node_mut(port).server.kill();
    }

    /// Freezes the node at `port` (`SIGSTOP`); once frozen for longer than the node timeout
    /// (1 s) the others fail it (a primary with a replica gets replaced).
    ///
    /// # Panics
    ///
    /// If no node of this cluster has that port, or it is not running.
    pub fn pause_node(&self, port: u16) {
        self.remember_slots(port);
        self.node(port).server.pause();
    }

    /// Unfreezes a node frozen by [`pause_node`](Self::pause_node) (`SIGCONT`).
    ///
    /// # Panics
    ///
    /// If no node of this cluster has that port, or it is not running.
    pub fn resume_node(&self, port: u16) {
        self.node(port).server.resume();
    }

    /// Starts a killed node again on the same ports with its `nodes.conf` (its data is gone):
    /// it rejoins the cluster, as a replica if it was failed over meanwhile. Returns once it
    /// answers `PING`; [`wait_state_ok`](Self::wait_state_ok) waits for the cluster to settle.
    ///
    /// # Panics
    ///
    /// If no node of this cluster has that port, it is still running, or it cannot be started
    /// on the same ports in time.
    pub fn restart_node(&mut self, port: u16) {
        let node = self.node_mut(port);
        assert!(
            node.server.child.is_none(),
            "RedisCluster::restart_node: node {port} is still running"
        );
        let args = node_args(&node.server.dir, node.bus_port);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match start_with(port, &node.server.dir, &args) {
                Ok(child) => {
                    node.server.child = Some(child);
                    return;
                }
                // A port may be briefly held by someone else: retry until the deadline.
                Err(StartError::Exited(msg)) => {
                    assert!(
                        Instant::now() < deadline,
                        "could not restart cluster node {port} within {READY_TIMEOUT:?}: {msg}"
                    );
                    thread::sleep(Duration::from_millis(100));
                }
                Err(StartError::NotReady(msg)) => {
                    panic!("could not restart cluster node {port}: {msg}")
                }
            }
        }
    }

    /// Kills a running primary that has a running replica and waits (at most 20 s) for the
    /// failover. Returns `(killed_port, promoted_port)`.
    ///
    /// # Panics
    ///
    /// If no primary has a running replica, or the failover does not complete in time.
    pub fn kill_primary_with_replica(&mut self) -> (u16, u16) {
        let nodes = self.nodes();
        let victim = nodes
            .iter()
            .filter(|n| {
                n.role == Role::Primary && !n.slots.is_empty() && n.state == NodeState::Running
            })
            .find(|primary| {
                nodes.iter().any(|n| {
                    n.primary == Some(primary.port)
                        && n.role == Role::Replica
                        && n.state == NodeState::Running
                })
            })
            .map(|primary| primary.port)
            .expect("RedisCluster::kill_primary_with_replica: no primary has a running replica");
        self.kill_node(victim);
        (
            victim,
            self.wait_for_failover(victim, DEFAULT_FAILOVER_TIMEOUT),
        )
    }

    /// Kills the primary serving `key` and waits (at most 20 s) for its replica to take over.
    /// Returns `(killed_port, promoted_port)`.
    ///
    /// # Panics
    ///
    /// If the failover does not complete in time (e.g. the primary had no replica).
    pub fn kill_primary_for_key(&mut self, key: &str) -> (u16, u16) {
        let victim = self.primary_for_key(key);
        self.kill_node(victim);
        (
            victim,
            self.wait_for_failover(victim, DEFAULT_FAILOVER_TIMEOUT),
        )
    }

    /// Waits until the slots `failed_port` served when it was killed or paused are served by
    /// one other running node that reports itself as primary, every running node reports
    /// `cluster_state:ok` and they all agree on the configuration (as in
    /// [`wait_state_ok`](Self::wait_state_ok)). Returns the promoted node's port.
    ///
    /// # Panics
    ///
    /// If `failed_port` served no slots, or the failover does not complete within `timeout`
    /// (the message holds the tail of every node's log).
    pub fn wait_for_failover(&self, failed_port: u16, timeout: Duration) -> u16 {
        let remembered = self
            .slots_before_fault
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&failed_port)
            .cloned();
        let slots = remembered.unwrap_or_else(|| {
            let view = self.current_view();
            view.iter()
                .find(|e| e.port == failed_port)
                .map(|e| e.slots.clone())
                .unwrap_or_default()
        });
        assert!(
            !slots.is_empty(),
            "RedisCluster::wait_for_failover: node {failed_port} served no slots"
        );
        let outcome = wait_until(timeout, || {
            let agreed = self.check(false)?;
            let mut owners = BTreeSet::new();
            for &(start, end) in &slots {
                for slot in [start, end] {
                    owners.insert(owner_of(&agreed.view, slot));
                }
            }
            let owner = match owners.into_iter().collect::<Vec<_>>()[..] {
                [Some(owner)] => owner,
                ref many => return Err(format!("the failed slots are served by {many:?}")),
            };
            if owner == failed_port {
                return Err(format!("node {failed_port} still serves its slots"));
            }
            if !agreed.masters.contains(&owner) {
                return Err(format!("node {owner} does not report role:master yet"));
            }
            Ok(owner)
        });
        outcome.unwrap_or_else(|e| {
            panic!(
                "no failover of node {failed_port} within {timeout:?}: {e}\n{}",
                self.logs_report()
            )
        })
    }

    /// Waits until every running node reports `cluster_state:ok`, they all agree on the slot
    /// map (all 16384 slots assigned) and on the roles of the running nodes, none of them is
    /// flagged as failing, and every running replica of a running primary has its link up and
    /// acknowledges writes (see [`wait_replicated`](Self::wait_replicated)).
    ///
    /// # Panics
    ///
    /// If that does not happen within `timeout` (the message holds the tail of every node's
    /// log).
    pub fn wait_state_ok(&self, timeout: Duration) {
        if let Err(e) = wait_until(timeout, || self.check(false).map(drop)) {
            panic!(
                "the cluster did not settle within {timeout:?}: {e}\n{}",
                self.logs_report()
            );
        }
    }

    /// Waits until every running replica of a running primary has acknowledged every write its
    /// primary took so far (a write nobody can observe, `MULTI SET DEL EXEC`, then `WAIT`): what
    /// was written before this call survives a failover.
    ///
    /// # Panics
    ///
    /// If the replicas do not acknowledge within `timeout`.
    pub fn wait_replicated(&self, timeout: Duration) {
        let outcome = wait_until(timeout, || {
            let running: HashSet<u16> = self.running_ports().into_iter().collect();
            replicas_streaming(&self.current_view(), &running, BARRIER_POLL_WAIT)
        });
        if let Err(e) = outcome {
            panic!("the replicas did not catch up within {timeout:?}: {e}");
        }
    }

    /// The path of the log file of the node at `port`.
    ///
    /// # Panics
    ///
    /// If no node of this cluster has that port.
    pub fn log_path(&self, port: u16) -> PathBuf {
        self.node(port).server.log_path()
    }

    // -----------------------------------------------------------------------------------------

    fn node(&self, port: u16) -> &Node {
        self.nodes
            .iter()
            .find(|node| node.server.port == port)
            .unwrap_or_else(|| panic!("no node of this cluster has port {port}"))
    }

    fn node_mut(&mut self, port: u16) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|node| node.server.port == port)
            .unwrap_or_else(|| panic!("no node of this cluster has port {port}"))
    }

    fn running_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|node| node.state() == NodeState::Running)
            .map(|node| node.server.port)
            .collect()
    }

    fn running_primaries(&self) -> Vec<u16> {
        let running = self.running_ports();
        self.primaries()
            .into_iter()
            .filter(|port| running.contains(port))
            .collect()
    }

    /// `CLUSTER NODES` of the first running node that answers.
    fn current_view(&self) -> Vec<Entry> {
        let mut errors = Vec::new();
        for port in self.running_ports() {
            let reply = try_run::<String>(&node_url(port), redis::cmd("CLUSTER").arg("NODES"));
            match reply
                .map_err(|e| e.to_string())
                .and_then(|t| parse_nodes(&t))
            {
                Ok(view) => return view,
                Err(e) => errors.push(format!("node {port}: {e}")),
            }
        }
        panic!(
            "no running cluster node answered CLUSTER NODES: {}",
            errors.join("; ")
        );
    }

    /// Records the slots `port` serves, for [`wait_for_failover`](Self::wait_for_failover).
    fn remember_slots(&self, port: u16) {
        let _ = self.node(port);
        let others: Vec<u16> = self
            .running_ports()
            .into_iter()
            .filter(|&p| p != port)
            .collect();
        for other in others {
            let Ok(text) = quick_query::<String>(other, redis::cmd("CLUSTER").arg("NODES")) else {
                continue;
            };
            let Ok(view) = parse_nodes(&text) else {
                continue;
            };
            let slots = view
                .iter()
                .find(|e| e.port == port)
                .map(|e| e.slots.clone())
                .unwrap_or_default();
            self.slots_before_fault
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(port, slots);
            return;
        }
    }

    /// One look at every running node. With `formation`, every node must be running and the
    /// configuration must be exactly what `redis-cli` was asked for.
    fn check(&self, formation: bool) -> Result<Agreed, String> {
        let running: HashSet<u16> = self.running_ports().into_iter().collect();
        if formation && running.len() != self.nodes.len() {
            return Err("a node is not running".into());
        }
        let mut reports = Vec::new();
        for node in &self.nodes {
            let port = node.server.port;
            if running.contains(&port) {
                let report = poll_node(port).map_err(|e| format!("node {port}: {e}"))?;
                reports.push(report);
            }
        }
        let Some(first) = reports.first() else {
            return Err("no node is running".into());
        };
        let mut masters = HashSet::new();
        let expected = signature(&first.view, &running);
        for report in &reports {
            let port = report.port;
            if !report.state_ok {
                return Err(format!("node {port} does not report cluster_state:ok"));
            }
            if report.master {
                masters.insert(port);
            }
            for &other in &running {
                match report.view.iter().find(|e| e.port == other) {
                    None => return Err(format!("node {port} does not know node {other}")),
                    Some(entry) if entry.is_failing() || entry.is_joining() => {
                        return Err(format!(
                            "node {port} flags node {other} as {}",
                            entry.flags.join(",")
                        ));
                    }
                    Some(_) => {}
                }
            }
            if formation && report.view.len() != self.nodes.len() {
                return Err(format!(
                    "node {port} knows {} nodes, not {}",
                    report.view.len(),
                    self.nodes.len()
                ));
            }
            let seen = signature(&report.view, &running);
            if seen != expected {
                return Err(format!(
                    "nodes {} and {port} disagree: {expected:?} vs {seen:?}",
                    first.port
                ));
            }
        }
        let assigned: u32 = expected
            .0
            .iter()
            .map(|&(start, end, _)| u32::from(end - start) + 1)
            .sum();
        if assigned != u32::from(CLUSTER_SLOTS) {
            return Err(format!("{assigned} of {CLUSTER_SLOTS} slots are assigned"));
        }
        for entry in &first.view {
            if entry.role == Some(Role::Replica)
                && running.contains(&entry.port)
                && entry.primary.is_some_and(|p| running.contains(&p))
            {
                let report = reports.iter().find(|r| r.port == entry.port);
                if !report.is_some_and(|r| r.link_up) {
                    return Err(format!(
                        "replica {} has no link to its primary yet",
                        entry.port
                    ));
                }
            }
        }
        if formation {
            let serving = first
                .view
                .iter()
                .filter(|e| e.role == Some(Role::Primary) && !e.slots.is_empty())
                .count();
            let replicas = first
                .view
                .iter()
                .filter(|e| e.role == Some(Role::Replica) && e.primary.is_some())
                .count();
            if serving != self.primaries || replicas != self.primaries * self.replicas_per_primary {
                return Err(format!(
                    "{serving} primaries serve slots and {replicas} nodes replicate one"
                ));
            }
        }
        replicas_streaming(&first.view, &running, BARRIER_POLL_WAIT)?;
        Ok(Agreed {
            view: first.view.clone(),
            masters,
        })
    }

    /// The tail of every node's log, for failure messages.
    fn logs_report(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let _ = writeln!(
                out,
                "log of node {} ({:?}, {}):\n{}",
                node.server.port,
                node.state(),
                node.server.log_path().display(),
                log_tail(&node.server.log_path(), 0)
            );
        }
        out
    }
}

/// The hash slot of `key`: CRC16 (XMODEM) of the key, or of the content of its first
/// non-empty `{hash tag}`, modulo 16384 — what `CLUSTER KEYSLOT` answers.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let len = rest.iter().position(|&b| b == b'}')?;
            (len > 0).then(|| &rest[..len])
        })
        .unwrap_or(key);
    crc16(hashed) % CLUSTER_SLOTS
}

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as Redis Cluster uses it.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

// ---------------------------------------------------------------------------------------------
// Starting nodes and forming the cluster.

fn node_url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// The cluster arguments of a node keeping its config in `dir`, with its bus on `bus_port`.
fn node_args(dir: &Path, bus_port: u16) -> Vec<String> {
    let config = dir.join("nodes.conf");
    let mut args: Vec<String> = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        config.to_str().expect("a UTF-8 temp path"),
        "--cluster-port",
        &bus_port.to_string(),
        "--cluster-node-timeout",
        &CLUSTER_NODE_TIMEOUT_MS.to_string(),
        "--cluster-replica-validity-factor",
        "0",
        "--cluster-require-full-coverage",
        "no",
        "--cluster-allow-reads-when-down",
        "no",
        "--cluster-allow-replica-migration",
        "no",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra_server_args());
    args
}

/// Arguments every server of the topology harnesses gets: replicas sync at once.
pub(crate) fn extra_server_args() -> Vec<String> {
    ["--repl-diskless-sync-delay", "0"]
        .map(String::from)
        .to_vec()
}

/// Starts a cluster node in `dir` on fresh client and bus ports, retrying on collisions.
fn spawn_node(dir: PathBuf) -> Node {
    let mut failures = Vec::new();
    for _ in 0..SPAWN_ATTEMPTS {
        let (port, bus_port) = (free_port(), free_port());
        if port == bus_port {
            continue;
        }
        // A failed attempt may have written a config naming the ports it could not use.
        let _ = fs::remove_file(dir.join("nodes.conf"));
        match start_with(port, &dir, &node_args(&dir, bus_port)) {
            Ok(child) => {
                return Node {
                    server: RedisServer {
                        port,
                        dir,
                        child: Some(child),
                        paused: AtomicBool::new(false),
                    },
                    bus_port,
                };
            }
            Err(StartError::Exited(msg) | StartError::NotReady(msg)) => {
                failures.push(format!("ports {port}/{bus_port}: {msg}"));
            }
        }
    }
    let _ = fs::remove_dir_all(&dir);
    panic!(
        "could not start a cluster node after {SPAWN_ATTEMPTS} attempts:\n{}",
        failures.join("\n")
    );
}

/// Runs `redis-cli --cluster create` over `ports`, output to `log`.
fn create_cluster(ports: &[u16], replicas: usize, log: &Path) -> Result<(), String> {
    let out = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let spawned = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(ports.iter().map(|port| format!("127.0.0.1:{port}")))
        .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn();
    let mut child: Child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            panic!("redis-cli not found on PATH: install it with redis-server")
        }
        Err(e) => panic!("cannot run redis-cli: {e}"),
    };
    let deadline = Instant::now() + CREATE_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(format!("{status}; output:\n{}", log_tail(log, 0)));
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "still running after {CREATE_TIMEOUT:?}; output:\n{}",
                    log_tail(log, 0)
                ));
            }
            Ok(None) => thread::sleep(POLL_INTERVAL),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("cannot poll redis-cli: {e}"));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the cluster's state.

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
struct Entry {
    id: String,
    port: u16,
    /// `None` while the node is still in handshake.
    role: Option<Role>,
    primary: Option<u16>,
    slots: Vec<(u16, u16)>,
    flags: Vec<String>,
}

impl Entry {
    fn is_failing(&self) -> bool {
        self.flags.iter().any(|f| f == "fail" || f == "fail?")
    }

    fn is_joining(&self) -> bool {
        self.flags.iter().any(|f| f == "handshake" || f == "noaddr")
    }
}

/// Parses a `CLUSTER NODES` reply; replicas' primaries are resolved to ports.
fn parse_nodes(text: &str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut primary_ids = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            return Err(format!("malformed CLUSTER NODES line {line:?}"));
        }
        // `ip:port@cport[,hostname]`; `:0@0` while the address is unknown.
        let port = fields[1]
            .split('@')
            .next()
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|port| port.parse::<u16>().ok())
            .ok_or_else(|| format!("no port in CLUSTER NODES line {line:?}"))?;
        let flags: Vec<String> = fields[2].split(',').map(String::from).collect();
        let role = if flags.iter().any(|f| f == "master") {
            Some(Role::Primary)
        } else if flags.iter().any(|f| f == "slave") {
            Some(Role::Replica)
        } else {
            None
        };
        let mut slots = Vec::new();
        // Importing / migrating markers (`[slot->-id]`) are not ownership.
        for range in fields[8..].iter().filter(|s| !s.starts_with('[')) {
            let parse = |s: &str| {
                s.parse::<u16>()
                    .map_err(|_| format!("bad slot {s:?} in CLUSTER NODES line {line:?}"))
            };
            let (start, end) = match range.split_once('-') {
                Some((start, end)) => (parse(start)?, parse(end)?),
                None => (parse(range)?, parse(range)?),
            };
            slots.push((start, end));
        }
        primary_ids.push((fields[3] != "-").then(|| fields[3].to_owned()));
        entries.push(Entry {
            id: fields[0].to_owned(),
            port,
            role,
            primary: None,
            slots,
            flags,
        });
    }
    let ports: HashMap<String, u16> = entries.iter().map(|e| (e.id.clone(), e.port)).collect();
    for (entry, primary_id) in entries.iter_mut().zip(primary_ids) {
        entry.primary = primary_id.and_then(|id| ports.get(&id).copied());
    }
    Ok(entries)
}

/// What the checks compare across nodes: the slot map as `(start, end, owner port)` ranges
/// (adjacent ranges of one owner merged), and the role and primary of every running node.
type Signature = (Vec<(u16, u16, u16)>, Vec<(u16, Option<Role>, Option<u16>)>);

fn signature(view: &[Entry], running: &HashSet<u16>) -> Signature {
    let mut ranges: Vec<(u16, u16, u16)> = view
        .iter()
        .flat_map(|e| e.slots.iter().map(move |&(s, t)| (s, t, e.port)))
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u16, u16, u16)> = Vec::with_capacity(ranges.len());
    for (start, end, owner) in ranges {
        match merged.last_mut() {
            Some(last) if last.2 == owner && u32::from(last.1) + 1 == u32::from(start) => {
                last.1 = end;
            }
            _ => merged.push((start, end, owner)),
        }
    }
    let mut roles: Vec<_> = view
        .iter()
        .filter(|e| running.contains(&e.port))
        .map(|e| (e.port, e.role, e.primary))
        .collect();
    roles.sort_unstable();
    (merged, roles)
}

/// Whether every running primary of `view` serving slots gets every running replica's
/// acknowledgement of a fresh write within `wait`.
///
/// A replica reports `master_link_status:up` as soon as it has loaded the primary's snapshot,
/// but after a diskless sync the primary only streams writes to it once the replica's first
/// `REPLCONF ACK` arrives (up to a second later): writes made in between die with the primary.
fn replicas_streaming(
    view: &[Entry],
    running: &HashSet<u16>,
    wait: Duration,
) -> Result<(), String> {
    for primary in view {
        if primary.role != Some(Role::Primary)
            || primary.slots.is_empty()
            || !running.contains(&primary.port)
        {
            continue;
        }
        let replicas = view
            .iter()
            .filter(|r| {
                r.role == Some(Role::Replica)
                    && r.primary == Some(primary.port)
                    && running.contains(&r.port)
            })
            .count();
        if replicas == 0 {
            continue;
        }
        let key = barrier_key(&primary.slots);
        let acked = replication_barrier(primary.port, &key, replicas, wait)
            .map_err(|e| format!("replication barrier on {}: {e}", primary.port))?;
        if acked < replicas {
            return Err(format!(
                "{acked} of {replicas} replicas of {} acknowledge its writes",
                primary.port
            ));
        }
    }
    Ok(())
}

/// A key in one of `slots`, for [`replication_barrier`].
fn barrier_key(slots: &[(u16, u16)]) -> String {
    (0u32..)
        .map(|i| format!("redis-test-harness:barrier:{i}"))
        .find(|key| {
            let slot = key_slot(key.as_bytes());
            slots.iter().any(|&(s, t)| (s..=t).contains(&slot))
        })
        .expect("some key hashes into a non-empty slot range")
}

/// The port of the node serving `slot` in `view`.
fn owner_of(view: &[Entry], slot: u16) -> Option<u16> {
    view.iter()
        .find(|e| e.slots.iter().any(|&(s, t)| (s..=t).contains(&slot)))
        .map(|e| e.port)
}

/// What one node says about itself and the cluster.
struct Report {
    port: u16,
    state_ok: bool,
    /// `role:master` in `INFO replication`.
    master: bool,
    /// `master_link_status:up` in `INFO replication`.
    link_up: bool,
    view: Vec<Entry>,
}

/// The agreed configuration of the running nodes.
struct Agreed {
    view: Vec<Entry>,
    /// Running nodes reporting `role:master`.
    masters: HashSet<u16>,
}

fn poll_node(port: u16) -> Result<Report, String> {
    let mut pipe = redis::pipe();
    pipe.cmd("CLUSTER")
        .arg("INFO")
        .cmd("CLUSTER")
        .arg("NODES")
        .cmd("INFO")
        .arg("replication");
    let (cluster_info, nodes, replication): (String, String, String) =
        quick_query_pipe(port, &pipe).map_err(|e| e.to_string())?;
    Ok(Report {
        port,
        state_ok: info_field(&cluster_info, "cluster_state") == Some("ok"),
        master: info_field(&replication, "role") == Some("master"),
        link_up: info_field(&replication, "master_link_status") == Some("up"),
        view: parse_nodes(&nodes)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers shared with the Sentinel harness.

/// A directory removed (recursively) when dropped.
#[derive(Debug)]
pub(crate) struct TempDir(pub(crate) PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A connection to 127.0.0.1:`port` with short timeouts, for polling.
fn quick_connect(port: u16) -> redis::RedisResult<redis::Connection> {
    connect_with(port, QUICK_IO_TIMEOUT)
}

/// A connection to 127.0.0.1:`port` with a short connect timeout and `io_timeout`.
fn connect_with(port: u16, io_timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let con = client.get_connection_with_timeout(QUICK_CONNECT_TIMEOUT)?;
    con.set_read_timeout(Some(io_timeout))?;
    con.set_write_timeout(Some(io_timeout))?;
    Ok(con)
}

/// Writes to the primary at `port` in a way nobody can observe (`MULTI`, `SET key`, `DEL key`,
/// `EXEC`), then `WAIT`s up to `wait` for `replicas` replicas to acknowledge it — and so every
/// earlier write. Returns how many did.
pub(crate) fn replication_barrier(
    port: u16,
    key: &str,
    replicas: usize,
    wait: Duration,
) -> redis::RedisResult<usize> {
    // WAIT counts acknowledgements of this connection's own last write.
    let mut con = connect_with(port, wait + QUICK_IO_TIMEOUT)?;
    redis::pipe()
        .atomic()
        .cmd("SET")
        .arg(key)
        .arg("")
        .ignore()
        .cmd("DEL")
        .arg(key)
        .ignore()
        .exec(&mut con)?;
    redis::cmd("WAIT")
        .arg(replicas)
        .arg(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
        .query(&mut con)
}

/// Runs `cmd` on 127.0.0.1:`port` with short timeouts.
pub(crate) fn quick_query<T: redis::FromRedisValue>(
    port: u16,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    cmd.query(&mut quick_connect(port)?)
}

/// Runs `pipe` on 127.0.0.1:`port` with short timeouts.
pub(crate) fn quick_query_pipe<T: redis::FromRedisValue>(
    port: u16,
    pipe: &redis::Pipeline,
) -> redis::RedisResult<T> {
    pipe.query(&mut quick_connect(port)?)
}

/// The value of `field` in an `INFO`-style `field:value` reply.
pub(crate) fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// Calls `check` every 50 ms until it succeeds or `timeout` has passed; on timeout returns the
/// last error.
pub(crate) fn wait_until<T>(
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => thread::sleep(TOPOLOGY_POLL_INTERVAL),
        }
    }
}
