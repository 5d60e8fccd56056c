//! Shared by the integration tests: a server on an ephemeral loopback port, and a scriptable
//! raw-socket client that can send anything (unmasked frames, bytes split anywhere, garbage).
#![allow(dead_code)]

pub mod api;
pub mod chat;
pub mod cluster;
pub mod tls;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringws::app::echo::Echo;
use ringws::proto::frame::{OpCode, encode_masked_frame};
use ringws::proto::handshake::accept_key;
use ringws::proto::{Config, Connection, Event, Sink};
use ringws::server::IoChoice;
use ringws::server::{Handler, Server, ServerConfig, ServerHandle, Snapshot};

/// How long a test waits for something that should happen at once: 5 s, or
/// `RINGWS_TEST_PATIENCE_SECS` (`tests/aarch64.sh` raises it: under qemu everything is slower).
pub fn patience() -> Duration {
    std::env::var("RINGWS_TEST_PATIENCE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(5), Duration::from_secs)
}

/// A command running one of the crate's binaries (`env!("CARGO_BIN_EXE_...")`), through
/// `RINGWS_TEST_RUNNER` when set (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`: the
/// cross-built binaries cannot be executed directly).
pub fn bin(path: &str) -> std::process::Command {
    match std::env::var("RINGWS_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut words = runner.split_whitespace();
            let mut cmd = std::process::Command::new(words.next().unwrap_or_default());
            cmd.args(words).arg(path);
            cmd
        }
        _ => std::process::Command::new(path),
    }
}

/// Says that a test was skipped, and why, where it is seen: straight to the process's stderr,
/// past the test harness's output capture (a skipped test otherwise reads as a pass).
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// A free loopback port (bound, then released), never one this process handed out before.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    // Below the kernel's ephemeral range (32768 and up by default), where the servers the tests
    // bind to port 0 take theirs: a port handed to a child process cannot be taken by a sibling
    // test's server before the child binds it (a qemu run of the test command lost that race).
    // A random start per process spreads the test binaries; within a process the ports are
    // taken in turn from there, because a port handed to a child is free until the child binds
    // it, and a second look could find it free too (an aarch64 run lost that race: a node's
    // `--listen` was the other node's `--api-listen`, and its test read the API's 401).
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let seed = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() ^ d.as_secs() as u32)
            ^ std::process::id().wrapping_mul(2_654_435_761)
    };
    let _ = NEXT.compare_exchange(
        u32::MAX,
        seed() % SPAN,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    (0..SPAN)
        .map(|_| FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN)
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok())
        .map(|port| port as u16)
        .expect("a free port in 20000..32000")
}

/// The server's log (warnings and errors; `RUST_LOG` chooses otherwise) goes to the test's
/// captured output, which a failing test prints.
fn log_to_test_output() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("ringws=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// A running server, shut down when dropped.
pub struct TestServer {
    handle: Option<ServerHandle>,
    pub addr: SocketAddr,
}

/// The backend under test: `RINGWS_TEST_IO=epoll` (or `uring`) runs every integration test
/// on that backend; unset, the server chooses (io_uring here).
pub fn io_choice() -> IoChoice {
    match std::env::var("RINGWS_TEST_IO").as_deref() {
        Ok("epoll") => IoChoice::Epoll,
        Ok("uring") => IoChoice::Uring,
        _ => IoChoice::Auto,
    }
}

/// A configuration for tests: loopback, port 0, two workers, short timeouts.
pub fn config() -> ServerConfig {
    let mut cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 2,
        io: io_choice(),
        linger: Duration::from_millis(300),
        shutdown_timeout: Duration::from_secs(2),
        tick: Duration::from_millis(20),
        ..ServerConfig::default()
    };
    cfg.proto.close_timeout = Duration::from_millis(500);
    cfg.uring.buf_entries = 64;
    cfg
}

impl TestServer {
    pub fn echo() -> Self {
        Self::start(config(), Echo)
    }

    pub fn start<H: Handler>(cfg: ServerConfig, handler: H) -> Self {
        Self::start_with(cfg, handler, |_| {})
    }

