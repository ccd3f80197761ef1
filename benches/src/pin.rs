//! CPU pinning for the single-task scenarios, with `taskset`.
//!
//! On a small VM a loopback round trip between two idle vCPUs goes through the hypervisor to
//! wake the sleeping one, and whether the bench's thread and redis-server share a vCPU changes
//! from round to round: round trips then take ~20 µs or ~100 µs by chance, which swamps the
//! few-percent differences the single-task scenarios are after. With the bench (all its
//! threads) and redis-server on one CPU, a round trip is two context switches on that CPU and
//! repeats within ~1–2 %. The multi-task scenarios run unpinned, on every CPU.

use std::process::{Command, Stdio};

/// Processes pinned to one CPU until this is dropped (their previous affinity is restored).
pub(crate) struct Pinned {
    restore: Vec<(u32, String)>,
}

impl Pinned {
    /// Pins every thread of each of `pids` to `cpu`. `None` if `taskset` is not available or
    /// fails (nothing is left pinned then).
    pub(crate) fn to_cpu(pids: &[u32], cpu: usize) -> Option<Pinned> {
        let mut pinned = Pinned {
            restore: Vec::new(),
        };
        for &pid in pids {
            let mask = current_mask(pid)?;
            if !taskset(&["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()]) {
                return None;
            }
            pinned.restore.push((pid, mask));
        }
        Some(pinned)
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        for (pid, mask) in &self.restore {
            taskset(&["-a", "-p", mask, &pid.to_string()]);
        }
    }
}

/// The affinity mask of `pid`, in hex as `taskset -p` prints it.
fn current_mask(pid: u32) -> Option<String> {
    let out = Command::new("taskset")
        .args(["-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .ok()?
        .split_whitespace()
        .last()
        .map(str::to_owned)
}

fn taskset(args: &[&str]) -> bool {
    Command::new("taskset")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
