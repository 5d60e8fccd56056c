//! TLS 1.3 records once the handshake is done (RFC 8446 §5), kept as small as the protocol
//! allows: per direction the AEAD key, the IV, the traffic secret (for a key update) and a
//! sequence number. rustls does the handshake; then the session's keys are taken from it
//! ([`Records::new`]) and everything rustls kept besides (the handshake's state machine, its
//! record layer and buffers: about 3 KiB) is dropped.
//!
//! What a record layer must do after the handshake, and where it is done here:
//!
//! | RFC 8446 | here |
//! |---|---|
//! | §5.2 records: `application_data` outer type, `TLSCiphertext.length` ≤ 2^14 + 256, the inner content type after the padding | [`Records::open`] |
//! | §5.3 per-record nonce: the IV XOR the 64-bit sequence number | `Direction::nonce` |
//! | §5.5 AES-GCM: at most 2^24.5 records per key | [`Records::seal`] updates its key first ([`AES_GCM_RECORDS_PER_KEY`]) |
//! | §4.6.3 `KeyUpdate`: the next receive key at once, and an update of our own, when asked, before the next record sealed | `Records::handshake`, [`Records::seal`] |
//! | §6 alerts: `close_notify` ends the peer's stream, `user_canceled` is ignored, any other alert is fatal; data after `close_notify` is ignored | `Records::alert` |
//! | §5 a `change_cipher_spec` after the handshake, an unknown content type, a record that does not decrypt: fatal | [`Records::open`] |
//!
//! Every failure appends the fatal alert it calls for (encrypted) to the caller's `out` and
//! returns a [`TlsError`] whose [`TlsError::reason`] names it for the counters.

use rustls::{AlertDescription, CipherSuite, ConnectionTrafficSecrets, Error, InvalidMessage};
use zeroize::Zeroizing;

use super::session::{MAX_PLAINTEXT, Received, TlsError};

/// A record's header: content type, legacy version, length.
pub const HEADER: usize = 5;
/// The AEAD tag of every suite TLS 1.3 has.
const TAG: usize = 16;
/// The most a record's ciphertext may hold (RFC 8446 §5.2: 2^14 + 256).
pub const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;
/// Records sealed with one AES-GCM key before this side updates it (RFC 8446 §5.5 allows
/// 2^24.5 full-size records; rustls uses the same bound).
pub const AES_GCM_RECORDS_PER_KEY: u64 = 1 << 24;

const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
/// The handshake message type of `KeyUpdate`, and its whole length (type, 3-byte length, the
/// one-byte request).
const KEY_UPDATE: u8 = 24;
const KEY_UPDATE_LEN: usize = 5;
/// What a peer may send in a row without application data that carries bytes, each answered
/// by a little work and nothing else: key updates, `user_canceled` alerts, empty records (the
/// limits rustls keeps: 32, 4, 32). Past them the session fails.
pub const MAX_KEY_UPDATES_IN_A_ROW: u8 = 32;
/// See [`MAX_KEY_UPDATES_IN_A_ROW`].
pub const MAX_WARNINGS_IN_A_ROW: u8 = 4;
/// See [`MAX_KEY_UPDATES_IN_A_ROW`].
pub const MAX_EMPTY_RECORDS_IN_A_ROW: u8 = 32;
/// Alert levels (RFC 8446 §6: ignored on receipt, but sent as they were).
const WARNING: u8 = 1;
const FATAL: u8 = 2;

/// The AEAD and hash of a TLS 1.3 cipher suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// `TLS_AES_128_GCM_SHA256`
    Aes128Gcm,
    /// `TLS_AES_256_GCM_SHA384`
    Aes256Gcm,
    /// `TLS_CHACHA20_POLY1305_SHA256`
    Chacha20Poly1305,
}

impl Suite {
    /// The suite rustls agreed, if it is a TLS 1.3 one.
    pub fn of(suite: CipherSuite) -> Option<Suite> {
        match suite {
            CipherSuite::TLS13_AES_128_GCM_SHA256 => Some(Suite::Aes128Gcm),
            CipherSuite::TLS13_AES_256_GCM_SHA384 => Some(Suite::Aes256Gcm),
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => Some(Suite::Chacha20Poly1305),
            _ => None,
        }
    }

