//! What a room's home worker does for it in a cluster whose broker keeps a log per room: the
//! order is the broker's, and each server's home worker is the room's one point of delivery
//! on that server.
//!
//! A message is appended to the room's log by the home worker of the sender's server
//! ([`Home::log_append`]); the broker gives it the room's next offset and every server's home
//! worker for the room gets it back ([`LogEvent::Live`]), at least once and perhaps with gaps
//! (a lost connection, an outage). Each home delivers the room's entries to its members in
//! offset order, once each, what came together as one run
//! ([`Home::publish_run`](crate::server::Home::publish_run): a member that reads takes a
//! burst whole, however long):
//!
//! ```text
//!  entry N arrives ──▶ N ≤ last: a duplicate, dropped
//!                      N = last + 1: delivered (and kept), then the held ones that follow
//!                      N > last + 1: held; the gap is read from the log (LogRange::After(last))
//!  read answered ───▶ its entries delivered as if live; entries the log no longer keeps are
//!                      skipped (members see the jump in offsets: `recovered` cannot be claimed)
//!  another epoch ───▶ the log was lost: members get an `epoch` event, offsets start again
//! ```
//!
//! A server's home knows a room's log only while the bridge receives it: when the bridge
//! stops receiving a room ([`LogEvent::Unsubscribed`]) what the home knows goes stale, and the
//! next join reads the log first; when the bridge subscribes again ([`LogEvent::Resync`]) the
//! home reads what followed the last entry it saw. The first time, it reads the log's tail
//! (as many messages as the history keeps), which is then kept, as a lone server's history,
//! to answer joins with `since` and history pages without asking the broker.
//!
//! Joins and history pages that come while the log is being read wait for the answer. If the
//! broker cannot be reached, they are answered from what the home has (a join with `since`:
//! `recovered` only if all of it is here), and messages are refused (`unavailable`): nothing is
//! delivered that the other servers could not recover.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use super::history::{Epochs, History};
use super::protocol;
use super::rooms::Room;
use super::rules;
use super::sequencer::HomeReq;
use super::{ChatConfig, Rooms, monotonic_ms};
use crate::proto::frame::Frame;
use crate::server::{ConnId, Home, LogEntry, LogEvent, LogRange, LogRead};

/// Most entries held ahead of a gap per room: past it the gap is given up (its members see
/// the jump), so a log that cannot be read does not grow a home's memory.
const MAX_HELD: usize = 4096;

/// What waits for a room's log to be read.
#[derive(Debug)]
enum Waiting {
    Join {
        conn: ConnId,
        room: Arc<Room>,
        since: Option<(String, u64)>,
    },
    Page {
        conn: ConnId,
        before: Option<u64>,
        limit: usize,
        /// The backend API's request: the page goes here, not to `conn`.
        reply: Option<std::sync::mpsc::SyncSender<String>>,
    },
}

/// A room's log as this server's home worker knows it.
#[derive(Debug, Default)]
struct RoomLog {
    /// The log's epoch, once read (`None`: nothing known yet).
    epoch: Option<Arc<str>>,
    /// The last offset delivered here.
    last: u64,
    /// Whether the bridge receives the room since the last read (a join needs no read).
    live: bool,
    /// The tag of the read in flight, and whether it reads the tail.
    reading: Option<(u64, bool)>,
    /// A resync came while a read was in flight: read again once it is answered (it may have
    /// been made before the subscription).
    again: bool,
    /// The epoch the read in flight was made in: an answer in another epoch, or one that
    /// comes after the epoch changed, is not a continuation of what was delivered.
    read_epoch: Option<Arc<str>>,
    /// A join was answered while nothing was known (the log could not be read): its members
    /// are subscribed, so the first tail read must deliver what came after it, not take it
    /// as where they start.
    blind: bool,
    /// Entries that came ahead of a gap: offset → (epoch, payload).
    held: BTreeMap<u64, (Arc<str>, Bytes)>,
    waiting: Vec<Waiting>,
    /// The room's members online on this server (for `joined`), from the last join.
    room: Option<Arc<Room>>,
    /// Made for the backend API's history page of a room nobody here is in: forgotten once
    /// answered.
    for_api: bool,
}

