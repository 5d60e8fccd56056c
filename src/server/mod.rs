//! The server: one worker per core, each with its own `SO_REUSEPORT` listener, io_uring and
//! connections, running a [`Handler`].
//!
//! An application implements [`Handler`]: it decides each upgrade ([`Handler::upgrade`], with
//! the whole request and the peer's address in hand), and reacts to messages, timers it set,
//! drained queues and closes. Through [`Conn`] it sends (text, binary, or a [`Frame`] encoded
//! once and shared by many connections), joins and leaves topics, publishes to them, sends to
//! any connection by its [`ConnId`], and sets timers. Nothing a handler does blocks, and a
//! handler cannot queue a control frame or a broken one: [`Frame`] is checked when made.
//!
//! # A chat with rooms
//!
//! The path names the room; every text goes to everyone in it, on every worker. The clients
//! here are [tungstenite](https://docs.rs/tungstenite)'s, an independent implementation.
//!
//! ```
//! use ringws::server::{Conn, Decision, Frame, Handler, Message, Server, ServerConfig, Upgrade};
//! use tungstenite::{Error, HandshakeError};
//! # use std::{net::TcpStream, time::Duration};
//!
//! #[derive(Clone)]
//! struct Rooms;
//!
//! impl Handler for Rooms {
//!     type State = String; // the connection's room
//!
//!     fn upgrade<'r>(&mut self, req: &Upgrade<'_, 'r>) -> Decision<'r, String> {
//!         match req.path().strip_prefix("/rooms/") {
//!             Some(room) if !room.is_empty() => Decision::Accept {
//!                 state: room.to_owned(),
//!                 protocol: None,
//!             },
//!             _ => Decision::Reject { status: 404, reason: "no such room" },
//!         }
//!     }
//!
//!     fn open(&mut self, conn: &mut Conn<'_, String>) {
//!         let room = conn.state().clone();
//!         conn.subscribe(&room);
//!     }
//!
//!     fn message(&mut self, conn: &mut Conn<'_, String>, msg: Message<'_>) {
//!         if let Message::Text(text) = msg {
//!             let room = conn.state().clone();
//!             // Encoded once; every member's queue gets the same bytes.
//!             conn.publish(&room, Frame::text(&format!("{}: {text}", conn.id())), true);
//!         }
//!     }
//! }
//!
//! let config = ServerConfig {
//!     listen: "127.0.0.1:0".parse().unwrap(),
//!     workers: 2,
//!     ..ServerConfig::default()
//! };
//! let server = Server::bind(config, Rooms)?;
//! let addr = server.local_addr();
//! let handle = server.start()?;
//!
//! let join = |room: &str| {
//!     let stream = TcpStream::connect(addr).unwrap();
//! #   stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
//!     let url = format!("ws://{addr}/rooms/{room}");
//!     tungstenite::client(url, stream).expect("upgraded").0
//! };
//! let (mut alice, mut bob, mut carol) = (join("lobby"), join("lobby"), join("kitchen"));
//! alice.send("hello".into())?;
//! let heard = bob.read()?.into_text()?;
//! assert!(heard.ends_with(": hello"), "{heard}");
//! assert_eq!(alice.read()?.into_text()?, heard, "to everyone in the room, alice too");
//! carol.send("anyone?".into())?;
//! assert!(carol.read()?.into_text()?.ends_with(": anyone?"), "alone in the kitchen");
//! // A room that does not exist: refused with 404 before any WebSocket exists.
//! let stream = TcpStream::connect(addr)?;
//! match tungstenite::client(format!("ws://{addr}/elsewhere"), stream) {
//!     Err(HandshakeError::Failure(Error::Http(response))) => assert_eq!(response.status(), 404),
//!     other => panic!("{other:?}"),
//! }
//!
//! drop((alice, bob, carol)); // they leave (a graceful shutdown waits for open connections)
//! handle.shutdown(); // e.g. on SIGTERM: `handle.stop_flag()` can be given to a signal handler
//! handle.join()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Deciding who may connect
//!
//! The upgrade is where a server authenticates (RFC 6455 §10.5): the request's headers are all
//! there (cookies, tokens, `Origin`), and so is the peer's address. The handler below admits
//! loopback clients with a known bearer token, greets them by name, and answers each message a
//! moment later from a timer (a handler never blocks, so "later" is a timer).
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use ringws::server::{Conn, Decision, Handler, Message, Server, ServerConfig, Upgrade};
//! use tungstenite::client::IntoClientRequest;
//! use tungstenite::{Error, HandshakeError};
//! # use std::net::TcpStream;
//!
//! #[derive(Clone)]
//! struct Members {
//!     tokens: Arc<HashMap<&'static str, &'static str>>, // token -> name
//! }
//!
//! struct Member {
//!     name: &'static str,
//!     last: String,
//! }
//!
//! impl Handler for Members {
//!     type State = Member;
//!
//!     fn upgrade<'r>(&mut self, req: &Upgrade<'_, 'r>) -> Decision<'r, Member> {
//!         if !req.peer_addr().is_ok_and(|a| a.ip().is_loopback()) {
//!             return Decision::Reject { status: 403, reason: "from this host only" };
//!         }
//!         let token = req
//!             .header("authorization")
//!             .and_then(|v| v.strip_prefix(b"Bearer "))
//!             .and_then(|t| std::str::from_utf8(t).ok());
//!         match token.and_then(|t| self.tokens.get(t)) {
//!             Some(&name) => Decision::Accept {
//!                 state: Member { name, last: String::new() },
//!                 protocol: None,
//!             },
//!             None => Decision::Reject { status: 401, reason: "a valid token is required" },
//!         }
//!     }
//!
//!     fn open(&mut self, conn: &mut Conn<'_, Member>) {
//!         let greeting = format!("hello {}", conn.state().name);
//!         conn.send_text(&greeting);
//!     }
//!
//!     fn message(&mut self, conn: &mut Conn<'_, Member>, msg: Message<'_>) {
//!         if let Message::Text(text) = msg {
//!             conn.state().last = text.to_owned();
//!             conn.set_timer(Duration::from_millis(20), 1);
//!         }
//!     }
//!
//!     fn timer(&mut self, conn: &mut Conn<'_, Member>, _token: u64) {
//!         let member = conn.state();
//!         let answer = format!("{} said {}", member.name, member.last);
//!         conn.send_text(&answer);
//!     }
//! }
//!
//! let tokens = Arc::new(HashMap::from([("s3cret", "alice")]));
//! let config = ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), ..ServerConfig::default() };
//! let server = Server::bind(config, Members { tokens })?;
//! let addr = server.local_addr();
//! let handle = server.start()?;
//!
//! let connect = |token: Option<&str>| {
//!     let mut request = format!("ws://{addr}/").into_client_request().unwrap();
//!     if let Some(token) = token {
//!         let value = format!("Bearer {token}").parse().unwrap();
//!         request.headers_mut().insert("authorization", value);
//!     }
//!     let stream = TcpStream::connect(addr).unwrap();
//! #   stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
//!     tungstenite::client(request, stream)
//! };
//! let (mut alice, _) = connect(Some("s3cret"))?;
//! assert_eq!(alice.read()?.into_text()?, "hello alice");
//! alice.send("hi".into())?;
//! assert_eq!(alice.read()?.into_text()?, "alice said hi");
//! for token in [None, Some("guess")] {
//!     match connect(token) {
//!         Err(HandshakeError::Failure(Error::Http(response))) => {
//!             assert_eq!(response.status(), 401)
//!         }
//!         other => panic!("{other:?}"),
//!     }
//! }
//! drop(alice);
//! handle.shutdown();
//! handle.join()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! | module | concept |
//! |---|---|
//! | `config` | [`ServerConfig`]: every runtime limit with its default and reason |
//! | `handler` | [`Handler`], [`Upgrade`], [`Conn`], [`Decision`], [`Message`]: the application's side |
//! | `ops` | what a handler asks for during a callback (topics, messages to a connection, timers), carried out after it |
//! | `conn` | a connection slot: handshake → open → closing, independent of the I/O backend |
//! | `dispatch` | the adapter between the protocol core and the handler: `Conn` for a callback, the core's output of one read |
//! | `outbox` | a connection's outbound queue of shared frames, in bytes, with backpressure |
//! | `compress` | permessage-deflate per connection and the worker's shared codecs |
//! | [`pubsub`] | topics (rooms) across workers: subscribe, publish, per-worker inboxes, [`Inbound`] |
//! | `publisher` | [`Publisher`]: publishing and sending from outside the workers |
//! | [`relay`] | [`Relay`]: what a bridge to other servers implements (the server never names a broker) |
//! | `worker` | the per-core loop: completions, flow control, fan-out, handler timers |
//! | `slab` | connection slots with generations |
//! | `wheel` | the per-worker hierarchical timer wheel |
//! | `counters` | per-worker counters, summed on demand |
//! | `checks` | start-up warnings about host limits |
//! | [`floor`] | a raw echo on the same I/O loop, without WebSocket: the benchmarks' floor |

