//! Topics (rooms): publish one frame to every subscriber on every worker.
//!
//! A connection subscribes to topics on its own worker. A publication is one encoded frame
//! (`Bytes`): every subscriber's queue gets the same allocation (a reference count, not a copy).
//! Each worker delivers to its own subscribers:
//!
//! ```text
//!  worker A: conn.publish("room", frame)        worker B                     worker C
//!     │ local subscribers: queued at once           ▲                            ▲
//!     │ other workers: appended to a batch          │ inbox (one lock per batch) │
//!     └─ end of the loop iteration: each batch ─────┴──── one wake-up each ───────┘
//!        moves into its worker's inbox               (MSG_RING on io_uring, an eventfd on epoll)
//! ```
//!
//! Nothing is locked per message: a worker moves a whole iteration's publications for another
//! worker into that worker's inbox under one lock, and wakes it only if the inbox was empty (a
//! wake-up already pending covers the rest). [`Publisher`](super::Publisher) does the same from any thread, one
//! publication at a time.
//!
//! With a relay to other servers ([`Relay`](super::Relay), e.g. the Redis bridge), a
//! publication also goes to the other nodes: the worker hands it to the relay at the end of the
//! iteration with the rest of the batch, and the relay puts the other nodes' publications into
//! the inboxes of the workers that have subscribers ([`Inbound`]).
//! `publish_local` keeps a publication on this node (per-node presence counts, for example).
//!
//! Per subscriber, delivery follows the backpressure policy
//! ([`Backpressure`](super::Backpressure)): a slow subscriber's queue fills to the high-water
//! mark and then loses messages (newest or oldest) or is closed with 1013; it never delays the
//! other subscribers or the publisher.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::home::{HomeRequest, Join, home_of};
use crate::proto::frame::Frame;
use crate::runtime::sys;

/// A topic's name, shared by every map and publication that mentions it.
pub type Topic = Arc<str>;

/// A connection's identity: its worker, slot and the slot's generation. Unique among the
/// connections open at the same time; a slot reused by a later connection has a new generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) worker: u16,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.worker, self.slot, self.generation)
    }
}

impl ConnId {
    /// No connection: what [`Home::from`](super::Home::from) gives for a request that came
    /// from the relay, not a connection. No worker has this index.
    pub const NONE: ConnId = ConnId {
        worker: u16::MAX,
        slot: u32::MAX,
        generation: u32::MAX,
    };

    /// The index of the worker the connection is on.
    pub fn worker(&self) -> usize {
        usize::from(self.worker)
    }
}

/// Why a string is not a [`ConnId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadConnId;

impl fmt::Display for BadConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a connection id (WORKER.SLOT.GENERATION)")
    }
}

impl std::error::Error for BadConnId {}

/// Reads an id back from its [`Display`](fmt::Display) form, `WORKER.SLOT.GENERATION` (for an
/// application that handed ids out, e.g. to a backend that later sends to one).
impl std::str::FromStr for ConnId {
    type Err = BadConnId;
    fn from_str(s: &str) -> Result<ConnId, BadConnId> {
        let mut parts = s.split('.');
        let mut next = || parts.next().ok_or(BadConnId);
        let worker = next()?.parse().map_err(|_| BadConnId)?;
        let slot = next()?.parse().map_err(|_| BadConnId)?;
        let generation = next()?.parse().map_err(|_| BadConnId)?;
        if parts.next().is_some() {
            return Err(BadConnId);
        }
        Ok(ConnId {
            worker,
            slot,
            generation,
        })
    }
}

/// Where a publication goes.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Every subscriber of a topic.
    Topic(Topic),
    /// One connection (on the worker its id names).
    Conn(ConnId),
}

/// One publication: where it goes, the frame, and optionally a connection that does not get it
/// (the publisher, for "to everyone else").
#[derive(Debug, Clone)]
pub(crate) struct Publication {
    pub(crate) target: Target,
    pub(crate) frame: Frame,
    pub(crate) except: Option<ConnId>,
}

impl Publication {
    /// To every subscriber of `topic`.
    pub(crate) fn topic(topic: Topic, frame: Frame) -> Publication {
        Publication {
            target: Target::Topic(topic),
            frame,
            except: None,
        }
    }
}

