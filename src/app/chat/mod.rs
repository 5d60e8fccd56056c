//! The chat backend (`ringws --mode chat`): rooms across all cores, a JSON protocol
//! ([`protocol`]), the demo page and its client library on `/` and `/ringws.js`, `/healthz` and
//! `/metrics` on the same port.
//!
//! A room is a topic of the server's pub/sub ([`crate::server::pubsub`]): a message is encoded
//! once and the same frame goes to every member on every core. On a lone server a room's
//! messages, joins and leaves go through the room's home worker ([`crate::server::home`]),
//! which stamps offsets and keeps history (`sequencer`, [`history`]). Members online are
//! shared by the workers ([`rooms`]) and touched with atomics only, except when a room is
//! created or left by its last member.
//!
//! | module | concept |
//! |---|---|
//! | [`protocol`] | requests (checked) and events, as JSON |
//! | [`rooms`] | the rooms shared by the workers: online counts, sequence numbers |
//! | `sequencer` | a room's home worker: one order (offsets), joins that resume, history pages |
//! | `cluster` | the same in a cluster: the broker's log gives the order, each server's home delivers it |
//! | [`history`] | each room's kept messages, epochs, and the bounds on them |
//! | `pages` | the demo page, the browser client, `/healthz`, `/metrics` |

mod cluster;
pub mod history;
mod pages;
pub mod protocol;
pub mod rooms;
mod sequencer;

use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::proto::CloseCode;
use crate::proto::frame::Frame;
use crate::proto::handshake::{HttpRequest, OriginPolicy, UpgradeRequest};
use crate::server::{
    Conn, Decision, Handler, Home, HttpResponse, LogEvent, Message, Metrics, Publisher, Upgrade,
};
use cluster::ClusterSequencer;
use history::{Epochs, HistoryConfig};
use protocol::{MessageEvent, Refusal, Request};
use rooms::{Room, Rooms};
use sequencer::{HomeReq, Sequencer};

/// Decides whether an upgrade request may chat: `Ok(name)` accepts it (with a display name the
/// token stands for, if any), `Err((status, reason))` refuses it with that HTTP status (401,
/// 403, ...). Called on the worker thread for every upgrade: it must not block (check a signed
/// token, not a database).
pub type AuthHook =
    Arc<dyn Fn(&UpgradeRequest<'_>) -> Result<Option<String>, (u16, &'static str)> + Send + Sync>;

/// The chat's limits and options. Every limit bounds what one connection can make the server
/// hold or do.
#[derive(Clone)]
pub struct ChatConfig {
    /// Rooms one connection may be in at once. Default 16: a chat client shows a handful; each
    /// room joined costs a subscription on the worker and a share of every message sent there.
    pub max_rooms: usize,
    /// Longest message text, in bytes (after JSON decoding). Default 4096: a long chat message;
    /// the frame limit (`max_message_bytes`) bounds the whole request anyway.
    pub max_text: usize,
    /// Longest room name, in bytes. Default 64.
    pub max_room_name: usize,
    /// Longest display name, in bytes. Default 32.
    pub max_name: usize,
    /// Refused requests a connection may make before it is closed with 1008 (policy
    /// violation). Default 16: a buggy client sees its errors; a hostile one is cut off.
    pub max_errors: u8,
    /// How often one refused request is forgiven (the count of refusals decays by one per
    /// period). Default 10 s: a client that errs now and then is never closed for it, one that
    /// keeps sending bad requests (more than `max_errors` faster than one per period) is.
    pub error_decay: std::time::Duration,
    /// Which page origins may open a chat connection (RFC 6455 §10.2). Default: any.
    pub origins: OriginPolicy,
    /// The authentication hook; `None` lets everyone in.
    pub auth: Option<AuthHook>,
    /// The text heartbeat the server answers (`--text-heartbeat`), told to clients in the
    /// welcome so the browser library uses it: (request, response, interval in ms).
    pub heartbeat: Option<(String, String, u64)>,
    /// This server's node id when rooms span several servers through a broker (`--broker`):
    /// connection ids are prefixed with it (unique across nodes), presence stays on each node
    /// (its counts are per node) and message events carry no count. `None`: a lone server.
    pub node: Option<String>,
    /// Room history and its bounds (a lone server keeps it in memory, per room's home worker).
    pub history: HistoryConfig,
    /// In a cluster (`node` set): whether the broker keeps a log per room (the Redis bridge
    /// with [`BrokerConfig::log`](crate::broker::BrokerConfig::log) set), so rooms have one
    /// order, offsets and history across the servers. Without it, each sender's messages keep
    /// their order, and there is no history.
    pub log: bool,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_rooms: 16,
            max_text: 4096,
            max_room_name: 64,
            max_name: 32,
            max_errors: 16,
            error_decay: std::time::Duration::from_secs(10),
            origins: OriginPolicy::Any,
            auth: None,
            heartbeat: None,
            node: None,
            history: HistoryConfig::default(),
            log: false,
        }
    }
}

