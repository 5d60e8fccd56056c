//! The client side of the opening handshake (RFC 6455 §4.1), done by hand: the request bytes and
//! the checks on the server's response. No I/O here.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ringws::proto::handshake::accept_key;

use crate::target::Target;

/// The longest response head accepted, in bytes.
pub const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// A `Sec-WebSocket-Key`: 16 random bytes in base64.
pub type Key = [u8; 24];

/// Encodes 16 random bytes as a key.
pub fn key_from(random: [u8; 16]) -> Key {
    let mut key = [0u8; 24];
    // 16 bytes always encode to exactly 24 characters.
    let written = BASE64.encode_slice(random, &mut key).unwrap_or(0);
    debug_assert_eq!(written, 24);
    key
}

/// Appends the upgrade request for `target` with `key` to `out`.
pub fn write_request(target: &Target, key: &Key, out: &mut Vec<u8>) {
    let key = std::str::from_utf8(key).unwrap_or("");
    let offer = if target.compress {
        crate::deflate::OFFER
    } else {
        ""
    };
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n",
        target.path, target.host, key
    );
    out.extend_from_slice(req.as_bytes());
}

/// Why the server's response is not an acceptance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// Not parseable as an HTTP/1.1 response head.
    Malformed,
    /// The head is longer than [`MAX_RESPONSE_HEAD`].
    TooLong,
    /// A status other than 101.
    Status(u16),
    /// `Upgrade: websocket` or `Connection: upgrade` is missing.
    NotUpgrade,
    /// `Sec-WebSocket-Accept` is missing or wrong.
    BadAccept,
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed => f.write_str("malformed response head"),
            Self::TooLong => f.write_str("response head too long"),
            Self::Status(s) => write!(f, "status {s}, expected 101"),
            Self::NotUpgrade => f.write_str("missing Upgrade/Connection headers"),
            Self::BadAccept => f.write_str("wrong or missing Sec-WebSocket-Accept"),
        }
    }
}

/// Reads the response head at the start of `buf`. `Ok(None)`: incomplete. `Ok(Some(n))`: the
/// server accepted and the head is `n` bytes long (frames may follow it in `buf`).
pub fn check_response(buf: &[u8], key: &Key) -> Result<Option<usize>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
            return Err(HandshakeError::TooLong);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HandshakeError::Malformed),
    };
    if len > MAX_RESPONSE_HEAD {
        return Err(HandshakeError::TooLong);
    }
    let code = resp.code.unwrap_or(0);
    if code != 101 {
        return Err(HandshakeError::Status(code));
    }
    let expected = accept_key(key);
    let (mut upgrade, mut connection, mut accept) = (false, false, false);
    for h in resp.headers.iter() {
        let value = h.value.trim_ascii();
        if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade |= value.eq_ignore_ascii_case(b"websocket");
        } else if h.name.eq_ignore_ascii_case("connection") {
            connection |= value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
        } else if h.name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept = value == expected;
        }
    }
    if !(upgrade && connection) {
        return Err(HandshakeError::NotUpgrade);
    }
    if !accept {
        return Err(HandshakeError::BadAccept);
    }
    Ok(Some(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6455 §1.3's example key and accept value.
    const KEY: &Key = b"dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn response(extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n{extra}\r\n"
        )
    }

    #[test]
    fn key_is_base64_of_16_bytes() {
        assert_eq!(&key_from(*b"the sample nonce"), KEY);
    }

    #[test]
    fn request_has_the_required_fields() {
        let t = Target::from_url("ws://127.0.0.1:65001/echo").unwrap();
        let mut out = Vec::new();
        write_request(&t, KEY, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("GET /echo HTTP/1.1\r\nHost: 127.0.0.1:65001\r\n"));
        assert!(s.contains("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        assert!(s.ends_with("Sec-WebSocket-Version: 13\r\n\r\n"));
    }

    #[test]
    fn accepts_and_reports_the_head_length() {
        let r = response("");
        let mut bytes = r.clone().into_bytes();
        bytes.extend_from_slice(b"\x81\x02hi");
        assert_eq!(check_response(&bytes, KEY), Ok(Some(r.len())));
    }

    #[test]
    fn incomplete_then_errors() {
        let r = response("");
        assert_eq!(check_response(&r.as_bytes()[..r.len() - 1], KEY), Ok(None));
        let bad = r.replace("101 Switching Protocols", "400 Bad Request");
        assert_eq!(
            check_response(bad.as_bytes(), KEY),
            Err(HandshakeError::Status(400))
        );
        let bad = r.replace(ACCEPT, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert_eq!(
            check_response(bad.as_bytes(), KEY),
            Err(HandshakeError::BadAccept)
        );
        let bad = r.replace("Upgrade: websocket\r\n", "");
        assert_eq!(
            check_response(bad.as_bytes(), KEY),
            Err(HandshakeError::NotUpgrade)
        );
        assert_eq!(
            check_response(b"garbage\r\n\r\n", KEY),
            Err(HandshakeError::Malformed)
        );
        let long = format!("HTTP/1.1 101 OK\r\nX: {}", "a".repeat(MAX_RESPONSE_HEAD));
        assert_eq!(
            check_response(long.as_bytes(), KEY),
            Err(HandshakeError::TooLong)
        );
    }
}
