//! The epoll backend (through `mio`), for hosts where io_uring is unavailable: old kernels,
//! `kernel.io_uring_disabled`, container seccomp profiles.
//!
//! It speaks the same [`Backend`](super::Backend) language as the io_uring one, turning
//! readiness into completions, so the worker above is the same code:
//!
//! - **Receive**: sockets are registered edge-triggered; a readable socket goes on a ready list,
//!   and each [`Epoll::next_completion`] reads one chunk of one ready socket into the worker's
//!   single receive buffer (round robin until each returns `EAGAIN`). An idle connection owns no
//!   buffer here either: 12 bytes of bookkeeping and its epoll registration in the kernel.
//! - **Send**: a gathered `sendmsg` right away; the bytes it took are reported as
//!   [`Completion::Sent`]. When the socket is full (`EAGAIN`) the send reports 0 bytes once the
//!   socket is writable again, and the worker sends the rest.
//! - **Accept**: `accept4` until `EAGAIN` when the listener is readable.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use bytes::Bytes;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::Completion;
use super::uring::{MAX_IOVECS, set_nodelay};

/// The listener's token (connection tokens are slots, far below it).
const LISTENER: Token = Token(usize::MAX);
/// The wake-up eventfd's token.
const WAKE: Token = Token(usize::MAX - 1);

/// What the backend knows of one connection.
#[derive(Debug, Clone, Copy, Default)]
struct ConnIo {
    fd: RawFd,
    generation: u32,
    /// Reading is wanted (between `arm_recv` and its end).
    armed: bool,
    /// On the ready list.
    queued: bool,
    /// A send hit `EAGAIN`: report `Sent(0)` when writable.
    want_write: bool,
}

/// One worker's epoll instance and receive buffer.
pub struct Epoll {
    poll: Poll,
    events: Events,
    buf: Box<[u8]>,
    lent: bool,
    nodelay: bool,
    listener: Option<RawFd>,
    accept_ready: bool,
    /// The wake-up eventfd was signalled: report [`Completion::Wake`].
    woken: bool,
    conns: Vec<ConnIo>,
    ready: VecDeque<u32>,
    done: VecDeque<Completion>,
    /// Reads left before the worker gets to flush (one round per `wait`), so a busy peer
    /// cannot keep the loop reading forever.
    budget: u32,
}

/// Reads per loop iteration.
const READ_BUDGET: u32 = 1024;

impl std::fmt::Debug for Epoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Epoll")
            .field("ready", &self.ready.len())
            .finish_non_exhaustive()
    }
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl Epoll {
    /// An epoll instance with one receive buffer of `buf_size` bytes.
    ///
    /// # Errors
    /// The error of `epoll_create1`.
    pub fn new(buf_size: usize, nodelay: bool) -> io::Result<Epoll> {
        Ok(Epoll {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            buf: vec![0; buf_size.max(4096)].into_boxed_slice(),
            lent: false,
            nodelay,
            listener: None,
            accept_ready: false,
            woken: false,
            conns: Vec::new(),
            ready: VecDeque::new(),
            done: VecDeque::new(),
            budget: READ_BUDGET,
        })
    }

    fn conn(&mut self, slot: u32, generation: u32) -> Option<&mut ConnIo> {
        self.conns
            .get_mut(slot as usize)
            .filter(|c| c.generation == generation)
    }

    /// Accepts one connection, if any is waiting.
    fn accept_one(&mut self) -> Option<Completion> {
        let listener = self.listener?;
        // SAFETY: accept4 with null address pointers only returns a new fd or an error.
        let fd = unsafe {
            libc::accept4(
                listener,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: accept4 just installed `fd` in this process's table; nothing else owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            if self.nodelay {
                let _ = set_nodelay(&fd);
            }
            return Some(Completion::Accepted { fd, more: true });
        }
        let e = io::Error::last_os_error();
        self.accept_ready = false;
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) | Some(libc::ECONNABORTED) => None,
            Some(n) => {
                // Out of descriptors or memory: stop until the worker arms the accept again.
                let _ = self.poll.registry().deregister(&mut SourceFd(&listener));
                Some(Completion::AcceptError {
                    errno: n,
                    more: false,
                })
            }
            None => None,
        }
    }

    /// Reads one chunk from the next ready connection.
    fn read_one(&mut self) -> Option<Completion> {
        while self.budget > 0 {
            let slot = self.ready.pop_front()?;
            let Some(c) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            if !c.armed {
                c.queued = false;
                continue;
            }
            let (fd, generation) = (c.fd, c.generation);
            // SAFETY: the buffer is valid for `len` bytes and not borrowed (not lent).
            let n = unsafe { libc::recv(fd, self.buf.as_mut_ptr().cast(), self.buf.len(), 0) };
            let c = &mut self.conns[slot as usize];
            self.budget -= 1;
            if n > 0 {
                // Edge-triggered: more may be waiting; come back after the others.
                self.ready.push_back(slot);
                self.lent = true;
                return Some(Completion::Recv {
                    slot,
                    generation,
                    bid: 0,
                    len: n as u32,
                    more: true,
                });
            }
            c.queued = false;
            if n == 0 {
                c.armed = false;
                return Some(Completion::RecvEof { slot, generation });
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => continue,
                Some(libc::EINTR) => {
                    c.queued = true;
                    self.ready.push_back(slot);
                }
                _ => {
                    c.armed = false;
                    return Some(Completion::RecvError {
                        slot,
                        generation,
                        errno: errno(&e),
                        more: false,
                    });
                }
            }
        }
        None
    }
}

