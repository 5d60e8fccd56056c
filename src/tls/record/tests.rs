//! The TLS 1.3 record layer against itself: a "client" is the same [`Records`] with the two
//! secrets swapped, so every record below is what a peer could send.

use super::*;

const SUITES: [Suite; 3] = [Suite::Aes128Gcm, Suite::Aes256Gcm, Suite::Chacha20Poly1305];

/// The server's records and a client's, from made-up secrets of the suite's hash length.
fn pair(suite: Suite) -> (Records, Records) {
    let len = if suite == Suite::Aes256Gcm { 48 } else { 32 };
    let (client, server) = (vec![1u8; len], vec![2u8; len]);
    (
        Records::from_secrets(suite, &client, &server),
        Records::from_secrets(suite, &server, &client),
    )
}

/// What opening `wire` gave: the result, the plaintext, what was sent back, the flags.
struct Opened {
    result: Result<usize, TlsError>,
    plain: Vec<u8>,
    out: Vec<u8>,
    got: Received,
}

fn open(r: &mut Records, wire: &[u8]) -> Opened {
    let mut buf = wire.to_vec();
    let (mut plain, mut out, mut got) = (Vec::new(), Vec::new(), Received::default());
    let result = r.open(
        &mut buf,
        &mut out,
        &mut |p| plain.extend_from_slice(p),
        &mut got,
    );
    Opened {
        result,
        plain,
        out,
        got,
    }
}

fn reason(o: &Opened) -> &'static str {
    o.result
        .as_ref()
        .map(|_| "ok")
        .unwrap_or_else(|e| e.reason())
}

#[test]
fn data_both_ways_in_every_suite_and_records_of_at_most_16_kib() {
    for suite in SUITES {
        let (mut server, mut client) = pair(suite);
        let big: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        client.seal(b"hello", &mut wire).unwrap();
        client.seal(&big, &mut wire).unwrap();
        let o = open(&mut server, &wire);
        assert_eq!(o.result, Ok(wire.len()), "{suite:?}");
        assert_eq!(&o.plain[..5], b"hello");
        assert_eq!(&o.plain[5..], &big[..]);
        assert_eq!((o.got.plaintext, o.out.len()), (40_005, 0));
        // 1 + 3 records (16 KiB, 16 KiB, the rest), each header + 1 + tag of overhead.
        assert_eq!(wire.len(), 40_005 + 4 * (HEADER + 1 + TAG));
        let mut back = Vec::new();
        server.seal(b"world", &mut back).unwrap();
        assert_eq!(open(&mut client, &back).plain, b"world");
    }
}

#[test]
fn a_record_split_anywhere_is_opened_once_whole() {
    let (mut server, mut client) = pair(Suite::Aes128Gcm);
    let mut wire = Vec::new();
    client.seal(b"split", &mut wire).unwrap();
    client.seal(b"next", &mut wire).unwrap();
    let first = HEADER + 5 + 1 + TAG;
    for cut in [0, 3, HEADER, first - 1] {
        let (mut server2, _) = pair(Suite::Aes128Gcm);
        let o = open(&mut server2, &wire[..cut]);
        assert_eq!((o.result, o.plain.len()), (Ok(0), 0), "cut at {cut}");
    }
    let o = open(&mut server, &wire[..first + 2]);
    assert_eq!((o.result, &o.plain[..]), (Ok(first), &b"split"[..]));
    assert_eq!(open(&mut server, &wire[first..]).plain, b"next");
}

#[test]
fn a_key_update_asked_for_is_answered_and_both_sides_move_on() {
    for suite in SUITES {
        let (mut server, mut client) = pair(suite);
        for round in 0..3 {
            // The client updates its key and asks the server to update its own.
            let mut wire = Vec::new();
            client.seal_record(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 1], &mut wire);
            client.tx = client.update(&client.tx).unwrap();
            client.seal(b"after", &mut wire).unwrap();
            let o = open(&mut server, &wire);
            assert_eq!((o.result, &o.plain[..]), (Ok(wire.len()), &b"after"[..]));
            // Not at once (frames queued before may not be sealed yet): before the next
            // record this side seals.
            assert_eq!(o.out, b"");
            // The server's KeyUpdate, then a reply under its next key: the client follows.
            let mut back = Vec::new();
            server.seal(b"reply", &mut back).unwrap();
            let o = open(&mut client, &back);
            assert_eq!((o.result, &o.plain[..]), (Ok(back.len()), &b"reply"[..]));
            assert_eq!(o.out, b"", "not asked to answer (round {round})");
            assert_eq!((server.rx.seq, server.tx.seq), (1, 1));
        }
    }
}

