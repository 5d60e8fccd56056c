//! One worker: a thread, a listener, an I/O backend (io_uring, or epoll where it is not
//! available), and the connections they accept.
//!
//! The loop, once per iteration: flush every connection with queued frames (one gathered send
//! each), re-arm receives that found the buffer ring empty, then one `io_uring_enter` that
//! submits all of it and waits for completions (or the next deadline), then handle the
//! completions. No locks and no cross-thread traffic: the only shared things are the stop flag
//! and the counters, both relaxed atomics.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::compress::Codecs;
use super::config::ServerConfig;
use super::conn::{Actions, Ctx, Flags, Slot};
use super::counters::Counters;
use super::handler::Handler;
use super::pubsub::{ConnId, Hub, LocalTopics, Publication, Topic, TopicOp};
use super::relay::Relay;
use super::slab::Slab;
use super::wheel::Wheel;

mod fanout;
mod flow;
use crate::proto::{CloseCode, Timestamp};
use crate::runtime::sys;
use crate::runtime::uring::user_data::MAX_SLOT;
use crate::runtime::{Backend, Completion, WAKE_PAYLOAD};

/// What every worker of a running server shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) cfg: Arc<ServerConfig>,
    /// Set to start a graceful shutdown.
    pub(crate) stop: Arc<AtomicBool>,
    /// Every worker's inbox.
    pub(crate) hub: Arc<Hub>,
    /// The relay to other servers, when one is attached.
    pub(crate) relay: Option<Arc<dyn Relay>>,
}

/// A worker's state. Built on its own thread (the ring is single-issuer).
pub(crate) struct Worker<H: Handler, B: Backend> {
    io: B,
    listener: TcpListener,
    slots: Slab<Slot<H::State>>,
    handler: H,
    cfg: Arc<ServerConfig>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    /// Slots with frames to flush.
    dirty: Vec<(u32, u32)>,
    /// Slots whose receive ended because the buffer ring was empty.
    starved: Vec<(u32, u32)>,
    /// One timer per connection (handshake, heartbeat, idle, close and linger deadlines,
    /// coalesced into the earliest), in ticks of `cfg.tick`.
    wheel: Wheel,
    /// Timers fired in this iteration (kept to reuse its allocation).
    fired: Vec<u32>,
    epoch: Instant,
    /// Milliseconds since `epoch`, read once per loop iteration (after the wait): events of one
    /// batch share it, and the clock is not read per completion.
    clock: Timestamp,
    accepting: bool,
    /// Accepting is paused (out of file descriptors) until this tick or until a slot is freed.
    accept_retry_at: Option<u32>,
    /// Set when a graceful shutdown started: when to give up waiting.
    shutdown_deadline: Option<Timestamp>,
    /// This worker's index among the workers.
    index: usize,
    /// Every worker's inbox, for publications to topics.
    hub: Arc<Hub>,
    /// The relay to other servers, if any.
    relay: Option<Arc<dyn Relay>>,
    /// Subscribers on this worker, and publications owed to the others.
    topics: LocalTopics,
    /// Topic operations asked for by handlers during the current callback.
    ops: RefCell<Vec<TopicOp>>,
    /// permessage-deflate codecs shared by the worker's connections.
    codecs: RefCell<Codecs>,
    /// Publications taken from the inbox (kept to reuse its allocation).
    inbox: Vec<Publication>,
    /// This iteration's publications for the other nodes (with a broker).
    to_broker: Vec<(Topic, bytes::Bytes)>,
    /// Input that arrived for a connection after its reading paused, by slot: its generation,
    /// the bytes, and how many were fed already. Replies to it would pass the reply ceiling (a
    /// compressed request can be far smaller than its answer), so it waits for the resume.
    held: HashMap<u32, (u32, Vec<u8>, usize)>,
}

