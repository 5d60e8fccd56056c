//! The connection state machine: bytes in, events and frames out.
//!
//! [`Connection`] holds everything a WebSocket connection needs between two reads and nothing
//! else: the [`State`], a partial header, the frame and message in progress, and a spill buffer
//! that exists only while a message spans reads. [`Config`] is not stored: the caller passes the
//! worker's one copy into every call.
//!
//! # Calling order
//!
//! Inputs are `handle_*`, outputs come through the [`Sink`] and the returned values:
//!
//! 1. After the upgrade, create it with [`Connection::new`] (or [`Connection::with_rsv`] when an
//!    extension was negotiated).
//! 2. For every read, call [`Connection::handle_read`] with the received bytes, **mutable**: the
//!    payload is unmasked in place. Events ([`Sink::event`]) borrow from these bytes when a whole
//!    message sits in them (the common case: no copy), or from the spill buffer otherwise. Frames
//!    the protocol itself must send (pong, close reply, close on error) come through
//!    [`Sink::transmit`], in order; queue them with the application's sends.
//! 3. To send a message, ask [`Connection::message_header`] for the header to put before the
//!    payload; [`Connection::ping`] and [`Connection::close`] return whole control frames.
//! 4. Arm a timer for [`Connection::poll_timeout`] and call [`Connection::handle_timeout`] when it
//!    fires; call [`Connection::handle_eof`] when the peer's stream ends.
//! 5. When [`Connection::is_closed`] turns true, flush what is queued and close the socket.
//!
//! Errors from the peer are answered here: [`Connection::handle_read`] sends the close frame with
//! the error's code (see [`Error`]), moves to [`State::Closed`] and returns the error for the caller
//! to count and log. Nothing the peer sends can make it panic or allocate beyond the limits: the
//! spill buffer grows only with bytes actually received, never from a declared length.

use super::close::{self, CloseCode, ClosePayload};
use super::config::{Config, Role};
use super::error::Error;
use super::frame::{
    Frame, Header, HeaderBuf, HeaderView, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode, RSV1,
};
use super::mask;
use super::state::State;
use super::time::Timestamp;
use super::utf8::{self, Utf8Stream};

/// What the peer sent, for the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete text message, validated UTF-8.
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A complete message whose first frame had RSV1 set (permessage-deflate): the payload is
    /// compressed, so a text message is validated only after inflation, by the extension.
    /// Only seen on connections made with [`Connection::with_rsv`].
    Compressed {
        /// Whether it is a text message.
        text: bool,
        /// The compressed payload.
        payload: &'a [u8],
    },
    /// A ping; the pong was already sent through [`Sink::transmit`] (unless we are closing).
    Ping(&'a [u8]),
    /// A pong (an answer to our ping, or unsolicited).
    Pong(&'a [u8]),
    /// The peer's close frame. If we had not sent ours, the reply (echoing the code) was already
    /// sent through [`Sink::transmit`]. `code` is `None` when the frame had no payload (1005).
    Close {
        /// The peer's code.
        code: Option<CloseCode>,
        /// The peer's reason.
        reason: &'a str,
    },
}

/// Where a connection's output goes: events for the application, frames for the socket.
pub trait Sink {
    /// An event for the application.
    fn event(&mut self, event: Event<'_>);
    /// A frame (at most [`MAX_CONTROL_FRAME`] bytes) the protocol itself sends, a pong or a
    /// close frame as `opcode` says: queue it in order.
    fn transmit(&mut self, opcode: OpCode, frame: &[u8]);
    /// A whole text or binary message that was assembled from several reads (fragments, or a
    /// frame spanning receive buffers), handed over in its own buffer: see [`Assembled`].
    /// By default it is delivered as a borrowed [`Event::Text`] or [`Event::Binary`].
    fn assembled(&mut self, msg: Assembled) {
        self.event(msg.event());
    }
    /// A whole compressed message (RSV1 on its first frame; only on connections made with
    /// [`Connection::with_rsv`]), still compressed: its UTF-8 and its size were not checked.
    /// A permessage-deflate layer inflates it with
    /// [`Inflater`](super::deflate::Inflater) (the message limit applied to the inflated
    /// size), validates text, and delivers it; an error it returns fails the connection with
    /// that error's close code (1009, 1007). By default it is delivered as
    /// [`Event::Compressed`].
    fn compressed(&mut self, text: bool, payload: &[u8]) -> Result<(), Error> {
        self.event(Event::Compressed { text, payload });
        Ok(())
    }
}

/// Bytes kept free at the front of the assembly buffer: room for the longest unmasked frame
/// header (2 + 8 bytes), written there when the message is complete.
pub const ASSEMBLY_HEADROOM: usize = 10;

/// A message the core assembled, owned: its payload sits right after the header of an
/// unmasked, unfragmented frame of the same kind carrying it, in one shared buffer. A server can
/// echo or relay the message with [`Assembled::frame`] without copying its bytes (a large
/// message is assembled once and sent from the same memory).
#[derive(Debug, Clone)]
pub struct Assembled {
    frame: Frame,
}

impl Assembled {
    /// The payload (validated UTF-8 for text).
    pub fn payload(&self) -> &[u8] {
        self.frame.payload()
    }

    /// Whether it is a text message.
    pub fn is_text(&self) -> bool {
        self.frame.is_text()
    }

    /// The text, for a text message.
    pub fn text(&self) -> Option<&str> {
        // Validated before this value was made; this pass only converts (no unsafe here).
        self.frame.as_text()
    }

    /// The message as a borrowed event.
    pub fn event(&self) -> Event<'_> {
        match self.text() {
            Some(text) => Event::Text(text),
            None => Event::Binary(self.payload()),
        }
    }

    /// The unmasked frame (header and payload) carrying this message, sharing its buffer.
    pub fn frame(&self) -> Frame {
        self.frame.clone()
    }
}

/// Bytes copied into the assembly buffer before they are unmasked there (they are still in the
/// L1 cache when the mask is applied).
const UNMASK_BLOCK: usize = 4096;

/// The longest control frame: a masked 2-byte header and 125 bytes of payload.
pub const MAX_CONTROL_FRAME: usize = 2 + 4 + MAX_CONTROL_PAYLOAD;

/// A control frame encoded on the stack: dereferences to its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlFrame {
    bytes: [u8; MAX_CONTROL_FRAME],
    len: u8,
}