#[test]
fn requests_before_this_side_seals_get_one_key_update_and_close_notify_follows_it() {
    let (mut server, mut client) = pair(Suite::Aes128Gcm);
    let mut wire = Vec::new();
    for _ in 0..3 {
        client.seal_record(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 1], &mut wire);
        client.tx = client.update(&client.tx).unwrap();
    }
    assert_eq!(open(&mut server, &wire).result, Ok(wire.len()));
    let mut back = Vec::new();
    server.close_notify(&mut back).unwrap();
    // One KeyUpdate (the client follows one generation), then close_notify under the new key.
    let o = open(&mut client, &back);
    assert_eq!(o.result, Ok(back.len()));
    assert!(o.got.peer_closed);
    assert_eq!(server.tx.seq, 1, "the new key sealed the close_notify");
}

#[test]
fn floods_of_key_updates_warnings_or_empty_records_fail() {
    /// Appends one more of a flood's records, from the client.
    type Send = fn(&mut Records, &mut Vec<u8>);
    let floods: [(&str, Send); 3] = [
        ("key updates", |c, w| {
            c.seal_record(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0], w);
            c.tx = c.update(&c.tx).unwrap();
        }),
        ("user_canceled alerts", |c, w| {
            c.seal_record(ALERT, &[WARNING, 90], w)
        }),
        ("empty records", |c, w| {
            c.seal_record(APPLICATION_DATA, b"", w)
        }),
    ];
    for (what, send) in floods {
        let (mut server, mut client) = pair(Suite::Aes128Gcm);
        // Up to the limit, with data in between resetting the count: fine.
        let mut wire = Vec::new();
        for _ in 0..3 {
            for _ in 0..MAX_WARNINGS_IN_A_ROW {
                send(&mut client, &mut wire);
            }
            client.seal(b"data", &mut wire).unwrap();
        }
        assert_eq!(open(&mut server, &wire).result, Ok(wire.len()), "{what}");
        // Past it, in a row: refused.
        let mut wire = Vec::new();
        for _ in 0..=MAX_KEY_UPDATES_IN_A_ROW {
            send(&mut client, &mut wire);
        }
        let o = open(&mut server, &wire);
        assert!(o.result.is_err(), "{what}");
        assert!(!o.out.is_empty(), "{what}: an alert");
    }
}

#[test]
fn padding_past_the_records_limit_fails() {
    let (mut server, mut client) = pair(Suite::Aes128Gcm);
    let mut full = vec![7u8; MAX_PLAINTEXT];
    full.push(APPLICATION_DATA); // the type, then one zero of padding appended by seal_record
    let mut wire = Vec::new();
    client.seal_record(0, &full, &mut wire);
    let o = open(&mut server, &wire);
    assert_eq!(
        reason(&o),
        "malformed",
        "2^14 + 2 bytes of TLSInnerPlaintext"
    );
    // 2^14 bytes and the type alone are fine.
    let (mut server, mut client) = pair(Suite::Aes128Gcm);
    let mut wire = Vec::new();
    client.seal_record(APPLICATION_DATA, &full[..MAX_PLAINTEXT], &mut wire);
    assert_eq!(open(&mut server, &wire).plain.len(), MAX_PLAINTEXT);
}

#[test]
fn a_key_update_spanning_two_records_is_followed() {
    let (mut server, mut client) = pair(Suite::Aes128Gcm);
    let mut wire = Vec::new();
    client.seal_record(HANDSHAKE, &[KEY_UPDATE, 0], &mut wire);
    client.seal_record(HANDSHAKE, &[0, 1, 0], &mut wire);
    client.tx = client.update(&client.tx).unwrap();
    client.seal(b"new key", &mut wire).unwrap();
    let o = open(&mut server, &wire);
    assert_eq!((o.result, &o.plain[..]), (Ok(wire.len()), &b"new key"[..]));
    assert_eq!(o.out, b"", "update_not_requested: nothing to answer");
}

