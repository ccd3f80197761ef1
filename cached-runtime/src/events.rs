//! Background tasks of a Redis-backed cache: the pub/sub listener that wakes local waiters
//! when another process fills (handing them the value when the event carries it), releases or
//! invalidates a key, and the retry loop of
//! invalidations that failed while Redis was unreachable. Both stop when the cache is dropped.

use std::{sync::Weak, time::Duration};

use futures_util::StreamExt;
use tokio::sync::watch;

use crate::cache::Inner;

/// Subscribes to the cache's event channel and dispatches its messages, reconnecting with a
/// capped backoff while Redis is away.
pub(crate) async fn listen(
    inner: Weak<Inner>,
    client: redis::Client,
    channel: String,
    mut shutdown: watch::Receiver<()>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut subscribed_before = false;
    loop {
        let connected = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            r = connected => r,
            _ = shutdown.changed() => return,
        };
        match pubsub {
            Ok(mut pubsub) => {
                backoff = Duration::from_millis(50);
                tracing::debug!(channel, "subscribed to cache events");
                // Events published while the subscription was down are lost: whoever waits
                // for a key checks it again now.
                if std::mem::replace(&mut subscribed_before, true)
                    && let Some(inner) = inner.upgrade()
                {
                    inner.wake_all_waiters();
                }
                let mut messages = pubsub.on_message();
                loop {
                    let msg = tokio::select! {
                        msg = messages.next() => msg,
                        _ = shutdown.changed() => return,
                    };
                    let Some(msg) = msg else { break };
                    let Some(inner) = inner.upgrade() else { return };
                    inner.on_event(msg.get_payload_bytes());
                }
                tracing::debug!(channel, "cache event subscription lost; reconnecting");
            }
            Err(error) => {
                tracing::debug!(channel, %error, "cannot subscribe to cache events yet");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Retries invalidations that failed, until they succeed.
pub(crate) async fn retry_invalidations(inner: Weak<Inner>, mut shutdown: watch::Receiver<()>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        inner.retry_pending().await;
    }
}
