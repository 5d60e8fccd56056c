//! Rooms across machines: a bridge that carries publications between ringws nodes through an
//! existing message broker (Redis pub/sub today), so a chat outgrows one server without code
//! changes and without a cluster protocol of our own.
//!
//! ```text
//!   node A (ringws)                                                  node B (ringws)
//!   worker 0  worker 1                                               worker 0  worker 1
//!     │ publish  ▲                                                      ▲         ▲
//!     │ (end of  │ inbox                                                │ inbox   │ (only workers
//!     │  loop)   │                                                      │         │  with members)
//!     ▼          │                                                      │         │
//!   ┌──────────────────┐   PUBLISH ringws:room:lobby    ┌───────┐  message  ┌──────────────────┐
//!   │ bridge thread A  │ ─────────────────────────────▶ │ Redis │ ────────▶ │ bridge thread B  │
//!   │ (tokio, 1 thread)│ ◀───────────────────────────── │       │ ◀──────── │ (tokio, 1 thread)│
//!   └──────────────────┘   SUBSCRIBE while A has members└───────┘ SUBSCRIBE └──────────────────┘
//! ```
//!
//! - **The workers never wait for the broker.** At the end of a loop iteration a worker hands its
//!   publications for other nodes and its changes of interest to the [`Link`] under one lock and
//!   wakes the bridge thread; the bridge runs a one-thread tokio runtime with the broker's async
//!   client. Publications from other nodes go into the same per-worker inboxes the workers use
//!   between themselves ([`crate::server::pubsub`]), and only to workers with a subscriber.
//! - **Interest-based.** A node subscribes to a topic's channel while it has a local subscriber
//!   and unsubscribes a short while ([`BrokerConfig::unsubscribe_linger`]) after the last one
//!   leaves; changes that pile up while a command is in flight go out as one command.
//! - **Origin.** Every message carries the node id of its publisher ([`envelope`]): a node gets
//!   its own publications back from the broker and drops them (its local subscribers had them
//!   already).
//! - **Faults.** When the broker is unreachable, local delivery goes on; publications for other
//!   nodes are dropped and counted (`ringws_broker_dropped_total`); the bridge logs the outage
//!   once, reconnects with exponential backoff and jitter, and subscribes again to every topic
//!   with local subscribers. Redis pub/sub delivers at most once: what is published while a node
//!   is away is not replayed.
//!
//! A broker is anything that implements [`Broker`]: connect, publish a batch, subscribe and
//! unsubscribe channels, and a stream of incoming messages. [`redis::Redis`] is the one there
//! is; a NATS one (`async-nats`) would implement the same three traits.
//!
//! This module sits above the server: the server defines what it needs from a relay to other
//! servers ([`Relay`]), and [`BrokerRelay`] implements it for any broker. A program attaches it:
//!
//! ```no_run
//! # use ringws::{app::echo::Echo, server::{Server, ServerConfig}};
//! use ringws::broker::{BrokerConfig, BrokerRelay, redis::Redis};
//!
//! let redis = Redis::new("redis://127.0.0.1:6379")?;
//! let relay = BrokerRelay::new(redis, BrokerConfig::default());
//! let server = Server::bind(ServerConfig::default(), Echo)?.with_relay(relay.clone());
//! let handle = server.start()?;
//! println!("node {} connected: {}", relay.link().node(), relay.link().stats().connected);
//! # handle.shutdown(); handle.join()?;
//! # Ok::<(), ringws::broker::BrokerError>(())
//! ```
//!
//! Built with the `broker` Cargo feature (on by default); an embedder that needs no broker
//! turns it off and builds neither Redis's client nor tokio.
//!
//! | module | concept |
//! |---|---|
//! | [`envelope`] | the bytes of one message on the broker: origin node, then the frame |
//! | `interest` | which workers want which topics; what to subscribe and unsubscribe, when |
//! | [`link`] | what the workers and the bridge share: queues, state, counters |
//! | `bridge` | the bridge thread: sessions, backoff, delivery to the workers |
//! | `log` | the bridge's side of the rooms' ordered logs: appends, reads, live entries |
//! | `presence` | the bridge's side of the rooms' shared presence: entries, lists, refreshes |
//! | [`redis`] | the Redis implementation |

