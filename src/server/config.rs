//! The server's configuration: every runtime limit with its default and the reason for it.

use std::net::SocketAddr;
use std::time::Duration;

use crate::proto;
use crate::runtime::IoChoice;
use crate::runtime::uring::UringConfig;

/// What to do with a message that would push a connection's outbound queue past its limit.
///
/// It applies to messages the connection did not ask for (a room's broadcast, a notification,
/// anything sent from `drain`), because one slow subscriber must never stall the others. Replies
/// (what a handler sends a connection from its own `open` and `message` callbacks) are governed
/// by flow control instead (see [`ServerConfig::max_outbound_bytes`]) and meet the policy only
/// past the reply ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backpressure {
    /// Drop the new message; `send` reports [`SendStatus::Dropped`](super::SendStatus::Dropped)
    /// and the handler's `drain` runs once the queue is back under the limit. For chat: a client
    /// that cannot keep up loses messages, not the connection.
    DropNewest,
    /// Drop the oldest queued data frames (never one already partly sent, never a control frame)
    /// to make room for the new one: for live dashboards, where the latest value matters most.
    DropOldest,
    /// Close the connection with 1013 ("try again later"): for feeds where a gap is worse than
    /// a reconnect.
    Close,
}

/// Configuration of a [`Server`](super::Server).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port (shared by every worker).
    /// Default `127.0.0.1:9001`: reachable only from this host until chosen otherwise.
    pub listen: SocketAddr,
    /// Worker threads, each with its own listener, ring and connections. Default: the number of
    /// CPUs this process may run on (thread per core).
    pub workers: usize,
    /// Pin worker `i` to CPU `i`. Default false: pinning helps only when nothing else competes
    /// for the CPUs (see `tuning/`).
    pub pin_workers: bool,
    /// Listen backlog (clamped by the kernel to `net.core.somaxconn`). Default 4096: absorbs
    /// reconnect storms of many clients at once.
    pub backlog: i32,
    /// Connections one worker holds at most; more are closed at accept. Default 1,000,000: the
    /// real cap is `RLIMIT_NOFILE` (checked and warned about at start).
    pub max_connections_per_worker: u32,
    /// The high-water mark of a connection's outbound queue, in bytes. Default 128 KiB.
    ///
    /// A reader slower than its traffic would otherwise make the server buffer without bound
    /// (ws and tungstenite are unbounded by default). Two mechanisms apply at this mark:
    ///
    /// - **Flow control** for request/response traffic: once replies to what a connection sent
    ///   bring its queue to this much, the server stops reading the connection (its receive is cancelled on io_uring, its read
    ///   interest dropped on epoll) until the queue drains to
    ///   [`outbound_low_water`](Self::outbound_low_water). The kernel's TCP window then pushes
    ///   back on the peer: a client that sends faster than it reads is slowed, and loses
    ///   nothing. Replies to bytes already received when reading stopped are still queued, up to
    ///   the reply ceiling: this mark plus the worker's receive buffers
    ///   (`uring.buf_entries × uring.buf_size`, 4 MiB by default), so one read's replies are
    ///   never dropped while a handler that answers one small request with megabytes still
    ///   meets a bound. Broadcasts filling the queue never pause reading (a slow subscriber's
    ///   requests and heartbeats are still read), and a paused connection takes broadcasts
    ///   only up to the low-water mark, so its queue can drain and reading resume while its
    ///   rooms stay busy.
    /// - **The [`Backpressure`] policy** for everything else (broadcasts, notifications, sends
    ///   from `drain`): past this mark they are dropped (newest or oldest) or the connection is
    ///   closed with 1013, by policy.
    ///
    /// 128 KiB holds about a thousand chat messages, or two default-sized maximal messages; a
    /// message is always accepted into an empty queue, whatever its size. Protocol frames
    /// (close, the upgrade response) are never dropped; pongs are dropped past the mark (a ping
    /// flood from a peer that does not read).
    pub max_outbound_bytes: usize,
    /// Reading resumes once a paused connection's queue has drained to this many bytes.
    /// Default 32 KiB (a quarter of the high-water mark): enough hysteresis that a connection
    /// does not flip between paused and reading on every send, while the socket still has data
    /// to send when reading resumes. Clamped to `max_outbound_bytes`.
    pub outbound_low_water: usize,
    /// What happens to messages past `max_outbound_bytes` that are not replies.
    /// Default [`Backpressure::DropNewest`].
    pub backpressure: Backpressure,
    /// How long a graceful shutdown waits for close replies before closing what is left.
    /// Default 10 s: above the protocol's close timeout, below systemd's stop timeout (90 s).
    pub shutdown_timeout: Duration,
    /// How long a closing socket is drained for the peer's EOF after our side is shut down.
    /// Default 2 s: lets the last close frame arrive instead of being cut by a reset.
    pub linger: Duration,
    /// The timer wheel's tick: every timeout that closes a connection fires within one tick
    /// after its deadline, never before; a heartbeat ping goes out within the tick before its
    /// due time, never after (see `ping_interval`). Default 100 ms: heartbeats and timeouts are seconds long, so 100 ms is exact
    /// enough, and an idle worker wakes only when a timer is due (at most 10 times a second).
    pub tick: Duration,
    /// A connection that has not completed its upgrade this long after it was accepted is
    /// closed. Default 10 s (as uWebSockets): a browser upgrades within milliseconds; a slow
    /// trickle of header bytes (slowloris) is cut off.
    pub handshake_timeout: Duration,
    /// Refused and failed connections (HTTP errors at the upgrade, handshake timeouts, a full
    /// worker, TLS handshake failures, protocol errors) are logged as one summary line per
    /// worker per this interval, with counts by reason; zero: not logged (`/metrics` counts
    /// them either way). Default 1 s: an operator sees an attack within a second, and a storm of
    /// 10,000 bad handshakes a second writes one line a second per worker, not 10,000.
    pub refusal_log_interval: Duration,
    /// When nothing has arrived from a peer for this long, the server pings it (up to one `tick`
    /// early: the ping is never late, and `pong_timeout` counts from the ping itself). Default 30 s:
    /// below the idle timeouts of common NATs and load balancers (60 s and more), so the ping
    /// also keeps the path open. `None` sends no pings.
    pub ping_interval: Option<Duration>,
    /// After a heartbeat ping, how long the peer has to send anything (its pong, or any other
    /// frame) before the connection is closed and freed. Default 20 s: a dead peer (no FIN: a
    /// phone changed networks, a laptop slept) is found within `ping_interval + pong_timeout`,
    /// 50 s by default, while a slow mobile link still has time to answer.
    pub pong_timeout: Duration,
    /// Close a connection (1000, "idle timeout") when no application message arrived for this
    /// long; heartbeats (pings, pongs, the text heartbeat) do not count. Default `None`: chat
    /// clients may legitimately listen without speaking for hours.
    pub idle_timeout: Option<Duration>,
    /// A browser-style heartbeat: a text message equal to the first string is answered with the
    /// second by the server, without reaching the handler (browsers cannot send ping frames).
    /// Default `None`; e.g. `Some(("ping".into(), "pong".into()))`.
    pub text_heartbeat: Option<(String, String)>,
    /// Timers handlers may have pending on one worker ([`Conn::set_timer`](super::Conn::set_timer));
    /// more are refused and counted. Default 1,048,576 (40 bytes each: at most 40 MiB per
    /// worker): a reminder per connection for a million connections, while a handler that sets
    /// timers in a loop cannot grow the worker's memory without bound.
    pub max_handler_timers: usize,
    /// The I/O backend. Default [`IoChoice::Auto`]: io_uring when the kernel offers what it
    /// needs, otherwise epoll, with one log line naming the cause.
    pub io: IoChoice,
    /// Protocol limits and the close-handshake timeout.
    pub proto: proto::Config,
    /// permessage-deflate (RFC 7692): mode, level, smallest message compressed, windows. Default
    /// off (see [`DeflateConfig`](crate::proto::deflate::DeflateConfig) for each field's
    /// default and reason, and the memory each mode costs per connection).
    pub compression: proto::deflate::DeflateConfig,
    /// Ring and receive-buffer sizes of each worker.
    pub uring: UringConfig,
    /// TLS (`wss://`, `https://`) on the listener: every connection starts with a TLS
    /// handshake with this certificate. Default `None`: plain TCP (TLS terminated elsewhere,
    /// or none).
    pub tls: Option<crate::tls::TlsConfig>,
}

