//! Test harness for the Redis-backed suites: a real `redis-server` per test
//! ([`RedisServer`], for fault injection), a namespaced Redis or Redis Cluster for behavioural
//! tests ([`TestRedis`], honouring `REDIS_URL`; [`backends`] gives all of them and the memory
//! backend), local clusters and Sentinel groups, and [`unreachable_url`].
//!
//! Everything here talks to a real server; nothing is mocked. All helpers are safe to use from
//! tests running in parallel, on threads of one process or across processes.

mod cluster;
mod sentinel;
mod tls;
pub use cluster::{
    CLUSTER_NODE_TIMEOUT_MS, CLUSTER_SLOTS, ClusterNode, NodeState, RedisCluster, Role, key_slot,
};
pub use sentinel::{SENTINEL_DOWN_AFTER_MS, SENTINEL_FAILOVER_TIMEOUT_MS, SentinelGroup};
pub use tls::{ClientAuth, Pki, TlsRedisServer};

use std::{
    fmt::Write as _,
    fs::{self, File, OpenOptions},
    io::{self, Read as _, Seek as _, SeekFrom},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// How long a server may take to answer `PING` after being started.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Connect timeout of one readiness probe.
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Read/write timeout of one readiness probe.
const PROBE_IO_TIMEOUT: Duration = Duration::from_millis(500);
/// Connect timeout of [`RedisServer::cmd`] and friends.
const CMD_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Read/write timeout of [`RedisServer::cmd`] and friends, so a paused server fails a test
/// instead of hanging it.
const CMD_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How many fresh ports [`RedisServer::spawn`] tries before giving up.
const SPAWN_ATTEMPTS: usize = 5;
/// How many lines of the server log a start-up failure shows.
const LOG_TAIL_LINES: usize = 40;

const NOT_FOUND_MESSAGE: &str = "redis-server not found on PATH: install it (Debian/Ubuntu: \
     `apt-get install redis-server`; macOS: `brew install redis`) or set REDIS_URL to a server \
     the tests may use";

/// A counter making temp dirs and namespaces unique within this process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn next_id() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A per-process nonce, so names stay unique across runs that happen to reuse a pid.
fn process_nonce() -> u32 {
    static NONCE: OnceLock<u32> = OnceLock::new();
    *NONCE.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        // Fold the whole timestamp so two processes started in the same second still differ.
        (nanos as u32) ^ ((nanos >> 32) as u32) ^ ((nanos >> 64) as u32)
    })
}

/// A redis-server process owned by the test, on a free loopback port.
///
/// The server runs without persistence (`--save "" --appendonly no`) in a private temporary
/// directory, which also holds its log (`redis.log`). Dropping it kills the process (resuming
/// it first if paused), reaps it and removes the directory.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    paused: AtomicBool,
}

/// Why one start attempt failed.
enum StartError {
    /// The process exited before answering (typically: the port was taken meanwhile).
    Exited(String),
    /// The process kept running but never answered `PING` in time.
    NotReady(String),
}

