//! The invariants of the fuzz targets, one function per target, shared: each fuzz target
//! (`fuzz_targets/*.rs`, libFuzzer on nightly) calls its function with libFuzzer's input, and
//! the stable test suite (`tests/fuzz_corpus.rs`) replays the committed corpora and past
//! crashes through the same functions and feeds them generated, mostly valid input. A function
//! panics when an invariant breaks.
#![allow(dead_code)] // each fuzz target uses one of these

use ringws::proto::connection::ASSEMBLY_HEADROOM;
use ringws::proto::deflate::codec::INFLATE_BLOCK;
use ringws::proto::deflate::{Deflater, Inflater, SmallDeflater};
use ringws::proto::frame::{Header, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode};
use ringws::proto::handshake::{
    Head, HeadReader, OriginPolicy, Request, accept, error_response, reject,
};
use ringws::proto::{CloseCode, Config, Connection, Error, Event, Limits, Sink};

// ------------------------------------------------------------------ handshake

/// The handshake fed arbitrary bytes in arbitrary chunks.
///
/// The first byte picks how many of the next bytes (1-4) are chunk sizes; those sizes (1-256
/// bytes each) are cycled over the rest of the input, which is fed to a `HeadReader` with the
/// default limits. After a complete head the reader goes on (as on a keep-alive connection) with
/// the bytes from that head's `rest` on.
///
/// Invariants: no panic; `buffered()` never exceeds `max_header_bytes`; a complete head is
/// exactly the bytes fed since the previous head up to and including the first `\r\n\r\n`,
/// within the limit, and `rest` is the remainder of the last chunk; every parsed upgrade is
/// accepted with `HTTP/1.1 101` (also with the first offered subprotocol and the offered
/// extensions echoed back); every error is answered with `HTTP/1.1 4xx`.
pub fn handshake(data: &[u8]) {
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
}

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

// ------------------------------------------------------------------ frame

/// The frame-header parser fed arbitrary bytes.
///
/// Invariants: no panic; a parsed header re-encodes to a header that parses back to the same
/// values; the header length is within 2..=14 and within the input; a 64-bit length never has
/// its top bit set; control frames are never fragmented or over 125 bytes.
pub fn frame(data: &[u8]) {
    let Ok(Some((header, len))) = Header::parse(data) else {
        return;
    };
    assert!((2..=MAX_HEADER_LEN).contains(&len) && len <= data.len());
    assert_eq!(header.payload_len >> 63, 0);
    if header.opcode.is_control() {
        assert!(header.fin && header.payload_len <= MAX_CONTROL_PAYLOAD as u64);
    }
    let encoded = header.encode();
    assert!(encoded.len() <= len, "the encoder uses the shortest form");
    let (again, again_len) = Header::parse(&encoded)
        .expect("re-encoded header parses")
        .expect("complete");
    assert_eq!(again, header);
    assert_eq!(again_len, encoded.len());
}

// ------------------------------------------------------------------ inflate