impl core::ops::Deref for ControlFrame {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The kind of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// UTF-8 text.
    Text,
    /// Bytes.
    Binary,
}

/// Why something could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The closing handshake has started: no more data or pings (§5.5.1).
    Closing,
    /// A control payload over 125 bytes.
    ControlTooLong,
    /// A close code that may not be sent (see [`CloseCode::is_sendable`]).
    InvalidCloseCode,
}

/// The frame whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct FrameInProgress {
    opcode: OpCode,
    fin: bool,
    key: Option<[u8; 4]>,
    phase: u8,
    remaining: u32,
}

/// The data message being assembled (fragmented, or a frame spanning reads).
#[derive(Debug, Clone, Copy)]
struct MessageInProgress {
    text: bool,
    compressed: bool,
    fragments: u32,
    len: u32,
    utf8: Utf8Stream,
}

/// One WebSocket connection's protocol state (after the upgrade).
#[derive(Debug)]
pub struct Connection {
    state: State,
    frame: Option<FrameInProgress>,
    message: Option<MessageInProgress>,
    /// Bytes of the message in progress, then those of a control frame in progress. Empty (no
    /// allocation) unless something spans reads.
    spill: Vec<u8>,
    partial_header: [u8; MAX_HEADER_LEN],
    partial_header_len: u8,
    /// RSV bits a negotiated extension gave meaning to (RSV1 for permessage-deflate).
    rsv_allowed: u8,
    /// Client role: the mask-key generator's state.
    mask_seed: u32,
}

impl Default for Connection {
    fn default() -> Self {
        Self::new()
    }
}

impl Connection {
    /// A connection just upgraded, with no extension.
    pub const fn new() -> Self {
        Self::with_rsv(0)
    }

    /// A connection on which a negotiated extension defined `rsv` (only [`RSV1`] is supported:
    /// it marks the first frame of a compressed message).
    pub const fn with_rsv(rsv: u8) -> Self {
        Self {
            state: State::Open,
            frame: None,
            message: None,
            spill: Vec::new(),
            partial_header: [0; MAX_HEADER_LEN],
            partial_header_len: 0,
            rsv_allowed: rsv & RSV1,
            mask_seed: 0x9E37_79B9,
        }
    }

    /// Seeds the mask keys of the client role. They only need to be unpredictable to scripts in
    /// a browser (§10.3), which this client is not; the load tool seeds from the OS.
    pub fn set_mask_seed(&mut self, seed: u32) {
        self.mask_seed = seed | 1;
    }

