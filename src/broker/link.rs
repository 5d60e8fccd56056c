//! What the workers (and [`Publisher`](crate::server::Publisher)s) share with the bridge thread:
//! publications waiting to cross, changes of interest, whether the broker is reachable, and the
//! counters `/metrics` shows.
//!
//! A worker touches it once per loop iteration at most (one lock for the iteration's batch), and
//! never waits on the broker: when the broker is unreachable its publications are counted as
//! dropped on the spot.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use crate::server::{Frame, LogRequest, Topic};

/// A node's identity on the broker (random per process unless configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub u64);

impl NodeId {
    /// A fresh random id (the process id and the time, hashed with the standard library's
    /// randomly keyed hasher).
    pub fn random() -> NodeId {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        h.write_u128(now.map_or(0, |d| d.as_nanos()));
        NodeId(h.finish())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What waits for the bridge thread.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Publications for the other nodes, in order.
    pub(crate) outbound: Vec<(Topic, Frame)>,
    /// Their frames' bytes.
    pub(crate) bytes: usize,
    /// `(worker, topic, subscribed)`: a worker's first subscriber of a topic came or its last
    /// left, in the order it happened.
    pub(crate) interest: Vec<(u16, Topic, bool)>,
    /// Requests for the topics' logs, in order.
    pub(crate) log: Vec<LogRequest>,
    /// Log requests past the bound: to be answered unavailable.
    pub(crate) log_refused: Vec<LogRequest>,
}

/// The bridge's counters (see [`BrokerStats`] for their meaning).
#[derive(Debug, Default)]
struct Counters {
    outages: AtomicU64,
    failures: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    own: AtomicU64,
    malformed: AtomicU64,
    subscribed: AtomicI64,
    commands: AtomicU64,
    log_appends: AtomicU64,
    log_reads: AtomicU64,
    log_unavailable: AtomicU64,
}

/// The bridge's state and counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Whether a session with the broker is up.
    pub connected: bool,
    /// Times the broker became unreachable (or was at start).
    pub outages: u64,
    /// Sessions lost or refused: every failed attempt, the retries of an outage included.
    pub failures: u64,
    /// Publications handed to the broker.
    pub sent: u64,
    /// Publications from other nodes that reached this node (those for a topic no worker wants
    /// any more, while its unsubscription lingers, included).
    pub received: u64,
    /// Publications that could not cross: the broker was unreachable, the queue was full, or
    /// the publish failed.
    pub dropped: u64,
    /// This node's own publications that came back from the broker (skipped: the local
    /// subscribers had them already).
    pub own: u64,
    /// Messages on our channels that were not ringws publications (dropped).
    pub malformed: u64,
    /// Channels subscribed now.
    pub subscribed: i64,
    /// Batches of subscribe or unsubscribe commands sent (one round trip each, however many
    /// channels).
    pub commands: u64,
    /// Entries appended to the topics' logs (a cluster with history).
    pub log_appends: u64,
    /// Ranges read from the topics' logs (recoveries, gaps filled, history pages).
    pub log_reads: u64,
    /// Log requests answered unavailable (broker unreachable, too many waiting).
    pub log_unavailable: u64,
}

/// Shared by the workers, the publishers and the bridge thread of one server.
#[derive(Debug)]
pub struct Link {
    node: NodeId,
    describe: String,
    max_pending_bytes: usize,
    /// Whether topics have ordered logs on the broker, and the most log requests waiting.
    log: bool,
    /// Whether the nodes share presence through the broker.
    presence: bool,
    max_pending_log: usize,
    pending: Mutex<Pending>,
    wake: tokio::sync::Notify,
    connected: AtomicBool,
    stop: AtomicBool,
    counters: Counters,
}

impl Link {
    pub(crate) fn new(node: NodeId, describe: String, max_pending_bytes: usize) -> Link {
        Link {
            node,
            describe,
            max_pending_bytes,
            log: false,
            presence: false,
            max_pending_log: 0,
            pending: Mutex::new(Pending::default()),
            wake: tokio::sync::Notify::new(),
            connected: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
        }
    }

    pub(crate) fn set_log(&mut self, log: bool, presence: bool, max_pending: usize) {
        self.log = log;
        self.presence = presence;
        self.max_pending_log = max_pending;
    }

    /// Whether topics have ordered logs on the broker.
    pub fn has_log(&self) -> bool {
        self.log
    }

    /// Whether the nodes share presence through the broker.
    pub fn has_presence(&self) -> bool {
        self.presence
    }

