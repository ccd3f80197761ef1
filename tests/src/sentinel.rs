//! A local Redis Sentinel group for the Sentinel suites: a primary, one replica and three
//! sentinels, all real processes on free loopback ports, with fault injection on the data nodes
//! and a wait for the sentinels' failover.

use std::{
    collections::HashMap,
    fmt::Write as _,
    fs::{self, OpenOptions},
    io,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use crate::{
    NOT_FOUND_MESSAGE, POLL_INTERVAL, READY_TIMEOUT, RedisServer, SPAWN_ATTEMPTS, StartError,
    build_cmd,
    cluster::{
        BARRIER_POLL_WAIT, TempDir, extra_server_args, info_field, quick_query, quick_query_pipe,
        replication_barrier, wait_until,
    },
    free_port, log_tail, make_temp_dir, next_id, probe, process_nonce, start_with, try_run,
};

/// How many sentinels a group runs; the quorum is 2.
const SENTINELS: usize = 3;
/// `sentinel down-after-milliseconds`: a primary silent this long is subjectively down.
pub const SENTINEL_DOWN_AFTER_MS: u64 = 1000;
/// `sentinel failover-timeout`, in milliseconds. It also spaces out retries: a sentinel that
/// lost an election, or voted for another, waits twice this long before trying again.
pub const SENTINEL_FAILOVER_TIMEOUT_MS: u64 = 3000;
/// How long a new group may take until the sentinels know each other and the replica.
const FORMATION_TIMEOUT: Duration = Duration::from_secs(30);
/// The key of the replication barrier's unobservable write.
const BARRIER_KEY: &str = "redis-test-harness:barrier";

/// A Sentinel-monitored primary with one replica and three sentinels (quorum 2), owned by the
/// test, on free loopback ports.
///
/// The data nodes run without persistence (and `repl-diskless-sync-delay 0`); every process
/// has a private directory holding its log (`redis.log`), the sentinels' also their rewritten
/// `sentinel.conf`. The master name is unique per group (`mymaster-…`). Dropping the group kills
/// every process and removes the directories.
#[derive(Debug)]
pub struct SentinelGroup {
    master_name: String,
    /// Dropped (killed) before the data nodes, so no failover starts while tearing down.
    sentinels: Vec<RedisServer>,
    /// The initial primary, then the initial replica.
    data: Vec<RedisServer>,
    /// The primary before the last [`kill_primary`](Self::kill_primary) or
    /// [`pause_primary`](Self::pause_primary).
    failed_primary: Mutex<Option<u16>>,
    /// Holds the process directories; dropped (removed) last.
    dir: TempDir,
}

impl SentinelGroup {
    /// Starts a primary, a replica of it, and three sentinels monitoring it, then waits (at most
    /// 30 s) until the replica is in sync and acknowledges writes (see
    /// [`wait_replicated`](Self::wait_replicated)) and every sentinel reports the primary, knows
    /// the replica (link up) and the two other sentinels — what a failover needs.
    ///
    /// # Panics
    ///
    /// If `redis-server` is not on `PATH` or the group does not form in time (the message holds
    /// the tail of every process's log).
    pub fn start() -> SentinelGroup {
        let dir = TempDir(make_temp_dir());
        let master_name = format!(
            "mymaster-{}-{:08x}-{}",
            std::process::id(),
            process_nonce(),
            next_id()
        );
        let primary = spawn_data_node(subdir(&dir.0, "primary"), None);
        let replica = spawn_data_node(subdir(&dir.0, "replica"), Some(primary.port));
        let mut group = SentinelGroup {
            master_name,
            sentinels: Vec::new(),
            data: vec![primary, replica],
            failed_primary: Mutex::new(None),
            dir,
        };
        // The sentinels learn the replica from the primary's INFO, which they ask for at once
        // but then only every 10 s: start them once the replica is attached.
        if let Err(e) = wait_until(FORMATION_TIMEOUT, || group.replica_streaming(true)) {
            panic!(
                "the replica did not sync within {FORMATION_TIMEOUT:?}: {e}\n{}",
                group.logs_report()
            );
        }
        for index in 0..SENTINELS {
            let sentinel_dir = subdir(&group.dir.0, &format!("sentinel-{index}"));
            let sentinel = spawn_sentinel(sentinel_dir, &group.master_name, group.primary_port());
            group.sentinels.push(sentinel);
        }
        if let Err(e) = wait_until(FORMATION_TIMEOUT, || group.check_formed()) {
            panic!(
                "the sentinels did not settle within {FORMATION_TIMEOUT:?}: {e}\n{}",
                group.logs_report()
            );
        }
        group
    }

    /// The name the sentinels monitor the primary under.
    pub fn master_name(&self) -> &str {
        &self.master_name
    }

    /// `redis://127.0.0.1:PORT` for each of the three sentinels.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinel_ports()
            .into_iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// The ports of the three sentinels.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(RedisServer::port).collect()
    }

    /// The port of the initial primary.
    pub fn primary_port(&self) -> u16 {
        self.data[0].port
    }

    /// The port of the initial replica.
    pub fn replica_port(&self) -> u16 {
        self.data[1].port
    }

    /// The port of the primary as the sentinels report it (`SENTINEL get-master-addr-by-name`):
    /// the answer of most sentinels that answer.
    ///
    /// # Panics
    ///
    /// If no sentinel answers.
    pub fn current_primary(&self) -> u16 {
        let mut votes: Vec<(u16, usize)> = Vec::new();
        let mut errors = Vec::new();
        for port in self.running_sentinels() {
            match self.reported_primary(port) {
                Ok(primary) => match votes.iter_mut().find(|(p, _)| *p == primary) {
                    Some((_, count)) => *count += 1,
                    None => votes.push((primary, 1)),
                },
                Err(e) => errors.push(format!("sentinel {port}: {e}")),
            }
        }
        // The first of the most voted (max_by_key would pick the last).
        let most = votes.iter().map(|&(_, count)| count).max();
        votes
            .iter()
            .find(|&&(_, count)| Some(count) == most)
            .map(|&(port, _)| port)
            .unwrap_or_else(|| panic!("no sentinel reported a primary: {}", errors.join("; ")))
    }

    /// Runs one command on the data node or sentinel at `port` (fresh connection) and returns
    /// its reply.
    ///
    /// # Panics
    ///
    /// If the command fails or its reply does not convert to `T`.
    pub fn cmd_on<T: redis::FromRedisValue>(&self, port: u16, args: &[&str]) -> T {
        self.try_cmd_on(port, args)
            .unwrap_or_else(|e| panic!("Redis command {args:?} on port {port} failed: {e}"))
    }

    /// Like [`cmd_on`](Self::cmd_on) but returns the error instead of panicking.
    pub fn try_cmd_on<T: redis::FromRedisValue>(
        &self,
        port: u16,
        args: &[&str],
    ) -> redis::RedisResult<T> {
        try_run(&format!("redis://127.0.0.1:{port}"), &build_cmd(args))
    }

    /// Kills the current primary (as the sentinels report it) with `SIGKILL` and returns its
    /// port; [`wait_for_failover`](Self::wait_for_failover) then waits for its replacement.
    ///
    /// # Panics
    ///
    /// If no sentinel answers, or the reported primary is not one of the group's data nodes.
    pub fn kill_primary(&mut self) -> u16 {
        let port = self.current_primary();
        *self
            .failed_primary
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(port);
        self.data_node_mut(port).kill();
        port
    }

    /// Freezes the current primary (as the sentinels report it) with `SIGSTOP` and returns its
    /// port; once frozen for longer than 1 s the sentinels fail it over.
    /// [`resume_node`](Self::resume_node) unfreezes it (the sentinels then turn it into a
    /// replica if it was replaced).
    ///
    /// # Panics
    ///
    /// If no sentinel answers, or the reported primary is not running.
    pub fn pause_primary(&self) -> u16 {
        let port = self.current_primary();
        *self
            .failed_primary
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(port);
        self.data_node(port).pause();
        port
    }

    /// Unfreezes a data node frozen by [`pause_primary`](Self::pause_primary) (`SIGCONT`).
    ///
    /// # Panics
    ///
    /// If `port` is not a running data node of the group.
    pub fn resume_node(&self, port: u16) {
        self.data_node(port).resume();
    }

    /// Waits until every sentinel reports the same primary, other than the one last killed or
    /// paused, and that node is running and answers `ROLE` as `master`. Returns its port.
    ///
    /// # Panics
    ///
    /// If no primary was killed or paused, or the failover does not complete within `timeout`
    /// (the message holds the tail of every process's log).
    pub fn wait_for_failover(&self, timeout: Duration) -> u16 {
        let old = self
            .failed_primary
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expect("SentinelGroup::wait_for_failover: no primary was killed or paused");
        let outcome = wait_until(timeout, || {
            let mut reported = Vec::new();
            for port in self.running_sentinels() {
                reported.push(
                    self.reported_primary(port)
                        .map_err(|e| format!("sentinel {port}: {e}"))?,
                );
            }
            let new = match reported[..] {
                [first, ref rest @ ..] if rest.iter().all(|&p| p == first) => first,
                _ => return Err(format!("the sentinels report {reported:?}")),
            };
            if new == old {
                return Err(format!("the sentinels still report {old}"));
            }
            if !self.data.iter().any(|n| n.port == new && is_running(n)) {
                return Err(format!(
                    "the reported primary {new} is not a running data node"
                ));
            }
            let role: Vec<redis::Value> =
                quick_query(new, &redis::cmd("ROLE")).map_err(|e| format!("ROLE on {new}: {e}"))?;
            let role: Option<String> = role
                .into_iter()
                .next()
                .and_then(|v| redis::from_redis_value(v).ok());
            match role.as_deref() {
                Some("master") => Ok(new),
                other => Err(format!("node {new} answers ROLE {other:?}")),
            }
        });
        outcome.unwrap_or_else(|e| {
            panic!(
                "no failover away from {old} within {timeout:?}: {e}\n{}",
                self.logs_report()
            )
        })
    }

    /// Waits until the running replica of the current primary (as the sentinels report it), if
    /// any, has acknowledged every write the primary took so far (a write nobody can observe,
    /// `MULTI SET DEL EXEC`, then `WAIT`): what was written before this call survives a
    /// failover.
    ///
    /// # Panics
    ///
    /// If no sentinel answers, or the replica does not acknowledge within `timeout`.
    pub fn wait_replicated(&self, timeout: Duration) {
        if let Err(e) = wait_until(timeout, || self.replica_streaming(false)) {
            panic!("the replica did not catch up within {timeout:?}: {e}");
        }
    }

    /// The path of the log file of the data node or sentinel at `port`.
    ///
    /// # Panics
    ///
    /// If no process of the group has that port.
    pub fn log_path(&self, port: u16) -> PathBuf {
        self.data
            .iter()
            .chain(&self.sentinels)
            .find(|server| server.port == port)
            .unwrap_or_else(|| panic!("no process of this group has port {port}"))
            .log_path()
    }

    // -----------------------------------------------------------------------------------------

    fn data_node(&self, port: u16) -> &RedisServer {
        self.data
            .iter()
            .find(|node| node.port == port)
            .unwrap_or_else(|| panic!("port {port} is not a data node of this group"))
    }

    fn data_node_mut(&mut self, port: u16) -> &mut RedisServer {
        self.data
            .iter_mut()
            .find(|node| node.port == port)
            .unwrap_or_else(|| panic!("port {port} is not a data node of this group"))
    }

    fn running_sentinels(&self) -> Vec<u16> {
        self.sentinels
            .iter()
            .filter(|s| is_running(s))
            .map(RedisServer::port)
            .collect()
    }

    /// Whether the running replica of the current primary, if any, is in sync and acknowledges
    /// a fresh write.
    ///
    /// A replica reports `master_link_status:up` as soon as it has loaded the primary's
    /// snapshot, but after a diskless sync the primary only streams writes to it once the
    /// replica's first `REPLCONF ACK` arrives (up to a second later): writes made in between
    /// die with the primary. With `required`, a replica must be attached.
    fn replica_streaming(&self, required: bool) -> Result<(), String> {
        let primary = if self.sentinels.is_empty() {
            self.primary_port()
        } else {
            self.current_primary()
        };
        let mut replicas = 0;
        for node in self
            .data
            .iter()
            .filter(|n| n.port != primary && is_running(n))
        {
            let info: String = quick_query(node.port, redis::cmd("INFO").arg("replication"))
                .map_err(|e| format!("node {}: {e}", node.port))?;
            if info_field(&info, "master_port") != Some(&primary.to_string()) {
                continue;
            }
            match info_field(&info, "master_link_status") {
                Some("up") => replicas += 1,
                status => {
                    return Err(format!(
                        "replica {} master_link_status: {status:?}",
                        node.port
                    ));
                }
            }
        }
        if replicas == 0 {
            return if required {
                Err(format!("no replica of {primary} yet"))
            } else {
                Ok(())
            };
        }
        let acked = replication_barrier(primary, BARRIER_KEY, replicas, BARRIER_POLL_WAIT)
            .map_err(|e| format!("replication barrier on {primary}: {e}"))?;
        if acked < replicas {
            return Err(format!(
                "{acked} of {replicas} replicas of {primary} acknowledge its writes"
            ));
        }
        Ok(())
    }

    /// The primary's port according to the sentinel at `port`.
    fn reported_primary(&self, port: u16) -> Result<u16, String> {
        let addr: Option<(String, String)> = quick_query(
            port,
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.master_name),
        )
        .map_err(|e| e.to_string())?;
        let (_host, primary) = addr.ok_or("the master name is unknown")?;
        primary
            .parse()
            .map_err(|_| format!("bad port {primary:?} in get-master-addr-by-name"))
    }

    /// Whether every sentinel reports the initial primary and knows the replica (link up) and
    /// the two other sentinels.
    fn check_formed(&self) -> Result<(), String> {
        let (primary, replica) = (self.primary_port(), self.replica_port());
        for sentinel in self.sentinel_ports() {
            let mut pipe = redis::pipe();
            pipe.cmd("SENTINEL")
                .arg("master")
                .arg(&self.master_name)
                .cmd("SENTINEL")
                .arg("replicas")
                .arg(&self.master_name)
                .cmd("SENTINEL")
                .arg("sentinels")
                .arg(&self.master_name);
            type Fields = Vec<String>;
            let (master, replicas, sentinels): (Fields, Vec<Fields>, Vec<Fields>) =
                quick_query_pipe(sentinel, &pipe)
                    .map_err(|e| format!("sentinel {sentinel}: {e}"))?;
            let master = fields(master);
            let field = |map: &HashMap<String, String>, key: &str| {
                map.get(key).cloned().unwrap_or_default()
            };
            if field(&master, "port") != primary.to_string() || field(&master, "flags") != "master"
            {
                return Err(format!(
                    "sentinel {sentinel} sees the primary as {master:?}"
                ));
            }
            let knows_replica = replicas.into_iter().map(fields).any(|r| {
                field(&r, "port") == replica.to_string()
                    && field(&r, "flags") == "slave"
                    && field(&r, "master-link-status") == "ok"
            });
            if !knows_replica {
                return Err(format!("sentinel {sentinel} does not know the replica yet"));
            }
            let peers = sentinels
                .into_iter()
                .map(fields)
                .filter(|s| field(s, "flags") == "sentinel")
                .count();
            if peers != SENTINELS - 1 {
                return Err(format!(
                    "sentinel {sentinel} knows {peers} of {} other sentinels",
                    SENTINELS - 1
                ));
            }
        }
        Ok(())
    }

    /// The tail of every process's log, for failure messages.
    fn logs_report(&self) -> String {
        let mut out = String::new();
        let named = self
            .data
            .iter()
            .map(|s| ("data node", s))
            .chain(self.sentinels.iter().map(|s| ("sentinel", s)));
        for (kind, server) in named {
            let _ = writeln!(
                out,
                "log of {kind} {} ({}):\n{}",
                server.port,
                server.log_path().display(),
                log_tail(&server.log_path(), 0)
            );
        }
        out
    }
}

