//! What a room's home worker does for it on a lone server: one order for the room's messages.
//!
//! A member's requests that must be ordered with the room's messages go to the room's home
//! worker ([`crate::server::home`]): joins, leaves, messages and history pages. There the
//! room's [`History`] stamps each message with the room's next offset, keeps it, and publishes
//! it: every member on every worker gets the room's messages in offset order, without gaps or
//! duplicates (unless its own queue overflowed: then the offsets show the gap). A join answers
//! with the room's epoch and last offset and, when the client gave its position (`since`) and
//! the history still holds everything after it, the missed messages; then the member is
//! subscribed, so the first live message it gets is the one after the last it was given.
//!
//! ```text
//!  member's worker                         room's home worker
//!  join {since} ──────── to_home ───────▶  resume: joined{epoch,offset,recovered} + missed
//!                ◀── join (preamble, then subscribed) ──┘
//!  send {text}  ──────── to_home ───────▶  append: offset N+1 ──▶ publish to every worker
//!  leave        ──────── to_home ───────▶  unsubscribed, then left{...}
//! ```

use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use super::history::{Epochs, History};
use super::protocol::{self, MessageEvent};
use super::rooms::Room;
use super::rules;
use super::{ChatConfig, Rooms, monotonic_ms};
use crate::proto::frame::Frame;
use crate::server::Home;

/// A member's request for its room's home worker.
#[derive(Debug)]
pub(super) enum HomeReq {
    /// Join (or, joined already, ask again where the room is), resuming after `since`.
    Join {
        room: Arc<Room>,
        since: Option<(String, u64)>,
    },
    /// Leave: unsubscribed in order with the room's joins, then told.
    Leave { online: i64 },
    /// A message to stamp, keep and publish.
    Send(Outgoing),
    /// A page of history for the requester (or, from the backend API, for `reply`).
    History {
        before: Option<u64>,
        limit: usize,
        reply: Option<SyncSender<String>>,
    },
    /// This server's presence entry for `member` changed (a cluster sharing presence): its
    /// display name and its value here (`None`: its last connection here left).
    Presence {
        member: Box<str>,
        name: Option<Box<str>>,
        value: Option<String>,
    },
    /// Every server's members of the room, for the requester (or the backend API's `reply`).
    PresenceList { reply: Option<SyncSender<String>> },
}

/// A message on its way to its room's home: a member's, or the backend API's.
#[derive(Debug)]
pub(super) struct Outgoing {
    /// The room's shared counters, if the sender is a member (a direct message's sender is
    /// not).
    pub(super) room: Option<Arc<Room>>,
    /// The sender's connection id (`"api"` for the backend API).
    pub(super) from: String,
    pub(super) name: Option<Box<str>>,
    pub(super) ts: u64,
    pub(super) text: String,
    /// The client's id for the message (the backend API's: its key).
    pub(super) id: Option<Box<str>>,
    /// The sender's user id, if it has a token.
    pub(super) user: Option<Box<str>>,
    /// Structured data the message carries (the backend API's `data`).
    pub(super) data: Option<serde_json::Value>,
    /// Where the outcome goes when the backend API sent it: the offset, or why not.
    pub(super) reply: Option<SyncSender<Result<u64, String>>>,
}

impl Outgoing {
    /// The message event the members of `room` get: with its `offset` where it has one (then
    /// also its `seq`), and the room's `online` count where it means something.
    pub(super) fn event<'a>(
        &'a self,
        room: &'a str,
        offset: Option<u64>,
        online: Option<i64>,
    ) -> MessageEvent<'a> {
        MessageEvent {
            room,
            from: &self.from,
            name: self.name.as_deref(),
            ts: self.ts,
            seq: offset.unwrap_or(0),
            offset,
            text: &self.text,
            online,
            // The API's key is its own business, not the members'.
            id: self.id.as_deref().filter(|_| self.reply.is_none()),
            user: self.user.as_deref(),
            data: self.data.as_ref(),
        }
    }
}

/// One worker's share of the rooms' order: the logs of the rooms it is home to. Each worker's
/// clone of the chat starts with none (cloning gives an empty sequencer, not a copy).
#[derive(Debug, Default)]
pub(super) struct Sequencer {
    history: Option<History>,
}

impl Clone for Sequencer {
    fn clone(&self) -> Self {
        Sequencer::default()
    }
}

impl Sequencer {
    /// Handles one request on the room's home worker.
    pub(super) fn handle(
        &mut self,
        home: &mut Home<'_>,
        req: HomeReq,
        cfg: &ChatConfig,
        epochs: &Arc<Epochs>,
        rooms: &Rooms,
    ) {
        let now = monotonic_ms();
        let workers = home.workers();
        let history = self
            .history
            .get_or_insert_with(|| History::new(cfg.history.clone(), workers, epochs.clone()));
        let name = home.topic().clone();
        let from = home.from();
        match req {
            HomeReq::Join { room, since } => {
                let since = since.as_ref().map(|(e, o)| (e.as_str(), *o));
                let resume = history.resume(&name, since, now);
                let joined = |recovered| {
                    Frame::text(&protocol::joined(
                        &name,
                        room.online(),
                        &resume.epoch,
                        resume.last,
                        recovered,
                    ))
                };
                let mut preamble = Vec::with_capacity(1 + resume.missed.len());
                preamble.push(joined(resume.recovered));
                preamble.extend(resume.missed.iter().cloned());
                // If the missed messages do not fit the member's queue now (several rooms
                // recovering at once), it is told honestly instead, and can page back.
                let fallback = vec![joined(resume.recovered.map(|_| false))];
                // (Joined already: subscribing again changes nothing.)
                home.join(from, preamble, fallback);
            }
            HomeReq::Leave { online } => {
                home.leave(from);
                home.send_to(
                    from,
                    Frame::text(&protocol::room_event("left", &name, online)),
                );
            }
            HomeReq::Send(out) => {
                let online = out
                    .room
                    .as_ref()
                    .map_or_else(|| rooms.online_in(&name), |r| r.online());
                let mut sent = None;
                let make = |_epoch: &str, offset| {
                    if rules::owner(&name).is_some() {
                        sent = Some(protocol::sent(&name, Some(offset), out.id.as_deref()));
                    }
                    if let Some(reply) = &out.reply {
                        let _ = reply.try_send(Ok(offset));
                    }
                    let event = out.event(&name, Some(offset), Some(online));
                    Frame::text(&event.to_json())
                };
                let frame = if cfg.rules.of(&name).history {
                    history.append(&name, now, make)
                } else {
                    history.advance(&name, now, make)
                };
                home.publish(frame);
                // A direct message's sender is told it went out (it is not in the room).
                if let Some(sent) = sent {
                    home.send_to(from, Frame::text(&sent));
                }
            }
            HomeReq::History {
                before,
                limit,
                reply,
            } => {
                let (epoch, frames) = history.page(&name, before, limit, now);
                let page = protocol::history(
                    &name,
                    epoch.as_deref(),
                    frames.iter().filter_map(Frame::as_text),
                );
                match reply {
                    Some(reply) => drop(reply.try_send(page)),
                    None => home.send_to(from, Frame::text(&page)),
                }
            }
            // Shared presence is a cluster's (see `presence`).
            HomeReq::Presence { .. } | HomeReq::PresenceList { .. } => {}
        }
        history.sweep(now, |room| rooms.online_in(room) > 0);
    }
}