impl super::Backend for Epoll {
    fn arm_accept(&mut self, listener: BorrowedFd<'_>) -> io::Result<()> {
        let listener = listener.as_raw_fd();
        self.poll
            .registry()
            .register(&mut SourceFd(&listener), LISTENER, Interest::READABLE)?;
        self.listener = Some(listener);
        self.accept_ready = true; // connections may already be waiting
        Ok(())
    }

    fn cancel_accept(&mut self) -> io::Result<()> {
        if let Some(listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut SourceFd(&listener));
        }
        self.accept_ready = false;
        self.done.push_back(Completion::AcceptError {
            errno: libc::ECANCELED,
            more: false,
        });
        Ok(())
    }

    fn arm_recv(&mut self, fd: BorrowedFd<'_>, slot: u32, generation: u32) -> io::Result<()> {
        // Kept as a number: the worker owns the descriptor until it hands it to `close`, which
        // forgets this entry's registration first.
        let fd = fd.as_raw_fd();
        let index = slot as usize;
        if self.conns.len() <= index {
            self.conns.resize(index + 1, ConnIo::default());
        }
        let before = self.conns[index];
        let same = before.fd == fd && before.generation == generation;
        let fresh = !same || !before.armed;
        self.conns[index] = ConnIo {
            fd,
            generation,
            armed: true,
            queued: true,
            // Reading resumed while a send waits for room: the wait stays (the re-registration
            // below reports the socket's current state, so a socket already writable is seen).
            want_write: same && before.want_write,
        };
        if fresh {
            let interest = Interest::READABLE | Interest::WRITABLE;
            let registry = self.poll.registry();
            if let Err(e) = registry.register(&mut SourceFd(&fd), Token(index), interest) {
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(e);
                }
                registry.reregister(&mut SourceFd(&fd), Token(index), interest)?;
            }
        }
        // Bytes may have arrived before the registration: look once.
        self.ready.push_back(slot);
        Ok(())
    }

    fn cancel_recv(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        // The registration stays (arming again re-registers it); only reading stops.
        let result = match self.conn(slot, generation) {
            Some(c) if c.armed => {
                c.armed = false;
                self.done
                    .push_back(Completion::RecvCancelled { slot, generation });
                0
            }
            _ => -libc::ENOENT,
        };
        self.done.push_back(Completion::CancelDone {
            slot,
            generation,
            result,
        });
        Ok(())
    }

    fn recv_buf(&mut self, _bid: u16, len: usize) -> &mut [u8] {
        &mut self.buf[..len]
    }

    fn recycle(&mut self, _bid: u16) {
        self.lent = false;
    }

    fn buffers_lent(&self) -> u32 {
        u32::from(self.lent)
    }

    fn buffers_available(&self) -> bool {
        !self.lent
    }

    fn send(
        &mut self,
        fd: BorrowedFd<'_>,
        slot: u32,
        generation: u32,
        frames: &mut dyn Iterator<Item = Bytes>,
    ) -> io::Result<usize> {
        let frames: Vec<Bytes> = frames.filter(|b| !b.is_empty()).take(MAX_IOVECS).collect();
        let iovecs: Vec<libc::iovec> = frames
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr().cast_mut().cast(),
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: msghdr is plain data; all-zero is its empty value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iovecs.as_ptr().cast_mut();
        msg.msg_iovlen = iovecs.len() as _;
        // SAFETY: `msg` points at `iovecs`, which point into `frames`; all outlive this call,
        // and sendmsg only reads them.
        let n = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        let result = if n >= 0 {
            n as i32
        } else {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => {
                    if let Some(c) = self.conn(slot, generation) {
                        c.want_write = true; // reported as Sent(0) when writable
                        return Ok(frames.len());
                    }
                    0
                }
                _ => -errno(&e),
            }
        };
        self.done.push_back(Completion::Sent {
            slot,
            generation,
            result,
        });
        Ok(frames.len())
    }

    fn send_busy(&self, _slot: u32) -> bool {
        false
    }

    fn cancel(&mut self, fd: BorrowedFd<'_>, slot: u32, generation: u32) -> io::Result<()> {
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&fd.as_raw_fd()));
        let mut cancelled = 0;
        if let Some(c) = self.conn(slot, generation) {
            let (armed, want_write) = (c.armed, c.want_write);
            c.armed = false;
            c.want_write = false;
            if armed {
                cancelled += 1;
                self.done
                    .push_back(Completion::RecvCancelled { slot, generation });
            }
            if want_write {
                cancelled += 1;
                self.done.push_back(Completion::Sent {
                    slot,
                    generation,
                    result: -libc::ECANCELED,
                });
            }
        }
        let result = if cancelled > 0 { 0 } else { -libc::ENOENT };
        self.done.push_back(Completion::CancelDone {
            slot,
            generation,
            result,
        });
        Ok(())
    }

    fn close(&mut self, fd: OwnedFd, slot: u32, generation: u32) -> io::Result<()> {
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&fd.as_raw_fd()));
        // Closed here, once: the descriptor was handed over with its ownership.
        drop(fd);
        self.done.push_back(Completion::Closed {
            slot,
            generation,
            result: 0,
        });
        Ok(())
    }

    fn ring_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn arm_wake(&mut self, efd: BorrowedFd<'_>) -> io::Result<()> {
        self.poll
            .registry()
            .register(&mut SourceFd(&efd.as_raw_fd()), WAKE, Interest::READABLE)
    }

    fn wake_peer(
        &mut self,
        _ring: Option<BorrowedFd<'_>>,
        efd: BorrowedFd<'_>,
        _tag: u32,
    ) -> io::Result<()> {
        super::sys::eventfd_signal(efd);
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.budget = READ_BUDGET;
        let busy =
            !self.done.is_empty() || !self.ready.is_empty() || self.accept_ready || self.woken;
        let timeout = if busy { Some(Duration::ZERO) } else { timeout };
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        for event in &self.events {
            if event.token() == LISTENER {
                self.accept_ready = true;
                continue;
            }
            if event.token() == WAKE {
                self.woken = true;
                continue;
            }
            let slot = event.token().0 as u32;
            let Some(c) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            if (event.is_readable() || event.is_read_closed() || event.is_error())
                && c.armed
                && !c.queued
            {
                c.queued = true;
                self.ready.push_back(slot);
            }
            if (event.is_writable() || event.is_error()) && c.want_write {
                c.want_write = false;
                self.done.push_back(Completion::Sent {
                    slot,
                    generation: c.generation,
                    result: 0,
                });
            }
        }
        Ok(())
    }

    fn next_completion(&mut self) -> Option<Completion> {
        if let Some(c) = self.done.pop_front() {
            return Some(c);
        }
        if std::mem::take(&mut self.woken) {
            // Edge-triggered: the worker resets the eventfd, and the next signal is a new edge.
            return Some(Completion::Wake { more: true });
        }
        if self.accept_ready {
            if let Some(c) = self.accept_one() {
                return Some(c);
            }
        }
        if self.lent {
            return None; // the worker recycles before asking again; never overwrite lent bytes
        }
        self.read_one()
    }

    fn name(&self) -> &'static str {
        "epoll"
    }
}