/// One worker's share of the rooms in a cluster: the logs of the rooms it is home to. Each
/// worker's clone of the chat starts with none.
#[derive(Debug, Default)]
pub(super) struct ClusterSequencer {
    history: Option<History>,
    rooms: HashMap<Arc<str>, RoomLog>,
    next_tag: u64,
    /// Entries dropped as duplicates, gaps given up (for tests and logs).
    pub(super) duplicates: u64,
    /// The backend API's messages waiting for their offsets, by key (each append is answered,
    /// appended or unavailable, so each is taken out).
    api_replies: HashMap<Box<str>, std::sync::mpsc::SyncSender<Result<u64, String>>>,
}

impl Clone for ClusterSequencer {
    fn clone(&self) -> Self {
        ClusterSequencer::default()
    }
}

/// What one request needs besides the room's state.
struct Ctx<'a, 'h> {
    home: &'a mut Home<'h>,
    cfg: &'a ChatConfig,
    history: &'a mut History,
    name: Arc<str>,
    now: u64,
    /// Messages delivered by this event, published as one run when it is handled.
    run: Vec<Frame>,
}

impl Ctx<'_, '_> {
    /// Publishes the run gathered so far.
    fn flush(&mut self) {
        self.home.publish_run(std::mem::take(&mut self.run));
    }
}

impl ClusterSequencer {
    /// A member's request, on the room's home worker.
    pub(super) fn request(
        &mut self,
        home: &mut Home<'_>,
        req: HomeReq,
        cfg: &ChatConfig,
        epochs: &Arc<Epochs>,
    ) {
        let from = home.from();
        let name = home.topic().clone();
        let workers = home.workers();
        let history = self
            .history
            .get_or_insert_with(|| History::new(cfg.history.clone(), workers, epochs.clone()));
        // A message needs nothing known about the room (and a direct message's room may have
        // no member here: no state is made for it).
        if let HomeReq::Send(out) = req {
            let body = out.event(&name, None, None).body();
            // The backend API's message: its outcome comes back with its key.
            let key = match (out.reply, out.user.as_deref(), out.id) {
                (Some(reply), _, Some(key)) => {
                    self.api_replies.insert(key.clone(), reply);
                    Some(key)
                }
                (None, Some(user), Some(id)) => Some(user_key(user, &id)),
                (_, _, id) => id,
            };
            home.log_append(from, key, Bytes::from(body));
            return;
        }
        let state = self.rooms.entry(name.clone()).or_default();
        let mut ctx = Ctx {
            home,
            cfg,
            history,
            name,
            now: monotonic_ms(),
            run: Vec::new(),
        };
        match req {
            HomeReq::Join { room, since } => {
                state.room = Some(room.clone());
                state.for_api = false;
                let waiting = Waiting::Join {
                    conn: from,
                    room,
                    since,
                };
                serve_or_wait(state, &mut ctx, waiting, &mut self.next_tag);
            }
            HomeReq::Leave { online } => {
                // A join still waiting for the log is not made after the leave.
                state
                    .waiting
                    .retain(|w| !matches!(w, Waiting::Join { conn, .. } if *conn == from));
                ctx.home.leave(from);
                let left = protocol::room_event("left", &ctx.name, online);
                ctx.home.send_to(from, Frame::text(&left));
                if online == 0 && state.reading.is_none() && state.waiting.is_empty() {
                    // Nobody here any more: what is known is dropped (the history kept here
                    // stays); a join reads the log again.
                    self.rooms.remove(&ctx.name);
                }
            }
            // Handled above, and by `presence`.
            HomeReq::Send(_) | HomeReq::Presence { .. } | HomeReq::PresenceList { .. } => {}
            HomeReq::History {
                before,
                limit,
                reply,
            } => {
                if reply.is_some() && state.room.is_none() && state.epoch.is_none() {
                    state.for_api = true;
                }
                let waiting = Waiting::Page {
                    conn: from,
                    before,
                    limit,
                    reply,
                };
                serve_or_wait(state, &mut ctx, waiting, &mut self.next_tag);
                let name = ctx.name.clone();
                self.forget_if_idle(&name);
            }
        }
    }

