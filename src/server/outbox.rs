//! A connection's outbound queue: encoded frames waiting to be sent, counted in bytes, each
//! tagged with its [`Kind`] when queued (the queue never guesses a frame's kind from its bytes).
//!
//! Frames are `Bytes`: a frame encoded once for a room is the same allocation on every member's
//! queue. The queue holds no allocation while empty (it is released after each flush), so an
//! idle connection pays only for the empty struct: 16 bytes, the frame list being boxed (a
//! pointer) rather than an inline `VecDeque` (32 bytes in every slot, idle or not).

use std::collections::VecDeque;

use bytes::{Buf, Bytes};

use super::config::Backpressure;

/// What became of a message given to [`Conn::send_text`](super::Conn::send_text) and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Queued; it goes out with the next flush of the loop.
    Queued,
    /// Not queued: the outbound queue is over its limit (the handler's `drain` runs when it has
    /// room again).
    Dropped,
    /// Not queued: the connection is closing or closed.
    Closed,
}

/// What a queued frame is, said by whoever queues it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A message (text or binary, compressed or not): the backpressure policy may drop it.
    Data,
    /// The protocol's own frames (pong, ping, close): never dropped once queued.
    Control,
    /// The HTTP response of the handshake: never dropped.
    Response,
    /// TLS records, already encrypted (or the TLS handshake's own): sent as they are, never
    /// dropped.
    Sealed,
}

/// One queued frame.
#[derive(Debug, Clone)]
struct Entry {
    bytes: Bytes,
    kind: Kind,
}

/// The outbound queue of one connection.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Boxed on purpose: a pointer in every slot instead of a 32-byte `VecDeque` (one more
    /// small allocation while the queue is in use, none while it is empty).
    #[allow(clippy::box_collection)]
    frames: Option<Box<VecDeque<Entry>>>,
    /// Bytes in `frames`, including those of the send in flight (32 bits: the slot stays small;
    /// the limit is far below 4 GiB).
    queued: u32,
    /// Frames at the front that belong to the send in flight (at most `MAX_IOVECS`, 64).
    in_flight: u8,
    /// [`FRONT_STARTED`] and [`OFFERED`], in one byte (the queue stays at 16 bytes).
    marks: u8,
    /// Whether data frames may still be queued (open, no close started).
    pub(crate) sendable: bool,
    /// A data frame was refused for space: `drain` is due when the queue has room again.
    pub(crate) wants_drain: bool,
}

/// The front frame was partly sent (a short send): it must go out whole, never dropped.
const FRONT_STARTED: u8 = 1 << 0;
/// Something was offered to the queue (queued, or refused for space) since the last
/// [`Outbox::take_offered`]: while a read is handled, that is a reply to it.
const OFFERED: u8 = 1 << 1;

/// Why a data frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Closing: nothing more to send.
    Closed,
    /// Over the limit, and the policy says what to do.
    Full(Backpressure),
}

impl Outbox {
    /// Bytes queued (including the send in flight).
    pub(crate) fn queued(&self) -> usize {
        self.queued as usize
    }