    /// Hands log requests to the bridge (one lock) and wakes it; past the bound they wait to
    /// be answered unavailable. Every request is answered by the bridge, connected or not.
    pub(crate) fn submit_log(&self, requests: &mut Vec<LogRequest>) {
        if requests.is_empty() {
            return;
        }
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let room = self.max_pending_log.saturating_sub(p.log.len());
            let n = requests.len().min(room);
            p.log.extend(requests.drain(..n));
            p.log_refused.append(requests);
        }
        self.wake.notify_one();
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The broker, for logs.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Hands a worker's publications for the other nodes and its changes of interest to the
    /// bridge (one lock), and wakes it. Leaves both vectors empty.
    pub(crate) fn submit(
        &self,
        worker: u16,
        outbound: &mut Vec<(Topic, Frame)>,
        interest: &mut Vec<(Topic, bool)>,
    ) {
        if outbound.is_empty() && interest.is_empty() {
            return;
        }
        let connected = self.connected.load(Ordering::Acquire);
        let mut wake = !interest.is_empty();
        let mut dropped = 0;
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.interest
                .extend(interest.drain(..).map(|(t, on)| (worker, t, on)));
            for (topic, frame) in outbound.drain(..) {
                if !connected || p.bytes + frame.wire().len() > self.max_pending_bytes {
                    dropped += 1;
                    continue;
                }
                p.bytes += frame.wire().len();
                p.outbound.push((topic, frame));
                wake = true;
            }
        }
        if dropped > 0 {
            self.counters.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        if wake {
            self.wake.notify_one();
        }
    }

    /// Everything waiting, taken at once.
    pub(crate) fn take(&self) -> Pending {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Resolves when a worker submitted something or the bridge is asked to stop (a wake-up
    /// that came while nobody waited is kept for the next call).
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Release);
    }

