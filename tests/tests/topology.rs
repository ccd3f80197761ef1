//! Checks of the Redis Cluster and Sentinel harnesses themselves, against real `redis-server`
//! processes, with plain redis-rs connections. Run with `--nocapture` to see the timings.

use std::{
    collections::HashSet,
    thread,
    time::{Duration, Instant},
};

use tests::{CLUSTER_SLOTS, NodeState, RedisCluster, Role, SentinelGroup, key_slot};

const FAILOVER_TIMEOUT: Duration = Duration::from_secs(20);

/// Writes `key` through the cluster, waits until the replicas have it, and checks on the
/// primary's replica directly.
fn set_replicated(cluster: &RedisCluster, key: &str, value: &str) {
    assert_eq!(cluster.cmd::<String>(&["SET", key, value]), "OK");
    cluster.wait_replicated(Duration::from_secs(5));
    for replica in cluster.replicas_of(cluster.primary_for_key(key)) {
        let client = redis::Client::open(format!("redis://127.0.0.1:{replica}")).expect("a URL");
        let mut con = client.get_connection().expect("the replica answers");
        redis::cmd("READONLY").exec(&mut con).expect("READONLY");
        let got: Option<String> = redis::cmd("GET").arg(key).query(&mut con).expect("GET");
        assert_eq!(got.as_deref(), Some(value), "on replica {replica}");
    }
}

#[test]
fn cluster_forms_and_routes_keys() {
    let started = Instant::now();
    let cluster = RedisCluster::start(3, 1);
    println!("3x1 cluster up in {:?}", started.elapsed());

    assert_eq!(cluster.urls().len(), 6);
    for (url, port) in cluster.urls().iter().zip(cluster.ports()) {
        assert_eq!(*url, format!("redis://127.0.0.1:{port}"));
        let info: String = cluster.cmd_on(port, &["CLUSTER", "INFO"]);
        assert!(info.contains("cluster_state:ok"), "node {port}: {info}");
        assert!(
            info.contains("cluster_slots_assigned:16384"),
            "node {port}: {info}"
        );
    }

    let nodes = cluster.nodes();
    assert_eq!(nodes.len(), 6);
    let primaries: Vec<_> = nodes.iter().filter(|n| n.role == Role::Primary).collect();
    let replicas: Vec<_> = nodes.iter().filter(|n| n.role == Role::Replica).collect();
    assert_eq!((primaries.len(), replicas.len()), (3, 3), "{nodes:#?}");
    let served: u32 = primaries
        .iter()
        .flat_map(|p| &p.slots)
        .map(|&(start, end)| u32::from(end - start) + 1)
        .sum();
    assert_eq!(served, u32::from(CLUSTER_SLOTS));
    for replica in &replicas {
        let primary = replica.primary.expect("a replica has a primary");
        assert!(primaries.iter().any(|p| p.port == primary), "{nodes:#?}");
        assert!(replica.slots.is_empty());
        assert_eq!(cluster.replicas_of(primary), vec![replica.port]);
    }
    assert!(
        nodes
            .iter()
            .all(|n| n.state == NodeState::Running && !n.failing)
    );
    let mut seeds = cluster.seed_urls();
    seeds.sort();
    let mut expected: Vec<String> = primaries
        .iter()
        .map(|p| format!("redis://127.0.0.1:{}", p.port))
        .collect();
    expected.sort();
    assert_eq!(seeds, expected);

    // The local CRC16 agrees with the server, hash tags included.
    let any = cluster.ports()[0];
    let mut samples: Vec<String> = (0..200).map(|i| format!("key:{i}")).collect();
    samples.extend(
        [
            "",
            "{",
            "}",
            "{}",
            "{}x",
            "a{}b",
            "{user1}.a",
            "x{user1}y",
            "{a}{b}",
            "a{b}{c}",
            "{{a}}",
        ]
        .map(String::from),
    );
    for key in &samples {
        let server: u16 = cluster.cmd_on(any, &["CLUSTER", "KEYSLOT", key]);
        assert_eq!(cluster.slot_of(key), server, "slot of {key:?}");
    }
    assert_eq!(key_slot(b"123456789"), 0x31C3);
    assert_eq!(key_slot(b"{user1}.a"), key_slot(b"user1"));

    // primary_for_key agrees with CLUSTER KEYSLOT and the owner's CLUSTER SLOTS, and writes
    // through cmd land on all three primaries.
    for i in 0..60 {
        let key = format!("key:{i}");
        let owner = cluster.primary_for_key(&key);
        let slot: u16 = cluster.cmd_on(any, &["CLUSTER", "KEYSLOT", &key]);
        let owner_node = nodes.iter().find(|n| n.port == owner).expect("a node");
        assert!(
            owner_node
                .slots
                .iter()
                .any(|&(s, e)| (s..=e).contains(&slot)),
            "{key}: slot {slot} is not served by {owner}"
        );
        assert_eq!(
            cluster.cmd::<String>(&["SET", &key, "v", "PX", "60000"]),
            "OK"
        );
        // Only the owner has it; any other primary redirects.
        assert_eq!(cluster.cmd_on::<i64>(owner, &["EXISTS", &key]), 1);
        let other = primaries
            .iter()
            .find(|p| p.port != owner)
            .expect("another primary");
        let err = cluster
            .try_cmd_on::<Option<String>>(other.port, &["GET", &key])
            .expect_err("a key of another primary is redirected");
        assert_eq!(
            err.redirect_node(),
            Some((format!("127.0.0.1:{owner}").as_str(), slot))
        );
    }
    for primary in &primaries {
        let size: u64 = cluster.cmd_on(primary.port, &["DBSIZE"]);
        assert!(size > 0, "no key landed on primary {}", primary.port);
    }
    assert_eq!(cluster.dbsize_total(), 60);
    assert_eq!(
        cluster.cmd::<Option<String>>(&["GET", "key:7"]).as_deref(),
        Some("v")
    );
    let pttl: i64 = cluster.cmd(&["PTTL", "key:7"]);
    assert!((1..=60_000).contains(&pttl), "PTTL {pttl}");
    assert_eq!(cluster.cmd::<i64>(&["EXISTS", "absent"]), 0);

    cluster.flushall();
    assert_eq!(cluster.dbsize_total(), 0);
}

