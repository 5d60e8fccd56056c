use proptest::prelude::*;

use super::*;
use crate::proto::frame::{self, encode_masked_frame};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// An owned copy of an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Text(String),
    Binary(Vec<u8>),
    Compressed(bool, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

#[derive(Default)]
struct Rec {
    events: Vec<Ev>,
    sent: Vec<Vec<u8>>,
    /// For each Text/Binary event: where its bytes were.
    ptrs: Vec<usize>,
}

impl Sink for Rec {
    fn event(&mut self, event: Event<'_>) {
        self.events.push(match event {
            Event::Text(t) => {
                self.ptrs.push(t.as_ptr() as usize);
                Ev::Text(t.to_owned())
            }
            Event::Binary(b) => {
                self.ptrs.push(b.as_ptr() as usize);
                Ev::Binary(b.to_vec())
            }
            Event::Compressed { text, payload } => Ev::Compressed(text, payload.to_vec()),
            Event::Ping(p) => Ev::Ping(p.to_vec()),
            Event::Pong(p) => Ev::Pong(p.to_vec()),
            Event::Close { code, reason } => Ev::Close(code.map(|c| c.0), reason.to_owned()),
        });
    }
    fn transmit(&mut self, _opcode: OpCode, frame: &[u8]) {
        assert!(frame.len() <= MAX_CONTROL_FRAME);
        self.sent.push(frame.to_vec());
    }
}

fn cf(op: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
    encode_masked_frame(op, fin, KEY, payload)
}

fn cfg() -> Config {
    Config::default()
}

/// Feeds `bytes` in one read.
fn run(conn: &mut Connection, cfg: &Config, bytes: &[u8]) -> (Rec, Result<(), Error>) {
    let mut rec = Rec::default();
    let mut buf = bytes.to_vec();
    let r = conn.handle_read(cfg, &mut buf, &mut rec);
    (rec, r)
}

fn run_new(bytes: &[u8]) -> (Connection, Rec, Result<(), Error>) {
    let mut conn = Connection::new();
    let (rec, r) = run(&mut conn, &cfg(), bytes);
    (conn, rec, r)
}

/// The (opcode, payload) of an unmasked server frame.
fn parse_server_frame(bytes: &[u8]) -> (OpCode, Vec<u8>) {
    let (h, n) = Header::parse(bytes).unwrap().unwrap();
    assert!(h.fin && h.mask.is_none() && h.rsv == 0);
    assert_eq!(bytes.len() as u64, n as u64 + h.payload_len);
    (h.opcode, bytes[n..].to_vec())
}

fn sent_close_code(rec: &Rec) -> u16 {
    let (op, payload) = parse_server_frame(rec.sent.last().expect("a frame was sent"));
    assert_eq!(op, OpCode::Close);
    u16::from_be_bytes([payload[0], payload[1]])
}

/// Asserts the connection failed with `err`, answered with `code`, and is closed.
fn assert_failed(bytes: &[u8], err: Error, code: u16) {
    let (conn, rec, r) = run_new(bytes);
    assert_eq!(r, Err(err));
    assert_eq!(sent_close_code(&rec), code, "{err:?}");
    assert!(conn.is_closed());
    assert_eq!(conn.buffered(), 0);
}

#[test]
fn whole_text_message_is_delivered_without_copy() {
    let mut buf = cf(OpCode::Text, true, "héllo".as_bytes());
    let mut conn = Connection::new();
    let mut rec = Rec::default();
    conn.handle_read(&cfg(), &mut buf, &mut rec).unwrap();
    assert_eq!(rec.events, vec![Ev::Text("héllo".into())]);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    assert!(
        range.contains(&rec.ptrs[0]),
        "text must borrow the read buffer"
    );
    assert_eq!(conn.buffered(), 0);
}

#[test]
fn fragmented_message_with_interleaved_ping() {
    let mut bytes = cf(OpCode::Binary, false, b"ab");
    bytes.extend(cf(OpCode::Ping, true, b"p!"));
    bytes.extend(cf(OpCode::Continuation, false, b""));
    bytes.extend(cf(OpCode::Continuation, true, b"cd"));
    let (conn, rec, r) = run_new(&bytes);
    r.unwrap();
    assert_eq!(
        rec.events,
        vec![Ev::Ping(b"p!".to_vec()), Ev::Binary(b"abcd".to_vec())]
    );
    assert_eq!(rec.sent.len(), 1);
    assert_eq!(
        parse_server_frame(&rec.sent[0]),
        (OpCode::Pong, b"p!".to_vec())
    );
    assert_eq!(
        conn.buffered(),
        0,
        "spill buffer freed once the message is out"
    );
}

#[test]
fn text_split_inside_a_code_point_across_fragments() {
    let text = "€uro";
    let b = text.as_bytes();
    let mut bytes = cf(OpCode::Text, false, &b[..1]);
    bytes.extend(cf(OpCode::Continuation, false, &b[1..2]));
    bytes.extend(cf(OpCode::Continuation, true, &b[2..]));
    let (_, rec, r) = run_new(&bytes);
    r.unwrap();
    assert_eq!(rec.events, vec![Ev::Text(text.into())]);
}

#[test]
fn invalid_utf8_fails_fast_before_the_message_ends() {
    // The first fragment already holds an impossible sequence: fail on it, with 1007.
    let first = cf(
        OpCode::Text,
        false,
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
    );
    assert_failed(&first, Error::InvalidUtf8, 1007);
    // And inside one frame whose payload has not all arrived.
    let whole = cf(OpCode::Text, true, b"ok\xff and more bytes that never come");
    assert_failed(&whole[..9], Error::InvalidUtf8, 1007);
    // A complete frame, and a message ending inside a code point.
    assert_failed(&cf(OpCode::Text, true, b"\xc3"), Error::InvalidUtf8, 1007);
    let mut cut = cf(OpCode::Text, false, b"a\xe2\x82");
    cut.extend(cf(OpCode::Continuation, true, b""));
    assert_failed(&cut, Error::InvalidUtf8, 1007);
}

#[test]
fn framing_rules_close_with_1002() {
    let unmasked = frame::encode_frame(OpCode::Text, b"hi");
    assert_failed(&unmasked, Error::UnmaskedFrame, 1002);
    let mut rsv = cf(OpCode::Text, true, b"hi");
    rsv[0] |= frame::RSV2;
    assert_failed(&rsv, Error::ReservedBits, 1002);
    let mut rsv1 = cf(OpCode::Text, true, b"hi");
    rsv1[0] |= frame::RSV1; // no extension negotiated
    assert_failed(&rsv1, Error::ReservedBits, 1002);
    let mut op = cf(OpCode::Binary, true, b"");
    op[0] = (op[0] & !frame::OPCODE_MASK) | 0x3;
    assert_failed(&op, Error::ReservedOpcode, 1002);
    let mut frag_ping = cf(OpCode::Ping, true, b"");
    frag_ping[0] &= !frame::FIN;
    assert_failed(&frag_ping, Error::FragmentedControlFrame, 1002);
    assert_failed(
        &cf(OpCode::Ping, true, &[0; 126]),
        Error::ControlFrameTooLong,
        1002,
    );
    assert_failed(
        &cf(OpCode::Continuation, true, b"x"),
        Error::UnexpectedContinuation,
        1002,
    );
    let mut two = cf(OpCode::Text, false, b"a");
    two.extend(cf(OpCode::Text, true, b"b"));
    assert_failed(&two, Error::ExpectedContinuation, 1002);
    let top_bit = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4];
    assert_failed(&top_bit, Error::LengthOverflow, 1002);
}

