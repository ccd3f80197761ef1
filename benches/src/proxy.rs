//! A loopback TCP proxy in front of Redis that counts round trips.
//!
//! `INFO commandstats` counts commands, including those a Lua script runs inside Redis and
//! each command of a pipeline, so it cannot tell round trips apart. The proxy can: on each
//! connection, a client write that follows a server reply (or opens the connection) starts a
//! new round trip; further writes before the next reply belong to the same one (a pipeline,
//! or one request split into several TCP segments). Exact for one caller issuing requests in
//! sequence, which is how the counting passes use it. Only ever used on 127.0.0.1.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::SeqCst},
    },
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

pub(crate) struct Proxy {
    url: String,
    round_trips: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to the server of `upstream_url`.
    pub(crate) async fn start(upstream_url: &str) -> io::Result<Proxy> {
        let upstream = host_port(upstream_url);
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = with_host_port(
            upstream_url,
            &format!("127.0.0.1:{}", listener.local_addr()?.port()),
        );
        let round_trips = Arc::new(AtomicU64::new(0));
        let counter = round_trips.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        pump(client, server, counter).await;
                    }
                });
            }
        });
        Ok(Proxy {
            url,
            round_trips,
            accept,
        })
    }

    /// The URL to give a contender so that its traffic goes through the proxy.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Round trips counted so far, over all connections.
    pub(crate) fn round_trips(&self) -> u64 {
        self.round_trips.load(SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn pump(client: TcpStream, server: TcpStream, round_trips: Arc<AtomicU64>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    // Whether the server spoke since the client's last write: the next write is a new trip.
    let replied = Arc::new(AtomicBool::new(true));
    let replied_up = replied.clone();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if replied_up.swap(false, SeqCst) {
                round_trips.fetch_add(1, SeqCst);
            }
            if server_w.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_w.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // Before forwarding: the client cannot answer a reply it has not seen yet.
            replied.store(true, SeqCst);
            if client_w.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_w.shutdown().await;
    };
    tokio::join!(up, down);
}

/// `host:port` of a `redis://[user[:password]@]host[:port][/db]` URL.
pub(crate) fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:6379")
    }
}

/// The URL with its `host[:port]` replaced.
fn with_host_port(url: &str, host_port: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let creds = authority
        .rsplit_once('@')
        .map_or(String::new(), |(c, _)| format!("{c}@"));
    format!("{scheme}://{creds}{host_port}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_urls() {
        assert_eq!(host_port("redis://127.0.0.1:7000/0"), "127.0.0.1:7000");
        assert_eq!(host_port("redis://:pw@h/1"), "h:6379");
        assert_eq!(
            with_host_port("redis://u:pw@h:1/2", "127.0.0.1:9"),
            "redis://u:pw@127.0.0.1:9/2"
        );
        assert_eq!(
            with_host_port("redis://h", "127.0.0.1:9"),
            "redis://127.0.0.1:9"
        );
    }
}
