//! The io_uring byte layer: "bytes in, byte slices out", nothing of WebSocket.
//!
//! A worker owns one [`Uring`] (one ring, one provided-buffer ring) on its own thread and drives
//! it in a loop:
//!
//! ```text
//! loop {
//!     uring.submit_and_wait(1, Some(tick))?;       // publishes recycled buffers, one enter
//!     while let Some(c) = uring.next_completion() {
//!         match c {
//!             Completion::Accepted { fd, .. } => {
//!                 /* take a slot, bump its generation; the slot owns `fd` (an OwnedFd) */
//!                 uring.arm_recv_multi(fd.as_fd(), slot, generation)?;
//!             }
//!             Completion::Recv { slot, generation, bid, len, .. } => {
//!                 let bytes = uring.bufs().get(bid, len as usize); // &mut [u8], unmask in place
//!                 /* feed the protocol core, queue replies */
//!                 uring.bufs().recycle(bid);
//!             }
//!             Completion::RecvNoBufs { slot, .. } => { /* remember; re-arm after recycling */ }
//!             _ => {}
//!         }
//!     }
//!     /* one gathered send per connection with pending data: uring.send_owned(..) */
//! }
//! ```
//!
//! # Memory per connection
//! This layer keeps **no per-connection state**: a connection is a `(slot, generation)` pair
//! inside each submission's 64-bit `user_data` (see [`user_data`]). An idle connection has one
//! armed multishot receive in the kernel and **no buffer**: the kernel takes a buffer from the
//! shared [`BufRing`] only when bytes arrive, the completion lends it to the worker, and the
//! worker recycles it as soon as the bytes are consumed. Buffers in use at any time are bounded
//! by the traffic in flight, not by the number of connections.
//!
//! When the ring runs dry, a receive completes with [`Completion::RecvNoBufs`] and is disarmed;
//! the bytes stay in the socket (nothing is lost). The worker keeps a list of such connections
//! and re-arms them after recycling buffers.
//!
//! # Generations
//! The worker bumps a slot's generation each time the slot is given to a new connection.
//! Completions of operations queued for an earlier connection (a cancelled receive, a send that
//! raced with the close) carry the old generation and must be ignored, after recycling any
//! buffer they carry. Closing is: [`Uring::cancel_recv`] or [`Uring::cancel_fd`], then
//! [`Uring::close`], which takes the `OwnedFd`; the slot can be reused at once thanks to the
//! generation, or after the last completion if the worker prefers to count them.
//!
//! # Ownership of send buffers
//! A `sendmsg` points at memory: a [`SendHeader`], the iovec array it names and the bytes those
//! iovecs point to. The kernel may read all three at any time until the send's last completion
//! ([`Completion::Sent`], or for a zero-copy send [`Completion::SendNotif`]) is returned by
//! [`Uring::next_completion`]; until then they must stay alive, unmoved and unmodified.
//! [`Uring::send_owned`] keeps them in a boxed record that is released by that completion (see
//! `send.rs`); the raw, `unsafe` `Uring::send` that leaves the duty to its caller is compiled
//! for tests only. One send in flight per connection keeps the byte order.
//!
//! # Submission and completion queues
//! Queueing never drops an entry: when the submission queue is full, the queued entries are
//! submitted (one `io_uring_enter`) and the push retried. Completions are copied out of the
//! completion queue in batches; when the kernel reports a completion-queue overflow
//! (`IORING_SQ_CQ_OVERFLOW`), the overflowed completions are flushed with a `GETEVENTS` enter
//! and delivered in order. [`UringStats::cq_dropped`] counts completions the kernel lost
//! anyway (only possible when it could not allocate the overflow entry).
//!
//! With `DEFER_TASKRUN` (see [`RingFlags`]), completions are only produced while this thread
//! enters the kernel with `GETEVENTS`, which [`Uring::submit_and_wait`] always does.
//!
//! # Teardown
//! Closing a ring's fd does not stop the kernel: it tears the ring down asynchronously (a
//! workqueue cancels and reaps what is in flight), and not at all while another reference to
//! the ring's file exists (the server's hub keeps a duplicate of each worker's ring fd, so that
//! a wake-up sent by another worker can never reach a reused fd number). Memory an operation
//! points at must therefore outlive the operation itself, not the fd. Dropping a [`Uring`]:
//!
//! 1. cancels every operation (`IORING_ASYNC_CANCEL_ANY`) and reads completions, recycling
//!    buffers and releasing send records as usual, until a cancel finds nothing left (it
//!    reports 0 requests) and no send waits for its last completion (bounded: 32 rounds of at
//!    most 250 ms);
//! 2. then unregisters the buffer ring and frees the send records and the buffer mapping.
//!
//! If the bound is reached first, the send records and the buffer mapping are leaked (logged)
//! rather than freed under the kernel. Either way nothing the kernel may still read or write is
//! freed, whatever the order in which it finishes its own teardown.

