//! permessage-deflate through the real server (echo): negotiation per mode, compressed echoes,
//! limits on the inflated size (a zip bomb is closed with 1009 and costs no memory), bad
//! compressed data (1007), context takeover in dedicated mode and its per-connection state.
//! Run on both backends (`RINGWS_TEST_IO=epoll` for the second).

mod support;

use ringws::app::echo::Echo;
use ringws::proto::deflate::{Deflater, Inflater, Mode};
use ringws::proto::frame::{OpCode, RSV1, encode_masked_frame};
use support::{Binary, Client, Got, KEY, TestServer, config};

const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits";

fn server(mode: Mode, max_message: u32) -> TestServer {
    let mut cfg = config();
    cfg.compression.mode = mode;
    cfg.proto.limits.max_message_bytes = max_message;
    cfg.proto.limits.max_frame_bytes = max_message;
    TestServer::start(cfg, Echo)
}

fn chat_json(n: usize) -> String {
    format!(
        r#"{{"op":"message","room":"lobby","from":"u{n}","text":"good morning, everyone in the lobby!","seq":{n}}}"#
    )
}

/// Sends `payload` as one compressed message (RSV1 on its frame), deflated by `deflater`.
fn send_compressed(c: &mut Client, opcode: OpCode, payload: &[u8], deflater: &mut Deflater) {
    let mut packed = Vec::new();
    deflater.deflate(payload, &mut packed);
    send_rsv1(c, opcode, true, &packed);
}

fn send_rsv1(c: &mut Client, opcode: OpCode, fin: bool, payload: &[u8]) {
    let mut frame = encode_masked_frame(opcode, fin, KEY, payload);
    frame[0] |= RSV1;
    c.send_raw(&frame);
}

/// The next message, which must be compressed; returns (text?, inflated, compressed size).
fn next_compressed(c: &mut Client, inflater: &mut Inflater) -> (bool, Vec<u8>, usize) {
    match c.next() {
        Got::Compressed(text, packed) => {
            let mut out = Vec::new();
            inflater.inflate(&packed, 1 << 24, &mut out).unwrap();
            (text, out, packed.len())
        }
        other => panic!("expected a compressed message, got {other:?}"),
    }
}

#[test]
fn shared_mode_negotiates_and_echoes_compressed() {
    let server = server(Mode::Shared, 64 * 1024);
    let (mut c, head) = Client::connect_with(server.addr, &format!("{OFFER}\r\n"));
    assert!(
        head.contains(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
             client_no_context_takeover"
        ),
        "{head}"
    );
    let mut deflater = Deflater::new(6, 15, true);
    let mut inflater = Inflater::new(15);
    for n in 0..3 {
        let text = chat_json(n).repeat(3);
        send_compressed(&mut c, OpCode::Text, text.as_bytes(), &mut deflater);
        let (is_text, back, packed) = next_compressed(&mut c, &mut inflater);
        assert!(is_text);
        assert_eq!(back, text.as_bytes());
        assert!(packed < text.len() / 2, "{packed} of {}", text.len());
        inflater.reset(); // the server takes no context over
    }
    // Binary too, and a message too short to be worth compressing comes back plain.
    send_compressed(&mut c, OpCode::Binary, &[7u8; 1000], &mut deflater);
    let (is_text, back, _) = next_compressed(&mut c, &mut inflater);
    assert!(!is_text);
    assert_eq!(back, vec![7u8; 1000]);
    send_compressed(&mut c, OpCode::Text, b"hi", &mut deflater);
    assert_eq!(c.next(), Got::Text("hi".into()));
    // An uncompressed message on a compressing connection is fine (RFC 7692 §6).
    c.send_text("plain");
    assert_eq!(c.next(), Got::Text("plain".into()));
    // A compressed message in fragments: RSV1 on the first frame only.
    let mut packed = Vec::new();
    deflater.deflate(chat_json(9).as_bytes(), &mut packed);
    let (a, b) = packed.split_at(packed.len() / 2);
    send_rsv1(&mut c, OpCode::Text, false, a);
    c.send(OpCode::Continuation, true, b);
    let (_, back, _) = next_compressed(&mut c, &mut inflater);
    assert_eq!(back, chat_json(9).as_bytes());
    let counters = server.counters();
    assert_eq!(counters.compressed_in, 6, "{counters:#?}");
    assert_eq!(counters.compressed_out, 5, "{counters:#?}");
    assert_eq!(
        counters.deflate_contexts, 0,
        "shared mode: nothing per connection"
    );
    c.send_close(1000, "");
    c.expect_close(1000);
}

