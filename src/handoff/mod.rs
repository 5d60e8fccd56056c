//! Live hand-over: a new `ringws` process takes the listening sockets of the running one, so
//! that a deploy never stops accepting.
//!
//! The running server listens on a control socket (`--handoff-socket PATH`: a Unix
//! `SOCK_SEQPACKET` socket, mode 0600, and only a process of the same user is answered). A new
//! process started with the same flags plus `--take-over` connects to it and the two speak in
//! JSON messages, the listening sockets travelling beside one of them (`SCM_RIGHTS`):
//!
//! ```text
//!   new process (--take-over)                 running process (--handoff-socket)
//!   ------------------------                  ----------------------------------
//!   TakeOver {protocol, state_version, pid} ->
//!                                           <- Listeners {protocol, state_version, pid,
//!                                                         listeners: [{role, addr}]}
//!                                              + one descriptor per listener, in order
//!   starts its workers on them (both processes
//!   now accept from the same sockets)
//!   Accepting {pid, state}                  ->
//!                                              stops accepting; closes its connections
//!                                              with 1012 (service restart) and exits 0
//!   replaces PATH with its own control socket
//! ```
//!
//! The listeners are the same sockets, not new ones bound to the same port: a connection waiting
//! in a listener's queue is accepted by whichever process looks first, and none is reset when
//! the old process closes its copies.
//!
//! Until `Accepting` arrives, the running process serves as before: if the new one fails to
//! start, dies (even by SIGKILL) or says nothing for the hand-over's timeout, the running one
//! logs why and goes on, and its control socket answers the next attempt. A `TakeOver` of
//! another protocol version is refused with a reason, before any socket is sent.
//!
//! `state_version` names the format of the connections' state. Established connections are
//! not carried yet: today the old process closes them with 1012 and clients reconnect to the
//! new one (the chat's history lets them catch up). When they are, a new process that cannot
//! read the old one's state version says so in `Accepting` (`state: "drain"`) and the old one
//! falls back to closing them with 1012, both with a log line.
//!
//! # Not built yet: carrying the established connections
//!
//! The plan, from what the server already has:
//!
//! - After `Accepting { state: "read" }`, each old worker pauses reading every open connection
//!   with the flow-control path (`READ_PAUSED`: the armed receive is cancelled; bytes that
//!   arrive before the cancel lands are held, `INPUT_HELD`). A connection is carried once its
//!   receive has ended and its queue is empty with no send in flight, if its protocol state is
//!   between messages (no frame or fragmented message in progress, no close begun), it has no
//!   TLS session (TLS 1.3 could carry its keys and sequence numbers, `src/tls/record.rs`; 1.2
//!   cannot), its compression is shared mode (dedicated mode's zlib window cannot be carried)
//!   and the handler saves its state (a `Handler` hook; the default says no). Everything else
//!   is closed with 1012, as now, by the same deadline.
//! - Its state: the held input (fed first by the new process: nothing read is lost), RSV1 and
//!   the compression agreement, the heartbeat's and idle timeout's ages, and the handler's bytes
//!   (the chat: identity, rooms with their offsets, rate-limit buckets); the old process then
//!   forgets the connection without closing its socket or telling the handler it closed (no
//!   leave events). Sent in batches of at most 253 descriptors (`SCM_RIGHTS`' limit), each with
//!   its states.
//! - The new process's control thread hands each batch to a worker through its inbox; the
//!   worker makes a slot (open, without `Handler::open`), gives the handler its bytes back
//!   (re-joining rooms from the saved offsets: publications in between come from the history),
//!   feeds the held input and arms the receive.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::runtime::seqpacket::{SeqPacket, SeqPacketListener, my_uid};

/// Version of the control messages below.
pub const PROTOCOL: u32 = 1;
/// Version of the connections' state format (connections are not carried yet: see the module
/// documentation).
pub const STATE_VERSION: u32 = 1;

/// What a listening socket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The WebSocket (and HTTP) port: one socket per worker, an `SO_REUSEPORT` group.
    Websocket,
    /// The backend API (`--api-listen`).
    Api,
}

/// The listening sockets a server hands over.
#[derive(Debug, Default)]
pub struct Listeners {
    /// The WebSocket port's sockets (one per worker).
    pub websocket: Vec<TcpListener>,
    /// The backend API's socket, if it has one.
    pub api: Option<TcpListener>,
}

/// What the new process says about the connections' state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateAnswer {
    /// It reads the old process's state version.
    Read,
    /// It does not: the old process closes its connections with 1012.
    Drain,
}

