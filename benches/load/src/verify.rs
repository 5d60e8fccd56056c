//! The messages sent and the check of their echoes, byte for byte.
//!
//! Every message is the same template with a stamp in its first bytes: the hex digits of a
//! sequence number unique to the connection and the message. An echo that comes back on the
//! wrong connection, twice, or stale therefore fails the check like a corrupted one. The stamp
//! is ASCII, so a text message stays valid UTF-8.

use ringws::proto::connection::MessageKind;

/// Bytes of the stamp (16 hex digits of a `u64`); shorter messages carry its last digits.
pub const STAMP_LEN: usize = 16;

/// The message templates of a run (all of one length), used in turn by sequence number.
#[derive(Debug, Clone)]
pub struct Payload {
    templates: Vec<Vec<u8>>,
    /// Where the stamp goes in a message.
    stamp_at: usize,
    kind: MessageKind,
}

/// What people type into a chat, one per line (`#` lines are comments): shared with
/// `benches/deflate.rs`.
const CHAT_TEXTS: &str = include_str!("../../data/chat-texts.txt");

/// The texts of [`CHAT_TEXTS`].
fn chat_texts() -> impl Iterator<Item = &'static str> {
    CHAT_TEXTS
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Names for [`Payload::chat`].
const CHAT_NAMES: [&str; 4] = ["alice", "bob", "carol", "dave"];

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
        Self {
            templates: vec![template],
            stamp_at: 0,
            kind,
        }
    }

    /// Chat messages as the ringws chat sends them (JSON text, about 200 bytes), sixteen texts
    /// from four people in turn, padded with spaces to one length; the stamp is the `id`
    /// field. A realistic stream for compression: the keys repeat, the texts differ.
    pub fn chat() -> Self {
        let texts: Vec<&str> = chat_texts().collect();
        let message = |i: usize, pad: usize| {
            format!(
                r#"{{"op":"message","room":"lobby","id":"{}","from":"0.{}.1","name":"{}","ts":{},"seq":{},"text":"{}{}","online":{}}}"#,
                "0".repeat(STAMP_LEN),
                1200 + i % 4,
                CHAT_NAMES[i % 4],
                1_764_806_400_000u64 + 1_379 * i as u64,
                4_100 + i,
                texts[i],
                " ".repeat(pad),
                37 + i % 3,
            )
            .into_bytes()
        };
        // One length for all: the text is padded with spaces to the longest message.
        let longest = (0..texts.len())
            .map(|i| message(i, 0).len())
            .max()
            .unwrap_or(0);
        let templates: Vec<Vec<u8>> = (0..texts.len())
            .map(|i| message(i, longest - message(i, 0).len()))
            .collect();
        let stamp_at = templates[0]
            .windows(6)
            .position(|w| w == b"\"id\":\"")
            .map_or(0, |p| p + 6);
        Self {
            templates,
            stamp_at,
            kind: MessageKind::Text,
        }
    }

    fn template(&self, seq: u64) -> &[u8] {
        &self.templates[(seq % self.templates.len() as u64) as usize]
    }

    /// The payload length.
    pub fn len(&self) -> usize {
        self.templates[0].len()
    }

    /// Text or binary.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// Appends message `seq` (template and stamp, unmasked) to `out`.
    pub fn write(&self, seq: u64, out: &mut Vec<u8>) {
        let start = out.len() + self.stamp_at;
        out.extend_from_slice(self.template(seq));
        let n = self.stamp_len();
        out[start..start + n].copy_from_slice(&stamp(seq)[STAMP_LEN - n..]);
    }

    /// Checks that `got` (of kind `kind`) is exactly message `seq`.
    pub fn verify(&self, seq: u64, kind: MessageKind, got: &[u8]) -> Result<(), Mismatch> {
        if kind != self.kind {
            return Err(Mismatch::Kind);
        }
        let template = self.template(seq);
        if got.len() != template.len() {
            return Err(Mismatch::Length {
                expected: template.len(),
                got: got.len(),
            });
        }
        let (at, n) = (self.stamp_at, self.stamp_len());
        let s = stamp(seq);
        let before = got[..at].iter().zip(&template[..at]);
        let stamp = got[at..at + n].iter().zip(&s[STAMP_LEN - n..]);
        let after = got[at + n..].iter().zip(&template[at + n..]);
        match before.chain(stamp).chain(after).position(|(a, b)| a != b) {
            Some(offset) => Err(Mismatch::Bytes { offset }),
            None => Ok(()),
        }
    }

    fn stamp_len(&self) -> usize {
        self.len().saturating_sub(self.stamp_at).min(STAMP_LEN)
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

    #[test]
    fn chat_messages_are_json_with_the_stamp_in_their_id() {
        let p = Payload::chat();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        p.write(0x2a, &mut a);
        p.write(0x2b, &mut b);
        assert_eq!(a.len(), b.len());
        assert!(p.templates.iter().all(|t| t.len() == p.len()));
        let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(v["id"], "000000000000002a");
        assert_ne!(
            serde_json::from_slice::<serde_json::Value>(&b).unwrap()["text"],
            v["text"]
        );
        assert_eq!(p.verify(0x2a, MessageKind::Text, &a), Ok(()));
        assert!(p.verify(0x2b, MessageKind::Text, &a).is_err());
        let mut bad = a.clone();
        bad[3] ^= 1;
        assert_eq!(
            p.verify(0x2a, MessageKind::Text, &bad),
            Err(Mismatch::Bytes { offset: 3 })
        );
    }
}
