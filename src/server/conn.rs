//! One connection's slot and everything that happens to it between the I/O backend and the
//! protocol core: the handshake, messages to the handler, the outbound queue, closing.
//!
//! Nothing here touches a socket: the worker's I/O backend hands bytes in and reads back what
//! to do ([`Actions`]). That is the seam another backend (epoll) plugs into. The life of a slot
//! is drawn on [`Phase`].

use std::cell::RefCell;
use std::mem;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use bytes::Bytes;

use super::compress::{self, Codecs, Pmd};
use super::config::ServerConfig;
use super::counters::Counters;
use super::dispatch::{ReadSink, conn};
use super::handler::{Cork, Decision, Handler, HttpResponse, Upgrade};
use super::ops::Op;
use super::outbox::Kind;
use super::outbox::{Outbox, Refused};
use super::pubsub::ConnId;
use crate::proto::deflate;
use crate::proto::frame::{Frame, RSV1};
use crate::proto::handshake::{self, Head, HeadReader, Request};
use crate::proto::{CloseCode, Connection, Error, Timestamp};

/// Where a connection is in its life: the one state of a slot, with [`Flags`] for what is in
/// flight and what it waits for. Phases are named for what they wait for.
///
/// ```text
///  accepted ──► AwaitHead ──head complete, upgrade accepted (101 queued)──► Open ─────────────┐
///               (the request head,               ws: the protocol core's    (messages both    │
///                for handshake_timeout)          State; the handler's state  ways)            │
///                   │                                                          │               │
///                   │ HTTP request answered, bad head (4xx), refused (401...)  │ close frame   │
///                   ▼                                                          │ in or out,    │
///               Closing ◄─────────────────────────────────────────────────────┘ protocol     │
///   nothing more for the application; the flags say what it waits for:          error, EOF,   │
///                                                                                timeouts,     │
///     CLOSE_AFTER_FLUSH: its queue to go out (at most close_timeout)             shutdown      │
///        │ queue empty                                                                         │
///        ▼                                                                                     │
///     SHUT_DOWN: our side is shut (FIN sent); input drained until the peer's                  │
///        │       EOF (at most linger), so unread input cannot turn into a reset                │
///        │ EOF, reset or the deadline                                                          │
///        ▼                                                                                     │
///     FD_CLOSING: receive cancelled, close queued in the backend  ◄── reset, pong timeout, ────┘
///        │ close completed, nothing armed, no send in flight           handshake timeout
///        ▼
///     FD_CLOSED: the slot is freed; its generation changes, so late completions are ignored
/// ```
///
/// Beside the phase, the reading side while open: `RECV_ARMED` (a receive is armed) →
/// `READ_PAUSED` once replies to a read bring the queue to `max_outbound_bytes` (with
/// `RECV_STOPPING` while the cancel is in flight, and `INPUT_HELD` if bytes arrived meanwhile:
/// they are fed on resume) → `RECV_ARMED` again at the low-water mark, or once closing (a close
/// reply must be read). `DIRTY`: listed for the next flush. `PING_OUTSTANDING`: a heartbeat
/// ping is unanswered. `PEER_EOF`: the peer's stream ended (no lingering then).
pub(crate) enum Phase<S> {
    /// Reading the HTTP request head; since the accept at this worker-clock millisecond
    /// (wrapping: a handshake lasts seconds at most), for the handshake's duration.
    AwaitHead(HeadReader, u32),
    /// Upgraded: the protocol state and the handler's state.
    Open { ws: Connection, state: S },
    /// Nothing more is read for the application: flushing what is queued, then closing.
    Closing,
}

/// One connection slot.
pub(crate) struct Slot<S> {
    /// The socket, until its close is handed to the backend.
    pub(crate) fd: Option<OwnedFd>,
    pub(crate) phase: Phase<S>,
    pub(crate) out: Outbox,
    /// What is in flight and what is due, in one byte (see [`Flags`]).
    pub(crate) flags: Flags,
    /// A tick whose meaning depends on the phase: when the connection was accepted
    /// (handshake), when the application last got a message (open, for the idle timeout),
    /// when our side was shut down (closing, for the linger).
    pub(crate) since: u32,
    /// The tick bytes last arrived in (liveness: any frame counts), rounded down: the next
    /// heartbeat ping is due at `last_seen + ping_interval`, so it goes out up to one tick
    /// before that much silence and never after (a ping is a probe: early by a tick costs
    /// nothing, while rounding up would make every steady-state ping a tick late, since the
    /// pong answering a ping sent on a tick arrives just after it). The pong deadline counts
    /// from the ping's own tick, so the peer always has the whole `pong_timeout`.
    pub(crate) last_seen: u32,
    /// permessage-deflate, if negotiated (one byte: it fits the slot's padding).
    pub(crate) pmd: Pmd,
}

