//! `wss://` and `https://` through the real server (the backend the test run chooses): the TLS
//! handshake and the upgrade, messages of every size both ways, control frames, compression,
//! pages and `/healthz` over TLS, the close with `close_notify`, and what is not TLS on the TLS
//! port (plaintext HTTP, garbage): closed and counted.

mod support;

use std::io::{Read, Write};

use ringws::app::chat::{Chat, ChatConfig};
use ringws::proto::frame::OpCode;
use support::{Client, Got, TestServer, config};

/// A server with TLS (a certificate made here) and a client configuration that trusts it.
fn tls_config() -> (
    ringws::server::ServerConfig,
    std::sync::Arc<rustls::ClientConfig>,
) {
    let (tls, cert) = support::tls::certified();
    let mut cfg = config();
    cfg.tls = Some(tls);
    cfg.proto.limits.max_message_bytes = 1 << 20;
    cfg.proto.limits.max_frame_bytes = 1 << 20;
    let client = support::tls::client_config(&cert, &[&rustls::version::TLS13], false);
    (cfg, client)
}

#[test]
fn messages_of_every_size_and_control_frames_cross_tls() {
    let (cfg, client) = tls_config();
    let server = TestServer::start(cfg, ringws::app::echo::Echo);
    let mut c = Client::connect_tls(server.addr, &client);
    c.send_text("κόσμε");
    assert_eq!(c.next(), Got::Text("κόσμε".into()));
    // Larger than a TLS record and than many receive buffers.
    let big: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    c.send(OpCode::Binary, true, &big);
    assert_eq!(c.next(), Got::Binary(big));
    // Fragments with a ping between them.
    c.send(OpCode::Text, false, b"Hel");
    c.send(OpCode::Ping, true, b"there?");
    c.send(OpCode::Continuation, true, b"lo");
    assert_eq!(c.next(), Got::Pong(b"there?".to_vec()));
    assert_eq!(c.next(), Got::Text("Hello".into()));
    // Many small messages in one write, echoed in order.
    let mut burst = Vec::new();
    for i in 0..100 {
        burst.extend(ringws::proto::frame::encode_masked_frame(
            OpCode::Text,
            true,
            support::KEY,
            format!("m{i}").as_bytes(),
        ));
    }
    c.send_raw(&burst);
    for i in 0..100 {
        assert_eq!(c.next(), Got::Text(format!("m{i}")));
    }
    // Our close is answered, then the TLS stream ends with close_notify and the socket closes.
    c.send_close(1000, "bye");
    c.expect_close(1000);
    let after = server.wait_counters("the connection gone", |s| s.connections == 0);
    assert_eq!(
        after.bytes_queued, 0,
        "what was queued (sealed or not) is all accounted"
    );
    assert_eq!(after.tls_handshakes, 1);
    assert_eq!(after.tls_handshake_failures() + after.tls_failures(), 0);
}

#[test]
fn compression_over_tls() {
    let (mut cfg, client) = tls_config();
    cfg.compression.mode = ringws::proto::deflate::Mode::Shared;
    let server = TestServer::start(cfg, ringws::app::echo::Echo);
    let (mut c, head) = Client::connect_tls_with(
        server.addr,
        &client,
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    );
    assert!(
        head.to_ascii_lowercase().contains("permessage-deflate"),
        "{head}"
    );
    let text = "compress me, ".repeat(200);
    c.send_text(&text);
    match c.next() {
        Got::Compressed(true, payload) => {
            let mut plain = Vec::new();
            ringws::proto::deflate::Inflater::new(15)
                .inflate(&payload, 1 << 20, &mut plain)
                .unwrap();
            assert_eq!(plain, text.as_bytes());
        }
        other => panic!("expected a compressed echo, got {other:?}"),
    }
}

#[test]
fn pages_and_healthz_over_https() {
    let (cfg, client) = tls_config();
    let chat = Chat::new(ChatConfig::default());
    let server = TestServer::start_with(cfg, chat.clone(), |bound| {
        chat.attach(bound.publisher(), bound.metrics())
    });
    for (path, expect) in [("/healthz", "ok"), ("/", "<!doctype html>")] {
        let mut c = Client::raw_tls(server.addr, &client);
        c.send_raw(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let (status, _, mut body) = c.read_http_head();
        body.extend(c.read_to_end());
        assert_eq!(status, 200, "{path}");
        let body = String::from_utf8_lossy(&body).to_ascii_lowercase();
        assert!(body.contains(expect), "{path}: {body:.200}");
    }
}

#[test]
fn plaintext_http_and_garbage_on_the_tls_port_are_closed_and_counted() {
    let (cfg, _) = tls_config();
    let server = TestServer::start(cfg, ringws::app::echo::Echo);
    for input in [
        &b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8][..],
    ] {
        let mut s = std::net::TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(support::patience())).unwrap();
        s.write_all(input).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        // At most a TLS alert record (content type 21): never an HTTP answer.
        assert!(
            answer.is_empty() || answer[0] == 0x15,
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    let after = server.wait_counters("both refused and gone", |s| {
        s.tls_handshake_failures() == 2 && s.connections == 0
    });
    assert_eq!(after.bytes_queued, 0, "the alerts are accounted too");
    assert_eq!(
        after.tls_handshake_failures_reason_malformed, 2,
        "both counted as not TLS"
    );
    assert_eq!(after.tls_handshakes, 0);
}

#[test]
fn a_tls_handshake_never_finished_is_closed_at_the_handshake_deadline() {
    let (mut cfg, client) = tls_config();
    cfg.handshake_timeout = std::time::Duration::from_millis(500);
    let server = TestServer::start(cfg, ringws::app::echo::Echo);
    let hello = support::tls::from_client(&mut support::tls::client(&client));
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(support::patience())).unwrap();
    // Half a ClientHello, then nothing.
    s.write_all(&hello[..hello.len() / 2]).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let after = server.wait_counters("closed at the deadline", |c| {
        c.handshake_timeouts == 1 && c.connections == 0
    });
    assert_eq!(after.tls_handshakes, 0);
}

