//! Heartbeats and timeouts on the worker's timer wheel, with short settings, over real sockets:
//! a silent peer is found and freed, a live one stays, and every timeout kind is counted.
//!
//! When each deadline falls, to the tick, is shown by the worker's unit tests on a clock they set
//! (`src/server/worker/tests.rs`). Here, on a shared and maybe loaded machine, a test asserts
//! only what no scheduling delay can break: nothing happens before its deadline (the test's
//! clock starts before the moment the server counts from), it happens within one patience
//! (`RINGWS_TEST_PATIENCE_SECS`) after it, and the counters say why.

mod support;

use std::time::{Duration, Instant};

use ringws::proto::frame::OpCode;
use ringws::server::Upgrade;
use ringws::server::{Conn, Decision, Handler, Message, ServerConfig};
use support::{Client, Got, TestServer, config, patience};

const TICK: Duration = Duration::from_millis(20);

fn heartbeat_config() -> ServerConfig {
    let mut cfg = config();
    cfg.tick = TICK;
    cfg.ping_interval = Some(Duration::from_millis(200));
    cfg.pong_timeout = Duration::from_millis(200);
    cfg
}

/// Reads until EOF, returning what arrived before it.
fn until_eof(c: &mut Client) -> Vec<Got> {
    let mut got = Vec::new();
    loop {
        match c.next() {
            Got::Eof => return got,
            other => got.push(other),
        }
    }
}

#[test]
fn a_silent_peer_is_pinged_then_closed_on_schedule() {
    let server = TestServer::start(heartbeat_config(), ringws::app::echo::Echo);
    // From before the upgrade: the server counts from its upgrade, which a clock started after
    // the 101 arrived would see as early (seen under qemu).
    let start = Instant::now();
    let mut c = Client::connect(server.addr);
    // The client never answers: one ping at ~200 ms (within the tick before: a ping is never
    // late), the close 200 ms after the ping.
    let got = until_eof(&mut c);
    let took = start.elapsed();
    assert_eq!(
        got,
        vec![Got::Ping(vec![])],
        "a ping, then the socket closes"
    );
    assert!(
        took >= Duration::from_millis(400) - TICK,
        "closed early: {took:?}"
    );
    assert!(
        took <= Duration::from_millis(400) + patience(),
        "late: {took:?}"
    );
    let counters = server.wait_counters("freed", |c| c.connections == 0);
    assert_eq!(
        (counters.pings_sent, counters.pong_timeouts, counters.open),
        (1, 1, 0)
    );
    assert_eq!(
        (
            counters.timers,
            counters.buffers_lent,
            counters.bytes_queued
        ),
        (0, 0, 0)
    );
    assert_eq!(counters.closed_abnormal, 1);
}

#[test]
fn a_peer_that_answers_stays_connected_across_many_intervals() {
    let server = TestServer::start(heartbeat_config(), ringws::app::echo::Echo);
    let mut c = Client::connect(server.addr);
    // Five intervals, each ping answered: however long they take, the connection stays.
    for _ in 0..5 {
        match c.next() {
            Got::Ping(payload) => c.send(OpCode::Pong, true, &payload),
            other => panic!("unexpected {other:?}"),
        }
    }
    let counters = server.wait_counters("the fifth pong", |c| c.pongs_received == 5);
    assert_eq!((counters.open, counters.pong_timeouts), (1, 0));
    // Still usable.
    c.send_text("alive");
    loop {
        match c.next() {
            Got::Ping(p) => c.send(OpCode::Pong, true, &p),
            got => {
                assert_eq!(got, Got::Text("alive".into()));
                break;
            }
        }
    }
}

#[test]
fn any_traffic_counts_as_liveness() {
    let server = TestServer::start(heartbeat_config(), ringws::app::echo::Echo);
    let mut c = Client::connect(server.addr);
    // Messages with short gaps (at a 200 ms ping interval): the server pings only where a gap
    // (as this client saw it, which is never shorter than what the server saw) reached the
    // interval. On an idle machine: never.
    let mut long_gaps = 0;
    let mut last = Instant::now();
    for i in 0..30 {
        c.send_text(&format!("m{i}"));
        loop {
            match c.next() {
                Got::Ping(p) => c.send(OpCode::Pong, true, &p),
                got => {
                    assert_eq!(got, Got::Text(format!("m{i}")));
                    break;
                }
            }
        }
        if last.elapsed() >= Duration::from_millis(200) - TICK {
            long_gaps += 1;
        }
        last = Instant::now();
    }
    let counters = server.counters();
    assert!(
        counters.pings_sent <= long_gaps,
        "{} pings for {long_gaps} gaps of a ping interval",
        counters.pings_sent
    );
    assert_eq!((counters.pong_timeouts, counters.open), (0, 1));
}

