//! Small timing statistics: percentiles from sorted samples, and medians with min–max across
//! rounds.

/// The distribution of one round's samples (nanoseconds).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Dist {
    pub(crate) n: usize,
    pub(crate) mean: f64,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

pub(crate) fn dist(samples: &mut [u64]) -> Dist {
    samples.sort_unstable();
    let total: u128 = samples.iter().map(|&s| u128::from(s)).sum();
    let n = samples.len();
    Dist {
        n,
        mean: if n == 0 {
            f64::NAN
        } else {
            total as f64 / n as f64
        },
        p50: percentile(samples, 50.0),
        p99: percentile(samples, 99.0),
        max: samples.last().map_or(f64::NAN, |&m| m as f64),
    }
}

/// A statistic across rounds: median, min and max.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Agg {
    pub(crate) med: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) rounds: usize,
}

pub(crate) fn agg(values: impl IntoIterator<Item = f64>) -> Agg {
    let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return Agg {
            med: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
            rounds: 0,
        };
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Agg {
        med,
        min: v[0],
        max: v[n - 1],
        rounds: n,
    }
}

/// A duration in nanoseconds, human-readable.
pub(crate) fn fmt_ns(ns: f64) -> String {
    if ns.is_nan() {
        "–".to_owned()
    } else if ns.abs() < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns.abs() < 1_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns.abs() < 1_000_000_000.0 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

impl Agg {
    /// `median (min–max)` with `f` formatting each number; only the median for one round.
    pub(crate) fn show(&self, f: impl Fn(f64) -> String) -> String {
        if self.rounds == 0 {
            "–".to_owned()
        } else if self.rounds == 1 || self.min == self.max {
            f(self.med)
        } else {
            format!("{} ({}–{})", f(self.med), f(self.min), f(self.max))
        }
    }

    pub(crate) fn ns(&self) -> String {
        self.show(fmt_ns)
    }

    pub(crate) fn ratio(&self) -> String {
        self.show(|x| format!("{x:.2}×"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_medians() {
        let mut s: Vec<u64> = (1..=100).rev().collect();
        let d = dist(&mut s);
        assert_eq!(d.p50, 50.0);
        assert_eq!(d.p99, 99.0);
        assert_eq!(d.max, 100.0);
        assert_eq!(d.mean, 50.5);
        let a = agg([3.0, 1.0, 2.0, f64::NAN]);
        assert_eq!((a.med, a.min, a.max, a.rounds), (2.0, 1.0, 3.0, 3));
        assert_eq!(agg([1.0, 2.0]).med, 1.5);
    }
}
