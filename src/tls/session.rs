//! One connection's TLS: rustls' [`UnbufferedServerConnection`] for the handshake (and for a
//! TLS 1.2 session throughout), then for TLS 1.3 only its keys ([`Records`]); and the bytes of
//! a record not yet whole. Inputs: [`Session::receive`] (ciphertext from the socket), [`Session::seal`]
//! (plaintext to send), [`Session::close`]; outputs: plaintext to the `deliver` callback and
//! records appended to the caller's `out` (send them in order, all of them).
//!
//! ```text
//!  ExpectClientHello ──receive──▶ Handshaking ──(client Finished)──▶ Open ──close/peer──▶ Closed
//!        │ garbage, plaintext HTTP,    │ bad record, alert,                │ bad record,
//!        │ a truncated or oversized    │ no common protocol/ALPN           │ alert mid-stream
//!        └────────────── TlsError (a fatal alert appended to `out` where rustls has one) ──▶ dead
//! ```
//!
//! Nothing here reads a clock or a socket; the handshake's deadline is the caller's (the
//! server's handshake timeout covers the TLS handshake and the HTTP upgrade together).

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};

use super::TlsConfig;
use super::record::{Records, Suite, TrafficSecrets};
use super::secrets;

/// Most plaintext in one record (RFC 8446 §5.1).
pub const MAX_PLAINTEXT: usize = 16 * 1024;
/// Most bytes kept waiting for a record or a handshake message to be whole: a handshake message
/// may span records, up to rustls' limit of 64 KiB, plus a record's header and overhead.
pub const MAX_PENDING: usize = 64 * 1024 + 2 * (MAX_PLAINTEXT + 256);
/// Most state changes one call may go through (a bound on a peer that feeds the state machine
/// something that never settles: a handshake is a dozen).
pub const MAX_STEPS: usize = 4096;

/// Why a session failed. It is dead afterwards: close the socket once `out` is sent.
#[derive(Debug, Clone, PartialEq)]
pub enum TlsError {
    /// rustls refused what the peer sent (a malformed or unexpected record, a bad handshake, an
    /// alert from the peer, no protocol in common); a fatal alert is in `out` where there is
    /// one to send.
    Protocol(rustls::Error),
    /// More than [`MAX_PENDING`] bytes without a whole record or handshake message.
    TooMuchPending,
    /// Plaintext given before the handshake finished.
    NotReady,
    /// The session is closed (both sides said `close_notify`, or it failed before).
    Closed,
    /// The state machine did not settle within [`MAX_STEPS`].
    Stuck,
}

impl TlsError {
    /// A short reason, by kind (for counters and logs): `"malformed"` (not TLS, or records
    /// too large: plaintext HTTP, garbage), `"alert"` (the peer sent one), `"incompatible"` (no
    /// version, cipher suite or ALPN protocol in common), `"bad_record"` (a record that does not
    /// decrypt), `"other"`.
    pub fn reason(&self) -> &'static str {
        use rustls::Error as E;
        match self {
            TlsError::Protocol(E::InvalidMessage(_)) | TlsError::TooMuchPending => "malformed",
            TlsError::Protocol(E::AlertReceived(_)) => "alert",
            TlsError::Protocol(E::PeerIncompatible(_) | E::NoApplicationProtocol) => "incompatible",
            TlsError::Protocol(E::DecryptError) => "bad_record",
            TlsError::Protocol(_) | TlsError::NotReady | TlsError::Closed | TlsError::Stuck => {
                "other"
            }
        }
    }
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Protocol(e) => write!(f, "TLS: {e}"),
            TlsError::TooMuchPending => write!(f, "TLS: more than {MAX_PENDING} bytes pending"),
            TlsError::NotReady => write!(f, "TLS: the handshake has not finished"),
            TlsError::Closed => write!(f, "TLS: closed"),
            TlsError::Stuck => write!(f, "TLS: the state machine did not settle"),
        }
    }
}

impl std::error::Error for TlsError {}

/// What one [`Session::receive`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Plaintext bytes handed to `deliver`.
    pub plaintext: usize,
    /// The handshake is done (now or before): plaintext may be sealed.
    pub open: bool,
    /// The peer said `close_notify`: no more plaintext will come.
    pub peer_closed: bool,
    /// Both sides said `close_notify`.
    pub closed: bool,
}

/// Who holds the keys.
enum Stage {
    /// rustls: the handshake, and a TLS 1.2 session throughout.
    Rustls(Box<Handshake>),
    /// A TLS 1.3 session once its handshake is done: the keys and sequence numbers.
    Open(Box<Records>),
    /// Between the two, within one call; or after a failed hand-over (the session is dead).
    Gone,
}

