//! Talking to the server on the side: `INFO commandstats` deltas, readiness, cleanup; and a
//! local Redis Cluster of the bench's own ([`LocalCluster`]).

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io::{self, Read as _},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use redis::aio::MultiplexedConnection;

/// `(calls, usec)` per command, from `INFO commandstats`.
pub(crate) type CommandStats = BTreeMap<String, (u64, u64)>;

pub(crate) async fn commandstats(admin: &MultiplexedConnection) -> CommandStats {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut admin.clone())
        .await
        .expect("INFO commandstats");
    parse_commandstats(&info)
}

fn parse_commandstats(info: &str) -> CommandStats {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| -> Option<u64> {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(key))?
                    .parse()
                    .ok()
            };
            Some((name.to_owned(), (field("calls=")?, field("usec=")?)))
        })
        .collect()
}

/// Commands executed between two snapshots, without the `INFO` calls themselves: the total
/// and a per-command breakdown.
#[derive(Clone, Debug, Default)]
pub(crate) struct CommandDelta {
    pub(crate) total: u64,
    pub(crate) by_command: BTreeMap<String, u64>,
    /// Time Redis spent in scripts (`EVALSHA`/`EVAL`, inner commands included), in µs.
    pub(crate) script_usec: u64,
}

pub(crate) fn delta(before: &CommandStats, after: &CommandStats) -> CommandDelta {
    let mut out = CommandDelta::default();
    for (name, &(calls, usec)) in after {
        if name == "info" {
            continue;
        }
        let (calls0, usec0) = before.get(name).copied().unwrap_or((0, 0));
        let d = calls.saturating_sub(calls0);
        if d > 0 {
            out.total += d;
            out.by_command.insert(name.clone(), d);
            if matches!(name.as_str(), "evalsha" | "eval") {
                out.script_usec += usec.saturating_sub(usec0);
            }
        }
    }
    out
}

