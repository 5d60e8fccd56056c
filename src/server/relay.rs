//! What the server needs from whatever carries publications between it and other servers: the
//! interface is defined here, by the server, and implemented above it (the Redis bridge in
//! `ringws::broker`, Cargo feature `broker`, is one). The server never names a broker; a program attaches one with
//! [`Server::with_relay`](super::Server::with_relay).
//!
//! ```text
//!   worker ──(end of loop iteration: publications, changes of interest)──▶ Relay::submit
//!   worker ◀──(per-worker inbox, one lock and one wake-up per batch)────── Inbound::deliver
//!   /metrics ──▶ Relay::write_metrics          ServerHandle::join ──▶ Relay::stop
//!   Publisher::control ──▶ Relay::submit(CONTROL_TOPIC) ──▶ other servers' home of
//!                                   CONTROL_TOPIC: LogEvent::Control (Relay::has_control)
//! ```
//!
//! Calls in order: [`Relay::start`] once, before any worker runs; then [`Relay::submit`] (and
//! [`Relay::submit_log`]) from every worker (and [`Publisher`](super::Publisher)s),
//! concurrently, and [`Relay::write_metrics`] from anyone; [`Relay::stop`] once, after the
//! workers have stopped.
//!
//! ## Ordered logs
//!
//! A relay may also keep an **ordered log per topic** ([`Relay::has_log`]): one order for a
//! topic across every server, which none of them could give alone (a Redis stream appended by
//! a script, a NATS JetStream subject). A topic's home worker
//! ([`crate::server::home`]) appends to it ([`Home::log_append`](super::Home::log_append)) and
//! reads ranges of it ([`Home::log_read`](super::Home::log_read)); what the log tells comes back
//! to the topic's home worker on every server as a [`LogEvent`], through
//! [`Handler::home`](super::Handler::home):
//!
//! ```text
//!  home worker ──LogRequest::Append──▶ relay ──▶ log: offset N+1 ──▶ every server subscribed
//!       ▲  ◀── LogEvent::Appended (to the requester's server: ok, or unavailable)       │
//!       └───── LogEvent::Live {epoch, offset, payload} (every server, this one too) ◀────┘
//!  home worker ──LogRequest::Read──▶ relay ──▶ LogEvent::Range (to this server's home)
//!  relay (re)subscribed to the topic ──▶ LogEvent::Resync: entries may have been missed
//! ```
//!
//! Delivery of live entries is at least once and may skip entries (a lost connection): the
//! home de-duplicates by offset and fills a gap by reading the range it missed.

use std::io;
use std::sync::Arc;

use bytes::Bytes;

use super::pubsub::{ConnId, Inbound, Topic};
use crate::proto::frame::Frame;

// What a home asks of the log is one of the operations a handler queues (`ops`): defined there,
// so that the home and the operations need nothing of this module.
pub use super::ops::{LogRange, LogRequest};

/// The topic of the servers' control messages ([`Relay::has_control`]): no connection can
/// subscribe to it (no room name starts with `#`); what arrives on it goes to its home worker
/// as [`LogEvent::Control`].
pub const CONTROL_TOPIC: &str = "#control";

/// One entry of a topic's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Its place in the log's order: from 1, one more than the entry before, within an epoch.
    pub offset: u64,
    /// What was appended.
    pub payload: Bytes,
}

/// The answer to a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRead {
    /// The log's epoch: it changes when the log is lost (its offsets start again).
    pub epoch: Arc<str>,
    /// The log's last offset when it was read (0: empty in this epoch).
    pub last: u64,
    /// The entries asked for (those the log still keeps), oldest first.
    pub entries: Vec<LogEntry>,
}

/// Why a log request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogUnavailable(pub String);

