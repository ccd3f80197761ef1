//! Tags through the handle: reading an entry with its tags' versions, stamping a load with
//! them, and invalidating tags. Each round trip goes through the breaker of its shard, within
//! `op_timeout`; on a cluster the tag keys of different slots are sent at once.

use std::time::Duration;

use futures_util::future::join_all;

use super::{Cache, Invalidated};
use crate::{
    error::Error,
    store::Raw,
    wire::{
        key,
        tags::{new_version, tag_key},
    },
};

impl Cache {
    /// Invalidates tags, given relative to the namespace (`"category:5"` is the tag
    /// `app:category:5`, as `tags = ["category:<cat>"]` renders it for `cat = 5`): from when
    /// this returns, no `Cache` on this Redis serves an entry that carried one of them when it
    /// was stored, and a load that began before cannot store a value that would be served.
    /// Costs one round trip per hash slot of the tags, whatever the number of entries.
    ///
    /// Values are not escaped here: pass tags exactly as the annotations render them. Returns
    /// how many of the tags were carried by an entry that may still be cached.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cached_runtime::Error> {
    /// let cache = cached_runtime::Cache::builder().memory().namespace("app").build().await?;
    /// cache.invalidate_tags(&["category:5", "products"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_tags(&self, tags: &[&str]) -> Result<u64, Error> {
        let full: Vec<String> = tags
            .iter()
            .map(|t| key::full(&self.inner.namespace, t))
            .collect();
        let outcome = self.invalidate_tag_names(&full).await;
        match outcome.error {
            Some(error) => Err(error),
            None => Ok(outcome.deleted),
        }
    }

    /// Invalidates tags (full names): every tag key gets a new version, one atomic step per
    /// hash slot, all sent at once. Local loads and reads in flight are forgotten before and
    /// after (any of them may be of an entry that carries a tag). `deleted` counts the tags
    /// that had a version; `failed` lists the tags whose slot's step failed.
    pub(crate) async fn invalidate_tag_names(&self, tags: &[String]) -> Invalidated {
        let local = &self.inner.local;
        local.forget_all();
        let results = self
            .per_slot(tags, |keys| async move {
                let fresh: Vec<u64> = keys.iter().map(|_| new_version()).collect();
                self.inner
                    .store
                    .invalidate_tags(&keys, &fresh, &self.inner.channel)
                    .await
            })
            .await;
        local.forget_all();
        let mut outcome = Invalidated::default();
        for (group, result) in results {
            match result {
                Ok(n) => outcome.deleted += n,
                Err(error) => {
                    outcome
                        .failed
                        .extend(group.iter().map(|&i| tags[i].clone()));
                    outcome.error = Some(error);
                }
            }
        }
        outcome
    }

    /// Reads the entry `key` and the current versions of `tags` (full names; `None`: the tag
    /// has no version). On a single server, one `MGET`; on a cluster, one per hash slot,
    /// sent at once.
    pub(crate) async fn read_tagged(
        &self,
        key: &str,
        tags: &[String],
    ) -> Result<(Option<Raw>, Vec<Option<u64>>), Error> {
        let tag_keys: Vec<String> = tags.iter().map(|t| tag_key(t)).collect();
        let mut all: Vec<&str> = Vec::with_capacity(tags.len() + 1);
        all.push(key);
        all.extend(tag_keys.iter().map(String::as_str));
        let groups = self.inner.store.slot_groups(&all);
        if groups.len() == 1 {
            return self
                .timed(key, self.inner.store.read_with_tags(Some(key), &tag_keys))
                .await;
        }
        let reads = groups.iter().map(|group| {
            let entry = (group[0] == 0).then_some(key);
            let keys: Vec<String> = group
                .iter()
                .filter(|&&i| i > 0)
                .map(|&i| tag_keys[i - 1].clone())
                .collect();
            let first = all[group[0]];
            async move {
                self.timed(first, self.inner.store.read_with_tags(entry, &keys))
                    .await
            }
        });
        let mut entry = None;
        let mut versions = vec![None; tags.len()];
        for (group, result) in groups.iter().zip(join_all(reads).await) {
            let (raw, read) = result?;
            if group[0] == 0 {
                entry = raw;
            }
            for (&i, version) in group.iter().filter(|&&i| i > 0).zip(read) {
                versions[i - 1] = version;
            }
        }
        Ok((entry, versions))
    }

    /// The current versions of `tags` (full names), without an entry.
    pub(crate) async fn tag_versions(&self, tags: &[&str]) -> Result<Vec<Option<u64>>, Error> {
        let results = self
            .per_slot(tags, |keys| async move {
                let (_, versions) = self.inner.store.read_with_tags(None, &keys).await?;
                Ok(versions)
            })
            .await;
        scatter(results, tags.len(), None)
    }

    /// The versions of `tags` (full names) that a load beginning now stamps its entry with:
    /// created where missing; each tag key alive at least `ttl` (the entry's).
    pub(crate) async fn stamp_tags(
        &self,
        tags: &[String],
        ttl: Duration,
    ) -> Result<Vec<u64>, Error> {
        let results = self
            .per_slot(tags, |keys| async move {
                let fresh: Vec<u64> = keys.iter().map(|_| new_version()).collect();
                self.inner.store.stamp_tags(&keys, &fresh, ttl).await
            })
            .await;
        scatter(results, tags.len(), 0)
    }

    /// Runs `step` on the keys of `tags` (full names), once per hash slot, all at once, each a
    /// round trip through the handle; returns each slot's group (indices into `tags`, in the
    /// order `step` got their keys) with its result.
    async fn per_slot<T, F, Fut>(&self, tags: &[impl AsRef<str>], step: F) -> PerSlot<T>
    where
        F: Fn(Vec<String>) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let tag_keys: Vec<String> = tags.iter().map(|t| tag_key(t.as_ref())).collect();
        let refs: Vec<&str> = tag_keys.iter().map(String::as_str).collect();
        let groups = self.inner.store.slot_groups(&refs);
        let steps = groups.iter().map(|group| {
            let keys: Vec<String> = group.iter().map(|&i| tag_keys[i].clone()).collect();
            let first = keys[0].clone();
            let op = step(keys);
            async move { self.timed(&first, op).await }
        });
        let results = join_all(steps).await;
        groups.into_iter().zip(results).collect()
    }
}

/// What [`Cache::per_slot`] gives: each hash slot's group of tags (indices) with its step's
/// result.
type PerSlot<T> = Vec<(Vec<usize>, Result<T, Error>)>;

/// The values of [`Cache::per_slot`]'s groups put back at their tags' places (`fill` where a
/// group gave fewer), in a list of `len`; the first error, in the groups' order.
fn scatter<V: Clone>(results: PerSlot<Vec<V>>, len: usize, fill: V) -> Result<Vec<V>, Error> {
    let mut values = vec![fill; len];
    for (group, result) in results {
        for (&i, value) in group.iter().zip(result?) {
            values[i] = value;
        }
    }
    Ok(values)
}