mod buf_ring;
mod completion;
mod listener;
mod ring;
mod send;
pub mod user_data;

#[cfg(test)]
mod tests;

/// Says that (part of) a test was skipped, and why, where it is seen: straight to the process's
/// stderr, past the test harness's output capture.
#[cfg(test)]
pub(crate) fn skipped(what: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {what}");
}

use std::collections::VecDeque;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use io_uring::types::{CancelBuilder, Fd, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue};

pub use crate::runtime::Completion;
pub use buf_ring::{BufRing, MAX_ENTRIES};
pub use listener::{DEFAULT_BACKLOG, bind_listener, check_port_free, set_nodelay};
pub use ring::{RingFlags, build_ring, probe_ops};
pub use send::MAX_IOVECS;
pub use user_data::{OpKind, UserData};

/// Sizes of each worker's io_uring (`Uring`) and its receive buffers. Every field is a limit
/// with a default and a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UringConfig {
    /// Submission queue entries. Default 256: one loop iteration queues about one send per
    /// active connection plus re-arms; a full queue is submitted early, never dropped.
    pub sq_entries: u32,
    /// Completion queue entries (at least `sq_entries`). Default 4096: multishot operations
    /// post many completions per submission; overflow is handled but costs kernel allocations.
    pub cq_entries: u32,
    /// Buffers in the provided-buffer ring (a power of two, at most 32768). Default 64:
    /// buffers are only held while bytes are being processed, so `buf_entries × buf_size`
    /// (4 MiB by default) bounds the bytes in flight per worker, not the number of connections.
    pub buf_entries: u16,
    /// Size of each buffer in bytes. Default 64 KiB: a 64 KiB message arrives in one or two
    /// reads instead of sixteen. With incremental consumption (kernel 6.12+) a small message
    /// takes only its own bytes of a buffer, so large buffers waste nothing; without it (older
    /// kernels, or `incremental_bufs: false`) the same memory is split into 4 KiB buffers,
    /// because a whole 64 KiB buffer per 20-byte message would leave the pool short.
    pub buf_size: u32,
    /// Consume receive buffers incrementally (`IOU_PBUF_RING_INC`) where the kernel can.
    /// Default true.
    pub incremental_bufs: bool,
    /// The buffer group id of the ring. Default 0: one group per ring.
    pub bgid: u16,
    /// Set `TCP_NODELAY` on accepted sockets. Default true: frames are written whole.
    pub nodelay: bool,
    /// Use zero-copy sends (`IORING_OP_SENDMSG_ZC`) for sends of at least this many bytes.
    /// Default `None` (off): measured on loopback, where the kernel copies anyway, it only adds
    /// a notification per send; worth measuring again on a real NIC with large messages.
    pub send_zc_min_bytes: Option<u32>,
}

