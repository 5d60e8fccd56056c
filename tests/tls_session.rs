//! A rustls client in memory against a TLS [`Session`]: handshakes (TLS 1.3 and 1.2, whole or
//! a byte at a time), data both ways, resumption, close, and every kind of bad input.

mod support;

use std::io::Write;
use std::sync::Arc;

use ringws::tls::session::{MAX_PENDING, MAX_PLAINTEXT};
use ringws::tls::{Session, TlsConfig, TlsError};
use rustls::{ClientConfig, HandshakeKind};
use support::tls::{client, from_client, handshake_with, to_client};

/// The server's configuration and a client configuration (with resumption) offering `versions`.
fn setup(versions: &[&'static rustls::SupportedProtocolVersion]) -> (TlsConfig, Arc<ClientConfig>) {
    let (server, cert) = support::tls::certified();
    (server, support::tls::client_config(&cert, versions, true))
}

fn handshake(s: &mut Session, c: &mut rustls::ClientConnection, chunk: usize) {
    handshake_with(s, c, chunk);
}

#[test]
fn a_handshake_then_data_both_ways_in_tls_1_3_and_1_2() {
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let (server, config) = setup(versions);
        let mut s = Session::new(&server).unwrap();
        let mut c = client(&config);
        handshake(&mut s, &mut c, usize::MAX);
        assert_eq!(s.alpn(), Some(&b"http/1.1"[..]));
        assert_eq!(s.version(), c.protocol_version());
        // A request in, a response out.
        c.writer().write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut input = from_client(&mut c);
        let (mut out, mut plain) = (Vec::new(), Vec::new());
        let got = s
            .receive(&mut input, &mut out, &mut |p| plain.extend_from_slice(p))
            .unwrap();
        assert_eq!(plain, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(
            (got.plaintext, got.open, got.peer_closed),
            (18, true, false)
        );
        let big = vec![7u8; 3 * MAX_PLAINTEXT + 5];
        s.seal(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", &mut out)
            .unwrap();
        s.seal(&big, &mut out).unwrap();
        let read = to_client(&mut c, &out);
        assert_eq!(&read[..36], b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
        assert_eq!(&read[36..], &big[..], "{versions:?}");
        assert_eq!(s.pending(), 0, "nothing kept once records are whole");
    }
}

#[test]
fn a_handshake_trickled_byte_by_byte_completes_and_keeps_nothing_after() {
    let (server, config) = setup(&[&rustls::version::TLS13]);
    let mut s = Session::new(&server).unwrap();
    let mut c = client(&config);
    handshake(&mut s, &mut c, 1);
    c.writer().write_all(b"hello").unwrap();
    let mut input = from_client(&mut c);
    let (mut out, mut plain) = (Vec::new(), Vec::new());
    let (head, tail) = input.split_at_mut(7);
    s.receive(head, &mut out, &mut |p| plain.extend_from_slice(p))
        .unwrap();
    assert!(plain.is_empty(), "half a record delivers nothing");
    assert_eq!(s.pending(), 7);
    s.receive(tail, &mut out, &mut |p| plain.extend_from_slice(p))
        .unwrap();
    assert_eq!(plain, b"hello");
    assert_eq!(s.pending(), 0);
}

#[test]
fn sessions_resume_with_tls_1_3_tickets_and_the_tls_1_2_cache() {
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let (server, config) = setup(versions);
        let mut first = client(&config);
        let mut s = Session::new(&server).unwrap();
        handshake(&mut s, &mut first, usize::MAX);
        assert_eq!(first.handshake_kind(), Some(HandshakeKind::Full));
        // TLS 1.3 tickets come after the handshake: let the client read them.
        let mut out = Vec::new();
        s.seal(b"x", &mut out).unwrap();
        to_client(&mut first, &out);
        let mut again = client(&config);
        let mut s2 = Session::new(&server).unwrap();
        handshake(&mut s2, &mut again, usize::MAX);
        assert_eq!(
            again.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{versions:?}"
        );
        // A resumed TLS 1.3 session keeps only its keys too.
        assert_eq!(s2.is_lean(), versions[0] == &rustls::version::TLS13);
    }
}

#[test]
fn the_certificate_follows_the_server_name_and_any_other_client_gets_the_default() {
    let default = support::tls::cert_for(&["localhost", "127.0.0.1", "elsewhere.test"]);
    let one = support::tls::cert_for(&["one.test"]);
    let two = support::tls::cert_for(&["two.test", "Three.test"]);
    let (d, o, t) = (default.0.clone(), one.0.clone(), two.0.clone());
    let server = TlsConfig::with_names(
        vec![default.0],
        default.1,
        vec![
            ("one.test".into(), vec![one.0], one.1),
            ("Three.test".into(), vec![two.0.clone()], two.1.clone_key()),
            ("two.test".into(), vec![two.0], two.1),
        ],
    )
    .unwrap();
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let config = support::tls::client_config_trusting(
            &[d.clone(), o.clone(), t.clone()],
            versions,
            false,
        );
        for (name, expected) in [
            ("one.test", &o),
            ("two.test", &t),
            ("THREE.test", &t),
            ("localhost", &d),
            ("elsewhere.test", &d),
            ("127.0.0.1", &d), // no SNI
        ] {
            let mut s = Session::new(&server).unwrap();
            let mut c = support::tls::client_for(&config, name);
            handshake(&mut s, &mut c, usize::MAX);
            let presented = c.peer_certificates().unwrap()[0].clone();
            assert_eq!(&presented, expected, "{name} {versions:?}");
        }
    }
}

#[test]
fn a_certificate_by_name_must_be_valid_for_it_and_match_its_key() {
    let (d_cert, d_key) = support::tls::cert_for(&["localhost"]);
    let (o_cert, o_key) = support::tls::cert_for(&["one.test"]);
    let with = |names: Vec<ringws::tls::config::NamedDer>| {
        TlsConfig::with_names(vec![d_cert.clone()], d_key.clone_key(), names)
            .err()
            .map(|e| e.to_string())
    };
    // One name each: the name, its certificate and key, what the refusal says.
    let o = || vec![o_cert.clone()];
    for (name, cert, key, says) in [
        ("two.test", o(), o_key.clone_key(), "server name two.test: "),
        ("one.test", o(), d_key.clone_key(), "server name one.test: "),
        ("one test", o(), o_key.clone_key(), "server name one test: "),
    ] {
        let refused = with(vec![(name.into(), cert, key)]).expect("refused");
        assert!(refused.starts_with(says), "{name}: {refused}");
    }
    let twice = with(vec![
        ("one.test".into(), vec![o_cert.clone()], o_key.clone_key()),
        ("ONE.test".into(), vec![o_cert.clone()], o_key.clone_key()),
    ])
    .expect("refused");
    assert!(twice.contains("given twice"), "{twice}");
    assert_eq!(
        with(vec![("one.test".into(), vec![o_cert], o_key)]),
        None,
        "the same, right"
    );
}

#[test]
fn close_notify_both_ways() {
    let (server, config) = setup(&[&rustls::version::TLS13]);
    let mut s = Session::new(&server).unwrap();
    let mut c = client(&config);
    handshake(&mut s, &mut c, usize::MAX);
    // The client ends its side (a close_notify without a WebSocket close).
    c.send_close_notify();
    let mut input = from_client(&mut c);
    let mut out = Vec::new();
    let got = s.receive(&mut input, &mut out, &mut |_| {}).unwrap();
    assert!(got.peer_closed, "{got:?}");
    // The server ends its side: the client sees it.
    s.close(&mut out).unwrap();
    let mut records = &out[..];
    while !records.is_empty() {
        c.read_tls(&mut records).unwrap();
    }
    let state = c.process_new_packets().unwrap();
    assert!(state.peer_has_closed());
}

#[test]
fn plaintext_http_garbage_and_oversized_records_fail_with_an_alert() {
    let (server, _) = setup(&[&rustls::version::TLS13]);
    let oversized = {
        // A handshake record header claiming 65,535 bytes (more than any record may hold).
        let mut r = vec![0x16, 0x03, 0x01, 0xff, 0xff];
        r.extend(std::iter::repeat_n(0u8, 100));
        r
    };
    for (what, mut input) in [
        (
            "plaintext HTTP",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "garbage",
            vec![0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5, 6, 7],
        ),
        ("oversized record", oversized),
    ] {
        let mut s = Session::new(&server).unwrap();
        let mut out = Vec::new();
        let e = s.receive(&mut input, &mut out, &mut |_| {}).unwrap_err();
        assert!(matches!(e, TlsError::Protocol(_)), "{what}: {e:?}");
        assert_eq!(out.first(), Some(&0x15), "{what}: an alert record is sent");
        assert_eq!(e.reason(), "malformed", "{what}");
    }
}

#[test]
fn a_truncated_client_hello_waits_and_a_tampered_record_fails() {
    let (server, config) = setup(&[&rustls::version::TLS13]);
    let mut s = Session::new(&server).unwrap();
    let mut c = client(&config);
    let mut hello = from_client(&mut c);
    let mut out = Vec::new();
    // Half a ClientHello: nothing to do yet (the caller's handshake deadline ends it).
    let half = hello.len() / 2;
    let got = s
        .receive(&mut hello[..half], &mut out, &mut |_| {})
        .unwrap();
    assert!(!got.open && out.is_empty());
    assert_eq!(s.pending(), half);
    // A record whose ciphertext was changed on the way: bad_record_mac.
    let mut s = Session::new(&server).unwrap();
    let mut c = client(&config);
    handshake(&mut s, &mut c, usize::MAX);
    c.writer().write_all(b"secret").unwrap();
    let mut input = from_client(&mut c);
    let last = input.len() - 1;
    input[last] ^= 1;
    let mut out = Vec::new();
    let e = s.receive(&mut input, &mut out, &mut |_| {}).unwrap_err();
    assert!(matches!(e, TlsError::Protocol(_)), "{e:?}");
    assert!(!out.is_empty(), "an alert is sent");
    assert!(
        s.seal(b"x", &mut Vec::new()).is_err(),
        "a failed session seals nothing"
    );
}

#[test]
fn nothing_is_sealed_before_the_handshake_and_pending_is_bounded() {
    let (server, _) = setup(&[&rustls::version::TLS13]);
    let mut s = Session::new(&server).unwrap();
    assert_eq!(s.seal(b"early", &mut Vec::new()), Err(TlsError::NotReady));
    // A peer that sends the start of a record and then more and more bytes of nothing whole.
    let mut s = Session::new(&server).unwrap();
    let mut out = Vec::new();
    let mut header = vec![0x16, 0x03, 0x01, 0x40, 0x00];
    let _ = s.receive(&mut header, &mut out, &mut |_| {});
    let mut failed = None;
    for _ in 0..(MAX_PENDING / 1024 + 2) {
        let mut chunk = vec![1u8; 1024];
        if let Err(e) = s.receive(&mut chunk, &mut out, &mut |_| {}) {
            failed = Some(e);
            break;
        }
    }
    assert!(
        failed.is_some(),
        "refused before holding more than MAX_PENDING"
    );
    assert!(s.pending() <= MAX_PENDING);
}

#[test]
fn a_tls_1_3_session_keeps_only_its_keys_and_follows_the_clients_key_updates() {
    let (server, config) = setup(&[&rustls::version::TLS13]);
    let mut s = Session::new(&server).unwrap();
    let mut c = client(&config);
    handshake(&mut s, &mut c, usize::MAX);
    assert!(
        s.is_lean(),
        "rustls' state dropped once the handshake is done"
    );
    assert_eq!(s.alpn(), Some(&b"http/1.1"[..]));
    assert_eq!(s.version(), Some(rustls::ProtocolVersion::TLSv1_3));
    for round in 0..3 {
        // The client updates its key and asks the server to update its own (RFC 8446 §4.6.3).
        c.refresh_traffic_keys().unwrap();
        let text = format!("round {round}");
        c.writer().write_all(text.as_bytes()).unwrap();
        let mut input = from_client(&mut c);
        let (mut out, mut plain) = (Vec::new(), Vec::new());
        s.receive(&mut input, &mut out, &mut |p| plain.extend_from_slice(p))
            .unwrap();
        assert_eq!(plain, text.as_bytes());
        // The server's KeyUpdate goes before the next record it seals (the answer).
        s.seal(b"answer", &mut out).unwrap();
        assert_eq!(to_client(&mut c, &out), b"answer", "round {round}");
    }
    // A TLS 1.2 session stays with rustls.
    let (server, config) = setup(&[&rustls::version::TLS12]);
    let mut s = Session::new(&server).unwrap();
    handshake(&mut s, &mut client(&config), usize::MAX);
    assert!(!s.is_lean());
}

#[test]
fn data_and_close_notify_sent_with_the_clients_finished_are_read_once_and_in_order() {
    for close in [false, true] {
        let (server, config) = setup(&[&rustls::version::TLS13]);
        let mut s = Session::new(&server).unwrap();
        let mut c = client(&config);
        let mut out = Vec::new();
        s.receive(&mut from_client(&mut c), &mut out, &mut |_| {})
            .unwrap();
        to_client(&mut c, &out);
        // The client's Finished, its first data and (maybe) close_notify in one read.
        c.writer().write_all(b"with the Finished").unwrap();
        if close {
            c.send_close_notify();
        }
        let mut input = from_client(&mut c);
        let (mut out, mut plain) = (Vec::new(), Vec::new());
        let got = s
            .receive(&mut input, &mut out, &mut |p| plain.extend_from_slice(p))
            .unwrap();
        assert_eq!(plain, b"with the Finished");
        assert!(
            got.open && s.is_lean(),
            "handed over at the record boundary"
        );
        assert_eq!(got.peer_closed, close);
        if !close {
            // The next record decrypts at the sequence number rustls left (1, not 0).
            c.writer().write_all(b"later").unwrap();
            let mut input = from_client(&mut c);
            let mut plain = Vec::new();
            s.receive(&mut input, &mut out, &mut |p| plain.extend_from_slice(p))
                .unwrap();
            assert_eq!(plain, b"later");
        }
    }
}
