//! Flow control: a client that sends faster than it reads is slowed (the server stops reading
//! it while its queue is over the high-water mark), never loses an echo, and costs bounded
//! memory; one that never reads is still closed by the heartbeat deadlines.
//! Run on both backends (`RINGWS_TEST_IO=epoll` for the second).

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ringws::app::echo::Echo;
use ringws::proto::{Config, Connection, Event, Sink};
use ringws::server::Snapshot;
use support::{Binary, Client, TestServer, config, patience};

/// Payload bytes per message.
const SIZE: usize = 1024;
/// A masked binary frame header for `SIZE` bytes, with the all-zero mask key: the payload on the
/// wire is its own plaintext, so a test can write 100 MB without masking it.
const HEADER: [u8; 8] = [0x82, 0x80 | 126, (SIZE >> 8) as u8, SIZE as u8, 0, 0, 0, 0];
/// 100 MiB of messages.
const MESSAGES: u64 = (100 << 20) / SIZE as u64;

/// The tests here each move tens of MiB through a server and wait for its flow control to
/// engage: run at once on a 2-core machine (or under qemu) they starve each other's writers.
/// Each holds this for its whole run.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    // A test that failed poisons it; the others still run.
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// The payload of message `seq`: its number, then a byte pattern that depends on it.
fn payload(seq: u64, out: &mut [u8]) {
    out[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in out[8..].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_add(i as u8);
    }
}

/// Writes `count` messages, numbered from 0, as fast as the socket takes them.
fn write_messages(mut stream: TcpStream, count: u64) -> std::io::Result<()> {
    let per_chunk = 256;
    let mut chunk = Vec::with_capacity(per_chunk * (HEADER.len() + SIZE));
    let mut seq = 0;
    while seq < count {
        chunk.clear();
        for _ in 0..per_chunk.min((count - seq) as usize) {
            chunk.extend_from_slice(&HEADER);
            let start = chunk.len();
            chunk.resize(start + SIZE, 0);
            payload(seq, &mut chunk[start..]);
            seq += 1;
        }
        stream.write_all(&chunk)?;
    }
    Ok(())
}

/// Checks echoes as they stream in: each is the next number, byte for byte.
struct InOrder {
    next: u64,
    expected: Vec<u8>,
    bad: Option<String>,
}

impl Sink for InOrder {
    fn event(&mut self, event: Event<'_>) {
        if self.bad.is_some() {
            return;
        }
        match event {
            Event::Binary(b) => {
                payload(self.next, &mut self.expected);
                if b != &self.expected[..] {
                    let got = b
                        .get(..8)
                        .map(|s| u64::from_le_bytes(s.try_into().unwrap()));
                    self.bad = Some(format!("expected echo {}, got #{got:?}", self.next));
                }
                self.next += 1;
            }
            Event::Ping(_) | Event::Pong(_) => {}
            other => self.bad = Some(format!("unexpected {other:?}")),
        }
    }
    fn transmit(&mut self, _opcode: ringws::proto::frame::OpCode, _frame: &[u8]) {}
}

/// Reads and checks `count` echoes; calls `sample` after every read.
fn read_echoes(stream: &mut TcpStream, count: u64, mut sample: impl FnMut()) {
    let cfg = Config::client();
    let mut conn = Connection::new();
    let mut sink = InOrder {
        next: 0,
        expected: vec![0; SIZE],
        bad: None,
    };
    let mut buf = vec![0u8; 256 * 1024];
    let deadline = Instant::now() + Duration::from_secs(120);
    while sink.next < count {
        let n = match stream.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => other.expect("read echoes"),
        };
        assert!(n > 0, "EOF after {} of {count} echoes", sink.next);
        conn.handle_read(&cfg, &mut buf[..n], &mut sink)
            .expect("valid frames");
        if let Some(bad) = sink.bad.take() {
            panic!("{bad}");
        }
        sample();
        assert!(Instant::now() < deadline, "too slow: {} echoes", sink.next);
    }
}

/// The upgraded raw stream of a client (the 101 response already read).
fn upgraded(addr: std::net::SocketAddr) -> TcpStream {
    let c = Client::connect(addr);
    c.stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    c.stream
}

