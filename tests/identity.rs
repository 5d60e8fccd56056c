//! Identity and room rules on a running chat server: JWT connection tokens at the upgrade,
//! namespaces (who may join and send), personal rooms and direct messages, token expiry and
//! refresh, per-connection rate limits.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use ringws::app::chat::identity::Tokens;
use ringws::app::chat::rate::Rate;
use ringws::app::chat::rules::{JoinRule, Namespace, Rules, SendRule};
use ringws::app::chat::{Chat, ChatConfig};
use serde_json::{Value, json};
use support::chat::{event, event_skipping_presence, send};
use support::{Client, Got, TestServer, config, upgrade_request};

const SECRET: &[u8] = b"the tests' secret, 32 bytes long";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn token(user: &str) -> String {
    sign(json!({"sub": user, "exp": now() + 600, "name": user.to_uppercase()}))
}

fn chat_config() -> ChatConfig {
    let mut tokens = Tokens::hs256(SECRET).unwrap();
    tokens.leeway = 0;
    let ns = |prefix: &str, join, send, max_text| Namespace {
        prefix: prefix.into(),
        join,
        send,
        max_text,
        ..Namespace::default()
    };
    ChatConfig {
        tokens: Some(Arc::new(tokens)),
        rules: Rules::new(vec![
            ns("team-", JoinRule::Claim, SendRule::Members, None),
            ns("vip-", JoinRule::Signed, SendRule::Members, None),
            ns("news:", JoinRule::Anyone, SendRule::Nobody, None),
            ns("short-", JoinRule::Token, SendRule::Members, Some(5)),
            Namespace {
                prefix: "club-".into(),
                join_leave: true,
                ..Namespace::default()
            },
            Namespace {
                prefix: "live-".into(),
                history: false,
                presence: false,
                ..Namespace::default()
            },
        ])
        .unwrap(),
        ..ChatConfig::default()
    }
}

fn start(cfg: ChatConfig) -> TestServer {
    start_on(config(), cfg)
}

fn start_on(server: ringws::server::ServerConfig, cfg: ChatConfig) -> TestServer {
    let chat = Chat::new(cfg);
    TestServer::start_with(server, chat.clone(), |bound| {
        chat.attach(bound.publisher(), bound.metrics())
    })
}

/// The status, and head and body, of an upgrade to `path` with `extra` header lines.
fn upgrade(server: &TestServer, path: &str, extra: &str) -> (u16, String) {
    let mut c = Client::raw(server.addr);
    let head = upgrade_request(path).replacen("\r\n\r\n", &format!("\r\n{extra}\r\n"), 1);
    c.send_raw(head.as_bytes());
    let (status, head, mut rest) = c.read_http_head();
    if status != 101 {
        rest.extend(c.read_to_end());
    }
    (status, head + &String::from_utf8_lossy(&rest))
}

/// A connection with `token`, past its welcome (checked to name `user`).
fn connect(server: &TestServer, token: &str, user: &str) -> (Client, String) {
    let (mut c, _) =
        Client::connect_with(server.addr, &format!("Authorization: Bearer {token}\r\n"));
    let welcome = event(&mut c);
    assert_eq!(
        (&welcome["op"], &welcome["user"]),
        (&json!("welcome"), &json!(user)),
        "{welcome}"
    );
    (c, welcome["id"].as_str().unwrap().to_owned())
}

fn user(server: &TestServer, user: &str) -> Client {
    connect(server, &token(user), user).0
}

/// Sends a request and returns the next answer that is not presence.
fn ask(c: &mut Client, request: Value) -> Value {
    send(c, request);
    event_skipping_presence(c)
}

fn code(answer: &Value) -> &str {
    assert_eq!(answer["op"], "error", "{answer}");
    answer["code"].as_str().unwrap()
}