#[derive(Debug, Serialize, Deserialize)]
struct ListenerInfo {
    role: Role,
    addr: SocketAddr,
}

/// The control messages.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Message {
    TakeOver {
        protocol: u32,
        state_version: u32,
        pid: u32,
    },
    Listeners {
        protocol: u32,
        state_version: u32,
        pid: u32,
        listeners: Vec<ListenerInfo>,
    },
    Refused {
        reason: String,
    },
    Accepting {
        pid: u32,
        state: StateAnswer,
    },
}

fn send(conn: &SeqPacket, message: &Message, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
    conn.send(&bytes, fds)
}

/// The next message, with its descriptors. The other side closing is an error here: every
/// step of the exchange expects an answer.
fn recv(conn: &SeqPacket) -> io::Result<(Message, Vec<std::os::fd::OwnedFd>)> {
    let Some((bytes, fds)) = conn.recv().map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            io::Error::new(io::ErrorKind::TimedOut, "no answer in time")
        }
        _ => e,
    })?
    else {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the other process closed the control connection",
        ));
    };
    let message = serde_json::from_slice(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a hand-over message ({e})"),
        )
    })?;
    Ok((message, fds))
}

/// A finished hand-over, as the running process sees it.
#[derive(Debug, Clone, Copy)]
pub struct Handed {
    /// The new process.
    pub pid: u32,
    /// Whether it reads this process's connection state.
    pub state: StateAnswer,
}

/// The running process's side: a thread that answers take-overs on the control socket until
/// one succeeds (or the process ends).
#[derive(Debug)]
pub struct Control {
    path: PathBuf,
}

impl Control {
    /// Listens on `path` and answers take-overs there with `listeners`, in a thread of its
    /// own. Once a new process is accepting on them, calls `handed` (which stops this server)
    /// and stops answering. A take-over that fails on the way (`timeout` without an answer, the
    /// new process gone, a message that does not parse) is logged and changes nothing.
    ///
    /// # Errors
    /// The control socket cannot be bound at `path`.
    pub fn listen(
        path: &Path,
        listeners: Listeners,
        timeout: Duration,
        handed: impl FnOnce(Handed) + Send + 'static,
    ) -> io::Result<Control> {
        let socket = SeqPacketListener::bind(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let shown = path.display().to_string();
        std::thread::Builder::new()
            .name("ringws-handoff".into())
            .spawn(move || {
                let me = my_uid();
                loop {
                    let (conn, uid) = match socket.accept() {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            tracing::warn!("hand-over: control socket {shown}: {e}");
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        }
                    };
                    if uid != me {
                        tracing::warn!(
                            "hand-over: refused a connection from user {uid} on {shown} (only user {me} may take over)"
                        );
                        continue;
                    }
                    match answer(&conn, &listeners, timeout) {
                        Ok(done) => {
                            tracing::info!(
                                new_pid = done.pid,
                                "hand-over: process {} accepts on the listeners; {}",
                                done.pid,
                                match done.state {
                                    StateAnswer::Read => "closing the connections held here with 1012 (service restart)",
                                    StateAnswer::Drain => "it cannot read this process's connection state: closing the connections held here with 1012 (service restart)",
                                }
                            );
                            handed(done);
                            return;
                        }
                        Err(e) => tracing::warn!(
                            "hand-over: a take-over failed ({e}); still serving, {shown} answers the next one"
                        ),
                    }
                }
            })?;
        Ok(Control {
            path: path.to_owned(),
        })
    }

    /// The control socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One take-over, on the running process's side.
fn answer(conn: &SeqPacket, listeners: &Listeners, timeout: Duration) -> io::Result<Handed> {
    conn.set_timeout(Some(timeout))?;
    let (message, _) = recv(conn)?;
    let Message::TakeOver { protocol, pid, .. } = message else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "expected take_over first",
        ));
    };
    if protocol != PROTOCOL {
        let reason = format!(
            "hand-over protocol {protocol} asked; process {} speaks {PROTOCOL}",
            std::process::id()
        );
        let _ = send(
            conn,
            &Message::Refused {
                reason: reason.clone(),
            },
            &[],
        );
        return Err(io::Error::new(io::ErrorKind::InvalidData, reason));
    }
    let mut infos = Vec::new();
    let mut fds = Vec::new();
    for (role, listener) in listeners
        .websocket
        .iter()
        .map(|l| (Role::Websocket, l))
        .chain(listeners.api.iter().map(|l| (Role::Api, l)))
    {
        infos.push(ListenerInfo {
            role,
            addr: listener.local_addr()?,
        });
        fds.push(listener.as_fd());
    }
    send(
        conn,
        &Message::Listeners {
            protocol: PROTOCOL,
            state_version: STATE_VERSION,
            pid: std::process::id(),
            listeners: infos,
        },
        &fds,
    )?;
    tracing::info!(
        "hand-over: sent {} listening sockets to process {pid}; waiting for it to accept",
        fds.len()
    );
    match recv(conn)?.0 {
        Message::Accepting { pid: said, state } if said == pid => Ok(Handed { pid, state }),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected accepting from process {pid}, got {other:?}"),
        )),
    }
}

