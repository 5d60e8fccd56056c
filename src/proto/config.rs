//! Every limit of the protocol core, with its default and the reason for it.
//!
//! A worker holds one [`Config`] and passes it by reference into every call, so a connection
//! does not pay for a copy of it.

use core::time::Duration;

/// Which side of the connection this endpoint is. The server requires masked frames and sends
/// unmasked ones; a client (the load tool, tests) the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts connections: peer frames must be masked.
    Server,
    /// Opens connections: peer frames must not be masked.
    Client,
}

/// Byte and count limits. Every one of them bounds memory or work that a peer controls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload of one frame, in bytes. Default 64 KiB (at most 4 GiB - 1: the connection
    /// state counts in 32 bits to stay small).
    ///
    /// Checked on the header, before any payload is read, so an oversized frame costs nothing.
    /// A frame can never be larger than a message, so raising this above
    /// [`max_message_bytes`](Self::max_message_bytes) has no effect.
    pub max_frame_bytes: u32,
    /// Largest message, summed over its fragments, in bytes. Default 64 KiB.
    ///
    /// Chat and notification messages are small; 64 KiB is four times uWebSockets' default
    /// (16 KiB) and leaves room for pasted text and small inline images, while bounding what a
    /// connection can make the server buffer (a message spanning receive buffers is assembled
    /// in memory). The Autobahn run raises it to 16 MiB (its 9.x cases).
    pub max_message_bytes: u32,
    /// Most frames in one message, counting empty continuations. Default 128.
    ///
    /// Browsers send every message as one frame; a peer that splits a message into thousands of
    /// tiny (or empty) fragments costs a header parse each and is either misbehaving or
    /// attacking (ws CVE-2026-48779, fastwebsockets #100). Answered with 1008. The Autobahn run
    /// raises it to 70,000 (its 9.3.x/9.4.x cases send 65,536 fragments).
    pub max_fragments: u32,
    /// Largest HTTP request head (request line and headers) of the upgrade, in bytes.
    /// Default 8 KiB.
    ///
    /// The head is buffered until complete, so this bounds a slow or hostile client's cost before
    /// it is even a WebSocket. 8 KiB matches common proxies' header buffers and holds a browser
    /// upgrade with cookies; more is answered with 431.
    pub max_header_bytes: usize,
    /// Most header fields in the upgrade request. Default 64.
    ///
    /// A browser upgrade carries about 15; a long list only costs parsing (ws CVE-2024-37890
    /// crashed on too many). More is answered with 431.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_message_bytes: 64 * 1024,
            max_fragments: 128,
            max_header_bytes: 8 * 1024,
            max_headers: 64,
        }
    }
}

/// The protocol core's configuration, shared by every connection of a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Server or client side.
    pub role: Role,
    /// Byte and count limits.
    pub limits: Limits,
    /// How long to wait for the peer's close frame after sending ours. Default 5 s.
    ///
    /// After it the connection counts as closed and the socket is closed without the reply. Long
    /// enough for a reply over a slow mobile link, short enough that a vanished peer frees its
    /// memory soon (uWebSockets waits 4-16 s, ws 30 s).
    pub close_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            role: Role::Server,
            limits: Limits::default(),
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// The configuration of the client side (for the load tool and tests).
    pub fn client() -> Self {
        Self {
            role: Role::Client,
            ..Self::default()
        }
    }
}
