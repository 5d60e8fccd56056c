//! The handshake fed arbitrary bytes in arbitrary chunks.
//!
//! The first byte picks how many of the next bytes (1-4) are chunk sizes; those sizes (1-256
//! bytes each) are cycled over the rest of the input, which is fed to a `HeadReader` with the
//! default limits. After a complete head the reader goes on (as on a keep-alive connection) with
//! the bytes from that head's `rest` on.
//!
//! Invariants: no panic; `buffered()` never exceeds `max_header_bytes`; a complete head is
//! exactly the bytes fed since the previous head up to and including the first `\r\n\r\n`,
//! within the limit, and `rest` is the remainder of the last chunk; every parsed upgrade is
//! accepted with `HTTP/1.1 101` (also with the first offered subprotocol and the offered
//! extensions echoed back); every error is answered with `HTTP/1.1 4xx`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringws::proto::handshake::{
    Head, HeadReader, OriginPolicy, Request, accept, error_response, reject,
};
use ringws::proto::{Error, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let Some((sizes, input)) = data.split_at_checked(usize::from(first % 4) + 1) else {
        return;
    };
    let limits = Limits::default();
    let mut reader = HeadReader::new();
    let mut head_start = 0; // where the head being read starts in `input`
    let mut pos = 0; // how much of `input` has been fed
    let mut chunk_index = 0;
    while pos < input.len() {
        let size = usize::from(sizes[chunk_index % sizes.len()]) + 1;
        chunk_index += 1;
        let chunk = &input[pos..input.len().min(pos + size)];
        pos += chunk.len();
        match reader.handle_bytes(chunk, &limits) {
            Ok(Head::Incomplete) => {
                assert!(reader.buffered() <= limits.max_header_bytes);
                assert_eq!(
                    reader.buffered(),
                    pos - head_start,
                    "everything since the head start is held"
                );
            }
            Ok(Head::Complete { head, rest }) => {
                assert!(head.len() <= limits.max_header_bytes);
                assert_eq!(
                    head,
                    &input[head_start..head_start + head.len()],
                    "head is a prefix of the bytes fed"
                );
                assert_eq!(
                    head_start + head.len() + rest.len(),
                    pos,
                    "head + rest cover every byte fed"
                );
                assert_eq!(
                    rest,
                    &chunk[chunk.len() - rest.len()..],
                    "rest is the tail of the last chunk"
                );
                assert_eq!(
                    head.windows(4).position(|w| w == b"\r\n\r\n"),
                    Some(head.len() - 4)
                );
                let head = head.to_vec();
                answer(&head, &limits);
                // Keep-alive: the next head starts right after this one, with `rest`.
                pos -= rest.len();
                head_start = pos;
                assert!(reader.buffered() <= limits.max_header_bytes);
            }
            Err(err) => {
                assert_eq!(err, Error::HeaderTooLarge);
                assert!(
                    pos - head_start > limits.max_header_bytes,
                    "failed only past the limit"
                );
                assert_eq!(reader.buffered(), 0);
                assert!(error_response(err).starts_with(b"HTTP/1.1 431 "));
                break;
            }
        }
    }
});

/// Parses a complete head and builds the answer a server would send.
fn answer(head: &[u8], limits: &Limits) {
    let response = match Request::parse(head, limits) {
        Ok(Request::Upgrade(req)) => {
            let _ = (
                req.path(),
                req.host(),
                req.origin(),
                req.key(),
                req.header("cookie"),
            );
            assert_eq!(req.headers().count(), req.headers().len());
            let policy = OriginPolicy::allow_list(["https://example.com"]);
            if let Err(err) = policy.check(&req) {
                assert_eq!(err, Error::OriginNotAllowed);
                assert!(error_response(err).starts_with(b"HTTP/1.1 403 "));
            }
            // Echoing every offer back is a valid extension response (each parsed and re-joined).
            let mut echoed = String::new();
            for offer in req.extensions() {
                if !echoed.is_empty() {
                    echoed.push_str(", ");
                }
                echoed.push_str(offer.name());
                for (name, value) in offer.params() {
                    echoed.push_str("; ");
                    echoed.push_str(name);
                    if let Some(value) = value {
                        echoed.push('=');
                        echoed.push_str(&value);
                    }
                }
            }
            let extensions = (!echoed.is_empty()).then_some(echoed.as_str());
            let protocol = req.protocols().next();
            let full = accept(&req, protocol, extensions)
                .expect("offered protocol and extensions are accepted");
            assert!(full.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
            assert!(full.ends_with(b"\r\n\r\n"));
            assert_eq!(
                full.windows(4).filter(|w| w == b"\r\n\r\n").count(),
                1,
                "no injected head end"
            );
            accept(&req, None, None).expect("a bare accept never fails")
        }
        Ok(Request::Http(req)) => {
            let _ = (
                req.method(),
                req.path(),
                req.version(),
                req.header("host"),
                req.headers().count(),
            );
            reject(404, req.path())
        }
        Err(err) => {
            let response = error_response(err);
            assert!(response.starts_with(b"HTTP/1.1 4"), "{err:?}");
            response
        }
    };
    assert!(response.starts_with(b"HTTP/1.1 "));
}
