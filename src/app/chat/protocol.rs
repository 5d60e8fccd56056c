//! The chat protocol: JSON text frames. What a client may send, checked field by field, and
//! what the server sends back.
//!
//! Client to server:
//!
//! ```json
//! {"op":"join","room":"lobby"}
//! {"op":"join","room":"lobby","since":{"epoch":"5c1e0a93f2b4-7","offset":42}}
//! {"op":"history","room":"lobby","before":43,"limit":20}
//! {"op":"leave","room":"lobby"}
//! {"op":"send","room":"lobby","text":"hello"}
//! {"op":"send","room":"lobby","text":"hello","id":"k3x9-1"}
//! {"op":"nick","name":"alice"}
//! {"op":"presence","room":"lobby"}
//! {"op":"join","room":"vip-1","token":"<a room token>"}
//! {"op":"refresh","token":"<a new connection token>"}
//! ```
//!
//! Server to client:
//!
//! ```json
//! {"op":"welcome","id":"0.12.1","max_rooms":16,"max_text":4096,"heartbeat":{"ping":"ping","pong":"pong","interval_ms":15000}}
//! {"op":"joined","room":"lobby","online":3,"epoch":"5c1e0a93f2b4-7","offset":41}
//! {"op":"joined","room":"lobby","online":3,"epoch":"5c1e0a93f2b4-7","offset":45,"recovered":true}
//! {"op":"history","room":"lobby","epoch":"5c1e0a93f2b4-7","messages":[{"op":"message",...}]}
//! {"op":"left","room":"lobby","online":2}
//! {"op":"message","room":"lobby","from":"0.12.1","name":"alice","ts":1764806400000,"seq":42,"offset":42,"text":"hello","online":3}
//! {"op":"presence","room":"lobby","online":3}
//! {"op":"error","code":"not_joined","message":"join the room first","room":"lobby"}
//! {"op":"error","code":"unavailable","message":"...","room":"lobby","id":"k3x9-1"}
//! {"op":"epoch","room":"lobby","epoch":"9a0c77d1e4f2b3c8","offset":0}
//! {"op":"presence","room":"lobby","online":3,"members":[{"user":"alice","name":"Alice","connections":2},...]}
//! {"op":"member_joined","room":"club","user":"alice","name":"Alice"}
//! {"op":"member_left","room":"club","user":"alice"}
//! {"op":"sent","room":"user:alice","offset":7,"id":"k3x9-2"}
//! {"op":"expiring","exp":1764810000}
//! {"op":"refreshed","exp":1764813600}
//! ```
//!
//! A `send` may carry an `id` (1 to 64 letters, digits, `-` and `_`, chosen by the client):
//! the message event carries it back, and so does an error about that message, so a client
//! knows which of its messages to send again; in a cluster a message sent twice with the same
//! id within two minutes is kept once.
//!
//! On a lone server every message has an `offset` in its room (`seq` is the same number): one
//! order for every member, resumable with `since` while the history holds it (`recovered`),
//! pageable with `history`. `ts` is the server's time in milliseconds since the Unix epoch.
//!
//! In a cluster (`--broker`, see `ringws::broker`) a room's members may be on several servers:
//! messages reach all of them, each sender's in the order sent. Then ids are prefixed with the
//! node (`"3f09c2a41b7d6e58:0.12.1"`, unique across nodes, also given as `node` in the
//! welcome), `seq` increases per room on the sender's server, `online` in `joined`, `left` and
//! `presence` counts the members on the receiver's own server (counts are per node), and
//! message events carry no `online` count. With a broker that keeps logs (the Redis bridge
//! does), a room's order, offsets, history and recovery work as on a lone server, across the
//! servers: the order is the broker's. While the broker cannot be reached a message cannot get
//! an offset: its sender gets `unavailable` (with the message's `id`) and sends it again later;
//! nothing is delivered that the other servers could not recover. If a room's log is lost (a
//! broker restarted without persistence), its members get an `epoch` event: offsets start
//! again from the new epoch, and what came before cannot be recovered.

use std::borrow::Cow;

use serde::Deserialize;
#[cfg(test)]
use serde_json::Value;
use serde_json::json;

use super::ChatConfig;

