//! The single-threaded mio event loop that drives every connection.
//!
//! The engine knows how to open connections (TCP connect, then the upgrade), how to keep a fixed
//! number of messages in flight on each (ping-pong: one; pipelined: the depth), how to write as
//! fast as the socket accepts (flood), how to join chat rooms and publish to them at a fixed
//! rate (broadcast) and how to close them; the run drivers in
//! [`run`](mod@crate::run) decide when. All reads go through one shared buffer: a connection owns no
//! receive buffer (the protocol core spills only a message that spans reads), which is what lets
//! one process hold ten thousand idle connections.

use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use ringws::proto::{CloseCode, Config, Timestamp};

use crate::broadcast::{self, Plan};
use crate::client::{Client, Phase};
use crate::handshake::{self, HandshakeError};
use crate::inbox::{Chat, Inbox};
use crate::rng::Rng;
use crate::stats::{ErrorCounts, Latency, Lateness};
use crate::target::Target;
use crate::verify::{Mismatch, Payload};

/// The shared receive buffer's size.
const READ_BUF: usize = 256 * 1024;
/// How many error descriptions are kept for the report.
const MAX_NOTES: usize = 8;
/// Bits of a sequence number that count messages; the connection index sits above them.
const SEQ_BITS: u32 = 40;
/// Bytes of frames a flooding connection queues per write.
const FLOOD_BATCH_BYTES: usize = 64 * 1024;
/// The largest echo accepted, in bytes: the client must not be the side that limits the
/// message size (the protocol core's server default is 64 KiB).
const MAX_ECHO_BYTES: u32 = 64 << 20;

/// What the connections do once open.
#[derive(Debug, Clone)]
pub enum Workload {
    /// Nothing: hold the connection, answering the server's pings (any message from the server
    /// is an error).
    Idle,
    /// `depth` messages in flight per connection (1: ping-pong), each echo checked in order
    /// against this payload. Whenever echoes come back, every message owed is written in one go.
    Echo {
        /// The message template.
        payload: Payload,
        /// Messages in flight per connection.
        depth: u64,
    },
    /// Open loop: every connection writes messages as fast as its socket accepts them, and
    /// every echo is checked in order.
    Flood(Payload),
    /// Chat rooms: every connection joins its rooms on open; once sending, the publishers
    /// publish at the plan's rate and every subscriber's deliveries are counted and checked
    /// (see [`broadcast`]).
    Broadcast(Plan),
}

impl Workload {
    /// The messages' template, if the workload sends any.
    fn payload(&self) -> Option<&Payload> {
        match self {
            Workload::Idle | Workload::Broadcast(_) => None,
            Workload::Echo { payload, .. } | Workload::Flood(payload) => Some(payload),
        }
    }
}

/// The sequence number that follows `prev` on connection `conn`: the connection's index above
/// [`SEQ_BITS`] bits of message count (which wrap).
pub fn next_seq(conn: usize, prev: u64) -> u64 {
    ((conn as u64) << SEQ_BITS) | (prev.wrapping_add(1) & ((1 << SEQ_BITS) - 1))
}

/// How many messages a connection owes the socket to get back to `depth` in flight.
pub fn owed(depth: u64, in_flight: u64) -> u64 {
    depth.saturating_sub(in_flight)
}

/// How many frames of `frame_len` bytes a flooding connection queues per write.
pub fn flood_batch(frame_len: usize) -> usize {
    (FLOOD_BATCH_BYTES / frame_len.max(1)).max(1)
}

/// Counts over the whole run, and over the measurement window.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections whose setup was started.
    pub started: usize,
    /// Connections whose setup finished (open or failed).
    pub settled: usize,
    /// Connections open now.
    pub open: usize,
    /// Verified echoes since the start.
    pub messages: u64,
    /// Verified echoes since the window opened.
    pub window_messages: u64,
    /// Messages sent since the start.
    pub sent: u64,
    /// Messages sent since the window opened.
    pub window_sent: u64,
    /// Round trips since the window opened.
    pub latency: Latency,
    /// Pings received from the server since the start (each answered with a pong).
    pub pings: u64,
    /// Pings received since the window opened.
    pub window_pings: u64,
    /// How late the server's pings came, since the window opened.
    pub lateness: Lateness,
    /// TLS connections whose handshake resumed a session (`--tls-resume`).
    pub tls_resumed: usize,
    /// Every error since the start.
    pub errors: ErrorCounts,
    /// The first few error descriptions.
    pub notes: Vec<String>,
}

