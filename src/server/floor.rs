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
//! [`Mode::Fanout`] makes it the floor of the broadcast table instead: rather than echoing, it
//! speaks the chat protocol's pub/sub subset that `ringws-load broadcast` uses (`join` answered
//! with `joined`; `send` becomes one `message` frame, made once and written to every connection
//! that joined the room). The publisher's requests are unmasked and scanned for their fields;
//! each delivery is only the same `Bytes` queued on one more connection and sent with its
//! other frames: what a fan-out costs the kernel and the loop, with no WebSocket work per
//! subscriber.
//!
//! Not for production: no limits beyond the head's size, no timeouts, no flow control.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::proto::Limits;
use crate::proto::frame::{HeaderView, OpCode, encode_frame};
use crate::proto::handshake::Request;
use crate::proto::mask;
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

/// What the floor does with the bytes after the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Sends every byte back as it came (the floor of the echo tables).
    Echo,
    /// The chat protocol's pub/sub subset: each `send` written to every member of its room (the
    /// floor of the broadcast table).
    Fanout,
}

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
    /// [`Mode::Fanout`]: the start of a frame not yet complete.
    partial: Vec<u8>,
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
    mode: Mode,
    /// [`Mode::Fanout`]: each room's members (slot, generation), in the order they joined.
    rooms: HashMap<Vec<u8>, Vec<(u32, u32)>>,
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
    serve_mode(listener, io, uring, Mode::Echo, stop)
}

/// [`serve`] in the given mode.
///
/// # Errors
/// Building the backend, or a failed submission.
pub fn serve_mode(
    listener: &TcpListener,
    io: IoChoice,
    uring: UringConfig,
    mode: Mode,
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
        Some(ring) => Floor::new(ring, mode).run(listener, stop),
        None => {
            let epoll = Epoll::new(uring.buf_size as usize, uring.nodelay)?;
            Floor::new(epoll, mode).run(listener, stop)
        }
    }
}

