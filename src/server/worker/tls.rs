//! The worker's side of TLS: one [`Session`] per connection (by slot), and the buffers a
//! receive passes through. The worker decrypts what it receives before the protocol core sees
//! it, and seals what a connection's queue holds just before sending it:
//!
//! ```text
//!  receive buffer ──WorkerTls::receive──▶ plaintext ──▶ Slot::on_bytes (upgrade, frames)
//!                 └──▶ TLS records (handshake, alerts): queued as Kind::Sealed
//!  flush: Outbox::seal(run of frames ──Session::seal──▶ records), then one gathered send
//! ```

use std::collections::HashMap;

use bytes::Bytes;

use crate::server::counters::Counters;
use crate::server::outbox::Outbox;
use crate::tls::{Session, TlsConfig, TlsError};

/// What a receive gave.
#[derive(Debug, Default)]
pub(super) struct Decrypted {
    /// Records the session must send (handshake, tickets), in order.
    pub(super) records: Option<Bytes>,
    /// The handshake finished with this receive.
    pub(super) handshake_done: bool,
    /// The peer said `close_notify`.
    pub(super) peer_closed: bool,
}

/// Counts a failed session under its reason ([`TlsError::reason`]).
pub(super) fn count_failure(counters: &Counters, during_handshake: bool, reason: &str) {
    let c = match (during_handshake, reason) {
        (true, "malformed") => &counters.tls_handshake_failures_reason_malformed,
        (true, "alert") => &counters.tls_handshake_failures_reason_alert,
        (true, "incompatible") => &counters.tls_handshake_failures_reason_incompatible,
        (true, _) => &counters.tls_handshake_failures_reason_other,
        (false, "bad_record") => &counters.tls_failures_reason_bad_record,
        (false, "alert") => &counters.tls_failures_reason_alert,
        (false, "malformed") => &counters.tls_failures_reason_malformed,
        (false, _) => &counters.tls_failures_reason_other,
    };
    Counters::inc(c, 1);
}

/// TLS on one worker.
pub(super) struct WorkerTls {
    config: TlsConfig,
    /// Each TLS connection's session: slot → (generation, session).
    sessions: HashMap<u32, (u32, Box<Session>)>,
    /// The plaintext of the current receive (its allocation reused).
    pub(super) plain: Vec<u8>,
    /// The records of the current receive (its allocation reused).
    records: Vec<u8>,
}

impl WorkerTls {
    pub(super) fn new(config: TlsConfig) -> Self {
        WorkerTls {
            config,
            sessions: HashMap::new(),
            plain: Vec::new(),
            records: Vec::new(),
        }
    }

    /// A new connection's session.
    pub(super) fn open(&mut self, slot: u32, generation: u32) -> Result<(), TlsError> {
        let session = Box::new(Session::new(&self.config)?);
        self.sessions.insert(slot, (generation, session));
        Ok(())
    }

    /// The connection in `slot` is gone.
    pub(super) fn forget(&mut self, slot: u32) {
        self.sessions.remove(&slot);
    }

    fn session(&mut self, slot: u32, generation: u32) -> Option<&mut Session> {
        match self.sessions.get_mut(&slot) {
            Some((g, s)) if *g == generation => Some(s),
            _ => None,
        }
    }

    /// Decrypts `input` for `(slot, generation)`: its plaintext is left in [`WorkerTls::plain`]
    /// (cleared first). `None`: the slot has no session.
    ///
    /// # Errors
    /// The session failed; the alert to send, if any, comes with the error.
    pub(super) fn receive(
        &mut self,
        slot: u32,
        generation: u32,
        input: &mut [u8],
    ) -> Option<Result<Decrypted, (TlsError, Option<Bytes>)>> {
        let WorkerTls {
            sessions,
            plain,
            records,
            ..
        } = self;
        let session = match sessions.get_mut(&slot) {
            Some((g, s)) if *g == generation => s,
            _ => return None,
        };
        plain.clear();
        records.clear();
        let was_handshaking = session.is_handshaking();
        let result = session.receive(input, records, &mut |p| plain.extend_from_slice(p));
        let out = (!records.is_empty()).then(|| Bytes::copy_from_slice(records));
        Some(match result {
            Ok(got) => Ok(Decrypted {
                records: out,
                handshake_done: was_handshaking && got.open,
                peer_closed: got.peer_closed,
            }),
            Err(e) => Err((e, out)),
        })
    }

    /// Seals what waits in `out` for `(slot, generation)` (and, with `close_notify`, ends this
    /// side's stream). Nothing happens for a slot without a session, or while its handshake
    /// goes on (the upgrade's answer cannot be queued before the request came, which needs the
    /// handshake done).
    ///
    /// # Errors
    /// The session is closed or failed.
    pub(super) fn seal(
        &mut self,
        slot: u32,
        generation: u32,
        out: &mut Outbox,
        close_notify: bool,
    ) -> Result<(), TlsError> {
        let Some(session) = self.session(slot, generation) else {
            return Ok(());
        };
        if session.is_dead() {
            // What was sealed before it failed (the alert among it) still goes out; what
            // was not never will.
            out.retain_sealed();
            return Ok(());
        }
        if session.is_handshaking() {
            return Ok(());
        }
        out.seal(|plain, records| session.seal(plain, records))?;
        if close_notify {
            let mut records = Vec::new();
            session.close(&mut records)?;
            if !records.is_empty() {
                out.push(Bytes::from(records), crate::server::outbox::Kind::Sealed);
            }
        }
        Ok(())
    }
}
