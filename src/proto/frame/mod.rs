//! The frame header on the wire (RFC 6455 §5.2): a checked view to read it, a typed [`Header`]
//! to reason about it, and an encoder that writes it into a small stack buffer.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! | Masking-key (continued)       |          Payload Data         |
//! +-------------------------------- - - - - - - - - - - - - - - - +
//! ```
//!
//! [`HeaderView::new_checked`] checks once that the buffer holds the whole header; after that no
//! accessor can panic. [`Header::parse`] adds the rules that need no connection state (reserved
//! opcodes, control-frame shape, the 64-bit length's top bit); the rules that do (masking by role,
//! negotiated RSV bits, continuation order, limits) live in [`connection`](super::connection).
//!
//! Server frames are never masked, so a frame to send is a header from [`Header::encode`] followed
//! by the payload bytes, which can stay in a shared `Bytes` untouched: one encoded frame can be
//! queued on many connections. [`Frame`] is such a frame for a whole message, checked once when
//! made: what an application sends and publishes.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::Error;
use super::mask;

mod message;

pub use message::{BadFrame, Frame};

/// FIN bit, in byte 0.
pub const FIN: u8 = 0x80;
/// RSV1 bit, in byte 0 (permessage-deflate's "compressed" bit).
pub const RSV1: u8 = 0x40;
/// RSV2 bit, in byte 0.
pub const RSV2: u8 = 0x20;
/// RSV3 bit, in byte 0.
pub const RSV3: u8 = 0x10;
/// All RSV bits, in byte 0.
pub const RSV_MASK: u8 = RSV1 | RSV2 | RSV3;
/// Opcode bits, in byte 0.
pub const OPCODE_MASK: u8 = 0x0F;
/// MASK bit, in byte 1.
pub const MASK_BIT: u8 = 0x80;
/// 7-bit payload length bits, in byte 1.
pub const LEN7_MASK: u8 = 0x7F;
/// 7-bit length value announcing a 16-bit extended length.
pub const LEN7_16: u8 = 126;
/// 7-bit length value announcing a 64-bit extended length.
pub const LEN7_64: u8 = 127;
/// Offset of the extended payload length.
pub const EXT_LEN_OFFSET: usize = 2;
/// The shortest header (no extended length, no mask).
pub const MIN_HEADER_LEN: usize = 2;
/// The longest header (64-bit length and a mask key).
pub const MAX_HEADER_LEN: usize = 14;
/// The longest control-frame payload (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame opcode (§5.2). Reserved opcodes have no value of this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// 0x0: the next fragment of a message.
    Continuation = 0x0,
    /// 0x1: the first frame of a text message.
    Text = 0x1,
    /// 0x2: the first frame of a binary message.
    Binary = 0x2,
    /// 0x8: close.
    Close = 0x8,
    /// 0x9: ping.
    Ping = 0x9,
    /// 0xA: pong.
    Pong = 0xA,
}

impl OpCode {
    /// The opcode for these 4 bits, `None` if reserved.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// Close, ping and pong.
    pub const fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// A read-only view over the bytes of one frame header at the start of a buffer.
///
/// Built with [`HeaderView::new_checked`], which guarantees the buffer holds the whole header, so
/// no accessor can panic.
#[derive(Debug, Clone, Copy)]
pub struct HeaderView<'a> {
    bytes: &'a [u8],
}

/// Why a header could not be read yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incomplete {
    /// The header's length, once known (at least the first two bytes are needed to know it).
    pub header_len: Option<usize>,
}

impl<'a> HeaderView<'a> {
    /// Checks that `bytes` starts with a complete header (its payload need not be there).
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, Incomplete> {
        if bytes.len() < MIN_HEADER_LEN {
            return Err(Incomplete { header_len: None });
        }
        let len = Self::header_len_of(bytes[1]);
        if bytes.len() < len {
            return Err(Incomplete {
                header_len: Some(len),
            });
        }
        Ok(Self {
            bytes: &bytes[..len],
        })
    }

    /// The header length implied by the second byte (length code and MASK bit).
    pub const fn header_len_of(b1: u8) -> usize {
        let ext = match b1 & LEN7_MASK {
            LEN7_16 => 2,
            LEN7_64 => 8,
            _ => 0,
        };
        let mask = if b1 & MASK_BIT != 0 { 4 } else { 0 };
        MIN_HEADER_LEN + ext + mask
    }

    /// The header's length in bytes (2 to 14).
    pub fn header_len(&self) -> usize {
        self.bytes.len()
    }

    /// FIN: the last frame of a message.
    pub fn fin(&self) -> bool {
        self.bytes[0] & FIN != 0
    }

