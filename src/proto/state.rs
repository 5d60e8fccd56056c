//! The one state of a WebSocket connection after the upgrade.

use super::time::Timestamp;

/// Where a connection stands in the closing handshake (RFC 6455 §5.5.1, §7.1).
///
/// States are named for what they wait for. The upgrade before them is the
/// [`handshake`](super::handshake) module's (the runtime holds a `HeadReader` until the 101 is
/// sent); a [`Connection`](super::Connection) starts in [`State::Open`].
///
/// ```text
///                      peer Close received: echo its code, report Event::Close
///          ┌───────────────────────────────────────────────────────────────────────┐
///          │                                                                       ▼
///   ┌──────┴─────┐  close() sends Close     ┌──────────────────┐  peer Close   ┌────────┐
///   │    Open    ├─────────────────────────►│ AwaitCloseReply  ├──────────────►│ Closed │
///   │ (messages  │                          │ (receive only;   │  or deadline  │        │
///   │ both ways) │                          │  send nothing)   │  or error     │        │
///   └──────┬─────┘                          └──────────────────┘               └────────┘
///          │                                                                       ▲
///          └────── peer breaks the protocol: send Close(1002/1007/1008/1009) ──────┘
///                  ("Fail the WebSocket Connection": no reply is awaited, §7.1.7)
/// ```
///
/// In `Closed` the core reads and writes nothing more; the runtime flushes what is queued (the
/// last Close frame) and closes the socket. The server closes TCP first (§7.1.1); to keep the
/// kernel from turning unread input into a reset that destroys the Close frame in flight, the
/// runtime shuts down its writing side and drains input briefly before closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// Our Close frame is sent; waiting for the peer's until `deadline`. Frames still arrive and
    /// are reported (messages the peer sent before it saw our Close), but nothing more is sent.
    AwaitCloseReply {
        /// When to give up waiting and close anyway.
        deadline: Timestamp,
    },
    /// The closing handshake is over (or was cut short): close the socket once flushed.
    Closed,
}

impl State {
    /// Whether data messages may be sent.
    pub const fn can_send(&self) -> bool {
        matches!(self, Self::Open)
    }

    /// Whether input is still read.
    pub const fn can_receive(&self) -> bool {
        !matches!(self, Self::Closed)
    }
}