    /// Drops what is known of a room without members here once nothing waits on it (a page
    /// asked by the backend API, a direct message's room): it would otherwise stay forever.
    fn forget_if_idle(&mut self, name: &Arc<str>) {
        let idle = self.rooms.get(name).is_some_and(|s| {
            s.for_api
                && s.room.is_none()
                && s.reading.is_none()
                && s.waiting.is_empty()
                && s.held.is_empty()
        });
        if idle {
            self.rooms.remove(name);
        }
    }

    /// What the broker's log tells the room's home worker.
    pub(super) fn log_event(
        &mut self,
        home: &mut Home<'_>,
        event: LogEvent,
        cfg: &ChatConfig,
        epochs: &Arc<Epochs>,
        rooms: &Rooms,
    ) {
        let name = home.topic().clone();
        let answered = matches!(event, LogEvent::Range { .. });
        let workers = home.workers();
        let history = self
            .history
            .get_or_insert_with(|| History::new(cfg.history.clone(), workers, epochs.clone()));
        let mut ctx = Ctx {
            home,
            cfg,
            history,
            name: name.clone(),
            now: monotonic_ms(),
            run: Vec::new(),
        };
        match event {
            LogEvent::Live { epoch, entries } => {
                let state = self.rooms.entry(name.clone()).or_default();
                let mut gap = false;
                for entry in entries {
                    if state.epoch.is_none() {
                        // Nothing known yet: held until the tail is read.
                        hold(state, epoch.clone(), entry, &mut self.duplicates);
                        gap = true;
                    } else {
                        gap |= receive(state, &mut ctx, epoch.clone(), entry, &mut self.duplicates);
                    }
                }
                if gap {
                    read(state, &mut ctx, &mut self.next_tag);
                }
            }
            LogEvent::Range { tag, result } => {
                let Some(state) = self.rooms.get_mut(&name) else {
                    return;
                };
                let Some((reading, tail)) = state.reading else {
                    return;
                };
                if reading != tag {
                    return; // an answer to a read given up on
                }
                state.reading = None;
                let again = std::mem::take(&mut state.again);
                match result {
                    Ok(answer)
                        if !tail
                            && (state.read_epoch != state.epoch
                                || state.epoch.as_deref() != Some(&*answer.epoch)) =>
                    {
                        // The log started again (another epoch) since what was delivered, or
                        // while the read was on its way: its entries are not the ones after
                        // the last delivered. Read the new epoch from its start.
                        if state.epoch.as_deref() != Some(&*answer.epoch) {
                            new_epoch(state, &mut ctx, answer.epoch.clone());
                        }
                        ctx.flush();
                        read(state, &mut ctx, &mut self.next_tag);
                        return;
                    }
                    Ok(answer) => {
                        let more = caught_up(state, &mut ctx, answer, tail, &mut self.duplicates);
                        if more || again {
                            ctx.flush();
                            read(state, &mut ctx, &mut self.next_tag);
                            return;
                        }
                        state.live = true;
                    }
                    Err(why) => {
                        tracing::debug!(room = %name, "log read failed: {}", why.0);
                        if again {
                            // Subscribed again since: the new session may answer.
                            read(state, &mut ctx, &mut self.next_tag);
                        }
                    }
                }
                // Whatever waited is answered now, from what is here (after what was
                // delivered: a join's preamble ends where the run did).
                ctx.flush();
                for waiting in std::mem::take(&mut state.waiting) {
                    serve(state, &mut ctx, waiting);
                }
            }
            LogEvent::Resync => {
                if let Some(state) = self.rooms.get_mut(&name) {
                    state.live = false;
                    if state.reading.is_some() {
                        state.again = true;
                    } else {
                        read(state, &mut ctx, &mut self.next_tag);
                    }
                }
            }
            LogEvent::Unsubscribed => {
                let idle = self.rooms.get(&name).is_some_and(|s| {
                    s.reading.is_none() && s.waiting.is_empty() && rooms.online_in(&name) == 0
                });
                if idle {
                    // Stale from now on, and nobody here needs it: the next join reads again
                    // (the history kept here stays, as the cache of the log's tail).
                    self.rooms.remove(&name);
                } else if let Some(state) = self.rooms.get_mut(&name) {
                    state.live = false;
                }
            }
            // The presence's (see `presence`): not sent here.
            LogEvent::PresenceChanged { .. }
            | LogEvent::PresenceListed { .. }
            | LogEvent::Control { .. } => {}
            LogEvent::Appended { from, key, result } => match result {
                // The backend API's message (it has no connection to tell).
                result
                    if key
                        .as_ref()
                        .is_some_and(|k| self.api_replies.contains_key(k)) =>
                {
                    let reply = key.as_ref().and_then(|k| self.api_replies.remove(k));
                    if let Some(reply) = reply {
                        let _ =
                            reply.try_send(result.map(|(_, offset)| offset).map_err(|why| why.0));
                    }
                }
                Err(why) => {
                    let refusal =
                        protocol::unavailable(&name, key.as_deref().map(client_id), &why.0);
                    ctx.home.send_to(from, Frame::text(&refusal));
                }
                // A direct message's sender is told it went out (it is not in the room).
                Ok((_, offset)) if rules::owner(&name).is_some() => {
                    let sent = protocol::sent(&name, Some(offset), key.as_deref().map(client_id));
                    ctx.home.send_to(from, Frame::text(&sent));
                }
                Ok(_) => {}
            },
        }
        ctx.flush();
        let now = ctx.now;
        if let Some(history) = &mut self.history {
            history.sweep(now, |room| rooms.online_in(room) > 0);
        }
        // A read answered for a room nobody here is in (the API's page): nothing to keep.
        if answered {
            self.forget_if_idle(&name);
        }
    }
}