#[test]
fn tokens_are_checked_at_the_upgrade() {
    let server = start(chat_config());
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let forged_none = format!(
        "{}.{}.",
        b64(json!({"alg": "none"})),
        b64(json!({"sub": "root", "exp": now() + 60}))
    );
    let other_key = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "alice", "exp": now() + 60}),
        &EncodingKey::from_secret(b"not the server's secret, but long"),
    )
    .unwrap();
    let refused = [
        ("no token", "/".to_owned(), "a token is required"),
        (
            "alg none",
            format!("/?token={forged_none}"),
            "token algorithm not accepted",
        ),
        (
            "another key",
            format!("/?token={other_key}"),
            "bad token signature",
        ),
        (
            "expired",
            format!(
                "/?token={}",
                sign(json!({"sub": "alice", "exp": now() - 30}))
            ),
            "token expired",
        ),
        (
            "not yet valid",
            format!(
                "/?token={}",
                sign(json!({"sub": "alice", "exp": now() + 600, "nbf": now() + 300}))
            ),
            "token not yet valid",
        ),
        (
            "no sub",
            format!("/?token={}", sign(json!({"exp": now() + 600}))),
            "bad token claims",
        ),
        (
            "too long",
            format!("/?token={}", "a".repeat(5000)),
            "token too long",
        ),
        (
            "a room token",
            format!(
                "/?token={}",
                sign(json!({"sub": "alice", "exp": now() + 600, "room": "vip-1"}))
            ),
            "a room token is not a connection token",
        ),
    ];
    for (what, path, reason) in refused {
        let (status, head) = upgrade(&server, &path, "");
        assert_eq!(status, 401, "{what}: {head}");
        assert!(head.contains(reason), "{what}: {head}");
    }
    // In the query, or as a bearer header.
    let (status, _) = upgrade(&server, &format!("/?token={}", token("alice")), "");
    assert_eq!(status, 101);
    let (mut c, _) = connect(&server, &token("bob"), "bob");
    // The token's name is the display name.
    let joined = ask(&mut c, json!({"op": "join", "room": "open"}));
    assert_eq!(joined["op"], "joined", "{joined}");
    let message = ask(&mut c, json!({"op": "send", "room": "open", "text": "hi"}));
    assert_eq!(
        (&message["op"], &message["name"]),
        (&json!("message"), &json!("BOB"))
    );
}

#[test]
fn rooms_follow_their_namespace_rules() {
    let server = start(chat_config());
    let alice_token = sign(json!({"sub": "alice", "exp": now() + 600, "rooms": ["team-7:*"]}));
    let (mut alice, _) = connect(&server, &alice_token, "alice");
    let mut bob = user(&server, "bob");
    let join = |c: &mut Client, room: &str, token: Option<&str>| {
        let mut req = json!({"op": "join", "room": room});
        if let Some(token) = token {
            req["token"] = token.into();
        }
        ask(c, req)
    };
    // claim: the token's rooms.
    assert_eq!(join(&mut alice, "team-7:dev", None)["op"], "joined");
    assert_eq!(code(&join(&mut bob, "team-7:dev", None)), "forbidden");
    assert_eq!(code(&join(&mut alice, "team-8:dev", None)), "forbidden");
    // signed: a room token for this user and room.
    let vip = |user: &str, room: &str| sign(json!({"sub": user, "room": room, "exp": now() + 60}));
    assert_eq!(code(&join(&mut alice, "vip-1", None)), "forbidden");
    assert_eq!(
        code(&join(&mut alice, "vip-1", Some(&vip("bob", "vip-1")))),
        "forbidden"
    );
    assert_eq!(
        code(&join(&mut alice, "vip-1", Some(&vip("alice", "vip-2")))),
        "forbidden"
    );
    assert_eq!(
        join(&mut alice, "vip-1", Some(&vip("alice", "vip-1")))["op"],
        "joined"
    );
    // personal rooms: their user's only.
    assert_eq!(join(&mut alice, "user:alice", None)["op"], "joined");
    assert_eq!(code(&join(&mut bob, "user:alice", None)), "forbidden");
    // send = nobody: members read only.
    assert_eq!(join(&mut bob, "news:today", None)["op"], "joined");
    let refused = ask(
        &mut bob,
        json!({"op": "send", "room": "news:today", "text": "x"}),
    );
    assert_eq!(code(&refused), "forbidden");
    // a namespace's own text limit.
    assert_eq!(join(&mut bob, "short-1", None)["op"], "joined");
    let long = ask(
        &mut bob,
        json!({"op": "send", "room": "short-1", "text": "123456"}),
    );
    assert_eq!(code(&long), "too_long");
    let ok = ask(
        &mut bob,
        json!({"op": "send", "room": "short-1", "text": "12345"}),
    );
    assert_eq!(ok["op"], "message", "{ok}");
    // Rooms no namespace names: anyone.
    assert_eq!(join(&mut bob, "lobby", None)["op"], "joined");
}

