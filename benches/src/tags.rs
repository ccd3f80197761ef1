//! The tags scenario (`--scenario tags`), on the bench's Redis server:
//!
//! - a hit on an entry with two tags (`tags = ["group:<group>", "all"]`) against an untagged
//!   hit of the same ~1 KiB value, one task, interleaved slices, pinned like the hit-latency
//!   scenario; with the Redis commands of each;
//! - invalidating a tag carried by 10 000 entries (`Cache::invalidate_tags`) against the guides'
//!   tag set written by hand (`SADD` of each key to the tag's set at write; to invalidate,
//!   `SMEMBERS` then `UNLINK` of the members in batches of 1000 and of the set).

use std::{hint::black_box, time::Instant};

use cached_runtime::{Cache, cache_aside};
use redis::aio::MultiplexedConnection;

use crate::{
    Config,
    contenders::fast_body,
    redis_util::{commandstats, delta, unlink_matching},
    report::{Report, Section},
    scenarios::{Env, counted_calls, redis_cache, rotated, timed_calls, warm_up},
    stats::{agg, dist},
    value::Value,
};

/// ~1 KiB, as the product targets.
const SIZE: u32 = 1024;
const HOT: u64 = 64;
const SLICES: usize = 50;

struct Tagged {
    cache: Cache,
}

impl Tagged {
    #[cache_aside(key = "plain:<id>", ttl = 600, cache = self.cache)]
    async fn plain(&self, id: u64) -> Value {
        fast_body(SIZE, id).await
    }

    #[cache_aside(key = "tagged:<id>", ttl = 600, tags = ["group:<group>", "all"], cache = self.cache)]
    async fn tagged(&self, id: u64, group: u32) -> Value {
        let _ = group;
        fast_body(SIZE, id).await
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Plain,
    Tagged,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Plain => "ours, untagged",
            Kind::Tagged => "ours, two tags",
        }
    }
}

async fn call(repo: &Tagged, kind: Kind, id: u64) -> Value {
    match kind {
        Kind::Plain => repo.plain(id).await,
        Kind::Tagged => repo.tagged(id, (id % 4) as u32).await,
    }
}

/// `calls` timed calls of hot keys (after `warmup`), latencies in ns.
async fn pass(repo: &Tagged, kind: Kind, warmup: usize, calls: usize) -> Vec<u64> {
    // The value is dropped inside the timed call, as a caller's would be.
    let mut hit = |i: usize| async move {
        black_box(call(repo, kind, i as u64 % HOT).await);
    };
    warm_up(0..warmup, |i| i, &mut hit).await;
    timed_calls(0..calls, |i| i, &mut hit, |_| false).await.0
}

pub(crate) async fn tags(env: &Env, cfg: &Config, report: &mut Report) {
    eprintln!("tags: tagged hit");
    let namespace = "tags";
    unlink_matching(&env.admin, "*tags:*").await;
    let repo = Tagged {
        cache: redis_cache(&env.url, namespace, None).await,
    };
    for id in 0..HOT {
        for kind in [Kind::Plain, Kind::Tagged] {
            call(&repo, kind, id).await;
        }
    }
    let mut hit = Section::new(
        format!(
            "Tags: a hit on an entry with two tags against an untagged hit — one task, ~1 KiB, {} calls per round in {SLICES} interleaved slices, {} rounds",
            cfg.hit_calls, cfg.rounds
        ),
        vec![
            "contender",
            "p50",
            "p99",
            "p50 ÷ untagged",
            "Redis commands per hit (INFO commandstats)",
        ],
    );
    let pinned = env.pin(cfg);
    let mut p50s: Vec<(f64, f64)> = Vec::new();
    let mut p99s: Vec<(f64, f64)> = Vec::new();
    for round in 0..cfg.rounds {
        let mut samples = [Vec::new(), Vec::new()];
        for slice in 0..SLICES {
            for kind in rotated(&[Kind::Plain, Kind::Tagged], round + slice) {
                let got = pass(&repo, kind, cfg.hit_warmup / SLICES, cfg.hit_calls / SLICES).await;
                samples[usize::from(kind == Kind::Tagged)].extend(got);
            }
        }
        let [mut plain, mut tagged] = samples;
        let (plain, tagged) = (dist(&mut plain), dist(&mut tagged));
        p50s.push((plain.p50, tagged.p50));
        p99s.push((plain.p99, tagged.p99));
    }
    let pin_note = env.pin_note(cfg, pinned.is_some());
    drop(pinned);
    let mut commands = Vec::new();
    for kind in [Kind::Plain, Kind::Tagged] {
        let counted = counted_calls(env, cfg.count_calls, |i| {
            let repo = &repo;
            async move {
                black_box(call(repo, kind, i as u64 % HOT).await);
            }
        })
        .await;
        commands.push(counted.commands());
    }
    let ratio = agg(p50s.iter().map(|(p, t)| t / p));
    for (i, kind) in [Kind::Plain, Kind::Tagged].into_iter().enumerate() {
        let pick = |v: &(f64, f64)| if i == 0 { v.0 } else { v.1 };
        hit.row(vec![
            kind.label().to_owned(),
            agg(p50s.iter().map(pick)).ns(),
            agg(p99s.iter().map(pick)).ns(),
            if i == 0 {
                "1.00×".to_owned()
            } else {
                ratio.ratio()
            },
            commands[i].clone(),
        ]);
    }
    hit.note(
        "Both functions on one `Cache`, 64 hot keys each. The tagged hit reads the entry and its two tags' versions in one `MGET` (on a cluster, one request per hash slot, sent at once) and compares them with the versions recorded in the entry.",
    );
    hit.note(pin_note);
    report.sections.push(hit);
    report.target(
        "tagged hit (two tags) p50 ≤ 1.3× untagged",
        format!(
            "{} ({} vs {})",
            ratio.ratio(),
            agg(p50s.iter().map(|v| v.1)).ns(),
            agg(p50s.iter().map(|v| v.0)).ns()
        ),
        Some(ratio.med <= 1.3),
    );

    eprintln!("tags: invalidating a tag of many entries");
    let entries = if cfg.smoke { 500 } else { 10_000 };
    invalidation(env, cfg, report, &repo, entries).await;
}