    /// Asks the bridge thread to stop.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub(crate) fn count_outage(&self) {
        self.counters.outages.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_failure(&self) {
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_sent(&self, n: u64) {
        self.counters.sent.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn count_received(&self, n: u64) {
        self.counters.received.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn count_dropped(&self, n: u64) {
        self.counters.dropped.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn count_own(&self, n: u64) {
        self.counters.own.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn count_malformed(&self, n: u64) {
        self.counters.malformed.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn count_log_appends(&self, n: u64) {
        self.counters.log_appends.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn count_log_reads(&self, n: u64) {
        self.counters.log_reads.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn count_log_unavailable(&self, n: u64) {
        self.counters
            .log_unavailable
            .fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn count_command(&self) {
        self.counters.commands.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn set_subscribed(&self, n: usize) {
        self.counters.subscribed.store(n as i64, Ordering::Relaxed);
    }

    /// The state and counters now.
    pub fn stats(&self) -> BrokerStats {
        let c = &self.counters;
        BrokerStats {
            connected: self.connected.load(Ordering::Acquire),
            outages: c.outages.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            sent: c.sent.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            own: c.own.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            subscribed: c.subscribed.load(Ordering::Relaxed),
            commands: c.commands.load(Ordering::Relaxed),
            log_appends: c.log_appends.load(Ordering::Relaxed),
            log_reads: c.log_reads.load(Ordering::Relaxed),
            log_unavailable: c.log_unavailable.load(Ordering::Relaxed),
        }
    }

    /// The counters in the Prometheus text format (`ringws_broker_*`, labelled with the node).
    pub fn prometheus(&self) -> String {
        use std::fmt::Write;
        let s = self.stats();
        let node = self.node;
        let mut out = String::new();
        let rows: [(&str, bool, &str, i64); 13] = [
            (
                "broker_connected",
                true,
                "1 while a session with the broker is up",
                i64::from(s.connected),
            ),
            (
                "broker_outages",
                false,
                "times the broker became unreachable (or was at start)",
                s.outages as i64,
            ),
            (
                "broker_session_failures",
                false,
                "sessions with the broker lost or refused (every attempt of an outage counts)",
                s.failures as i64,
            ),
            (
                "broker_sent",
                false,
                "publications handed to the broker for the other nodes",
                s.sent as i64,
            ),
            (
                "broker_received",
                false,
                "publications from other nodes that reached this node",
                s.received as i64,
            ),
            (
                "broker_dropped",
                false,
                "publications that could not cross (broker unreachable, queue full, publish failed)",
                s.dropped as i64,
            ),
            (
                "broker_own",
                false,
                "this node's publications that came back from the broker (skipped)",
                s.own as i64,
            ),
            (
                "broker_malformed",
                false,
                "messages on our channels that were not ringws publications (dropped)",
                s.malformed as i64,
            ),
            (
                "broker_subscribed_channels",
                true,
                "channels this node is subscribed to",
                s.subscribed,
            ),
            (
                "broker_subscription_commands",
                false,
                "batches of subscribe or unsubscribe commands sent (one round trip each)",
                s.commands as i64,
            ),
            (
                "broker_log_appends",
                false,
                "entries appended to the rooms' ordered logs",
                s.log_appends as i64,
            ),
            (
                "broker_log_reads",
                false,
                "ranges read from the rooms' logs (recoveries, gaps filled, history pages)",
                s.log_reads as i64,
            ),
            (
                "broker_log_unavailable",
                false,
                "log requests answered unavailable (broker unreachable, too many waiting)",
                s.log_unavailable as i64,
            ),
        ];
        for (name, gauge, help, value) in rows {
            let metric = crate::server::prometheus_head(&mut out, name, gauge, help);
            let _ = writeln!(out, "{metric}{{node=\"{node}\"}} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn t(s: &str) -> Topic {
        Arc::from(s)
    }

    #[test]
    fn publications_cross_only_while_connected_and_within_the_bound() {
        let link = Link::new(NodeId(1), "test".into(), 10);
        let frame = Frame::binary(b"123"); // 5 bytes on the wire
        let mut out = vec![(t("a"), frame.clone())];
        let mut interest = vec![(t("a"), true)];
        link.submit(3, &mut out, &mut interest);
        assert!(out.is_empty() && interest.is_empty(), "both handed over");
        let p = link.take();
        assert!(p.outbound.is_empty(), "not connected: dropped");
        assert_eq!(p.interest, vec![(3, t("a"), true)], "interest is kept");
        assert_eq!(link.stats().dropped, 1);

        link.set_connected(true);
        let mut out = vec![(t("a"), frame.clone()), (t("b"), frame.clone())];
        link.submit(0, &mut out, &mut Vec::new());
        let mut more = vec![(t("c"), frame.clone())];
        link.submit(1, &mut more, &mut Vec::new());
        assert_eq!(
            link.stats().dropped,
            2,
            "the third passes the 10-byte bound"
        );
        let p = link.take();
        assert_eq!(p.outbound.len(), 2);
        assert_eq!(p.bytes, 10);
        assert_eq!(link.take().bytes, 0, "taken");
    }

    #[test]
    fn log_requests_past_the_bound_wait_to_be_refused() {
        use crate::server::{ConnId, LogRange};
        let mut link = Link::new(NodeId(1), "test".into(), 10);
        link.set_log(true, false, 2);
        assert!(link.has_log());
        let read = |tag| LogRequest::Read {
            topic: t("a"),
            range: LogRange::Tail,
            limit: 5,
            tag,
        };
        let append = LogRequest::Append {
            topic: t("a"),
            from: ConnId::NONE,
            key: None,
            payload: bytes::Bytes::from_static(b"{}"),
        };
        let mut batch = vec![read(1), append, read(3)];
        link.submit_log(&mut batch);
        assert!(batch.is_empty(), "taken");
        let p = link.take();
        assert_eq!(p.log.len(), 2, "within the bound, in order");
        assert!(matches!(p.log[1], LogRequest::Append { .. }));
        assert!(matches!(
            p.log_refused[..],
            [LogRequest::Read { tag: 3, .. }]
        ));
    }

    /// Every metric the dashboard and the alert rules under `tuning/` name is one the server
    /// writes (its workers', the broker bridge's, the chat's room gauge): a renamed metric
    /// cannot leave a panel or an alert silently empty.
    #[test]
    fn the_dashboard_and_alerts_name_only_metrics_that_exist() {
        use std::collections::HashSet;
        let workers =
            std::sync::Arc::new(vec![
                std::sync::Arc::new(crate::server::Counters::default()),
            ]);
        let server = crate::server::Metrics {
            workers,
            relay: None,
        };
        let link = Link::new(NodeId(1), "test".into(), 10);
        let page = server.prometheus() + &link.prometheus();
        let mut families: HashSet<String> = page
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap().to_owned())
            .collect();
        // The chat application's own (tests/chat.rs reads it on a live page).
        families.insert("ringws_chat_rooms".into());
        let files = [
            (
                "tuning/grafana-dashboard.json",
                include_str!("../../tuning/grafana-dashboard.json"),
            ),
            (
                "tuning/prometheus-alerts.yml",
                include_str!("../../tuning/prometheus-alerts.yml"),
            ),
        ];
        for (file, text) in files {
            let mut named = 0;
            for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !word.starts_with("ringws_") {
                    continue;
                }
                named += 1;
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| word.strip_suffix(s))
                    .filter(|f| families.contains(*f))
                    .unwrap_or(word);
                assert!(families.contains(family), "{file}: {word} is not a metric");
            }
            assert!(named >= 5, "{file}: {named} metrics named");
        }
    }

    #[test]
    fn prometheus_names_every_counter_with_the_node() {
        let link = Link::new(NodeId(0xab), "test".into(), 10);
        link.count_outage();
        link.count_received(4);
        let text = link.prometheus();
        assert!(text.contains("ringws_broker_outages_total{node=\"00000000000000ab\"} 1"));
        assert!(text.contains("ringws_broker_received_total{node=\"00000000000000ab\"} 4"));
        assert!(text.contains("ringws_broker_connected{node=\"00000000000000ab\"} 0"));
        assert_eq!(text.matches("# TYPE").count(), 13);
    }
}
