//! Per-worker counters: plain atomics written by their worker only (relaxed, no locks), summed
//! by whoever reads them (tests, `/metrics`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($(#[doc = $doc:literal] $name:ident: $kind:ident,)*) => {
        /// One worker's counters.
        #[derive(Debug, Default)]
        pub struct Counters {
            $(#[doc = $doc] pub $name: $kind,)*
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
        if let Some(relay) = &self.relay {
            relay.write_metrics(&mut out);
        }
        out
    }

    fn workers_prometheus(&self) -> String {
        use std::fmt::Write;
        let workers = self.per_worker();
        let mut out = String::new();
        let Some(first) = workers.first() else {
            return out;
        };
        for (i, (name, gauge, help, _)) in first.fields().into_iter().enumerate() {
            let metric = prometheus_head(&mut out, name, gauge, help);
            for (w, snapshot) in workers.iter().enumerate() {
                let value = snapshot.fields()[i].3;
                let _ = writeln!(out, "{metric}{{worker=\"{w}\"}} {value}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn prometheus_lists_every_counter_per_worker() {
        let a = Arc::new(Counters::default());
        let b = Arc::new(Counters::default());
        Counters::inc(&a.accepted, 3);
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
        assert_eq!(
            text.lines().filter(|l| l.starts_with("# TYPE")).count(),
            fields
        );
        assert_eq!(
            text.lines().filter(|l| !l.starts_with('#')).count(),
            2 * fields
        );
    }
}