#[test]
fn bad_key_updates_and_other_handshake_messages_fail_with_an_alert() {
    let cases: [(&[&[u8]], &str); 5] = [
        (
            &[&[KEY_UPDATE, 0, 0, 1, 0, KEY_UPDATE]],
            "data after it in its record",
        ),
        (
            &[&[KEY_UPDATE, 0, 0, 1, 2]],
            "a request that is neither 0 nor 1",
        ),
        (&[&[KEY_UPDATE, 0, 0, 2, 0, 0]], "a length that is not 1"),
        (
            &[&[4, 0, 0, 1, 0]],
            "a NewSessionTicket (only servers send one)",
        ),
        (&[&[KEY_UPDATE, 0], b""], "an empty handshake record"),
    ];
    for (records, what) in cases {
        let (mut server, mut client) = pair(Suite::Aes128Gcm);
        let mut wire = Vec::new();
        for r in records {
            client.seal_record(HANDSHAKE, r, &mut wire);
        }
        let o = open(&mut server, &wire);
        assert!(o.result.is_err(), "{what}");
        let alert = open(&mut client, &o.out);
        assert_eq!(
            reason(&alert),
            "alert",
            "{what}: the client reads the server's alert"
        );
    }
    // Application data while a KeyUpdate is half read (§5.1: no interleaving).
    let (mut server, mut client) = pair(Suite::Aes128Gcm);
    let mut wire = Vec::new();
    client.seal_record(HANDSHAKE, &[KEY_UPDATE, 0], &mut wire);
    client.seal(b"interleaved", &mut wire).unwrap();
    assert_eq!(reason(&open(&mut server, &wire)), "malformed");
}