struct Handshake {
    conn: UnbufferedServerConnection,
    /// The TLS 1.3 traffic secrets, once rustls logged them (a key update needs them).
    secrets: Option<TrafficSecrets>,
}

/// One connection's TLS state.
pub struct Session {
    stage: Stage,
    /// The bytes not yet consumed: an incomplete record, or records of a handshake message
    /// not yet whole. Empty, and without an allocation, while nothing waits.
    pending: Vec<u8>,
    /// The protocol agreed by ALPN and the version, kept from the handshake.
    alpn: Option<&'static [u8]>,
    version: Option<rustls::ProtocolVersion>,
    /// It failed: nothing more goes in or out (rustls would still encrypt after some errors).
    dead: bool,
    /// This side said `close_notify`.
    notified: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("handshaking", &self.is_handshaking())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// The one protocol this server offers by ALPN.
const HTTP_1_1: &[u8] = b"http/1.1";

impl Session {
    /// A session for a new connection.
    ///
    /// # Errors
    /// rustls cannot start one from `config` (not with a configuration from [`TlsConfig`]).
    pub fn new(config: &TlsConfig) -> Result<Self, TlsError> {
        let conn = UnbufferedServerConnection::new(config.rustls()).map_err(TlsError::Protocol)?;
        Ok(Session {
            stage: Stage::Rustls(Box::new(Handshake {
                conn,
                secrets: None,
            })),
            pending: Vec::new(),
            alpn: None,
            version: None,
            dead: false,
            notified: false,
        })
    }

