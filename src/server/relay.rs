//! What the server needs from whatever carries publications between it and other servers: the
//! interface is defined here, by the server, and implemented above it (the Redis bridge in
//! `ringws::broker`, Cargo feature `broker`, is one). The server never names a broker; a program attaches one with
//! [`Server::with_relay`](super::Server::with_relay).
//!
//! ```text
//!   worker ──(end of loop iteration: publications, changes of interest)──▶ Relay::submit
//!   worker ◀──(per-worker inbox, one lock and one wake-up per batch)────── Inbound::deliver
//!   /metrics ──▶ Relay::write_metrics          ServerHandle::join ──▶ Relay::stop
//! ```
//!
//! Calls in order: [`Relay::start`] once, before any worker runs; then [`Relay::submit`] from
//! every worker (and [`Publisher`](super::Publisher)s), concurrently, and
//! [`Relay::write_metrics`] from anyone; [`Relay::stop`] once, after the workers have stopped.

use std::io;

use super::pubsub::{Inbound, Topic};
use crate::proto::frame::Frame;

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

    /// Appends the relay's metrics, in the Prometheus text format, to a `/metrics` page.
    fn write_metrics(&self, out: &mut String);

    /// The workers have stopped: pass on what was handed over last (briefly), then stop.
    ///
    /// # Errors
    /// The relay failed while running (its thread panicked).
    fn stop(&self) -> io::Result<()>;
}