#[test]
fn an_unfinished_handshake_is_closed_at_its_deadline() {
    let mut cfg = heartbeat_config();
    cfg.handshake_timeout = Duration::from_millis(300);
    let server = TestServer::start(cfg, ringws::app::echo::Echo);
    let start = Instant::now();
    let mut silent = Client::raw(server.addr); // says nothing at all
    let mut slow = Client::raw(server.addr); // slowloris: a header byte now and then
    slow.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n");
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(80));
        slow.send_raw(b"X");
    }
    assert!(silent.read_to_end().is_empty());
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(300), "early: {took:?}");
    assert!(
        took <= Duration::from_millis(300) + patience(),
        "late: {took:?}"
    );
    assert!(slow.read_to_end().is_empty());
    let counters = server.wait_counters("freed", |c| c.connections == 0);
    assert_eq!(counters.handshake_timeouts, 2);
    assert_eq!(counters.timers, 0);
}

#[test]
fn text_heartbeat_is_answered_without_the_handler() {
    let mut cfg = heartbeat_config();
    cfg.text_heartbeat = Some(("ping".into(), "pong".into()));
    let server = TestServer::start(cfg, ringws::app::echo::Echo);
    let mut c = Client::connect(server.addr);
    c.send_text("ping");
    assert_eq!(
        c.next(),
        Got::Text("pong".into()),
        "answered by the server, not echoed"
    );
    c.send_text("hello");
    assert_eq!(c.next(), Got::Text("hello".into()));
    let counters = server.counters();
    assert_eq!((counters.text_heartbeats, counters.messages_in), (1, 1));
}

#[test]
fn idle_timeout_closes_with_1000_and_heartbeats_do_not_count() {
    let mut cfg = heartbeat_config();
    cfg.ping_interval = Some(Duration::from_millis(100));
    cfg.idle_timeout = Some(Duration::from_millis(500));
    let server = TestServer::start(cfg, ringws::app::echo::Echo);
    let start = Instant::now(); // before the upgrade the server counts from
    let mut c = Client::connect(server.addr);
    loop {
        match c.next() {
            Got::Ping(p) => c.send(OpCode::Pong, true, &p), // alive, but says nothing
            Got::Close(code, reason) => {
                assert_eq!((code, reason.as_str()), (Some(1000), "idle timeout"));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(500), "early: {took:?}");
    assert!(
        took <= Duration::from_millis(500) + patience(),
        "late: {took:?}"
    );
    c.send_close(1000, "");
    c.expect_eof();
    assert_eq!(
        server
            .wait_counters("freed", |c| c.connections == 0)
            .idle_timeouts,
        1
    );
}

/// Closes the connection when told "bye".
#[derive(Clone)]
struct CloseOnBye;

impl Handler for CloseOnBye {
    type State = ();
    fn upgrade<'r>(&mut self, _req: &Upgrade<'_, 'r>) -> Decision<'r, ()> {
        Decision::Accept {
            state: (),
            protocol: None,
        }
    }
    fn message(&mut self, conn: &mut Conn<'_, ()>, msg: Message<'_>) {
        if msg == Message::Text("bye") {
            conn.close(ringws::proto::CloseCode::NORMAL, "as you wish");
        }
    }
}

#[test]
fn our_close_without_a_reply_is_cut_at_the_close_timeout() {
    let mut cfg = heartbeat_config();
    cfg.ping_interval = None;
    cfg.proto.close_timeout = Duration::from_millis(300);
    let server = TestServer::start(cfg, CloseOnBye);
    let mut c = Client::connect(server.addr);
    let start = Instant::now(); // before the server sends its close and counts from it
    c.send_text("bye");
    assert_eq!(c.next(), Got::Close(Some(1000), "as you wish".into()));
    c.expect_eof(); // never replied
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(300), "early: {took:?}");
    assert!(
        took <= Duration::from_millis(300) + patience(),
        "late: {took:?}"
    );
    assert_eq!(
        server
            .wait_counters("freed", |c| c.connections == 0)
            .close_timeouts,
        1
    );
}
