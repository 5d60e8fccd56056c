//! End-to-end tests of the byte layer over real sockets on 127.0.0.1 (single-threaded server
//! loop, clients on their own threads, every wait bounded).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::*;

/// Upper bound of any one test's server loop.
const DEADLINE: Duration = Duration::from_secs(10);
/// Client socket read/write timeout.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

fn listener() -> TcpListener {
    bind_listener("127.0.0.1:0".parse().unwrap(), 64).expect("bind")
}

fn small_config(buf_entries: u16, buf_size: u32) -> UringConfig {
    UringConfig {
        sq_entries: 32,
        cq_entries: 128,
        buf_entries,
        buf_size,
        ..UringConfig::default()
    }
}

/// Deterministic test bytes for client `n`.
fn pattern(n: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + n * 31) as u8).collect()
}

/// A client that connects, sends `data`, reads the same bytes back and closes.
fn echo_client(addr: SocketAddr, data: Vec<u8>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        s.write_all(&data).expect("client write");
        let mut back = vec![0; data.len()];
        s.read_exact(&mut back).expect("client read echo");
        assert!(back == data, "echo differs");
    })
}

/// One send in flight: the bytes, the iovec naming them and the header naming the iovec. Boxed
/// so nothing moves until `Sent`.
struct InFlight {
    data: Vec<u8>,
    iov: [libc::iovec; 1],
    header: SendHeader,
}

impl InFlight {
    fn new(data: Vec<u8>) -> Box<InFlight> {
        let mut f = Box::new(InFlight {
            data,
            iov: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }],
            header: SendHeader::new(),
        });
        f.iov[0].iov_base = f.data.as_mut_ptr().cast();
        f.iov[0].iov_len = f.data.len();
        let InFlight { iov, header, .. } = &mut *f;
        header.set_raw_iovecs(iov);
        f
    }
}

/// Per-connection state of the echo loop.
struct EchoConn {
    /// Until its close is queued.
    fd: Option<OwnedFd>,
    generation: u32,
    pending: Vec<u8>,
    in_flight: Option<Box<InFlight>>,
    eof: bool,
    closing: bool,
}

/// What the echo loop saw.
#[derive(Debug, Default)]
struct EchoStats {
    accepted: usize,
    recvs: usize,
    bytes: usize,
    nobufs: usize,
    eofs: usize,
    closed: usize,
    max_lent: u32,
}

