//! [`Frame`]: one whole message in one frame, checked once when it is made, so that whatever
//! holds one can send it to any connection as it is.

use core::fmt;

use bytes::Bytes;

use super::{Header, HeaderView, OpCode, encode_frame};
use crate::proto::utf8;

/// One whole message framed for the wire: a complete, final (FIN), unmasked text or binary frame
/// with its RSV bits clear and its length in the shortest form (RFC 6455 §5.2), text in valid
/// UTF-8. What a handler sends with `Conn::send_frame` or publishes to a topic: encoded once,
/// then shared by every connection it goes to (cloning is a reference count).
///
/// Only these can make one, so a handler cannot queue a control frame, a fragment, a masked or
/// malformed frame on a connection: [`Frame::text`], [`Frame::binary`], [`Frame::parse`] (bytes
/// from elsewhere, such as a broker, checked) and the server's own zero-copy frame of a message
/// it assembled (`Conn::frame_of`). With permessage-deflate the server compresses the payload
/// per connection when it queues the frame.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// Header, then payload.
    bytes: Bytes,
    /// The header's length: 2, 4 or 10.
    header_len: u8,
    /// Text (rather than binary).
    text: bool,
}

/// Why bytes are not a [`Frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadFrame {
    /// Fewer bytes than the header says, or more.
    Length,
    /// Not final, masked, RSV bits set, or a control or continuation frame.
    NotAMessage,
    /// The length is not in its shortest form.
    LongLength,
    /// A text frame whose payload is not UTF-8.
    NotUtf8,
}

impl fmt::Display for BadFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadFrame::Length => "the bytes are not exactly one frame",
            BadFrame::NotAMessage => {
                "not a final, unmasked text or binary frame with its RSV bits clear"
            }
            BadFrame::LongLength => "the payload length is not in its shortest form",
            BadFrame::NotUtf8 => "a text frame that is not UTF-8",
        })
    }
}

impl std::error::Error for BadFrame {}

impl Frame {
    /// A text message.
    pub fn text(text: &str) -> Frame {
        Frame::encode(OpCode::Text, text.as_bytes())
    }

    /// A binary message.
    pub fn binary(payload: &[u8]) -> Frame {
        Frame::encode(OpCode::Binary, payload)
    }

    fn encode(opcode: OpCode, payload: &[u8]) -> Frame {
        let bytes = encode_frame(opcode, payload);
        let header_len = (bytes.len() - payload.len()) as u8;
        Frame {
            bytes,
            header_len,
            text: opcode == OpCode::Text,
        }
    }

    /// Checks that `bytes` are exactly one such frame (see the type's docs), without copying.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn parse(bytes: Bytes) -> Result<Frame, BadFrame> {
        let view = HeaderView::new_checked(&bytes).map_err(|_| BadFrame::Length)?;
        let header_len = view.header_len();
        if (bytes.len() - header_len) as u64 != view.payload_len() {
            return Err(BadFrame::Length);
        }
        let bits = view.opcode_bits();
        let text = bits == OpCode::Text as u8;
        if !view.fin()
            || view.masked()
            || view.rsv() != 0
            || !(text || bits == OpCode::Binary as u8)
        {
            return Err(BadFrame::NotAMessage);
        }
        let header = Header::from_view(&view).map_err(|_| BadFrame::NotAMessage)?;
        if header.encoded_len() != header_len {
            return Err(BadFrame::LongLength);
        }
        if text && utf8::validate(&bytes[header_len..]).is_err() {
            return Err(BadFrame::NotUtf8);
        }
        Ok(Frame {
            bytes,
            header_len: header_len as u8,
            text,
        })
    }

    /// A frame the crate has just built and checked (a message the core assembled): `bytes` is
    /// the shortest header of a final, unmasked frame of that kind, then the payload.
    pub(crate) fn from_trusted(bytes: Bytes, header_len: u8, text: bool) -> Frame {
        debug_assert!(Frame::parse(bytes.clone()).is_ok_and(|f| f.text == text));
        Frame {
            bytes,
            header_len,
            text,
        }
    }

    /// Whether it carries text (rather than binary).
    pub fn is_text(&self) -> bool {
        self.text
    }

    /// The message's bytes.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[usize::from(self.header_len)..]
    }

    /// The text, for a text message (validated when the frame was made).
    pub fn as_text(&self) -> Option<&str> {
        if self.text {
            utf8::validate(self.payload()).ok()
        } else {
            None
        }
    }

    /// The bytes on the wire: header, then payload.
    pub fn wire(&self) -> &Bytes {
        &self.bytes
    }

    /// The header's length in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(self.header_len)
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("kind", &if self.text { "text" } else { "binary" })
            .field("payload_len", &self.payload().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::{FIN, RSV1, encode_masked_frame};

    #[test]
    fn made_frames_are_what_they_say() {
        for len in [0, 125, 126, 65_535, 65_536] {
            let payload = vec![b'a'; len];
            let text = Frame::text(std::str::from_utf8(&payload).unwrap());
            assert!(text.is_text());
            assert_eq!(text.payload(), &payload[..]);
            assert_eq!(text.as_text().map(str::len), Some(len));
            assert_eq!(text.wire()[0], FIN | OpCode::Text as u8);
            assert_eq!(Frame::parse(text.wire().clone()), Ok(text.clone()));
            let bin = Frame::binary(&payload);
            assert!(!bin.is_text() && bin.as_text().is_none());
            assert_eq!(bin.header_len() + len, bin.wire().len());
            assert_eq!(Frame::parse(bin.wire().clone()), Ok(bin));
        }
    }

    #[test]
    fn anything_but_one_whole_message_frame_is_refused() {
        let good = Frame::text("hello").wire().clone();
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.to_vec();
            f(&mut b);
            Frame::parse(Bytes::from(b))
        };
        assert_eq!(with(&|b| b.truncate(1)), Err(BadFrame::Length));
        assert_eq!(
            with(&|b| b.truncate(5)),
            Err(BadFrame::Length),
            "payload cut"
        );
        assert_eq!(
            with(&|b| b.push(0)),
            Err(BadFrame::Length),
            "a byte too many"
        );
        assert_eq!(
            with(&|b| b[0] &= !FIN),
            Err(BadFrame::NotAMessage),
            "a fragment"
        );
        assert_eq!(with(&|b| b[0] |= RSV1), Err(BadFrame::NotAMessage), "RSV1");
        assert_eq!(
            with(&|b| b[0] = FIN | OpCode::Ping as u8),
            Err(BadFrame::NotAMessage),
            "a control frame"
        );
        assert_eq!(
            with(&|b| b[0] = FIN | OpCode::Continuation as u8),
            Err(BadFrame::NotAMessage)
        );
        assert_eq!(with(&|b| b[2] = 0xff), Err(BadFrame::NotUtf8));
        let masked = encode_masked_frame(OpCode::Text, true, [1, 2, 3, 4], b"hello");
        assert_eq!(
            Frame::parse(Bytes::from(masked)),
            Err(BadFrame::NotAMessage)
        );
        // A 5-byte payload announced with a 16-bit length: not the shortest form.
        let long = Bytes::from_static(&[FIN | 1, 126, 0, 5, b'h', b'e', b'l', b'l', b'o']);
        assert_eq!(Frame::parse(long), Err(BadFrame::LongLength));
        // Binary bytes need not be UTF-8.
        let bin = Bytes::from_static(&[FIN | 2, 1, 0xff]);
        assert!(Frame::parse(bin).is_ok());
    }
}
