//! The library's face: the [`Handler`] an application implements, and the [`Conn`] handle it
//! gets to act on a connection.
//!
//! A handler is cloned once per worker and each clone runs on its worker's thread only: no
//! locks, no `Sync` needed, per-connection state ([`Handler::State`]) kept by value in the
//! connection's slot.

use std::any::Any;
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

use super::compress::{self, Codecs, Pmd};
use super::config::Backpressure;
use super::counters::Counters;
use super::home::{Home, HomeRequest};
use super::ops::Op;
use super::outbox::{Kind, Outbox, Refused, SendStatus};
use super::pubsub::{ConnId, Publication, Target};
use crate::proto::deflate::DeflateConfig;
use crate::proto::frame::{Frame, Header, MAX_CONTROL_PAYLOAD, OpCode, encode_frame};
use crate::proto::handshake::{HttpRequest, UpgradeRequest};
use crate::proto::{Assembled, CloseCode};
use crate::runtime::sys;

/// A complete message from a peer, borrowed: from the receive buffer when it arrived in one
/// read (no copy), from the connection's assembly buffer otherwise. Copy what you keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (validated UTF-8).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

/// The handler's answer to an upgrade request.
#[derive(Debug)]
pub enum Decision<'r, S> {
    /// Accept, with this connection's state and optionally one of the subprotocols the client
    /// offered (`UpgradeRequest::protocols`).
    Accept {
        /// The per-connection state, kept in the connection's slot.
        state: S,
        /// The chosen subprotocol.
        protocol: Option<&'r str>,
    },
    /// Refuse with an HTTP status (401, 403, 404, 503, ...) and a short reason for the body.
    Reject {
        /// The status.
        status: u16,
        /// The response body.
        reason: &'static str,
    },
}

/// A plain HTTP response, for requests on the WebSocket port that are not upgrades.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Self {
        HttpResponse {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    /// The response as bytes on the wire (`Connection: close`: one request per connection),
    /// with the standard reason phrase; a 405 names the methods allowed (`Allow: GET, HEAD`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.head();
        out.extend_from_slice(&self.body);
        out
    }

    /// The answer to a `HEAD` request: the head a `GET` would have (its `Content-Length`
    /// included), without the body (RFC 9110 §9.3.2).
    pub fn head(&self) -> Vec<u8> {
        let allow = if self.status == 405 {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            crate::proto::handshake::reason_phrase(self.status),
            self.content_type,
            self.body.len()
        )
        .into_bytes()
    }
}

