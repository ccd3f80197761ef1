//! Quick checks of the Redis test harness itself, against a real `redis-server`.

use std::{collections::HashSet, thread, time::Duration};

use tests::{RedisServer, TestRedis, unreachable_url};

/// PINGs `url` with a connect and read timeout of `timeout`.
fn ping_within(url: &str, timeout: Duration) -> redis::RedisResult<String> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_connection_with_timeout(timeout)?;
    con.set_read_timeout(Some(timeout))?;
    con.set_write_timeout(Some(timeout))?;
    redis::cmd("PING").query(&mut con)
}

#[test]
fn spawn_answers_commands() {
    let server = RedisServer::spawn();
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/0", server.port())
    );
    assert_eq!(server.cmd::<String>(&["PING"]), "PONG");
    assert_eq!(server.cmd::<String>(&["SET", "k", "v"]), "OK");
    assert_eq!(
        server.cmd::<Option<String>>(&["GET", "k"]),
        Some("v".into())
    );
    assert_eq!(server.cmd::<Option<String>>(&["GET", "absent"]), None);
    assert_eq!(server.cmd::<i64>(&["TTL", "k"]), -1);
    assert!(server.try_cmd::<String>(&["NOSUCHCOMMAND"]).is_err());
}

#[test]
fn raw_bytes_round_trip() {
    let server = RedisServer::spawn();
    let junk = [0u8, 159, 146, 150, 255, b'\n', b'\r'];
    server.set_raw("bin", &junk);
    assert_eq!(server.get_raw("bin").as_deref(), Some(&junk[..]));
    assert_eq!(server.get_raw("absent"), None);
    assert_eq!(server.cmd::<i64>(&["STRLEN", "bin"]), junk.len() as i64);
}

#[test]
fn pause_and_resume() {
    let server = RedisServer::spawn();
    server.pause();
    let err = ping_within(&server.url(), Duration::from_millis(200));
    assert!(err.is_err(), "a paused server answered: {err:?}");
    server.resume();
    assert_eq!(
        ping_within(&server.url(), Duration::from_secs(5)).unwrap(),
        "PONG"
    );
    assert_eq!(server.cmd::<String>(&["PING"]), "PONG");
}

#[test]
fn drop_while_paused_does_not_hang() {
    let server = RedisServer::spawn();
    server.pause();
    drop(server);
}

#[test]
fn kill_and_restart_on_the_same_port() {
    let mut server = RedisServer::spawn();
    let port = server.port();
    server.set_raw("before", b"1");
    let first_pid = server.pid().unwrap();

    server.kill();
    server.kill(); // idempotent
    assert_eq!(server.pid(), None);
    assert!(ping_within(&server.url(), Duration::from_millis(500)).is_err());

    server.restart();
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), Some(first_pid));
    assert_eq!(server.cmd::<String>(&["PING"]), "PONG");
    // Nothing is persisted across a restart.
    assert_eq!(server.get_raw("before"), None);

    // Restarting a running server works too.
    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(server.cmd::<String>(&["PING"]), "PONG");
}

#[test]
fn parallel_spawns_get_distinct_servers() {
    let servers: Vec<RedisServer> = (0..6)
        .map(|_| thread::spawn(RedisServer::spawn))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let ports: HashSet<u16> = servers.iter().map(RedisServer::port).collect();
    assert_eq!(ports.len(), servers.len());
    for (i, server) in servers.iter().enumerate() {
        server.cmd::<()>(&["SET", "who", &i.to_string()]);
    }
    for (i, server) in servers.iter().enumerate() {
        assert_eq!(server.cmd::<String>(&["GET", "who"]), i.to_string());
    }
}

#[test]
fn test_redis_namespaces_differ() {
    let a = TestRedis::new();
    let b = TestRedis::new();
    assert_ne!(a.namespace(), b.namespace());
    assert!(!a.namespace().starts_with(b.namespace()));
    assert!(!b.namespace().starts_with(a.namespace()));
    assert!(a.namespace().chars().all(|c| c.is_ascii_alphanumeric()));

    let key = format!("{}:k", a.namespace());
    a.set_raw(&key, b"value");
    assert_eq!(a.get_raw(&key).as_deref(), Some(&b"value"[..]));
    assert_eq!(a.cmd::<i64>(&["EXISTS", &key]), 1);
    assert_eq!(a.cmd::<String>(&["PING"]), "PONG");
    assert_eq!(b.cmd::<String>(&["PING"]), "PONG");
}

#[test]
fn unreachable_url_refuses_connections() {
    let url = unreachable_url();
    assert!(url.starts_with("redis://127.0.0.1:"), "{url}");
    let err = ping_within(&url, Duration::from_secs(1)).unwrap_err();
    assert!(
        err.is_connection_refusal() || err.is_io_error(),
        "unexpected error: {err:?}"
    );
}
