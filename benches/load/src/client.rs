//! One client connection: its socket, where it is in its life, its protocol state and its
//! output buffer.
//!
//! The output buffer keeps its capacity from one message to the next, so sending allocates
//! nothing once the connection is warm, and a whole frame goes out in one `write`.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use mio::net::TcpStream;
use ringws::proto::connection::{MessageKind, SendError};
use ringws::proto::frame::{HeaderView, RSV1};
use ringws::proto::{Config, Connection, mask};
use socket2::{Domain, Protocol, Socket, Type};

use crate::deflate::ClientPmd;
use crate::handshake::Key;
use crate::verify::Payload;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The TCP connect is in progress.
    Connecting,
    /// The upgrade request is sent or being sent; waiting for the response head.
    Handshake,
    /// A WebSocket connection.
    Open,
    /// We sent our close frame at the end of the run; waiting for the reply.
    Closing,
    /// Finished, cleanly or not; the socket is dropped.
    Done,
}

/// One connection of the load.
#[derive(Debug)]
pub struct Client {
    /// The socket, until the connection is done.
    pub stream: Option<TcpStream>,
    /// Where it is in its life.
    pub phase: Phase,
    /// Its `Sec-WebSocket-Key`.
    pub key: Key,
    /// The response head received so far (emptied, capacity freed, after the handshake).
    pub head: Vec<u8>,
    /// The protocol state, client role.
    pub proto: Connection,
    /// Bytes to send; `out[sent..]` are still owed.
    pub out: Vec<u8>,
    /// How much of `out` was written.
    pub sent: usize,
    /// The sequence number of the last message sent.
    pub seq: u64,
    /// The sequence number of the oldest message waiting for its echo (when `in_flight > 0`).
    pub expect: u64,
    /// Messages waiting for their echo.
    pub in_flight: u64,
    /// When each message in flight was written, oldest first (ping-pong and pipelined; flood
    /// keeps no times).
    pub sent_times: VecDeque<Instant>,
    /// When this connection last sent anything the server counts as traffic (the end of the
    /// handshake, a message, a pong): heartbeat pings are due this long after it.
    pub last_sent: Instant,
    /// The mask-key seed (kept to remake the protocol state when an extension is agreed).
    pub seed: u32,
    /// permessage-deflate, when the server accepted it.
    pub pmd: Option<Box<ClientPmd>>,
    /// TLS (`wss://`): everything written and read goes through it.
    pub tls: Option<Box<rustls::ClientConnection>>,
    /// `--raw-echo`: the frames sent, to check their raw echoes against.
    pub raw: Option<Box<crate::raw::RawEcho>>,
}

