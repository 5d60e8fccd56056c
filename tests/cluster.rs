//! Two `ringws` processes sharing rooms through one Redis (Debian's `redis-server`, started here
//! on a free loopback port): members of one room on both nodes chat as one room, in order per
//! sender, each message once; a node subscribes only to rooms it has members in; Redis stopped
//! and started again mid-test is survived (messages during the outage refused `unavailable`, a
//! lost log announced with a new `epoch`), visible in `/metrics` and logged once. (The rooms'
//! one order, history and recovery across servers: `tests/cluster_history.rs`.)
//!
//! Needs `redis-server` on the PATH (`tests/run-all.sh` installs it and sets
//! `RINGWS_REQUIRE_REDIS=1`, which makes its absence a failure; elsewhere these tests say they
//! were skipped).

mod support;

use serde_json::{Value, json};
use support::cluster::{
    Node, Redis, event, member, members_on_both_workers, message, say, send, wait_until,
};
use support::patience;

#[test]
fn members_on_two_nodes_chat_as_one_room_in_order_and_once() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (Node::start(&redis, "a"), Node::start(&redis, "b"));
    let (mut alice, alice_id) = member(&a, "lobby");
    let mut on_b = members_on_both_workers(&b, "lobby");
    let bob_id = on_b[0].1.clone();
    let (node_a, node_b) = (alice_id.split(':').next(), bob_id.split(':').next());
    assert_ne!(node_a, node_b, "ids carry their node: {alice_id} {bob_id}");
    wait_until("both nodes subscribed to lobby", patience(), || {
        redis.subscribers("lobby") == 2
    });

    // Bob (node B) sends 100 messages: Alice (node A) gets them all, in order.
    for i in 0..100 {
        say(&mut on_b[0].0, "lobby", &format!("b{i}"));
    }
    for i in 0..100 {
        let m = message(&mut alice);
        assert_eq!(m["text"], format!("b{i}"), "{m}");
        assert_eq!(m["from"], bob_id.as_str());
        assert_eq!(m["offset"], i + 1, "the room's order, from Redis: {m}");
        assert!(m.get("online").is_none(), "no per-node count crosses: {m}");
    }
    // Then Alice answers; every member on B (on both its workers) sees Bob's 100 exactly once
    // each before her answer (his node gets its own messages back from the room's log: that
    // is where their order comes from).
    say(&mut alice, "lobby", "end");
    for (c, _) in &mut on_b {
        for i in 0..100 {
            assert_eq!(message(c)["text"], format!("b{i}"));
        }
        let m = message(c);
        assert_eq!(
            (m["text"].as_str(), m["from"].as_str()),
            (Some("end"), Some(alice_id.as_str()))
        );
    }
    assert_eq!(b.metric("broker_log_appends_total"), 100);
    wait_until("A counts what it appended", patience(), || {
        a.metric("broker_log_appends_total") == 1
    });
    // Every entry of the room's log reached A (its own one included).
    assert_eq!(a.metric("broker_received_total"), 101);
    assert_eq!(a.metric("broker_connected"), 1);

    // A room with members on node B only: node A is not subscribed and gets nothing of it.
    let (mut dave, _) = member(&b, "quiet");
    wait_until("B subscribed to quiet", patience(), || {
        redis.subscribers("quiet") == 1
    });
    for i in 0..20 {
        say(&mut dave, "quiet", &format!("q{i}"));
    }
    for i in 0..20 {
        assert_eq!(message(&mut dave)["text"], format!("q{i}"));
    }
    assert_eq!(redis.subscribers("quiet"), 1, "only node B");
    assert_eq!(a.metric("broker_subscribed_channels"), 1, "A: lobby only");
    // (received counts every publication that reaches A, wanted or not.)
    assert_eq!(
        a.metric("broker_received_total"),
        101,
        "nothing of quiet reached A"
    );

    // The last members on B leave lobby: B unsubscribes (after its linger), A stays.
    for (c, _) in &mut on_b {
        send(c, json!({"op": "leave", "room": "lobby"}));
    }
    wait_until("B unsubscribed from lobby", patience(), || {
        redis.subscribers("lobby") == 1
    });
    wait_until("B: quiet only", patience(), || {
        b.metric("broker_subscribed_channels") == 1
    });
}

#[test]
fn two_nodes_publishing_at_once_each_receive_the_other_in_order() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (Node::start(&redis, "a"), Node::start(&redis, "b"));
    let (mut alice, alice_id) = member(&a, "busy");
    let (mut bob, bob_id) = member(&b, "busy");
    wait_until("both nodes subscribed", patience(), || {
        redis.subscribers("busy") == 2
    });
    // Both send 300 messages at once; each then reads 600 (its own and the other's), and each
    // sender's arrive complete and in order.
    const N: usize = 300;
    for i in 0..N {
        say(&mut alice, "busy", &format!("{i}"));
        say(&mut bob, "busy", &format!("{i}"));
    }
    for c in [&mut alice, &mut bob] {
        let mut next =
            std::collections::HashMap::from([(alice_id.clone(), 0), (bob_id.clone(), 0)]);
        for _ in 0..2 * N {
            let m = message(c);
            let from = m["from"].as_str().unwrap().to_owned();
            let expected = next.get_mut(&from).unwrap_or_else(|| panic!("from {from}"));
            assert_eq!(m["text"], expected.to_string(), "from {from}");
            *expected += 1;
        }
        assert!(next.values().all(|&n| n == N), "{next:?}");
    }
}

