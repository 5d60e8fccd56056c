//! Refused and failed connections, summarized in the log: at most one line per worker per
//! [`ServerConfig::refusal_log_interval`](crate::server::ServerConfig::refusal_log_interval),
//! with the counts by reason, so that a storm of bad handshakes (10,000 a second) writes a
//! line a second per worker rather than one per connection; `/metrics` has the totals.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::proto::Timestamp;
use crate::server::counters::Counters;

/// The reasons counted, as the log names them (fields and text).
pub(super) const REASONS: [&str; 8] = [
    "http_error",
    "handshake_timeout",
    "worker_full",
    "tls_malformed",
    "tls_alert",
    "tls_incompatible",
    "tls_other",
    "protocol_error",
];

/// This worker's totals by reason, in the order of [`REASONS`].
fn totals(c: &Counters) -> [u64; REASONS.len()] {
    [
        c.handshake_errors.load(Relaxed),
        c.handshake_timeouts.load(Relaxed),
        c.refused.load(Relaxed),
        c.tls_handshake_failures_reason_malformed.load(Relaxed),
        c.tls_handshake_failures_reason_alert.load(Relaxed),
        c.tls_handshake_failures_reason_incompatible.load(Relaxed),
        c.tls_handshake_failures_reason_other.load(Relaxed),
        c.protocol_errors.load(Relaxed),
    ]
}

/// One worker's summary: the totals at the last line, and when the window ends.
#[derive(Debug)]
pub(super) struct RefusalLog {
    logged: [u64; REASONS.len()],
    /// The end of the current window (ms of the worker's clock).
    window_end: u64,
    /// The window's length in ms; 0: no summary.
    interval: u64,
}

impl RefusalLog {
    pub(super) fn new(interval: Duration) -> Self {
        let interval = interval.as_millis() as u64;
        RefusalLog {
            logged: [0; REASONS.len()],
            window_end: interval,
            interval,
        }
    }

    /// Called every loop iteration (cheap: one comparison until the window ends). Once the
    /// window has ended, returns (and logs) the counts by reason since the last line, if any
    /// is not zero.
    pub(super) fn check(
        &mut self,
        now: Timestamp,
        c: &Counters,
        worker: usize,
    ) -> Option<[u64; REASONS.len()]> {
        if self.interval == 0 || now.0 < self.window_end {
            return None;
        }
        let window = self.interval + (now.0 - self.window_end);
        self.window_end = now.0 + self.interval;
        let totals = totals(c);
        let mut counts = [0; REASONS.len()];
        for (i, n) in counts.iter_mut().enumerate() {
            *n = totals[i].saturating_sub(self.logged[i]);
        }
        self.logged = totals;
        if counts.iter().all(|&n| n == 0) {
            return None;
        }
        let listed: Vec<String> = REASONS
            .iter()
            .zip(counts)
            .filter(|&(_, n)| n > 0)
            .map(|(name, n)| format!("{name}={n}"))
            .collect();
        // The fields in the order of REASONS (tracing needs their names written out).
        tracing::info!(
            worker,
            window_ms = window,
            http_error = counts[0],
            handshake_timeout = counts[1],
            worker_full = counts[2],
            tls_malformed = counts[3],
            tls_alert = counts[4],
            tls_incompatible = counts[5],
            tls_other = counts[6],
            protocol_error = counts[7],
            "worker {worker}: {} connections refused or failed in the last {:.1} s: {} (totals in /metrics)",
            counts.iter().sum::<u64>(),
            window as f64 / 1000.0,
            listed.join(" ")
        );
        Some(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::counters::Counters;

    #[test]
    fn one_line_per_window_with_the_counts_since_the_last() {
        let c = Counters::default();
        let mut log = RefusalLog::new(Duration::from_secs(1));
        Counters::inc(&c.handshake_errors, 5000);
        Counters::inc(&c.tls_handshake_failures_reason_malformed, 7);
        // Within the window: nothing, however many.
        assert_eq!(log.check(Timestamp(999), &c, 0), None);
        let first = log.check(Timestamp(1000), &c, 0).expect("a line");
        assert_eq!(first, [5000, 0, 0, 7, 0, 0, 0, 0]);
        // The next window starts now: more refusals are told once it ends, and only those.
        Counters::inc(&c.handshake_errors, 3);
        Counters::inc(&c.refused, 1);
        assert_eq!(log.check(Timestamp(1999), &c, 0), None);
        assert_eq!(
            log.check(Timestamp(2000), &c, 0),
            Some([3, 0, 1, 0, 0, 0, 0, 0])
        );
        // A quiet window writes nothing.
        assert_eq!(log.check(Timestamp(3000), &c, 0), None);
        // Interval 0: never.
        let mut off = RefusalLog::new(Duration::ZERO);
        Counters::inc(&c.protocol_errors, 1);
        assert_eq!(off.check(Timestamp(10_000), &c, 0), None);
    }
}
