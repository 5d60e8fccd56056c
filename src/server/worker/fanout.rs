//! Fan-out: what handlers asked for during their callbacks (subscribe, unsubscribe, publish, a
//! message to one connection, a request for a topic's home worker, a timer), delivery of a publication to this worker's connections,
//! the batches owed to the other workers and to the relay, and what arrives in this worker's
//! inbox.

use std::io;
use std::sync::Arc;

use super::Worker;
use crate::proto::CloseCode;
use crate::proto::frame::Frame;
use crate::runtime::Backend;
use crate::server::conn::{Ctx, Delivery, Flags};
use crate::server::counters::Counters;
use crate::server::handler::Handler;
use crate::server::home::{Home, HomeRequest, Join, home_of};
use crate::server::ops::Op;
use crate::server::pubsub::{ConnId, Item, Publication, Sampled, Target, Topic};

impl<H: Handler, B: Backend> Worker<H, B> {
    /// Carries out what handlers asked for, in order, until nothing is left (delivering a
    /// publication can run callbacks that ask for more).
    pub(super) fn run_ops(&mut self) -> io::Result<()> {
        loop {
            let ops = std::mem::take(&mut *self.ops.borrow_mut());
            if ops.is_empty() {
                return Ok(());
            }
            for op in ops {
                match op {
                    Op::Subscribe(id, topic) => {
                        // Only an open connection joins (one that closed meanwhile would never
                        // leave again).
                        let open = self
                            .slots
                            .get_mut(id.slot, id.generation)
                            .is_some_and(|s| s.out.sendable);
                        if open {
                            self.topics.subscribe(id.slot, id.generation, topic);
                        }
                    }
                    Op::Unsubscribe(id, topic) if id.worker() == self.index => {
                        self.topics.unsubscribe(id.slot, id.generation, &topic);
                    }
                    Op::Unsubscribe(id, topic) => {
                        // From a topic's home, for a connection of another worker.
                        if id.worker() < self.hub.workers() {
                            self.topics.send_to(id.worker(), Item::Leave(id, topic));
                        }
                    }
                    Op::Publish { p, cluster } => self.publish(p, cluster)?,
                    Op::PublishRun(topic, frames) => {
                        Counters::inc(&self.counters.published, frames.len() as u64);
                        let run: Arc<[Frame]> = frames.into();
                        let sampled = self.sampler.sample(self.clock_ns);
                        for w in (0..self.hub.workers()).filter(|&w| w != self.index) {
                            self.topics
                                .send_to(w, Item::Run(topic.clone(), run.clone(), sampled));
                        }
                        self.deliver_run(&topic, &run, sampled)?;
                    }
                    Op::ToHome(req) => {
                        let home = home_of(&req.topic, self.hub.workers());
                        if home == self.index {
                            self.run_home(req);
                        } else {
                            self.topics.send_to(home, Item::Home(req));
                        }
                    }
                    Op::Join(join) => {
                        let w = join.conn.worker();
                        if w == self.index {
                            self.join_local(join)?;
                        } else if w < self.hub.workers() {
                            self.topics.send_to(w, Item::Join(join));
                        }
                    }
                    Op::Log(req) => self.to_log.push(req),
                    Op::Timer { id, after, token } => {
                        let due = self.start_time().after(after);
                        if !self.handler_timers.set(due, id, token) {
                            Counters::inc(&self.counters.handler_timers_refused, 1);
                        }
                    }
                }
            }
            Counters::set(&self.counters.topics, self.topics.topics() as i64);
        }
    }

    /// A publication from a handler on this worker: to the relay (a topic's, when it crosses
    /// servers), to the other workers that may have its connections, and to this worker's.
    fn publish(&mut self, p: Publication, cluster: bool) -> io::Result<()> {
        match &p.target {
            Target::Topic(topic) => {
                Counters::inc(&self.counters.published, 1);
                if cluster && self.relay.is_some() {
                    self.to_relay.push((topic.clone(), p.frame.clone()));
                }
                let sampled = self.sampler.sample(self.clock_ns);
                for w in (0..self.hub.workers()).filter(|&w| w != self.index) {
                    self.topics.send_to(w, Item::Publish(p.clone(), sampled));
                }
                self.deliver_local(&p, sampled)
            }
            Target::Conn(id) if usize::from(id.worker) == self.index => {
                self.deliver_local(&p, None)
            }
            Target::Conn(id) => {
                let w = usize::from(id.worker);
                if w < self.hub.workers() {
                    self.topics.send_to(w, Item::Publish(p, None));
                }
                Ok(())
            }
        }
    }