#[test]
fn close_frame_rules() {
    assert_failed(
        &cf(OpCode::Close, true, &[0x03]),
        Error::CloseFrameTooShort,
        1002,
    );
    for bad in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        assert_failed(
            &cf(OpCode::Close, true, &bad.to_be_bytes()),
            Error::InvalidCloseCode,
            1002,
        );
    }
    assert_failed(
        &cf(OpCode::Close, true, b"\x03\xe8\xff"),
        Error::InvalidCloseReason,
        1007,
    );
}

#[test]
fn peer_close_is_echoed_and_ends_reading() {
    let mut bytes = cf(OpCode::Close, true, b"\x0f\xa0bye"); // 4000
    bytes.extend(cf(OpCode::Text, true, b"after close"));
    let (conn, rec, r) = run_new(&bytes);
    r.unwrap();
    assert_eq!(rec.events, vec![Ev::Close(Some(4000), "bye".into())]);
    assert_eq!(sent_close_code(&rec), 4000);
    assert!(conn.is_closed());
    // An empty close is answered with 1000 and reported without a code.
    let (_, rec, r) = run_new(&cf(OpCode::Close, true, b""));
    r.unwrap();
    assert_eq!(rec.events, vec![Ev::Close(None, String::new())]);
    assert_eq!(sent_close_code(&rec), 1000);
}

