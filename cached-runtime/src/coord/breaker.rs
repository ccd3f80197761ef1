//! A circuit breaker in front of the backend: after `threshold` consecutive failures it opens
//! for `cooldown`, and calls skip the backend (straight to their bodies, no timeout to wait
//! out). Then one call probes; its success closes the breaker, its failure re-opens it.

use std::{
    sync::atomic::{
        AtomicBool, AtomicU32, AtomicU64,
        Ordering::{AcqRel, Acquire, Relaxed, Release},
    },
    time::{Duration, Instant},
};

#[derive(Debug)]
pub(crate) struct Breaker {
    /// The cluster shard it guards (`None`: the whole store), for its log lines.
    shard: Option<usize>,
    threshold: u32,
    cooldown: Duration,
    epoch: Instant,
    failures: AtomicU32,
    /// 0 = closed; otherwise ms since `epoch` until which it stays open.
    open_until_ms: AtomicU64,
    probing: AtomicBool,
    pub(crate) opens: AtomicU64,
    pub(crate) rejected: AtomicU64,
}

/// What the breaker allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Closed: go ahead.
    Closed,
    /// Half-open: this call is the probe.
    Probe,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            shard: None,
            threshold,
            cooldown,
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            opens: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    /// A breaker of one shard of a cluster.
    pub(crate) fn for_shard(shard: usize, threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            shard: Some(shard),
            ..Breaker::new(threshold, cooldown)
        }
    }

    fn now_ms(&self) -> u64 {
        // +1 so that "open until" is never 0 (which means closed).
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// May a call go to the backend? `None`: the breaker is open, skip the backend.
    #[inline]
    pub(crate) fn admit(&self) -> Option<Admit> {
        let until = self.open_until_ms.load(Acquire);
        if until == 0 {
            return Some(Admit::Closed);
        }
        if self.now_ms() >= until
            && self
                .probing
                .compare_exchange(false, true, AcqRel, Relaxed)
                .is_ok()
        {
            return Some(Admit::Probe);
        }
        self.rejected.fetch_add(1, Relaxed);
        None
    }

    #[inline]
    pub(crate) fn success(&self, admit: Admit) {
        if self.failures.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
        }
        if admit == Admit::Probe {
            self.open_until_ms.store(0, Release);
            self.probing.store(false, Release);
            match self.shard {
                None => tracing::info!("redis answers again: circuit breaker closed"),
                Some(shard) => tracing::info!(
                    shard,
                    "the cluster shard answers again: its circuit breaker closed"
                ),
            }
        }
    }

    pub(crate) fn failure(&self, admit: Admit) {
        match admit {
            Admit::Probe => {
                self.open(true);
                self.probing.store(false, Release);
            }
            Admit::Closed => {
                let failures = self.failures.fetch_add(1, AcqRel) + 1;
                if failures >= self.threshold && self.open_until_ms.load(Acquire) == 0 {
                    self.open(false);
                }
            }
        }
    }

    fn open(&self, reopen: bool) {
        self.open_until_ms
            .store(self.now_ms() + self.cooldown.as_millis() as u64, Release);
        if !reopen {
            self.opens.fetch_add(1, Relaxed);
            match self.shard {
                None => tracing::warn!(
                    failures = self.threshold,
                    cooldown = ?self.cooldown,
                    "redis keeps failing: circuit breaker open, calls skip the cache"
                ),
                Some(shard) => tracing::warn!(
                    shard,
                    failures = self.threshold,
                    cooldown = ?self.cooldown,
                    "a cluster shard keeps failing: its circuit breaker is open, calls for keys of its slots skip the cache"
                ),
            }
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open_until_ms.load(Acquire) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_probes_after_cooldown_and_closes() {
        let b = Breaker::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            let a = b.admit().unwrap();
            b.failure(a);
        }
        assert!(!b.is_open());
        let a = b.admit().unwrap();
        b.failure(a);
        assert!(b.is_open());
        assert!(b.admit().is_none());
        std::thread::sleep(Duration::from_millis(40));
        let probe = b.admit().unwrap();
        assert_eq!(probe, Admit::Probe);
        assert!(b.admit().is_none(), "one probe at a time");
        b.failure(probe);
        assert!(b.admit().is_none(), "a failed probe re-opens");
        std::thread::sleep(Duration::from_millis(40));
        let probe = b.admit().unwrap();
        b.success(probe);
        assert!(!b.is_open());
        assert_eq!(b.admit(), Some(Admit::Closed));
        assert_eq!(b.opens.load(Relaxed), 1);
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breaker::new(2, Duration::from_secs(1));
        let a = b.admit().unwrap();
        b.failure(a);
        let a = b.admit().unwrap();
        b.success(a);
        let a = b.admit().unwrap();
        b.failure(a);
        assert!(!b.is_open());
    }
}