    fn aead(self) -> &'static ring::aead::Algorithm {
        match self {
            Suite::Aes128Gcm => &ring::aead::AES_128_GCM,
            Suite::Aes256Gcm => &ring::aead::AES_256_GCM,
            Suite::Chacha20Poly1305 => &ring::aead::CHACHA20_POLY1305,
        }
    }

    fn hkdf(self) -> ring::hkdf::Algorithm {
        match self {
            Suite::Aes256Gcm => ring::hkdf::HKDF_SHA384,
            Suite::Aes128Gcm | Suite::Chacha20Poly1305 => ring::hkdf::HKDF_SHA256,
        }
    }

    /// Records one key may seal (RFC 8446 §5.5; ChaCha20-Poly1305 has no practical bound).
    fn records_per_key(self) -> u64 {
        match self {
            Suite::Aes128Gcm | Suite::Aes256Gcm => AES_GCM_RECORDS_PER_KEY,
            Suite::Chacha20Poly1305 => u64::MAX,
        }
    }
}

/// A traffic secret (the hash's length: 32 or 48 bytes), wiped when dropped. Held inline: no
/// allocation of its own.
pub struct Secret {
    bytes: Zeroizing<[u8; Secret::MAX]>,
    len: u8,
}

impl Secret {
    /// The longest secret: SHA-384's output.
    pub const MAX: usize = 48;

    /// `bytes` (at most [`Secret::MAX`]: what a longer one has past it is not kept, and no
    /// TLS 1.3 hash is longer).
    pub fn new(bytes: &[u8]) -> Secret {
        let len = bytes.len().min(Self::MAX);
        let mut secret = Secret {
            bytes: Zeroizing::new([0; Self::MAX]),
            len: len as u8, // at most 48
        };
        secret.bytes[..len].copy_from_slice(&bytes[..len]);
        secret
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.len)
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context, into `out`.
fn expand_label(suite: Suite, secret: &[u8], label: &[u8], out: &mut [u8]) {
    struct Len(usize);
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let length = u16::try_from(out.len()).unwrap_or(u16::MAX).to_be_bytes();
    let label_len = [u8::try_from(6 + label.len()).unwrap_or(u8::MAX)];
    let info: [&[u8]; 5] = [&length, &label_len, b"tls13 ", label, &[0]];
    let prk = ring::hkdf::Prk::new_less_safe(suite.hkdf(), secret);
    // The lengths asked here (a key, an IV, a secret) are far below HKDF's 255 × hash bound.
    if let Ok(okm) = prk.expand(&info, Len(out.len())) {
        let _ = okm.fill(out);
    }
}

/// One direction's keys and position.
struct Direction {
    key: ring::aead::LessSafeKey,
    iv: [u8; 12],
    secret: Secret,
    seq: u64,
}

impl std::fmt::Debug for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direction")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Direction {
    /// The key and IV of `secret` (RFC 8446 §7.3), from sequence number `seq`.
    fn from_secret(suite: Suite, secret: Secret, seq: u64) -> Option<Direction> {
        let mut key = Zeroizing::new([0u8; 32]);
        let key = &mut key[..suite.aead().key_len()];
        expand_label(suite, secret.as_bytes(), b"key", key);
        let mut iv = [0u8; 12];
        expand_label(suite, secret.as_bytes(), b"iv", &mut iv);
        let key = ring::aead::UnboundKey::new(suite.aead(), key).ok()?;
        Some(Direction {
            key: ring::aead::LessSafeKey::new(key),
            iv,
            secret,
            seq,
        })
    }

    /// The next generation's keys (RFC 8446 §7.2: `application_traffic_secret_N+1`).
    fn next(&self, suite: Suite) -> Option<Direction> {
        let mut next = Secret::new(self.secret.as_bytes());
        let len = usize::from(next.len);
        expand_label(
            suite,
            self.secret.as_bytes(),
            b"traffic upd",
            &mut next.bytes[..len],
        );
        Direction::from_secret(suite, next, 0)
    }

    /// This record's nonce (RFC 8446 §5.3), and the sequence number moved on.
    fn nonce(&mut self) -> ring::aead::Nonce {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        self.seq += 1;
        ring::aead::Nonce::assume_unique_for_key(nonce)
    }
}

/// Whether a record's key and IV derived from a captured secret are those rustls used.
fn same_keys(derived: &Direction, suite: Suite, extracted: &ConnectionTrafficSecrets) -> bool {
    let (key, iv) = match extracted {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (key, iv),
        _ => return false,
    };
    let mut ours = Zeroizing::new([0u8; 32]);
    let ours = &mut ours[..suite.aead().key_len()];
    expand_label(suite, derived.secret.as_bytes(), b"key", ours);
    ours == key.as_ref() && derived.iv[..] == iv.as_ref()[..]
}