/// What a relay's log tells a topic's home worker. [`Handler::home`](super::Handler::home) gets
/// it boxed (downcast `Box<dyn Any>` to `LogEvent`), with [`Home::from`](super::Home::from)
/// [`ConnId::NONE`] except for [`LogEvent::Appended`].
#[derive(Debug)]
pub enum LogEvent {
    /// Entries appended to the topic's log, by any server (this one included): at least once,
    /// not necessarily without gaps.
    Live {
        /// The log's epoch.
        epoch: Arc<str>,
        /// The entries, in the order they came (those that came together, at least one).
        entries: Vec<LogEntry>,
    },
    /// The answer to an append this server asked for.
    Appended {
        /// Who asked.
        from: ConnId,
        /// The key it gave.
        key: Option<Box<str>>,
        /// The entry's epoch and offset, or why it could not be appended.
        result: Result<(Arc<str>, u64), LogUnavailable>,
    },
    /// The answer to a read.
    Range {
        /// The read's tag.
        tag: u64,
        /// The entries, or why they could not be read.
        result: Result<LogRead, LogUnavailable>,
    },
    /// The relay subscribed to the topic (again): entries appended before may not have come
    /// live; read what follows the last one seen.
    Resync,
    /// The relay stopped receiving the topic's entries (no worker wants them): what the home
    /// knows of the log goes stale from now on.
    Unsubscribed,
    /// The answer to a presence change: whether another server has an entry for the member
    /// (so this server's first connection of it was the cluster's first, or its last the
    /// cluster's last, when it has none).
    PresenceChanged {
        /// Who.
        member: Box<str>,
        /// Whether this server has an entry for it now.
        present: bool,
        /// Whether another live server has one, or why it could not be told.
        elsewhere: Result<bool, LogUnavailable>,
    },
    /// A control message from another server (sent with
    /// [`Publisher::control`](super::Publisher::control)), to the home worker of
    /// [`CONTROL_TOPIC`]: at most once, in the order each server sent its own.
    Control {
        /// What it sent (opaque to the relay).
        payload: Bytes,
    },
    /// The answer to a presence list: every live server's entries (a member on two servers
    /// comes twice, once per server).
    PresenceListed {
        /// The list's tag.
        tag: u64,
        /// `(member, value)` per server entry, or why they could not be read.
        result: Result<Vec<(Box<str>, Bytes)>, LogUnavailable>,
    },
}

/// Carries publications between this server and the others. Implementations must be cheap to
/// call from the workers: [`Relay::submit`] must never block on the network (hand the batch to a
/// thread of the relay's own under one lock, or drop and count it).
pub trait Relay: Send + Sync + 'static {
    /// Starts carrying publications from other servers into `inbound`. Called once, when the
    /// server starts and before any worker runs.
    ///
    /// # Errors
    /// The relay cannot start (its thread cannot be spawned); the server does not start either.
    fn start(&self, inbound: Inbound) -> io::Result<()>;

    /// A worker's handover at the end of one loop iteration: its publications for the other
    /// servers, and its changes of interest (`(topic, true)`: the worker's first subscriber of
    /// the topic came; `false`: its last one left), each in the order they happened. Takes the
    /// contents of both vectors (the worker reuses them). `worker` is `u16::MAX` for a
    /// [`Publisher`](super::Publisher) outside the workers.
    fn submit(
        &self,
        worker: u16,
        publications: &mut Vec<(Topic, Frame)>,
        interest: &mut Vec<(Topic, bool)>,
    );

    /// Whether the relay can carry publications now (for a readiness check: a server whose
    /// broker is unreachable serves its own members only). Default: yes.
    fn ready(&self) -> bool {
        true
    }

    /// Whether this relay keeps ordered logs (see the module docs). Default: no.
    fn has_log(&self) -> bool {
        false
    }

    /// Whether the relay shares presence between the servers ([`LogRequest::Presence`]).
    /// Default: no.
    fn has_presence(&self) -> bool {
        false
    }

    /// Whether the relay carries control messages between the servers: publications on
    /// [`CONTROL_TOPIC`] reach every other server's home worker of that topic as
    /// [`LogEvent::Control`] (never a connection). Default: no.
    fn has_control(&self) -> bool {
        false
    }

    /// A worker's log (and presence) requests at the end of one loop iteration, in order
    /// (takes them). Each is answered with a [`LogEvent`] to the topic's home worker, also when
    /// it fails. Never blocks. The default (a relay without logs) drops them: ask only if
    /// [`Relay::has_log`] (or [`Relay::has_presence`]).
    fn submit_log(&self, worker: u16, requests: &mut Vec<LogRequest>) {
        let _ = worker;
        requests.clear();
    }

    /// Appends the relay's metrics, in the Prometheus text format, to a `/metrics` page.
    fn write_metrics(&self, out: &mut String);

    /// The workers have stopped: pass on what was handed over last (briefly), then stop.
    ///
    /// # Errors
    /// The relay failed while running (its thread panicked).
    fn stop(&self) -> io::Result<()>;
}
