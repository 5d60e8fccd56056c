//! Applications that ship with the server, selected by `ringws --mode`.
//!
//! | mode | module |
//! |---|---|
//! | `echo` | [`echo`]: every message back to its sender (Autobahn, benchmarks) |
//!
//! The chat backend (rooms, JSON protocol, demo page) joins here later.

pub mod echo;