/// Time of one invalidation of a tag carried by `entries` entries, ours and hand-written.
async fn invalidation(env: &Env, cfg: &Config, report: &mut Report, repo: &Tagged, entries: u64) {
    let rounds = cfg.rounds;
    let mut ours = Vec::new();
    let mut ours_cmds = String::new();
    let mut hand = Vec::new();
    let mut hand_cmds = String::new();
    let mut admin = env.admin.clone();
    for round in 0..rounds {
        // Ours: the entries carry `group:9` (the hit pass above uses groups 0 to 3).
        for i in 0..entries {
            black_box(repo.tagged(1_000_000 + i, 9).await);
        }
        let before = commandstats(&env.admin).await;
        let started = Instant::now();
        let had = repo
            .cache
            .invalidate_tags(&["group:9"])
            .await
            .expect("redis answers");
        ours.push(started.elapsed().as_nanos() as f64);
        let after = commandstats(&env.admin).await;
        assert_eq!(had, 1, "the tag was in use");
        if round == 0 {
            ours_cmds = delta(&before, &after).per_call(1);
        }

        // Hand-written: the guides' tag set.
        hand_populate(&mut admin, entries).await;
        let before = commandstats(&env.admin).await;
        let started = Instant::now();
        hand_invalidate(&mut admin).await;
        hand.push(started.elapsed().as_nanos() as f64);
        let after = commandstats(&env.admin).await;
        if round == 0 {
            hand_cmds = delta(&before, &after).per_call(1);
        }
    }
    unlink_matching(&env.admin, "hand-tags:*").await;
    let mut sec = Section::new(
        format!(
            "Tags: invalidating a tag carried by {entries} entries, {rounds} rounds (the entries cached again before each)"
        ),
        vec!["contender", "time (median, min–max)", "Redis commands"],
    );
    let (ours, hand) = (agg(ours), agg(hand));
    sec.row(vec![
        "ours: `Cache::invalidate_tags`".to_owned(),
        ours.ns(),
        ours_cmds,
    ]);
    sec.row(vec![
        "hand-written: the guides' tag set (`SMEMBERS`, `UNLINK` in batches of 1000)".to_owned(),
        hand.ns(),
        hand_cmds,
    ]);
    sec.note(
        "Ours gives the tag a new version: one script, whatever the number of entries; the entries stop being served at once and are reloaded when next read (not counted here). The hand-written tag set deletes every member, so its cost grows with the entries, and the set itself must be trimmed of expired members by some other means.",
    );
    report.sections.push(sec);
}

/// The guides' tagged write, by hand: the value with `SET EX` and its key in the tag's set,
/// pipelined in batches.
async fn hand_populate(admin: &mut MultiplexedConnection, entries: u64) {
    let value = vec![7u8; SIZE as usize];
    for chunk in (0..entries).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            let key = format!("hand-tags:entry:{i}");
            pipe.cmd("SET")
                .arg(&key)
                .arg(&value)
                .arg("EX")
                .arg(600)
                .ignore();
            pipe.cmd("SADD")
                .arg("hand-tags:tag:group:9")
                .arg(&key)
                .ignore();
        }
        let () = pipe.query_async(admin).await.expect("redis answers");
    }
}

/// The guides' `invalidate_by_tag`: read the members, delete them and the set.
async fn hand_invalidate(admin: &mut MultiplexedConnection) {
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("hand-tags:tag:group:9")
        .query_async(admin)
        .await
        .expect("redis answers");
    for batch in members.chunks(1000) {
        let _: u64 = redis::cmd("UNLINK")
            .arg(batch)
            .query_async(admin)
            .await
            .expect("redis answers");
    }
    let _: u64 = redis::cmd("UNLINK")
        .arg("hand-tags:tag:group:9")
        .query_async(admin)
        .await
        .expect("redis answers");
}