/// A request from a client, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// Join a room, resuming after a position in its history if `since` is given.
    Join {
        /// The room.
        room: &'a str,
        /// The last message the client has: the room's epoch and that message's offset.
        since: Option<(&'a str, u64)>,
        /// A room token (for rooms whose rule is `signed`).
        token: Option<&'a str>,
    },
    /// Who is in a room (joined).
    Presence {
        /// The room.
        room: &'a str,
    },
    /// A new connection token before the current one expires.
    Refresh {
        /// The token.
        token: &'a str,
    },
    /// Messages of a room's history (scrollback).
    History {
        /// The room (joined).
        room: &'a str,
        /// Only messages before this offset (`None`: the latest).
        before: Option<u64>,
        /// At most this many (at most the server's page size).
        limit: usize,
    },
    /// Leave a room.
    Leave {
        /// The room.
        room: &'a str,
    },
    /// Send a message to a room the client has joined.
    Send {
        /// The room.
        room: &'a str,
        /// The message.
        text: &'a str,
        /// The client's id for the message, if it gave one.
        id: Option<&'a str>,
    },
    /// Choose a display name.
    Nick {
        /// The name.
        name: &'a str,
    },
}

/// Why a request was refused: a machine-readable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `bad_json`, `unknown_op`, `missing_field`, `bad_field`, `too_long`, `bad_room`,
    /// `too_many_rooms`, `not_joined`, `binary`, `busy` (history asked of a connection that
    /// has not read what it was sent), `unavailable` (no history in a cluster yet).
    pub code: &'static str,
    /// What was wrong.
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// A request as it comes off the wire: every field any op may have, typed (serde), none
/// checked yet ([`check`] does that). Strings borrow from the frame when they hold no escapes.
/// Fields no op knows are ignored (a newer client may send more); a field given twice is an
/// error.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Wire<'a> {
    /// What the client asks for.
    #[serde(borrow)]
    pub op: Option<Cow<'a, str>>,
    /// The room (`join`, `leave`, `send`, `history`).
    #[serde(borrow)]
    pub room: Option<Cow<'a, str>>,
    /// A message's text (`send`).
    #[serde(borrow)]
    pub text: Option<Cow<'a, str>>,
    /// The client's id for a message (`send`).
    #[serde(borrow)]
    pub id: Option<Cow<'a, str>>,
    /// A display name (`nick`).
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    /// Where to resume (`join`).
    #[serde(borrow)]
    pub since: Option<Since<'a>>,
    /// A connection token (`refresh`) or a room token (`join`).
    #[serde(borrow)]
    pub token: Option<Cow<'a, str>>,
    /// Only messages before this offset (`history`).
    pub before: Option<u64>,
    /// At most this many messages (`history`).
    pub limit: Option<u64>,
}

/// `since` of a `join`: the last message the client has.
#[derive(Debug, Deserialize)]
pub struct Since<'a> {
    /// The room's epoch when that message was sent.
    #[serde(borrow)]
    pub epoch: Cow<'a, str>,
    /// That message's offset.
    pub offset: u64,
}

/// Reads a text frame as a request, typed but not yet checked.
pub fn decode(text: &str) -> Result<Wire<'_>, Refusal> {
    use serde_json::error::Category;
    // Only an object (serde would also read a struct from an array of its fields).
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => refuse("bad_json", "a request is a JSON object"),
            Err(e) => refuse("bad_json", format!("not JSON: {e}")),
        });
    }
    serde_json::from_str(text).map_err(|e| {
        let what = e.to_string();
        match e.classify() {
            Category::Data if what.starts_with("missing field") => refuse("missing_field", what),
            Category::Data => refuse("bad_field", what),
            _ => refuse("bad_json", format!("not JSON: {e}")),
        }
    })
}

/// A string field, present and not longer than `max` bytes.
fn field<'a>(value: &'a Option<Cow<'_, str>>, name: &str, max: usize) -> Result<&'a str, Refusal> {
    match value {
        None => Err(refuse("missing_field", format!("'{name}' is missing"))),
        Some(s) if s.len() > max => Err(refuse(
            "too_long",
            format!("'{name}' is longer than {max} bytes"),
        )),
        Some(s) => Ok(s),
    }
}

