//! A topic's home worker: where what must happen in one order for a topic happens.
//!
//! Publications between two workers keep their order (each worker's inbox is FIFO), but two
//! workers publishing to the same topic race: a member on a third worker may get their messages
//! in either order, and members on different workers in different orders. An application that
//! needs one order per topic (a chat room's offsets and history) sends what must be ordered to
//! the topic's **home worker** ([`home_of`]: a hash of the topic) with
//! [`Conn::to_home`](super::Conn::to_home). There the server calls
//! [`Handler::home`](super::Handler::home) with a [`Home`], one request at a time: whatever the
//! handler keeps for the topic on its home worker is its own, without a lock, and what it
//! publishes with [`Home::publish`] is one order that every worker delivers as published.
//!
//! ```text
//!  worker A: conn.to_home("room", req) ──inbox──▶ worker H = home_of("room")
//!                                                  Handler::home: stamp, keep, publish
//!  worker A ◀──inbox (FIFO)── publish / join ──────┤  its own members: at once
//!  worker B ◀──inbox (FIFO)── publish / join ──────┘
//! ```
//!
//! A connection joins a topic through its home with [`Home::join`]: the frames given (an answer,
//! missed messages) are queued to it, then it is subscribed, in the same stream as the topic's
//! publications. So it gets exactly the publications made after the join, none twice and none
//! missed between the preamble and the first live one. Requests from one connection reach the
//! home in the order made (one worker's inbox batches are FIFO); a connection that closed before
//! its join arrives is not subscribed.
//!
//! A home worker orders a topic on this server only. Across servers, one order comes from a
//! relay that keeps a log per topic ([`Home::has_log`]; see [`crate::server::relay`]): the
//! home appends to it ([`Home::log_append`]) and hears back, on every server, what was appended
//! ([`LogEvent`](super::relay::LogEvent) through [`Handler::home`](super::Handler::home)).

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use super::ops::{LogRange, LogRequest, Op};
use super::pubsub::{ConnId, Publication, Target, Topic};
use crate::proto::frame::Frame;
use bytes::Bytes;

/// The home worker of `topic` among `workers`: the same for a topic everywhere on this server,
/// for as long as it runs (a fixed hash: SipHash with zero keys).
pub fn home_of(topic: &str, workers: usize) -> usize {
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(topic);
    (hash % workers.max(1) as u64) as usize
}

/// A request for a topic's home worker, from a handler's [`Conn::to_home`](super::Conn::to_home).
pub(crate) struct HomeRequest {
    pub(crate) topic: Topic,
    pub(crate) from: ConnId,
    pub(crate) data: Box<dyn Any + Send>,
}

impl fmt::Debug for HomeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HomeRequest")
            .field("topic", &self.topic)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// A connection joins a topic through its home: `preamble` is queued to it (or `fallback`,
/// if the preamble does not fit), then it is subscribed (on its own worker, in order with the
/// topic's publications from the home).
#[derive(Debug)]
pub(crate) struct Join {
    pub(crate) conn: ConnId,
    pub(crate) topic: Topic,
    pub(crate) preamble: Vec<Frame>,
    pub(crate) fallback: Vec<Frame>,
}

/// What [`Handler::home`](super::Handler::home) may do, on the topic's home worker. Applied in
/// order once the callback returns.
pub struct Home<'a> {
    pub(crate) topic: &'a Topic,
    pub(crate) from: ConnId,
    pub(crate) worker: usize,
    pub(crate) workers: usize,
    pub(crate) has_log: bool,
    /// Whether the relay shares presence between the servers.
    pub(crate) has_presence: bool,
    pub(crate) ops: &'a RefCell<Vec<Op>>,
}