#[cfg(test)]
mod tests {
    //! The epoll backend on its own, over real loopback sockets: the same completions the
    //! worker reads from io_uring, made from readiness.

    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::runtime::Backend;

    fn listener() -> TcpListener {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        l
    }

    /// Waits (bounded) until `f` takes a completion it wants; returns what it returned.
    fn until<T>(e: &mut Epoll, mut f: impl FnMut(&mut Epoll, Completion) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no such completion"
            );
            e.wait(Some(Duration::from_millis(20))).unwrap();
            while let Some(c) = e.next_completion() {
                if let Some(t) = f(e, c) {
                    return t;
                }
            }
        }
    }

    fn accept(e: &mut Epoll) -> OwnedFd {
        until(e, |_, c| match c {
            Completion::Accepted { fd, .. } => Some(fd),
            _ => None,
        })
    }

    #[test]
    fn accept_receive_recycle_and_end_of_stream() {
        let mut e = Epoll::new(4096, true).unwrap();
        let l = listener();
        e.arm_accept(l.as_fd()).unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let fd = accept(&mut e);
        e.arm_recv(fd.as_fd(), 3, 7).unwrap();
        client.write_all(b"hello").unwrap();
        let got = until(&mut e, |e, c| match c {
            Completion::Recv {
                slot: 3,
                generation: 7,
                bid,
                len,
                more: true,
            } => {
                let bytes = e.recv_buf(bid, len as usize).to_vec();
                assert_eq!(e.buffers_lent(), 1);
                assert!(!e.buffers_available(), "one buffer, lent");
                e.recycle(bid);
                Some(bytes)
            }
            _ => None,
        });
        assert_eq!(got, b"hello");
        assert_eq!(e.buffers_lent(), 0);
        drop(client);
        until(&mut e, |_, c| {
            matches!(
                c,
                Completion::RecvEof {
                    slot: 3,
                    generation: 7
                }
            )
            .then_some(())
        });
        e.close(fd, 3, 7).unwrap();
        until(&mut e, |_, c| {
            matches!(
                c,
                Completion::Closed {
                    slot: 3,
                    generation: 7,
                    result: 0
                }
            )
            .then_some(())
        });
    }

    #[test]
    fn a_full_socket_reports_zero_bytes_sent_once_writable_again() {
        full_socket_then_writable(false);
    }

    #[test]
    fn reading_paused_and_resumed_while_a_send_waits_still_reports_it() {
        // The worker pauses reading (cancel) and resumes it (arm again) while a send waits for
        // the socket to drain: arming again must not forget the wait, or the worker would
        // wait for a `Sent` that never comes (a shutdown test once stalled so on epoll).
        full_socket_then_writable(true);
    }

    fn full_socket_then_writable(pause_and_resume: bool) {
        let mut e = Epoll::new(4096, true).unwrap();
        let l = listener();
        e.arm_accept(l.as_fd()).unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let fd = accept(&mut e);
        e.arm_recv(fd.as_fd(), 1, 1).unwrap();
        // Send until the socket takes nothing (the client does not read).
        let big = Bytes::from(vec![7u8; 1 << 20]);
        let mut total = 0;
        loop {
            e.send(fd.as_fd(), 1, 1, &mut std::iter::once(big.clone()))
                .unwrap();
            e.wait(Some(Duration::ZERO)).unwrap();
            let sent = std::iter::from_fn(|| e.next_completion()).find_map(|c| match c {
                Completion::Sent { result, .. } => Some(result),
                _ => None,
            });
            match sent {
                Some(n) if n > 0 => total += n as usize,
                Some(n) => panic!("unexpected {n}"),
                None => break, // EAGAIN: reported once writable
            }
        }
        assert!(total > 0);
        if pause_and_resume {
            e.cancel_recv(1, 1).unwrap();
            let mut seen = Vec::new();
            e.wait(Some(Duration::ZERO)).unwrap();
            seen.extend(std::iter::from_fn(|| e.next_completion()));
            assert!(
                seen.contains(&Completion::RecvCancelled {
                    slot: 1,
                    generation: 1
                }),
                "{seen:?}"
            );
            e.arm_recv(fd.as_fd(), 1, 1).unwrap();
        }
        // The client reads: the socket drains, and the send is reported with 0 bytes (the
        // worker sends the rest).
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            let mut got = 0;
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            while got < total {
                got += client.read(&mut buf).unwrap();
            }
            client
        });
        let result = until(&mut e, |_, c| match c {
            Completion::Sent {
                slot: 1, result, ..
            } => Some(result),
            _ => None,
        });
        assert_eq!(result, 0);
        drop(reader.join().unwrap());
    }

    #[test]
    fn cancelling_a_receive_reports_it_once_and_then_nothing_to_cancel() {
        let mut e = Epoll::new(4096, true).unwrap();
        let l = listener();
        e.arm_accept(l.as_fd()).unwrap();
        let _client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let fd = accept(&mut e);
        e.arm_recv(fd.as_fd(), 2, 5).unwrap();
        e.cancel_recv(2, 5).unwrap();
        let mut seen = Vec::new();
        e.wait(Some(Duration::ZERO)).unwrap();
        while let Some(c) = e.next_completion() {
            seen.push(c);
        }
        assert!(
            seen.contains(&Completion::RecvCancelled {
                slot: 2,
                generation: 5
            }),
            "{seen:?}"
        );
        assert!(seen.contains(&Completion::CancelDone {
            slot: 2,
            generation: 5,
            result: 0
        }));
        // Nothing armed any more; a stale generation finds nothing either.
        e.cancel_recv(2, 5).unwrap();
        e.cancel_recv(2, 4).unwrap();
        let results: Vec<i32> = std::iter::from_fn(|| e.next_completion())
            .filter_map(|c| match c {
                Completion::CancelDone { result, .. } => Some(result),
                _ => None,
            })
            .collect();
        assert_eq!(results, [-libc::ENOENT, -libc::ENOENT]);
    }

    #[test]
    fn a_wake_up_arrives_and_the_accept_can_be_cancelled() {
        let mut e = Epoll::new(4096, true).unwrap();
        let efd = crate::runtime::sys::eventfd().unwrap();
        e.arm_wake(efd.as_fd()).unwrap();
        e.wake_peer(None, efd.as_fd(), 0).unwrap();
        until(&mut e, |_, c| {
            matches!(c, Completion::Wake { .. }).then_some(())
        });
        crate::runtime::sys::eventfd_drain(efd.as_fd());
        let l = listener();
        e.arm_accept(l.as_fd()).unwrap();
        e.cancel_accept().unwrap();
        assert!(matches!(
            e.next_completion(),
            Some(Completion::AcceptError {
                errno: libc::ECANCELED,
                more: false
            })
        ));
        // Cancelled: a connection now is not accepted.
        let _client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        e.wait(Some(Duration::from_millis(50))).unwrap();
        assert!(
            !std::iter::from_fn(|| e.next_completion())
                .any(|c| matches!(c, Completion::Accepted { .. }))
        );
    }

    #[test]
    fn a_busy_connection_does_not_starve_another() {
        // Two connections with plenty to read: reads alternate (round robin), a buffer at a time.
        let mut e = Epoll::new(4096, true).unwrap();
        let l = listener();
        e.arm_accept(l.as_fd()).unwrap();
        let mut a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let fd_a = accept(&mut e);
        let mut b = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let fd_b = accept(&mut e);
        e.arm_recv(fd_a.as_fd(), 0, 1).unwrap();
        e.arm_recv(fd_b.as_fd(), 1, 1).unwrap();
        a.write_all(&vec![1u8; 64 * 1024]).unwrap();
        b.write_all(&vec![2u8; 64 * 1024]).unwrap();
        let mut order = Vec::new();
        until(&mut e, |e, c| {
            if let Completion::Recv { slot, bid, .. } = c {
                order.push(slot);
                e.recycle(bid);
            }
            (order.len() >= 8).then_some(())
        });
        let switches = order.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(switches >= 4, "reads alternate: {order:?}");
    }
}
