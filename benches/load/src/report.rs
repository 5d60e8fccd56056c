//! A run's result: one JSON line for scripts, or a table for people.

use std::time::Duration;

use serde_json::{Value, json};

use crate::stats::{ErrorCounts, LatencySummary, LatenessSummary};
use crate::target::Setup;

/// Everything a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `pingpong`, `pipelined`, `flood`, `broadcast` or `idle`.
    pub mode: &'static str,
    /// The server's name, as given by `--label`.
    pub label: Option<String>,
    /// The scenario's name, as given by `--scenario`.
    pub scenario: Option<String>,
    /// The target address.
    pub addr: String,
    /// Connections asked for.
    pub connections: usize,
    /// Connections that completed the handshake.
    pub established: usize,
    /// Connections still open at the end of the window or hold.
    pub open_at_end: usize,
    /// Seconds to establish them.
    pub setup_secs: f64,
    /// Server CPU time spent while they were established (idle, in one step), ns.
    pub setup_server_cpu_ns: Option<u64>,
    /// TLS connections that resumed a session (`--tls-resume`).
    pub tls_resumed: usize,
    /// Payload bytes (message loads).
    pub size: Option<usize>,
    /// Binary or text (message loads).
    pub binary: Option<bool>,
    /// Messages in flight per connection (pipelined).
    pub depth: Option<u64>,
    /// Messages sent in the window (broadcast: publications).
    pub sent: u64,
    /// Warm-up seconds.
    pub warmup_secs: f64,
    /// Window (ping-pong) or hold (idle) seconds, as measured.
    pub window_secs: f64,
    /// Verified echoes in the window (broadcast: deliveries to subscribers).
    pub messages: u64,
    /// Round-trip latency over the window.
    pub latency: LatencySummary,
    /// All errors of the run.
    pub errors: ErrorCounts,
    /// The server's ping interval the lateness is measured against (idle, `--ping-interval`).
    pub ping_interval: Option<Duration>,
    /// Heartbeat pings received (and answered) during the hold (idle).
    pub pings: u64,
    /// Heartbeat pings received during the whole run, setup included (idle).
    pub pings_total: u64,
    /// `--compress`: connections on which the server accepted permessage-deflate.
    pub compressed_conns: Option<usize>,
    /// `--compress`: inflated over compressed bytes of the messages the server sent
    /// compressed.
    pub compression_ratio: Option<f64>,
    /// How late the pings of the hold came, ms (idle).
    pub lateness: LatenessSummary,
    /// The pings of the hold per whole millisecond of lateness (idle), ascending.
    pub lateness_hist: Vec<(i64, u64)>,
    /// Server CPU time over the window (ping-pong) or hold (idle), ns.
    pub server_cpu_ns: Option<u64>,
    /// This process's CPU time over the window, ns.
    pub client_cpu_ns: Option<u64>,
    /// The CPU time over the window of each `--also-pid` process, ns, by name.
    pub also_cpu_ns: Vec<(String, u64)>,
    /// Server RSS before connecting (idle), bytes.
    pub server_rss_before: Option<u64>,
    /// Server RSS at the end of the window or hold, bytes.
    pub server_rss_after: Option<u64>,
    /// Connections open when the server's RSS was sampled part-way through the setup (idle
    /// with `--sample-at N`: N unless some failed).
    pub rss_first_conns: Option<usize>,
    /// Server RSS with the first `rss_first_conns` connections open, bytes (idle with
    /// `--sample-at`).
    pub server_rss_at_first: Option<u64>,
    /// Echoes counted in each whole second of the window, in order.
    pub per_second: Vec<u64>,
    /// The window in parts (`--every`), in order.
    pub windows: Vec<Part>,
    /// Machine CPU time used by other processes (neither this one nor the server, when
    /// `--server-pid` names it) during the window, and the time stolen by the hypervisor, each
    /// as a % of all CPUs: how quiet the machine was while measuring.
    pub others: Option<crate::server::OthersShare>,
    /// The first error descriptions.
    pub notes: Vec<String>,
    /// Broadcast through the chat's backend API: what the publisher saw.
    pub api_publish: Option<String>,
    /// The broadcast's plan and checks (broadcast).
    pub broadcast: Option<BroadcastFigures>,
}