impl<H: Handler, B: Backend> Worker<H, B> {
    pub(crate) fn new(
        io: B,
        listener: TcpListener,
        handler: H,
        shared: Shared,
        counters: Arc<Counters>,
        index: usize,
    ) -> Self {
        let Shared {
            cfg,
            stop,
            hub,
            relay,
        } = shared;
        let ids = cfg.max_connections_per_worker.min(MAX_SLOT) as usize;
        Worker {
            io,
            listener,
            slots: Slab::new(),
            handler,
            cfg,
            counters,
            stop,
            dirty: Vec::new(),
            starved: Vec::new(),
            wheel: Wheel::with_capacity(0, ids),
            fired: Vec::new(),
            epoch: Instant::now(),
            clock: Timestamp(0),
            accepting: true,
            accept_retry_at: None,
            shutdown_deadline: None,
            topics: LocalTopics::new(hub.workers(), relay.is_some()),
            index,
            hub,
            relay,
            ops: RefCell::new(Vec::new()),
            codecs: RefCell::new(Codecs::default()),
            inbox: Vec::new(),
            to_broker: Vec::new(),
            held: HashMap::new(),
        }
    }

    /// The id of connection `(slot, generation)` of this worker.
    fn id(&self, slot: u32, generation: u32) -> ConnId {
        ConnId {
            worker: self.index as u16,
            slot,
            generation,
        }
    }

    /// The time of this loop iteration.
    fn now(&self) -> Timestamp {
        self.clock
    }

    /// Reads the clock (once per loop iteration, after the wait).
    fn read_clock(&mut self) {
        self.clock = Timestamp(self.epoch.elapsed().as_millis() as u64);
    }

    fn tick_ms(&self) -> u64 {
        self.cfg.tick.as_millis().max(1) as u64
    }

    /// The wheel's tick for the present moment.
    fn tick(&self) -> u32 {
        (self.now().0 / self.tick_ms()) as u32
    }

    /// Runs until a graceful shutdown completes.
    pub(crate) fn run(mut self) -> io::Result<()> {
        Counters::set(
            &self.counters.io_uring_workers,
            i64::from(self.io.name() == "io_uring"),
        );
        self.io.arm_accept(self.listener.as_fd())?;
        self.io.arm_wake(self.hub.efd(self.index))?;
        if let Some(fd) = self.io.ring_fd() {
            if let Err(e) = self.hub.set_ring(self.index, fd) {
                tracing::warn!("worker {}: wake-ups through the eventfd: {e}", self.index);
            }
        }
        let result = self.serve();
        self.hub.retire_ring(self.index);
        result
    }

    fn serve(&mut self) -> io::Result<()> {
        loop {
            self.send_publications()?;
            self.flush()?;
            // Frames compressed for this iteration's fan-outs are queued by now.
            self.codecs.get_mut().end_of_batch();
            self.rearm_starved()?;
            self.read_clock();
            let wait = self.wait_time();
            self.io.wait(Some(wait))?;
            self.read_clock();
            while let Some(completion) = self.io.next_completion() {
                self.on_completion(completion)?;
            }
            self.run_timers()?;
            if let Some(at) = self.accept_retry_at {
                if self.tick().wrapping_sub(at) as i32 >= 0 {
                    self.resume_accepting()?;
                }
            }
            Counters::set(
                &self.counters.buffers_lent,
                i64::from(self.io.buffers_lent()),
            );
            Counters::set(&self.counters.timers, self.wheel.len() as i64);
            Counters::set(
                &self.counters.deflate_contexts,
                self.codecs.get_mut().dedicated() as i64,
            );
            if self.stop.load(Ordering::Relaxed) && self.shutdown_deadline.is_none() {
                self.begin_shutdown()?;
            }
            if let Some(deadline) = self.shutdown_deadline {
                if self.slots.len() == 0 {
                    // Closes of connections accepted while stopping may still be queued.
                    self.io.wait(Some(Duration::ZERO))?;
                    // The last publications for other nodes (the bridge outlives the workers).
                    self.hand_to_broker();
                    return Ok(());
                }
                if self.now() >= deadline {
                    self.force_close_all()?;
                }
            }
        }
    }

    /// How long the loop may sleep: until the wheel's next due tick, at most one tick (the
    /// shutdown flag is looked at every tick).
    fn wait_time(&self) -> Duration {
        let tick_ms = self.tick_ms();
        let until_next_tick = tick_ms - self.now().0 % tick_ms;
        let wait = match self.wheel.next_wake() {
            Some(t) if t.wrapping_sub(self.wheel.now()) <= 1 => until_next_tick,
            _ => tick_ms,
        };
        Duration::from_millis(wait.max(1))
    }