/// When a sampled publication was made (`None`: not sampled). See `ringws_fanout_delay_seconds`.
pub(crate) type Sampled = Option<std::time::Instant>;

/// What a worker's inbox carries, in order.
#[derive(Debug)]
pub(crate) enum Item {
    /// A publication to deliver to this worker's connections; when sampled, the moment it
    /// was published (for the fan-out delay histogram).
    Publish(Publication, Sampled),
    /// From a topic's home: a run of publications to the topic's subscribers, each taking it
    /// whole or not at all (see [`Home::publish_run`](super::Home::publish_run)).
    Run(Topic, Arc<[Frame]>, Sampled),
    /// A request for this worker as a topic's home.
    Home(HomeRequest),
    /// From a topic's home: a connection of this worker joins the topic.
    Join(Join),
    /// From a topic's home: a connection of this worker leaves the topic.
    Leave(ConnId, Topic),
    /// For a connection of this worker's handler ([`Handler::notify`](super::Handler::notify)).
    Notify(ConnId, Box<dyn std::any::Any + Send>),
}

impl Item {
    /// The publication, if it is one.
    #[cfg(test)]
    pub(crate) fn publication(&self) -> Option<&Publication> {
        match self {
            Item::Publish(p, _) => Some(p),
            _ => None,
        }
    }
}

/// One worker's inbox: publications from the other workers and from [`Publisher`]s.
#[derive(Debug)]
struct Inbox {
    queue: Mutex<Vec<Item>>,
    /// Signalled when the queue goes from empty to non-empty.
    efd: OwnedFd,
    /// A duplicate of the worker's io_uring fd, when it runs on io_uring: other io_uring workers
    /// wake it with `IORING_OP_MSG_RING` instead of a system call. Owned here, so the number a
    /// sender read names this ring's file for as long as the hub lives, however the worker's
    /// own ring is torn down (a number closed and reused by an unrelated file could otherwise
    /// receive the message).
    ring: OnceLock<OwnedFd>,
    /// Whether the worker still reads its ring (cleared when it stops: wake-ups then go to its
    /// eventfd, which nobody reads either, but costs nothing).
    ring_live: AtomicBool,
}

/// The inboxes of all workers, shared by the workers and the publishers.
#[derive(Debug)]
pub(crate) struct Hub {
    inboxes: Vec<Inbox>,
}

impl Hub {
    /// A hub for `workers` workers.
    pub(crate) fn new(workers: usize) -> std::io::Result<Hub> {
        let inboxes = (0..workers)
            .map(|_| {
                Ok(Inbox {
                    queue: Mutex::new(Vec::new()),
                    efd: sys::eventfd()?,
                    ring: OnceLock::new(),
                    ring_live: AtomicBool::new(false),
                })
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Hub { inboxes })
    }

    /// The number of workers.
    pub(crate) fn workers(&self) -> usize {
        self.inboxes.len()
    }

    /// Worker `w`'s wake-up eventfd.
    pub(crate) fn efd(&self, w: usize) -> BorrowedFd<'_> {
        self.inboxes[w].efd.as_fd()
    }

    /// Worker `w` runs on io_uring with `ring`: from now on the others wake it through the ring.
    /// The hub keeps a duplicate of the fd (see [`Inbox::ring`]).
    ///
    /// # Errors
    /// Duplicating the fd failed (out of descriptors); wake-ups then keep using the eventfd.
    pub(crate) fn set_ring(&self, w: usize, ring: BorrowedFd<'_>) -> std::io::Result<()> {
        let inbox = &self.inboxes[w];
        if inbox.ring.get().is_none() {
            let _ = inbox.ring.set(ring.try_clone_to_owned()?);
        }
        inbox.ring_live.store(true, Ordering::Release);
        Ok(())
    }

    /// Worker `w` stopped reading its ring.
    pub(crate) fn retire_ring(&self, w: usize) {
        self.inboxes[w].ring_live.store(false, Ordering::Release);
    }