/// Answers a join or a page now if what is known is current (received live since the last
/// read, no read in flight); else it waits for a read of the log.
fn serve_or_wait(state: &mut RoomLog, ctx: &mut Ctx<'_, '_>, waiting: Waiting, next_tag: &mut u64) {
    if state.live && state.reading.is_none() && state.epoch.is_some() {
        serve(state, ctx, waiting);
    } else {
        state.waiting.push(waiting);
        read(state, ctx, next_tag);
    }
}

/// Starts reading the room's log, unless a read is in flight: the tail if nothing is known
/// yet, else what follows the last entry delivered.
fn read(state: &mut RoomLog, ctx: &mut Ctx<'_, '_>, next_tag: &mut u64) {
    if state.reading.is_some() {
        return;
    }
    *next_tag += 1;
    let tail = state.epoch.is_none();
    let range = if tail {
        LogRange::Tail
    } else {
        LogRange::After(state.last)
    };
    state.reading = Some((*next_tag, tail));
    state.read_epoch = state.epoch.clone();
    let limit = ctx.cfg.history.max_messages.max(1);
    ctx.home.log_read(range, limit, *next_tag);
}

/// Holds an entry that came ahead of what is known.
fn hold(state: &mut RoomLog, epoch: Arc<str>, entry: LogEntry, dropped: &mut u64) {
    if state.held.len() >= MAX_HELD {
        *dropped += 1;
        return;
    }
    state.held.insert(entry.offset, (epoch, entry.payload));
}