    /// A request for this worker as its topic's home: the handler's `home` callback (what it
    /// asks for is applied in order by `run_ops`).
    fn run_home(&mut self, req: HomeRequest) {
        Counters::inc(&self.counters.home_requests, 1);
        let mut home = Home {
            topic: &req.topic,
            from: req.from,
            worker: self.index,
            workers: self.hub.workers(),
            has_log: self.has_log,
            has_presence: self.has_presence,
            ops: &self.ops,
        };
        self.handler.home(&mut home, req.data);
    }

    /// A connection of this worker joins a topic through its home: the preamble first, then
    /// the subscription, so the topic's next publication from the home follows the preamble.
    fn join_local(&mut self, join: Join) -> io::Result<()> {
        let Join {
            conn,
            topic,
            preamble,
            fallback,
        } = join;
        let (now, start, tick) = (self.now(), self.start_time(), self.tick());
        let mut close = false;
        let Worker {
            slots,
            dirty,
            cfg,
            counters,
            ops,
            codecs,
            ..
        } = self;
        let Some(s) = slots.get_mut(conn.slot, conn.generation) else {
            return Ok(());
        };
        if !s.out.sendable {
            return Ok(());
        }
        // The preamble whole, above the queue's limit by at most its own size, if the queue is
        // within its limit now; else the fallback (small: an answer), whatever the queue holds.
        let (frames, allowance) = if s.out.queued() <= s.publication_limit(cfg) {
            let size = preamble.iter().map(|f| f.wire().len()).sum();
            (preamble, size)
        } else {
            Counters::inc(&counters.home_fallbacks, 1);
            let size: usize = fallback.iter().map(|f| f.wire().len()).sum();
            (fallback, s.out.queued() + size)
        };
        let ctx = Ctx {
            cfg,
            counters,
            now,
            start,
            tick,
            id: conn,
            ops,
            codecs,
        };
        for frame in &frames {
            close |= s.push_publication_over(frame, allowance, &ctx) == Delivery::Close;
        }
        if !s.flags.has(Flags::DIRTY) {
            s.flags.set(Flags::DIRTY, true);
            dirty.push((conn.slot, conn.generation));
        }
        if close {
            return self.with_slot(conn.slot, conn.generation, |s, _, ctx| {
                s.begin_close(CloseCode::TRY_AGAIN_LATER, "send queue full", ctx)
            });
        }
        self.topics.subscribe(conn.slot, conn.generation, topic);
        Ok(())
    }

    /// Queues a publication on this worker's connections it is for: the subscribers of its
    /// topic, or the one connection it names. A sampled one that reached a connection is
    /// timed until this iteration's sends (see [`Sampler`]).
    pub(super) fn deliver_local(&mut self, p: &Publication, sampled: Sampled) -> io::Result<()> {
        let (now, start, tick) = (self.now(), self.start_time(), self.tick());
        let mut close = Vec::new();
        let Worker {
            slots,
            topics,
            dirty,
            cfg,
            counters,
            ops,
            codecs,
            index,
            sampler,
            ..
        } = self;
        let subscribers = match &p.target {
            Target::Topic(topic) => Some(topics.subscribers(topic)),
            Target::Conn(_) => None,
        };
        let one = match &p.target {
            Target::Conn(id) if usize::from(id.worker) == *index => Some((id.slot, id.generation)),
            _ => None,
        };
        for (slot, generation) in subscribers.into_iter().flatten().chain(one) {
            let id = ConnId {
                worker: *index as u16,
                slot,
                generation,
            };
            if p.except == Some(id) {
                continue;
            }
            let Some(s) = slots.get_mut(slot, generation) else {
                continue;
            };
            let ctx = Ctx {
                cfg,
                counters,
                now,
                start,
                tick,
                id,
                ops,
                codecs,
            };
            match s.push_publication(&p.frame, &ctx) {
                Delivery::Queued => {
                    if let Some(at) = sampled {
                        sampler.delivered(at);
                    }
                    if !s.flags.has(Flags::DIRTY) {
                        s.flags.set(Flags::DIRTY, true);
                        dirty.push((slot, generation));
                    }
                }
                Delivery::Close => close.push((slot, generation)),
                _ => {}
            }
        }
        for (slot, generation) in close {
            self.with_slot(slot, generation, |s, _, ctx| {
                s.begin_close(CloseCode::TRY_AGAIN_LATER, "send queue full", ctx)
            })?;
        }
        Ok(())
    }