/// Whether `room` is a well-formed room name: 1 or more letters, digits, `-`, `_`, `.` and
/// `:` (namespaces: `news:sports`, `user:alice`), not starting with `:` or `.`.
pub fn room_name_ok(room: &str) -> bool {
    !room.is_empty()
        && !room.starts_with([':', '.'])
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A room name: 1 to `max` bytes (see [`room_name_ok`]).
fn room<'a>(wire: &'a Wire<'_>, cfg: &ChatConfig) -> Result<&'a str, Refusal> {
    let room = field(&wire.room, "room", cfg.max_room_name)?;
    if room_name_ok(room) {
        Ok(room)
    } else {
        Err(refuse(
            "bad_room",
            "room names are letters, digits, '-', '_', '.' and ':'",
        ))
    }
}

/// Longest message id a client may give.
const MAX_ID: usize = 64;

/// A message's optional `id`: 1 to 64 letters, digits, `-` and `_`.
fn message_id<'a>(wire: &'a Wire<'_>) -> Result<Option<&'a str>, Refusal> {
    if wire.id.is_none() {
        return Ok(None);
    }
    let id = field(&wire.id, "id", MAX_ID)?;
    let ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if ok {
        Ok(Some(id))
    } else {
        Err(refuse(
            "bad_field",
            "a message id is letters, digits, '-' and '_'",
        ))
    }
}

/// Longest epoch a client may send back, in bytes (the server's are ~20).
const MAX_EPOCH: usize = 64;

/// Longest token a client may send, in bytes.
const MAX_TOKEN: usize = super::identity::DEFAULT_MAX_TOKEN_BYTES;

/// Checks a decoded request: the fields its op needs, their lengths and forms.
pub fn check<'a>(wire: &'a Wire<'_>, cfg: &ChatConfig) -> Result<Request<'a>, Refusal> {
    let op = field(&wire.op, "op", 16)?;
    match op {
        "join" => Ok(Request::Join {
            room: room(wire, cfg)?,
            since: match &wire.since {
                None => None,
                Some(since) if since.epoch.len() > MAX_EPOCH => {
                    return Err(refuse(
                        "too_long",
                        format!("'epoch' is longer than {MAX_EPOCH} bytes"),
                    ));
                }
                Some(since) => Some((&*since.epoch, since.offset)),
            },
            token: match &wire.token {
                None => None,
                Some(_) => Some(field(&wire.token, "token", MAX_TOKEN)?),
            },
        }),
        "presence" => Ok(Request::Presence {
            room: room(wire, cfg)?,
        }),
        "refresh" => Ok(Request::Refresh {
            token: field(&wire.token, "token", MAX_TOKEN)?,
        }),
        "history" => Ok(Request::History {
            room: room(wire, cfg)?,
            before: wire.before,
            limit: match wire.limit {
                None => cfg.history.page,
                Some(0) => return Err(refuse("bad_field", "'limit' must be at least 1")),
                Some(n) => usize::try_from(n)
                    .unwrap_or(usize::MAX)
                    .min(cfg.history.page),
            },
        }),
        "leave" => Ok(Request::Leave {
            room: room(wire, cfg)?,
        }),
        "send" => Ok(Request::Send {
            room: room(wire, cfg)?,
            text: field(&wire.text, "text", cfg.max_text)?,
            id: message_id(wire)?,
        }),
        "nick" => {
            let name = field(&wire.name, "name", cfg.max_name)?;
            if name.trim().is_empty() || name.chars().any(char::is_control) {
                return Err(refuse(
                    "bad_field",
                    "a name is visible text, without control characters",
                ));
            }
            Ok(Request::Nick { name })
        }
        other => Err(refuse(
            "unknown_op",
            format!("unknown op '{}'", other.escape_debug()),
        )),
    }
}

/// `{"op":"error","code":"unavailable",...}` for a message that could not be sent, with the
/// message's id if it had one.
pub fn unavailable(room: &str, id: Option<&str>, why: &str) -> String {
    let mut v = json!({"op": "error", "code": "unavailable", "room": room,
        "message": format!("the message could not be ordered now ({why}); send it again later")});
    if let Some(id) = id {
        v["id"] = id.into();
    }
    v.to_string()
}

/// `{"op":"sent","room":..,"offset":..,"id":..}`: a direct message went out (its sender is
/// not in the recipient's room, so does not get the message itself).
pub fn sent(room: &str, offset: Option<u64>, id: Option<&str>) -> String {
    let mut v = json!({"op": "sent", "room": room});
    if let Some(offset) = offset {
        v["offset"] = offset.into();
    }
    if let Some(id) = id {
        v["id"] = id.into();
    }
    v.to_string()
}

/// `{"op":"member_joined"|"member_left","room":..,"user":..,"name":..}`: a member's first
/// connection joined the room, or its last left (`user` is the user id, or the connection's
/// id without a token).
pub fn member_event(op: &str, room: &str, user: &str, name: Option<&str>) -> String {
    let mut v = json!({"op": op, "room": room, "user": user});
    if let Some(name) = name {
        v["name"] = name.into();
    }
    v.to_string()
}

/// `{"op":"presence","room":..,"online":..,"members":[{"user","name","connections"}],
/// "truncated":..}`: who is in the room.
pub fn presence_list(
    room: &str,
    online: i64,
    members: &[(Box<str>, super::rooms::Present)],
    truncated: bool,
) -> String {
    let list: Vec<serde_json::Value> = members
        .iter()
        .map(|(user, p)| {
            let mut m = json!({"user": &**user, "connections": p.connections});
            if let Some(name) = &p.name {
                m["name"] = (&**name).into();
            }
            m
        })
        .collect();
    let mut v = json!({"op": "presence", "room": room, "online": online, "members": list});
    if truncated {
        v["truncated"] = true.into();
    }
    v.to_string()
}

/// `{"op":"expiring","exp":..}`: the connection's token expires at `exp` (seconds since the
/// Unix epoch); send `refresh` with a new one before then, or be closed with 4001.
pub fn expiring(exp: u64) -> String {
    json!({"op": "expiring", "exp": exp}).to_string()
}

/// `{"op":"refreshed","exp":..}`: the new token is in force.
pub fn refreshed(exp: u64) -> String {
    json!({"op": "refreshed", "exp": exp}).to_string()
}

/// `{"op":"epoch",...}`: the room's log was lost and starts again in a new epoch.
pub fn epoch(room: &str, epoch: &str) -> String {
    json!({"op": "epoch", "room": room, "epoch": epoch, "offset": 0}).to_string()
}

/// `{"op":"error",...}`, with the room when the request named one.
pub fn error(refusal: &Refusal, room: Option<&str>) -> String {
    let mut v = json!({"op": "error", "code": refusal.code, "message": refusal.message});
    if let Some(room) = room {
        v["room"] = json!(room);
    }
    v.to_string()
}

/// `{"op":"welcome",...}`: the connection's id, the limits that apply to it, and the text
/// heartbeat the server answers (for the browser library).
pub fn welcome(id: &str, user: Option<&str>, cfg: &ChatConfig) -> String {
    let mut v =
        json!({"op": "welcome", "id": id, "max_rooms": cfg.max_rooms, "max_text": cfg.max_text});
    if let Some(user) = user {
        v["user"] = user.into();
    }
    if let Some(node) = &cfg.node {
        v["node"] = node.as_str().into();
    }
    if let Some((ping, pong, interval_ms)) = &cfg.heartbeat {
        v["heartbeat"] = json!({"ping": ping, "pong": pong, "interval_ms": interval_ms});
    }
    v.to_string()
}

/// `{"op":"joined"|"left"|"presence","room":..,"online":..}`.
pub fn room_event(op: &str, room: &str, online: i64) -> String {
    json!({"op": op, "room": room, "online": online}).to_string()
}

/// `{"op":"joined",...}` with the room's position: its epoch and last offset, and whether the
/// client's `since` was recovered (only when it gave one).
pub fn joined(
    room: &str,
    online: i64,
    epoch: &str,
    offset: u64,
    recovered: Option<bool>,
) -> String {
    let mut v =
        json!({"op": "joined", "room": room, "online": online, "epoch": epoch, "offset": offset});
    if let Some(recovered) = recovered {
        v["recovered"] = recovered.into();
    }
    v.to_string()
}

/// `{"op":"history","room":..,"epoch":..,"messages":[...]}`: `messages` are message events as
/// sent live (JSON texts), oldest first.
pub fn history<'a>(
    room: &str,
    epoch: Option<&str>,
    messages: impl Iterator<Item = &'a str>,
) -> String {
    let head = json!({"op": "history", "room": room, "epoch": epoch}).to_string();
    // The events are JSON already: spliced in, not parsed again.
    let mut out = String::with_capacity(head.len() + 16);
    out.push_str(&head[..head.len() - 1]);
    out.push_str(",\"messages\":[");
    for (i, m) in messages.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(m);
    }
    out.push_str("]}");
    out
}

