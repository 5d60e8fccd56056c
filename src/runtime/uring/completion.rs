//! Typed completions: a raw CQE decoded through its [`UserData`] tag.

use std::os::fd::RawFd;

use io_uring::cqueue;

use super::buf_ring::BufRing;
use super::listener::set_nodelay;
use super::user_data::{OpKind, UserData};

/// One completion, decoded. `slot` and `generation` are the values given when the operation was
/// queued: the worker compares `generation` with the slot's current one and ignores a stale
/// completion (after releasing any buffer it carries).
///
/// A multishot operation stays armed while `more` is true. When a completion arrives with
/// `more == false` the operation is over and must be queued again if still wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Multishot accept produced a connection. The worker owns `fd` and must close it (with
    /// [`super::Uring::close`] or `close(2)`); `TCP_NODELAY` is already set if configured.
    Accepted {
        /// The accepted socket.
        fd: RawFd,
        /// Whether the accept is still armed.
        more: bool,
    },
    /// Multishot accept failed for one connection (e.g. `EMFILE`) or ended (`ECANCELED`).
    AcceptError {
        /// The positive errno.
        errno: i32,
        /// Whether the accept is still armed; re-arm when false and still listening.
        more: bool,
    },
    /// Bytes arrived in buffer `bid`, now lent to the worker: read them with
    /// [`super::BufRing::get`]`(bid, len)` and give the buffer back with
    /// [`super::BufRing::recycle`] (also for a stale generation).
    Recv {
        /// Connection slot.
        slot: u32,
        /// Connection generation.
        generation: u32,
        /// The buffer id the kernel filled.
        bid: u16,
        /// The number of bytes received (at least 1).
        len: u32,
        /// Whether the receive is still armed.
        more: bool,
    },
    /// The peer closed its sending side (a read of 0 bytes); the receive is disarmed.
    RecvEof {
        /// Connection slot.
        slot: u32,
        /// Connection generation.
        generation: u32,
    },
    /// `ENOBUFS`: the buffer ring was empty, so the multishot receive ended without data loss
    /// (the bytes wait in the socket). Re-arm it once buffers have been recycled.
    RecvNoBufs {
        /// Connection slot.
        slot: u32,
        /// Connection generation.
        generation: u32,
    },
    /// The receive was cancelled (`ECANCELED`), e.g. by [`super::Uring::cancel_recv`].
    RecvCancelled {
        /// Connection slot.
        slot: u32,
        /// Connection generation.
        generation: u32,
    },
    /// The receive failed with another error (e.g. `ECONNRESET`).
    RecvError {
        /// Connection slot.
        slot: u32,
        /// Connection generation.
        generation: u32,
        /// The positive errno.
        errno: i32,
        /// Whether the receive is still armed.
        more: bool,
    },
    /// A send finished: `result` is the number of bytes sent (which may be fewer than queued:
    /// send the rest again) or a negative errno. The send header and its bytes are free again.
    Sent {
        /// Connection slot.
        slot: u32,
        /// Connection generation.
        generation: u32,
        /// Bytes sent, or `-errno`.
        result: i32,
    },
    /// The kernel no longer reads the bytes of a zero-copy send whose [`Completion::Sent`]
    /// came before (its record is released; another send on the slot may be queued).
    SendNotif {
        /// Connection slot.
        slot: u32,
        /// Connection generation.
        generation: u32,
    },
    /// An `AsyncCancel` request finished: 0 if it found its target, `-ENOENT` if none was
    /// armed, `-EALREADY` if the target was already running. The target's own completion
    /// arrives separately.
    CancelDone {
        /// Connection slot.
        slot: u32,
        /// Connection generation.
        generation: u32,
        /// 0 or `-errno`.
        result: i32,
    },
    /// An asynchronous close finished.
    Closed {
        /// Connection slot.
        slot: u32,
        /// Connection generation.
        generation: u32,
        /// 0 or `-errno`.
        result: i32,
    },
    /// A timeout queued by [`super::Uring::arm_timeout`] fired (`result == -ETIME`) or was
    /// cancelled.
    Timeout {
        /// The token given when arming.
        token: u32,
        /// `-ETIME` when it expired.
        result: i32,
    },
    /// A message this ring posted into another ring was delivered (`result >= 0`) or not.
    MsgSent {
        /// The payload that was sent.
        payload: u32,
        /// 0 or `-errno`.
        result: i32,
    },
    /// Another ring posted a message into this one with [`super::Uring::msg_ring`].
    Message {
        /// The sender's payload.
        payload: u32,
        /// The sender's value.
        value: i32,
    },
    /// A no-op queued by [`super::Uring::nop`] completed.
    Nop {
        /// The token given when queuing.
        token: u32,
    },
    /// A completion whose tag this layer did not write (never expected).
    Other {
        /// The raw tag.
        user_data: u64,
        /// The raw result.
        result: i32,
        /// The raw CQE flags.
        flags: u32,
    },
}