#[test]
fn redis_stopped_and_started_again_is_survived_and_reported() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let (a, b) = (Node::start(&redis, "a"), Node::start(&redis, "b"));
    let (mut a1, _) = member(&a, "r");
    let (mut a2, _) = member(&a, "r");
    let (mut b1, _) = member(&b, "r");
    wait_until("both subscribed", patience(), || {
        redis.subscribers("r") == 2
    });
    say(&mut a1, "r", "before");
    for c in [&mut a1, &mut a2, &mut b1] {
        assert_eq!(message(c)["text"], "before");
    }

    redis.kill();
    wait_until("both nodes see the outage", patience(), || {
        a.metric("broker_connected") == 0 && b.metric("broker_connected") == 0
    });
    // A message cannot get its place in the room's order: refused, delivered to no one (not
    // even on its own node: the other node could never recover it).
    send(
        &mut a1,
        json!({"op":"send","room":"r","text":"during-a","id":"d1"}),
    );
    let refused = event(&mut a1);
    assert_eq!(
        (refused["code"].as_str(), refused["id"].as_str()),
        (Some("unavailable"), Some("d1")),
        "{refused}"
    );
    send(&mut b1, json!({"op":"send","room":"r","text":"during-b"}));
    assert_eq!(event(&mut b1)["code"], "unavailable");
    for node in [&a, &b] {
        assert_eq!(
            node.http_status("/readyz"),
            503,
            "not ready without its broker"
        );
        assert_eq!(node.http_status("/healthz"), 200, "but alive");
    }
    wait_until("the refusals are counted", patience(), || {
        a.metric("broker_log_unavailable_total") >= 1
            && b.metric("broker_log_unavailable_total") >= 1
    });
    // Several reconnection attempts fail meanwhile (each node counts its own).
    wait_until("two failed attempts each", patience() * 2, || {
        a.metric("broker_session_failures_total") >= 3
            && b.metric("broker_session_failures_total") >= 3
    });

    // This Redis keeps nothing on disk: it comes back empty, the room's log with it.
    redis.restart();
    // The next attempt comes within the backoff's current wait (about 1.6 s at most here).
    let recovered = wait_until("both nodes reconnect", patience() * 2, || {
        a.metric("broker_connected") == 1 && b.metric("broker_connected") == 1
    });
    eprintln!("reconnected {recovered:?} after Redis came back");
    wait_until("both subscribed again", patience(), || {
        redis.subscribers("r") == 2
    });
    assert_eq!(a.http_status("/readyz"), 200, "ready again");
    // Every member is told the log starts again (a new epoch, offsets from 1).
    for c in [&mut a1, &mut a2, &mut b1] {
        let e = event(c);
        assert_eq!(
            (e["op"].as_str(), e["offset"].as_u64()),
            (Some("epoch"), Some(0)),
            "{e}"
        );
    }
    say(&mut a1, "r", "after-a");
    let m = message(&mut b1);
    assert_eq!(
        (m["text"].as_str(), m["offset"].as_u64()),
        (Some("after-a"), Some(1)),
        "{m}"
    );
    say(&mut b1, "r", "after-b");
    assert_eq!(message(&mut b1)["text"], "after-b");
    for c in [&mut a1, &mut a2] {
        let got: Vec<Value> = (0..2).map(|_| message(c)["text"].clone()).collect();
        assert_eq!(got, [json!("after-a"), json!("after-b")]);
    }

    for node in [&a, &b] {
        assert_eq!(node.metric("broker_outages_total"), 1);
        let log = node.log();
        assert_eq!(log.matches("unreachable").count(), 1, "logged once:\n{log}");
        assert_eq!(log.matches("reachable again").count(), 1, "{log}");
    }
}

#[test]
fn a_node_whose_broker_is_down_at_start_answers_then_joins() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    redis.kill();
    let a = Node::start(&redis, "a");
    // Joins are answered (nothing is known of the room's log yet); messages are refused.
    let (mut a1, _) = member(&a, "r");
    let (mut a2, _) = member(&a, "r");
    say(&mut a1, "r", "alone");
    assert_eq!(event(&mut a1)["code"], "unavailable");
    assert_eq!(a.metric("broker_connected"), 0);
    assert_eq!(a.metric("broker_outages_total"), 1);

    redis.restart();
    wait_until("the node connects", patience() * 2, || {
        a.metric("broker_connected") == 1
    });
    wait_until("and subscribes to its rooms", patience(), || {
        redis.subscribers("r") == 1
    });
    let b = Node::start(&redis, "b");
    let (mut b1, _) = member(&b, "r");
    wait_until("B subscribed", patience(), || redis.subscribers("r") == 2);
    say(&mut b1, "r", "hello");
    for c in [&mut a1, &mut a2] {
        let m = message(c);
        assert_eq!(
            (m["text"].as_str(), m["offset"].as_u64()),
            (Some("hello"), Some(1)),
            "{m}"
        );
    }
}
