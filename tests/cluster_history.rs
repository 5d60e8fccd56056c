//! Rooms with one order and a history across servers: two `ringws` processes and one Redis
//! (started here), the order given by the room's log in Redis. Every member on every server
//! gets the room's messages in offset order, once each; a member resumes on one server what
//! was sent on the other while it was away; Redis killed and restarted mid-stream loses
//! nothing it accepted (senders during the outage are told `unavailable` and send again).
//!
//! Needs `redis-server` on the PATH (see `tests/cluster.rs`).

mod support;

use std::collections::HashMap;

use serde_json::{Value, json};
use support::Client;
use support::cluster::{
    Node, Redis, event, members_on_both_workers, message, nodes, send, wait_until,
};
use support::patience;

/// The offsets and texts of the next `n` message events.
fn messages(c: &mut Client, n: usize) -> Vec<(u64, String, String)> {
    let mut got: Vec<(u64, String, String)> = Vec::with_capacity(n);
    while got.len() < n {
        let m = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| message(&mut *c)))
            .unwrap_or_else(|_| {
                let tail: Vec<u64> = got[got.len().saturating_sub(5)..]
                    .iter()
                    .map(|m| m.0)
                    .collect();
                panic!("{} of {n} messages came (the last: {tail:?})", got.len())
            });
        let offset = m["offset"]
            .as_u64()
            .unwrap_or_else(|| panic!("no offset: {m}"));
        assert_eq!(m["seq"], offset, "{m}");
        got.push((
            offset,
            m["from"].as_str().unwrap().to_owned(),
            m["text"].as_str().unwrap().to_owned(),
        ));
    }
    got
}

#[test]
fn four_senders_on_two_servers_one_order_for_every_member() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = nodes(&redis, &[]);
    let mut on_a = members_on_both_workers(&a, "one");
    let mut on_b = members_on_both_workers(&b, "one");
    wait_until("both servers subscribed", patience(), || {
        redis.subscribers("one") == 2
    });
    // Two senders on each server (on both of its workers), 250 messages each, at once.
    const EACH: usize = 250;
    let senders: Vec<usize> = vec![0, on_a.len() - 1];
    for i in 0..EACH {
        for &s in &senders {
            send(
                &mut on_a[s].0,
                json!({"op":"send","room":"one","text":format!("{i}")}),
            );
        }
        for s in [0, on_b.len() - 1] {
            send(
                &mut on_b[s].0,
                json!({"op":"send","room":"one","text":format!("{i}")}),
            );
        }
    }
    let total = 4 * EACH;
    let mut orders = Vec::new();
    for (c, _) in on_a.iter_mut().chain(on_b.iter_mut()) {
        let got = messages(c, total);
        let offsets: Vec<u64> = got.iter().map(|m| m.0).collect();
        assert_eq!(
            offsets,
            (1..=total as u64).collect::<Vec<_>>(),
            "no gap, no duplicate"
        );
        // Each sender's messages in the order sent.
        let mut next: HashMap<String, usize> = HashMap::new();
        for (_, from, text) in &got {
            let n = next.entry(from.clone()).or_default();
            assert_eq!(text, &n.to_string(), "from {from}");
            *n += 1;
        }
        assert_eq!(next.len(), 4, "four senders: {next:?}");
        orders.push(got);
    }
    for o in &orders[1..] {
        assert_eq!(
            o, &orders[0],
            "every member, on both servers, has the same order"
        );
    }
}

/// Joins `room` (with `since` if given): the `joined` event.
fn join(c: &mut Client, room: &str, since: Option<(&str, u64)>) -> Value {
    let mut req = json!({"op": "join", "room": room});
    if let Some((epoch, offset)) = since {
        req["since"] = json!({"epoch": epoch, "offset": offset});
    }
    send(c, req);
    loop {
        let e = event(c);
        if e["op"] == "joined" {
            return e;
        }
        assert_ne!(e["op"], "message", "a message before joined: {e}");
    }
}

fn connect(node: &Node) -> Client {
    let mut c = Client::connect(node.addr);
    assert_eq!(event(&mut c)["op"], "welcome");
    c
}

fn say(c: &mut Client, room: &str, text: &str) {
    send(c, json!({"op":"send","room":room,"text":text}));
}

