//! The floor of the benchmark tables: a TCP echo on the workers' I/O loop, with the WebSocket
//! work taken out (`benches/floor` runs it as `ringws-floor`).
//!
//! One thread, one backend of the runtime, monomorphized as a worker is: multishot accept,
//! multishot receive into the provided-buffer ring, one gathered send per connection per loop
//! iteration (or the epoll equivalents). Each connection's first bytes must be a WebSocket
//! upgrade request, answered with `101` so that the load tool connects as it does to any
//! server; after that every byte received is sent back as it came, still masked: no parsing,
//! unmasking, validation or framing (`ringws-load --raw-echo` checks the echoes byte for byte
//! against the frames it sent). What the floor costs per message is what the method costs, the
//! kernel's share and the loop's: the distance from it to ringws is the WebSocket work and
//! everything above it. Each received buffer is copied into a new `Bytes`, as ringws writes
//! each echo into a new frame, so the allocation per message is in the floor too.
//!
//! Not for production: no limits beyond the head's size, no timeouts, no flow control.

use std::collections::VecDeque;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::proto::Limits;
use crate::proto::handshake::Request;
use crate::runtime::epoll::Epoll;
use crate::runtime::uring::{Uring, UringConfig};
use crate::runtime::{Backend, Completion, IoChoice};

/// How often the loop checks its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// The largest request head taken before the upgrade.
const MAX_HEAD: usize = 8 * 1024;
/// The upgrade's answer, up to the accept key.
const SWITCHING: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ";
/// The answer to a head over [`MAX_HEAD`] (the connection then echoes, unchecked).
const TOO_LARGE: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n";
/// The answer to a head that is not an upgrade (the connection then echoes, unchecked).
const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n";

/// One connection.
struct Conn {
    fd: OwnedFd,
    generation: u32,
    /// The request head so far, until the upgrade is answered (`None` after).
    head: Option<Vec<u8>>,
    /// What is owed to the peer, in order; a send takes from the front.
    queue: VecDeque<Bytes>,
    /// A send is in flight (one at a time keeps the byte order).
    sending: bool,
    /// On the list of connections to send for at the end of this iteration.
    dirty: bool,
}

/// The loop's state.
struct Floor<B> {
    io: B,
    conns: Vec<Option<Conn>>,
    /// Each slot's generation (bumped when a connection leaves it).
    generations: Vec<u32>,
    free: Vec<u32>,
    dirty: Vec<u32>,
    /// Connections whose receive stopped for lack of buffers.
    starved: Vec<u32>,
    limits: Limits,
}

/// Serves the raw echo on `listener` (nonblocking) until `stop` is set (checked at least every
/// 100 ms) or an error: on this thread, on the backend `io` chooses (`Auto`: io_uring, or epoll
/// with a line on stderr saying why), configured as a worker's.
///
/// # Errors
/// Building the backend, or a failed submission.
pub fn serve(
    listener: &TcpListener,
    io: IoChoice,
    uring: UringConfig,
    stop: &AtomicBool,
) -> io::Result<()> {
    let ring = match io {
        IoChoice::Epoll => None,
        IoChoice::Uring => Some(Uring::new(uring)?),
        IoChoice::Auto => match Uring::new(uring) {
            Ok(ring) => Some(ring),
            Err(e) => {
                eprintln!("ringws-floor: io_uring is unavailable ({e}): running on epoll");
                None
            }
        },
    };
    match ring {
        Some(ring) => Floor::new(ring).run(listener, stop),
        None => Floor::new(Epoll::new(uring.buf_size as usize, uring.nodelay)?).run(listener, stop),
    }
}

impl<B: Backend> Floor<B> {
    fn new(io: B) -> Self {
        Floor {
            io,
            conns: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            dirty: Vec::new(),
            starved: Vec::new(),
            limits: Limits::default(),
        }
    }

    fn run(mut self, listener: &TcpListener, stop: &AtomicBool) -> io::Result<()> {
        self.io.arm_accept(listener.as_fd())?;
        eprintln!(
            "ringws-floor: raw echo on {} ({})",
            listener.local_addr()?,
            self.io.name()
        );
        // A worker's wait is bounded by its timer wheel; the floor's by the stop check.
        while !stop.load(Ordering::Relaxed) {
            self.flush()?;
            self.rearm_starved()?;
            self.io.wait(Some(STOP_CHECK))?;
            while let Some(c) = self.io.next_completion() {
                self.on_completion(c, listener)?;
            }
        }
        Ok(())
    }

    fn conn(&mut self, slot: u32, generation: u32) -> Option<&mut Conn> {
        self.conns
            .get_mut(slot as usize)?
            .as_mut()
            .filter(|c| c.generation == generation)
    }