#[test]
fn a_pipelined_writer_that_reads_late_loses_nothing_and_is_paused() {
    let _one = one_at_a_time();
    const LIMIT: usize = 64 * 1024;
    let mut cfg = config();
    cfg.max_outbound_bytes = LIMIT;
    cfg.outbound_low_water = 16 * 1024;
    let ceiling = cfg.reply_ceiling();
    let server = TestServer::start(cfg, Echo);
    let mut stream = upgraded(server.addr);
    let writer = {
        let s = stream.try_clone().unwrap();
        std::thread::spawn(move || write_messages(s, MESSAGES))
    };
    // Not reading: the queue fills, reading stops, the kernel's buffers fill and the writer
    // blocks. Wait until the server has taken nothing more for a while (the writer is stuck,
    // or done: if flow control did not hold, it would have written everything by then).
    let c = server.wait_counters("reading paused", |c| c.reading_paused == 1);
    let paused = server.wait_stable("the writer stuck", |c| c.bytes_received);
    assert_eq!(paused.reading_paused, 1, "{paused:#?}");
    assert!(
        paused.messages_in < MESSAGES as i64 / 2,
        "the writer was slowed: {paused:#?}"
    );
    assert!(paused.bytes_queued as usize <= ceiling, "{paused:#?}");
    assert_eq!(c.dropped, 0);
    // Now read everything: every echo, in order; the queue never passes the reply ceiling.
    let mut max_queued = 0;
    read_echoes(&mut stream, MESSAGES, || {
        max_queued = max_queued.max(server.counters().bytes_queued);
    });
    writer.join().unwrap().expect("the writer wrote everything");
    let end: Snapshot = server.wait_counters("all echoes sent", |c| c.bytes_queued == 0);
    assert_eq!(end.dropped, 0, "{end:#?}");
    assert_eq!(end.messages_in, MESSAGES as i64);
    assert!(end.read_pauses >= 1, "{end:#?}");
    assert_eq!(end.reading_paused, 0, "reading resumed: {end:#?}");
    assert!(
        max_queued as usize <= ceiling,
        "queued {max_queued} > ceiling {ceiling}"
    );
}

#[test]
fn a_reader_that_never_reads_is_closed_by_the_heartbeat_and_nothing_leaks() {
    let _one = one_at_a_time();
    let mut cfg = config();
    cfg.max_outbound_bytes = 64 * 1024;
    cfg.ping_interval = Some(Duration::from_millis(200));
    cfg.pong_timeout = Duration::from_millis(200);
    let server = TestServer::start(cfg, Echo);
    let stream = upgraded(server.addr);
    stream.set_nonblocking(true).unwrap();
    // Write until the socket takes no more for a while (the server stopped reading).
    let chunk: Vec<u8> = (0..256)
        .flat_map(|seq| {
            let mut p = vec![0; SIZE];
            payload(seq, &mut p);
            HEADER.iter().copied().chain(p)
        })
        .collect();
    // Write until the server has stopped reading (flow control) and the socket takes no more.
    let start = Instant::now();
    let mut written = 0;
    loop {
        // Resume where a short write stopped: frames must stay whole.
        let at = written % chunk.len();
        match (&stream).write(&chunk[at..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if server.counters().read_pauses >= 1 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5)); // the server reads meanwhile
            }
            Err(e) => panic!("write after {written} bytes: {e}"),
        }
        assert!(start.elapsed() < patience(), "the server never pushed back");
    }
    // Never read: the server's ping waits behind the echoes, no pong comes, and the pong
    // deadline closes the connection and frees everything.
    let end = server.wait_counters("closed by the pong deadline", |c| c.connections == 0);
    assert_eq!(end.pong_timeouts, 1, "{end:#?}");
    assert_eq!(end.bytes_queued, 0, "{end:#?}");
    assert_eq!(end.buffers_lent, 0, "{end:#?}");
    assert_eq!(end.reading_paused, 0, "{end:#?}");
    assert_eq!(end.timers, 0, "{end:#?}");
    assert_eq!(end.dropped, 0, "{end:#?}");
}

