//! A Redis Cluster, through redis-rs' cluster client: commands are routed by key (`MOVED` and
//! `ASK` are followed by the client, never failures), the topology is re-read when it changes.
//!
//! Beside the client, this store keeps its own view of which primary serves which slot,
//! refreshed every second: the cache has one circuit breaker per shard (a primary and its
//! replicas), so one unhealthy primary does not turn the cache off for keys on the others.
//! Events are published with classic `PUBLISH`, which a cluster broadcasts to every node:
//! the event listener subscribes on any one node and follows the nodes it learns of.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use arc_swap::ArcSwap;
use redis::{
    ConnectionAddr, ConnectionInfo, Value,
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
};
use tokio::sync::watch;

use super::connect::{self, TlsOptions};
use crate::{error::Error, wire::slot};

/// Most shards told apart by the breakers; shards past it share breakers.
pub(crate) const MAX_SHARDS: usize = 64;

/// How often the slot map is read again.
const REFRESH: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub(crate) struct Cluster {
    conn: ClusterConnection,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("seeds", &self.shared.seeds.len())
            .finish_non_exhaustive()
    }
}

struct Shared {
    /// Clients of the seed nodes, as configured (credentials and TLS included).
    seeds: Vec<redis::Client>,
    /// The first seed's settings, for clients of the nodes found in the slot map.
    template: ConnectionInfo,
    certificates: Option<connect::Certificates>,
    topology: ArcSwap<Topology>,
    /// Nodes found in the slot map (primaries first), for the event listener.
    discovered: Mutex<Vec<(String, u16)>>,
}

/// Which shard serves each slot: shards are numbered by their lowest slot, so a failover (a
/// replica taking over the same slots) keeps the numbers.
struct Topology {
    shard_of_slot: Box<[u8]>,
}

impl Topology {
    fn unknown() -> Topology {
        Topology {
            shard_of_slot: vec![0; usize::from(slot::SLOTS)].into_boxed_slice(),
        }
    }
}