    /// Worker `w`'s ring, while it runs on io_uring and reads it. The fd stays valid for as
    /// long as the hub (even if the worker stops meanwhile: the message then waits unread).
    pub(crate) fn ring(&self, w: usize) -> Option<BorrowedFd<'_>> {
        let inbox = &self.inboxes[w];
        if !inbox.ring_live.load(Ordering::Acquire) {
            return None;
        }
        inbox.ring.get().map(AsFd::as_fd)
    }

    /// Appends `batch` to worker `w`'s inbox. Returns whether the worker needs a wake-up (its
    /// inbox was empty: otherwise a wake-up is already pending).
    pub(crate) fn deliver(&self, w: usize, batch: &mut Vec<Item>) -> bool {
        let mut queue = self.inboxes[w]
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let was_empty = queue.is_empty();
        queue.append(batch);
        was_empty
    }

    /// Takes everything in worker `w`'s inbox (swapping with `into`, which must be empty).
    pub(crate) fn take(&self, w: usize, into: &mut Vec<Item>) {
        let mut queue = self.inboxes[w]
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut *queue, into);
    }
}

/// How a relay ([`Relay`](super::Relay)) hands the workers what arrived from other servers. Cheap to clone, `Send` and
/// `Sync`.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub(crate) hub: Arc<Hub>,
}

impl Inbound {
    /// The number of workers (valid indexes for [`Inbound::deliver`]).
    pub fn workers(&self) -> usize {
        self.hub.workers()
    }

    /// Delivers `batch` to worker `worker`'s subscribers of each topic: one lock, and a wake-up
    /// only if the worker's inbox was empty. These publications came from elsewhere, so they are
    /// never relayed again. Takes the contents of `batch`. An index out of range delivers
    /// nothing.
    pub fn deliver(&self, worker: usize, batch: &mut Vec<(Topic, Frame)>) {
        if worker >= self.hub.workers() {
            batch.clear();
            return;
        }
        let mut publications: Vec<Item> = batch
            .drain(..)
            .map(|(topic, frame)| Item::Publish(Publication::topic(topic, frame), None))
            .collect();
        if !publications.is_empty() && self.hub.deliver(worker, &mut publications) {
            sys::eventfd_signal(self.hub.efd(worker));
        }
    }

    /// Delivers what a relay tells each topic's home worker (a relay's log gives a
    /// [`LogEvent`](super::LogEvent)): [`Handler::home`](super::Handler::home) gets it boxed,
    /// from [`ConnId::NONE`]. One lock and at most one wake-up per worker. Takes the contents of
    /// `batch`; each topic's events keep their order.
    pub fn to_home<E: std::any::Any + Send>(&self, batch: &mut Vec<(Topic, E)>) {
        let workers = self.hub.workers();
        let mut per_worker: Vec<Vec<Item>> = (0..workers).map(|_| Vec::new()).collect();
        for (topic, event) in batch.drain(..) {
            let w = home_of(&topic, workers);
            if let Some(items) = per_worker.get_mut(w) {
                items.push(Item::Home(HomeRequest {
                    topic,
                    from: ConnId::NONE,
                    data: Box::new(event),
                }));
            }
        }
        for (w, items) in per_worker.iter_mut().enumerate() {
            if !items.is_empty() && self.hub.deliver(w, items) {
                sys::eventfd_signal(self.hub.efd(w));
            }
        }
    }
}

/// A worker's topics: its own subscribers, and the publications it owes other workers.
#[derive(Debug, Default)]
pub(crate) struct LocalTopics {
    /// Subscribers on this worker, by topic: `(slot, generation)`.
    subscribers: HashMap<Topic, HashSet<(u32, u32)>>,
    /// The topics of each subscribed connection (by slot; the generation is checked), so a
    /// closing connection leaves them all.
    by_slot: HashMap<u32, (u32, Vec<Topic>)>,
    /// Publications and home traffic for each other worker, sent at the end of the loop
    /// iteration.
    outgoing: Vec<Vec<Item>>,
    /// Topics that got their first subscriber (`true`) or lost their last (`false`) on this
    /// worker since the bridge was last told (kept only when a broker is attached).
    pub(crate) changes: Vec<(Topic, bool)>,
    /// Whether to keep `changes`.
    track: bool,
}