#[test]
fn a_paused_connection_still_reads_the_close_reply_at_shutdown() {
    let _one = one_at_a_time();
    let mut cfg = config();
    cfg.max_outbound_bytes = 64 * 1024;
    // Long deadlines: if the close reply were not read, the close would time out after 60 s
    // (a loaded CI machine once took over 20 s to pass the 32 MiB through, and the 20 s
    // deadline this test had closed the connection before the reply came).
    cfg.proto.close_timeout = Duration::from_secs(60);
    cfg.shutdown_timeout = Duration::from_secs(90);
    let server = TestServer::start(cfg, Echo);
    let mut stream = upgraded(server.addr);
    let sent = 32 * 1024; // 32 MiB: far more than the queue and the kernel's buffers hold
    let writer = {
        let s = stream.try_clone().unwrap();
        std::thread::spawn(move || write_messages(s, sent))
    };
    server.wait_counters("reading paused", |c| c.reading_paused == 1);
    let metrics = server.metrics();
    // Shutdown while paused: the server queues its close (1001) and must read again to see our
    // reply; the reply comes after everything we wrote.
    let shutdown = std::thread::spawn(move || server.shutdown());
    let mut got = 0u64;
    let mut client = Connection::new();
    let cfg = Config::client();
    let mut buf = vec![0u8; 64 * 1024];
    struct Count<'a>(&'a mut u64, &'a mut Option<u16>);
    impl Sink for Count<'_> {
        fn event(&mut self, event: Event<'_>) {
            match event {
                Event::Binary(_) => *self.0 += 1,
                Event::Close { code, .. } => *self.1 = code.map(|c| c.0),
                _ => {}
            }
        }
        fn transmit(&mut self, _opcode: ringws::proto::frame::OpCode, _frame: &[u8]) {}
    }
    let mut close = None;
    while close.is_none() {
        let n = stream.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "EOF before the close frame, {got} echoes read; the server: {:#?}",
            metrics.per_worker()
        );
        client
            .handle_read(&cfg, &mut buf[..n], &mut Count(&mut got, &mut close))
            .unwrap();
    }
    assert_eq!(close, Some(1001));
    assert!(got > 0 && got <= sent, "{got} echoes before the close");
    writer.join().unwrap().expect("the writer finished");
    stream
        .write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9])
        .unwrap();
    let took = shutdown.join().unwrap();
    assert!(
        took < Duration::from_secs(10),
        "the close reply was read: shutdown took {took:?}"
    );
}

#[test]
fn the_servers_memory_stays_bounded_while_100_mib_wait_to_be_echoed() {
    let _one = one_at_a_time();
    // Defaults: 128 KiB high-water mark, 1024 × 4 KiB receive buffers (populated at start).
    let server = Binary::start(&[]);
    let mut stream = upgraded(server.addr);
    let before = server.rss();
    let writer = {
        let s = stream.try_clone().unwrap();
        std::thread::spawn(move || write_messages(s, MESSAGES))
    };
    // Nothing is read until the server has stopped reading us: the bytes it has not read (our
    // send queue and its receive queue) stop moving while the writer has more to write. (How
    // many there are then depends on the kernel's buffer autotuning: at least its smallest
    // receive window, 64 KiB.)
    let local = stream.local_addr().unwrap();
    let mut last = (0, Instant::now());
    support::wait_until("the server to stop reading", || {
        let unread = support::unread_bytes(local, server.addr);
        if unread != last.0 {
            last = (unread, Instant::now());
        }
        unread >= 64 << 10 && last.1.elapsed() >= Duration::from_millis(200)
    });
    let mut peak = server.rss();
    let mut reads = 0u32;
    read_echoes(&mut stream, MESSAGES, || {
        reads += 1;
        if reads % 64 == 0 {
            peak = peak.max(server.rss());
        }
    });
    writer.join().unwrap().expect("the writer wrote everything");
    peak = peak.max(server.rss());
    // Without flow control the server would hold most of the 100 MiB (or drop echoes); with it,
    // the queue (128 KiB, plus replies to what was in flight) and allocator slack.
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 16 << 20,
        "RSS grew by {growth} bytes (from {before}) while 100 MiB were echoed"
    );
}
