//! The pub/sub listener of a shared store: it wakes local waiters when another process fills
//! (handing them the value when the event carries it), releases or invalidates a key. It stops
//! when the cache is dropped.

use std::{sync::Weak, time::Duration};

use futures_util::StreamExt;
use tokio::sync::watch;

use super::Local;
use crate::{store::Store, wire::event};

/// Subscribes to the cache's event channel and dispatches its messages, reconnecting with a
/// capped backoff while Redis is away.
pub(crate) async fn listen(
    local: Weak<Local>,
    store: Store,
    channel: String,
    mut shutdown: watch::Receiver<()>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut subscribed_before = false;
    let mut attempt = 0;
    let mut moves = store.moves();
    loop {
        if let Some(moves) = &mut moves {
            moves.borrow_and_update();
        }
        let Some(client) = store.subscriber(attempt) else {
            if !store.is_shared() {
                return;
            }
            // No server yet (a primary the sentinels have not named yet): ask again later.
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = moved(&mut moves) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
            continue;
        };
        attempt = attempt.saturating_add(1);
        let connected = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            r = connected => r,
            // A new server while connecting to the old one: connect to the new one.
            _ = moved(&mut moves) => continue,
            _ = shutdown.changed() => return,
        };
        match pubsub {
            Ok(mut pubsub) => {
                backoff = Duration::from_millis(50);
                attempt = 0;
                tracing::debug!(channel, "subscribed to cache events");
                // Events published while the subscription was down are lost: whoever waits
                // for a key checks it again now.
                if std::mem::replace(&mut subscribed_before, true)
                    && let Some(local) = local.upgrade()
                {
                    local.waiters.wake_all();
                }
                let mut messages = pubsub.on_message();
                loop {
                    let msg = tokio::select! {
                        msg = messages.next() => msg,
                        // A new primary: subscribe there (the old server may never hang up).
                        _ = moved(&mut moves) => None,
                        _ = shutdown.changed() => return,
                    };
                    let Some(msg) = msg else { break };
                    let Some(local) = local.upgrade() else { return };
                    if let Some(event) = event::parse(msg.get_payload_bytes()) {
                        local.on_event(event);
                    }
                }
                tracing::debug!(channel, "cache event subscription lost; reconnecting");
            }
            Err(error) => {
                tracing::debug!(channel, %error, "cannot subscribe to cache events yet");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = moved(&mut moves) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Resolves when the store moves to another server; never for one that does not move.
async fn moved(moves: &mut Option<watch::Receiver<()>>) {
    if let Some(moves) = moves
        && moves.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}
