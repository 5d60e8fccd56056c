//! What a run counts: messages, round-trip latency, heartbeat ping lateness, and every kind of
//! error; and the spread (median, min, max) of a figure over repeated runs.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Errors, by kind. None is ever ignored: any of them fails the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    /// TCP connections that could not be established (refused, reset, timed out).
    pub connect: u64,
    /// Upgrades the server refused or answered wrongly.
    pub handshake: u64,
    /// Echoes that differ from what was sent (opcode, length or bytes), or arrived unasked.
    pub mismatch: u64,
    /// Connections the server closed (close frame or EOF) before the end of the run.
    pub closed: u64,
    /// Protocol errors in the server's frames (the client closed the connection).
    pub protocol: u64,
    /// Socket errors on established connections.
    pub io: u64,
}

impl ErrorCounts {
    /// All errors.
    pub fn total(&self) -> u64 {
        self.connect + self.handshake + self.mismatch + self.closed + self.protocol + self.io
    }
}

/// Round-trip latencies, recorded in nanoseconds.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    /// Recorded values.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// Empty, 1 ns to 60 s with 3 significant digits.
    pub fn new() -> Self {
        let hist = Histogram::new_with_bounds(1, 60_000_000_000, 3)
            .unwrap_or_else(|_| Histogram::new(3).expect("3 significant digits are valid"));
        Self { hist }
    }

    /// Records one round trip of `ns` nanoseconds (clamped into the histogram's range).
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns.max(1));
    }

    /// Forgets everything recorded (the end of the warm-up).
    pub fn reset(&mut self) {
        self.hist.reset();
    }

    /// The percentiles of what was recorded since `earlier` (a copy of this one taken then).
    pub fn since(&self, earlier: &Latency) -> LatencySummary {
        let mut part = self.clone();
        match part.hist.subtract(&earlier.hist) {
            Ok(()) => part.summary(),
            // `earlier` is not an earlier copy (a reset in between): the whole instead.
            Err(_) => self.summary(),
        }
    }

    /// The percentiles, in microseconds; all zero if nothing was recorded.
    pub fn summary(&self) -> LatencySummary {
        if self.hist.is_empty() {
            return LatencySummary::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencySummary {
            count: self.hist.len(),
            mean: self.hist.mean() / 1000.0,
            p50: us(self.hist.value_at_quantile(0.5)),
            p90: us(self.hist.value_at_quantile(0.9)),
            p99: us(self.hist.value_at_quantile(0.99)),
            p999: us(self.hist.value_at_quantile(0.999)),
            max: us(self.hist.max()),
        }
    }
}

/// How late the server's heartbeat pings come: per ping, the time since the connection last
/// sent anything (when the server's `last_seen` was set) minus the configured ping interval.
///
/// Lateness can be negative (the server's clock counts in ticks, so a ping may come up to one
/// tick before `last_seen + interval` measured on the client's clock), so the values are kept
/// exactly, in microseconds, and sorted when summarized: 4 bytes per ping.
#[derive(Debug, Clone, Default)]
pub struct Lateness {
    /// The configured ping interval the intervals are compared with.
    interval: Duration,
    /// Lateness of each ping, µs (saturated to the `i32` range, ±35 minutes).
    samples_us: Vec<i32>,
}

/// Ping lateness percentiles, in milliseconds (negative: early).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatenessSummary {
    /// Pings recorded.
    pub count: u64,
    /// Earliest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Latest.
    pub max: f64,
}

impl Lateness {
    /// Empty, for pings expected every `interval` of silence.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            samples_us: Vec::new(),
        }
    }

    /// Records a ping that came `since_sent` after the connection last sent anything.
    pub fn record(&mut self, since_sent: Duration) {
        self.samples_us.push(lateness_us(since_sent, self.interval));
    }

    /// Forgets everything recorded.
    pub fn reset(&mut self) {
        self.samples_us.clear();
    }

    /// The percentiles (nearest rank), in milliseconds; all zero if nothing was recorded.
    pub fn summary(&self) -> LatenessSummary {
        let mut v = self.samples_us.clone();
        if v.is_empty() {
            return LatenessSummary::default();
        }
        v.sort_unstable();
        let ms = |us: i32| f64::from(us) / 1000.0;
        let sum: i64 = v.iter().map(|&x| i64::from(x)).sum();
        LatenessSummary {
            count: v.len() as u64,
            min: ms(v[0]),
            mean: sum as f64 / v.len() as f64 / 1000.0,
            p50: ms(nearest_rank(&v, 0.5)),
            p90: ms(nearest_rank(&v, 0.9)),
            p99: ms(nearest_rank(&v, 0.99)),
            max: ms(v[v.len() - 1]),
        }
    }

    /// Counts per whole millisecond of lateness (rounded down, so -0.3 ms is in bucket -1), in
    /// ascending order: lets a script merge the pings of several load processes.
    pub fn histogram_ms(&self) -> Vec<(i64, u64)> {
        let mut v = self.samples_us.clone();
        v.sort_unstable();
        let mut out: Vec<(i64, u64)> = Vec::new();
        for us in v {
            let bucket = i64::from(us).div_euclid(1000);
            match out.last_mut() {
                Some((b, n)) if *b == bucket => *n += 1,
                _ => out.push((bucket, 1)),
            }
        }
        out
    }
}

