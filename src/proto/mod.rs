//! The protocol core: RFC 6455 with no I/O and no clock.
//!
//! Everything here is deterministic: bytes and timestamps go in, events and bytes to send come
//! out. The I/O layer above owns sockets, buffers and time. The only `unsafe` code of this layer
//! is the SIMD unmasking in [`mask`].
//!
//! | module | concept |
//! |---|---|
//! | [`handshake`] | the HTTP/1.1 upgrade: incremental request reader, validation, response |
//! | [`frame`] | a checked view over a frame header and a server-side header encoder |
//! | [`mask`] | in-place unmasking, SIMD chosen at run time, with a scalar reference |
//! | [`utf8`] | streaming UTF-8 validation across fragments and buffer boundaries |
//! | [`deflate`] | permessage-deflate (RFC 7692): negotiation and whole-message codec |
//! | [`close`] | close codes and close-frame payloads |
//! | [`state`] | the one connection state enum, with the RFC close diagram |
//! | [`connection`] | the receive/send state machine driven by the I/O layer |
//! | [`config`] | every limit, with its default and the reason for it |
//! | [`error`] | the one error enum and its close-code / HTTP-status table |
//! | [`time`] | the caller-supplied clock value |

pub mod close;
pub mod config;
pub mod connection;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
#[allow(unsafe_code)]
pub mod mask;
pub mod state;
pub mod time;
pub mod utf8;

pub use close::CloseCode;
pub use config::{Config, Limits, Role};
pub use connection::{Assembled, Connection, Event, Sink};
pub use error::{Error, Response};
pub use time::Timestamp;
