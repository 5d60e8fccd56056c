//! A raw CQE decoded into a [`Completion`] through its [`UserData`] tag.

use io_uring::cqueue;

use super::buf_ring::BufRing;
use super::listener::set_nodelay;
use super::user_data::{OpKind, UserData};
use crate::runtime::Completion;

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
            tag: slot,
            result,
        },
        Some(OpKind::Message) => Completion::Message {
            payload: generation,
            value: result,
        },
        Some(OpKind::Nop) => Completion::Nop { token: generation },
        Some(OpKind::Wake) => Completion::Wake {
            more: more && result >= 0,
        },
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
        let fresh = bufs.lend(bid, result.max(0).unsigned_abs(), flags);
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
        r if r == -libc::ENOBUFS => {
            // The ring ran dry: put more of the pool in it (if any is left) before re-arming.
            bufs.grow();
            Completion::RecvNoBufs { slot, generation }
        }
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