/// A TLS 1.3 connection's records after the handshake. Inputs: [`Records::open`] (whole or
/// partial records from the socket), [`Records::seal`] (plaintext), [`Records::close_notify`];
/// outputs: plaintext to the caller's `deliver`, records appended to the caller's `out`.
#[derive(Debug)]
pub struct Records {
    suite: Suite,
    rx: Direction,
    tx: Direction,
    /// A `KeyUpdate` not yet whole (RFC 8446 §5.1 lets a handshake message span records);
    /// never more than its five bytes.
    handshake: ([u8; KEY_UPDATE_LEN], u8),
    /// The peer said `close_notify`: what follows is ignored.
    peer_closed: bool,
    /// The peer asked for a key update: ours goes before the next record this side seals
    /// (§4.6.3), not at once (frames queued before may not be sealed yet).
    update_owed: bool,
    /// Key updates, warnings and empty records since application data with bytes in it.
    in_a_row: InARow,
}

/// Counts of what a peer sent in a row without application data (see
/// [`MAX_KEY_UPDATES_IN_A_ROW`]).
#[derive(Debug, Default, Clone, Copy)]
struct InARow {
    key_updates: u8,
    warnings: u8,
    empty: u8,
}

/// What [`Records::new`] needs beyond what rustls hands out.
#[derive(Debug)]
pub struct TrafficSecrets {
    /// `client_application_traffic_secret_0` (this side's receive secret).
    pub client: Secret,
    /// `server_application_traffic_secret_0`.
    pub server: Secret,
}

impl Records {
    /// The records of a TLS 1.3 session whose handshake is done: `secrets` as rustls logged
    /// them, checked against the keys and sequence numbers rustls hands out (`rx`, `tx`).
    /// `None` if they disagree (the keys rustls used are then the only truth, and a key update
    /// could not be followed).
    pub fn new(
        suite: Suite,
        secrets: TrafficSecrets,
        rx: &(u64, ConnectionTrafficSecrets),
        tx: &(u64, ConnectionTrafficSecrets),
    ) -> Option<Records> {
        let rx_dir = Direction::from_secret(suite, secrets.client, rx.0)?;
        let tx_dir = Direction::from_secret(suite, secrets.server, tx.0)?;
        if !same_keys(&rx_dir, suite, &rx.1) || !same_keys(&tx_dir, suite, &tx.1) {
            return None;
        }
        Some(Records {
            suite,
            rx: rx_dir,
            tx: tx_dir,
            handshake: ([0; KEY_UPDATE_LEN], 0),
            peer_closed: false,
            update_owed: false,
            in_a_row: InARow::default(),
        })
    }

    /// The peer already said `close_notify` (in what rustls read before the hand-over): what
    /// follows is ignored here too.
    pub fn set_peer_closed(&mut self) {
        self.peer_closed = true;
    }

    /// Records from traffic secrets alone (both at sequence number 0), for tests: a client's
    /// view is the same with the two swapped.
    #[cfg(test)]
    fn from_secrets(suite: Suite, rx: &[u8], tx: &[u8]) -> Records {
        let direction = |s| Direction::from_secret(suite, Secret::new(s), 0).unwrap();
        Records {
            suite,
            rx: direction(rx),
            tx: direction(tx),
            handshake: ([0; KEY_UPDATE_LEN], 0),
            peer_closed: false,
            update_owed: false,
            in_a_row: InARow::default(),
        }
    }

