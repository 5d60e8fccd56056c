//! A reader slower than its traffic: the server's memory for it stays bounded, messages are
//! dropped (or the connection closed, by policy), and `drain` runs when there is room again.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ringws::proto::handshake::UpgradeRequest;
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

    fn upgrade<'r>(&mut self, _req: &UpgradeRequest<'r>) -> Decision<'r, ()> {
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
        for _ in 0..n {
            if conn.send_binary(&[7; 1000]) != SendStatus::Queued {
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

fn start(policy: Backpressure) -> (TestServer, Flood) {
    let mut cfg = config();
    cfg.max_outbound_bytes = LIMIT;
    cfg.backpressure = policy;
    let flood = Flood::default();
    (TestServer::start(cfg, flood.clone()), flood)
}

#[test]
fn a_reader_that_never_reads_costs_bounded_memory() {
    let (server, flood) = start(Backpressure::Drop);
    let mut c = Client::connect(server.addr);
    let mut max_queued = 0;
    for _ in 0..30 {
        c.send_text("flood 2000"); // 2 MB per round, 60 MB in all, never read
        std::thread::sleep(std::time::Duration::from_millis(5));
        max_queued = max_queued.max(server.counters().bytes_queued);
    }
    server.wait_counters("every flood handled", |c| c.messages_in == 30);
    let counters = server.counters();
    assert!(max_queued as usize <= LIMIT + 1004, "queued {max_queued}");
    assert!(
        counters.bytes_queued as usize <= LIMIT + 1004,
        "{counters:?}"
    );
    assert!(
        flood.dropped.load(Ordering::Relaxed) > 50_000,
        "most of the 60,000 were dropped"
    );
    assert_eq!(
        counters.dropped as usize,
        flood.dropped.load(Ordering::Relaxed)
    );
    assert_eq!(
        counters.open, 1,
        "the connection stays open under the drop policy"
    );
}

#[test]
fn drain_runs_when_the_queue_has_room_again() {
    let (server, flood) = start(Backpressure::Drop);
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
    assert!(binary <= LIMIT / 1000 + 1, "{binary} delivered");
    assert_eq!(flood.drains.load(Ordering::Relaxed), 1);
}

#[test]
fn close_policy_closes_with_1013() {
    let (server, _) = start(Backpressure::Close);
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
    let (server, _) = start(Backpressure::Drop);
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
    let counters = server.wait_counters("pongs dropped", |c| c.dropped > 0);
    assert!(counters.bytes_queued as usize <= LIMIT, "{counters:?}");
    assert_eq!(
        counters.open, 1,
        "dropping pongs does not close the connection"
    );
}
