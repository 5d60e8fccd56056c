//! The bridge's side of the rooms' shared presence (who is in a room, on every server): this
//! node's entries are set and removed in batches, one round trip per loop of the bridge, and
//! kept alive while the node lives; lists read every live node's entries. Every request is
//! answered to the topic's home worker, also when the broker cannot be reached.
//!
//! ```text
//!  topic's home ──LogRequest::Presence──▶ bridge: HSET/HDEL in this node's hash ──▶ Redis
//!        ◀── LogEvent::PresenceChanged {elsewhere: another live node has the member} ──┘
//!  topic's home ──LogRequest::PresenceList──▶ bridge: every live node's hash ──▶ Redis
//!        ◀── LogEvent::PresenceListed ────────────────────────────────────────────┘
//!  every ttl/3: PEXPIRE this node's hashes; a node that dies drops out within the ttl
//!  a new session (Redis restarted, the link came back): every entry of this node set again
//!  a graceful stop: every entry of this node removed (one round trip, bounded)
//! ```
//!
//! The bridge keeps a copy of this node's entries (what its homes last asked for, whether the
//! broker carried it out or not) for the new sessions; it costs what the entries cost in
//! Redis. A request that could not be carried out (the broker unreachable, too many requests
//! waiting) still changes the copy, and its member is set again, or removed, at the next
//! session or refresh: a member who leaves during an outage is not listed again afterwards.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use bytes::Bytes;

use super::bridge::Bridge;
use super::{Broker, BrokerError, BrokerTx, PresenceSet};
use crate::server::{LogEvent, LogRequest, LogUnavailable, Topic};

/// This node's presence entries, by channel then member: what Redis should hold for it.
#[derive(Debug, Default)]
pub(super) struct Mine {
    entries: HashMap<String, HashMap<Box<str>, Bytes>>,
    /// Members (channel, member) whose entry the broker may not hold as `entries` says: a
    /// request for them was not carried out.
    unsynced: HashSet<(String, Box<str>)>,
    /// When the entries were last kept alive.
    pub(super) refreshed: Option<Instant>,
}

impl Mine {
    fn set(&mut self, channel: &str, member: &str, value: Option<&Bytes>) {
        match value {
            Some(v) => {
                self.entries
                    .entry(channel.to_owned())
                    .or_default()
                    .insert(member.into(), v.clone());
            }
            None => {
                if let Some(m) = self.entries.get_mut(channel) {
                    m.remove(member);
                    if m.is_empty() {
                        self.entries.remove(channel);
                    }
                }
            }
        }
    }

    /// A request for `member` that was not carried out: the copy says what the node wants all
    /// the same, and the member is synced later.
    fn unsynced(&mut self, channel: &str, member: &str, value: Option<&Bytes>) {
        self.set(channel, member, value);
        self.unsynced.insert((channel.to_owned(), member.into()));
    }

    /// Channels with entries of this node.
    pub(super) fn channels(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// What syncing sends: every entry (`everything`: a new session) or only the unsynced
    /// members' entries, and the removals of unsynced members that have none.
    fn to_sync(
        &self,
        everything: bool,
        unsynced: &HashSet<(String, Box<str>)>,
    ) -> Vec<(String, Box<str>, Option<Bytes>)> {
        let mut out: Vec<(String, Box<str>, Option<Bytes>)> = Vec::new();
        if everything {
            for (c, m) in &self.entries {
                out.extend(
                    m.iter()
                        .map(|(k, v)| (c.clone(), k.clone(), Some(v.clone()))),
                );
            }
        }
        for (c, m) in unsynced {
            match self.entries.get(c).and_then(|e| e.get(m)) {
                Some(v) if !everything => out.push((c.clone(), m.clone(), Some(v.clone()))),
                Some(_) => {}
                None => out.push((c.clone(), m.clone(), None)),
            }
        }
        out
    }
}

impl<B: Broker> Bridge<B> {
    /// Presence requests that are not carried out (refused): this node's copy of its entries
    /// changes all the same, and those members are synced later.
    pub(super) fn presence_not_carried_out(&mut self, requests: &[LogRequest]) {
        if self.cfg.presence.is_none() {
            return;
        }
        for req in requests {
            if let LogRequest::Presence {
                topic,
                member,
                value,
            } = req
            {
                let channel = self.channel(topic);
                self.presence.unsynced(&channel, member, value.as_ref());
            }
        }
    }