/// The new process's side, after it received the listeners: it tells the running process
/// once it accepts on them ([`TakeOver::accepting`]); dropped before that, the running process
/// goes on serving.
#[derive(Debug)]
pub struct TakeOver {
    conn: SeqPacket,
    /// The running process.
    pub from_pid: u32,
    /// Its connection-state version.
    pub state_version: u32,
    /// The listening sockets, to serve on.
    pub listeners: Listeners,
}

/// Connects to the running server's control socket at `path` and receives its listening
/// sockets (waiting at most `timeout` for them).
///
/// # Errors
/// Nothing listens at `path`, the running process refused (another protocol version) or did
/// not answer in time, or what it sent is not a listening TCP socket where it says.
pub fn take_over(path: &Path, timeout: Duration) -> io::Result<TakeOver> {
    let conn = SeqPacket::connect(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot reach a running server at {}: {e}", path.display()),
        )
    })?;
    conn.set_timeout(Some(timeout))?;
    send(
        &conn,
        &Message::TakeOver {
            protocol: PROTOCOL,
            state_version: STATE_VERSION,
            pid: std::process::id(),
        },
        &[],
    )?;
    let (message, fds) = recv(&conn)?;
    let (from_pid, state_version, infos) = match message {
        Message::Listeners {
            pid,
            state_version,
            listeners,
            ..
        } => (pid, state_version, listeners),
        Message::Refused { reason } => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the running server refused: {reason}"),
            ));
        }
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected listeners, got {other:?}"),
            ));
        }
    };
    if infos.len() != fds.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} listeners announced, {} sockets received",
                infos.len(),
                fds.len()
            ),
        ));
    }
    let mut listeners = Listeners::default();
    for (info, fd) in infos.into_iter().zip(fds) {
        let listener = TcpListener::from(fd);
        let addr = listener.local_addr().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a socket received is not a TCP listener ({e})"),
            )
        })?;
        if addr != info.addr {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a socket said to be at {} is at {addr}", info.addr),
            ));
        }
        match info.role {
            Role::Websocket => listeners.websocket.push(listener),
            Role::Api => listeners.api = Some(listener),
        }
    }
    if listeners.websocket.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no WebSocket listener received",
        ));
    }
    if state_version != STATE_VERSION {
        tracing::warn!(
            "hand-over: process {from_pid} keeps its connections' state in version \
             {state_version}, this process reads version {STATE_VERSION}: it closes them with \
             1012 (service restart) instead of handing them over"
        );
    }
    Ok(TakeOver {
        conn,
        from_pid,
        state_version,
        listeners,
    })
}

impl TakeOver {
    /// Whether this process reads the running one's connection state.
    pub fn state(&self) -> StateAnswer {
        match self.state_version == STATE_VERSION {
            true => StateAnswer::Read,
            false => StateAnswer::Drain,
        }
    }

