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
//! | `presence` | presence across servers: each server's entries in the broker, lists merged |
//! | [`history`] | each room's kept messages, epochs, and the bounds on them |
//! | [`identity`] | who a connection is: JWT connection and room tokens |
//! | [`clients`] | the client's address behind trusted proxies, connections per address |
//! | [`api`] | the backend API: publish, broadcast, disconnect, presence, history, info |
//! | [`rules`] | who may join and send, by namespace; personal rooms (direct messages) |
//! | [`rate`] | per-connection rate limits (token buckets), the decay of refusals |
//! | `users` | this server's connections of each user |
//! | [`servers`] | a cluster's servers: control messages between them, each one's info |
//! | `config` | the chat's limits and options ([`ChatConfig`]), the authentication hook |
//! | `pages` | the demo page, the browser client, `/healthz`, `/metrics` |

pub mod api;
pub mod clients;
mod cluster;
mod config;
pub mod history;
pub mod identity;
mod pages;
mod presence;
pub mod protocol;
pub mod rate;
pub mod rooms;
pub mod rules;
mod sequencer;
pub mod servers;
mod users;

use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::proto::CloseCode;
use crate::proto::frame::Frame;
use crate::proto::handshake::HttpRequest;
use crate::server::{
    Conn, ConnId, Decision, Handler, Home, HttpResponse, LogEvent, Message, Metrics, Publisher,
    Upgrade,
};
use cluster::ClusterSequencer;
pub use config::{AuthHook, ChatConfig};
use history::Epochs;
use identity::Identity;
use protocol::{MessageEvent, Refusal, Request};
use rate::{Bucket, decayed};
use rooms::{Room, Rooms};
use rules::{JoinRule, SendRule};
use sequencer::{HomeReq, Outgoing, Sequencer};
pub use users::Users;

/// The close code of a connection whose token expired without a `refresh` (4001, in the
/// range RFC 6455 §7.4.2 leaves to applications).
pub const TOKEN_EXPIRED: CloseCode = CloseCode(4001);

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
    /// Presence across servers (a cluster whose broker shares it).
    presence: presence::ClusterPresence,
    /// This server's connections of each user.
    users: Arc<Users>,
    /// Connections open per client address (with a limit set).
    per_address: Arc<clients::PerAddress>,
    /// The other servers of a cluster, as heard (`/api/info`).
    servers: Arc<servers::Servers>,
}

/// One member's state (boxed: a connection that never joins costs a pointer in its slot).
#[derive(Debug, Default)]
pub struct Member {
    rooms: Vec<(Box<str>, Arc<Room>)>,
    name: Option<Box<str>>,
    errors: u8,
    /// When `errors` was last brought up to date (monotonic ms).
    errors_at: u64,
    /// Who the connection's token says it is (`None`: no token).
    identity: Option<Box<Identity>>,
    /// Rate limits: sends, and joins and history pages.
    sends: Bucket,
    joins: Bucket,
    /// The connection's id, once open (for the registry of users' connections).
    conn: Option<ConnId>,
    /// The client's address, when it is counted against the per-address limit.
    ip: Option<std::net::IpAddr>,
    /// Who it is in presence lists: its user id, or its connection id without a token.
    presence_key: Box<str>,
}

/// What the backend API asks of a connection ([`Handler::notify`]): close it.
#[derive(Debug)]
struct Disconnect;

/// The close code of a connection the application disconnected (the backend API's
/// `/api/disconnect`): 4002.
pub const DISCONNECTED: CloseCode = CloseCode(4002);

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

/// How often owed presence updates are looked for.
const PRESENCE_PERIOD: std::time::Duration = std::time::Duration::from_millis(250);

/// Seconds since the Unix epoch (for token times).
fn now_s() -> u64 {
    now_ms() / 1000
}