    /// Carries out the presence requests of a batch: the sets in one round trip, then the
    /// lists in one. Every request is answered to its home (unavailable on failure).
    pub(super) async fn forward_presence(
        &mut self,
        tx: &mut B::Tx,
        requests: Vec<LogRequest>,
    ) -> Result<(), BrokerError> {
        if requests.is_empty() {
            return Ok(());
        }
        let Some(cfg) = self.cfg.presence.clone() else {
            self.refuse_log(requests, "no presence on this broker");
            return Ok(());
        };
        let node = self.link.node().to_string();
        let (sets, lists): (Vec<_>, Vec<_>) = requests
            .into_iter()
            .partition(|r| matches!(r, LogRequest::Presence { .. }));
        let mut result = Ok(());
        if !sets.is_empty() {
            let channels: Vec<String> = sets.iter().map(|r| self.channel(r.topic())).collect();
            let batch: Vec<PresenceSet<'_>> = sets
                .iter()
                .zip(&channels)
                .filter_map(|(r, channel)| match r {
                    LogRequest::Presence { member, value, .. } => Some(PresenceSet {
                        channel,
                        member,
                        value: value.as_deref(),
                    }),
                    _ => None,
                })
                .collect();
            match self.timed(tx.presence(&cfg, &node, &batch)).await {
                Ok(answers) if answers.len() == sets.len() => {
                    for ((req, channel), elsewhere) in sets.into_iter().zip(&channels).zip(answers)
                    {
                        if let LogRequest::Presence {
                            topic,
                            member,
                            value,
                        } = req
                        {
                            self.presence.set(channel, &member, value.as_ref());
                            let event = LogEvent::PresenceChanged {
                                member,
                                present: value.is_some(),
                                elsewhere: Ok(elsewhere),
                            };
                            self.homes.push((topic, event));
                        }
                    }
                }
                Ok(_) => {
                    result = Err("the broker answered presence with another count".into());
                    self.refuse_log(sets, "the broker's answer did not match");
                }
                Err(e) => {
                    // What this node wanted is remembered: set again with the next session.
                    for (req, channel) in sets.iter().zip(&channels) {
                        if let LogRequest::Presence { member, value, .. } = req {
                            self.presence.set(channel, member, value.as_ref());
                        }
                    }
                    self.refuse_log(sets, &e.to_string());
                    result = Err(e);
                }
            }
        }
        if !lists.is_empty() {
            if result.is_err() {
                self.refuse_log(lists, "the broker is unreachable");
            } else {
                let channels: Vec<String> = lists.iter().map(|r| self.channel(r.topic())).collect();
                let names: Vec<&str> = channels.iter().map(String::as_str).collect();
                match self.timed(tx.presence_list(&names)).await {
                    Ok(answers) if answers.len() == lists.len() => {
                        for (req, entries) in lists.into_iter().zip(answers) {
                            if let LogRequest::PresenceList { topic, tag } = req {
                                let entries = entries
                                    .into_iter()
                                    .map(|(m, v)| (m.into_boxed_str(), v))
                                    .collect();
                                let event = LogEvent::PresenceListed {
                                    tag,
                                    result: Ok(entries),
                                };
                                self.homes.push((topic, event));
                            }
                        }
                    }
                    Ok(_) => {
                        result = Err("the broker answered lists with another count".into());
                        self.refuse_log(lists, "the broker's answer did not match");
                    }
                    Err(e) => {
                        self.refuse_log(lists, &e.to_string());
                        result = Err(e);
                    }
                }
            }
        }
        self.flush_homes();
        result
    }