    fn on_completion(&mut self, completion: Completion) -> io::Result<()> {
        match completion {
            Completion::Accepted { fd, more } => {
                self.on_accept(fd)?;
                if !more && self.accepting {
                    self.io.arm_accept(self.listener.as_fd())?;
                }
            }
            Completion::AcceptError { errno, more } => {
                let out_of_resources = matches!(
                    errno,
                    libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
                );
                if !more && self.accepting && out_of_resources {
                    // Re-arming now would fail at once, forever: pause accepting until a
                    // connection is freed, or a second has passed.
                    if self.accept_retry_at.is_none() {
                        tracing::warn!(
                            "accept paused: {} (the open-files limit? tuning/README.md, \"File descriptors\")",
                            io::Error::from_raw_os_error(errno)
                        );
                    }
                    self.accept_retry_at =
                        Some(self.tick().wrapping_add(self.cfg.ticks_per_second()));
                } else if !more && self.accepting {
                    self.io.arm_accept(self.listener.as_fd())?;
                }
            }
            Completion::Recv {
                slot,
                generation,
                bid,
                len,
                more,
            } => {
                self.on_recv(slot, generation, bid, len as usize, more)?;
            }
            Completion::RecvFault {
                slot,
                generation,
                bid,
                more,
            } => {
                // The kernel named a buffer the accounting says is lent: its bytes cannot be
                // trusted and the buffer is withheld for good (see the buffer ring's docs).
                // This connection fails; the others go on.
                Counters::inc(&self.counters.ring_faults, 1);
                tracing::error!(
                    "worker {}: a receive named buffer {bid}, which is lent already: connection {} failed, buffer withheld",
                    self.index,
                    self.id(slot, generation)
                );
                self.with_slot(slot, generation, |s, h, ctx| {
                    if !more {
                        s.recv_ended();
                    }
                    s.on_eof(h, ctx, true)
                })?;
                self.try_free(slot, generation);
            }
            Completion::RecvEof { slot, generation } => {
                self.with_slot(slot, generation, |s, h, ctx| {
                    s.recv_ended();
                    s.on_eof(h, ctx, false)
                })?;
                self.try_free(slot, generation);
            }
            Completion::RecvNoBufs { slot, generation } => {
                Counters::inc(&self.counters.recv_starved, 1);
                if let Some(s) = self.slots.get_mut(slot, generation) {
                    s.recv_ended();
                    if !s.flags.has(Flags::FD_CLOSING) {
                        self.starved.push((slot, generation));
                    }
                }
                self.try_free(slot, generation);
            }
            Completion::RecvCancelled { slot, generation } => {
                if let Some(s) = self.slots.get_mut(slot, generation) {
                    s.recv_ended();
                }
                // Cancelled by flow control and resumed since: read again.
                self.rearm_recv(slot, generation)?;
                self.try_free(slot, generation);
            }
            Completion::CancelDone {
                slot,
                generation,
                result,
            } if result < 0 => {
                // A flow-control cancel that found nothing to cancel (the receive was ending, or
                // running): the next event on the slot tries again if it is still armed.
                if let Some(s) = self.slots.get_mut(slot, generation) {
                    s.flags.set(Flags::RECV_STOPPING, false);
                }
            }
            Completion::RecvError {
                slot,
                generation,
                errno,
                more,
            } => {
                tracing::debug!(
                    "connection {}: receive failed: {}",
                    self.id(slot, generation),
                    io::Error::from_raw_os_error(errno)
                );
                self.with_slot(slot, generation, |s, h, ctx| {
                    if !more {
                        s.recv_ended();
                    }
                    s.on_eof(h, ctx, true)
                })?;
                self.try_free(slot, generation);
            }
            Completion::Sent {
                slot,
                generation,
                result,
            } => {
                self.with_slot(slot, generation, |s, h, ctx| s.on_sent(result, h, ctx))?;
                self.try_free(slot, generation);
            }
            Completion::Wake { more } => {
                sys::eventfd_drain(self.hub.efd(self.index));
                if !more {
                    self.io.arm_wake(self.hub.efd(self.index))?;
                }
                self.take_inbox()?;
            }
            Completion::Message {
                payload: WAKE_PAYLOAD,
                ..
            } => self.take_inbox()?,
            Completion::MsgSent {
                payload: WAKE_PAYLOAD,
                tag,
                result,
            } if result < 0 => {
                // The wake-up could not be posted into the peer's ring (ENOMEM, a ring being
                // torn down): its eventfd wakes it instead, or its inbox would wait for ever
                // (a worker is woken only when its inbox turns non-empty).
                tracing::debug!(
                    "MSG_RING wake failed ({}); using the eventfd",
                    io::Error::from_raw_os_error(-result)
                );
                // The tag is the target worker's index (see `send_publications`).
                if let Some(w) = Some(tag as usize).filter(|&w| w < self.hub.workers()) {
                    sys::eventfd_signal(self.hub.efd(w));
                }
            }
            Completion::Closed {
                slot,
                generation,
                result,
            } => {
                if result < 0 {
                    // The descriptor is released whatever close(2) says; nothing to retry.
                    tracing::debug!(
                        "connection {}: close: {}",
                        self.id(slot, generation),
                        io::Error::from_raw_os_error(-result)
                    );
                }
                if let Some(s) = self.slots.get_mut(slot, generation) {
                    s.flags.set(Flags::FD_CLOSED, true);
                }
                self.try_free(slot, generation);
            }
            Completion::Other {
                user_data,
                result,
                flags,
            } => {
                tracing::warn!(
                    "worker {}: unexpected completion (user_data {user_data:#x}, result {result}, flags {flags:#x}); ignored",
                    self.index
                );
            }
            // Successful cancels and wake-ups, stale MSG_RING results, zero-copy notifications
            // (the backend releases the send's memory itself): nothing to do.
            Completion::CancelDone { .. }
            | Completion::MsgSent { .. }
            | Completion::Message { .. }
            | Completion::SendNotif { .. } => {}
            // Queued by the ring's own tests only.
            #[cfg(test)]
            Completion::Timeout { .. } | Completion::Nop { .. } => {}
        }
        Ok(())
    }