/// permessage-deflate's inflater fed arbitrary compressed payloads, with a limit from the input.
///
/// Invariants: no panic; the output never passes the limit (an overshoot is
/// `MessageTooLarge`, never returned data); the output buffer never grows past the limit plus
/// one block, however much the input would inflate to (zip bombs); an error is one of
/// `MessageTooLarge`/`BadCompressedData`; what inflates, deflated again, inflates back to the
/// same bytes; the worker-style inflater (reset after each message) gives the same result as a
/// fresh one.
pub fn inflate(data: &[u8]) {
    let Some((head, payload)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limit = usize::from(u16::from_le_bytes(*head));
    let mut shared = Inflater::new(15);
    for _ in 0..2 {
        let mut out = Vec::new();
        let result = shared.inflate(payload, limit, &mut out);
        shared.reset();
        assert!(
            out.capacity() <= limit + INFLATE_BLOCK,
            "{} for {limit}",
            out.capacity()
        );
        match result {
            Ok(()) => {
                assert!(out.len() <= limit);
                let mut fresh = Vec::new();
                Inflater::new(15)
                    .inflate(payload, limit, &mut fresh)
                    .expect("same result");
                assert_eq!(fresh, out);
                let mut again = Vec::new();
                Deflater::new(1, 15, true).deflate(&out, &mut again);
                let mut back = Vec::new();
                Inflater::new(15)
                    .inflate(&again, limit, &mut back)
                    .expect("round trip");
                assert_eq!(back, out);
                // The shared mode's encoder for short messages, read as a client reads it.
                let mut small = Vec::new();
                if SmallDeflater::new(2).deflate(&out, &mut small) {
                    let mut back = Vec::new();
                    Inflater::new(15)
                        .inflate(&small, limit, &mut back)
                        .expect("round trip through SmallDeflater");
                    assert_eq!(back, out);
                } else {
                    assert!(out.len() > SmallDeflater::MAX_INPUT);
                }
            }
            Err(e) => assert!(
                matches!(e, Error::MessageTooLarge | Error::BadCompressedData),
                "{e:?}"
            ),
        }
    }
}

// ------------------------------------------------------------------ connection

/// The whole connection state machine fed arbitrary bytes in arbitrary chunks.
///
/// The first input byte picks the chunk sizes (so the same frames are cut at every boundary),
/// the rest is the byte stream from the peer. Invariants: no panic; the spill buffer never holds
/// more than the limits allow, after every read; every frame the core sends is a well-formed,
/// unmasked, unfragmented control frame, and a close frame carries a sendable code; after an
/// error the connection is closed and the last frame sent is that error's close frame; nothing
/// is delivered after the connection is closed; messages never exceed the message limit.
struct Check {
    max_message: usize,
    closed: bool,
    last_sent: Vec<u8>,
}

impl Sink for Check {
    fn event(&mut self, event: Event<'_>) {
        assert!(!self.closed, "event after close");
        match event {
            Event::Text(t) => assert!(t.len() <= self.max_message),
            Event::Binary(b) => assert!(b.len() <= self.max_message),
            Event::Ping(p) | Event::Pong(p) => assert!(p.len() <= 125),
            Event::Compressed { .. } => panic!("no extension was negotiated"),
            Event::Close { code, reason } => {
                assert!(code.is_none_or(|c| c.is_sendable()));
                assert!(reason.len() <= 123);
            }
        }
    }

    fn transmit(&mut self, opcode: OpCode, frame: &[u8]) {
        let (h, n) = Header::parse(frame).expect("valid").expect("complete");
        assert!(h.fin && h.mask.is_none() && h.rsv == 0 && h.opcode.is_control());
        assert_eq!(h.opcode, opcode, "the frame is what the core says it is");
        assert_eq!(frame.len() as u64, n as u64 + h.payload_len);
        if h.opcode == OpCode::Close {
            let code = CloseCode(u16::from_be_bytes([frame[n], frame[n + 1]]));
            assert!(code.is_sendable());
        }
        self.last_sent = frame.to_vec();
    }
}

pub fn connection(data: &[u8]) {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 32) + 1;
    let mut cfg = Config::default();
    cfg.limits.max_message_bytes = 4096;
    cfg.limits.max_frame_bytes = 2048;
    cfg.limits.max_fragments = 16;
    let mut conn = Connection::new();
    let mut check = Check {
        max_message: 4096,
        closed: false,
        last_sent: Vec::new(),
    };
    for chunk in stream.chunks(step) {
        let mut buf = chunk.to_vec();
        let result = conn.handle_read(&cfg, &mut buf, &mut check);
        // The documented bound: a whole message, one control frame, the assembly headroom.
        assert!(
            conn.buffered() <= ASSEMBLY_HEADROOM + 4096 + MAX_CONTROL_PAYLOAD,
            "{} buffered",
            conn.buffered()
        );
        if let Err(e) = result {
            assert!(conn.is_closed());
            let (_, n) = Header::parse(&check.last_sent).unwrap().unwrap();
            let code = u16::from_be_bytes([check.last_sent[n], check.last_sent[n + 1]]);
            assert_eq!(Some(code), e.close_code().map(|c| c.0));
        }
        if conn.is_closed() {
            check.closed = true;
            assert_eq!(conn.buffered(), 0);
        }
    }
}
