//! Applications that ship with the server, selected by `ringws --mode`.
//!
//! | mode | module |
//! |---|---|
//! | `echo` | [`echo`]: every message back to its sender (Autobahn, benchmarks) |
//! | `chat` | [`chat`]: rooms across all cores, a JSON protocol, the demo page, metrics |

pub mod chat;
pub mod echo;
