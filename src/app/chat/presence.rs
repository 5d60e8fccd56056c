//! Presence across servers (a cluster whose broker shares it): each server's home worker for a
//! room keeps the server's entry for each member in the broker (its name and its connections
//! on that server), and answers presence lists with every live server's entries, merged.
//!
//! ```text
//!  a member's connection joins / leaves / closes ──HomeReq::Presence──▶ the room's home here
//!      home ──presence_set(member, {"name","connections"} or gone)──▶ relay ──▶ Redis
//!      home ◀── PresenceChanged {elsewhere} : the cluster's first (joined) or last (left)?
//!                 ──▶ member_joined / member_left to the room (where its namespace asks)
//!  {"op":"presence"} ──HomeReq::PresenceList──▶ home ──presence_list──▶ every live server's entries
//!      home ◀── PresenceListed ──▶ merged by member (connections summed) ──▶ the requester
//! ```
//!
//! A server that dies drops out of the lists within the broker's presence ttl (its entries
//! expire; a live server keeps its own alive). A server that comes back (or a broker that
//! restarted) sets its entries again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use bytes::Bytes;
use serde_json::json;

use super::ChatConfig;
use super::protocol;
use super::rooms::Present;
use super::sequencer::HomeReq;
use crate::proto::frame::Frame;
use crate::server::{ConnId, Home, LogEvent};

/// A member of a room: the room, the member.
type RoomMember = (Arc<str>, Box<str>);

/// Who waits for a list.
#[derive(Debug)]
enum Waiter {
    Conn(ConnId),
    Api(SyncSender<String>),
}

/// One worker's share of the rooms' shared presence (each worker's clone starts empty).
#[derive(Debug, Default)]
pub(super) struct ClusterPresence {
    next_tag: u64,
    /// Lists asked of the broker, by tag.
    waiting: HashMap<u64, Waiter>,
    /// The name each member had when its entry was last set here (for `member_joined`).
    names: HashMap<RoomMember, Option<Box<str>>>,
}

impl Clone for ClusterPresence {
    fn clone(&self) -> Self {
        ClusterPresence::default()
    }
}

/// The value of a member's entry: what the other servers see of it here.
pub(super) fn value(name: Option<&str>, connections: u32) -> String {
    let mut v = json!({"connections": connections});
    if let Some(name) = name {
        v["name"] = name.into();
    }
    v.to_string()
}

impl ClusterPresence {
    /// A presence request on the room's home.
    pub(super) fn request(&mut self, home: &mut Home<'_>, req: HomeReq) {
        let room = home.topic().clone();
        match req {
            HomeReq::Presence {
                member,
                name,
                value,
            } => {
                if value.is_some() {
                    self.names.insert((room, member.clone()), name);
                }
                home.presence_set(member, value.map(Bytes::from));
            }
            HomeReq::PresenceList { reply } => {
                self.next_tag += 1;
                let waiter = match reply {
                    Some(reply) => Waiter::Api(reply),
                    None => Waiter::Conn(home.from()),
                };
                self.waiting.insert(self.next_tag, waiter);
                home.presence_list(self.next_tag);
            }
            _ => {}
        }
    }

    /// The broker's answer, on the room's home.
    pub(super) fn event(&mut self, home: &mut Home<'_>, event: LogEvent, cfg: &ChatConfig) {
        let room = home.topic().clone();
        match event {
            LogEvent::PresenceChanged {
                member,
                present,
                elsewhere,
            } => {
                let name = if present {
                    self.names
                        .get(&(room.clone(), member.clone()))
                        .cloned()
                        .flatten()
                } else {
                    self.names.remove(&(room.clone(), member.clone())).flatten()
                };
                // The cluster's first connection of the member joined, or its last left.
                if elsewhere == Ok(false) && cfg.rules.of(&room).join_leave {
                    let op = if present {
                        "member_joined"
                    } else {
                        "member_left"
                    };
                    let name = name.as_deref().filter(|_| present);
                    let event = protocol::member_event(op, &room, &member, name);
                    home.publish_everywhere(Frame::text(&event));
                }
            }
            LogEvent::PresenceListed { tag, result } => {
                let Some(waiter) = self.waiting.remove(&tag) else {
                    return;
                };
                let answer = match result {
                    Ok(entries) => Ok(merged(&room, &entries, cfg.max_presence_members)),
                    Err(why) => Err(why.0),
                };
                match (waiter, answer) {
                    (Waiter::Conn(conn), Ok(list)) => home.send_to(conn, Frame::text(&list)),
                    (Waiter::Conn(conn), Err(why)) => {
                        let refusal = protocol::Refusal {
                            code: "unavailable",
                            message: format!("the presence list cannot be read now ({why})"),
                        };
                        home.send_to(conn, Frame::text(&protocol::error(&refusal, Some(&room))));
                    }
                    (Waiter::Api(reply), Ok(list)) => drop(reply.try_send(list)),
                    // The API answers 503 when its channel closes without a list.
                    (Waiter::Api(_), Err(_)) => {}
                }
            }
            _ => {}
        }
    }
}

/// Every server's entries merged by member (connections summed), as a presence event.
fn merged(room: &str, entries: &[(Box<str>, Bytes)], max: usize) -> String {
    let mut members: BTreeMap<Box<str>, Present> = BTreeMap::new();
    for (member, value) in entries {
        let v: serde_json::Value = serde_json::from_slice(value).unwrap_or_default();
        let connections = v["connections"].as_u64().unwrap_or(0) as u32;
        let name = v["name"].as_str().map(Box::from);
        let present = members.entry(member.clone()).or_insert(Present {
            name: None,
            connections: 0,
        });
        present.connections += connections;
        if present.name.is_none() {
            present.name = name;
        }
    }
    let online: i64 = members.values().map(|p| i64::from(p.connections)).sum();
    let truncated = members.len() > max;
    let list: Vec<(Box<str>, Present)> = members.into_iter().take(max).collect();
    protocol::presence_list(room, online, &list, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn entries_of_every_server_are_merged_by_member() {
        let entries: Vec<(Box<str>, Bytes)> = vec![
            ("bob".into(), Bytes::from(value(Some("Bob"), 2))),
            ("alice".into(), Bytes::from(value(Some("Alice"), 1))),
            ("bob".into(), Bytes::from(value(Some("Bob"), 1))),
            ("junk".into(), Bytes::from_static(b"not json")),
        ];
        let list: Value = serde_json::from_str(&merged("r", &entries, 10)).unwrap();
        assert_eq!(
            list["members"],
            json!([
                {"user": "alice", "name": "Alice", "connections": 1},
                {"user": "bob", "name": "Bob", "connections": 3},
                {"user": "junk", "connections": 0}
            ])
        );
        assert_eq!(list["online"], 4);
        let short: Value = serde_json::from_str(&merged("r", &entries, 1)).unwrap();
        assert_eq!(short["truncated"], true);
    }
}
