//! The server's configuration: every runtime limit with its default and the reason for it.

use std::net::SocketAddr;
use std::time::Duration;

use crate::proto;
use crate::runtime::IoChoice;
use crate::runtime::uring::UringConfig;

/// What to do when a message would push a connection's outbound queue past its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backpressure {
    /// Drop the message; `send` reports [`SendStatus::Dropped`](super::SendStatus::Dropped) and
    /// the handler's `drain` runs once the queue is back under the limit. For chat: a client
    /// that cannot keep up loses messages, not the connection.
    Drop,
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
    /// Most bytes queued to send on one connection before [`Backpressure`] applies.
    /// Default 128 KiB.
    ///
    /// A reader slower than its traffic would otherwise make the server buffer without bound
    /// (ws and tungstenite are unbounded by default). 128 KiB holds about a thousand chat
    /// messages, or two default-sized maximal messages; a message is always accepted into an
    /// empty queue, whatever its size. Protocol frames (pong, close) are never dropped.
    pub max_outbound_bytes: usize,
    /// What happens past `max_outbound_bytes`. Default [`Backpressure::Drop`].
    pub backpressure: Backpressure,
    /// How long a graceful shutdown waits for close replies before closing what is left.
    /// Default 10 s: above the protocol's close timeout, below systemd's stop timeout (90 s).
    pub shutdown_timeout: Duration,
    /// How long a closing socket is drained for the peer's EOF after our side is shut down.
    /// Default 2 s: lets the last close frame arrive instead of being cut by a reset.
    pub linger: Duration,
    /// The timer wheel's tick: every timeout fires within one tick after its deadline, never
    /// before. Default 100 ms: heartbeats and timeouts are seconds long, so 100 ms is exact
    /// enough, and an idle worker wakes only when a timer is due (at most 10 times a second).
    pub tick: Duration,
    /// A connection that has not completed its upgrade this long after it was accepted is
    /// closed. Default 10 s (as uWebSockets): a browser upgrades within milliseconds; a slow
    /// trickle of header bytes (slowloris) is cut off.
    pub handshake_timeout: Duration,
    /// When nothing has arrived from a peer for this long, the server pings it. Default 30 s:
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
    /// The I/O backend. Default [`IoChoice::Auto`]: io_uring when the kernel offers what it
    /// needs, otherwise epoll, with one log line naming the cause.
    pub io: IoChoice,
    /// Protocol limits and the close-handshake timeout.
    pub proto: proto::Config,
    /// Ring and receive-buffer sizes of each worker.
    pub uring: UringConfig,
}

impl ServerConfig {
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
            backpressure: Backpressure::Drop,
            shutdown_timeout: Duration::from_secs(10),
            linger: Duration::from_secs(2),
            tick: Duration::from_millis(100),
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(20),
            idle_timeout: None,
            text_heartbeat: None,
            io: IoChoice::Auto,
            proto: proto::Config::default(),
            uring: UringConfig::default(),
        }
    }
}
