//! The slot's own tests: its size, flow control, and how the replies to one read are queued.

use super::super::handler::{CORK_MAX_PAYLOAD, Conn, Message};
use super::super::outbox::SendStatus;
use super::*;

#[test]
fn an_idle_connection_slot_stays_small() {
    // The per-connection budget: the slot is all the user memory an idle connection has
    // (no receive buffer, no queue allocation). Growth must be a conscious decision.
    let size = std::mem::size_of::<Slot<()>>();
    // 136 B before heartbeats; +8 B for their two clocks (`since`, `last_seen`); -24 B for
    // the boxed frame list of the outbound queue. The connection's timer node (16 B) lives
    // in the wheel.
    assert!(size <= 120, "Slot<()> grew to {size} bytes");
}

#[test]
fn broadcasts_never_pause_reading_and_a_paused_queue_takes_them_to_the_low_water_mark() {
    let frame = Frame::text(&"x".repeat(1000));
    let cfg = ServerConfig {
        max_outbound_bytes: 100 * frame.wire().len(),
        ..ServerConfig::default()
    };
    let counters = Counters::default();
    let (ops, codecs) = (RefCell::new(Vec::new()), RefCell::new(Codecs::default()));
    let ctx = test_ctx(&cfg, &counters, &ops, &codecs);
    let mut s = Slot::<()>::new(crate::runtime::sys::eventfd().unwrap(), 0);
    s.out.sendable = true;
    // Broadcasts fill the queue to its mark (and a heartbeat ping past it): still reading.
    while s.push_publication(&frame, &ctx) == Delivery::Queued {}
    s.out.push(HEARTBEAT_PING, Kind::Control);
    assert!(s.out.queued() > cfg.max_outbound_bytes);
    assert_eq!(s.flow(&cfg, false), Flow::Keep);
    // Replies to a read that reach the mark pause reading.
    assert_eq!(s.flow(&cfg, true), Flow::Pause);
    assert_eq!(s.flow(&cfg, true), Flow::Keep, "paused once");
    // While paused, broadcasts are refused above the low-water mark...
    assert_eq!(s.push_publication(&frame, &ctx), Delivery::Dropped);
    s.out.clear();
    s.out.sendable = true;
    let mut queued = 0;
    while s.push_publication(&frame, &ctx) == Delivery::Queued {
        queued += 1;
    }
    assert!(queued > 1, "{queued}");
    assert!(s.out.queued() <= cfg.low_water(), "{}", s.out.queued());
    // ... so the queue reaches it and reading resumes.
    assert_eq!(s.flow(&cfg, false), Flow::Resume);
}

/// Echoes each message with `Conn::send` and keeps what each send returned.
#[derive(Default, Clone)]
struct Echo(Vec<SendStatus>);

impl Handler for Echo {
    type State = ();
    fn upgrade<'r>(&mut self, _req: &Upgrade<'_, 'r>) -> Decision<'r, ()> {
        Decision::Accept {
            state: (),
            protocol: None,
        }
    }
    fn message(&mut self, conn: &mut Conn<'_, ()>, msg: Message<'_>) {
        let status = conn.send(msg);
        self.0.push(status);
    }
}

/// A client's (masked) frame.
fn client_frame(opcode: crate::proto::frame::OpCode, payload: &[u8]) -> Vec<u8> {
    let key = [1, 2, 3, 4];
    let header = crate::proto::frame::Header {
        fin: true,
        rsv: 0,
        opcode,
        mask: Some(key),
        payload_len: payload.len() as u64,
    };
    let mut out = header.encode().to_vec();
    let at = out.len();
    out.extend_from_slice(payload);
    crate::proto::mask::apply(&mut out[at..], key, 0);
    out
}

/// One read of `input` through an open slot with the `Echo` handler: what it queued, entry
/// by entry, and what each send returned.
fn echo_one_read(cfg: &ServerConfig, input: &[u8]) -> (Vec<Bytes>, Vec<SendStatus>, u64) {
    let counters = Counters::default();
    let (ops, codecs) = (RefCell::new(Vec::new()), RefCell::new(Codecs::default()));
    let ctx = test_ctx(cfg, &counters, &ops, &codecs);
    let mut s = Slot::<()>::new(crate::runtime::sys::eventfd().unwrap(), 0);
    s.phase = Phase::Open {
        ws: Connection::with_rsv(0),
        state: (),
    };
    s.out.sendable = true;
    let mut handler = Echo::default();
    let mut data = input.to_vec();
    let actions = s.on_ws_bytes(&mut data, &mut handler, &ctx);
    assert!(!actions.close_now);
    let out: Vec<Bytes> = s.out.pending().collect();
    (
        out,
        handler.0,
        counters
            .messages_out
            .load(std::sync::atomic::Ordering::Relaxed),
    )
}