/// A part of the window (`broadcast --every`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Part {
    /// When it ended, seconds since the Unix epoch (to line it up with other samples).
    pub ended_unix_secs: f64,
    /// How long it was.
    pub secs: f64,
    /// Messages (deliveries) in it.
    pub messages: u64,
    /// The latency of those.
    pub latency: LatencySummary,
}

impl Part {
    fn to_json(self) -> Value {
        json!({
            "ended_unix_secs": self.ended_unix_secs,
            "secs": self.secs,
            "messages": self.messages,
            "p50_us": self.latency.p50,
            "p99_us": self.latency.p99,
            "max_us": self.latency.max,
        })
    }
}

/// A broadcast run's plan and what the subscribers' checks found, over the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BroadcastFigures {
    /// Subscriber connections.
    pub subscribers: usize,
    /// Publisher connections.
    pub publishers: usize,
    /// Rooms the subscribers are spread over.
    pub rooms: usize,
    /// Publications per second asked for.
    pub rate: f64,
    /// Messages missing between two a subscriber received (sequence gaps).
    pub lost_gaps: u64,
    /// Messages published to subscribers still open and not received by the end of the drain.
    pub undelivered: u64,
    /// Messages at or before the last one seen from their publisher (out of order, duplicated).
    pub out_of_order: u64,
    /// Copies of publications the publishers received (not deliveries).
    pub publisher_copies: u64,
    /// Joins not acknowledged within the connect timeout (an error).
    pub joins_missing: u64,
    /// Seconds waited after the last publication for the subscribers to catch up.
    pub drain_secs: f64,
    /// Whether loss and disorder fail the run.
    pub strict: bool,
}

impl BroadcastFigures {
    /// Messages lost: sequence gaps and what never arrived.
    pub fn lost(&self) -> u64 {
        self.lost_gaps + self.undelivered
    }

    /// Whether the checks fail the run: missing joins; with `strict`, any loss or disorder.
    pub fn failed(&self) -> bool {
        self.joins_missing > 0 || (self.strict && self.lost() + self.out_of_order > 0)
    }
}

/// Min, median and max of per-second counts.
pub fn spread(v: &[u64]) -> Option<(u64, u64, u64)> {
    let mut s = v.to_vec();
    s.sort_unstable();
    Some((*s.first()?, s[s.len() / 2], *s.last()?))
}

impl Report {
    /// An empty report for a run of `mode` with `setup`.
    pub fn new(mode: &'static str, setup: &Setup) -> Self {
        Self {
            mode,
            addr: setup.target.addr.to_string(),
            connections: setup.connections,
            ..Self::default()
        }
    }

    /// Echoes per second over the window.
    pub fn msgs_per_sec(&self) -> f64 {
        if self.window_secs > 0.0 {
            self.messages as f64 / self.window_secs
        } else {
            0.0
        }
    }

    /// Payload bytes echoed per second over the window.
    pub fn bytes_per_sec(&self) -> f64 {
        self.msgs_per_sec() * self.size.unwrap_or(0) as f64
    }

    /// Pings per second over the hold.
    pub fn pings_per_sec(&self) -> f64 {
        if self.window_secs > 0.0 {
            self.pings as f64 / self.window_secs
        } else {
            0.0
        }
    }

    /// Server CPU time over the window or hold as a percentage of one core.
    pub fn server_cpu_percent(&self) -> Option<f64> {
        let ns = self.server_cpu_ns?;
        (self.window_secs > 0.0).then(|| ns as f64 / 1e9 / self.window_secs * 100.0)
    }

    /// Server CPU µs per message over the window.
    pub fn server_cpu_us_per_msg(&self) -> Option<f64> {
        per_msg(self.server_cpu_ns, self.messages)
    }

    /// Messages (broadcast: deliveries) per second of server CPU time over the window.
    pub fn msgs_per_server_cpu_sec(&self) -> Option<f64> {
        let ns = self.server_cpu_ns?;
        (ns > 0).then(|| self.messages as f64 / (ns as f64 / 1e9))
    }

