//! One order per room, history and recovery on a lone server (the chat backend through the
//! real server, two workers): every member sees the same offsets in the same order, a member
//! that was away gets what it missed before anything live, a position the history no longer
//! covers (or from before a restart) is answered honestly, and history pages go back.

mod support;

use std::collections::HashMap;

use ringws::app::chat::history::HistoryConfig;
use ringws::app::chat::{Chat, ChatConfig};
use serde_json::{Value, json};
use support::chat::{event_skipping_presence as event, send};
use support::{Client, TestServer, config};

fn start(chat: ChatConfig) -> (TestServer, Chat) {
    // Members here send as fast as they can (order under load): no rate limit (they are
    // tested in tests/identity.rs).
    let chat = Chat::new(ChatConfig {
        send_rate: ringws::app::chat::rate::Rate::UNLIMITED,
        join_rate: ringws::app::chat::rate::Rate::UNLIMITED,
        ..chat
    });
    let mut cfg = config();
    // The test is about order, not backpressure: no member may lose a message to a full queue
    // while it is busy writing its own.
    cfg.max_outbound_bytes = 16 << 20;
    let server = TestServer::start(cfg, chat.clone());
    chat.attach(server.publisher(), server.metrics());
    (server, chat)
}

/// A connected client past its welcome, and the worker it is on.
fn member(server: &TestServer) -> (Client, String) {
    let (c, id) = support::chat::member(server);
    let worker = id.split('.').next().unwrap().to_owned();
    (c, worker)
}

fn join(c: &mut Client, request: Value) -> Value {
    send(c, request);
    let joined = event(c);
    assert_eq!(joined["op"], "joined", "{joined}");
    joined
}

fn say(c: &mut Client, room: &str, text: &str) {
    send(c, json!({"op": "send", "room": room, "text": text}));
}