impl LocalTopics {
    /// Topics for a worker among `workers`; `track` keeps the changes of interest (for a
    /// broker).
    pub(crate) fn new(workers: usize, track: bool) -> Self {
        LocalTopics {
            outgoing: (0..workers).map(|_| Vec::new()).collect(),
            track,
            ..LocalTopics::default()
        }
    }

    /// Subscribes `(slot, generation)`; returns false if it already was.
    pub(crate) fn subscribe(&mut self, slot: u32, generation: u32, topic: Topic) -> bool {
        let entry = self
            .by_slot
            .entry(slot)
            .or_insert_with(|| (generation, Vec::new()));
        if entry.0 != generation {
            // A stale entry of the slot's previous occupant: it leaves its topics first.
            let (old, topics) = std::mem::replace(entry, (generation, Vec::new()));
            for t in &topics {
                self.remove_subscriber(t, slot, old);
            }
            return self.subscribe(slot, generation, topic);
        }
        if entry.1.contains(&topic) {
            return false;
        }
        entry.1.push(topic.clone());
        let set = self.subscribers.entry(topic.clone()).or_default();
        if set.is_empty() && self.track {
            self.changes.push((topic, true));
        }
        set.insert((slot, generation));
        true
    }

    /// Unsubscribes `(slot, generation)` from `topic`; returns whether it was subscribed.
    pub(crate) fn unsubscribe(&mut self, slot: u32, generation: u32, topic: &Topic) -> bool {
        let Some((g, topics)) = self.by_slot.get_mut(&slot) else {
            return false;
        };
        if *g != generation {
            return false;
        }
        let Some(i) = topics.iter().position(|t| t == topic) else {
            return false;
        };
        topics.swap_remove(i);
        if topics.is_empty() {
            self.by_slot.remove(&slot);
        }
        self.remove_subscriber(topic, slot, generation);
        true
    }

    /// Removes a connection from all its topics (it closed).
    pub(crate) fn remove_conn(&mut self, slot: u32, generation: u32) {
        if self
            .by_slot
            .get(&slot)
            .is_some_and(|(g, _)| *g == generation)
        {
            if let Some((_, topics)) = self.by_slot.remove(&slot) {
                for topic in &topics {
                    self.remove_subscriber(topic, slot, generation);
                }
            }
        }
    }

    fn remove_subscriber(&mut self, topic: &Topic, slot: u32, generation: u32) {
        if let Some(set) = self.subscribers.get_mut(topic) {
            set.remove(&(slot, generation));
            if set.is_empty() {
                self.subscribers.remove(topic);
                if self.track {
                    self.changes.push((topic.clone(), false));
                }
            }
        }
    }