#[test]
fn a_direct_message_reaches_every_connection_of_its_user() {
    let server = start(chat_config());
    // Alice on both workers (the kernel spreads connections over the listeners).
    let mut alices = Vec::new();
    let mut workers = std::collections::HashSet::new();
    while workers.len() < 2 || alices.len() < 2 {
        assert!(
            alices.len() < 200,
            "SO_REUSEPORT never chose the other worker"
        );
        let (mut c, id) = connect(&server, &token("alice"), "alice");
        workers.insert(id.split('.').next().unwrap().to_owned());
        let joined = ask(&mut c, json!({"op": "join", "room": "user:alice"}));
        assert_eq!(joined["op"], "joined", "{joined}");
        alices.push(c);
    }
    let mut bob = user(&server, "bob");
    // Bob writes to Alice without joining her room; he is told it went out.
    let sent = ask(
        &mut bob,
        json!({"op": "send", "room": "user:alice", "text": "psst", "id": "dm-1"}),
    );
    assert_eq!(
        (&sent["op"], &sent["room"], &sent["id"]),
        (&json!("sent"), &json!("user:alice"), &json!("dm-1")),
        "{sent}"
    );
    let offset = sent["offset"].as_u64().expect("an offset");
    for alice in &mut alices {
        let m = event_skipping_presence(alice);
        assert_eq!(m["user"], "bob", "the sender's user id, to answer: {m}");
        assert_eq!(
            (&m["op"], &m["text"], &m["name"], &m["offset"]),
            (
                &json!("message"),
                &json!("psst"),
                &json!("BOB"),
                &json!(offset)
            ),
            "{m}"
        );
    }
    // Carol, who has no room with Alice, is told nothing; a second message keeps the order.
    let sent = ask(
        &mut bob,
        json!({"op": "send", "room": "user:alice", "text": "second"}),
    );
    assert_eq!(sent["offset"].as_u64(), Some(offset + 1));
    for alice in &mut alices {
        assert_eq!(event_skipping_presence(alice)["text"], "second");
    }
}

#[test]
fn an_expiring_token_is_told_then_the_connection_closed_with_4001() {
    let server = start(chat_config());
    let exp = now() + 2;
    let (mut c, _) = connect(&server, &sign(json!({"sub": "eve", "exp": exp})), "eve");
    // Within the notice (60 s) at once: told, then closed at expiry.
    let told = event(&mut c);
    assert_eq!(
        (&told["op"], &told["exp"]),
        (&json!("expiring"), &json!(exp))
    );
    match c.next() {
        Got::Close(Some(code), reason) => {
            assert_eq!((code, reason.as_str()), (4001, "token expired"));
            assert!(now() >= exp, "closed before its expiry");
        }
        other => panic!("expected close 4001, got {other:?}"),
    }
}

