//! Which workers of this node want which topics, and what to ask the broker for.
//!
//! Workers report only edges: their first subscriber of a topic came, or their last left. From
//! them the bridge knows, per topic, the workers to deliver to, and the node's subscriptions:
//!
//! - a topic a worker wants and the broker does not send yet: subscribe (with every other such
//!   topic, in one command, the next time the bridge looks);
//! - a topic no worker wants any more: unsubscribe once it has been unwanted for the linger
//!   time (a member who reloads the page comes back before), again batched.
//!
//! Pure and clock-free: the bridge passes the time in.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::server::Topic;

/// The interest of one node's workers.
#[derive(Debug)]
pub(crate) struct Interest {
    /// Workers with a subscriber, by topic (a handful of small numbers each).
    workers: HashMap<Topic, Vec<u16>>,
    /// Topics the broker sends us in this session.
    subscribed: HashSet<Topic>,
    /// Wanted and not subscribed yet.
    to_subscribe: HashSet<Topic>,
    /// Subscribed, unwanted since: unsubscribed at `since + linger`.
    leaving: HashMap<Topic, Instant>,
    linger: Duration,
}

impl Interest {
    pub(crate) fn new(linger: Duration) -> Self {
        Interest {
            workers: HashMap::new(),
            subscribed: HashSet::new(),
            to_subscribe: HashSet::new(),
            leaving: HashMap::new(),
            linger,
        }
    }

    /// Worker `worker` gained (`on`) or lost its interest in `topic` at `now`.
    pub(crate) fn apply(&mut self, worker: u16, topic: Topic, on: bool, now: Instant) {
        if on {
            let list = self.workers.entry(topic.clone()).or_default();
            if !list.contains(&worker) {
                list.push(worker);
            }
            self.leaving.remove(&topic);
            if !self.subscribed.contains(&topic) {
                self.to_subscribe.insert(topic);
            }
        } else if let Some(list) = self.workers.get_mut(&topic) {
            list.retain(|&w| w != worker);
            if list.is_empty() {
                self.workers.remove(&topic);
                self.to_subscribe.remove(&topic);
                if self.subscribed.contains(&topic) {
                    self.leaving.insert(topic, now);
                }
            }
        }
    }

    /// The topic as stored and the workers that want it (none: deliver nowhere).
    pub(crate) fn workers(&self, topic: &str) -> Option<(&Topic, &[u16])> {
        self.workers
            .get_key_value(topic)
            .map(|(t, w)| (t, w.as_slice()))
    }

    /// The topic as stored if the broker sends it to us now (wanted, or lingering before its
    /// unsubscription).
    pub(crate) fn subscribed_topic(&self, topic: &str) -> Option<&Topic> {
        self.subscribed.get(topic)
    }

    /// Every topic the broker sends us now (lingering ones included).
    pub(crate) fn subscribed_topics(&self) -> Vec<Topic> {
        self.subscribed.iter().cloned().collect()
    }

    /// What to ask the broker at `now`: `(subscribe, unsubscribe)`, each to be sent in one
    /// round trip. Unsubscriptions due within `window` after `now` go now too (leaves spread
    /// over a moment cost one round trip). Counted as done: a failed command ends the session,
    /// and a new session starts from [`Interest::resubscribe`].
    pub(crate) fn due(&mut self, now: Instant, window: Duration) -> (Vec<Topic>, Vec<Topic>) {
        let subscribe: Vec<Topic> = self.to_subscribe.drain().collect();
        self.subscribed.extend(subscribe.iter().cloned());
        let linger = self.linger;
        let horizon = now.checked_add(window).unwrap_or(now);
        let mut unsubscribe = Vec::new();
        self.leaving.retain(|topic, since| {
            let due = since.checked_add(linger).is_some_and(|at| at <= horizon);
            if due {
                unsubscribe.push(topic.clone());
            }
            !due
        });
        for topic in &unsubscribe {
            self.subscribed.remove(topic);
        }
        (subscribe, unsubscribe)
    }

