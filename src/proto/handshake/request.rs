//! Parsing a complete request head, once, and validating a WebSocket upgrade (RFC 6455 §4.2.1).

use core::slice;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::extensions::{self, Extensions};
use super::key;
use super::tokens::{HeaderListItems, is_token, list_contains, trim_ows};
use crate::proto::config::Limits;
use crate::proto::error::Error;

/// A parsed request head: a WebSocket upgrade, or any other HTTP request.
#[derive(Debug, Clone)]
pub enum Request<'a> {
    /// A request whose `Upgrade` header lists `websocket`, validated as a WebSocket opening
    /// handshake.
    Upgrade(UpgradeRequest<'a>),
    /// Any other request (`/healthz`, `/metrics`, a page), for the caller to serve or refuse.
    Http(HttpRequest<'a>),
}

impl<'a> Request<'a> {
    /// Parses a complete head (from [`HeadReader`](super::HeadReader)) and, for a WebSocket
    /// upgrade, validates it.
    ///
    /// A request is an upgrade attempt when one of its `Upgrade` headers lists the token
    /// `websocket` (case-insensitive). The attempt is then checked in this order, the first
    /// failure being the error:
    ///
    /// | rule | error |
    /// |---|---|
    /// | method `GET` | [`Error::MethodNotGet`] (405) |
    /// | `HTTP/1.1` | [`Error::HttpVersion`] (400) |
    /// | one non-empty `Host` | absent or empty: [`Error::MissingHost`]; repeated or not UTF-8: [`Error::MalformedRequest`] (400) |
    /// | `Connection` lists `upgrade` | [`Error::MissingConnectionUpgrade`] (400) |
    /// | exactly one `Sec-WebSocket-Version`, and it is `13` | [`Error::UnsupportedVersion`] (426), **also when it is missing or repeated**, so that the client learns the supported version (§4.2.2) |
    /// | exactly one `Sec-WebSocket-Key`, 16 bytes in canonical padded base64 | [`Error::BadKey`] (400) |
    /// | every `Sec-WebSocket-Protocol` element a token | [`Error::BadHeaderValue`] (400) |
    /// | every `Sec-WebSocket-Extensions` element valid per §9.1 | [`Error::BadHeaderValue`] (400) |
    ///
    /// Header names are case-insensitive, values are trimmed of spaces and tabs, and list
    /// headers (`Connection`, `Upgrade`, `Sec-WebSocket-Protocol`, `Sec-WebSocket-Extensions`)
    /// may be repeated: their elements are joined. Protocol and extension headers are validated
    /// here, eagerly, so their iterators yield plain values. Duplicate subprotocols are not
    /// refused (finding them would be quadratic, and they are harmless).
    ///
    /// A plain HTTP request is only parsed, not validated beyond HTTP syntax.
    ///
    /// # Errors
    ///
    /// Besides the table: [`Error::TooManyHeaders`] for more than `limits.max_headers` headers;
    /// [`Error::MalformedRequest`] for anything `httparse` refuses, and for a head that
    /// `httparse` finds complete before its end (a bare `\n\n` earlier in it).
    pub fn parse(head: &'a [u8], limits: &Limits) -> Result<Self, Error> {
        // A header line takes at least 3 bytes ("a:\n"), so a short head needs few slots: the
        // array is never larger than the head could fill, nor than the configured limit.
        let slots = limits.max_headers.min(head.len() / 3 + 1);
        let mut headers = vec![httparse::EMPTY_HEADER; slots];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(len)) if len == head.len() => {}
            Ok(_) => return Err(Error::MalformedRequest),
            Err(httparse::Error::TooManyHeaders) => return Err(Error::TooManyHeaders),
            Err(_) => return Err(Error::MalformedRequest),
        }
        let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
            return Err(Error::MalformedRequest);
        };
        let count = req.headers.len();
        headers.truncate(count);

        let wants_websocket = HeaderListItems::new(&headers, "upgrade")
            .any(|token| token.eq_ignore_ascii_case(b"websocket"));
        if !wants_websocket {
            return Ok(Self::Http(HttpRequest {
                method,
                path,
                version,
                headers,
            }));
        }
        validate_upgrade(method, path, version, headers).map(Self::Upgrade)
    }
}

