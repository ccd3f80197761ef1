//! Every command and Lua script the cache sends to Redis, over any redis-rs async connection
//! (a node's `ConnectionManager`, a cluster's `ClusterConnection`). Each touches one hash
//! slot: an entry and its lease key share one (`{app:user:42}:lock`).

use std::{
    future::Future,
    sync::{Arc, LazyLock},
    time::Duration,
};

use redis::{FromRedisValue, aio::ConnectionLike};

use super::{Lease, Raw, lock_key};
use crate::{
    error::Error,
    wire::{
        event::{self, Kind},
        tags,
    },
};

/// Takes the lease (KEYS[1]) with our token ARGV[1] for ARGV[2] ms if nobody holds it: 1.
/// Our leases are strings of 16 hex digits that always expire; anything else under the lease
/// key (another type, no expiry, another format) is foreign and is replaced rather than waited
/// on: 2. Held by another loader: 0.
static TRY_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
local kind = redis.call('TYPE', KEYS[1])['ok']
local foreign = kind ~= 'string' or redis.call('PTTL', KEYS[1]) < 0
if not foreign then
  local held = redis.call('GET', KEYS[1])
  foreign = #held ~= 16 or string.find(held, '[^0-9a-f]') ~= nil
end
if foreign then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0",
    )
});

/// Stores the value (KEYS[1], ARGV[2], for ARGV[3] ms) if the lease (KEYS[2]) is still ours
/// (ARGV[1]), releases it and publishes a fill event on ARGV[4]: ARGV[6] then the key, and
/// the value after a NUL if it is at most ARGV[5] bytes. 1: stored; 0: the lease was lost.
static PUT_LEASED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  local event = ARGV[6] .. KEYS[1]
  if #ARGV[2] <= tonumber(ARGV[5]) then
    event = event .. '\0' .. ARGV[2]
  end
  redis.call('PUBLISH', ARGV[4], event)
  return 1
end
return 0",
    )
});

/// Releases a lease we still hold (compare-and-delete) and publishes ARGV[3] then the key on
/// ARGV[2], to wake the waiters.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  redis.call('PUBLISH', ARGV[2], ARGV[3] .. KEYS[1])
  return 1
end
return 0",
    )
});

/// Deletes entries with their leases (voiding loads in flight) and publishes ARGV[2] then the
/// key on ARGV[1] for each. KEYS: entry1, lock1, entry2, lock2, ...
static INVALIDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = redis.call('DEL', unpack(KEYS))
for i = 1, #KEYS, 2 do
  redis.call('PUBLISH', ARGV[1], ARGV[2] .. KEYS[i])
end
return n",
    )
});

/// Stamps a load with its tags' versions (KEYS: tag keys of one slot): each tag's current
/// version, or, for a tag without one (or with foreign data under its key), the fresh version
/// ARGV[i + 1], stored. Each tag key then lives at least ARGV[1] ms (the entry's TTL): as long
/// as the longest-lived entry that carries it, and no longer. Returns the versions.
static STAMP_TAGS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local out = {}
for i, k in ipairs(KEYS) do
  local v = nil
  if redis.call('TYPE', k)['ok'] == 'string' then
    v = redis.call('GET', k)
    if #v ~= 16 or string.find(v, '[^0-9a-f]') ~= nil then
      v = nil
    end
  end
  if v then
    if redis.call('PTTL', k) < tonumber(ARGV[1]) then
      redis.call('PEXPIRE', k, ARGV[1])
    end
  else
    v = ARGV[i + 1]
    redis.call('DEL', k)
    redis.call('SET', k, v, 'PX', ARGV[1])
  end
  out[i] = v
end
return out",
    )
});

/// Invalidates tags (KEYS: tag keys of one slot): each that has a version gets the fresh one
/// ARGV[i + 2], keeping its TTL (a key without a TTL is not ours: deleted); publishes ARGV[2]
/// then the tag on ARGV[1] for each. Returns how many had a version.
static INVALIDATE_TAGS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = 0
for i, k in ipairs(KEYS) do
  local ttl = redis.call('PTTL', k)
  if ttl > 0 then
    redis.call('SET', k, ARGV[i + 2], 'KEEPTTL')
    n = n + 1
  elseif ttl == -1 then
    redis.call('DEL', k)
  end
  redis.call('PUBLISH', ARGV[1], ARGV[2] .. string.sub(k, 2, -6))
end
return n",
    )
});

/// A Lua script, run with `EVALSHA` (its body sent once per server, by `EVAL`).
struct Script {
    code: &'static str,
    sha: String,
}

impl Script {
    fn new(code: &'static str) -> Script {
        Script {
            code,
            sha: redis::Script::new(code).get_hash().to_owned(),
        }
    }