/// The heartbeat ping: an empty, unmasked ping frame, shared by every connection.
const HEARTBEAT_PING: Bytes = Bytes::from_static(&[0x89, 0x00]);

/// A slot's booleans packed in two bytes (the slot is per connection: every byte counts).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flags(u16);

impl Flags {
    /// A multishot receive is armed.
    pub(crate) const RECV_ARMED: u16 = 1 << 0;
    /// The worker listed this slot for a flush.
    pub(crate) const DIRTY: u16 = 1 << 1;
    /// Close the socket once the queue is empty.
    pub(crate) const CLOSE_AFTER_FLUSH: u16 = 1 << 2;
    /// Our writing side is shut down; waiting for the peer's EOF (or the linger deadline).
    pub(crate) const SHUT_DOWN: u16 = 1 << 3;
    /// Cancel and close of the fd are queued; the slot is freed when they complete.
    pub(crate) const FD_CLOSING: u16 = 1 << 4;
    /// The fd's close completed.
    pub(crate) const FD_CLOSED: u16 = 1 << 5;
    /// We sent a heartbeat ping at `last_seen + ping_interval` and nothing arrived since.
    pub(crate) const PING_OUTSTANDING: u16 = 1 << 6;
    /// The peer's stream ended: after our last bytes, close without lingering.
    pub(crate) const PEER_EOF: u16 = 1 << 7;
    /// Flow control: the queue passed its high-water mark, so reading stopped until it drains
    /// to the low-water mark.
    pub(crate) const READ_PAUSED: u16 = 1 << 8;
    /// A cancel of the armed receive is in flight (reading is pausing).
    pub(crate) const RECV_STOPPING: u16 = 1 << 9;
    /// The worker holds input of this connection that arrived after reading paused (before
    /// the cancel landed): it is fed before reading is re-armed.
    pub(crate) const INPUT_HELD: u16 = 1 << 10;
    /// It took a run of publications in this loop iteration (see
    /// [`Home::publish_run`](crate::server::Home::publish_run)): the iteration's later runs go
    /// with it, so a burst that came in several pieces is not cut before the queue could drain.
    /// Cleared at the iteration's flush.
    pub(crate) const RUN_TAKEN: u16 = 1 << 11;

    /// Whether `flag` is set.
    pub(crate) fn has(self, flag: u16) -> bool {
        self.0 & flag != 0
    }

    /// Sets or clears `flag`.
    pub(crate) fn set(&mut self, flag: u16, on: bool) {
        if on {
            self.0 |= flag;
        } else {
            self.0 &= !flag;
        }
    }
}

/// What the backend must do for a slot after an event.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Actions {
    /// Frames were queued: flush them.
    pub(crate) flush: bool,
    /// The slot's deadlines changed: re-arm its timer at [`Slot::next_deadline`].
    pub(crate) rearm: bool,
    /// Close the socket now, without flushing (peer gone, or nothing left to say).
    pub(crate) close_now: bool,
    /// Replies to what was just read brought the queue to its high-water mark: reading must
    /// pause (see [`Slot::flow`]). Broadcasts filling the queue never set it: a slow
    /// subscriber must still be heard, its requests and heartbeats read.
    pub(crate) replies_over: bool,
}

impl Actions {
    /// Both: what either asks for.
    pub(crate) fn and(self, other: Actions) -> Actions {
        Actions {
            flush: self.flush || other.flush,
            rearm: self.rearm || other.rearm,
            close_now: self.close_now || other.close_now,
            replies_over: self.replies_over || other.replies_over,
        }
    }
}

/// What became of a publication for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Queued: flush the connection.
    Queued,
    /// Dropped by the policy (the queue is full).
    Dropped,
    /// The policy closes the connection (1013).
    Close,
    /// The connection is closing: nothing more is sent.
    Closed,
}

/// What flow control asks of the worker after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Nothing changes.
    Keep,
    /// Stop reading: the queue reached its high-water mark.
    Pause,
    /// Read again: the queue drained to its low-water mark, or no reply can be queued any more
    /// (closing: the peer's close reply must be read).
    Resume,
}

