//! ringws: a WebSocket server for Linux, built to hold very many connections per machine at the
//! lowest cost per message.
//!
//! The crate is layered; arrows only point down:
//!
//! - [`proto`]: RFC 6455, IO-free and clock-free. Handshake, frames, SIMD unmasking, streaming
//!   UTF-8 validation, the connection state machine, limits and errors. It never touches a
//!   socket; time is an argument.
//! - `runtime` (crate-private): what owns syscalls: the io_uring byte layer (rings,
//!   provided-buffer rings, multishot accept/recv, gathered sends) and the epoll one, behind one
//!   backend trait; they know nothing of WebSocket. With `proto::mask`, the only `unsafe` code.
//!   Its configuration types are re-exported by [`server`].
//! - [`server`]: the per-core workers that join the two: connection slots, outbound queues
//!   with backpressure, timer wheels, topics across workers, compression, the [`server::Handler`]
//!   API.
//! - `broker` (Cargo feature `broker`, on by default): topics across servers: a bridge thread
//!   between the workers and a message broker (Redis pub/sub), implementing the server's
//!   [`server::Relay`]. It sits above the server: the server never names it.
//! - [`tls`]: TLS for `wss://` and `https://`, sans-IO over rustls' unbuffered API: ciphertext
//!   in, plaintext out, and back; the workers drive it between the sockets and the protocol
//!   core.
//! - [`handoff`]: live hand-over: the listening sockets passed to a new process over a Unix
//!   control socket, so that a deploy never stops accepting. Beside the server, which it does
//!   not name: the binary joins them.
//! - [`app`]: the applications `--mode` selects (echo, chat).
//! - [`manual`]: documentation only: the security duties of a WebSocket server and the past
//!   vulnerabilities of its kind, each mapped to the code and the test that prevents it.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
#[cfg(feature = "broker")]
pub mod broker;
pub mod handoff;
pub mod manual;
pub mod proto;
#[allow(unsafe_code)]
pub(crate) mod runtime;
pub mod server;
pub mod tls;

/// The README's Rust snippets, compiled by the doc tests so they cannot fall behind the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