    /// When the next lingering topic is due to be unsubscribed.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.leaving
            .values()
            .min()
            .map(|since| *since + self.linger)
    }

    /// A new session: every wanted topic, all to be subscribed (the broker forgot the old
    /// session's subscriptions; lingering topics are simply not subscribed again).
    pub(crate) fn resubscribe(&mut self) -> Vec<Topic> {
        self.leaving.clear();
        self.to_subscribe.clear();
        self.subscribed = self.workers.keys().cloned().collect();
        self.subscribed.iter().cloned().collect()
    }

    /// Channels subscribed now.
    pub(crate) fn subscribed(&self) -> usize {
        self.subscribed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn t(s: &str) -> Topic {
        Arc::from(s)
    }

    fn sorted(mut v: Vec<Topic>) -> Vec<Topic> {
        v.sort();
        v
    }

    #[test]
    fn joins_are_batched_and_a_second_worker_costs_nothing() {
        let now = Instant::now();
        let mut i = Interest::new(Duration::from_secs(1));
        i.apply(0, t("a"), true, now);
        i.apply(1, t("a"), true, now);
        i.apply(0, t("b"), true, now);
        let (subscribe, unsubscribe) = i.due(now, Duration::ZERO);
        assert_eq!(
            sorted(subscribe),
            vec![t("a"), t("b")],
            "one command for both"
        );
        assert!(unsubscribe.is_empty());
        assert_eq!(i.workers("a").map(|(_, w)| w.to_vec()), Some(vec![0, 1]));
        assert_eq!(i.due(now, Duration::ZERO), (vec![], vec![]), "nothing new");
        i.apply(1, t("b"), true, now);
        assert_eq!(
            i.due(now, Duration::ZERO),
            (vec![], vec![]),
            "already subscribed"
        );
        assert_eq!(i.subscribed(), 2);
    }

    #[test]
    fn the_last_leave_unsubscribes_after_the_linger() {
        let t0 = Instant::now();
        let linger = Duration::from_secs(1);
        let mut i = Interest::new(linger);
        i.apply(0, t("a"), true, t0);
        i.apply(1, t("a"), true, t0);
        i.due(t0, Duration::ZERO);
        i.apply(0, t("a"), false, t0);
        assert!(i.next_deadline().is_none(), "worker 1 still wants it");
        i.apply(1, t("a"), false, t0);
        assert!(i.workers("a").is_none(), "delivered nowhere at once");
        assert_eq!(i.next_deadline(), Some(t0 + linger));
        assert_eq!(
            i.due(t0 + linger / 2, Duration::ZERO),
            (vec![], vec![]),
            "lingering"
        );
        assert_eq!(i.due(t0 + linger, Duration::ZERO), (vec![], vec![t("a")]));
        assert_eq!(i.subscribed(), 0);
        assert!(i.next_deadline().is_none());
    }

    #[test]
    fn leaves_close_together_are_unsubscribed_together() {
        let t0 = Instant::now();
        let linger = Duration::from_secs(1);
        let mut i = Interest::new(linger);
        i.apply(0, t("a"), true, t0);
        i.apply(0, t("b"), true, t0);
        i.due(t0, Duration::ZERO);
        i.apply(0, t("a"), false, t0);
        i.apply(0, t("b"), false, t0 + Duration::from_millis(200));
        let window = Duration::from_millis(250);
        let (_, unsubscribe) = i.due(t0 + linger, window);
        assert_eq!(sorted(unsubscribe), vec![t("a"), t("b")], "one round trip");
    }

    #[test]
    fn coming_back_within_the_linger_costs_no_command() {
        let t0 = Instant::now();
        let mut i = Interest::new(Duration::from_secs(1));
        i.apply(0, t("a"), true, t0);
        i.due(t0, Duration::ZERO);
        i.apply(0, t("a"), false, t0);
        i.apply(1, t("a"), true, t0 + Duration::from_millis(300));
        assert_eq!(
            i.due(t0 + Duration::from_secs(5), Duration::ZERO),
            (vec![], vec![])
        );
        assert_eq!(i.workers("a").map(|(_, w)| w.to_vec()), Some(vec![1]));
    }

    #[test]
    fn joined_and_left_before_the_broker_was_asked_costs_nothing() {
        let t0 = Instant::now();
        let mut i = Interest::new(Duration::from_secs(1));
        i.apply(0, t("a"), true, t0);
        i.apply(0, t("a"), false, t0);
        assert_eq!(
            i.due(t0 + Duration::from_secs(5), Duration::ZERO),
            (vec![], vec![])
        );
    }

    #[test]
    fn a_new_session_subscribes_every_wanted_topic_once() {
        let t0 = Instant::now();
        let mut i = Interest::new(Duration::from_secs(1));
        i.apply(0, t("a"), true, t0);
        i.apply(0, t("b"), true, t0);
        i.due(t0, Duration::ZERO);
        i.apply(0, t("b"), false, t0); // lingering
        i.apply(1, t("c"), true, t0); // not yet asked for
        assert_eq!(sorted(i.resubscribe()), vec![t("a"), t("c")]);
        assert_eq!(
            i.due(t0 + Duration::from_secs(5), Duration::ZERO),
            (vec![], vec![])
        );
        assert_eq!(i.subscribed(), 2);
    }
}
