//! Room history on a lone server: each room's last messages, in offset order, kept by the
//! room's home worker (see [`crate::server::home`]), which is the only one to touch them.
//!
//! A room's log has an **epoch** and offsets 1, 2, 3, ... within it. The epoch names one run of
//! offsets: a log created anew (a restarted server, a room whose log was dropped and is no
//! longer remembered) has a new one, so a client's `since` from before can never be mistaken
//! for a position in it. A dropped log's epoch and last offset are remembered (as many as
//! `max_rooms`): the room continues them, and a client that had everything is told so.
//!
//! Bounds (all in [`HistoryConfig`]): per room by count, bytes and age; per home worker by
//! total bytes and number of logs. Beyond the total, the oldest messages of the room written
//! least recently go first. A message older than `max_age` is never served; it is freed when
//! its room is next written or read, or when its room is the least recently written one (each
//! request looks at that one), at the latest when the total bound needs the room.
//!
//! Time is passed in (milliseconds on a monotonic clock): the module holds no clock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::proto::frame::Frame;

/// How much history is kept. Every bound limits memory the clients can make the server hold.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Messages kept per room. Default 1,000: a minute of a busy room (15 messages a second),
    /// an hour of a lively one; what a reconnect or a page reload must fill.
    pub max_messages: usize,
    /// Bytes kept per room (the encoded frames). Default 1 MiB: 1,000 messages of ~1 KiB; also
    /// the most one recovery queues to a connection at once.
    pub max_bytes: usize,
    /// How long a message is kept. Default 10 minutes: longer than a phone's network change, a
    /// page reload or a deploy; a client away longer starts again from the page's history.
    pub max_age: Duration,
    /// Bytes kept over all rooms of this server (each home worker gets its share). Default
    /// 256 MiB: the history may not grow with the number of rooms without bound.
    pub total_bytes: usize,
    /// Room logs kept over all rooms of this server (each home worker gets its share).
    /// Default 100,000: a log costs ~200 bytes even when empty, and joining rooms by name is
    /// free for a client.
    pub max_rooms: usize,
    /// Most messages one `history` request returns. Default 100.
    pub page: usize,
    /// A `history` request, or a `join` with `since`, is refused (`busy`) while the connection
    /// has more than this many bytes queued to it. Default 64 KiB: a client that does not read
    /// cannot make the server build answers it would not take (one small request may cost a
    /// page, or `max_bytes` of recovery).
    pub busy_bytes: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            max_messages: 1000,
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(600),
            total_bytes: 256 << 20,
            max_rooms: 100_000,
            page: 100,
            busy_bytes: 64 << 10,
        }
    }
}

/// Hands out epochs unique to this server's run: a prefix chosen at start (from the time and
/// the process id) and a serial number. Shared by the home workers.
#[derive(Debug)]
pub struct Epochs {
    prefix: String,
    serial: AtomicU64,
}

impl Epochs {
    /// Epochs starting with `prefix` (a new one for each run of the server).
    pub fn new(prefix: String) -> Self {
        Epochs {
            prefix,
            serial: AtomicU64::new(0),
        }
    }

    /// Epochs for this run: the prefix mixes the wall clock and the process id.
    pub fn for_this_run() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mixed =
            (nanos ^ (u64::from(std::process::id()) << 40)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Epochs::new(format!("{:012x}", mixed >> 16))
    }

    fn next(&self) -> Arc<str> {
        let n = self.serial.fetch_add(1, Ordering::Relaxed);
        Arc::from(format!("{}-{n}", self.prefix))
    }
}

/// One kept message.
#[derive(Debug)]
struct Entry {
    offset: u64,
    /// When it was appended (ms, monotonic).
    at: u64,
    frame: Frame,
}

/// One room's log.
#[derive(Debug)]
struct Log {
    /// The room's name, shared by the maps that name it (made once, when the log is).
    name: Arc<str>,
    epoch: Arc<str>,
    /// The last offset given (0: none yet).
    last: u64,
    entries: VecDeque<Entry>,
    bytes: usize,
    /// Its key in `History::lru` (larger: written more recently).
    lru: u64,
    /// When it was created or last written (ms).
    active: u64,
}