/// `since_sent − interval` in microseconds, saturated to the `i32` range.
pub fn lateness_us(since_sent: Duration, interval: Duration) -> i32 {
    let us = |d: Duration| i128::try_from(d.as_micros()).unwrap_or(i128::MAX);
    let diff = us(since_sent) - us(interval);
    diff.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32
}

/// The value at quantile `q` of sorted, non-empty `v`: the smallest value with at least `q` of
/// the values at or below it.
fn nearest_rank(v: &[i32], q: f64) -> i32 {
    let rank = (q * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Median, smallest and largest of a figure over repeated runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The median (the mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`, `None` if there are none (NaNs are left out).
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut l = Latency::new();
        // 1..=1000 µs, once each.
        for us in 1..=1000u64 {
            l.record(us * 1000);
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.001 + 0.001;
        assert!(close(s.p50, 500.0), "{s:?}");
        assert!(close(s.p90, 900.0), "{s:?}");
        assert!(close(s.p99, 990.0), "{s:?}");
        assert!(close(s.p999, 999.0), "{s:?}");
        assert!(close(s.max, 1000.0), "{s:?}");
        assert!(close(s.mean, 500.5), "{s:?}");
    }

    #[test]
    fn reset_and_empty() {
        let mut l = Latency::new();
        assert_eq!(l.summary(), LatencySummary::default());
        l.record(0);
        l.record(u64::MAX);
        assert_eq!(l.summary().count, 2);
        l.reset();
        assert_eq!(l.summary().count, 0);
    }

    #[test]
    fn spreads() {
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(
            Spread::of(&[3.0, 1.0, 2.0]),
            Some(Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0
            })
        );
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 10.0]).unwrap().median, 3.0);
        assert_eq!(Spread::of(&[f64::NAN, 5.0]).unwrap().median, 5.0);
    }

    #[test]
    fn lateness_is_signed_and_saturates() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(lateness_us(s(5) + ms(30), s(5)), 30_000);
        assert_eq!(lateness_us(s(5) - ms(70), s(5)), -70_000);
        assert_eq!(lateness_us(s(5), s(5)), 0);
        assert_eq!(lateness_us(s(1 << 40), s(5)), i32::MAX);
        assert_eq!(lateness_us(Duration::ZERO, s(1 << 40)), i32::MIN);
    }

    #[test]
    fn lateness_percentiles() {
        let mut l = Lateness::new(Duration::from_secs(5));
        assert_eq!(l.summary(), LatenessSummary::default());
        // Lateness -49 ..= +50 ms, once each: 100 pings.
        for late in -49i64..=50 {
            let d = Duration::from_millis((5000 + late) as u64);
            l.record(d);
        }
        let s = l.summary();
        assert_eq!(s.count, 100);
        assert_eq!(s.min, -49.0);
        assert_eq!(s.p50, 0.0); // the 50th of 100 values
        assert_eq!(s.p90, 40.0);
        assert_eq!(s.p99, 49.0);
        assert_eq!(s.max, 50.0);
        assert!((s.mean - 0.5).abs() < 1e-9, "{s:?}");
        l.reset();
        assert_eq!(l.summary().count, 0);
    }

    #[test]
    fn lateness_single_and_submillisecond() {
        let mut l = Lateness::new(Duration::from_millis(100));
        l.record(Duration::from_micros(100_250));
        let s = l.summary();
        assert_eq!(
            (s.count, s.p50, s.p99, s.max, s.min),
            (1, 0.25, 0.25, 0.25, 0.25)
        );
    }

    #[test]
    fn lateness_histogram_buckets_round_down() {
        let mut l = Lateness::new(Duration::from_secs(1));
        for us in [1_000_300, 999_700, 999_000, 1_000_000, 1_002_999, 1_000_999] {
            l.record(Duration::from_micros(us));
        }
        // -300 µs and -1000 µs fall in bucket -1; 0, 300 and 999 µs in 0; 2999 µs in 2.
        assert_eq!(l.histogram_ms(), vec![(-1, 2), (0, 3), (2, 1)]);
        assert!(Lateness::default().histogram_ms().is_empty());
    }

    #[test]
    fn error_total() {
        let e = ErrorCounts {
            connect: 1,
            handshake: 2,
            mismatch: 3,
            closed: 4,
            protocol: 5,
            io: 6,
        };
        assert_eq!(e.total(), 21);
    }
}