#[test]
fn a_refreshed_token_keeps_the_connection() {
    let server = start(ChatConfig {
        expiry_notice: Duration::from_secs(1),
        ..chat_config()
    });
    let exp = now() + 2;
    let (mut c, _) = connect(&server, &sign(json!({"sub": "eve", "exp": exp})), "eve");
    // Another user's token, or an expired one, is refused; the connection stays.
    let other = ask(&mut c, json!({"op": "refresh", "token": token("mallory")}));
    assert_eq!(code(&other), "bad_token");
    let stale = sign(json!({"sub": "eve", "exp": now() - 10}));
    assert_eq!(
        code(&ask(&mut c, json!({"op": "refresh", "token": stale}))),
        "bad_token"
    );
    assert_eq!(event(&mut c)["op"], "expiring");
    let later = exp + 2;
    let refreshed = ask(
        &mut c,
        json!({"op": "refresh", "token": sign(json!({"sub": "eve", "exp": later}))}),
    );
    assert_eq!(
        (&refreshed["op"], &refreshed["exp"]),
        (&json!("refreshed"), &json!(later))
    );
    // The new token's notice comes a second before it expires: after the first token's
    // expiry, which therefore passed without closing the connection.
    let told = event(&mut c);
    assert_eq!(
        (&told["op"], &told["exp"]),
        (&json!("expiring"), &json!(later))
    );
    assert!(now() >= exp, "told before the first token expired");
    assert_eq!(
        ask(&mut c, json!({"op": "join", "room": "r"}))["op"],
        "joined"
    );
    c.expect_close(4001);
}

#[test]
fn a_refreshed_token_with_fewer_rooms_leaves_the_rooms_it_no_longer_allows() {
    let server = start(chat_config());
    let with = |rooms: Value| sign(json!({"sub": "tom", "exp": now() + 600, "rooms": rooms}));
    let (mut c, _) = connect(&server, &with(json!(["team-1", "team-2"])), "tom");
    for room in ["team-1", "team-2", "lobby"] {
        assert_eq!(
            ask(&mut c, json!({"op": "join", "room": room}))["op"],
            "joined"
        );
    }
    let refreshed = ask(
        &mut c,
        json!({"op": "refresh", "token": with(json!(["team-1"]))}),
    );
    assert_eq!(refreshed["op"], "refreshed", "{refreshed}");
    // Told why, then left; the other rooms (a claim that still matches, no rule) kept.
    let why = event_skipping_presence(&mut c);
    assert_eq!((code(&why), &why["room"]), ("forbidden", &json!("team-2")));
    let left = event_skipping_presence(&mut c);
    assert_eq!(
        (&left["op"], &left["room"]),
        (&json!("left"), &json!("team-2"))
    );
    for room in ["team-1", "lobby"] {
        let echo = ask(&mut c, json!({"op": "send", "room": room, "text": "still"}));
        assert_eq!(
            (&echo["op"], &echo["room"]),
            (&json!("message"), &json!(room))
        );
    }
    let refused = ask(&mut c, json!({"op": "send", "room": "team-2", "text": "x"}));
    assert_eq!(code(&refused), "not_joined");
}

#[test]
fn rate_limits_refuse_the_excess_refill_and_close_persistent_abuse() {
    let mut server_cfg = config();
    server_cfg.ping_interval = Some(Duration::from_millis(100));
    let server = start_on(
        server_cfg,
        ChatConfig {
            send_rate: Rate {
                per_second: 20,
                burst: 5,
            },
            max_errors: 8,
            error_decay: Duration::from_secs(60),
            ..chat_config()
        },
    );
    let mut c = user(&server, "bob");
    assert_eq!(
        ask(&mut c, json!({"op": "join", "room": "r"}))["op"],
        "joined"
    );
    let mut sent = 0;
    let first = loop {
        let answer = ask(&mut c, json!({"op": "send", "room": "r", "text": "x"}));
        if answer["op"] != "message" {
            break answer;
        }
        sent += 1;
        assert!(sent <= 20, "never limited");
    };
    assert_eq!(code(&first), "rate_limited");
    assert!(sent >= 5, "the burst of 5 at least: {sent}");
    // Tokens come back (20 a second): once the server has heard nothing for 100 ms it
    // pings (an event, not a sleep), and by then two tokens have come back.
    match c.next() {
        Got::Ping(_) => {}
        other => panic!("expected the server's ping, got {other:?}"),
    }
    let answer = ask(&mut c, json!({"op": "send", "room": "r", "text": "y"}));
    assert_eq!(answer["op"], "message", "{answer}");
    // A flood: refused, then closed with 1008 once refusals pass max_errors.
    for _ in 0..40 {
        send(&mut c, json!({"op": "send", "room": "r", "text": "flood"}));
    }
    loop {
        match c.next() {
            Got::Text(_) | Got::Ping(_) => continue,
            Got::Close(Some(code), _) => {
                assert_eq!(code, 1008);
                break;
            }
            other => panic!("expected close 1008, got {other:?}"),
        }
    }
}