    /// Messages sent (broadcast: publications) per second over the window.
    pub fn sent_per_sec(&self) -> f64 {
        if self.window_secs > 0.0 {
            self.sent as f64 / self.window_secs
        } else {
            0.0
        }
    }

    /// Broadcast: the deliveries per second the publications of the window call for, at the
    /// average room size (the rooms differ by at most one subscriber).
    pub fn expected_deliveries_per_sec(&self) -> Option<f64> {
        let b = self.broadcast?;
        Some(self.sent_per_sec() * b.subscribers as f64 / b.rooms.max(1) as f64)
    }

    /// This process's CPU µs per message over the window.
    pub fn client_cpu_us_per_msg(&self) -> Option<f64> {
        per_msg(self.client_cpu_ns, self.messages)
    }

    /// Connections established per second.
    pub fn setup_rate(&self) -> f64 {
        if self.setup_secs > 0.0 {
            self.established as f64 / self.setup_secs
        } else {
            0.0
        }
    }

    /// Server CPU µs per connection established (its TCP, TLS and WebSocket handshakes).
    pub fn setup_server_cpu_us_per_conn(&self) -> Option<f64> {
        let ns = self.setup_server_cpu_ns?;
        (self.established > 0).then(|| ns as f64 / 1000.0 / self.established as f64)
    }

    /// Server RSS growth per established connection (idle), bytes; may be negative.
    pub fn rss_per_conn(&self) -> Option<f64> {
        let (b, a) = (self.server_rss_before?, self.server_rss_after?);
        (self.established > 0).then(|| (a as f64 - b as f64) / self.established as f64)
    }

    /// Server RSS growth per connection between the first sample (`rss_first_conns` open) and
    /// the end of the hold (`established`), bytes; may be negative. Free of the fixed cost and,
    /// over enough connections, of the allocator's page steps that the absolute figure
    /// includes (idle with `--sample-at`).
    pub fn rss_slope_per_conn(&self) -> Option<f64> {
        let (b, a) = (self.server_rss_at_first?, self.server_rss_after?);
        let added = self.established.checked_sub(self.rss_first_conns?)?;
        (added > 0).then(|| (a as f64 - b as f64) / added as f64)
    }

    /// Whether the run failed: any error, or nothing established.
    pub fn failed(&self) -> bool {
        self.errors.total() > 0
            || self.established == 0
            || self.broadcast.is_some_and(|b| b.failed())
    }