/// Where a client resumes: the log's epoch and last offset, whether it could be recovered from
/// the client's position, and the messages it missed (in order) when it could.
#[derive(Debug)]
pub struct Resume {
    /// The room's epoch now.
    pub epoch: Arc<str>,
    /// The room's last offset now (0: no message yet in this epoch).
    pub last: u64,
    /// `None` when the client gave no position; else whether every message after it is here.
    pub recovered: Option<bool>,
    /// The messages after the client's position, oldest first (empty unless recovered).
    pub missed: Vec<Frame>,
}

/// The logs of the rooms one home worker is home to.
#[derive(Debug)]
pub struct History {
    cfg: HistoryConfig,
    /// This worker's share of the server-wide bounds.
    total_bytes: usize,
    max_rooms: usize,
    epochs: Arc<Epochs>,
    logs: HashMap<Arc<str>, Log>,
    /// Rooms by when they were last written (created, appended to), oldest first.
    lru: BTreeMap<u64, Arc<str>>,
    /// The same, for the logs that hold messages only: where the total bound takes from.
    filled: BTreeMap<u64, Arc<str>>,
    next_lru: u64,
    bytes: usize,
    /// Dropped logs' epochs and last offsets (at most `max_rooms`, the oldest forgotten first):
    /// a room that comes back continues its epoch, so a client that missed nothing is told so.
    tombs: HashMap<Arc<str>, (Arc<str>, u64)>,
    tomb_order: VecDeque<Arc<str>>,
}

impl History {
    /// The history of one home worker among `workers`. Each worker's share of the server-wide
    /// bounds is at least one room's worth (`max_bytes`, one log).
    pub fn new(cfg: HistoryConfig, workers: usize, epochs: Arc<Epochs>) -> Self {
        let workers = workers.max(1);
        History {
            total_bytes: (cfg.total_bytes / workers).max(cfg.max_bytes),
            max_rooms: (cfg.max_rooms / workers).max(1),
            cfg,
            epochs,
            logs: HashMap::new(),
            lru: BTreeMap::new(),
            filled: BTreeMap::new(),
            next_lru: 0,
            bytes: 0,
            tombs: HashMap::new(),
            tomb_order: VecDeque::new(),
        }
    }

    /// Bytes of messages kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Room logs kept.
    pub fn rooms(&self) -> usize {
        self.logs.len()
    }

    /// Appends the room's next message: `make` gets the room's epoch and the new offset and
    /// returns the frame every member receives (which is also what is kept). Returns it.
    pub fn append(&mut self, room: &str, now: u64, make: impl FnOnce(&str, u64) -> Frame) -> Frame {
        self.ensure(room, now);
        self.touch(room, now);
        let History {
            logs,
            bytes,
            filled,
            ..
        } = self;
        let Some(log) = logs.get_mut(room) else {
            return make("", 0); // not reached: `ensure` made it
        };
        log.last += 1;
        let frame = make(&log.epoch, log.last);
        let size = frame.wire().len();
        log.entries.push_back(Entry {
            offset: log.last,
            at: now,
            frame: frame.clone(),
        });
        log.bytes += size;
        *bytes += size;
        filled.insert(log.lru, log.name.clone());
        // The room's own bounds, then the worker's.
        let (max_messages, max_bytes) = (self.cfg.max_messages, self.cfg.max_bytes);
        while self.logs.get(room).is_some_and(|log| {
            log.entries.len() > max_messages || (log.bytes > max_bytes && log.entries.len() > 1)
        }) {
            self.pop_oldest(room);
        }
        self.expire_room(room, now);
        self.enforce_total(room);
        frame
    }

    /// The room's next offset for a message that is not kept (a namespace with `history =
    /// false`): `make` as in [`History::append`]; the offset advances, nothing is stored, so a
    /// client that missed it cannot recover (it is told so) and pages do not show it.
    pub fn advance(
        &mut self,
        room: &str,
        now: u64,
        make: impl FnOnce(&str, u64) -> Frame,
    ) -> Frame {
        self.ensure(room, now);
        self.touch(room, now);
        let Some(log) = self.logs.get_mut(room) else {
            return make("", 0); // not reached: `ensure` made it
        };
        log.last += 1;
        make(&log.epoch, log.last)
    }