/// What an application implements. Every method runs on a worker thread, for connections of
/// that worker only; none may block.
pub trait Handler: Clone + Send + 'static {
    /// Per-connection state, created by [`Handler::upgrade`] and given back to
    /// [`Handler::close`].
    type State;

    /// Decides an upgrade request: route by path, check Origin
    /// ([`OriginPolicy`](crate::proto::handshake::OriginPolicy)), authenticate from headers
    /// (cookies, tokens) or from the peer's address ([`Upgrade::peer_addr`]), choose a
    /// subprotocol. `req` dereferences to the [`UpgradeRequest`]: every header is there.
    fn upgrade<'r>(&mut self, req: &Upgrade<'_, 'r>) -> Decision<'r, Self::State>;

    /// The connection is open (the 101 response is queued).
    fn open(&mut self, _conn: &mut Conn<'_, Self::State>) {}

    /// A message arrived.
    fn message(&mut self, conn: &mut Conn<'_, Self::State>, msg: Message<'_>);

    /// The outbound queue is back under its limit after a send was dropped.
    fn drain(&mut self, _conn: &mut Conn<'_, Self::State>) {}

    /// A timer set with [`Conn::set_timer`] is due (`token` is the one given then). Runs only
    /// while the connection is open: a closing connection's timers are dropped.
    fn timer(&mut self, _conn: &mut Conn<'_, Self::State>, _token: u64) {}

    /// `data` sent to this connection with [`Publisher::notify`](super::Publisher::notify)
    /// from another thread (an application's backend: disconnect a user, change its rights).
    /// Runs only while the connection is open. Default: ignored.
    fn notify(&mut self, _conn: &mut Conn<'_, Self::State>, _data: Box<dyn Any + Send>) {}

    /// The connection is over: `code` is the peer's close code (1005 if its close frame had
    /// none), the code we failed it with, or 1006 if it ended without a close handshake.
    fn close(&mut self, _state: Self::State, _code: CloseCode, _reason: &str) {}

    /// A request for `home.topic()` made with [`Conn::to_home`], on the topic's home worker
    /// (see [`home`](super::home)): requests for one topic run here one at a time, in the order
    /// each connection made them. `data` is what was given to `to_home`. Default: ignored.
    fn home(&mut self, _home: &mut Home<'_>, _data: Box<dyn Any + Send>) {}

    /// A plain HTTP request on the same port (health checks, metrics, a page). Default: 404.
    fn http(&mut self, _req: &HttpRequest<'_>) -> HttpResponse {
        HttpResponse::text(404, "not found\n")
    }
}

/// An upgrade request as a handler sees it: the request itself (every header, through
/// `Deref`), and the connection it came on.
pub struct Upgrade<'a, 'r> {
    pub(crate) req: &'a UpgradeRequest<'r>,
    pub(crate) fd: Option<BorrowedFd<'a>>,
}

impl<'r> Deref for Upgrade<'_, 'r> {
    type Target = UpgradeRequest<'r>;
    fn deref(&self) -> &UpgradeRequest<'r> {
        self.req
    }
}

impl<'r> Upgrade<'_, 'r> {
    /// The request.
    pub fn request(&self) -> &UpgradeRequest<'r> {
        self.req
    }

    /// The address of the peer that sent the request (one `getpeername` call, made only when
    /// asked): for allow-lists by address, rate limits, logs. Behind a proxy this is the
    /// proxy's address; the client's is then in a header the proxy sets (`X-Forwarded-For`).
    ///
    /// # Errors
    /// When the socket is already gone.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let fd = self.fd.ok_or(io::ErrorKind::NotConnected)?;
        sys::peer_addr(fd)
    }
}

/// A connection, as a handler sees it during a callback.
pub struct Conn<'a, S> {
    pub(crate) state: &'a mut S,
    /// permessage-deflate: what this connection agreed, the worker's codecs, the settings.
    pub(crate) pmd: Pmd,
    pub(crate) codecs: &'a RefCell<Codecs>,
    pub(crate) deflate: &'a DeflateConfig,
    pub(crate) out: &'a mut Outbox,
    /// The buffer of the message being handled, when the core assembled it (see
    /// [`Conn::frame_of`]).
    pub(crate) assembled: Option<&'a Assembled>,
    pub(crate) id: ConnId,
    pub(crate) ops: &'a RefCell<Vec<Op>>,
    /// The queue limit for this callback's sends: the reply ceiling in `open` and `message`
    /// (flow control bounds replies), the high-water mark elsewhere.
    pub(crate) limit: usize,
    pub(crate) policy: Backpressure,
    pub(crate) close: &'a mut Option<(CloseCode, String)>,
    pub(crate) fd: Option<BorrowedFd<'a>>,
    pub(crate) counters: &'a Counters,
    /// While a read is handled: its small replies, queued as one entry (see [`Cork`]).
    pub(crate) cork: Option<&'a mut Cork>,
}

/// The largest payload a reply may have to be corked (larger ones are queued as frames).
pub(crate) const CORK_MAX_PAYLOAD: usize = 4096;
/// The most bytes one corked entry holds: a longer run of replies becomes several entries.
pub(crate) const CORK_MAX_BYTES: usize = 16 * 1024;

/// The frames of the handler's small replies to one read, written one after another into one
/// buffer that is queued as one entry when the read is done, or before anything else is
/// queued (so the order on the wire is the order of the sends), as uWS corks a socket: one
/// allocation and one piece of the send for a burst of pipelined replies instead of one each.
#[derive(Debug, Default)]
pub(crate) struct Cork {
    buf: Vec<u8>,
    /// What to reserve when it starts to fill: the read's length (bounded), since replies are
    /// often about as long as what they answer.
    hint: usize,
}