impl<B: Backend> Floor<B> {
    fn new(io: B, mode: Mode) -> Self {
        Floor {
            mode,
            rooms: HashMap::new(),
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
            "ringws-floor: {} on {} ({})",
            match self.mode {
                Mode::Echo => "raw echo",
                Mode::Fanout => "fan-out",
            },
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
            partial: Vec::new(),
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
        if self.mode == Mode::Fanout {
            self.mark(slot); // the response, if any
            if !echo.is_empty() {
                self.fanout_input(slot, generation, &echo);
            }
            return;
        }
        if !echo.is_empty() {
            conn.queue.push_back(echo);
        }
        self.mark(slot);
    }

    /// [`Mode::Fanout`]: the frames that came, each request carried out.
    fn fanout_input(&mut self, slot: u32, generation: u32, data: &[u8]) {
        let Some(conn) = self.conn(slot, generation) else {
            return;
        };
        conn.partial.extend_from_slice(data);
        let mut input = std::mem::take(&mut conn.partial);
        let mut at = 0;
        while let Ok(view) = HeaderView::new_checked(&input[at..]) {
            let start = at + view.header_len();
            let Some(end) = usize::try_from(view.payload_len())
                .ok()
                .and_then(|n| start.checked_add(n))
                .filter(|&end| end <= input.len())
            else {
                break; // the rest has not come yet
            };
            let (opcode, key) = (view.opcode_bits(), view.mask_key());
            let payload = &mut input[start..end];
            if let Some(key) = key {
                mask::apply(payload, key, 0);
            }
            self.request(slot, generation, opcode, payload);
            at = end;
        }
        input.drain(..at);
        if let Some(conn) = self.conn(slot, generation) {
            conn.partial = input;
        }
    }

    /// One request of the pub/sub subset (anything else is ignored; a close frame closes).
    fn request(&mut self, slot: u32, generation: u32, opcode: u8, payload: &[u8]) {
        if opcode == OpCode::Close as u8 {
            let _ = self.close(slot, generation);
            return;
        }
        if opcode == OpCode::Ping as u8 {
            self.queue(slot, generation, encode_frame(OpCode::Pong, payload));
            return;
        }
        if opcode != OpCode::Text as u8 {
            return;
        }
        let (Some(op), Some(room)) = (field(payload, b"op"), field(payload, b"room")) else {
            return;
        };
        match op {
            b"join" => {
                let members = self.rooms.entry(room.to_vec()).or_default();
                members.push((slot, generation));
                let joined = [
                    br#"{"op":"joined","room":""#.as_slice(),
                    room,
                    format!(r#"","online":{}}}"#, members.len()).as_bytes(),
                ]
                .concat();
                self.queue(slot, generation, encode_frame(OpCode::Text, &joined));
            }
            b"send" => {
                let Some(text) = field(payload, b"text") else {
                    return;
                };
                let message = [
                    br#"{"op":"message","room":""#.as_slice(),
                    room,
                    br#"","text":""#,
                    text,
                    br#""}"#,
                ]
                .concat();
                let frame = encode_frame(OpCode::Text, &message);
                let Some(mut members) = self.rooms.remove(room) else {
                    return;
                };
                // Members that left (their slot closed or reused) are dropped on the way.
                members.retain(|&(s, g)| self.queue(s, g, frame.clone()));
                self.rooms.insert(room.to_vec(), members);
            }
            _ => {}
        }
    }

    /// Queues `frame` on the connection, if it is still there.
    fn queue(&mut self, slot: u32, generation: u32, frame: Bytes) -> bool {
        let Some(conn) = self.conn(slot, generation) else {
            return false;
        };
        conn.queue.push_back(frame);
        self.mark(slot);
        true
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

/// The raw (still escaped) string value of `"key"` at the top level of a flat JSON object, as
/// the peers' chat servers read requests: enough for the load tool's, not a JSON parser.
fn field<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut i = 0;
    // The next string from `i`: its contents, and the index after its closing quote.
    let string = |from: usize| -> Option<(usize, usize)> {
        let open = from + json[from..].iter().position(|&b| b == b'"')?;
        let mut end = open + 1;
        while end < json.len() && json[end] != b'"' {
            end += if json[end] == b'\\' { 2 } else { 1 };
        }
        (end < json.len()).then_some((open + 1, end))
    };
    while let Some((start, end)) = string(i) {
        let name = &json[start..end];
        let rest = &json[end + 1..];
        let colon = rest.iter().position(|b| !b.is_ascii_whitespace())?;
        if rest[colon] != b':' {
            i = end + 1; // a value, not a key
            continue;
        }
        let v = end + 1 + colon + 1;
        let v = v + json[v..].iter().position(|b| !b.is_ascii_whitespace())?;
        if json[v] != b'"' {
            if name == key {
                return None; // not a string
            }
            i = v;
            continue;
        }
        let (vs, ve) = string(v)?;
        if name == key {
            return Some(&json[vs..ve]);
        }
        i = ve + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_of_the_load_tools_requests_are_found_raw() {
        let send = br#"{"op":"send","room":"r0","text":"2:17:12\"x"}"#;
        assert_eq!(field(send, b"op"), Some(&b"send"[..]));
        assert_eq!(field(send, b"room"), Some(&b"r0"[..]));
        assert_eq!(field(send, b"text"), Some(&br#"2:17:12\"x"#[..]));
        assert_eq!(
            field(br#"{ "op" : "join" , "room":"r1"}"#, b"room"),
            Some(&b"r1"[..])
        );
        assert_eq!(field(br#"{"n":3,"op":"x"}"#, b"op"), Some(&b"x"[..]));
        assert_eq!(field(br#"{"op":3}"#, b"op"), None);
        assert_eq!(field(br#"{"op":"unterminated}"#, b"op"), None);
        assert_eq!(field(b"", b"op"), None);
    }
}
