//! One worker: a thread, a listener, an I/O backend (io_uring, or epoll where it is not
//! available), and the connections they accept.
//!
//! The loop, once per iteration: flush every connection with queued frames (one gathered send
//! each), re-arm receives that found the buffer ring empty, then one `io_uring_enter` that
//! submits all of it and waits for completions (or the next deadline), then handle the
//! completions. No locks on the way of a message: the only shared things are the stop flag, the
//! counters (relaxed atomics) and, for publications between workers, one inbox lock per batch.
//!
//! A completion looks its connection's slot up once: the event is handled and what it leaves to
//! do (the slot's timer, its place in the flush list, closing, flow control, re-arming its
//! receive) is settled with the slot still in hand ([`settle`]). What handlers asked for
//! (publications, subscriptions, timers) runs after that, once the slot is let go.
//!
//! | module | concept |
//! |---|---|
//! | `flow` | flow control: pausing and resuming a connection's reading, held input |
//! | `fanout` | topic operations, delivery to this worker's subscribers, inboxes and the relay |
//! | `timers` | timers handlers set ([`Conn::set_timer`](crate::server::Conn::set_timer)) |

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub(crate) use clock::Clock;

use super::compress::Codecs;
use super::config::ServerConfig;
use super::conn::{Actions, Ctx, Flags, Flow, Slot};
use super::counters::Counters;
use super::handler::Handler;
use super::ops::Op;
use super::pubsub::{ConnId, Hub, Item, LocalTopics, Topic};
use super::relay::{LogRequest, Relay};
use super::slab::Slab;
use super::wheel::Wheel;
use crate::proto::frame::Frame;
use crate::proto::{CloseCode, Timestamp};
use crate::runtime::sys;
use crate::runtime::uring::user_data::MAX_SLOT;
use crate::runtime::{Backend, Completion, WAKE_PAYLOAD};

mod clock;
mod fanout;
mod flow;
mod refusals;
mod timers;
mod tls;

use timers::HandlerTimers;

/// What every worker of a running server shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) cfg: Arc<ServerConfig>,
    /// Set to start a graceful shutdown.
    pub(crate) stop: Arc<AtomicBool>,
    /// Set (before `stop`) when the shutdown is a restart: connections get 1012, not 1001.
    pub(crate) restart: Arc<AtomicBool>,
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
    restart: Arc<AtomicBool>,
    /// Slots with frames to flush.
    dirty: Vec<(u32, u32)>,
    /// Slots whose receive ended because the buffer ring was empty.
    starved: Vec<(u32, u32)>,
    /// One timer per connection (handshake, heartbeat, idle, close and linger deadlines,
    /// coalesced into the earliest), in ticks of `cfg.tick`.
    wheel: Wheel,
    /// Timers fired in this iteration (kept to reuse its allocation).
    fired: Vec<u32>,
    /// Timers handlers set, by due time.
    handler_timers: HandlerTimers,
    /// Where the time comes from.
    time: Clock,
    /// Milliseconds since `epoch`, read once per loop iteration (after the wait): events of one
    /// batch share it, and the clock is not read per completion. Rounded down: what deadlines
    /// are checked against (none is reached before its time).
    clock: Timestamp,
    /// The same moment rounded up to the millisecond: what deadlines count from (a start time
    /// is never earlier than the event it stamps, so no deadline fires early by the clock's
    /// resolution).
    clock_up: Timestamp,
    /// The same moment in nanoseconds (for the loop's busy time).
    clock_ns: u64,
    /// When the loop last woke up, in nanoseconds.
    woke_ns: u64,
    /// Samples publications for the fan-out delay histogram.
    sampler: fanout::Sampler,
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
    /// What handlers asked for during the current callback.
    ops: RefCell<Vec<Op>>,
    /// permessage-deflate codecs shared by the worker's connections.
    codecs: RefCell<Codecs>,
    /// Publications taken from the inbox (kept to reuse its allocation).
    inbox: Vec<Item>,
    /// This iteration's publications for the other servers (with a relay).
    to_relay: Vec<(Topic, Frame)>,
    /// Whether the relay keeps ordered logs (a home may use them).
    has_log: bool,
    /// Whether the relay shares presence between the servers.
    has_presence: bool,
    /// This iteration's requests for the relay's logs.
    to_log: Vec<LogRequest>,
    /// Input that arrived for a connection after its reading paused, by slot: its generation,
    /// the bytes, and how many were fed already. Replies to it would pass the reply ceiling (a
    /// compressed request can be far smaller than its answer), so it waits for the resume.
    held: HashMap<u32, (u32, Vec<u8>, usize)>,
    /// TLS, when the listener has it: each connection's session.
    tls: Option<tls::WorkerTls>,
    /// The log's summary of refused and failed connections.
    refusals: refusals::RefusalLog,
}