/// `ringws --tls-cert --tls-key` (echo mode) with its log in a file; killed when dropped.
struct TlsBinary {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    log: std::path::PathBuf,
}

impl TlsBinary {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn hup(&self) {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for TlsBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

#[test]
fn sighup_reloads_the_certificate_for_new_handshakes_and_keeps_open_connections() {
    let dir = std::env::temp_dir().join(format!("ringws-tls-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    // And a certificate by server name (--tls-sni), reloaded with the default one.
    let (one_cert_path, one_key_path) = (dir.join("one.pem"), dir.join("one.key"));
    let (cert_a, key_a, der_a) = support::tls::pem_pair();
    let (cert_b, key_b, der_b) = support::tls::pem_pair();
    let (one_cert_a, one_key_a, one_der_a) = support::tls::pem_pair_for("one.test");
    let (one_cert_b, one_key_b, one_der_b) = support::tls::pem_pair_for("one.test");
    std::fs::write(&cert_path, &cert_a).unwrap();
    std::fs::write(&key_path, &key_a).unwrap();
    std::fs::write(&one_cert_path, &one_cert_a).unwrap();
    std::fs::write(&one_key_path, &one_key_a).unwrap();
    let port = support::free_port();
    let log = dir.join("ringws.log");
    let child = support::bin(env!("CARGO_BIN_EXE_ringws"))
        .args(["--mode", "echo", "--workers", "2"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--io",
            &std::env::var("RINGWS_TEST_IO").unwrap_or_else(|_| "auto".into()),
        ])
        .arg("--tls-cert")
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .arg("--tls-sni")
        .arg(format!(
            "one.test={},{}",
            one_cert_path.display(),
            one_key_path.display()
        ))
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let server = TlsBinary {
        child,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        log,
    };
    support::wait_until("ringws listens", || {
        std::net::TcpStream::connect(server.addr).is_ok()
    });
    let client = support::tls::client_config_trusting(
        &[
            der_a.clone(),
            der_b.clone(),
            one_der_a.clone(),
            one_der_b.clone(),
        ],
        &[&rustls::version::TLS13],
        false,
    );
    let mut old = Client::connect_tls(server.addr, &client);
    assert_eq!(old.peer_certificate().as_deref(), Some(der_a.as_ref()));
    let mut old_one = Client::connect_tls_for(server.addr, &client, "one.test");
    assert_eq!(
        old_one.peer_certificate().as_deref(),
        Some(one_der_a.as_ref())
    );
    // New files, then SIGHUP: new handshakes get B, the open connections go on.
    std::fs::write(&cert_path, &cert_b).unwrap();
    std::fs::write(&key_path, &key_b).unwrap();
    std::fs::write(&one_cert_path, &one_cert_b).unwrap();
    std::fs::write(&one_key_path, &one_key_b).unwrap();
    server.hup();
    support::wait_until("the reload logged", || {
        server.log().contains("TLS: certificate reloaded")
    });
    assert!(
        server.log().contains("with 1 by server name"),
        "{}",
        server.log()
    );
    let mut new = Client::connect_tls(server.addr, &client);
    assert_eq!(new.peer_certificate().as_deref(), Some(der_b.as_ref()));
    let mut new_one = Client::connect_tls_for(server.addr, &client, "one.test");
    assert_eq!(
        new_one.peer_certificate().as_deref(),
        Some(one_der_b.as_ref())
    );
    for c in [&mut old, &mut new, &mut old_one, &mut new_one] {
        c.send_text("still here");
        assert_eq!(c.next(), Got::Text("still here".into()));
    }
    // A bad key by name: refused, said so, and every B stays.
    std::fs::write(&one_key_path, "not a key").unwrap();
    server.hup();
    support::wait_until("the refusal logged", || {
        server.log().contains("TLS: reload refused")
    });
    assert!(
        server.log().contains("server name one.test"),
        "{}",
        server.log()
    );
    let third = Client::connect_tls(server.addr, &client);
    assert_eq!(third.peer_certificate().as_deref(), Some(der_b.as_ref()));
    let third_one = Client::connect_tls_for(server.addr, &client, "one.test");
    assert_eq!(
        third_one.peer_certificate().as_deref(),
        Some(one_der_b.as_ref())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tampered_record_is_answered_with_bad_record_mac_then_closed_and_counted() {
    let (cfg, client) = tls_config();
    let server = TestServer::start(cfg, ringws::app::echo::Echo);
    let mut c = Client::connect_tls(server.addr, &client);
    c.send_text("fine");
    assert_eq!(c.next(), Got::Text("fine".into()));
    // Queued for this connection when its record fails: an echo never sealed.
    let frame = ringws::proto::frame::encode_masked_frame(OpCode::Text, true, support::KEY, b"x");
    c.send_tampered_record(&frame);
    let ended = c.read_to_failure();
    assert!(
        ended.contains("BadRecordMac"),
        "the alert reached the client: {ended}"
    );
    let after = server.wait_counters("counted and gone", |s| {
        s.tls_failures() == 1 && s.connections == 0
    });
    assert_eq!(after.tls_failures_reason_bad_record, 1);
    assert_eq!(after.bytes_queued, 0);
}
