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
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
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
        }
    }

    /// The same kind and message, without the source (for callers that shared a read).
    pub(crate) fn shallow_clone(&self) -> Self {
        Self::new(self.kind, self.message.clone())
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
        Self::with_source(ErrorKind::Redis, "redis error", e)
    }
}