fn validate_upgrade<'a>(
    method: &'a str,
    path: &'a str,
    version: u8,
    headers: Vec<httparse::Header<'a>>,
) -> Result<UpgradeRequest<'a>, Error> {
    if method != "GET" {
        return Err(Error::MethodNotGet);
    }
    if version != 1 {
        return Err(Error::HttpVersion);
    }
    let host = match single(&headers, "host") {
        Single::None => return Err(Error::MissingHost),
        Single::Repeated => return Err(Error::MalformedRequest),
        Single::One([]) => return Err(Error::MissingHost),
        Single::One(value) => core::str::from_utf8(value).map_err(|_| Error::MalformedRequest)?,
    };
    if !headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("connection") && list_contains(h.value, "upgrade"))
    {
        return Err(Error::MissingConnectionUpgrade);
    }
    match single(&headers, "sec-websocket-version") {
        Single::One(b"13") => {}
        _ => return Err(Error::UnsupportedVersion),
    }
    let key = match single(&headers, "sec-websocket-key") {
        Single::One(value) if is_valid_key(value) => {
            core::str::from_utf8(value).map_err(|_| Error::BadKey)?
        }
        _ => return Err(Error::BadKey),
    };
    if !HeaderListItems::new(&headers, "sec-websocket-protocol").all(is_token) {
        return Err(Error::BadHeaderValue);
    }
    let extensions_valid = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .all(|h| extensions::validate_list(h.value).is_some());
    if !extensions_valid {
        return Err(Error::BadHeaderValue);
    }
    Ok(UpgradeRequest {
        path,
        host,
        key,
        headers,
    })
}

/// A header that must appear at most once.
enum Single<'a> {
    None,
    /// Its value, trimmed.
    One(&'a [u8]),
    Repeated,
}

fn single<'a>(headers: &[httparse::Header<'a>], name: &str) -> Single<'a> {
    let mut found = headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name));
    match (found.next(), found.next()) {
        (None, _) => Single::None,
        (Some(h), None) => Single::One(trim_ows(h.value)),
        (Some(_), Some(_)) => Single::Repeated,
    }
}

/// §4.2.1 (5): base64 of 16 bytes, i.e. 24 characters with `==` padding (the decoder refuses
/// non-canonical trailing bits).
fn is_valid_key(value: &[u8]) -> bool {
    let mut decoded = [0u8; 18];
    value.len() == 24 && matches!(BASE64.decode_slice(value, &mut decoded), Ok(16))
}

/// A validated WebSocket opening handshake.
///
/// Answer it with [`accept`](super::accept) (after any [`OriginPolicy`](super::OriginPolicy)
/// check and authentication), or refuse it with [`reject`](super::reject).
#[derive(Debug, Clone)]
pub struct UpgradeRequest<'a> {
    path: &'a str,
    host: &'a str,
    key: &'a str,
    headers: Vec<httparse::Header<'a>>,
}