#[test]
fn connections_per_client_address_are_limited_behind_a_trusted_proxy() {
    let server = start(ChatConfig {
        max_conns_per_ip: 2,
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..chat_config()
    });
    let from = |client: &str| {
        format!(
            "Authorization: Bearer {}\r\nX-Forwarded-For: 6.6.6.6, {client}\r\n",
            token("u")
        )
    };
    let (mut first, _) = Client::connect_with(server.addr, &from("198.51.100.7"));
    let (_second, _) = Client::connect_with(server.addr, &from("198.51.100.7"));
    let (status, head) = upgrade(&server, "/", &from("198.51.100.7"));
    assert_eq!(status, 429, "{head}");
    assert!(
        head.contains("too many connections from this address"),
        "{head}"
    );
    // Another client behind the same proxy; the leftmost entry (the client's own claim) is
    // not what counts.
    let (_other, _) = Client::connect_with(server.addr, &from("198.51.100.8"));
    // One closes: its place is free again once the server has seen it go.
    assert_eq!(event(&mut first)["op"], "welcome");
    first.send_close(1000, "bye");
    first.expect_close(1000);
    let deadline = std::time::Instant::now() + support::patience();
    loop {
        let (status, _) = upgrade(&server, "/", &from("198.51.100.7"));
        if status == 101 {
            break;
        }
        assert_eq!(status, 429);
        assert!(
            std::time::Instant::now() < deadline,
            "the place was never freed"
        );
        std::thread::yield_now();
    }
}