#[test]
fn a_small_message_inflating_past_the_limit_is_closed_with_1009_in_bounded_memory() {
    // The server in a process of its own, so that its memory alone is measured (the exact
    // bound, limit plus one block, is counted by the allocator in tests/inflate_memory.rs).
    const LIMIT: u64 = 64 * 1024;
    let server = Binary::start(&["--compression", "shared", "--max-message-bytes", "65536"]);
    let (mut c, _) = Client::connect_with(server.addr, &format!("{OFFER}\r\n"));
    // A compressed message first: the worker's codecs exist before the measurement.
    let mut deflater = Deflater::new(1, 15, true);
    send_compressed(&mut c, OpCode::Text, chat_json(1).as_bytes(), &mut deflater);
    let (_, back, _) = next_compressed(&mut c, &mut Inflater::new(15));
    assert_eq!(back, chat_json(1).as_bytes());
    // 32 MiB of zeros deflate to ~32 KB, which passes the 64 KiB limit on the wire.
    let mut packed = Vec::new();
    Deflater::new(9, 15, true).deflate(&vec![0u8; 32 << 20], &mut packed);
    assert!(packed.len() < 60 * 1024, "{}", packed.len());
    let before = server.rss();
    for _ in 0..4 {
        let (mut bomb, _) = Client::connect_with(server.addr, &format!("{OFFER}\r\n"));
        send_rsv1(&mut bomb, OpCode::Binary, true, &packed);
        bomb.expect_close(1009);
    }
    let grew = server.rss().saturating_sub(before);
    // Inflating on would have cost 32 MiB a message; the limit and a block (80 KiB), with the
    // allocator's pages around them, stay far below one MiB.
    assert!(
        grew < 1 << 20,
        "the server grew {grew} bytes for bombs stopped at {LIMIT} bytes"
    );
    // Other connections are unaffected.
    send_compressed(&mut c, OpCode::Text, chat_json(2).as_bytes(), &mut deflater);
    let (_, back, _) = next_compressed(&mut c, &mut Inflater::new(15));
    assert_eq!(back, chat_json(2).as_bytes());
}

#[test]
fn bad_compressed_data_and_bad_utf8_inside_are_closed_with_1007() {
    let server = server(Mode::Shared, 64 * 1024);
    let (mut c, _) = Client::connect_with(server.addr, &format!("{OFFER}\r\n"));
    send_rsv1(&mut c, OpCode::Text, true, &[0xff; 16]);
    c.expect_close(1007);
    let (mut c, _) = Client::connect_with(server.addr, &format!("{OFFER}\r\n"));
    send_compressed(
        &mut c,
        OpCode::Text,
        b"valid until here \xff\xfe",
        &mut Deflater::new(1, 15, true),
    );
    c.expect_close(1007);
}

#[test]
fn without_compression_offers_are_ignored_and_rsv1_is_a_protocol_error() {
    let server = server(Mode::Off, 64 * 1024);
    let (mut c, head) = Client::connect_with(server.addr, &format!("{OFFER}\r\n"));
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions"),
        "{head}"
    );
    send_rsv1(&mut c, OpCode::Text, true, &[0x00]);
    c.expect_close(1002);
}

#[test]
fn dedicated_mode_keeps_context_both_ways_and_frees_it_at_close() {
    let server = server(Mode::Dedicated, 64 * 1024);
    let (mut c, head) = Client::connect_with(server.addr, &format!("{OFFER}\r\n"));
    assert!(
        head.contains("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10"),
        "{head}"
    );
    // The client keeps context with the 10-bit window asked for; so does the server.
    let mut deflater = Deflater::new(1, 10, false);
    let mut inflater = Inflater::new(15);
    let text = chat_json(1);
    let mut sizes = Vec::new();
    for _ in 0..3 {
        send_compressed(&mut c, OpCode::Text, text.as_bytes(), &mut deflater);
        let (_, back, packed) = next_compressed(&mut c, &mut inflater);
        assert_eq!(back, text.as_bytes());
        sizes.push(packed);
    }
    assert!(
        sizes[1] < sizes[0] / 2,
        "the second copy refers to the first: {sizes:?}"
    );
    server.wait_counters("one connection with its own codecs", |s| {
        s.deflate_contexts == 1
    });
    c.send_close(1000, "");
    c.expect_close(1000);
    server.wait_counters("its codecs freed", |s| s.deflate_contexts == 0);
}