    /// The RSV bits, in place (a subset of [`RSV_MASK`]).
    pub fn rsv(&self) -> u8 {
        self.bytes[0] & RSV_MASK
    }

    /// The raw 4-bit opcode (may be reserved).
    pub fn opcode_bits(&self) -> u8 {
        self.bytes[0] & OPCODE_MASK
    }

    /// Whether the payload is masked.
    pub fn masked(&self) -> bool {
        self.bytes[1] & MASK_BIT != 0
    }

    /// The payload length as sent (a 64-bit length may have its top bit set; see
    /// [`Header::parse`]).
    pub fn payload_len(&self) -> u64 {
        match self.bytes[1] & LEN7_MASK {
            LEN7_16 => u64::from(u16::from_be_bytes([self.bytes[2], self.bytes[3]])),
            LEN7_64 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.bytes[EXT_LEN_OFFSET..EXT_LEN_OFFSET + 8]);
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        }
    }

    /// The masking key, if the payload is masked.
    pub fn mask_key(&self) -> Option<[u8; 4]> {
        let n = self.bytes.len();
        self.masked().then(|| {
            [
                self.bytes[n - 4],
                self.bytes[n - 3],
                self.bytes[n - 2],
                self.bytes[n - 1],
            ]
        })
    }
}

/// A frame header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The last frame of its message.
    pub fin: bool,
    /// RSV bits in place (a subset of [`RSV_MASK`]).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key (client-to-server frames).
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

impl Header {
    /// Reads the header at the start of `bytes` and checks the rules that need no connection
    /// state. `Ok(None)`: not enough bytes yet. `Ok(Some((header, header_len)))` otherwise.
    pub fn parse(bytes: &[u8]) -> Result<Option<(Self, usize)>, Error> {
        match HeaderView::new_checked(bytes) {
            Ok(view) => Self::from_view(&view).map(|h| Some((h, view.header_len()))),
            Err(_) => Ok(None),
        }
    }