    /// `EVALSHA` with what `keys_and_args` appends (the number of keys, the keys, the
    /// arguments), or `EVAL` if the server does not have the script yet (which caches it).
    /// Unlike redis-rs's `Script::invoke_async`, whose `SCRIPT LOAD` goes to every node of a
    /// cluster (and waits for one that hangs), both go to the node of the keys.
    async fn run<C: ConnectionLike, T: FromRedisValue>(
        &self,
        conn: &mut C,
        keys_and_args: impl Fn(&mut redis::Cmd),
    ) -> Result<T, Error> {
        let command = |verb: &str, body: &str| {
            let mut cmd = redis::cmd(verb);
            cmd.arg(body);
            keys_and_args(&mut cmd);
            cmd
        };
        match command("EVALSHA", &self.sha).query_async(conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                Ok(command("EVAL", self.code).query_async(conn).await?)
            }
            result => Ok(result?),
        }
    }
}

/// Milliseconds for `PX`, at least 1.
fn px(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64
}

pub(crate) async fn get<C: ConnectionLike>(mut conn: C, key: &str) -> Result<Option<Raw>, Error> {
    let v: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
    Ok(v.map(Raw::Owned))
}

/// Reads `key` and sets its expiry to `ttl` from now, in one command (`GETEX key PX <ms>`):
/// a sliding expiration's hit. The command is built before the future, which then holds only
/// it and the connection (a hit's future is part of every call's).
pub(crate) fn get_ex<C: ConnectionLike>(
    mut conn: C,
    key: &str,
    ttl: Duration,
) -> impl Future<Output = Result<Option<Raw>, Error>> {
    let mut cmd = redis::cmd("GETEX");
    cmd.arg(key).arg("PX").arg(px(ttl));
    async move {
        // Taken as a `Value` and converted here: a `query_async` of its own, so that `get`'s
        // (the plain hit's) stays inlined where it is.
        let reply: redis::Value = cmd.query_async(&mut conn).await?;
        let v = Option::<Vec<u8>>::from_redis_value(reply).map_err(redis::RedisError::from)?;
        Ok(v.map(Raw::Owned))
    }
}

pub(crate) async fn set<C: ConnectionLike>(
    mut conn: C,
    key: &str,
    value: Arc<[u8]>,
    ttl: Duration,
) -> Result<(), Error> {
    redis::cmd("SET")
        .arg(key)
        .arg(&*value)
        .arg("PX")
        .arg(px(ttl))
        .exec_async(&mut conn)
        .await?;
    Ok(())
}

/// Sets the expiry of `key` to `ttl` from now; `false` if there is no such key.
pub(crate) async fn touch<C: ConnectionLike>(
    mut conn: C,
    key: &str,
    ttl: Duration,
) -> Result<bool, Error> {
    let n: i64 = redis::cmd("PEXPIRE")
        .arg(key)
        .arg(px(ttl))
        .query_async(&mut conn)
        .await?;
    Ok(n == 1)
}

pub(crate) async fn ping<C: ConnectionLike>(mut conn: C) -> Result<(), Error> {
    let _: String = redis::cmd("PING").query_async(&mut conn).await?;
    Ok(())
}

