//! What a handler asks for during a callback that the worker carries out once it returns:
//! topics (subscribe, unsubscribe, publish), messages to other connections, requests for a
//! topic's home worker, timers. Queued in
//! order on the worker's list ([`Op`]), never applied in the middle of a callback (the handler
//! may be iterating over state those operations change).

use std::time::Duration;

use super::home::{HomeRequest, Join};
use super::pubsub::{ConnId, Publication, Topic};
use super::relay::LogRequest;

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
    /// A request for a topic's home worker (`Handler::home` runs there).
    ToHome(HomeRequest),
    /// From a home: queue the preamble to a connection, then subscribe it (on its worker).
    Join(Join),
    /// From a home: a request for the topic's log in the relay.
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