    /// Whether the handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        match &self.stage {
            Stage::Rustls(h) => h.conn.is_handshaking(),
            Stage::Open(_) | Stage::Gone => false,
        }
    }

    /// Whether the session holds only its keys (TLS 1.3 after the handshake), rustls' state
    /// dropped.
    pub fn is_lean(&self) -> bool {
        matches!(self.stage, Stage::Open(_))
    }

    /// The protocol agreed by ALPN (`http/1.1`), once the handshake is done.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.alpn
    }

    /// The TLS version in use, once agreed (`"TLSv1_3"`, `"TLSv1_2"`).
    pub fn version(&self) -> Option<rustls::ProtocolVersion> {
        match &self.stage {
            Stage::Rustls(h) => h.conn.protocol_version(),
            Stage::Open(_) | Stage::Gone => self.version,
        }
    }

    /// Whether the session failed (nothing more goes in or out; what it sealed before, its
    /// alert among them, may still be sent).
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Bytes waiting for a record to be whole.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Takes `input` (ciphertext as it came, in place: records are decrypted where they lie):
    /// the plaintext of every whole record goes to `deliver`, in order; what the session must
    /// send (handshake records, a ticket, an alert) is appended to `out`.
    ///
    /// # Errors
    /// The session failed ([`TlsError`]); `out` may hold an alert to send before closing.
    pub fn receive(
        &mut self,
        input: &mut [u8],
        out: &mut Vec<u8>,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<Received, TlsError> {
        if self.dead {
            return Err(TlsError::Closed);
        }
        let result = self.receive_records(input, out, deliver);
        self.dead = result.is_err();
        result
    }

    fn receive_records(
        &mut self,
        input: &mut [u8],
        out: &mut Vec<u8>,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<Received, TlsError> {
        let mut got = Received::default();
        if self.pending.is_empty() {
            let used = self.process(input, out, deliver, &mut got)?;
            if used < input.len() {
                self.keep(&input[used..])?;
            }
        } else {
            self.keep(input)?;
            let mut buf = std::mem::take(&mut self.pending);
            let used = self.process(&mut buf, out, deliver, &mut got)?;
            buf.drain(..used);
            if !buf.is_empty() {
                self.pending = buf; // else dropped: an idle session holds no buffer
            }
        }
        got.open = !self.is_handshaking();
        got.closed = got.peer_closed && self.notified;
        Ok(got)
    }

    /// Processes the records in `buf` (rustls' part, then the keys' part once the TLS 1.3
    /// handshake is done): returns the bytes consumed from its front.
    fn process(
        &mut self,
        buf: &mut [u8],
        out: &mut Vec<u8>,
        deliver: &mut dyn FnMut(&[u8]),
        got: &mut Received,
    ) -> Result<usize, TlsError> {
        let mut used = 0;
        if let Stage::Rustls(h) = &mut self.stage {
            let (result, logged) =
                secrets::capture(|| process(&mut h.conn, buf, out, deliver, got));
            if logged.is_some() {
                h.secrets = logged;
            }
            used = result?;
            if !h.conn.is_handshaking() && self.version.is_none() {
                self.alpn = h
                    .conn
                    .alpn_protocol()
                    .and_then(|p| (p == HTTP_1_1).then_some(HTTP_1_1));
                self.version = h.conn.protocol_version();
            }
            // Handed over only where rustls took every byte (a record boundary, nothing of a
            // message half read), else on a later call that ends on one.
            if self.version.is_some() && used == buf.len() {
                self.hand_over(got.peer_closed)?;
            }
        }
        if let Stage::Open(records) = &mut self.stage {
            used += records.open(&mut buf[used..], out, deliver, got)?;
        }
        Ok(used)
    }

    /// A TLS 1.3 session whose handshake is done keeps its keys and drops rustls' state; a
    /// TLS 1.2 one stays with rustls. `peer_closed`: rustls read the peer's `close_notify`.
    fn hand_over(&mut self, peer_closed: bool) -> Result<(), TlsError> {
        let Stage::Rustls(h) = &self.stage else {
            return Ok(());
        };
        let suite = h
            .conn
            .negotiated_cipher_suite()
            .and_then(|s| Suite::of(s.suite()));
        let (Some(suite), Some(_)) = (suite, &h.secrets) else {
            return Ok(());
        };
        let Stage::Rustls(h) = std::mem::replace(&mut self.stage, Stage::Gone) else {
            return Ok(());
        };
        let Handshake { conn, secrets } = *h;
        let (extracted, _kernel) = conn
            .dangerous_into_kernel_connection()
            .map_err(TlsError::Protocol)?;
        // A mismatch (a client that updated its key in the very read that finished the
        // handshake) fails the session: the keys rustls used are the only truth left.
        let mut records = secrets
            .and_then(|s| Records::new(suite, s, &extracted.rx, &extracted.tx))
            .ok_or_else(|| {
                TlsError::Protocol(rustls::Error::General(
                    "the logged traffic secrets do not match the session's keys".into(),
                ))
            })?;
        if peer_closed {
            records.set_peer_closed();
        }
        self.stage = Stage::Open(Box::new(records));
        Ok(())
    }

    /// Encrypts `plaintext` into records appended to `out` (at most [`MAX_PLAINTEXT`] each).
    ///
    /// # Errors
    /// [`TlsError::NotReady`] during the handshake, [`TlsError::Closed`] after a close.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), TlsError> {
        if let Stage::Open(records) = &mut self.stage {
            return match (self.dead, self.notified) {
                (false, false) => records.seal(plaintext, out),
                _ => Err(TlsError::Closed),
            };
        }
        self.writing(out, |w, out| {
            for chunk in plaintext.chunks(MAX_PLAINTEXT) {
                fill(out, chunk.len() + 64, |b| {
                    w.encrypt(chunk, b).map_err(|e| match e {
                        EncryptError::InsufficientSize(s) => Fill::Grow(s),
                        EncryptError::EncryptExhausted => Fill::Fail(TlsError::Closed),
                    })
                })?;
            }
            Ok(())
        })
    }

    /// Appends a `close_notify` alert to `out` (the end of this side's stream); once only.
    ///
    /// # Errors
    /// As [`Session::seal`].
    pub fn close(&mut self, out: &mut Vec<u8>) -> Result<(), TlsError> {
        if self.notified {
            return Ok(());
        }
        self.notified = true;
        if let Stage::Open(records) = &mut self.stage {
            if self.dead {
                return Err(TlsError::Closed);
            }
            return records.close_notify(out);
        }
        self.writing(out, |w, out| {
            fill(out, 64, |b| {
                w.queue_close_notify(b).map_err(|e| match e {
                    EncryptError::InsufficientSize(s) => Fill::Grow(s),
                    _ => Fill::Fail(TlsError::Closed),
                })
            })
        })
    }

    /// Runs `write` once the session may write application data (after flushing what rustls
    /// has to send first).
    fn writing(
        &mut self,
        out: &mut Vec<u8>,
        write: impl FnOnce(
            &mut rustls::unbuffered::WriteTraffic<'_, rustls::server::ServerConnectionData>,
            &mut Vec<u8>,
        ) -> Result<(), TlsError>,
    ) -> Result<(), TlsError> {
        let Stage::Rustls(h) = &mut self.stage else {
            return Err(TlsError::Closed);
        };
        if self.dead {
            return Err(TlsError::Closed);
        }
        if h.conn.is_handshaking() {
            return Err(TlsError::NotReady);
        }
        // What waits in `pending` is an incomplete record: handed back as it is (rustls must
        // see the same bytes at the front), nothing of it is consumed here.
        for _ in 0..MAX_STEPS {
            let UnbufferedStatus { state, .. } = h.conn.process_tls_records(&mut self.pending);
            match state.map_err(TlsError::Protocol)? {
                ConnectionState::WriteTraffic(mut w) => return write(&mut w, out),
                ConnectionState::EncodeTlsData(mut e) => encode(&mut e, out)?,
                ConnectionState::TransmitTlsData(t) => t.done(),
                ConnectionState::Closed => return Err(TlsError::Closed),
                _ => return Err(TlsError::NotReady),
            }
        }
        Err(TlsError::Stuck)
    }

    /// Keeps `bytes` for the next call, within [`MAX_PENDING`].
    fn keep(&mut self, bytes: &[u8]) -> Result<(), TlsError> {
        if self.pending.len() + bytes.len() > MAX_PENDING {
            return Err(TlsError::TooMuchPending);
        }
        self.pending.extend_from_slice(bytes);
        Ok(())
    }
}