impl Default for UringConfig {
    fn default() -> Self {
        UringConfig {
            sq_entries: 256,
            cq_entries: 4096,
            buf_entries: 64,
            buf_size: 64 * 1024,
            incremental_bufs: true,
            bgid: 0,
            nodelay: true,
            send_zc_min_bytes: None,
        }
    }
}

/// Counters of the queue edge cases, for the worker's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UringStats {
    /// Times a full submission queue was submitted early to make room.
    pub sq_full_submits: u64,
    /// Times an overflowed completion queue was flushed.
    pub cq_overflow_flushes: u64,
    /// Completions the kernel dropped (its `overflow` counter); should stay 0.
    pub cq_dropped: u32,
}

/// A `msghdr` for a send, kept alive with its iovecs until the send completes (see the module
/// docs on ownership).
#[derive(Debug)]
pub struct SendHeader {
    /// The header the kernel reads; only `msg_iov` and `msg_iovlen` are set.
    msg: libc::msghdr,
}

impl SendHeader {
    /// An empty header (no iovecs).
    pub fn new() -> SendHeader {
        // SAFETY: msghdr is a plain C struct of integers and pointers; all-zero is its empty
        // value (no name, no iovecs, no control data).
        let msg = unsafe { std::mem::zeroed::<libc::msghdr>() };
        SendHeader { msg }
    }

    /// Points the header at raw `iovecs`. The array is not borrowed beyond this call: keeping
    /// it (and the bytes it names) alive until the send completes is the duty of whoever queues
    /// the send (see [`Uring::send_owned`], which keeps both in its records).
    pub fn set_raw_iovecs(&mut self, iovecs: &[libc::iovec]) {
        self.msg.msg_iov = iovecs.as_ptr().cast_mut();
        self.msg.msg_iovlen = iovecs.len() as _;
    }
}

impl Default for SendHeader {
    fn default() -> Self {
        SendHeader::new()
    }
}

/// One worker's ring, buffer ring and completion backlog (see the module docs).
///
/// Not `Send`: with `SINGLE_ISSUER` only the thread that built the ring may submit, so build it
/// on the worker's thread.
pub struct Uring {
    /// The provided buffers; unregistered in Drop before the ring closes.
    bufs: BufRing,
    /// The ring itself.
    ring: IoUring,
    /// The setup flags in use.
    flags: RingFlags,
    /// Whether accepted sockets get `TCP_NODELAY`.
    nodelay: bool,
    /// Sends of at least this many bytes are zero-copy.
    send_zc_min_bytes: Option<u32>,
    /// CQEs copied out of the completion queue and not yet decoded.
    backlog: VecDeque<cqueue::Entry>,
    /// The timespec of the queued timeout; boxed so its address is stable until submitted.
    #[cfg(test)]
    timeout_ts: Box<Timespec>,
    /// Whether a timeout SQE pointing at `timeout_ts` may not have been submitted yet.
    #[cfg(test)]
    timeout_queued: bool,
    /// Every CQE decoded, raw `(user_data, res, flags)`, for tests that look at what the kernel
    /// sent.
    #[cfg(test)]
    raw_seen: Vec<(u64, i32, u32)>,
    /// Edge-case counters.
    stats: UringStats,
    /// Records of [`Uring::send_owned`] sends in flight: the memory the kernel reads until each
    /// send's last completion. Freed only once the ring is quiet (see "Teardown").
    sends: send::OwnedSends,
    /// Keeps the type `!Send` (single issuer).
    _single_thread: PhantomData<*const ()>,
}

