//! One worker: a thread, a listener, an io_uring, and the connections they accept.
//!
//! The loop, once per iteration: flush every connection with queued frames (one gathered send
//! each), re-arm receives that found the buffer ring empty, then one `io_uring_enter` that
//! submits all of it and waits for completions (or the next deadline), then handle the
//! completions. No locks and no cross-thread traffic: the only shared things are the stop flag
//! and the counters, both relaxed atomics.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::config::ServerConfig;
use super::conn::{Actions, Ctx, Flags, Slot};
use super::counters::Counters;
use super::handler::Handler;
use super::slab::Slab;
use crate::proto::{CloseCode, Timestamp};
use crate::runtime::sys;
use crate::runtime::uring::{Completion, MAX_IOVECS, Uring};

/// Why a timer was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    /// The protocol's close-handshake deadline.
    Protocol,
    /// The end of lingering after our side was shut down.
    Linger,
}

/// A worker's state. Built on its own thread (the ring is single-issuer).
pub(crate) struct Worker<H: Handler> {
    uring: Uring,
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
    /// Deadlines. A binary heap for now; the per-core timer wheel replaces it with heartbeats.
    timers: BinaryHeap<Reverse<(Timestamp, u32, u32, TimerKind)>>,
    epoch: Instant,
    accepting: bool,
    /// Set when a graceful shutdown started: when to give up waiting.
    shutdown_deadline: Option<Timestamp>,
}

