//! Two `ringws` processes sharing rooms through one Redis (Debian's `redis-server`, started here
//! on a free loopback port): members of one room on both nodes chat as one room, in order per
//! sender, each message once; a node subscribes only to rooms it has members in; Redis stopped
//! and started again mid-test is survived, visible in `/metrics` and logged once.
//!
//! Needs `redis-server` on the PATH (`tests/run-all.sh` installs it and sets
//! `RINGWS_REQUIRE_REDIS=1`, which makes its absence a failure; elsewhere these tests say they
//! were skipped).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Client, Got, free_port, patience};

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// A `redis-server` child on a loopback port, killed when dropped.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Starts one, or returns `None` (the test is skipped) when `redis-server` is missing and
    /// not required.
    fn start() -> Option<Redis> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(
                std::env::var_os("RINGWS_REQUIRE_REDIS").is_none(),
                "redis-server is not installed (tests/run-all.sh installs it)"
            );
            support::skip(
                std::thread::current().name().unwrap_or("a cluster test"),
                "redis-server is not installed (apt install redis-server)",
            );
            return None;
        }
        let mut redis = Redis {
            port: free_port(),
            child: None,
        };
        redis.restart();
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        wait_until("redis-server answers", patience(), || {
            self.command("PING").is_some_and(|r| r.contains("PONG"))
        });
    }

    /// Kills it (as a crash would).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One inline command; the raw reply.
    fn command(&self, cmd: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(patience())).ok()?;
        s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Nodes subscribed to `room`'s channel.
    fn subscribers(&self, room: &str) -> i64 {
        let reply = self
            .command(&format!("PUBSUB NUMSUB ringws:room:{room}"))
            .expect("PUBSUB NUMSUB");
        reply
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(':'))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected reply {reply:?}"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `ringws --mode chat --broker ...` child, its log in a file; killed when dropped.
struct Node {
    addr: SocketAddr,
    child: Child,
    log: PathBuf,
}

impl Node {
    fn start(redis: &Redis, name: &str) -> Node {
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "ringws-cluster-{}-{name}-{port}.log",
            std::process::id()
        ));
        let io = std::env::var("RINGWS_TEST_IO").unwrap_or_else(|_| "auto".into());
        let child = support::bin(env!("CARGO_BIN_EXE_ringws"))
            .args(["--mode", "chat", "--workers", "2", "--io", &io])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--broker", &redis.url()])
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ringws");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_until("ringws listens", patience() * 2, || {
            TcpStream::connect(addr).is_ok()
        });
        Node { addr, child, log }
    }

    /// A `ringws_broker_*` value from `/metrics`.
    fn metric(&self, name: &str) -> i64 {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(patience())).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.lines()
            .find(|l| l.starts_with(&format!("ringws_{name}{{")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn event(c: &mut Client) -> Value {
    loop {
        match c.next() {
            Got::Text(t) => return serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}")),
            Got::Ping(_) | Got::Pong(_) => continue,
            other => panic!("expected a JSON text frame, got {other:?}"),
        }
    }
}

/// The next message event (presence and the like skipped).
fn message(c: &mut Client) -> Value {
    loop {
        let e = event(c);
        if e["op"] == "message" {
            return e;
        }
    }
}

fn send(c: &mut Client, v: Value) {
    c.send_text(&v.to_string());
}

/// A member of `room` on `node`: its client and id.
fn member(node: &Node, room: &str) -> (Client, String) {
    let mut c = Client::connect(node.addr);
    let welcome = event(&mut c);
    assert_eq!(welcome["op"], "welcome", "{welcome}");
    send(&mut c, json!({"op": "join", "room": room}));
    loop {
        let e = event(&mut c);
        if e["op"] == "joined" {
            break;
        }
    }
    (c, welcome["id"].as_str().unwrap().to_owned())
}

fn say(c: &mut Client, room: &str, text: &str) {
    send(c, json!({"op": "send", "room": room, "text": text}));
}

/// Members of `room` on `node` until both of its workers have one (the id says which worker:
/// `node:worker.slot.generation`).
fn members_on_both_workers(node: &Node, room: &str) -> Vec<(Client, String)> {
    let mut members = Vec::new();
    let mut workers = std::collections::HashSet::new();
    while workers.len() < 2 {
        assert!(
            members.len() < 200,
            "SO_REUSEPORT never chose the other worker"
        );
        let (c, id) = member(node, room);
        let local = id.rsplit(':').next().unwrap();
        workers.insert(local.split('.').next().unwrap().to_owned());
        members.push((c, id));
    }
    members
}

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
        assert!(m.get("online").is_none(), "no per-node count crosses: {m}");
    }
    // Then Alice answers; every member on B (on both its workers) sees Bob's 100 exactly once
    // each before her answer (his node got its own publications back from Redis and dropped
    // them).
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
    wait_until(
        "B saw its own come back and skipped them",
        patience(),
        || b.metric("broker_own_total") >= 100,
    );
    wait_until("A counts what it sent", patience(), || {
        a.metric("broker_sent_total") == 1
    });
    assert_eq!(a.metric("broker_received_total"), 100);
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
        100,
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
    // Local delivery goes on; what was meant for the other node is dropped and counted.
    say(&mut a1, "r", "during-a");
    assert_eq!(message(&mut a1)["text"], "during-a");
    assert_eq!(message(&mut a2)["text"], "during-a");
    say(&mut b1, "r", "during-b");
    assert_eq!(message(&mut b1)["text"], "during-b");
    wait_until("the drops are counted", patience(), || {
        a.metric("broker_dropped_total") >= 1 && b.metric("broker_dropped_total") >= 1
    });
    // Several reconnection attempts fail meanwhile (each node counts its own).
    wait_until("two failed attempts each", patience() * 2, || {
        a.metric("broker_session_failures_total") >= 3
            && b.metric("broker_session_failures_total") >= 3
    });

    redis.restart();
    // The next attempt comes within the backoff's current wait (about 1.6 s at most here).
    let recovered = wait_until("both nodes reconnect", patience() * 2, || {
        a.metric("broker_connected") == 1 && b.metric("broker_connected") == 1
    });
    eprintln!("reconnected {recovered:?} after Redis came back");
    wait_until("both subscribed again", patience(), || {
        redis.subscribers("r") == 2
    });
    say(&mut a1, "r", "after-a");
    assert_eq!(
        message(&mut b1)["text"],
        "after-a",
        "nothing from the outage replayed"
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
fn a_node_whose_broker_is_down_at_start_serves_alone_then_joins() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    redis.kill();
    let a = Node::start(&redis, "a");
    let (mut a1, _) = member(&a, "r");
    let (mut a2, _) = member(&a, "r");
    say(&mut a1, "r", "alone");
    assert_eq!(message(&mut a1)["text"], "alone");
    assert_eq!(message(&mut a2)["text"], "alone");
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
    assert_eq!(message(&mut a1)["text"], "hello");
    assert_eq!(message(&mut a2)["text"], "hello");
}