impl std::fmt::Debug for ChatConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatConfig")
            .field("max_rooms", &self.max_rooms)
            .field("max_text", &self.max_text)
            .field("origins", &self.origins)
            .field("auth", &self.auth.is_some())
            .field("node", &self.node)
            .field("history", &self.history)
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

/// The chat application (clone one per worker; the clones share rooms and metrics).
#[derive(Clone)]
pub struct Chat {
    cfg: Arc<ChatConfig>,
    rooms: Arc<Rooms>,
    /// Set once the server runs: for presence updates when a member leaves by closing (no
    /// connection to publish from then) and for `/metrics`.
    server: Arc<OnceLock<(Publisher, Metrics)>>,
    /// Epochs for the rooms' logs (unique to this run of the server).
    epochs: Arc<Epochs>,
    /// This worker's rooms' order and history (each worker's clone has its own).
    sequencer: Sequencer,
    /// The same in a cluster whose broker keeps the rooms' logs.
    cluster: ClusterSequencer,
}

/// One member's state (boxed: a connection that never joins costs a pointer in its slot).
#[derive(Debug, Default)]
pub struct Member {
    rooms: Vec<(Box<str>, Arc<Room>)>,
    name: Option<Box<str>>,
    errors: u8,
    /// When `errors` was last brought up to date (monotonic ms).
    errors_at: u64,
}

/// Milliseconds on a monotonic clock, from 1 (for presence rate limits: a wall clock stepped
/// back would silence presence until it caught up).
fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

fn presence_frame(room: &Room, name: &str) -> Frame {
    let event = protocol::room_event("presence", name, room.online());
    Frame::text(&event)
}

/// `errors` refusals counted as of `at` (ms), as of `now`: one forgiven per whole `period`
/// passed (0: never). Returns the count and the time it is counted as of (the start of the
/// period under way, so partial periods add up).
fn decayed(errors: u8, at: u64, now: u64, period: u64) -> (u8, u64) {
    if period == 0 || errors == 0 {
        return (errors, now);
    }
    let periods = now.saturating_sub(at) / period;
    let forgiven = periods.min(u64::from(errors)) as u8;
    if forgiven == errors {
        return (0, now);
    }
    (errors - forgiven, at + periods * period)
}