    /// Starts a server after `before` has seen it bound (to attach an application to its
    /// publisher and metrics before the first connection, as the binary does).
    pub fn start_with<H: Handler>(
        cfg: ServerConfig,
        handler: H,
        before: impl FnOnce(&Server<H>),
    ) -> Self {
        log_to_test_output();
        let server = Server::bind(cfg, handler).expect("bind");
        before(&server);
        let addr = server.local_addr();
        let handle = server.start().expect("start");
        TestServer {
            handle: Some(handle),
            addr,
        }
    }

    pub fn metrics(&self) -> ringws::server::Metrics {
        self.handle.as_ref().unwrap().metrics()
    }

    pub fn publisher(&self) -> ringws::server::Publisher {
        self.handle.as_ref().unwrap().publisher()
    }

    pub fn counters(&self) -> Snapshot {
        self.handle.as_ref().unwrap().counters()
    }

    /// Waits until `f` holds for the counters, or fails with what they were.
    pub fn wait_counters(&self, what: &str, f: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let start = Instant::now();
        loop {
            let c = self.counters();
            if f(&c) {
                return c;
            }
            assert!(
                start.elapsed() < patience(),
                "timed out waiting for {what}: {c:#?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `value` of the counters has not changed for five polls in a row (a quarter
    /// of a second), or fails after the patience; returns the counters then.
    pub fn wait_stable(&self, what: &str, value: impl Fn(&Snapshot) -> i64) -> Snapshot {
        let start = Instant::now();
        let (mut last, mut same) = (value(&self.counters()), 0);
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let c = self.counters();
            if value(&c) == last {
                same += 1;
                if same == 5 {
                    return c;
                }
            } else {
                (last, same) = (value(&c), 0);
            }
            assert!(
                start.elapsed() < patience(),
                "timed out waiting for {what}: {c:#?}"
            );
        }
    }

    /// Graceful shutdown; returns how long it took.
    pub fn shutdown(mut self) -> Duration {
        let handle = self.handle.take().unwrap();
        let metrics = handle.metrics();
        let start = Instant::now();
        handle.shutdown();
        handle.join().expect("workers stop cleanly");
        let took = start.elapsed();
        assert_no_ring_faults(&metrics);
        took
    }
}

/// The buffer ring's accounting and the kernel never disagree in a correct server: a fault
/// (a connection failed, its buffer withheld) fails the test, during the shutdown too.
fn assert_no_ring_faults(metrics: &ringws::server::Metrics) {
    let faults: i64 = metrics.per_worker().iter().map(|w| w.ring_faults).sum();
    assert_eq!(
        faults, 0,
        "io_uring buffer faults (ringws_ring_faults_total)"
    );
}

/// Every test server is stopped and joined, and a worker that failed (an I/O error, a panic,
/// a relay that panicked) fails the test: at teardown too, not only in tests that call
/// `shutdown`. (While the test is already failing the error is printed instead: a second panic
/// would abort and hide the first.)
impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let metrics = handle.metrics();
            handle.shutdown();
            let result = handle.join();
            match result {
                Err(e) if std::thread::panicking() => {
                    eprintln!("the server failed at teardown too: {e}")
                }
                Err(e) => panic!("the server failed at teardown: {e}"),
                Ok(()) if !std::thread::panicking() => assert_no_ring_faults(&metrics),
                Ok(()) => {}
            }
        }
    }
}

/// What the client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
    /// A compressed message (RSV1): whether text, and its payload as sent (not inflated).
    Compressed(bool, Vec<u8>),
    /// The server closed the TCP connection.
    Eof,
}

#[derive(Default)]
struct Collect {
    got: Vec<Got>,
}

impl Sink for Collect {
    fn event(&mut self, event: Event<'_>) {
        self.got.push(match event {
            Event::Text(t) => Got::Text(t.to_owned()),
            Event::Binary(b) => Got::Binary(b.to_vec()),
            Event::Ping(p) => Got::Ping(p.to_vec()),
            Event::Pong(p) => Got::Pong(p.to_vec()),
            Event::Close { code, reason } => Got::Close(code.map(|c| c.0), reason.to_owned()),
            Event::Compressed { text, payload } => Got::Compressed(text, payload.to_vec()),
        });
    }
    // The client does not answer on its own: tests say what to send.
    fn transmit(&mut self, _opcode: OpCode, _frame: &[u8]) {}
}