/// Why a connection failed.
#[derive(Debug)]
enum Failure {
    Connect(io::Error),
    Handshake(HandshakeError),
    Mismatch(Mismatch),
    Closed(&'static str),
    Protocol(ringws::proto::Error),
    Io(io::Error),
}

/// State shared by all connections.
struct Shared {
    cfg: Config,
    workload: Workload,
    /// Send a message on open and after each echo.
    sending: bool,
    /// Count messages and latencies into the window.
    recording: bool,
    epoch: Instant,
    counters: Counters,
    /// Broadcast: what was published and received.
    bcast: Option<broadcast::State>,
    /// Broadcast: when publishing started.
    publish_start: Option<Instant>,
}

/// The event loop and its connections.
pub struct Engine {
    poll: Poll,
    events: Events,
    clients: Vec<Client>,
    rbuf: Box<[u8]>,
    target: Target,
    /// Where broadcast publishers connect, when not to `target` (another node).
    pub publish_target: Option<Target>,
    /// Broadcast: publications go through the chat's backend API instead.
    pub api: Option<crate::api::ApiPublisher>,
    sources: Vec<IpAddr>,
    rng: Rng,
    shared: Shared,
}

impl Engine {
    /// An engine for `target`; new connections bind to `sources` in turn (none: the kernel picks).
    pub fn new(target: Target, sources: Vec<IpAddr>, workload: Workload) -> io::Result<Self> {
        let workload_plan = match &workload {
            Workload::Broadcast(plan) => Some(*plan),
            _ => None,
        };
        Ok(Self {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            clients: Vec::new(),
            rbuf: vec![0u8; READ_BUF].into_boxed_slice(),
            target,
            publish_target: None,
            api: None,
            sources,
            rng: Rng::from_os(),
            shared: Shared {
                cfg: client_config(),
                workload,
                sending: false,
                recording: false,
                epoch: Instant::now(),
                counters: Counters::default(),
                bcast: workload_plan.map(broadcast::State::new),
                publish_start: None,
            },
        })
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// permessage-deflate over the connections: how many agreed, and the inflated and
    /// compressed bytes of what they received compressed.
    pub fn compression(&self) -> (usize, u64, u64) {
        self.clients
            .iter()
            .filter_map(|c| c.pmd.as_deref())
            .fold((0, 0, 0), |(n, plain, packed), p| {
                (n + 1, plain + p.plain_in, packed + p.packed_in)
            })
    }

    /// Connections being set up (connect or handshake in progress).
    pub fn pending(&self) -> usize {
        self.shared.counters.started - self.shared.counters.settled
    }

    /// Starts setting up one more connection.
    pub fn start_connection(&mut self) {
        let i = self.clients.len();
        let source = match self.sources.len() {
            0 => None,
            n => Some(self.sources[i % n]),
        };
        let key = handshake::key_from(self.rng.bytes16());
        let seed = self.rng.next_u64() as u32;
        self.shared.counters.started += 1;
        // Broadcast publishers (connections past the subscribers) may go to another node.
        let target = match (&self.publish_target, self.shared.bcast.as_ref()) {
            (Some(t), Some(b)) if matches!(b.plan.role(i), broadcast::Role::Publisher(_)) => t,
            _ => &self.target,
        };
        let tls = target.tls.clone().map(|t| (t, target.host.clone()));
        let registered = Client::connect(target.addr, source, key, seed).and_then(|mut c| {
            if let Some((tls, host)) = tls {
                c.tls = Some(Box::new(tls.session(&host)?));
            }
            if target.raw_echo {
                c.raw = Some(Box::default());
            }
            if let Some(s) = c.stream.as_mut() {
                self.poll.registry().register(
                    s,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
            }
            Ok(c)
        });
        match registered {
            Ok(c) => self.clients.push(c),
            Err(e) => {
                self.shared.counters.settled += 1;
                self.shared.counters.errors.connect += 1;
                self.shared.note(format!("connect: {e}"));
            }
        }
    }

    /// Fails every connection still being set up (the setup deadline passed).
    pub fn abandon_pending(&mut self) {
        for i in 0..self.clients.len() {
            if matches!(self.clients[i].phase, Phase::Connecting | Phase::Handshake) {
                let e = io::Error::new(io::ErrorKind::TimedOut, "setup timed out");
                self.fail(i, Failure::Connect(e));
            }
        }
    }

    /// Starts the load: every open connection sends its first messages (ping-pong, pipelined:
    /// up to the depth; flood: until its socket is full), and echoes are answered with more.
    pub fn start_sending(&mut self) {
        self.shared.sending = true;
        if self.shared.bcast.is_some() {
            self.shared.publish_start = Some(Instant::now());
            self.publish_due();
        }
        let Engine {
            clients, shared, ..
        } = self;
        let mut failed = Vec::new();
        for (i, c) in clients.iter_mut().enumerate() {
            if c.phase == Phase::Open {
                if let Err(f) = shared.send_more(i, c) {
                    failed.push((i, f));
                }
            }
        }
        for (i, f) in failed {
            self.fail(i, f);
        }
    }

    /// Stops sending (broadcast: publishing); what arrives is still read and counted.
    pub fn stop_sending(&mut self) {
        self.shared.sending = false;
    }

    /// The instant stamps are measured from.
    pub fn epoch(&self) -> Instant {
        self.shared.epoch
    }

    /// Broadcast: what was published and received so far.
    pub fn broadcast(&self) -> Option<&broadcast::State> {
        self.shared.bcast.as_ref()
    }

    /// Broadcast: joins the open connections have asked for and not had acknowledged yet.
    pub fn joins_pending(&self) -> u64 {
        let Some(b) = &self.shared.bcast else {
            return 0;
        };
        let open = |i: &usize| self.clients[*i].phase == Phase::Open;
        (0..self.clients.len())
            .filter(open)
            .map(|i| u64::from(b.owed_joins(i)))
            .sum()
    }

    /// Broadcast: publications the open subscribers have not received (yet).
    pub fn undelivered(&self) -> u64 {
        let Some(b) = &self.shared.bcast else {
            return 0;
        };
        b.undelivered(|i| self.clients.get(i).is_some_and(|c| c.phase == Phase::Open))
    }

    /// Broadcast: how long until the next publication is due (`None`: not publishing).
    fn until_next_publication(&self) -> Option<Duration> {
        let (b, start) = (self.shared.bcast.as_ref()?, self.shared.publish_start?);
        if !self.shared.sending {
            return None;
        }
        let at = start + b.plan.due_at(b.next);
        Some(at.saturating_duration_since(Instant::now()))
    }

    /// Broadcast: sends every publication due by now, each from its publisher in one write.
    /// A publisher that is not open skips its turn (its failure is already counted).
    fn publish_due(&mut self) {
        let Engine {
            clients, shared, ..
        } = self;
        let (Some(b), Some(start)) = (shared.bcast.as_mut(), shared.publish_start) else {
            return;
        };
        if !shared.sending {
            return;
        }
        let due = b.plan.due(start.elapsed());
        let mut failed = Vec::new();
        while b.next < due {
            let (room, publisher, seq) = b.take();
            if let Some(api) = &self.api {
                api.publish(room, publisher, seq);
                shared.counters.sent += 1;
                if shared.recording {
                    shared.counters.window_sent += 1;
                }
                continue;
            }
            let i = b.plan.subscribers + publisher;
            let Some(c) = clients.get_mut(i).filter(|c| c.phase == Phase::Open) else {
                continue;
            };
            let stamp = broadcast::Stamp {
                publisher,
                seq,
                sent_ns: shared.epoch.elapsed().as_nanos() as u64,
            };
            let mut text = Vec::with_capacity(96);
            broadcast::write_send(&mut text, room, stamp);
            if c.queue_text(&shared.cfg, &text).is_err() {
                continue;
            }
            shared.counters.sent += 1;
            if shared.recording {
                shared.counters.window_sent += 1;
            }
            c.last_sent = Instant::now();
            if let Err(e) = c.flush() {
                failed.push((i, Failure::Io(e)));
            }
        }
        for (i, f) in failed {
            self.fail(i, f);
        }
    }

    /// Sets the server's ping interval that ping lateness is measured against (default zero:
    /// the lateness is then the interval itself).
    pub fn expect_pings_every(&mut self, interval: Duration) {
        self.shared.counters.lateness = Lateness::new(interval);
    }

    /// Opens (or reopens) the measurement window: window counters, latencies and ping lateness
    /// start at zero.
    pub fn open_window(&mut self) {
        let c = &mut self.shared.counters;
        c.window_messages = 0;
        c.window_sent = 0;
        c.latency.reset();
        c.window_pings = 0;
        c.lateness.reset();
        self.shared.recording = true;
    }

    /// Closes the measurement window: later echoes are no longer counted into it.
    pub fn close_window(&mut self) {
        self.shared.recording = false;
    }

    /// Waits up to `timeout` for socket events and handles them.
    pub fn turn(&mut self, timeout: Duration) -> io::Result<()> {
        let timeout = self
            .until_next_publication()
            .map_or(timeout, |d| d.min(timeout));
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let ready: Vec<(usize, bool, bool)> = self
            .events
            .iter()
            .map(|e| {
                let err = e.is_error() || e.is_read_closed() || e.is_write_closed();
                (e.token().0, e.is_readable() || err, e.is_writable() || err)
            })
            .collect();
        for (i, readable, writable) in ready {
            if i < self.clients.len() {
                if let Err(f) = self.drive(i, readable, writable) {
                    self.fail(i, f);
                }
            }
        }
        self.publish_due();
        Ok(())
    }

    /// Resets every connection (RST: `SO_LINGER` 0, then close) instead of closing it, as a
    /// crashed client or a dropped network path leaves it to the server.
    pub fn abort_all(&mut self) {
        self.shared.sending = false;
        self.shared.recording = false;
        for c in &mut self.clients {
            if let Some(s) = &c.stream {
                let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
            }
            finish(&self.poll, c);
        }
    }

    /// Sends a close frame on every open connection and waits up to `limit` for the replies.
    /// Nothing that happens during this counts as an error.
    pub fn close_all(&mut self, limit: Duration) -> io::Result<()> {
        self.shared.sending = false;
        self.shared.recording = false;
        let now = self.shared.now();
        for c in &mut self.clients {
            match c.phase {
                // A raw echo would send our close frame back, masked: just end.
                Phase::Open if c.raw.is_some() => finish(&self.poll, c),
                Phase::Open => {
                    if let Ok(frame) = c.proto.close(&self.shared.cfg, CloseCode::NORMAL, "", now) {
                        c.out.extend_from_slice(&frame);
                    }
                    c.phase = Phase::Closing;
                    if c.flush().is_err() {
                        finish(&self.poll, c);
                    }
                }
                Phase::Connecting | Phase::Handshake => finish(&self.poll, c),
                Phase::Closing | Phase::Done => {}
            }
        }
        let deadline = Instant::now() + limit;
        while self.clients.iter().any(|c| c.phase == Phase::Closing) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.turn((deadline - now).min(Duration::from_millis(50)))?;
        }
        for c in &mut self.clients {
            finish(&self.poll, c);
        }
        Ok(())
    }

    // ------------------------------------------------------------------ per connection

    fn drive(&mut self, i: usize, readable: bool, writable: bool) -> Result<(), Failure> {
        let Engine {
            clients,
            rbuf,
            target,
            shared,
            poll,
            ..
        } = self;
        let c = &mut clients[i];
        if c.phase == Phase::Connecting {
            if !(readable || writable) {
                return Ok(());
            }
            let Some(stream) = c.stream.as_ref() else {
                return Ok(());
            };
            match stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return Err(Failure::Connect(e)),
            }
            match stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(Failure::Connect(e)),
            }
            c.phase = Phase::Handshake;
            handshake::write_request(target, &c.key, &mut c.out);
            c.flush().map_err(Failure::Connect)?;
        }
        if writable && c.has_output() {
            c.flush().map_err(|e| shared.io_failure(c.phase, e))?;
        }
        if writable && c.phase == Phase::Open && matches!(shared.workload, Workload::Flood(_)) {
            shared.send_more(i, c)?;
        }
        if !readable {
            return Ok(());
        }
        loop {
            if c.stream.is_none() {
                return Ok(());
            }
            let n = match c.read_into(rbuf) {
                Ok(0) => {
                    return match c.phase {
                        Phase::Closing => {
                            finish(poll, c);
                            Ok(())
                        }
                        Phase::Handshake => Err(Failure::Handshake(HandshakeError::Malformed)),
                        _ => Err(Failure::Closed("EOF")),
                    };
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // TLS may have records to answer with (its handshake's end).
                    if c.tls.is_some() && c.has_output() {
                        c.flush().map_err(|e| shared.io_failure(c.phase, e))?;
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(shared.io_failure(c.phase, e)),
            };
            match c.phase {
                Phase::Handshake => {
                    c.head.extend_from_slice(&rbuf[..n]);
                    let Some(len) =
                        handshake::check_response(&c.head, &c.key).map_err(Failure::Handshake)?
                    else {
                        if n < rbuf.len() && c.tls.is_none() {
                            return Ok(());
                        }
                        continue;
                    };
                    c.phase = Phase::Open;
                    if target.compress {
                        if let Some(server_nct) = crate::deflate::accepted(&c.head[..len]) {
                            c.agree_deflate(server_nct);
                        }
                    }
                    // The server's `last_seen` is set by the upgrade: heartbeat pings count
                    // from here.
                    c.last_sent = Instant::now();
                    shared.counters.settled += 1;
                    shared.counters.open += 1;
                    let resumed = Some(rustls::HandshakeKind::Resumed);
                    if c.tls
                        .as_ref()
                        .is_some_and(|t| t.handshake_kind() == resumed)
                    {
                        shared.counters.tls_resumed += 1;
                    }
                    let mut head = std::mem::take(&mut c.head);
                    shared.feed(i, c, &mut head[len..])?;
                    if c.phase == Phase::Open {
                        shared.join(i, c)?;
                        shared.send_more(i, c)?;
                    }
                }
                Phase::Open | Phase::Closing => shared.feed(i, c, &mut rbuf[..n])?,
                Phase::Connecting | Phase::Done => return Ok(()),
            }
            if c.phase == Phase::Closing && c.proto.is_closed() {
                finish(poll, c);
                return Ok(());
            }
            if c.tls.is_some() {
                // TLS may owe records (its handshake, our request once it is done) while the
                // socket stays writable (no new edge): written now; and the socket is read
                // until it would block (a short plaintext read says nothing of it).
                if c.has_output() {
                    c.flush().map_err(|e| shared.io_failure(c.phase, e))?;
                }
                continue;
            }
            if n < rbuf.len() {
                // A short read emptied the socket's receive queue; bytes arriving later raise a
                // new edge. Not reading again to see EAGAIN saves a syscall per message.
                return Ok(());
            }
        }
    }

    /// Counts a failure and drops the connection.
    fn fail(&mut self, i: usize, f: Failure) {
        let c = &mut self.clients[i];
        let phase = c.phase;
        finish(&self.poll, c);
        let counters = &mut self.shared.counters;
        match phase {
            Phase::Connecting | Phase::Handshake => counters.settled += 1,
            Phase::Open => counters.open -= 1,
            // Teardown: nothing counts.
            Phase::Closing | Phase::Done => return,
        }
        let e = &mut counters.errors;
        let note = match f {
            Failure::Connect(err) => {
                e.connect += 1;
                format!("connect: {err}")
            }
            Failure::Handshake(err) => {
                e.handshake += 1;
                format!("handshake: {err}")
            }
            Failure::Mismatch(Mismatch::Chat(why)) => {
                e.mismatch += 1;
                format!("chat frame on connection {i}: {why}")
            }
            Failure::Mismatch(m) => {
                e.mismatch += 1;
                format!("echo mismatch on connection {i}: {m:?}")
            }
            Failure::Closed(how) => {
                e.closed += 1;
                format!("closed by the server ({how}) on connection {i}")
            }
            Failure::Protocol(err) => {
                e.protocol += 1;
                format!("protocol error from the server: {err:?}")
            }
            Failure::Io(err) => {
                e.io += 1;
                format!("socket error: {err}")
            }
        };
        self.shared.note(note);
    }
}

/// The protocol configuration of the client side.
fn client_config() -> Config {
    let mut cfg = Config::client();
    cfg.limits.max_frame_bytes = MAX_ECHO_BYTES;
    cfg.limits.max_message_bytes = MAX_ECHO_BYTES;
    cfg
}

/// Deregisters and drops a connection's socket.
fn finish(poll: &Poll, c: &mut Client) {
    if let Some(mut s) = c.stream.take() {
        let _ = poll.registry().deregister(&mut s);
    }
    c.phase = Phase::Done;
    c.out = Vec::new();
    c.head = Vec::new();
}

impl Shared {
    fn now(&self) -> Timestamp {
        Timestamp(self.epoch.elapsed().as_millis() as u64)
    }

