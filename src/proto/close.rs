//! Close codes (RFC 6455 §7.4 and the IANA "WebSocket Close Code Number" registry) and the
//! payload of a close frame.

use super::utf8;

/// A close status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection was fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the server is going down or the browser left the page.
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: reported locally when a close frame carried no code; never sent.
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: reported locally when the connection dropped without a close frame; never sent.
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: data inconsistent with the message type (invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: a message that violates the endpoint's policy.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a message too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the service is restarting (IANA).
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later (IANA).
    pub const TRY_AGAIN_LATER: Self = Self(1013);

    /// Whether this code may appear in a close frame on the wire.
    ///
    /// Allowed: 1000-1003 and 1007-1014 (RFC 6455 §7.4.1 plus the IANA registry's 1012-1014),
    /// 3000-3999 (registered for libraries and frameworks) and 4000-4999 (private use).
    /// 1004 is reserved, 1005, 1006 and 1015 are for local reporting only, and every other
    /// value below 3000 is unassigned.
    pub const fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// Why a received close frame's payload is refused (each is one [`Error`](super::Error) variant:
/// see its `From` conversion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadClose {
    /// One byte: half a code (§5.5.1).
    TooShort,
    /// A code that may not be sent on the wire (§7.4).
    Code,
    /// The reason is not UTF-8 (§5.5.1).
    Reason,
}

/// The parsed payload of a received close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosePayload<'a> {
    /// The code, or `None` for an empty payload (reported to the application as 1005).
    pub code: Option<CloseCode>,
    /// The reason, validated UTF-8 (empty when absent).
    pub reason: &'a str,
}

impl<'a> ClosePayload<'a> {
    /// Parses and validates a close frame's payload (already unmasked, at most 125 bytes).
    pub fn parse(payload: &'a [u8]) -> Result<Self, BadClose> {
        match payload {
            [] => Ok(Self {
                code: None,
                reason: "",
            }),
            [_] => Err(BadClose::TooShort),
            [hi, lo, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
                if !code.is_sendable() {
                    return Err(BadClose::Code);
                }
                let reason = utf8::validate(reason).map_err(|_| BadClose::Reason)?;
                Ok(Self {
                    code: Some(code),
                    reason,
                })
            }
        }
    }
}

/// The largest close reason that fits a control frame (125 - 2 bytes of code).
pub const MAX_REASON_BYTES: usize = 123;

/// Cuts `reason` to at most [`MAX_REASON_BYTES`] on a character boundary.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_codes_follow_rfc_and_iana() {
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
        ] {
            assert!(CloseCode(c).is_sendable(), "{c}");
        }
        for c in [3000, 3999, 4000, 4999] {
            assert!(CloseCode(c).is_sendable(), "{c}");
        }
        // The invalid codes Autobahn 7.9.x sends, plus the local-only ones.
        for c in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(c).is_sendable(), "{c}");
        }
    }

    #[test]
    fn close_payload_rules() {
        assert_eq!(ClosePayload::parse(&[]).unwrap().code, None);
        assert_eq!(ClosePayload::parse(&[3]), Err(BadClose::TooShort));
        assert_eq!(ClosePayload::parse(&[0x03, 0xed]), Err(BadClose::Code)); // 1005
        let p = ClosePayload::parse(b"\x03\xe8bye").unwrap();
        assert_eq!(p.code, Some(CloseCode::NORMAL));
        assert_eq!(p.reason, "bye");
        assert_eq!(ClosePayload::parse(b"\x03\xe8\xff"), Err(BadClose::Reason));
    }

    #[test]
    fn reason_truncates_on_char_boundary() {
        let long = "é".repeat(100); // 200 bytes
        let cut = truncate_reason(&long);
        assert!(cut.len() <= MAX_REASON_BYTES);
        assert_eq!(cut.len(), 122);
        assert_eq!(truncate_reason("short"), "short");
    }
}
