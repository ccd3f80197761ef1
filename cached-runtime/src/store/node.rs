//! One Redis server (standalone): a lazily connecting, auto-reconnecting multiplexed
//! connection, and the client that the event listener subscribes with.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::connect::{self, TlsOptions};
use crate::error::Error;

#[derive(Clone, Debug)]
pub(crate) struct Node {
    conn: ConnectionManager,
    /// Boxed: with TLS parameters a client is several hundred bytes.
    client: Box<redis::Client>,
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
        Ok(Node {
            conn,
            client: Box::new(client),
        })
    }

    /// A handle on the connection for one command (a cheap clone).
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The client to subscribe to events with.
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }
}