    fn note(&mut self, note: String) {
        if self.counters.notes.len() < MAX_NOTES {
            self.counters.notes.push(note);
        }
    }

    fn io_failure(&self, phase: Phase, e: io::Error) -> Failure {
        match phase {
            Phase::Connecting | Phase::Handshake => Failure::Connect(e),
            _ => Failure::Io(e),
        }
    }

    /// Sends connection `i` what it owes, if sending: up to the depth (echo workloads), or
    /// until the socket is full (flood).
    fn send_more(&mut self, i: usize, c: &mut Client) -> Result<(), Failure> {
        if !self.sending {
            return Ok(());
        }
        let Shared {
            cfg,
            workload,
            recording,
            counters,
            ..
        } = self;
        let mut count_sent = |n: u64| {
            counters.sent += n;
            if *recording {
                counters.window_sent += n;
            }
        };
        match workload {
            // Broadcast publishes on its schedule (`Engine::publish_due`), not per connection.
            Workload::Idle | Workload::Broadcast(_) => Ok(()),
            Workload::Echo { payload, depth } => {
                let n = owed(*depth, c.in_flight);
                if n == 0 {
                    return Ok(());
                }
                let queued = queue(cfg, i, c, payload, n);
                let now = Instant::now();
                c.sent_times
                    .extend(std::iter::repeat_n(now, queued as usize));
                c.last_sent = now;
                count_sent(queued);
                c.flush().map_err(Failure::Io)
            }
            Workload::Flood(payload) => {
                let batch = flood_batch(payload.len() + 14) as u64;
                // Until the socket takes no more: its writable edge brings us back.
                loop {
                    if !c.has_output() {
                        let queued = queue(cfg, i, c, payload, batch);
                        count_sent(queued);
                        if queued == 0 {
                            return Ok(());
                        }
                    }
                    c.last_sent = Instant::now();
                    c.flush().map_err(Failure::Io)?;
                    if c.has_output() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Broadcast: queues and writes connection `i`'s join requests (on open).
    fn join(&mut self, i: usize, c: &mut Client) -> Result<(), Failure> {
        let Some(b) = &self.bcast else {
            return Ok(());
        };
        for room in b.plan.rooms_of_conn(i) {
            let request = broadcast::join_request(room);
            c.queue_text(&self.cfg, request.as_bytes())
                .map_err(|_| Failure::Mismatch(Mismatch::Chat("cannot send a join")))?;
        }
        c.last_sent = Instant::now();
        c.flush().map_err(Failure::Io)
    }

    /// Hands received bytes to connection `i`'s protocol state and acts on what comes out.
    fn feed(&mut self, i: usize, c: &mut Client, data: &mut [u8]) -> Result<(), Failure> {
        if data.is_empty() {
            return Ok(());
        }
        if let Some(raw) = c.raw.as_mut() {
            let echoes = raw.received(data).map_err(Failure::Mismatch)?;
            for _ in 0..echoes {
                c.expect = next_seq(i, c.expect);
            }
            c.in_flight -= u64::from(echoes);
            return self.echoed(i, c, echoes);
        }
        let mut inbox = Inbox {
            payload: self.workload.payload(),
            conn: i,
            expect: c.expect,
            in_flight: c.in_flight,
            closing: c.phase == Phase::Closing,
            out: &mut c.out,
            pmd: c.pmd.as_deref_mut(),
            echoes: 0,
            pings: 0,
            mismatch: None,
            peer_closed: false,
            chat: self.bcast.as_mut().map(|state| Chat {
                state,
                latency: self.recording.then_some(&mut self.counters.latency),
                now_ns: self.epoch.elapsed().as_nanos() as u64,
            }),
        };
        let result = c.proto.handle_read(&self.cfg, data, &mut inbox);
        let (echoes, pings, mismatch, peer_closed) =
            (inbox.echoes, inbox.pings, inbox.mismatch, inbox.peer_closed);
        c.expect = inbox.expect;
        c.in_flight = inbox.in_flight;
        if pings > 0 {
            // Each ping came this long after we last sent anything (the pong of an earlier
            // ping in the same read is not sent yet).
            let since_sent = c.last_sent.elapsed();
            let counters = &mut self.counters;
            counters.pings += u64::from(pings);
            if self.recording {
                counters.window_pings += u64::from(pings);
                for _ in 0..pings {
                    counters.lateness.record(since_sent);
                }
            }
        }
        if c.has_output() {
            // Pongs and close replies; a failure here shows up on the next read.
            let _ = c.flush();
            if pings > 0 {
                c.last_sent = Instant::now();
            }
        }
        result.map_err(Failure::Protocol)?;
        if let Some(m) = mismatch {
            return Err(Failure::Mismatch(m));
        }
        if c.phase == Phase::Closing {
            return Ok(());
        }
        if peer_closed {
            return Err(Failure::Closed("close frame"));
        }
        self.echoed(i, c, echoes)
    }

    /// Counts `echoes` verified echoes of connection `i`, times them, and sends what it owes.
    fn echoed(&mut self, i: usize, c: &mut Client, echoes: u32) -> Result<(), Failure> {
        if echoes > 0 {
            let now = Instant::now();
            let counters = &mut self.counters;
            counters.messages += u64::from(echoes);
            if self.recording {
                counters.window_messages += u64::from(echoes);
            }
            // Flood keeps no send times: it measures no latency.
            for _ in 0..echoes {
                let Some(t) = c.sent_times.pop_front() else {
                    break;
                };
                if self.recording {
                    counters
                        .latency
                        .record(now.duration_since(t).as_nanos() as u64);
                }
            }
            if matches!(self.workload, Workload::Echo { .. }) {
                self.send_more(i, c)?;
            }
        }
        Ok(())
    }
}

/// Queues up to `n` messages of `payload` on connection `i` (not written yet); returns how many.
fn queue(cfg: &Config, i: usize, c: &mut Client, payload: &Payload, n: u64) -> u64 {
    let mut queued = 0;
    while queued < n {
        let seq = next_seq(i, c.seq);
        let start = c.out.len();
        if c.queue_message(cfg, payload, seq).is_err() {
            break;
        }
        if let Some(raw) = c.raw.as_mut() {
            raw.sent(&c.out[start..]);
        }
        if c.in_flight == 0 {
            c.expect = seq;
        }
        c.in_flight += 1;
        queued += 1;
    }
    queued
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_carry_the_connection_and_wrap() {
        assert_eq!(next_seq(0, 0), 1);
        assert_eq!(next_seq(3, next_seq(3, 0)), (3 << SEQ_BITS) | 2);
        let last = (5u64 << SEQ_BITS) | ((1 << SEQ_BITS) - 1);
        assert_eq!(next_seq(5, last), 5 << SEQ_BITS);
    }

    #[test]
    fn owed_and_batches() {
        assert_eq!(owed(16, 0), 16);
        assert_eq!(owed(16, 5), 11);
        assert_eq!(owed(1, 1), 0);
        assert_eq!(owed(4, 9), 0);
        assert_eq!(flood_batch(34), FLOOD_BATCH_BYTES / 34);
        assert_eq!(flood_batch(1 << 20), 1);
        assert_eq!(flood_batch(0), FLOOD_BATCH_BYTES);
    }
}