    /// Opens the whole records at the front of `buf` (decrypted where they lie): application
    /// data goes to `deliver`, in order; a fatal alert, on failure, is appended to `out` (a
    /// key update the peer asks for waits for [`Records::seal`]). Returns the bytes used; what
    /// is left is an incomplete record.
    ///
    /// # Errors
    /// A record that breaks RFC 8446 (a fatal alert for it is appended to `out`), or the
    /// peer's fatal alert.
    pub fn open(
        &mut self,
        buf: &mut [u8],
        out: &mut Vec<u8>,
        deliver: &mut dyn FnMut(&[u8]),
        got: &mut Received,
    ) -> Result<usize, TlsError> {
        let mut used = 0;
        while let Some(header) = buf.get(used..used + HEADER) {
            let (outer, len) = (
                header[0],
                usize::from(u16::from_be_bytes([header[3], header[4]])),
            );
            if outer == CHANGE_CIPHER_SPEC {
                return Err(self.fail(out, AlertDescription::UnexpectedMessage, malformed()));
            }
            if outer != APPLICATION_DATA || header[1] != 3 {
                let e = Error::InvalidMessage(InvalidMessage::InvalidContentType);
                return Err(self.fail(out, AlertDescription::UnexpectedMessage, e));
            }
            if len > MAX_CIPHERTEXT {
                let e = Error::InvalidMessage(InvalidMessage::MessageTooLarge);
                return Err(self.fail(out, AlertDescription::RecordOverflow, e));
            }
            let Some(record) = buf.get_mut(used..used + HEADER + len) else {
                break; // not whole yet
            };
            used += HEADER + len;
            if self.peer_closed {
                continue; // RFC 8446 §6.1: data after close_notify is ignored
            }
            let (header, body) = record.split_at_mut(HEADER);
            let aad = ring::aead::Aad::from(<[u8; HEADER]>::try_from(&*header).unwrap_or_default());
            let nonce = self.rx.nonce();
            let Ok(inner) = self.rx.key.open_in_place(nonce, aad, body) else {
                return Err(self.fail(out, AlertDescription::BadRecordMac, Error::DecryptError));
            };
            // TLSInnerPlaintext, padding included, is at most 2^14 + 1 bytes (§5.4).
            if inner.len() > MAX_PLAINTEXT + 1 {
                let e = Error::InvalidMessage(InvalidMessage::MessageTooLarge);
                return Err(self.fail(out, AlertDescription::RecordOverflow, e));
            }
            // The content type is the last byte that is not padding (§5.2).
            let Some(end) = inner.iter().rposition(|&b| b != 0) else {
                return Err(self.fail(out, AlertDescription::UnexpectedMessage, malformed()));
            };
            let (content, typ) = (&inner[..end], inner[end]);
            match typ {
                APPLICATION_DATA if self.handshake.1 == 0 => {
                    if content.is_empty() {
                        self.in_a_row.empty = self.in_a_row.empty.saturating_add(1);
                        if self.in_a_row.empty > MAX_EMPTY_RECORDS_IN_A_ROW {
                            let e = Error::InvalidMessage(InvalidMessage::InvalidEmptyPayload);
                            return Err(self.fail(out, AlertDescription::UnexpectedMessage, e));
                        }
                    } else {
                        self.in_a_row = InARow::default();
                        got.plaintext += content.len();
                        deliver(content);
                    }
                }
                ALERT if self.handshake.1 == 0 => self.alert(content, got, out)?,
                HANDSHAKE if !content.is_empty() => self.handshake(content, out)?,
                // Another type, or a handshake message interleaved with other records
                // (§5.1), or an empty handshake record.
                _ => return Err(self.fail(out, AlertDescription::UnexpectedMessage, malformed())),
            }
        }
        Ok(used)
    }

    /// An alert from the peer (RFC 8446 §6).
    fn alert(
        &mut self,
        content: &[u8],
        got: &mut Received,
        out: &mut Vec<u8>,
    ) -> Result<(), TlsError> {
        let &[_level, description] = content else {
            let e = Error::InvalidMessage(InvalidMessage::MessageTooShort);
            return Err(self.fail(out, AlertDescription::DecodeError, e));
        };
        match AlertDescription::from(description) {
            AlertDescription::CloseNotify => {
                self.peer_closed = true;
                got.peer_closed = true;
                Ok(())
            }
            // A close_notify follows.
            AlertDescription::UserCanceled => {
                self.in_a_row.warnings = self.in_a_row.warnings.saturating_add(1);
                if self.in_a_row.warnings > MAX_WARNINGS_IN_A_ROW {
                    let e = Error::InvalidMessage(InvalidMessage::UnexpectedMessage("warnings"));
                    return Err(self.fail(out, AlertDescription::UnexpectedMessage, e));
                }
                Ok(())
            }
            other => Err(TlsError::Protocol(Error::AlertReceived(other))),
        }
    }