pub(crate) async fn try_lease<C: ConnectionLike>(
    mut conn: C,
    key: &str,
    token: &str,
    ttl: Duration,
) -> Result<Lease, Error> {
    let got: i64 = TRY_LEASE
        .run(&mut conn, |cmd| {
            cmd.arg(1).arg(lock_key(key)).arg(token).arg(px(ttl));
        })
        .await?;
    Ok(match got {
        1 => Lease::Taken,
        2 => Lease::Repaired,
        _ => Lease::Held,
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn put_leased<C: ConnectionLike>(
    mut conn: C,
    key: &str,
    token: &str,
    value: Arc<[u8]>,
    ttl: Duration,
    channel: &str,
    inline: usize,
) -> Result<bool, Error> {
    let stored: i64 = PUT_LEASED
        .run(&mut conn, |cmd| {
            cmd.arg(2).arg(key).arg(lock_key(key));
            cmd.arg(token).arg(&*value).arg(px(ttl)).arg(channel);
            cmd.arg(inline).arg(Kind::Filled.prefix());
        })
        .await?;
    Ok(stored == 1)
}

/// A write-through: deletes the key's lease, then stores `value` under `key` for `ttl`, two
/// commands sent as one request (`DEL {key}:lock`, `SET key … PX`). The order is what keeps a
/// load in flight from storing its older result over this one, without a transaction: a load
/// that holds the lease when the `DEL` runs has its guarded write refused from then on; a load
/// that takes the lease after the `DEL` took it after the database write this put follows (a
/// load takes its lease before it runs its body), so what it stores is as new as this value.
/// Measured against the `MULTI`/`SET`/`DEL`/`EXEC` transaction this was, it saves the server two
/// commands and the client two replies to parse per write (BENCHMARKS.md, write-through); the
/// Lua script before that cost most of a write-through's time over a plain `SET`.
///
/// Only if the `DEL` removed a lease is anyone waiting for the key: that load's waiters, in
/// any process, are then woken by a fill event, published in a second round trip. The event
/// carries no value, so a waiter reads the key: the publish is not atomic with the write, and
/// a value carried by a late event could be older than a write that landed meanwhile. Without
/// a lease nothing is published (a `PUBLISH` reaches every instance and would cost each write
/// more than the `SET`).
pub(crate) async fn put<C: ConnectionLike>(
    mut conn: C,
    key: &str,
    value: &[u8],
    ttl: Duration,
    channel: &str,
) -> Result<(), Error> {
    // The `SET` sized for its arguments up front: it copies the value once, without growing.
    let mut set = redis::Cmd::with_capacity(5, 3 + key.len() + value.len() + 2 + 20);
    set.arg("SET").arg(key).arg(value).arg("PX").arg(px(ttl));
    let mut write = redis::Pipeline::with_capacity(2);
    write.cmd("DEL").arg(lock_key(key));
    write.add_command(set);
    let (voided, ()): (u64, ()) = write.query_async(&mut conn).await?;
    if voided == 0 {
        return Ok(());
    }
    let _: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(event::encode(Kind::Filled, key, None))
        .query_async(&mut conn)
        .await?;
    Ok(())
}

pub(crate) async fn release<C: ConnectionLike>(
    mut conn: C,
    key: &str,
    token: &str,
    channel: &str,
) -> Result<(), Error> {
    let _: i64 = RELEASE
        .run(&mut conn, |cmd| {
            cmd.arg(2).arg(key).arg(lock_key(key));
            cmd.arg(token).arg(channel).arg(Kind::Released.prefix());
        })
        .await?;
    Ok(())
}

/// `keys` must share a hash slot.
pub(crate) async fn invalidate<C: ConnectionLike>(
    mut conn: C,
    keys: &[String],
    channel: &str,
) -> Result<u64, Error> {
    INVALIDATE
        .run(&mut conn, |cmd| {
            cmd.arg(keys.len() * 2);
            for key in keys {
                cmd.arg(key).arg(lock_key(key));
            }
            cmd.arg(channel).arg(Kind::Invalidated.prefix());
        })
        .await
}

/// The entry `key` (if given) and the versions of the tags whose keys are `tag_keys`, in one
/// `MGET` (all of one hash slot). A tag key that holds no version, or foreign data, reads as
/// `None`.
pub(crate) async fn read_with_tags<C: ConnectionLike>(
    mut conn: C,
    key: Option<&str>,
    tag_keys: &[String],
) -> Result<(Option<Raw>, Vec<Option<u64>>), Error> {
    let mut cmd = redis::cmd("MGET");
    if let Some(key) = key {
        cmd.arg(key);
    }
    cmd.arg(tag_keys);
    let mut values: Vec<Option<Vec<u8>>> = cmd.query_async(&mut conn).await?;
    let entry = match key {
        Some(_) if !values.is_empty() => values.remove(0).map(Raw::Owned),
        _ => None,
    };
    let versions = values
        .iter()
        .map(|v| v.as_deref().and_then(tags::parse_version))
        .collect();
    Ok((entry, versions))
}

/// The versions of tags (keys of one hash slot) for a load that begins now, created where
/// missing (with the versions in `fresh`); each tag key lives at least `ttl`.
pub(crate) async fn stamp_tags<C: ConnectionLike>(
    mut conn: C,
    tag_keys: &[String],
    fresh: &[u64],
    ttl: Duration,
) -> Result<Vec<u64>, Error> {
    let versions: Vec<Vec<u8>> = STAMP_TAGS
        .run(&mut conn, |cmd| {
            cmd.arg(tag_keys.len()).arg(tag_keys).arg(px(ttl));
            for version in fresh {
                cmd.arg(tags::version_text(*version));
            }
        })
        .await?;
    versions
        .iter()
        .map(|v| {
            tags::parse_version(v).ok_or_else(|| {
                Error::new(
                    crate::error::ErrorKind::Redis,
                    "a tag version that is not 16 hex digits came back from the tag script",
                )
            })
        })
        .collect()
}

/// Gives tags (keys of one hash slot) the versions in `fresh` and announces it.
pub(crate) async fn invalidate_tags<C: ConnectionLike>(
    mut conn: C,
    tag_keys: &[String],
    fresh: &[u64],
    channel: &str,
) -> Result<u64, Error> {
    INVALIDATE_TAGS
        .run(&mut conn, |cmd| {
            cmd.arg(tag_keys.len()).arg(tag_keys);
            cmd.arg(channel).arg(Kind::TagInvalidated.prefix());
            for version in fresh {
                cmd.arg(tags::version_text(*version));
            }
        })
        .await
}
