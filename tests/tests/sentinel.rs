//! Redis Sentinel, on real processes (`tests::SentinelGroup`: a primary, a replica and three
//! sentinels): the cache finds the primary through the sentinels, follows it through a failover
//! without being rebuilt — every call meanwhile returns its body's value, in bounded time — and
//! never shows a sentinel's or the primary's password. Run with `--nocapture` to see the
//! failover timings.

use std::{
    error::Error as _,
    fmt::{self, Write as _},
    sync::{
        Arc, Mutex, Once,
        atomic::{AtomicBool, AtomicU64, Ordering::SeqCst},
    },
    time::{Duration, Instant},
};

use cached_runtime::{Cache, cache_aside};
use tests::SentinelGroup;
use tracing::{
    Event, Metadata, Subscriber,
    field::{Field, Visit},
    span,
};

/// The cache's bound on each round trip in these tests.
const OP_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a call may take: a read, and for a miss a lease and a write, each bounded by
/// `OP_TIMEOUT`, plus slack for a loaded test machine. Not a latency target.
const CALL_BOUND: Duration = Duration::from_millis(3 * 200 + 1000);
/// From the failure of the primary to the first hit on the promoted replica, at most.
const FOLLOW_BOUND: Duration = Duration::from_secs(15);
/// The keys warmed before the failover.
const KEYS: u32 = 20;

/// A repository whose load is `id * 10`, counting its loads.
struct Repo {
    cache: Cache,
    loads: AtomicU64,
}

impl Repo {
    fn new(cache: Cache) -> Arc<Repo> {
        Arc::new(Repo {
            cache,
            loads: AtomicU64::new(0),
        })
    }

    /// `ran` is set when the body runs: the call was not a hit.
    #[cache_aside(key = "item:<id>", ttl = 600, cache = self.cache)]
    async fn get(&self, id: u32, ran: &AtomicBool) -> u64 {
        ran.store(true, SeqCst);
        self.loads.fetch_add(1, SeqCst);
        u64::from(id) * 10
    }

