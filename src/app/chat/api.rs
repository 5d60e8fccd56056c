//! The backend API: the application behind the chat publishes, reads history, disconnects
//! users and asks what is going on, over HTTP/1.1 with JSON, on a listener of its own
//! (`--api-listen`, never the public port), authenticated by a key (`--api-key`, sent as
//! `Authorization: apikey KEY`, compared in constant time).
//!
//! | request | body / query | answer |
//! |---|---|---|
//! | `POST /api/publish` | `{"room":R,"text":T}` or `{"room":R,"data":{...}}` | `{"room":R,"offset":N}` (`offset` where rooms have one order) |
//! | `POST /api/broadcast` | `{"rooms":[R,...],"text":T}` (or `data`) | `{"offsets":{R:N,...}}` |
//! | `POST /api/disconnect` | `{"user":U}` | `{"user":U,"disconnected":n}`: this server's connections of U, closed with 4002; in a cluster every other server is told to close its own (`"servers":"all"`; 503 while the broker is unreachable) |
//! | `GET /api/presence?room=R` | | `{"room":R,"online":n,"members":[{"user","name","connections"}]}`: on every server of a cluster sharing presence |
//! | `GET /api/history?room=R&limit=K&before=N` | | the `history` event a member would get |
//! | `GET /api/info` | | `{"version","node","workers","connections","rooms","users"}` of this server; in a cluster also `"servers"` (each heard from within 6 s, with `age_ms`) and `"cluster":{"servers","connections"}` |
//!
//! Members receive a publication as an ordinary `message` with `"from":"api"` (and the
//! `data`, if given), in the room's order, kept in its history. Errors are 4xx (5xx when the
//! cluster's broker cannot be reached) with `{"error":{"code":C,"message":M}}`: `unauthorized`
//! (401), `not_found` (404), `method_not_allowed` (405), `too_large` (413), `bad_json`,
//! `bad_field`, `bad_room`, `too_long` (400), `no_history` (409), `unavailable` (503).
//!
//! Off the hot path by design: a thread accepts, one thread per request (at most
//! [`ApiConfig::max_connections`] at once), blocking I/O with timeouts. A publication is a
//! request to the room's home worker like a member's message; the answer waits for the offset.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::protocol::{self, MessageEvent};
use super::sequencer::{HomeReq, Outgoing};
use super::{Chat, now_ms};
use crate::proto::frame::Frame;

/// The API's listener and its bounds.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where it listens (keep it off the public network: a private interface or loopback).
    pub listen: SocketAddr,
    /// The key every request must carry (`Authorization: apikey KEY`).
    pub key: String,
    /// Largest request body, in bytes. Default 1 MiB: a broadcast to a thousand rooms.
    pub max_body: usize,
    /// Requests served at once (each on its own thread). Default 64: a backend's pool; more
    /// wait in the listen backlog.
    pub max_connections: usize,
    /// How long a request may take to arrive, and an answer to be written. Default 10 s.
    pub io_timeout: Duration,
    /// How long a publication or a history read may wait for the room's home (and, in a
    /// cluster, for Redis). Default 5 s; then 503.
    pub answer_timeout: Duration,
}

impl ApiConfig {
    /// The defaults, at `listen` with `key`.
    pub fn new(listen: SocketAddr, key: impl Into<String>) -> Self {
        ApiConfig {
            listen,
            key: key.into(),
            max_body: 1 << 20,
            max_connections: 64,
            io_timeout: Duration::from_secs(10),
            answer_timeout: Duration::from_secs(5),
        }
    }
}

/// Most rooms in one broadcast.
pub const MAX_BROADCAST_ROOMS: usize = 1000;
/// Largest request head, in bytes.
const MAX_HEAD: usize = 8192;

/// The running API: stops accepting (its accepting thread ends within [`ACCEPT_WAIT`]) when
/// dropped or told to ([`ApiServer::stop_flag`]).
#[derive(Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// The listening socket (a copy of the accepting thread's), for a hand-over.
    listener: TcpListener,
}

impl ApiServer {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A copy of the listening socket (the same socket), to hand to a process that takes over
    /// ([`crate::handoff`]).
    ///
    /// # Errors
    /// `dup` failed (out of descriptors).
    pub fn listener_copy(&self) -> io::Result<TcpListener> {
        self.listener.try_clone()
    }

