//! The seam between a worker and its I/O: the operations a worker queues and the completions it
//! reads back, implemented by io_uring ([`Uring`]) and by epoll ([`Epoll`](super::epoll::Epoll)). Everything above
//! (connection slots, send queues, timers, backpressure, the protocol) is shared.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use bytes::Bytes;

use super::Completion;
use super::uring::{MAX_IOVECS, RingFlags, Uring, UringConfig};

/// What a worker needs from its I/O backend. Every operation's result arrives later as a
/// [`Completion`] from [`Backend::next_completion`], with the same meaning for both backends.
pub trait Backend {
    /// Starts accepting on `listener`; connections arrive as [`Completion::Accepted`].
    fn arm_accept(&mut self, listener: BorrowedFd<'_>) -> io::Result<()>;
    /// Stops accepting ([`Completion::AcceptError`] with `ECANCELED` follows).
    fn cancel_accept(&mut self) -> io::Result<()>;
    /// Starts receiving on `fd` for connection `(slot, generation)`: bytes arrive as
    /// [`Completion::Recv`] in a buffer lent until [`Backend::recycle`].
    fn arm_recv(&mut self, fd: BorrowedFd<'_>, slot: u32, generation: u32) -> io::Result<()>;
    /// Stops the receive of `(slot, generation)` (flow control): it ends with
    /// [`Completion::RecvCancelled`] (bytes already received may still arrive before it), and
    /// [`Completion::CancelDone`] reports whether it was found. Unread bytes stay in the socket.
    fn cancel_recv(&mut self, slot: u32, generation: u32) -> io::Result<()>;
    /// The bytes of a [`Completion::Recv`], mutable (the protocol core unmasks in place).
    fn recv_buf(&mut self, bid: u16, len: usize) -> &mut [u8];
    /// Gives a receive buffer back.
    fn recycle(&mut self, bid: u16);
    /// Receive buffers lent out now.
    fn buffers_lent(&self) -> u32;
    /// Whether a receive that stopped for lack of buffers can be re-armed.
    fn buffers_available(&self) -> bool;
    /// Sends the start of `frames` (one gathered write); the bytes sent come back as
    /// [`Completion::Sent`]. Returns the frames taken.
    fn send(
        &mut self,
        fd: BorrowedFd<'_>,
        slot: u32,
        generation: u32,
        frames: &mut dyn Iterator<Item = Bytes>,
    ) -> io::Result<usize>;
    /// Whether `slot` cannot send yet (a zero-copy send still holds its bytes).
    fn send_busy(&self, slot: u32) -> bool;
    /// Cancels what is in flight on `fd` (the receive ends with [`Completion::RecvCancelled`]).
    fn cancel(&mut self, fd: BorrowedFd<'_>, slot: u32, generation: u32) -> io::Result<()>;
    /// Closes `fd`, which the backend owns from here on; [`Completion::Closed`] follows.
    fn close(&mut self, fd: OwnedFd, slot: u32, generation: u32) -> io::Result<()>;
    /// The io_uring fd other workers can wake this one through (`None` on epoll).
    fn ring_fd(&self) -> Option<BorrowedFd<'_>>;
    /// Arms the wake-up `efd` (an eventfd other threads signal): each signal produces a
    /// [`Completion::Wake`].
    fn arm_wake(&mut self, efd: BorrowedFd<'_>) -> io::Result<()>;
    /// Wakes another worker: through its ring (`IORING_OP_MSG_RING`: no system call, the target
    /// sees [`Completion::Message`]) when both run io_uring and its `ring` is given, otherwise
    /// by signalling its eventfd `efd`. `tag` names the target in the
    /// [`Completion::MsgSent`] that reports a message which could not be posted, so the caller
    /// can signal its eventfd instead.
    fn wake_peer(
        &mut self,
        ring: Option<BorrowedFd<'_>>,
        efd: BorrowedFd<'_>,
        tag: u32,
    ) -> io::Result<()>;
    /// Submits what is queued and waits up to `timeout` for at least one completion.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()>;
    /// The next completion, without blocking.
    fn next_completion(&mut self) -> Option<Completion>;
    /// The backend's name, for logs and counters.
    fn name(&self) -> &'static str;
}

impl Backend for Uring {
    fn arm_accept(&mut self, listener: BorrowedFd<'_>) -> io::Result<()> {
        self.arm_accept_multi(listener)
    }
    fn cancel_accept(&mut self) -> io::Result<()> {
        Uring::cancel_accept(self)
    }
    fn arm_recv(&mut self, fd: BorrowedFd<'_>, slot: u32, generation: u32) -> io::Result<()> {
        self.arm_recv_multi(fd, slot, generation)
    }
    fn cancel_recv(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        Uring::cancel_recv(self, slot, generation)
    }
    fn recv_buf(&mut self, bid: u16, len: usize) -> &mut [u8] {
        self.bufs().get(bid, len)
    }
    fn recycle(&mut self, bid: u16) {
        self.bufs().recycle(bid);
    }
    fn buffers_lent(&self) -> u32 {
        self.bufs_ref().lent()
    }
    fn buffers_available(&self) -> bool {
        self.bufs_ref().available() > 0
    }
    fn send(
        &mut self,
        fd: BorrowedFd<'_>,
        slot: u32,
        generation: u32,
        frames: &mut dyn Iterator<Item = Bytes>,
    ) -> io::Result<usize> {
        self.send_owned(fd, slot, generation, frames.take(MAX_IOVECS))
            .map(|(_, count)| count)
    }
    fn send_busy(&self, slot: u32) -> bool {
        Uring::send_busy(self, slot)
    }
    fn cancel(&mut self, fd: BorrowedFd<'_>, slot: u32, generation: u32) -> io::Result<()> {
        self.cancel_fd(fd, slot, generation)
    }
    fn close(&mut self, fd: OwnedFd, slot: u32, generation: u32) -> io::Result<()> {
        Uring::close(self, fd, slot, generation)
    }
    fn ring_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(Uring::ring_fd(self))
    }
    fn arm_wake(&mut self, efd: BorrowedFd<'_>) -> io::Result<()> {
        self.arm_wake_poll(efd)
    }
    fn wake_peer(
        &mut self,
        ring: Option<BorrowedFd<'_>>,
        efd: BorrowedFd<'_>,
        tag: u32,
    ) -> io::Result<()> {
        match ring {
            Some(ring) if tag <= super::uring::user_data::MAX_SLOT => {
                self.msg_ring(ring, WAKE_PAYLOAD, 0, tag)
            }
            _ => {
                super::sys::eventfd_signal(efd);
                Ok(())
            }
        }
    }
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let want = usize::from(timeout != Some(Duration::ZERO));
        self.submit_and_wait(want, timeout).map(drop)
    }
    fn next_completion(&mut self) -> Option<Completion> {
        Uring::next_completion(self)
    }
    fn name(&self) -> &'static str {
        "io_uring"
    }
}

/// The payload of a wake-up sent with `IORING_OP_MSG_RING` ([`Completion::Message`]).
pub const WAKE_PAYLOAD: u32 = 0x57414B45; // "WAKE"

/// Which backend to run, as chosen on the command line (`--io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoChoice {
    /// io_uring when the kernel offers everything it needs, epoll otherwise (said in the log).
    #[default]
    Auto,
    /// io_uring, or fail at start with the reason.
    Uring,
    /// epoll.
    Epoll,
}