/// The next message event (its offset and text).
fn message(c: &mut Client) -> (u64, String) {
    let m = event(c);
    assert_eq!(m["op"], "message", "{m}");
    assert_eq!(
        m["seq"], m["offset"],
        "seq is the offset on a lone server: {m}"
    );
    (
        m["offset"]
            .as_u64()
            .unwrap_or_else(|| panic!("no offset: {m}")),
        m["text"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn four_publishers_on_both_workers_and_every_member_sees_one_order() {
    const EACH: usize = 1000;
    let (server, _) = start(ChatConfig::default());
    // Three members on each worker: two of them publish, one only listens.
    let mut by_worker: HashMap<String, Vec<Client>> = HashMap::new();
    let mut tries = 0;
    while by_worker.len() < 2 || by_worker.values().any(|v| v.len() < 3) {
        tries += 1;
        assert!(
            tries < 400,
            "SO_REUSEPORT never gave both workers three members"
        );
        let (c, worker) = member(&server);
        let on = by_worker.entry(worker).or_default();
        if on.len() < 3 {
            on.push(c);
        }
    }
    let mut clients: Vec<(Client, bool)> = Vec::new();
    for (_, on) in by_worker {
        for (i, mut c) in on.into_iter().enumerate() {
            let joined = join(&mut c, json!({"op": "join", "room": "one"}));
            assert!(joined["epoch"].is_string(), "{joined}");
            clients.push((c, i < 2));
        }
    }
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, (mut c, publishes))| {
            std::thread::spawn(move || {
                if publishes {
                    for i in 0..EACH {
                        say(&mut c, "one", &format!("{n}:{i}"));
                    }
                }
                (0..4 * EACH).map(|_| message(&mut c)).collect::<Vec<_>>()
            })
        })
        .collect();
    let seen: Vec<Vec<(u64, String)>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let first = &seen[0];
    // Offsets 1, 2, 3, ...: no gap, no duplicate (the first wrong one is shown).
    if let Some(i) = (0..first.len()).find(|&i| first[i].0 != i as u64 + 1) {
        let around: Vec<u64> = first[i.saturating_sub(3)..(i + 3).min(first.len())]
            .iter()
            .map(|(o, _)| *o)
            .collect();
        panic!(
            "message {i} has offset {} (around it: {around:?})",
            first[i].0
        );
    }
    assert_eq!(first.len(), 4 * EACH);
    for (m, other) in seen.iter().enumerate() {
        if let Some(i) = (0..first.len()).find(|&i| other[i] != first[i]) {
            panic!(
                "member {m} saw {:?} where member 0 saw {:?}",
                other[i], first[i]
            );
        }
    }
    // Each publisher's messages in the order it sent them.
    let mut next: HashMap<&str, usize> = HashMap::new();
    for (_, text) in first {
        let (who, i) = text.split_once(':').unwrap();
        let expected = next.entry(who).or_default();
        assert_eq!(i.parse::<usize>().unwrap(), *expected, "{text}");
        *expected += 1;
    }
    assert_eq!(next.len(), 4);
    let c = server.counters();
    assert!(c.home_requests >= 4 * EACH as i64, "{c:#?}");
    assert_eq!(c.dropped, 0, "{c:#?}");
}

#[test]
fn a_member_that_was_away_gets_what_it_missed_in_order_then_live_messages() {
    let (server, _) = start(ChatConfig::default());
    let (mut a, _) = member(&server);
    let (mut b, _) = member(&server);
    join(&mut a, json!({"op": "join", "room": "r"}));
    let joined = join(&mut b, json!({"op": "join", "room": "r"}));
    let epoch = joined["epoch"].as_str().unwrap().to_owned();
    assert_eq!(joined["offset"], 0, "nothing said yet: {joined}");
    assert!(joined.get("recovered").is_none(), "no position given");
    for i in 1..=5 {
        say(&mut a, "r", &format!("before {i}"));
    }
    for i in 1..=5 {
        assert_eq!(message(&mut b), (i, format!("before {i}")));
        assert_eq!(message(&mut a).0, i);
    }
    drop(b); // away: a phone changing networks
    for i in 1..=200 {
        say(&mut a, "r", &format!("away {i}"));
    }
    for i in 1..=200 {
        assert_eq!(message(&mut a).0, 5 + i, "stamped");
    }
    let (mut b, _) = member(&server);
    let joined = join(
        &mut b,
        json!({"op": "join", "room": "r", "since": {"epoch": epoch, "offset": 5}}),
    );
    assert_eq!(
        (&joined["recovered"], &joined["epoch"], &joined["offset"]),
        (&json!(true), &json!(epoch), &json!(205)),
        "{joined}"
    );
    for i in 1..=200 {
        assert_eq!(
            message(&mut b),
            (5 + i, format!("away {i}")),
            "missed, in order"
        );
    }
    say(&mut a, "r", "live");
    assert_eq!(message(&mut b), (206, "live".to_owned()), "then live");
    // Asking again where the room is, while joined: the same position, nothing twice.
    let again = join(
        &mut b,
        json!({"op": "join", "room": "r", "since": {"epoch": epoch, "offset": 206}}),
    );
    assert_eq!(
        (&again["recovered"], &again["offset"]),
        (&json!(true), &json!(206))
    );
    say(&mut a, "r", "after");
    assert_eq!(message(&mut b), (207, "after".to_owned()));
}

#[test]
fn a_position_the_history_no_longer_covers_is_not_recovered() {
    let (server, _) = start(ChatConfig {
        history: HistoryConfig {
            max_messages: 50,
            ..HistoryConfig::default()
        },
        ..ChatConfig::default()
    });
    let (mut a, _) = member(&server);
    let epoch = join(&mut a, json!({"op": "join", "room": "r"}))["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 1..=120 {
        say(&mut a, "r", &format!("{i}"));
    }
    for i in 1..=120 {
        assert_eq!(message(&mut a).0, i);
    }
    let (mut b, _) = member(&server);
    // 120 said, 50 kept (71..=120): from 69 on, message 70 is gone.
    let joined = join(
        &mut b,
        json!({"op": "join", "room": "r", "since": {"epoch": epoch, "offset": 69}}),
    );
    assert_eq!(
        (&joined["recovered"], &joined["offset"]),
        (&json!(false), &json!(120))
    );
    // Nothing is replayed: the next message is live.
    say(&mut a, "r", "live");
    assert_eq!(message(&mut b), (121, "live".to_owned()));
    // 121 said, 72..=121 kept: from 71 on, everything missed is there.
    let (mut c, _) = member(&server);
    let joined = join(
        &mut c,
        json!({"op": "join", "room": "r", "since": {"epoch": epoch, "offset": 71}}),
    );
    assert_eq!(joined["recovered"], true, "{joined}");
    assert_eq!(message(&mut c).0, 72);
    // Another epoch: not this room's history.
    let (mut d, _) = member(&server);
    let joined = join(
        &mut d,
        json!({"op": "join", "room": "r", "since": {"epoch": "elsewhere-1", "offset": 119}}),
    );
    assert_eq!(joined["recovered"], false, "{joined}");
}

#[test]
fn a_restarted_server_starts_a_new_epoch() {
    let (first, _) = start(ChatConfig::default());
    let (mut a, _) = member(&first);
    let epoch = join(&mut a, json!({"op": "join", "room": "r"}))["epoch"].clone();
    say(&mut a, "r", "x");
    assert_eq!(message(&mut a).0, 1);
    drop(a);
    first.shutdown();
    let (second, _) = start(ChatConfig::default());
    let (mut a, _) = member(&second);
    let joined = join(
        &mut a,
        json!({"op": "join", "room": "r", "since": {"epoch": epoch, "offset": 1}}),
    );
    assert_ne!(joined["epoch"], epoch, "the history was lost: a new epoch");
    assert_eq!(
        (&joined["recovered"], &joined["offset"]),
        (&json!(false), &json!(0))
    );
}

#[test]
fn history_pages_go_back_and_need_the_room_joined() {
    let (server, _) = start(ChatConfig::default());
    let (mut a, _) = member(&server);
    send(&mut a, json!({"op": "history", "room": "r", "limit": 5}));
    assert_eq!(event(&mut a)["code"], "not_joined");
    let epoch = join(&mut a, json!({"op": "join", "room": "r"}))["epoch"].clone();
    for i in 1..=30 {
        say(&mut a, "r", &format!("{i}"));
    }
    for i in 1..=30 {
        assert_eq!(message(&mut a).0, i);
    }
    let page = |a: &mut Client, request: Value| -> Vec<u64> {
        send(a, request);
        let h = event(a);
        assert_eq!((&h["op"], &h["epoch"]), (&json!("history"), &epoch), "{h}");
        h["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                assert_eq!(m["op"], "message");
                m["offset"].as_u64().unwrap()
            })
            .collect()
    };
    assert_eq!(
        page(&mut a, json!({"op": "history", "room": "r", "limit": 10})),
        (21..=30).collect::<Vec<_>>()
    );
    assert_eq!(
        page(
            &mut a,
            json!({"op": "history", "room": "r", "before": 21, "limit": 10})
        ),
        (11..=20).collect::<Vec<_>>()
    );
    assert_eq!(
        page(&mut a, json!({"op": "history", "room": "r", "before": 3})),
        vec![1, 2]
    );
    send(&mut a, json!({"op": "history", "room": "r", "limit": 0}));
    assert_eq!(event(&mut a)["code"], "bad_field");
}