    /// Queues a run of publications on this worker's subscribers of `topic`: each takes it
    /// whole, above its queue's limit by at most the run's size, if its queue is within its
    /// limit now or it took a run earlier in this iteration (a burst that came in pieces);
    /// else none of it (counted as dropped).
    pub(super) fn deliver_run(
        &mut self,
        topic: &Topic,
        run: &[Frame],
        sampled: Sampled,
    ) -> io::Result<()> {
        let (now, start, tick) = (self.now(), self.start_time(), self.tick());
        let size: usize = run.iter().map(|f| f.wire().len()).sum();
        let mut close = Vec::new();
        let Worker {
            slots,
            topics,
            dirty,
            cfg,
            counters,
            ops,
            codecs,
            index,
            sampler,
            ..
        } = self;
        for (slot, generation) in topics.subscribers(topic) {
            let Some(s) = slots.get_mut(slot, generation) else {
                continue;
            };
            if !s.out.sendable {
                continue;
            }
            let (queued, limit) = (s.out.queued(), s.publication_limit(cfg));
            if queued > limit && !s.flags.has(Flags::RUN_TAKEN) {
                Counters::inc(&counters.dropped, run.len() as u64);
                continue;
            }
            s.flags.set(Flags::RUN_TAKEN, true);
            // Room for the whole run above what is queued now.
            let allowance = queued.saturating_sub(limit) + size;
            let ctx = Ctx {
                cfg,
                counters,
                now,
                start,
                tick,
                id: ConnId {
                    worker: *index as u16,
                    slot,
                    generation,
                },
                ops,
                codecs,
            };
            let mut closing = false;
            for frame in run {
                closing |= s.push_publication_over(frame, allowance, &ctx) == Delivery::Close;
            }
            if closing {
                close.push((slot, generation));
                continue;
            }
            if let Some(at) = sampled {
                sampler.delivered(at);
            }
            if !s.flags.has(Flags::DIRTY) {
                s.flags.set(Flags::DIRTY, true);
                dirty.push((slot, generation));
            }
        }
        for (slot, generation) in close {
            self.with_slot(slot, generation, |s, _, ctx| {
                s.begin_close(CloseCode::TRY_AGAIN_LATER, "send queue full", ctx)
            })?;
        }
        Ok(())
    }

    /// Moves the publications owed to each other worker into its inbox, waking it if needed,
    /// and hands the relay (if any) this iteration's publications for other servers and changes
    /// of interest.
    pub(super) fn send_publications(&mut self) -> io::Result<()> {
        self.hand_to_relay();
        for w in (0..self.hub.workers()).filter(|&w| w != self.index) {
            let batch = self.topics.outgoing(w);
            if batch.is_empty() {
                continue;
            }
            if self.hub.deliver(w, batch) {
                // Tagged with the target's index: should the message fail, its eventfd is
                // signalled instead (see `Completion::MsgSent`).
                self.io
                    .wake_peer(self.hub.ring(w), self.hub.efd(w), w as u32)?;
            }
        }
        Ok(())
    }