mod bridge;
pub mod envelope;
mod interest;
pub mod link;
mod log;
mod presence;
pub mod redis;

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;

pub use link::{BrokerStats, Link, NodeId};

use crate::server::{Frame, Inbound, LogRange, LogRead, LogRequest, Relay, Topic};

/// An error from a broker client.
pub type BrokerError = Box<dyn std::error::Error + Send + Sync>;

/// A message broker the nodes share. The bridge calls [`connect`](Broker::connect) at start and
/// again, with backoff, after a session fails; a session is the pair it returns.
pub trait Broker: Send + 'static {
    /// The half of a session that publishes and changes subscriptions.
    type Tx: BrokerTx;
    /// The half of a session that receives.
    type Rx: BrokerRx;
    /// Opens a session. Subscriptions start empty: the bridge subscribes again to every topic
    /// it wants.
    fn connect(&mut self)
    -> impl Future<Output = Result<(Self::Tx, Self::Rx), BrokerError>> + Send;
    /// Where the broker is, for logs (without credentials).
    fn describe(&self) -> String;
}

/// Publishing and subscribing. Any error ends the session (the bridge connects again).
pub trait BrokerTx: Send {
    /// Publishes each `(channel, payload)`, in order (one round trip for the batch).
    fn publish(
        &mut self,
        batch: &[(String, Vec<u8>)],
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;
    /// Subscribes to `channels` (one command).
    fn subscribe(
        &mut self,
        channels: &[String],
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;
    /// Unsubscribes from `channels` (one command).
    fn unsubscribe(
        &mut self,
        channels: &[String],
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;
    /// Checks that the broker still answers (sent when the session has been quiet a while).
    fn ping(&mut self) -> impl Future<Output = Result<(), BrokerError>> + Send;
    /// Appends each entry to its topic's ordered log and publishes it on the topic's channel
    /// (as [`envelope::encode_entry`] lays out), atomically per entry and in order (one round
    /// trip for the batch): each one's epoch and offset. Only called with
    /// [`BrokerConfig::log`] set; the default keeps no logs (an error).
    fn append(
        &mut self,
        log: &LogConfig,
        batch: &[LogAppend<'_>],
    ) -> impl Future<Output = Result<Vec<(Arc<str>, u64)>, BrokerError>> + Send {
        let _ = (log, batch);
        async { Err("this broker keeps no logs".into()) }
    }
    /// Reads a range of each topic's log (one round trip for the batch). A log that does not
    /// exist is made (empty, with a new epoch), so every answer has an epoch.
    fn read(
        &mut self,
        log: &LogConfig,
        batch: &[LogReadAt<'_>],
    ) -> impl Future<Output = Result<Vec<LogRead>, BrokerError>> + Send {
        let _ = (log, batch);
        async { Err("this broker keeps no logs".into()) }
    }
    /// Sets or removes this node's presence entries, kept for [`PresenceConfig::ttl`] unless
    /// refreshed (one round trip for the batch): for each, whether another live node has an
    /// entry for the member. Only called with [`BrokerConfig::presence`] set.
    fn presence(
        &mut self,
        cfg: &PresenceConfig,
        node: &str,
        batch: &[PresenceSet<'_>],
    ) -> impl Future<Output = Result<Vec<bool>, BrokerError>> + Send {
        let _ = (cfg, node, batch);
        async { Err("this broker shares no presence".into()) }
    }
    /// Every live node's presence entries of each channel, `(member, value)` per node's entry
    /// (one round trip for the batch).
    fn presence_list(
        &mut self,
        channels: &[&str],
    ) -> impl Future<Output = Result<Vec<Vec<(String, Bytes)>>, BrokerError>> + Send {
        let _ = channels;
        async { Err("this broker shares no presence".into()) }
    }
    /// Keeps this node's presence entries in `channels` alive for another ttl.
    fn presence_refresh(
        &mut self,
        cfg: &PresenceConfig,
        node: &str,
        channels: &[String],
    ) -> impl Future<Output = Result<(), BrokerError>> + Send {
        let _ = (cfg, node, channels);
        async { Ok(()) }
    }
    /// Removes this node's presence entries in `channels` (a graceful stop: the other nodes'
    /// lists drop this node's members at once, not when the entries expire).
    fn presence_drop(
        &mut self,
        node: &str,
        channels: &[String],
    ) -> impl Future<Output = Result<(), BrokerError>> + Send {
        let _ = (node, channels);
        async { Ok(()) }
    }
}

/// One presence entry of this node to set (or remove).
#[derive(Debug, Clone, Copy)]
pub struct PresenceSet<'a> {
    /// The topic's channel (the presence keys are named after it).
    pub channel: &'a str,
    /// Who.
    pub member: &'a str,
    /// What the other nodes see of it here; `None` removes the entry.
    pub value: Option<&'a [u8]>,
}

/// Presence shared between the nodes: its bound.
#[derive(Debug, Clone)]
pub struct PresenceConfig {
    /// How long a node's entries outlive it: a node that dies (SIGKILL, a lost machine) drops
    /// out of every list within this; a live node refreshes its entries every third of it.
    /// Default 30 s: a few refreshes lost to a slow broker do not drop a live node.
    pub ttl: Duration,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            ttl: Duration::from_secs(30),
        }
    }
}

/// One entry to append to a topic's log.
#[derive(Debug, Clone, Copy)]
pub struct LogAppend<'a> {
    /// The topic's channel (the log's keys are named after it).
    pub channel: &'a str,
    /// The client's idempotency key, if any.
    pub key: Option<&'a str>,
    /// What to append.
    pub payload: &'a [u8],
    /// The epoch to give the log if it has none (it was never made, or it was lost).
    pub new_epoch: &'a str,
}

/// One range to read from a topic's log.
#[derive(Debug, Clone, Copy)]
pub struct LogReadAt<'a> {
    /// The topic's channel.
    pub channel: &'a str,
    /// Which entries.
    pub range: LogRange,
    /// At most this many.
    pub limit: usize,
    /// The epoch to give the log if it has none.
    pub new_epoch: &'a str,
}

/// The rooms' ordered logs on the broker (a cluster with history): their bounds. Every bound
/// says what it protects.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Entries kept per topic (trimmed approximately: Redis trims whole nodes of its stream,
    /// so up to about a hundred more stay). Default 1,000, as a lone server's history.
    pub max_entries: usize,
    /// Entries older than this are not read back; a topic quiet this long loses its entries
    /// (the stream expires). Default 10 minutes, as a lone server's history.
    pub max_age: Duration,
    /// How long a quiet topic keeps its epoch and last offset (a few bytes): a client back
    /// within it, with nothing missed, is told it missed nothing. Default 7 days.
    pub epoch_ttl: Duration,
    /// How long an append's idempotency key is remembered (a client's retry within it is not
    /// appended twice). Default 2 minutes: longer than a client's retries during an outage.
    pub key_ttl: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_entries: 1000,
            max_age: Duration::from_secs(600),
            epoch_ttl: Duration::from_secs(7 * 24 * 3600),
            key_ttl: Duration::from_secs(120),
        }
    }
}