    /// Whether anything waits to be sent.
    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_none()
    }

    /// The number of frames queued.
    fn len(&self) -> usize {
        self.frames.as_ref().map_or(0, |f| f.len())
    }

    /// Whether a send is in flight.
    pub(crate) fn sending(&self) -> bool {
        self.in_flight > 0
    }

    /// Queues a data frame, applying the limit. A frame always fits an empty queue. Returns the
    /// number of older frames dropped to make room ([`Backpressure::DropOldest`]).
    pub(crate) fn push_data(
        &mut self,
        frame: Bytes,
        limit: usize,
        policy: Backpressure,
    ) -> Result<usize, Refused> {
        if !self.sendable {
            return Err(Refused::Closed);
        }
        self.marks |= OFFERED;
        let mut dropped = 0;
        if self.queued > 0 && self.queued() + frame.len() > limit {
            self.wants_drain = true;
            if policy != Backpressure::DropOldest {
                return Err(Refused::Full(policy));
            }
            dropped = self.drop_oldest(self.queued() + frame.len() - limit);
            if self.queued > 0 && self.queued() + frame.len() > limit {
                // Nothing more may be dropped (in flight, partly sent, or control frames).
                return Err(Refused::Full(policy));
            }
        }
        self.push(frame, Kind::Data);
        Ok(dropped)
    }

    /// Drops the oldest whole data frames not yet handed to the kernel until at least `need`
    /// bytes are freed (or none is left to drop); returns how many were dropped. Control frames
    /// (pongs, our close), the upgrade response and a partly sent frame always stay.
    fn drop_oldest(&mut self, need: usize) -> usize {
        let first = usize::from(self.in_flight)
            + usize::from(self.marks & FRONT_STARTED != 0 && self.in_flight == 0);
        let mut freed = 0;
        let mut dropped = 0;
        let mut i = first;
        let Some(frames) = self.frames.as_mut() else {
            return 0;
        };
        while freed < need && i < frames.len() {
            if frames[i].kind == Kind::Data {
                let Some(frame) = frames.remove(i) else {
                    break;
                };
                freed += frame.bytes.len();
                dropped += 1;
            } else {
                i += 1;
            }
        }
        self.queued -= (freed as u32).min(self.queued);
        if frames.is_empty() {
            self.frames = None;
        }
        dropped
    }

    /// Whether the queue is at its limit for the protocol's own answers (pongs, text
    /// heartbeats): in bytes, or in frames, since a tiny pong costs a queue entry each and a
    /// peer controls how many it provokes (1,024 is plenty for any honest peer). Data frames
    /// are limited in bytes only ([`Outbox::push_data`]).
    pub(crate) fn is_full(&self, limit: usize) -> bool {
        self.queued() >= limit || self.len() >= 1024
    }

    /// Queues a frame regardless of the limit: the protocol's own frames (pong, close) and the
    /// HTTP response of the handshake (and, from [`Outbox::push_data`], a data frame that fits).
    pub(crate) fn push(&mut self, frame: Bytes, kind: Kind) {
        self.marks |= OFFERED;
        if frame.is_empty() {
            return; // nothing to send (an empty shared frame): it would never leave the queue
        }
        self.queued = self
            .queued
            .saturating_add(u32::try_from(frame.len()).unwrap_or(u32::MAX));
        self.frames
            .get_or_insert_default()
            .push_back(Entry { bytes: frame, kind });
    }

    /// Records a protocol answer (a pong, a heartbeat answer) that was not queued because the
    /// queue is full: an offer all the same (see [`Outbox::take_offered`]).
    pub(crate) fn refused_answer(&mut self) {
        self.marks |= OFFERED;
    }

    /// Whether anything was offered to the queue since the last call (and forgets it). Flow
    /// control asks after each read: an offer then was a reply to what was read.
    pub(crate) fn take_offered(&mut self) -> bool {
        let offered = self.marks & OFFERED != 0;
        self.marks &= !OFFERED;
        offered
    }

    /// The frames of the next send (the caller sends at most as many as it can and reports the
    /// count with [`Outbox::sending_started`]).
    pub(crate) fn pending(&self) -> impl Iterator<Item = Bytes> + '_ {
        self.frames
            .iter()
            .flat_map(|f| f.iter())
            .map(|e| e.bytes.clone())
    }

    /// Records that the first `count` frames are in flight.
    pub(crate) fn sending_started(&mut self, count: usize) {
        const _: () = assert!(crate::runtime::uring::MAX_IOVECS <= u8::MAX as usize);
        self.in_flight = count.min(usize::from(u8::MAX)) as u8;
    }

    /// The send in flight completed with `sent` bytes: drops what went out, keeps the rest
    /// (a short send resumes from the exact byte). Frees the queue's memory once empty.
    pub(crate) fn sent(&mut self, mut sent: usize) {
        self.in_flight = 0;
        if sent > 0 {
            self.marks &= !FRONT_STARTED;
        }
        self.queued -= (sent as u32).min(self.queued);
        let Some(frames) = self.frames.as_mut() else {
            return;
        };
        while sent > 0 {
            let Some(front) = frames.front_mut() else {
                break;
            };
            if front.bytes.len() <= sent {
                sent -= front.bytes.len();
                frames.pop_front();
            } else {
                front.bytes.advance(sent);
                self.marks |= FRONT_STARTED;
                sent = 0;
            }
        }
        if frames.is_empty() {
            self.frames = None;
        }
    }

    /// Encrypts what waits (TLS): each run of frames not yet sealed becomes one entry of
    /// records, made by `seal` from the run's bytes; sealed entries stay as they are, in their
    /// place. Only between sends (nothing in flight).
    ///
    /// # Errors
    /// What `seal` returned; the queue is then left as it was.
    pub(crate) fn seal<E>(
        &mut self,
        mut seal: impl FnMut(&[u8], &mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        debug_assert_eq!(self.in_flight, 0, "sealed only between sends");
        let Some(frames) = self.frames.as_mut() else {
            return Ok(());
        };
        if frames.iter().all(|e| e.kind == Kind::Sealed) {
            return Ok(());
        }
        let mut out: VecDeque<Entry> = VecDeque::with_capacity(2);
        // A run of one frame (the common case: one message) is sealed from its own bytes; a
        // longer run is gathered into one buffer first (fewer records).
        let mut plain: Vec<u8> = Vec::new();
        let mut run: Option<&Bytes> = None;
        let mut flush = |run: &mut Option<&Bytes>,
                         plain: &mut Vec<u8>,
                         out: &mut VecDeque<Entry>|
         -> Result<(), E> {
            let bytes: &[u8] = match run.take() {
                Some(one) if plain.is_empty() => one,
                Some(_) | None if !plain.is_empty() => plain,
                _ => return Ok(()),
            };
            let mut records = Vec::with_capacity(bytes.len() + bytes.len() / 1024 + 64);
            seal(bytes, &mut records)?;
            plain.clear();
            out.push_back(Entry {
                bytes: Bytes::from(records),
                kind: Kind::Sealed,
            });
            Ok(())
        };
        for e in frames.iter() {
            if e.kind == Kind::Sealed {
                flush(&mut run, &mut plain, &mut out)?;
                out.push_back(e.clone());
            } else if let Some(first) = run.take() {
                if plain.is_empty() {
                    plain.extend_from_slice(first);
                }
                plain.extend_from_slice(&e.bytes);
                run = Some(&e.bytes);
            } else {
                run = Some(&e.bytes);
            }
        }
        flush(&mut run, &mut plain, &mut out)?;
        let queued: usize = out.iter().map(|e| e.bytes.len()).sum();
        self.queued = u32::try_from(queued).unwrap_or(u32::MAX);
        **frames = out;
        Ok(())
    }

    /// A failed TLS session: the entries already sealed (records sent as they are, its alert
    /// among them) stay, in order; the frames not sealed yet are dropped, and nothing more is
    /// queued. Only between sends (nothing in flight).
    pub(crate) fn retain_sealed(&mut self) {
        debug_assert_eq!(self.in_flight, 0, "only between sends");
        if let Some(frames) = self.frames.as_mut() {
            frames.retain(|e| e.kind == Kind::Sealed);
            let queued: usize = frames.iter().map(|e| e.bytes.len()).sum();
            self.queued = u32::try_from(queued).unwrap_or(u32::MAX);
            if frames.is_empty() {
                self.frames = None;
            }
        }
        self.sendable = false;
    }

    /// A failed send: nothing more will go out; drop everything.
    pub(crate) fn clear(&mut self) {
        self.frames = None;
        self.queued = 0;
        self.in_flight = 0;
        self.marks &= !FRONT_STARTED;
        self.sendable = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn limit_applies_except_to_an_empty_queue() {
        let mut o = Outbox {
            sendable: true,
            ..Outbox::default()
        };
        // A frame larger than the limit still fits an empty queue.
        assert_eq!(
            o.push_data(b("0123456789"), 4, Backpressure::DropNewest),
            Ok(0)
        );
        assert_eq!(
            o.push_data(b("x"), 4, Backpressure::DropNewest),
            Err(Refused::Full(Backpressure::DropNewest))
        );
        assert!(o.wants_drain);
        o.push(b("pong"), Kind::Control); // protocol frames ignore the limit
        assert_eq!(o.queued(), 14);
        o.sendable = false;
        assert_eq!(
            o.push_data(b("x"), 100, Backpressure::DropNewest),
            Err(Refused::Closed)
        );
    }

    fn data(n: u8, len: usize) -> Bytes {
        let mut v = vec![n; len];
        v[0] = 0x82; // a binary frame's first byte
        Bytes::from(v)
    }

    #[test]
    fn drop_oldest_keeps_what_is_in_flight_partly_sent_or_control() {
        let mut o = Outbox {
            sendable: true,
            ..Outbox::default()
        };
        let policy = Backpressure::DropOldest;
        o.push(
            b("HTTP/1.1 101 Switching Protocols\r\n\r\n"),
            Kind::Response,
        );
        let response = o.queued();
        o.push_data(data(1, 10), 100, policy).unwrap();
        o.push(Bytes::from_static(&[0x8A, 0x00]), Kind::Control); // a pong
        o.push_data(data(2, 10), 100, policy).unwrap();
        o.push_data(data(3, 10), 100, policy).unwrap();
        // Over the limit: frames 1 and 2 go (oldest first), the response and the pong stay.
        let limit = response + 2 + 20;
        assert_eq!(o.push_data(data(4, 10), limit, policy), Ok(2));
        let left: Vec<u8> = o
            .pending()
            .map(|f| f.get(1).copied().unwrap_or(0))
            .collect();
        assert_eq!(left, vec![b'T', 0x00, 3, 4]);
        assert_eq!(o.queued(), response + 2 + 20);
        assert!(o.wants_drain);

        // The send in flight and a partly sent frame are never dropped.
        o.sending_started(4);
        o.sent(response + 2 + 5); // the response, the pong and half of frame 3 went out
        assert_eq!(
            o.push_data(data(5, 10), 15, policy),
            Ok(1),
            "frame 4 dropped, not 3"
        );
        let left: Vec<u8> = o.pending().map(|f| f[f.len() - 1]).collect();
        assert_eq!(left, vec![3, 5]);
        // Nothing droppable left: the new frame is refused.
        o.sending_started(2);
        assert_eq!(
            o.push_data(data(6, 10), 10, policy),
            Err(Refused::Full(policy))
        );
    }

    #[test]
    fn kinds_are_what_the_caller_said_not_what_the_bytes_look_like() {
        let mut o = Outbox {
            sendable: true,
            ..Outbox::default()
        };
        let policy = Backpressure::DropOldest;
        // A control frame whose first byte looks like a text frame's, and a data frame (say,
        // compressed, RSV1 set) whose first byte looks like a close frame's.
        o.push(Bytes::from_static(&[0x81, 0x02, b'h', b'i']), Kind::Control);
        o.push_data(Bytes::from_static(&[0xC8, 0x02, 1, 2]), 100, policy)
            .unwrap();
        assert_eq!(
            o.push_data(data(3, 4), 8, policy),
            Ok(1),
            "the data frame goes"
        );
        let left: Vec<u8> = o.pending().map(|f| f[0]).collect();
        assert_eq!(left, vec![0x81, 0x82], "the control frame stays");
    }

    #[test]
    fn offers_are_seen_once_whatever_became_of_them() {
        let mut o = Outbox {
            sendable: true,
            ..Outbox::default()
        };
        assert!(!o.take_offered());
        o.push_data(data(1, 10), 10, Backpressure::DropNewest)
            .unwrap();
        assert!(o.take_offered(), "queued");
        assert!(!o.take_offered(), "seen once");
        assert!(
            o.push_data(data(2, 10), 10, Backpressure::DropNewest)
                .is_err()
        );
        assert!(o.take_offered(), "refused for space is an offer too");
        o.refused_answer();
        assert!(o.take_offered(), "an answer dropped is an offer too");
        o.sendable = false;
        assert!(
            o.push_data(data(3, 10), 10, Backpressure::DropNewest)
                .is_err()
        );
        assert!(
            !o.take_offered(),
            "closing: nothing can be queued, nothing to pause for"
        );
    }

    #[test]
    fn empty_frames_are_not_queued() {
        // An empty frame would never leave the queue (a send of 0 bytes pops nothing).
        let mut o = Outbox {
            sendable: true,
            ..Outbox::default()
        };
        o.push(Bytes::new(), Kind::Control);
        assert_eq!(
            o.push_data(Bytes::new(), 10, Backpressure::DropNewest),
            Ok(0)
        );
        assert!(o.is_empty());
    }

    #[test]
    fn short_sends_resume_at_the_right_byte_and_memory_is_released() {
        let mut o = Outbox {
            sendable: true,
            ..Outbox::default()
        };
        o.push(b("abc"), Kind::Data);
        o.push(b("defg"), Kind::Data);
        o.sending_started(2);
        assert!(o.sending());
        o.sent(5);
        assert!(!o.sending());
        let rest: Vec<Bytes> = o.pending().collect();
        assert_eq!(rest, vec![b("fg")]);
        assert_eq!(o.queued(), 2);
        o.sending_started(1);
        o.sent(2);
        assert!(o.is_empty());
        assert!(o.frames.is_none(), "an empty queue holds no allocation");
    }

    #[test]
    fn sealing_turns_each_run_of_frames_into_one_entry_in_place() {
        let mut q = Outbox {
            sendable: true,
            ..Outbox::default()
        };
        q.push(b("hs"), Kind::Sealed);
        q.push(b("HTTP/1.1 101"), Kind::Response);
        q.push(b("frame"), Kind::Data);
        q.push(b("alert"), Kind::Sealed);
        q.push(b("pong"), Kind::Control);
        // A "cipher" that brackets the run, so what was sealed together shows.
        q.seal(|plain, out| {
            out.extend_from_slice(b"<");
            out.extend_from_slice(plain);
            out.extend_from_slice(b">");
            Ok::<(), ()>(())
        })
        .unwrap();
        let sent: Vec<Bytes> = q.pending().collect();
        assert_eq!(
            sent,
            [b("hs"), b("<HTTP/1.1 101frame>"), b("alert"), b("<pong>")]
        );
        assert_eq!(q.queued(), sent.iter().map(|e| e.len()).sum::<usize>());
        // Sealed already: nothing changes; a failing seal leaves the queue as it was.
        q.seal(|_, _| Err::<(), ()>(())).unwrap();
        q.push(b("more"), Kind::Data);
        let before: Vec<Bytes> = q.pending().collect();
        assert!(q.seal(|_, _| Err::<(), &str>("closed")).is_err());
        assert_eq!(q.pending().collect::<Vec<_>>(), before);
        // The session failed: what was sealed (its alert among it) stays, in order.
        q.retain_sealed();
        let kept: Vec<Bytes> = q.pending().collect();
        assert_eq!(
            kept,
            [b("hs"), b("<HTTP/1.1 101frame>"), b("alert"), b("<pong>")]
        );
        assert_eq!(q.queued(), kept.iter().map(|e| e.len()).sum::<usize>());
        assert!(!q.sendable);
        let mut unsealed = Outbox::default();
        unsealed.push(b("frame"), Kind::Data);
        unsealed.retain_sealed();
        assert!(unsealed.is_empty() && unsealed.queued() == 0);
    }
}