/// Runs an echo server on `uring` until every client thread has finished and every accepted
/// connection has been closed after EOF.
fn run_echo(uring: &mut Uring, listener: &TcpListener, clients: Vec<JoinHandle<()>>) -> EchoStats {
    let mut stats = EchoStats::default();
    let mut conns: HashMap<u32, EchoConn> = HashMap::new();
    let mut next_slot = 0u32;
    let mut starved: Vec<u32> = Vec::new();
    let n_clients = clients.len();
    let start = Instant::now();
    uring.arm_accept_multi(listener.as_fd()).unwrap();
    loop {
        assert!(start.elapsed() < DEADLINE, "echo loop timed out: {stats:?}");
        uring
            .submit_and_wait(1, Some(Duration::from_millis(50)))
            .unwrap();
        while let Some(c) = uring.next_completion() {
            match c {
                Completion::Accepted { fd, more } => {
                    stats.accepted += 1;
                    let slot = next_slot;
                    next_slot += 1;
                    uring.arm_recv_multi(fd.as_fd(), slot, 1).unwrap();
                    conns.insert(
                        slot,
                        EchoConn {
                            fd: Some(fd),
                            generation: 1,
                            pending: Vec::new(),
                            in_flight: None,
                            eof: false,
                            closing: false,
                        },
                    );
                    if !more {
                        uring.arm_accept_multi(listener.as_fd()).unwrap();
                    }
                }
                Completion::Recv {
                    slot,
                    generation,
                    bid,
                    len,
                    more,
                } => {
                    stats.recvs += 1;
                    stats.bytes += len as usize;
                    stats.max_lent = stats.max_lent.max(uring.bufs().lent());
                    let bytes = uring.bufs().get(bid, len as usize).to_vec();
                    uring.bufs().recycle(bid);
                    let conn = conns.get_mut(&slot).expect("known slot");
                    assert_eq!(conn.generation, generation);
                    conn.pending.extend_from_slice(&bytes);
                    if !more {
                        let fd = conn.fd.as_ref().unwrap().as_fd();
                        uring.arm_recv_multi(fd.as_fd(), slot, generation).unwrap();
                    }
                }
                Completion::RecvNoBufs { slot, .. } => {
                    stats.nobufs += 1;
                    starved.push(slot);
                }
                Completion::RecvEof { slot, .. } => {
                    stats.eofs += 1;
                    conns.get_mut(&slot).expect("known slot").eof = true;
                }
                Completion::Sent { slot, result, .. } => {
                    let conn = conns.get_mut(&slot).expect("known slot");
                    let sent = conn.in_flight.take().expect("a send in flight");
                    assert!(result >= 0, "send failed: {result}");
                    // A short send: put the rest back in front of the pending bytes.
                    let rest = sent.data[result as usize..].to_vec();
                    conn.pending.splice(0..0, rest);
                }
                Completion::Closed { slot, result, .. } => {
                    assert_eq!(result, 0);
                    stats.closed += 1;
                    conns.remove(&slot);
                }
                other => panic!("unexpected completion {other:?}"),
            }
        }
        if uring.bufs().available() > 0 {
            for slot in starved.drain(..) {
                let conn = &conns[&slot];
                let fd = conn.fd.as_ref().unwrap().as_fd();
                uring
                    .arm_recv_multi(fd.as_fd(), slot, conn.generation)
                    .unwrap();
            }
        }
        for (&slot, conn) in conns.iter_mut() {
            if conn.in_flight.is_none() && !conn.pending.is_empty() {
                let f = InFlight::new(std::mem::take(&mut conn.pending));
                let fd = conn.fd.as_ref().unwrap().as_raw_fd();
                // SAFETY: the box (bytes, iovec, header) stays in `conn.in_flight` until the
                // `Sent` completion for this slot is handled above.
                unsafe { uring.send(fd, slot, conn.generation, &f.header) }.unwrap();
                conn.in_flight = Some(f);
            } else if conn.eof && conn.in_flight.is_none() && !conn.closing {
                conn.closing = true;
                let fd = conn.fd.take().unwrap();
                uring.close(fd, slot, conn.generation).unwrap();
            }
        }
        if stats.closed == n_clients && clients.iter().all(|c| c.is_finished()) {
            break;
        }
    }
    for c in clients {
        c.join().expect("client thread");
    }
    assert_eq!(uring.bufs().lent(), 0, "every buffer was recycled");
    stats
}

#[cfg_attr(
    ringws_no_uring,
    ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
)]
#[test]
fn uring_builds_and_reports_flags() {
    let uring = Uring::new(UringConfig::default()).expect("io_uring");
    let flags = uring.flags();
    eprintln!("accepted ring flags: {flags:?}");
    assert!(!flags.defer_taskrun || flags.single_issuer);
    assert!(probe_ops(&uring.ring).unwrap().missing().is_empty());
}

#[cfg_attr(
    ringws_no_uring,
    ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
)]
#[test]
fn wait_with_timeout_returns_when_idle() {
    let mut uring = Uring::new(small_config(4, 64)).unwrap();
    let start = Instant::now();
    uring
        .submit_and_wait(1, Some(Duration::from_millis(20)))
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(uring.next_completion(), None);
}

#[cfg_attr(
    ringws_no_uring,
    ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
)]
#[test]
fn echo_three_clients_multi_buffer_and_eof() {
    let buf_size = 256;
    let mut uring = Uring::new(small_config(16, buf_size)).unwrap();
    let l = listener();
    let addr = l.local_addr().unwrap();
    let clients = vec![
        echo_client(addr, b"hello".to_vec()),
        echo_client(addr, pattern(1, 3 * buf_size as usize + 17)),
        echo_client(addr, pattern(2, 100)),
    ];
    let stats = run_echo(&mut uring, &l, clients);
    assert_eq!(stats.accepted, 3);
    assert_eq!(stats.bytes, 5 + 3 * 256 + 17 + 100);
    // The big client needs at least 4 buffers, so more receives than clients.
    assert!(stats.recvs >= 6, "{stats:?}");
    assert_eq!(stats.eofs, 3, "one RecvEof per closed client");
    assert_eq!(stats.closed, 3);
}

