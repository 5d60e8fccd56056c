//! The chat backend through the real server: rooms spanning both workers, the JSON protocol,
//! refusals, the pages and metrics on the same port, origin and token checks.

mod support;

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

use ringws::app::chat::{Chat, ChatConfig};
use ringws::proto::frame::OpCode;
use ringws::proto::handshake::OriginPolicy;
use serde_json::Value;
use support::chat::{event, event_skipping_presence, member, send};
use support::{Client, Got, TestServer, config, upgrade_request};

fn start(chat: ChatConfig) -> (TestServer, Chat) {
    let chat = Chat::new(chat);
    // Attached before the start, as the binary does: the first request sees everything.
    let server = TestServer::start_with(config(), chat.clone(), |bound| {
        chat.attach(bound.publisher(), bound.metrics())
    });
    (server, chat)
}

fn join(c: &mut Client, room: &str) -> Value {
    send(c, serde_json::json!({"op": "join", "room": room}));
    let joined = event_skipping_presence(c);
    assert_eq!(joined["op"], "joined", "{joined}");
    joined
}

#[test]
fn a_message_reaches_every_member_on_both_workers_with_room_sender_time_and_sequence() {
    let (server, _) = start(ChatConfig::default());
    let mut members = Vec::new();
    let mut workers = HashSet::new();
    while members.len() < 4 || workers.len() < 2 {
        assert!(members.len() < 200, "SO_REUSEPORT never chose worker 1");
        let (mut c, id) = member(&server);
        workers.insert(id.split('.').next().unwrap().to_owned());
        let joined = join(&mut c, "lobby");
        assert_eq!(joined["online"], members.len() as i64 + 1);
        members.push((c, id));
    }
    let (mut outsider, _) = member(&server);
    join(&mut outsider, "elsewhere");
    let sender_id = members[0].1.clone();
    let online = members.len() as i64;
    for i in 1..=3 {
        send(
            &mut members[0].0,
            serde_json::json!({"op": "send", "room": "lobby", "text": format!("hi {i}")}),
        );
    }
    for (c, _) in &mut members {
        for i in 1..=3u64 {
            let m = event_skipping_presence(c);
            assert_eq!(m["op"], "message", "{m}");
            assert_eq!(m["room"], "lobby");
            assert_eq!(m["from"], sender_id.as_str());
            assert_eq!(m["text"], format!("hi {i}"));
            assert_eq!(m["seq"], i, "sequence per room, in order per sender");
            assert!(m["ts"].as_u64().unwrap() > 1_700_000_000_000, "{m}");
            assert_eq!(m["online"], online);
        }
    }
    // The other room heard nothing: its next event answers its own request.
    send(
        &mut outsider,
        serde_json::json!({"op": "leave", "room": "elsewhere"}),
    );
    assert_eq!(event_skipping_presence(&mut outsider)["op"], "left");
}