impl ServerConfig {
    /// The most bytes a connection's queue may hold for replies (see
    /// [`ServerConfig::max_outbound_bytes`]): the high-water mark plus the worker's receive
    /// buffers, which bound the bytes a connection can have in flight when its reading stops.
    pub fn reply_ceiling(&self) -> usize {
        let ring = usize::from(self.uring.buf_entries) * self.uring.buf_size as usize;
        self.max_outbound_bytes.saturating_add(ring)
    }

    /// Where reading resumes (the low-water mark, never above the high-water mark).
    pub(crate) fn low_water(&self) -> usize {
        self.outbound_low_water.min(self.max_outbound_bytes)
    }

    /// Ticks in a second (at least one).
    pub(crate) fn ticks_per_second(&self) -> u32 {
        (1000 / self.tick.as_millis().max(1)).max(1) as u32
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9001)),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pin_workers: false,
            backlog: 4096,
            max_connections_per_worker: 1_000_000,
            max_outbound_bytes: 128 * 1024,
            outbound_low_water: 32 * 1024,
            backpressure: Backpressure::DropNewest,
            shutdown_timeout: Duration::from_secs(10),
            linger: Duration::from_secs(2),
            tick: Duration::from_millis(100),
            handshake_timeout: Duration::from_secs(10),
            refusal_log_interval: Duration::from_secs(1),
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(20),
            idle_timeout: None,
            text_heartbeat: None,
            max_handler_timers: 1 << 20,
            io: IoChoice::Auto,
            proto: proto::Config::default(),
            compression: proto::deflate::DeflateConfig::default(),
            uring: UringConfig::default(),
            tls: None,
        }
    }
}