#[test]
fn our_close_waits_for_the_reply_then_times_out() {
    let cfg = cfg();
    let mut conn = Connection::new();
    let t0 = Timestamp(1_000);
    let frame = conn.close(&cfg, CloseCode::GOING_AWAY, "bye", t0).unwrap();
    assert_eq!(
        parse_server_frame(&frame),
        (OpCode::Close, b"\x03\xe9bye".to_vec())
    );
    let deadline = t0.after(cfg.close_timeout);
    assert_eq!(conn.state(), State::AwaitCloseReply { deadline });
    assert_eq!(conn.poll_timeout(), Some(deadline));
    // No data, no pings, no second close while closing.
    assert_eq!(
        conn.message_header(&cfg, MessageKind::Text, 1),
        Err(SendError::Closing)
    );
    assert_eq!(conn.ping(&cfg, b"").unwrap_err(), SendError::Closing);
    // A message still arriving is reported; a ping is not answered.
    let mut bytes = cf(OpCode::Text, true, b"late");
    bytes.extend(cf(OpCode::Ping, true, b""));
    let (rec, r) = run(&mut conn, &cfg, &bytes);
    r.unwrap();
    assert_eq!(rec.events, vec![Ev::Text("late".into()), Ev::Ping(vec![])]);
    assert!(rec.sent.is_empty());
    // The deadline: one millisecond early changes nothing; at the deadline it is closed.
    assert!(!conn.handle_timeout(Timestamp(deadline.0 - 1)));
    assert!(conn.handle_timeout(deadline));
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn our_close_then_the_reply_closes_without_a_second_frame() {
    let cfg = cfg();
    let mut conn = Connection::new();
    conn.close(&cfg, CloseCode::NORMAL, "", Timestamp(0))
        .unwrap();
    let (rec, r) = run(&mut conn, &cfg, &cf(OpCode::Close, true, b"\x03\xe8"));
    r.unwrap();
    assert!(rec.sent.is_empty());
    assert_eq!(rec.events, vec![Ev::Close(Some(1000), String::new())]);
    assert!(conn.is_closed());
    assert!(conn.handle_eof(), "a close handshake completed is clean");
}

#[test]
fn errors_while_closing_send_no_second_close() {
    let cfg = cfg();
    let mut conn = Connection::new();
    conn.close(&cfg, CloseCode::NORMAL, "", Timestamp(0))
        .unwrap();
    let (rec, r) = run(&mut conn, &cfg, &frame::encode_frame(OpCode::Text, b"x"));
    assert_eq!(r, Err(Error::UnmaskedFrame));
    assert!(rec.sent.is_empty());
    assert!(conn.is_closed());
}

#[test]
fn limits_are_checked_on_the_header_before_any_payload() {
    let mut cfg = cfg();
    cfg.limits.max_message_bytes = 1000;
    cfg.limits.max_frame_bytes = 1000;
    // A header declaring 2^62 bytes: refused at once, nothing allocated.
    let huge = [0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    let mut conn = Connection::new();
    let (rec, r) = run(&mut conn, &cfg, &huge);
    assert_eq!(r, Err(Error::FrameTooLarge));
    assert_eq!(sent_close_code(&rec), 1009);
    assert_eq!(conn.buffered(), 0);
    // Fragments adding up past the message limit.
    let mut bytes = cf(OpCode::Binary, false, &[0; 600]);
    bytes.extend(cf(OpCode::Continuation, true, &[0; 401]));
    let mut conn = Connection::new();
    let (rec, r) = run(&mut conn, &cfg, &bytes);
    assert_eq!(r, Err(Error::MessageTooLarge));
    assert_eq!(sent_close_code(&rec), 1009);
    // Exactly at the limit is fine.
    let mut bytes = cf(OpCode::Binary, false, &[0; 600]);
    bytes.extend(cf(OpCode::Continuation, true, &[0; 400]));
    let (rec, r) = run(&mut Connection::new(), &cfg, &bytes);
    r.unwrap();
    assert_eq!(rec.events, vec![Ev::Binary(vec![0; 1000])]);
}

#[test]
fn spill_buffer_never_exceeds_the_message_limit() {
    let mut cfg = cfg();
    cfg.limits.max_message_bytes = 1000;
    cfg.limits.max_frame_bytes = 1000;
    let mut bytes = cf(OpCode::Binary, false, &[7; 999]);
    bytes.extend(cf(OpCode::Ping, true, &[1; 125])); // a control frame inside, also spilled
    bytes.extend(cf(OpCode::Continuation, true, &[7; 1]));
    let mut conn = Connection::new();
    let mut rec = Rec::default();
    for b in &bytes {
        conn.handle_read(&cfg, &mut [*b], &mut rec).unwrap();
        let bound = ASSEMBLY_HEADROOM + 1000 + 125;
        assert!(conn.buffered() <= bound, "{}", conn.buffered());
    }
    assert_eq!(rec.events.last(), Some(&Ev::Binary(vec![7; 1000])));
    assert_eq!(conn.buffered(), 0);
}

#[test]
fn empty_continuations_count_as_fragments() {
    // ws CVE-2026-48779: zero-length continuations must not escape the fragment count.
    let mut cfg = cfg();
    cfg.limits.max_fragments = 4;
    let mut ok = cf(OpCode::Text, false, b"a");
    for _ in 0..2 {
        ok.extend(cf(OpCode::Continuation, false, b""));
    }
    ok.extend(cf(OpCode::Continuation, true, b""));
    let (rec, r) = run(&mut Connection::new(), &cfg, &ok);
    r.unwrap();
    assert_eq!(rec.events, vec![Ev::Text("a".into())]);
    let mut bad = cf(OpCode::Text, false, b"a");
    for _ in 0..4 {
        bad.extend(cf(OpCode::Continuation, false, b""));
    }
    let mut conn = Connection::new();
    let (rec, r) = run(&mut conn, &cfg, &bad);
    assert_eq!(r, Err(Error::TooManyFragments));
    assert_eq!(sent_close_code(&rec), 1008);
}

#[test]
fn rsv1_with_a_negotiated_extension_marks_compressed_messages() {
    let cfg = cfg();
    let mut first = cf(OpCode::Text, false, b"\x01\x02");
    first[0] |= frame::RSV1;
    let mut bytes = first.clone();
    bytes.extend(cf(OpCode::Continuation, true, b"\xff")); // not UTF-8: the extension checks later
    let mut conn = Connection::with_rsv(frame::RSV1);
    let (rec, r) = run(&mut conn, &cfg, &bytes);
    r.unwrap();
    assert_eq!(rec.events, vec![Ev::Compressed(true, vec![1, 2, 0xff])]);
    // RSV1 on a continuation or a control frame stays a protocol error.
    let mut cont = cf(OpCode::Continuation, true, b"x");
    cont[0] |= frame::RSV1;
    let mut bytes = cf(OpCode::Binary, false, b"");
    bytes.extend(cont);
    let (_, r) = run(&mut Connection::with_rsv(frame::RSV1), &cfg, &bytes);
    assert_eq!(r, Err(Error::ReservedBits));
    let mut ping = cf(OpCode::Ping, true, b"");
    ping[0] |= frame::RSV1;
    let (_, r) = run(&mut Connection::with_rsv(frame::RSV1), &cfg, &ping);
    assert_eq!(r, Err(Error::ReservedBits));
}

#[test]
fn client_role_rejects_masked_frames_and_masks_its_own() {
    let cfg = Config::client();
    let mut conn = Connection::new();
    let (rec, r) = run(&mut conn, &cfg, &cf(OpCode::Text, true, b"x"));
    assert_eq!(r, Err(Error::MaskedFrame));
    let (h, _) = Header::parse(&rec.sent[0]).unwrap().unwrap();
    assert!(h.mask.is_some(), "client frames are masked");
    let mut conn = Connection::new();
    let (rec, r) = run(&mut conn, &cfg, &frame::encode_frame(OpCode::Ping, b"yo"));
    r.unwrap();
    let pong = &rec.sent[0];
    let (h, n) = Header::parse(pong).unwrap().unwrap();
    let mut payload = pong[n..].to_vec();
    mask::apply(&mut payload, h.mask.unwrap(), 0);
    assert_eq!((h.opcode, payload), (OpCode::Pong, b"yo".to_vec()));
}

#[test]
fn send_side_checks() {
    let cfg = cfg();
    let mut conn = Connection::new();
    let h = conn
        .message_header(&cfg, MessageKind::Binary, 70_000)
        .unwrap();
    assert_eq!(&h[..2], &[0x82, 0x7F]);
    assert_eq!(
        conn.ping(&cfg, &[0; 126]).unwrap_err(),
        SendError::ControlTooLong
    );
    assert_eq!(
        conn.close(&cfg, CloseCode(1005), "", Timestamp(0))
            .unwrap_err(),
        SendError::InvalidCloseCode
    );
    // A reason longer than a control frame allows is cut, not refused.
    let long = "x".repeat(300);
    let frame = conn
        .close(&cfg, CloseCode::NORMAL, &long, Timestamp(0))
        .unwrap();
    assert_eq!(frame.len(), 2 + 125);
}

#[test]
fn connection_state_stays_small() {
    // The per-connection budget (ARCHITECTURE.md): growth must be a conscious decision.
    let size = core::mem::size_of::<Connection>();
    assert!(size <= 88, "Connection grew to {size} bytes");
}

// ------------------------------------------------------------------ properties

#[derive(Debug, Clone)]
enum Msg {
    Text(String, Vec<usize>),
    Binary(Vec<u8>, Vec<usize>),
    Ping(Vec<u8>),
}

fn any_msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        ("\\PC{0,40}", proptest::collection::vec(0usize..50, 0..4))
            .prop_map(|(t, c)| Msg::Text(t, c)),
        (
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::collection::vec(0usize..300, 0..4)
        )
            .prop_map(|(b, c)| Msg::Binary(b, c)),
        proptest::collection::vec(any::<u8>(), 0..=125).prop_map(Msg::Ping),
    ]
}