    /// The flag that stops accepting when set (within [`ACCEPT_WAIT`]; requests under way are
    /// answered): a live hand-over's old process sets it once the new one accepts on the same
    /// socket, so that every request after that reaches the new one.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Longest an accept waits before the accepting thread looks at its stop flag again.
pub const ACCEPT_WAIT: Duration = Duration::from_millis(200);

/// Starts the API for `chat` (attached to its server first: it publishes through it).
///
/// # Errors
/// The listener cannot be bound, or the key is empty.
pub fn serve(chat: Chat, cfg: ApiConfig) -> io::Result<ApiServer> {
    if cfg.key.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the API needs a key (--api-key)",
        ));
    }
    let listener = TcpListener::bind(cfg.listen).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot listen on {} for the API: {e}", cfg.listen),
        )
    })?;
    serve_on(chat, cfg, listener)
}

/// The same on a listener bound already (a live hand-over passes the running server's; see
/// [`crate::handoff`]).
///
/// # Errors
/// The key is empty, or the listener is not a bound socket.
pub fn serve_on(chat: Chat, cfg: ApiConfig, listener: TcpListener) -> io::Result<ApiServer> {
    if cfg.key.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the API needs a key (--api-key)",
        ));
    }
    // Blocking accepts (the listener may come non-blocking from another process).
    listener.set_nonblocking(false)?;
    // Accepts time out (Linux applies SO_RCVTIMEO to accept), so that the accepting thread
    // sees its stop flag without a connection to wake it: after a hand-over the socket is the
    // new process's too, and a wake-up connection could reach it instead.
    socket2::SockRef::from(&listener).set_read_timeout(Some(ACCEPT_WAIT))?;
    let addr = listener.local_addr()?;
    let copy = listener.try_clone()?;
    let stop = Arc::new(AtomicBool::new(false));
    let theirs = stop.clone();
    let api = Arc::new(Api {
        chat,
        cfg,
        busy: AtomicUsize::new(0),
        next_key: AtomicU64::new(0),
        run: format!("{:x}", now_ms()),
    });
    std::thread::Builder::new()
        .name("ringws-api".into())
        .spawn(move || {
            loop {
                if theirs.load(Ordering::Relaxed) {
                    return;
                }
                // Waits at most ACCEPT_WAIT (SO_RCVTIMEO, set below), then looks at the flag.
                let Ok((stream, _)) = listener.accept() else {
                    continue;
                };
                if theirs.load(Ordering::Relaxed) {
                    // Accepted after the stop (a hand-over's new process shares the socket):
                    // answered all the same rather than dropped.
                    let api = api.clone();
                    let _ = std::thread::Builder::new()
                        .name("ringws-api-request".into())
                        .spawn(move || api.connection(stream));
                    return;
                }
                if api.busy.fetch_add(1, Ordering::AcqRel) >= api.cfg.max_connections {
                    api.busy.fetch_sub(1, Ordering::AcqRel);
                    let _ = respond(
                        &stream,
                        503,
                        &error("busy", "too many API requests at once"),
                    );
                    continue;
                }
                let theirs = api.clone();
                let spawned = std::thread::Builder::new()
                    .name("ringws-api-request".into())
                    .spawn(move || {
                        theirs.connection(stream);
                        theirs.busy.fetch_sub(1, Ordering::AcqRel);
                    });
                if spawned.is_err() {
                    // The request is dropped unanswered (the client sees the connection close);
                    // its place is given back.
                    tracing::warn!("API: cannot start a thread for a request");
                    api.busy.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })?;
    Ok(ApiServer {
        addr,
        stop,
        listener: copy,
    })
}

struct Api {
    chat: Chat,
    cfg: ApiConfig,
    busy: AtomicUsize,
    /// Keys of the API's messages (a cluster's broker answers by key), unique to this run.
    next_key: AtomicU64,
    run: String,
}

/// An error answer: status, code, message.
type Failure = (u16, Value);

fn error(code: &str, message: impl Into<String>) -> Value {
    json!({"error": {"code": code, "message": message.into()}})
}

fn fail(status: u16, code: &str, message: impl Into<String>) -> Failure {
    (status, error(code, message))
}

fn respond(mut stream: &TcpStream, status: u16, body: &Value) -> io::Result<()> {
    respond_text(&mut stream, status, &body.to_string())
}

fn respond_text(stream: &mut &TcpStream, status: u16, body: &str) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        crate::proto::handshake::reason_phrase(status),
        body.len() + 1
    );
    if status == 405 {
        out.push_str("Allow: GET, POST\r\n");
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.push('\n');
    stream.write_all(out.as_bytes())
}