/// A live entry, with the room's epoch known: delivered, dropped as a duplicate, or held
/// behind a gap. Returns whether the gap must be read.
fn receive(
    state: &mut RoomLog,
    ctx: &mut Ctx<'_, '_>,
    epoch: Arc<str>,
    entry: LogEntry,
    dropped: &mut u64,
) -> bool {
    if state.epoch.as_deref() != Some(&*epoch) {
        new_epoch(state, ctx, epoch.clone());
    }
    if entry.offset <= state.last {
        *dropped += 1;
        return false;
    }
    if entry.offset == state.last + 1 {
        deliver(state, ctx, &epoch, entry.offset, &entry.payload);
        release(state, ctx, dropped);
        return false;
    }
    if state.held.len() >= MAX_HELD {
        // The gap cannot be filled in time: given up (the members see the jump).
        let first = state.held.keys().next().copied().unwrap_or(entry.offset);
        state.last = first.min(entry.offset) - 1;
        release(state, ctx, dropped);
        if entry.offset == state.last + 1 {
            deliver(state, ctx, &epoch, entry.offset, &entry.payload);
            release(state, ctx, dropped);
        } else if entry.offset > state.last {
            hold(state, epoch, entry, dropped);
        }
        return false;
    }
    hold(state, epoch, entry, dropped);
    true
}

/// The log was lost and started again (another epoch): members are told, and offsets start
/// again.
fn new_epoch(state: &mut RoomLog, ctx: &mut Ctx<'_, '_>, epoch: Arc<str>) {
    let had = state.epoch.replace(epoch.clone()).is_some();
    state.last = 0;
    state.held.retain(|_, (e, _)| **e == *epoch);
    ctx.history.align(&ctx.name, &epoch, 0, ctx.now);
    if had {
        ctx.flush();
        ctx.home
            .publish(Frame::text(&protocol::epoch(&ctx.name, &epoch)));
    }
}

/// Delivers the entry at `offset` (the one after the last) to the room's members here, and
/// keeps it.
fn deliver(state: &mut RoomLog, ctx: &mut Ctx<'_, '_>, epoch: &Arc<str>, offset: u64, body: &[u8]) {
    state.last = offset;
    let Some(text) = protocol::stamped(body, offset) else {
        // Not a message ringws appended (another program on our keys): skipped, its offset
        // counted as had.
        tracing::warn!(room = %ctx.name, offset, "a log entry that is not a message: skipped");
        return;
    };
    let frame = Frame::text(&text);
    let keep = ctx.cfg.rules.of(&ctx.name).history;
    ctx.history
        .insert(&ctx.name, epoch, offset, ctx.now, frame.clone(), keep);
    ctx.run.push(frame);
}

/// Delivers the held entries that now follow the last one; drops those already had.
fn release(state: &mut RoomLog, ctx: &mut Ctx<'_, '_>, dropped: &mut u64) {
    while let Some(entry) = state.held.first_entry() {
        let offset = *entry.key();
        if offset <= state.last {
            entry.remove();
            *dropped += 1;
            continue;
        }
        if offset != state.last + 1 {
            return;
        }
        let (epoch, body) = entry.remove();
        deliver(state, ctx, &epoch, offset, &body);
    }
}