#[test]
fn names_presence_and_leaving() {
    let (server, chat) = start(ChatConfig::default());
    let (mut a, _) = member(&server);
    let (mut b, _) = member(&server);
    send(&mut a, serde_json::json!({"op": "nick", "name": "alice"}));
    join(&mut a, "r");
    assert_eq!(join(&mut b, "r")["online"], 2);
    send(
        &mut a,
        serde_json::json!({"op": "send", "room": "r", "text": "x"}),
    );
    assert_eq!(event_skipping_presence(&mut b)["name"], "alice");
    send(&mut b, serde_json::json!({"op": "leave", "room": "r"}));
    let left = event_skipping_presence(&mut b);
    assert_eq!(
        (left["op"].as_str(), left["online"].as_i64()),
        (Some("left"), Some(1))
    );
    drop(a);
    server.wait_counters("a closed", |c| c.open == 1);
    let start = std::time::Instant::now();
    while !chat.rooms().is_empty() {
        assert!(
            start.elapsed() < support::patience(),
            "the room outlived its members"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Leaving a room one is not in is refused.
    send(&mut b, serde_json::json!({"op": "leave", "room": "r"}));
    assert_eq!(event(&mut b)["code"], "not_joined");
}

#[test]
fn the_last_presence_change_is_always_told() {
    // Three members; two leave within the room's one-update-a-second limit: the one left
    // still learns that it is alone (the suppressed update is sent when the limit allows).
    let (server, _chat) = start(ChatConfig::default());
    let (mut a, _) = member(&server);
    let (mut b, _) = member(&server);
    let (mut c, _) = member(&server);
    for m in [&mut a, &mut b, &mut c] {
        join(m, "p");
    }
    drop(a);
    drop(b);
    server.wait_counters("two closed", |s| s.open == 1);
    let start = std::time::Instant::now();
    loop {
        let e = event(&mut c);
        assert_eq!(e["op"], "presence", "{e}");
        if e["online"] == 1 {
            break;
        }
        assert!(
            start.elapsed() < support::patience(),
            "presence stuck at {}",
            e["online"]
        );
    }
}

#[test]
fn bad_requests_are_answered_with_error_codes_then_closed_with_1008() {
    let cfg = ChatConfig {
        max_rooms: 2,
        max_errors: 9,
        ..ChatConfig::default()
    };
    let (server, _) = start(cfg);
    let (mut c, _) = member(&server);
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "bad_json"),
        (r#"{"op":"fly"}"#.into(), "unknown_op"),
        (r#"{"op":"join"}"#.into(), "missing_field"),
        (r#"{"op":"join","room":"a b"}"#.into(), "bad_room"),
        (
            r#"{"op":"send","room":"nowhere","text":"x"}"#.into(),
            "not_joined",
        ),
        (
            format!(
                r#"{{"op":"send","room":"a","text":"{}"}}"#,
                "x".repeat(5000)
            ),
            "too_long",
        ),
    ];
    for (request, code) in &cases {
        c.send_text(request);
        let e = event(&mut c);
        assert_eq!(
            (e["op"].as_str(), e["code"].as_str()),
            (Some("error"), Some(*code)),
            "{request}"
        );
    }
    join(&mut c, "a");
    join(&mut c, "b");
    send(&mut c, serde_json::json!({"op": "join", "room": "c"}));
    let e = event(&mut c);
    assert_eq!(
        (e["code"].as_str(), e["room"].as_str()),
        (Some("too_many_rooms"), Some("c"))
    );
    c.send(OpCode::Binary, true, b"\x00\x01");
    assert_eq!(event(&mut c)["code"], "binary");
    // Eight refusals so far; the tenth is past the limit of nine: close 1008.
    c.send_text("{");
    assert_eq!(event(&mut c)["code"], "bad_json");
    c.send_text("{");
    assert_eq!(event(&mut c)["code"], "bad_json");
    match c.next() {
        Got::Close(Some(code), _) => assert_eq!(code, 1008),
        other => panic!("expected close 1008, got {other:?}"),
    }
}

fn http_get(server: &TestServer, path: &str) -> String {
    http(server, "GET", path)
}

fn http(server: &TestServer, method: &str, path: &str) -> String {
    let mut c = Client::raw(server.addr);
    c.stream
        .write_all(format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    String::from_utf8_lossy(&c.read_to_end()).into_owned()
}

#[test]
fn head_answers_carry_no_body_and_other_methods_are_told_what_is_allowed() {
    let (server, _) = start(ChatConfig::default());
    for path in ["/healthz", "/", "/ringws.js", "/readyz"] {
        let get = http(&server, "GET", path);
        let head = http(&server, "HEAD", path);
        let (get_head, body) = get.split_once("\r\n\r\n").unwrap();
        assert!(!body.is_empty(), "{path}");
        assert_eq!(
            head,
            format!("{get_head}\r\n\r\n"),
            "{path}: the same head, no body"
        );
        assert!(
            head.contains(&format!("Content-Length: {}\r\n", body.len())),
            "{path}: the length a GET would have"
        );
    }
    let post = http(&server, "POST", "/healthz");
    assert!(
        post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{post}"
    );
    assert!(post.contains("\r\nAllow: GET, HEAD\r\n"), "{post}");
    let icon = http_get(&server, "/favicon.ico");
    assert!(icon.starts_with("HTTP/1.1 204 No Content\r\n"), "{icon}");
    let ready = http_get(&server, "/readyz");
    assert!(
        ready.starts_with("HTTP/1.1 200 OK") && ready.ends_with("ready\n"),
        "{ready}"
    );
    let missing = http_get(&server, "/nope");
    assert!(
        missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{missing}"
    );
}

#[test]
fn the_page_the_client_library_health_and_metrics_share_the_port() {
    let (server, _) = start(ChatConfig::default());
    let page = http_get(&server, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("text/html") && page.contains("ringws chat"));
    let js = http_get(&server, "/ringws.js");
    assert!(js.contains("text/javascript") && js.contains("class RingwsChat"));
    assert!(http_get(&server, "/healthz").ends_with("ok\n"));
    let (mut c, _) = member(&server);
    join(&mut c, "m");
    let metrics = http_get(&server, "/metrics");
    assert!(metrics.contains("# TYPE ringws_open gauge"), "{metrics}");
    assert!(metrics.contains("ringws_open{worker=\"1\"}"), "{metrics}");
    assert!(metrics.contains("ringws_chat_rooms 1"), "{metrics}");
    assert!(http_get(&server, "/nope").starts_with("HTTP/1.1 404"));
}

/// The sum of a family's `_count` lines over the workers.
fn histogram_count(metrics: &str, family: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("ringws_{family}_count{{")))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn metrics_have_build_info_and_latency_histograms_that_promtool_accepts() {
    let (server, _) = start(ChatConfig::default());
    let before = http_get(&server, "/metrics");
    let upgrades = 3;
    let mut members: Vec<_> = (0..upgrades).map(|_| member(&server).0).collect();
    for (i, c) in members.iter_mut().enumerate() {
        join(c, &format!("r{i}"));
    }
    let body = |page: &str| page.split_once("\r\n\r\n").unwrap().1.to_owned();
    let after = http_get(&server, "/metrics");
    let (before, after) = (body(&before), body(&after));
    // Each upgrade is one handshake measured; the loop worked between the two scrapes.
    assert_eq!(
        histogram_count(&after, "handshake_duration_seconds")
            - histogram_count(&before, "handshake_duration_seconds"),
        upgrades
    );
    assert!(
        histogram_count(&after, "loop_busy_seconds")
            > histogram_count(&before, "loop_busy_seconds"),
        "{after}"
    );
    assert!(
        after.contains(&format!(
            "ringws_build_info{{version=\"{}\",commit=\"",
            env!("CARGO_PKG_VERSION")
        )),
        "{after}"
    );
    // Prometheus' own linter on the live scrape (Debian's `prometheus` package; the test
    // command installs it).
    // Looked up on PATH first: under qemu-user a spawn of a missing program is not reported
    // as an error (the chroot of the aarch64 run has no promtool).
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("promtool"))
            .find(|p| p.is_file())
    });
    let Some(promtool) = found else {
        assert!(
            std::env::var_os("RINGWS_REQUIRE_PROMTOOL").is_none(),
            "no promtool on PATH, and the test command requires it"
        );
        support::skip(
            "metrics_have_build_info_and_latency_histograms_that_promtool_accepts",
            "no promtool on PATH (apt install prometheus)",
        );
        return;
    };
    let mut promtool = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(after.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn origin_allow_list_and_token_hook_refuse_at_the_upgrade() {
    let cfg = ChatConfig {
        origins: OriginPolicy::allow_list(["http://good.example"]),
        auth: Some(Arc::new(
            |req: &ringws::proto::handshake::UpgradeRequest<'_>| {
                if req.path().contains("token=s3cret") {
                    Ok(Some("tokened".to_owned()))
                } else {
                    Err((401, "a valid token is required"))
                }
            },
        )),
        ..ChatConfig::default()
    };
    let (server, _) = start(cfg);
    let request = |path: &str, origin: &str| {
        let mut c = Client::raw(server.addr);
        let head =
            upgrade_request(path).replace("\r\n\r\n", &format!("\r\nOrigin: {origin}\r\n\r\n"));
        c.send_raw(head.as_bytes());
        let (status, _, _) = c.read_http_head();
        status
    };
    assert_eq!(request("/ws?token=s3cret", "http://evil.example"), 403);
    assert_eq!(request("/ws", "http://good.example"), 401);
    assert_eq!(request("/ws?token=s3cret", "http://good.example"), 101);
}