#[test]
fn presence_lists_members_and_join_leave_events_follow_the_namespace() {
    let server = start(chat_config());
    // The answer is a presence event with the list (count updates have none).
    let ask = |c: &mut Client, request: Value| {
        send(c, request);
        loop {
            let e = event(c);
            if e["op"] != "presence" || e.get("members").is_some() {
                return e;
            }
        }
    };
    let join = |c: &mut Client, room: &str| {
        let joined = ask(c, json!({"op": "join", "room": room}));
        assert_eq!(joined["op"], "joined", "{joined}");
    };
    let mut bob = user(&server, "bob");
    join(&mut bob, "club-1");
    let mut alice = [user(&server, "alice"), user(&server, "alice")];
    join(&mut alice[0], "club-1");
    // Alice's first connection is announced; her second is not (she was in already).
    let e = event_skipping_presence(&mut bob);
    assert_eq!(
        (&e["op"], &e["user"], &e["name"]),
        (&json!("member_joined"), &json!("alice"), &json!("ALICE")),
        "{e}"
    );
    join(&mut alice[1], "club-1");
    let list = ask(&mut bob, json!({"op": "presence", "room": "club-1"}));
    assert_eq!(list["op"], "presence", "{list}");
    assert_eq!(
        list["members"],
        json!([
            {"user": "alice", "name": "ALICE", "connections": 2},
            {"user": "bob", "name": "BOB", "connections": 1}
        ])
    );
    assert_eq!(list["online"], 3);
    // One of Alice's connections leaves: she is still in. The other closes: she left.
    let left = ask(&mut alice[0], json!({"op": "leave", "room": "club-1"}));
    assert_eq!(left["op"], "left");
    alice[1].send_close(1000, "bye");
    let e = event_skipping_presence(&mut bob);
    assert_eq!(
        (&e["op"], &e["user"]),
        (&json!("member_left"), &json!("alice")),
        "{e}"
    );
    let list = ask(&mut bob, json!({"op": "presence", "room": "club-1"}));
    assert_eq!(
        list["members"],
        json!([{"user": "bob", "name": "BOB", "connections": 1}])
    );
    // Elsewhere (no join-leave), joins are not announced; the list still answers; a room not
    // joined is refused.
    join(&mut bob, "lobby");
    let mut carol = user(&server, "carol");
    join(&mut carol, "lobby");
    send(
        &mut carol,
        json!({"op": "send", "room": "lobby", "text": "hi"}),
    );
    assert_eq!(event_skipping_presence(&mut bob)["op"], "message");
    assert_eq!(
        event_skipping_presence(&mut carol)["op"],
        "message",
        "her own copy"
    );
    let list = ask(&mut carol, json!({"op": "presence", "room": "lobby"}));
    assert_eq!(list["members"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        code(&ask(
            &mut carol,
            json!({"op": "presence", "room": "club-1"})
        )),
        "not_joined"
    );
}

#[test]
fn a_namespace_without_history_or_presence_keeps_neither_but_keeps_the_order() {
    let server = start(chat_config());
    let join = |c: &mut Client, room: &str, since: Option<(&str, u64)>| {
        let mut request = json!({"op": "join", "room": room});
        if let Some((epoch, offset)) = since {
            request["since"] = json!({"epoch": epoch, "offset": offset});
        }
        let joined = ask(c, request);
        assert_eq!(joined["op"], "joined", "{joined}");
        joined
    };
    let (mut alice, mut bob) = (user(&server, "alice"), user(&server, "bob"));
    // "lobby" (presence on) beside "live-1" (off): Bob's joins, live-1's first, then a
    // message in each. Alice is told of his join where presence is on only.
    join(&mut alice, "live-1", None);
    join(&mut alice, "lobby", None);
    join(&mut bob, "live-1", None);
    join(&mut bob, "lobby", None);
    for (room, text) in [("live-1", "one"), ("lobby", "hi"), ("live-1", "two")] {
        send(&mut bob, json!({"op": "send", "room": room, "text": text}));
    }
    // Counts are updated at most once a second per room: Bob's join comes with the next
    // update (the presence thread's), in both rooms at once were presence on in both.
    let (mut updates, mut live) = (Vec::new(), Vec::<(u64, Value)>::new());
    while live.len() < 2 || !updates.iter().any(|r| r == "lobby") {
        let e = event(&mut alice);
        match e["op"].as_str() {
            Some("presence") => updates.push(e["room"].as_str().unwrap().to_owned()),
            Some("message") if e["room"] == "live-1" => {
                live.push((e["offset"].as_u64().unwrap(), e["text"].clone()))
            }
            _ => {}
        }
    }
    assert!(
        updates.iter().any(|r| r == "lobby"),
        "lobby's count updates: {updates:?}"
    );
    assert!(
        !updates.iter().any(|r| r == "live-1"),
        "none for live-1: {updates:?}"
    );
    assert_eq!(
        live,
        [(1, json!("one")), (2, json!("two"))],
        "offsets all the same"
    );
    // Neither a list nor a page here; both in the lobby.
    let no = |c: &mut Client, op: &str, room: &str| {
        code(&ask(c, json!({"op": op, "room": room}))).to_owned()
    };
    assert_eq!(no(&mut alice, "presence", "live-1"), "no_presence");
    assert_eq!(no(&mut alice, "history", "live-1"), "no_history");
    send(&mut alice, json!({"op": "presence", "room": "lobby"}));
    let list = loop {
        let e = event(&mut alice);
        if e.get("members").is_some() {
            break e;
        }
    };
    assert_eq!(list["members"].as_array().map(Vec::len), Some(2), "{list}");
    let page = ask(&mut alice, json!({"op": "history", "room": "lobby"}));
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(1), "{page}");
    // Nothing kept to recover from: a position behind is told so, one at the end is fine.
    let mut carol = user(&server, "carol");
    let epoch = join(&mut carol, "live-1", None)["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    ask(&mut carol, json!({"op": "leave", "room": "live-1"}));
    let behind = join(&mut carol, "live-1", Some((&epoch, 1)));
    assert_eq!(
        (&behind["recovered"], &behind["offset"]),
        (&json!(false), &json!(2))
    );
    ask(&mut carol, json!({"op": "leave", "room": "live-1"}));
    let current = join(&mut carol, "live-1", Some((&epoch, 2)));
    assert_eq!(current["recovered"], true, "{current}");
}