    fn on_accept(&mut self, fd: OwnedFd) -> io::Result<()> {
        Counters::inc(&self.counters.accepted, 1);
        if !self.accepting {
            return self.io.close(fd, 0, 0);
        }
        let cap = self.cfg.max_connections_per_worker.min(MAX_SLOT);
        if self.slots.len() >= cap as usize {
            Counters::inc(&self.counters.refused, 1);
            return self.io.close(fd, 0, 0);
        }
        let mut new = Slot::new(fd);
        new.since = self.tick(); // the handshake deadline counts from here
        let Some((slot, generation)) = self.slots.insert(new, cap) else {
            // Not reached (the count was checked); the slot's drop closes the socket.
            Counters::inc(&self.counters.refused, 1);
            return Ok(());
        };
        Counters::add(&self.counters.connections, 1);
        if let Some(s) = self.slots.get_mut(slot, generation) {
            if let Some(fd) = &s.fd {
                self.io.arm_recv(fd.as_fd(), slot, generation)?;
                s.flags.set(Flags::RECV_ARMED, true);
            }
        }
        self.rearm(slot, generation);
        Ok(())
    }

    fn on_recv(
        &mut self,
        slot: u32,
        generation: u32,
        bid: u16,
        len: usize,
        more: bool,
    ) -> io::Result<()> {
        let (now, tick) = (self.now(), self.tick());
        let id = self.id(slot, generation);
        let Worker {
            io,
            slots,
            handler,
            cfg,
            counters,
            ops,
            codecs,
            ..
        } = self;
        let actions = match slots.get_mut(slot, generation) {
            Some(s) => {
                if !more {
                    s.recv_ended();
                }
                if s.flags.has(Flags::SHUT_DOWN) || s.flags.has(Flags::FD_CLOSING) {
                    None // draining after our close: the bytes are dropped
                } else if s.flags.has(Flags::READ_PAUSED) || s.flags.has(Flags::INPUT_HELD) {
                    // Arrived before the pause took effect: held, fed when reading resumes.
                    s.seen(tick);
                    s.flags.set(Flags::INPUT_HELD, true);
                    Counters::inc(&counters.bytes_received, len as u64);
                    Counters::add(&counters.input_held, len as i64);
                    let data = io.recv_buf(bid, len);
                    let held = self.held.entry(slot).or_insert((generation, Vec::new(), 0));
                    held.1.extend_from_slice(data);
                    None
                } else {
                    s.seen(tick);
                    let ctx = Ctx {
                        cfg,
                        counters,
                        now,
                        tick,
                        id,
                        ops,
                        codecs,
                    };
                    Counters::inc(&counters.bytes_received, len as u64);
                    let data = io.recv_buf(bid, len);
                    Some(s.on_bytes(data, handler, &ctx))
                }
            }
            None => None,
        };
        self.io.recycle(bid);
        if let Some(actions) = actions {
            self.apply(slot, generation, actions)?;
        }
        if !more {
            // The multishot receive ended (the kernel's choice): arm it again if still reading.
            self.rearm_recv(slot, generation)?;
        }
        Ok(())
    }

