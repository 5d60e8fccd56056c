//! One publication on the broker: who published it, then the WebSocket frame its subscribers get.
//!
//! ```text
//!  0        4                 12
//!  ┌────────┬─────────────────┬──────────────────────────────────────────────┐
//!  │ "rws1" │ origin node id  │ one complete, final, unmasked data frame     │
//!  │        │ (u64, LE)       │ (text or binary, RSV bits clear), as queued  │
//!  └────────┴─────────────────┴──────────────────────────────────────────────┘
//! ```
//!
//! An entry of a topic's ordered log (a cluster with history) is published by the broker's
//! append script itself, in text so the script can build it:
//!
//! ```text
//!  "rwl1" epoch "\n" offset (decimal) "\n" payload
//! ```
//!
//! The channel names the topic. A message is checked before any client sees it (the frame by
//! [`Frame::parse`], the same check as for any frame an application hands the server):
//! anything else published on our channels (another program, another version) is counted and
//! dropped, never forwarded to a WebSocket client as a broken frame.

use bytes::Bytes;

use crate::proto::frame::Frame;

use super::NodeId;

/// The first bytes of every message: format and version.
pub const MAGIC: [u8; 4] = *b"rws1";
/// Where the origin node id starts.
const ORIGIN: usize = MAGIC.len();
/// Where the frame starts.
pub const FRAME: usize = ORIGIN + 8;

/// Why a message is not a ringws publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than the header, or another magic (another program or version).
    NotOurs,
    /// The frame is not one complete, final, unmasked text or binary frame with its length in
    /// the shortest form (and valid UTF-8 if text).
    BadFrame,
}

/// The message for `frame` published by `origin`.
pub fn encode(origin: NodeId, frame: &Frame) -> Vec<u8> {
    let wire = frame.wire();
    let mut out = Vec::with_capacity(FRAME + wire.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&origin.0.to_le_bytes());
    out.extend_from_slice(wire);
    out
}

/// The first bytes of a log entry.
pub const LOG_MAGIC: [u8; 4] = *b"rwl1";
/// Longest epoch accepted in a log entry (ringws makes ~20 bytes).
pub const MAX_EPOCH: usize = 64;

/// What a message on a topic's channel is.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A publication (a frame, from a node).
    Publication(NodeId, Frame),
    /// An entry of the topic's log: epoch, offset, payload (sharing the message's buffer).
    Entry(Box<str>, u64, Bytes),
}

/// A log entry as the append script publishes it (for tests and other relays).
pub fn encode_entry(epoch: &str, offset: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = LOG_MAGIC.to_vec();
    out.extend_from_slice(epoch.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(offset.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload);
    out
}

/// A publication or a log entry, checked.
pub fn decode_any(message: &Bytes) -> Result<Incoming, Malformed> {
    if message.len() < LOG_MAGIC.len() || message[..LOG_MAGIC.len()] != LOG_MAGIC {
        let (node, frame) = decode(message)?;
        return Ok(Incoming::Publication(node, frame));
    }
    let rest = &message[LOG_MAGIC.len()..];
    let mut parts = rest.splitn(3, |&b| b == b'\n');
    let (Some(epoch), Some(offset), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Malformed::BadFrame);
    };
    let start = LOG_MAGIC.len() + epoch.len() + 1 + offset.len() + 1;
    let epoch = std::str::from_utf8(epoch).map_err(|_| Malformed::BadFrame)?;
    let offset: u64 = std::str::from_utf8(offset)
        .ok()
        .filter(|o| !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|o| o.parse().ok())
        .ok_or(Malformed::BadFrame)?;
    if epoch.is_empty() || epoch.len() > MAX_EPOCH || offset == 0 {
        return Err(Malformed::BadFrame);
    }
    Ok(Incoming::Entry(
        epoch.into(),
        offset,
        message.slice(start..),
    ))
}

