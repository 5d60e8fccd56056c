//! The servers of a cluster as the backend API sees them: control messages between them (close
//! a user's connections everywhere) and what each one says of itself every [`INFO_PERIOD`].
//!
//! ```text
//!  API /api/disconnect ──▶ this server's connections of the user closed (4002)
//!                     └──▶ Publisher::control {"op":"disconnect","user"} ──▶ every other server
//!                                                            closes its connections of the user
//!  every INFO_PERIOD ──▶ Publisher::control {"op":"info",...} ──▶ every other server keeps it
//!  API /api/info ──▶ this server's info, and every server heard within INFO_STALE
//! ```
//!
//! Control messages go through the broker (Redis pub/sub): at most once, and none while it is
//! unreachable (the API says so). Whoever can publish on the broker can send them: the broker
//! is trusted like the servers themselves.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::rooms::Rooms;
use super::{Chat, ChatConfig, Users};
use crate::server::Metrics;

/// How often each server of a cluster tells the others its info.
pub const INFO_PERIOD: Duration = Duration::from_secs(2);
/// A server not heard from for this long is left out of `/api/info` (stopped, or cut off).
pub const INFO_STALE: Duration = Duration::from_secs(3 * INFO_PERIOD.as_secs());
/// Most other servers remembered (a bound on what a broker full of strangers could make a
/// server keep).
const MAX_SERVERS: usize = 1024;

/// What a server says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Its node id (`None`: a lone server).
    pub node: Option<String>,
    /// The ringws version it runs.
    pub version: String,
    /// Its worker threads.
    pub workers: usize,
    /// Its open connections.
    pub connections: u64,
    /// Rooms with members on it.
    pub rooms: usize,
    /// Users with connections on it.
    pub users: usize,
    /// Its process id (which process answers, across a live hand-over; 0 from a server older
    /// than this field).
    #[serde(default)]
    pub pid: u32,
}

/// A message from one server to the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Control {
    /// Close every connection of `user` (with 4002, as `/api/disconnect` does here).
    Disconnect {
        /// The user id (a token's `sub`).
        user: String,
    },
    /// The sender's info.
    Info(ServerInfo),
}

impl Control {
    /// The message as sent.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A message received, or `None` if it is not one (another version, garbage).
    pub fn decode(payload: &[u8]) -> Option<Control> {
        serde_json::from_slice(payload).ok()
    }
}

/// The other servers heard from, with when.
#[derive(Debug, Default)]
pub struct Servers {
    heard: Mutex<HashMap<String, (Instant, ServerInfo)>>,
}

impl Servers {
    /// `info` came at `now` (a server without a node id is ignored).
    pub fn heard(&self, info: ServerInfo, now: Instant) {
        let Some(node) = info.node.clone() else {
            return;
        };
        let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        if heard.len() >= MAX_SERVERS && !heard.contains_key(&node) {
            heard.retain(|_, (at, _)| now.saturating_duration_since(*at) < INFO_STALE);
            if heard.len() >= MAX_SERVERS {
                return;
            }
        }
        heard.insert(node, (now, info));
    }

    /// The servers heard from within [`INFO_STALE`] of `now`, by node, with how long ago.
    pub fn live(&self, now: Instant) -> Vec<(ServerInfo, Duration)> {
        let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        heard.retain(|_, (at, _)| now.saturating_duration_since(*at) < INFO_STALE);
        let mut live: Vec<_> = heard
            .values()
            .map(|(at, info)| (info.clone(), now.saturating_duration_since(*at)))
            .collect();
        live.sort_by(|a, b| a.0.node.cmp(&b.0.node));
        live
    }
}

impl Chat {
    /// Closes every connection of `user` with [`DISCONNECTED`](super::DISCONNECTED), here and on every other server
    /// of a cluster: how many there were here, and, in a cluster, whether the other servers
    /// were told (not while the broker is unreachable).
    pub fn disconnect_everywhere(&self, user: &str) -> (usize, Option<bool>) {
        let here = self.disconnect(user);
        let Some(publisher) = self.publisher().filter(|p| p.has_control()) else {
            return (here, None);
        };
        let message = Control::Disconnect {
            user: user.to_owned(),
        };
        (here, Some(publisher.control(&message.encode())))
    }