#[test]
fn a_flood_of_compressed_messages_comes_back_whole_and_in_order_through_flow_control() {
    // The client writes far more than the server's queue mark without reading, so reading
    // pauses and resumes (flow control) while messages are inflated and echoed.
    let mut cfg = config();
    cfg.compression.mode = Mode::Shared;
    cfg.max_outbound_bytes = 16 * 1024;
    cfg.outbound_low_water = 4 * 1024;
    let server = TestServer::start(cfg, Echo);
    let (mut c, _) = Client::connect_with(server.addr, &format!("{OFFER}\r\n"));
    let count = 20_000;
    // Compressed before the clock of any wait starts (a debug build on a busy machine takes
    // seconds for it).
    let mut deflater = Deflater::new(1, 15, true);
    let mut all = Vec::new();
    for n in 0..count {
        let text = format!("{n:08} {}", "chat ".repeat(n % 40));
        let mut packed = Vec::new();
        deflater.deflate(text.as_bytes(), &mut packed);
        let mut frame = encode_masked_frame(OpCode::Text, true, KEY, &packed);
        frame[0] |= RSV1;
        all.extend_from_slice(&frame);
    }
    let writer = {
        let mut stream = c.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            stream.write_all(&all).unwrap();
        })
    };
    server.wait_counters("flow control engaged", |c| c.read_pauses > 0);
    let mut inflater = Inflater::new(15);
    for n in 0..count {
        let want = format!("{n:08} {}", "chat ".repeat(n % 40));
        let got = match c.next() {
            Got::Text(t) => t.into_bytes(),
            Got::Compressed(true, packed) => {
                let mut out = Vec::new();
                inflater.inflate(&packed, 1 << 20, &mut out).unwrap();
                inflater.reset();
                out
            }
            other => panic!("message {n}: {other:?}"),
        };
        assert_eq!(String::from_utf8_lossy(&got), want, "message {n}");
    }
    writer.join().unwrap();
    assert!(server.counters().read_pauses > 0, "flow control engaged");
}

#[test]
fn replies_larger_than_their_compressed_requests_are_not_dropped_under_flow_control() {
    // 20-byte texts compress to fewer bytes than their plain echoes (too short to compress
    // back): the replies to what arrives while reading pauses outgrow the input. That input is
    // held and fed after the resume, so nothing passes the reply ceiling and nothing is lost.
    let mut cfg = config();
    cfg.compression.mode = Mode::Shared;
    cfg.max_outbound_bytes = 16 * 1024;
    cfg.outbound_low_water = 4 * 1024;
    cfg.uring.buf_entries = 4; // a 256 KiB ring: a small reply ceiling
    let server = TestServer::start(cfg, Echo);
    let (mut c, _) = Client::connect_with(server.addr, &format!("{OFFER}\r\n"));
    let count = 40_000;
    let mut deflater = Deflater::new(9, 15, true);
    let mut all = Vec::new();
    for n in 0..count {
        let mut packed = Vec::new();
        deflater.deflate(format!("{n:020}").as_bytes(), &mut packed);
        let mut frame = encode_masked_frame(OpCode::Text, true, KEY, &packed);
        frame[0] |= RSV1;
        all.extend_from_slice(&frame);
    }
    assert!(
        all.len() < count * 22,
        "requests smaller than their replies"
    );
    let writer = {
        let mut stream = c.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            stream.write_all(&all).unwrap();
        })
    };
    server.wait_counters("flow control engaged", |c| c.read_pauses > 0);
    for n in 0..count {
        match c.next() {
            Got::Text(t) => assert_eq!(t, format!("{n:020}"), "message {n}"),
            other => panic!("message {n}: {other:?}"),
        }
    }
    writer.join().unwrap();
    let counters = server.counters();
    assert_eq!(counters.dropped, 0, "{counters:#?}");
    assert!(counters.read_pauses > 0, "flow control engaged");
    assert_eq!(counters.input_held, 0, "everything held was fed");
}