    /// Tells the running process that this one accepts on the listeners: it stops accepting,
    /// closes its connections with 1012 and exits.
    ///
    /// # Errors
    /// The running process is gone (it then holds nothing: this process serves alone).
    pub fn accepting(self) -> io::Result<()> {
        send(
            &self.conn,
            &Message::Accepting {
                pid: std::process::id(),
                state: self.state(),
            },
            &[],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ringws-handoff-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("control")
    }

    /// A control socket answering with one WebSocket listener; what `handed` got arrives on
    /// the receiver.
    fn control(path: &Path) -> (SocketAddr, mpsc::Receiver<Handed>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        let listeners = Listeners {
            websocket: vec![listener],
            api: None,
        };
        Control::listen(path, listeners, Duration::from_secs(5), move |h| {
            let _ = tx.send(h);
        })
        .unwrap();
        (addr, rx)
    }

    fn ask(path: &Path, message: &[u8]) -> Message {
        let conn = SeqPacket::connect(path).unwrap();
        conn.set_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.send(message, &[]).unwrap();
        recv(&conn).unwrap().0
    }

    #[test]
    fn another_protocol_is_refused_garbage_ignored_and_the_next_take_over_served() {
        let path = temp("refused");
        let (addr, handed) = control(&path);
        // Another protocol version: refused with a reason naming both, before any socket.
        let refused = ask(
            &path,
            br#"{"type":"take_over","protocol":2,"state_version":1,"pid":1}"#,
        );
        let Message::Refused { reason } = refused else {
            panic!("{refused:?}")
        };
        assert!(
            reason.contains("protocol 2 asked") && reason.contains("speaks 1"),
            "{reason}"
        );
        // Not a hand-over message: the connection is dropped, nothing sent.
        let conn = SeqPacket::connect(&path).unwrap();
        conn.set_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.send(b"GET / HTTP/1.1", &[]).unwrap();
        assert!(conn.recv().unwrap().is_none(), "closed without an answer");
        // Still answering: a real take-over gets the listener, the same socket.
        let taken = take_over(&path, Duration::from_secs(5)).unwrap();
        assert_eq!(taken.listeners.websocket.len(), 1);
        assert_eq!(taken.listeners.websocket[0].local_addr().unwrap(), addr);
        assert!(taken.listeners.api.is_none());
        assert_eq!(taken.state(), StateAnswer::Read);
        assert_eq!(taken.from_pid, std::process::id());
        assert!(handed.try_recv().is_err(), "not handed before accepting");
        taken.accepting().unwrap();
        let done = handed.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(
            (done.pid, done.state),
            (std::process::id(), StateAnswer::Read)
        );
    }

    #[test]
    fn a_state_version_this_process_cannot_read_is_answered_with_drain() {
        // The old side played by hand: it announces state version 999.
        let path = temp("drain");
        let old = SeqPacketListener::bind(&path).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let old_side = std::thread::spawn(move || {
            let (conn, _) = old.accept().unwrap();
            conn.set_timeout(Some(Duration::from_secs(5))).unwrap();
            let (first, _) = recv(&conn).unwrap();
            assert!(matches!(
                first,
                Message::TakeOver {
                    protocol: PROTOCOL,
                    ..
                }
            ));
            let listeners = vec![ListenerInfo {
                role: Role::Websocket,
                addr,
            }];
            let announce = Message::Listeners {
                protocol: PROTOCOL,
                state_version: 999,
                pid: 4242,
                listeners,
            };
            send(&conn, &announce, &[listener.as_fd()]).unwrap();
            recv(&conn).unwrap().0
        });
        let taken = take_over(&path, Duration::from_secs(5)).unwrap();
        assert_eq!((taken.from_pid, taken.state_version), (4242, 999));
        assert_eq!(taken.state(), StateAnswer::Drain);
        taken.accepting().unwrap();
        let answer = old_side.join().unwrap();
        assert!(
            matches!(
                answer,
                Message::Accepting {
                    state: StateAnswer::Drain,
                    ..
                }
            ),
            "{answer:?}"
        );
    }

    #[test]
    fn descriptors_that_do_not_match_what_was_announced_are_refused() {
        let path = temp("mismatch");
        let old = SeqPacketListener::bind(&path).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let elsewhere = TcpListener::bind("127.0.0.1:0").unwrap();
        let announced = elsewhere.local_addr().unwrap();
        std::thread::spawn(move || {
            let (conn, _) = old.accept().unwrap();
            let _ = recv(&conn);
            // Two announced, one sent; then one announced at another address.
            let two = vec![
                ListenerInfo {
                    role: Role::Websocket,
                    addr: announced,
                },
                ListenerInfo {
                    role: Role::Api,
                    addr: announced,
                },
            ];
            let _ = send(
                &conn,
                &Message::Listeners {
                    protocol: PROTOCOL,
                    state_version: STATE_VERSION,
                    pid: 1,
                    listeners: two,
                },
                &[listener.as_fd()],
            );
            let (conn, _) = old.accept().unwrap();
            let _ = recv(&conn);
            let one = vec![ListenerInfo {
                role: Role::Websocket,
                addr: announced,
            }];
            let _ = send(
                &conn,
                &Message::Listeners {
                    protocol: PROTOCOL,
                    state_version: STATE_VERSION,
                    pid: 1,
                    listeners: one,
                },
                &[listener.as_fd()],
            );
        });
        let e = take_over(&path, Duration::from_secs(5)).unwrap_err();
        assert!(
            e.to_string()
                .contains("2 listeners announced, 1 sockets received"),
            "{e}"
        );
        let e = take_over(&path, Duration::from_secs(5)).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("said to be at {announced}")),
            "{e}"
        );
    }
}