    /// Hands the relay (if any) this iteration's publications for other servers and changes of
    /// interest.
    pub(super) fn hand_to_relay(&mut self) {
        if let Some(relay) = &self.relay {
            relay.submit(
                self.index as u16,
                &mut self.to_relay,
                &mut self.topics.changes,
            );
            if !self.to_log.is_empty() {
                relay.submit_log(self.index as u16, &mut self.to_log);
            }
        }
    }

    /// Delivers what other workers and publishers put in this worker's inbox.
    pub(super) fn take_inbox(&mut self) -> io::Result<()> {
        let mut batch = std::mem::take(&mut self.inbox);
        self.hub.take(self.index, &mut batch);
        for item in batch.drain(..) {
            match item {
                Item::Publish(p, sampled) => self.deliver_local(&p, sampled)?,
                Item::Run(topic, run, sampled) => self.deliver_run(&topic, &run, sampled)?,
                Item::Join(join) => self.join_local(join)?,
                Item::Leave(id, topic) => {
                    self.topics.unsubscribe(id.slot, id.generation, &topic);
                }
                Item::Notify(id, data) => {
                    self.with_slot(id.slot, id.generation, |s, h, ctx| {
                        s.on_notify(h, ctx, data)
                    })?;
                    self.run_ops()?;
                }
                Item::Home(req) => {
                    // What it asks for is applied before the next item: one order.
                    self.run_home(req);
                    self.run_ops()?;
                }
            }
        }
        self.inbox = batch;
        self.run_ops()
    }
}

/// How often a worker samples a publication for `ringws_fanout_delay_seconds`: at most one
/// per 10 ms per worker (100 a second), so the hot path pays a comparison per publication and
/// two clock reads per 10 ms.
const SAMPLE_EVERY_NS: u64 = 10_000_000;

/// Samples the delay of a fan-out: from a sampled publication (on any worker of this server)
/// to the end of the first iteration that queued it for a connection of this worker and
/// handed that iteration's sends to the kernel. Publications that reach no connection here
/// are not timed here.
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    /// The worker clock (ns) from which the next publication is sampled.
    next_ns: u64,
    /// The oldest sampled publication queued in this iteration.
    pending: Sampled,
}

impl Sampler {
    /// Whether to sample a publication made now (the iteration's clock `now_ns`): the moment,
    /// if so.
    pub(crate) fn sample(&mut self, now_ns: u64) -> Sampled {
        if now_ns < self.next_ns {
            return None;
        }
        self.next_ns = now_ns + SAMPLE_EVERY_NS;
        Some(std::time::Instant::now())
    }

    /// A sampled publication made `at` was queued for a connection in this iteration.
    pub(crate) fn delivered(&mut self, at: std::time::Instant) {
        if self.pending.is_none_or(|p| at < p) {
            self.pending = Some(at);
        }
    }

    /// The iteration's sends are submitted: records the oldest sample's delay.
    pub(crate) fn sent(&mut self, into: &crate::server::histogram::Histogram) {
        if let Some(at) = self.pending.take() {
            into.record(at.elapsed().as_nanos() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::histogram::{Histogram, HistogramSnapshot};

    #[test]
    fn at_most_one_publication_per_period_is_sampled_and_the_oldest_delivered_is_timed() {
        let mut s = Sampler::default();
        let first = s.sample(5).expect("the first is sampled");
        assert_eq!(s.sample(5 + SAMPLE_EVERY_NS - 1), None);
        let second = s.sample(5 + SAMPLE_EVERY_NS).expect("a period later");
        let h = Histogram::new(1_000, 24);
        s.sent(&h); // nothing delivered: nothing recorded
        s.delivered(second);
        s.delivered(first);
        s.delivered(second);
        std::thread::sleep(std::time::Duration::from_millis(2));
        s.sent(&h);
        s.sent(&h); // recorded once
        let mut snap = HistogramSnapshot::default();
        h.add_to(&mut snap);
        assert_eq!(snap.counts.iter().sum::<u64>(), 1);
        // The oldest: at least the 2 ms slept since `first`.
        assert!(snap.sum_ns >= 2_000_000, "{}", snap.sum_ns);
        assert!(snap.sum_ns <= first.elapsed().as_nanos() as u64);
    }
}