    fn on_completion(&mut self, c: Completion, listener: &TcpListener) -> io::Result<()> {
        match c {
            Completion::Accepted { fd, more } => {
                self.accept(fd)?;
                if !more {
                    self.io.arm_accept(listener.as_fd())?;
                }
            }
            Completion::AcceptError { more: false, .. } => {
                self.io.arm_accept(listener.as_fd())?;
            }
            Completion::Recv {
                slot,
                generation,
                bid,
                len,
                more,
            } => {
                self.received(slot, generation, bid, len as usize);
                self.io.recycle(bid);
                if !more {
                    self.rearm(slot, generation)?;
                }
            }
            Completion::RecvNoBufs { slot, generation }
                if self.conn(slot, generation).is_some() =>
            {
                self.starved.push(slot);
            }
            Completion::RecvFault {
                slot, generation, ..
            }
            | Completion::RecvEof { slot, generation }
            | Completion::RecvError {
                slot, generation, ..
            } => self.close(slot, generation)?,
            Completion::Sent {
                slot,
                generation,
                result,
            } => self.sent(slot, generation, result)?,
            Completion::Closed { slot, .. } => {
                self.free.push(slot);
            }
            _ => {}
        }
        Ok(())
    }

    fn accept(&mut self, fd: OwnedFd) -> io::Result<()> {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.generations.push(0);
            (self.conns.len() - 1) as u32
        });
        let generation = self.generations[slot as usize];
        self.io.arm_recv(fd.as_fd(), slot, generation)?;
        self.conns[slot as usize] = Some(Conn {
            fd,
            generation,
            head: Some(Vec::new()),
            queue: VecDeque::new(),
            sending: false,
            dirty: false,
        });
        Ok(())
    }

    fn rearm(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(Some(conn)) = self.conns.get(slot as usize) else {
            return Ok(());
        };
        if conn.generation != generation {
            return Ok(());
        }
        self.io.arm_recv(conn.fd.as_fd(), slot, generation)
    }

    fn rearm_starved(&mut self) -> io::Result<()> {
        while self.io.buffers_available() {
            let Some(slot) = self.starved.pop() else {
                break;
            };
            let generation = self.generations[slot as usize];
            self.rearm(slot, generation)?;
        }
        Ok(())
    }

    /// Bytes arrived: the upgrade's head, or bytes to echo.
    fn received(&mut self, slot: u32, generation: u32, bid: u16, len: usize) {
        let data = Bytes::copy_from_slice(self.io.recv_buf(bid, len));
        let limits = &self.limits;
        let Some(Some(conn)) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if conn.generation != generation {
            return;
        }
        let echo = match conn.head.as_mut() {
            None => data,
            Some(head) => {
                head.extend_from_slice(&data);
                let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                    if head.len() > MAX_HEAD {
                        conn.head = None;
                        conn.queue.push_back(Bytes::from_static(TOO_LARGE));
                        self.mark(slot);
                    }
                    return;
                };
                let end = end + 4;
                let response = match Request::parse(&head[..end], limits) {
                    Ok(Request::Upgrade(req)) => {
                        let mut r = SWITCHING.to_vec();
                        r.extend_from_slice(&req.accept_key());
                        r.extend_from_slice(b"\r\n\r\n");
                        r
                    }
                    _ => BAD_REQUEST.to_vec(),
                };
                let rest = Bytes::copy_from_slice(&head[end..]);
                conn.head = None;
                conn.queue.push_back(Bytes::from(response));
                rest
            }
        };
        if !echo.is_empty() {
            conn.queue.push_back(echo);
        }
        self.mark(slot);
    }

    fn mark(&mut self, slot: u32) {
        if let Some(Some(conn)) = self.conns.get_mut(slot as usize) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(slot);
            }
        }
    }

    /// One gathered send per connection with something owed and no send in flight.
    fn flush(&mut self) -> io::Result<()> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut busy = Vec::new();
        for &slot in &dirty {
            let Some(Some(conn)) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            if conn.sending || conn.queue.is_empty() {
                conn.dirty = false;
                continue;
            }
            // The slot's previous connection may still have a send in flight (its completion
            // can come after its close's): this one stays dirty until it is done, as a
            // worker's does.
            if self.io.send_busy(slot) {
                busy.push(slot);
                continue;
            }
            conn.dirty = false;
            let mut frames = conn.queue.iter().cloned();
            self.io
                .send(conn.fd.as_fd(), slot, conn.generation, &mut frames)?;
            conn.sending = true;
        }
        self.dirty = busy;
        Ok(())
    }

    fn sent(&mut self, slot: u32, generation: u32, result: i32) -> io::Result<()> {
        let Some(conn) = self.conn(slot, generation) else {
            return Ok(());
        };
        conn.sending = false;
        let Ok(mut n) = usize::try_from(result) else {
            return self.close(slot, generation);
        };
        while n > 0 {
            let Some(front) = conn.queue.front_mut() else {
                break;
            };
            if front.len() <= n {
                n -= front.len();
                conn.queue.pop_front();
            } else {
                *front = front.slice(n..);
                n = 0;
            }
        }
        if !conn.queue.is_empty() {
            self.mark(slot);
        }
        Ok(())
    }

    fn close(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        if self.conn(slot, generation).is_none() {
            return Ok(());
        }
        let Some(conn) = self.conns[slot as usize].take() else {
            return Ok(());
        };
        self.generations[slot as usize] = generation.wrapping_add(1);
        self.io.close(conn.fd, slot, generation)
    }
}