impl Cork {
    /// A cork for the replies to a read of `read_len` bytes.
    pub(crate) fn new(read_len: usize) -> Self {
        Cork {
            buf: Vec::new(),
            hint: read_len.min(CORK_MAX_BYTES),
        }
    }

    fn len(&self) -> usize {
        self.buf.len()
    }

    fn push(&mut self, header: &[u8], payload: &[u8]) {
        if self.buf.is_empty() {
            self.buf
                .reserve(self.hint.max(header.len() + payload.len()));
        }
        self.buf.extend_from_slice(header);
        self.buf.extend_from_slice(payload);
    }

    /// Queues what it holds as one data entry (its room was checked reply by reply).
    pub(crate) fn flush(&mut self, out: &mut Outbox) {
        if !self.buf.is_empty() {
            let buf = trimmed(std::mem::take(&mut self.buf));
            out.push(bytes::Bytes::from(buf), Kind::Data);
        }
    }
}

/// `buf`, its allocation shrunk when it is much larger than what it holds: a queued byte must
/// cost about a byte (the outbound limit counts bytes queued, and a reader that stalls keeps
/// them), whatever was reserved for the replies that did not come.
pub(crate) fn trimmed(mut buf: Vec<u8>) -> Vec<u8> {
    if buf.capacity() - buf.len() > buf.len() / 4 + 64 {
        buf.shrink_to_fit();
    }
    buf
}