mod checks;
mod compress;
mod config;
mod conn;
mod counters;
mod dispatch;
#[cfg(test)]
mod fake;
pub mod floor;
mod handler;
pub mod histogram;
pub mod home;
mod ops;
mod outbox;
mod publisher;
pub mod pubsub;
pub mod relay;
mod slab;
pub mod wheel;
mod worker;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

pub use crate::proto::frame::Frame;
pub use crate::runtime::IoChoice;
pub use crate::runtime::sys::disable_huge_pages;
pub use crate::runtime::uring::{RingFlags, UringConfig};
pub use checks::startup_warnings;
pub use config::{Backpressure, ServerConfig};
pub use counters::prometheus_head;
pub use counters::{Metrics, Snapshot};
pub use handler::{Conn, Decision, Handler, HttpResponse, Message, Upgrade};
pub use home::Home;
pub use outbox::SendStatus;
pub use publisher::Publisher;
pub use pubsub::{BadConnId, ConnId, Inbound, Topic};
pub use relay::{
    CONTROL_TOPIC, LogEntry, LogEvent, LogRange, LogRead, LogRequest, LogUnavailable, Relay,
};

use crate::runtime::epoll::Epoll;
use crate::runtime::probe_uring;
use crate::runtime::sys;
use crate::runtime::uring::{DEFAULT_BACKLOG, Uring, bind_listener, check_port_free};
pub(crate) use counters::Counters;
use worker::{Shared, Worker};