/// A raw client.
pub struct Client {
    pub stream: TcpStream,
    /// TLS over `stream` (a `wss://` client), when set: everything goes through it.
    tls: Option<Box<rustls::ClientConnection>>,
    conn: Connection,
    cfg: Config,
    pending: std::collections::VecDeque<Got>,
    eof: bool,
    /// Whether this client has sent a close frame (then it does not answer the server's).
    sent_close: bool,
}

pub const KEY: [u8; 4] = [0xa1, 0xb2, 0xc3, 0xd4];

pub fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

impl Client {
    /// A TCP connection, nothing sent.
    pub fn raw(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(patience())).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut cfg = Config::client();
        cfg.limits.max_message_bytes = 64 << 20;
        cfg.limits.max_frame_bytes = 64 << 20;
        cfg.limits.max_fragments = 1 << 20;
        Client {
            stream,
            tls: None,
            conn: Connection::new(),
            cfg,
            pending: Default::default(),
            eof: false,
            sent_close: false,
        }
    }

    /// A TCP connection with TLS (for `localhost`, trusting what `config` trusts), nothing
    /// sent yet: the handshake goes with the first bytes.
    pub fn raw_tls(addr: SocketAddr, config: &std::sync::Arc<rustls::ClientConfig>) -> Self {
        Self::raw_tls_for(addr, config, "localhost")
    }

    /// The same for the server `name` (sent in SNI).
    pub fn raw_tls_for(
        addr: SocketAddr,
        config: &std::sync::Arc<rustls::ClientConfig>,
        name: &str,
    ) -> Self {
        let mut c = Self::raw(addr);
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        c.tls = Some(Box::new(
            rustls::ClientConnection::new(config.clone(), name).unwrap(),
        ));
        c
    }

    /// A `wss://` connection: TLS, then the upgrade (101 checked).
    pub fn connect_tls(addr: SocketAddr, config: &std::sync::Arc<rustls::ClientConfig>) -> Self {
        Self::connect_tls_with(addr, config, "").0
    }

    /// A `wss://` connection to the server `name` (sent in SNI).
    pub fn connect_tls_for(
        addr: SocketAddr,
        config: &std::sync::Arc<rustls::ClientConfig>,
        name: &str,
    ) -> Self {
        let mut c = Self::raw_tls_for(addr, config, name);
        c.upgrade("");
        c
    }

    /// The same with `extra` header lines in the upgrade; returns the response head too.
    pub fn connect_tls_with(
        addr: SocketAddr,
        config: &std::sync::Arc<rustls::ClientConfig>,
        extra: &str,
    ) -> (Self, String) {
        let mut c = Self::raw_tls(addr, config);
        let head = c.upgrade(extra);
        (c, head)
    }

    /// Sends the upgrade request with `extra` header lines, checks the 101, and returns its head.
    fn upgrade(&mut self, extra: &str) -> String {
        let request = upgrade_request("/").replacen("\r\n\r\n", &format!("\r\n{extra}\r\n"), 1);
        self.send_raw(request.as_bytes());
        let (status, head, rest) = self.read_http_head();
        assert_eq!(status, 101, "{head}");
        if head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions: permessage-deflate")
        {
            self.conn = Connection::with_rsv(ringws::proto::frame::RSV1);
        }
        self.feed(rest);
        head
    }

    /// The certificate the server presented (a `wss://` connection whose handshake is done).
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        let tls = self.tls.as_ref()?;
        Some(tls.peer_certificates()?.first()?.to_vec())
    }

    /// `wss://` only: sends `plaintext` as one TLS record with its last byte changed on the
    /// way (the AEAD tag no longer matches).
    pub fn send_tampered_record(&mut self, plaintext: &[u8]) {
        let tls = self.tls.as_mut().expect("a wss:// client");
        tls.writer().write_all(plaintext).unwrap();
        let mut record = Vec::new();
        while tls.wants_write() {
            tls.write_tls(&mut record).unwrap();
        }
        *record.last_mut().expect("a record") ^= 1;
        self.stream.write_all(&record).unwrap();
    }

    /// Reads until the stream ends or fails: what ended it (`"eof"`, or the error, e.g. the
    /// TLS alert the server sent).
    pub fn read_to_failure(&mut self) -> String {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match self.read_bytes(&mut chunk) {
                Ok(0) => return "eof".into(),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return e.to_string(),
            }
        }
    }

    /// Writes `bytes` (through TLS when there is TLS).
    fn write_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let Some(tls) = self.tls.as_mut() else {
            return self.stream.write_all(bytes);
        };
        // rustls takes so much plaintext at a time: send what it made, then the rest.
        let mut rest = bytes;
        loop {
            let n = tls.writer().write(rest)?;
            rest = &rest[n..];
            while tls.wants_write() {
                tls.write_tls(&mut self.stream)?;
            }
            if rest.is_empty() {
                return Ok(());
            }
            if n == 0 {
                // Its buffer is full before the handshake is done: finish the handshake.
                tls.complete_io(&mut self.stream)?;
            }
        }
    }

    /// Reads what came (through TLS when there is TLS): 0 at the end of the stream.
    fn read_bytes(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.stream.read(buf);
        };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n), // 0: close_notify
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            while tls.wants_write() {
                tls.write_tls(&mut self.stream)?;
            }
            if tls.read_tls(&mut self.stream)? == 0 {
                return Ok(0);
            }
            tls.process_new_packets().map_err(std::io::Error::other)?;
            while tls.wants_write() {
                tls.write_tls(&mut self.stream)?;
            }
        }
    }

    /// A WebSocket connection: upgrade done, 101 checked.
    pub fn connect(addr: SocketAddr) -> Self {
        Self::connect_with(addr, "").0
    }

    /// A WebSocket connection whose upgrade carries `extra` header lines (each ending in
    /// CRLF); returns the response head too. When the server accepts permessage-deflate the
    /// client takes RSV1 frames (as [`Got::Compressed`]).
    pub fn connect_with(addr: SocketAddr, extra: &str) -> (Self, String) {
        let mut c = Self::raw(addr);
        let request = upgrade_request("/").replacen("\r\n\r\n", &format!("\r\n{extra}\r\n"), 1);
        c.send_raw(request.as_bytes());
        let (status, head, rest) = c.read_http_head();
        if head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions: permessage-deflate")
        {
            c.conn = Connection::with_rsv(ringws::proto::frame::RSV1);
        }
        assert_eq!(status, 101, "{head}");
        let accept = accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
        let expected = format!(
            "Sec-WebSocket-Accept: {}",
            std::str::from_utf8(&accept).unwrap()
        );
        assert!(head.contains(&expected), "{head}");
        c.feed(rest);
        (c, head)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.write_bytes(bytes).expect("write");
    }

    /// A masked frame.
    pub fn send(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        self.sent_close |= opcode == OpCode::Close;
        self.send_raw(&encode_masked_frame(opcode, fin, KEY, payload));
    }

    pub fn send_text(&mut self, text: &str) {
        self.send(OpCode::Text, true, text.as_bytes());
    }

    pub fn send_close(&mut self, code: u16, reason: &str) {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        self.send(OpCode::Close, true, &payload);
    }

    /// Reads an HTTP response head; returns (status, head, bytes after it).
    pub fn read_http_head(&mut self) -> (u16, String, Vec<u8>) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                return (status, head, buf[end + 4..].to_vec());
            }
            let n = match self.read_bytes(&mut chunk) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue, // EINTR: retry
                other => other.expect("read response"),
            };
            assert!(
                n > 0,
                "EOF before the response head: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads everything until the server closes; for plain HTTP responses.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match self.read_bytes(&mut chunk) {
                Ok(0) => return all,
                Ok(n) => all.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return all,
                Err(e) => panic!("read to EOF: {e}"),
            }
        }
    }

    fn feed(&mut self, mut bytes: Vec<u8>) {
        let mut sink = Collect::default();
        let result = self.conn.handle_read(&self.cfg, &mut bytes, &mut sink);
        assert!(result.is_ok(), "the server sent invalid frames: {result:?}");
        self.pending.extend(sink.got);
    }

    /// The next thing received (frames, or EOF), waiting up to [`patience`].
    pub fn next(&mut self) -> Got {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(got) = self.pending.pop_front() {
                return got;
            }
            if self.eof {
                return Got::Eof;
            }
            match self.read_bytes(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.feed(chunk[..n].to_vec()),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => self.eof = true,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue, // EINTR: retry
                Err(e) => panic!("read failed (timeout?): {e}"),
            }
        }
    }

    /// Expects a close frame with `code`, answers it as a client must (RFC 6455 §5.5.1) unless
    /// this client sent one first, then expects the server's EOF. Without the answer the server
    /// would wait its close timeout, as long as this client's read timeout: a race.
    pub fn expect_close(&mut self, code: u16) {
        match self.next() {
            Got::Close(Some(c), reason) => assert_eq!(c, code, "reason: {reason}"),
            other => panic!("expected close {code}, got {other:?}"),
        }
        if !self.sent_close {
            self.sent_close = true;
            let payload = code.to_be_bytes();
            // The server may already have closed (it fails some connections at once): ignored.
            let _ = self.write_bytes(&encode_masked_frame(OpCode::Close, true, KEY, &payload));
        }
        self.expect_eof();
    }

    /// Expects the server to close the TCP connection (after nothing but pings/pongs).
    pub fn expect_eof(&mut self) {
        loop {
            match self.next() {
                Got::Eof => return,
                Got::Ping(_) | Got::Pong(_) => continue,
                other => panic!("expected EOF, got {other:?}"),
            }
        }
    }
}