    /// The one-line JSON form.
    pub fn to_json(&self) -> Value {
        let l = &self.latency;
        let e = &self.errors;
        let p = &self.lateness;
        let hist: Vec<Value> = self
            .lateness_hist
            .iter()
            .map(|&(b, n)| json!([b, n]))
            .collect();
        let mut v = json!({
            "mode": self.mode,
            "label": self.label,
            "scenario": self.scenario,
            "addr": self.addr,
            "connections": self.connections,
            "established": self.established,
            "open_at_end": self.open_at_end,
            "setup_secs": self.setup_secs,
            "setup_conns_per_sec": self.setup_rate(),
            "size": self.size,
            "binary": self.binary,
            "depth": self.depth,
            "sent": self.sent,
            "bytes_per_sec": self.bytes_per_sec(),
            "warmup_secs": self.warmup_secs,
            "window_secs": self.window_secs,
            "messages": self.messages,
            "msgs_per_sec": self.msgs_per_sec(),
            "latency_us": {
                "mean": l.mean, "p50": l.p50, "p90": l.p90, "p99": l.p99,
                "p999": l.p999, "max": l.max,
            },
            "errors": {
                "total": e.total(), "connect": e.connect, "handshake": e.handshake,
                "mismatch": e.mismatch, "closed": e.closed, "protocol": e.protocol, "io": e.io,
            },
            "ping_interval_ms": self.ping_interval.map(|d| d.as_secs_f64() * 1000.0),
            "pings": self.pings,
            "pings_total": self.pings_total,
            "pings_per_sec": self.pings_per_sec(),
            "ping_lateness_ms": {
                "count": p.count, "min": p.min, "mean": p.mean, "p50": p.p50, "p90": p.p90,
                "p99": p.p99, "max": p.max,
            },
            "ping_lateness_hist_ms": hist,
            "server_cpu_ns": self.server_cpu_ns,
            "server_cpu_percent": self.server_cpu_percent(),
            "server_cpu_us_per_msg": self.server_cpu_us_per_msg(),
            "client_cpu_us_per_msg": self.client_cpu_us_per_msg(),
            "also_cpu_ns": self.also_cpu_ns.iter().map(|(n, ns)| (n.clone(), json!(ns))).collect::<serde_json::Map<_, _>>(),
            "server_rss_before": self.server_rss_before,
            "server_rss_after": self.server_rss_after,
            "rss_per_conn_bytes": self.rss_per_conn(),
            "rss_first_conns": self.rss_first_conns,
            "server_rss_at_first": self.server_rss_at_first,
            "rss_slope_per_conn": self.rss_slope_per_conn(),
            "per_second": self.per_second,
            "others_cpu_percent": self.others.map(|o| o.others_percent),
            "steal_percent": self.others.map(|o| o.steal_percent),
            "notes": self.notes,
        });
        if let Some(api) = &self.api_publish {
            v["api_publish"] = json!(api);
        }
        if !self.windows.is_empty() {
            v["windows"] = self.windows.iter().copied().map(Part::to_json).collect();
        }
        if let Some(us) = self.setup_server_cpu_us_per_conn() {
            v["setup_server_cpu_us_per_conn"] = json!(us);
        }
        if self.tls_resumed > 0 {
            v["tls_resumed"] = json!(self.tls_resumed);
        }
        if let Some(n) = self.compressed_conns {
            v["compressed_conns"] = json!(n);
            v["compression_ratio"] = json!(self.compression_ratio);
        }
        if let (Some(b), Some(obj)) = (&self.broadcast, v.as_object_mut()) {
            let extra = json!({
                "subscribers": b.subscribers,
                "publishers": b.publishers,
                "rooms": b.rooms,
                "rate": b.rate,
                "deliveries": self.messages,
                "publishes": self.sent,
                "deliveries_per_sec": self.msgs_per_sec(),
                "publishes_per_sec": self.sent_per_sec(),
                "expected_deliveries_per_sec": self.expected_deliveries_per_sec(),
                "server_cpu_us_per_delivery": self.server_cpu_us_per_msg(),
                "deliveries_per_cpu_sec": self.msgs_per_server_cpu_sec(),
                "lost": b.lost(),
                "lost_gaps": b.lost_gaps,
                "undelivered": b.undelivered,
                "out_of_order": b.out_of_order,
                "publisher_copies": b.publisher_copies,
                "joins_missing": b.joins_missing,
                "drain_secs": b.drain_secs,
                "strict": b.strict,
            });
            if let Value::Object(extra) = extra {
                obj.extend(extra);
            }
        }
        v
    }

