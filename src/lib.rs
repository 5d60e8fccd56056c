//! ringws: a WebSocket server for Linux, built to hold very many connections per machine at the
//! lowest cost per message.
//!
//! The crate is layered; arrows only point down:
//!
//! - [`proto`]: RFC 6455, IO-free and clock-free. Handshake, frames, SIMD unmasking, streaming
//!   UTF-8 validation, the connection state machine, limits and errors. It never touches a
//!   socket; time is an argument.
//! - [`runtime`]: what owns syscalls. Today its byte-level io_uring layer (rings, provided-buffer
//!   rings, multishot accept/recv, gathered sends), which knows nothing of WebSocket; the per-core
//!   workers that join it to `proto` come next. With `proto::mask`, the only `unsafe` code.
//! - [`manual`]: documentation only: the security duties of a WebSocket server and the past
//!   vulnerabilities of its kind, each mapped to the code and the test that prevents it.
//!
//! The per-core workers, timers and the server API sit on top of both and are built in later
//! steps; see the README.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod broker;
pub mod manual;
pub mod proto;
#[allow(unsafe_code)]
pub mod runtime;
pub mod server;
