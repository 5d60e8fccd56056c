//! The backend API on its own listener: the key, publish and broadcast into rooms (members get
//! ordinary messages, in the room's order), history, disconnect, presence, info, and bad
//! requests answered with 4xx and a code.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use ringws::app::chat::api::{self, ApiConfig, ApiServer};
use ringws::app::chat::identity::Tokens;
use ringws::app::chat::rules::{Namespace, Rules};
use ringws::app::chat::{Chat, ChatConfig};
use serde_json::json;
use support::api::{call, call_raw};
use support::chat::{event, event_skipping_presence, send};
use support::{Client, TestServer, config, patience};

const KEY: &str = "the-api-key";
const SECRET: &[u8] = b"the api tests' secret, 32 bytes.";

fn start() -> (TestServer, Chat, ApiServer) {
    let quiet = Namespace {
        prefix: "live-".into(),
        history: false,
        presence: false,
        ..Namespace::default()
    };
    let chat = Chat::new(ChatConfig {
        tokens: Some(Arc::new(Tokens::hs256(SECRET).unwrap())),
        rules: Rules::new(vec![quiet]).unwrap(),
        ..ChatConfig::default()
    });
    let server = TestServer::start_with(config(), chat.clone(), |bound| {
        chat.attach(bound.publisher(), bound.metrics())
    });
    let api = api::serve(
        chat.clone(),
        ApiConfig::new("127.0.0.1:0".parse().unwrap(), KEY),
    )
    .unwrap();
    (server, chat, api)
}

fn token(user: &str) -> String {
    support::api::token(SECRET, user, json!({}))
}

fn user(server: &TestServer, user: &str) -> Client {
    let (mut c, _) = Client::connect_with(
        server.addr,
        &format!("Authorization: Bearer {}\r\n", token(user)),
    );
    assert_eq!(event(&mut c)["op"], "welcome");
    c
}

fn member(server: &TestServer, name: &str, room: &str) -> Client {
    let mut c = user(server, name);
    send(&mut c, json!({"op": "join", "room": room}));
    assert_eq!(event_skipping_presence(&mut c)["op"], "joined");
    c
}

#[test]
fn every_request_needs_the_key_and_a_known_endpoint() {
    let (_server, _chat, api) = start();
    let addr = api.local_addr();
    for key in [None, Some("wrong"), Some("the-api-ke")] {
        let (status, answer) = call(addr, "GET", "/api/info", key, "");
        assert_eq!(status, 401, "{key:?}");
        assert_eq!(answer["error"]["code"], "unauthorized");
    }
    let (status, answer) = call(addr, "GET", "/api/nothing", Some(KEY), "");
    assert_eq!(
        (status, &answer["error"]["code"]),
        (404, &json!("not_found"))
    );
    let (status, head, _) = call_raw(addr, "GET", "/api/publish", Some(KEY), "");
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET, POST"), "{head}");
    let (status, info) = call(addr, "GET", "/api/info", Some(KEY), "");
    assert_eq!(status, 200);
    assert_eq!(info["workers"], 2);
}