    /// Makes `room`'s log the cache of a log kept elsewhere (a cluster's broker), at `epoch`
    /// with `last` as its last offset: if it is anywhere else, its messages are dropped (what
    /// is kept stays one unbroken run that ends at `last`).
    pub fn align(&mut self, room: &str, epoch: &Arc<str>, last: u64, now: u64) {
        self.ensure(room, now);
        let same = self
            .logs
            .get(room)
            .is_some_and(|log| *log.epoch == **epoch && log.last == last);
        if same {
            return;
        }
        while self
            .logs
            .get(room)
            .is_some_and(|log| !log.entries.is_empty())
        {
            self.pop_oldest(room);
        }
        if let Some(log) = self.logs.get_mut(room) {
            log.epoch = epoch.clone();
            log.last = last;
        }
    }

    /// Keeps `frame` as `room`'s message at `offset` of `epoch`, given by a log kept elsewhere
    /// (a cluster's broker): after [`History::align`] to the offset before it, so a jump in
    /// offsets starts the kept run again. Bounded as [`History::append`]; not kept without
    /// `keep` (see [`History::advance`]).
    pub fn insert(
        &mut self,
        room: &str,
        epoch: &Arc<str>,
        offset: u64,
        now: u64,
        frame: Frame,
        keep: bool,
    ) {
        self.align(room, epoch, offset.saturating_sub(1), now);
        if keep {
            self.append(room, now, |_, _| frame);
        } else {
            self.advance(room, now, |_, _| frame);
        }
    }

    /// Where a client joining `room` resumes, from its position `since` (epoch, last offset
    /// seen) if it gave one. Creates the room's log if it has none (the client learns the
    /// epoch to resume from later).
    pub fn resume(&mut self, room: &str, since: Option<(&str, u64)>, now: u64) -> Resume {
        self.ensure(room, now);
        self.expire_room(room, now);
        let Some(log) = self.logs.get(room) else {
            // Not reached (`ensure` made it); nothing is claimed.
            return Resume {
                epoch: Arc::from(""),
                last: 0,
                recovered: since.map(|_| false),
                missed: Vec::new(),
            };
        };
        let mut resume = Resume {
            epoch: log.epoch.clone(),
            last: log.last,
            recovered: None,
            missed: Vec::new(),
        };
        if let Some((epoch, offset)) = since {
            // Everything after `offset` is here if the epoch is the same, the client is not
            // ahead of the log, and the first message kept is at most the next one it needs.
            let first = log.entries.front().map_or(log.last + 1, |e| e.offset);
            let ok = *epoch == *log.epoch && offset <= log.last && first <= offset + 1;
            resume.recovered = Some(ok);
            if ok {
                resume.missed = log
                    .entries
                    .iter()
                    .filter(|e| e.offset > offset)
                    .map(|e| e.frame.clone())
                    .collect();
            }
        }
        resume
    }

    /// Up to `limit` (at most [`HistoryConfig::page`]) messages of `room` before offset
    /// `before` (the latest ones if `None`), oldest first, with the room's epoch. A room with
    /// no log has none (and gets no log).
    pub fn page(
        &mut self,
        room: &str,
        before: Option<u64>,
        limit: usize,
        now: u64,
    ) -> (Option<Arc<str>>, Vec<Frame>) {
        self.expire_room(room, now);
        let Some(log) = self.logs.get(room) else {
            return (None, Vec::new());
        };
        let limit = limit.min(self.cfg.page);
        let before = before.unwrap_or(u64::MAX);
        let end = log.entries.partition_point(|e| e.offset < before);
        let start = end.saturating_sub(limit);
        let frames = log
            .entries
            .range(start..end)
            .map(|e| e.frame.clone())
            .collect();
        (Some(log.epoch.clone()), frames)
    }

    /// Looks at the rooms written least recently (a few per call, O(log n) each): frees what
    /// has aged out, and drops a log when nobody is in its room (`online` is false) and it is
    /// idle for `max_age` (so it is empty) or beyond the worker's share of `max_rooms`. A log
    /// whose room has members is never dropped; it goes to the back of the line. A dropped
    /// log's epoch and last offset are remembered (bounded): the room continues them. Call
    /// once per request.
    pub fn sweep(&mut self, now: u64, online: impl Fn(&str) -> bool) {
        let max_age = self.max_age_ms();
        for _ in 0..4 {
            let Some((_, room)) = self.lru.first_key_value() else {
                return;
            };
            let room = room.clone();
            self.expire_room(&room, now);
            let Some(log) = self.logs.get(&*room) else {
                return; // not reached: `lru` and `logs` hold the same rooms
            };
            let over = self.logs.len() > self.max_rooms;
            let idle = now.saturating_sub(log.active) >= max_age;
            if !over && !idle {
                return;
            }
            if online(&room) {
                self.requeue(&room);
            } else {
                self.drop_log(&room);
            }
        }
    }

