//! Writing the handshake's answers: the `101 Switching Protocols` of RFC 6455 §4.2.2, and the
//! error responses that refuse an upgrade.
//!
//! Each function returns the complete response as a new `Vec<u8>`, ready to send: a handshake
//! happens once per connection, and an owned buffer is what the I/O layer hands to the kernel.
//! Error responses always carry `Connection: close`: the caller sends them and closes.

use core::fmt::{self, Write as _};

use super::extensions;
use super::request::UpgradeRequest;
use crate::proto::error::Error;

/// Why [`accept`] refused to write a `101` response. Both are mistakes of the server's own code
/// (the subprotocol choice or the extension negotiator), not of the peer; the caller should log
/// the bug and answer `500` with [`reject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptError {
    /// The chosen subprotocol is not one the client offered (§4.2.2 requires one it did:
    /// browsers fail the connection otherwise). Pick from
    /// [`UpgradeRequest::protocols`], or pass `None`.
    ProtocolNotOffered,
    /// The `Sec-WebSocket-Extensions` value is empty, malformed per §9.1, or holds CR/LF (which
    /// would inject headers).
    InvalidExtensions,
}

impl fmt::Display for AcceptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ProtocolNotOffered => "chosen subprotocol was not offered by the client",
            Self::InvalidExtensions => "invalid Sec-WebSocket-Extensions response value",
        })
    }
}

impl std::error::Error for AcceptError {}