impl Cluster {
    /// A client of the cluster with `seeds` (URLs of some of its nodes); nothing is connected
    /// here. Fails for no seeds, a URL that does not parse, or bad TLS settings.
    pub(crate) fn new(
        seeds: &[String],
        tls: &TlsOptions,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Cluster, Error> {
        if seeds.is_empty() {
            return Err(Error::config(
                "redis_cluster needs at least one seed URL, e.g. redis://127.0.0.1:7000",
            ));
        }
        let clients = seeds
            .iter()
            .map(|url| connect::client(url, tls))
            .collect::<Result<Vec<_>, _>>()?;
        let infos: Vec<ConnectionInfo> = clients
            .iter()
            .map(|c| c.get_connection_info().clone())
            .collect();
        let certificates = connect::certificates(tls);
        // Each reply from a node is bounded by `response_timeout` (so a hung node is noticed and
        // its connection replaced), but not the whole request a second time: the cache bounds
        // every operation with its own `op_timeout`, and a second timer per request is pure cost
        // on the hit path.
        let builder = ClusterClientBuilder::new(infos.clone())
            .connection_timeout(connect_timeout)
            .response_timeout(response_timeout)
            .overall_response_timeout(None);
        #[cfg(feature = "tls")]
        let builder = match certificates.clone() {
            Some(certificates) => builder.certs(certificates),
            None => builder,
        };
        let client: ClusterClient = builder.build().map_err(|e| {
            Error::config(format!(
                "invalid Redis Cluster configuration: {}",
                seeds
                    .iter()
                    .fold(e.to_string(), |text, url| connect::scrub(&text, url))
            ))
        })?;
        let conn = client.get_pending_async_connection_with_config(
            redis::cluster::ClusterConfig::new()
                .set_connection_timeout(connect_timeout)
                .set_response_timeout(response_timeout),
        );
        Ok(Cluster {
            conn,
            shared: Arc::new(Shared {
                seeds: clients,
                template: infos[0].clone(),
                certificates,
                topology: ArcSwap::from_pointee(Topology::unknown()),
                discovered: Mutex::new(Vec::new()),
            }),
        })
    }

    /// A handle on the connection for one command (a cheap clone).
    pub(crate) fn conn(&self) -> ClusterConnection {
        self.conn.clone()
    }

    /// The shard that serves `key` (as of the last slot map read), below [`MAX_SHARDS`].
    pub(crate) fn shard_of(&self, key: &str) -> usize {
        let slot = slot::of(key.as_bytes());
        usize::from(self.shared.topology.load().shard_of_slot[usize::from(slot)])
    }

    /// A client to subscribe with: the seeds and the nodes of the slot map in turn.
    pub(crate) fn subscriber(&self, attempt: u32) -> redis::Client {
        let discovered = self
            .shared
            .discovered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let count = self.shared.seeds.len() + discovered.len();
        let pick = attempt as usize % count;
        if let Some(seed) = self.shared.seeds.get(pick) {
            return seed.clone();
        }
        let (host, port) = &discovered[pick - self.shared.seeds.len()];
        self.client_for(host, *port)
            .unwrap_or_else(|| self.shared.seeds[0].clone())
    }

    /// A client of another node, with the seeds' credentials and TLS settings.
    fn client_for(&self, host: &str, port: u16) -> Option<redis::Client> {
        let addr = match self.shared.template.addr() {
            ConnectionAddr::Tcp(..) => ConnectionAddr::Tcp(host.to_owned(), port),
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => return None,
        };
        let info = self.shared.template.clone().set_addr(addr);
        match &self.shared.certificates {
            #[cfg(feature = "tls")]
            Some(certificates) => redis::Client::build_with_tls(info, certificates.clone()).ok(),
            #[cfg(not(feature = "tls"))]
            Some(never) => match *never {},
            None => redis::Client::open(info).ok(),
        }
    }

    /// Reads the slot map every second until `shutdown`.
    pub(crate) async fn maintain(self, mut shutdown: watch::Receiver<()>) {
        loop {
            if let Err(error) = self.refresh().await {
                tracing::debug!(%error, "cannot read the cluster's slot map now");
            }
            tokio::select! {
                _ = tokio::time::sleep(REFRESH) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn refresh(&self) -> Result<(), Error> {
        let reply: Value = tokio::time::timeout(
            Duration::from_secs(1),
            redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async(&mut self.conn()),
        )
        .await
        .map_err(|_| Error::new(crate::error::ErrorKind::Timeout, "CLUSTER SLOTS timed out"))??;
        let ranges = parse_slots(&reply);
        if ranges.is_empty() {
            return Ok(());
        }
        // Shards by their lowest slot.
        let mut primaries: Vec<(u16, (String, u16))> = Vec::new();
        for range in &ranges {
            match primaries
                .iter_mut()
                .find(|(_, node)| *node == range.primary)
            {
                Some((low, _)) => *low = (*low).min(range.start),
                None => primaries.push((range.start, range.primary.clone())),
            }
        }
        primaries.sort();
        let mut map = vec![0u8; usize::from(slot::SLOTS)];
        for range in &ranges {
            let shard = primaries
                .iter()
                .position(|(_, node)| *node == range.primary)
                .unwrap_or(0)
                % MAX_SHARDS;
            for slot in range.start..=range.end.min(slot::SLOTS - 1) {
                map[usize::from(slot)] = shard as u8;
            }
        }
        self.shared.topology.store(Arc::new(Topology {
            shard_of_slot: map.into_boxed_slice(),
        }));
        let mut nodes: Vec<(String, u16)> = primaries.into_iter().map(|(_, n)| n).collect();
        for range in &ranges {
            for replica in &range.replicas {
                if !nodes.contains(replica) {
                    nodes.push(replica.clone());
                }
            }
        }
        *self
            .shared
            .discovered
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = nodes;
        Ok(())
    }
}

struct SlotRange {
    start: u16,
    end: u16,
    primary: (String, u16),
    replicas: Vec<(String, u16)>,
}

/// The ranges of a `CLUSTER SLOTS` reply: `[start, end, [host, port, id, ...], replicas...]`.
fn parse_slots(reply: &Value) -> Vec<SlotRange> {
    fn int(v: &Value) -> Option<i64> {
        match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    fn node(v: &Value) -> Option<(String, u16)> {
        let Value::Array(parts) = v else { return None };
        let host = match parts.first()? {
            Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
            Value::SimpleString(s) => s.clone(),
            _ => return None,
        };
        let port = u16::try_from(int(parts.get(1)?)?).ok()?;
        Some((host, port))
    }
    let Value::Array(ranges) = reply else {
        return Vec::new();
    };
    ranges
        .iter()
        .filter_map(|range| {
            let Value::Array(parts) = range else {
                return None;
            };
            Some(SlotRange {
                start: u16::try_from(int(parts.first()?)?).ok()?,
                end: u16::try_from(int(parts.get(1)?)?).ok()?,
                primary: node(parts.get(2)?)?,
                replicas: parts.iter().skip(3).filter_map(node).collect(),
            })
        })
        .collect()
}