#[test]
fn a_member_resumes_on_one_server_what_was_sent_on_the_other() {
    let Some(redis) = Redis::start() else { return };
    let flags = ["--history-messages", "150"];
    let (a, b) = nodes(&redis, &flags);
    let mut alice = connect(&a);
    join(&mut alice, "r", None);
    let mut bob = connect(&b);
    let joined = join(&mut bob, "r", None);
    let epoch = joined["epoch"].as_str().unwrap().to_owned();
    assert!(!epoch.is_empty(), "{joined}");
    wait_until("both subscribed", patience(), || {
        redis.subscribers("r") == 2
    });
    for i in 0..5 {
        say(&mut alice, "r", &format!("m{i}"));
    }
    let got = messages(&mut bob, 5);
    assert_eq!(got.iter().map(|m| m.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);

    // Bob goes away; server B, with nobody left in the room, stops receiving it.
    drop(bob);
    wait_until("B unsubscribed", patience(), || redis.subscribers("r") == 1);
    for i in 5..105 {
        say(&mut alice, "r", &format!("m{i}"));
    }
    assert_eq!(messages(&mut alice, 105).last().unwrap().0, 105);

    // He comes back to B: every message he missed, in order, then live ones.
    let mut bob = connect(&b);
    let joined = join(&mut bob, "r", Some((&epoch, 5)));
    assert_eq!(
        (&joined["recovered"], &joined["offset"], &joined["epoch"]),
        (&json!(true), &json!(105), &json!(epoch)),
        "{joined}"
    );
    let missed = messages(&mut bob, 100);
    let expected: Vec<(u64, String)> = (6..=105).map(|o| (o, format!("m{}", o - 1))).collect();
    assert_eq!(
        missed
            .iter()
            .map(|m| (m.0, m.2.clone()))
            .collect::<Vec<_>>(),
        expected
    );
    say(&mut alice, "r", "live");
    let live = messages(&mut bob, 1);
    assert_eq!((live[0].0, live[0].2.as_str()), (106, "live"));

    // Carol resumes on A from the same position: the same messages (A's own copy).
    let mut carol = connect(&a);
    let joined = join(&mut carol, "r", Some((&epoch, 100)));
    assert_eq!(joined["recovered"], true, "{joined}");
    let got = messages(&mut carol, 6);
    assert_eq!(
        got.iter().map(|m| m.0).collect::<Vec<_>>(),
        [101, 102, 103, 104, 105, 106]
    );

    // Away for longer than the history keeps (150): told so, nothing replayed.
    drop(bob);
    wait_until("B unsubscribed again", patience(), || {
        redis.subscribers("r") == 1
    });
    for i in 0..200 {
        say(&mut alice, "r", &format!("late{i}"));
    }
    assert_eq!(messages(&mut alice, 201).last().unwrap().0, 306);
    let mut bob = connect(&b);
    let joined = join(&mut bob, "r", Some((&epoch, 106)));
    assert_eq!(
        (&joined["recovered"], &joined["offset"]),
        (&json!(false), &json!(306)),
        "{joined}"
    );
    // Another epoch (a log that was lost): not recovered either.
    let mut dave = connect(&a);
    let joined = join(&mut dave, "r", Some(("another", 300)));
    assert_eq!(joined["recovered"], false, "{joined}");
    // Scrollback on B, from the log's tail it read: the 20 before offset 300.
    send(
        &mut bob,
        json!({"op":"history","room":"r","before":300,"limit":20}),
    );
    let page = loop {
        let e = event(&mut bob);
        if e["op"] == "history" {
            break e;
        }
    };
    let offsets: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, (280..300).collect::<Vec<_>>(), "{page}");
    assert_eq!(page["epoch"], json!(epoch));
}

/// Sends `text` with id `id` and reads until its fate: `true` if it came back as a message
/// (accepted and ordered), `false` if refused `unavailable`. Other members' messages seen
/// meanwhile are kept in `seen`.
fn outcome(c: &mut Client, id: &str, text: &str, seen: &mut Vec<(u64, String)>) -> bool {
    send(c, json!({"op":"send","room":"r","text":text,"id":id}));
    loop {
        let e = event(c);
        match e["op"].as_str() {
            Some("message") => {
                seen.push((
                    e["offset"].as_u64().unwrap(),
                    e["text"].as_str().unwrap().to_owned(),
                ));
                if e["id"] == id {
                    return true;
                }
            }
            Some("error") => {
                assert_eq!(
                    (e["code"].as_str(), e["id"].as_str()),
                    (Some("unavailable"), Some(id)),
                    "{e}"
                );
                return false;
            }
            _ => {}
        }
    }
}