impl<'a> UpgradeRequest<'a> {
    /// The request target as sent, query included (e.g. `/chat?room=1`).
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The `Host` header value, trimmed (e.g. `example.com:8080`).
    pub fn host(&self) -> &'a str {
        self.host
    }

    /// The first `Origin` header's value, trimmed; `None` when absent or not UTF-8.
    ///
    /// Browsers always send it; other clients may send anything or nothing. It is not
    /// authentication (RFC 6455 §10.1); see [`OriginPolicy`](super::OriginPolicy).
    pub fn origin(&self) -> Option<&'a str> {
        self.header("origin")
            .and_then(|v| core::str::from_utf8(trim_ows(v)).ok())
    }

    /// The value of the first header called `name` (case-insensitive), e.g. `Cookie` or
    /// `Authorization`.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        find_header(&self.headers, name)
    }

    /// Every header as `(name, value)`, in request order.
    pub fn headers(&self) -> Headers<'_> {
        Headers {
            iter: self.headers.iter(),
        }
    }

    /// The subprotocols the client offers, in order of preference, over every
    /// `Sec-WebSocket-Protocol` header (each a token; empty list elements skipped).
    pub fn protocols(&self) -> Protocols<'_> {
        Protocols {
            items: HeaderListItems::new(&self.headers, "sec-websocket-protocol"),
        }
    }

    /// The extensions the client offers, in order of preference, over every
    /// `Sec-WebSocket-Extensions` header (validated by [`Request::parse`]).
    pub fn extensions(&self) -> Extensions<'_> {
        Extensions::new(&self.headers)
    }

    /// The `Sec-WebSocket-Key` value, trimmed: 24 characters of base64.
    pub fn key(&self) -> &'a str {
        self.key
    }

    /// The `Sec-WebSocket-Accept` value answering this key: base64(SHA-1(key + GUID)).
    pub fn accept_key(&self) -> [u8; 28] {
        key::accept_key(self.key.as_bytes())
    }
}

/// A request that is not a WebSocket upgrade.
///
/// Only the head is parsed: a body (e.g. after `Content-Length`) starts in the `rest` that
/// [`HeadReader`](super::HeadReader) returned, and reading it is the caller's business.
#[derive(Debug, Clone)]
pub struct HttpRequest<'a> {
    method: &'a str,
    path: &'a str,
    version: u8,
    headers: Vec<httparse::Header<'a>>,
}

impl<'a> HttpRequest<'a> {
    /// The method, e.g. `GET`.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request target as sent, query included.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The HTTP minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        find_header(&self.headers, name)
    }

    /// Every header as `(name, value)`, in request order.
    pub fn headers(&self) -> Headers<'_> {
        Headers {
            iter: self.headers.iter(),
        }
    }
}

fn find_header<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// The headers of a request as `(name, value)`; see [`UpgradeRequest::headers`].
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    iter: slice::Iter<'a, httparse::Header<'a>>,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        self.iter.next().map(|h| (h.name, h.value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}

impl ExactSizeIterator for Headers<'_> {}

/// The offered subprotocols; see [`UpgradeRequest::protocols`].
#[derive(Debug, Clone)]
pub struct Protocols<'a> {
    items: HeaderListItems<'a>,
}