/// Receiving.
pub trait BrokerRx: Send {
    /// The next message on a subscribed channel: `(channel, payload)`; `None` when the session is
    /// lost. Must be cancel-safe: the bridge drops the future when something else happens first.
    fn next(&mut self) -> impl Future<Output = Option<(String, Bytes)>> + Send;
}

/// The bridge's options. Every bound says what it protects.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// This node's id, carried by its messages (default: random at start).
    pub node: NodeId,
    /// Prepended to a topic to name its channel on the broker. Default `ringws:room:`; give
    /// each cluster sharing one broker its own prefix.
    pub channel_prefix: String,
    /// Bytes of publications waiting for the broker; past it they are dropped and counted.
    /// Default 8 MiB: a broker slower than the publishers must not grow the server's memory,
    /// and a chat message that waits longer than that is stale anyway.
    pub max_pending_bytes: usize,
    /// How long a node stays subscribed to a topic after its last local subscriber left.
    /// Default 1 s: a member who reloads the page does not cost two commands.
    pub unsubscribe_linger: Duration,
    /// First wait before reconnecting; doubled after each failure (with jitter). Default 100 ms.
    pub reconnect_min: Duration,
    /// Longest wait between reconnection attempts. Default 5 s: recovery within seconds of the
    /// broker's return, and a few attempts a minute against a broker that is gone.
    pub reconnect_max: Duration,
    /// Longest wait for a connection or a reply before the session counts as lost. Default 3 s.
    pub timeout: Duration,
    /// A quiet session is pinged this often, to find a broker that vanished without closing
    /// the connection. Default 5 s.
    pub ping_interval: Duration,
    /// Ordered logs per topic (history and one order across servers), or `None` (plain
    /// pub/sub, at most once). Default `None`.
    pub log: Option<LogConfig>,
    /// Log requests waiting for the broker; past it they are answered unavailable. Default
    /// 65,536: a burst of joins and messages, not an outage's worth.
    pub max_pending_log: usize,
    /// Presence shared between the nodes (who is in a room, on every server), or `None`.
    /// Default `None`.
    pub presence: Option<PresenceConfig>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node: NodeId::random(),
            channel_prefix: "ringws:room:".to_owned(),
            max_pending_bytes: 8 << 20,
            unsubscribe_linger: Duration::from_secs(1),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            timeout: Duration::from_secs(3),
            ping_interval: Duration::from_secs(5),
            log: None,
            max_pending_log: 65_536,
            presence: None,
        }
    }
}

