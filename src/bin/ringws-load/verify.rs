//! The messages sent and the check of their echoes, byte for byte.
//!
//! Every message is the same template with a stamp in its first bytes: the hex digits of a
//! sequence number unique to the connection and the message. An echo that comes back on the
//! wrong connection, twice, or stale therefore fails the check like a corrupted one. The stamp
//! is ASCII, so a text message stays valid UTF-8.

use ringws::proto::connection::MessageKind;

/// Bytes of the stamp (16 hex digits of a `u64`); shorter messages carry its last digits.
pub const STAMP_LEN: usize = 16;

/// The message template of a run.
#[derive(Debug, Clone)]
pub struct Payload {
    template: Vec<u8>,
    kind: MessageKind,
}

/// How an echo differs from what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// Text instead of binary or the reverse (or a compressed message).
    Kind,
    /// A different length.
    Length {
        /// Bytes sent.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// The first differing byte.
    Bytes {
        /// Its offset in the payload.
        offset: usize,
    },
    /// A message arrived while none was in flight.
    Unexpected,
    /// Broadcast: a chat frame that is not what the protocol allows (why).
    Chat(&'static str),
}

impl Payload {
    /// A template of `size` bytes (printable ASCII, so also valid text).
    pub fn new(size: usize, kind: MessageKind) -> Self {
        let template = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        Self { template, kind }
    }

    /// The payload length.
    pub fn len(&self) -> usize {
        self.template.len()
    }

    /// Text or binary.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// Appends message `seq` (template and stamp, unmasked) to `out`.
    pub fn write(&self, seq: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.template);
        let n = self.stamp_len();
        out[start..start + n].copy_from_slice(&stamp(seq)[STAMP_LEN - n..]);
    }

    /// Checks that `got` (of kind `kind`) is exactly message `seq`.
    pub fn verify(&self, seq: u64, kind: MessageKind, got: &[u8]) -> Result<(), Mismatch> {
        if kind != self.kind {
            return Err(Mismatch::Kind);
        }
        if got.len() != self.template.len() {
            return Err(Mismatch::Length {
                expected: self.template.len(),
                got: got.len(),
            });
        }
        let n = self.stamp_len();
        let s = stamp(seq);
        let head = got[..n].iter().zip(&s[STAMP_LEN - n..]);
        let tail = got[n..].iter().zip(&self.template[n..]);
        match head.chain(tail).position(|(a, b)| a != b) {
            Some(offset) => Err(Mismatch::Bytes { offset }),
            None => Ok(()),
        }
    }

    fn stamp_len(&self) -> usize {
        self.template.len().min(STAMP_LEN)
    }
}

/// `seq` as 16 lowercase hex digits.
fn stamp(seq: u64) -> [u8; STAMP_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; STAMP_LEN];
    for (i, b) in out.iter_mut().enumerate() {
        *b = HEX[((seq >> (4 * (STAMP_LEN - 1 - i))) & 0xF) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_message_verifies() {
        let p = Payload::new(20, MessageKind::Text);
        let mut out = vec![0xEE];
        p.write(0x0123_4567_89ab_cdef, &mut out);
        assert_eq!(&out[1..], b"0123456789abcdefqrst");
        assert_eq!(
            p.verify(0x0123_4567_89ab_cdef, MessageKind::Text, &out[1..]),
            Ok(())
        );
        assert!(std::str::from_utf8(&out[1..]).is_ok());
    }

    #[test]
    fn every_difference_is_caught() {
        let p = Payload::new(40, MessageKind::Binary);
        let mut msg = Vec::new();
        p.write(7, &mut msg);
        assert_eq!(p.verify(7, MessageKind::Binary, &msg), Ok(()));
        assert_eq!(p.verify(7, MessageKind::Text, &msg), Err(Mismatch::Kind));
        assert_eq!(
            p.verify(7, MessageKind::Binary, &msg[..39]),
            Err(Mismatch::Length {
                expected: 40,
                got: 39
            })
        );
        // Another message's echo (wrong connection, stale, duplicated).
        assert_eq!(
            p.verify(8, MessageKind::Binary, &msg),
            Err(Mismatch::Bytes { offset: 15 })
        );
        // A corrupted byte in the template part.
        let mut bad = msg.clone();
        bad[30] ^= 1;
        assert_eq!(
            p.verify(7, MessageKind::Binary, &bad),
            Err(Mismatch::Bytes { offset: 30 })
        );
    }

    #[test]
    fn short_and_empty_messages() {
        let p = Payload::new(3, MessageKind::Text);
        let mut msg = Vec::new();
        p.write(0xabc, &mut msg);
        assert_eq!(msg, b"abc");
        assert_eq!(p.verify(0xabc, MessageKind::Text, &msg), Ok(()));
        assert!(p.verify(0xabd, MessageKind::Text, &msg).is_err());

        let p = Payload::new(0, MessageKind::Binary);
        let mut msg = Vec::new();
        p.write(5, &mut msg);
        assert!(msg.is_empty());
        assert_eq!(p.verify(5, MessageKind::Binary, &[]), Ok(()));
    }
}