/// A flat `[key, value, key, value, …]` reply as a map.
fn fields(flat: Vec<String>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let mut items = flat.into_iter();
    while let (Some(key), Some(value)) = (items.next(), items.next()) {
        map.insert(key, value);
    }
    map
}

fn is_running(server: &RedisServer) -> bool {
    server.child.is_some() && !server.paused.load(Ordering::SeqCst)
}

fn subdir(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// Starts a data node in `dir` on a fresh port, a replica of `primary` if given.
fn spawn_data_node(dir: PathBuf, primary: Option<u16>) -> RedisServer {
    let mut args = extra_server_args();
    if let Some(primary) = primary {
        args.extend([
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.to_string(),
        ]);
    }
    let mut failures = Vec::new();
    for _ in 0..SPAWN_ATTEMPTS {
        let port = free_port();
        match start_with(port, &dir, &args) {
            Ok(child) => return server(port, dir, child),
            Err(StartError::Exited(msg) | StartError::NotReady(msg)) => {
                failures.push(format!("port {port}: {msg}"));
            }
        }
    }
    panic!(
        "could not start redis-server after {SPAWN_ATTEMPTS} attempts:\n{}",
        failures.join("\n")
    );
}

/// Starts a sentinel in `dir` on a fresh port, monitoring `master_name` at `primary`.
fn spawn_sentinel(dir: PathBuf, master_name: &str, primary: u16) -> RedisServer {
    let mut failures = Vec::new();
    for _ in 0..SPAWN_ATTEMPTS {
        let port = free_port();
        match start_sentinel(port, &dir, master_name, primary) {
            Ok(child) => return server(port, dir, child),
            Err(StartError::Exited(msg) | StartError::NotReady(msg)) => {
                failures.push(format!("port {port}: {msg}"));
            }
        }
    }
    panic!(
        "could not start a sentinel after {SPAWN_ATTEMPTS} attempts:\n{}",
        failures.join("\n")
    );
}

fn server(port: u16, dir: PathBuf, child: Child) -> RedisServer {
    RedisServer {
        port,
        dir,
        child: Some(child),
        paused: AtomicBool::new(false),
    }
}

/// Writes a fresh `sentinel.conf` for `port` into `dir`, starts `redis-server <conf>
/// --sentinel` and waits until that very process answers `PING`. On failure the process is
/// killed and reaped.
fn start_sentinel(
    port: u16,
    dir: &Path,
    master_name: &str,
    primary: u16,
) -> Result<Child, StartError> {
    let config_path = dir.join("sentinel.conf");
    let config = format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         daemonize no\n\
         dir \"{dir}\"\n\
         sentinel resolve-hostnames no\n\
         sentinel monitor {master_name} 127.0.0.1 {primary} 2\n\
         sentinel down-after-milliseconds {master_name} {SENTINEL_DOWN_AFTER_MS}\n\
         sentinel failover-timeout {master_name} {SENTINEL_FAILOVER_TIMEOUT_MS}\n\
         sentinel parallel-syncs {master_name} 1\n",
        dir = dir.display(),
    );
    fs::write(&config_path, config)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));

    let log_path = dir.join("redis.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", log_path.display()));
    let log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
    let log_err = log
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot clone the handle of {}: {e}", log_path.display()));
    let spawned = Command::new("redis-server")
        .arg(&config_path)
        .arg("--sentinel")
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!("{NOT_FOUND_MESSAGE}"),
        Err(e) => panic!("cannot run redis-server --sentinel: {e}"),
    };

    let url = format!("redis://127.0.0.1:{port}");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(StartError::Exited(format!(
                    "the sentinel exited early ({status}); log:\n{}",
                    log_tail(&log_path, log_offset)
                )));
            }
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(StartError::NotReady(format!(
                    "cannot poll the sentinel: {e}"
                )));
            }
        }
        // Only our own process counts: another server may have grabbed the port meanwhile.
        if probe(&url) == Some(child.id()) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(StartError::NotReady(format!(
                "the sentinel did not answer PING within {READY_TIMEOUT:?}; log:\n{}",
                log_tail(&log_path, log_offset)
            )));
        }
        thread::sleep(POLL_INTERVAL);
    }
}