/// The origin and the frame of a message, checked; the frame shares the message's buffer.
pub fn decode(message: &Bytes) -> Result<(NodeId, Frame), Malformed> {
    if message.len() < FRAME || message[..ORIGIN] != MAGIC {
        return Err(Malformed::NotOurs);
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&message[ORIGIN..FRAME]);
    let frame = Frame::parse(message.slice(FRAME..)).map_err(|_| Malformed::BadFrame)?;
    Ok((NodeId(u64::from_le_bytes(id)), frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::{OpCode, encode_frame, encode_masked_frame};

    /// An envelope around any bytes, as another program might publish.
    fn raw(origin: NodeId, frame: &[u8]) -> Bytes {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&origin.0.to_le_bytes());
        out.extend_from_slice(frame);
        Bytes::from(out)
    }

    #[test]
    fn round_trip() {
        let frame = Frame::text("{\"op\":\"message\"}");
        let msg = Bytes::from(encode(NodeId(0x0102_0304_0506_0708), &frame));
        assert_eq!(&msg[..4], b"rws1");
        let (origin, got) = decode(&msg).unwrap();
        assert_eq!(origin, NodeId(0x0102_0304_0506_0708));
        assert_eq!(got, frame);
        assert_eq!(got.wire().as_ptr(), msg[FRAME..].as_ptr(), "no copy");
        // Long frames (16- and 64-bit lengths) too.
        for len in [126, 70_000] {
            let frame = Frame::binary(&vec![7u8; len]);
            let msg = Bytes::from(encode(NodeId(1), &frame));
            assert_eq!(decode(&msg).unwrap().1, frame);
        }
    }

    #[test]
    fn log_entries_round_trip_and_bad_ones_are_refused() {
        let msg = Bytes::from(encode_entry("e1", 42, b"{\"x\":1}\n"));
        assert_eq!(
            decode_any(&msg).unwrap(),
            Incoming::Entry("e1".into(), 42, Bytes::from_static(b"{\"x\":1}\n"))
        );
        let publication = Bytes::from(encode(NodeId(5), &Frame::text("hi")));
        assert_eq!(
            decode_any(&publication).unwrap(),
            Incoming::Publication(NodeId(5), Frame::text("hi"))
        );
        for bad in [
            &b"rwl1e1\n42"[..],
            b"rwl1\n42\nx",
            b"rwl1e1\n0\nx",
            b"rwl1e1\n-4\nx",
            b"rwl1e1\n4a\nx",
            b"rwl1e1\n\nx",
            b"rwl1e1\n99999999999999999999999\nx",
        ] {
            assert_eq!(
                decode_any(&Bytes::copy_from_slice(bad)),
                Err(Malformed::BadFrame),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long_epoch = encode_entry(&"e".repeat(MAX_EPOCH + 1), 1, b"x");
        assert!(decode_any(&Bytes::from(long_epoch)).is_err());
    }

    #[test]
    fn anything_else_is_refused() {
        let frame = encode_frame(OpCode::Text, b"hello");
        let msg = |b: &[u8]| Bytes::copy_from_slice(b);
        assert_eq!(decode(&msg(b"hello")), Err(Malformed::NotOurs));
        assert_eq!(decode(&msg(b"rws1abc")), Err(Malformed::NotOurs), "short");
        let mut other = raw(NodeId(1), &frame).to_vec();
        other[3] = b'2';
        assert_eq!(
            decode(&msg(&other)),
            Err(Malformed::NotOurs),
            "another version"
        );
        let ok = raw(NodeId(1), &frame);
        let bad = |m: &[u8]| decode(&msg(m)).unwrap_err();
        assert_eq!(bad(&ok[..ok.len() - 1]), Malformed::BadFrame, "cut short");
        assert_eq!(
            bad(&[&ok[..], b"x"].concat()),
            Malformed::BadFrame,
            "bytes after it"
        );
        assert_eq!(bad(&ok[..FRAME + 1]), Malformed::BadFrame, "half a header");
        let masked = encode_masked_frame(OpCode::Text, true, [1, 2, 3, 4], b"hi");
        assert_eq!(bad(&raw(NodeId(1), &masked)), Malformed::BadFrame);
        let mut fragment = frame.to_vec();
        fragment[0] &= 0x7f; // FIN clear
        assert_eq!(bad(&raw(NodeId(1), &fragment)), Malformed::BadFrame);
        let ping = encode_frame(OpCode::Ping, b"");
        assert_eq!(bad(&raw(NodeId(1), &ping)), Malformed::BadFrame);
        let mut rsv = frame.to_vec();
        rsv[0] |= 0x40;
        assert_eq!(bad(&raw(NodeId(1), &rsv)), Malformed::BadFrame);
        // "hello" with its length in the 16-bit form: not the shortest.
        let long_form = [&[0x81, 126, 0, 5][..], b"hello"].concat();
        assert_eq!(bad(&raw(NodeId(1), &long_form)), Malformed::BadFrame);
        let not_utf8 = encode_frame(OpCode::Text, b"\xff\xfe");
        assert_eq!(bad(&raw(NodeId(1), &not_utf8)), Malformed::BadFrame);
        let binary = encode_frame(OpCode::Binary, b"\xff\xfe");
        assert!(
            decode(&raw(NodeId(1), &binary)).is_ok(),
            "binary may be anything"
        );
    }
}