    /// The table for people.
    pub fn to_table(&self) -> String {
        let mut rows: Vec<(&str, String)> = Vec::new();
        if let Some(l) = &self.label {
            rows.push(("server", l.clone()));
        }
        rows.push(("mode", self.mode.to_string()));
        rows.push(("target", self.addr.clone()));
        rows.push((
            "connections",
            format!("{} of {} established", self.established, self.connections),
        ));
        rows.push((
            "setup",
            format!("{:.2} s ({:.0} conn/s)", self.setup_secs, self.setup_rate()),
        ));
        if let Some(b) = &self.broadcast {
            self.broadcast_rows(b, &mut rows);
        } else if self.mode != "idle" {
            let kind = if self.binary == Some(true) {
                "binary"
            } else {
                "text"
            };
            rows.push(("message", format!("{} B {kind}", self.size.unwrap_or(0))));
            if let Some(d) = self.depth {
                rows.push(("depth", format!("{d} in flight per connection")));
            }
            rows.push((
                "window",
                format!(
                    "{:.2} s after {:.1} s warm-up",
                    self.window_secs, self.warmup_secs
                ),
            ));
            rows.push(("messages", self.messages.to_string()));
            rows.push(("sent", self.sent.to_string()));
            if let Some(n) = self.compressed_conns {
                let ratio = self
                    .compression_ratio
                    .map_or("-".to_string(), |r| format!("{r:.2}x"));
                rows.push((
                    "compression",
                    format!("{n} connections compressed, server messages {ratio} smaller"),
                ));
            }
            rows.push((
                "throughput",
                format!(
                    "{:.0} msg/s, {:.1} MB/s of payload",
                    self.msgs_per_sec(),
                    self.bytes_per_sec() / 1e6
                ),
            ));
            let l = &self.latency;
            rows.push((
                "latency µs",
                format!(
                    "p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
                    l.p50, l.p90, l.p99, l.p999, l.max
                ),
            ));
            rows.push(("server CPU", opt(self.server_cpu_us_per_msg(), "µs/msg")));
            rows.push(("client CPU", opt(self.client_cpu_us_per_msg(), "µs/msg")));
            for (name, ns) in &self.also_cpu_ns {
                rows.push((
                    "also CPU",
                    format!(
                        "{name}: {:.1} % of a core, {}",
                        *ns as f64 / 1e7 / self.window_secs.max(1e-9),
                        opt(per_msg(Some(*ns), self.messages), "µs/msg")
                    ),
                ));
            }
            if let Some((min, median, max)) = spread(&self.per_second) {
                rows.push((
                    "msg/s each second",
                    format!("{median} median [{min}–{max}]"),
                ));
            }
            if let Some(o) = self.others {
                let share = format!(
                    "{:.1} % of all CPUs (steal {:.1} %)",
                    o.others_percent, o.steal_percent
                );
                rows.push(("other processes", share));
            }
        } else {
            rows.push(("hold", format!("{:.2} s", self.window_secs)));
            rows.push(("server RSS before", opt_bytes(self.server_rss_before)));
            rows.push(("RSS per conn", opt(self.rss_per_conn(), "B")));
            if let Some(n) = self.rss_first_conns {
                rows.push((
                    "server RSS at first",
                    format!("{} with {n} conns", opt_bytes(self.server_rss_at_first)),
                ));
                rows.push((
                    "RSS slope per conn",
                    format!(
                        "{} (conns {n} → {})",
                        opt(self.rss_slope_per_conn(), "B"),
                        self.established
                    ),
                ));
            }
            rows.push((
                "server CPU",
                opt(self.server_cpu_percent(), "% of one core"),
            ));
            let interval = self
                .ping_interval
                .map_or_else(|| "none given".to_string(), |d| format!("{d:?}"));
            rows.push((
                "pings",
                format!(
                    "{} in the hold ({:.1}/s), {} in all; interval {interval}",
                    self.pings,
                    self.pings_per_sec(),
                    self.pings_total
                ),
            ));
            let p = &self.lateness;
            rows.push((
                "ping lateness ms",
                format!(
                    "p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  (min {:.1})",
                    p.p50, p.p90, p.p99, p.max, p.min
                ),
            ));
        }
        rows.push(("server RSS", opt_bytes(self.server_rss_after)));
        rows.push(("open at end", self.open_at_end.to_string()));
        let e = &self.errors;
        rows.push((
            "errors",
            format!(
                "{} (connect {}, handshake {}, mismatch {}, closed {}, protocol {}, io {})",
                e.total(),
                e.connect,
                e.handshake,
                e.mismatch,
                e.closed,
                e.protocol,
                e.io
            ),
        ));
        if let Some(api) = &self.api_publish {
            rows.push(("API publish", api.clone()));
        }
        for n in &self.notes {
            rows.push(("error", n.clone()));
        }
        let w = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<w$}  {v}\n"))
            .collect()
    }
}