/// The context every slot operation needs.
pub(crate) struct Ctx<'a> {
    pub(crate) cfg: &'a ServerConfig,
    pub(crate) counters: &'a Counters,
    /// Milliseconds since the worker started (the protocol core's clock), rounded down: what
    /// deadlines are checked against.
    pub(crate) now: Timestamp,
    /// The same moment rounded up: what a deadline counts from, so that it is never early.
    pub(crate) start: Timestamp,
    /// The current tick of the worker's timer wheel.
    pub(crate) tick: u32,
    /// The connection this event is for.
    pub(crate) id: ConnId,
    /// Topic operations the handler asks for, applied by the worker after the callback.
    pub(crate) ops: &'a RefCell<Vec<Op>>,
    /// The worker's permessage-deflate codecs.
    pub(crate) codecs: &'a RefCell<Codecs>,
}

impl Ctx<'_> {
    /// `d` in ticks, rounded up (a timeout never fires early).
    pub(crate) fn ticks(&self, d: Duration) -> u32 {
        let tick_ms = self.cfg.tick.as_millis().max(1);
        u32::try_from(d.as_millis().div_ceil(tick_ms)).unwrap_or(u32::MAX)
    }

    /// The tick a start time (a deadline counts from it) is stamped with: now, rounded up, so
    /// that a deadline counted from it is never early (and at most one tick late).
    pub(crate) fn stamp(&self) -> u32 {
        self.tick_of(self.start)
    }

    /// The tick of a protocol-core timestamp, rounded up.
    pub(crate) fn tick_of(&self, t: Timestamp) -> u32 {
        let tick_ms = self.cfg.tick.as_millis().max(1) as u64;
        t.0.div_ceil(tick_ms) as u32
    }

    /// Whether tick `t` has come.
    pub(crate) fn reached(&self, t: u32) -> bool {
        self.tick.wrapping_sub(t) as i32 >= 0
    }

    /// The earlier of two deadlines (ticks wrap: compared relative to now).
    fn earlier(&self, a: Option<u32>, b: Option<u32>) -> Option<u32> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if a.wrapping_sub(self.tick) <= b.wrapping_sub(self.tick) {
                a
            } else {
                b
            }),
            (a, b) => a.or(b),
        }
    }
}

impl<S> Slot<S> {
    /// A slot for a socket just accepted (at `accepted_ms` of the worker's clock): waiting for
    /// its request head.
    pub(crate) fn new(fd: OwnedFd, accepted_ms: u32) -> Self {
        Slot {
            fd: Some(fd),
            phase: Phase::AwaitHead(HeadReader::new(), accepted_ms),
            out: Outbox::default(),
            flags: Flags::default(),
            since: 0,
            last_seen: 0,
            pmd: Pmd::OFF,
        }
    }

    /// Bytes arrived. `data` is mutable: the protocol core unmasks in place.
    pub(crate) fn on_bytes<H: Handler<State = S>>(
        &mut self,
        data: &mut [u8],
        handler: &mut H,
        ctx: &Ctx<'_>,
    ) -> Actions {
        let before = self.out.queued();
        self.out.take_offered();
        let mut actions = match &mut self.phase {
            Phase::AwaitHead(..) => self.on_handshake_bytes(data, handler, ctx),
            Phase::Open { .. } => self.on_ws_bytes(data, handler, ctx),
            // Draining after our close: input is read and dropped until EOF.
            Phase::Closing => Actions::default(),
        };
        // Whatever was offered to the queue during a read (queued, or refused because the
        // queue is full) was a reply to it: with the queue at its mark, reading must pause.
        actions.replies_over =
            self.out.take_offered() && self.out.queued() >= ctx.cfg.max_outbound_bytes;
        self.account(before, ctx, &mut actions);
        actions
    }

    /// The peer's stream ended (EOF, reset or a receive error).
    pub(crate) fn on_eof<H: Handler<State = S>>(
        &mut self,
        handler: &mut H,
        ctx: &Ctx<'_>,
        reset: bool,
    ) -> Actions {
        self.flags.set(Flags::PEER_EOF, true);
        if let Phase::Open { ws, .. } = &mut self.phase {
            let clean = ws.handle_eof();
            self.end(handler, ctx, CloseCode::ABNORMAL, "", clean);
        } else {
            self.phase = Phase::Closing;
        }
        if reset || self.out.is_empty() {
            return Actions {
                close_now: true,
                ..Actions::default()
            };
        }
        // A half-close (FIN) after a request or a close frame: what is queued (an HTTP
        // response, our close reply) still goes out, then the socket closes.
        self.flags.set(Flags::CLOSE_AFTER_FLUSH, true);
        self.since = ctx.stamp();
        Actions {
            flush: true,
            rearm: true,
            ..Actions::default()
        }
    }

