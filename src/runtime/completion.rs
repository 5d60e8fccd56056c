//! What a backend reports: the completion of an operation (io_uring), or its equivalent
//! produced from readiness (epoll). The worker above sees only these.

use std::os::fd::OwnedFd;

/// One completion, decoded. `slot` and `generation` are the values given when the operation was
/// queued: the worker compares `generation` with the slot's current one and ignores a stale
/// completion (after releasing any buffer it carries).
///
/// A multishot operation stays armed while `more` is true. When a completion arrives with
/// `more == false` the operation is over and must be queued again if still wanted.
#[derive(Debug)]
pub enum Completion {
    /// Multishot accept produced a connection. The worker owns `fd`: it closes it with the
    /// backend's `close` (or by dropping it); `TCP_NODELAY` is already set if configured.
    Accepted {
        /// The accepted socket.
        fd: OwnedFd,
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
    /// the backend's `recv_buf(bid, len)` and give the buffer back with
    /// `recycle` (also for a stale generation).
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
    /// A receive named a buffer the accounting says is already lent out: the kernel and this
    /// process disagree about who owns that buffer, so its bytes cannot be trusted and the
    /// buffer is withheld from the ring for good (recycling it could let two receives fill it
    /// at once). The worker fails the connection (logged, counted in `ring_faults`).
    RecvFault {
        /// Connection slot.
        slot: u32,
        /// Connection generation.
        generation: u32,
        /// The buffer id the kernel named.
        bid: u16,
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
    /// The receive was cancelled (`ECANCELED`), e.g. by a cancel.
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
    /// (Tests only.) A timeout queued by `Uring::arm_timeout` fired (`result == -ETIME`) or was
    /// cancelled.
    #[cfg(test)]
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
        /// The sender's tag for the target.
        tag: u32,
        /// 0 or `-errno`.
        result: i32,
    },
    /// Another ring posted a message into this one with `Uring::msg_ring`.
    Message {
        /// The sender's payload.
        payload: u32,
    },
    /// The worker's wake-up eventfd is readable (armed with `Backend::arm_wake`): another thread
    /// has something for it. Read the eventfd to reset it ([`crate::runtime::sys::eventfd_drain`]).
    Wake {
        /// Whether the poll is still armed; arm it again when false.
        more: bool,
    },
    /// (Tests only.) A no-op queued by `Uring::nop` completed.
    #[cfg(test)]
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

/// Tests compare completions: equal when they print the same (an accepted socket by its
/// descriptor's number).
#[cfg(test)]
impl PartialEq for Completion {
    fn eq(&self, other: &Self) -> bool {
        format!("{self:?}") == format!("{other:?}")
    }
}