#[cfg_attr(
    ringws_no_uring,
    ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
)]
#[test]
fn echo_with_classic_buffers_too() {
    // The path of kernels before 6.12: whole buffers per completion, no incremental pieces.
    let config = UringConfig {
        incremental_bufs: false,
        ..small_config(16, 256)
    };
    let mut uring = Uring::new(config).unwrap();
    assert!(!uring.flags().incremental_bufs);
    let l = listener();
    let addr = l.local_addr().unwrap();
    let clients = vec![
        echo_client(addr, pattern(1, 3 * 256 + 17)),
        echo_client(addr, pattern(2, 100)),
    ];
    let stats = run_echo(&mut uring, &l, clients);
    assert_eq!(stats.bytes, 3 * 256 + 17 + 100);
    assert!(stats.recvs >= 5, "{stats:?}");
}

#[cfg_attr(
    ringws_no_uring,
    ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
)]
#[test]
fn large_buffers_are_split_where_they_cannot_be_filled_piecewise() {
    // Without incremental consumption, 64 x 64 KiB becomes 1024 x 4 KiB: the same memory.
    let uring = Uring::new(UringConfig {
        incremental_bufs: false,
        ..UringConfig::default()
    })
    .unwrap();
    assert_eq!(
        (uring.bufs_ref().entries(), uring.bufs_ref().buf_size()),
        (1024, 4096)
    );
    let uring = Uring::new(UringConfig::default()).unwrap();
    if uring.flags().incremental_bufs {
        assert_eq!(
            (uring.bufs_ref().entries(), uring.bufs_ref().buf_size()),
            (64, 65536)
        );
    }
}

#[cfg_attr(
    ringws_no_uring,
    ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
)]
#[test]
fn enobufs_rearm_loses_nothing() {
    // Two 16-byte buffers for four clients of 200 bytes each: the ring runs dry again and again.
    let mut uring = Uring::new(small_config(2, 16)).unwrap();
    let l = listener();
    let addr = l.local_addr().unwrap();
    let clients = (0..4).map(|n| echo_client(addr, pattern(n, 200))).collect();
    let stats = run_echo(&mut uring, &l, clients);
    assert_eq!(stats.bytes, 800);
    assert!(stats.nobufs > 0, "the ring should have run dry: {stats:?}");
    assert!(stats.max_lent <= 2);
    assert_eq!(stats.eofs, 4);
}

/// Waits for completions until `want` says stop, collecting them.
fn collect_until(
    uring: &mut Uring,
    mut done: impl FnMut(&[Completion]) -> bool,
) -> Vec<Completion> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while !done(&seen) {
        assert!(start.elapsed() < DEADLINE, "timed out, saw {seen:?}");
        uring
            .submit_and_wait(1, Some(Duration::from_millis(50)))
            .unwrap();
        while let Some(c) = uring.next_completion() {
            seen.push(c);
        }
    }
    seen
}

fn accept_one(uring: &mut Uring) -> OwnedFd {
    let mut seen = collect_until(uring, |s| !s.is_empty());
    match seen.pop() {
        Some(Completion::Accepted { fd, more: true }) if seen.is_empty() => fd,
        other => panic!("expected one accept, got {seen:?} {other:?}"),
    }
}