impl<S> Conn<'_, S> {
    /// This connection's state.
    pub fn state(&mut self) -> &mut S {
        self.state
    }

    /// Queues a text message. With permessage-deflate the text is compressed straight into its
    /// frame.
    pub fn send_text(&mut self, text: &str) -> SendStatus {
        self.send_message(true, text.as_bytes())
    }

    /// Queues a binary message.
    pub fn send_binary(&mut self, bytes: &[u8]) -> SendStatus {
        self.send_message(false, bytes)
    }

    /// Queues a message framed once ([`Frame::text`], [`Frame::binary`], or
    /// [`Conn::frame_of`]) and shared by as many connections as it is sent to: only its
    /// reference count changes per connection. Only whole text and binary messages can be
    /// frames: a handler cannot queue a control frame or a broken one.
    pub fn send_frame(&mut self, frame: Frame) -> SendStatus {
        if self.close.is_some() || !self.out.sendable {
            return SendStatus::Closed;
        }
        let bytes = compress::frame(
            self.codecs,
            self.pmd,
            self.id.slot,
            &frame,
            self.deflate,
            self.counters,
        );
        self.queue(bytes)
    }

    /// Queues `msg` (the message being handled, to echo it, or any other): the very buffer the
    /// server assembled it in when it is that message (see [`Conn::frame_of`]), otherwise a
    /// copy, as by [`Conn::send_text`] or [`Conn::send_binary`].
    pub fn send(&mut self, msg: Message<'_>) -> SendStatus {
        match self.assembled_frame(msg) {
            Some(frame) => self.send_frame(frame),
            None => {
                let (text, payload) = kind_and_bytes(msg);
                self.send_message(text, payload)
            }
        }
    }

    /// The frame that carries `msg`, the message being handled, to a peer: for echoing or
    /// relaying it, to this connection with [`Conn::send_frame`] or to others (a room). A message
    /// the server assembled from several reads (a large one, or fragments) is not copied: the
    /// frame is its assembly buffer, with the header written in front. Otherwise the payload is
    /// copied once, as by [`Frame::text`] or [`Frame::binary`].
    pub fn frame_of(&self, msg: Message<'_>) -> Frame {
        self.assembled_frame(msg).unwrap_or_else(|| match msg {
            Message::Text(t) => Frame::text(t),
            Message::Binary(b) => Frame::binary(b),
        })
    }

    /// The frame of the buffer the server assembled `msg` in, when `msg` is that message (the
    /// same bytes, not merely equal ones, and the same kind).
    fn assembled_frame(&self, msg: Message<'_>) -> Option<Frame> {
        let (text, payload) = kind_and_bytes(msg);
        self.assembled
            .filter(|a| std::ptr::eq(a.payload(), payload) && a.is_text() == text)
            .map(Assembled::frame)
    }

    /// This connection's id: unique among open connections, stable while it is open.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Subscribes this connection to `topic` (it gets every publication to it from then on, on
    /// any worker). Applied when this callback returns; subscribing twice is subscribing once.
    /// A closing connection leaves all its topics by itself.
    pub fn subscribe(&mut self, topic: &str) {
        self.op(Op::Subscribe(self.id, Arc::from(topic)));
    }

    /// Unsubscribes this connection from `topic` (when this callback returns).
    pub fn unsubscribe(&mut self, topic: &str) {
        self.op(Op::Unsubscribe(self.id, Arc::from(topic)));
    }

    /// Publishes `frame` to every subscriber of `topic`, on every worker, and on every other
    /// server when a relay is attached: the same bytes for all of them, no copy per subscriber.
    /// With `include_self` false this connection does not get it even if subscribed ("to
    /// everyone else"). Each subscriber's queue applies the backpressure policy: a slow
    /// subscriber loses messages (or is closed), the others and this connection are not
    /// delayed.
    pub fn publish(&mut self, topic: &str, frame: Frame, include_self: bool) {
        self.publish_to(topic, frame, include_self, true);
    }

    /// Like [`Conn::publish`], but to this server's subscribers only (never through the relay):
    /// for what only makes sense here, such as this server's count of members online.
    pub fn publish_local(&mut self, topic: &str, frame: Frame, include_self: bool) {
        self.publish_to(topic, frame, include_self, false);
    }

    fn publish_to(&mut self, topic: &str, frame: Frame, include_self: bool, cluster: bool) {
        self.op(Op::Publish {
            p: Publication {
                target: Target::Topic(Arc::from(topic)),
                frame,
                except: (!include_self).then_some(self.id),
            },
            cluster,
        });
    }

    /// Sends `frame` to the connection `to`, on whichever worker of this server it is (a
    /// private message, an answer computed for someone else): queued under its backpressure
    /// policy when this callback returns. Nothing happens if `to` is closed by then (ids are
    /// never reused while open, so it never reaches another connection).
    pub fn send_to(&mut self, to: ConnId, frame: Frame) {
        self.op(Op::Publish {
            p: Publication {
                target: Target::Conn(to),
                frame,
                except: None,
            },
            cluster: false,
        });
    }

    /// Hands `data` to [`Handler::home`] on the home worker of `topic` (when this callback
    /// returns; at once if that is this worker): for what must happen in one order per topic,
    /// such as stamping a chat message with the room's next offset. This connection's requests
    /// arrive in the order made.
    pub fn to_home(&mut self, topic: &str, data: impl Any + Send) {
        self.op(Op::ToHome(HomeRequest {
            topic: Arc::from(topic),
            from: self.id,
            data: Box::new(data),
        }));
    }

    /// Calls [`Handler::timer`] for this connection with `token` once `after` has passed (on
    /// this worker, like every callback): for reminders, batching, retries. A zero `after` runs
    /// it in the next loop iteration, after the current batch of events: deferred work. Timers
    /// are not cancelled: a handler that changes its mind ignores the token. A connection that
    /// closes first never gets them. A worker holds at most
    /// [`ServerConfig::max_handler_timers`](super::ServerConfig::max_handler_timers) pending
    /// (counted in `ringws_handler_timers_refused_total` beyond).
    pub fn set_timer(&mut self, after: Duration, token: u64) {
        self.op(Op::Timer {
            id: self.id,
            after,
            token,
        });
    }

    fn op(&mut self, op: Op) {
        self.ops.borrow_mut().push(op);
    }

    /// Queues a ping (payload at most 125 bytes, else `Dropped`).
    pub fn ping(&mut self, payload: &[u8]) -> SendStatus {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return SendStatus::Dropped;
        }
        if self.close.is_some() || !self.out.sendable {
            return SendStatus::Closed;
        }
        if let Some(cork) = self.cork.as_deref_mut() {
            cork.flush(self.out);
        }
        // Bounded like the protocol's own answers: by bytes and by frame count.
        if self.out.is_full(self.limit) {
            return SendStatus::Dropped;
        }
        self.out
            .push(encode_frame(OpCode::Ping, payload), Kind::Control);
        SendStatus::Queued
    }

    /// Starts the closing handshake with `code` and `reason` (cut to 123 bytes) once this
    /// callback returns; nothing more can be sent. The handler's `close` runs when it ends.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if self.close.is_none() {
            *self.close = Some((code, reason.to_owned()));
        }
    }

    /// Bytes waiting in this connection's outbound queue.
    pub fn queued_bytes(&self) -> usize {
        self.out.queued() + self.cork.as_ref().map_or(0, |c| c.len())
    }

    /// The peer's address.
    ///
    /// # Errors
    /// When the socket is already gone.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let fd = self.fd.ok_or(io::ErrorKind::NotConnected)?;
        sys::peer_addr(fd)
    }

    fn send_message(&mut self, text: bool, payload: &[u8]) -> SendStatus {
        if self.close.is_some() || !self.out.sendable {
            return SendStatus::Closed;
        }
        if self.corked(text, payload) {
            Counters::inc(&self.counters.messages_out, 1);
            return SendStatus::Queued;
        }
        let bytes = compress::message(
            self.codecs,
            self.pmd,
            self.id.slot,
            text,
            payload,
            self.deflate,
            self.counters,
        );
        self.queue(bytes)
    }

    /// Writes the frame of a small uncompressed reply into the cork, if there is one (while a
    /// read is handled) and the frame would have been queued as it is: the queue, with what is
    /// corked, has room for it (never dropped, so the drop-oldest policy, which drops frames
    /// one by one, is left to queue its own). Otherwise the cork is queued first, for order.
    fn corked(&mut self, text: bool, payload: &[u8]) -> bool {
        let Some(cork) = self.cork.as_deref_mut() else {
            return false;
        };
        if self.pmd.is_on()
            || payload.len() > CORK_MAX_PAYLOAD
            || self.policy == Backpressure::DropOldest
        {
            cork.flush(self.out);
            return false;
        }
        let header = Header {
            fin: true,
            rsv: 0,
            opcode: if text { OpCode::Text } else { OpCode::Binary },
            mask: None,
            payload_len: payload.len() as u64,
        }
        .encode();
        let len = header.len() + payload.len();
        let queued = self.out.queued();
        let fits = (queued == 0 && cork.len() == 0) || queued + cork.len() + len <= self.limit;
        if !fits {
            cork.flush(self.out);
            return false;
        }
        if cork.len() + len > CORK_MAX_BYTES {
            cork.flush(self.out);
        }
        cork.push(&header, payload);
        true
    }

    /// Queues a data frame (compressed already if it should be) under the limit and policy.
    fn queue(&mut self, frame: bytes::Bytes) -> SendStatus {
        if let Some(cork) = self.cork.as_deref_mut() {
            cork.flush(self.out);
        }
        match self.out.push_data(frame, self.limit, self.policy) {
            Ok(dropped_older) => {
                Counters::inc(&self.counters.messages_out, 1);
                if dropped_older > 0 {
                    Counters::inc(&self.counters.dropped, dropped_older as u64);
                }
                SendStatus::Queued
            }
            Err(Refused::Closed) => SendStatus::Closed,
            Err(Refused::Full(Backpressure::DropNewest | Backpressure::DropOldest)) => {
                Counters::inc(&self.counters.dropped, 1);
                SendStatus::Dropped
            }
            Err(Refused::Full(Backpressure::Close)) => {
                Counters::inc(&self.counters.dropped, 1);
                *self.close = Some((CloseCode::TRY_AGAIN_LATER, "send queue full".to_owned()));
                SendStatus::Dropped
            }
        }
    }
}

/// Whether `msg` is text, and its bytes.
fn kind_and_bytes(msg: Message<'_>) -> (bool, &[u8]) {
    match msg {
        Message::Text(t) => (true, t.as_bytes()),
        Message::Binary(b) => (false, b),
    }
}
