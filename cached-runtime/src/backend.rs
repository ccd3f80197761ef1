//! Where entries live: Redis, or an in-process map with the same semantics.

use std::{ops::Deref, sync::Arc, time::Duration};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::Error;

/// Raw bytes of an entry, owned (from Redis) or shared (from memory).
#[derive(Debug)]
pub(crate) enum Raw {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Deref for Raw {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Raw::Owned(v) => v,
            Raw::Shared(v) => v,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Redis(ConnectionManager),
    Memory(moka::future::Cache<String, MemEntry>),
}

#[derive(Clone, Debug)]
pub(crate) struct MemEntry {
    bytes: Arc<[u8]>,
    ttl: Duration,
}

struct MemExpiry;

impl moka::Expiry<String, MemEntry> for MemExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &MemEntry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &MemEntry,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl Backend {
    /// A lazily connecting, auto-reconnecting Redis connection. Fails only for a bad URL.
    pub(crate) fn redis(url: &str, connect_timeout: Duration) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(|e| {
            Error::with_source(
                crate::ErrorKind::InvalidConfig,
                format!("invalid Redis URL `{}`", redact(url)),
                e,
            )
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            // One attempt per (re)connection: while Redis is down each call should fail fast
            // into its body, not sit in a backoff loop. The next call tries again.
            .set_number_of_retries(0);
        let manager = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| {
            Error::with_source(
                crate::ErrorKind::InvalidConfig,
                "cannot create the Redis connection manager",
                e,
            )
        })?;
        Ok(Backend::Redis(manager))
    }

    pub(crate) fn memory(max_entries: u64) -> Self {
        Backend::Memory(
            moka::future::Cache::builder()
                .max_capacity(max_entries)
                .expire_after(MemExpiry)
                .build(),
        )
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Raw>, Error> {
        match self {
            Backend::Redis(conn) => {
                let v: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(v.map(Raw::Owned))
            }
            Backend::Memory(map) => Ok(map.get(key).await.map(|e| Raw::Shared(e.bytes))),
        }
    }

    pub(crate) async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), Error> {
        match self {
            Backend::Redis(conn) => {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("PX")
                    .arg(ttl.as_millis().max(1) as u64)
                    .exec_async(&mut conn.clone())
                    .await?;
                Ok(())
            }
            Backend::Memory(map) => {
                map.insert(
                    key.to_owned(),
                    MemEntry {
                        bytes: value.into(),
                        ttl,
                    },
                )
                .await;
                Ok(())
            }
        }
    }

    /// Deletes all `keys` in one round trip; returns how many existed.
    pub(crate) async fn del(&self, keys: &[String]) -> Result<u64, Error> {
        match self {
            Backend::Redis(conn) => Ok(redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn.clone())
                .await?),
            Backend::Memory(map) => {
                let mut n = 0;
                for key in keys {
                    n += u64::from(map.remove(key).await.is_some());
                }
                Ok(n)
            }
        }
    }

    pub(crate) async fn ping(&self) -> Result<(), Error> {
        match self {
            Backend::Redis(conn) => {
                let _: String = redis::cmd("PING").query_async(&mut conn.clone()).await?;
                Ok(())
            }
            Backend::Memory(_) => Ok(()),
        }
    }
}

/// The URL with any password replaced, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("redis://u:secret@h:1/0"),
            "redis://u:***@h:1/0"
        );
        assert_eq!(super::redact("redis://:secret@h"), "redis://:***@h");
        assert_eq!(super::redact("redis://h:6379"), "redis://h:6379");
    }
}