    /// The current state.
    pub const fn state(&self) -> State {
        self.state
    }

    /// Whether the socket should be closed once what is queued is flushed.
    pub const fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Bytes this connection holds beyond its own size (the spill buffer), for accounting. Never
    /// more than `max_message_bytes + 125 +` [`ASSEMBLY_HEADROOM`].
    pub fn buffered(&self) -> usize {
        self.spill.capacity()
    }

    // ---------------------------------------------------------------- inputs

    /// Reads bytes from the peer. `data` is unmasked in place. Events and frames to send go to
    /// `sink`. On a peer error, the close frame is already sent through `sink`, the state is
    /// [`State::Closed`], and the error is returned for the caller to count.
    pub fn handle_read(
        &mut self,
        cfg: &Config,
        data: &mut [u8],
        sink: &mut impl Sink,
    ) -> Result<(), Error> {
        let result = self.read(cfg, data, sink);
        if let Err(e) = result {
            self.fail(e, cfg, sink);
        }
        result
    }

    /// The time is `now`: if we waited for a close reply past the deadline, the connection is
    /// closed. Returns whether it is closed.
    pub fn handle_timeout(&mut self, now: Timestamp) -> bool {
        if let State::AwaitCloseReply { deadline } = self.state {
            if now >= deadline {
                self.set_closed();
            }
        }
        self.is_closed()
    }

    /// The peer's stream ended (EOF or reset). The connection is closed; returns whether that was
    /// clean (our close and the peer's had both been seen).
    pub fn handle_eof(&mut self) -> bool {
        let clean = self.is_closed();
        self.set_closed();
        clean
    }

    // ---------------------------------------------------------------- outputs

    /// When [`Connection::handle_timeout`] must next be called, if at all.
    pub const fn poll_timeout(&self) -> Option<Timestamp> {
        match self.state {
            State::AwaitCloseReply { deadline } => Some(deadline),
            _ => None,
        }
    }

    /// The header to send before a data message of `len` bytes. In the client role the header
    /// carries a mask key ([`HeaderView::mask_key`]) the caller masks the payload with.
    pub fn message_header(
        &mut self,
        cfg: &Config,
        kind: MessageKind,
        len: usize,
    ) -> Result<HeaderBuf, SendError> {
        if !self.state.can_send() {
            return Err(SendError::Closing);
        }
        let opcode = match kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        let mask = self.next_mask(cfg);
        Ok(Header {
            fin: true,
            rsv: 0,
            opcode,
            mask,
            payload_len: len as u64,
        }
        .encode())
    }

