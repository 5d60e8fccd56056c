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
//! The channel names the topic. A message is checked before any client sees it: anything else
//! published on our channels (another program, another version) is counted and dropped, never
//! forwarded to a WebSocket client as a broken frame.

use crate::proto::frame::{Header, HeaderView, OpCode};

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

/// The message for `frame` (a complete server frame) published by `origin`.
pub fn encode(origin: NodeId, frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME + frame.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&origin.0.to_le_bytes());
    out.extend_from_slice(frame);
    out
}

/// The origin and the frame of a message, checked.
pub fn decode(message: &[u8]) -> Result<(NodeId, &[u8]), Malformed> {
    if message.len() < FRAME || message[..ORIGIN] != MAGIC {
        return Err(Malformed::NotOurs);
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&message[ORIGIN..FRAME]);
    let frame = &message[FRAME..];
    let header = HeaderView::new_checked(frame).map_err(|_| Malformed::BadFrame)?;
    let data =
        header.opcode_bits() == OpCode::Text as u8 || header.opcode_bits() == OpCode::Binary as u8;
    let whole = (frame.len() - header.header_len()) as u64 == header.payload_len();
    if !header.fin() || header.masked() || header.rsv() != 0 || !data || !whole {
        return Err(Malformed::BadFrame);
    }
    // RFC 6455 §5.2: the shortest length form; a client may refuse any other.
    let shortest = Header::from_view(&header).map_err(|_| Malformed::BadFrame)?;
    if shortest.encoded_len() != header.header_len() {
        return Err(Malformed::BadFrame);
    }
    let text = header.opcode_bits() == OpCode::Text as u8;
    if text && simdutf8::basic::from_utf8(&frame[header.header_len()..]).is_err() {
        return Err(Malformed::BadFrame);
    }
    Ok((NodeId(u64::from_le_bytes(id)), frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::{encode_frame, encode_masked_frame};

    #[test]
    fn round_trip() {
        let frame = encode_frame(OpCode::Text, b"{\"op\":\"message\"}");
        let msg = encode(NodeId(0x0102_0304_0506_0708), &frame);
        assert_eq!(&msg[..4], b"rws1");
        let (origin, got) = decode(&msg).unwrap();
        assert_eq!(origin, NodeId(0x0102_0304_0506_0708));
        assert_eq!(got, &frame[..]);
        // Long frames (16- and 64-bit lengths) too.
        for len in [126, 70_000] {
            let frame = encode_frame(OpCode::Binary, &vec![7u8; len]);
            assert_eq!(decode(&encode(NodeId(1), &frame)).unwrap().1, &frame[..]);
        }
    }

    #[test]
    fn anything_else_is_refused() {
        let frame = encode_frame(OpCode::Text, b"hello");
        assert_eq!(decode(b"hello"), Err(Malformed::NotOurs));
        assert_eq!(decode(b"rws1abc"), Err(Malformed::NotOurs), "short");
        let mut other = encode(NodeId(1), &frame);
        other[3] = b'2';
        assert_eq!(decode(&other), Err(Malformed::NotOurs), "another version");
        let ok = encode(NodeId(1), &frame);
        let bad = |msg: &[u8]| decode(msg).unwrap_err();
        assert_eq!(bad(&ok[..ok.len() - 1]), Malformed::BadFrame, "cut short");
        assert_eq!(
            bad(&[&ok[..], b"x"].concat()),
            Malformed::BadFrame,
            "bytes after it"
        );
        assert_eq!(bad(&ok[..FRAME + 1]), Malformed::BadFrame, "half a header");
        let masked = encode_masked_frame(OpCode::Text, true, [1, 2, 3, 4], b"hi");
        assert_eq!(bad(&encode(NodeId(1), &masked)), Malformed::BadFrame);
        let mut fragment = frame.to_vec();
        fragment[0] &= 0x7f; // FIN clear
        assert_eq!(bad(&encode(NodeId(1), &fragment)), Malformed::BadFrame);
        let ping = encode_frame(OpCode::Ping, b"");
        assert_eq!(bad(&encode(NodeId(1), &ping)), Malformed::BadFrame);
        let mut rsv = frame.to_vec();
        rsv[0] |= 0x40;
        assert_eq!(bad(&encode(NodeId(1), &rsv)), Malformed::BadFrame);
        // "hello" with its length in the 16-bit form: not the shortest.
        let long_form = [&[0x81, 126, 0, 5][..], b"hello"].concat();
        assert_eq!(bad(&encode(NodeId(1), &long_form)), Malformed::BadFrame);
        let not_utf8 = encode_frame(OpCode::Text, b"\xff\xfe");
        assert_eq!(bad(&encode(NodeId(1), &not_utf8)), Malformed::BadFrame);
        let binary = encode_frame(OpCode::Binary, b"\xff\xfe");
        assert!(
            decode(&encode(NodeId(1), &binary)).is_ok(),
            "binary may be anything"
        );
    }
}