    /// What this server says of itself (`/api/info`, and to the other servers of a cluster).
    pub fn info(&self) -> ServerInfo {
        info_of(
            &self.cfg,
            self.server.get().map(|(_, m)| m),
            &self.rooms,
            &self.users,
        )
    }

    /// The other servers of the cluster heard from lately, by node, with how long ago.
    pub fn servers(&self) -> Vec<(ServerInfo, std::time::Duration)> {
        self.servers.live(Instant::now())
    }

    /// A control message from another server.
    pub(super) fn control(&self, payload: &[u8]) {
        match Control::decode(payload) {
            Some(Control::Disconnect { user }) => {
                let n = self.disconnect(&user);
                tracing::debug!("user {user} disconnected by another server ({n} here)");
            }
            Some(Control::Info(info)) => self.servers.heard(info, Instant::now()),
            None => tracing::debug!("a control message not understood: ignored"),
        }
    }
}

/// What a server says of itself (see [`Chat::info`]).
pub(super) fn info_of(
    cfg: &ChatConfig,
    metrics: Option<&Metrics>,
    rooms: &Rooms,
    users: &Users,
) -> ServerInfo {
    ServerInfo {
        node: cfg.node.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        workers: metrics.map_or(0, |m| m.workers.len()),
        connections: metrics.map_or(0, |m| m.snapshot().open.max(0) as u64),
        rooms: rooms.len(),
        users: users.len(),
        pid: std::process::id(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(node: &str, connections: u64) -> ServerInfo {
        ServerInfo {
            node: Some(node.into()),
            version: "0".into(),
            workers: 2,
            connections,
            rooms: 1,
            users: 1,
            pid: 7,
        }
    }

    #[test]
    fn messages_round_trip_and_strangers_are_ignored() {
        for m in [
            Control::Disconnect {
                user: "alice".into(),
            },
            Control::Info(info("a", 3)),
        ] {
            assert_eq!(Control::decode(m.encode().as_bytes()), Some(m));
        }
        assert_eq!(
            Control::encode(&Control::Disconnect { user: "b".into() }),
            r#"{"op":"disconnect","user":"b"}"#
        );
        for garbage in [
            &b"{}"[..],
            b"{\"op\":\"reboot\"}",
            b"\xff",
            b"{\"op\":\"disconnect\"}",
        ] {
            assert_eq!(Control::decode(garbage), None);
        }
    }

    #[test]
    fn servers_not_heard_from_lately_drop_out_and_the_latest_info_wins() {
        let servers = Servers::default();
        let t0 = Instant::now();
        servers.heard(info("b", 1), t0);
        servers.heard(info("a", 1), t0);
        servers.heard(info("a", 7), t0 + INFO_PERIOD);
        let live = servers.live(t0 + INFO_PERIOD);
        assert_eq!(
            live.iter()
                .map(|(i, _)| (i.node.clone().unwrap(), i.connections))
                .collect::<Vec<_>>(),
            [("a".to_owned(), 7), ("b".to_owned(), 1)]
        );
        assert_eq!(live[1].1, INFO_PERIOD);
        let later = servers.live(t0 + INFO_STALE + Duration::from_millis(1));
        assert_eq!(
            later.len(),
            1,
            "b was not heard from for longer than INFO_STALE"
        );
        assert_eq!(later[0].0.node.as_deref(), Some("a"));
    }

    #[test]
    fn the_number_remembered_is_bounded() {
        let servers = Servers::default();
        let t0 = Instant::now();
        for n in 0..MAX_SERVERS + 10 {
            servers.heard(info(&n.to_string(), 0), t0);
        }
        assert_eq!(servers.live(t0).len(), MAX_SERVERS);
        // Once the others went stale, a newcomer has room again.
        let later = t0 + INFO_STALE;
        servers.heard(info("new", 0), later);
        assert_eq!(servers.live(later).len(), 1);
    }
}
