//! Every configured limit, enforced by the running server with the right close code.

mod support;

use ringws::proto::frame::OpCode;
use support::{Client, Got, TestServer, config};

fn server_with_small_limits() -> TestServer {
    let mut cfg = config();
    cfg.proto.limits.max_message_bytes = 1000;
    cfg.proto.limits.max_frame_bytes = 600;
    cfg.proto.limits.max_fragments = 4;
    TestServer::start(cfg, ringws::app::echo::Echo)
}

#[test]
fn a_frame_over_the_limit_is_refused_on_its_header_alone() {
    let server = server_with_small_limits();
    let mut c = Client::connect(server.addr);
    // A header announcing 2^40 bytes, and no payload at all: refused at once.
    c.send_raw(&[0x82, 0xFF, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    c.expect_close(1009);
}

#[test]
fn a_message_over_the_limit_across_fragments() {
    let server = server_with_small_limits();
    let mut c = Client::connect(server.addr);
    c.send(OpCode::Binary, false, &[1; 600]);
    c.send(OpCode::Continuation, true, &[1; 401]);
    c.expect_close(1009);
    // Exactly at the limit passes.
    let mut c = Client::connect(server.addr);
    c.send(OpCode::Binary, false, &[1; 600]);
    c.send(OpCode::Continuation, true, &[1; 400]);
    assert_eq!(c.next(), Got::Binary(vec![1; 1000]));
}

#[test]
fn too_many_fragments_even_empty_ones() {
    let server = server_with_small_limits();
    let mut c = Client::connect(server.addr);
    c.send(OpCode::Text, false, b"a");
    for _ in 0..4 {
        c.send(OpCode::Continuation, false, b"");
    }
    c.expect_close(1008);
}

#[test]
fn limits_hold_for_many_connections_at_once() {
    let server = server_with_small_limits();
    let mut clients: Vec<Client> = (0..50).map(|_| Client::connect(server.addr)).collect();
    for c in &mut clients {
        c.send(OpCode::Binary, true, &[0; 601]);
    }
    for c in &mut clients {
        c.expect_close(1009);
    }
    let counters = server.wait_counters("all freed", |c| c.connections == 0);
    assert_eq!(counters.protocol_errors, 50);
}

#[test]
fn a_worker_full_of_connections_refuses_the_next_until_one_leaves() {
    let mut cfg = config();
    cfg.workers = 1;
    cfg.max_connections_per_worker = 2;
    let server = TestServer::start(cfg, ringws::app::echo::Echo);
    let first = Client::connect(server.addr);
    let mut second = Client::connect(server.addr);
    // The third is accepted by the kernel and closed at once, before it says anything.
    let mut third = Client::raw(server.addr);
    assert!(third.read_to_end().is_empty(), "closed without a word");
    let c = server.wait_counters("the refusal", |c| c.refused == 1);
    assert_eq!((c.open, c.connections), (2, 2));
    // The two in still work; once one leaves, a newcomer gets in.
    second.send_text("still here");
    assert_eq!(second.next(), Got::Text("still here".into()));
    drop(first);
    server.wait_counters("a slot free", |c| c.connections == 1);
    let mut fourth = Client::connect(server.addr);
    fourth.send_text("in");
    assert_eq!(fourth.next(), Got::Text("in".into()));
    assert_eq!(server.counters().refused, 1);
}

#[test]
fn a_request_head_over_its_limits_is_answered_431() {
    let mut cfg = config();
    cfg.proto.limits.max_header_bytes = 512;
    cfg.proto.limits.max_headers = 10;
    let server = TestServer::start(cfg, ringws::app::echo::Echo);
    let status = |extra: &str| {
        let mut c = Client::raw(server.addr);
        let request =
            support::upgrade_request("/").replacen("\r\n\r\n", &format!("\r\n{extra}\r\n"), 1);
        c.send_raw(request.as_bytes());
        c.read_http_head().0
    };
    assert_eq!(status(""), 101);
    assert_eq!(
        status(&format!("X-Pad: {}\r\n", "a".repeat(600))),
        431,
        "bytes"
    );
    let many: String = (0..10).map(|i| format!("X-{i}: a\r\n")).collect();
    assert_eq!(status(&many), 431, "header count");
    let c = server.wait_counters("two refusals", |c| c.handshake_errors == 2);
    assert_eq!(c.upgraded, 1);
}