/// A broker bridge as the server's [`Relay`] (see the module docs): made with
/// [`BrokerRelay::new`], attached with [`Server::with_relay`](crate::server::Server::with_relay).
/// Its [`Link`] tells the node's id, the broker's state and the counters.
pub struct BrokerRelay<B: Broker> {
    link: Arc<Link>,
    /// The broker and its options until the server starts the bridge.
    idle: Mutex<Option<(B, BrokerConfig)>>,
    /// The bridge thread while it runs.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<B: Broker> BrokerRelay<B> {
    /// A relay through `broker`; its thread starts with the server.
    pub fn new(broker: B, cfg: BrokerConfig) -> Arc<Self> {
        let mut link = Link::new(cfg.node, broker.describe(), cfg.max_pending_bytes);
        link.set_log(
            cfg.log.is_some(),
            cfg.presence.is_some(),
            cfg.max_pending_log,
        );
        let link = Arc::new(link);
        Arc::new(BrokerRelay {
            link,
            idle: Mutex::new(Some((broker, cfg))),
            thread: Mutex::new(None),
        })
    }

    /// The node's id, the broker's state and the bridge's counters.
    pub fn link(&self) -> &Link {
        &self.link
    }
}

impl<B: Broker> Relay for BrokerRelay<B> {
    fn start(&self, inbound: Inbound) -> io::Result<()> {
        let Some((broker, cfg)) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Err(io::Error::other("this broker relay was started already"));
        };
        let thread = bridge::spawn(broker, cfg, self.link.clone(), inbound)?;
        *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread);
        Ok(())
    }

    fn submit(
        &self,
        worker: u16,
        publications: &mut Vec<(Topic, Frame)>,
        interest: &mut Vec<(Topic, bool)>,
    ) {
        self.link.submit(worker, publications, interest);
    }

    fn has_log(&self) -> bool {
        self.link.has_log()
    }

    fn has_control(&self) -> bool {
        true
    }

    fn has_presence(&self) -> bool {
        self.link.has_presence()
    }

    fn ready(&self) -> bool {
        self.link.stats().connected
    }

    fn submit_log(&self, _worker: u16, requests: &mut Vec<LogRequest>) {
        self.link.submit_log(requests);
    }

    fn write_metrics(&self, out: &mut String) {
        out.push_str(&self.link.prometheus());
    }

    fn stop(&self) -> io::Result<()> {
        self.link.stop();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        match thread.map(JoinHandle::join) {
            Some(Err(_)) => Err(io::Error::other("the broker bridge panicked")),
            _ => Ok(()),
        }
    }
}
