//! Presence across servers: two `ringws` processes and one Redis (started here). A room's
//! presence list shows the members on both servers, merged by user; joins and leaves are
//! announced once for the cluster (a user's first connection anywhere, its last); a Redis
//! restarted empty gets every server's entries again; a server killed with SIGKILL drops out
//! of the lists within the presence ttl.
//!
//! Needs `redis-server` on the PATH (see `tests/cluster.rs`).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::Client;
use support::cluster::{Node, Redis, event, nodes, send, wait_for_state, wait_until};
use support::patience;

const SECRET: &str = "the presence tests' secret, 32 b";

fn token(user: &str) -> String {
    support::api::token(
        SECRET.as_bytes(),
        user,
        json!({"name": user.to_uppercase()}),
    )
}

/// A connection of `user` on `node`, joined to `room`.
fn member(node: &Node, user: &str, room: &str) -> Client {
    let (mut c, _) = Client::connect_with(
        node.addr,
        &format!("Authorization: Bearer {}\r\n", token(user)),
    );
    assert_eq!(event(&mut c)["user"], user);
    send(&mut c, json!({"op": "join", "room": room}));
    loop {
        let e = event(&mut c);
        if e["op"] == "joined" {
            return c;
        }
        assert_ne!(e["op"], "error", "{e}");
    }
}

/// The room's presence list, asked of `c`'s server (an error answered: `null`, e.g. while
/// the broker is unreachable).
fn list(c: &mut Client, room: &str) -> Value {
    send(c, json!({"op": "presence", "room": room}));
    loop {
        let e = event(c);
        if e["op"] == "presence" && e.get("members").is_some() {
            return e;
        }
        if e["op"] == "error" {
            assert_eq!(e["code"], "unavailable", "{e}");
            return Value::Null;
        }
    }
}

/// The next member event about `user` (others' may come first: each server announces in
/// its own time).
fn member_event(c: &mut Client, user: &str) -> Value {
    loop {
        let e = event(c);
        if (e["op"] == "member_joined" || e["op"] == "member_left") && e["user"] == user {
            return e;
        }
    }
}

fn users(list: &Value) -> Vec<(String, u64)> {
    let Some(members) = list["members"].as_array() else {
        return Vec::new();
    };
    members
        .iter()
        .map(|m| {
            (
                m["user"].as_str().unwrap().to_owned(),
                m["connections"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn lists_and_join_leave_events_span_the_servers_through_restarts_and_a_killed_server_drops_out() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let config = std::env::temp_dir().join(format!("ringws-presence-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        "[[namespace]]\nprefix = \"club-\"\njoin-leave = true\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let ttl = "2s";
    let flags = [
        "--jwt-secret",
        SECRET,
        "--broker-presence-ttl",
        ttl,
        "--config",
        &config,
    ];
    let (a, b) = nodes(&redis, &flags);
    let mut alice = [member(&a, "alice", "club-1"), member(&a, "alice", "club-1")];
    let mut bob = member(&b, "bob", "club-1");
    // Alice (two connections on A) and Bob (on B), each listed once, from either server.
    let expected = vec![("alice".to_owned(), 2), ("bob".to_owned(), 1)];
    wait_until("both servers' entries listed", patience(), || {
        users(&list(&mut alice[0], "club-1")) == expected
    });
    let seen_from_b = list(&mut bob, "club-1");
    assert_eq!(users(&seen_from_b), expected);
    assert_eq!(seen_from_b["members"][0]["name"], "ALICE");
    assert_eq!(seen_from_b["online"], 3);
    // Carol joins on B, then on A too: announced once, on both servers.
    let mut carol_b = member(&b, "carol", "club-1");
    let e = member_event(&mut alice[0], "carol");
    assert_eq!(
        (&e["op"], &e["user"], &e["name"]),
        (&json!("member_joined"), &json!("carol"), &json!("CAROL"))
    );
    assert_eq!(member_event(&mut bob, "carol")["op"], "member_joined");
    let mut carol_a = member(&a, "carol", "club-1");
    // She leaves B: still on A, so nobody is told; then A too: she left the cluster.
    send(&mut carol_b, json!({"op": "leave", "room": "club-1"}));
    send(&mut carol_a, json!({"op": "leave", "room": "club-1"}));
    let e = member_event(&mut bob, "carol");
    assert_eq!(
        e["op"], "member_left",
        "her next event after her join (her second connection was not announced): {e}"
    );
    // Redis restarts empty: both servers set their entries again.
    redis.kill();
    redis.restart();
    let want = (1, 1, expected.clone());
    wait_for_state(
        "the entries set again after Redis restarted (A connected, B connected, the list)",
        patience() * 2,
        &want,
        || {
            let connected = (a.metric("broker_connected"), b.metric("broker_connected"));
            let listed = if connected == (1, 1) {
                users(&list(&mut alice[0], "club-1"))
            } else {
                Vec::new()
            };
            (connected.0, connected.1, listed)
        },
    );
    // Server B dies without a word: within the ttl it is gone from A's lists.
    drop(bob);
    drop(b);
    let took = wait_until("the dead server's members dropped", patience() * 3, || {
        users(&list(&mut alice[1], "club-1")) == vec![("alice".to_owned(), 2)]
    });
    assert!(
        took < Duration::from_secs(2) + patience(),
        "dropped after {took:?} (ttl {ttl})"
    );
    let _ = std::fs::remove_file(&config);
}

#[test]
fn a_server_stopped_gracefully_leaves_the_lists_at_once_not_after_the_ttl() {
    let Some(redis) = Redis::start() else {
        return;
    };
    // A ttl far longer than the wait below: only the stop itself can explain the drop.
    // Rooms "live-*" have no presence: nothing of them goes to Redis.
    let config = std::env::temp_dir().join(format!("ringws-quiet-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        "[[namespace]]\nprefix = \"live-\"\npresence = false\nhistory = false\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let flags = [
        "--jwt-secret",
        SECRET,
        "--broker-presence-ttl",
        "600s",
        "--config",
        &config,
    ];
    let (a, b) = nodes(&redis, &flags);
    let _watching = member(&a, "alice", "live-1");
    let mut alice = member(&a, "alice", "lobby");
    // Bob's connection stays open through the stop (it never answers the close): the entry
    // goes with the server, not with his close.
    let bob = member(&b, "bob", "lobby");
    let both = vec![("alice".to_owned(), 1), ("bob".to_owned(), 1)];
    wait_until("both servers' entries listed", patience(), || {
        users(&list(&mut alice, "lobby")) == both
    });
    // Alice's live-1 join came before her lobby join, whose entry is there: live-1 has none.
    assert_eq!(
        redis
            .command_args(&["EXISTS", "ringws:room:live-1|presence"])
            .as_deref(),
        Some(":0\r\n"),
        "no presence entries for a room without presence"
    );
    assert_eq!(b.stop(), Some(0), "a graceful stop exits 0");
    // Within the patience: far less than the 10-minute ttl, so only the stop explains it.
    wait_until("the stopped server's members dropped", patience(), || {
        users(&list(&mut alice, "lobby")) == vec![("alice".to_owned(), 1)]
    });
    assert_eq!(
        redis
            .command_args(&["SCARD", "ringws:room:lobby|presence"])
            .as_deref(),
        Some(":1\r\n"),
        "only A is left in the room's set of servers"
    );
    drop(bob);
    let _ = std::fs::remove_file(&config);
}