#[test]
fn a_publication_reaches_the_members_in_the_rooms_order_and_its_history() {
    let (server, _chat, api) = start();
    let addr = api.local_addr();
    let mut members = vec![member(&server, "a", "news"), member(&server, "b", "news")];
    send(
        &mut members[0],
        json!({"op": "send", "room": "news", "text": "first"}),
    );
    for m in &mut members {
        assert_eq!(event_skipping_presence(m)["text"], "first");
    }
    let (status, answer) = call(
        addr,
        "POST",
        "/api/publish",
        Some(KEY),
        r#"{"room":"news","text":"from the backend"}"#,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"room": "news", "offset": 2}));
    let (status, answer) = call(
        addr,
        "POST",
        "/api/publish",
        Some(KEY),
        r#"{"room":"news","data":{"kind":"alert","level":3}}"#,
    );
    assert_eq!((status, &answer["offset"]), (200, &json!(3)));
    for m in &mut members {
        let e = event_skipping_presence(m);
        assert_eq!(
            (&e["op"], &e["from"], &e["text"], &e["offset"]),
            (
                &json!("message"),
                &json!("api"),
                &json!("from the backend"),
                &json!(2)
            ),
            "{e}"
        );
        assert!(e.get("id").is_none(), "the API's key is not shown: {e}");
        let e = event_skipping_presence(m);
        assert_eq!(
            (&e["offset"], &e["data"]["kind"]),
            (&json!(3), &json!("alert"))
        );
    }
    // The room's history holds them, in order.
    let (status, page) = call(
        addr,
        "GET",
        "/api/history?room=news&limit=10",
        Some(KEY),
        "",
    );
    assert_eq!(status, 200);
    let offsets: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [1, 2, 3]);
    let (_, page) = call(
        addr,
        "GET",
        "/api/history?room=news&limit=1&before=3",
        Some(KEY),
        "",
    );
    assert_eq!(page["messages"][0]["text"], "from the backend");
    // A broadcast: one message in each room.
    let mut other = member(&server, "c", "sports");
    let (status, answer) = call(
        addr,
        "POST",
        "/api/broadcast",
        Some(KEY),
        r#"{"rooms":["news","sports"],"text":"to all"}"#,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["offsets"], json!({"news": 4, "sports": 1}));
    assert_eq!(event_skipping_presence(&mut other)["text"], "to all");
    assert_eq!(event_skipping_presence(&mut members[1])["offset"], 4);
    // Presence counts the members here.
    let (_, presence) = call(addr, "GET", "/api/presence?room=news", Some(KEY), "");
    assert_eq!(
        presence,
        json!({"room": "news", "online": 2, "members": [
            {"user": "a", "connections": 1}, {"user": "b", "connections": 1}
        ]})
    );
}

#[test]
fn disconnect_closes_every_connection_of_the_user_with_4002() {
    let (server, chat, api) = start();
    let mut alice = [user(&server, "alice"), user(&server, "alice")];
    let mut bob = member(&server, "bob", "r");
    assert_eq!(chat.users().of("alice").len(), 2);
    let (status, answer) = call(
        api.local_addr(),
        "POST",
        "/api/disconnect",
        Some(KEY),
        r#"{"user":"alice"}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(answer, json!({"user": "alice", "disconnected": 2}));
    for c in &mut alice {
        c.expect_close(4002);
    }
    // Bob is untouched.
    send(
        &mut bob,
        json!({"op": "send", "room": "r", "text": "still"}),
    );
    assert_eq!(event_skipping_presence(&mut bob)["text"], "still");
    support::wait_until("alice's connections forgotten", || {
        chat.users().of("alice").is_empty()
    });
    let (_, answer) = call(
        api.local_addr(),
        "POST",
        "/api/disconnect",
        Some(KEY),
        r#"{"user":"alice"}"#,
    );
    assert_eq!(answer["disconnected"], 0);
}

#[test]
fn bad_requests_get_4xx_and_a_code() {
    let (_server, _chat, api) = start();
    let addr = api.local_addr();
    let long = format!(r#"{{"room":"r","text":"{}"}}"#, "x".repeat(5000));
    let cases = [
        ("/api/publish", "not json", 400, "bad_json"),
        ("/api/publish", r#"{"room":"r"}"#, 400, "missing_field"),
        ("/api/publish", r#"{"text":"x"}"#, 400, "missing_field"),
        (
            "/api/publish",
            r#"{"room":"a b","text":"x"}"#,
            400,
            "bad_room",
        ),
        ("/api/publish", r#"{"room":"r","text":5}"#, 400, "bad_field"),
        (
            "/api/publish",
            r#"{"room":"r","text":"x","who":1}"#,
            400,
            "bad_field",
        ),
        ("/api/publish", &long, 400, "too_long"),
        ("/api/broadcast", r#"{"text":"x"}"#, 400, "missing_field"),
        ("/api/disconnect", r#"{}"#, 400, "bad_field"),
    ];
    for (path, body, status, code) in cases {
        let (got, answer) = call(addr, "POST", path, Some(KEY), body);
        assert_eq!(
            (got, &answer["error"]["code"]),
            (status, &json!(code)),
            "{body}"
        );
    }
    let huge = "x".repeat((1 << 20) + 1);
    let (status, answer) = call(addr, "POST", "/api/publish", Some(KEY), &huge);
    assert_eq!(
        (status, &answer["error"]["code"]),
        (413, &json!("too_large"))
    );
    let gets = [
        ("/api/history?room=r&limit=x", 400, "bad_field"),
        // A namespace without history or presence.
        ("/api/history?room=live-1", 409, "no_history"),
        ("/api/presence?room=live-1", 409, "no_presence"),
    ];
    for (path, status, code) in gets {
        let (got, answer) = call(addr, "GET", path, Some(KEY), "");
        assert_eq!(
            (got, &answer["error"]["code"]),
            (status, &json!(code)),
            "{path}"
        );
    }
    // Publishing there works (offsets, no history).
    let (status, answer) = call(
        addr,
        "POST",
        "/api/publish",
        Some(KEY),
        r#"{"room":"live-1","text":"x"}"#,
    );
    assert_eq!((status, &answer["offset"]), (200, &json!(1)), "{answer}");
}

#[test]
fn a_client_that_expects_100_continue_gets_it_before_sending_the_body() {
    let (server, _chat, api) = start();
    let mut c = member(&server, "a", "news");
    let mut s = TcpStream::connect(api.local_addr()).unwrap();
    s.set_read_timeout(Some(patience())).unwrap();
    let body = format!(r#"{{"room":"news","text":"{}"}}"#, "x".repeat(2000));
    write!(
        s,
        "POST /api/publish HTTP/1.1\r\nHost: api\r\nAuthorization: apikey {KEY}\r\n\
         Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(body.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert_eq!(event_skipping_presence(&mut c)["from"], "api");
}
