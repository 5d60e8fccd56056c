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
use super::protocol::{self, MessageEvent};
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
        if let HomeReq::Send {
            from: sender,
            name: nick,
            ts,
            text,
            id,
            user,
            data,
            reply,
            ..
        } = req
        {
            let body = MessageEvent {
                room: &name,
                from: &sender,
                name: nick.as_deref(),
                ts,
                seq: 0,
                offset: None,
                text: &text,
                online: None,
                id: id.as_deref(),
                user: user.as_deref(),
                data: data.as_ref(),
            }
            .body();
            // The backend API's message: its outcome comes back with its key.
            if let (Some(reply), Some(key)) = (reply, &id) {
                self.api_replies.insert(key.clone(), reply);
            }
            home.log_append(from, id, Bytes::from(body));
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
            HomeReq::Send { .. } | HomeReq::Presence { .. } | HomeReq::PresenceList { .. } => {}
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
            LogEvent::PresenceChanged { .. } | LogEvent::PresenceListed { .. } => {}
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
                    let refusal = protocol::unavailable(&name, key.as_deref(), &why.0);
                    ctx.home.send_to(from, Frame::text(&refusal));
                }
                // A direct message's sender is told it went out (it is not in the room).
                Ok((_, offset)) if rules::owner(&name).is_some() => {
                    let sent = protocol::sent(&name, Some(offset), key.as_deref());
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
    ctx.history
        .insert(&ctx.name, epoch, offset, ctx.now, frame.clone());
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
                    ctx.history
                        .insert(&ctx.name, &epoch, e.offset, ctx.now, Frame::text(&text));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::LogUnavailable;
    use crate::server::home::recorder::{Did, Recorder};
    use serde_json::Value;

    const ALICE: ConnId = ConnId {
        worker: 1,
        slot: 7,
        generation: 1,
    };

    struct Setup {
        seq: ClusterSequencer,
        rec: Recorder,
        cfg: ChatConfig,
        epochs: Arc<Epochs>,
        rooms: Rooms,
    }

    fn setup() -> Setup {
        Setup {
            seq: ClusterSequencer::default(),
            rec: Recorder::new("r", true),
            cfg: ChatConfig::default(),
            epochs: Arc::new(Epochs::new("local".into())),
            rooms: Rooms::default(),
        }
    }

    fn body(text: &str) -> Bytes {
        let event = MessageEvent {
            room: "r",
            from: "n:0.1.1",
            name: None,
            ts: 1,
            seq: 0,
            offset: None,
            text,
            online: None,
            id: None,
            user: None,
            data: None,
        };
        Bytes::from(event.body())
    }

    fn entry(offset: u64) -> LogEntry {
        LogEntry {
            offset,
            payload: body(&format!("m{offset}")),
        }
    }

    impl Setup {
        fn event(&mut self, event: LogEvent) -> Vec<Did> {
            let Setup {
                seq,
                rec,
                cfg,
                epochs,
                rooms,
            } = self;
            rec.with(ConnId::NONE, |home| {
                seq.log_event(home, event, cfg, epochs, rooms)
            });
            rec.take()
        }

        fn live(&mut self, epoch: &str, offset: u64) -> Vec<Did> {
            self.event(LogEvent::Live {
                epoch: Arc::from(epoch),
                entries: vec![entry(offset)],
            })
        }

        fn request(&mut self, from: ConnId, req: HomeReq) -> Vec<Did> {
            let Setup {
                seq,
                rec,
                cfg,
                epochs,
                ..
            } = self;
            rec.with(from, |home| seq.request(home, req, cfg, epochs));
            rec.take()
        }

        fn answer(&mut self, tag: u64, epoch: &str, last: u64, offsets: &[u64]) -> Vec<Did> {
            let read = LogRead {
                epoch: Arc::from(epoch),
                last,
                entries: offsets.iter().map(|&o| entry(o)).collect(),
            };
            self.event(LogEvent::Range {
                tag,
                result: Ok(read),
            })
        }
    }

    /// The offsets of published messages (and `epoch` events as 0).
    fn published(did: &[Did]) -> Vec<u64> {
        let offset = |text: &String| {
            let v: Value = serde_json::from_str(text).unwrap();
            v["offset"].as_u64().unwrap()
        };
        did.iter()
            .flat_map(|d| match d {
                Did::Publish(text) => vec![offset(text)],
                Did::Run(texts) => texts.iter().map(offset).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn reads(did: &[Did]) -> Vec<(LogRange, u64)> {
        did.iter()
            .filter_map(|d| match d {
                Did::Read(range, _, tag) => Some((*range, *tag)),
                _ => None,
            })
            .collect()
    }

    /// A room whose tail was read (empty log at `last`): live entries follow.
    fn started(s: &mut Setup, last: u64) {
        let did = s.live("e1", last + 1);
        assert_eq!(
            reads(&did),
            [(LogRange::Tail, 1)],
            "nothing known: the tail"
        );
        assert!(published(&did).is_empty(), "held until the tail is read");
        let did = s.answer(1, "e1", last, &[]);
        assert_eq!(published(&did), [last + 1], "the held one follows the tail");
    }

    #[test]
    fn live_entries_go_out_in_order_once_each_and_a_gap_is_read() {
        let mut s = setup();
        started(&mut s, 0);
        assert_eq!(published(&s.live("e1", 2)), [2]);
        assert!(s.live("e1", 2).is_empty(), "a duplicate");
        assert!(s.live("e1", 1).is_empty(), "an old one");
        // 3 and 4 are missed: 5 is held and the gap read.
        let did = s.live("e1", 5);
        assert!(published(&did).is_empty());
        assert_eq!(reads(&did), [(LogRange::After(2), 2)]);
        assert!(s.live("e1", 6).is_empty(), "held too; one read at a time");
        let did = s.answer(2, "e1", 6, &[3, 4, 5, 6]);
        assert_eq!(published(&did), [3, 4, 5, 6], "in order, once each");
        assert_eq!(published(&s.live("e1", 7)), [7]);
        assert!(s.seq.duplicates >= 2);
    }

    #[test]
    fn entries_the_log_no_longer_keeps_are_skipped_and_a_cut_answer_reads_on() {
        let mut s = setup();
        started(&mut s, 10);
        let did = s.live("e1", 20);
        assert_eq!(reads(&did), [(LogRange::After(11), 2)]);
        // The log keeps 15.. only, and answers 2 at a time.
        let did = s.answer(2, "e1", 20, &[15, 16]);
        assert_eq!(published(&did), [15, 16]);
        assert_eq!(reads(&did), [(LogRange::After(16), 3)], "read on");
        let did = s.answer(3, "e1", 20, &[17, 18, 19, 20]);
        assert_eq!(published(&did), [17, 18, 19, 20]);
        assert!(reads(&did).is_empty());
        // A stale answer (a tag given up on) changes nothing.
        assert!(s.answer(2, "e1", 20, &[21]).is_empty());
    }

    #[test]
    fn a_resync_during_a_read_reads_again_after_it() {
        let mut s = setup();
        started(&mut s, 0);
        let did = s.live("e1", 3);
        assert_eq!(reads(&did), [(LogRange::After(1), 2)]);
        assert!(s.event(LogEvent::Resync).is_empty(), "one read at a time");
        let did = s.event(LogEvent::Range {
            tag: 2,
            result: Err(LogUnavailable("session lost".into())),
        });
        assert_eq!(
            reads(&did),
            [(LogRange::After(1), 3)],
            "read again for the resync"
        );
        let did = s.answer(3, "e1", 3, &[2, 3]);
        assert_eq!(published(&did), [2, 3]);
    }

    #[test]
    fn an_answer_from_another_epoch_is_read_again_from_its_start() {
        let mut s = setup();
        started(&mut s, 0);
        assert!(s.event(LogEvent::Resync).len() == 1, "a read after 1");
        // Redis came back empty and another server already appended 1..3 in epoch e2: the read
        // after offset 1 is not a continuation.
        let did = s.answer(2, "e2", 3, &[2, 3]);
        assert_eq!(
            did[0],
            Did::Publish(protocol::epoch("r", "e2")),
            "told first"
        );
        assert_eq!(
            reads(&did),
            [(LogRange::After(0), 3)],
            "the new epoch from its start"
        );
        assert_eq!(published(&s.answer(3, "e2", 3, &[1, 2, 3])), [1, 2, 3]);
    }

    #[test]
    fn a_read_made_before_the_epoch_changed_is_read_again() {
        let mut s = setup();
        started(&mut s, 0);
        let did = s.live("e1", 3);
        assert_eq!(reads(&did), [(LogRange::After(1), 2)]);
        // The new epoch's first entry comes live while that read is on its way.
        let did = s.live("e2", 1);
        assert_eq!(published(&did), [0, 1], "announced, then delivered");
        // The answer (in e2, after 1) was asked relative to e1: read again.
        let did = s.answer(2, "e2", 5, &[2, 3, 4, 5]);
        assert!(published(&did).is_empty(), "{did:?}");
        assert_eq!(reads(&did), [(LogRange::After(1), 3)]);
        assert_eq!(
            published(&s.answer(3, "e2", 5, &[2, 3, 4, 5])),
            [2, 3, 4, 5]
        );
    }

    #[test]
    fn members_joined_blind_get_what_came_after_they_joined() {
        let mut s = setup();
        let room = s.rooms.join("r");
        s.request(ALICE, HomeReq::Join { room, since: None });
        let did = s.event(LogEvent::Range {
            tag: 1,
            result: Err(LogUnavailable("down".into())),
        });
        assert!(
            did.iter().any(|d| matches!(d, Did::Join(..))),
            "answered blind"
        );
        // Redis is back: 5 comes live (4 before it were appended before the join).
        let did = s.live("e1", 5);
        assert_eq!(reads(&did), [(LogRange::Tail, 2)]);
        let did = s.answer(2, "e1", 5, &[1, 2, 3, 4, 5]);
        assert_eq!(
            published(&did),
            [0, 5],
            "the epoch told, then what came after the join"
        );
    }

    #[test]
    fn another_epoch_is_announced_and_offsets_start_again() {
        let mut s = setup();
        started(&mut s, 0);
        let did = s.live("e2", 1);
        assert_eq!(
            did[0],
            Did::Publish(protocol::epoch("r", "e2")),
            "told first"
        );
        assert_eq!(published(&did), [0, 1]);
        assert_eq!(published(&s.live("e2", 2)), [2]);
    }

    #[test]
    fn a_join_waits_for_the_log_and_gets_what_it_missed() {
        let mut s = setup();
        let room = s.rooms.join("r");
        let did = s.request(
            ALICE,
            HomeReq::Join {
                room: room.clone(),
                since: Some(("e1".into(), 3)),
            },
        );
        assert_eq!(reads(&did), [(LogRange::Tail, 1)]);
        assert!(!did.iter().any(|d| matches!(d, Did::Join(..))), "waits");
        let did = s.answer(1, "e1", 6, &[2, 3, 4, 5, 6]);
        let Some(Did::Join(conn, preamble)) = did.iter().find(|d| matches!(d, Did::Join(..)))
        else {
            panic!("joined: {did:?}");
        };
        assert_eq!(*conn, ALICE);
        let joined: Value = serde_json::from_str(&preamble[0]).unwrap();
        assert_eq!(
            (&joined["recovered"], &joined["offset"], &joined["epoch"]),
            (&Value::from(true), &Value::from(6), &Value::from("e1"))
        );
        let missed: Vec<u64> = preamble[1..]
            .iter()
            .map(|t| {
                serde_json::from_str::<Value>(t).unwrap()["offset"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(missed, [4, 5, 6]);
        // The bridge stops receiving the room: the next join reads what followed first.
        assert!(s.event(LogEvent::Unsubscribed).is_empty());
        let did = s.request(
            ALICE,
            HomeReq::Join {
                room,
                since: Some(("e1".into(), 6)),
            },
        );
        assert_eq!(reads(&did), [(LogRange::After(6), 2)]);
    }

    #[test]
    fn a_leave_cancels_a_waiting_join_and_a_failed_read_still_answers() {
        let mut s = setup();
        let room = s.rooms.join("r");
        let bob = ConnId { slot: 8, ..ALICE };
        for who in [ALICE, bob] {
            let since = Some(("e1".into(), 1));
            s.request(
                who,
                HomeReq::Join {
                    room: room.clone(),
                    since,
                },
            );
        }
        let did = s.request(ALICE, HomeReq::Leave { online: 1 });
        assert_eq!(did[0], Did::Leave(ALICE));
        let did = s.event(LogEvent::Range {
            tag: 1,
            result: Err(LogUnavailable("down".into())),
        });
        let joins: Vec<&Did> = did.iter().filter(|d| matches!(d, Did::Join(..))).collect();
        assert_eq!(joins.len(), 1, "only bob: {did:?}");
        let Did::Join(conn, preamble) = joins[0] else {
            unreachable!()
        };
        assert_eq!(*conn, bob);
        let joined: Value = serde_json::from_str(&preamble[0]).unwrap();
        assert_eq!(joined["recovered"], false, "nothing known: not claimed");
    }

    #[test]
    fn a_message_is_appended_and_a_refusal_goes_back_to_its_sender_with_its_id() {
        let mut s = setup();
        let room = s.rooms.join("r");
        let did = s.request(
            ALICE,
            HomeReq::Send {
                room: Some(room),
                from: "n:1.7.1".into(),
                name: None,
                ts: 5,
                text: "hi".into(),
                id: Some("k1".into()),
                user: None,
                data: None,
                reply: None,
            },
        );
        let [Did::Append(from, key, payload)] = &did[..] else {
            panic!("{did:?}");
        };
        assert_eq!((*from, key.as_deref()), (ALICE, Some("k1")));
        let stamped: Value = serde_json::from_str(&protocol::stamped(payload, 9).unwrap()).unwrap();
        assert_eq!(
            (&stamped["text"], &stamped["offset"]),
            (&"hi".into(), &9.into())
        );
        let did = s.event(LogEvent::Appended {
            from: ALICE,
            key: Some("k1".into()),
            result: Err(LogUnavailable("redis down".into())),
        });
        let [Did::SendTo(to, text)] = &did[..] else {
            panic!("{did:?}");
        };
        let refusal: Value = serde_json::from_str(text).unwrap();
        assert_eq!(*to, ALICE);
        assert_eq!(
            (&refusal["code"], &refusal["id"]),
            (&"unavailable".into(), &"k1".into())
        );
    }

    #[test]
    fn rooms_without_members_here_leave_nothing_behind() {
        let mut s = setup();
        // A direct message (or the API's) to a room nobody here is in: appended, nothing kept.
        let did = s.request(
            ALICE,
            HomeReq::Send {
                room: None,
                from: "n:1.7.1".into(),
                name: None,
                ts: 5,
                text: "psst".into(),
                id: None,
                user: None,
                data: None,
                reply: None,
            },
        );
        assert_eq!(did.len(), 1, "{did:?}");
        assert!(s.seq.rooms.is_empty());
        // The API's history page of such a room: read, answered, then forgotten.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let did = s.request(
            ConnId::NONE,
            HomeReq::History {
                before: None,
                limit: 10,
                reply: Some(tx),
            },
        );
        let tag = match &did[..] {
            [Did::Read(LogRange::Tail, _, tag)] => *tag,
            other => panic!("{other:?}"),
        };
        assert_eq!(s.seq.rooms.len(), 1, "known while the read is out");
        s.answer(tag, "e1", 2, &[1, 2]);
        let page: Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
        assert_eq!(page["messages"].as_array().map(Vec::len), Some(2));
        assert!(s.seq.rooms.is_empty(), "forgotten once answered");
    }
}