#[test]
fn small_replies_to_one_read_are_queued_as_one_entry_in_order_with_control_frames() {
    use crate::proto::frame::{OpCode, encode_frame};
    let big = vec![7u8; CORK_MAX_PAYLOAD + 1];
    let input: Vec<u8> = [
        client_frame(OpCode::Text, b"a"),
        client_frame(OpCode::Text, b"bb"),
        client_frame(OpCode::Ping, b"p"),
        client_frame(OpCode::Binary, &big),
        client_frame(OpCode::Binary, b"c"),
        client_frame(OpCode::Text, b"dd"),
    ]
    .concat();
    let (out, statuses, sent) = echo_one_read(&ServerConfig::default(), &input);
    let cat = |frames: &[Bytes]| frames.concat();
    let expected = [
        [
            encode_frame(OpCode::Text, b"a"),
            encode_frame(OpCode::Text, b"bb"),
        ]
        .concat(),
        encode_frame(OpCode::Pong, b"p").to_vec(),
        encode_frame(OpCode::Binary, &big).to_vec(),
        [
            encode_frame(OpCode::Binary, b"c"),
            encode_frame(OpCode::Text, b"dd"),
        ]
        .concat(),
    ];
    // The replies before the pong in one entry, the pong, the large one alone, the rest.
    assert_eq!(out.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), expected);
    assert_eq!(cat(&out), expected.concat());
    assert_eq!(statuses, vec![SendStatus::Queued; 5]);
    assert_eq!(sent, 5);

    // With the drop-oldest policy, each reply is its own entry (dropped one by one).
    let cfg = ServerConfig {
        backpressure: super::super::config::Backpressure::DropOldest,
        ..ServerConfig::default()
    };
    let (out, _, _) = echo_one_read(&cfg, &input);
    assert_eq!(out.len(), 6);
    assert_eq!(cat(&out), expected.concat());
}

#[test]
fn corked_replies_meet_the_queue_limit_as_queued_ones_would() {
    use crate::proto::frame::OpCode;
    let payload = vec![b'x'; 1000];
    let input: Vec<u8> = (0..6)
        .flat_map(|_| client_frame(OpCode::Text, &payload))
        .collect();
    // Room for three replies under the reply ceiling (the first always fits).
    let mut cfg = ServerConfig {
        max_outbound_bytes: 3 * 1004 + 10,
        ..ServerConfig::default()
    };
    (cfg.uring.buf_entries, cfg.uring.buf_size) = (1, 1);
    let limit = cfg.reply_ceiling();
    let (out, statuses, sent) = echo_one_read(&cfg, &input);
    let fit = limit / 1004;
    let queued: usize = out.iter().map(Bytes::len).sum();
    assert!(queued <= limit, "{queued} > {limit}");
    assert_eq!(queued, fit * 1004);
    let mut want = vec![SendStatus::Queued; fit];
    want.resize(6, SendStatus::Dropped);
    assert_eq!(statuses, want);
    assert_eq!(sent, fit as u64);
}

#[test]
fn a_corked_entry_costs_about_what_it_holds() {
    use super::super::handler::trimmed;
    // One 22-byte reply to a 16 KiB read: what was reserved for the burst is given back.
    let mut buf = Vec::with_capacity(16 * 1024);
    buf.extend_from_slice(&[1; 22]);
    let t = trimmed(buf);
    assert!(t.capacity() <= 22 + 5 + 64, "{}", t.capacity());
    assert_eq!(t, vec![1; 22]);
    // A burst that nearly filled its allocation keeps it (no copy).
    let mut buf = Vec::with_capacity(1000);
    buf.extend_from_slice(&[2; 900]);
    let at = buf.as_ptr();
    let kept = trimmed(buf);
    assert_eq!((kept.as_ptr(), kept.len()), (at, 900));
}

/// The context of slot 0 of worker 0 at time 0.
fn test_ctx<'a>(
    cfg: &'a ServerConfig,
    counters: &'a Counters,
    ops: &'a RefCell<Vec<Op>>,
    codecs: &'a RefCell<Codecs>,
) -> Ctx<'a> {
    Ctx {
        cfg,
        counters,
        now: Timestamp(0),
        start: Timestamp(0),
        tick: 0,
        id: ConnId {
            worker: 0,
            slot: 0,
            generation: 0,
        },
        ops,
        codecs,
    }
}
