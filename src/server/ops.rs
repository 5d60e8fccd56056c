//! What a handler asks for during a callback that the worker carries out once it returns:
//! topics (subscribe, unsubscribe, publish), messages to other connections, requests for a
//! topic's home worker, timers. Queued in
//! order on the worker's list ([`Op`]), never applied in the middle of a callback (the handler
//! may be iterating over state those operations change).

use std::time::Duration;

use super::home::{HomeRequest, Join};
use bytes::Bytes;

use super::pubsub::{ConnId, Publication, Topic};
use crate::proto::frame::Frame;

/// One request of a handler.
#[derive(Debug)]
pub(crate) enum Op {
    /// Subscribe the connection to a topic.
    Subscribe(ConnId, Topic),
    /// Unsubscribe the connection from a topic.
    Unsubscribe(ConnId, Topic),
    /// Publish: to a topic, on this server only or on every server (`cluster`, when a relay is
    /// attached); or to one connection of this server.
    Publish {
        /// The publication.
        p: Publication,
        /// Whether it goes to the other servers too.
        cluster: bool,
    },
    /// From a home: a run of publications to the topic's subscribers on this server, each
    /// taking it whole or not at all.
    PublishRun(Topic, Vec<Frame>),
    /// A request for a topic's home worker (`Handler::home` runs there).
    ToHome(HomeRequest),
    /// From a home: queue the preamble to a connection, then subscribe it (on its worker).
    Join(Join),
    /// From a home: a request for the topic's log (or its shared presence) in the relay.
    Log(LogRequest),
    /// Call the handler's `timer` for the connection after `after`, with `token`.
    Timer {
        /// The connection.
        id: ConnId,
        /// How long from now.
        after: Duration,
        /// Given back to the handler.
        token: u64,
    },
}

/// A request for a topic's log, from its home worker.
#[derive(Debug)]
pub enum LogRequest {
    /// Append `payload` to the topic's log. `key`, if given, makes the append idempotent for
    /// a while (the relay's choice): a second append with the same key is not appended again
    /// and is answered with the first one's offset. Answered with [`LogEvent::Appended`](super::relay::LogEvent::Appended).
    Append {
        /// The topic.
        topic: Topic,
        /// Who asked (given back in the answer).
        from: ConnId,
        /// An idempotency key from the client, if any.
        key: Option<Box<str>>,
        /// What to append (opaque to the relay).
        payload: Bytes,
    },
    /// Read entries of the topic's log. Answered with [`LogEvent::Range`](super::relay::LogEvent::Range).
    Read {
        /// The topic.
        topic: Topic,
        /// Which entries.
        range: LogRange,
        /// At most this many entries.
        limit: usize,
        /// Given back in the answer.
        tag: u64,
    },
    /// Sets (or, with `value` `None`, removes) this server's presence entry for `member` in
    /// the topic, shared with the other servers, and kept while this server lives. Answered
    /// with [`LogEvent::PresenceChanged`](super::relay::LogEvent::PresenceChanged).
    Presence {
        /// The topic.
        topic: Topic,
        /// Who (a user, or a connection).
        member: Box<str>,
        /// What the other servers see of it here (opaque to the relay), or `None`: gone.
        value: Option<Bytes>,
    },
    /// Every server's presence entries for the topic. Answered with
    /// [`LogEvent::PresenceListed`](super::relay::LogEvent::PresenceListed).
    PresenceList {
        /// The topic.
        topic: Topic,
        /// Given back in the answer.
        tag: u64,
    },
}

impl LogRequest {
    /// The topic the request is about.
    pub fn topic(&self) -> &Topic {
        match self {
            LogRequest::Append { topic, .. }
            | LogRequest::Read { topic, .. }
            | LogRequest::Presence { topic, .. }
            | LogRequest::PresenceList { topic, .. } => topic,
        }
    }
}

/// Which entries of a log a read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRange {
    /// The entries after this offset, oldest first.
    After(u64),
    /// The latest entries (the log's tail), oldest first.
    Tail,
}
