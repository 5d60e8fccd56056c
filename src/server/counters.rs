//! Per-worker counters: plain atomics written by their worker only (relaxed, no locks), summed
//! by whoever reads them (tests, `/metrics`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($(#[doc = $doc:literal] $name:ident: $kind:ident,)*) => {
        /// One worker's counters (and its latency histograms).
        #[derive(Debug, Default)]
        pub struct Counters {
            $(#[doc = $doc] pub $name: $kind,)*
            /// Latency histograms (exported after the counters).
            pub timings: super::histogram::Timings,
        }

        /// A snapshot of counters, summed over workers.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct Snapshot {
            $(#[doc = $doc] pub $name: i64,)*
        }

        impl Counters {
            /// Adds this worker's values to `into`.
            pub fn add_to(&self, into: &mut Snapshot) {
                $(into.$name += self.$name.load(Relaxed) as i64;)*
            }
        }

        impl Snapshot {
            /// Every field: its name, whether it is a gauge (a level that goes up and down)
            /// rather than a counter (a total that only grows), its description and value.
            pub fn fields(&self) -> Vec<(&'static str, bool, &'static str, i64)> {
                vec![$((
                    stringify!($name),
                    is_gauge(stringify!($kind)),
                    $doc.trim(),
                    self.$name,
                ),)*]
            }
        }
    };
}

/// Gauges are the signed fields (they go down as well as up).
fn is_gauge(kind: &str) -> bool {
    kind == "AtomicI64"
}

counters! {
    /// Connections accepted.
    accepted: AtomicU64,
    /// Connections refused at accept (worker full).
    refused: AtomicU64,
    /// Connection slots in use (any phase: handshake, open, closing; minus `open`: handshaking or closing).
    connections: AtomicI64,
    /// Connections upgraded to WebSocket.
    upgraded: AtomicU64,
    /// WebSocket connections open now.
    open: AtomicI64,
    /// Handshakes answered with an HTTP error.
    handshake_errors: AtomicU64,
    /// Plain HTTP requests served.
    http_requests: AtomicU64,
    /// Messages received.
    messages_in: AtomicU64,
    /// Messages and frames queued to send by handlers.
    messages_out: AtomicU64,
    /// Compressed messages received (permessage-deflate), inflated.
    compressed_in: AtomicU64,
    /// Frames sent compressed (permessage-deflate); a fan-out counts once per subscriber.
    compressed_out: AtomicU64,
    /// Connections holding compression contexts of their own (permessage-deflate, dedicated mode).
    deflate_contexts: AtomicI64,
    /// Messages dropped by the backpressure policy (a full queue).
    dropped: AtomicU64,
    /// Pongs and text-heartbeat answers dropped for a peer whose queue is full (a ping flood).
    answers_dropped: AtomicU64,
    /// Publications to topics (each counted once, by the worker it was published on).
    published: AtomicU64,
    /// Publications queued to subscribers (fan-out deliveries, every worker).
    delivered: AtomicU64,
    /// Requests handled by a topic's home worker (`Conn::to_home`).
    home_requests: AtomicU64,
    /// Joins through a topic's home whose preamble did not fit the connection's queue (its fallback was sent instead: for the chat, a recovery answered `recovered:false`).
    home_fallbacks: AtomicU64,
    /// Topics with subscribers on a worker, summed over workers.
    topics: AtomicI64,
    /// Times a connection's reading stopped for flow control (queue at its high-water mark).
    read_pauses: AtomicU64,
    /// Connections whose reading is stopped by flow control now.
    reading_paused: AtomicI64,
    /// Bytes received after reading paused (before the pause took effect), held until reading resumes.
    input_held: AtomicI64,
    /// Bytes queued to send now, over all connections.
    bytes_queued: AtomicI64,
    /// Bytes sent.
    bytes_sent: AtomicU64,
    /// Bytes received (handshakes and frames).
    bytes_received: AtomicU64,
    /// Connections failed for a peer protocol error.
    protocol_errors: AtomicU64,
    /// Connections that ended with a complete close handshake.
    closed_clean: AtomicU64,
    /// Connections that ended otherwise (EOF, reset, timeout, error).
    closed_abnormal: AtomicU64,
    /// Receive buffers lent out of the ring now.
    buffers_lent: AtomicI64,
    /// Times a receive found the buffer ring empty.
    recv_starved: AtomicU64,
    /// Receives that named a buffer already lent out (the kernel and the buffer accounting disagree): the connection was failed and the buffer withheld. Should stay 0.
    ring_faults: AtomicU64,
    /// Workers running on io_uring (the others run on epoll).
    io_uring_workers: AtomicI64,
    /// Connection timers armed in the wheel now (one per connection at most).
    timers: AtomicI64,
    /// Timers handlers set (`Conn::set_timer`) pending now.
    handler_timers: AtomicI64,
    /// Timers handlers set that were refused: the worker held `max_handler_timers` already.
    handler_timers_refused: AtomicU64,
    /// Heartbeat pings sent.
    pings_sent: AtomicU64,
    /// Pongs received (answers to our pings, or unsolicited).
    pongs_received: AtomicU64,
    /// Text heartbeats answered by the server.
    text_heartbeats: AtomicU64,
    /// Connections closed for not finishing the upgrade in time.
    handshake_timeouts: AtomicU64,
    /// Connections closed for not answering a heartbeat ping in time.
    pong_timeouts: AtomicU64,
    /// Connections closed for sending no message within the idle timeout.
    idle_timeouts: AtomicU64,
    /// Connections closed for not replying to our close frame in time.
    close_timeouts: AtomicU64,
    /// TLS handshakes completed.
    tls_handshakes: AtomicU64,
    /// TLS sessions that failed during the handshake, by reason: malformed (not TLS: plaintext HTTP, garbage, an oversized record), alert (the client sent one), incompatible (no version, cipher or ALPN protocol in common), other.
    tls_handshake_failures_reason_malformed: AtomicU64,
    /// (see tls_handshake_failures)
    tls_handshake_failures_reason_alert: AtomicU64,
    /// (see tls_handshake_failures)
    tls_handshake_failures_reason_incompatible: AtomicU64,
    /// (see tls_handshake_failures)
    tls_handshake_failures_reason_other: AtomicU64,
    /// TLS sessions that failed after the handshake, by reason: bad_record (a record that does not decrypt), alert (the client sent one mid-stream), malformed, other.
    tls_failures_reason_bad_record: AtomicU64,
    /// (see tls_failures)
    tls_failures_reason_alert: AtomicU64,
    /// (see tls_failures)
    tls_failures_reason_malformed: AtomicU64,
    /// (see tls_failures)
    tls_failures_reason_other: AtomicU64,
}