#[test]
fn redis_killed_mid_stream_and_restarted_loses_nothing_accepted() {
    let dir = std::env::temp_dir().join(format!("ringws-redis-{}", std::process::id()));
    let Some(mut redis) = Redis::start_persistent(dir) else {
        return;
    };
    let (a, b) = nodes(&redis, &[]);
    let mut senders = [connect(&a), connect(&b)];
    let mut readers = [connect(&a), connect(&b)];
    for c in senders.iter_mut().chain(readers.iter_mut()) {
        join(c, "r", None);
    }
    wait_until("both subscribed", patience(), || {
        redis.subscribers("r") == 2
    });
    let mut seen = [Vec::new(), Vec::new()];
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for i in 0..60 {
        if i == 20 {
            redis.kill();
            wait_until("both servers see the outage", patience(), || {
                a.metric("broker_connected") == 0 && b.metric("broker_connected") == 0
            });
        }
        if i == 40 {
            redis.restart();
            wait_until("both servers reconnect", patience() * 2, || {
                a.metric("broker_connected") == 1 && b.metric("broker_connected") == 1
            });
        }
        for (s, (c, seen)) in senders.iter_mut().zip(seen.iter_mut()).enumerate() {
            let (id, text) = (format!("s{s}-{i}"), format!("{s}:{i}"));
            if outcome(c, &id, &text, seen) {
                accepted.push(text);
            } else {
                refused.push((s, id, text));
            }
        }
    }
    assert!(
        refused.len() >= 40,
        "every message during the outage refused: {}",
        refused.len()
    );
    assert!(
        refused.iter().all(|(_, _, t)| {
            let i: usize = t.split(':').nth(1).unwrap().parse().unwrap();
            (20..40).contains(&i)
        }),
        "only during the outage: {refused:?}"
    );
    // The senders send the refused ones again (as ringws.js does), with the same ids.
    for (s, id, text) in refused {
        assert!(
            outcome(&mut senders[s], &id, &text, &mut seen[s]),
            "{id} accepted once Redis is back"
        );
        accepted.push(text);
    }
    // Every member, on both servers, has every accepted message once, in one order.
    let n = accepted.len();
    let mut orders = Vec::new();
    for (i, c) in readers.iter_mut().enumerate() {
        let got: Vec<(u64, String)> = messages(c, n).into_iter().map(|m| (m.0, m.2)).collect();
        let offsets: Vec<u64> = got.iter().map(|m| m.0).collect();
        assert_eq!(
            offsets,
            (1..=n as u64).collect::<Vec<_>>(),
            "reader {i}: no gap, no duplicate"
        );
        orders.push(got);
    }
    assert_eq!(orders[0], orders[1], "the same order on both servers");
    let mut texts: Vec<String> = orders[0].iter().map(|m| m.1.clone()).collect();
    texts.sort();
    accepted.sort();
    assert_eq!(texts, accepted, "exactly the accepted messages");
    for (s, seen) in seen.iter().enumerate() {
        // The senders saw the others' too, in the same order (their own included).
        assert!(
            seen.windows(2).all(|w| w[1].0 == w[0].0 + 1),
            "sender {s}: {seen:?}"
        );
    }
}

#[test]
fn entries_missed_while_the_servers_lost_their_subscriptions_are_filled_in() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = nodes(&redis, &[]);
    let mut sender = connect(&a);
    let mut readers = [connect(&a), connect(&b)];
    for c in readers.iter_mut().chain([&mut sender]) {
        join(c, "r", None);
    }
    wait_until("both subscribed", patience(), || {
        redis.subscribers("r") == 2
    });
    // The subscriptions are cut mid-stream (the servers reconnect and read what they may have
    // missed; a message refused meanwhile is sent again, as ringws.js does).
    let mut seen = Vec::new();
    let mut texts = Vec::new();
    for i in 0..100 {
        if i == 50 {
            let killed = redis.command("CLIENT KILL TYPE pubsub").unwrap();
            assert!(killed.starts_with(':'), "{killed}");
        }
        let id = format!("m{i}");
        while !outcome(&mut sender, &id, &id, &mut seen) {}
        texts.push(id);
    }
    // Entries appended whose publication never reaches the servers (as if lost on the way):
    // the next live one shows the gap, which is read from the log.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    for i in 0..5 {
        let reply = redis
            .command_args(&["HINCRBY", "ringws:room:r|meta", "l", "1"])
            .unwrap();
        let offset: u64 = reply.trim().trim_start_matches(':').parse().unwrap();
        let text = format!("hidden{i}");
        let body =
            json!({"op":"message","room":"r","from":"elsewhere","name":null,"ts":1,"text":text});
        let id = format!("{offset}-1");
        let reply = redis
            .command_args(&[
                "XADD",
                "ringws:room:r|log",
                &id,
                "p",
                &body.to_string(),
                "t",
                &now,
            ])
            .unwrap();
        assert!(reply.contains(&id), "{reply}");
        texts.push(text);
    }
    let reads = a.metric("broker_log_reads_total");
    while !outcome(&mut sender, "after", "after", &mut seen) {}
    texts.push("after".into());
    let n = texts.len();
    for (i, c) in readers.iter_mut().enumerate() {
        let got = messages(c, n);
        let offsets: Vec<u64> = got.iter().map(|m| m.0).collect();
        assert_eq!(offsets, (1..=n as u64).collect::<Vec<_>>(), "reader {i}");
        let got: Vec<String> = got.iter().map(|m| m.2.clone()).collect();
        assert_eq!(got, texts, "reader {i}");
    }
    assert!(
        a.metric("broker_log_reads_total") > reads,
        "the gap was read"
    );
}

