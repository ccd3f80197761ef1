//! The sliding scenario: a hit of `#[cache_aside(sliding = true)]` (`GETEX key PX <ttl>`, which
//! reads the entry and resets its TTL in one round trip) against a plain hit of ours (`GET`)
//! and the hand-written one, in one run, interleaved as in the hit-latency scenario.

use std::{collections::HashMap, sync::Arc};

use crate::{
    Config,
    contenders::{Client, Ours},
    report::{Report, Section},
    scenarios::{
        Counted, Env, HIT_SLICES, LatencyRun, Runs, Who, anomalies, count_pass, hot_id,
        latency_pass, prime, ratio, redis_cache, rotated, stat,
    },
    value::TARGET_SIZE,
};

/// The key space of the scenario's entries (its own: the sliding contender's keys are not the
/// other contenders').
const SPACE: &str = "slide";

pub(crate) async fn sliding(env: &Env, cfg: &Config, report: &mut Report) {
    eprintln!("sliding hit latency, 1 KiB");
    let sliding = |url: &str, namespace: &'static str| {
        let url = url.to_owned();
        async move {
            Arc::new(Client::OursSliding(Ours {
                cache: redis_cache(&url, namespace, None).await,
            }))
        }
    };
    let pick = |contenders: &[(Who, Arc<Client>)], who| {
        contenders
            .iter()
            .find(|(w, _)| *w == who)
            .map(|(_, c)| (who, c.clone()))
            .expect("the hit scenarios' contenders include it")
    };
    let main = vec![
        pick(&env.main, Who::Hand),
        pick(&env.main, Who::Ours),
        (Who::OursSliding, sliding(&env.url, "ours-slide").await),
    ];
    let counted = vec![
        pick(&env.counted, Who::Hand),
        pick(&env.counted, Who::Ours),
        (
            Who::OursSliding,
            sliding(env.proxy.url(), "ours-slide-rt").await,
        ),
    ];
    let mut sec = Section::new(
        format!(
            "Sliding expiration — one task, 1 KiB, {} calls per round in {HIT_SLICES} slices interleaved across contenders (each after {} warm-up calls), {} rounds",
            cfg.hit_calls,
            cfg.hit_warmup / HIT_SLICES,
            cfg.rounds,
        ),
        vec![
            "value",
            "contender",
            "mean",
            "p50",
            "p99",
            "p50 ÷ ours (plain hit)",
            "p50 ÷ hand-written",
            "Redis commands per hit (INFO commandstats)",
            "round trips per hit",
        ],
    );
    let pinned = env.pin(cfg);
    prime(&main, SPACE, TARGET_SIZE).await;
    prime(&counted, SPACE, TARGET_SIZE).await;
    let mut runs: Runs<LatencyRun> = HashMap::new();
    for round in 0..cfg.rounds {
        let mut slices: HashMap<Who, Vec<LatencyRun>> = HashMap::new();
        for slice in 0..HIT_SLICES {
            for (who, c) in rotated(&main, round + slice) {
                let run = latency_pass(
                    c,
                    SPACE,
                    TARGET_SIZE,
                    cfg.hit_warmup / HIT_SLICES,
                    cfg.hit_calls / HIT_SLICES,
                    hot_id,
                    0,
                )
                .await;
                slices.entry(who).or_default().push(run);
            }
        }
        for (who, slices) in slices {
            runs.entry(who).or_default().push(LatencyRun::merge(slices));
        }
    }
    let mut commands: HashMap<Who, Counted> = HashMap::new();
    for (who, c) in &counted {
        let pass = count_pass(
            env,
            c,
            SPACE,
            TARGET_SIZE,
            |i| hot_id(i, 0),
            cfg.count_calls,
        )
        .await;
        commands.insert(*who, pass);
    }
    for (who, _) in &main {
        let p50 = |r: &LatencyRun| r.dist.p50;
        let c = &commands[who];
        sec.row(vec![
            "1 KiB".to_owned(),
            format!("{}{}", who.label(), anomalies(&runs[who], true)),
            stat(&runs, *who, |r| r.dist.mean).ns(),
            stat(&runs, *who, p50).ns(),
            stat(&runs, *who, |r| r.dist.p99).ns(),
            match who {
                Who::Ours => "1.00 (baseline)".to_owned(),
                Who::Hand => "–".to_owned(),
                _ => ratio(&runs, *who, Who::Ours, p50).ratio(),
            },
            match who {
                Who::Hand => "1.00".to_owned(),
                _ => ratio(&runs, *who, Who::Hand, p50).ratio(),
            },
            c.commands(),
            format!("{:.2}", c.trips()),
        ]);
    }
    let r = ratio(&runs, Who::OursSliding, Who::Ours, |r| r.dist.p50);
    report.target(
        "sliding hit p50 ≤ 1.1× a plain hit (ours)",
        format!(
            "{} ({} vs {})",
            r.ratio(),
            stat(&runs, Who::OursSliding, |r| r.dist.p50).ns(),
            stat(&runs, Who::Ours, |r| r.dist.p50).ns()
        ),
        Some(r.med <= 1.1),
    );
    let c = &commands[&Who::OursSliding];
    report.target(
        "a sliding hit is one round trip (`GETEX`)",
        format!(
            "{:.2} round trips, {} Redis commands per hit",
            c.trips(),
            c.commands()
        ),
        Some(
            c.round_trips == c.calls as u64
                && c.cmds.total == c.calls as u64
                && c.cmds.per_call(c.calls).contains("GETEX"),
        ),
    );
    sec.note(env.pin_note(cfg, pinned.is_some()));
    drop(pinned);
    sec.note("The plain and the sliding contender are the same function on two `Cache`s of their own (one `ConnectionManager` each), one with `sliding = true`: its hit is `GETEX key PX 600000`, which reads the 1 KiB value and resets its TTL, where the plain hit is `GET`. Redis commands and round trips: a separate pass of sequential calls through the counting proxy, as in the hit-latency scenario.");
    report.sections.push(sec);
}