#[cfg_attr(
    ringws_no_uring,
    ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
)]
#[test]
fn cancel_then_close_and_stale_generation() {
    let mut uring = Uring::new(small_config(4, 64)).unwrap();
    let l = listener();
    let addr = l.local_addr().unwrap();
    uring.arm_accept_multi(l.as_fd()).unwrap();
    const SLOT: u32 = 5;
    let mut current_gen = 1;

    let mut first = TcpStream::connect(addr).unwrap();
    first.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    let fd = accept_one(&mut uring);
    uring.arm_recv_multi(fd.as_fd(), SLOT, current_gen).unwrap();
    uring.submit_and_wait(0, None).unwrap();

    // Close the connection: cancel the armed receive, close the fd, bump the generation.
    uring.cancel_recv(SLOT, current_gen).unwrap();
    uring.close(fd, SLOT, current_gen).unwrap();
    let old_gen = current_gen;
    current_gen += 1;
    let seen = collect_until(&mut uring, |s| s.len() >= 3);
    assert_eq!(seen.len(), 3, "{seen:?}");
    for c in &seen {
        match c {
            &Completion::CancelDone {
                slot,
                generation,
                result,
            } => assert_eq!((slot, generation, result), (SLOT, old_gen, 0)),
            &Completion::RecvCancelled { slot, generation } => {
                assert_eq!(slot, SLOT);
                assert_ne!(generation, current_gen, "recognised as stale");
            }
            &Completion::Closed {
                slot,
                generation,
                result,
            } => assert_eq!((slot, generation, result), (SLOT, old_gen, 0)),
            other => panic!("unexpected {other:?}"),
        }
    }
    // With the receive cancelled the close really released the socket: the peer sees EOF.
    let mut byte = [0u8; 1];
    assert_eq!(first.read(&mut byte).unwrap(), 0);

    // The slot is reused for a new connection with the new generation.
    let mut second = TcpStream::connect(addr).unwrap();
    let fd2 = accept_one(&mut uring);
    uring
        .arm_recv_multi(fd2.as_fd(), SLOT, current_gen)
        .unwrap();
    second.write_all(b"new").unwrap();
    let seen = collect_until(&mut uring, |s| !s.is_empty());
    match seen[..] {
        [
            Completion::Recv {
                slot,
                generation,
                bid,
                len: 3,
                more: true,
            },
        ] => {
            assert_eq!((slot, generation), (SLOT, current_gen));
            assert_eq!(uring.bufs().get(bid, 3), b"new");
            uring.bufs().recycle(bid);
        }
        _ => panic!("expected one receive, got {seen:?}"),
    }
    // Cancel everything on the fd (the receive), then close.
    uring.cancel_fd(fd2.as_fd(), SLOT, current_gen).unwrap();
    uring.close(fd2, SLOT, current_gen).unwrap();
    let seen = collect_until(&mut uring, |s| s.len() >= 3);
    assert!(
        seen.contains(&Completion::CancelDone {
            slot: SLOT,
            generation: current_gen,
            result: 1
        }),
        "{seen:?}"
    );
    assert!(seen.contains(&Completion::RecvCancelled {
        slot: SLOT,
        generation: current_gen
    }));
    drop(second);
    // The accept is still armed; cancel it too.
    uring.cancel_accept().unwrap();
    let seen = collect_until(&mut uring, |s| s.len() >= 2);
    assert!(seen.contains(&Completion::AcceptError {
        errno: libc::ECANCELED,
        more: false
    }));
}

#[cfg_attr(
    ringws_no_uring,
    ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
)]
#[test]
fn full_sq_and_cq_overflow_lose_nothing() {
    let mut uring = Uring::new(UringConfig {
        sq_entries: 4,
        cq_entries: 8,
        buf_entries: 2,
        buf_size: 64,
        ..UringConfig::default()
    })
    .unwrap();
    const N: u32 = 200;
    for token in 0..N {
        uring.nop(token).unwrap();
    }
    uring.submit_and_wait(0, None).unwrap();
    let mut tokens = Vec::new();
    let start = Instant::now();
    while tokens.len() < N as usize {
        assert!(start.elapsed() < DEADLINE, "got {} of {N}", tokens.len());
        while let Some(c) = uring.next_completion() {
            match c {
                Completion::Nop { token } => tokens.push(token),
                other => panic!("unexpected {other:?}"),
            }
        }
        if tokens.len() < N as usize {
            uring
                .submit_and_wait(1, Some(Duration::from_millis(50)))
                .unwrap();
        }
    }
    assert_eq!(tokens, (0..N).collect::<Vec<_>>(), "all, in order");
    let stats = uring.stats();
    assert!(stats.sq_full_submits > 0, "{stats:?}");
    assert!(stats.cq_overflow_flushes > 0, "{stats:?}");
    assert_eq!(stats.cq_dropped, 0);
}

