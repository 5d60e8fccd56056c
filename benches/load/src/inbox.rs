//! What a connection's received frames do during one `handle_read`: echoes checked in order
//! against what was sent, chat deliveries timed, pings counted (their pongs queued by the
//! protocol core), compressed frames inflated.

use ringws::proto::connection::MessageKind;
use ringws::proto::{Event, Sink};

use crate::broadcast::{self, Received};
use crate::deflate::ClientPmd;
use crate::engine::next_seq;
use crate::stats::Latency;
use crate::verify::{Mismatch, Payload};

/// Receives a connection's events during one `handle_read`.
pub(crate) struct Inbox<'a> {
    pub(crate) payload: Option<&'a Payload>,
    /// The connection's index (for the sequence numbers).
    pub(crate) conn: usize,
    /// The sequence number of the oldest message in flight.
    pub(crate) expect: u64,
    /// Messages in flight.
    pub(crate) in_flight: u64,
    pub(crate) closing: bool,
    pub(crate) out: &'a mut Vec<u8>,
    /// permessage-deflate's codecs, when agreed.
    pub(crate) pmd: Option<&'a mut ClientPmd>,
    pub(crate) echoes: u32,
    /// Pings received (their pongs are in `out`, queued by the protocol core).
    pub(crate) pings: u32,
    pub(crate) mismatch: Option<Mismatch>,
    pub(crate) peer_closed: bool,
    /// Broadcast: the chat frames' handling (`echoes` then counts deliveries).
    pub(crate) chat: Option<Chat<'a>>,
}

/// What a broadcast connection's received frames update.
pub(crate) struct Chat<'a> {
    pub(crate) state: &'a mut broadcast::State,
    /// The window's latencies, while recording.
    pub(crate) latency: Option<&'a mut Latency>,
    /// When the bytes were read, ns since the engine started.
    pub(crate) now_ns: u64,
}

impl Inbox<'_> {
    pub(crate) fn data(&mut self, kind: Option<MessageKind>, bytes: &[u8]) {
        if self.closing || self.mismatch.is_some() {
            return;
        }
        if let Some(chat) = self.chat.as_mut() {
            if kind != Some(MessageKind::Text) {
                self.mismatch = Some(Mismatch::Chat("a binary or compressed frame"));
                return;
            }
            match chat.state.receive(self.conn, bytes, chat.now_ns) {
                Ok(Received::Delivery { latency_ns }) => {
                    self.echoes += 1;
                    if let Some(l) = chat.latency.as_mut() {
                        l.record(latency_ns);
                    }
                }
                // Joins are tallied in the state, per connection.
                Ok(Received::Joined | Received::PublisherCopy | Received::Ignored) => {}
                Err(why) => self.mismatch = Some(Mismatch::Chat(why)),
            }
            return;
        }
        let checked = match (self.payload, kind) {
            (Some(p), Some(kind)) if self.in_flight > 0 => p.verify(self.expect, kind, bytes),
            (Some(_), None) => Err(Mismatch::Kind),
            _ => Err(Mismatch::Unexpected),
        };
        match checked {
            Ok(()) => {
                self.in_flight -= 1;
                self.expect = next_seq(self.conn, self.expect);
                self.echoes += 1;
            }
            Err(m) => self.mismatch = Some(m),
        }
    }
}

impl Sink for Inbox<'_> {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Text(t) => self.data(Some(MessageKind::Text), t.as_bytes()),
            Event::Binary(b) => self.data(Some(MessageKind::Binary), b),
            // Only with permessage-deflate agreed (the core refuses RSV1 otherwise).
            Event::Compressed { text, payload } => {
                let Some(pmd) = self.pmd.as_mut() else {
                    return self.data(None, payload);
                };
                if pmd.inflate(payload).is_err() {
                    self.mismatch = Some(Mismatch::Kind);
                    return;
                }
                let plain = std::mem::take(&mut pmd.buf);
                let kind = if text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                self.data(Some(kind), &plain);
                if let Some(pmd) = self.pmd.as_mut() {
                    pmd.buf = plain;
                }
            }
            // The protocol core already queued the masked pong with the same payload through
            // `transmit` (not while closing).
            Event::Ping(_) if !self.closing => self.pings += 1,
            Event::Ping(_) | Event::Pong(_) => {}
            Event::Close { .. } => self.peer_closed = true,
        }
    }

    fn transmit(&mut self, _opcode: ringws::proto::frame::OpCode, frame: &[u8]) {
        self.out.extend_from_slice(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbox<'a>(p: &'a Payload, out: &'a mut Vec<u8>, expect: u64, in_flight: u64) -> Inbox<'a> {
        Inbox {
            payload: Some(p),
            conn: 2,
            expect,
            in_flight,
            closing: false,
            out,
            pmd: None,
            echoes: 0,
            pings: 0,
            mismatch: None,
            peer_closed: false,
            chat: None,
        }
    }

    fn message(p: &Payload, seq: u64) -> Vec<u8> {
        let mut m = Vec::new();
        p.write(seq, &mut m);
        m
    }

    #[test]
    fn pipelined_echoes_are_checked_in_order() {
        let p = Payload::new(20, MessageKind::Text);
        let first = next_seq(2, 0);
        let second = next_seq(2, first);
        let third = next_seq(2, second);
        let mut out = Vec::new();
        let mut inbox = inbox(&p, &mut out, first, 3);
        inbox.data(Some(MessageKind::Text), &message(&p, first));
        inbox.data(Some(MessageKind::Text), &message(&p, second));
        assert_eq!((inbox.echoes, inbox.in_flight, inbox.expect), (2, 1, third));
        assert_eq!(inbox.mismatch, None);
        inbox.data(Some(MessageKind::Text), &message(&p, third));
        assert_eq!(inbox.in_flight, 0);
        // One more than was sent.
        inbox.data(Some(MessageKind::Text), &message(&p, next_seq(2, third)));
        assert_eq!(inbox.mismatch, Some(Mismatch::Unexpected));
        assert_eq!(inbox.echoes, 3);
    }

    #[test]
    fn out_of_order_echo_is_a_mismatch() {
        let p = Payload::new(20, MessageKind::Binary);
        let first = next_seq(2, 0);
        let second = next_seq(2, first);
        let mut out = Vec::new();
        let mut inbox = inbox(&p, &mut out, first, 2);
        inbox.data(Some(MessageKind::Binary), &message(&p, second));
        assert!(matches!(inbox.mismatch, Some(Mismatch::Bytes { .. })));
        assert_eq!(inbox.echoes, 0);
        // Nothing is checked after the first mismatch.
        inbox.data(Some(MessageKind::Binary), &message(&p, first));
        assert_eq!(inbox.echoes, 0);
    }
}
