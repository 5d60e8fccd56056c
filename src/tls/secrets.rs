//! The TLS 1.3 application traffic secrets of the handshake being driven on this thread,
//! caught from rustls' key log ([`rustls::KeyLog`], the interface behind `SSLKEYLOGFILE`):
//! rustls hands out a finished session's keys but not the secrets a key update is derived
//! from (its `KernelConnection` would, at about 1 KiB per connection). Nothing is written
//! anywhere: the secrets go into a thread-local slot that [`capture`] empties around one
//! session's call, so they reach that session and no other.

use std::cell::RefCell;

use super::record::{Secret, TrafficSecrets};

const CLIENT: &str = "CLIENT_TRAFFIC_SECRET_0";
const SERVER: &str = "SERVER_TRAFFIC_SECRET_0";

#[derive(Default)]
struct Slot {
    client: Option<Secret>,
    server: Option<Secret>,
}

thread_local! {
    static SLOT: RefCell<Slot> = RefCell::new(Slot::default());
}

/// The key log every [`super::TlsConfig`] installs.
#[derive(Debug)]
pub struct Catch;

impl rustls::KeyLog for Catch {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        SLOT.with_borrow_mut(|slot| match label {
            CLIENT => slot.client = Some(Secret::new(secret)),
            SERVER => slot.server = Some(Secret::new(secret)),
            _ => {}
        });
    }

    fn will_log(&self, label: &str) -> bool {
        label == CLIENT || label == SERVER
    }
}

/// Runs `f` (one session's call into rustls) and returns what it returned with the traffic
/// secrets rustls logged meanwhile, once both were.
pub fn capture<T>(f: impl FnOnce() -> T) -> (T, Option<TrafficSecrets>) {
    SLOT.with_borrow_mut(|slot| *slot = Slot::default());
    let result = f();
    let slot = SLOT.with_borrow_mut(std::mem::take);
    let secrets = match slot {
        Slot {
            client: Some(client),
            server: Some(server),
        } => Some(TrafficSecrets { client, server }),
        _ => None,
    };
    (result, secrets)
}
