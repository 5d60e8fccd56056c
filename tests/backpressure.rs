//! A reader slower than its traffic: the server's memory for it stays bounded, messages are
//! dropped (newest or oldest, or the connection closed, by policy), and `drain` runs when there
//! is room again. (Flow control of request/response traffic is in `flow.rs`.)

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ringws::server::Upgrade;
use ringws::server::{Backpressure, Conn, Decision, Handler, Message, SendStatus};
use support::{Client, Got, TestServer, config};

/// On "flood N", sends N binary messages of 1000 bytes at once; counts what was dropped.
#[derive(Clone, Default)]
struct Flood {
    dropped: Arc<AtomicUsize>,
    drains: Arc<AtomicUsize>,
}

impl Handler for Flood {
    type State = ();

    fn upgrade<'r>(&mut self, _req: &Upgrade<'_, 'r>) -> Decision<'r, ()> {
        Decision::Accept {
            state: (),
            protocol: None,
        }
    }

    fn message(&mut self, conn: &mut Conn<'_, ()>, msg: Message<'_>) {
        let Message::Text(t) = msg else { return };
        let n: usize = t
            .strip_prefix("flood ")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        for i in 0..n as u32 {
            let mut payload = [7; 1000];
            payload[..4].copy_from_slice(&i.to_le_bytes());
            if conn.send_binary(&payload) != SendStatus::Queued {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn drain(&mut self, conn: &mut Conn<'_, ()>) {
        self.drains.fetch_add(1, Ordering::Relaxed);
        conn.send_text("drained");
    }
}

const LIMIT: usize = 64 * 1024;

fn start(policy: Backpressure) -> (TestServer, Flood, usize) {
    let mut cfg = config();
    cfg.max_outbound_bytes = LIMIT;
    cfg.backpressure = policy;
    // No heartbeat: a reader that never reads would be closed for not answering pings once
    // the test outlasts ping_interval + pong_timeout (under qemu it can), and flow control,
    // not heartbeats, is what these tests are about (tests/heartbeat.rs has those).
    cfg.ping_interval = None;
    // A small receive ring (64 KiB), so the reply ceiling is near the mark.
    cfg.uring.buf_entries = 16;
    cfg.uring.buf_size = 4096;
    // The flood is a reply (sent from `message`): bounded by the reply ceiling, the high-water
    // mark plus the worker's receive buffers.
    let ceiling = cfg.reply_ceiling();
    assert!(ceiling > LIMIT);
    let flood = Flood::default();
    (TestServer::start(cfg, flood.clone()), flood, ceiling)
}

#[test]
fn a_reader_that_never_reads_costs_bounded_memory() {
    let (server, flood, ceiling) = start(Backpressure::DropNewest);
    let mut c = Client::connect(server.addr);
    let mut max_queued = 0;
    let mut sent = 0i64;
    // 2 MB of replies per request, never read. Replies past the reply ceiling are dropped, and
    // every request pauses reading (its replies reach the high-water mark). While the kernel's
    // buffers (a few MB on loopback) take the queue, reading resumes and the next request is
    // read; once they are full the queue stays over its high-water mark and the next request
    // waits, unread, in the kernel. Each request waits for one of the two events: read, or left
    // unread while reading is paused (a pause that later ends only means more was sent).
    let paused = loop {
        c.send_text("flood 2000");
        sent += 1;
        let counters = server.wait_counters("the request read, or reading paused before it", |c| {
            c.messages_in == sent || (c.reading_paused == 1 && c.messages_in < sent)
        });
        max_queued = max_queued.max(counters.bytes_queued);
        if counters.messages_in < sent {
            break counters;
        }
        assert!(
            sent < 300,
            "300 requests of 2 MB each were all read: {counters:?}"
        );
    };
    assert!(paused.read_pauses >= 1, "{paused:?}");
    assert!(max_queued as usize <= ceiling + 1004, "queued {max_queued}");
    assert!(paused.bytes_queued as usize <= ceiling + 1004, "{paused:?}");
    assert!(
        flood.dropped.load(Ordering::Relaxed) as i64 > paused.messages_in * 1000,
        "most of what was asked for was dropped"
    );
    // Every drop is counted: the counter meets the handler's own count (the worker may still be
    // busy with a request read since the snapshot, so this waits for them to agree).
    let counters = server.wait_counters("the dropped counter to match the handler's", |c| {
        c.dropped as usize == flood.dropped.load(Ordering::Relaxed)
    });
    assert_eq!(
        counters.open, 1,
        "the connection stays open under the drop policy"
    );
}

#[test]
fn drain_runs_when_the_queue_has_room_again() {
    let (server, flood, ceiling) = start(Backpressure::DropNewest);
    let mut c = Client::connect(server.addr);
    c.send_text("flood 1000");
    // Read everything: the queued messages, then the handler's answer to drain.
    let mut binary = 0;
    loop {
        match c.next() {
            Got::Binary(b) => {
                assert_eq!(b.len(), 1000);
                binary += 1;
            }
            Got::Text(t) if t == "drained" => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    let dropped = flood.dropped.load(Ordering::Relaxed);
    assert_eq!(binary + dropped, 1000);
    assert!(binary <= ceiling / 1000 + 1, "{binary} delivered");
    assert!(dropped > 0, "a flood past the reply ceiling is dropped");
    assert_eq!(flood.drains.load(Ordering::Relaxed), 1);
}

#[test]
fn close_policy_closes_with_1013() {
    let (server, _, _) = start(Backpressure::Close);
    let mut c = Client::connect(server.addr);
    c.send_text("flood 1000");
    loop {
        match c.next() {
            Got::Binary(_) => continue,
            Got::Close(Some(code), _) => {
                assert_eq!(code, 1013);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    c.send_close(1013, "");
    c.expect_eof();
    server.wait_counters("closed", |c| c.connections == 0);
}

#[test]
fn a_ping_flood_from_a_reader_that_never_reads_stays_bounded() {
    let (server, _, _) = start(Backpressure::DropNewest);
    let mut c = Client::connect(server.addr);
    socket2::SockRef::from(&c.stream)
        .set_recv_buffer_size(4096)
        .unwrap();
    // 200,000 empty pings (1.2 MB on the wire), never reading a pong.
    let ping = ringws::proto::frame::encode_masked_frame(
        ringws::proto::frame::OpCode::Ping,
        true,
        support::KEY,
        b"",
    );
    let burst: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 10_000)
        .collect();
    for _ in 0..20 {
        c.send_raw(&burst);
    }
    let counters = server.wait_counters("pongs dropped", |c| c.answers_dropped > 0);
    assert!(counters.bytes_queued as usize <= LIMIT, "{counters:?}");
    assert_eq!(
        counters.open, 1,
        "dropping pongs does not close the connection"
    );
}

#[test]
fn drop_oldest_keeps_the_newest_messages_in_order() {
    let (server, _, ceiling) = start(Backpressure::DropOldest);
    let mut c = Client::connect(server.addr);
    c.send_text("flood 1000");
    let mut seen = Vec::new();
    loop {
        match c.next() {
            Got::Binary(b) => seen.push(u32::from_le_bytes(b[..4].try_into().unwrap())),
            Got::Text(t) if t == "drained" => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen.last(), Some(&999), "the newest message is kept");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");
    assert!(
        seen.len() < 1000 && seen.len() <= ceiling / 1000 + 2,
        "{}",
        seen.len()
    );
    let counters = server.counters();
    assert_eq!(counters.dropped as usize, 1000 - seen.len());
}