    /// The local subscribers of `topic`.
    pub(crate) fn subscribers(&self, topic: &Topic) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.subscribers.get(topic).into_iter().flatten().copied()
    }

    /// Topics with at least one local subscriber.
    pub(crate) fn topics(&self) -> usize {
        self.subscribers.len()
    }

    /// Queues `item` for worker `w`.
    pub(crate) fn send_to(&mut self, w: usize, item: Item) {
        self.outgoing[w].push(item);
    }

    /// The batch owed to worker `w`.
    pub(crate) fn outgoing(&mut self, w: usize) -> &mut Vec<Item> {
        &mut self.outgoing[w]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Topic {
        Arc::from(s)
    }

    #[test]
    fn ids_read_back_what_they_print() {
        let id = ConnId {
            worker: 3,
            slot: 70_000,
            generation: u32::MAX,
        };
        assert_eq!(id.to_string().parse(), Ok(id));
        assert_eq!(id.worker(), 3);
        for bad in [
            "",
            "1.2",
            "1.2.3.4",
            "a.2.3",
            "70000.1.1",
            "1.-2.3",
            " 1.2.3",
        ] {
            assert_eq!(bad.parse::<ConnId>(), Err(BadConnId), "{bad:?}");
        }
    }

    #[test]
    fn subscribe_unsubscribe_and_close() {
        let mut l = LocalTopics::new(1, false);
        assert!(l.subscribe(1, 7, t("a")));
        assert!(!l.subscribe(1, 7, t("a")), "twice is once");
        assert!(l.subscribe(1, 7, t("b")));
        assert!(l.subscribe(2, 1, t("a")));
        let mut a: Vec<_> = l.subscribers(&t("a")).collect();
        a.sort();
        assert_eq!(a, vec![(1, 7), (2, 1)]);
        assert!(l.unsubscribe(1, 7, &t("a")));
        assert!(!l.unsubscribe(1, 7, &t("a")));
        assert!(!l.unsubscribe(2, 9, &t("a")), "another generation");
        l.remove_conn(1, 7);
        assert_eq!(l.subscribers(&t("b")).count(), 0);
        assert_eq!(l.topics(), 1, "only a is left, with slot 2");
        // The slot's next occupant starts with no topics.
        l.remove_conn(2, 1);
        assert!(l.subscribe(2, 2, t("c")));
        assert_eq!(l.topics(), 1);
        assert!(
            l.by_slot
                .get(&2)
                .is_some_and(|(g, ts)| *g == 2 && ts.len() == 1)
        );
    }

    #[test]
    fn first_and_last_subscribers_are_reported_for_the_broker() {
        let mut l = LocalTopics::new(1, true);
        l.subscribe(1, 1, t("a"));
        l.subscribe(2, 1, t("a"));
        l.subscribe(2, 1, t("b"));
        assert_eq!(
            l.changes,
            vec![(t("a"), true), (t("b"), true)],
            "first ones only"
        );
        l.changes.clear();
        l.unsubscribe(1, 1, &t("a"));
        assert!(l.changes.is_empty(), "slot 2 is still in a");
        l.remove_conn(2, 1);
        let mut gone = std::mem::take(&mut l.changes);
        gone.sort();
        assert_eq!(gone, vec![(t("a"), false), (t("b"), false)]);
        let mut untracked = LocalTopics::new(1, false);
        untracked.subscribe(1, 1, t("a"));
        assert!(
            untracked.changes.is_empty(),
            "nothing kept without a broker"
        );
    }

    #[test]
    fn a_stale_slot_entry_is_replaced() {
        let mut l = LocalTopics::new(1, false);
        l.subscribe(3, 1, t("x"));
        // Slot 3 reused (generation 2) before the old entry was removed: the new occupant is not
        // subscribed to the old topics.
        assert!(l.subscribe(3, 2, t("y")));
        assert_eq!(l.by_slot[&3].1.len(), 1);
        assert_eq!(l.subscribers(&t("x")).count(), 0, "the old occupant left x");
        assert_eq!(l.topics(), 1);
    }

    #[test]
    fn inbox_batches_wake_only_when_empty() {
        let hub = Hub::new(2).unwrap();
        let p = |s: &str| Item::Publish(Publication::topic(t(s), Frame::text("x")), None);
        let mut batch = vec![p("a"), p("b")];
        assert!(hub.deliver(1, &mut batch), "empty inbox: wake");
        assert!(batch.is_empty(), "the batch moved");
        let mut more = vec![p("c")];
        assert!(!hub.deliver(1, &mut more), "a wake-up is pending already");
        let mut got = Vec::new();
        hub.take(1, &mut got);
        assert_eq!(got.len(), 3);
        let mut again = Vec::new();
        hub.take(1, &mut again);
        assert!(again.is_empty());
        assert!(hub.ring(0).is_none());
        // Any fd stands in for a ring here: the hub keeps its own duplicate.
        let stand_in = sys::eventfd().unwrap();
        hub.set_ring(0, stand_in.as_fd()).unwrap();
        let dup = hub.ring(0).expect("set");
        assert_ne!(
            std::os::fd::AsRawFd::as_raw_fd(&dup),
            std::os::fd::AsRawFd::as_raw_fd(&stand_in),
            "a duplicate, not the worker's own number"
        );
        drop(stand_in);
        assert!(hub.ring(0).is_some(), "outlives the worker's fd");
        hub.retire_ring(0);
        assert!(hub.ring(0).is_none(), "retired: wake-ups use the eventfd");
    }
}