/// A bound server, not yet running.
pub struct Server<H: Handler> {
    cfg: ServerConfig,
    handler: H,
    listeners: Vec<TcpListener>,
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    restart: Arc<AtomicBool>,
    relay: Option<Arc<dyn Relay>>,
    hub: Arc<pubsub::Hub>,
    counters: Vec<Arc<Counters>>,
}

impl<H: Handler> Server<H> {
    /// Binds one listener per worker to `cfg.listen` (port 0: a free port, the same for all).
    ///
    /// # Errors
    /// `AddrInUse` if another process listens on the address (even with `SO_REUSEPORT`, which
    /// would otherwise let it silently take a share of the connections), or any bind error.
    pub fn bind(cfg: ServerConfig, handler: H) -> io::Result<Self> {
        if cfg.listen.port() != 0 {
            check_port_free(cfg.listen).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot listen on {}: {e}", cfg.listen))
            })?;
        }
        let backlog = if cfg.backlog > 0 {
            cfg.backlog
        } else {
            DEFAULT_BACKLOG
        };
        let workers = cfg.workers.max(1);
        let first = bind_listener(cfg.listen, backlog).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen on {}: {e}", cfg.listen))
        })?;
        let local_addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..workers {
            listeners.push(bind_listener(local_addr, backlog)?);
        }
        Self::with_listeners(cfg, handler, listeners)
    }

    /// Serves on listeners another process bound (a live hand-over, [`crate::handoff`]): the
    /// `SO_REUSEPORT` group of the server being replaced, all bound to one address. One
    /// listener per worker: with more workers than listeners the group gets more members;
    /// with fewer, the extra listeners are closed (the connections waiting in their queues
    /// are reset unless `net.ipv4.tcp_migrate_req` is 1), which is logged.
    ///
    /// # Errors
    /// No listener, listeners bound to different addresses, or a bind error for the extra
    /// ones.
    pub fn from_listeners(
        cfg: ServerConfig,
        handler: H,
        mut listeners: Vec<TcpListener>,
    ) -> io::Result<Self> {
        let Some(first) = listeners.first() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no listener to serve on",
            ));
        };
        let local_addr = first.local_addr()?;
        for listener in &listeners {
            if listener.local_addr()? != local_addr {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the listeners handed over are bound to different addresses",
                ));
            }
            listener.set_nonblocking(true)?;
        }
        let workers = cfg.workers.max(1);
        if listeners.len() > workers {
            tracing::warn!(
                "{} listeners handed over for {workers} workers: closing {} (connections \
                 waiting in their queues are reset unless net.ipv4.tcp_migrate_req is 1)",
                listeners.len(),
                listeners.len() - workers
            );
            listeners.truncate(workers);
        }
        let backlog = if cfg.backlog > 0 {
            cfg.backlog
        } else {
            DEFAULT_BACKLOG
        };
        while listeners.len() < workers {
            listeners.push(bind_listener(local_addr, backlog)?);
        }
        Self::with_listeners(cfg, handler, listeners)
    }

    fn with_listeners(
        cfg: ServerConfig,
        handler: H,
        listeners: Vec<TcpListener>,
    ) -> io::Result<Self> {
        let local_addr = listeners[0].local_addr()?;
        Ok(Server {
            cfg,
            handler,
            hub: Arc::new(pubsub::Hub::new(listeners.len())?),
            counters: (0..listeners.len())
                .map(|_| Arc::new(Counters::default()))
                .collect(),
            listeners,
            local_addr,
            stop: Arc::new(AtomicBool::new(false)),
            restart: Arc::new(AtomicBool::new(false)),
            relay: None,
        })
    }

    /// Copies of the listeners (the same sockets), to hand to a process that takes over
    /// ([`crate::handoff`]).
    ///
    /// # Errors
    /// `dup` failed (out of descriptors).
    pub fn listener_copies(&self) -> io::Result<Vec<TcpListener>> {
        self.listeners.iter().map(TcpListener::try_clone).collect()
    }

    /// Links this server to other servers through `relay` (see [`relay`]; the Redis bridge of
    /// `ringws::broker` is one): publications also go to the subscribers on the other servers,
    /// and theirs come here. Without it the server runs alone.
    pub fn with_relay(mut self, relay: Arc<dyn Relay>) -> Self {
        self.relay = Some(relay);
        self
    }

    /// Uses `stop` as the flag that starts a graceful shutdown (see
    /// [`ServerHandle::stop_flag`]): a process registers its signal handlers on it before the
    /// server starts, so a SIGTERM that comes early still stops it cleanly (the workers see the
    /// flag already set and shut down as soon as they run).
    pub fn with_stop_flag(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = stop;
        self
    }

    /// Uses `restart` as the flag that makes the graceful shutdown a restart: connections are
    /// then closed with 1012 (service restart: come back) instead of 1001 (going away). Set it
    /// before the stop flag, and set that with `Ordering::Release` (the workers load it with
    /// `Acquire`); a live hand-over does ([`crate::handoff`]).
    pub fn with_restart_flag(mut self, restart: Arc<AtomicBool>) -> Self {
        self.restart = restart;
        self
    }

    /// The address the listeners are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The workers' counters, for export (`/metrics`), as [`ServerHandle::metrics`] gives
    /// them; taken before [`Server::start`] (and after [`Server::with_relay`]) so that an
    /// application has them before its first connection arrives.
    pub fn metrics(&self) -> Metrics {
        Metrics {
            workers: Arc::new(self.counters.clone()),
            relay: self.relay.clone(),
        }
    }

    /// A handle to publish to topics, as [`ServerHandle::publisher`] gives it; taken before
    /// [`Server::start`] (and after [`Server::with_relay`]) so that an application has it
    /// before its first connection arrives. Publications made before the start wait in the
    /// workers' inboxes.
    pub fn publisher(&self) -> Publisher {
        Publisher {
            hub: self.hub.clone(),
            relay: self.relay.clone(),
        }
    }

    /// Starts the workers. Returns once every worker has built its ring (or the first error).
    ///
    /// # Errors
    /// A worker could not start (io_uring unavailable, ring or buffer registration refused).
    pub fn start(self) -> io::Result<ServerHandle> {
        // Choose the backend once, for every worker: io_uring where it works, else epoll.
        let flags = match self.cfg.io {
            IoChoice::Epoll => None,
            IoChoice::Uring => Some(
                probe_uring(self.cfg.uring)
                    .map_err(|cause| io::Error::new(io::ErrorKind::Unsupported, cause))?,
            ),
            IoChoice::Auto => match probe_uring(self.cfg.uring) {
                Ok(flags) => Some(flags),
                Err(cause) => {
                    tracing::warn!(
                        reason = %cause,
                        backend = "epoll",
                        "{cause}: running on the epoll backend (--io epoll says so quietly)"
                    );
                    None
                }
            },
        };
        let shared = Shared {
            cfg: Arc::new(self.cfg),
            stop: self.stop,
            restart: self.restart,
            hub: self.hub,
            relay: self.relay,
        };
        // The relay first: the workers may hand it subscriptions as soon as they run.
        if let Some(relay) = &shared.relay {
            relay.start(Inbound {
                hub: shared.hub.clone(),
            })?;
        }
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        let mut threads = Vec::new();
        let counters = self.counters;
        for (i, listener) in self.listeners.into_iter().enumerate() {
            let worker_counters = counters[i].clone();
            let (theirs, ready, handler) = (shared.clone(), ready_tx.clone(), self.handler.clone());
            let uring = flags.is_some();
            let thread = std::thread::Builder::new()
                .name(format!("ringws-worker-{i}"))
                .spawn(move || -> io::Result<()> {
                    let cfg = theirs.cfg.clone();
                    if cfg.pin_workers {
                        if let Err(e) = sys::pin_to_cpu(i) {
                            tracing::warn!(worker = i, reason = %e, "worker {i}: cannot pin to CPU {i}: {e}");
                        }
                    }
                    // The backend is built on the worker's own thread (io_uring: single issuer).
                    let report = |r: &io::Result<()>| {
                        let _ = ready.send(match r {
                            Ok(()) => Ok(()),
                            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                        });
                    };
                    if uring {
                        let io = Uring::new(cfg.uring);
                        report(
                            &io.as_ref()
                                .map(drop)
                                .map_err(|e| io::Error::new(e.kind(), e.to_string())),
                        );
                        Worker::new(io?, listener, handler, theirs, worker_counters, i).run()
                    } else {
                        let io = Epoll::new(cfg.uring.buf_size as usize, cfg.uring.nodelay);
                        report(
                            &io.as_ref()
                                .map(drop)
                                .map_err(|e| io::Error::new(e.kind(), e.to_string())),
                        );
                        Worker::new(io?, listener, handler, theirs, worker_counters, i).run()
                    }
                });
            let thread = match thread {
                Ok(thread) => thread,
                Err(e) => {
                    // Stop what started: the workers spawned so far and the relay.
                    shared.stop.store(true, Ordering::Relaxed);
                    if let Some(relay) = &shared.relay {
                        let _ = relay.stop();
                    }
                    return Err(e);
                }
            };
            threads.push(thread);
        }
        drop(ready_tx);
        let mut failure = None;
        for result in ready_rx.iter().take(threads.len()) {
            if let Err(e) = result {
                failure = Some(e);
            }
        }
        let handle = ServerHandle {
            stop: shared.stop,
            hub: shared.hub,
            relay: shared.relay,
            threads,
            counters,
            local_addr: self.local_addr,
            flags,
        };
        if let Some(e) = failure {
            handle.shutdown();
            let _ = handle.join();
            return Err(io::Error::new(
                e.kind(),
                format!("a worker could not start: {e}"),
            ));
        }
        Ok(handle)
    }
}