/// Encodes a message as client frames, fragmented at `cuts`; returns the events it must give.
fn encode_msg(m: &Msg, out: &mut Vec<u8>) -> Vec<Ev> {
    let (op, bytes, cuts, expect) = match m {
        Msg::Ping(p) => {
            out.extend(cf(OpCode::Ping, true, p));
            return vec![Ev::Ping(p.clone())];
        }
        Msg::Text(t, c) => (OpCode::Text, t.as_bytes(), c, Ev::Text(t.clone())),
        Msg::Binary(b, c) => (OpCode::Binary, &b[..], c, Ev::Binary(b.clone())),
    };
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.push(bytes.len());
    let mut last = 0;
    for (i, p) in points.iter().enumerate() {
        let opcode = if i == 0 { op } else { OpCode::Continuation };
        out.extend(cf(opcode, i + 1 == points.len(), &bytes[last..*p]));
        last = *p;
    }
    vec![expect]
}

fn feed_chunked(bytes: &[u8], cuts: &[usize]) -> (Rec, Result<(), Error>, Connection) {
    let cfg = cfg();
    let mut conn = Connection::new();
    let mut rec = Rec::default();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.push(bytes.len());
    let mut last = 0;
    for p in points {
        let mut chunk = bytes[last..p].to_vec();
        last = p;
        if let Err(e) = conn.handle_read(&cfg, &mut chunk, &mut rec) {
            return (rec, Err(e), conn);
        }
    }
    (rec, Ok(()), conn)
}