    fn rearm_recv(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        if let Some(s) = self.slots.get_mut(slot, generation) {
            if !s.flags.has(Flags::RECV_ARMED)
                && !s.flags.has(Flags::FD_CLOSING)
                && !s.flags.has(Flags::READ_PAUSED)
                && !s.flags.has(Flags::INPUT_HELD)
            {
                if let Some(fd) = &s.fd {
                    s.flags.set(Flags::RECV_ARMED, true);
                    self.io.arm_recv(fd.as_fd(), slot, generation)?;
                }
            }
        }
        Ok(())
    }

    /// Runs `f` on a live slot with the handler and context, then applies its actions.
    fn with_slot(
        &mut self,
        slot: u32,
        generation: u32,
        f: impl FnOnce(&mut Slot<H::State>, &mut H, &Ctx<'_>) -> Actions,
    ) -> io::Result<()> {
        let (now, tick, id) = (self.now(), self.tick(), self.id(slot, generation));
        let Worker {
            slots,
            handler,
            cfg,
            counters,
            ops,
            codecs,
            ..
        } = self;
        let Some(s) = slots.get_mut(slot, generation) else {
            return Ok(());
        };
        let actions = f(
            s,
            handler,
            &Ctx {
                cfg,
                counters,
                now,
                tick,
                id,
                ops,
                codecs,
            },
        );
        self.apply(slot, generation, actions)
    }

    fn apply(&mut self, slot: u32, generation: u32, actions: Actions) -> io::Result<()> {
        self.run_topic_ops()?;
        if actions.rearm && !actions.close_now {
            self.rearm(slot, generation);
        }
        if actions.close_now {
            return self.close_fd(slot, generation);
        }
        let Some(s) = self.slots.get_mut(slot, generation) else {
            return Ok(());
        };
        if (actions.flush || s.flags.has(Flags::CLOSE_AFTER_FLUSH)) && !s.flags.has(Flags::DIRTY) {
            s.flags.set(Flags::DIRTY, true);
            self.dirty.push((slot, generation));
        }
        self.flow_control(slot, generation)
    }

    /// Arms the slot's one timer at its earliest deadline (or disarms it).
    fn rearm(&mut self, slot: u32, generation: u32) {
        let (now, tick, id) = (self.now(), self.tick(), self.id(slot, generation));
        let Some(s) = self.slots.get_mut(slot, generation) else {
            return;
        };
        let ctx = Ctx {
            cfg: &self.cfg,
            counters: &self.counters,
            now,
            tick,
            id,
            ops: &self.ops,
            codecs: &self.codecs,
        };
        match s.next_deadline(&ctx) {
            Some(deadline) => self.wheel.insert(slot, deadline),
            None => self.wheel.cancel(slot),
        }
    }

    /// One gathered send per connection with queued frames and none in flight; closes the
    /// connections that asked to close once flushed.
    fn flush(&mut self) -> io::Result<()> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut busy = Vec::new();
        let mut lingering = Vec::new();
        let mut closing = Vec::new();
        let tick = self.tick();
        for &(slot, generation) in &dirty {
            let Some(s) = self.slots.get_mut(slot, generation) else {
                continue;
            };
            if s.flags.has(Flags::FD_CLOSING) || s.out.sending() {
                s.flags.set(Flags::DIRTY, false);
                continue; // the completion of the send in flight flushes the rest
            }
            if !s.out.is_empty() {
                if self.io.send_busy(slot) {
                    // A zero-copy send's bytes are still in use (or the slot's previous
                    // occupant's are): retry after the next completions.
                    busy.push((slot, generation));
                    continue;
                }
                s.flags.set(Flags::DIRTY, false);
                let Some(fd) = &s.fd else { continue };
                let count = self
                    .io
                    .send(fd.as_fd(), slot, generation, &mut s.out.pending())?;
                s.out.sending_started(count);
            } else {
                s.flags.set(Flags::DIRTY, false);
                if s.flags.has(Flags::CLOSE_AFTER_FLUSH) && s.flags.has(Flags::PEER_EOF) {
                    closing.push((slot, generation)); // the peer has gone: no lingering
                } else if s.flags.has(Flags::CLOSE_AFTER_FLUSH) && !s.flags.has(Flags::SHUT_DOWN) {
                    s.flags.set(Flags::SHUT_DOWN, true);
                    if let Some(fd) = &s.fd {
                        let _ = sys::shutdown_write(fd.as_fd());
                    }
                    // Linger for the peer's EOF, at most `cfg.linger`.
                    s.since = tick;
                    lingering.push((slot, generation));
                }
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
        self.dirty.extend(busy);
        for (slot, generation) in lingering {
            self.rearm(slot, generation);
        }
        for (slot, generation) in closing {
            self.close_fd(slot, generation)?;
        }
        Ok(())
    }

    fn rearm_starved(&mut self) -> io::Result<()> {
        if self.starved.is_empty() || !self.io.buffers_available() {
            return Ok(());
        }
        for (slot, generation) in std::mem::take(&mut self.starved) {
            self.rearm_recv(slot, generation)?;
        }
        Ok(())
    }

    /// Fires the timers whose tick has come; each slot does what is due and re-arms.
    fn run_timers(&mut self) -> io::Result<()> {
        let tick = self.tick();
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel.advance(tick, &mut fired);
        for &slot in &fired {
            if let Some(generation) = self.slots.generation_of(slot) {
                self.with_slot(slot, generation, |s, h, ctx| s.on_tick(h, ctx))?;
            }
        }
        fired.clear();
        self.fired = fired;
        Ok(())
    }

    /// Cancels what is armed on the slot's fd and closes it; the slot is freed when both are
    /// done.
    fn close_fd(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(s) = self.slots.get_mut(slot, generation) else {
            return Ok(());
        };
        if s.flags.has(Flags::FD_CLOSING) {
            return Ok(());
        }
        s.flags.set(Flags::FD_CLOSING, true);
        let Some(fd) = s.fd.take() else {
            return Ok(());
        };
        if s.flags.has(Flags::RECV_ARMED) || s.out.sending() {
            self.io.cancel(fd.as_fd(), slot, generation)?;
        }
        self.io.close(fd, slot, generation)
    }

    fn resume_accepting(&mut self) -> io::Result<()> {
        if self.accept_retry_at.take().is_some() && self.accepting {
            self.io.arm_accept(self.listener.as_fd())?;
        }
        Ok(())
    }

    fn try_free(&mut self, slot: u32, generation: u32) {
        let finished = self
            .slots
            .get_mut(slot, generation)
            .is_some_and(|s| s.is_finished());
        if finished {
            if let Some(s) = self.slots.remove(slot, generation) {
                self.wheel.cancel(slot);
                self.codecs.get_mut().forget(slot, s.pmd);
                if let Some((_, buf, fed)) = self.held.remove(&slot) {
                    Counters::add(&self.counters.input_held, -((buf.len() - fed) as i64));
                }
                self.topics.remove_conn(slot, generation);
                Counters::set(&self.counters.topics, self.topics.topics() as i64);
                if s.flags.has(Flags::READ_PAUSED) {
                    Counters::add(&self.counters.reading_paused, -1);
                }
                Counters::add(&self.counters.bytes_queued, -(s.out.queued() as i64));
                Counters::add(&self.counters.connections, -1);
                if self.accept_retry_at.is_some() {
                    let _ = self.resume_accepting();
                }
            }
        }
    }

    fn begin_shutdown(&mut self) -> io::Result<()> {
        self.accepting = false;
        self.io.cancel_accept()?;
        self.shutdown_deadline = Some(self.now().after(self.cfg.shutdown_timeout));
        for (slot, generation) in self.slots.keys() {
            self.with_slot(slot, generation, |s, _, ctx| {
                s.begin_close(CloseCode::GOING_AWAY, "server shutting down", ctx)
            })?;
        }
        Ok(())
    }

    fn force_close_all(&mut self) -> io::Result<()> {
        for (slot, generation) in self.slots.keys() {
            self.with_slot(slot, generation, |s, h, ctx| s.on_eof(h, ctx, true))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
