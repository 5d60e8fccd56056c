//! Messages through the real server: sizes that span receive buffers, fragments, control
//! frames, many connections at once.

mod support;

use ringws::proto::frame::OpCode;
use support::{Client, Got, TestServer, config};

#[test]
fn text_and_binary_come_back_as_sent() {
    let server = TestServer::echo();
    let mut c = Client::connect(server.addr);
    c.send_text("κόσμε");
    assert_eq!(c.next(), Got::Text("κόσμε".into()));
    c.send(OpCode::Binary, true, &[0, 1, 2, 255]);
    assert_eq!(c.next(), Got::Binary(vec![0, 1, 2, 255]));
    c.send(OpCode::Text, true, b"");
    assert_eq!(c.next(), Got::Text(String::new()));
}

#[test]
fn a_message_larger_than_many_receive_buffers() {
    let mut cfg = config();
    cfg.proto.limits.max_message_bytes = 1 << 20;
    cfg.proto.limits.max_frame_bytes = 1 << 20;
    let server = TestServer::start(cfg, ringws::app::echo::Echo);
    let mut c = Client::connect(server.addr);
    let big: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    c.send(OpCode::Binary, true, &big);
    assert_eq!(c.next(), Got::Binary(big));
    // The receive buffers went back to the ring, and no connection keeps a spill buffer.
    server.wait_counters("buffers returned", |c| c.buffers_lent == 0);
}

#[test]
fn fragmented_message_with_a_ping_in_the_middle() {
    let server = TestServer::echo();
    let mut c = Client::connect(server.addr);
    c.send(OpCode::Text, false, "Hel".as_bytes());
    c.send(OpCode::Ping, true, b"are you there");
    c.send(OpCode::Continuation, false, b"");
    c.send(OpCode::Continuation, true, "lo €".as_bytes());
    assert_eq!(c.next(), Got::Pong(b"are you there".to_vec()));
    assert_eq!(c.next(), Got::Text("Hello €".into()));
}

#[test]
fn text_split_inside_a_code_point_across_tcp_writes() {
    let server = TestServer::echo();
    let mut c = Client::connect(server.addr);
    let frame = ringws::proto::frame::encode_masked_frame(
        OpCode::Text,
        true,
        support::KEY,
        "a€b".as_bytes(),
    );
    for b in &frame {
        c.send_raw(std::slice::from_ref(b));
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(c.next(), Got::Text("a€b".into()));
}

#[test]
fn pipelined_messages_keep_their_order() {
    // 3,000 small messages in one write: more frames than any per-frame cap, fewer bytes than
    // the outbound limit, so every echo must come back, in order.
    let server = TestServer::echo();
    let mut c = Client::connect(server.addr);
    let mut all = Vec::new();
    for i in 0..3000 {
        all.extend(ringws::proto::frame::encode_masked_frame(
            OpCode::Text,
            true,
            support::KEY,
            format!("m{i}").as_bytes(),
        ));
    }
    c.send_raw(&all);
    for i in 0..3000 {
        assert_eq!(c.next(), Got::Text(format!("m{i}")));
    }
}

#[test]
fn hundreds_of_connections_echo_in_parallel() {
    let server = TestServer::echo();
    let mut clients: Vec<Client> = (0..300).map(|_| Client::connect(server.addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send_text(&format!("client {i}"));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.next(), Got::Text(format!("client {i}")));
    }
    let counters = server.wait_counters("all open", |c| c.open == 300);
    assert_eq!(counters.messages_in, 300);
    drop(clients);
    server.wait_counters("all closed", |c| c.connections == 0 && c.open == 0);
}

#[test]
fn zero_copy_sends_deliver_the_same_bytes() {
    let mut cfg = config();
    cfg.uring.send_zc_min_bytes = Some(1); // every send zero-copy
    cfg.proto.limits.max_message_bytes = 1 << 20;
    cfg.proto.limits.max_frame_bytes = 1 << 20;
    let server = TestServer::start(cfg, ringws::app::echo::Echo);
    let mut c = Client::connect(server.addr);
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    for round in 0..5 {
        // One at a time: a text queued behind a 300 KB echo would exceed the outbound limit.
        c.send(OpCode::Binary, true, &big);
        assert_eq!(c.next(), Got::Binary(big.clone()));
        for i in 0..20 {
            c.send_text(&format!("round {round} text {i}"));
        }
        for i in 0..20 {
            assert_eq!(c.next(), Got::Text(format!("round {round} text {i}")));
        }
    }
    drop(c);
    server.wait_counters("freed", |c| c.connections == 0 && c.bytes_queued == 0);
}