proptest! {
    #[test]
    fn any_chunking_gives_the_same_events(
        msgs in proptest::collection::vec(any_msg(), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        for m in &msgs {
            expected.extend(encode_msg(m, &mut bytes));
        }
        let (rec, r, conn) = feed_chunked(&bytes, &cuts);
        prop_assert_eq!(r, Ok(()));
        prop_assert_eq!(&rec.events, &expected);
        prop_assert_eq!(conn.buffered(), 0);
        let pongs = rec.sent.iter().filter(|f| parse_server_frame(f).0 == OpCode::Pong).count();
        prop_assert_eq!(pongs, msgs.iter().filter(|m| matches!(m, Msg::Ping(_))).count());
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let (rec, r, conn) = feed_chunked(&bytes, &cuts);
        prop_assert!(
            conn.buffered() <= ASSEMBLY_HEADROOM + cfg().limits.max_message_bytes as usize + 125
        );
        if r.is_err() {
            prop_assert!(conn.is_closed());
            prop_assert!(!rec.sent.is_empty());
        }
        for f in &rec.sent {
            let (op, payload) = parse_server_frame(f);
            prop_assert!(op.is_control());
            if op == OpCode::Close {
                prop_assert!(CloseCode(u16::from_be_bytes([payload[0], payload[1]])).is_sendable());
            }
        }
    }
}

/// Keeps what `assembled` hands over.
#[derive(Default)]
struct Keep(Vec<Assembled>);

impl Sink for Keep {
    fn event(&mut self, event: Event<'_>) {
        panic!("unexpected borrowed event {event:?}");
    }
    fn transmit(&mut self, _opcode: OpCode, _frame: &[u8]) {}
    fn assembled(&mut self, msg: Assembled) {
        self.0.push(msg);
    }
}

#[test]
fn an_assembled_message_is_handed_over_with_the_header_of_its_frame() {
    let mut cfg = cfg();
    cfg.limits.max_message_bytes = 1 << 20;
    cfg.limits.max_frame_bytes = 1 << 20;
    for (opcode, payload) in [
        (
            OpCode::Binary,
            (0..70_000).map(|i| i as u8).collect::<Vec<u8>>(),
        ),
        (OpCode::Text, "é chat ".repeat(3000).into_bytes()),
        (OpCode::Binary, vec![5; 100]), // 7-bit length: the header is 2 bytes
    ] {
        let bytes = encode_masked_frame(opcode, true, [9, 8, 7, 6], &payload);
        let mut conn = Connection::new();
        let mut keep = Keep::default();
        // 4 KiB reads, as from the default receive buffers (a small one is split in two).
        for piece in bytes.chunks(4096.min(bytes.len() - 1)) {
            conn.handle_read(&cfg, &mut piece.to_vec(), &mut keep)
                .unwrap();
        }
        assert_eq!(keep.0.len(), 1);
        let msg = &keep.0[0];
        assert_eq!(msg.payload(), &payload[..]);
        assert_eq!(msg.text().is_some(), opcode == OpCode::Text);
        // The frame is exactly what the encoder makes, and it shares the payload's memory.
        let frame = msg.frame().wire().clone();
        assert_eq!(frame, frame::encode_frame(opcode, &payload));
        let header_len = frame.len() - payload.len();
        assert_eq!(frame[header_len..].as_ptr(), msg.payload().as_ptr());
        assert_eq!(conn.buffered(), 0, "the buffer left with the message");
    }
}

#[test]
fn the_assembly_buffer_grows_to_the_frame_once_an_eighth_has_arrived() {
    let mut cfg = cfg();
    cfg.limits.max_message_bytes = 1 << 20;
    cfg.limits.max_frame_bytes = 1 << 20;
    let bytes = encode_masked_frame(OpCode::Binary, true, [1, 2, 3, 4], &[0; 65536]);
    let mut conn = Connection::new();
    let mut keep = Keep::default();
    let mut capacities = Vec::new();
    for piece in bytes.chunks(4096) {
        conn.handle_read(&cfg, &mut piece.to_vec(), &mut keep)
            .unwrap();
        if capacities.last() != Some(&conn.buffered()) && conn.buffered() > 0 {
            capacities.push(conn.buffered());
        }
    }
    // Doubling while under an eighth, then the whole frame (headroom + 65,536) at once: 12 KiB
    // copied by growth instead of 60 KiB, and never more than eight times what had arrived.
    let whole = ASSEMBLY_HEADROOM + 65536;
    assert_eq!(capacities.last(), Some(&whole), "{capacities:?}");
    assert_eq!(capacities.len(), 3, "{capacities:?}");
    assert_eq!(keep.0.len(), 1);
}