#[test]
fn leaving_and_joining_again_at_once_neither_loses_nor_repeats_a_message() {
    let (server, _) = start(ChatConfig::default());
    let (mut a, _) = member(&server);
    let (mut b, _) = member(&server);
    join(&mut a, json!({"op": "join", "room": "r"}));
    join(&mut b, json!({"op": "join", "room": "r"}));
    // b leaves and joins again while a talks: everything b gets is in order, each once, and
    // nothing arrives between "left" and "joined".
    for i in 1..=50 {
        say(&mut a, "r", &format!("{i}"));
    }
    send(&mut b, json!({"op": "leave", "room": "r"}));
    send(&mut b, json!({"op": "join", "room": "r"}));
    let mut last = 0;
    let mut state = "in";
    let mut rejoined_at = None;
    while rejoined_at.is_none() || last < 50 {
        let e = event(&mut b);
        match (e["op"].as_str().unwrap(), state) {
            ("message", "in") => {
                let offset = e["offset"].as_u64().unwrap();
                assert!(offset > last, "{offset} after {last}");
                if rejoined_at.is_none() {
                    assert_eq!(offset, last + 1, "no gap before leaving");
                }
                last = offset;
            }
            ("left", "in") => state = "out",
            ("joined", "out") => {
                state = "in";
                last = e["offset"].as_u64().unwrap();
                rejoined_at = Some(last);
            }
            other => panic!("{other:?}: {e}"),
        }
    }
    for _ in 0..50 {
        message(&mut a);
    }
    say(&mut a, "r", "then");
    assert_eq!(message(&mut b).0, 51);
}