impl Counters {
    /// Adds `n` to a counter.
    pub(crate) fn inc(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    /// Adds `n` (maybe negative) to a gauge.
    pub(crate) fn add(c: &AtomicI64, n: i64) {
        c.fetch_add(n, Relaxed);
    }

    /// Sets a gauge.
    pub(crate) fn set(c: &AtomicI64, n: i64) {
        c.store(n, Relaxed);
    }
}

/// Every worker's counters, for export (`/metrics`). Cheap to clone, `Send` and `Sync`.
#[derive(Clone)]
pub struct Metrics {
    pub(crate) workers: std::sync::Arc<Vec<std::sync::Arc<Counters>>>,
    /// The relay to other servers, when one is attached (it writes its own metrics).
    pub(crate) relay: Option<std::sync::Arc<dyn super::Relay>>,
}

impl Metrics {
    /// Every worker's counters, summed.
    pub fn snapshot(&self) -> Snapshot {
        let mut sum = Snapshot::default();
        for c in self.workers.iter() {
            c.add_to(&mut sum);
        }
        sum
    }

    /// Whether the server's relay (if any) can carry publications now: `None` without a relay.
    pub fn relay_ready(&self) -> Option<bool> {
        self.relay.as_ref().map(|r| r.ready())
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("workers", &self.workers.len())
            .field("relay", &self.relay.is_some())
            .finish()
    }
}

/// Writes a metric's `# HELP` and `# TYPE` lines; returns its name: `ringws_NAME`, with the
/// `_total` suffix for a counter. (For relays and applications that add their own metrics to
/// the same page.)
pub fn prometheus_head(out: &mut String, name: &str, gauge: bool, help: &str) -> String {
    use std::fmt::Write;
    let (metric, kind) = if gauge {
        (format!("ringws_{name}"), "gauge")
    } else {
        (format!("ringws_{name}_total"), "counter")
    };
    let _ = writeln!(out, "# HELP {metric} {help}");
    let _ = writeln!(out, "# TYPE {metric} {kind}");
    metric
}

impl Snapshot {
    /// TLS sessions that failed during the handshake, every reason.
    pub fn tls_handshake_failures(&self) -> i64 {
        self.tls_handshake_failures_reason_malformed
            + self.tls_handshake_failures_reason_alert
            + self.tls_handshake_failures_reason_incompatible
            + self.tls_handshake_failures_reason_other
    }

    /// TLS sessions that failed after the handshake, every reason.
    pub fn tls_failures(&self) -> i64 {
        self.tls_failures_reason_bad_record
            + self.tls_failures_reason_alert
            + self.tls_failures_reason_malformed
            + self.tls_failures_reason_other
    }
}

impl Metrics {
    /// A snapshot of each worker's counters, in worker order.
    pub fn per_worker(&self) -> Vec<Snapshot> {
        self.workers
            .iter()
            .map(|c| {
                let mut s = Snapshot::default();
                c.add_to(&mut s);
                s
            })
            .collect()
    }

