//! The one error type of the runtime.

use std::fmt;

/// What went wrong, for matching. More kinds may be added, so match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A builder option or URL is invalid. The only kind [`CacheBuilder::build`] returns.
    ///
    /// [`CacheBuilder::build`]: crate::CacheBuilder::build
    InvalidConfig,
    /// Redis answered with an error, or the connection failed.
    Redis,
    /// A Redis round trip took longer than the cache's `op_timeout`.
    Timeout,
    /// A value could not be encoded or decoded.
    Codec,
    /// The circuit breaker is open: Redis failed repeatedly and is skipped for a while.
    CircuitOpen,
    /// [`set_global`](crate::set_global) was called a second time.
    GlobalAlreadySet,
}

/// The runtime's error: an opaque type with a [`kind`](Error::kind) and predicates.
///
/// Annotated functions never return it: a cache failure makes them run their own body.
/// It comes back only from explicit calls such as [`CacheBuilder::build`](crate::CacheBuilder::build),
/// [`Cache::ping`](crate::Cache::ping) and [`set_global`](crate::set_global).
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    /// Whether it says Redis itself is unhealthy (counts toward the circuit breaker), rather
    /// than something about one key or reply.
    unhealthy: bool,
    /// A `WRONGTYPE` reply: the key holds another Redis type (foreign data under our key).
    wrong_type: bool,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
            unhealthy: matches!(kind, ErrorKind::Timeout | ErrorKind::CircuitOpen),
            wrong_type: false,
        }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
            unhealthy: matches!(kind, ErrorKind::Timeout | ErrorKind::CircuitOpen),
            wrong_type: false,
        }
    }

    /// The same kind and message, without the source (for callers that shared a read).
    pub(crate) fn shallow_clone(&self) -> Self {
        Self {
            unhealthy: self.unhealthy,
            wrong_type: self.wrong_type,
            ..Self::new(self.kind, self.message.clone())
        }
    }

    /// Whether this failure says Redis itself is unhealthy — a timeout, a refused, reset or
    /// dropped connection, `LOADING`, `BUSY`, `CLUSTERDOWN`, `MASTERDOWN`, `TRYAGAIN`, a
    /// failed authentication — so that other keys would fail too. Only these count toward the
    /// circuit breaker; a reply about one key (`WRONGTYPE`, `MOVED`, a script error) does not.
    pub(crate) fn is_unhealthy(&self) -> bool {
        self.unhealthy
    }

    /// A `WRONGTYPE` reply: the key holds another data type (foreign data under our key).
    pub(crate) fn is_wrong_type(&self) -> bool {
        self.wrong_type
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidConfig, message)
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// An invalid builder option or URL.
    pub fn is_config(&self) -> bool {
        self.kind == ErrorKind::InvalidConfig
    }

    /// A Redis round trip that exceeded `op_timeout`.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// An error from Redis or from the connection to it.
    pub fn is_redis(&self) -> bool {
        self.kind == ErrorKind::Redis
    }

    /// A value that could not be encoded or decoded.
    pub fn is_codec(&self) -> bool {
        self.kind == ErrorKind::Codec
    }

    /// A round trip skipped because the circuit breaker is open.
    pub fn is_circuit_open(&self) -> bool {
        self.kind == ErrorKind::CircuitOpen
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        let unhealthy = redis_unhealthy(&e);
        let wrong_type = e.code() == Some("WRONGTYPE");
        let message = if wrong_type {
            "redis error: the key holds another data type (WRONGTYPE)"
        } else {
            "redis error"
        };
        Self {
            unhealthy,
            wrong_type,
            ..Self::with_source(ErrorKind::Redis, message, e)
        }
    }
}

/// Whether a redis-rs error is about the server or the connection (see
/// [`Error::is_unhealthy`]) rather than about one command's key or reply.
fn redis_unhealthy(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind as K, ServerErrorKind as S};
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        return true;
    }
    match e.kind() {
        K::Io
        | K::Parse
        | K::AuthenticationFailed
        | K::InvalidClientConfig
        | K::ClusterConnectionNotFound
        | K::MasterNameNotFoundBySentinel
        | K::NoValidReplicasFoundBySentinel
        | K::EmptySentinelList
        | K::Server(S::BusyLoading | S::TryAgain | S::ClusterDown | S::MasterDown | S::ReadOnly) => {
            true
        }
        _ => matches!(e.code(), Some("BUSY" | "NOAUTH" | "WRONGPASS")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(text: &str) -> Error {
        // A reply as Redis sends it, parsed by redis-rs.
        let reply = format!("-{text}\r\n");
        match redis::parse_redis_value(reply.as_bytes()) {
            Ok(redis::Value::ServerError(e)) => redis::RedisError::from(e).into(),
            other => panic!("not a server error: {other:?}"),
        }
    }

    #[test]
    fn only_server_and_connection_failures_count_against_redis() {
        for unhealthy in [
            "LOADING Redis is loading the dataset in memory",
            "BUSY Redis is busy running a script",
            "CLUSTERDOWN The cluster is down",
            "MASTERDOWN Link with MASTER is down",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "NOAUTH Authentication required.",
            "WRONGPASS invalid username-password pair",
        ] {
            assert!(server_error(unhealthy).is_unhealthy(), "{unhealthy}");
        }
        for per_key in [
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "MOVED 3999 127.0.0.1:6381",
            "ASK 3999 127.0.0.1:6381",
            "ERR Error running script (call to f_0123): @user_script:1: oops",
            "NOPERM this user has no permissions to access one of the keys",
        ] {
            assert!(!server_error(per_key).is_unhealthy(), "{per_key}");
        }
        assert!(server_error("WRONGTYPE Operation against a key").is_wrong_type());
        assert!(!server_error("ERR no").is_wrong_type());
        let io: Error =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
                .into();
        assert!(io.is_unhealthy());
        assert!(Error::new(ErrorKind::Timeout, "slow").is_unhealthy());
        assert!(!Error::new(ErrorKind::Codec, "bad").is_unhealthy());
    }
}
