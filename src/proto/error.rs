//! The one error enum of the protocol core.
//!
//! Every way a peer can break the protocol is one variant, and every variant maps to exactly one
//! answer: an HTTP status while the upgrade handshake is being read, a close code once the
//! connection is open. No peer error panics.
//!
//! | variant | answer | RFC / reason |
//! |---|---|---|
//! | [`Error::HeaderTooLarge`] | HTTP 431 | header block over [`Limits::max_header_bytes`](super::Limits::max_header_bytes) |
//! | [`Error::TooManyHeaders`] | HTTP 431 | more headers than [`Limits::max_headers`](super::Limits::max_headers) |
//! | [`Error::MalformedRequest`] | HTTP 400 | not a parseable HTTP/1.x request |
//! | [`Error::MethodNotGet`] | HTTP 405 | §4.2.1 (1): the method MUST be GET |
//! | [`Error::HttpVersion`] | HTTP 400 | §4.2.1 (1): HTTP/1.1 or higher |
//! | [`Error::MissingHost`] | HTTP 400 | §4.2.1 (2): a Host header |
//! | [`Error::MissingConnectionUpgrade`] | HTTP 400 | §4.2.1 (4): `Connection` contains `Upgrade` |
//! | [`Error::BadKey`] | HTTP 400 | §4.2.1 (5): `Sec-WebSocket-Key` is 16 bytes, base64 |
//! | [`Error::UnsupportedVersion`] | HTTP 426 | §4.2.2: answered with `Sec-WebSocket-Version: 13` |
//! | [`Error::BadHeaderValue`] | HTTP 400 | a malformed `Sec-WebSocket-Protocol`/`-Extensions` |
//! | [`Error::OriginNotAllowed`] | HTTP 403 | §10.2: Origin not in the allow-list |
//! | [`Error::NotFound`] | HTTP 404 | no endpoint at this path |
//! | [`Error::UnmaskedFrame`] | close 1002 | §5.1: a client MUST mask every frame |
//! | [`Error::MaskedFrame`] | close 1002 | §5.1: a server MUST NOT mask (client role only) |
//! | [`Error::ReservedBits`] | close 1002 | §5.2: RSV1-3 set with no extension negotiating them |
//! | [`Error::ReservedOpcode`] | close 1002 | §5.2: opcodes 3-7 and 0xB-0xF |
//! | [`Error::ControlFrameTooLong`] | close 1002 | §5.5: control payload ≤ 125 bytes |
//! | [`Error::FragmentedControlFrame`] | close 1002 | §5.5: control frames MUST NOT be fragmented |
//! | [`Error::LengthOverflow`] | close 1002 | §5.2: the most significant bit of a 64-bit length MUST be 0 |
//! | [`Error::UnexpectedContinuation`] | close 1002 | §5.4: continuation with no message started |
//! | [`Error::ExpectedContinuation`] | close 1002 | §5.4: a new data frame inside a fragmented message |
//! | [`Error::InvalidCloseCode`] | close 1002 | §7.4: a code that may not be sent on the wire |
//! | [`Error::CloseFrameTooShort`] | close 1002 | §5.5.1: a 1-byte close payload |
//! | [`Error::InvalidUtf8`] | close 1007 | §8.1: text MUST be UTF-8 |
//! | [`Error::InvalidCloseReason`] | close 1007 | §5.5.1: the close reason is UTF-8 |
//! | [`Error::TooManyFragments`] | close 1008 | policy: more than [`Limits::max_fragments`](super::Limits::max_fragments) frames in one message |
//! | [`Error::FrameTooLarge`] | close 1009 | a frame over [`Limits::max_frame_bytes`](super::Limits::max_frame_bytes) |
//! | [`Error::MessageTooLarge`] | close 1009 | a message over [`Limits::max_message_bytes`](super::Limits::max_message_bytes) (for a compressed message: its inflated size, checked while inflating) |
//! | [`Error::BadCompressedData`] | close 1007 | RFC 7692 §6.2: a compressed message that does not inflate |

use core::fmt;

use super::close::{BadClose, CloseCode};