/// Test-only: makes [`probe_uring`] fail with this errno, to exercise the fallback without a
/// seccomp filter.
const FAKE_FAILURE_ENV: &str = "RINGWS_TEST_URING_ERRNO";

/// Checks that io_uring works here with everything the server needs, by building (and
/// dropping) one ring as a worker would, on a short-lived thread of its own. The error names the cause: `ENOSYS` (kernel without
/// io_uring, or a seccomp filter answering ENOSYS), `EPERM` (seccomp, as in Docker's default
/// profile, or `kernel.io_uring_disabled`), or a missing operation or feature.
pub fn probe_uring(config: UringConfig) -> Result<RingFlags, String> {
    let result = match std::env::var(FAKE_FAILURE_ENV)
        .ok()
        .and_then(|e| e.parse().ok())
    {
        Some(errno) => Err(io::Error::from_raw_os_error(errno)),
        // On a thread of its own: the kernel tears a ring down asynchronously and may notify
        // the thread that made it (TIF_NOTIFY_SIGNAL), which interrupts a blocking socket call
        // with a timeout on that thread with EINTR. The caller's thread (an application's,
        // which may go on to block on sockets) never owns a ring.
        None => std::thread::scope(|s| {
            s.spawn(|| Uring::new(config).map(|ring| ring.flags()))
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the io_uring probe panicked")))
        }),
    };
    result.map_err(|e| {
        let disabled = super::sys::sysctl("kernel/io_uring_disabled").unwrap_or(0);
        let cause = match e.raw_os_error() {
            Some(libc::ENOSYS) => {
                "ENOSYS: the kernel has no io_uring, or a seccomp filter hides it".to_owned()
            }
            Some(libc::EPERM) if disabled > 0 => {
                format!("EPERM: kernel.io_uring_disabled = {disabled}")
            }
            Some(libc::EPERM) => {
                "EPERM: refused by a seccomp filter (containers' default profiles block io_uring)"
                    .to_owned()
            }
            Some(libc::ENOMEM) => {
                "ENOMEM: the ring or its buffers exceed RLIMIT_MEMLOCK (kernels before 5.12)"
                    .to_owned()
            }
            _ => e.to_string(),
        };
        format!("io_uring unavailable ({cause})")
    })
}