impl Report {
    /// The table rows of a broadcast run, from the plan to the checks.
    fn broadcast_rows(&self, b: &BroadcastFigures, rows: &mut Vec<(&str, String)>) {
        rows.push((
            "plan",
            format!(
                "{} subscribers in {} room(s), {} publisher(s), {} publications/s",
                b.subscribers, b.rooms, b.publishers, b.rate
            ),
        ));
        rows.push((
            "window",
            format!(
                "{:.2} s after {:.1} s warm-up",
                self.window_secs, self.warmup_secs
            ),
        ));
        rows.push(("publications", self.sent.to_string()));
        rows.push(("deliveries", self.messages.to_string()));
        rows.push((
            "throughput",
            format!(
                "{:.0} deliveries/s ({:.0} expected), {:.1} publications/s",
                self.msgs_per_sec(),
                self.expected_deliveries_per_sec().unwrap_or(0.0),
                self.sent_per_sec()
            ),
        ));
        let l = &self.latency;
        rows.push((
            "latency µs",
            format!(
                "p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
                l.p50, l.p90, l.p99, l.p999, l.max
            ),
        ));
        rows.push((
            "server CPU",
            format!(
                "{}, {} deliveries per CPU-second",
                opt(self.server_cpu_us_per_msg(), "µs/delivery"),
                self.msgs_per_server_cpu_sec()
                    .map_or_else(|| "n/a".to_string(), |x| format!("{x:.0}"))
            ),
        ));
        rows.push((
            "client CPU",
            opt(self.client_cpu_us_per_msg(), "µs/delivery"),
        ));
        if let Some((min, median, max)) = spread(&self.per_second) {
            rows.push((
                "deliveries each second",
                format!("{median} median [{min}–{max}]"),
            ));
        }
        if let Some(o) = self.others {
            let share = format!(
                "{:.1} % of all CPUs (steal {:.1} %)",
                o.others_percent, o.steal_percent
            );
            rows.push(("other processes", share));
        }
        rows.push((
            "lost",
            format!(
                "{} ({} in sequence gaps, {} not delivered {:.1} s after the last publication)",
                b.lost(),
                b.lost_gaps,
                b.undelivered,
                b.drain_secs
            ),
        ));
        rows.push(("out of order", b.out_of_order.to_string()));
        rows.push(("publisher copies", b.publisher_copies.to_string()));
        if b.joins_missing > 0 {
            rows.push(("joins missing", b.joins_missing.to_string()));
        }
    }
}

fn per_msg(ns: Option<u64>, messages: u64) -> Option<f64> {
    let ns = ns?;
    (messages > 0).then(|| ns as f64 / 1000.0 / messages as f64)
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.2} {unit}"))
}