#[test]
fn cluster_failover_after_a_primary_is_killed() {
    let mut cluster = RedisCluster::start(3, 1);
    let key = "failover:key";
    set_replicated(&cluster, key, "kept");
    let victim = cluster.primary_for_key(key);
    let replica = cluster.replicas_of(victim);
    assert_eq!(replica.len(), 1);

    let killed_at = Instant::now();
    let (killed, promoted) = cluster.kill_primary_for_key(key);
    println!(
        "cluster failover after kill: {:?} (node {killed} -> {promoted})",
        killed_at.elapsed()
    );
    assert_eq!(killed, victim);
    assert_eq!(promoted, replica[0]);
    assert_eq!(cluster.primary_for_key(key), promoted);
    assert_eq!(
        cluster.cmd::<Option<String>>(&["GET", key]).as_deref(),
        Some("kept")
    );
    let nodes = cluster.nodes();
    let dead = nodes
        .iter()
        .find(|n| n.port == killed)
        .expect("the killed node");
    assert_eq!(dead.state, NodeState::Killed);
    assert!(dead.failing && dead.slots.is_empty(), "{dead:?}");
    let new = nodes
        .iter()
        .find(|n| n.port == promoted)
        .expect("the promoted node");
    assert_eq!(new.role, Role::Primary);
    assert_eq!(cluster.seed_urls().len(), 3);
    assert!(
        !cluster
            .seed_urls()
            .contains(&format!("redis://127.0.0.1:{killed}"))
    );

    // Back from the dead, the old primary rejoins as the new one's replica.
    let restarted_at = Instant::now();
    cluster.restart_node(killed);
    cluster.wait_state_ok(FAILOVER_TIMEOUT);
    println!(
        "killed primary rejoined as a replica in {:?}",
        restarted_at.elapsed()
    );
    let back = cluster.nodes();
    let back = back
        .iter()
        .find(|n| n.port == killed)
        .expect("the restarted node");
    assert_eq!(
        (back.role, back.primary),
        (Role::Replica, Some(promoted)),
        "{back:?}"
    );
    assert_eq!(back.state, NodeState::Running);
}