    /// The counters in the Prometheus text format: `ringws_NAME{worker="i"} VALUE`, with
    /// `# HELP` and `# TYPE` lines (counters get the `_total` suffix); then the broker bridge's
    /// (`ringws_broker_*{node="..."}`) when one is attached.
    pub fn prometheus(&self) -> String {
        let mut out = self.workers_prometheus();
        self.timings_prometheus(&mut out);
        if let Some(relay) = &self.relay {
            relay.write_metrics(&mut out);
        }
        out
    }

    /// `ringws_build_info` and the workers' latency histograms.
    fn timings_prometheus(&self, out: &mut String) {
        use super::histogram::{HistogramSnapshot, Timings, write_prometheus};
        use std::fmt::Write;
        let uring = self.snapshot().io_uring_workers > 0;
        let _ = writeln!(
            out,
            "# HELP ringws_build_info The server's version, the commit it was built from and the I/O backend running (value 1).\n\
             # TYPE ringws_build_info gauge\n\
             ringws_build_info{{version=\"{}\",commit=\"{}\",backend=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            env!("RINGWS_COMMIT"),
            if uring { "io_uring" } else { "epoll" }
        );
        if let Ok(limit) = crate::runtime::sys::nofile_limit() {
            let _ = writeln!(
                out,
                "# HELP ringws_open_files_limit The process's RLIMIT_NOFILE (soft): one descriptor per connection, so about this many connections at most.\n\
                 # TYPE ringws_open_files_limit gauge\n\
                 ringws_open_files_limit {}",
                limit.0.map_or("+Inf".to_owned(), |n| n.to_string())
            );
        }
        let shape = Timings::default();
        type Pick = fn(&Timings) -> &super::histogram::Histogram;
        let families: [(&str, &str, Pick); 3] = [
            (
                "loop_busy_seconds",
                "How long each worker loop iteration worked, from its wake-up to its next wait (completions, timers, sends).",
                |t| &t.loop_busy,
            ),
            (
                "handshake_duration_seconds",
                "From accept to the upgrade answered (the TLS handshake included), at the worker clock's 1 ms resolution.",
                |t| &t.handshake,
            ),
            (
                "fanout_delay_seconds",
                "From a publication to its sends submitted on the worker that delivers it (a fan-out's delay, queueing behind other work and the wake-up of other workers included); sampled, at most one per worker per 10 ms.",
                |t| &t.fanout,
            ),
        ];
        for (name, help, pick) in families {
            let series: Vec<(String, HistogramSnapshot)> = self
                .workers
                .iter()
                .enumerate()
                .map(|(w, c)| {
                    let mut s = HistogramSnapshot::default();
                    pick(&c.timings).add_to(&mut s);
                    (format!("worker=\"{w}\""), s)
                })
                .collect();
            write_prometheus(out, name, help, pick(&shape), &series);
        }
    }