/// A running server.
pub struct ServerHandle {
    stop: Arc<AtomicBool>,
    hub: Arc<pubsub::Hub>,
    relay: Option<Arc<dyn Relay>>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    counters: Vec<Arc<Counters>>,
    local_addr: SocketAddr,
    flags: Option<RingFlags>,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The io_uring setup flags the kernel accepted, or `None` when the workers run on epoll.
    pub fn ring_flags(&self) -> Option<RingFlags> {
        self.flags
    }

    /// The I/O backend the workers run on: `"io_uring"` or `"epoll"`.
    pub fn backend(&self) -> &'static str {
        if self.flags.is_some() {
            "io_uring"
        } else {
            "epoll"
        }
    }

    /// Every worker's counters, for export (`/metrics`); cheap to clone and share.
    pub fn metrics(&self) -> Metrics {
        Metrics {
            workers: Arc::new(self.counters.clone()),
            relay: self.relay.clone(),
        }
    }

    /// The counters of every worker, summed.
    pub fn counters(&self) -> Snapshot {
        let mut sum = Snapshot::default();
        for c in &self.counters {
            c.add_to(&mut sum);
        }
        sum
    }

    /// A handle to publish to topics from outside the workers (any thread).
    pub fn publisher(&self) -> Publisher {
        Publisher {
            hub: self.hub.clone(),
            relay: self.relay.clone(),
        }
    }

    /// The flag that starts a graceful shutdown when set (for signal handlers).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Starts a graceful shutdown: stop accepting, send close 1001 to every connection, wait
    /// for the replies (up to `shutdown_timeout`), flush, stop.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for every worker to stop.
    ///
    /// # Errors
    /// The first worker error.
    pub fn join(self) -> io::Result<()> {
        let mut result = Ok(());
        for t in self.threads {
            let r = t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("worker panicked")));
            if result.is_ok() {
                result = r;
            }
        }
        // The workers are gone: the relay passes on what they handed over last, and stops.
        if let Some(relay) = &self.relay {
            let stopped = relay.stop();
            if result.is_ok() {
                result = stopped;
            }
        }
        result
    }
}