    /// Handshake bytes after the handshake: only `KeyUpdate` may come (this server asks for no
    /// client certificate and a client sends no ticket), whole or across records.
    fn handshake(&mut self, mut content: &[u8], out: &mut Vec<u8>) -> Result<(), TlsError> {
        while !content.is_empty() {
            let (bytes, have) = &mut self.handshake;
            let take = (KEY_UPDATE_LEN - usize::from(*have)).min(content.len());
            bytes[usize::from(*have)..][..take].copy_from_slice(&content[..take]);
            *have += take as u8; // at most KEY_UPDATE_LEN
            content = &content[take..];
            if bytes[0] != KEY_UPDATE {
                return Err(self.fail(out, AlertDescription::UnexpectedMessage, malformed()));
            }
            if usize::from(*have) >= 4 && bytes[1..4] != [0, 0, 1] {
                let e = Error::InvalidMessage(InvalidMessage::InvalidKeyUpdate);
                return Err(self.fail(out, AlertDescription::DecodeError, e));
            }
            if usize::from(*have) < KEY_UPDATE_LEN {
                continue;
            }
            let request = bytes[4];
            self.handshake.1 = 0;
            // §4.6.3: a KeyUpdate ends its record (the next ones use the next key).
            if !content.is_empty() || request > 1 {
                let e = Error::InvalidMessage(InvalidMessage::InvalidKeyUpdate);
                let alert = if request > 1 {
                    AlertDescription::IllegalParameter
                } else {
                    AlertDescription::UnexpectedMessage
                };
                return Err(self.fail(out, alert, e));
            }
            self.in_a_row.key_updates = self.in_a_row.key_updates.saturating_add(1);
            if self.in_a_row.key_updates > MAX_KEY_UPDATES_IN_A_ROW {
                let e = Error::InvalidMessage(InvalidMessage::InvalidKeyUpdate);
                return Err(self.fail(out, AlertDescription::UnexpectedMessage, e));
            }
            self.rx = self.update(&self.rx)?;
            // Several requests before this side seals anything get one answer.
            self.update_owed |= request == 1;
        }
        Ok(())
    }

    /// The next generation of `direction`'s keys.
    fn update(&self, direction: &Direction) -> Result<Direction, TlsError> {
        // Fails only for a key length the suite does not have: never with these suites.
        direction
            .next(self.suite)
            .ok_or_else(|| TlsError::Protocol(Error::General("a key update failed".into())))
    }

    /// Sends a `KeyUpdate` (not asking for one back) and seals with the next key from now on.
    fn update_tx(&mut self, out: &mut Vec<u8>) -> Result<(), TlsError> {
        self.seal_record(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0], out);
        self.tx = self.update(&self.tx)?;
        Ok(())
    }

    /// Seals `plaintext` into application-data records (at most [`MAX_PLAINTEXT`] each)
    /// appended to `out`, updating this side's key first where the peer asked for it or where
    /// it has sealed as many records as its suite allows.
    ///
    /// # Errors
    /// A key update that could not be made (not with the suites TLS 1.3 has).
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), TlsError> {
        for chunk in plaintext.chunks(MAX_PLAINTEXT) {
            if self.update_owed || self.tx.seq >= self.suite.records_per_key() {
                self.update_owed = false;
                self.update_tx(out)?;
            }
            self.seal_record(APPLICATION_DATA, chunk, out);
        }
        Ok(())
    }

    /// Appends a `close_notify` alert to `out` (after the key update the peer asked for, if
    /// this side has not sealed anything since).
    ///
    /// # Errors
    /// As [`Records::seal`].
    pub fn close_notify(&mut self, out: &mut Vec<u8>) -> Result<(), TlsError> {
        if std::mem::take(&mut self.update_owed) {
            self.update_tx(out)?;
        }
        self.seal_record(ALERT, &[WARNING, 0], out);
        Ok(())
    }

    /// One record of inner type `typ` holding `content` (no padding), appended to `out`.
    fn seal_record(&mut self, typ: u8, content: &[u8], out: &mut Vec<u8>) {
        let len = content.len() + 1 + TAG; // at most MAX_PLAINTEXT + 17
        let header = [APPLICATION_DATA, 3, 3, (len >> 8) as u8, len as u8];
        let start = out.len();
        out.reserve(HEADER + len);
        out.extend_from_slice(&header);
        out.extend_from_slice(content);
        out.push(typ);
        let nonce = self.tx.nonce();
        let body = &mut out[start + HEADER..];
        match self
            .tx
            .key
            .seal_in_place_separate_tag(nonce, ring::aead::Aad::from(header), body)
        {
            Ok(tag) => out.extend_from_slice(tag.as_ref()),
            // ring refuses only inputs past 2^36 bytes; a record is at most 16 KiB.
            Err(_) => out.truncate(start),
        }
    }

    /// Appends the fatal alert `description` to `out`; returns `error` to fail with.
    fn fail(&mut self, out: &mut Vec<u8>, description: AlertDescription, error: Error) -> TlsError {
        self.seal_record(ALERT, &[FATAL, u8::from(description)], out);
        TlsError::Protocol(error)
    }
}

fn malformed() -> Error {
    Error::InvalidMessage(InvalidMessage::UnexpectedMessage(
        "after the TLS 1.3 handshake",
    ))
}

#[cfg(test)]
mod tests;