/// A token for `user`, signed with the servers' secret.
fn token(user: &str) -> String {
    support::api::token(SECRET.as_bytes(), user, json!({}))
}

const SECRET: &str = "the cluster tests' secret, 32 b.";

/// A connection of `user` on `node`, in its personal room.
fn in_own_room(node: &Node, user: &str) -> Client {
    let (mut c, _) = Client::connect_with(
        node.addr,
        &format!("Authorization: Bearer {}\r\n", token(user)),
    );
    assert_eq!(event(&mut c)["user"], user);
    send(
        &mut c,
        json!({"op": "join", "room": format!("user:{user}")}),
    );
    loop {
        let e = event(&mut c);
        if e["op"] == "joined" {
            return c;
        }
        assert_ne!(e["op"], "error", "{e}");
    }
}

#[test]
fn a_direct_message_reaches_its_user_on_every_server_once_in_order() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = nodes(&redis, &["--jwt-secret", SECRET]);
    let mut alice = [in_own_room(&a, "alice"), in_own_room(&b, "alice")];
    wait_until("both servers subscribed", patience(), || {
        redis.subscribers("user:alice") == 2
    });
    // Bob on server A and Carol on server B write to Alice without joining her room.
    let (mut bob, _) = Client::connect_with(
        a.addr,
        &format!("Authorization: Bearer {}\r\n", token("bob")),
    );
    let (mut carol, _) = Client::connect_with(
        b.addr,
        &format!("Authorization: Bearer {}\r\n", token("carol")),
    );
    assert_eq!(event(&mut bob)["op"], "welcome");
    assert_eq!(event(&mut carol)["op"], "welcome");
    let mut sent = Vec::new();
    for i in 0..10 {
        for (c, who) in [(&mut bob, "bob"), (&mut carol, "carol")] {
            let text = format!("{who} {i}");
            send(c, json!({"op": "send", "room": "user:alice", "text": text}));
            let ack = event(c);
            assert_eq!(ack["op"], "sent", "{ack}");
            sent.push((ack["offset"].as_u64().unwrap(), text));
        }
    }
    sent.sort();
    for c in &mut alice {
        let got: Vec<(u64, String)> = messages(c, sent.len())
            .into_iter()
            .map(|(offset, _, text)| (offset, text))
            .collect();
        assert_eq!(got, sent, "every message once, in the room's order");
    }
    // Bob cannot join Alice's room.
    send(&mut bob, json!({"op": "join", "room": "user:alice"}));
    assert_eq!(event(&mut bob)["code"], "forbidden");
}

/// A request to an API with the key the tests give it.
fn api_call(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    support::api::call(addr, method, path, Some("k3y"), body)
}

#[test]
fn the_api_of_one_server_publishes_to_members_on_the_other_in_the_rooms_order() {
    let Some(redis) = Redis::start() else { return };
    let api = format!("127.0.0.1:{}", support::free_port());
    let a = Node::start_with(&redis, "a", &["--api-listen", &api, "--api-key", "k3y"]);
    let b = Node::start_with(&redis, "b", &[]);
    wait_until("both servers connected to Redis", patience(), || {
        a.metric("broker_connected") == 1 && b.metric("broker_connected") == 1
    });
    let (mut on_b, _) = support::cluster::member(&b, "news");
    wait_until("server B subscribed", patience(), || {
        redis.subscribers("news") == 1
    });
    let mut offsets = Vec::new();
    for i in 0..5 {
        let (status, answer) = api_call(
            &api,
            "POST",
            "/api/publish",
            &format!(r#"{{"room":"news","text":"bulletin {i}"}}"#),
        );
        assert_eq!(status, 200, "{answer}");
        offsets.push(answer["offset"].as_u64().expect("an offset"));
    }
    let first = message(&mut on_b);
    assert!(
        first.get("id").is_none(),
        "the API's key is not shown: {first}"
    );
    let mut got = vec![(
        first["offset"].as_u64().unwrap(),
        first["from"].as_str().unwrap().to_owned(),
        first["text"].as_str().unwrap().to_owned(),
    )];
    got.extend(messages(&mut on_b, 4));
    assert_eq!(
        got.iter().map(|m| m.0).collect::<Vec<_>>(),
        offsets,
        "the offsets the API answered"
    );
    assert!(got.iter().all(|m| m.1 == "api"), "from the API: {got:?}");
    // Server A has no member in the room: its history is read from the room's log.
    let (status, page) = api_call(&api, "GET", "/api/history?room=news&limit=3", "");
    assert_eq!(status, 200, "{page}");
    let texts: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["bulletin 2", "bulletin 3", "bulletin 4"]);
}
