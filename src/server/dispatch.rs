//! The adapter between the protocol core and the application: what a handler sees of a
//! connection during a callback ([`conn`] builds its [`Conn`]), and the core's output during one
//! read ([`ReadSink`]): messages to the handler (inflated when compressed), protocol answers
//! (pongs, close replies, the text heartbeat) to the outbound queue.

use std::os::fd::BorrowedFd;

use bytes::Bytes;

use super::compress::Pmd;
use super::conn::Ctx;
use super::counters::Counters;
use super::handler::{Conn, Cork, Handler, Message};
use super::outbox::{Kind, Outbox};
use crate::proto::frame::{OpCode, encode_frame};
use crate::proto::{Assembled, CloseCode, Error, Event, Sink};

/// The handler's view of a connection. `reply`: the callback answers the connection's own
/// input (`open`, `message`), so its sends are bounded by flow control and the reply ceiling
/// rather than by the policy at the high-water mark.
pub(crate) fn conn<'a, S>(
    state: &'a mut S,
    pmd: Pmd,
    out: &'a mut Outbox,
    close: &'a mut Option<(CloseCode, String)>,
    fd: Option<BorrowedFd<'a>>,
    ctx: &'a Ctx<'a>,
    reply: bool,
) -> Conn<'a, S> {
    Conn {
        state,
        pmd,
        codecs: ctx.codecs,
        deflate: &ctx.cfg.compression,
        out,
        assembled: None,
        id: ctx.id,
        ops: ctx.ops,
        limit: if reply {
            ctx.cfg.reply_ceiling()
        } else {
            ctx.cfg.max_outbound_bytes
        },
        policy: ctx.cfg.backpressure,
        close,
        fd,
        counters: ctx.counters,
        cork: None,
    }
}

/// The protocol core's output during one read: messages to the handler, frames to the queue.
pub(crate) struct ReadSink<'a, H: Handler> {
    pub(crate) handler: &'a mut H,
    pub(crate) state: &'a mut H::State,
    pub(crate) pmd: Pmd,
    pub(crate) out: &'a mut Outbox,
    pub(crate) close: &'a mut Option<(CloseCode, String)>,
    pub(crate) peer_close: Option<(CloseCode, String)>,
    /// An application message arrived (the idle timeout restarts).
    pub(crate) got_message: bool,
    pub(crate) fd: Option<BorrowedFd<'a>>,
    pub(crate) ctx: &'a Ctx<'a>,
    /// The handler's small replies during this read, queued as one entry by
    /// [`ReadSink::finish`] (or before anything else is queued).
    pub(crate) cork: Cork,
}

impl<H: Handler> ReadSink<'_, H> {
    /// The read is handled: the corked replies are queued.
    pub(crate) fn finish(&mut self) {
        self.cork.flush(self.out);
    }

    /// A message for the handler; `assembled` is its owned buffer when the core assembled it.
    fn message(&mut self, msg: Message<'_>, assembled: Option<&Assembled>) {
        if let (Some((ping, pong)), Message::Text(text)) = (&self.ctx.cfg.text_heartbeat, msg) {
            if text == ping {
                // A browser's heartbeat (browsers cannot send ping frames): answered here,
                // liveness only, never the application's business.
                Counters::inc(&self.ctx.counters.text_heartbeats, 1);
                self.cork.flush(self.out);
                if self.out.is_full(self.ctx.cfg.max_outbound_bytes) {
                    Counters::inc(&self.ctx.counters.answers_dropped, 1);
                    self.out.refused_answer();
                } else {
                    let answer = encode_frame(OpCode::Text, pong.as_bytes());
                    self.out.push(answer, Kind::Control);
                }
                return;
            }
        }
        Counters::inc(&self.ctx.counters.messages_in, 1);
        self.got_message = true;
        if self.close.is_some() {
            return; // the handler is closing this connection: later messages are dropped
        }
        let mut conn = conn(
            self.state, self.pmd, self.out, self.close, self.fd, self.ctx, true,
        );
        conn.assembled = assembled;
        conn.cork = Some(&mut self.cork);
        self.handler.message(&mut conn, msg);
    }
}

impl<H: Handler> Sink for ReadSink<'_, H> {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Text(text) => self.message(Message::Text(text), None),
            Event::Binary(bytes) => self.message(Message::Binary(bytes), None),
            Event::Close { code, reason } => {
                self.peer_close = Some((code.unwrap_or(CloseCode::NO_STATUS), reason.to_owned()));
            }
            Event::Pong(_) => Counters::inc(&self.ctx.counters.pongs_received, 1),
            // Pings are answered by the core; compressed messages come through `compressed`.
            Event::Compressed { .. } | Event::Ping(_) => {}
        }
    }

    fn compressed(&mut self, text: bool, payload: &[u8]) -> Result<(), Error> {
        let limit = self.ctx.cfg.proto.limits.max_message_bytes as usize;
        // The codecs are released before the handler runs (its sends compress).
        let plain =
            self.ctx
                .codecs
                .borrow_mut()
                .inflate(self.pmd, self.ctx.id.slot, payload, limit)?;
        Counters::inc(&self.ctx.counters.compressed_in, 1);
        let result = if text {
            match crate::proto::utf8::validate(&plain) {
                Ok(text) => {
                    self.message(Message::Text(text), None);
                    Ok(())
                }
                Err(_) => Err(Error::InvalidUtf8),
            }
        } else {
            self.message(Message::Binary(&plain), None);
            Ok(())
        };
        self.ctx.codecs.borrow_mut().recycle(plain);
        result
    }

    fn assembled(&mut self, msg: Assembled) {
        // The handler may send this very buffer on (`Conn::frame_of`): no copy of a large
        // message between its assembly and the socket.
        let borrowed = match msg.text() {
            Some(text) => Message::Text(text),
            None => Message::Binary(msg.payload()),
        };
        self.message(borrowed, Some(&msg));
    }

    fn transmit(&mut self, opcode: OpCode, frame: &[u8]) {
        // A peer that pings without reading must not grow our queue: past the limit its pongs
        // are dropped (RFC 6455 §5.5.3 lets an endpoint answer only the most recent ping).
        // Close frames always go, after the replies corked before them.
        self.cork.flush(self.out);
        if opcode == OpCode::Pong && self.out.is_full(self.ctx.cfg.max_outbound_bytes) {
            Counters::inc(&self.ctx.counters.answers_dropped, 1);
            self.out.refused_answer();
            return;
        }
        self.out.push(Bytes::copy_from_slice(frame), Kind::Control);
    }
}
