//! The server side of the RFC 6455 §4 opening handshake: no I/O, no clock, no `unsafe`, and no
//! panic on any input.
//!
//! | module | concept |
//! |---|---|
//! | `reader` | [`HeadReader`]: collects the request head across reads, each byte scanned once |
//! | `request` | [`Request::parse`]: parse the head once with `httparse`, validate an upgrade |
//! | `tokens` | comma-separated header lists and tokens, split without backtracking |
//! | `extensions` | the §9.1 `Sec-WebSocket-Extensions` grammar: [`ExtensionOffer`] |
//! | `response` | [`accept`] (101), [`error_response`] and [`reject`] (4xx/5xx), [`accept_key`] |
//! | `origin` | [`OriginPolicy`]: the §10.2 `Origin` allow-list |
//!
//! Calling order, for one connection:
//!
//! 1. [`HeadReader::handle_bytes`] with each read until [`Head::Complete`]. Keep its `rest`:
//!    the client's first frames may arrive in the same packet as the request.
//! 2. [`Request::parse`] the head: a validated [`UpgradeRequest`], or an [`HttpRequest`] for
//!    the caller to serve (`/healthz`, `/metrics`, a page) or refuse.
//! 3. For an upgrade: [`OriginPolicy::check`], authenticate (cookie, token: the protocol has
//!    none, §10.5), route by [`UpgradeRequest::path`], pick a subprotocol from
//!    [`UpgradeRequest::protocols`] and negotiate [`UpgradeRequest::extensions`]; then send
//!    [`accept`], or [`reject`] with the caller's own status.
//! 4. Any [`Error`](crate::proto::Error) on the way is answered with [`error_response`], and
//!    the connection closed.
//!
//! Every limit comes from [`Limits`](crate::proto::Limits): `max_header_bytes` bounds the bytes
//! buffered before the head is complete (431), `max_headers` the header count (431).
//!
//! ```
//! use ringws::proto::Limits;
//! use ringws::proto::handshake::{Head, HeadReader, OriginPolicy, Request, accept, error_response};
//!
//! let limits = Limits::default();
//! let policy = OriginPolicy::allow_list(["https://chat.example.com"]);
//! let mut reader = HeadReader::new();
//! let reads: [&[u8]; 2] = [
//!     b"GET /chat HTTP/1.1\r\nHost: chat.example.com\r\nUpgrade: websocket\r\n",
//!     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!       Sec-WebSocket-Version: 13\r\nOrigin: https://chat.example.com\r\n\
//!       Sec-WebSocket-Protocol: chat.v2, chat.v1\r\n\r\n\x81\x80",
//! ];
//! for read in reads {
//!     let response = match reader.handle_bytes(read, &limits) {
//!         Ok(Head::Incomplete) => continue,
//!         Ok(Head::Complete { head, rest }) => {
//!             assert_eq!(rest, b"\x81\x80"); // the first frame: hand it to the connection
//!             match Request::parse(head, &limits) {
//!                 Ok(Request::Upgrade(req)) => match policy.check(&req) {
//!                     Ok(()) => {
//!                         let protocol = req.protocols().find(|p| *p == "chat.v1");
//!                         accept(&req, protocol, None).expect("chat.v1 was offered")
//!                     }
//!                     Err(err) => error_response(err),
//!                 },
//!                 Ok(Request::Http(_)) => unreachable!("serve /healthz etc."),
//!                 Err(err) => error_response(err),
//!             }
//!         }
//!         Err(err) => error_response(err),
//!     };
//!     assert!(response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//! }
//! ```

// Peer input must never panic: no indexing, slicing or unwrapping outside tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

mod extensions;
mod key;
mod origin;
mod reader;
mod request;
mod response;
mod tokens;

pub use extensions::{ExtensionOffer, ExtensionParams, Extensions};
pub use key::accept_key;
pub use origin::OriginPolicy;
pub use reader::{Head, HeadReader};
pub use request::{Headers, HttpRequest, Protocols, Request, UpgradeRequest};
pub use response::{AcceptError, accept, error_response, reason_phrase, reject};