impl<H: Handler> Worker<H> {
    pub(crate) fn new(
        listener: TcpListener,
        handler: H,
        cfg: Arc<ServerConfig>,
        counters: Arc<Counters>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<Self> {
        let uring = Uring::new(cfg.uring)?;
        Ok(Worker {
            uring,
            listener,
            slots: Slab::new(),
            handler,
            cfg,
            counters,
            stop,
            dirty: Vec::new(),
            starved: Vec::new(),
            timers: BinaryHeap::new(),
            epoch: Instant::now(),
            accepting: true,
            shutdown_deadline: None,
        })
    }

    /// The ring's flags, for the start-up log.
    pub(crate) fn uring(&self) -> &Uring {
        &self.uring
    }

    fn now(&self) -> Timestamp {
        Timestamp(self.epoch.elapsed().as_millis() as u64)
    }

    /// Runs until a graceful shutdown completes.
    pub(crate) fn run(mut self) -> io::Result<()> {
        self.uring.arm_accept_multi(self.listener.as_raw_fd())?;
        loop {
            self.flush()?;
            self.rearm_starved()?;
            let wait = self.wait_time();
            self.uring.submit_and_wait(1, Some(wait))?;
            while let Some(completion) = self.uring.next_completion() {
                self.on_completion(completion)?;
            }
            self.run_timers()?;
            Counters::set(
                &self.counters.buffers_lent,
                i64::from(self.uring.bufs().lent()),
            );
            if self.stop.load(Ordering::Relaxed) && self.shutdown_deadline.is_none() {
                self.begin_shutdown()?;
            }
            if let Some(deadline) = self.shutdown_deadline {
                if self.slots.len() == 0 {
                    return Ok(());
                }
                if self.now() >= deadline {
                    self.force_close_all()?;
                }
            }
        }
    }

    fn wait_time(&self) -> Duration {
        let tick = self.cfg.tick;
        match self.timers.peek() {
            Some(Reverse((at, ..))) => {
                let now = self.now();
                Duration::from_millis(at.0.saturating_sub(now.0))
                    .min(tick)
                    .max(Duration::from_millis(1))
            }
            None => tick,
        }
    }

    fn on_completion(&mut self, completion: Completion) -> io::Result<()> {
        match completion {
            Completion::Accepted { fd, more } => {
                self.on_accept(fd)?;
                if !more && self.accepting {
                    self.uring.arm_accept_multi(self.listener.as_raw_fd())?;
                }
            }
            Completion::AcceptError { errno, more } => {
                if errno != libc::ECANCELED {
                    tracing::warn!(
                        "accept failed: {} (at the open-files limit? see tuning/README.md, LimitNOFILE)",
                        io::Error::from_raw_os_error(errno)
                    );
                }
                if !more && self.accepting {
                    self.uring.arm_accept_multi(self.listener.as_raw_fd())?;
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
            Completion::RecvEof { slot, generation } => {
                self.with_slot(slot, generation, |s, h, ctx| {
                    s.flags.set(Flags::RECV_ARMED, false);
                    s.on_eof(h, ctx)
                })?;
            }
            Completion::RecvNoBufs { slot, generation } => {
                Counters::inc(&self.counters.recv_starved, 1);
                if let Some(s) = self.slots.get_mut(slot, generation) {
                    s.flags.set(Flags::RECV_ARMED, false);
                    if !s.flags.has(Flags::FD_CLOSING) {
                        self.starved.push((slot, generation));
                    }
                }
                self.try_free(slot, generation);
            }
            Completion::RecvCancelled { slot, generation } => {
                if let Some(s) = self.slots.get_mut(slot, generation) {
                    s.flags.set(Flags::RECV_ARMED, false);
                }
                self.try_free(slot, generation);
            }
            Completion::RecvError {
                slot,
                generation,
                more,
                ..
            } => {
                self.with_slot(slot, generation, |s, h, ctx| {
                    s.flags
                        .set(Flags::RECV_ARMED, more && s.flags.has(Flags::RECV_ARMED));
                    s.on_eof(h, ctx)
                })?;
            }
            Completion::Sent {
                slot,
                generation,
                result,
            } => {
                self.with_slot(slot, generation, |s, h, ctx| s.on_sent(result, h, ctx))?;
                self.try_free(slot, generation);
            }
            Completion::Closed {
                slot, generation, ..
            } => {
                if let Some(s) = self.slots.get_mut(slot, generation) {
                    s.flags.set(Flags::FD_CLOSED, true);
                }
                self.try_free(slot, generation);
            }
            _ => {}
        }
        Ok(())
    }

    fn on_accept(&mut self, fd: i32) -> io::Result<()> {
        Counters::inc(&self.counters.accepted, 1);
        if !self.accepting {
            return self.uring.close(fd, 0, 0);
        }
        let Some((slot, generation)) = self
            .slots
            .insert(Slot::new(fd), self.cfg.max_connections_per_worker)
        else {
            Counters::inc(&self.counters.refused, 1);
            return self.uring.close(fd, 0, 0);
        };
        Counters::add(&self.counters.connections, 1);
        self.uring.arm_recv_multi(fd, slot, generation)?;
        if let Some(s) = self.slots.get_mut(slot, generation) {
            s.flags.set(Flags::RECV_ARMED, true);
        }
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
        let now = self.now();
        let Worker {
            uring,
            slots,
            handler,
            cfg,
            counters,
            ..
        } = self;
        let actions = match slots.get_mut(slot, generation) {
            Some(s) => {
                s.flags.set(Flags::RECV_ARMED, more);
                if s.flags.has(Flags::SHUT_DOWN) || s.flags.has(Flags::FD_CLOSING) {
                    None // draining after our close: the bytes are dropped
                } else {
                    let ctx = Ctx { cfg, counters, now };
                    let data = uring.bufs().get(bid, len);
                    Some(s.on_bytes(data, handler, &ctx))
                }
            }
            None => None,
        };
        self.uring.bufs().recycle(bid);
        if let Some(actions) = actions {
            self.apply(slot, generation, actions)?;
        }
        if !more {
            // The multishot receive ended (the kernel's choice): arm it again if still reading.
            if let Some(s) = self.slots.get_mut(slot, generation) {
                if !s.flags.has(Flags::RECV_ARMED) && !s.flags.has(Flags::FD_CLOSING) {
                    s.flags.set(Flags::RECV_ARMED, true);
                    let fd = s.fd;
                    self.uring.arm_recv_multi(fd, slot, generation)?;
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
        let now = self.now();
        let Worker {
            slots,
            handler,
            cfg,
            counters,
            ..
        } = self;
        let Some(s) = slots.get_mut(slot, generation) else {
            return Ok(());
        };
        let actions = f(s, handler, &Ctx { cfg, counters, now });
        self.apply(slot, generation, actions)
    }

    fn apply(&mut self, slot: u32, generation: u32, actions: Actions) -> io::Result<()> {
        if let Some(at) = actions.deadline {
            self.timers
                .push(Reverse((at, slot, generation, TimerKind::Protocol)));
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
        Ok(())
    }

    /// One gathered send per connection with queued frames and none in flight; closes the
    /// connections that asked to close once flushed.
    fn flush(&mut self) -> io::Result<()> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut busy = Vec::new();
        for &(slot, generation) in &dirty {
            let Some(s) = self.slots.get_mut(slot, generation) else {
                continue;
            };
            if s.flags.has(Flags::FD_CLOSING) || s.out.sending() {
                s.flags.set(Flags::DIRTY, false);
                continue; // the completion of the send in flight flushes the rest
            }
            if !s.out.is_empty() {
                if self.uring.send_busy(slot) {
                    // A zero-copy send's bytes are still in use (or the slot's previous
                    // occupant's are): retry after the next completions.
                    busy.push((slot, generation));
                    continue;
                }
                s.flags.set(Flags::DIRTY, false);
                let fd = s.fd;
                let pending = s.out.pending().take(MAX_IOVECS);
                let (_, count) = self.uring.send_owned(fd, slot, generation, pending)?;
                s.out.sending_started(count);
            } else {
                s.flags.set(Flags::DIRTY, false);
                if s.flags.has(Flags::CLOSE_AFTER_FLUSH) && !s.flags.has(Flags::SHUT_DOWN) {
                    s.flags.set(Flags::SHUT_DOWN, true);
                    let _ = sys::shutdown_write(s.fd);
                    let at =
                        Timestamp(self.epoch.elapsed().as_millis() as u64).after(self.cfg.linger);
                    self.timers
                        .push(Reverse((at, slot, generation, TimerKind::Linger)));
                }
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
        self.dirty.extend(busy);
        Ok(())
    }

    fn rearm_starved(&mut self) -> io::Result<()> {
        if self.starved.is_empty() || self.uring.bufs().available() == 0 {
            return Ok(());
        }
        for (slot, generation) in std::mem::take(&mut self.starved) {
            if let Some(s) = self.slots.get_mut(slot, generation) {
                if !s.flags.has(Flags::RECV_ARMED) && !s.flags.has(Flags::FD_CLOSING) {
                    s.flags.set(Flags::RECV_ARMED, true);
                    let fd = s.fd;
                    self.uring.arm_recv_multi(fd, slot, generation)?;
                }
            }
        }
        Ok(())
    }

    fn run_timers(&mut self) -> io::Result<()> {
        let now = self.now();
        while let Some(Reverse((at, slot, generation, kind))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match kind {
                TimerKind::Protocol => {
                    self.with_slot(slot, generation, |s, h, ctx| s.on_timeout(h, ctx))?;
                }
                TimerKind::Linger => self.close_fd(slot, generation)?,
            }
        }
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
        let fd = s.fd;
        if s.flags.has(Flags::RECV_ARMED) || s.out.sending() {
            self.uring.cancel_fd(fd, slot, generation)?;
        }
        self.uring.close(fd, slot, generation)
    }

    fn try_free(&mut self, slot: u32, generation: u32) {
        let finished = self
            .slots
            .get_mut(slot, generation)
            .is_some_and(|s| s.is_finished());
        if finished {
            if let Some(s) = self.slots.remove(slot, generation) {
                Counters::add(&self.counters.bytes_queued, -(s.out.queued() as i64));
                Counters::add(&self.counters.connections, -1);
            }
        }
    }

    fn begin_shutdown(&mut self) -> io::Result<()> {
        self.accepting = false;
        self.uring.cancel_accept()?;
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
            self.with_slot(slot, generation, |s, h, ctx| s.on_eof(h, ctx))?;
        }
        Ok(())
    }
}