    /// A send completed with `result` bytes (or `-errno`).
    pub(crate) fn on_sent<H: Handler<State = S>>(
        &mut self,
        result: i32,
        handler: &mut H,
        ctx: &Ctx<'_>,
    ) -> Actions {
        let before = self.out.queued();
        let mut actions = Actions::default();
        if result < 0 {
            // The peer is gone (EPIPE, ECONNRESET) or the send was cancelled: nothing more goes
            // out on this socket.
            self.out.clear();
            actions.close_now = true;
            if let Phase::Open { ws, .. } = &mut self.phase {
                let clean = ws.handle_eof();
                self.end(handler, ctx, CloseCode::ABNORMAL, "", clean);
            }
        } else {
            Counters::inc(&ctx.counters.bytes_sent, result as u64);
            self.out.sent(result as usize);
            actions.flush = !self.out.is_empty();
            if self.out.wants_drain && self.out.queued() < ctx.cfg.max_outbound_bytes {
                self.out.wants_drain = false;
                let mut close = None;
                if let Phase::Open { state, .. } = &mut self.phase {
                    let mut conn = conn(
                        state,
                        self.pmd,
                        &mut self.out,
                        &mut close,
                        self.fd.as_ref().map(AsFd::as_fd),
                        ctx,
                        false,
                    );
                    handler.drain(&mut conn);
                }
                self.apply_close_request(close, ctx, &mut actions);
            }
        }
        self.account(before, ctx, &mut actions);
        actions
    }

    /// A timer the handler set for this connection is due: the handler's `timer` runs if the
    /// connection is still open (its sends there are not replies: the backpressure policy
    /// applies at the high-water mark).
    pub(crate) fn on_handler_timer<H: Handler<State = S>>(
        &mut self,
        handler: &mut H,
        ctx: &Ctx<'_>,
        token: u64,
    ) -> Actions {
        self.with_open(handler, ctx, |h, conn| h.timer(conn, token))
    }

    /// Data for the handler from outside the worker ([`Handler::notify`]).
    pub(crate) fn on_notify<H: Handler<State = S>>(
        &mut self,
        handler: &mut H,
        ctx: &Ctx<'_>,
        data: Box<dyn std::any::Any + Send>,
    ) -> Actions {
        self.with_open(handler, ctx, |h, conn| h.notify(conn, data))
    }