/// A peer error, during the handshake or on an open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    // ---- handshake: answered with an HTTP status ----
    /// The request head exceeded the configured byte limit.
    HeaderTooLarge,
    /// The request had more header fields than the configured limit.
    TooManyHeaders,
    /// The bytes are not an HTTP/1.x request.
    MalformedRequest,
    /// A WebSocket upgrade with a method other than GET.
    MethodNotGet,
    /// A WebSocket upgrade over HTTP/1.0.
    HttpVersion,
    /// A WebSocket upgrade without a Host header.
    MissingHost,
    /// `Upgrade: websocket` without the `upgrade` token in `Connection`.
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Key` missing, repeated, or not 16 bytes of base64.
    BadKey,
    /// `Sec-WebSocket-Version` other than 13.
    UnsupportedVersion,
    /// A malformed `Sec-WebSocket-Protocol` or `Sec-WebSocket-Extensions` header.
    BadHeaderValue,
    /// The Origin header is not in the allow-list.
    OriginNotAllowed,
    /// No endpoint serves this path.
    NotFound,

    // ---- open connection: answered with a close code ----
    /// A client frame without a mask.
    UnmaskedFrame,
    /// A server frame with a mask (when acting as a client).
    MaskedFrame,
    /// RSV bits set that no negotiated extension defines.
    ReservedBits,
    /// A reserved opcode.
    ReservedOpcode,
    /// A control frame with more than 125 bytes of payload.
    ControlFrameTooLong,
    /// A control frame without FIN.
    FragmentedControlFrame,
    /// A 64-bit payload length with its most significant bit set.
    LengthOverflow,
    /// A continuation frame with no fragmented message in progress.
    UnexpectedContinuation,
    /// A text or binary frame while a fragmented message is in progress.
    ExpectedContinuation,
    /// A close code that must not appear on the wire.
    InvalidCloseCode,
    /// A close frame with a 1-byte payload.
    CloseFrameTooShort,
    /// Text that is not UTF-8.
    InvalidUtf8,
    /// A close reason that is not UTF-8.
    InvalidCloseReason,
    /// More fragments in one message than the configured limit.
    TooManyFragments,
    /// A frame longer than the configured limit.
    FrameTooLarge,
    /// A message longer than the configured limit.
    MessageTooLarge,
    /// A permessage-deflate message whose payload is not a valid DEFLATE stream.
    BadCompressedData,
}

/// What the server answers an [`Error`] with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// An HTTP status, before the upgrade completed.
    Http(u16),
    /// A close frame with this code, on an open connection.
    Close(CloseCode),
}

impl Error {
    /// Every variant, in table order (for tests and documentation checks).
    pub const ALL: [Error; 29] = [
        Error::HeaderTooLarge,
        Error::TooManyHeaders,
        Error::MalformedRequest,
        Error::MethodNotGet,
        Error::HttpVersion,
        Error::MissingHost,
        Error::MissingConnectionUpgrade,
        Error::BadKey,
        Error::UnsupportedVersion,
        Error::BadHeaderValue,
        Error::OriginNotAllowed,
        Error::NotFound,
        Error::UnmaskedFrame,
        Error::MaskedFrame,
        Error::ReservedBits,
        Error::ReservedOpcode,
        Error::ControlFrameTooLong,
        Error::FragmentedControlFrame,
        Error::LengthOverflow,
        Error::UnexpectedContinuation,
        Error::ExpectedContinuation,
        Error::InvalidCloseCode,
        Error::CloseFrameTooShort,
        Error::InvalidUtf8,
        Error::InvalidCloseReason,
        Error::TooManyFragments,
        Error::FrameTooLarge,
        Error::MessageTooLarge,
        Error::BadCompressedData,
    ];

    /// The one answer to this error (see the table in the module docs).
    pub const fn response(self) -> Response {
        use Error::*;
        match self {
            HeaderTooLarge | TooManyHeaders => Response::Http(431),
            MalformedRequest
            | HttpVersion
            | MissingHost
            | MissingConnectionUpgrade
            | BadKey
            | BadHeaderValue => Response::Http(400),
            MethodNotGet => Response::Http(405),
            UnsupportedVersion => Response::Http(426),
            OriginNotAllowed => Response::Http(403),
            NotFound => Response::Http(404),
            UnmaskedFrame
            | MaskedFrame
            | ReservedBits
            | ReservedOpcode
            | ControlFrameTooLong
            | FragmentedControlFrame
            | LengthOverflow
            | UnexpectedContinuation
            | ExpectedContinuation
            | InvalidCloseCode
            | CloseFrameTooShort => Response::Close(CloseCode::PROTOCOL_ERROR),
            InvalidUtf8 | InvalidCloseReason | BadCompressedData => {
                Response::Close(CloseCode::INVALID_PAYLOAD)
            }
            TooManyFragments => Response::Close(CloseCode::POLICY_VIOLATION),
            FrameTooLarge | MessageTooLarge => Response::Close(CloseCode::MESSAGE_TOO_BIG),
        }
    }

    /// The close code for an error on an open connection; `None` for handshake errors.
    pub const fn close_code(self) -> Option<CloseCode> {
        match self.response() {
            Response::Close(code) => Some(code),
            Response::Http(_) => None,
        }
    }

    /// The HTTP status for a handshake error; `None` for errors on an open connection.
    pub const fn http_status(self) -> Option<u16> {
        match self.response() {
            Response::Http(status) => Some(status),
            Response::Close(_) => None,
        }
    }

    /// A short human-readable reason: the HTTP response body, or the close reason (≤ 123 bytes,
    /// ASCII, so it always fits a close frame).
    pub const fn reason(self) -> &'static str {
        use Error::*;
        match self {
            HeaderTooLarge => "request header too large",
            TooManyHeaders => "too many request headers",
            MalformedRequest => "malformed HTTP request",
            MethodNotGet => "WebSocket upgrade requires GET",
            HttpVersion => "WebSocket upgrade requires HTTP/1.1",
            MissingHost => "missing Host header",
            MissingConnectionUpgrade => "Connection header must contain 'upgrade'",
            BadKey => "Sec-WebSocket-Key must be 16 bytes of base64",
            UnsupportedVersion => "unsupported Sec-WebSocket-Version (supported: 13)",
            BadHeaderValue => "malformed Sec-WebSocket-Protocol or Sec-WebSocket-Extensions",
            OriginNotAllowed => "origin not allowed",
            NotFound => "not found",
            UnmaskedFrame => "client frame not masked",
            MaskedFrame => "server frame masked",
            ReservedBits => "reserved bits set",
            ReservedOpcode => "reserved opcode",
            ControlFrameTooLong => "control frame payload over 125 bytes",
            FragmentedControlFrame => "fragmented control frame",
            LengthOverflow => "payload length most significant bit set",
            UnexpectedContinuation => "continuation frame without a message in progress",
            ExpectedContinuation => "new message before the fragmented one finished",
            InvalidCloseCode => "invalid close code",
            CloseFrameTooShort => "close frame payload of 1 byte",
            InvalidUtf8 => "invalid UTF-8 in text message",
            InvalidCloseReason => "invalid UTF-8 in close reason",
            TooManyFragments => "too many fragments in one message",
            FrameTooLarge => "frame too large",
            MessageTooLarge => "message too large",
            BadCompressedData => "invalid compressed data",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.response() {
            Response::Http(status) => write!(f, "{} (HTTP {status})", self.reason()),
            Response::Close(code) => write!(f, "{} (close {})", self.reason(), code.0),
        }
    }
}

impl std::error::Error for Error {}

impl From<BadClose> for Error {
    fn from(bad: BadClose) -> Error {
        match bad {
            BadClose::TooShort => Error::CloseFrameTooShort,
            BadClose::Code => Error::InvalidCloseCode,
            BadClose::Reason => Error::InvalidCloseReason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_close_reason_fits_a_close_frame_and_every_status_is_4xx() {
        for e in Error::ALL {
            assert!(e.reason().len() <= 123, "{e:?}");
            assert!(e.reason().is_ascii(), "{e:?}");
            match e.response() {
                Response::Http(s) => assert!((400..500).contains(&s), "{e:?} -> {s}"),
                Response::Close(c) => {
                    assert!(c.is_sendable(), "{e:?} -> {}", c.0);
                    assert!(matches!(c.0, 1002 | 1007 | 1008 | 1009), "{e:?} -> {}", c.0);
                }
            }
        }
    }

    #[test]
    fn module_table_lists_every_variant() {
        let doc = include_str!("error.rs");
        for e in Error::ALL {
            let row = format!("[`Error::{e:?}`]");
            assert!(doc.contains(&row), "error table misses {e:?}");
        }
    }
}
