//! An oracle independent of the crate: bytes written by hand, from the RFCs' own examples,
//! compared byte for byte with what the server sends. (The other tests' client decodes with the
//! crate's own `Connection` and compresses with its own `Deflater`: a mistake shared by both
//! sides would pass them.)

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use ringws::proto::deflate::{Deflater, Inflater};
use support::{Binary, patience, upgrade_request};

/// A raw socket, upgraded with `extra` header lines; returns it with the response head.
fn upgraded(addr: std::net::SocketAddr, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(patience())).unwrap();
    let request = upgrade_request("/").replacen("\r\n\r\n", &format!("\r\n{extra}\r\n"), 1);
    s.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    (s, head)
}

/// Reads exactly `n` bytes.
fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// RFC 6455 §5.7's examples, sent masked (as a client must) and expected back unmasked.
#[test]
fn the_rfc_6455_examples_byte_for_byte() {
    let server = Binary::start(&[]);
    let (mut s, _) = upgraded(server.addr, "");
    // "A single-frame masked text message" (§5.7), echoed as "a single-frame unmasked text
    // message".
    s.write_all(&[
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ])
    .unwrap();
    assert_eq!(
        read_n(&mut s, 7),
        [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    );
    // "A fragmented unmasked text message" (masked here, key 00000000 for readability): the
    // echo is one whole frame.
    s.write_all(&[0x01, 0x83, 0, 0, 0, 0, 0x48, 0x65, 0x6c])
        .unwrap();
    s.write_all(&[0x80, 0x82, 0, 0, 0, 0, 0x6c, 0x6f]).unwrap();
    assert_eq!(
        read_n(&mut s, 7),
        [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    );
    // "Unmasked Ping request and masked Ping response": our ping is masked, the pong comes back
    // unmasked with the same body.
    s.write_all(&[
        0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ])
    .unwrap();
    assert_eq!(
        read_n(&mut s, 7),
        [0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    );
    // "256 bytes binary message in a single unmasked frame": the 16-bit length form.
    let mut frame = vec![0x82, 0xfe, 0x01, 0x00, 0, 0, 0, 0];
    frame.extend((0..=255u8).collect::<Vec<_>>());
    s.write_all(&frame).unwrap();
    let mut expected = vec![0x82, 0x7e, 0x01, 0x00];
    expected.extend((0..=255u8).collect::<Vec<_>>());
    assert_eq!(read_n(&mut s, expected.len()), expected);
    // "64KiB binary message in a single unmasked frame": the 64-bit length form (the server's
    // default message limit is 64 KiB: exactly at it).
    let mut frame = vec![0x82, 0xff, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0, 0, 0, 0];
    frame.extend(std::iter::repeat_n(0x5a, 65536));
    s.write_all(&frame).unwrap();
    assert_eq!(
        read_n(&mut s, 10),
        [0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]
    );
    assert!(read_n(&mut s, 65536).iter().all(|&b| b == 0x5a));
    // A close with code 1000 and no reason: the same code back, unmasked.
    s.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]).unwrap();
    assert_eq!(read_n(&mut s, 4), [0x88, 0x02, 0x03, 0xe8]);
}

/// RFC 7692 §7.2.3's payloads for "Hello".
const HELLO_COMPRESSED: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
/// The second "Hello" of a sender that keeps its window (§7.2.3.2).
const HELLO_AGAIN: [u8; 5] = [0xf2, 0x00, 0x11, 0x00, 0x00];
/// "Hello" in a block with no compression (§7.2.3.3).
const HELLO_STORED: [u8; 11] = [
    0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
];
/// "Hello" in a block with BFINAL set (§7.2.3.4).
const HELLO_FINAL: [u8; 8] = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
/// "Hello" in two blocks (§7.2.3.5).
const HELLO_TWO_BLOCKS: [u8; 13] = [
    0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
];

#[test]
fn the_codec_reads_and_writes_the_rfc_7692_examples() {
    let inflate = |inflater: &mut Inflater, payload: &[u8]| {
        let mut out = Vec::new();
        inflater.inflate(payload, 100, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    for payload in [
        &HELLO_COMPRESSED[..],
        &HELLO_STORED,
        &HELLO_FINAL,
        &HELLO_TWO_BLOCKS,
    ] {
        assert_eq!(
            inflate(&mut Inflater::new(15), payload),
            "Hello",
            "{payload:x?}"
        );
    }
    // With context takeover the second message refers back into the first one's window.
    let mut keeps = Inflater::new(15);
    assert_eq!(inflate(&mut keeps, &HELLO_COMPRESSED), "Hello");
    assert_eq!(inflate(&mut keeps, &HELLO_AGAIN), "Hello");
    // Our deflater writes exactly the RFC's bytes for a message on its own. Keeping its window,
    // its second "Hello" is a back-reference too (encoded otherwise than the RFC's, which is
    // one valid choice among several): shorter than the first, and the RFC reader reads it.
    let mut out = Vec::new();
    Deflater::new(1, 15, true).deflate(b"Hello", &mut out);
    assert_eq!(out, HELLO_COMPRESSED);
    let mut context = Deflater::new(1, 15, false);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    context.deflate(b"Hello", &mut first);
    context.deflate(b"Hello", &mut second);
    assert_eq!(first, HELLO_COMPRESSED);
    assert!(second.len() < first.len(), "{second:x?}");
    let mut reader = Inflater::new(15);
    assert_eq!(inflate(&mut reader, &first), "Hello");
    assert_eq!(inflate(&mut reader, &second), "Hello");
}

/// The RFC's compressed frames sent to the server (masked), and its compressed answer compared
/// with the RFC's bytes.
#[test]
fn the_server_speaks_the_rfc_7692_examples() {
    let server = Binary::start(&["--compression", "shared", "--compression-min-bytes", "0"]);
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover";
    let (mut s, head) = upgraded(server.addr, &format!("{offer}\r\n"));
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-extensions: permessage-deflate"),
        "{head}"
    );
    // Every example form of "Hello", masked with a zero key (FIN, RSV1, text): each echoed as
    // the RFC's first form (a fresh window every message: no context takeover in shared mode).
    for payload in [
        &HELLO_COMPRESSED[..],
        &HELLO_STORED,
        &HELLO_FINAL,
        &HELLO_TWO_BLOCKS,
    ] {
        let mut frame = vec![0xc1, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        frame.extend(payload);
        s.write_all(&frame).unwrap();
        let mut expected = vec![0xc1, 0x07];
        expected.extend(HELLO_COMPRESSED);
        assert_eq!(read_n(&mut s, expected.len()), expected, "for {payload:x?}");
    }
}