/// Processes the records in `buf` until the session needs more input (or closes): returns the
/// bytes consumed from its front.
fn process(
    conn: &mut UnbufferedServerConnection,
    buf: &mut [u8],
    out: &mut Vec<u8>,
    deliver: &mut dyn FnMut(&[u8]),
    got: &mut Received,
) -> Result<usize, TlsError> {
    let mut used = 0;
    for _ in 0..MAX_STEPS {
        let UnbufferedStatus { mut discard, state } = conn.process_tls_records(&mut buf[used..]);
        let state = match state {
            Ok(state) => state,
            Err(e) => {
                used += discard;
                alert(conn, &mut buf[used..], out);
                return Err(TlsError::Protocol(e));
            }
        };
        match state {
            ConnectionState::ReadTraffic(mut r) => {
                while let Some(record) = r.next_record() {
                    let record = record.map_err(TlsError::Protocol)?;
                    discard += record.discard;
                    got.plaintext += record.payload.len();
                    deliver(record.payload);
                }
            }
            ConnectionState::EncodeTlsData(mut e) => encode(&mut e, out)?,
            // What was encoded stays in `out`: the caller sends it.
            ConnectionState::TransmitTlsData(t) => t.done(),
            ConnectionState::PeerClosed => got.peer_closed = true,
            ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_) => {
                return Ok(used + discard);
            }
            ConnectionState::Closed => {
                got.peer_closed = true;
                got.closed = true;
                return Ok(used + discard);
            }
            // No early data is accepted (the configuration allows none).
            _ => return Err(TlsError::NotReady),
        }
        used += discard;
    }
    Err(TlsError::Stuck)
}

/// After a failure, the fatal alert rustls queued (if any), appended to `out`; `rest` is what
/// the failed call left undiscarded (rustls must see the same bytes at the front). Asked once:
/// rustls hands out what it queued before reading input, and asking again would process the
/// bad bytes again.
fn alert(conn: &mut UnbufferedServerConnection, rest: &mut [u8], out: &mut Vec<u8>) {
    let UnbufferedStatus { state, .. } = conn.process_tls_records(rest);
    if let Ok(ConnectionState::EncodeTlsData(mut e)) = state {
        let _ = encode(&mut e, out);
    }
}

fn encode(
    e: &mut rustls::unbuffered::EncodeTlsData<'_, rustls::server::ServerConnectionData>,
    out: &mut Vec<u8>,
) -> Result<(), TlsError> {
    fill(out, 4096, |b| {
        e.encode(b).map_err(|err| match err {
            EncodeError::InsufficientSize(s) => Fill::Grow(s),
            _ => Fill::Fail(TlsError::Stuck),
        })
    })
}

/// Why a write into `out` did not happen.
enum Fill {
    /// `out` needs this much room.
    Grow(InsufficientSizeError),
    Fail(TlsError),
}

/// Appends what `write` writes to `out`: first with `guess` bytes of room, then with what it
/// says it needs.
fn fill(
    out: &mut Vec<u8>,
    guess: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Fill>,
) -> Result<(), TlsError> {
    let start = out.len();
    out.resize(start + guess, 0);
    let written = match write(&mut out[start..]) {
        Ok(n) => n,
        Err(Fill::Grow(need)) => {
            out.resize(start + need.required_size, 0);
            match write(&mut out[start..]) {
                Ok(n) => n,
                Err(Fill::Grow(_)) => {
                    out.truncate(start);
                    return Err(TlsError::Stuck);
                }
                Err(Fill::Fail(e)) => {
                    out.truncate(start);
                    return Err(e);
                }
            }
        }
        Err(Fill::Fail(e)) => {
            out.truncate(start);
            return Err(e);
        }
    };
    out.truncate(start + written);
    Ok(())
}
