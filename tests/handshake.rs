//! The opening handshake against the real server: answers, refusals, and byte-level edge cases.

mod support;

use ringws::proto::frame::OpCode;
use support::{Client, Got, TestServer, upgrade_request};

#[test]
fn upgrade_answers_101_and_echoes() {
    let server = TestServer::echo();
    let mut c = Client::connect(server.addr);
    c.send_text("hello");
    assert_eq!(c.next(), Got::Text("hello".into()));
    // The backend in use shows in the counters (two workers in tests).
    let uring_workers = server.counters().io_uring_workers;
    match support::io_choice() {
        ringws::server::IoChoice::Epoll => assert_eq!(uring_workers, 0),
        _ => assert_eq!(uring_workers, 2, "io_uring is available on these machines"),
    }
}

#[test]
fn request_sent_byte_by_byte_is_accepted() {
    let server = TestServer::echo();
    let mut c = Client::raw(server.addr);
    for b in upgrade_request("/chat").bytes() {
        c.send_raw(&[b]);
    }
    let (status, head, _) = c.read_http_head();
    assert_eq!(status, 101, "{head}");
}

#[test]
fn frames_in_the_same_packet_as_the_request_are_not_lost() {
    let server = TestServer::echo();
    let mut c = Client::raw(server.addr);
    let mut bytes = upgrade_request("/").into_bytes();
    bytes.extend(ringws::proto::frame::encode_masked_frame(
        OpCode::Text,
        true,
        [1, 2, 3, 4],
        b"early",
    ));
    c.send_raw(&bytes);
    let (status, _, rest) = c.read_http_head();
    assert_eq!(status, 101);
    // The echo may be in the same read as the 101 or follow it.
    let echoed = if rest.is_empty() { None } else { Some(rest) };
    match echoed {
        Some(rest) => assert_eq!(rest, b"\x81\x05early"),
        None => assert_eq!(c.next(), Got::Text("early".into())),
    }
}

fn refused(request: &str) -> (u16, String) {
    let server = TestServer::echo();
    let mut c = Client::raw(server.addr);
    c.send_raw(request.as_bytes());
    let response = String::from_utf8_lossy(&c.read_to_end()).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

#[test]
fn bad_upgrades_get_http_errors_and_the_connection_closes() {
    let (status, r) = refused(&upgrade_request("/").replace("Version: 13", "Version: 8"));
    assert_eq!(status, 426, "{r}");
    assert!(r.contains("Sec-WebSocket-Version: 13"), "{r}");
    let (status, r) = refused(
        &upgrade_request("/").replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
    );
    assert_eq!(status, 400, "{r}");
    let (status, r) = refused(&upgrade_request("/").replace("GET", "POST"));
    assert_eq!(status, 405, "{r}");
    let (status, r) =
        refused(&upgrade_request("/").replace("Connection: Upgrade", "Connection: keep-alive"));
    assert_eq!(status, 400, "{r}");
    let huge =
        upgrade_request("/").replace("Host:", &format!("X-Big: {}\r\nHost:", "a".repeat(9000)));
    let (status, r) = refused(&huge);
    assert_eq!(status, 431, "{r}");
    let (status, _) = refused("this is not http\r\n\r\n");
    assert_eq!(status, 400);
}

#[test]
fn plain_http_requests_are_served_on_the_same_port() {
    let (status, r) = refused("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200, "{r}");
    assert!(r.ends_with("ok\n"));
    let (status, _) = refused("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 404);
}

#[test]
fn a_request_followed_by_a_half_close_still_gets_its_response() {
    // `printf 'GET /healthz ...' | nc -N`: the request, then FIN, possibly in one read.
    let server = TestServer::echo();
    for _ in 0..20 {
        let mut c = Client::raw(server.addr);
        c.send_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        c.stream.shutdown(std::net::Shutdown::Write).unwrap();
        let response = String::from_utf8(c.read_to_end()).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 200") && response.ends_with("ok\n"),
            "{response}"
        );
    }
    server.wait_counters("freed", |c| c.connections == 0);
}

#[test]
fn handshake_errors_are_counted_and_slots_freed() {
    let server = TestServer::echo();
    for _ in 0..20 {
        let mut c = Client::raw(server.addr);
        c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n");
        c.read_to_end();
    }
    let c = server.wait_counters("slots freed", |c| c.connections == 0);
    assert_eq!(c.handshake_errors, 20);
    assert_eq!(c.upgraded, 0);
}