/// A timer token for a token's expiry: its `exp` and the phase (notice, then deadline).
fn expiry_timer(exp: u64, deadline: bool) -> u64 {
    (exp << 1) | u64::from(deadline)
}

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
            presence: presence::ClusterPresence::default(),
            users: Arc::new(Users::default()),
            per_address: Arc::new(clients::PerAddress::default()),
            servers: Arc::new(servers::Servers::default()),
        }
    }

    /// This server's connections of each user.
    pub fn users(&self) -> &Users {
        &self.users
    }

    /// The configuration.
    pub fn config(&self) -> &ChatConfig {
        &self.cfg
    }

    /// The server's publisher, once attached.
    fn publisher(&self) -> Option<&Publisher> {
        self.server.get().map(|(p, _)| p)
    }

    /// Closes every connection of `user` on this server with [`DISCONNECTED`]; returns how
    /// many there were.
    pub fn disconnect(&self, user: &str) -> usize {
        let conns = self.users.of(user);
        if let Some(publisher) = self.publisher() {
            for &conn in &conns {
                publisher.notify(conn, Disconnect);
            }
        }
        conns.len()
    }

    /// Connects the application to the running server (its publisher and metrics).
    pub fn attach(&self, publisher: Publisher, metrics: Metrics) {
        if self
            .server
            .set((publisher.clone(), metrics.clone()))
            .is_err()
        {
            return;
        }
        // Presence changes inside a room's one-a-second limit are told when it allows: a
        // thread (no worker ever waits) looks for owed updates every 250 ms and ends with the
        // chat.
        // The same thread tells the other servers of a cluster this one's info.
        let rooms = Arc::downgrade(&self.rooms);
        let (cfg, users) = (self.cfg.clone(), self.users.clone());
        let spawned = std::thread::Builder::new()
            .name("ringws-presence".into())
            .spawn(move || {
                let mut told: Option<Instant> = None;
                loop {
                    let Some(rooms) = rooms.upgrade() else { return };
                    if publisher.has_control()
                        && told.is_none_or(|t| t.elapsed() >= servers::INFO_PERIOD)
                    {
                        let info = servers::info_of(&cfg, Some(&metrics), &rooms, &users);
                        told = Some(Instant::now());
                        publisher.control(&servers::Control::Info(info).encode());
                    }
                    for (name, room) in rooms.owed(monotonic_ms()) {
                        publisher.publish_local(&name, presence_frame(&room, &name));
                    }
                    drop(rooms);
                    std::thread::sleep(PRESENCE_PERIOD);
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

    /// The room's `presence` count update, if one is due (never where presence is off).
    fn presence(&self, room: &Room, name: &str) -> Option<Frame> {
        (self.cfg.rules.of(name).presence && room.presence_due(monotonic_ms()))
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

    /// Whether presence lists and join/leave events come from the broker (a cluster sharing
    /// presence) rather than from this server alone.
    fn shares_presence(&self) -> bool {
        self.cfg.node.is_some() && self.cfg.shared_presence
    }

    fn handle(&self, conn: &mut Conn<'_, Box<Member>>, req: Request<'_>) -> Result<(), Refusal> {
        match req {
            Request::Join {
                room: name,
                since,
                token,
            } => {
                if !conn.state().joins.take(self.cfg.join_rate, monotonic_ms()) {
                    return Err(rate_limited("joins"));
                }
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
                self.may_join(member, name, token)?;
                if member.rooms.len() >= self.cfg.max_rooms {
                    return Err(Refusal {
                        code: "too_many_rooms",
                        message: format!("at most {} rooms at once", self.cfg.max_rooms),
                    });
                }
                let room = self.rooms.join(name);
                member.rooms.push((name.into(), room.clone()));
                let namespace = self.cfg.rules.of(name);
                // Without presence the member is not tracked (nor is its leave, then).
                let here = namespace
                    .presence
                    .then(|| room.add_member(&member.presence_key, member.name.as_deref()));
                let (key, nick) = (member.presence_key.clone(), member.name.clone());
                let joined_event = if let Some(here) = here.filter(|_| self.shares_presence()) {
                    // The room's home sets this server's entry (after the join, in order).
                    let value = presence::value(nick.as_deref(), here);
                    let req = HomeReq::Presence {
                        member: key,
                        name: nick,
                        value: Some(value),
                    };
                    conn.to_home(name, req);
                    None
                } else {
                    (here == Some(1) && namespace.join_leave).then(|| {
                        protocol::member_event("member_joined", name, &key, nick.as_deref())
                    })
                };
                if let Some(event) = joined_event {
                    conn.publish(name, Frame::text(&event), false);
                }
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
                let left = room.remove_member(&member.presence_key);
                let key = member.presence_key.clone();
                let nick = member.name.clone();
                if let Some(here) = left {
                    if self.shares_presence() {
                        let value = (here > 0).then(|| presence::value(nick.as_deref(), here));
                        let req = HomeReq::Presence {
                            member: key,
                            name: nick,
                            value,
                        };
                        conn.to_home(name, req);
                    } else if here == 0 && self.cfg.rules.of(name).join_leave {
                        let event = protocol::member_event("member_left", name, &key, None);
                        conn.publish(name, Frame::text(&event), false);
                    }
                }
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
                if !conn.state().sends.take(self.cfg.send_rate, monotonic_ms()) {
                    return Err(rate_limited("messages"));
                }
                let from = self.member_id(conn);
                let ordered = self.ordered();
                let node = self.cfg.node.is_none();
                let member = conn.state();
                let room = self.may_send(member, name, text)?;
                if ordered {
                    // Stamped with the room's next offset by its home, which publishes it.
                    let req = HomeReq::Send(Outgoing {
                        room,
                        from,
                        name: member.name.clone(),
                        ts: now_ms(),
                        text: text.to_owned(),
                        id: id.map(Box::from),
                        user: member.identity.as_ref().map(|i| i.user.clone()),
                        data: None,
                        reply: None,
                    });
                    conn.to_home(name, req);
                    return Ok(());
                }
                let event = MessageEvent {
                    room: name,
                    from: &from,
                    name: member.name.as_deref(),
                    ts: now_ms(),
                    seq: room.as_ref().map_or(0, |r| r.next_seq()),
                    offset: None,
                    text,
                    // Per-node counts mean nothing to the members of other nodes.
                    online: room.as_ref().filter(|_| node).map(|r| r.online()),
                    id,
                    user: member.identity.as_deref().map(|i| &*i.user),
                    data: None,
                };
                let frame = Frame::text(&event.to_json());
                // A member gets its own message too (with its sequence number and time); a
                // direct message's sender is told it went out.
                conn.publish(name, frame, room.is_some());
                if room.is_none() {
                    conn.send_text(&protocol::sent(name, None, id));
                }
            }
            Request::History {
                room: name,
                before,
                limit,
            } => {
                if !conn.state().joins.take(self.cfg.join_rate, monotonic_ms()) {
                    return Err(rate_limited("history pages"));
                }
                let ordered = self.ordered();
                let member = conn.state();
                if !member.rooms.iter().any(|(r, _)| &**r == name) {
                    return Err(not_joined());
                }
                if !self.cfg.rules.of(name).history {
                    return Err(no_history());
                }
                if !ordered {
                    return Err(Refusal {
                        code: "unavailable",
                        message: "no history: the broker keeps no logs".to_owned(),
                    });
                }
                self.not_busy(conn)?;
                conn.to_home(
                    name,
                    HomeReq::History {
                        before,
                        limit,
                        reply: None,
                    },
                );
            }
            Request::Nick { name } => {
                conn.state().name = Some(name.into());
            }
            Request::Presence { room: name } => {
                // A list can be long: paced like history pages, not built for a reader that
                // does not read.
                if !conn.state().joins.take(self.cfg.join_rate, monotonic_ms()) {
                    return Err(rate_limited("presence requests"));
                }
                self.not_busy(conn)?;
                let member = conn.state();
                let Some((_, room)) = member.rooms.iter().find(|(r, _)| &**r == name) else {
                    return Err(not_joined());
                };
                if !self.cfg.rules.of(name).presence {
                    return Err(no_presence());
                }
                if self.shares_presence() {
                    // Every server's members: from the broker, through the room's home.
                    conn.to_home(name, HomeReq::PresenceList { reply: None });
                    return Ok(());
                }
                let (members, truncated) = room.members(self.cfg.max_presence_members);
                let list = protocol::presence_list(name, room.online(), &members, truncated);
                conn.send_text(&list);
            }
            Request::Refresh { token } => {
                // Each refresh costs a signature check (or a hash) and may set a timer.
                if !conn.state().joins.take(self.cfg.join_rate, monotonic_ms()) {
                    return Err(rate_limited("refreshes"));
                }
                let bad = |message: &str| Refusal {
                    code: "bad_token",
                    message: message.to_owned(),
                };
                let Some(tokens) = &self.cfg.tokens else {
                    return Err(bad("this server takes no tokens"));
                };
                let fresh = tokens.check(token, now_s()).map_err(|e| bad(e.reason()))?;
                let member = conn.state();
                if member.identity.as_ref().map(|id| &id.user) != Some(&fresh.user) {
                    return Err(bad("a token for another user"));
                }
                let exp = fresh.exp;
                let unchanged = member.identity.as_ref().is_some_and(|id| id.exp == exp);
                // Rooms the old token's `rooms` let the member into and the new one does not:
                // left, each with the reason.
                let lost: Vec<Box<str>> = member
                    .rooms
                    .iter()
                    .filter(|(room, _)| {
                        self.cfg.rules.of(room).join == JoinRule::Claim
                            && rules::owner(room).is_none()
                            && !fresh.rooms_allow(room)
                    })
                    .map(|(room, _)| room.clone())
                    .collect();
                member.identity = Some(Box::new(fresh));
                conn.send_text(&protocol::refreshed(exp));
                // The same expiry has its timers already.
                if !unchanged {
                    self.expire_at(conn, exp);
                }
                for room in &lost {
                    let why = forbidden("the rooms of your new token do not include this one");
                    conn.send_text(&protocol::error(&why, Some(room)));
                    self.handle(conn, Request::Leave { room })?;
                }
            }
        }
        Ok(())
    }

    /// Whether `member` may join `room`, with the room token it gave, if any.
    fn may_join(&self, member: &Member, room: &str, token: Option<&str>) -> Result<(), Refusal> {
        let identity = member.identity.as_deref();
        let user = identity.map(|id| &*id.user);
        if let Some(owner) = rules::owner(room) {
            return match user {
                Some(user) if user == owner => Ok(()),
                _ => Err(forbidden(
                    "a personal room is for its user's connections only",
                )),
            };
        }
        match self.cfg.rules.of(room).join {
            JoinRule::Anyone => Ok(()),
            JoinRule::Token if user.is_some() => Ok(()),
            JoinRule::Token => Err(forbidden("this room is for connections with a token")),
            JoinRule::Claim if identity.is_some_and(|id| id.rooms_allow(room)) => Ok(()),
            JoinRule::Claim => Err(forbidden("the rooms of your token do not include this one")),
            JoinRule::Signed => {
                let (Some(user), Some(token), Some(tokens)) = (user, token, &self.cfg.tokens)
                else {
                    return Err(forbidden("this room needs a room token"));
                };
                tokens
                    .check_room(token, user, room, now_s())
                    .map(drop)
                    .map_err(|e| forbidden(e.reason()))
            }
        }
    }

    /// Whether `member` may send `text` to `room`: the room's shared counters if it is a
    /// member, `None` for a direct message (to a personal room, by a connection with a token).
    fn may_send(
        &self,
        member: &Member,
        room: &str,
        text: &str,
    ) -> Result<Option<Arc<Room>>, Refusal> {
        let joined = member.rooms.iter().find(|(r, _)| &**r == room);
        let personal = rules::owner(room).is_some();
        let namespace = self.cfg.rules.of(room);
        if !personal && namespace.send == SendRule::Nobody {
            return Err(forbidden("only the application sends to this room"));
        }
        if let Some(max) = namespace.max_text.filter(|&max| text.len() > max) {
            return Err(Refusal {
                code: "too_long",
                message: format!("'text' is longer than {max} bytes in this room"),
            });
        }
        match joined {
            Some((_, room)) => Ok(Some(room.clone())),
            None if personal && member.identity.is_some() => Ok(None),
            None if personal => Err(forbidden("direct messages need a token")),
            None => Err(not_joined()),
        }
    }

    /// Tells the connection before its token expires at `exp` (s) and closes it then, unless
    /// it refreshes: a timer now for the notice (see [`Handler::timer`]).
    fn expire_at(&self, conn: &mut Conn<'_, Box<Member>>, exp: u64) {
        let notice = self.cfg.expiry_notice.as_millis() as u64;
        let at = exp.saturating_mul(1000).saturating_sub(notice);
        let after = std::time::Duration::from_millis(at.saturating_sub(now_ms()));
        conn.set_timer(after, expiry_timer(exp, false));
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

fn forbidden(message: &str) -> Refusal {
    Refusal {
        code: "forbidden",
        message: message.to_owned(),
    }
}

fn rate_limited(what: &str) -> Refusal {
    Refusal {
        code: "rate_limited",
        message: format!("too many {what}: slow down"),
    }
}

fn not_joined() -> Refusal {
    Refusal {
        code: "not_joined",
        message: "join the room first".to_owned(),
    }
}

/// A history request where the room's namespace keeps none (`history = false`).
fn no_history() -> Refusal {
    Refusal {
        code: "no_history",
        message: "this room keeps no history".to_owned(),
    }
}

/// A presence request where the room's namespace has none (`presence = false`).
fn no_presence() -> Refusal {
    Refusal {
        code: "no_presence",
        message: "this room has no presence".to_owned(),
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
        let identity = match &self.cfg.tokens {
            None => None,
            Some(tokens) => {
                let Some(token) = identity::token_of(req.request()) else {
                    return Decision::Reject {
                        status: 401,
                        reason: "a token is required",
                    };
                };
                match tokens.check(token, now_s()) {
                    Ok(identity) => Some(Box::new(identity)),
                    Err(e) => {
                        return Decision::Reject {
                            status: 401,
                            reason: e.reason(),
                        };
                    }
                }
            }
        };
        let mut name = identity.as_ref().and_then(|id| id.name.clone());
        if let Some(auth) = &self.cfg.auth {
            match auth(req) {
                Ok(given) => name = given.map(String::into_boxed_str).or(name),
                Err((status, reason)) => return Decision::Reject { status, reason },
            }
        }
        // Last: an address is counted only for a connection that is accepted.
        let mut ip = None;
        if self.cfg.max_conns_per_ip > 0 {
            let Ok(peer) = req.peer_addr() else {
                return Decision::Reject {
                    status: 400,
                    reason: "no peer address",
                };
            };
            // Every X-Forwarded-For line, in order (a proxy may add a line of its own instead
            // of appending to the client's).
            let forwarded: Vec<&str> = req
                .headers()
                .filter(|(name, _)| name.eq_ignore_ascii_case("x-forwarded-for"))
                .filter_map(|(_, v)| std::str::from_utf8(v).ok())
                .collect();
            let forwarded = (!forwarded.is_empty()).then(|| forwarded.join(","));
            let client = clients::client_ip(
                peer.ip().to_canonical(),
                forwarded.as_deref(),
                &self.cfg.trusted_proxies,
            );
            if !self.per_address.admit(client, self.cfg.max_conns_per_ip) {
                return Decision::Reject {
                    status: 429,
                    reason: "too many connections from this address",
                };
            }
            ip = Some(client);
        }
        Decision::Accept {
            state: Box::new(Member {
                name,
                identity,
                ip,
                ..Member::default()
            }),
            protocol: None,
        }
    }

    fn open(&mut self, conn: &mut Conn<'_, Box<Member>>) {
        let id = self.member_id(conn);
        let conn_id = conn.id();
        conn.state().conn = Some(conn_id);
        let identity = conn.state().identity.as_deref();
        let (user, exp) = (identity.map(|i| i.user.clone()), identity.map(|i| i.exp));
        if let Some(user) = &user {
            self.users.add(user, conn_id);
        }
        conn.state().presence_key = user.clone().unwrap_or_else(|| id.clone().into());
        conn.send_text(&protocol::welcome(&id, user.as_deref(), &self.cfg));
        if let Some(exp) = exp {
            self.expire_at(conn, exp);
        }
    }

    fn timer(&mut self, conn: &mut Conn<'_, Box<Member>>, token: u64) {
        let Some(exp) = conn.state().identity.as_ref().map(|id| id.exp) else {
            return;
        };
        if token >> 1 != exp {
            return; // refreshed since
        }
        let leeway = self.cfg.tokens.as_ref().map_or(0, |t| t.leeway);
        let deadline = exp.saturating_add(leeway).saturating_mul(1000);
        let now = now_ms();
        if now >= deadline {
            conn.close(TOKEN_EXPIRED, "token expired");
            return;
        }
        if token & 1 == 0 {
            conn.send_text(&protocol::expiring(exp));
        }
        let after = std::time::Duration::from_millis(deadline - now);
        conn.set_timer(after, expiry_timer(exp, true));
    }

    fn message(&mut self, conn: &mut Conn<'_, Box<Member>>, msg: Message<'_>) {
        let Message::Text(text) = msg else {
            let refusal = Refusal {
                code: "binary",
                message: "requests are JSON text frames".to_owned(),
            };
            return self.refuse(conn, &refusal, None);
        };
        let wire = match protocol::decode(text) {
            Ok(wire) => wire,
            Err(refusal) => return self.refuse(conn, &refusal, None),
        };
        let result = protocol::check(&wire, &self.cfg).and_then(|req| self.handle(conn, req));
        if let Err(refusal) = result {
            let room = wire.room.as_deref();
            let room =
                room.filter(|r| r.len() <= self.cfg.max_room_name && protocol::room_name_ok(r));
            self.refuse(conn, &refusal, room);
        }
    }

    fn notify(&mut self, conn: &mut Conn<'_, Box<Member>>, data: Box<dyn Any + Send>) {
        if data.is::<Disconnect>() {
            conn.close(DISCONNECTED, "disconnected by the application");
        }
    }

    fn close(&mut self, member: Box<Member>, _code: CloseCode, _reason: &str) {
        if let (Some(identity), Some(conn)) = (&member.identity, member.conn) {
            self.users.remove(&identity.user, conn);
        }
        if let Some(ip) = member.ip {
            self.per_address.release(ip);
        }
        for (name, room) in &member.rooms {
            self.rooms.leave(name, room);
            let left = room.remove_member(&member.presence_key);
            if let (Some(here), Some(publisher)) = (left, self.publisher()) {
                if self.shares_presence() {
                    let value = (here > 0).then(|| presence::value(member.name.as_deref(), here));
                    let req = HomeReq::Presence {
                        member: member.presence_key.clone(),
                        name: member.name.clone(),
                        value,
                    };
                    publisher.to_home(name, req);
                } else if here == 0 && self.cfg.rules.of(name).join_leave {
                    let event =
                        protocol::member_event("member_left", name, &member.presence_key, None);
                    publisher.publish(name, Frame::text(&event));
                }
            }
            if let (Some(frame), Some((publisher, _))) =
                (self.presence(room, name), self.server.get())
            {
                publisher.publish_local(name, frame);
            }
        }
    }

    fn home(&mut self, home: &mut Home<'_>, data: Box<dyn Any + Send>) {
        let data = match data.downcast::<HomeReq>() {
            Ok(req)
                if matches!(
                    *req,
                    HomeReq::Presence { .. } | HomeReq::PresenceList { .. }
                ) =>
            {
                return self.presence.request(home, *req);
            }
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
            if let LogEvent::Control { payload } = *event {
                return self.control(&payload);
            }
            if matches!(
                *event,
                LogEvent::PresenceChanged { .. } | LogEvent::PresenceListed { .. }
            ) {
                return self.presence.event(home, *event, &self.cfg);
            }
            self.cluster
                .log_event(home, *event, &self.cfg, &self.epochs, &self.rooms);
        }
    }

    fn http(&mut self, req: &HttpRequest<'_>) -> HttpResponse {
        let metrics = self.server.get().map(|(_, m)| m);
        pages::serve(req, metrics, &self.rooms)
    }
}