/// How often owed presence updates are looked for.
const PRESENCE_PERIOD: std::time::Duration = std::time::Duration::from_millis(250);

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Chat {
    /// A chat with `cfg`.
    pub fn new(cfg: ChatConfig) -> Self {
        Chat {
            cfg: Arc::new(cfg),
            rooms: Arc::new(Rooms::default()),
            server: Arc::new(OnceLock::new()),
            epochs: Arc::new(Epochs::for_this_run()),
            sequencer: Sequencer::default(),
            cluster: ClusterSequencer::default(),
        }
    }

    /// Connects the application to the running server (its publisher and metrics).
    pub fn attach(&self, publisher: Publisher, metrics: Metrics) {
        if self.server.set((publisher.clone(), metrics)).is_err() {
            return;
        }
        // Presence changes inside a room's one-a-second limit are told when it allows: a
        // thread (no worker ever waits) looks for owed updates every 250 ms and ends with the
        // chat.
        let rooms = Arc::downgrade(&self.rooms);
        let spawned = std::thread::Builder::new()
            .name("ringws-presence".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(PRESENCE_PERIOD);
                    let Some(rooms) = rooms.upgrade() else { return };
                    for (name, room) in rooms.owed(monotonic_ms()) {
                        publisher.publish_local(&name, presence_frame(&room, &name));
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("no presence thread ({e}): some presence changes will go untold");
        }
    }

    /// The rooms (for tests and metrics).
    pub fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    fn refuse(&self, conn: &mut Conn<'_, Box<Member>>, refusal: &Refusal, room: Option<&str>) {
        conn.send_text(&protocol::error(refusal, room));
        let member = conn.state();
        let now = monotonic_ms();
        let period = self.cfg.error_decay.as_millis() as u64;
        let (errors, at) = decayed(member.errors, member.errors_at, now, period);
        member.errors = errors.saturating_add(1);
        member.errors_at = at;
        if member.errors > self.cfg.max_errors {
            conn.close(CloseCode::POLICY_VIOLATION, "too many bad requests");
        }
    }

    /// The connection's id as members see it: unique on this server, and across the cluster
    /// (prefixed with the node) when there is one.
    fn member_id(&self, conn: &Conn<'_, Box<Member>>) -> String {
        match &self.cfg.node {
            Some(node) => format!("{node}:{}", conn.id()),
            None => conn.id().to_string(),
        }
    }

    fn presence(&self, room: &Room, name: &str) -> Option<Frame> {
        room.presence_due(monotonic_ms())
            .then(|| presence_frame(room, name))
    }

    /// Refuses what would queue history to a connection that has not read what it was sent.
    fn not_busy(&self, conn: &Conn<'_, Box<Member>>) -> Result<(), Refusal> {
        if conn.queued_bytes() > self.cfg.history.busy_bytes {
            return Err(Refusal {
                code: "busy",
                message: "read what was sent first".to_owned(),
            });
        }
        Ok(())
    }

    /// Whether rooms have one order, offsets and history here: on a lone server, through each
    /// room's home worker; in a cluster, through the broker's log (if it keeps one; else each
    /// sender's messages keep their order and there is no history).
    fn ordered(&self) -> bool {
        self.cfg.node.is_none() || self.cfg.log
    }

    fn handle(&self, conn: &mut Conn<'_, Box<Member>>, req: Request<'_>) -> Result<(), Refusal> {
        match req {
            Request::Join { room: name, since } => {
                let ordered = self.ordered();
                if ordered && since.is_some() {
                    self.not_busy(conn)?;
                }
                let member = conn.state();
                if let Some((_, room)) = member.rooms.iter().find(|(r, _)| &**r == name) {
                    let room = room.clone();
                    if ordered {
                        // Where the room is now (and what was missed since `since`), in order.
                        let since = since.map(|(e, o)| (e.to_owned(), o));
                        conn.to_home(name, HomeReq::Join { room, since });
                    } else {
                        conn.send_text(&joined_without_history(
                            name,
                            room.online(),
                            since.is_some(),
                        ));
                    }
                    return Ok(());
                }
                if member.rooms.len() >= self.cfg.max_rooms {
                    return Err(Refusal {
                        code: "too_many_rooms",
                        message: format!("at most {} rooms at once", self.cfg.max_rooms),
                    });
                }
                let room = self.rooms.join(name);
                member.rooms.push((name.into(), room.clone()));
                if ordered {
                    // Subscribed by the room's home, after its answer and what was missed.
                    let since = since.map(|(e, o)| (e.to_owned(), o));
                    conn.to_home(
                        name,
                        HomeReq::Join {
                            room: room.clone(),
                            since,
                        },
                    );
                } else {
                    conn.subscribe(name);
                    conn.send_text(&joined_without_history(
                        name,
                        room.online(),
                        since.is_some(),
                    ));
                }
                if let Some(frame) = self.presence(&room, name) {
                    conn.publish_local(name, frame, false);
                }
            }
            Request::Leave { room: name } => {
                let ordered = self.ordered();
                let member = conn.state();
                let Some(i) = member.rooms.iter().position(|(r, _)| &**r == name) else {
                    return Err(not_joined());
                };
                let (_, room) = member.rooms.swap_remove(i);
                self.rooms.leave(name, &room);
                if ordered {
                    let online = room.online();
                    conn.to_home(name, HomeReq::Leave { online });
                } else {
                    conn.unsubscribe(name);
                    conn.send_text(&protocol::room_event("left", name, room.online()));
                }
                if let Some(frame) = self.presence(&room, name) {
                    conn.publish_local(name, frame, false);
                }
            }
            Request::Send {
                room: name,
                text,
                id,
            } => {
                let from = self.member_id(conn);
                let ordered = self.ordered();
                let member = conn.state();
                let Some((_, room)) = member.rooms.iter().find(|(r, _)| &**r == name) else {
                    return Err(not_joined());
                };
                if ordered {
                    // Stamped with the room's next offset by its home, which publishes it.
                    let req = HomeReq::Send {
                        room: room.clone(),
                        from,
                        name: member.name.clone(),
                        ts: now_ms(),
                        text: text.to_owned(),
                        id: id.map(Box::from),
                    };
                    conn.to_home(name, req);
                    return Ok(());
                }
                let event = MessageEvent {
                    room: name,
                    from: &from,
                    name: member.name.as_deref(),
                    ts: now_ms(),
                    seq: room.next_seq(),
                    offset: None,
                    text,
                    // Per-node counts mean nothing to the members of other nodes.
                    online: self.cfg.node.is_none().then(|| room.online()),
                    id,
                };
                let frame = Frame::text(&event.to_json());
                // The sender gets it too: its copy carries the sequence number and time.
                conn.publish(name, frame, true);
            }
            Request::History {
                room: name,
                before,
                limit,
            } => {
                let ordered = self.ordered();
                let member = conn.state();
                if !member.rooms.iter().any(|(r, _)| &**r == name) {
                    return Err(not_joined());
                }
                if !ordered {
                    return Err(Refusal {
                        code: "unavailable",
                        message: "no history: the broker keeps no logs".to_owned(),
                    });
                }
                self.not_busy(conn)?;
                conn.to_home(name, HomeReq::History { before, limit });
            }
            Request::Nick { name } => {
                conn.state().name = Some(name.into());
            }
        }
        Ok(())
    }
}

/// `joined` where rooms keep no history (a cluster, for now): a position given is answered
/// `recovered:false`.
fn joined_without_history(room: &str, online: i64, since: bool) -> String {
    let mut joined = serde_json::json!({"op": "joined", "room": room, "online": online});
    if since {
        joined["recovered"] = false.into();
    }
    joined.to_string()
}

fn not_joined() -> Refusal {
    Refusal {
        code: "not_joined",
        message: "join the room first".to_owned(),
    }
}

impl Handler for Chat {
    type State = Box<Member>;

    fn upgrade<'r>(&mut self, req: &Upgrade<'_, 'r>) -> Decision<'r, Box<Member>> {
        if self.cfg.origins.check(req).is_err() {
            return Decision::Reject {
                status: 403,
                reason: "origin not allowed",
            };
        }
        let name = match &self.cfg.auth {
            None => None,
            Some(auth) => match auth(req) {
                Ok(name) => name,
                Err((status, reason)) => return Decision::Reject { status, reason },
            },
        };
        Decision::Accept {
            state: Box::new(Member {
                name: name.map(String::into_boxed_str),
                ..Member::default()
            }),
            protocol: None,
        }
    }

    fn open(&mut self, conn: &mut Conn<'_, Box<Member>>) {
        let id = self.member_id(conn);
        conn.send_text(&protocol::welcome(&id, &self.cfg));
    }

    fn message(&mut self, conn: &mut Conn<'_, Box<Member>>, msg: Message<'_>) {
        let Message::Text(text) = msg else {
            let refusal = Refusal {
                code: "binary",
                message: "requests are JSON text frames".to_owned(),
            };
            return self.refuse(conn, &refusal, None);
        };
        let value = match protocol::json(text) {
            Ok(value) => value,
            Err(refusal) => return self.refuse(conn, &refusal, None),
        };
        let room = value.get("room").and_then(|r| r.as_str());
        let result = protocol::parse(&value, &self.cfg).and_then(|req| self.handle(conn, req));
        if let Err(refusal) = result {
            let room = room.filter(|r| r.len() <= self.cfg.max_room_name);
            self.refuse(conn, &refusal, room);
        }
    }

    fn close(&mut self, member: Box<Member>, _code: CloseCode, _reason: &str) {
        for (name, room) in &member.rooms {
            self.rooms.leave(name, room);
            if let (Some(frame), Some((publisher, _))) =
                (self.presence(room, name), self.server.get())
            {
                publisher.publish_local(name, frame);
            }
        }
    }

    fn home(&mut self, home: &mut Home<'_>, data: Box<dyn Any + Send>) {
        let data = match data.downcast::<HomeReq>() {
            Ok(req) if home.has_log() => {
                return self.cluster.request(home, *req, &self.cfg, &self.epochs);
            }
            Ok(req) => {
                return self
                    .sequencer
                    .handle(home, *req, &self.cfg, &self.epochs, &self.rooms);
            }
            Err(data) => data,
        };
        if let Ok(event) = data.downcast::<LogEvent>() {
            self.cluster
                .log_event(home, *event, &self.cfg, &self.epochs, &self.rooms);
        }
    }

    fn http(&mut self, req: &HttpRequest<'_>) -> HttpResponse {
        let metrics = self.server.get().map(|(_, m)| m);
        pages::serve(req, metrics, &self.rooms)
    }
}

#[cfg(test)]
mod tests {
    use super::decayed;

    #[test]
    fn refusals_are_forgiven_one_per_period() {
        assert_eq!(
            decayed(0, 0, 5_000, 1_000),
            (0, 5_000),
            "nothing to forgive"
        );
        assert_eq!(
            decayed(5, 1_000, 1_999, 1_000),
            (5, 1_000),
            "not a whole period yet"
        );
        assert_eq!(
            decayed(5, 1_000, 3_500, 1_000),
            (3, 3_000),
            "two periods; the half kept"
        );
        assert_eq!(
            decayed(3, 3_000, 4_000, 1_000),
            (2, 4_000),
            "the half counted"
        );
        assert_eq!(
            decayed(2, 0, 1_000_000, 1_000),
            (0, 1_000_000),
            "all of them, no more"
        );
        assert_eq!(
            decayed(7, 0, 1_000_000, 0),
            (7, 1_000_000),
            "a period of 0: never"
        );
    }
}
