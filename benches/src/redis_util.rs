//! Talking to the server on the side: `INFO commandstats` deltas, readiness, cleanup.

use std::{collections::BTreeMap, time::Duration};

use redis::aio::MultiplexedConnection;

/// `(calls, usec)` per command, from `INFO commandstats`.
pub(crate) type CommandStats = BTreeMap<String, (u64, u64)>;

pub(crate) async fn commandstats(admin: &MultiplexedConnection) -> CommandStats {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut admin.clone())
        .await
        .expect("INFO commandstats");
    parse_commandstats(&info)
}

fn parse_commandstats(info: &str) -> CommandStats {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| -> Option<u64> {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(key))?
                    .parse()
                    .ok()
            };
            Some((name.to_owned(), (field("calls=")?, field("usec=")?)))
        })
        .collect()
}

/// Commands executed between two snapshots, without the `INFO` calls themselves: the total
/// and a per-command breakdown.
#[derive(Clone, Debug, Default)]
pub(crate) struct CommandDelta {
    pub(crate) total: u64,
    pub(crate) by_command: BTreeMap<String, u64>,
    /// Time Redis spent in scripts (`EVALSHA`/`EVAL`, inner commands included), in µs.
    pub(crate) script_usec: u64,
}

pub(crate) fn delta(before: &CommandStats, after: &CommandStats) -> CommandDelta {
    let mut out = CommandDelta::default();
    for (name, &(calls, usec)) in after {
        if name == "info" {
            continue;
        }
        let (calls0, usec0) = before.get(name).copied().unwrap_or((0, 0));
        let d = calls.saturating_sub(calls0);
        if d > 0 {
            out.total += d;
            out.by_command.insert(name.clone(), d);
            if matches!(name.as_str(), "evalsha" | "eval") {
                out.script_usec += usec.saturating_sub(usec0);
            }
        }
    }
    out
}

impl CommandDelta {
    /// `GET 1, SET 1, EVALSHA 1 ...` per call.
    pub(crate) fn per_call(&self, calls: usize) -> String {
        if self.by_command.is_empty() {
            return "none".to_owned();
        }
        self.by_command
            .iter()
            .map(|(name, &n)| {
                let per = n as f64 / calls as f64;
                let name = name.to_uppercase();
                if (per - per.round()).abs() < 0.005 {
                    format!("{name} {}", per.round())
                } else {
                    format!("{name} {per:.2}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
            + &if self.script_usec > 0 {
                format!(
                    "; script time in Redis {:.1} µs",
                    self.script_usec as f64 / calls as f64
                )
            } else {
                String::new()
            }
    }
}

/// Waits until the server answers `PING` again (after a resume).
pub(crate) async fn wait_ready(url: &str) {
    let client = redis::Client::open(url).expect("valid URL");
    for _ in 0..200 {
        if let Ok(Ok(mut conn)) = tokio::time::timeout(
            Duration::from_millis(500),
            client.get_multiplexed_async_connection(),
        )
        .await
            && let Ok(Ok(pong)) = tokio::time::timeout(
                Duration::from_millis(500),
                redis::cmd("PING").query_async::<String>(&mut conn),
            )
            .await
            && pong == "PONG"
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis at {url} did not answer PING again");
}

/// Deletes every key matching `pattern` (`SCAN` + `UNLINK`).
pub(crate) async fn unlink_matching(admin: &MultiplexedConnection, pattern: &str) {
    let mut conn = admin.clone();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        if !keys.is_empty() {
            let _: i64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .expect("UNLINK");
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// A field of `INFO server`.
pub(crate) async fn server_info(admin: &MultiplexedConnection, field: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut admin.clone())
        .await
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Subscribers of a pub/sub channel.
pub(crate) async fn numsub(admin: &MultiplexedConnection, channel: &str) -> u64 {
    let (_, n): (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut admin.clone())
        .await
        .unwrap_or_default();
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_subtracts() {
        let a = parse_commandstats(
            "# Commandstats\r\ncmdstat_get:calls=3,usec=1,usec_per_call=0.3\r\ncmdstat_info:calls=1,usec=9\r\n",
        );
        let b = parse_commandstats(
            "cmdstat_get:calls=5,usec=1\r\ncmdstat_info:calls=2,usec=9\r\ncmdstat_client|setinfo:calls=2,usec=1\r\n",
        );
        let d = delta(&a, &b);
        assert_eq!(d.total, 4);
        assert_eq!(d.per_call(2), "CLIENT|SETINFO 1, GET 1");
    }
}
