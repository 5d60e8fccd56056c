//! The chat's limits and options ([`ChatConfig`]) and the authentication hook.

use std::sync::Arc;

use crate::proto::handshake::{OriginPolicy, UpgradeRequest};

use super::history::HistoryConfig;
use super::identity::Tokens;
use super::rate::Rate;
use super::rules::Rules;

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
    /// Connection tokens (JWT, see [`identity`](super::identity)): when set, every upgrade must carry a valid
    /// token (HTTP 401 otherwise) and the connection is the token's user. `None`: no tokens.
    pub tokens: Option<Arc<Tokens>>,
    /// How long before its token expires a connection is told (`{"op":"expiring"}`), to send
    /// a new one (`refresh`); at expiry it is closed with [`TOKEN_EXPIRED`](super::TOKEN_EXPIRED). Default 60 s:
    /// time for a client to ask its application for a new token.
    pub expiry_notice: std::time::Duration,
    /// Who may join and send, by namespace (see [`rules`](super::rules)). Default: anyone may join any room
    /// (except personal ones) and send to the rooms joined.
    pub rules: Rules,
    /// Messages one connection may send: default 100 a second, 200 at once. A person types a
    /// few a second; a script that floods a room costs every member. Excess: `rate_limited`.
    pub send_rate: Rate,
    /// Joins (and history pages) one connection may ask for: default 10 a second, 50 at once
    /// (a client rejoining its rooms after a reconnect). Each costs a subscription or a
    /// history read.
    pub join_rate: Rate,
    /// Connections one client address may have open at once (HTTP 429 beyond). Default 0:
    /// off, because many users share an address behind a NAT (offices, mobile carriers); set
    /// it where clients have addresses of their own (see [`clients`](super::clients)).
    pub max_conns_per_ip: u32,
    /// Proxies (load balancers) whose `X-Forwarded-For` is believed, as networks: the client
    /// is the rightmost address there that is not one of them. Default none: the peer's
    /// address is the client's.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Most members a presence list gives (`"truncated":true` beyond). Default 1000: a list
    /// a page can show; each costs ~50 bytes of the answer.
    pub max_presence_members: usize,
    /// In a cluster (`node` set): whether the broker shares presence between the servers
    /// ([`BrokerConfig::presence`](crate::broker::BrokerConfig::presence)), so presence lists
    /// and join/leave events cover every server. Without it they are per server.
    pub shared_presence: bool,
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
            tokens: None,
            expiry_notice: std::time::Duration::from_secs(60),
            rules: Rules::default(),
            send_rate: Rate {
                per_second: 100,
                burst: 200,
            },
            join_rate: Rate {
                per_second: 10,
                burst: 50,
            },
            max_conns_per_ip: 0,
            trusted_proxies: Vec::new(),
            max_presence_members: 1000,
            shared_presence: false,
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
            .field("tokens", &self.tokens)
            .field("rules", &self.rules)
            .field("send_rate", &self.send_rate)
            .field("join_rate", &self.join_rate)
            .field("max_conns_per_ip", &self.max_conns_per_ip)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}