impl CommandDelta {
    /// `GET 1, SET 1, EVALSHA 1 ...` per call.
    pub(crate) fn per_call(&self, calls: usize) -> String {
        if self.by_command.is_empty() {
            return "none".to_owned();
        }
        self.by_command
            .iter()
            .map(|(name, &n)| {
                let per = n as f64 / calls as f64;
                let name = name.to_uppercase();
                if (per - per.round()).abs() < 0.005 {
                    format!("{name} {}", per.round())
                } else {
                    format!("{name} {per:.2}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
            + &if self.script_usec > 0 {
                format!(
                    "; script time in Redis {:.1} µs",
                    self.script_usec as f64 / calls as f64
                )
            } else {
                String::new()
            }
    }
}

/// Waits until the server answers `PING` again (after a resume).
pub(crate) async fn wait_ready(url: &str) {
    let client = redis::Client::open(url).expect("valid URL");
    for _ in 0..200 {
        if let Ok(Ok(mut conn)) = tokio::time::timeout(
            Duration::from_millis(500),
            client.get_multiplexed_async_connection(),
        )
        .await
            && let Ok(Ok(pong)) = tokio::time::timeout(
                Duration::from_millis(500),
                redis::cmd("PING").query_async::<String>(&mut conn),
            )
            .await
            && pong == "PONG"
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis at {url} did not answer PING again");
}

/// Deletes every key matching `pattern` (`SCAN` + `UNLINK`).
pub(crate) async fn unlink_matching(admin: &MultiplexedConnection, pattern: &str) {
    let mut conn = admin.clone();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        if !keys.is_empty() {
            let _: i64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .expect("UNLINK");
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// A field of `INFO server`.
pub(crate) async fn server_info(admin: &MultiplexedConnection, field: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut admin.clone())
        .await
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Subscribers of a pub/sub channel.
pub(crate) async fn numsub(admin: &MultiplexedConnection, channel: &str) -> u64 {
    let (_, n): (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut admin.clone())
        .await
        .unwrap_or_default();
    n
}

/// `INFO commandstats` of several servers (the nodes of a cluster), summed per command.
pub(crate) async fn commandstats_sum(admins: &[MultiplexedConnection]) -> CommandStats {
    let mut total = CommandStats::new();
    for admin in admins {
        for (name, (calls, usec)) in commandstats(admin).await {
            let entry = total.entry(name).or_default();
            entry.0 += calls;
            entry.1 += usec;
        }
    }
    total
}

/// The value of `field` in an `INFO`-style `field:value` reply.
pub(crate) fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// A numeric field of the reply to `cmd` (`INFO …`, `CLUSTER INFO`), summed over `admins`; 0
/// where a server does not report it.
pub(crate) async fn info_sum(
    admins: &[MultiplexedConnection],
    cmd: &redis::Cmd,
    field: &str,
) -> f64 {
    let mut total = 0.0;
    for admin in admins {
        let info: String = cmd
            .query_async(&mut admin.clone())
            .await
            .unwrap_or_default();
        total += info_field(&info, field)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    }
    total
}

/// CPU time the servers used so far (`used_cpu_user` + `used_cpu_sys`), in seconds.
pub(crate) async fn cpu_seconds(admins: &[MultiplexedConnection]) -> f64 {
    let mut cmd = redis::cmd("INFO");
    cmd.arg("cpu");
    info_sum(admins, &cmd, "used_cpu_user").await + info_sum(admins, &cmd, "used_cpu_sys").await
}

// ---------------------------------------------------------------------------------------------
// A local Redis Cluster.

/// The number of hash slots of a Redis Cluster.
pub(crate) const CLUSTER_SLOTS: u16 = 16384;
/// `cluster-node-timeout` of every node, in milliseconds.
const CLUSTER_NODE_TIMEOUT_MS: u64 = 1000;
/// How long a node may take to answer `PING` after being started.
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `redis-cli --cluster create` may run.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a new cluster may take to agree on its configuration after `redis-cli` is done.
const FORMATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How many fresh port pairs a node start tries before giving up.
const SPAWN_ATTEMPTS: usize = 5;
/// Timeouts of one probe of a node (readiness, cluster state).
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
const PROBE_IO_TIMEOUT: Duration = Duration::from_secs(1);
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A Redis Cluster of `redis-server` processes the bench owns: `primaries` primaries, no
/// replicas, on free loopback ports, each in a private directory (its `nodes.conf` and
/// `redis.log`), without persistence. Dropping it kills the processes and removes the
/// directories.
#[derive(Debug)]
pub(crate) struct LocalCluster {
    nodes: Vec<ClusterNode>,
    dir: PathBuf,
}

#[derive(Debug)]
struct ClusterNode {
    port: u16,
    child: Child,
}

impl LocalCluster {
    /// Starts the nodes, joins them with `redis-cli --cluster create … --cluster-replicas 0`
    /// and waits until every node reports `cluster_state:ok` with all 16384 slots assigned,
    /// knows every other node, and all of them agree on who serves which slots.
    pub(crate) fn start(primaries: usize) -> Result<LocalCluster, String> {
        let dir = unique_dir("cbench-cluster")?;
        let mut cluster = LocalCluster {
            nodes: Vec::with_capacity(primaries),
            dir,
        };
        for index in 0..primaries {
            let node_dir = cluster.dir.join(format!("node-{index}"));
            fs::create_dir(&node_dir)
                .map_err(|e| format!("cannot create {}: {e}", node_dir.display()))?;
            cluster.nodes.push(spawn_node(&node_dir)?);
        }
        let log = cluster.dir.join("redis-cli.log");
        create_cluster(&cluster.ports(), &log)?;
        let deadline = Instant::now() + FORMATION_TIMEOUT;
        loop {
            match cluster.check() {
                Ok(()) => return Ok(cluster),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "the cluster did not form within {FORMATION_TIMEOUT:?}: {e}"
                    ));
                }
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The client port of every node, in start order.
    pub(crate) fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// `redis://127.0.0.1:PORT` of every node, in start order: the seeds of a cluster client.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.ports()
            .into_iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// The process ids of the nodes (for pinning).
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.child.id()).collect()
    }

    /// Which node (index into [`ports`](Self::ports)) serves each slot.
    pub(crate) fn slot_owners(&self) -> Result<Vec<usize>, String> {
        let port = self.nodes.first().ok_or("no node")?.port;
        let text: String = probe_query(port, redis::cmd("CLUSTER").arg("NODES"))?;
        let ports = self.ports();
        let mut owners = vec![usize::MAX; usize::from(CLUSTER_SLOTS)];
        for (owner, ranges) in parse_nodes(&text)? {
            let Some(index) = ports.iter().position(|&p| p == owner) else {
                continue;
            };
            for (start, end) in ranges {
                for slot in start..=end.min(CLUSTER_SLOTS - 1) {
                    owners[usize::from(slot)] = index;
                }
            }
        }
        if owners.contains(&usize::MAX) {
            return Err("some slots have no owner".to_owned());
        }
        Ok(owners)
    }

    /// One look at every node: state ok, all slots assigned, every node known, one slot map.
    fn check(&self) -> Result<(), String> {
        let mut maps = Vec::new();
        for node in &self.nodes {
            let port = node.port;
            let info: String = probe_query(port, redis::cmd("CLUSTER").arg("INFO"))?;
            let field = |f: &str| info_field(&info, f).unwrap_or("?").to_owned();
            if field("cluster_state") != "ok" {
                return Err(format!(
                    "node {port}: cluster_state:{}",
                    field("cluster_state")
                ));
            }
            if field("cluster_slots_assigned") != CLUSTER_SLOTS.to_string() {
                return Err(format!(
                    "node {port}: {} slots assigned",
                    field("cluster_slots_assigned")
                ));
            }
            if field("cluster_known_nodes") != self.nodes.len().to_string() {
                return Err(format!(
                    "node {port} knows {} nodes",
                    field("cluster_known_nodes")
                ));
            }
            let text: String = probe_query(port, redis::cmd("CLUSTER").arg("NODES"))?;
            if ["handshake", "fail", "noaddr", " disconnected"]
                .iter()
                .any(|flag| text.contains(flag))
            {
                return Err(format!("node {port} is not settled: {text}"));
            }
            let mut map = parse_nodes(&text)?;
            map.sort();
            maps.push(map);
        }
        if maps.windows(2).any(|w| w[0] != w[1]) {
            return Err("the nodes disagree on the slot map".to_owned());
        }
        Ok(())
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The hash slot of `key`: CRC16 (XMODEM) of the key, or of its first non-empty `{hash tag}`,
/// modulo 16384 — what `CLUSTER KEYSLOT` answers.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
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

/// For every slot, a short hash tag that lands in it (`{tag}` in a key or channel name puts
/// it in that slot): the smallest decimal number that does.
pub(crate) fn slot_tags() -> Vec<String> {
    let mut tags: Vec<Option<String>> = vec![None; usize::from(CLUSTER_SLOTS)];
    let mut missing = usize::from(CLUSTER_SLOTS);
    let mut n: u64 = 0;
    while missing > 0 {
        let tag = n.to_string();
        let slot = usize::from(crc16(tag.as_bytes()) % CLUSTER_SLOTS);
        if tags[slot].is_none() {
            tags[slot] = Some(tag);
            missing -= 1;
        }
        n += 1;
    }
    tags.into_iter().flatten().collect()
}

/// A primary of a `CLUSTER NODES` reply: its port and the slot ranges (inclusive) it serves.
type Primary = (u16, Vec<(u16, u16)>);

/// Every primary in a `CLUSTER NODES` reply.
fn parse_nodes(text: &str) -> Result<Vec<Primary>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            return Err(format!("malformed CLUSTER NODES line {line:?}"));
        }
        if !fields[2].split(',').any(|f| f == "master") {
            continue;
        }
        // `ip:port@cport[,hostname]`.
        let port = fields[1]
            .split('@')
            .next()
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|port| port.parse::<u16>().ok())
            .ok_or_else(|| format!("no port in CLUSTER NODES line {line:?}"))?;
        let mut ranges = Vec::new();
        for range in fields[8..].iter().filter(|s| !s.starts_with('[')) {
            let parse = |s: &str| {
                s.parse::<u16>()
                    .map_err(|_| format!("bad slot {s:?} in CLUSTER NODES line {line:?}"))
            };
            ranges.push(match range.split_once('-') {
                Some((start, end)) => (parse(start)?, parse(end)?),
                None => (parse(range)?, parse(range)?),
            });
        }
        ranges.sort_unstable();
        out.push((port, ranges));
    }
    Ok(out)
}

/// A port that was free a moment ago.
fn free_port() -> Result<u16, String> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// A fresh, uniquely named directory under the system temp dir.
fn unique_dir(prefix: &str) -> Result<PathBuf, String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    for _ in 0..100 {
        let dir = std::env::temp_dir().join(format!(
            "{prefix}-{}-{nanos:x}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    Err("cannot create a unique temp dir".to_owned())
}

/// Starts a cluster node in `dir` on fresh client and bus ports (retrying on collisions) and
/// waits until that very process answers `PING`.
fn spawn_node(dir: &Path) -> Result<ClusterNode, String> {
    let mut failures = Vec::new();
    for _ in 0..SPAWN_ATTEMPTS {
        let (port, bus_port) = (free_port()?, free_port()?);
        if port == bus_port {
            continue;
        }
        // A failed attempt may have written a config naming the ports it could not use.
        let _ = fs::remove_file(dir.join("nodes.conf"));
        match start_node(dir, port, bus_port) {
            Ok(child) => return Ok(ClusterNode { port, child }),
            Err(e) => failures.push(format!("ports {port}/{bus_port}: {e}")),
        }
    }
    Err(format!(
        "could not start a cluster node after {SPAWN_ATTEMPTS} attempts:\n{}",
        failures.join("\n")
    ))
}

fn start_node(dir: &Path, port: u16, bus_port: u16) -> Result<Child, String> {
    let log_path = dir.join("redis.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let config = dir.join("nodes.conf");
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes", "--cluster-config-file"])
        .arg(&config)
        .args([
            "--cluster-node-timeout",
            &CLUSTER_NODE_TIMEOUT_MS.to_string(),
            "--cluster-port",
            &bus_port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        // A preloaded allocator (the bench's jemalloc runs) is the bench's, not the server's.
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => "redis-server not found on PATH".to_owned(),
            _ => format!("cannot run redis-server: {e}"),
        })?;
    let deadline = Instant::now() + NODE_READY_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(format!(
                    "redis-server exited early ({status}); log:\n{}",
                    log_tail(&log_path)
                ));
            }
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("cannot poll redis-server: {e}"));
            }
        }
        // Only our own process counts: another server may have grabbed the port meanwhile.
        let pid: Result<String, String> = probe_query(port, redis::cmd("INFO").arg("server"));
        if pid.is_ok_and(|info| info_field(&info, "process_id") == Some(&child.id().to_string())) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "redis-server did not answer within {NODE_READY_TIMEOUT:?}; log:\n{}",
                log_tail(&log_path)
            ));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Runs `redis-cli --cluster create` over `ports` (no replicas), output to `log`.
fn create_cluster(ports: &[u16], log: &Path) -> Result<(), String> {
    let out = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(ports.iter().map(|port| format!("127.0.0.1:{port}")))
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                "redis-cli not found on PATH (it comes with redis-server)".to_owned()
            }
            _ => format!("cannot run redis-cli: {e}"),
        })?;
    let deadline = Instant::now() + CREATE_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(format!(
                    "redis-cli --cluster create failed ({status}):\n{}",
                    log_tail(log)
                ));
            }
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-cli --cluster create did not finish ({outcome:?}):\n{}",
                    log_tail(log)
                ));
            }
        }
    }
}