impl Home<'_> {
    /// The topic this request is about.
    pub fn topic(&self) -> &Topic {
        self.topic
    }

    /// The connection that made the request (it may have closed since).
    pub fn from(&self) -> ConnId {
        self.from
    }

    /// This worker's index.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// The number of workers of this server (each is home to a share of the topics).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Publishes `frame` to every subscriber of the topic on this server, in the order of the
    /// home's publications on every worker.
    pub fn publish(&mut self, frame: Frame) {
        self.ops.borrow_mut().push(Op::Publish {
            p: Publication::topic(self.topic.clone(), frame),
            cluster: false,
        });
    }

    /// Publishes `frame` to every subscriber of the topic on this server and on the others
    /// (through the relay, outside the topic's log: not ordered with its entries).
    pub fn publish_everywhere(&mut self, frame: Frame) {
        self.ops.borrow_mut().push(Op::Publish {
            p: Publication::topic(self.topic.clone(), frame),
            cluster: true,
        });
    }

    /// Publishes `frames`, in order, to every subscriber of the topic on this server, as one
    /// run: a subscriber whose queue is within its limit when the run arrives takes it whole
    /// (above the limit by at most the run's size, as a join's preamble), one whose queue is
    /// over its limit takes none of it (counted as dropped; the gap shows in what it gets
    /// next). For a burst that arrived at once (entries from a broker, a gap filled): a
    /// member that reads keeps up however long the burst, and one that does not is not
    /// given half of it.
    pub fn publish_run(&mut self, frames: Vec<Frame>) {
        if !frames.is_empty() {
            self.ops
                .borrow_mut()
                .push(Op::PublishRun(self.topic.clone(), frames));
        }
    }

    /// Sends `frame` to the connection `to` (on any worker of this server), in order with what
    /// the home publishes.
    pub fn send_to(&mut self, to: ConnId, frame: Frame) {
        self.ops.borrow_mut().push(Op::Publish {
            p: Publication {
                target: Target::Conn(to),
                frame,
                except: None,
            },
            cluster: false,
        });
    }

    /// Queues `preamble` to `conn`, then subscribes it to the topic: it gets every publication
    /// the home makes after this call, and none made before. Nothing happens if it has closed
    /// by then. The preamble goes whole or not at all: whole if the connection's queue is
    /// within its limit when it arrives (it may then pass the limit by the preamble's own size:
    /// a recovery of missed messages is not cut by the high-water mark); otherwise `fallback`
    /// is queued instead, whatever the queue holds (so keep it to an answer, e.g. one saying
    /// the recovery could not be made).
    pub fn join(&mut self, conn: ConnId, preamble: Vec<Frame>, fallback: Vec<Frame>) {
        self.ops.borrow_mut().push(Op::Join(Join {
            conn,
            topic: self.topic.clone(),
            preamble,
            fallback,
        }));
    }

    /// Whether the server's relay keeps an ordered log per topic (a cluster whose broker gives
    /// one order; see [`crate::server::relay`]). Without one, log requests are dropped.
    pub fn has_log(&self) -> bool {
        self.has_log
    }

    /// Appends `payload` to the topic's log in the relay; `from` and `key` come back in the
    /// answer ([`LogEvent::Appended`](super::relay::LogEvent::Appended)), and the entry comes
    /// back to the topic's home on every server as a
    /// [`LogEvent::Live`](super::relay::LogEvent::Live). `key` (a client's id for the
    /// message) makes a retry idempotent.
    pub fn log_append(&mut self, from: ConnId, key: Option<Box<str>>, payload: Bytes) {
        if self.has_log {
            self.ops.borrow_mut().push(Op::Log(LogRequest::Append {
                topic: self.topic.clone(),
                from,
                key,
                payload,
            }));
        }
    }

    /// Reads `range` of the topic's log (at most `limit` entries); answered with a
    /// [`LogEvent::Range`](super::relay::LogEvent::Range) carrying `tag`.
    pub fn log_read(&mut self, range: LogRange, limit: usize, tag: u64) {
        if self.has_log {
            self.ops.borrow_mut().push(Op::Log(LogRequest::Read {
                topic: self.topic.clone(),
                range,
                limit,
                tag,
            }));
        }
    }

    /// Whether the relay shares presence between the servers.
    pub fn has_presence(&self) -> bool {
        self.has_presence
    }

    /// Sets (`Some`) or removes (`None`) this server's presence entry for `member` in the
    /// topic, shared with the other servers; answered with a
    /// [`LogEvent::PresenceChanged`](super::relay::LogEvent::PresenceChanged).
    pub fn presence_set(&mut self, member: Box<str>, value: Option<Bytes>) {
        if self.has_presence {
            self.ops.borrow_mut().push(Op::Log(LogRequest::Presence {
                topic: self.topic.clone(),
                member,
                value,
            }));
        }
    }

    /// Every server's presence entries for the topic; answered with a
    /// [`LogEvent::PresenceListed`](super::relay::LogEvent::PresenceListed) carrying `tag`.
    pub fn presence_list(&mut self, tag: u64) {
        if self.has_presence {
            self.ops
                .borrow_mut()
                .push(Op::Log(LogRequest::PresenceList {
                    topic: self.topic.clone(),
                    tag,
                }));
        }
    }

    /// Unsubscribes `conn` from the topic, in order with the home's publications and joins (a
    /// leave made elsewhere could overtake a join still on its way).
    pub fn leave(&mut self, conn: ConnId) {
        self.ops
            .borrow_mut()
            .push(Op::Unsubscribe(conn, self.topic.clone()));
    }
}

