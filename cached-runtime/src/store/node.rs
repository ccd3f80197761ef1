//! One Redis server: standalone, or the primary of a Redis Sentinel group. Its connection (a
//! lazily connecting, auto-reconnecting multiplexed connection) and the client that the event
//! listener subscribes with are held in one swappable cell: set once for a standalone server;
//! with Sentinel, filled when the sentinels first name the primary and replaced whenever it
//! moves (see `sentinel.rs`). A call loads the cell (no lock, no allocation) and clones the
//! connection handle, as it did with a fixed connection.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwapOption;
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value,
    aio::{ConnectionLike, ConnectionManager},
};
use tokio::sync::{Notify, watch};

use super::connect::{self, TlsOptions};
use crate::error::Error;

#[cfg(feature = "sentinel")]
mod sentinel;

#[derive(Clone)]
pub(crate) struct Node {
    shared: Arc<Shared>,
}

struct Shared {
    /// The server's connection; `None` only while the sentinels have not named a primary yet.
    link: ArcSwapOption<Link>,
    /// Woken when a link is stored or the first lookup failed, for the calls that wait for the
    /// first link.
    linked: Notify,
    /// Whether a lookup of the primary ended (Sentinel): from then on a call without a link
    /// fails at once instead of waiting for one.
    looked_up: AtomicBool,
    /// Told when another link replaces the current one (or the first is stored), so that the
    /// event listener subscribes on the new server.
    moves: watch::Sender<()>,
    /// The database of every connection (for `ConnectionLike::get_db`).
    db: i64,
    /// Finds and follows the primary (Sentinel only).
    #[cfg(feature = "sentinel")]
    follow: Option<sentinel::Follow>,
}

/// A connection to one server, and the client it was made from.
struct Link {
    conn: ConnectionManager,
    client: redis::Client,
}

impl Node {
    /// Fails only for a bad URL or TLS configuration; connects in the background.
    /// `response_timeout`: redis-rs's own bound on a round trip, the longest the cache allows
    /// (it bounds each round trip itself).
    pub(crate) fn new(
        url: &str,
        tls: &TlsOptions,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Node, Error> {
        let client = connect::client(url, tls)?;
        let conn = connect::manager(client.clone(), connect_timeout, response_timeout)?;
        let db = client.get_connection_info().redis_settings().db();
        Ok(Node {
            shared: Arc::new(Shared {
                link: ArcSwapOption::from_pointee(Link { conn, client }),
                linked: Notify::new(),
                looked_up: AtomicBool::new(true),
                moves: watch::Sender::new(()),
                db,
                #[cfg(feature = "sentinel")]
                follow: None,
            }),
        })
    }

    /// A handle on the current connection for one command (a cheap clone).
    pub(crate) fn conn(&self) -> NodeConn {
        NodeConn(match &*self.shared.link.load() {
            Some(link) => Conn::Live(link.conn.clone()),
            None => Conn::Waiting(self.shared.clone()),
        })
    }

    /// The client to subscribe to events with: the current server's; `None` while no primary
    /// is known yet.
    pub(crate) fn subscriber(&self) -> Option<redis::Client> {
        self.shared
            .link
            .load()
            .as_ref()
            .map(|link| link.client.clone())
    }

    /// Changes whenever the node moves to another server (never for a standalone one).
    pub(crate) fn moves(&self) -> watch::Receiver<()> {
        self.shared.moves.subscribe()
    }

    /// A round trip failed in a way that says the server is unhealthy: a node that follows a
    /// primary through Sentinel asks the sentinels again (in the background, rate-limited).
    pub(crate) fn failed(&self) {
        #[cfg(feature = "sentinel")]
        if let Some(follow) = &self.shared.follow {
            follow.failed();
        }
    }
}

impl Shared {
    /// The connection, once there is one. Only calls made while the first lookup of the primary
    /// runs wait here (the cache bounds each call by `op_timeout`); once a lookup failed, a call
    /// without a connection fails at once.
    async fn wait_link(&self) -> RedisResult<ConnectionManager> {
        loop {
            let linked = self.linked.notified();
            tokio::pin!(linked);
            linked.as_mut().enable();
            if let Some(link) = &*self.link.load() {
                return Ok(link.conn.clone());
            }
            if self.looked_up.load(Ordering::Acquire) {
                return Err(RedisError::from((
                    ErrorKind::MasterNameNotFoundBySentinel,
                    "no primary found through the sentinels yet",
                )));
            }
            linked.await;
        }
    }
}

/// A node's connection for one command.
pub(crate) struct NodeConn(Conn);

enum Conn {
    /// The current connection: commands go straight to it.
    Live(ConnectionManager),
    /// No primary known yet: a command waits for the first one.
    Waiting(Arc<Shared>),
}

impl ConnectionLike for NodeConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Conn::Live(conn) => conn.req_packed_command(cmd),
            Conn::Waiting(shared) => Box::pin(async move {
                let mut conn = shared.wait_link().await?;
                conn.req_packed_command(cmd).await
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Conn::Live(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Waiting(shared) => Box::pin(async move {
                let mut conn = shared.wait_link().await?;
                conn.req_packed_commands(pipeline, offset, count).await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Conn::Live(conn) => conn.get_db(),
            Conn::Waiting(shared) => shared.db,
        }
    }
}

/// The server's address, never its credentials.
impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let link = self.shared.link.load();
        let mut d = f.debug_struct("Node");
        d.field(
            "server",
            &link
                .as_ref()
                .map(|link| link.client.get_connection_info().addr().to_string()),
        );
        #[cfg(feature = "sentinel")]
        if let Some(follow) = &self.shared.follow {
            d.field("sentinel_master", &follow.master_name());
        }
        d.finish()
    }
}