impl Client {
    /// Starts a non-blocking connect to `addr` (from `source`, if given) with TCP_NODELAY.
    pub fn connect(
        addr: SocketAddr,
        source: Option<IpAddr>,
        key: Key,
        seed: u32,
    ) -> io::Result<Self> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        if let Some(ip) = source {
            socket.bind(&SocketAddr::new(ip, 0).into())?;
        }
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let mut proto = Connection::new();
        proto.set_mask_seed(seed);
        Ok(Self {
            stream: Some(TcpStream::from_std(socket.into())),
            phase: Phase::Connecting,
            key,
            head: Vec::new(),
            proto,
            out: Vec::new(),
            sent: 0,
            seq: 0,
            expect: 0,
            in_flight: 0,
            sent_times: VecDeque::new(),
            last_sent: Instant::now(),
            seed,
            pmd: None,
            tls: None,
            raw: None,
        })
    }

    /// Reads what came: the socket's bytes, or with TLS the plaintext of its records (the
    /// socket is read until it would block, so an edge is never lost). 0: the stream ended.
    pub fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(0);
        };
        let Some(tls) = self.tls.as_mut() else {
            return stream.read(buf);
        };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n), // 0: close_notify
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if tls.read_tls(stream)? == 0 {
                return Ok(0);
            }
            tls.process_new_packets().map_err(io::Error::other)?;
        }
    }

    /// The server accepted permessage-deflate (`server_no_context_takeover` or not): RSV1
    /// frames are expected from now on and messages are sent compressed.
    pub fn agree_deflate(&mut self, server_no_context_takeover: bool) {
        self.proto = Connection::with_rsv(RSV1);
        self.proto.set_mask_seed(self.seed);
        self.pmd = Some(Box::new(ClientPmd::new(server_no_context_takeover)));
    }

    /// Appends one masked, compressed (RSV1) frame of `kind` whose payload `write` produces.
    fn queue_compressed(
        &mut self,
        cfg: &Config,
        kind: MessageKind,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), SendError> {
        let Some(pmd) = self.pmd.as_mut() else {
            return Ok(());
        };
        let mut plain = std::mem::take(&mut pmd.buf);
        plain.clear();
        write(&mut plain);
        let mut packed = Vec::with_capacity(plain.len() / 2 + 16);
        pmd.deflate(&plain, &mut packed);
        pmd.buf = plain;
        let header = self.proto.message_header(cfg, kind, packed.len())?;
        let key = HeaderView::new_checked(&header)
            .ok()
            .and_then(|v| v.mask_key())
            .unwrap_or([0; 4]);
        let at = self.out.len();
        self.out.extend_from_slice(&header);
        self.out[at] |= RSV1;
        let start = self.out.len();
        self.out.extend_from_slice(&packed);
        mask::apply(&mut self.out[start..], key, 0);
        Ok(())
    }

    /// Whether bytes are still owed to the socket.
    pub fn has_output(&self) -> bool {
        self.sent < self.out.len() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Writes what is owed until done or the socket is full.
    pub fn flush(&mut self) -> io::Result<()> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        if let Some(tls) = self.tls.as_mut() {
            // Plaintext into TLS (as much as it takes now), its records out to the socket.
            loop {
                if self.sent < self.out.len() {
                    self.sent += tls.writer().write(&self.out[self.sent..])?;
                }
                while tls.wants_write() {
                    match tls.write_tls(stream) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                if self.sent >= self.out.len() {
                    self.out.clear();
                    self.sent = 0;
                    return Ok(());
                }
                if tls.is_handshaking() {
                    return Ok(()); // the rest goes once the handshake is done (on a read)
                }
            }
        }
        while self.sent < self.out.len() {
            match stream.write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.sent = 0;
        Ok(())
    }

    /// Queues `text` as one masked text frame, appended to what is owed.
    pub fn queue_text(&mut self, cfg: &Config, text: &[u8]) -> Result<(), SendError> {
        if self.pmd.is_some() {
            return self
                .queue_compressed(cfg, MessageKind::Text, |out| out.extend_from_slice(text));
        }
        let header = self
            .proto
            .message_header(cfg, MessageKind::Text, text.len())?;
        let key = HeaderView::new_checked(&header)
            .ok()
            .and_then(|v| v.mask_key())
            .unwrap_or([0; 4]);
        self.out.extend_from_slice(&header);
        let start = self.out.len();
        self.out.extend_from_slice(text);
        mask::apply(&mut self.out[start..], key, 0);
        Ok(())
    }

    /// Queues message `seq` of `payload` as one masked frame, appended to what is owed.
    pub fn queue_message(
        &mut self,
        cfg: &Config,
        payload: &Payload,
        seq: u64,
    ) -> Result<(), SendError> {
        if self.pmd.is_some() {
            self.queue_compressed(cfg, payload.kind(), |out| payload.write(seq, out))?;
            self.seq = seq;
            return Ok(());
        }
        let header = self
            .proto
            .message_header(cfg, payload.kind(), payload.len())?;
        let key = HeaderView::new_checked(&header)
            .ok()
            .and_then(|v| v.mask_key())
            .unwrap_or([0; 4]);
        self.out.extend_from_slice(&header);
        let start = self.out.len();
        payload.write(seq, &mut self.out);
        mask::apply(&mut self.out[start..], key, 0);
        self.seq = seq;
        Ok(())
    }
}