/// What settling an event left for after the slot is let go.
#[derive(Debug, Default, Clone, Copy)]
struct Settled {
    /// Reading resumes: feed held input, re-arm the receive.
    resume: bool,
    /// The slot is done: free it.
    finished: bool,
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
            restart,
            hub,
            relay,
        } = shared;
        let ids = cfg.max_connections_per_worker.min(MAX_SLOT) as usize;
        let tls = cfg.tls.clone().map(tls::WorkerTls::new);
        let cfg_refusal_interval = cfg.refusal_log_interval;
        Worker {
            io,
            listener,
            slots: Slab::new(),
            handler,
            handler_timers: HandlerTimers::new(cfg.max_handler_timers),
            cfg,
            counters,
            stop,
            restart,
            dirty: Vec::new(),
            starved: Vec::new(),
            wheel: Wheel::with_capacity(0, ids),
            fired: Vec::new(),
            time: Clock::Real(Instant::now()),
            clock: Timestamp(0),
            clock_up: Timestamp(0),
            clock_ns: 0,
            sampler: fanout::Sampler::default(),
            woke_ns: 0,
            accepting: true,
            accept_retry_at: None,
            shutdown_deadline: None,
            topics: LocalTopics::new(hub.workers(), relay.is_some()),
            has_log: relay.as_ref().is_some_and(|r| r.has_log()),
            has_presence: relay.as_ref().is_some_and(|r| r.has_presence()),
            to_log: Vec::new(),
            index,
            hub,
            relay,
            ops: RefCell::new(Vec::new()),
            codecs: RefCell::new(Codecs::default()),
            inbox: Vec::new(),
            to_relay: Vec::new(),
            held: HashMap::new(),
            tls,
            refusals: refusals::RefusalLog::new(cfg_refusal_interval),
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
                tracing::warn!(worker = self.index, reason = %e, "worker {}: wake-ups through the eventfd: {e}", self.index);
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
            self.sampler.sent(&self.counters.timings.fanout);
            // Frames compressed for this iteration's fan-outs are queued by now.
            self.codecs.get_mut().end_of_batch();
            self.rearm_starved()?;
            self.read_clock();
            if self.woke_ns != 0 {
                let busy = self.clock_ns.saturating_sub(self.woke_ns);
                self.counters.timings.loop_busy.record(busy);
            }
            let wait = self.wait_time();
            self.io.wait(Some(wait))?;
            self.read_clock();
            self.woke_ns = self.clock_ns.max(1);
            while let Some(completion) = self.io.next_completion() {
                self.on_completion(completion)?;
            }
            self.run_timers()?;
            self.run_handler_timers()?;
            self.refusals.check(self.clock, &self.counters, self.index);
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
                &self.counters.handler_timers,
                self.handler_timers.len() as i64,
            );
            Counters::set(
                &self.counters.deflate_contexts,
                self.codecs.get_mut().dedicated() as i64,
            );
            // Acquire: a restart flag set before the stop flag is seen with it.
            if self.stop.load(Ordering::Acquire) && self.shutdown_deadline.is_none() {
                self.begin_shutdown()?;
            }
            if let Some(deadline) = self.shutdown_deadline {
                if self.slots.len() == 0 {
                    // Closes of connections accepted while stopping may still be queued.
                    self.io.wait(Some(Duration::ZERO))?;
                    // The last publications for other servers (the relay outlives the workers).
                    self.hand_to_relay();
                    return Ok(());
                }
                if self.now() >= deadline {
                    self.force_close_all()?;
                }
            }
        }
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
                            worker = self.index,
                            errno,
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
                    worker = self.index,
                    conn = %self.id(slot, generation),
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
            }
            Completion::RecvEof { slot, generation } => {
                self.with_slot(slot, generation, |s, h, ctx| {
                    s.recv_ended();
                    s.on_eof(h, ctx, false)
                })?;
            }
            Completion::RecvNoBufs { slot, generation } => {
                Counters::inc(&self.counters.recv_starved, 1);
                let Some(s) = self.slots.get_mut(slot, generation) else {
                    return Ok(());
                };
                s.recv_ended();
                if s.is_finished() {
                    self.free(slot, generation);
                } else if !s.flags.has(Flags::FD_CLOSING) {
                    self.starved.push((slot, generation));
                }
            }
            Completion::RecvCancelled { slot, generation } => {
                let Some(s) = self.slots.get_mut(slot, generation) else {
                    return Ok(());
                };
                s.recv_ended();
                // Cancelled by flow control and resumed since: read again.
                rearm_recv(s, slot, generation, &mut self.io)?;
                if s.is_finished() {
                    self.free(slot, generation);
                }
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
                    worker = self.index,
                    conn = %self.id(slot, generation),
                    errno,
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
            }
            Completion::Sent {
                slot,
                generation,
                result,
            } => {
                self.with_slot(slot, generation, |s, h, ctx| s.on_sent(result, h, ctx))?;
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
                        worker = self.index,
                        conn = %self.id(slot, generation),
                        errno = -result,
                        "connection {}: close: {}",
                        self.id(slot, generation),
                        io::Error::from_raw_os_error(-result)
                    );
                }
                let Some(s) = self.slots.get_mut(slot, generation) else {
                    return Ok(());
                };
                s.flags.set(Flags::FD_CLOSED, true);
                if s.is_finished() {
                    self.free(slot, generation);
                }
            }
            Completion::Other {
                user_data,
                result,
                flags,
            } => {
                tracing::warn!(
                    worker = self.index,
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
        // Accepted after accepting stopped (the accept was under way): a restart serves it the
        // upgrade and closes it with 1012 (a hand-over's new process accepts from the same
        // queue); a plain shutdown closes it.
        if !self.accepting && !self.restart.load(Ordering::Relaxed) {
            return self.io.close(fd, 0, 0);
        }
        let cap = self.cfg.max_connections_per_worker.min(MAX_SLOT);
        if self.slots.len() >= cap as usize {
            Counters::inc(&self.counters.refused, 1);
            return self.io.close(fd, 0, 0);
        }
        let mut new = Slot::new(fd, self.now().0 as u32);
        new.since = self.stamp(); // the handshake deadline counts from here
        let Some((slot, generation)) = self.slots.insert(new, cap) else {
            // Not reached (the count was checked); the slot's drop closes the socket.
            Counters::inc(&self.counters.refused, 1);
            return Ok(());
        };
        Counters::add(&self.counters.connections, 1);
        if let Some(tls) = self.tls.as_mut() {
            if let Err(e) = tls.open(slot, generation) {
                tracing::warn!(worker = self.index, reason = %e, "TLS: no session for a new connection ({e}): closed");
                let actions = Actions {
                    close_now: true,
                    ..Actions::default()
                };
                return self.settle_now(slot, generation, actions);
            }
        }
        if let Some(s) = self.slots.get_mut(slot, generation) {
            rearm_recv(s, slot, generation, &mut self.io)?;
        }
        // Its timer: the handshake deadline.
        let actions = Actions {
            rearm: true,
            ..Actions::default()
        };
        self.settle_now(slot, generation, actions)
    }

    /// A receive: the bytes go to the connection's protocol state (or are held while its reading
    /// pauses), then the event is settled, all on one look-up of the slot.
    fn on_recv(
        &mut self,
        slot: u32,
        generation: u32,
        bid: u16,
        len: usize,
        more: bool,
    ) -> io::Result<()> {
        let (now, start, tick) = (self.now(), self.start_time(), self.tick());
        let id = self.id(slot, generation);
        let Worker {
            io,
            slots,
            handler,
            cfg,
            counters,
            ops,
            codecs,
            held,
            wheel,
            dirty,
            tls,
            ..
        } = self;
        let Some(s) = slots.get_mut(slot, generation) else {
            io.recycle(bid); // a stale generation: the buffer goes back all the same
            return Ok(());
        };
        if !more {
            s.recv_ended();
        }
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
        let mut settled = Settled::default();
        if s.flags.has(Flags::SHUT_DOWN) || s.flags.has(Flags::FD_CLOSING) {
            io.recycle(bid); // draining after our close: the bytes are dropped
        } else if let Some(got) = tls
            .as_mut()
            .and_then(|t| t.receive(slot, generation, io.recv_buf(bid, len)))
        {
            // TLS: decrypted in the receive buffer; the plaintext goes where bytes go.
            io.recycle(bid);
            s.seen(tick);
            Counters::inc(&counters.bytes_received, len as u64);
            let actions = match got {
                Ok(got) => {
                    let mut actions = Actions::default();
                    if got.handshake_done {
                        Counters::inc(&counters.tls_handshakes, 1);
                    }
                    if let Some(records) = got.records {
                        Counters::add(&counters.bytes_queued, records.len() as i64);
                        s.out.push(records, super::outbox::Kind::Sealed);
                        actions.flush = true;
                    }
                    if let Some(t) = tls.as_mut().filter(|t| !t.plain.is_empty()) {
                        let mut plain = std::mem::take(&mut t.plain);
                        if s.flags.has(Flags::READ_PAUSED) || s.flags.has(Flags::INPUT_HELD) {
                            hold(s, held, counters, slot, generation, &plain);
                        } else {
                            actions = actions.and(s.on_bytes(&mut plain, handler, &ctx));
                        }
                        plain.clear();
                        t.plain = plain;
                    }
                    if got.peer_closed {
                        actions = actions.and(s.on_eof(handler, &ctx, false));
                    }
                    actions
                }
                Err((e, alert)) => {
                    let during_handshake = matches!(s.phase, super::conn::Phase::AwaitHead(..));
                    tls::count_failure(counters, during_handshake, e.reason());
                    tracing::debug!(reason = e.reason(), "TLS: {e}");
                    if let Some(alert) = alert {
                        Counters::add(&counters.bytes_queued, alert.len() as i64);
                        s.out.push(alert, super::outbox::Kind::Sealed);
                    }
                    s.on_eof(handler, &ctx, false)
                }
            };
            settled = settle(s, slot, generation, actions, io, wheel, dirty, &ctx)?;
        } else if s.flags.has(Flags::READ_PAUSED) || s.flags.has(Flags::INPUT_HELD) {
            // Arrived before the pause took effect: held, fed when reading resumes.
            s.seen(tick);
            Counters::inc(&counters.bytes_received, len as u64);
            hold(s, held, counters, slot, generation, io.recv_buf(bid, len));
            io.recycle(bid);
        } else {
            s.seen(tick);
            Counters::inc(&counters.bytes_received, len as u64);
            let actions = s.on_bytes(io.recv_buf(bid, len), handler, &ctx);
            io.recycle(bid);
            settled = settle(s, slot, generation, actions, io, wheel, dirty, &ctx)?;
        }
        if !more {
            // The multishot receive ended (the kernel's choice): arm it again if still reading.
            rearm_recv(s, slot, generation, io)?;
        }
        self.after(slot, generation, settled)?;
        if self.shutdown_deadline.is_some() {
            self.close_if_upgraded(slot, generation)?;
        }
        Ok(())
    }

    /// Runs `f` on a live slot with the handler and context, then settles its actions.
    fn with_slot(
        &mut self,
        slot: u32,
        generation: u32,
        f: impl FnOnce(&mut Slot<H::State>, &mut H, &Ctx<'_>) -> Actions,
    ) -> io::Result<()> {
        let (now, start, tick) = (self.now(), self.start_time(), self.tick());
        let id = self.id(slot, generation);
        let Worker {
            io,
            slots,
            handler,
            cfg,
            counters,
            ops,
            codecs,
            wheel,
            dirty,
            ..
        } = self;
        let Some(s) = slots.get_mut(slot, generation) else {
            return Ok(());
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
        let actions = f(s, handler, &ctx);
        let settled = settle(s, slot, generation, actions, io, wheel, dirty, &ctx)?;
        self.after(slot, generation, settled)
    }

    /// Settles `actions` on a live slot (for events that did not go through a handler).
    fn settle_now(&mut self, slot: u32, generation: u32, actions: Actions) -> io::Result<()> {
        self.with_slot(slot, generation, |_, _, _| actions)
    }

    /// What is left once the slot is let go: feed held input if reading resumed, free the slot
    /// if it is done, and carry out what the handlers asked for.
    fn after(&mut self, slot: u32, generation: u32, settled: Settled) -> io::Result<()> {
        if settled.resume {
            self.resume_reading(slot, generation)?;
        }
        if settled.finished {
            self.free(slot, generation);
        }
        self.run_ops()
    }

    /// One gathered send per connection with queued frames and none in flight; shuts down or
    /// closes the connections that asked to close once flushed.
    fn flush(&mut self) -> io::Result<()> {
        let mut dirty = std::mem::take(&mut self.dirty);
        let mut busy = Vec::new();
        let (now, start, tick, stamp) = (self.now(), self.start_time(), self.tick(), self.stamp());
        for &(slot, generation) in &dirty {
            let id = self.id(slot, generation);
            let Some(s) = self.slots.get_mut(slot, generation) else {
                continue;
            };
            // A new iteration: a run must again find the queue within its limit.
            s.flags.set(Flags::RUN_TAKEN, false);
            if s.flags.has(Flags::FD_CLOSING) || s.out.sending() {
                s.flags.set(Flags::DIRTY, false);
                continue; // the completion of the send in flight flushes the rest
            }
            if let Some(tls) = self.tls.as_mut() {
                // What waits is sealed into records just before it is sent; a connection that
                // is done says close_notify first.
                let last = s.flags.has(Flags::CLOSE_AFTER_FLUSH);
                let before = s.out.queued() as i64;
                if tls.seal(slot, generation, &mut s.out, last).is_err() {
                    s.out.clear();
                }
                // Records are larger than their plaintext (and a failed session sends nothing).
                Counters::add(&self.counters.bytes_queued, s.out.queued() as i64 - before);
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
                continue;
            }
            s.flags.set(Flags::DIRTY, false);
            if s.flags.has(Flags::CLOSE_AFTER_FLUSH) && s.flags.has(Flags::PEER_EOF) {
                close_fd(s, slot, generation, &mut self.io)?; // the peer has gone: no lingering
            } else if s.flags.has(Flags::CLOSE_AFTER_FLUSH) && !s.flags.has(Flags::SHUT_DOWN) {
                s.flags.set(Flags::SHUT_DOWN, true);
                if let Some(fd) = &s.fd {
                    let _ = sys::shutdown_write(fd.as_fd());
                }
                // Linger for the peer's EOF, at most `cfg.linger`.
                s.since = stamp;
                let ctx = Ctx {
                    cfg: &self.cfg,
                    counters: &self.counters,
                    now,
                    start,
                    tick,
                    id,
                    ops: &self.ops,
                    codecs: &self.codecs,
                };
                rearm_timer(s, slot, &mut self.wheel, &ctx);
            }
        }
        dirty.clear();
        dirty.extend(busy);
        self.dirty = dirty;
        Ok(())
    }

    fn rearm_starved(&mut self) -> io::Result<()> {
        if self.starved.is_empty() || !self.io.buffers_available() {
            return Ok(());
        }
        for (slot, generation) in std::mem::take(&mut self.starved) {
            if let Some(s) = self.slots.get_mut(slot, generation) {
                rearm_recv(s, slot, generation, &mut self.io)?;
            }
        }
        Ok(())
    }

    /// Fires the connection timers whose tick has come; each slot does what is due and re-arms.
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

    fn resume_accepting(&mut self) -> io::Result<()> {
        if self.accept_retry_at.take().is_some() && self.accepting {
            self.io.arm_accept(self.listener.as_fd())?;
        }
        Ok(())
    }

    /// Frees a finished slot (its fd closed, nothing in flight) and what it held.
    fn free(&mut self, slot: u32, generation: u32) {
        let Some(s) = self.slots.remove(slot, generation) else {
            return;
        };
        self.wheel.cancel(slot);
        self.codecs.get_mut().forget(slot, s.pmd);
        if let Some(tls) = self.tls.as_mut() {
            tls.forget(slot);
        }
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

    fn begin_shutdown(&mut self) -> io::Result<()> {
        self.accepting = false;
        self.io.cancel_accept()?;
        self.shutdown_deadline = Some(self.start_time().after(self.cfg.shutdown_timeout));
        let (code, reason) = self.shutdown_close();
        let restart = self.restart.load(Ordering::Relaxed);
        for (slot, generation) in self.slots.keys() {
            self.with_slot(slot, generation, |s, _, ctx| {
                // Restarting, a connection in its handshake finishes it and is closed with
                // 1012 then (see `close_if_upgraded`): a client told to come back, not one
                // dropped without an answer.
                match restart && matches!(s.phase, super::conn::Phase::AwaitHead(..)) {
                    true => Actions::default(),
                    false => s.begin_close(code, reason, ctx),
                }
            })?;
        }
        Ok(())
    }

    /// The close code and reason of the shutdown under way: 1012 when it is a restart.
    fn shutdown_close(&self) -> (CloseCode, &'static str) {
        match self.restart.load(Ordering::Relaxed) {
            true => (CloseCode::SERVICE_RESTART, "server restarting"),
            false => (CloseCode::GOING_AWAY, "server shutting down"),
        }
    }

    /// During a shutdown: closes a connection whose upgrade just finished with the shutdown's
    /// code (it was in its handshake when the shutdown began, or was accepted while a restart
    /// stopped accepting).
    fn close_if_upgraded(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let (code, reason) = self.shutdown_close();
        self.with_slot(slot, generation, |s, _, ctx| {
            match matches!(s.phase, super::conn::Phase::Open { .. }) {
                true => s.begin_close(code, reason, ctx),
                false => Actions::default(),
            }
        })
    }

    fn force_close_all(&mut self) -> io::Result<()> {
        for (slot, generation) in self.slots.keys() {
            self.with_slot(slot, generation, |s, h, ctx| s.on_eof(h, ctx, true))?;
        }
        Ok(())
    }
}

/// Applies what an event on slot `s` left to do, with the slot still in hand: its timer, its
/// place in the flush list, closing, and flow control (pausing cancels the armed receive).
/// Returns what must wait until the slot is let go.
#[allow(clippy::too_many_arguments)]
fn settle<S, B: Backend>(
    s: &mut Slot<S>,
    slot: u32,
    generation: u32,
    actions: Actions,
    io: &mut B,
    wheel: &mut Wheel,
    dirty: &mut Vec<(u32, u32)>,
    ctx: &Ctx<'_>,
) -> io::Result<Settled> {
    let mut settled = Settled::default();
    if actions.close_now {
        close_fd(s, slot, generation, io)?;
    } else {
        if actions.rearm {
            rearm_timer(s, slot, wheel, ctx);
        }
        if (actions.flush || s.flags.has(Flags::CLOSE_AFTER_FLUSH)) && !s.flags.has(Flags::DIRTY) {
            s.flags.set(Flags::DIRTY, true);
            dirty.push((slot, generation));
        }
        match s.flow(ctx.cfg, actions.replies_over) {
            Flow::Keep => {}
            Flow::Pause => {
                Counters::inc(&ctx.counters.read_pauses, 1);
                Counters::add(&ctx.counters.reading_paused, 1);
            }
            Flow::Resume => {
                Counters::add(&ctx.counters.reading_paused, -1);
                settled.resume = true;
            }
        }
        // A receive armed while paused is cancelled; the bytes it delivers before the cancel
        // lands are held (see `on_recv`).
        let f = s.flags;
        if f.has(Flags::READ_PAUSED)
            && f.has(Flags::RECV_ARMED)
            && !f.has(Flags::RECV_STOPPING)
            && !f.has(Flags::FD_CLOSING)
        {
            s.flags.set(Flags::RECV_STOPPING, true);
            io.cancel_recv(slot, generation)?;
        }
    }
    settled.finished = s.is_finished();
    Ok(settled)
}

/// Keeps input that came while the slot's reading is paused, to be fed when it resumes.
fn hold<S>(
    s: &mut Slot<S>,
    held: &mut HashMap<u32, (u32, Vec<u8>, usize)>,
    counters: &Counters,
    slot: u32,
    generation: u32,
    bytes: &[u8],
) {
    s.flags.set(Flags::INPUT_HELD, true);
    Counters::add(&counters.input_held, bytes.len() as i64);
    let held = held.entry(slot).or_insert((generation, Vec::new(), 0));
    held.1.extend_from_slice(bytes);
}

/// Arms the slot's one timer at its earliest deadline (or disarms it).
fn rearm_timer<S>(s: &Slot<S>, slot: u32, wheel: &mut Wheel, ctx: &Ctx<'_>) {
    match s.next_deadline(ctx) {
        Some(deadline) => wheel.insert(slot, deadline),
        None => wheel.cancel(slot),
    }
}

/// Arms the slot's multishot receive again, unless it is armed, paused by flow control, holding
/// input, or closing.
fn rearm_recv<S, B: Backend>(
    s: &mut Slot<S>,
    slot: u32,
    generation: u32,
    io: &mut B,
) -> io::Result<()> {
    let f = s.flags;
    if f.has(Flags::RECV_ARMED)
        || f.has(Flags::FD_CLOSING)
        || f.has(Flags::READ_PAUSED)
        || f.has(Flags::INPUT_HELD)
    {
        return Ok(());
    }
    if let Some(fd) = &s.fd {
        s.flags.set(Flags::RECV_ARMED, true);
        io.arm_recv(fd.as_fd(), slot, generation)?;
    }
    Ok(())
}

/// Cancels what is armed on the slot's fd and hands the fd to the backend to close; the slot is
/// freed when both are done.
fn close_fd<S, B: Backend>(
    s: &mut Slot<S>,
    slot: u32,
    generation: u32,
    io: &mut B,
) -> io::Result<()> {
    if s.flags.has(Flags::FD_CLOSING) {
        return Ok(());
    }
    s.flags.set(Flags::FD_CLOSING, true);
    let Some(fd) = s.fd.take() else {
        return Ok(());
    };
    if s.flags.has(Flags::RECV_ARMED) || s.out.sending() {
        io.cancel(fd.as_fd(), slot, generation)?;
    }
    io.close(fd, slot, generation)
}

#[cfg(test)]
mod tests;
