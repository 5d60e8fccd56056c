//! Per-worker counters: plain atomics written by their worker only (relaxed, no locks), summed
//! by whoever reads them (tests, `/metrics`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($(#[$doc:meta] $name:ident: $kind:ident,)*) => {
        /// One worker's counters.
        #[derive(Debug, Default)]
        pub struct Counters {
            $(#[$doc] pub $name: $kind,)*
        }

        /// A snapshot of counters, summed over workers.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct Snapshot {
            $(#[$doc] pub $name: i64,)*
        }

        impl Counters {
            /// Adds this worker's values to `into`.
            pub fn add_to(&self, into: &mut Snapshot) {
                $(into.$name += self.$name.load(Relaxed) as i64;)*
            }
        }
    };
}

counters! {
    /// Connections accepted.
    accepted: AtomicU64,
    /// Connections refused at accept (worker full).
    refused: AtomicU64,
    /// Connection slots in use (any phase: handshake, open, closing).
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
    /// Messages dropped by backpressure.
    dropped: AtomicU64,
    /// Times a connection's reading stopped for flow control (queue at its high-water mark).
    read_pauses: AtomicU64,
    /// Connections whose reading is stopped by flow control now.
    reading_paused: AtomicI64,
    /// Bytes queued to send now, over all connections.
    bytes_queued: AtomicI64,
    /// Bytes sent.
    bytes_sent: AtomicU64,
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
    /// Workers running on io_uring (the others run on epoll).
    io_uring_workers: AtomicI64,
    /// Connection timers armed in the wheel now (one per connection at most).
    timers: AtomicI64,
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
