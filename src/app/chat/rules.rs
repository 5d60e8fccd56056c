//! Room rules: who may join a room and who may send to it, by namespace (a prefix of the
//! room's name; the longest prefix that matches wins), and the personal rooms `user:<id>`.
//!
//! In the config file (`--config`), one table per namespace:
//!
//! ```toml
//! [[namespace]]
//! prefix = "team-"      # rooms whose name starts with "team-"
//! join = "claim"        # anyone | token | claim | signed
//! send = "members"      # members | nobody
//! max-text = 1024       # longest message here (at most the server's --max-text)
//! join-leave = true     # members get member_joined / member_left (default false)
//! history = true        # messages kept for history pages and recovery (default true)
//! presence = true       # presence lists, counts and join/leave events (default true)
//! ```
//!
//! - `anyone`: every connection (the default, and the rule of rooms no namespace names);
//! - `token`: connections with a JWT (`--jwt-secret` / `--jwt-public-key`);
//! - `claim`: connections whose token's `rooms` claim matches the room;
//! - `signed`: a `join` that carries a room token (`"token"`, signed by the application with
//!   the server's key, with `sub` = the user, `room` = the room, and `exp`);
//! - `send = "nobody"`: members read, only the application publishes (announcements).
//! - `history = false`: messages still get offsets (one order; a client sees a gap) but none
//!   is kept: `history` pages and `/api/history` are refused (`no_history`) and a join with
//!   `since` recovers only when nothing was missed (typing indicators, cursors, live scores);
//! - `presence = false`: no member lists (`presence` and `/api/presence` refused,
//!   `no_presence`), no `presence` count updates, no join/leave events and, in a cluster, no
//!   entries in Redis: a room of 10,000 viewers costs no presence at all.
//!
//! `user:<id>` is built in and cannot be redefined: only the connections whose token's `sub` is
//! `<id>` may join it; any connection with a token may send to it without joining (a direct
//! message, to all of that user's connections that joined it, on every server).

use serde::{Deserialize, Serialize};

/// The prefix of personal rooms.
pub const PERSONAL: &str = "user:";

/// Who may join the rooms of a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinRule {
    /// Every connection.
    #[default]
    Anyone,
    /// Connections with a JWT.
    Token,
    /// Connections whose token's `rooms` claim matches the room.
    Claim,
    /// A join with a room token for this user and room.
    Signed,
}

/// Who may send to the rooms of a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SendRule {
    /// Members of the room.
    #[default]
    Members,
    /// No connection (the application publishes).
    Nobody,
}

/// The rules of the rooms whose names start with `prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Namespace {
    /// The prefix of the rooms' names (`""`: every room no longer prefix names).
    pub prefix: String,
    /// Who may join.
    #[serde(default)]
    pub join: JoinRule,
    /// Who may send.
    #[serde(default)]
    pub send: SendRule,
    /// Longest message text here, in bytes (`None`: the server's `max_text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_text: Option<usize>,
    /// Whether members are told when someone joins or leaves (`member_joined`,
    /// `member_left`). Default off: each costs a message to every member, which in a large
    /// room with churn outweighs the chat itself.
    #[serde(default)]
    pub join_leave: bool,
    /// Whether messages are kept for history pages and recovery. Default on.
    #[serde(default = "on")]
    pub history: bool,
    /// Whether members are tracked for presence lists, counts and join/leave events. Default
    /// on; off, a member costs nothing beyond its subscription.
    #[serde(default = "on")]
    pub presence: bool,
}

fn on() -> bool {
    true
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace {
            prefix: String::new(),
            join: JoinRule::default(),
            send: SendRule::default(),
            max_text: None,
            join_leave: false,
            history: true,
            presence: true,
        }
    }
}

/// The namespaces, longest prefix first.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    namespaces: Vec<Namespace>,
    /// The rule of rooms no namespace names (and of personal rooms' limits).
    fallback: Namespace,
}