/// One command on 127.0.0.1:`port` over a fresh connection with short timeouts.
fn probe_query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> Result<T, String> {
    let run = || -> redis::RedisResult<T> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        let mut con = client.get_connection_with_timeout(PROBE_CONNECT_TIMEOUT)?;
        con.set_read_timeout(Some(PROBE_IO_TIMEOUT))?;
        con.set_write_timeout(Some(PROBE_IO_TIMEOUT))?;
        cmd.query(&mut con)
    };
    run().map_err(|e| format!("node {port}: {e}"))
}

/// The last 30 lines of a log file.
fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Err(e) = File::open(path).and_then(|mut f| f.read_to_string(&mut text)) {
        return format!("(cannot read {}: {e})", path.display());
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_subtracts() {
        let a = parse_commandstats(
            "# Commandstats\r\ncmdstat_get:calls=3,usec=1,usec_per_call=0.3\r\ncmdstat_info:calls=1,usec=9\r\n",
        );
        let b = parse_commandstats(
            "cmdstat_get:calls=5,usec=1\r\ncmdstat_info:calls=2,usec=9\r\ncmdstat_client|setinfo:calls=2,usec=1\r\n",
        );
        let d = delta(&a, &b);
        assert_eq!(d.total, 4);
        assert_eq!(d.per_call(2), "CLIENT|SETINFO 1, GET 1");
    }

    #[test]
    fn slots_and_tags() {
        // `CLUSTER KEYSLOT` answers.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{foo}:lock"), 12182);
        assert_eq!(key_slot(b"123456789"), 0x31c3);
        let tags = slot_tags();
        assert_eq!(tags.len(), usize::from(CLUSTER_SLOTS));
        for (slot, tag) in tags.iter().enumerate() {
            assert_eq!(
                usize::from(key_slot(format!("ch:{{{tag}}}").as_bytes())),
                slot
            );
        }
    }
}