/// A message event, as every member of the room receives it.
pub struct MessageEvent<'a> {
    /// The room.
    pub room: &'a str,
    /// The sender's connection id.
    pub from: &'a str,
    /// The sender's display name, if chosen.
    pub name: Option<&'a str>,
    /// Server time, ms since the Unix epoch.
    pub ts: u64,
    /// The room's sequence number (its offset when the message has one).
    pub seq: u64,
    /// The message's offset in the room's history (a lone server; `None` in a cluster, for
    /// now).
    pub offset: Option<u64>,
    /// The text.
    pub text: &'a str,
    /// Members online, on a server that runs alone (`None` in a cluster: counts are per
    /// node, and a message crosses to members of other nodes).
    pub online: Option<i64>,
    /// The client's id for the message, if it gave one.
    pub id: Option<&'a str>,
    /// The sender's user id (its token's `sub`), if it has a token.
    pub user: Option<&'a str>,
    /// Structured data (from the backend API), if any.
    pub data: Option<&'a serde_json::Value>,
}

impl MessageEvent<'_> {
    /// The JSON text.
    pub fn to_json(&self) -> String {
        let mut v = json!({
            "op": "message", "room": self.room, "from": self.from, "name": self.name,
            "ts": self.ts, "seq": self.seq, "text": self.text,
        });
        if let Some(online) = self.online {
            v["online"] = online.into();
        }
        if let Some(offset) = self.offset {
            v["offset"] = offset.into();
        }
        if let Some(id) = self.id {
            v["id"] = id.into();
        }
        if let Some(user) = self.user {
            v["user"] = user.into();
        }
        if let Some(data) = self.data {
            v["data"] = data.clone();
        }
        v.to_string()
    }

    /// The event without its place in the room (`seq`, `offset`) and count: what a cluster
    /// appends to the room's log; [`stamped`] makes the event of it.
    pub fn body(&self) -> String {
        let mut v = json!({
            "op": "message", "room": self.room, "from": self.from, "name": self.name,
            "ts": self.ts, "text": self.text,
        });
        if let Some(id) = self.id {
            v["id"] = id.into();
        }
        if let Some(user) = self.user {
            v["user"] = user.into();
        }
        if let Some(data) = self.data {
            v["data"] = data.clone();
        }
        v.to_string()
    }
}

