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