impl RedisServer {
    /// Spawns `redis-server` on a free 127.0.0.1 port and waits (at most 10 s) until it answers
    /// `PING`. Retries on another port if the server fails to start.
    ///
    /// # Panics
    ///
    /// If `redis-server` is not on `PATH`, or it cannot be started.
    pub fn spawn() -> RedisServer {
        let dir = make_temp_dir();
        let mut failures = Vec::new();
        for _ in 0..SPAWN_ATTEMPTS {
            let port = free_port();
            match start(port, &dir) {
                Ok(child) => {
                    return RedisServer {
                        port,
                        dir,
                        child: Some(child),
                        paused: AtomicBool::new(false),
                    };
                }
                Err(StartError::Exited(msg) | StartError::NotReady(msg)) => {
                    failures.push(format!("port {port}: {msg}"));
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
        panic!(
            "could not start redis-server after {SPAWN_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's URL, `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The process id of the running server, if it is running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Freezes the server (`SIGSTOP`): connections are still accepted by the kernel, but nothing
    /// is answered until [`resume`](Self::resume).
    ///
    /// # Panics
    ///
    /// If the server is not running.
    pub fn pause(&self) {
        let pid = self
            .pid()
            .expect("RedisServer::pause: the server is not running");
        signal(pid, "STOP");
        self.paused.store(true, Ordering::SeqCst);
    }

    /// Unfreezes a paused server (`SIGCONT`).
    ///
    /// # Panics
    ///
    /// If the server is not running.
    pub fn resume(&self) {
        let pid = self
            .pid()
            .expect("RedisServer::resume: the server is not running");
        signal(pid, "CONT");
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Kills the server (`SIGKILL`) and reaps it. Idempotent. [`restart`](Self::restart) brings
    /// it back on the same port.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.paused.swap(false, Ordering::SeqCst) {
                // SIGKILL ends a stopped process too, but resume first so nothing lingers.
                try_signal(child.id(), "CONT");
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it is running, then starts a fresh one (empty: nothing is persisted)
    /// on the same port and waits (at most 10 s) until it answers `PING`.
    ///
    /// # Panics
    ///
    /// If the server cannot be started on the same port in time.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match start(self.port, &self.dir) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                // The port may be briefly held by someone else: retry until the deadline.
                Err(StartError::Exited(msg)) => {
                    assert!(
                        Instant::now() < deadline,
                        "could not restart redis-server on port {} within {READY_TIMEOUT:?}: {msg}",
                        self.port
                    );
                    thread::sleep(Duration::from_millis(100));
                }
                Err(StartError::NotReady(msg)) => panic!(
                    "could not restart redis-server on port {}: {msg}",
                    self.port
                ),
            }
        }
    }

    /// Runs one command on a fresh connection and returns its reply, e.g.
    /// `server.cmd::<i64>(&["TTL", "app:user:42"])`.
    ///
    /// # Panics
    ///
    /// If the command fails or its reply does not convert to `T`.
    pub fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        run_str_cmd(&self.url(), args)
    }

    /// Like [`cmd`](Self::cmd) but returns the error instead of panicking.
    pub fn try_cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> redis::RedisResult<T> {
        try_run(&self.url(), &build_cmd(args))
    }

    /// Sets `key` to the raw bytes `value`.
    pub fn set_raw(&self, key: &str, value: &[u8]) {
        set_raw(&self.url(), key, value);
    }

    /// Returns the raw bytes stored at `key`, or `None` if it does not exist.
    pub fn get_raw(&self, key: &str) -> Option<Vec<u8>> {
        get_raw(&self.url(), key)
    }

    /// The path of the server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A Redis for behavioural tests that don't inject faults: the server at `REDIS_URL` if that is
/// set, otherwise a private [`RedisServer`] kept alive inside ([`new`](Self::new)); or the
/// process's shared 3-primary [`RedisCluster`] ([`new_cluster`](Self::new_cluster)).
///
/// Each `TestRedis` has a unique [`namespace`](Self::namespace) so tests sharing a server or a
/// cluster never see each other's keys. On a shared (`REDIS_URL`) server, keys containing the
/// namespace are deleted on drop (a shared cluster's keys go with its processes).
///
/// On a cluster, [`cmd`](Self::cmd), [`set_raw`](Self::set_raw) and [`get_raw`](Self::get_raw)
/// go to the node serving the key's slot, and `KEYS` runs on every primary.
#[derive(Debug)]
pub struct TestRedis {
    target: Target,
    namespace: String,
}

#[derive(Debug)]
enum Target {
    /// One server: `REDIS_URL` (no `server`) or a private one.
    Server {
        url: String,
        server: Option<RedisServer>,
    },
    Cluster(Arc<RedisCluster>),
}

impl TestRedis {
    /// A cache builder pointed at this Redis (or cluster), in this test's namespace.
    pub fn cache_builder(&self) -> cached_runtime::CacheBuilder {
        let builder = match &self.target {
            Target::Server { url, .. } => cached_runtime::Cache::builder().redis(url.clone()),
            Target::Cluster(cluster) => {
                cached_runtime::Cache::builder().redis_cluster(cluster.urls())
            }
        };
        builder.namespace(self.namespace())
    }

    /// A cache on this Redis, in this test's namespace, connected (panics if Redis does not
    /// answer).
    pub async fn cache(&self) -> cached_runtime::Cache {
        let cache = self
            .cache_builder()
            .build()
            .await
            .expect("valid test configuration");
        cache.ping().await.expect("the test Redis answers");
        cache
    }

    /// Uses `REDIS_URL` if set (and non-empty), otherwise spawns a private server.
    ///
    /// # Panics
    ///
    /// If no server can be had (see [`RedisServer::spawn`]).
    pub fn new() -> TestRedis {
        let target = match std::env::var("REDIS_URL") {
            Ok(url) if !url.trim().is_empty() => Target::Server {
                url: url.trim().to_owned(),
                server: None,
            },
            _ => {
                let server = RedisServer::spawn();
                Target::Server {
                    url: server.url(),
                    server: Some(server),
                }
            }
        };
        TestRedis {
            target,
            namespace: unique_namespace(),
        }
    }

    /// A namespace of its own on the 3-primary cluster this process's tests share (see
    /// [`RedisCluster::shared`]); the cluster runs while any `TestRedis` on it is alive.
    ///
    /// # Panics
    ///
    /// If the cluster cannot be started (see [`RedisCluster::start`]).
    pub fn new_cluster() -> TestRedis {
        TestRedis {
            target: Target::Cluster(RedisCluster::shared()),
            namespace: unique_namespace(),
        }
    }

    /// The URL of the server.
    ///
    /// # Panics
    ///
    /// On a cluster, which has no one URL: use [`cache_builder`](Self::cache_builder) or
    /// [`cluster`](Self::cluster).
    pub fn url(&self) -> String {
        match &self.target {
            Target::Server { url, .. } => url.clone(),
            Target::Cluster(_) => panic!(
                "TestRedis::url: a cluster has no single URL; use cache_builder() or cluster()"
            ),
        }
    }

    /// This instance's unique namespace (ASCII alphanumerics only), e.g. `t4242x1a2b3c4dx000007`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Runs one command on a fresh connection and returns its reply. On a cluster the command
    /// goes to the node serving the slot of its key (`args[1]`), and `KEYS` runs on every
    /// primary, its replies concatenated.
    ///
    /// # Panics
    ///
    /// If the command fails or its reply does not convert to `T`; on a cluster, also for a
    /// command without a key other than `KEYS`.
    pub fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        match &self.target {
            Target::Server { url, .. } => run_str_cmd(url, args),
            Target::Cluster(cluster) => match args {
                [name, pattern] if name.eq_ignore_ascii_case("KEYS") => {
                    let all: Vec<redis::Value> = cluster
                        .keys(pattern)
                        .into_iter()
                        .map(|key| redis::Value::BulkString(key.into_bytes()))
                        .collect();
                    T::from_redis_value(redis::Value::Array(all)).unwrap_or_else(|e| {
                        panic!("the reply of {args:?} on the cluster does not convert: {e}")
                    })
                }
                _ => cluster.cmd(args),
            },
        }
    }

    /// Sets `key` to the raw bytes `value`.
    pub fn set_raw(&self, key: &str, value: &[u8]) {
        match &self.target {
            Target::Server { url, .. } => set_raw(url, key, value),
            Target::Cluster(cluster) => cluster.set_raw(key, value),
        }
    }

    /// Returns the raw bytes stored at `key`, or `None` if it does not exist.
    pub fn get_raw(&self, key: &str) -> Option<Vec<u8>> {
        match &self.target {
            Target::Server { url, .. } => get_raw(url, key),
            Target::Cluster(cluster) => cluster.get_raw(key),
        }
    }

    /// The private server, when `REDIS_URL` was not set (and this is not a cluster).
    pub fn server(&self) -> Option<&RedisServer> {
        match &self.target {
            Target::Server { server, .. } => server.as_ref(),
            Target::Cluster(_) => None,
        }
    }

    /// The cluster, for a [`new_cluster`](Self::new_cluster).
    pub fn cluster(&self) -> Option<&RedisCluster> {
        match &self.target {
            Target::Server { .. } => None,
            Target::Cluster(cluster) => Some(cluster),
        }
    }
}

/// A namespace unique across the tests of this run, in this process and others.
fn unique_namespace() -> String {
    format!(
        "t{}x{:08x}x{:06}",
        std::process::id(),
        process_nonce(),
        next_id()
    )
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if let Target::Server { url, server: None } = &self.target {
            // Best effort: leave a shared server as we found it.
            let _ = delete_matching(url, &format!("*{}*", self.namespace));
        }
    }
}

/// A loopback URL where nothing listens, for "Redis unreachable" tests.
pub fn unreachable_url() -> String {
    format!("redis://127.0.0.1:{}/0", free_port())
}

// ---------------------------------------------------------------------------------------------
// Process management.

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind a TcpListener to 127.0.0.1:0");
    listener
        .local_addr()
        .expect("local address of a bound listener")
        .port()
}

