//! The client side of permessage-deflate (`--compress`): the offer, reading the server's
//! answer, and a connection's codecs.
//!
//! The client offers `client_no_context_takeover` and compresses every message on its own (as a
//! browser may), so a server in shared mode needs no state per connection; it inflates with one
//! inflater per connection, reset after each message when the server said
//! `server_no_context_takeover`, kept otherwise (the server's context takeover).

use ringws::proto::Error;
use ringws::proto::deflate::{Deflater, Inflater};

/// The header line offered.
pub const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; client_max_window_bits\r\n";

/// zlib level of the client's compression (what browsers use by default).
const LEVEL: u8 = 6;

/// Whether the response head `head` accepts permessage-deflate; `Some(server_no_context_takeover)`.
pub fn accepted(head: &[u8]) -> Option<bool> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    resp.parse(head).ok()?;
    let value = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))?
        .value;
    let value = std::str::from_utf8(value).ok()?.to_ascii_lowercase();
    let mut params = value.split(';').map(str::trim);
    (params.next() == Some("permessage-deflate"))
        .then(|| params.any(|p| p == "server_no_context_takeover"))
}

/// A connection's codecs and what they saw.
pub struct ClientPmd {
    deflater: Deflater,
    inflater: Inflater,
    server_no_context_takeover: bool,
    /// Scratch for one message.
    pub buf: Vec<u8>,
    /// Inflated bytes of the compressed messages received.
    pub plain_in: u64,
    /// Their compressed bytes.
    pub packed_in: u64,
}

impl std::fmt::Debug for ClientPmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPmd")
            .field("plain_in", &self.plain_in)
            .field("packed_in", &self.packed_in)
            .finish_non_exhaustive()
    }
}

impl ClientPmd {
    /// Codecs for a connection whose server answered with `server_no_context_takeover` or not.
    pub fn new(server_no_context_takeover: bool) -> Self {
        Self {
            deflater: Deflater::new(LEVEL, 15, true),
            inflater: Inflater::new(15),
            server_no_context_takeover,
            buf: Vec::new(),
            plain_in: 0,
            packed_in: 0,
        }
    }

    /// Compresses `payload` into `out` (appended).
    pub fn deflate(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        self.deflater.deflate(payload, out);
    }

    /// Inflates a received message into [`ClientPmd::buf`] (replacing it).
    pub fn inflate(&mut self, packed: &[u8]) -> Result<(), Error> {
        self.buf.clear();
        let r = self.inflater.inflate(packed, 64 << 20, &mut self.buf);
        if self.server_no_context_takeover {
            self.inflater.reset();
        }
        self.plain_in += self.buf.len() as u64;
        self.packed_in += packed.len() as u64;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_answer() {
        let head = |ext: &str| {
            format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n{ext}\r\n")
        };
        assert_eq!(
            accepted(
                head(
                    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
                )
                .as_bytes()
            ),
            Some(true)
        );
        assert_eq!(
            accepted(head("sec-websocket-extensions: permessage-deflate\r\n").as_bytes()),
            Some(false)
        );
        assert_eq!(accepted(head("").as_bytes()), None);
    }

    #[test]
    fn round_trip() {
        let mut a = ClientPmd::new(true);
        let mut packed = Vec::new();
        a.deflate(
            br#"{"op":"message","text":"hello hello hello"}"#,
            &mut packed,
        );
        a.inflate(&packed).unwrap();
        assert_eq!(a.buf, br#"{"op":"message","text":"hello hello hello"}"#);
        assert!(a.packed_in > 0 && a.plain_in == a.buf.len() as u64);
    }
}
