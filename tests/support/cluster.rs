//! Clusters for the tests: a `redis-server` child and `ringws --mode chat --broker` children,
//! and a chat member's steps against them (`tests/cluster.rs`, `tests/cluster_history.rs`).
//!
//! A node's log goes to a file in the temporary directory, removed with the node unless
//! `RINGWS_KEEP_LOGS` is set; `RINGWS_NODE_LOG` gives the nodes' `RUST_LOG` (default `info`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Client, Got, free_port, patience};

pub fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// Waits until `f` observes `want`; on timeout the panic shows what it saw last.
pub fn wait_for_state<T: PartialEq + std::fmt::Debug>(
    what: &str,
    within: Duration,
    want: &T,
    mut f: impl FnMut() -> T,
) -> Duration {
    let start = Instant::now();
    loop {
        let seen = f();
        if &seen == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{what}: not within {within:?}; last seen {seen:?}, wanted {want:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `redis-server` child on a loopback port, killed when dropped.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    /// Where it keeps its data (persistence on), if anywhere.
    dir: Option<PathBuf>,
}

impl Redis {
    /// Starts one, or returns `None` (the test is skipped) when `redis-server` is missing and
    /// not required.
    pub fn start() -> Option<Redis> {
        Redis::start_in(None)
    }

    /// Starts one that keeps its data (append-only file, fsync on every write) in `dir`: a
    /// kill and a restart lose nothing it acknowledged.
    pub fn start_persistent(dir: PathBuf) -> Option<Redis> {
        Redis::start_in(Some(dir))
    }

    fn start_in(dir: Option<PathBuf>) -> Option<Redis> {
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
            super::skip(
                std::thread::current().name().unwrap_or("a cluster test"),
                "redis-server is not installed (apt install redis-server)",
            );
            return None;
        }
        let mut redis = Redis {
            port: free_port(),
            child: None,
            dir,
        };
        redis.restart();
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--protected-mode", "no"]);
        match &self.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).unwrap();
                cmd.args(["--appendonly", "yes", "--appendfsync", "always"])
                    .arg("--dir")
                    .arg(dir);
            }
            None => {
                cmd.args(["--appendonly", "no"]);
            }
        }
        let child = cmd
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
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One inline command; the raw reply.
    pub fn command(&self, cmd: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(patience())).ok()?;
        s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// One command with its arguments (RESP, so any bytes pass); the raw reply.
    pub fn command_args(&self, args: &[&str]) -> Option<String> {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(patience())).ok()?;
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Nodes subscribed to `room`'s channel.
    pub fn subscribers(&self, room: &str) -> i64 {
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
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A `ringws --mode chat --broker ...` child, its log in a file; killed when dropped.
pub struct Node {
    pub addr: SocketAddr,
    child: Child,
    log: PathBuf,
}

impl Node {
    pub fn start(redis: &Redis, name: &str) -> Node {
        Node::start_with(redis, name, &[])
    }

    /// The same with more flags.
    pub fn start_with(redis: &Redis, name: &str, extra: &[&str]) -> Node {
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "ringws-cluster-{}-{name}-{port}.log",
            std::process::id()
        ));
        let io = std::env::var("RINGWS_TEST_IO").unwrap_or_else(|_| "auto".into());
        let child = super::bin(env!("CARGO_BIN_EXE_ringws"))
            .args(["--mode", "chat", "--workers", "2", "--io", &io])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--broker", &redis.url()])
            // Members here send as fast as they can (order under load): no rate limits (they
            // are tested in tests/identity.rs).
            .args(["--send-rate", "0", "--join-rate", "0"])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RINGWS_NODE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start ringws");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_until("ringws listens", patience() * 2, || {
            TcpStream::connect(addr).is_ok()
        });
        Node { addr, child, log }
    }

    /// A `ringws_broker_*` value from `/metrics`.
    pub fn metric(&self, name: &str) -> i64 {
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

    /// The status of a `GET` of `path`.
    pub fn http_status(&self, path: &str) -> u16 {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(patience())).unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let mut head = String::new();
        let _ = s.read_to_string(&mut head);
        head.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status: {head}"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server with SIGTERM (a graceful stop) and waits for it to exit: its exit
    /// code.
    pub fn stop(mut self) -> Option<i32> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut code = None;
        wait_until("the server exits", patience() * 2, || {
            match self.child.try_wait().unwrap() {
                Some(status) => {
                    code = status.code();
                    true
                }
                None => false,
            }
        });
        code
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("RINGWS_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

pub fn event(c: &mut Client) -> Value {
    loop {
        match c.next() {
            Got::Text(t) => return serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}")),
            Got::Ping(_) | Got::Pong(_) => continue,
            other => panic!("expected a JSON text frame, got {other:?}"),
        }
    }
}

/// The next message event (presence and the like skipped).
pub fn message(c: &mut Client) -> Value {
    loop {
        let e = event(c);
        if e["op"] == "message" {
            return e;
        }
    }
}

pub fn send(c: &mut Client, v: Value) {
    c.send_text(&v.to_string());
}

/// A member of `room` on `node`: its client and id.
pub fn member(node: &Node, room: &str) -> (Client, String) {
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

pub fn say(c: &mut Client, room: &str, text: &str) {
    send(c, json!({"op": "send", "room": room, "text": text}));
}

/// Members of `room` on `node` until both of its workers have one (the id says which worker:
/// `node:worker.slot.generation`).
pub fn members_on_both_workers(node: &Node, room: &str) -> Vec<(Client, String)> {
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

/// Two servers, once both have their session with Redis (a join before that is answered
/// without knowing the room's log: correct, but not what these tests are about).
pub fn nodes(redis: &Redis, flags: &[&str]) -> (Node, Node) {
    let (a, b) = (
        Node::start_with(redis, "a", flags),
        Node::start_with(redis, "b", flags),
    );
    wait_until("both servers connected to Redis", patience(), || {
        a.metric("broker_connected") == 1 && b.metric("broker_connected") == 1
    });
    (a, b)
}
