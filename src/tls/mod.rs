//! TLS for `wss://` and `https://`, sans-IO: rustls' unbuffered API, driven by whoever owns the
//! socket (the workers: `server/worker/tls.rs`). Ciphertext goes in ([`Session::receive`]) and plaintext comes out to a callback;
//! plaintext goes in ([`Session::seal`]) and records come out into the caller's buffer. The
//! session keeps its keys and record state and nothing else: no receive or send buffer while
//! idle (an incomplete record waits in a buffer of its own, freed once it is whole).
//!
//! ```text
//!   socket ─ciphertext─▶ Session::receive ─plaintext─▶ protocol core (HTTP upgrade, frames)
//!          ◀─records──── (handshake, alerts: appended to the caller's `out`)
//!   protocol core ─frames─▶ Session::seal ─records─▶ socket
//! ```
//!
//! | module | concept |
//! |---|---|
//! | [`config`] | the certificate and key (PEM), the rustls configuration: TLS 1.3 and 1.2, ALPN `http/1.1`, resumption |
//! | [`session`] | one connection's TLS: handshake, records in and out, alerts, close |
//! | [`record`] | TLS 1.3 records after the handshake: the keys, nonces, key updates, alerts |
//! | [`secrets`] | the TLS 1.3 traffic secrets, caught from rustls' key log for [`record`] |

pub mod config;
pub mod record;
pub mod secrets;
pub mod session;

pub use config::{NamedFiles, TlsConfig, TlsConfigError};
pub use session::{Received, Session, TlsError};