impl<'a> Iterator for Protocols<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        // Every element was checked to be a token (ASCII) by `Request::parse`.
        self.items
            .by_ref()
            .find_map(|item| core::str::from_utf8(item).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// The RFC 6455 §1.3 request, with `extra` header lines added and header `drop` removed.
    fn request(first_line: &str, drop: &[&str], extra: &[&str]) -> Vec<u8> {
        let mut lines = vec![first_line.to_owned()];
        for line in [
            "Host: server.example.com",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Origin: http://example.com",
            "Sec-WebSocket-Protocol: chat, superchat",
            "Sec-WebSocket-Version: 13",
        ] {
            let name = line.split(':').next().unwrap();
            if !drop.iter().any(|d| d.eq_ignore_ascii_case(name)) {
                lines.push(line.to_owned());
            }
        }
        lines.extend(extra.iter().map(|l| (*l).to_owned()));
        (lines.join("\r\n") + "\r\n\r\n").into_bytes()
    }

    fn upgrade(head: &[u8]) -> Result<UpgradeRequest<'_>, Error> {
        match Request::parse(head, &Limits::default())? {
            Request::Upgrade(req) => Ok(req),
            Request::Http(req) => panic!("not an upgrade: {req:?}"),
        }
    }

    fn with(drop: &[&str], extra: &[&str]) -> Result<(), Error> {
        upgrade(&request("GET /chat HTTP/1.1", drop, extra)).map(|_| ())
    }

    #[test]
    fn rfc_example_is_accepted() {
        let head = request("GET /chat?x=1 HTTP/1.1", &[], &["Cookie: a=b"]);
        let req = upgrade(&head).unwrap();
        assert_eq!(req.path(), "/chat?x=1");
        assert_eq!(req.host(), "server.example.com");
        assert_eq!(req.origin(), Some("http://example.com"));
        assert_eq!(req.key(), KEY);
        assert_eq!(&req.accept_key(), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(req.header("COOKIE"), Some(&b"a=b"[..]));
        assert_eq!(req.header("authorization"), None);
        assert_eq!(req.headers().len(), 8);
        assert_eq!(
            req.headers().next(),
            Some(("Host", &b"server.example.com"[..]))
        );
        assert_eq!(req.protocols().collect::<Vec<_>>(), ["chat", "superchat"]);
        assert_eq!(req.extensions().count(), 0);
    }

    #[test]
    fn method_must_be_get() {
        assert_eq!(
            upgrade(&request("POST /chat HTTP/1.1", &[], &[])).err(),
            Some(Error::MethodNotGet)
        );
        assert_eq!(
            upgrade(&request("get /chat HTTP/1.1", &[], &[])).err(),
            Some(Error::MethodNotGet)
        );
    }

    #[test]
    fn version_must_be_http_1_1() {
        assert_eq!(
            upgrade(&request("GET /chat HTTP/1.0", &[], &[])).err(),
            Some(Error::HttpVersion)
        );
        let head = request("GET /chat HTTP/2.0", &[], &[]);
        assert_eq!(
            Request::parse(&head, &Limits::default()).err(),
            Some(Error::MalformedRequest)
        );
    }

    #[test]
    fn host_is_required_once() {
        assert_eq!(with(&["host"], &[]), Err(Error::MissingHost));
        assert_eq!(with(&["host"], &["Host:  "]), Err(Error::MissingHost));
        assert_eq!(with(&[], &["host: other"]), Err(Error::MalformedRequest));
        assert_eq!(with(&["host"], &["hOsT: a.example"]), Ok(()));
    }

    #[test]
    fn connection_must_list_upgrade() {
        assert_eq!(
            with(&["connection"], &[]),
            Err(Error::MissingConnectionUpgrade)
        );
        assert_eq!(
            with(&["connection"], &["Connection: keep-alive"]),
            Err(Error::MissingConnectionUpgrade)
        );
        assert_eq!(
            with(&["connection"], &["Connection: upgrade-insecure"]),
            Err(Error::MissingConnectionUpgrade)
        );
        assert_eq!(
            with(&["connection"], &["Connection: keep-alive, Upgrade"]),
            Ok(())
        );
        assert_eq!(
            with(
                &["connection"],
                &["connection: keep-alive", "CONNECTION: UPGRADE"]
            ),
            Ok(())
        );
        assert_eq!(
            with(&["connection"], &["Connection:\tkeep-alive ,\tupgrade\t"]),
            Ok(())
        );
    }

    #[test]
    fn version_must_be_13() {
        assert_eq!(
            with(&["sec-websocket-version"], &[]),
            Err(Error::UnsupportedVersion)
        );
        assert_eq!(
            with(&["sec-websocket-version"], &["Sec-WebSocket-Version: 8"]),
            Err(Error::UnsupportedVersion)
        );
        assert_eq!(
            with(
                &["sec-websocket-version"],
                &["Sec-WebSocket-Version: 13, 8"]
            ),
            Err(Error::UnsupportedVersion)
        );
        assert_eq!(
            with(&["sec-websocket-version"], &["Sec-WebSocket-Version: 013"]),
            Err(Error::UnsupportedVersion)
        );
        assert_eq!(
            with(&[], &["Sec-WebSocket-Version: 13"]),
            Err(Error::UnsupportedVersion)
        );
        assert_eq!(
            with(&["sec-websocket-version"], &["sec-websocket-version:  13 "]),
            Ok(())
        );
    }

    #[test]
    fn key_must_be_one_16_byte_base64_value() {
        let key = |v: &str| {
            with(
                &["sec-websocket-key"],
                &[&format!("Sec-WebSocket-Key: {v}")],
            )
        };
        assert_eq!(with(&["sec-websocket-key"], &[]), Err(Error::BadKey));
        assert_eq!(
            with(&[], &["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="]),
            Err(Error::BadKey)
        );
        assert_eq!(key("dGhlIHNhbXBsZSBub25jZQ"), Err(Error::BadKey)); // no padding
        assert_eq!(key("dGhlIHNhbXBsZSBub25jZQ=="), Ok(()));
        assert_eq!(key("  dGhlIHNhbXBsZSBub25jZQ==  "), Ok(()));
        assert_eq!(key("dGhlIHNhbXBsZSBub25jZR=="), Err(Error::BadKey)); // non-canonical bits
        assert_eq!(key("dGhlIHNhbXBsZSBub25jZQ=x"), Err(Error::BadKey));
        assert_eq!(key("dGhlIHNhbXBsZSBub25jZQ==AAAA"), Err(Error::BadKey)); // 19 bytes
        assert_eq!(key("AAAAAAAAAAAAAAAAAAAA"), Err(Error::BadKey)); // 15 bytes
        assert_eq!(key("dGhlIHNhbXBsZSBub25j*Q=="), Err(Error::BadKey));
        assert_eq!(key(""), Err(Error::BadKey));
    }

    #[test]
    fn protocols_are_tokens_over_repeated_headers() {
        let proto = |v: &str| {
            with(
                &["sec-websocket-protocol"],
                &[&format!("Sec-WebSocket-Protocol: {v}")],
            )
        };
        assert_eq!(proto("a b"), Err(Error::BadHeaderValue));
        assert_eq!(proto("chat, \"x\""), Err(Error::BadHeaderValue));
        assert_eq!(proto("chat;v=2"), Err(Error::BadHeaderValue));
        assert_eq!(proto(" , chat.v1 ,, json+x, "), Ok(()));
        let head = request(
            "GET / HTTP/1.1",
            &[],
            &["sec-websocket-protocol: three", "Sec-WebSocket-Protocol:"],
        );
        let req = upgrade(&head).unwrap();
        assert_eq!(
            req.protocols().collect::<Vec<_>>(),
            ["chat", "superchat", "three"]
        );
    }

    #[test]
    fn protocol_list_of_ten_thousand_commas_is_fast() {
        // ws's CVE-2021-32640 was a regular expression that backtracked on such a list. Here the
        // list is split once: the work is counted, each piece looked at once (linear), not
        // timed.
        let commas = ",".repeat(10_000);
        let line = format!("Sec-WebSocket-Protocol: {commas}chat{commas}");
        let head = request("GET / HTTP/1.1", &["sec-websocket-protocol"], &[&line]);
        let limits = Limits {
            max_header_bytes: 64 * 1024,
            ..Limits::default()
        };
        let Ok(Request::Upgrade(req)) = Request::parse(&head, &limits) else {
            panic!()
        };
        let mut protocols = req.protocols();
        assert_eq!(protocols.by_ref().collect::<Vec<_>>(), ["chat"]);
        assert_eq!(protocols.items.pieces, 20_001, "each piece once");
    }

    #[test]
    fn extensions_are_validated_and_joined() {
        let ext = |v: &str| with(&[], &[&format!("Sec-WebSocket-Extensions: {v}")]);
        assert_eq!(ext("permessage-deflate; client_max_window_bits"), Ok(()));
        assert_eq!(ext("constructor, __proto__; hasOwnProperty=\"1\""), Ok(()));
        assert_eq!(ext("permessage-deflate;"), Err(Error::BadHeaderValue));
        assert_eq!(ext("a; b=\"c"), Err(Error::BadHeaderValue));
        let head = request(
            "GET / HTTP/1.1",
            &[],
            &[
                "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover",
                "sec-websocket-extensions: x-two",
            ],
        );
        let req = upgrade(&head).unwrap();
        let names: Vec<&str> = req.extensions().map(|e| e.name()).collect();
        assert_eq!(names, ["permessage-deflate", "x-two"]);
        let params: Vec<_> = req.extensions().next().unwrap().params().collect();
        assert_eq!(params, [("server_no_context_takeover", None)]);
    }

    #[test]
    fn upgrade_token_decides_the_kind() {
        let plain = b"POST /metrics HTTP/1.0\r\nUpgrade: h2c\r\nX-A: 1\r\n\r\n";
        let Ok(Request::Http(req)) = Request::parse(plain, &Limits::default()) else {
            panic!()
        };
        assert_eq!(
            (req.method(), req.path(), req.version()),
            ("POST", "/metrics", 0)
        );
        assert_eq!(req.header("x-a"), Some(&b"1"[..]));
        assert_eq!(req.headers().count(), 2);
        let healthz = b"GET /healthz HTTP/1.1\r\n\r\n";
        assert!(matches!(
            Request::parse(healthz, &Limits::default()),
            Ok(Request::Http(_))
        ));
        // The token is found case-insensitively, in any element, in any Upgrade header.
        for extra in [
            "Upgrade: WebSocket",
            "Upgrade: h2c, websocket",
            "upgrade: h2c\r\nUpgrade: WEBSOCKET",
        ] {
            let head = request("GET / HTTP/1.1", &["upgrade"], &[extra]);
            assert!(
                matches!(
                    Request::parse(&head, &Limits::default()),
                    Ok(Request::Upgrade(_))
                ),
                "{extra}"
            );
        }
        let head = request("GET / HTTP/1.1", &["upgrade"], &["Upgrade: websocket2"]);
        assert!(matches!(
            Request::parse(&head, &Limits::default()),
            Ok(Request::Http(_))
        ));
    }

    #[test]
    fn too_many_headers() {
        let limits = Limits {
            max_headers: 8,
            ..Limits::default()
        };
        let head = request("GET / HTTP/1.1", &[], &["A: 1"]);
        assert!(Request::parse(&head, &limits).is_ok(), "8 headers");
        let head = request("GET / HTTP/1.1", &[], &["A: 1", "B: 2"]);
        assert_eq!(
            Request::parse(&head, &limits).err(),
            Some(Error::TooManyHeaders)
        );
        // Minimal header lines: the slot estimate from the head length must still fit them.
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "a:\r\n".repeat(1000));
        let limits = Limits {
            max_headers: 1000,
            ..Limits::default()
        };
        assert!(Request::parse(many.as_bytes(), &limits).is_ok());
        let limits = Limits {
            max_headers: 999,
            ..Limits::default()
        };
        assert_eq!(
            Request::parse(many.as_bytes(), &limits).err(),
            Some(Error::TooManyHeaders)
        );
    }

    #[test]
    fn malformed_heads() {
        for head in [
            &b"\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET / HTTP/1.1\r\nNo colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: \x01\r\n\r\n",
            b"GET / HTTP/1.1\r\n  folded: x\r\n\r\n",
            b"GET / HTTP/1.1\n\nSmuggled: x\r\n\r\n", // complete before the end of the head
            b"GET / HTTP/1.1\r\n",                    // not complete at all
        ] {
            assert_eq!(
                Request::parse(head, &Limits::default()).err(),
                Some(Error::MalformedRequest),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }
}