/// Creates a fresh, uniquely named directory under the system temp dir.
fn make_temp_dir() -> PathBuf {
    let base = std::env::temp_dir();
    for _ in 0..100 {
        let dir = base.join(format!(
            "redis-test-{}-{:08x}-{}",
            std::process::id(),
            process_nonce(),
            next_id()
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create a temp dir {}: {e}", dir.display()),
        }
    }
    panic!("cannot create a unique temp dir under {}", base.display());
}

/// Starts `redis-server` on `port` in `dir` and waits until that very process answers `PING`.
/// On failure the process is killed and reaped.
fn start(port: u16, dir: &Path) -> Result<Child, StartError> {
    start_with(port, dir, &[])
}

/// [`start`], with `extra` arguments for `redis-server` (TLS ports and files).
fn start_with(port: u16, dir: &Path, extra: &[String]) -> Result<Child, StartError> {
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
        .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
        .args(["--port", &port.to_string()])
        .arg("--dir")
        .arg(dir)
        .args(["--daemonize", "no"])
        .args(extra)
        // A preloaded allocator (the bench's jemalloc runs) is the caller's, not the server's.
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!("{NOT_FOUND_MESSAGE}"),
        Err(e) => panic!("cannot run redis-server: {e}"),
    };

    let url = format!("redis://127.0.0.1:{port}/0");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(StartError::Exited(format!(
                    "redis-server exited early ({status}); log:\n{}",
                    log_tail(&log_path, log_offset)
                )));
            }
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(StartError::NotReady(format!(
                    "cannot poll redis-server: {e}"
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
                "redis-server did not answer PING within {READY_TIMEOUT:?}; log:\n{}",
                log_tail(&log_path, log_offset)
            )));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// PINGs the server at `url` with short timeouts and returns its process id if it answered.
