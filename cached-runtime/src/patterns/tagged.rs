//! Tags in the patterns: whether an entry may be served (every tag it carries, and every tag
//! the reading function names, still at the version recorded in the entry), and the stamps a
//! load or a put records.
//!
//! Why versions: invalidating a tag is one write per tag (a new random version), however many
//! entries carry it, with no `KEYS`/`SCAN` and no per-entry bookkeeping; an entry carries the
//! versions its load began with, so a load that raced an invalidation stores a value that no
//! reader accepts. A hit on a tagged entry reads the versions with the entry, in the same
//! round trip on one server (`MGET`), concurrently on a cluster.

use std::time::Duration;

use super::load::Call;
use crate::{
    cache::Cache,
    error::Error,
    policy::Policy,
    wire::{codec, tags::Stamp},
};

/// Whether the entry `raw` may be served to a function whose tags are `requested` (full
/// names), given `known`: the versions of `requested` read with it (`None`: not read yet).
/// Tags the entry carries beyond those are read here (one more round trip). An unreadable
/// tag section is an error of the codec kind.
pub(crate) async fn valid(
    cache: &Cache,
    raw: &[u8],
    requested: &[String],
    known: Option<&[Option<u64>]>,
) -> Result<bool, Error> {
    let stamps = codec::stamps(raw)?;
    // Every tag the function names must be carried, at its current version.
    for (i, tag) in requested.iter().enumerate() {
        let Some(stamp) = stamps.clone().find(|s| s.tag == tag) else {
            return Ok(false);
        };
        if let Some(known) = known
            && known.get(i).copied().flatten() != Some(stamp.version)
        {
            return Ok(false);
        }
    }
    // What is left to read: the entry's other tags, and all of them if nothing was read.
    let unread: Vec<Stamp<'_>> = stamps
        .filter(|s| known.is_none() || !requested.iter().any(|t| t == s.tag))
        .collect();
    if unread.is_empty() {
        return Ok(true);
    }
    let names: Vec<&str> = unread.iter().map(|s| s.tag).collect();
    let current = cache.tag_versions(&names).await?;
    Ok(unread
        .iter()
        .zip(current)
        .all(|(stamp, version)| version == Some(stamp.version)))
}

/// How long a tag key must live for an entry of `site`: the entry's longest life in Redis
/// (`ttl`, plus `stale`/`fail_safe`).
fn entry_life(site: &Policy) -> Duration {
    Duration::from_millis(site.ttl_ms) + site.extra()
}

/// The stamps for a load of `call` beginning now: its tags at their current versions (created
/// where missing).
pub(crate) async fn stamps(call: Call<'_, impl Sized>) -> Result<Vec<u64>, Error> {
    stamp(call.cache, call.site, call.tags).await
}

/// The stamps for an entry of `site` that carries `tags` (full names), written by a call that
/// begins now: the tags at their current versions, created where missing, each kept at least
/// as long as the entry lives.
pub(crate) async fn stamp(
    cache: &Cache,
    site: &Policy,
    tags: &[String],
) -> Result<Vec<u64>, Error> {
    cache.stamp_tags(tags, entry_life(site)).await
}

/// `tags` paired with their `versions`, as the entry records them.
pub(crate) fn pair<'a>(tags: &'a [String], versions: &[u64]) -> Vec<Stamp<'a>> {
    tags.iter()
        .zip(versions)
        .map(|(tag, &version)| Stamp { tag, version })
        .collect()
}