    fn workers_prometheus(&self) -> String {
        use std::fmt::Write;
        let workers = self.per_worker();
        let mut out = String::new();
        let Some(first) = workers.first() else {
            return out;
        };
        // `family_reason_R` fields are one family with a `reason` label, its help the first's.
        let mut family = "";
        let mut metric = String::new();
        for (i, (name, gauge, help, _)) in first.fields().into_iter().enumerate() {
            let (base, reason) = match name.split_once("_reason_") {
                Some((base, reason)) => (base, Some(reason)),
                None => (name, None),
            };
            if reason.is_none() || base != family {
                metric = prometheus_head(&mut out, base, gauge, help);
                family = base;
            }
            let label = reason.map_or(String::new(), |r| format!(",reason=\"{r}\""));
            for (w, snapshot) in workers.iter().enumerate() {
                let value = snapshot.fields()[i].3;
                let _ = writeln!(out, "{metric}{{worker=\"{w}\"{label}}} {value}");
            }
            // The same value under its name with the unit last, as Prometheus' conventions
            // want; the first name stays for the dashboards and alerts that use it.
            if let Some((_, unit_name)) = UNIT_NAMES.iter().find(|(n, _)| *n == name) {
                let help = format!("{help} (Also `{metric}`: the same value.)");
                let unit_metric = prometheus_head(&mut out, unit_name, gauge, &help);
                for (w, snapshot) in workers.iter().enumerate() {
                    let value = snapshot.fields()[i].3;
                    let _ = writeln!(out, "{unit_metric}{{worker=\"{w}\"}} {value}");
                }
            }
        }
        out
    }
}

/// Counters whose unit is not the last word of their name, and the name that has it
/// (`ringws_sent_bytes_total` beside `ringws_bytes_sent_total`). Added, never renamed: both
/// are exported.
const UNIT_NAMES: [(&str, &str); 4] = [
    ("input_held", "input_held_bytes"),
    ("bytes_queued", "queued_bytes"),
    ("bytes_sent", "sent_bytes"),
    ("bytes_received", "received_bytes"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn byte_counters_are_also_named_with_the_unit_last() {
        let a = Arc::new(Counters::default());
        Counters::inc(&a.bytes_sent, 1234);
        Counters::add(&a.bytes_queued, 56);
        let m = Metrics {
            workers: Arc::new(vec![a]),
            relay: None,
        };
        let text = m.prometheus();
        for (old, new) in [
            ("ringws_bytes_sent_total", "ringws_sent_bytes_total"),
            ("ringws_bytes_queued", "ringws_queued_bytes"),
        ] {
            let value = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}{{worker=\"0\"}} ")))
                    .unwrap_or_else(|| panic!("no {name}: {text}"))
                    .to_owned()
            };
            assert_eq!(value(old), value(new), "{text}");
        }
        assert!(
            text.contains("# TYPE ringws_sent_bytes_total counter"),
            "{text}"
        );
        assert!(text.contains("# TYPE ringws_queued_bytes gauge"), "{text}");
        assert!(
            text.contains("ringws_sent_bytes_total{worker=\"0\"} 1234"),
            "{text}"
        );
        for (field, unit_name) in UNIT_NAMES {
            assert!(
                Snapshot::default().fields().iter().any(|f| f.0 == field),
                "{field} is not a counter"
            );
            assert!(
                text.contains(&format!("# TYPE ringws_{unit_name}")),
                "{unit_name}"
            );
        }
    }

    #[test]
    fn prometheus_lists_every_counter_per_worker() {
        let a = Arc::new(Counters::default());
        let b = Arc::new(Counters::default());
        Counters::inc(&a.accepted, 3);
        b.timings.handshake.record(3_000_000);
        Counters::add(&b.open, 2);
        let m = Metrics {
            workers: Arc::new(vec![a, b]),
            relay: None,
        };
        let text = m.prometheus();
        assert!(
            text.contains("# TYPE ringws_accepted_total counter"),
            "{text}"
        );
        assert!(
            text.contains("ringws_accepted_total{worker=\"0\"} 3"),
            "{text}"
        );
        assert!(text.contains("# TYPE ringws_open gauge"), "{text}");
        assert!(text.contains("ringws_open{worker=\"1\"} 2"), "{text}");
        assert!(
            text.contains("# HELP ringws_dropped_total Messages dropped"),
            "{text}"
        );
        let fields = Snapshot::default().fields().len();
        // One family per field, but the `family_reason_R` ones share theirs.
        let families: std::collections::HashSet<&str> = Snapshot::default()
            .fields()
            .iter()
            .map(|f| f.0.split("_reason_").next().unwrap())
            .collect();
        // The byte counters' second names, build_info, the open files limit and the three
        // histograms.
        assert_eq!(
            text.lines().filter(|l| l.starts_with("# TYPE")).count(),
            families.len() + UNIT_NAMES.len() + 5
        );
        let limit = crate::runtime::sys::nofile_limit().unwrap().0;
        assert!(
            text.contains(&format!(
                "\nringws_open_files_limit {}\n",
                limit.map_or("+Inf".to_owned(), |n| n.to_string())
            )),
            "{text}"
        );
        assert!(
            text.contains("# TYPE ringws_build_info gauge\nringws_build_info{version=\""),
            "{text}"
        );
        assert!(text.contains("backend=\"epoll\"} 1"), "{text}");
        for h in [
            "loop_busy_seconds",
            "handshake_duration_seconds",
            "fanout_delay_seconds",
        ] {
            assert!(
                text.contains(&format!("# TYPE ringws_{h} histogram")),
                "{text}"
            );
        }
        // 3 ms: above the 2 ms bound, at or below 4 ms.
        for (le, n) in [("0.002", 0), ("0.004", 1), ("+Inf", 1)] {
            let line =
                format!("ringws_handshake_duration_seconds_bucket{{worker=\"1\",le=\"{le}\"}} {n}");
            assert!(text.contains(&line), "{line}: {text}");
        }
        assert!(text.contains("ringws_handshake_duration_seconds_count{worker=\"1\"} 1"));
        assert!(text.contains("ringws_handshake_duration_seconds_count{worker=\"0\"} 0"));
        assert!(
            text.contains(
                "ringws_tls_handshake_failures_total{worker=\"0\",reason=\"malformed\"} 0"
            ),
            "{text}"
        );
        let counter_lines = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| !l.contains("_seconds_") && !l.starts_with("ringws_build_info"))
            .filter(|l| !l.starts_with("ringws_open_files_limit"))
            .count();
        // Each field once per worker, and the byte counters a second time under their
        // unit-last names.
        assert_eq!(counter_lines, 2 * (fields + UNIT_NAMES.len()));
    }
}