    /// Calls the handler with the connection, if it is open and may still send; then applies
    /// what it asked for (a close) and accounts for what it queued.
    fn with_open<H: Handler<State = S>>(
        &mut self,
        handler: &mut H,
        ctx: &Ctx<'_>,
        f: impl FnOnce(&mut H, &mut crate::server::Conn<'_, S>),
    ) -> Actions {
        let before = self.out.queued();
        let mut actions = Actions::default();
        let mut close = None;
        if let Phase::Open { state, .. } = &mut self.phase {
            if self.out.sendable {
                let mut conn = conn(
                    state,
                    self.pmd,
                    &mut self.out,
                    &mut close,
                    self.fd.as_ref().map(AsFd::as_fd),
                    ctx,
                    false,
                );
                f(handler, &mut conn);
            }
        }
        self.apply_close_request(close, ctx, &mut actions);
        self.account(before, ctx, &mut actions);
        actions
    }

    /// When this slot's timer must fire next, in ticks: the handshake deadline, the next
    /// heartbeat ping or pong deadline, the idle timeout, the close-handshake deadline or the end
    /// of lingering, whichever comes first for its phase.
    pub(crate) fn next_deadline(&self, ctx: &Ctx<'_>) -> Option<u32> {
        let cfg = ctx.cfg;
        match &self.phase {
            Phase::AwaitHead(..) => Some(self.since.wrapping_add(ctx.ticks(cfg.handshake_timeout))),
            Phase::Open { ws, .. } => {
                if let Some(deadline) = ws.poll_timeout() {
                    return Some(ctx.tick_of(deadline));
                }
                let heartbeat = cfg.ping_interval.map(|interval| {
                    let ping_at = self.last_seen.wrapping_add(ctx.ticks(interval));
                    if self.flags.has(Flags::PING_OUTSTANDING) {
                        ping_at.wrapping_add(ctx.ticks(cfg.pong_timeout))
                    } else {
                        ping_at
                    }
                });
                let idle = cfg
                    .idle_timeout
                    .map(|d| self.since.wrapping_add(ctx.ticks(d)));
                ctx.earlier(heartbeat, idle)
            }
            // Lingering after our shutdown; or still flushing, for at most the close timeout (a
            // peer that stopped reading must not hold its slot).
            Phase::Closing if self.flags.has(Flags::SHUT_DOWN) => {
                Some(self.since.wrapping_add(ctx.ticks(cfg.linger)))
            }
            Phase::Closing => self
                .flags
                .has(Flags::CLOSE_AFTER_FLUSH)
                .then(|| self.since.wrapping_add(ctx.ticks(cfg.proto.close_timeout))),
        }
    }

    /// The slot's timer fired: does what is due (and only that; early is a no-op).
    pub(crate) fn on_tick<H: Handler<State = S>>(
        &mut self,
        handler: &mut H,
        ctx: &Ctx<'_>,
    ) -> Actions {
        let before = self.out.queued();
        let cfg = ctx.cfg;
        let counters = ctx.counters;
        let mut actions = Actions {
            rearm: true,
            ..Actions::default()
        };
        match &mut self.phase {
            Phase::AwaitHead(..) => {
                if ctx.reached(self.since.wrapping_add(ctx.ticks(cfg.handshake_timeout))) {
                    // Slowloris, or a client that connected and said nothing.
                    Counters::inc(&counters.handshake_timeouts, 1);
                    self.phase = Phase::Closing;
                    actions.close_now = true;
                }
            }
            Phase::Open { ws, .. } => {
                let outstanding = self.flags.has(Flags::PING_OUTSTANDING);
                let ping_at = cfg
                    .ping_interval
                    .map(|i| self.last_seen.wrapping_add(ctx.ticks(i)));
                if ws.poll_timeout().is_some() {
                    if ws.handle_timeout(ctx.now) {
                        // No close reply in time: give up on the handshake.
                        Counters::inc(&counters.close_timeouts, 1);
                        self.end(
                            handler,
                            ctx,
                            CloseCode::ABNORMAL,
                            "close reply timed out",
                            false,
                        );
                        actions.close_now = true;
                    }
                } else if let (true, Some(ping_at)) = (outstanding, ping_at) {
                    if ctx.reached(ping_at.wrapping_add(ctx.ticks(cfg.pong_timeout))) {
                        // Nothing since our ping: the peer is gone (no FIN: a phone changed
                        // networks, a laptop slept). No close handshake with a dead peer.
                        Counters::inc(&counters.pong_timeouts, 1);
                        self.end(handler, ctx, CloseCode::ABNORMAL, "pong timeout", false);
                        actions.close_now = true;
                    }
                } else if cfg
                    .idle_timeout
                    .is_some_and(|d| ctx.reached(self.since.wrapping_add(ctx.ticks(d))))
                {
                    Counters::inc(&counters.idle_timeouts, 1);
                    self.apply_close_request(
                        Some((CloseCode::NORMAL, "idle timeout".into())),
                        ctx,
                        &mut actions,
                    );
                } else if let Some(ping_at) = ping_at.filter(|&t| ctx.reached(t)) {
                    let _ = ping_at;
                    if ws.state().can_send() {
                        // One static frame for every heartbeat: no allocation per ping.
                        self.out.push(HEARTBEAT_PING.clone(), Kind::Control);
                        self.flags.set(Flags::PING_OUTSTANDING, true);
                        Counters::inc(&counters.pings_sent, 1);
                        actions.flush = true;
                    }
                }
            }
            Phase::Closing => {
                let (flag, wait) = if self.flags.has(Flags::SHUT_DOWN) {
                    (Flags::SHUT_DOWN, cfg.linger)
                } else {
                    (Flags::CLOSE_AFTER_FLUSH, cfg.proto.close_timeout)
                };
                if self.flags.has(flag) && ctx.reached(self.since.wrapping_add(ctx.ticks(wait))) {
                    actions.close_now = true;
                }
            }
        }
        self.account(before, ctx, &mut actions);
        actions
    }

    /// Bytes arrived in `tick` (now, rounded down: see `last_seen`): the peer is alive. (Counts
    /// for the heartbeat only; it does not touch the timer: the next expiry looks at
    /// `last_seen`.)
    pub(crate) fn seen(&mut self, tick: u32) {
        self.last_seen = tick;
        self.flags.set(Flags::PING_OUTSTANDING, false);
    }

    /// Starts closing from our side (server shutdown, or the application): a close frame on an
    /// open connection, an immediate close during the handshake.
    pub(crate) fn begin_close(&mut self, code: CloseCode, reason: &str, ctx: &Ctx<'_>) -> Actions {
        let before = self.out.queued();
        let mut actions = Actions::default();
        match &self.phase {
            Phase::Open { .. } => {
                self.apply_close_request(Some((code, reason.to_owned())), ctx, &mut actions)
            }
            Phase::AwaitHead(..) => {
                self.phase = Phase::Closing;
                actions.close_now = true;
            }
            Phase::Closing => {}
        }
        self.account(before, ctx, &mut actions);
        actions
    }

    /// A publication for this connection (a topic's subscriber): queued under the
    /// backpressure policy at the high-water mark. Returns whether the connection must now
    /// close (policy `Close`, 1013).
    pub(crate) fn push_publication(&mut self, frame: &Frame, ctx: &Ctx<'_>) -> Delivery {
        self.push_publication_over(frame, 0, ctx)
    }

    /// The queue's limit for publications: a paused connection takes them only up to the
    /// low-water mark, so that its queue can drain there and reading resume even while its
    /// rooms are busy.
    pub(crate) fn publication_limit(&self, cfg: &ServerConfig) -> usize {
        if self.flags.has(Flags::READ_PAUSED) {
            cfg.low_water()
        } else {
            cfg.max_outbound_bytes
        }
    }

    /// [`Slot::push_publication`] with the queue's limit raised by `allowance` bytes (a
    /// home's preamble: see [`Home::join`](crate::server::Home::join)).
    pub(crate) fn push_publication_over(
        &mut self,
        frame: &Frame,
        allowance: usize,
        ctx: &Ctx<'_>,
    ) -> Delivery {
        let cfg = ctx.cfg;
        if !self.out.sendable {
            return Delivery::Closed;
        }
        let frame = compress::frame(
            ctx.codecs,
            self.pmd,
            ctx.id.slot,
            frame,
            &cfg.compression,
            ctx.counters,
        );
        let before = self.out.queued();
        // A paused connection takes broadcasts only up to the low-water mark, so that its queue
        // can drain there and reading resume even while its rooms are busy.
        let limit = allowance + self.publication_limit(cfg);
        match self.out.push_data(frame, limit, cfg.backpressure) {
            Ok(dropped_older) => {
                Counters::inc(&ctx.counters.delivered, 1);
                Counters::inc(&ctx.counters.dropped, dropped_older as u64);
                let after = self.out.queued();
                Counters::add(&ctx.counters.bytes_queued, after as i64 - before as i64);
                Delivery::Queued
            }
            Err(Refused::Closed) => Delivery::Closed,
            Err(Refused::Full(super::Backpressure::Close)) => {
                Counters::inc(&ctx.counters.dropped, 1);
                Delivery::Close
            }
            Err(Refused::Full(_)) => {
                Counters::inc(&ctx.counters.dropped, 1);
                Delivery::Dropped
            }
        }
    }

    /// Flow control, after anything that changed the queue: pause reading when replies to what
    /// was read brought the queue to the high-water mark (`replies_over`, from the read's
    /// [`Actions`]; while replies can still be queued), resume at the low-water mark or once
    /// closing.
    pub(crate) fn flow(&mut self, cfg: &ServerConfig, replies_over: bool) -> Flow {
        let queued = self.out.queued();
        if self.flags.has(Flags::READ_PAUSED) {
            if queued <= cfg.low_water() || !self.out.sendable {
                self.flags.set(Flags::READ_PAUSED, false);
                return Flow::Resume;
            }
        } else if replies_over && self.out.sendable && queued >= cfg.max_outbound_bytes {
            self.flags.set(Flags::READ_PAUSED, true);
            return Flow::Pause;
        }
        Flow::Keep
    }

    /// The armed receive ended (its last completion, a cancel, an error or EOF).
    pub(crate) fn recv_ended(&mut self) {
        self.flags.set(Flags::RECV_ARMED, false);
        self.flags.set(Flags::RECV_STOPPING, false);
    }

    /// Whether the slot is done: its fd closed, no operation in flight.
    pub(crate) fn is_finished(&self) -> bool {
        self.flags.has(Flags::FD_CLOSED)
            && !self.flags.has(Flags::RECV_ARMED)
            && !self.out.sending()
    }

    // ------------------------------------------------------------------ internals

    fn on_handshake_bytes<H: Handler<State = S>>(
        &mut self,
        data: &mut [u8],
        handler: &mut H,
        ctx: &Ctx<'_>,
    ) -> Actions {
        let Phase::AwaitHead(reader, _) = &mut self.phase else {
            return Actions::default();
        };
        let limits = &ctx.cfg.proto.limits;
        // Decide with the head borrowed, then change phase with it released.
        let outcome = match reader.handle_bytes(data, limits) {
            Ok(Head::Incomplete) => Outcome::Incomplete,
            Err(e) => handshake_error(e, ctx),
            Ok(Head::Complete { head, rest }) => match Request::parse(head, limits) {
                Err(e) => handshake_error(e, ctx),
                Ok(Request::Http(req)) => {
                    Counters::inc(&ctx.counters.http_requests, 1);
                    let resp = handler.http(&req);
                    Outcome::Respond(if req.method() == "HEAD" {
                        resp.head()
                    } else {
                        resp.to_bytes()
                    })
                }
                Ok(Request::Upgrade(req)) => match handler.upgrade(&Upgrade {
                    req: &req,
                    fd: self.fd.as_ref().map(AsFd::as_fd),
                }) {
                    Decision::Reject { status, reason } => {
                        Counters::inc(&ctx.counters.handshake_errors, 1);
                        Outcome::Respond(handshake::reject(status, reason))
                    }
                    Decision::Accept { state, protocol } => {
                        let agreement = deflate::negotiate(req.extensions(), &ctx.cfg.compression);
                        let extensions = agreement.map(|a| a.response());
                        match handshake::accept(&req, protocol, extensions.as_deref()) {
                            Ok(response) => Outcome::Upgraded {
                                response,
                                state,
                                agreement,
                                rest: rest.to_vec(),
                            },
                            Err(e) => {
                                tracing::error!("handler chose an invalid handshake answer: {e}");
                                Outcome::Respond(
                                    HttpResponse::text(500, "internal error\n").to_bytes(),
                                )
                            }
                        }
                    }
                },
            },
        };
        match outcome {
            Outcome::Incomplete => Actions::default(),
            Outcome::Respond(response) => {
                self.out.push(Bytes::from(response), Kind::Response);
                self.phase = Phase::Closing;
                self.flags.set(Flags::CLOSE_AFTER_FLUSH, true);
                self.since = ctx.stamp();
                Actions {
                    flush: true,
                    rearm: true,
                    ..Actions::default()
                }
            }
            Outcome::Upgraded {
                response,
                state,
                agreement,
                mut rest,
            } => {
                self.out.push(Bytes::from(response), Kind::Response);
                self.out.sendable = true;
                if let Phase::AwaitHead(_, accepted) = self.phase {
                    let ms = (ctx.now.0 as u32).wrapping_sub(accepted);
                    ctx.counters
                        .timings
                        .handshake
                        .record(u64::from(ms) * 1_000_000);
                }
                self.phase = Phase::Open {
                    // RSV1 marks a compressed message once permessage-deflate is agreed.
                    ws: Connection::with_rsv(if agreement.is_some() { RSV1 } else { 0 }),
                    state,
                };
                self.pmd = ctx.codecs.borrow_mut().agree(ctx.id.slot, agreement);
                (self.since, self.last_seen) = (ctx.stamp(), ctx.tick);
                Counters::inc(&ctx.counters.upgraded, 1);
                Counters::add(&ctx.counters.open, 1);
                let mut actions = Actions {
                    flush: true,
                    rearm: true,
                    ..Actions::default()
                };
                let mut close = None;
                if let Phase::Open { state, .. } = &mut self.phase {
                    let mut conn = conn(
                        state,
                        self.pmd,
                        &mut self.out,
                        &mut close,
                        self.fd.as_ref().map(AsFd::as_fd),
                        ctx,
                        true,
                    );
                    handler.open(&mut conn);
                }
                self.apply_close_request(close, ctx, &mut actions);
                if !rest.is_empty() {
                    // Frames that came in the same read as the request.
                    let more = self.on_ws_bytes(&mut rest, handler, ctx);
                    actions.close_now |= more.close_now;
                    actions.rearm |= more.rearm;
                }
                actions
            }
        }
    }

    fn on_ws_bytes<H: Handler<State = S>>(
        &mut self,
        data: &mut [u8],
        handler: &mut H,
        ctx: &Ctx<'_>,
    ) -> Actions {
        let Phase::Open { ws, state } = &mut self.phase else {
            return Actions::default();
        };
        let mut close = None;
        let mut sink = ReadSink {
            handler,
            state,
            pmd: self.pmd,
            out: &mut self.out,
            close: &mut close,
            peer_close: None,
            got_message: false,
            fd: self.fd.as_ref().map(AsFd::as_fd),
            ctx,
            cork: Cork::new(data.len()),
        };
        let result = ws.handle_read(&ctx.cfg.proto, data, &mut sink);
        sink.finish();
        let peer_close = sink.peer_close.take();
        if sink.got_message {
            self.since = ctx.stamp(); // the idle timeout counts from the last message
        }
        let mut actions = Actions {
            flush: true,
            ..Actions::default()
        };
        match result {
            Err(e) => {
                Counters::inc(&ctx.counters.protocol_errors, 1);
                let code = e.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
                self.end(handler, ctx, code, e.reason(), false);
                actions.rearm = true;
            }
            Ok(()) if ws.is_closed() => {
                let (code, reason) = peer_close.unwrap_or((CloseCode::NO_STATUS, String::new()));
                self.end(handler, ctx, code, &reason, true);
                actions.rearm = true;
            }
            Ok(()) => self.apply_close_request(close, ctx, &mut actions),
        }
        actions
    }

    /// Starts the close handshake the handler asked for (if it did).
    fn apply_close_request(
        &mut self,
        request: Option<(CloseCode, String)>,
        ctx: &Ctx<'_>,
        actions: &mut Actions,
    ) {
        let Some((code, reason)) = request else {
            return;
        };
        let Phase::Open { ws, .. } = &mut self.phase else {
            return;
        };
        self.out.sendable = false;
        let code = if code.is_sendable() {
            code
        } else {
            CloseCode::INTERNAL_ERROR
        };
        if let Ok(frame) = ws.close(&ctx.cfg.proto, code, &reason, ctx.start) {
            self.out.push(Bytes::copy_from_slice(&frame), Kind::Control);
            actions.flush = true;
            actions.rearm = true;
        }
    }

    /// The WebSocket connection is over: the handler gets its state back, the slot closes after
    /// flushing its last frames.
    fn end<H: Handler<State = S>>(
        &mut self,
        handler: &mut H,
        ctx: &Ctx<'_>,
        code: CloseCode,
        reason: &str,
        clean: bool,
    ) {
        let Phase::Open { state, .. } = mem::replace(&mut self.phase, Phase::Closing) else {
            return;
        };
        // Nothing more is compressed or inflated for it.
        ctx.codecs.borrow_mut().forget(ctx.id.slot, self.pmd);
        self.pmd = Pmd::OFF;
        self.out.sendable = false;
        self.flags.set(Flags::CLOSE_AFTER_FLUSH, true);
        self.since = ctx.stamp(); // the flush deadline counts from here
        Counters::add(&ctx.counters.open, -1);
        Counters::inc(
            if clean {
                &ctx.counters.closed_clean
            } else {
                &ctx.counters.closed_abnormal
            },
            1,
        );
        handler.close(state, code, reason);
    }

    fn account(&self, before: usize, ctx: &Ctx<'_>, actions: &mut Actions) {
        let after = self.out.queued();
        if after != before {
            Counters::add(&ctx.counters.bytes_queued, after as i64 - before as i64);
        }
        actions.flush |= !self.out.is_empty();
    }
}

/// How a request head was answered.
enum Outcome<S> {
    Incomplete,
    Upgraded {
        response: Vec<u8>,
        state: S,
        agreement: Option<deflate::Agreement>,
        rest: Vec<u8>,
    },
    Respond(Vec<u8>),
}

fn handshake_error<S>(e: Error, ctx: &Ctx<'_>) -> Outcome<S> {
    Counters::inc(&ctx.counters.handshake_errors, 1);
    Outcome::Respond(handshake::error_response(e))
}

#[cfg(test)]
mod tests;