/// A read's answer: its entries delivered in order (those the log no longer keeps skipped),
/// then the held ones. Returns whether more must be read (the answer was cut at its limit).
fn caught_up(
    state: &mut RoomLog,
    ctx: &mut Ctx<'_, '_>,
    answer: LogRead,
    tail: bool,
    dropped: &mut u64,
) -> bool {
    let LogRead {
        epoch,
        last,
        entries,
    } = answer;
    if state.epoch.as_deref() != Some(&*epoch) {
        new_epoch(state, ctx, epoch.clone());
    }
    if tail {
        // Where this server starts: the tail is kept (not delivered: nobody here was in the
        // room), and what came live meanwhile follows it. Unless members joined blind (the log
        // could not be read then): they were subscribed, so what came after the first entry
        // held since is delivered to them, and they are told the epoch.
        let blind = std::mem::take(&mut state.blind);
        let cut = match state.held.keys().next() {
            Some(&held) if blind => held - 1,
            _ => u64::MAX,
        };
        if blind {
            ctx.home
                .publish(Frame::text(&protocol::epoch(&ctx.name, &epoch)));
        }
        let first = entries.first().map_or(last + 1, |e| e.offset);
        state.last = state.last.max(first - 1);
        ctx.history.align(&ctx.name, &epoch, state.last, ctx.now);
        for e in &entries {
            if e.offset == state.last + 1 {
                if e.offset > cut {
                    deliver(state, ctx, &epoch, e.offset, &e.payload);
                    continue;
                }
                state.last = e.offset;
                if let Some(text) = protocol::stamped(&e.payload, e.offset) {
                    let keep = ctx.cfg.rules.of(&ctx.name).history;
                    let frame = Frame::text(&text);
                    ctx.history
                        .insert(&ctx.name, &epoch, e.offset, ctx.now, frame, keep);
                }
            }
        }
        if state.last < last && entries.last().is_none_or(|e| e.offset < last) {
            // The log's tail is older than its last offset (expired): nothing to keep.
            state.last = last;
            ctx.history.align(&ctx.name, &epoch, last, ctx.now);
        }
        release(state, ctx, dropped);
        return false;
    }
    let got = entries.len();
    for e in entries {
        if e.offset <= state.last {
            continue;
        }
        if e.offset > state.last + 1 {
            // No longer kept by the log: the members see the jump.
            state.last = e.offset - 1;
        }
        deliver(state, ctx, &epoch, e.offset, &e.payload);
    }
    if got == 0 && state.last < last {
        // Everything after the last one delivered is gone from the log.
        state.last = state
            .held
            .keys()
            .next()
            .map_or(last, |&h| h.min(last + 1) - 1);
    }
    release(state, ctx, dropped);
    got > 0 && state.last < last
}

/// Answers a join or a history page from what this home keeps of the room's log.
fn serve(state: &mut RoomLog, ctx: &mut Ctx<'_, '_>, waiting: Waiting) {
    let epoch = state.epoch.clone();
    if let Some(epoch) = &epoch {
        ctx.history.align(&ctx.name, epoch, state.last, ctx.now);
    }
    match waiting {
        Waiting::Join { conn, room, since } => {
            let online = room.online();
            let Some(epoch) = epoch else {
                // The log could not be read: subscribed, and told honestly that nothing is
                // known (the messages come once the broker is back).
                state.blind = true;
                let joined = protocol::joined(&ctx.name, online, "", 0, since.map(|_| false));
                ctx.home.join(conn, vec![Frame::text(&joined)], Vec::new());
                return;
            };
            let since = since.as_ref().map(|(e, o)| (e.as_str(), *o));
            let resume = ctx.history.resume(&ctx.name, since, ctx.now);
            let joined = |recovered| {
                Frame::text(&protocol::joined(
                    &ctx.name, online, &epoch, state.last, recovered,
                ))
            };
            let mut preamble = Vec::with_capacity(1 + resume.missed.len());
            preamble.push(joined(resume.recovered));
            preamble.extend(resume.missed.iter().cloned());
            let fallback = vec![joined(resume.recovered.map(|_| false))];
            ctx.home.join(conn, preamble, fallback);
        }
        Waiting::Page {
            conn,
            before,
            limit,
            reply,
        } => {
            let (epoch, frames) = ctx.history.page(&ctx.name, before, limit, ctx.now);
            let page = protocol::history(
                &ctx.name,
                epoch.as_deref(),
                frames.iter().filter_map(Frame::as_text),
            );
            match reply {
                Some(reply) => drop(reply.try_send(page)),
                None => ctx.home.send_to(conn, Frame::text(&page)),
            }
        }
    }
}

/// The log's duplicate key for a message with `id` from a connection of `user`: scoped by the
/// user, so a member who saw another's id (ids are echoed) cannot make that user's retry a
/// duplicate of its own message. Client ids have no `:` (the API's keys start `api:`).
fn user_key(user: &str, id: &str) -> Box<str> {
    format!("u:{user}:{id}").into()
}

/// The client's id in a duplicate key (see [`user_key`]).
fn client_id(key: &str) -> &str {
    match key.strip_prefix("u:") {
        Some(scoped) => scoped.rsplit_once(':').map_or(scoped, |(_, id)| id),
        None => key,
    }
}

#[cfg(test)]
mod tests;