/// A [`Home`] for unit tests of handlers: what the handler asked for, in order, in words.
#[cfg(test)]
pub(crate) mod recorder {
    use super::*;

    /// One request of a handler on a home, as recorded.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum Did {
        Publish(String),
        Run(Vec<String>),
        SendTo(ConnId, String),
        Join(ConnId, Vec<String>),
        Leave(ConnId),
        Append(ConnId, Option<Box<str>>, Bytes),
        Read(LogRange, usize, u64),
        Presence(Box<str>, Option<Bytes>),
        PresenceList(u64),
    }

    /// Records what a handler does on a topic's home.
    pub(crate) struct Recorder {
        topic: Topic,
        ops: RefCell<Vec<Op>>,
        has_log: bool,
    }

    fn text(frame: &Frame) -> String {
        frame.as_text().unwrap_or("<binary>").to_owned()
    }

    impl Recorder {
        pub(crate) fn new(topic: &str, has_log: bool) -> Recorder {
            Recorder {
                topic: Topic::from(topic),
                ops: RefCell::new(Vec::new()),
                has_log,
            }
        }

        /// Runs `f` with a home of 2 workers, as if `from` asked.
        pub(crate) fn with<R>(&self, from: ConnId, f: impl FnOnce(&mut Home<'_>) -> R) -> R {
            let mut home = Home {
                topic: &self.topic,
                from,
                worker: 0,
                workers: 2,
                has_log: self.has_log,
                has_presence: self.has_log,
                ops: &self.ops,
            };
            f(&mut home)
        }

        /// What was asked for since the last call.
        pub(crate) fn take(&self) -> Vec<Did> {
            self.ops
                .borrow_mut()
                .drain(..)
                .map(|op| match op {
                    Op::Publish { p, .. } => match p.target {
                        Target::Conn(to) => Did::SendTo(to, text(&p.frame)),
                        _ => Did::Publish(text(&p.frame)),
                    },
                    Op::PublishRun(_, frames) => Did::Run(frames.iter().map(text).collect()),
                    Op::Join(j) => Did::Join(j.conn, j.preamble.iter().map(text).collect()),
                    Op::Unsubscribe(conn, _) => Did::Leave(conn),
                    Op::Log(LogRequest::Append {
                        from, key, payload, ..
                    }) => Did::Append(from, key, payload),
                    Op::Log(LogRequest::Read {
                        range, limit, tag, ..
                    }) => Did::Read(range, limit, tag),
                    Op::Log(LogRequest::Presence { member, value, .. }) => {
                        Did::Presence(member, value)
                    }
                    Op::Log(LogRequest::PresenceList { tag, .. }) => Did::PresenceList(tag),
                    other => panic!("not expected of a home: {other:?}"),
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_has_one_home_spread_over_the_workers() {
        for workers in [1, 2, 3, 8] {
            let mut used = vec![0; workers];
            for i in 0..1000 {
                let t = format!("room-{i}");
                let w = home_of(&t, workers);
                assert_eq!(w, home_of(&t, workers), "stable");
                used[w] += 1;
            }
            // 1,000 rooms: every worker is home to a fair share (a binomial tail far below 1e-9
            // for under half the mean).
            let mean = 1000 / workers;
            assert!(used.iter().all(|&n| n > mean / 2), "{workers}: {used:?}");
        }
        assert_eq!(home_of("x", 0), 0, "no workers: no panic");
    }
}