/// This process's resident memory, in bytes.
pub fn rss_bytes() -> u64 {
    rss_bytes_of("self")
}

/// A process's resident memory, in bytes (`pid`: a number or `self`).
pub fn rss_bytes_of(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// The bytes of a connection that its server has not read yet: what waits in the client's
/// send queue (`client` is its local address) plus what waits in the server's receive queue
/// (the server's socket, local `server`, remote `client`), from `/proc/net/tcp`. Large means
/// the server stopped reading: a reading server drains both at once.
pub fn unread_bytes(client: SocketAddr, server: SocketAddr) -> u64 {
    let hex = |addr: SocketAddr| {
        let SocketAddr::V4(v4) = addr else {
            panic!("unread_bytes: {addr} is not IPv4")
        };
        // /proc/net/tcp prints the address as the u32 in host order and the port in hex.
        format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(v4.ip().octets()),
            v4.port()
        )
    };
    let (client, server) = (hex(client), hex(server));
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let mut tx = None;
    let mut rx = None;
    for row in table.lines().skip(1) {
        let fields: Vec<&str> = row.split_whitespace().collect();
        let (Some(local), Some(remote), Some(queues)) =
            (fields.get(1), fields.get(2), fields.get(4))
        else {
            continue;
        };
        let (t, r) = queues.split_once(':').unwrap_or(("0", "0"));
        let parse = |q: &str| u64::from_str_radix(q, 16).unwrap_or(0);
        if *local == client {
            tx = Some(parse(t));
        } else if *local == server && *remote == client {
            rx = Some(parse(r));
        }
    }
    let tx = tx.unwrap_or_else(|| panic!("no /proc/net/tcp row for the client {client}"));
    tx + rx.unwrap_or_else(|| panic!("no /proc/net/tcp row for the server's side {server}"))
}

/// Polls `f` until it holds, failing the test after `patience()`.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < patience(), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The process's open file descriptors.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The `ringws` binary in a process of its own (`--mode echo`, one worker, the backend under
/// test), on a free port: for what must be measured of the server alone (its memory).
pub struct Binary {
    child: std::process::Child,
    pub addr: SocketAddr,
}

impl Binary {
    /// The echo server.
    pub fn start(extra: &[&str]) -> Binary {
        Self::start_mode("echo", extra)
    }

    /// The server in `mode` (`echo` or `chat`).
    pub fn start_mode(mode: &str, extra: &[&str]) -> Binary {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let io = match io_choice() {
            IoChoice::Epoll => "epoll",
            IoChoice::Uring => "uring",
            IoChoice::Auto => "auto",
        };
        let child = bin(env!("CARGO_BIN_EXE_ringws"))
            .args(["--mode", mode, "--listen", &addr.to_string()])
            .args(["--workers", "1", "--io", io])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start ringws");
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(start.elapsed() < patience(), "ringws did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Binary { child, addr }
    }

    /// The server's resident memory, in bytes.
    pub fn rss(&self) -> u64 {
        rss_bytes_of(&self.child.id().to_string())
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
