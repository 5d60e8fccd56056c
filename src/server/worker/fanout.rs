//! Fan-out: the topic operations handlers ask for (subscribe, unsubscribe, publish), delivery of
//! a publication to this worker's subscribers, the batches owed to the other workers and to the
//! relay, and what arrives in this worker's inbox.

use std::io;

use super::Worker;
use crate::proto::CloseCode;
use crate::runtime::Backend;
use crate::server::conn::{Ctx, Delivery, Flags};
use crate::server::counters::Counters;
use crate::server::handler::Handler;
use crate::server::pubsub::{ConnId, Publication, TopicOp};

impl<H: Handler, B: Backend> Worker<H, B> {
    /// Applies the topic operations handlers asked for (subscribe, unsubscribe, publish).
    pub(super) fn run_topic_ops(&mut self) -> io::Result<()> {
        loop {
            let ops = std::mem::take(&mut *self.ops.borrow_mut());
            if ops.is_empty() {
                return Ok(());
            }
            for op in ops {
                match op {
                    TopicOp::Subscribe(id, topic) => {
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
                    TopicOp::Unsubscribe(id, topic) => {
                        self.topics.unsubscribe(id.slot, id.generation, &topic);
                    }
                    TopicOp::Publish { p, cluster } => {
                        Counters::inc(&self.counters.published, 1);
                        if cluster && self.relay.is_some() {
                            self.to_broker.push((p.topic.clone(), p.frame.clone()));
                        }
                        for w in (0..self.hub.workers()).filter(|&w| w != self.index) {
                            self.topics.send_to(w, p.clone());
                        }
                        self.deliver_local(&p)?;
                    }
                }
            }
            Counters::set(&self.counters.topics, self.topics.topics() as i64);
        }
    }

    /// Queues a publication on this worker's subscribers of its topic.
    pub(super) fn deliver_local(&mut self, p: &Publication) -> io::Result<()> {
        let (now, tick) = (self.now(), self.tick());
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
            ..
        } = self;
        for (slot, generation) in topics.subscribers(&p.topic) {
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
                tick,
                id,
                ops,
                codecs,
            };
            match s.push_publication(p.frame.clone(), &ctx) {
                Delivery::Queued if !s.flags.has(Flags::DIRTY) => {
                    s.flags.set(Flags::DIRTY, true);
                    dirty.push((slot, generation));
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

    /// Moves the publications owed to each other worker into its inbox, waking it if needed,
    /// and hands the bridge (if any) this iteration's publications for other nodes and changes
    /// of interest.
    pub(super) fn send_publications(&mut self) -> io::Result<()> {
        self.hand_to_broker();
        for w in (0..self.hub.workers()).filter(|&w| w != self.index) {
            let batch = self.topics.outgoing(w);
            if batch.is_empty() {
                continue;
            }
            if self.hub.deliver(w, batch) {
                // Tagged with the target's index: should the message fail, its eventfd is
                // signalled instead (see `Completion::MsgSent` above).
                self.io
                    .wake_peer(self.hub.ring(w), self.hub.efd(w), w as u32)?;
            }
        }
        Ok(())
    }

    /// Hands the bridge (if any) this iteration's publications for other nodes and changes of
    /// interest.
    pub(super) fn hand_to_broker(&mut self) {
        if let Some(relay) = &self.relay {
            relay.submit(
                self.index as u16,
                &mut self.to_broker,
                &mut self.topics.changes,
            );
        }
    }

    /// Delivers what other workers and publishers put in this worker's inbox.
    pub(super) fn take_inbox(&mut self) -> io::Result<()> {
        let mut batch = std::mem::take(&mut self.inbox);
        self.hub.take(self.index, &mut batch);
        for p in batch.drain(..) {
            self.deliver_local(&p)?;
        }
        self.inbox = batch;
        Ok(())
    }
}