impl Rules {
    /// Rules from namespaces.
    ///
    /// # Errors
    /// Two namespaces with one prefix, or a prefix that names personal rooms (`user:`).
    pub fn new(mut namespaces: Vec<Namespace>) -> Result<Self, String> {
        // Longest first; equal prefixes side by side.
        namespaces.sort_by(|a, b| (b.prefix.len(), &a.prefix).cmp(&(a.prefix.len(), &b.prefix)));
        for pair in namespaces.windows(2) {
            if pair[0].prefix == pair[1].prefix {
                return Err(format!("two namespaces with prefix '{}'", pair[0].prefix));
            }
        }
        // A prefix of "user:" or one under it would change (or seem to change) their rule.
        let personal =
            |p: &str| !p.is_empty() && (p.starts_with(PERSONAL) || PERSONAL.starts_with(p));
        if let Some(ns) = namespaces.iter().find(|ns| ns.join_leave && !ns.presence) {
            return Err(format!(
                "namespace '{}': join-leave = true needs presence (presence = false)",
                ns.prefix
            ));
        }
        if let Some(ns) = namespaces.iter().find(|ns| personal(&ns.prefix)) {
            return Err(format!(
                "namespace '{}' would cover the personal rooms ('{PERSONAL}<id>'), whose rule is fixed",
                ns.prefix
            ));
        }
        Ok(Rules {
            namespaces,
            fallback: Namespace::default(),
        })
    }

    /// The namespace of `room`: the longest prefix that matches.
    pub fn of(&self, room: &str) -> &Namespace {
        if room.starts_with(PERSONAL) {
            return &self.fallback;
        }
        self.namespaces
            .iter()
            .find(|ns| room.starts_with(&*ns.prefix))
            .unwrap_or(&self.fallback)
    }

    /// Whether no namespace is defined.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
    }
}

/// The user a personal room belongs to (`user:alice` → `alice`).
pub fn owner(room: &str) -> Option<&str> {
    room.strip_prefix(PERSONAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(prefix: &str, join: JoinRule) -> Namespace {
        Namespace {
            prefix: prefix.into(),
            join,
            ..Namespace::default()
        }
    }

    #[test]
    fn the_longest_prefix_wins() {
        let rules = Rules::new(vec![
            ns("team-", JoinRule::Claim),
            ns("team-open-", JoinRule::Anyone),
            ns("", JoinRule::Token),
        ])
        .unwrap();
        assert_eq!(rules.of("team-7").join, JoinRule::Claim);
        assert_eq!(rules.of("team-open-1").join, JoinRule::Anyone);
        assert_eq!(rules.of("lobby").join, JoinRule::Token);
        assert_eq!(
            rules.of("user:alice").join,
            JoinRule::Anyone,
            "fixed, not the '' rule"
        );
        assert_eq!(Rules::default().of("x").join, JoinRule::Anyone);
        assert_eq!(owner("user:alice"), Some("alice"));
        assert_eq!(owner("lobby"), None);
    }

    #[test]
    fn duplicates_and_personal_prefixes_are_refused() {
        assert!(Rules::new(vec![ns("a", JoinRule::Token), ns("a", JoinRule::Anyone)]).is_err());
        let apart = vec![
            ns("ab", JoinRule::Token),
            ns("cd", JoinRule::Token),
            ns("ab", JoinRule::Anyone),
        ];
        assert!(Rules::new(apart).is_err(), "duplicates apart in the list");
        for p in ["user:", "user:vip", "us", "u"] {
            let e = Rules::new(vec![ns(p, JoinRule::Token)]).unwrap_err();
            assert!(e.contains("personal"), "{p}: {e}");
        }
        let contradiction = Namespace {
            join_leave: true,
            presence: false,
            ..ns("live-", JoinRule::Anyone)
        };
        let e = Rules::new(vec![contradiction]).unwrap_err();
        assert!(e.contains("join-leave") && e.contains("presence"), "{e}");
    }

    #[test]
    fn history_and_presence_are_on_unless_a_namespace_turns_them_off() {
        let quiet = Namespace {
            history: false,
            presence: false,
            ..ns("live-", JoinRule::Anyone)
        };
        let rules = Rules::new(vec![quiet]).unwrap();
        assert!(!rules.of("live-1").history && !rules.of("live-1").presence);
        assert!(rules.of("lobby").history && rules.of("lobby").presence);
        assert!(rules.of("user:bob").history && rules.of("user:bob").presence);
    }
}