impl std::fmt::Debug for Uring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uring")
            .field("fd", &self.ring.as_raw_fd())
            .field("flags", &self.flags)
            .field("bufs", &self.bufs)
            .field("backlog", &self.backlog.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Uring {
    /// Builds the ring (best flags the kernel accepts), checks the opcodes and registers the
    /// buffer ring.
    ///
    /// # Errors
    /// Ring setup or buffer registration errors, `Unsupported` if an opcode is missing, or
    /// `InvalidInput` for bad sizes.
    pub fn new(config: UringConfig) -> io::Result<Uring> {
        let (ring, flags) =
            build_ring(config.sq_entries, config.cq_entries.max(config.sq_entries))?;
        let ops = probe_ops(&ring)?;
        let missing = ops.missing();
        if !missing.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring lacks opcodes: {}", missing.join(", ")),
            ));
        }
        if config.send_zc_min_bytes.is_some() {
            let mut probe = io_uring::Probe::new();
            ring.submitter().register_probe(&mut probe)?;
            if !probe.is_supported(opcode::SendMsgZc::CODE) {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "zero-copy sends asked for, but io_uring lacks SENDMSG_ZC (kernel 6.1+)",
                ));
            }
        }
        let bufs = Self::buffers(&ring, &config)?;
        Ok(Uring {
            bufs,
            backlog: VecDeque::with_capacity(flags.cq_entries as usize),
            ring,
            flags,
            nodelay: config.nodelay,
            send_zc_min_bytes: config.send_zc_min_bytes,
            #[cfg(test)]
            timeout_ts: Box::new(Timespec::new()),
            #[cfg(test)]
            timeout_queued: false,
            #[cfg(test)]
            raw_seen: Vec::new(),
            stats: UringStats::default(),
            sends: send::OwnedSends::default(),
            _single_thread: PhantomData,
        })
    }

    /// Registers the receive buffers: incrementally consumed where the kernel can (6.12+);
    /// otherwise the same memory in buffers of at most 4 KiB.
    fn buffers(ring: &IoUring, config: &UringConfig) -> io::Result<BufRing> {
        const SMALL: u32 = 4096;
        let (entries, size) = (config.buf_entries, config.buf_size);
        if config.incremental_bufs {
            match BufRing::new(ring, config.bgid, entries, size, true) {
                Ok(bufs) => return Ok(bufs),
                // EINVAL: a kernel before 6.12 does not know the flag.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => return Err(e),
            }
        }
        if size <= SMALL {
            return BufRing::new(ring, config.bgid, entries, size, false);
        }
        let total = u64::from(entries) * u64::from(size);
        let split = (total / u64::from(SMALL)).clamp(1, u64::from(MAX_ENTRIES));
        // The largest power of two not above `split`.
        let split = 1u64 << (63 - split.leading_zeros());
        BufRing::new(ring, config.bgid, split as u16, SMALL, false)
    }

    /// The setup flags the kernel accepted (with whether receive buffers are incremental).
    pub fn flags(&self) -> RingFlags {
        RingFlags {
            incremental_bufs: self.bufs.incremental(),
            ..self.flags
        }
    }

    /// Edge-case counters.
    #[cfg(test)]
    pub fn stats(&self) -> UringStats {
        self.stats
    }

    /// The ring's file descriptor, the target other workers give to [`Uring::msg_ring`].
    pub fn ring_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the ring's fd stays open for as long as `self.ring`, which the returned borrow
        // of `self` cannot outlive.
        unsafe { BorrowedFd::borrow_raw(self.ring.as_raw_fd()) }
    }

    /// The provided-buffer ring, for counters.
    pub fn bufs_ref(&self) -> &BufRing {
        &self.bufs
    }

    /// The provided-buffer ring: read lent buffers, recycle them.
    pub fn bufs(&mut self) -> &mut BufRing {
        &mut self.bufs
    }

    /// Queues a multishot accept on `listener`. It stays armed while completions say `more`.
    ///
    /// # Errors
    /// Only if making room in a full submission queue fails.
    pub fn arm_accept_multi(&mut self, listener: BorrowedFd<'_>) -> io::Result<()> {
        let entry = opcode::AcceptMulti::new(Fd(listener.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(UserData::new(OpKind::Accept, 0, 0).raw());
        self.push(&entry)
    }

    /// Queues a request to cancel the multishot accept queued by [`Uring::arm_accept_multi`];
    /// the accept then ends with `AcceptError { errno: ECANCELED, more: false }`.
    ///
    /// # Errors
    /// Only if making room in a full submission queue fails.
    pub fn cancel_accept(&mut self) -> io::Result<()> {
        let target = UserData::new(OpKind::Accept, 0, 0).raw();
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(UserData::new(OpKind::Cancel, 0, 0).raw());
        self.push(&entry)
    }

    /// Queues a multishot receive on `fd` for connection `(slot, generation)`, filling buffers
    /// from the buffer ring.
    ///
    /// # Errors
    /// Only if making room in a full submission queue fails.
    ///
    /// # Panics
    /// If `slot` exceeds [`user_data::MAX_SLOT`].
    pub fn arm_recv_multi(
        &mut self,
        fd: BorrowedFd<'_>,
        slot: u32,
        generation: u32,
    ) -> io::Result<()> {
        let entry = opcode::RecvMulti::new(Fd(fd.as_raw_fd()), self.bufs.bgid())
            .build()
            .user_data(UserData::new(OpKind::Recv, slot, generation).raw());
        self.push(&entry)
    }

    /// Queues a gathered `sendmsg` (with `MSG_NOSIGNAL`) of the iovecs in `header` on `fd`.
    /// Its result comes back as [`Completion::Sent`]; a short send leaves the rest to the
    /// caller. Test-only: the server sends through [`Uring::send_owned`], which keeps the memory
    /// itself.
    ///
    /// # Errors
    /// Only if making room in a full submission queue fails; nothing was queued then.
    ///
    /// # Safety
    /// Until [`Uring::next_completion`] has returned the `Sent` completion of this send (or the
    /// `Uring` has been dropped), `header`, the iovec array it points to and every byte those
    /// iovecs name must stay alive at the same address and must not be modified.
    #[cfg(test)]
    pub(crate) unsafe fn send(
        &mut self,
        fd: RawFd,
        slot: u32,
        generation: u32,
        header: &SendHeader,
    ) -> io::Result<()> {
        // SAFETY: the caller upholds this function's contract, which is `queue_sendmsg`'s.
        unsafe { self.queue_sendmsg(fd, slot, generation, header, false) }
    }

    /// Queues a `sendmsg`, zero-copy (`SENDMSG_ZC`) or not. A zero-copy send's result comes as
    /// [`Completion::Sent`] with the completion's `more` flag, then [`Completion::SendNotif`]
    /// when the kernel no longer reads the bytes.
    ///
    /// # Safety
    /// As for [`Uring::send`]; for a zero-copy send, until the `SendNotif` completion has been
    /// returned.
    pub(super) unsafe fn queue_sendmsg(
        &mut self,
        fd: RawFd,
        slot: u32,
        generation: u32,
        header: &SendHeader,
        zero_copy: bool,
    ) -> io::Result<()> {
        let msg = &raw const header.msg;
        let entry = if zero_copy {
            opcode::SendMsgZc::new(Fd(fd), msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
        } else {
            opcode::SendMsg::new(Fd(fd), msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
        };
        self.push(&entry.user_data(UserData::new(OpKind::Send, slot, generation).raw()))
    }

    /// Queues a cancel of the multishot receive of `(slot, generation)`. Two completions
    /// follow: [`Completion::CancelDone`] for the request and [`Completion::RecvCancelled`]
    /// (or an earlier end) for the receive.
    ///
    /// # Errors
    /// Only if making room in a full submission queue fails.
    pub fn cancel_recv(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let target = UserData::new(OpKind::Recv, slot, generation).raw();
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(UserData::new(OpKind::Cancel, slot, generation).raw());
        self.push(&entry)
    }

    /// Queues a cancel of every operation in flight on `fd` (receive and send), tagged with
    /// `(slot, generation)`; [`Completion::CancelDone`]'s result is the number cancelled or
    /// `-ENOENT`.
    ///
    /// # Errors
    /// Only if making room in a full submission queue fails.
    pub fn cancel_fd(&mut self, fd: BorrowedFd<'_>, slot: u32, generation: u32) -> io::Result<()> {
        let entry = opcode::AsyncCancel2::new(CancelBuilder::fd(Fd(fd.as_raw_fd())).all())
            .build()
            .user_data(UserData::new(OpKind::Cancel, slot, generation).raw());
        self.push(&entry)
    }

    /// Queues an asynchronous `close(fd)`, answered by [`Completion::Closed`]: the descriptor
    /// is the ring's from here on. Operations still in flight on `fd` keep the socket open until
    /// they end: cancel them first.
    ///
    /// # Errors
    /// Only if making room in a full submission queue fails; `fd` is then closed at once (the
    /// close is never lost).
    pub fn close(&mut self, fd: OwnedFd, slot: u32, generation: u32) -> io::Result<()> {
        let entry = opcode::Close::new(Fd(fd.as_raw_fd()))
            .build()
            .user_data(UserData::new(OpKind::Close, slot, generation).raw());
        self.push(&entry)?;
        // Queued: the ring closes it. (On error `fd` is dropped above, which closes it now.)
        let _ = fd.into_raw_fd();
        Ok(())
    }

    /// Queues a timeout that completes with [`Completion::Timeout`] after `after`. Meant for the
    /// worker's one timer tick; arming again before the previous timeout was submitted submits it
    /// first.
    ///
    /// # Errors
    /// A submission error.
    #[cfg(test)]
    pub fn arm_timeout(&mut self, after: Duration, token: u32) -> io::Result<()> {
        if self.timeout_queued {
            // The queued timeout still points at `timeout_ts`: let the kernel read it first.
            self.enter(0, None)?;
            if self.timeout_queued {
                return Err(io::Error::from(io::ErrorKind::WouldBlock));
            }
        }
        *self.timeout_ts = Timespec::from(after);
        let entry = opcode::Timeout::new(&raw const *self.timeout_ts)
            .build()
            .user_data(UserData::new(OpKind::Timeout, 0, token).raw());
        self.push(&entry)?;
        self.timeout_queued = true;
        Ok(())
    }

    /// Queues a message into another ring (`target` from its [`Uring::ring_fd`]): the target
    /// gets [`Completion::Message`] `{ payload }` (with `value` as its result). This ring gets
    /// [`Completion::MsgSent`] `{ payload, tag, result }` only if the message could not be
    /// posted (`result < 0`; `tag`, at most [`MAX_SLOT`](user_data::MAX_SLOT), names the target
    /// for whoever must act on the failure): a success would carry nothing to act on, so it
    /// posts no completion (`IOSQE_CQE_SKIP_SUCCESS`), one fewer per wake-up of another worker.
    ///
    /// # Errors
    /// Only if making room in a full submission queue fails.
    pub fn msg_ring(
        &mut self,
        target: BorrowedFd<'_>,
        payload: u32,
        value: i32,
        tag: u32,
    ) -> io::Result<()> {
        let theirs = UserData::new(OpKind::Message, 0, payload).raw();
        let entry = opcode::MsgRingData::new(Fd(target.as_raw_fd()), value, theirs, None)
            .build()
            .flags(squeue::Flags::SKIP_SUCCESS)
            .user_data(UserData::new(OpKind::MsgSent, tag, payload).raw());
        self.push(&entry)
    }

    /// Queues a multishot poll for `efd` becoming readable: each time it is, a
    /// [`Completion::Wake`] arrives (the caller reads the eventfd to reset it).
    ///
    /// # Errors
    /// Only if making room in a full submission queue fails.
    pub fn arm_wake_poll(&mut self, efd: BorrowedFd<'_>) -> io::Result<()> {
        let entry = opcode::PollAdd::new(Fd(efd.as_raw_fd()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(UserData::new(OpKind::Wake, 0, 0).raw());
        self.push(&entry)
    }

    /// Queues a no-op that completes with [`Completion::Nop`].
    ///
    /// # Errors
    /// Only if making room in a full submission queue fails.
    #[cfg(test)]
    pub fn nop(&mut self, token: u32) -> io::Result<()> {
        let entry = opcode::Nop::new()
            .build()
            .user_data(UserData::new(OpKind::Nop, 0, token).raw());
        self.push(&entry)
    }

    /// Publishes recycled buffers, submits everything queued and waits for at least
    /// `min_complete` completions or `timeout`, in one `io_uring_enter`. Always enters with
    /// `GETEVENTS`, which `DEFER_TASKRUN` needs: without it deferred completions never run.
    ///
    /// `min_complete == 0` never blocks (the timeout is ignored) but still lets the kernel post
    /// completions whose work was deferred.
    ///
    /// Returns the number of entries submitted. A timeout, `EINTR` or a full completion queue
    /// (`EBUSY`) is not an error: read [`Uring::next_completion`] and call again.
    ///
    /// # Errors
    /// Other errors of `io_uring_enter`.
    pub fn submit_and_wait(
        &mut self,
        min_complete: usize,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        self.enter(min_complete, timeout)
    }

    /// The next completion, decoded, or `None` when none is ready. Never blocks. Copies the
    /// completion queue out in batches and flushes a kernel-side overflow when flagged.
    pub fn next_completion(&mut self) -> Option<Completion> {
        if self.backlog.is_empty() {
            self.refill();
        }
        let cqe = self.backlog.pop_front()?;
        #[cfg(test)]
        self.raw_seen
            .push((cqe.user_data(), cqe.result(), cqe.flags()));
        let completion = completion::decode(
            cqe.user_data(),
            cqe.result(),
            cqe.flags(),
            &mut self.bufs,
            self.nodelay,
        );
        match completion {
            // A zero-copy send's result comes with `more`: its bytes stay in use until the
            // notification.
            Completion::Sent {
                slot, generation, ..
            } if !cqueue::more(cqe.flags()) => self.sends.release(slot, generation),
            Completion::SendNotif { slot, generation } => self.sends.release(slot, generation),
            _ => {}
        }
        Some(completion)
    }

    /// Copies every ready CQE into the backlog, flushing overflowed ones from the kernel.
    fn refill(&mut self) {
        loop {
            self.drain_cq();
            if !self.ring.submission().cq_overflow() {
                break;
            }
            // The kernel holds completions that did not fit: a GETEVENTS enter flushes them into
            // the (now empty) completion queue. The crate adds GETEVENTS when the flag is set.
            self.stats.cq_overflow_flushes += 1;
            if self.ring.submitter().submit_and_wait(0).is_err() {
                break;
            }
        }
    }

    /// Moves all CQEs now in the completion queue to the backlog.
    fn drain_cq(&mut self) {
        let mut cq = self.ring.completion();
        self.stats.cq_dropped = cq.overflow();
        self.backlog.extend(&mut cq);
    }

    /// Pushes `entry`, submitting early while the submission queue is full.
    ///
    /// Gives up with `WouldBlock` (the entry not queued, so the caller knows) only if the kernel
    /// takes nothing in several attempts (`EAGAIN`/`EBUSY` each time).
    fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        const ATTEMPTS: usize = 8;
        for _ in 0..ATTEMPTS {
            // SAFETY: every entry built by this type points only at memory that outlives its
            // use: `timeout_ts` (boxed, kept until submitted), the buffer ring (unregistered
            // before it is freed), or caller memory under `send`'s safety contract.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            self.stats.sq_full_submits += 1;
            self.enter(0, None)?;
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "submission queue stays full: the kernel takes no entries",
        ))
    }

    /// One `io_uring_enter`: publish buffers, submit, optionally wait.
    fn enter(&mut self, want: usize, timeout: Option<Duration>) -> io::Result<usize> {
        self.bufs.publish();
        let to_submit = self.ring.submission().len();
        let submitter = self.ring.submitter();
        let result = match timeout {
            _ if want == 0 => {
                // Not waiting, but still GETEVENTS: with DEFER_TASKRUN that is the only way the
                // kernel runs the completion work already pending (the crate's `submit` omits
                // it unless the SQ flags ask).
                let flags = io_uring::EnterFlags::GETEVENTS.bits();
                // SAFETY: no argument pointer is passed (size 0); `to_submit` is the number of
                // entries queued, all of which point at memory that outlives their use (see
                // `push`).
                unsafe { submitter.enter::<libc::sigset_t>(to_submit as u32, 0, flags, None) }
            }
            Some(after) => {
                let ts = Timespec::from(after);
                let args = SubmitArgs::new().timespec(&ts);
                submitter.submit_with_args(want, &args)
            }
            None => submitter.submit_and_wait(want),
        };
        let result = match result {
            Ok(n) => Ok(n),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME | libc::EINTR) => Ok(0),
                Some(libc::EBUSY | libc::EAGAIN) => {
                    // The kernel needs completion space or memory before taking more: move the
                    // completions out so the next enter can proceed.
                    self.drain_cq();
                    Ok(0)
                }
                _ => Err(e),
            },
        };
        #[cfg(test)]
        if self.ring.submission().is_empty() {
            self.timeout_queued = false;
        }
        result
    }
}

impl Uring {
    /// Cancels every operation in flight and reads completions until the kernel has none left,
    /// so that no operation still points at memory this value owns (send records, receive
    /// buffers). Returns whether it got there within its bound (see "Teardown").
    fn quiesce(&mut self) -> bool {
        /// The tag of the teardown's own cancels (no connection has this slot).
        const QUIESCE: UserData = UserData::new(OpKind::Cancel, user_data::MAX_SLOT, u32::MAX);
        const ROUNDS: usize = 32;
        const ROUND_WAIT: Duration = Duration::from_millis(250);
        for _ in 0..ROUNDS {
            let entry = opcode::AsyncCancel2::new(CancelBuilder::any())
                .build()
                .user_data(QUIESCE.raw());
            if self.push(&entry).is_err() {
                return false;
            }
            let mut cancel_result = None;
            let started = std::time::Instant::now();
            while cancel_result.is_none() && started.elapsed() < ROUND_WAIT {
                if self.enter(1, Some(Duration::from_millis(10))).is_err() {
                    return false;
                }
                while let Some(c) = self.next_completion() {
                    match c {
                        Completion::CancelDone {
                            slot: user_data::MAX_SLOT,
                            generation: u32::MAX,
                            result,
                        } => cancel_result = Some(result),
                        // A lent buffer goes back; an accepted socket is closed by its drop.
                        Completion::Recv { bid, .. } => self.bufs.recycle(bid),
                        _ => {}
                    }
                }
            }
            // Nothing left to cancel (a cancel of any request reports how many it found: 0; older
            // kernels say -ENOENT) and no send waiting for its last completion: quiet.
            let none_left = matches!(cancel_result, Some(r) if r == 0 || r == -libc::ENOENT);
            if none_left && !self.sends.any_in_flight() {
                return true;
            }
        }
        false
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // See "Teardown" in the module docs: closing the ring's fd would not stop the kernel
        // (it tears a ring down asynchronously, and another process-wide reference, such as the
        // duplicate other workers send wake-ups through, keeps it alive), so operations are
        // cancelled and drained here, while everything they point at is still alive.
        if self.quiesce() {
            // The kernel stops using the buffer ring before its memory is unmapped; should the
            // unregistration fail, BufRing leaks the mapping instead.
            let _ = self.bufs.unregister(&self.ring);
        } else {
            // Operations may still be in flight: leak what they may read or write rather than
            // free it (the buffer ring stays registered, so BufRing leaks its mapping too).
            tracing::error!(
                "io_uring teardown: operations still in flight after cancelling; their memory is leaked, not freed"
            );
            self.sends.leak();
        }
    }
}
