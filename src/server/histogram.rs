//! Latency histograms a worker writes and `/metrics` reads: fixed buckets whose bounds double
//! from a base (`base, 2·base, 4·base, ...`, then `+Inf`), one counter per bucket and a sum,
//! plain atomics written by their worker only (a load and a store: no locked instruction on
//! the hot path), exported in the Prometheus text format (`_bucket{le=...}` cumulative,
//! `_sum` and `_count`, in seconds).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One histogram: the bounds, the counts by bucket, the sum.
#[derive(Debug)]
pub struct Histogram {
    /// The first bucket's upper bound, in nanoseconds.
    base_ns: u64,
    /// `counts[i]`: values above `bound(i - 1)` and at most `bound(i)`; the last: above every
    /// bound (`+Inf`).
    counts: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

/// A histogram's counts at one moment (or summed over workers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// By bucket, not cumulative; the last is `+Inf`'s.
    pub counts: Vec<u64>,
    /// The sum of the values, in nanoseconds.
    pub sum_ns: u64,
}

impl Histogram {
    /// `finite` buckets from `base_ns` (the bounds `base_ns << i` for `i < finite`), and `+Inf`.
    pub fn new(base_ns: u64, finite: usize) -> Self {
        Histogram {
            base_ns: base_ns.max(1),
            counts: (0..=finite).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// The upper bound of bucket `i` in nanoseconds (`None`: `+Inf`).
    pub fn bound_ns(&self, i: usize) -> Option<u64> {
        (i + 1 < self.counts.len()).then(|| self.base_ns << i)
    }

    /// Records one value. For the worker that owns the histogram only (others read).
    pub fn record(&self, ns: u64) {
        // The least i with ns <= base << i: ceil(log2(ceil(ns / base))).
        let q = ns.div_ceil(self.base_ns).max(1);
        let i = ((64 - (q - 1).leading_zeros()) as usize).min(self.counts.len() - 1);
        let bump = |c: &AtomicU64, n: u64| c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
        bump(&self.counts[i], 1);
        bump(&self.sum_ns, ns);
    }

    /// Adds this histogram's counts to `into` (sized on first use).
    pub fn add_to(&self, into: &mut HistogramSnapshot) {
        into.counts.resize(self.counts.len(), 0);
        for (sum, c) in into.counts.iter_mut().zip(self.counts.iter()) {
            *sum += c.load(Relaxed);
        }
        into.sum_ns += self.sum_ns.load(Relaxed);
    }
}

/// Writes a histogram family: `# HELP`, `# TYPE`, then for each `(labels, snapshot)` its
/// cumulative buckets, sum and count. `name` without the `ringws_` prefix, with its unit
/// (`_seconds`); `labels` like `worker="0"`.
pub fn write_prometheus(
    out: &mut String,
    name: &str,
    help: &str,
    shape: &Histogram,
    series: &[(String, HistogramSnapshot)],
) {
    use std::fmt::Write;
    let metric = format!("ringws_{name}");
    let _ = writeln!(out, "# HELP {metric} {help}");
    let _ = writeln!(out, "# TYPE {metric} histogram");
    for (labels, snap) in series {
        let mut cumulative = 0;
        for (i, n) in snap.counts.iter().enumerate() {
            cumulative += n;
            let le = shape
                .bound_ns(i)
                .map_or("+Inf".to_owned(), |ns| format!("{}", ns as f64 / 1e9));
            let _ = writeln!(out, "{metric}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{metric}_sum{{{labels}}} {}", snap.sum_ns as f64 / 1e9);
        let _ = writeln!(out, "{metric}_count{{{labels}}} {cumulative}");
    }
}

/// A worker's histograms.
#[derive(Debug)]
pub struct Timings {
    /// How long a loop iteration worked (from the wake-up to the next wait: completions,
    /// timers, flushes), from 1 µs to ~1 s.
    pub loop_busy: Histogram,
    /// From accept to the upgrade's answer queued (TLS handshake included), at the worker's
    /// clock resolution (1 ms), from 1 ms to ~8 s.
    pub handshake: Histogram,
    /// From a sampled publication to the end of the iteration that queued it for a
    /// connection and submitted the sends (at most one sample per worker per 10 ms), from 1 µs
    /// to ~8 s.
    pub fanout: Histogram,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            loop_busy: Histogram::new(1_000, 21),
            handshake: Histogram::new(1_000_000, 14),
            fanout: Histogram::new(1_000, 24),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_bucket_of_the_least_bound_at_or_above_them() {
        let h = Histogram::new(1_000, 3); // bounds 1, 2, 4 µs, then +Inf
        for ns in [0, 1_000, 1_001, 2_000, 2_001, 4_000, 4_001, 1_000_000_000] {
            h.record(ns);
        }
        let mut s = HistogramSnapshot::default();
        h.add_to(&mut s);
        assert_eq!(s.counts, vec![2, 2, 2, 2]);
        assert_eq!(
            s.sum_ns,
            1_000_000_000 + 1_000 + 1_001 + 2_000 + 2_001 + 4_000 + 4_001
        );
        assert_eq!(h.bound_ns(2), Some(4_000));
        assert_eq!(h.bound_ns(3), None);
    }

    #[test]
    fn the_text_format_is_cumulative_with_sum_and_count_in_seconds() {
        let h = Histogram::new(1_000_000, 2); // 1 ms, 2 ms, +Inf
        h.record(500_000);
        h.record(1_500_000);
        h.record(3_000_000);
        let mut s = HistogramSnapshot::default();
        h.add_to(&mut s);
        let mut out = String::new();
        write_prometheus(
            &mut out,
            "x_seconds",
            "X.",
            &h,
            &[("worker=\"0\"".into(), s)],
        );
        let expected = "# HELP ringws_x_seconds X.\n# TYPE ringws_x_seconds histogram\n\
            ringws_x_seconds_bucket{worker=\"0\",le=\"0.001\"} 1\n\
            ringws_x_seconds_bucket{worker=\"0\",le=\"0.002\"} 2\n\
            ringws_x_seconds_bucket{worker=\"0\",le=\"+Inf\"} 3\n\
            ringws_x_seconds_sum{worker=\"0\"} 0.005\n\
            ringws_x_seconds_count{worker=\"0\"} 3\n";
        assert_eq!(out, expected);
    }
}
