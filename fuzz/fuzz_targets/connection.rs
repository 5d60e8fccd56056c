//! The whole connection state machine fed arbitrary bytes in arbitrary chunks.
//!
//! The first input byte picks the chunk sizes (so the same frames are cut at every boundary),
//! the rest is the byte stream from the peer. Invariants: no panic; the spill buffer never holds
//! more than the limits allow, after every read; every frame the core sends is a well-formed,
//! unmasked, unfragmented control frame, and a close frame carries a sendable code; after an
//! error the connection is closed and the last frame sent is that error's close frame; nothing
//! is delivered after the connection is closed; messages never exceed the message limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringws::proto::frame::{Header, OpCode};
use ringws::proto::{CloseCode, Config, Connection, Event, Sink};

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

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else { return };
    let step = usize::from(step % 32) + 1;
    let mut cfg = Config::default();
    cfg.limits.max_message_bytes = 4096;
    cfg.limits.max_frame_bytes = 2048;
    cfg.limits.max_fragments = 16;
    let mut conn = Connection::new();
    let mut check = Check { max_message: 4096, closed: false, last_sent: Vec::new() };
    for chunk in stream.chunks(step) {
        let mut buf = chunk.to_vec();
        let result = conn.handle_read(&cfg, &mut buf, &mut check);
        assert!(conn.buffered() <= 4096 + 125);
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
});
