//! Every way a connection ends: peer close, protocol errors, server shutdown, resets; and that
//! each really closes the socket and frees its slot.

mod support;

use ringws::proto::frame::OpCode;
use support::{Client, TestServer};

#[test]
fn peer_close_is_echoed_then_the_server_closes_tcp() {
    let server = TestServer::echo();
    let mut c = Client::connect(server.addr);
    c.send_close(4001, "bye");
    c.expect_close(4001);
    let counters = server.wait_counters("slot freed", |c| c.connections == 0);
    assert_eq!(counters.closed_clean, 1);
}

#[test]
fn empty_close_is_answered_with_1000() {
    let server = TestServer::echo();
    let mut c = Client::connect(server.addr);
    c.send(OpCode::Close, true, b"");
    c.expect_close(1000);
}

#[test]
fn protocol_errors_close_with_their_code_and_free_the_slot() {
    let server = TestServer::echo();
    let cases: [(&[u8], u16); 4] = [
        (&[0x81, 0x02, b'h', b'i'], 1002),             // unmasked
        (&[0x83, 0x80, 1, 2, 3, 4], 1002),             // reserved opcode
        (&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xed], 1002), // close code 1005
        (&[0x81, 0x82, 0, 0, 0, 0, 0xc3, 0x28], 1007), // invalid UTF-8
    ];
    for (bytes, code) in cases {
        let mut c = Client::connect(server.addr);
        c.send_raw(bytes);
        c.expect_close(code);
    }
    let counters = server.wait_counters("slots freed", |c| c.connections == 0);
    assert_eq!(counters.protocol_errors, 4);
    assert_eq!(counters.open, 0);
}

#[test]
fn invalid_utf8_split_across_tcp_writes_fails_with_1007() {
    let server = TestServer::echo();
    let mut c = Client::connect(server.addr);
    // "κόσμε" then the start of a UTF-16 surrogate (ED A0 80), one byte per write: the server
    // fails the message as soon as the invalid byte arrives, before the frame is complete.
    let payload = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited";
    let frame =
        ringws::proto::frame::encode_masked_frame(OpCode::Text, true, support::KEY, payload);
    let cut = frame.len() - b"edited".len();
    for b in &frame[..cut] {
        c.send_raw(std::slice::from_ref(b));
    }
    c.expect_close(1007);
}

#[test]
fn messages_after_the_close_frame_are_ignored() {
    let server = TestServer::echo();
    let mut c = Client::connect(server.addr);
    let mut bytes = ringws::proto::frame::encode_masked_frame(
        OpCode::Close,
        true,
        support::KEY,
        &1000u16.to_be_bytes(),
    );
    bytes.extend(ringws::proto::frame::encode_masked_frame(
        OpCode::Text,
        true,
        support::KEY,
        b"late",
    ));
    c.send_raw(&bytes);
    c.expect_close(1000);
}
