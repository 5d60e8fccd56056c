//! One connection's slot and everything that happens to it between the I/O backend and the
//! protocol core: the handshake, messages to the handler, the outbound queue, closing.
//!
//! Nothing here touches a socket: the worker's I/O backend hands bytes in and reads back what
//! to do ([`Actions`]). That is the seam another backend (epoll) plugs into.
//!
//! Life of a slot:
//!
//! ```text
//! Handshake ──101──► Open ──close frame in/out, error──► Closing ──queue flushed──► (shut down,
//!     │                                                    ▲          drained or lingered,
//!     └── HTTP response / 4xx ─────────────────────────────┘          fd closed, slot freed)
//! ```

use std::mem;
use std::os::fd::RawFd;

use bytes::Bytes;

use super::config::ServerConfig;
use super::counters::Counters;
use super::handler::{Conn, Decision, Handler, HttpResponse, Message};
use super::outbox::Outbox;
use crate::proto::handshake::{self, Head, HeadReader, Request};
use crate::proto::{CloseCode, Connection, Error, Event, Sink, Timestamp};

/// Where a connection is in its life.
pub(crate) enum Phase<S> {
    /// Reading the HTTP request head.
    Handshake(HeadReader),
    /// Upgraded: the protocol state and the handler's state.
    Open { ws: Connection, state: S },
    /// Nothing more is read for the application: flushing what is queued, then closing.
    Closing,
}

/// One connection slot.
pub(crate) struct Slot<S> {
    pub(crate) fd: RawFd,
    pub(crate) phase: Phase<S>,
    pub(crate) out: Outbox,
    /// What is in flight and what is due, in one byte (see [`Flags`]).
    pub(crate) flags: Flags,
}

/// A slot's booleans packed in one byte (the slot is per connection: every byte counts).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flags(u8);

impl Flags {
    /// A multishot receive is armed.
    pub(crate) const RECV_ARMED: u8 = 1 << 0;
    /// The worker listed this slot for a flush.
    pub(crate) const DIRTY: u8 = 1 << 1;
    /// Close the socket once the queue is empty.
    pub(crate) const CLOSE_AFTER_FLUSH: u8 = 1 << 2;
    /// Our writing side is shut down; waiting for the peer's EOF (or the linger deadline).
    pub(crate) const SHUT_DOWN: u8 = 1 << 3;
    /// Cancel and close of the fd are queued; the slot is freed when they complete.
    pub(crate) const FD_CLOSING: u8 = 1 << 4;
    /// The fd's close completed.
    pub(crate) const FD_CLOSED: u8 = 1 << 5;

    /// Whether `flag` is set.
    pub(crate) fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    /// Sets or clears `flag`.
    pub(crate) fn set(&mut self, flag: u8, on: bool) {
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
    /// Call [`Slot::on_timeout`] at this time (close-handshake deadline).
    pub(crate) deadline: Option<Timestamp>,
    /// Close the socket now, without flushing (peer gone, or nothing left to say).
    pub(crate) close_now: bool,
}

/// The context every slot operation needs.
pub(crate) struct Ctx<'a> {
    pub(crate) cfg: &'a ServerConfig,
    pub(crate) counters: &'a Counters,
    pub(crate) now: Timestamp,
}