/// The message event for a [`MessageEvent::body`] kept at `offset` of its room's log (`seq`
/// is the same number); `None` if `body` is not a JSON object's text.
pub fn stamped(body: &[u8], offset: u64) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    let rest = body.strip_prefix('{')?;
    if !rest.ends_with('}') || rest.len() < 2 {
        return None;
    }
    Some(format!("{{\"seq\":{offset},\"offset\":{offset},{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Request<'static>, Refusal> {
        let text: &'static str = Box::leak(text.to_owned().into_boxed_str());
        let wire: &'static Wire<'static> = Box::leak(Box::new(decode(text)?));
        check(wire, &ChatConfig::default())
    }

    fn code(text: &str) -> &'static str {
        p(text).unwrap_err().code
    }

    #[test]
    fn requests_parse() {
        assert_eq!(
            p(r#"{"op":"join","room":"lobby"}"#),
            Ok(Request::Join {
                room: "lobby",
                since: None,
                token: None,
            })
        );
        assert_eq!(
            p(r#"{"op":"send","room":"a.b-c_1","text":"é 😀"}"#),
            Ok(Request::Send {
                room: "a.b-c_1",
                text: "é 😀",
                id: None,
            })
        );
        assert_eq!(
            p(r#"{"op":"send","room":"a","text":"x","id":"k-1_Z"}"#),
            Ok(Request::Send {
                room: "a",
                text: "x",
                id: Some("k-1_Z"),
            })
        );
        for bad in [
            r#""""#,
            r#""a b""#,
            r#"7"#,
            &format!("\"{}\"", "a".repeat(65)),
        ] {
            let req = format!(r#"{{"op":"send","room":"a","text":"x","id":{bad}}}"#);
            assert!(p(&req).is_err(), "{req}");
        }
        assert_eq!(
            p(r#"{"op":"nick","name":"alice"}"#),
            Ok(Request::Nick { name: "alice" })
        );
        // Namespaced rooms; escapes decoded; fields no op knows ignored.
        assert_eq!(
            p(r#"{"op":"send","room":"user:alice","text":"a\"b\u00e9","x":[1]}"#),
            Ok(Request::Send {
                room: "user:alice",
                text: "a\"bé",
                id: None,
            })
        );
    }

    #[test]
    fn positions_and_history_requests_parse() {
        assert_eq!(
            p(r#"{"op":"join","room":"a","since":{"epoch":"e-1","offset":41}}"#),
            Ok(Request::Join {
                room: "a",
                since: Some(("e-1", 41)),
                token: None,
            })
        );
        assert_eq!(
            p(r#"{"op":"join","room":"a","since":null}"#),
            Ok(Request::Join {
                room: "a",
                since: None,
                token: None,
            })
        );
        assert_eq!(
            p(r#"{"op":"history","room":"a","before":10,"limit":5}"#),
            Ok(Request::History {
                room: "a",
                before: Some(10),
                limit: 5
            })
        );
        let page = ChatConfig::default().history.page;
        assert_eq!(
            p(r#"{"op":"history","room":"a","limit":100000}"#),
            Ok(Request::History {
                room: "a",
                before: None,
                limit: page
            }),
            "at most a page"
        );
        assert_eq!(code(r#"{"op":"join","room":"a","since":5}"#), "bad_field");
        assert_eq!(
            code(r#"{"op":"join","room":"a","since":{"epoch":"e"}}"#),
            "missing_field"
        );
        assert_eq!(
            code(r#"{"op":"join","room":"a","since":{"offset":1}}"#),
            "missing_field"
        );
        assert_eq!(
            code(r#"{"op":"join","room":"a","since":{"epoch":"e","offset":-1}}"#),
            "bad_field"
        );
        assert_eq!(
            code(r#"{"op":"join","room":"a","since":{"epoch":"e","offset":1.5}}"#),
            "bad_field"
        );
        let long = "e".repeat(65);
        assert_eq!(
            code(&format!(
                r#"{{"op":"join","room":"a","since":{{"epoch":"{long}","offset":1}}}}"#
            )),
            "too_long"
        );
        assert_eq!(
            code(r#"{"op":"history","room":"a","limit":0}"#),
            "bad_field"
        );
        assert_eq!(
            code(r#"{"op":"history","room":"a","before":"x"}"#),
            "bad_field"
        );
    }

    #[test]
    fn joined_and_history_events_are_json() {
        let j: Value = serde_json::from_str(&joined("a", 3, "e-1", 42, Some(true))).unwrap();
        assert_eq!(
            (
                &j["op"],
                &j["epoch"],
                &j["offset"],
                &j["recovered"],
                &j["online"]
            ),
            (
                &json!("joined"),
                &json!("e-1"),
                &json!(42),
                &json!(true),
                &json!(3)
            )
        );
        let fresh: Value = serde_json::from_str(&joined("a", 1, "e-1", 0, None)).unwrap();
        assert!(
            fresh.get("recovered").is_none(),
            "no position given: nothing to say"
        );
        let m1 = r#"{"op":"message","offset":1}"#;
        let m2 = r#"{"op":"message","offset":2,"text":"\"]}"}"#;
        let h: Value =
            serde_json::from_str(&history("a", Some("e-1"), [m1, m2].into_iter())).unwrap();
        assert_eq!(h["epoch"], "e-1");
        assert_eq!(h["messages"][1]["text"], "\"]}");
        assert_eq!(h["messages"].as_array().map(Vec::len), Some(2));
        let empty: Value = serde_json::from_str(&history("b", None, std::iter::empty())).unwrap();
        assert!(empty["epoch"].is_null());
        assert_eq!(empty["messages"], json!([]));
    }

    #[test]
    fn bad_requests_get_a_code() {
        assert_eq!(code("not json"), "bad_json");
        assert_eq!(code("[1,2]"), "bad_json");
        assert_eq!(code(r#"{"room":"x"}"#), "missing_field");
        assert_eq!(code(r#"{"op":"fly"}"#), "unknown_op");
        assert_eq!(code(r#"{"op":"join"}"#), "missing_field");
        assert_eq!(code(r#"{"op":"join","room":7}"#), "bad_field");
        assert_eq!(code(r#"{"op":"join","room":""}"#), "bad_room");
        assert_eq!(code(r#"{"op":"join","room":"a b"}"#), "bad_room");
        assert_eq!(code(r#"{"op":"join","room":"../etc"}"#), "bad_room");
        assert_eq!(code(r#"{"op":"join","room":":x"}"#), "bad_room");
        assert_eq!(code(r#"{"op":"join","room":"a","room":"b"}"#), "bad_field");
        assert_eq!(
            code(r#"{"op":"join","room":"a","since":{"epoch":"e"}}"#),
            "missing_field"
        );
        assert_eq!(
            code(r#"{"op":"join","room":"a","since":{"epoch":"e","offset":-1}}"#),
            "bad_field"
        );
        assert_eq!(
            code(r#"{"op":"history","room":"a","limit":"x"}"#),
            "bad_field"
        );
        let long = "r".repeat(65);
        assert_eq!(
            code(&format!(r#"{{"op":"join","room":"{long}"}}"#)),
            "too_long"
        );
        let text = "t".repeat(4097);
        assert_eq!(
            code(&format!(r#"{{"op":"send","room":"a","text":"{text}"}}"#)),
            "too_long"
        );
        assert_eq!(code(r#"{"op":"send","room":"a"}"#), "missing_field");
        assert_eq!(code(r#"{"op":"nick","name":"  "}"#), "bad_field");
        assert_eq!(code(r#"{"op":"nick","name":"a\u0007"}"#), "bad_field");
    }

    #[test]
    fn events_are_json() {
        let e: Value = serde_json::from_str(
            &MessageEvent {
                room: "r",
                from: "0.1.1",
                name: None,
                ts: 5,
                seq: 9,
                offset: Some(9),
                text: "\"hi\"",
                online: Some(2),
                id: None,
                user: None,
                data: None,
            }
            .to_json(),
        )
        .unwrap();
        assert_eq!(e["op"], "message");
        assert_eq!(e["text"], "\"hi\"");
        assert_eq!(e["seq"], 9);
        assert_eq!(e["online"], 2);
        assert!(e["name"].is_null());
        let clustered: Value = serde_json::from_str(
            &MessageEvent {
                room: "r",
                from: "00000000000000ab:0.1.1",
                name: None,
                ts: 5,
                seq: 9,
                offset: None,
                text: "hi",
                online: None,
                id: Some("m1"),
                user: None,
                data: None,
            }
            .to_json(),
        )
        .unwrap();
        assert!(clustered.get("online").is_none(), "no per-node count");
        assert_eq!(clustered["id"], "m1");
        let event = MessageEvent {
            room: "r",
            from: "n:0.1.1",
            name: Some("al"),
            ts: 5,
            seq: 0,
            offset: None,
            text: "a}",
            online: None,
            id: Some("m1"),
            user: Some("alice"),
            data: None,
        };
        let stamped: Value =
            serde_json::from_str(&stamped(event.body().as_bytes(), 77).unwrap()).unwrap();
        assert_eq!(
            (
                &stamped["offset"],
                &stamped["seq"],
                &stamped["text"],
                &stamped["id"],
                &stamped["user"]
            ),
            (
                &json!(77),
                &json!(77),
                &json!("a}"),
                &json!("m1"),
                &json!("alice")
            )
        );
        assert_eq!(stamped["op"], "message");
        assert!(super::stamped(b"{}", 1).is_none() && super::stamped(b"[1]", 1).is_none());
        assert!(super::stamped(b"\xff{\"a\":1}", 1).is_none());
        let err: Value = serde_json::from_str(&error(&refuse("x", "y"), Some("r"))).unwrap();
        assert_eq!(
            (err["code"].as_str(), err["room"].as_str()),
            (Some("x"), Some("r"))
        );
    }
}