    fn max_age_ms(&self) -> u64 {
        self.cfg.max_age.as_millis() as u64
    }

    /// Creates the room's log, at the back of the line, if it has none: with the epoch and
    /// last offset it had when dropped, if remembered, else with a new epoch. (Its name is
    /// allocated here only: the maps share it.)
    fn ensure(&mut self, room: &str, now: u64) {
        if self.logs.contains_key(room) {
            return;
        }
        let name: Arc<str> = Arc::from(room);
        let key = self.next_lru;
        self.next_lru += 1;
        self.lru.insert(key, name.clone());
        let (epoch, last) = self
            .tombs
            .remove(room)
            .unwrap_or_else(|| (self.epochs.next(), 0));
        let log = Log {
            name: name.clone(),
            epoch,
            last,
            entries: VecDeque::new(),
            bytes: 0,
            lru: key,
            active: now,
        };
        self.logs.insert(name, log);
    }

    /// Moves `room` to the most recently written end.
    fn touch(&mut self, room: &str, now: u64) {
        if let Some(log) = self.logs.get_mut(room) {
            log.active = now;
        }
        self.requeue(room);
    }

    /// Moves `room` to the back of the line without counting it as written.
    fn requeue(&mut self, room: &str) {
        let key = self.next_lru;
        self.next_lru += 1;
        if let Some(log) = self.logs.get_mut(room) {
            self.lru.remove(&log.lru);
            let was_filled = self.filled.remove(&log.lru).is_some();
            log.lru = key;
            self.lru.insert(key, log.name.clone());
            if was_filled {
                self.filled.insert(key, log.name.clone());
            }
        }
    }

    /// Frees the room's oldest message (and takes the room off `filled` when it is the last).
    fn pop_oldest(&mut self, room: &str) {
        let Some(log) = self.logs.get_mut(room) else {
            return;
        };
        let gone = log.entries.pop_front().map_or(0, |e| e.frame.wire().len());
        log.bytes -= gone;
        self.bytes -= gone;
        if log.entries.is_empty() {
            self.filled.remove(&log.lru);
        }
    }

    /// Frees the room's messages older than `max_age`.
    fn expire_room(&mut self, room: &str, now: u64) {
        let max_age = self.max_age_ms();
        while self.logs.get(room).is_some_and(|log| {
            log.entries
                .front()
                .is_some_and(|e| now.saturating_sub(e.at) >= max_age)
        }) {
            self.pop_oldest(room);
        }
    }

    /// Over the worker's total: the oldest messages of the rooms written least recently go,
    /// never `keep`'s newest message (`keep` was written last: it is the last of `filled`).
    /// O(log n) per message freed.
    fn enforce_total(&mut self, keep: &str) {
        while self.bytes > self.total_bytes {
            let Some((_, room)) = self.filled.first_key_value() else {
                break;
            };
            let room = room.clone();
            if *room == *keep && self.logs.get(keep).is_some_and(|l| l.entries.len() <= 1) {
                break;
            }
            self.pop_oldest(&room);
        }
    }