#[test]
fn a_tampered_record_fails_as_a_bad_record_and_the_peer_reads_the_alert() {
    let (mut server, mut client) = pair(Suite::Aes128Gcm);
    let mut wire = Vec::new();
    client.seal(b"do not touch", &mut wire).unwrap();
    wire[HEADER + 3] ^= 1;
    let o = open(&mut server, &wire);
    assert_eq!((reason(&o), o.plain.len()), ("bad_record", 0));
    match open(&mut client, &o.out).result {
        Err(TlsError::Protocol(Error::AlertReceived(AlertDescription::BadRecordMac))) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn oversized_change_cipher_spec_and_plaintext_records_fail_as_malformed() {
    let too_long = (MAX_CIPHERTEXT + 1) as u16;
    let cases: [(&[u8], &str); 5] = [
        (
            &[
                APPLICATION_DATA,
                3,
                3,
                (too_long >> 8) as u8,
                too_long as u8,
            ],
            "too long",
        ),
        (
            &[CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1],
            "change_cipher_spec after the handshake",
        ),
        (
            &[HANDSHAKE, 3, 1, 0, 4, 1, 0, 0, 0],
            "a plaintext handshake record",
        ),
        (b"GET / HTTP/1.1\r\n\r\n", "plaintext HTTP"),
        (&[APPLICATION_DATA, 4, 0, 0, 1, 0], "not TLS 1.x"),
    ];
    for (wire, what) in cases {
        let (mut server, _) = pair(Suite::Aes128Gcm);
        let o = open(&mut server, wire);
        assert_eq!(reason(&o), "malformed", "{what}");
        assert!(!o.out.is_empty(), "{what}: an alert");
    }
}

#[test]
fn padding_is_removed_and_a_record_of_padding_alone_fails() {
    let (mut server, mut client) = pair(Suite::Chacha20Poly1305);
    let mut wire = Vec::new();
    // Inner plaintext "padded", type 23, three zeros (seal_record appends the last byte).
    client.seal_record(0, b"padded\x17\0\0", &mut wire);
    let o = open(&mut server, &wire);
    assert_eq!((o.result, &o.plain[..]), (Ok(wire.len()), &b"padded"[..]));
    let mut wire = Vec::new();
    client.seal_record(0, &[0, 0, 0], &mut wire);
    assert_eq!(reason(&open(&mut server, &wire)), "malformed");
}

#[test]
fn close_notify_ends_the_stream_and_what_follows_is_ignored() {
    let (mut server, mut client) = pair(Suite::Aes128Gcm);
    let mut wire = Vec::new();
    client.seal(b"last", &mut wire).unwrap();
    client.seal_record(ALERT, &[WARNING, 90], &mut wire); // user_canceled: ignored
    client.close_notify(&mut wire).unwrap();
    client.seal(b"too late", &mut wire).unwrap();
    let o = open(&mut server, &wire);
    assert_eq!((o.result, &o.plain[..]), (Ok(wire.len()), &b"last"[..]));
    assert!(o.got.peer_closed);
    let mut back = Vec::new();
    server.close_notify(&mut back).unwrap();
    assert!(open(&mut client, &back).got.peer_closed);
}

#[test]
fn a_fatal_alert_from_the_peer_fails_with_its_description() {
    let (mut server, mut client) = pair(Suite::Aes128Gcm);
    let mut wire = Vec::new();
    client.seal_record(
        ALERT,
        &[FATAL, u8::from(AlertDescription::InternalError)],
        &mut wire,
    );
    let o = open(&mut server, &wire);
    assert_eq!(
        o.result,
        Err(TlsError::Protocol(Error::AlertReceived(
            AlertDescription::InternalError
        )))
    );
    assert_eq!(o.out, b"", "no alert answers an alert");
    let mut wire = Vec::new();
    client.seal_record(ALERT, &[FATAL], &mut wire);
    assert_eq!(
        reason(&open(&mut server, &wire)),
        "malformed",
        "an alert of one byte"
    );
}

#[test]
fn the_sending_key_is_updated_before_it_seals_more_records_than_allowed() {
    let (mut server, mut client) = pair(Suite::Aes128Gcm);
    server.tx.seq = AES_GCM_RECORDS_PER_KEY - 1;
    client.rx.seq = AES_GCM_RECORDS_PER_KEY - 1;
    let mut back = Vec::new();
    server.seal(b"last under the old key", &mut back).unwrap();
    server.seal(b"first under the new", &mut back).unwrap();
    assert_eq!(
        server.tx.seq, 1,
        "a KeyUpdate went before the second record"
    );
    let o = open(&mut client, &back);
    assert_eq!(o.result, Ok(back.len()));
    assert_eq!(o.plain, b"last under the old keyfirst under the new");
    // ChaCha20-Poly1305 has no such bound.
    let (mut server, _) = pair(Suite::Chacha20Poly1305);
    server.tx.seq = AES_GCM_RECORDS_PER_KEY;
    server.seal(b"x", &mut Vec::new()).unwrap();
    assert_eq!(server.tx.seq, AES_GCM_RECORDS_PER_KEY + 1);
}

#[test]
fn the_key_schedule_matches_rfc_8448() {
    // RFC 8448 §3 (a simple 1-RTT handshake): the application traffic secrets and the keys
    // and IVs derived from them.
    for (secret, key, iv) in [
        (
            "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643",
            "9f02283b6c9c07efc26bb9f2ac92e356",
            "cf782b88dd83549aadf1e984",
        ),
        (
            "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5",
            "17422dda596ed5d9acd890e3c63f5051",
            "5b78923dee08579033e523d9",
        ),
    ] {
        let secret = hex(secret);
        let d = Direction::from_secret(Suite::Aes128Gcm, Secret::new(&secret), 0).unwrap();
        assert_eq!(d.iv.to_vec(), hex(iv));
        let mut derived = [0u8; 16];
        expand_label(Suite::Aes128Gcm, &secret, b"key", &mut derived);
        assert_eq!(derived.to_vec(), hex(key));
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

proptest::proptest! {
    /// Any sequence of records a peer holding the keys could send (any inner type, content and
    /// padding, cut anywhere on the way): opening never panics, delivers only application data
    /// that was sent, and either takes every whole record or fails with an alert to send.
    #[test]
    fn any_records_cut_anywhere_open_or_fail_cleanly(
        records in proptest::collection::vec(
            (0u8..=25, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)),
            1..12,
        ),
        cut in 0usize..2_000,
    ) {
        let (mut server, mut client) = pair(Suite::Aes128Gcm);
        let mut wire = Vec::new();
        let mut sent = Vec::new();
        for (typ, content) in &records {
            client.seal_record(*typ, content, &mut wire);
            // What the receiver reads: type 0 is padding (RFC 8446 §5.4), so a record sealed
            // "as type 0" is read as the type of its content's last non-zero byte, the bytes
            // before it its content (or as a record with no type at all).
            let (typ, content) = match (*typ, content.iter().rposition(|&b| b != 0)) {
                (0, Some(i)) => (content[i], &content[..i]),
                (0, None) => (0, &content[..0]),
                (t, _) => (t, &content[..]),
            };
            if typ == APPLICATION_DATA {
                sent.extend_from_slice(content);
            }
        }
        let cut = cut.min(wire.len());
        let (mut plain, mut out, mut got) = (Vec::new(), Vec::new(), Received::default());
        let mut buf = wire[..cut].to_vec();
        let mut result = server.open(&mut buf, &mut out, &mut |p| plain.extend_from_slice(p), &mut got);
        if let Ok(used) = result {
            let mut rest = wire[used..].to_vec();
            result = server
                .open(&mut rest, &mut out, &mut |p| plain.extend_from_slice(p), &mut got)
                .map(|n| used + n);
        }
        proptest::prop_assert!(sent.starts_with(&plain));
        match result {
            Ok(used) => proptest::prop_assert_eq!(used, wire.len()),
            Err(TlsError::Protocol(Error::AlertReceived(_))) => {}
            Err(_) => proptest::prop_assert!(!out.is_empty(), "an alert for the peer"),
        }
    }
}