#[cfg_attr(
    ringws_no_uring,
    ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
)]
#[test]
fn timeout_fires() {
    let mut uring = Uring::new(small_config(2, 64)).unwrap();
    uring.arm_timeout(Duration::from_millis(10), 7).unwrap();
    // Arming again before submission submits the first one (its timespec must be read first).
    uring.arm_timeout(Duration::from_millis(20), 8).unwrap();
    let seen = collect_until(&mut uring, |s| s.len() >= 2);
    let fired: Vec<(u32, i32)> = seen
        .iter()
        .map(|c| match c {
            &Completion::Timeout { token, result } => (token, result),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(fired, [(7, -libc::ETIME), (8, -libc::ETIME)]);
}

#[cfg_attr(
    ringws_no_uring,
    ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
)]
#[test]
fn msg_ring_between_two_rings() {
    let mut a = Uring::new(small_config(2, 64)).unwrap();
    let mut b = Uring::new(small_config(2, 64)).unwrap();
    b.msg_ring(a.ring_fd(), 42, -5, 7).unwrap();
    // Submitted (and, MSG_RING being done inline, carried out) by this enter.
    b.submit_and_wait(0, None).unwrap();
    let got = collect_until(&mut a, |s| !s.is_empty());
    assert_eq!(got, [Completion::Message { payload: 42 }]);
    // A success posts nothing on the sender's side (CQE_SKIP_SUCCESS); a no-op queued after
    // the message is the first completion the sender sees.
    b.nop(9).unwrap();
    let sent = collect_until(&mut b, |s| !s.is_empty());
    assert_eq!(sent, [Completion::Nop { token: 9 }]);
}