/// The `101 Switching Protocols` response accepting `req`.
///
/// `protocol` is the chosen subprotocol; it must be one of [`UpgradeRequest::protocols`]
/// (compared exactly, as browsers do). `extensions` is the `Sec-WebSocket-Extensions` value
/// from the extension negotiator (e.g. `permessage-deflate; server_no_context_takeover`); it
/// must be a valid §9.1 list.
///
/// ```text
/// HTTP/1.1 101 Switching Protocols\r\n
/// Upgrade: websocket\r\n
/// Connection: Upgrade\r\n
/// Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n
/// Sec-WebSocket-Protocol: chat\r\n           (when protocol is Some)
/// Sec-WebSocket-Extensions: ...\r\n          (when extensions is Some)
/// \r\n
/// ```
///
/// # Errors
///
/// [`AcceptError`]; nothing is written then, and the connection must not be upgraded.
pub fn accept(
    req: &UpgradeRequest<'_>,
    protocol: Option<&str>,
    extensions: Option<&str>,
) -> Result<Vec<u8>, AcceptError> {
    if protocol.is_some_and(|chosen| !req.protocols().any(|offered| offered == chosen)) {
        return Err(AcceptError::ProtocolNotOffered);
    }
    if let Some(extensions) = extensions {
        // A valid list holds no control characters at all; checking CR/LF first keeps the
        // injection defence independent of the grammar code.
        let bytes = extensions.as_bytes();
        if bytes.contains(&b'\r')
            || bytes.contains(&b'\n')
            || !matches!(extensions::validate_list(bytes), Some(1..))
        {
            return Err(AcceptError::InvalidExtensions);
        }
    }
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(&req.accept_key());
    out.extend_from_slice(b"\r\n");
    if let Some(protocol) = protocol {
        out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        out.extend_from_slice(protocol.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(extensions) = extensions {
        out.extend_from_slice(b"Sec-WebSocket-Extensions: ");
        out.extend_from_slice(extensions.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// The response refusing a handshake that failed with `err`: its
/// [`http_status`](Error::http_status), a `text/plain` body of its [`reason`](Error::reason)
/// and a newline, and `Connection: close`. A 426 adds `Sec-WebSocket-Version: 13` (§4.2.2) and
/// a 405 adds `Allow: GET`.
///
/// An error of an open connection (no HTTP status) is a caller bug; it is answered with 400.
///
/// ```text
/// HTTP/1.1 426 Upgrade Required\r\n
/// Content-Type: text/plain; charset=utf-8\r\n
/// Content-Length: 50\r\n
/// Connection: close\r\n
/// Sec-WebSocket-Version: 13\r\n
/// \r\n
/// unsupported Sec-WebSocket-Version (supported: 13)\n
/// ```
pub fn error_response(err: Error) -> Vec<u8> {
    let status = err.http_status().unwrap_or(400);
    let extra = match status {
        426 => "Sec-WebSocket-Version: 13\r\n",
        405 => "Allow: GET\r\n",
        _ => "",
    };
    plain_response(status, err.reason(), extra)
}

/// A response for the caller's own refusals (401/403 after authentication, 404, 429, 503...),
/// shaped like [`error_response`]: `text/plain` body of `reason` and a newline,
/// `Connection: close`.
///
/// `reason` goes only in the body; control characters in it (CR, LF, tab, ...) are replaced by
/// spaces so it stays one line. A `status` outside 400..=599 is answered as 500: this function
/// only refuses.
pub fn reject(status: u16, reason: &str) -> Vec<u8> {
    let status = if (400..=599).contains(&status) {
        status
    } else {
        500
    };
    let reason: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    plain_response(status, &reason, "")
}

fn plain_response(status: u16, reason: &str, extra_headers: &str) -> Vec<u8> {
    let mut out = String::with_capacity(160 + reason.len());
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n{extra_headers}\r\n{reason}\n",
        reason_phrase(status),
        reason.len() + 1,
    );
    out.into_bytes()
}

/// The standard reason phrase of RFC 9110 §15 (and RFC 6585 for 428/429/431); a generic one
/// for other codes (the phrase is informative only).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ if status < 500 => "Client Error",
        _ => "Server Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::config::Limits;
    use crate::proto::handshake::Request;

    const HEAD: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn with_request(f: impl FnOnce(&UpgradeRequest<'_>)) {
        let Ok(Request::Upgrade(req)) = Request::parse(HEAD, &Limits::default()) else {
            panic!()
        };
        f(&req);
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn accept_response_bytes() {
        with_request(|req| {
            assert_eq!(
                text(accept(req, None, None).unwrap()),
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
            );
            assert_eq!(
                text(
                    accept(
                        req,
                        Some("superchat"),
                        Some("permessage-deflate; server_no_context_takeover")
                    )
                    .unwrap()
                ),
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
                 Sec-WebSocket-Protocol: superchat\r\n\
                 Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n"
            );
        });
    }

    #[test]
    fn protocol_not_offered_is_refused() {
        with_request(|req| {
            assert_eq!(
                accept(req, Some("mqtt"), None),
                Err(AcceptError::ProtocolNotOffered)
            );
            assert_eq!(
                accept(req, Some("Chat"), None),
                Err(AcceptError::ProtocolNotOffered)
            );
            assert_eq!(
                accept(req, Some("chat, superchat"), None),
                Err(AcceptError::ProtocolNotOffered)
            );
            assert_eq!(
                accept(req, Some("chat\r\nX-Evil: 1"), None),
                Err(AcceptError::ProtocolNotOffered)
            );
            assert_eq!(
                accept(req, Some(""), None),
                Err(AcceptError::ProtocolNotOffered)
            );
            assert!(accept(req, Some("chat"), None).is_ok());
        });
    }

    #[test]
    fn extension_header_injection_is_refused() {
        with_request(|req| {
            for bad in [
                "a\r\nSet-Cookie: x=1",
                "a\nb",
                "a\r",
                "",
                " , ",
                "a;",
                "a b",
            ] {
                assert_eq!(
                    accept(req, None, Some(bad)),
                    Err(AcceptError::InvalidExtensions),
                    "{bad:?}"
                );
            }
        });
    }

    #[test]
    fn error_response_bytes() {
        assert_eq!(
            text(error_response(Error::UnsupportedVersion)),
            "HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 50\r\nConnection: close\r\nSec-WebSocket-Version: 13\r\n\r\n\
             unsupported Sec-WebSocket-Version (supported: 13)\n"
        );
        assert_eq!(
            text(error_response(Error::MethodNotGet)),
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 31\r\nConnection: close\r\nAllow: GET\r\n\r\n\
             WebSocket upgrade requires GET\n"
        );
        assert_eq!(
            text(error_response(Error::HeaderTooLarge)),
            "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 25\r\nConnection: close\r\n\r\nrequest header too large\n"
        );
        assert_eq!(
            text(error_response(Error::OriginNotAllowed)),
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 19\r\nConnection: close\r\n\r\norigin not allowed\n"
        );
        assert_eq!(
            text(error_response(Error::BadKey)),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 45\r\nConnection: close\r\n\r\nSec-WebSocket-Key must be 16 bytes of base64\n"
        );
        // A connection error is a caller bug: 400, never a panic.
        assert!(
            text(error_response(Error::InvalidUtf8)).starts_with("HTTP/1.1 400 Bad Request\r\n")
        );
    }

    #[test]
    fn every_handshake_error_has_a_consistent_response() {
        for err in Error::ALL.into_iter().filter(|e| e.http_status().is_some()) {
            let response = text(error_response(err));
            let status = err.http_status().unwrap();
            assert!(
                response.starts_with(&format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)))
            );
            let (head, body) = response.split_once("\r\n\r\n").unwrap();
            assert_eq!(body, format!("{}\n", err.reason()));
            assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        }
    }

    #[test]
    fn reject_bytes_and_sanitizing() {
        assert_eq!(
            text(reject(401, "login required")),
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 15\r\nConnection: close\r\n\r\nlogin required\n"
        );
        assert_eq!(
            text(reject(403, "no\r\nSet-Cookie: admin=1\r\n\r\n<script>")),
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 36\r\nConnection: close\r\n\r\nno  Set-Cookie: admin=1    <script>\n"
        );
        // Non-ASCII is kept and counted in bytes.
        assert!(text(reject(404, "pas trouvé")).contains("Content-Length: 12\r\n"));
        assert!(text(reject(503, "")).starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(text(reject(499, "x")).starts_with("HTTP/1.1 499 Client Error\r\n"));
        for not_a_refusal in [0, 101, 200, 302, 600, 65535] {
            assert!(
                text(reject(not_a_refusal, "x"))
                    .starts_with("HTTP/1.1 500 Internal Server Error\r\n")
            );
        }
    }
}