    /// A ping frame to send.
    pub fn ping(&mut self, cfg: &Config, payload: &[u8]) -> Result<ControlFrame, SendError> {
        if !self.state.can_send() {
            return Err(SendError::Closing);
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlTooLong);
        }
        Ok(self.control_frame(cfg, OpCode::Ping, &[payload]))
    }

    /// Starts the closing handshake: returns our close frame (the reason is cut to 123 bytes on a
    /// character boundary) and waits for the reply until `now + cfg.close_timeout`.
    pub fn close(
        &mut self,
        cfg: &Config,
        code: CloseCode,
        reason: &str,
        now: Timestamp,
    ) -> Result<ControlFrame, SendError> {
        if !self.state.can_send() {
            return Err(SendError::Closing);
        }
        if !code.is_sendable() {
            return Err(SendError::InvalidCloseCode);
        }
        let frame = self.close_frame(cfg, code, reason);
        self.state = State::AwaitCloseReply {
            deadline: now.after(cfg.close_timeout),
        };
        Ok(frame)
    }

    // ---------------------------------------------------------------- reading

    fn read(
        &mut self,
        cfg: &Config,
        mut data: &mut [u8],
        sink: &mut impl Sink,
    ) -> Result<(), Error> {
        while self.state.can_receive() {
            if let Some(frame) = self.frame {
                if data.is_empty() {
                    return Ok(());
                }
                data = self.read_payload(cfg, frame, data, sink)?;
                continue;
            }
            let Some((header, used)) = self.read_header(data)? else {
                return Ok(());
            };
            data = &mut core::mem::take(&mut data)[used..];
            self.check_header(cfg, &header)?;
            let len = header.payload_len;
            let whole_here = len <= data.len() as u64;
            if whole_here && header.fin && self.message.is_none() {
                // The fast path: a whole unfragmented message (or control frame) in this read.
                let (payload, rest) = core::mem::take(&mut data).split_at_mut(len as usize);
                if let Some(key) = header.mask {
                    mask::apply(payload, key, 0);
                }
                self.deliver_whole(cfg, header, payload, sink)?;
                data = rest;
            } else {
                if !header.opcode.is_control() {
                    self.start_or_continue_message(&header);
                }
                self.frame = Some(FrameInProgress {
                    opcode: header.opcode,
                    fin: header.fin,
                    key: header.mask,
                    phase: 0,
                    // Fits: check_header bounded it by a u32 limit.
                    remaining: len as u32,
                });
                if len == 0 {
                    self.finish_frame(cfg, sink)?;
                }
            }
        }
        Ok(())
    }

    /// Takes a header from the front of `data`, completing a partial one carried from the last
    /// read. Returns it and how many bytes of `data` it used, or `None` (bytes kept) if `data`
    /// ends inside it.
    fn read_header(&mut self, data: &[u8]) -> Result<Option<(Header, usize)>, Error> {
        let have = usize::from(self.partial_header_len);
        if have == 0 {
            if let Some(found) = Header::parse(data)? {
                return Ok(Some(found));
            }
            self.partial_header[..data.len()].copy_from_slice(data);
            self.partial_header_len = data.len() as u8;
            return Ok(None);
        }
        // Move bytes over: first enough to know the header's length, then the rest of it.
        let mut have = have;
        let mut used = 0;
        loop {
            let want = if have < 2 {
                2
            } else {
                HeaderView::header_len_of(self.partial_header[1])
            };
            if have == want && have >= 2 {
                break;
            }
            let take = (want - have).min(data.len() - used);
            if take == 0 {
                self.partial_header_len = have as u8;
                return Ok(None);
            }
            self.partial_header[have..have + take].copy_from_slice(&data[used..used + take]);
            have += take;
            used += take;
        }
        self.partial_header_len = 0;
        // `have` is the length the first two bytes announce, so the header is complete.
        Ok(Header::parse(&self.partial_header[..have])?.map(|(header, _)| (header, used)))
    }

    /// The rules that need the connection's state and configuration.
    fn check_header(&self, cfg: &Config, h: &Header) -> Result<(), Error> {
        let limits = &cfg.limits;
        if h.rsv & !self.rsv_allowed != 0 {
            return Err(Error::ReservedBits);
        }
        match (cfg.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(Error::UnmaskedFrame),
            (Role::Client, true) => return Err(Error::MaskedFrame),
            _ => {}
        }
        if h.opcode.is_control() {
            // RSV1 means "compressed" only on the first frame of a data message (RFC 7692 §6).
            return if h.rsv != 0 {
                Err(Error::ReservedBits)
            } else {
                Ok(())
            };
        }
        if h.payload_len > u64::from(limits.max_frame_bytes.min(limits.max_message_bytes)) {
            return Err(Error::FrameTooLarge);
        }
        match (h.opcode, &self.message) {
            (OpCode::Continuation, None) => Err(Error::UnexpectedContinuation),
            (OpCode::Continuation, Some(m)) => {
                if h.rsv != 0 {
                    Err(Error::ReservedBits)
                } else if m.fragments >= limits.max_fragments {
                    Err(Error::TooManyFragments)
                } else if u64::from(m.len) + h.payload_len > u64::from(limits.max_message_bytes) {
                    Err(Error::MessageTooLarge)
                } else {
                    Ok(())
                }
            }
            (_, Some(_)) => Err(Error::ExpectedContinuation),
            (_, None) => Ok(()),
        }
    }

    fn start_or_continue_message(&mut self, h: &Header) {
        match &mut self.message {
            Some(m) => m.fragments += 1,
            None => {
                // While a message is in progress the spill holds the headroom, the message's
                // bytes, then any control payload in progress. It is empty here: a control frame
                // in progress ends before a data frame can start.
                debug_assert!(self.spill.is_empty());
                self.spill.clear();
                self.spill.resize(ASSEMBLY_HEADROOM, 0);
                self.message = Some(MessageInProgress {
                    text: h.opcode == OpCode::Text,
                    compressed: h.rsv & RSV1 != 0,
                    fragments: 1,
                    len: 0,
                    utf8: Utf8Stream::new(),
                })
            }
        }
    }

    /// Reads payload bytes of the frame in progress from the front of `data`; returns the rest.
    fn read_payload<'d>(
        &mut self,
        cfg: &Config,
        mut frame: FrameInProgress,
        data: &'d mut [u8],
        sink: &mut impl Sink,
    ) -> Result<&'d mut [u8], Error> {
        let n = (frame.remaining as usize).min(data.len());
        let (chunk, rest) = data.split_at_mut(n);
        frame.remaining -= n as u32;
        // Copied masked into the assembly buffer, then unmasked there a block at a time, while
        // the block is still in the L1 cache: one pass over the receive buffer.
        let start = self.spill.len();
        self.spill_reserve(cfg, n, frame.remaining as usize);
        for block in chunk.chunks(UNMASK_BLOCK) {
            let at = self.spill.len();
            self.spill.extend_from_slice(block);
            if let Some(key) = frame.key {
                frame.phase =
                    mask::apply(&mut self.spill[at..], key, usize::from(frame.phase)) as u8;
            }
        }
        self.frame = Some(frame);
        if !frame.opcode.is_control() {
            if let Some(m) = &mut self.message {
                m.len += n as u32;
                if m.text && !m.compressed {
                    m.utf8
                        .feed(&self.spill[start..])
                        .map_err(|_| Error::InvalidUtf8)?;
                }
            }
        }
        if frame.remaining == 0 {
            self.finish_frame(cfg, sink)?;
        }
        Ok(rest)
    }

    /// The frame in progress has all its payload (in the spill buffer).
    fn finish_frame(&mut self, cfg: &Config, sink: &mut impl Sink) -> Result<(), Error> {
        let Some(frame) = self.frame.take() else {
            return Ok(());
        };
        if frame.opcode.is_control() {
            // The control payload sits after the message bytes: take it out.
            let start = self
                .message
                .map_or(0, |m| ASSEMBLY_HEADROOM + m.len as usize);
            let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
            let n = self.spill.len() - start;
            payload[..n].copy_from_slice(&self.spill[start..]);
            self.spill.truncate(start);
            self.release_spill_if_idle();
            return self.deliver_control(cfg, frame.opcode, &payload[..n], sink);
        }
        if !frame.fin {
            return Ok(());
        }
        let Some(mut m) = self.message.take() else {
            return Ok(());
        };
        // The spill leaves the connection here: an idle connection holds no buffer.
        let mut spill = core::mem::take(&mut self.spill);
        let payload = &spill[ASSEMBLY_HEADROOM..];
        if m.compressed {
            return sink.compressed(m.text, payload);
        }
        // Every piece was validated as it arrived; `finish` rejects a truncated last character.
        if m.text && m.utf8.finish().is_err() {
            return Err(Error::InvalidUtf8);
        }
        // Write the header of the unmasked frame that carries this message into the headroom,
        // and hand the buffer over: whoever sends it on sends these same bytes.
        let header = Header {
            fin: true,
            rsv: 0,
            opcode: if m.text { OpCode::Text } else { OpCode::Binary },
            mask: None,
            payload_len: payload.len() as u64,
        }
        .encode();
        let start = ASSEMBLY_HEADROOM - header.len();
        spill[start..ASSEMBLY_HEADROOM].copy_from_slice(&header);
        let frame = bytes::Bytes::from(spill).slice(start..);
        sink.assembled(Assembled {
            frame: Frame::from_trusted(frame, header.len() as u8, m.text),
        });
        Ok(())
    }

    /// A whole frame that needs no assembly: a complete unfragmented message or control frame.
    fn deliver_whole(
        &mut self,
        cfg: &Config,
        h: Header,
        payload: &[u8],
        sink: &mut impl Sink,
    ) -> Result<(), Error> {
        match h.opcode {
            OpCode::Text | OpCode::Binary if h.rsv & RSV1 != 0 => {
                sink.compressed(h.opcode == OpCode::Text, payload)?;
            }
            OpCode::Text => {
                let text = utf8::validate(payload).map_err(|_| Error::InvalidUtf8)?;
                sink.event(Event::Text(text));
            }
            OpCode::Binary => sink.event(Event::Binary(payload)),
            control => return self.deliver_control(cfg, control, payload, sink),
        }
        Ok(())
    }

    fn deliver_control(
        &mut self,
        cfg: &Config,
        opcode: OpCode,
        payload: &[u8],
        sink: &mut impl Sink,
    ) -> Result<(), Error> {
        match opcode {
            OpCode::Ping => {
                if self.state.can_send() {
                    let pong = self.control_frame(cfg, OpCode::Pong, &[payload]);
                    sink.transmit(OpCode::Pong, &pong);
                }
                sink.event(Event::Ping(payload));
            }
            OpCode::Pong => sink.event(Event::Pong(payload)),
            OpCode::Close => {
                let close = ClosePayload::parse(payload)?;
                if self.state.can_send() {
                    // Echo the peer's code; an empty close is answered with 1000 (§7.1.5, §5.5.1).
                    let code = close.code.unwrap_or(CloseCode::NORMAL);
                    let reply = self.close_frame(cfg, code, "");
                    sink.transmit(OpCode::Close, &reply);
                }
                self.set_closed();
                sink.event(Event::Close {
                    code: close.code,
                    reason: close.reason,
                });
            }
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {}
        }
        Ok(())
    }

    /// Fails the connection (§7.1.7): our close frame with the error's code, unless one was
    /// already sent, and no more reading.
    fn fail(&mut self, e: Error, cfg: &Config, sink: &mut impl Sink) {
        if self.state.can_send() {
            let code = e.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
            let frame = self.close_frame(cfg, code, e.reason());
            sink.transmit(OpCode::Close, &frame);
        }
        self.set_closed();
    }

    fn set_closed(&mut self) {
        self.state = State::Closed;
        self.frame = None;
        self.message = None;
        self.spill = Vec::new();
        self.partial_header_len = 0;
    }

    /// Makes room in the spill buffer for `more` bytes, `remaining` more bytes of the frame still
    /// to come after them. It grows
    /// by doubling, never past what the limits allow (the headroom, a whole message and one
    /// control frame), so [`Connection::buffered`] is bounded; and once an eighth of what the
    /// frame will need has arrived it grows to the whole frame at once, which spares copies (a
    /// 64 KiB frame in 4 KiB reads is copied 12 KiB by growth instead of 60 KiB). The buffer is
    /// never sized from a declared length alone: it holds at most eight times the bytes
    /// received (a peer that declares a large frame must send an eighth of it first).
    fn spill_reserve(&mut self, cfg: &Config, more: usize, remaining: usize) {
        let needed = self.spill.len() + more;
        if needed > self.spill.capacity() {
            let ceiling =
                ASSEMBLY_HEADROOM + cfg.limits.max_message_bytes as usize + MAX_CONTROL_PAYLOAD;
            let frame_end = needed.saturating_add(remaining);
            let mut target = (self.spill.capacity() * 2).max(needed);
            if needed.saturating_mul(8) >= frame_end {
                target = target.max(frame_end);
            }
            let target = target.min(ceiling.max(needed));
            self.spill.reserve_exact(target - self.spill.len());
        }
    }

    fn release_spill_if_idle(&mut self) {
        if self.message.is_none() {
            self.spill = Vec::new();
        }
    }

    // ---------------------------------------------------------------- writing

    fn next_mask(&mut self, cfg: &Config) -> Option<[u8; 4]> {
        if cfg.role == Role::Server {
            return None;
        }
        // xorshift32: cheap and never zero for a non-zero seed.
        let mut x = self.mask_seed;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_seed = x;
        Some(x.to_le_bytes())
    }

    fn close_frame(&mut self, cfg: &Config, code: CloseCode, reason: &str) -> ControlFrame {
        let reason = close::truncate_reason(reason);
        self.control_frame(
            cfg,
            OpCode::Close,
            &[&code.0.to_be_bytes(), reason.as_bytes()],
        )
    }

    /// Encodes a control frame whose payload is `parts` joined (at most 125 bytes in all).
    fn control_frame(&mut self, cfg: &Config, opcode: OpCode, parts: &[&[u8]]) -> ControlFrame {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        debug_assert!(len <= MAX_CONTROL_PAYLOAD);
        let mask = self.next_mask(cfg);
        let header = Header {
            fin: true,
            rsv: 0,
            opcode,
            mask,
            payload_len: len as u64,
        }
        .encode();
        let mut out = ControlFrame {
            bytes: [0; MAX_CONTROL_FRAME],
            len: 0,
        };
        let mut n = header.len();
        out.bytes[..n].copy_from_slice(&header);
        let payload_start = n;
        for p in parts {
            let take = p.len().min(MAX_CONTROL_FRAME - n);
            out.bytes[n..n + take].copy_from_slice(&p[..take]);
            n += take;
        }
        if let Some(key) = mask {
            mask::apply(&mut out.bytes[payload_start..n], key, 0);
        }
        out.len = n as u8;
        out
    }
}

#[cfg(test)]
mod tests;