    /// Drops the room's log, remembering its epoch and last offset.
    fn drop_log(&mut self, room: &str) {
        let Some(log) = self.logs.remove(room) else {
            return;
        };
        self.bytes -= log.bytes;
        self.lru.remove(&log.lru);
        self.filled.remove(&log.lru);
        self.tombs.insert(log.name.clone(), (log.epoch, log.last));
        self.tomb_order.push_back(log.name);
        while self.tomb_order.len() > self.max_rooms {
            if let Some(old) = self.tomb_order.pop_front() {
                // A name dropped twice is in the line twice: forgetting it at its older place
                // forgets it early, which only costs a client a new epoch (honest).
                self.tombs.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(epoch: &str, offset: u64) -> Frame {
        Frame::text(&format!("{epoch}/{offset}"))
    }

    fn text(f: &Frame) -> String {
        f.as_text().unwrap().to_owned()
    }

    fn history(cfg: HistoryConfig) -> History {
        History::new(cfg, 1, Arc::new(Epochs::new("t".into())))
    }

    #[test]
    fn offsets_increase_and_a_position_resumes_with_what_was_missed() {
        let mut h = history(HistoryConfig::default());
        let first = h.resume("a", None, 0);
        assert_eq!((first.last, first.recovered), (0, None));
        for i in 1..=5 {
            assert_eq!(
                text(&h.append("a", i, frame)),
                format!("{}/{i}", first.epoch)
            );
        }
        let r = h.resume("a", Some((&first.epoch, 2)), 10);
        assert_eq!((r.last, r.recovered), (5, Some(true)));
        let missed: Vec<_> = r.missed.iter().map(text).collect();
        assert_eq!(missed, ["t-0/3", "t-0/4", "t-0/5"]);
        let none = h.resume("a", Some((&first.epoch, 5)), 10);
        assert_eq!((none.recovered, none.missed.len()), (Some(true), 0));
        // Another epoch, or a position ahead of the log: not recoverable.
        assert_eq!(h.resume("a", Some(("other", 2)), 10).recovered, Some(false));
        assert_eq!(
            h.resume("a", Some((&first.epoch, 6)), 10).recovered,
            Some(false)
        );
        // Another room has its own epoch and offsets.
        let b = h.resume("b", None, 10);
        assert_ne!(b.epoch, first.epoch);
        assert_eq!(text(&h.append("b", 11, frame)), format!("{}/1", b.epoch));
    }

    #[test]
    fn messages_not_kept_advance_the_offset_and_recover_only_when_nothing_was_missed() {
        let mut h = history(HistoryConfig::default());
        let epoch = h.resume("a", None, 0).epoch;
        for i in 1..=3 {
            assert_eq!(text(&h.advance("a", i, frame)), format!("{epoch}/{i}"));
        }
        assert_eq!(h.bytes(), 0, "nothing kept");
        assert_eq!(h.page("a", None, 10, 5).1, Vec::<Frame>::new());
        let missed = h.resume("a", Some((&epoch, 1)), 5);
        assert_eq!((missed.last, missed.recovered), (3, Some(false)));
        let caught_up = h.resume("a", Some((&epoch, 3)), 5);
        assert_eq!(caught_up.recovered, Some(true));
        // The same for entries given by a cluster's log.
        h.insert("a", &epoch, 4, 6, Frame::text("four"), false);
        assert_eq!((h.bytes(), h.resume("a", None, 6).last), (0, 4));
        h.insert("a", &epoch, 5, 6, Frame::text("five"), true);
        let kept: Vec<String> = h.page("a", None, 10, 6).1.iter().map(text).collect();
        assert_eq!(kept, ["five"]);
    }

    #[test]
    fn a_position_older_than_the_history_is_not_recovered() {
        let mut h = history(HistoryConfig {
            max_messages: 3,
            ..HistoryConfig::default()
        });
        let epoch = h.resume("a", None, 0).epoch;
        for i in 1..=10 {
            h.append("a", i, frame);
        }
        // Kept: 8, 9, 10. From 7 on, everything missed is there; from 6, message 7 is gone.
        let r = h.resume("a", Some((&epoch, 7)), 20);
        assert_eq!((r.recovered, r.missed.len()), (Some(true), 3));
        let r = h.resume("a", Some((&epoch, 6)), 20);
        assert_eq!((r.recovered, r.missed.len()), (Some(false), 0));
        assert_eq!(r.last, 10, "the offset goes on");
    }

    #[test]
    fn bytes_and_age_bound_a_room() {
        let one = frame("t-0", 1).wire().len();
        let mut h = history(HistoryConfig {
            max_bytes: one * 4 + 1, // "t-0/10" is one byte longer
            max_age: Duration::from_millis(100),
            ..HistoryConfig::default()
        });
        for i in 1..=10 {
            h.append("a", i, frame);
        }
        assert_eq!(h.bytes(), one * 4 + 1, "four fit");
        let (_, page) = h.page("a", None, 100, 50);
        assert_eq!(
            page.iter().map(text).collect::<Vec<_>>(),
            ["t-0/7", "t-0/8", "t-0/9", "t-0/10"]
        );
        // At 108 ms, messages appended at 7 and 8 ms are 100 ms old: never served again.
        let (_, page) = h.page("a", None, 100, 108);
        assert_eq!(
            page.iter().map(text).collect::<Vec<_>>(),
            ["t-0/9", "t-0/10"]
        );
        assert_eq!(h.bytes(), one * 2 + 1);
    }

    #[test]
    fn pages_go_back_from_before() {
        let mut h = history(HistoryConfig {
            page: 3,
            ..HistoryConfig::default()
        });
        for i in 1..=10 {
            h.append("a", i, frame);
        }
        let texts = |p: Vec<Frame>| p.iter().map(text).collect::<Vec<_>>();
        assert_eq!(texts(h.page("a", Some(5), 2, 20).1), ["t-0/3", "t-0/4"]);
        assert_eq!(
            texts(h.page("a", None, 50, 20).1),
            ["t-0/8", "t-0/9", "t-0/10"],
            "at most a page"
        );
        assert_eq!(texts(h.page("a", Some(1), 5, 20).1), Vec::<String>::new());
        assert_eq!(h.page("nowhere", None, 5, 20), (None, vec![]));
        assert_eq!(h.rooms(), 1, "a page of an unknown room creates no log");
    }

    #[test]
    fn the_total_bound_takes_from_the_least_recently_written_rooms() {
        let one = frame("t-0", 1).wire().len();
        let mut h = history(HistoryConfig {
            max_bytes: one * 10,
            total_bytes: one * 10,
            ..HistoryConfig::default()
        });
        for i in 1..=6 {
            h.append("old", i, frame);
        }
        for i in 1..=6 {
            h.append("new", 10 + i, frame);
        }
        assert!(h.bytes() <= one * 10 + 2, "{} > {}", h.bytes(), one * 10);
        assert_eq!(
            h.page("new", None, 100, 20).1.len(),
            6,
            "the room written last keeps all"
        );
        assert_eq!(
            h.page("old", None, 100, 20).1.len(),
            4,
            "the other lost its oldest"
        );
    }

    #[test]
    fn idle_empty_logs_without_members_are_dropped_and_continue_their_epoch() {
        let mut h = history(HistoryConfig {
            max_age: Duration::from_millis(100),
            max_rooms: 2,
            ..HistoryConfig::default()
        });
        let old = h.resume("a", None, 0).epoch;
        h.append("a", 1, frame);
        h.sweep(50, |_| false);
        assert_eq!(h.rooms(), 1, "not idle yet");
        h.sweep(200, |_| true);
        assert_eq!(
            (h.rooms(), h.bytes()),
            (1, 0),
            "aged out, kept for its members"
        );
        h.sweep(400, |_| false);
        assert_eq!(h.rooms(), 0, "empty, idle, nobody there");
        // Back: the same epoch and offsets go on. A client that had message 1 missed nothing;
        // one that had nothing missed message 1, which aged out.
        let again = h.resume("a", Some((&old, 1)), 400);
        assert_eq!(
            (&again.epoch, again.last, again.recovered),
            (&old, 1, Some(true))
        );
        assert_eq!(h.resume("a", Some((&old, 0)), 400).recovered, Some(false));
        assert_eq!(text(&h.append("a", 401, frame)), format!("{old}/2"));
        // The remembered epochs are bounded (here by max_rooms, 2): drop "a" and two more
        // rooms, and "a" is forgotten: a new epoch, honest about everything before.
        for (i, room) in ["a", "b", "c"].iter().enumerate() {
            let t = 1000 + 1000 * i as u64;
            h.resume(room, None, t);
            h.sweep(t + 500, |_| false);
            h.sweep(t + 600, |_| false);
        }
        assert_eq!(h.rooms(), 0);
        let fresh = h.resume("a", Some((&old, 2)), 10_000);
        assert_ne!(fresh.epoch, old);
        assert_eq!((fresh.last, fresh.recovered), (0, Some(false)));
    }

    #[test]
    fn the_number_of_logs_is_bounded() {
        let mut h = history(HistoryConfig {
            max_rooms: 3,
            ..HistoryConfig::default()
        });
        for room in ["a", "b", "c", "d", "e"] {
            h.resume(room, None, 0);
            h.sweep(0, |room| room == "b");
        }
        assert_eq!(h.rooms(), 3);
        assert!(
            h.page("a", None, 1, 0).0.is_none(),
            "the least recently written went first"
        );
        assert!(
            h.page("b", None, 1, 0).0.is_some(),
            "never one with members"
        );
        assert!(h.page("c", None, 1, 0).0.is_none());
    }
}
