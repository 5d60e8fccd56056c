//! The backend API in a cluster: two `ringws` processes and one Redis (started here).
//! `/api/disconnect` asked of one server closes the user's connections on every server;
//! `/api/info` lists every server heard from lately, and a server that died drops out;
//! while Redis is unreachable a disconnect says the other servers could not be told.
//!
//! Needs `redis-server` on the PATH (see `tests/cluster.rs`).

mod support;

use serde_json::{Value, json};
use support::Client;
use support::cluster::{Node, Redis, event, send, wait_until};
use support::patience;

const SECRET: &str = "the cluster api tests' secret 32";
const KEY: &str = "k3y";

fn connect(node: &Node, user: &str) -> Client {
    let token = support::api::token(SECRET.as_bytes(), user, json!({}));
    let (mut c, _) = Client::connect_with(node.addr, &format!("Authorization: Bearer {token}\r\n"));
    assert_eq!(event(&mut c)["user"], user);
    c
}

fn api(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    support::api::call(addr, method, path, Some(KEY), body)
}

/// `(node, connections)` of every server `/api/info` lists.
fn listed(info: &Value) -> Vec<(String, u64)> {
    info["servers"]
        .as_array()
        .map(|servers| {
            servers
                .iter()
                .map(|s| {
                    (
                        s["node"].as_str().unwrap_or_default().to_owned(),
                        s["connections"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn disconnect_reaches_every_server_and_info_lists_the_live_ones() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let addr = format!("127.0.0.1:{}", support::free_port());
    let flags = ["--jwt-secret", SECRET];
    let a = Node::start_with(
        &redis,
        "a",
        &[&flags[..], &["--api-listen", &addr, "--api-key", KEY]].concat(),
    );
    let b = Node::start_with(&redis, "b", &flags);
    wait_until("both servers connected to Redis", patience(), || {
        a.metric("broker_connected") == 1 && b.metric("broker_connected") == 1
    });
    let mut alice_a = connect(&a, "alice");
    let mut alice_b = [connect(&b, "alice"), connect(&b, "alice")];
    let mut bob_b = connect(&b, "bob");
    // Both servers listed, B with its three connections, and the sums.
    let mut info = Value::Null;
    wait_until("both servers in /api/info", patience() * 2, || {
        info = api(&addr, "GET", "/api/info", "").1;
        listed(&info).len() == 2 && listed(&info).iter().any(|(_, c)| *c == 3)
    });
    assert_eq!(info["connections"], 1, "this server's own count: {info}");
    assert_eq!(info["cluster"], json!({"servers": 2, "connections": 4}));
    let me = info["node"].as_str().unwrap().to_owned();
    assert!(listed(&info).contains(&(me, 1)), "{info}");
    // Alice is closed on both servers; Bob, on B, is not.
    let (status, answer) = api(&addr, "POST", "/api/disconnect", r#"{"user":"alice"}"#);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"user": "alice", "disconnected": 1, "servers": "all"})
    );
    alice_a.expect_close(4002);
    for c in &mut alice_b {
        c.expect_close(4002);
    }
    send(&mut bob_b, json!({"op": "join", "room": "still-here"}));
    assert_eq!(event(&mut bob_b)["op"], "joined");
    // B dies: within the staleness bound it is no longer listed.
    drop(b);
    wait_until("the dead server left out", patience() * 3, || {
        listed(&api(&addr, "GET", "/api/info", "").1).len() == 1
    });
    // Without Redis the other servers cannot be told: 503, this server's connections closed.
    let mut alice_again = connect(&a, "alice");
    redis.kill();
    wait_until("server A lost Redis", patience() * 2, || {
        a.metric("broker_connected") == 0
    });
    let (status, answer) = api(&addr, "POST", "/api/disconnect", r#"{"user":"alice"}"#);
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "unavailable");
    alice_again.expect_close(4002);
}