/// Decodes one CQE. A buffer named by a receive is recorded as lent in `bufs`; a buffer that
/// came with no data is recycled at once.
pub(crate) fn decode(cqe: &cqueue::Entry, bufs: &mut BufRing, nodelay: bool) -> Completion {
    let tag = UserData::from_raw(cqe.user_data());
    let result = cqe.result();
    let flags = cqe.flags();
    let more = cqueue::more(flags);
    let (slot, generation) = (tag.slot(), tag.generation());
    match tag.kind() {
        Some(OpKind::Accept) if result >= 0 => {
            if nodelay {
                // Failure (e.g. the peer already reset) surfaces on the first receive.
                let _ = set_nodelay(result);
            }
            Completion::Accepted { fd: result, more }
        }
        Some(OpKind::Accept) => Completion::AcceptError {
            errno: -result,
            more,
        },
        Some(OpKind::Recv) => decode_recv(tag, result, flags, bufs),
        // A zero-copy send posts its result (with `more` set), then a notification once the
        // kernel no longer reads the bytes.
        Some(OpKind::Send) if cqueue::notif(flags) => Completion::SendNotif { slot, generation },
        Some(OpKind::Send) => Completion::Sent {
            slot,
            generation,
            result,
        },
        Some(OpKind::Cancel) => Completion::CancelDone {
            slot,
            generation,
            result,
        },
        Some(OpKind::Close) => Completion::Closed {
            slot,
            generation,
            result,
        },
        Some(OpKind::Timeout) => Completion::Timeout {
            token: generation,
            result,
        },
        Some(OpKind::MsgSent) => Completion::MsgSent {
            payload: generation,
            result,
        },
        Some(OpKind::Message) => Completion::Message {
            payload: generation,
            value: result,
        },
        Some(OpKind::Nop) => Completion::Nop { token: generation },
        None => Completion::Other {
            user_data: tag.raw(),
            result,
            flags,
        },
    }
}

/// Decodes a multishot receive completion.
fn decode_recv(tag: UserData, result: i32, flags: u32, bufs: &mut BufRing) -> Completion {
    let (slot, generation) = (tag.slot(), tag.generation());
    let more = cqueue::more(flags);
    if let Some(bid) = cqueue::buffer_select(flags) {
        let fresh = bufs.lend(bid);
        debug_assert!(fresh, "kernel returned buffer {bid} twice");
        if result > 0 {
            return Completion::Recv {
                slot,
                generation,
                bid,
                len: result.unsigned_abs(),
                more,
            };
        }
        // A buffer with no data: hand it straight back.
        if fresh {
            bufs.recycle(bid);
        }
    }
    match result {
        0 => Completion::RecvEof { slot, generation },
        r if r == -libc::ENOBUFS => Completion::RecvNoBufs { slot, generation },
        r if r == -libc::ECANCELED => Completion::RecvCancelled { slot, generation },
        r if r < 0 => Completion::RecvError {
            slot,
            generation,
            errno: -r,
            more,
        },
        // Data without a buffer cannot happen with buffer select; report it as an I/O error.
        _ => Completion::RecvError {
            slot,
            generation,
            errno: libc::EIO,
            more,
        },
    }
}