    /// Keeps this node's entries alive (every third of the ttl), after syncing the members
    /// whose requests were not carried out.
    pub(super) async fn refresh_presence(&mut self, tx: &mut B::Tx) -> Result<(), BrokerError> {
        let Some(cfg) = self.cfg.presence.clone() else {
            return Ok(());
        };
        if !self.presence.unsynced.is_empty() {
            self.sync_presence(tx, false).await?;
        }
        let channels = self.presence.channels();
        self.presence.refreshed = Some(Instant::now());
        if channels.is_empty() {
            return Ok(());
        }
        let node = self.link.node().to_string();
        self.timed(tx.presence_refresh(&cfg, &node, &channels))
            .await
    }

    /// A new session: every entry of this node set again (the broker may have lost them, or
    /// dropped them while this node could not refresh), and the members removed while their
    /// requests could not be carried out removed.
    pub(super) async fn restore_presence(&mut self, tx: &mut B::Tx) -> Result<(), BrokerError> {
        self.sync_presence(tx, true).await
    }

    /// Sets every entry (`everything`) or the unsynced members' entries in the broker, and
    /// removes the unsynced members without one. On failure they stay unsynced.
    async fn sync_presence(&mut self, tx: &mut B::Tx, everything: bool) -> Result<(), BrokerError> {
        let Some(cfg) = self.cfg.presence.clone() else {
            return Ok(());
        };
        let node = self.link.node().to_string();
        let unsynced = std::mem::take(&mut self.presence.unsynced);
        let all = self.presence.to_sync(everything, &unsynced);
        for chunk in all.chunks(1024) {
            let batch: Vec<PresenceSet<'_>> = chunk
                .iter()
                .map(|(channel, member, value)| PresenceSet {
                    channel,
                    member,
                    value: value.as_deref(),
                })
                .collect();
            if let Err(e) = self.timed(tx.presence(&cfg, &node, &batch)).await {
                self.presence.unsynced.extend(unsynced);
                return Err(e);
            }
        }
        self.presence.refreshed = Some(Instant::now());
        Ok(())
    }

    /// Stopping: removes every entry of this node (one round trip), so the other nodes' lists
    /// drop its members at once rather than when the entries expire. A failure leaves them
    /// to expire.
    pub(super) async fn drop_presence(&mut self, tx: &mut B::Tx, grace: std::time::Duration) {
        if self.cfg.presence.is_none()
            || (self.presence.entries.is_empty() && self.presence.unsynced.is_empty())
        {
            return;
        }
        let node = self.link.node().to_string();
        let channels: HashSet<&String> = self
            .presence
            .entries
            .keys()
            .chain(self.presence.unsynced.iter().map(|(c, _)| c))
            .collect();
        let channels: Vec<String> = channels.into_iter().cloned().collect();
        match tokio::time::timeout(grace, tx.presence_drop(&node, &channels)).await {
            Ok(Ok(())) => {
                self.presence.entries.clear();
                self.presence.unsynced.clear();
                tracing::debug!(
                    "presence: this node's entries in {} rooms removed",
                    channels.len()
                );
            }
            Ok(Err(e)) => tracing::warn!(reason = %e, "presence: entries left to expire ({e})"),
            Err(_) => tracing::warn!("presence: entries left to expire (no answer in {grace:?})"),
        }
    }

    /// When this node's entries must next be kept alive (with entries and presence on).
    pub(super) fn next_refresh(&self) -> Option<Instant> {
        let cfg = self.cfg.presence.as_ref()?;
        if self.presence.entries.is_empty() && self.presence.unsynced.is_empty() {
            return None;
        }
        let last = self.presence.refreshed.unwrap_or_else(Instant::now);
        Some(last + cfg.ttl / 3)
    }
}

/// The answer to a presence request when it cannot be carried out.
pub(super) fn unavailable(req: &LogRequest, why: &LogUnavailable) -> Option<(Topic, LogEvent)> {
    match req {
        LogRequest::Presence {
            topic,
            member,
            value,
        } => Some((
            topic.clone(),
            LogEvent::PresenceChanged {
                member: member.clone(),
                present: value.is_some(),
                elsewhere: Err(why.clone()),
            },
        )),
        LogRequest::PresenceList { topic, tag } => Some((
            topic.clone(),
            LogEvent::PresenceListed {
                tag: *tag,
                result: Err(why.clone()),
            },
        )),
        _ => None,
    }
}