/// A request, read (and its key checked): method, path, query, the body.
struct Request {
    method: String,
    path: String,
    query: String,
    body: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Publish {
    room: Option<String>,
    rooms: Option<Vec<String>>,
    text: Option<String>,
    data: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisconnectBody {
    user: String,
}

impl Api {
    fn connection(&self, stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(self.cfg.io_timeout));
        let _ = stream.set_write_timeout(Some(self.cfg.io_timeout));
        let answer = self.read(&stream).and_then(|req| self.route(&req));
        let _ = match answer {
            Ok(Answer::Json(body)) => respond(&stream, 200, &body),
            Ok(Answer::Text(text)) => respond_text(&mut &stream, 200, &text),
            Err((status, body)) => respond(&stream, status, &body),
        };
        // A body refused unread (too large) is read and dropped, briefly and boundedly:
        // closing with unread input would reset the connection and lose the answer.
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let until = std::time::Instant::now() + Duration::from_secs(1);
        let mut sink = [0u8; 4096];
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match (&stream).read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    fn read(&self, mut stream: &TcpStream) -> Result<Request, Failure> {
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        // One deadline for the whole request: a client that trickles it does not hold a
        // request thread longer.
        let deadline = std::time::Instant::now() + self.cfg.io_timeout;
        let read_some = |stream: &mut &TcpStream, chunk: &mut [u8]| {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(fail(408, "timeout", "the request took too long"));
            }
            let _ = stream.set_read_timeout(Some(left));
            stream
                .read(chunk)
                .map_err(|_| fail(408, "timeout", "the request did not arrive in time"))
        };
        let head_len = loop {
            let n = read_some(&mut stream, &mut chunk)?;
            if n == 0 {
                return Err(fail(400, "bad_request", "the request ended early"));
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => break len,
                Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => continue,
                Ok(httparse::Status::Partial) => {
                    return Err(fail(431, "too_large", "the request head is too large"));
                }
                Err(e) => return Err(fail(400, "bad_request", format!("not HTTP/1.1: {e}"))),
            }
        };
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let _ = req.parse(&buf);
        let target = req.path.unwrap_or("/");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        let key = header("authorization")
            .and_then(|v| v.strip_prefix(b"apikey "))
            .map(|k| k.trim_ascii().to_vec());
        // The key before the body: nothing more is read for a request without it.
        let authorized = key
            .as_deref()
            .is_some_and(|k| bool::from(k.ct_eq(self.cfg.key.as_bytes())));
        if !authorized {
            return Err(fail(
                401,
                "unauthorized",
                "send the API key as 'Authorization: apikey KEY'",
            ));
        }
        let length = match header("content-length") {
            None => 0,
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| fail(400, "bad_request", "a bad Content-Length"))?,
        };
        if length > self.cfg.max_body {
            return Err(fail(
                413,
                "too_large",
                format!("bodies are at most {} bytes", self.cfg.max_body),
            ));
        }
        let request = Request {
            method: req.method.unwrap_or("").to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            body: Vec::new(),
        };
        let expects = header("expect").is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
        let mut body = buf.split_off(head_len);
        if expects && body.len() < length {
            // curl waits for it before sending a body over 1 KiB.
            let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        while body.len() < length {
            let n = read_some(&mut stream, &mut chunk)?;
            if n == 0 {
                return Err(fail(400, "bad_request", "the body ended early"));
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(length);
        Ok(Request { body, ..request })
    }

    fn route(&self, req: &Request) -> Result<Answer, Failure> {
        let post = req.method == "POST";
        let get = req.method == "GET";
        match req.path.as_str() {
            "/api/publish" if post => self.publish(&req.body),
            "/api/broadcast" if post => self.broadcast(&req.body),
            "/api/disconnect" if post => self.disconnect(&req.body),
            "/api/presence" if get => self.presence(&req.query),
            "/api/history" if get => self.history(&req.query),
            "/api/info" if get => Ok(Answer::Json(self.info())),
            "/api/publish" | "/api/broadcast" | "/api/disconnect" | "/api/presence"
            | "/api/history" | "/api/info" => Err(fail(
                405,
                "method_not_allowed",
                format!("{} is not allowed here", req.method),
            )),
            _ => Err(fail(404, "not_found", "no such endpoint")),
        }
    }

    fn room(&self, room: &str) -> Result<(), Failure> {
        if room.len() > self.chat.cfg.max_room_name || !protocol::room_name_ok(room) {
            return Err(fail(
                400,
                "bad_room",
                format!("'{}' is not a room name", room.escape_debug()),
            ));
        }
        Ok(())
    }

    fn content(&self, p: &Publish) -> Result<(), Failure> {
        if p.text.is_none() && p.data.is_none() {
            return Err(fail(400, "missing_field", "give 'text' or 'data'"));
        }
        if p.text
            .as_ref()
            .is_some_and(|t| t.len() > self.chat.cfg.max_text)
        {
            return Err(fail(
                400,
                "too_long",
                format!("'text' is longer than {} bytes", self.chat.cfg.max_text),
            ));
        }
        Ok(())
    }

    fn publish(&self, body: &[u8]) -> Result<Answer, Failure> {
        let p: Publish = parse(body)?;
        let Some(room) = &p.room else {
            return Err(fail(400, "missing_field", "'room' is missing"));
        };
        self.room(room)?;
        self.content(&p)?;
        let offset = self.publish_one(room, &p)?;
        let mut answer = json!({"room": room});
        if let Some(offset) = offset {
            answer["offset"] = offset.into();
        }
        Ok(Answer::Json(answer))
    }

    fn broadcast(&self, body: &[u8]) -> Result<Answer, Failure> {
        let p: Publish = parse(body)?;
        let Some(rooms) = &p.rooms else {
            return Err(fail(400, "missing_field", "'rooms' is missing"));
        };
        if rooms.len() > MAX_BROADCAST_ROOMS {
            return Err(fail(
                400,
                "too_long",
                format!("at most {MAX_BROADCAST_ROOMS} rooms"),
            ));
        }
        for room in rooms {
            self.room(room)?;
        }
        self.content(&p)?;
        let mut offsets = serde_json::Map::new();
        for room in rooms {
            let offset = self.publish_one(room, &p)?;
            offsets.insert(room.clone(), offset.map_or(Value::Null, Value::from));
        }
        Ok(Answer::Json(json!({"offsets": offsets})))
    }

    /// Publishes to one room: through its home where rooms have an order (the answer waits for
    /// the offset), else straight to its members.
    fn publish_one(&self, room: &str, p: &Publish) -> Result<Option<u64>, Failure> {
        let Some(publisher) = self.chat.publisher() else {
            return Err(fail(503, "unavailable", "the server is starting"));
        };
        let text = p.text.clone().unwrap_or_default();
        if !self.chat.ordered() {
            let event = MessageEvent {
                room,
                from: "api",
                name: None,
                ts: now_ms(),
                seq: 0,
                offset: None,
                text: &text,
                online: None,
                id: None,
                user: None,
                data: p.data.as_ref(),
            };
            publisher.publish(room, Frame::text(&event.to_json()));
            return Ok(None);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        // A key per message: in a cluster the broker's answer comes back by it.
        let n = self.next_key.fetch_add(1, Ordering::Relaxed);
        // ':' is in no client's id: a member cannot take (or cancel) an API message's key.
        let key = format!("api:{}:{n}", self.run);
        publisher.to_home(
            room,
            HomeReq::Send(Outgoing {
                room: None,
                from: "api".to_owned(),
                name: None,
                ts: now_ms(),
                text,
                id: Some(key.into()),
                user: None,
                data: p.data.clone(),
                reply: Some(tx),
            }),
        );
        match rx.recv_timeout(self.cfg.answer_timeout) {
            Ok(Ok(offset)) => Ok(Some(offset)),
            Ok(Err(why)) => Err(fail(503, "unavailable", why)),
            Err(_) => Err(fail(503, "unavailable", "no answer in time")),
        }
    }

    fn disconnect(&self, body: &[u8]) -> Result<Answer, Failure> {
        let d: DisconnectBody = parse(body)?;
        match self.chat.disconnect_everywhere(&d.user) {
            (n, None) => Ok(Answer::Json(json!({"user": d.user, "disconnected": n}))),
            (n, Some(true)) => Ok(Answer::Json(
                json!({"user": d.user, "disconnected": n, "servers": "all"}),
            )),
            (n, Some(false)) => Err(fail(
                503,
                "unavailable",
                format!(
                    "closed {n} connections on this server; the other servers cannot be told \
                     now (the broker is unreachable): ask again"
                ),
            )),
        }
    }

    fn presence(&self, query: &str) -> Result<Answer, Failure> {
        let room =
            param(query, "room").ok_or_else(|| fail(400, "missing_field", "'room' is missing"))?;
        self.room(&room)?;
        if !self.chat.cfg.rules.of(&room).presence {
            return Err(fail(409, "no_presence", "this room has no presence"));
        }
        if self.chat.shares_presence() {
            // Every server's members: from the broker, through the room's home.
            let Some(publisher) = self.chat.publisher() else {
                return Err(fail(503, "unavailable", "the server is starting"));
            };
            let (tx, rx) = mpsc::sync_channel(1);
            publisher.to_home(&room, HomeReq::PresenceList { reply: Some(tx) });
            let list = rx
                .recv_timeout(self.cfg.answer_timeout)
                .map_err(|_| fail(503, "unavailable", "the presence list cannot be read now"))?;
            let list: Value = serde_json::from_str(&list).unwrap_or_default();
            let mut answer =
                json!({"room": room, "online": list["online"], "members": list["members"]});
            if list.get("truncated").is_some() {
                answer["truncated"] = true.into();
            }
            return Ok(Answer::Json(answer));
        }
        let online = self.chat.rooms.online_in(&room);
        let (members, truncated) = self
            .chat
            .rooms
            .get(&room)
            .map(|r| r.members(self.chat.cfg.max_presence_members))
            .unwrap_or_default();
        let list: Value =
            serde_json::from_str(&protocol::presence_list(&room, online, &members, truncated))
                .unwrap_or_default();
        let mut answer = json!({"room": room, "online": online, "members": list["members"]});
        if truncated {
            answer["truncated"] = true.into();
        }
        Ok(Answer::Json(answer))
    }

    fn history(&self, query: &str) -> Result<Answer, Failure> {
        let room =
            param(query, "room").ok_or_else(|| fail(400, "missing_field", "'room' is missing"))?;
        self.room(&room)?;
        let number = |name: &str| -> Result<Option<u64>, Failure> {
            param(query, name)
                .map(|v| {
                    v.parse().map_err(|_| {
                        fail(
                            400,
                            "bad_field",
                            format!("'{name}' is a non-negative integer"),
                        )
                    })
                })
                .transpose()
        };
        let page = self.chat.cfg.history.page;
        let limit = number("limit")?.map_or(page, |n| (n as usize).clamp(1, page));
        let before = number("before")?;
        if !self.chat.ordered() {
            return Err(fail(409, "no_history", "rooms keep no history here"));
        }
        if !self.chat.cfg.rules.of(&room).history {
            return Err(fail(409, "no_history", "this room keeps no history"));
        }
        let Some(publisher) = self.chat.publisher() else {
            return Err(fail(503, "unavailable", "the server is starting"));
        };
        let (tx, rx) = mpsc::sync_channel(1);
        publisher.to_home(
            &room,
            HomeReq::History {
                before,
                limit,
                reply: Some(tx),
            },
        );
        rx.recv_timeout(self.cfg.answer_timeout)
            .map(Answer::Text)
            .map_err(|_| fail(503, "unavailable", "no answer in time"))
    }

    fn info(&self) -> Value {
        let me = self.chat.info();
        let mut answer = serde_json::to_value(&me).unwrap_or_default();
        if self.chat.publisher().is_some_and(|p| p.has_control()) {
            // Every server heard from lately (this one included), and the sums.
            let mut servers = vec![(me, std::time::Duration::ZERO)];
            servers.extend(self.chat.servers());
            let connections: u64 = servers.iter().map(|(s, _)| s.connections).sum();
            let list: Vec<Value> = servers
                .into_iter()
                .map(|(s, age)| {
                    let mut v = serde_json::to_value(s).unwrap_or_default();
                    v["age_ms"] = (age.as_millis() as u64).into();
                    v
                })
                .collect();
            answer["cluster"] = json!({"servers": list.len(), "connections": connections});
            answer["servers"] = list.into();
        }
        answer
    }
}

enum Answer {
    Json(Value),
    /// JSON already encoded.
    Text(String),
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_data() { "bad_field" } else { "bad_json" };
        fail(400, code, e.to_string())
    })
}

/// A query parameter, percent-decoded.
fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::param;

    #[test]
    fn query_parameters_are_decoded() {
        assert_eq!(
            param("room=user%3Aalice&limit=5", "room").as_deref(),
            Some("user:alice")
        );
        assert_eq!(param("room=a&limit=5", "limit").as_deref(), Some("5"));
        assert_eq!(param("room=a", "limit"), None);
        assert_eq!(param("flag&room=b", "room").as_deref(), Some("b"));
    }
}