    /// Like `get`, with a body that takes 300 ms: long enough for another cache to wait on
    /// its lease.
    #[cache_aside(key = "slow:<id>", ttl = 600, cache = self.cache)]
    async fn slow(&self, id: u32, ran: &AtomicBool) -> u64 {
        ran.store(true, SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        u64::from(id) * 10
    }

    /// One call: whether it was a hit. Its value is always the body's.
    async fn call(&self, id: u32) -> bool {
        let ran = AtomicBool::new(false);
        assert_eq!(self.get(id, &ran).await, u64::from(id) * 10, "item {id}");
        !ran.load(SeqCst)
    }
}

/// A cache on the group's primary, through its sentinels; waits (at most 10 s) until it
/// answers.
async fn sentinel_cache(group: &SentinelGroup) -> Cache {
    let cache = Cache::builder()
        .redis_sentinel(group.sentinel_urls(), group.master_name())
        .namespace("app")
        .op_timeout(OP_TIMEOUT)
        .build()
        .await
        .expect("a valid configuration");
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(error) = cache.ping().await {
        assert!(
            Instant::now() < deadline,
            "the cache found no primary: {error}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cache
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_and_hits_through_the_sentinels() {
    let group = SentinelGroup::start();
    let repo = Repo::new(sentinel_cache(&group).await);
    assert_eq!(repo.cache.backend_name(), "redis");

    assert!(!repo.call(1).await, "the first call is a miss");
    assert!(repo.call(1).await, "the second is a hit");
    assert_eq!(repo.loads.load(SeqCst), 1);
    let stats = repo.cache.stats();
    assert_eq!((stats.total.hits, stats.total.misses), (1, 1), "{stats:?}");
    assert_eq!(stats.total.errors, 0, "{stats:?}");

    // The entry is on the primary the sentinels name.
    let primary = group.current_primary();
    assert_eq!(primary, group.primary_port());
    let exists: i64 = group.cmd_on(primary, &["EXISTS", "app:item:1"]);
    assert_eq!(exists, 1, "app:item:1 is on the primary");
    assert!(format!("{:?}", repo.cache).contains("redis"));
}

/// One call as a task saw it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    started: Instant,
    took: Duration,
    hit: bool,
}

/// How the primary fails.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// `SIGKILL`: its connections are refused.
    Kill,
    /// `SIGSTOP`: it accepts connections and answers nothing, so calls time out.
    Pause,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_primary_when_it_is_killed() {
    follow_through_a_failover(Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_primary_when_it_hangs() {
    follow_through_a_failover(Fault::Pause).await;
}

/// Warms some keys, then fails the primary while four tasks keep calling: every call returns
/// the body's value in bounded time, and hits resume on the promoted replica with the same
/// cache. Prints the sentinels' failover time and the cache's.
async fn follow_through_a_failover(fault: Fault) {
    let mut group = SentinelGroup::start();
    let (primary, replica) = (group.primary_port(), group.replica_port());
    let repo = Repo::new(sentinel_cache(&group).await);
    for id in 0..KEYS {
        repo.call(id).await;
    }
    for id in 0..KEYS {
        assert!(repo.call(id).await, "item {id} is cached");
    }
    tokio::task::block_in_place(|| group.wait_replicated(Duration::from_secs(10)));

    // Callers that never stop while the primary dies and the replica takes over.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let mut callers = Vec::new();
    for task in 0..4u32 {
        let (repo, stop, seen) = (repo.clone(), stop.clone(), seen.clone());
        callers.push(tokio::spawn(async move {
            let mut id = task;
            while !stop.load(SeqCst) {
                let started = Instant::now();
                let hit = repo.call(id % KEYS).await;
                let took = started.elapsed();
                seen.lock().unwrap().push(Seen { started, took, hit });
                id += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let failed_at = Instant::now();
    match fault {
        Fault::Kill => assert_eq!(group.kill_primary(), primary),
        Fault::Pause => assert_eq!(group.pause_primary(), primary),
    }
    let promoted = tokio::task::block_in_place(|| group.wait_for_failover(Duration::from_secs(20)));
    let sentinel_failover = failed_at.elapsed();
    assert_eq!(promoted, replica);

    // The first hit after the first call that missed the dead primary.
    let first_hit_again = || {
        let seen = seen.lock().unwrap();
        let failed = seen
            .iter()
            .filter(|s| s.started >= failed_at && !s.hit)
            .map(|s| s.started)
            .min()?;
        seen.iter()
            .filter(|s| s.started > failed && s.hit)
            .map(|s| s.started + s.took)
            .min()
    };
    let followed = loop {
        if let Some(at) = first_hit_again() {
            break at - failed_at;
        }
        assert!(
            failed_at.elapsed() < FOLLOW_BOUND,
            "no hit within {FOLLOW_BOUND:?} of the fault (the sentinels failed over in \
             {sentinel_failover:?}); stats: {:?}",
            repo.cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Hits go on for a while on the promoted replica.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, SeqCst);
    for caller in callers {
        caller.await.expect("a caller panicked");
    }

    let seen = seen.lock().unwrap().clone();
    let after_fault: Vec<&Seen> = seen.iter().filter(|s| s.started >= failed_at).collect();
    let slowest = seen.iter().map(|s| s.took).max().unwrap_or_default();
    let stats = repo.cache.stats();
    println!(
        "{fault:?}: sentinel failover (the sentinels agree on {promoted}): \
         {sentinel_failover:?}; first hit on it: {followed:?}; {} calls after the fault, {} of \
         them hits, the slowest call of all {slowest:?}; breaker opens {}",
        after_fault.len(),
        after_fault.iter().filter(|s| s.hit).count(),
        stats.breaker_opens
    );
    assert!(followed < FOLLOW_BOUND, "{followed:?}");
    assert!(
        slowest < CALL_BOUND,
        "a call took {slowest:?} (bound {CALL_BOUND:?})"
    );
    assert!(
        after_fault.iter().any(|s| !s.hit),
        "some calls ran their bodies while the primary was away"
    );

    if fault == Fault::Pause {
        // The old primary comes back; the sentinels make it a replica of the new one.
        group.resume_node(primary);
    }
    // Without rebuilding the cache: every warmed key is a hit on the promoted replica, and a
    // new entry lands there.
    for id in 0..KEYS {
        assert!(repo.call(id).await, "item {id} is a hit after the failover");
    }
    let loads = repo.loads.load(SeqCst);
    assert!(!repo.call(KEYS + 1).await);
    assert!(repo.call(KEYS + 1).await);
    assert_eq!(repo.loads.load(SeqCst), loads + 1);
    let key = format!("app:item:{}", KEYS + 1);
    let exists: i64 = group.cmd_on(promoted, &["EXISTS", &key]);
    assert_eq!(exists, 1, "{key} is on the promoted replica");
    assert!(!repo.cache.stats().breaker_open);

    // The event listener follows too: another cache's load on the new primary wakes this
    // cache's waiter through pub/sub (without it, the waiter would find the value by its
    // 500 ms lease check, which is not a wake-up).
    let other = Repo::new(sentinel_cache(&group).await);
    let leader = tokio::spawn(async move {
        let ran = AtomicBool::new(false);
        assert_eq!(other.slow(1, &ran).await, 10);
        ran.load(SeqCst)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ran = AtomicBool::new(false);
    assert_eq!(repo.slow(1, &ran).await, 10);
    assert!(leader.await.expect("the leader"), "the other cache loaded");
    assert!(!ran.load(SeqCst), "this cache waited for the other's load");
    let stats = repo.cache.stats();
    let slow = stats.function("slow").expect("stats of `slow`");
    assert_eq!(
        (slow.lock_waits, slow.wakeups),
        (1, 1),
        "woken by the fill event: {stats:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration errors, and secrets.

/// Every log line of this test binary, formatted with all its fields.
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
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &span::Attributes<'_>) -> span::Id {
        let mut line = String::from("span ");
        span.record(&mut Line(&mut line));
        LOG.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, values: &span::Record<'_>) {
        let mut line = String::from("span record ");
        values.record(&mut Line(&mut line));
        LOG.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

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

/// An error as every way of printing it shows it: `Display`, `Debug`, and each source.
fn everything_shown(err: &cached_runtime::Error) -> String {
    let mut shown = format!("{err} | {err:?}");
    let mut source = err.source();
    while let Some(e) = source {
        let _ = write!(shown, " | {e} | {e:?}");
        source = e.source();
    }
    shown
}

/// The configuration error `builder.build()` returns, checked to hide `secret`.
async fn config_error(builder: cached_runtime::CacheBuilder, secret: &str) -> String {
    let err = builder.build().await.expect_err("an invalid configuration");
    assert!(err.is_config(), "{err:?}");
    let shown = everything_shown(&err);
    assert!(
        !shown.contains(secret),
        "the error shows `{secret}`: {shown}"
    );
    err.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builder_rejects_bad_configurations_without_showing_secrets() {
    const SECRET: &str = "Pw9sentinel";
    let with_password = format!("redis://alice:{SECRET}@127.0.0.1:26379");
    let builder = || Cache::builder();

    let err = config_error(
        builder().redis_sentinel(Vec::<String>::new(), "mymaster"),
        SECRET,
    )
    .await;
    assert!(err.contains("at least one sentinel"), "{err}");

    let err = config_error(builder().redis_sentinel([&with_password], ""), SECRET).await;
    assert!(err.contains("master name"), "{err}");
    let err = config_error(
        builder().redis_sentinel([&with_password], "my master"),
        SECRET,
    )
    .await;
    assert!(err.contains("master name"), "{err}");

    for bad in [
        format!("http://alice:{SECRET}@127.0.0.1:26379"),
        format!("alice:{SECRET}@127.0.0.1:26379"),
        format!("redis://alice:{SECRET}@127.0.0.1:notaport"),
    ] {
        let err = config_error(
            builder().redis_sentinel([with_password.clone(), bad.clone()], "mymaster"),
            SECRET,
        )
        .await;
        assert!(err.contains("URL"), "{bad}: {err}");
    }

    // URLs that disagree on their credentials.
    let err = config_error(
        builder().redis_sentinel([with_password.as_str(), "redis://127.0.0.1:26380"], "m"),
        SECRET,
    )
    .await;
    assert!(err.contains("must agree"), "{err}");

    // TLS: all or none (and `#insecure` on all or none); TLS options need `rediss://`.
    let tls = [
        format!("rediss://alice:{SECRET}@127.0.0.1:26379"),
        format!("rediss://alice:{SECRET}@127.0.0.1:26380"),
    ];
    let cache = builder()
        .redis_sentinel(tls.clone(), "mymaster")
        .build()
        .await;
    assert!(cache.is_ok(), "{cache:?}");
    for other in [
        format!("redis://alice:{SECRET}@127.0.0.1:26380"),
        format!("rediss://alice:{SECRET}@127.0.0.1:26380#insecure"),
    ] {
        let err = config_error(
            builder().redis_sentinel([tls[0].clone(), other], "mymaster"),
            SECRET,
        )
        .await;
        assert!(err.contains("must agree"), "{err}");
    }
    let err = config_error(
        builder()
            .redis_sentinel([&with_password], "mymaster")
            .tls_root_ca(b"-----BEGIN CERTIFICATE-----\n".to_vec()),
        SECRET,
    )
    .await;
    assert!(err.contains("rediss://"), "{err}");

    let err = config_error(
        builder()
            .redis("redis://127.0.0.1:6379")
            .sentinel_master_auth("app", SECRET),
        SECRET,
    )
    .await;
    assert!(err.contains("redis_sentinel"), "{err}");

    // The builder's Debug shows neither the sentinels' nor the primary's password.
    let configured = builder()
        .redis_sentinel(
            [with_password.as_str(), "redis://:Pw9other@127.0.0.1:26380"],
            "mymaster",
        )
        .sentinel_master_auth("app", "Pw9primary");
    let debug = format!("{configured:?}");
    for secret in [SECRET, "Pw9other", "Pw9primary", "alice"] {
        assert!(!debug.contains(secret), "Debug shows `{secret}`: {debug}");
    }
    assert!(debug.contains("redis://***@127.0.0.1:26379"), "{debug}");
    assert!(debug.contains("mymaster"), "{debug}");
}

/// `build()` connects to nothing: sentinels that are not there, or a primary that rejects the
/// credentials, only make calls run their bodies, and the logs show no password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_sentinels_and_a_wrong_password_only_make_calls_run_their_bodies() {
    capture_logs();
    const SENTINEL_SECRET: &str = "Pw9nowhere";
    const PRIMARY_SECRET: &str = "Pw9wrongprimary";

    let nowhere =
        tests::unreachable_url().replace("redis://", &format!("redis://alice:{SENTINEL_SECRET}@"));
    let started = Instant::now();
    let cache = Cache::builder()
        .redis_sentinel([nowhere], "mymaster")
        .op_timeout(OP_TIMEOUT)
        .build()
        .await
        .expect("build() connects to nothing");
    assert!(started.elapsed() < Duration::from_secs(1));
    let repo = Repo::new(cache);
    for _ in 0..3 {
        let started = Instant::now();
        assert!(!repo.call(7).await);
        assert!(started.elapsed() < CALL_BOUND);
    }
    assert!(repo.cache.ping().await.is_err());

    // A real group, but the primary is given a password it does not have.
    let group = SentinelGroup::start();
    let cache = Cache::builder()
        .redis_sentinel(group.sentinel_urls(), group.master_name())
        .sentinel_master_auth("app", PRIMARY_SECRET)
        .op_timeout(OP_TIMEOUT)
        .build()
        .await
        .expect("a valid configuration");
    let repo = Repo::new(cache);
    for _ in 0..3 {
        assert!(!repo.call(8).await);
    }
    let err = repo
        .cache
        .ping()
        .await
        .expect_err("no primary with these credentials");
    assert!(!everything_shown(&err).contains(PRIMARY_SECRET));
    // Let the lookups fail and log a few times.
    tokio::time::sleep(Duration::from_millis(700)).await;

    let lines = LOG.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        lines
            .iter()
            .any(|line| line.contains("cannot find the primary")),
        "a failed lookup is logged: {lines:#?}"
    );
    for line in &lines {
        for secret in [SENTINEL_SECRET, PRIMARY_SECRET] {
            assert!(
                !line.contains(secret),
                "a log line shows `{secret}`: {line}"
            );
        }
    }
}