fn probe(url: &str) -> Option<u32> {
    let client = redis::Client::open(url).ok()?;
    let mut con = client
        .get_connection_with_timeout(PROBE_CONNECT_TIMEOUT)
        .ok()?;
    con.set_read_timeout(Some(PROBE_IO_TIMEOUT)).ok()?;
    con.set_write_timeout(Some(PROBE_IO_TIMEOUT)).ok()?;
    let pong: String = redis::cmd("PING").query(&mut con).ok()?;
    if pong != "PONG" {
        return None;
    }
    let info: String = redis::cmd("INFO").arg("server").query(&mut con).ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

/// The last lines written to the log since `offset`.
fn log_tail(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    let read = File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(offset))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(())
    });
    if let Err(e) = read {
        return format!("(cannot read {}: {e})", path.display());
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    if lines.len() > LOG_TAIL_LINES {
        let _ = writeln!(out, "[... {} earlier lines]", lines.len() - LOG_TAIL_LINES);
    }
    for line in &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..] {
        let _ = writeln!(out, "  {line}");
    }
    if out.is_empty() {
        out.push_str("  (empty)");
    }
    out
}

/// Sends `SIG{name}` to `pid`, returning whether that worked.
fn try_signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Sends `SIG{name}` to `pid`, panicking on failure.
fn signal(pid: u32, name: &str) {
    assert!(
        try_signal(pid, name),
        "could not send SIG{name} to redis-server (pid {pid}) with `kill`"
    );
}

// ---------------------------------------------------------------------------------------------
// One-shot commands.

fn connect(url: &str) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(url)?;
    let con = client.get_connection_with_timeout(CMD_CONNECT_TIMEOUT)?;
    con.set_read_timeout(Some(CMD_IO_TIMEOUT))?;
    con.set_write_timeout(Some(CMD_IO_TIMEOUT))?;
    Ok(con)
}

fn try_run<T: redis::FromRedisValue>(url: &str, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let mut con = connect(url)?;
    cmd.query(&mut con)
}

fn build_cmd(args: &[&str]) -> redis::Cmd {
    let (name, rest) = args
        .split_first()
        .expect("a Redis command needs at least a name");
    let mut cmd = redis::cmd(name);
    for arg in rest {
        cmd.arg(*arg);
    }
    cmd
}

fn run_str_cmd<T: redis::FromRedisValue>(url: &str, args: &[&str]) -> T {
    try_run(url, &build_cmd(args))
        .unwrap_or_else(|e| panic!("Redis command {args:?} on {url} failed: {e}"))
}

fn set_raw(url: &str, key: &str, value: &[u8]) {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    try_run::<()>(url, &cmd).unwrap_or_else(|e| {
        panic!(
            "Redis SET {key:?} <{} bytes> on {url} failed: {e}",
            value.len()
        )
    });
}

fn get_raw(url: &str, key: &str) -> Option<Vec<u8>> {
    let mut cmd = redis::cmd("GET");
    cmd.arg(key);
    try_run(url, &cmd).unwrap_or_else(|e| panic!("Redis GET {key:?} on {url} failed: {e}"))
}

/// Deletes every key matching the glob `pattern` (SCAN + DEL).
fn delete_matching(url: &str, pattern: &str) -> redis::RedisResult<()> {
    let mut con = connect(url)?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(&mut con)?;
        if !keys.is_empty() {
            redis::cmd("DEL").arg(&keys).exec(&mut con)?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// The backends every behavioural test runs against: a Redis of its own, a namespace on the
/// 3-primary cluster this process's tests share (each kept alive by the returned `TestRedis`),
/// and the memory backend.
pub async fn backends() -> Vec<(cached_runtime::Cache, Option<TestRedis>)> {
    let redis = TestRedis::new();
    let on_redis = redis.cache().await;
    let cluster = TestRedis::new_cluster();
    let on_cluster = cluster.cache().await;
    let in_memory = cached_runtime::Cache::builder()
        .memory()
        .namespace("mem")
        .build()
        .await
        .expect("valid memory configuration");
    vec![
        (on_redis, Some(redis)),
        (on_cluster, Some(cluster)),
        (in_memory, None),
    ]
}
