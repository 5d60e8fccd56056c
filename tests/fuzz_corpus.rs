//! The fuzz targets' invariants on stable, in every test run (`fuzz/checks.rs`, the same
//! functions libFuzzer drives in `fuzz/`):
//!
//! - every input of the committed corpora (`fuzz/corpus/TARGET/`, minimised) and every past
//!   failure (`fuzz/regressions/TARGET/`) is replayed through its target's checks;
//! - generated input that is mostly valid (well-formed frames with the occasional broken one,
//!   request heads with the occasional bad header, deflated payloads with the occasional flipped
//!   byte) goes through the same checks, so the invariants are exercised past the first header
//!   byte, where arbitrary bytes mostly stop.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

use proptest::prelude::*;
use ringws::proto::deflate::Deflater;
use ringws::proto::frame::{OpCode, encode_masked_frame};

/// A fuzz target's checks.
type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 4] = [
    ("handshake", checks::handshake),
    ("frame", checks::frame),
    ("inflate", checks::inflate),
    ("connection", checks::connection),
];

/// The files of `fuzz/DIR/TARGET/` (none if it does not exist).
fn inputs(dir: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(dir)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&path) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_input_and_past_failure_replays_clean() {
    for (target, check) in TARGETS {
        let corpus = inputs("corpus", target);
        assert!(
            corpus.len() >= 20,
            "{target}: a committed corpus of {} inputs",
            corpus.len()
        );
        for (name, bytes) in corpus.iter().chain(&inputs("regressions", target)) {
            let outcome = std::panic::catch_unwind(|| check(bytes));
            assert!(outcome.is_ok(), "{target}: {name} breaks an invariant");
        }
    }
}

// ------------------------------------------------------------------ generated input

/// A client frame for the connection target, mostly well formed.
fn client_frame() -> impl Strategy<Value = Vec<u8>> {
    let opcode = prop_oneof![
        6 => Just(OpCode::Text),
        6 => Just(OpCode::Binary),
        4 => Just(OpCode::Continuation),
        2 => Just(OpCode::Ping),
        2 => Just(OpCode::Pong),
        1 => Just(OpCode::Close),
    ];
    let payload = prop_oneof![
        8 => "\\PC{0,60}".prop_map(String::into_bytes),
        4 => proptest::collection::vec(any::<u8>(), 0..200),
        1 => proptest::collection::vec(any::<u8>(), 2000..2100), // about the frame limit
    ];
    // Mostly nothing broken; sometimes one thing: an RSV bit, no mask, a reserved opcode.
    let damage = prop_oneof![12 => Just(0u8), 1 => Just(1), 1 => Just(2), 1 => Just(3)];
    (opcode, any::<bool>(), payload, any::<[u8; 4]>(), damage).prop_map(
        |(opcode, fin, mut payload, key, damage)| {
            let fin = fin || opcode.is_control();
            if opcode == OpCode::Close && payload.len() >= 2 {
                payload[..2].copy_from_slice(&1000u16.to_be_bytes());
            }
            if opcode.is_control() {
                payload.truncate(125);
            }
            let mut frame = encode_masked_frame(opcode, fin, key, &payload);
            match damage {
                1 => frame[0] |= 0x40,                    // RSV1 unnegotiated
                2 => frame[1] &= 0x7f,                    // unmasked (the key stays as payload)
                3 => frame[0] = (frame[0] & 0xf0) | 0x03, // a reserved opcode
                _ => {}
            }
            frame
        },
    )
}

/// A request head for the handshake target, mostly valid, and the chunking byte it takes.
fn request_head() -> impl Strategy<Value = Vec<u8>> {
    let header = prop_oneof![
        4 => Just("Sec-WebSocket-Protocol: chat, superchat".to_owned()),
        4 => Just("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits".to_owned()),
        3 => Just("Origin: https://example.com".to_owned()),
        2 => "[A-Za-z-]{1,12}: [ -~]{0,40}",
        1 => "[ -~]{0,30}", // a broken line
    ];
    (
        any::<u8>(),
        proptest::collection::vec(1u8..=255, 1..4),
        "/[a-z/?=&]{0,20}",
        proptest::collection::vec(header, 0..6),
        any::<bool>(),
    )
        .prop_map(|(first, sizes, path, extra, upgrade)| {
            let mut head = format!("GET {path} HTTP/1.1\r\nHost: h\r\n");
            if upgrade {
                head.push_str(
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
                );
            }
            for line in extra {
                head.push_str(&line);
                head.push_str("\r\n");
            }
            head.push_str("\r\n");
            // The target's framing: a byte saying how many chunk sizes follow, the sizes, the
            // input.
            let mut input = vec![(first & !3) | (sizes.len() as u8 - 1)];
            input.extend(&sizes);
            input.extend(head.as_bytes());
            input.extend(head.as_bytes()); // a second request on the same connection
            input
        })
}

/// A deflated payload for the inflate target, with its limit, sometimes damaged.
fn deflated() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            "\\PC{0,300}".prop_map(String::into_bytes),
            (any::<u8>(), 0usize..200_000).prop_map(|(b, n)| vec![b; n]), // zip bombs too
        ],
        any::<u16>(),
        proptest::option::weighted(0.2, (any::<usize>(), any::<u8>())),
    )
        .prop_map(|(plain, limit, flip)| {
            let mut packed = Vec::new();
            Deflater::new(6, 15, true).deflate(&plain, &mut packed);
            if let Some((at, with)) = flip {
                if !packed.is_empty() {
                    let at = at % packed.len();
                    packed[at] ^= with | 1;
                }
            }
            let mut input = limit.to_le_bytes().to_vec();
            input.extend(packed);
            input
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mostly_valid_frame_streams_keep_the_connections_invariants(
        step in any::<u8>(),
        frames in proptest::collection::vec(client_frame(), 0..24),
    ) {
        let mut input = vec![step];
        input.extend(frames.concat());
        checks::connection(&input);
    }

    #[test]
    fn mostly_valid_request_heads_keep_the_handshakes_invariants(input in request_head()) {
        checks::handshake(&input);
    }

    #[test]
    fn deflated_payloads_keep_the_inflaters_invariants(input in deflated()) {
        checks::inflate(&input);
    }

    #[test]
    fn any_bytes_keep_the_frame_headers_invariants(
        input in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        checks::frame(&input);
    }
}