impl<S> Slot<S> {
    /// A slot for a socket just accepted: waiting for its request head.
    pub(crate) fn new(fd: RawFd) -> Self {
        Slot {
            fd,
            phase: Phase::Handshake(HeadReader::new()),
            out: Outbox::default(),
            flags: Flags::default(),
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
        let mut actions = match &mut self.phase {
            Phase::Handshake(_) => self.on_handshake_bytes(data, handler, ctx),
            Phase::Open { .. } => self.on_ws_bytes(data, handler, ctx),
            // Draining after our close: input is read and dropped until EOF.
            Phase::Closing => Actions::default(),
        };
        self.account(before, ctx, &mut actions);
        actions
    }

    /// The peer's stream ended (EOF, reset or a receive error).
    pub(crate) fn on_eof<H: Handler<State = S>>(
        &mut self,
        handler: &mut H,
        ctx: &Ctx<'_>,
    ) -> Actions {
        if let Phase::Open { ws, .. } = &mut self.phase {
            let clean = ws.handle_eof();
            self.end(handler, ctx, CloseCode::ABNORMAL, "", clean);
        } else {
            self.phase = Phase::Closing;
        }
        Actions {
            close_now: true,
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
                    let mut conn = conn(state, &mut self.out, &mut close, self.fd, ctx);
                    handler.drain(&mut conn);
                }
                self.apply_close_request(close, ctx, &mut actions);
            }
        }
        self.account(before, ctx, &mut actions);
        actions
    }

    /// A deadline given in [`Actions::deadline`] has passed (maybe; check against `now`).
    pub(crate) fn on_timeout<H: Handler<State = S>>(
        &mut self,
        handler: &mut H,
        ctx: &Ctx<'_>,
    ) -> Actions {
        let mut actions = Actions::default();
        if let Phase::Open { ws, .. } = &mut self.phase {
            if ws.handle_timeout(ctx.now) {
                // No close reply in time: give up on the handshake.
                self.end(
                    handler,
                    ctx,
                    CloseCode::ABNORMAL,
                    "close reply timed out",
                    false,
                );
                actions.close_now = true;
            } else {
                actions.deadline = ws.poll_timeout();
            }
        }
        actions
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
            Phase::Handshake(_) => {
                self.phase = Phase::Closing;
                actions.close_now = true;
            }
            Phase::Closing => {}
        }
        self.account(before, ctx, &mut actions);
        actions
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
        let Phase::Handshake(reader) = &mut self.phase else {
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
                    Outcome::Respond(handler.http(&req).to_bytes())
                }
                Ok(Request::Upgrade(req)) => match handler.upgrade(&req) {
                    Decision::Reject { status, reason } => {
                        Counters::inc(&ctx.counters.handshake_errors, 1);
                        Outcome::Respond(handshake::reject(status, reason))
                    }
                    Decision::Accept { state, protocol } => {
                        match handshake::accept(&req, protocol, None) {
                            Ok(response) => Outcome::Upgraded {
                                response,
                                state,
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
                self.out.push(Bytes::from(response));
                self.phase = Phase::Closing;
                self.flags.set(Flags::CLOSE_AFTER_FLUSH, true);
                Actions {
                    flush: true,
                    ..Actions::default()
                }
            }
            Outcome::Upgraded {
                response,
                state,
                mut rest,
            } => {
                self.out.push(Bytes::from(response));
                self.out.sendable = true;
                self.phase = Phase::Open {
                    ws: Connection::new(),
                    state,
                };
                Counters::inc(&ctx.counters.upgraded, 1);
                Counters::add(&ctx.counters.open, 1);
                let mut actions = Actions {
                    flush: true,
                    ..Actions::default()
                };
                let mut close = None;
                if let Phase::Open { state, .. } = &mut self.phase {
                    let mut conn = conn(state, &mut self.out, &mut close, self.fd, ctx);
                    handler.open(&mut conn);
                }
                self.apply_close_request(close, ctx, &mut actions);
                if !rest.is_empty() {
                    // Frames that came in the same read as the request.
                    let more = self.on_ws_bytes(&mut rest, handler, ctx);
                    actions.close_now |= more.close_now;
                    actions.deadline = more.deadline.or(actions.deadline);
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
            out: &mut self.out,
            close: &mut close,
            peer_close: None,
            fd: self.fd,
            ctx,
        };
        let result = ws.handle_read(&ctx.cfg.proto, data, &mut sink);
        let peer_close = sink.peer_close.take();
        let mut actions = Actions {
            flush: true,
            ..Actions::default()
        };
        match result {
            Err(e) => {
                Counters::inc(&ctx.counters.protocol_errors, 1);
                let code = e.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
                self.end(handler, ctx, code, e.reason(), false);
            }
            Ok(()) if ws.is_closed() => {
                let (code, reason) = peer_close.unwrap_or((CloseCode::NO_STATUS, String::new()));
                self.end(handler, ctx, code, &reason, true);
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
        if let Ok(frame) = ws.close(&ctx.cfg.proto, code, &reason, ctx.now) {
            self.out.push(Bytes::copy_from_slice(&frame));
            actions.flush = true;
            actions.deadline = ws.poll_timeout();
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
        self.out.sendable = false;
        self.flags.set(Flags::CLOSE_AFTER_FLUSH, true);
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
        rest: Vec<u8>,
    },
    Respond(Vec<u8>),
}

fn handshake_error<S>(e: Error, ctx: &Ctx<'_>) -> Outcome<S> {
    Counters::inc(&ctx.counters.handshake_errors, 1);
    Outcome::Respond(handshake::error_response(e))
}

fn conn<'a, S>(
    state: &'a mut S,
    out: &'a mut Outbox,
    close: &'a mut Option<(CloseCode, String)>,
    fd: RawFd,
    ctx: &'a Ctx<'a>,
) -> Conn<'a, S> {
    Conn {
        state,
        out,
        limit: ctx.cfg.max_outbound_bytes,
        policy: ctx.cfg.backpressure,
        close,
        fd,
        counters: ctx.counters,
    }
}

/// The protocol core's output during one read: messages to the handler, frames to the queue.
struct ReadSink<'a, H: Handler> {
    handler: &'a mut H,
    state: &'a mut H::State,
    out: &'a mut Outbox,
    close: &'a mut Option<(CloseCode, String)>,
    peer_close: Option<(CloseCode, String)>,
    fd: RawFd,
    ctx: &'a Ctx<'a>,
}

impl<H: Handler> ReadSink<'_, H> {
    fn message(&mut self, msg: Message<'_>) {
        Counters::inc(&self.ctx.counters.messages_in, 1);
        if self.close.is_some() {
            return; // the handler is closing this connection: later messages are dropped
        }
        let mut conn = conn(self.state, self.out, self.close, self.fd, self.ctx);
        self.handler.message(&mut conn, msg);
    }
}

impl<H: Handler> Sink for ReadSink<'_, H> {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Text(text) => self.message(Message::Text(text)),
            Event::Binary(bytes) => self.message(Message::Binary(bytes)),
            Event::Close { code, reason } => {
                self.peer_close = Some((code.unwrap_or(CloseCode::NO_STATUS), reason.to_owned()));
            }
            // No extension is negotiated yet; pings are answered by the core.
            Event::Compressed { .. } | Event::Ping(_) | Event::Pong(_) => {}
        }
    }

    fn transmit(&mut self, frame: &[u8]) {
        self.out.push(Bytes::copy_from_slice(frame));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_connection_slot_stays_small() {
        // The per-connection budget: the slot is all the user memory an idle connection has
        // (no receive buffer, no queue allocation). Growth must be a conscious decision.
        let size = std::mem::size_of::<Slot<()>>();
        assert!(size <= 136, "Slot<()> grew to {size} bytes");
    }
}