fn opt_bytes(v: Option<u64>) -> String {
    v.map_or_else(
        || "n/a (no --server-pid)".to_string(),
        |b| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_load_figures() {
        let r = Report {
            mode: "flood",
            size: Some(1000),
            window_secs: 2.0,
            messages: 4000,
            sent: 5000,
            server_cpu_ns: Some(8_000_000),
            ..Report::default()
        };
        assert_eq!(r.msgs_per_sec(), 2000.0);
        assert_eq!(r.bytes_per_sec(), 2e6);
        assert_eq!(r.server_cpu_us_per_msg(), Some(2.0));
        let j = r.to_json();
        assert_eq!(j["bytes_per_sec"], 2e6);
        assert_eq!(j["sent"], 5000);
        assert!(j["depth"].is_null());
        let t = r.to_table();
        assert!(t.contains("2000 msg/s, 2.0 MB/s of payload"), "{t}");
    }

    #[test]
    fn broadcast_figures() {
        let mut r = Report {
            mode: "broadcast",
            connections: 1001,
            window_secs: 2.0,
            messages: 400_000,
            sent: 400,
            server_cpu_ns: Some(800_000_000),
            broadcast: Some(BroadcastFigures {
                subscribers: 1000,
                publishers: 1,
                rooms: 1,
                rate: 200.0,
                lost_gaps: 3,
                undelivered: 2,
                ..BroadcastFigures::default()
            }),
            ..Report::default()
        };
        assert_eq!(r.msgs_per_sec(), 200_000.0);
        assert_eq!(r.sent_per_sec(), 200.0);
        assert_eq!(r.expected_deliveries_per_sec(), Some(200_000.0));
        assert_eq!(r.server_cpu_us_per_msg(), Some(2.0));
        assert_eq!(r.msgs_per_server_cpu_sec(), Some(500_000.0));
        let j = r.to_json();
        assert_eq!(j["mode"], "broadcast");
        assert_eq!(j["deliveries_per_sec"], 200_000.0);
        assert_eq!(j["msgs_per_sec"], 200_000.0);
        assert_eq!(j["publishes_per_sec"], 200.0);
        assert_eq!(j["server_cpu_us_per_delivery"], 2.0);
        assert_eq!(j["deliveries_per_cpu_sec"], 500_000.0);
        assert_eq!(j["lost"], 5);
        assert_eq!(j["rooms"], 1);
        let t = r.to_table();
        assert!(t.contains("200000 deliveries/s (200000 expected)"), "{t}");
        assert!(
            t.contains("2.00 µs/delivery, 500000 deliveries per CPU-second"),
            "{t}"
        );
        assert!(t.contains("5 (3 in sequence gaps, 2 not delivered"), "{t}");
        // Loss fails a run only with --strict; a missing join always does.
        r.established = 1001;
        assert!(!r.failed());
        r.broadcast.as_mut().unwrap().strict = true;
        assert!(r.failed());
        r.broadcast = Some(BroadcastFigures {
            joins_missing: 1,
            ..BroadcastFigures::default()
        });
        assert!(r.failed());
        // Other modes have none of the broadcast keys.
        r.broadcast = None;
        assert!(r.to_json().get("deliveries_per_sec").is_none());
        assert_eq!(r.msgs_per_server_cpu_sec(), Some(500_000.0));
        r.server_cpu_ns = Some(0);
        assert_eq!(r.msgs_per_server_cpu_sec(), None);
    }

    #[test]
    fn idle_rss_slope() {
        const MIB: u64 = 1 << 20;
        let mut r = Report {
            mode: "idle",
            established: 19_000,
            server_rss_before: Some(10 * MIB),
            server_rss_after: Some(10 * MIB + 19_000 * 600),
            ..Report::default()
        };
        // Without --sample-at: the absolute figure only.
        assert_eq!(r.rss_per_conn(), Some(600.0));
        assert_eq!(r.rss_slope_per_conn(), None);
        let j = r.to_json();
        assert!(j["rss_slope_per_conn"].is_null());
        assert!(j["rss_first_conns"].is_null());
        assert!(!r.to_table().contains("slope"));

        // 5,000 connections took 4 MiB (two 2 MiB steps); the next 14,000 took 150 B each.
        r.rss_first_conns = Some(5_000);
        r.server_rss_at_first = Some(14 * MIB);
        r.server_rss_after = Some(14 * MIB + 14_000 * 150);
        assert_eq!(r.rss_slope_per_conn(), Some(150.0));
        let abs = (4 * MIB + 14_000 * 150) as f64 / 19_000.0;
        assert_eq!(r.rss_per_conn(), Some(abs));
        let j = r.to_json();
        assert_eq!(j["rss_slope_per_conn"], 150.0);
        assert_eq!(j["rss_first_conns"], 5_000);
        assert_eq!(j["server_rss_at_first"], 14 * MIB);
        let t = r.to_table();
        assert!(t.contains("RSS slope per conn"), "{t}");
        assert!(t.contains("150.00 B (conns 5000 → 19000)"), "{t}");
        assert!(t.contains("14.0 MiB with 5000 conns"), "{t}");

        // Shrinking is a negative slope; no connection added, or fewer, is no slope.
        r.server_rss_after = Some(14 * MIB - 14_000);
        assert_eq!(r.rss_slope_per_conn(), Some(-1.0));
        r.established = 5_000;
        assert_eq!(r.rss_slope_per_conn(), None);
        r.established = 4_000;
        assert_eq!(r.rss_slope_per_conn(), None);
        r.established = 19_000;
        r.server_rss_at_first = None;
        assert_eq!(r.rss_slope_per_conn(), None);
    }
}