#[cfg_attr(
    ringws_no_uring,
    ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
)]
#[test]
fn non_blocking_poll_runs_deferred_completions() {
    // With DEFER_TASKRUN the receive below completes as deferred task work, which only an enter
    // with GETEVENTS runs: a loop that only submits would never see it.
    let mut uring = Uring::new(small_config(4, 64)).unwrap();
    let l = listener();
    let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    uring.arm_accept_multi(l.as_fd()).unwrap();
    let fd = accept_one(&mut uring);
    uring.arm_recv_multi(fd.as_fd(), 1, 1).unwrap();
    // Submitted while the socket is empty: the receive waits in the kernel.
    uring.submit_and_wait(0, None).unwrap();
    assert_eq!(uring.next_completion(), None);
    client.write_all(b"ping").unwrap();
    let start = Instant::now();
    let mut got = false;
    while !got {
        assert!(start.elapsed() < DEADLINE, "no completion by polling");
        thread::sleep(Duration::from_millis(1));
        uring.submit_and_wait(0, None).unwrap();
        while let Some(c) = uring.next_completion() {
            match c {
                Completion::Recv { bid, len, .. } => {
                    assert_eq!(uring.bufs().get(bid, len as usize), b"ping");
                    uring.bufs().recycle(bid);
                    got = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    uring.cancel_fd(fd.as_fd(), 1, 1).unwrap();
    uring.close(fd, 1, 1).unwrap();
    let _ = collect_until(&mut uring, |s| {
        s.iter().any(|c| matches!(c, Completion::Closed { .. }))
    });
}

#[cfg_attr(
    ringws_no_uring,
    ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
)]
#[test]
fn a_failed_msg_ring_comes_back_with_its_tag() {
    // Not a ring: the kernel refuses the message; the sender learns which target it was for
    // (the worker then signals that target's eventfd instead).
    let not_a_ring = crate::runtime::sys::eventfd().unwrap();
    let mut b = Uring::new(small_config(2, 64)).unwrap();
    b.msg_ring(not_a_ring.as_fd(), 42, 0, 1234).unwrap();
    let sent = collect_until(&mut b, |s| !s.is_empty());
    match sent[..] {
        [
            Completion::MsgSent {
                payload: 42,
                tag: 1234,
                result,
            },
        ] => assert!(result < 0, "{result}"),
        ref other => panic!("{other:?}"),
    }
}

#[cfg_attr(
    ringws_no_uring,
    ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
)]
#[test]
fn an_end_of_stream_arrives_without_a_buffer_on_this_kernel() {
    // The decoder handles a completion that names a buffer with no bytes (see
    // `BufRing::returned_empty`); this shows the kernel does not send one at the end of a
    // stream: the receive gives its buffer selection back before completing. Both kinds of
    // ring, where the kernel has them.
    for incremental in [false, true] {
        let mut uring = Uring::new(UringConfig {
            incremental_bufs: incremental,
            ..small_config(8, 4096)
        })
        .unwrap();
        if uring.flags().incremental_bufs != incremental {
            skipped(&format!(
                "end of stream, incremental={incremental}: not on this kernel (6.12+)"
            ));
            continue;
        }
        let l = listener();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        uring.arm_accept_multi(l.as_fd()).unwrap();
        let fd = accept_one(&mut uring);
        uring.arm_recv_multi(fd.as_fd(), 1, 1).unwrap();
        client.write_all(b"abc").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut eof = false;
        let start = Instant::now();
        while !eof {
            assert!(start.elapsed() < DEADLINE, "no end of stream");
            uring
                .submit_and_wait(1, Some(Duration::from_millis(50)))
                .unwrap();
            while let Some(c) = uring.next_completion() {
                match c {
                    Completion::Recv { bid, .. } => uring.bufs().recycle(bid),
                    Completion::RecvEof { .. } => eof = true,
                    // The end of stream needs a buffer selected too (the one just recycled is
                    // published by the next enter).
                    Completion::RecvNoBufs { .. } => {
                        uring.arm_recv_multi(fd.as_fd(), 1, 1).unwrap()
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        let recv = UserData::new(OpKind::Recv, 1, 1).raw();
        let (_, res, flags) = *uring
            .raw_seen
            .iter()
            .rev()
            .find(|(tag, _, _)| *tag == recv)
            .unwrap();
        assert_eq!(res, 0, "the last receive completion is the end of stream");
        assert_eq!(
            io_uring::cqueue::buffer_select(flags),
            None,
            "incremental={incremental}: the end of stream named a buffer (flags {flags:#x})"
        );
        assert_eq!(uring.bufs().lent(), 0);
    }
}

/// A `Bytes` whose drop is seen: the memory of a send the ring holds.
fn watched(len: usize, dropped: &std::sync::Arc<std::sync::atomic::AtomicBool>) -> bytes::Bytes {
    struct Owner(Vec<u8>, std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl AsRef<[u8]> for Owner {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    impl Drop for Owner {
        fn drop(&mut self) {
            self.1.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    bytes::Bytes::from_owner(Owner(vec![b'x'; len], dropped.clone()))
}

#[cfg_attr(
    ringws_no_uring,
    ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
)]
#[test]
fn dropping_a_ring_cancels_a_stuck_send_before_freeing_its_memory() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    // A peer that does not read: the second send cannot go anywhere and waits in the kernel,
    // pointing at memory the ring holds. The teardown must end that send (cancel it, read its
    // completion, which releases the memory) before anything is freed, whether or not
    // something else keeps the ring's file open (the server's hub keeps a duplicate of every
    // worker's ring fd, so closing ours would not even start the kernel's own teardown).
    for keep_a_duplicate in [false, true] {
        let mut uring = Uring::new(small_config(4, 4096)).unwrap();
        let duplicate = keep_a_duplicate.then(|| uring.ring_fd().try_clone_to_owned().unwrap());
        let l = listener();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        uring.arm_accept_multi(l.as_fd()).unwrap();
        let fd = accept_one(&mut uring);
        let first_dropped = Arc::new(AtomicBool::new(false));
        let stuck_dropped = Arc::new(AtomicBool::new(false));
        // Fill the socket: a large send goes out in part (whatever the buffers take).
        uring
            .send_owned(fd.as_fd(), 1, 1, [watched(64 << 20, &first_dropped)])
            .unwrap();
        let seen = collect_until(&mut uring, |s| !s.is_empty());
        let sent = match seen[..] {
            [Completion::Sent { result, .. }] if result > 0 => result as usize,
            _ => panic!("{seen:?}"),
        };
        assert!(
            first_dropped.load(Ordering::SeqCst),
            "released by its completion"
        );
        // The socket is full now: this one waits in the kernel.
        uring
            .send_owned(fd.as_fd(), 1, 1, [watched(1 << 20, &stuck_dropped)])
            .unwrap();
        uring.submit_and_wait(0, None).unwrap();
        assert!(
            uring.next_completion().is_none(),
            "the second send is stuck"
        );
        assert!(!stuck_dropped.load(Ordering::SeqCst));
        // What Drop does first: the send is cancelled and its completion read, which releases
        // its memory while the ring is still ours.
        assert!(uring.quiesce(), "keep_a_duplicate={keep_a_duplicate}");
        assert!(
            stuck_dropped.load(Ordering::SeqCst),
            "keep_a_duplicate={keep_a_duplicate}: released by its own (cancelled) completion"
        );
        drop(uring);
        drop((duplicate, fd));
        // The peer gets the first send's bytes and nothing of the cancelled one.
        client.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), sent);
    }
}