#[test]
fn cluster_failover_after_a_primary_is_paused() {
    let cluster = RedisCluster::start(3, 1);
    let victim = cluster.primaries()[1];
    let replica = cluster.replicas_of(victim)[0];

    let paused_at = Instant::now();
    cluster.pause_node(victim);
    let promoted = cluster.wait_for_failover(victim, FAILOVER_TIMEOUT);
    println!("cluster failover after pause: {:?}", paused_at.elapsed());
    assert_eq!(promoted, replica);
    assert_eq!(
        cluster
            .nodes()
            .iter()
            .find(|n| n.port == victim)
            .map(|n| n.state),
        Some(NodeState::Paused)
    );

    // Resumed, it learns it was replaced and follows the new primary.
    cluster.resume_node(victim);
    cluster.wait_state_ok(FAILOVER_TIMEOUT);
    assert_eq!(cluster.replicas_of(promoted), vec![victim]);
}

#[test]
fn cluster_without_replicas_keeps_serving_other_slots() {
    let mut cluster = RedisCluster::start(3, 0);
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3);
    let victim = primaries[0];
    // One key per primary.
    let mut keys = Vec::new();
    let mut seen = HashSet::new();
    for i in 0.. {
        let key = format!("solo:{i}");
        if seen.insert(cluster.primary_for_key(&key)) {
            keys.push(key);
        }
        if seen.len() == 3 {
            break;
        }
    }
    for key in &keys {
        assert_eq!(cluster.cmd::<String>(&["SET", key, "v"]), "OK");
    }

    cluster.kill_node(victim);
    let deadline = Instant::now() + FAILOVER_TIMEOUT;
    while !cluster
        .nodes()
        .iter()
        .any(|n| n.port == victim && n.failing)
    {
        assert!(Instant::now() < deadline, "node {victim} is never flagged");
        thread::sleep(Duration::from_millis(50));
    }
    cluster.wait_state_ok(FAILOVER_TIMEOUT);
    for key in &keys {
        if cluster.primary_for_key(key) == victim {
            assert!(cluster.try_cmd::<Option<String>>(&["GET", key]).is_err());
        } else {
            assert_eq!(
                cluster.cmd::<Option<String>>(&["GET", key]).as_deref(),
                Some("v")
            );
        }
    }
    assert_eq!(cluster.dbsize_total(), 2);
}

#[test]
fn sentinel_failover_after_the_primary_is_killed() {
    let started = Instant::now();
    let mut group = SentinelGroup::start();
    println!("sentinel group up in {:?}", started.elapsed());

    assert!(group.master_name().starts_with("mymaster-"));
    assert_eq!(group.sentinel_urls().len(), 3);
    let (primary, replica) = (group.primary_port(), group.replica_port());
    assert_eq!(group.current_primary(), primary);
    for port in group.sentinel_ports() {
        let addr: Vec<String> = group.cmd_on(
            port,
            &["SENTINEL", "get-master-addr-by-name", group.master_name()],
        );
        assert_eq!(addr, ["127.0.0.1".to_owned(), primary.to_string()]);
    }
    assert_eq!(group.cmd_on::<String>(primary, &["SET", "k", "v"]), "OK");
    group.wait_replicated(Duration::from_secs(5));
    assert_eq!(
        group
            .cmd_on::<Option<String>>(replica, &["GET", "k"])
            .as_deref(),
        Some("v")
    );

    let killed_at = Instant::now();
    assert_eq!(group.kill_primary(), primary);
    let promoted = group.wait_for_failover(FAILOVER_TIMEOUT);
    println!(
        "sentinel failover after kill: {:?} ({primary} -> {promoted})",
        killed_at.elapsed()
    );
    assert_eq!(promoted, replica);
    assert_eq!(group.current_primary(), replica);
    assert_eq!(
        group
            .cmd_on::<Option<String>>(replica, &["GET", "k"])
            .as_deref(),
        Some("v")
    );
    assert_eq!(group.cmd_on::<String>(replica, &["SET", "k2", "v"]), "OK");
}

#[test]
fn sentinel_failover_after_the_primary_is_paused() {
    let group = SentinelGroup::start();
    let (primary, replica) = (group.primary_port(), group.replica_port());

    let paused_at = Instant::now();
    assert_eq!(group.pause_primary(), primary);
    let promoted = group.wait_for_failover(FAILOVER_TIMEOUT);
    println!("sentinel failover after pause: {:?}", paused_at.elapsed());
    assert_eq!(promoted, replica);
    group.resume_node(primary);
    assert_eq!(group.current_primary(), replica);
}