    /// Checks a complete header view (see [`Header::parse`]).
    pub fn from_view(view: &HeaderView<'_>) -> Result<Self, Error> {
        let opcode = OpCode::from_bits(view.opcode_bits()).ok_or(Error::ReservedOpcode)?;
        let payload_len = view.payload_len();
        if payload_len >> 63 != 0 {
            return Err(Error::LengthOverflow);
        }
        if opcode.is_control() {
            if !view.fin() {
                return Err(Error::FragmentedControlFrame);
            }
            if payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(Error::ControlFrameTooLong);
            }
        }
        Ok(Self {
            fin: view.fin(),
            rsv: view.rsv(),
            opcode,
            mask: view.mask_key(),
            payload_len,
        })
    }

    /// The header's encoded length.
    pub const fn encoded_len(&self) -> usize {
        let ext = if self.payload_len < LEN7_16 as u64 {
            0
        } else if self.payload_len <= u16::MAX as u64 {
            2
        } else {
            8
        };
        MIN_HEADER_LEN + ext + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Writes the header with the shortest length encoding (§5.2 requires it of senders).
    pub fn encode(&self) -> HeaderBuf {
        let mut out = HeaderBuf {
            bytes: [0; MAX_HEADER_LEN],
            len: 0,
        };
        let b = &mut out.bytes;
        b[0] = if self.fin { FIN } else { 0 } | (self.rsv & RSV_MASK) | self.opcode as u8;
        let mask_bit = if self.mask.is_some() { MASK_BIT } else { 0 };
        let mut n = EXT_LEN_OFFSET;
        if self.payload_len < LEN7_16 as u64 {
            b[1] = mask_bit | self.payload_len as u8;
        } else if let Ok(len16) = u16::try_from(self.payload_len) {
            b[1] = mask_bit | LEN7_16;
            b[n..n + 2].copy_from_slice(&len16.to_be_bytes());
            n += 2;
        } else {
            b[1] = mask_bit | LEN7_64;
            b[n..n + 8].copy_from_slice(&self.payload_len.to_be_bytes());
            n += 8;
        }
        if let Some(key) = self.mask {
            b[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        out.len = n as u8;
        out
    }
}

/// An encoded header on the stack: dereferences to its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderBuf {
    bytes: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl core::ops::Deref for HeaderBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Encodes a whole unmasked (server) frame, header and payload, in one buffer.
///
/// For fan-out: encode once, then clone the `Bytes` (a reference count) onto every connection.
pub fn encode_frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let header = Header {
        fin: true,
        rsv: 0,
        opcode,
        mask: None,
        payload_len: payload.len() as u64,
    };
    let h = header.encode();
    let mut buf = BytesMut::with_capacity(h.len() + payload.len());
    buf.put_slice(&h);
    buf.put_slice(payload);
    buf.freeze()
}

/// Encodes a whole masked (client) frame: header, then the payload masked with `key`.
pub fn encode_masked_frame(opcode: OpCode, fin: bool, key: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let header = Header {
        fin,
        rsv: 0,
        opcode,
        mask: Some(key),
        payload_len: payload.len() as u64,
    };
    let h = header.encode();
    let mut buf = Vec::with_capacity(h.len() + payload.len());
    buf.extend_from_slice(&h);
    buf.extend_from_slice(payload);
    mask::apply(&mut buf[h.len()..], key, 0);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_examples_parse() {
        // §5.7: a single-frame unmasked text message "Hello".
        let (h, n) = Header::parse(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.mask, h.payload_len, n),
            (true, OpCode::Text, None, 5, 2)
        );
        // §5.7: a masked "Hello".
        let f = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, n) = Header::parse(&f).unwrap().unwrap();
        assert_eq!((h.mask, n), (Some([0x37, 0xfa, 0x21, 0x3d]), 6));
        let mut p = f[6..].to_vec();
        mask::apply(&mut p, h.mask.unwrap(), 0);
        assert_eq!(p, b"Hello");
        // §5.7: 256 bytes binary, 16-bit length; 64 KiB binary, 64-bit length.
        let (h, n) = Header::parse(&[0x82, 0x7E, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (256, 4));
        let (h, n) = Header::parse(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn incomplete_headers_need_more() {
        assert_eq!(Header::parse(&[]), Ok(None));
        assert_eq!(Header::parse(&[0x81]), Ok(None));
        assert_eq!(
            Header::parse(&[0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3]),
            Ok(None)
        );
        let e = HeaderView::new_checked(&[0x82, 0xFE, 0]).unwrap_err();
        assert_eq!(e.header_len, Some(8));
    }

    #[test]
    fn stateless_rules() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                Header::parse(&[0x80 | op, 0x80, 1, 2, 3, 4]),
                Err(Error::ReservedOpcode)
            );
        }
        assert_eq!(
            Header::parse(&[0x09, 0x80, 1, 2, 3, 4]),
            Err(Error::FragmentedControlFrame)
        );
        assert_eq!(
            Header::parse(&[0x89, 0xFE, 0, 126, 1, 2, 3, 4]),
            Err(Error::ControlFrameTooLong)
        );
        let top_bit = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(Header::parse(&top_bit), Err(Error::LengthOverflow));
        // 125 bytes is the largest legal control payload.
        assert!(Header::parse(&[0x89, 0xFD, 1, 2, 3, 4]).unwrap().is_some());
    }

    #[test]
    fn encoder_uses_shortest_length() {
        for (len, hlen) in [
            (0u64, 2),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (1 << 40, 10),
        ] {
            let h = Header {
                fin: true,
                rsv: 0,
                opcode: OpCode::Binary,
                mask: None,
                payload_len: len,
            };
            assert_eq!(h.encode().len(), hlen, "len {len}");
            assert_eq!(h.encoded_len(), hlen);
        }
    }

    #[test]
    fn shared_frame_is_header_plus_payload() {
        let f = encode_frame(OpCode::Text, b"hi");
        assert_eq!(&f[..], b"\x81\x02hi");
    }

    fn any_header() -> impl Strategy<Value = Header> {
        let data = (
            any::<bool>(),
            prop::sample::select(vec![OpCode::Continuation, OpCode::Text, OpCode::Binary]),
            0u64..(1 << 63),
        );
        let control = (
            Just(true),
            prop::sample::select(vec![OpCode::Close, OpCode::Ping, OpCode::Pong]),
            0u64..=125,
        );
        (prop_oneof![data, control], 0u8..8, any::<Option<[u8; 4]>>()).prop_map(
            |((fin, opcode, payload_len), rsv, mask)| Header {
                fin,
                rsv: rsv << 4,
                opcode,
                mask,
                payload_len,
            },
        )
    }

    proptest! {
        #[test]
        fn encode_then_parse_round_trips(h in any_header()) {
            let bytes = h.encode();
            let (back, n) = Header::parse(&bytes).unwrap().unwrap();
            prop_assert_eq!(back, h);
            prop_assert_eq!(n, bytes.len());
            // Every strict prefix is incomplete, never an error or a panic.
            for cut in 0..bytes.len() {
                prop_assert_eq!(Header::parse(&bytes[..cut]), Ok(None));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            if let Ok(Some((h, n))) = Header::parse(&bytes) {
                prop_assert!(n <= bytes.len());
                prop_assert!(h.payload_len >> 63 == 0);
            }
        }
    }
}
