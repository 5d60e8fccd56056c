//! Unit tests of the worker over the scripted backend (`server::fake`).

use std::cell::Cell;
use std::rc::Rc;

use super::*;
use crate::app::echo::Echo;
use crate::proto::frame::{OpCode, encode_masked_frame};
use crate::server::fake::{Fake, Op};
use crate::server::{Conn, Decision, Message, Upgrade};

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

fn worker() -> Worker<Echo, Fake> {
    worker_with(ServerConfig::default(), Echo).0
}

/// A worker over the scripted backend whose time is the returned cell's (milliseconds).
fn worker_with<H: Handler>(cfg: ServerConfig, handler: H) -> (Worker<H, Fake>, Rc<Cell<u64>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let shared = Shared {
        cfg: Arc::new(cfg),
        stop: Arc::new(AtomicBool::new(false)),
        restart: Arc::new(AtomicBool::new(false)),
        hub: Arc::new(Hub::new(1).unwrap()),
        relay: None,
    };
    let counters = Arc::new(Counters::default());
    let mut w = Worker::new(Fake::default(), listener, handler, shared, counters, 0);
    let ms = Rc::new(Cell::new(0));
    w.time = Clock::Manual(ms.clone());
    w.read_clock();
    (w, ms)
}

/// One loop iteration at `now` (ms): completions, the connection timers and the handler's,
/// then the flush.
fn at<H: Handler>(w: &mut Worker<H, Fake>, ms: &Cell<u64>, now: u64) {
    ms.set(now);
    w.read_clock();
    turn(w);
    w.run_timers().unwrap();
    w.run_handler_timers().unwrap();
    turn(w);
}

/// Whether the worker closed `(slot, generation)`.
fn closed<H: Handler>(w: &Worker<H, Fake>, (slot, generation): (u32, u32)) -> bool {
    w.io.log.contains(&Op::Close(slot, generation))
}

/// Feeds the scripted completions and flushes, as one loop iteration does.
fn turn<H: Handler>(w: &mut Worker<H, Fake>) {
    while let Some(c) = w.io.next_completion() {
        w.on_completion(c).unwrap();
    }
    w.flush().unwrap();
    while let Some(c) = w.io.next_completion() {
        w.on_completion(c).unwrap();
    }
}

/// Accepts a connection (any descriptor stands for its socket); returns its key.
fn accept<H: Handler>(w: &mut Worker<H, Fake>) -> (u32, u32) {
    let fd = crate::runtime::sys::eventfd().unwrap();
    w.io.pending
        .push_back(Completion::Accepted { fd, more: true });
    turn(w);
    let Some(&Op::ArmRecv(slot, generation)) = w.io.log.last() else {
        panic!("no receive armed: {:?}", w.io.log);
    };
    (slot, generation)
}

/// Accepts a connection and upgrades it.
fn open_one<H: Handler>(w: &mut Worker<H, Fake>) -> (u32, u32) {
    let (slot, generation) = accept(w);
    w.io.recv(slot, generation, 0, REQUEST);
    turn(w);
    let sent = w.io.sent_to(slot, generation);
    assert!(
        sent.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&sent)
    );
    (slot, generation)
}

#[test]
fn a_receive_that_names_a_lent_buffer_fails_its_connection_and_only_that_one() {
    let mut w = worker();
    let a = open_one(&mut w);
    let b = open_one(&mut w);
    assert_eq!(w.counters.open.load(Ordering::Relaxed), 2);
    w.io.pending.push_back(Completion::RecvFault {
        slot: a.0,
        generation: a.1,
        bid: 3,
        more: true,
    });
    turn(&mut w);
    // Hard failure of that connection: its receive cancelled, its socket closed, its slot
    // freed; counted; the other connection untouched.
    assert!(w.io.log.contains(&Op::Cancel(a.0, a.1)), "{:?}", w.io.log);
    assert!(w.io.log.contains(&Op::Close(a.0, a.1)), "{:?}", w.io.log);
    assert!(w.slots.get_mut(a.0, a.1).is_none(), "slot freed");
    assert_eq!(w.counters.ring_faults.load(Ordering::Relaxed), 1);
    assert_eq!(w.counters.closed_abnormal.load(Ordering::Relaxed), 1);
    assert_eq!(w.counters.open.load(Ordering::Relaxed), 1);
    assert!(!w.io.log.contains(&Op::Close(b.0, b.1)));
    // The other one still echoes.
    let before = w.io.sent_to(b.0, b.1).len();
    w.io.recv(b.0, b.1, 1, &[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
    turn(&mut w);
    assert_eq!(&w.io.sent_to(b.0, b.1)[before..], &[0x81, 0x02, b'h', b'i']);
    assert_eq!(w.io.lent, 0, "every buffer recycled");
}

/// A client frame (masked), as the scripted backend delivers it.
fn client_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    encode_masked_frame(opcode, true, [7, 7, 7, 7], payload)
}

/// The heartbeat ping the server sends.
const PING: &[u8] = &[0x89, 0x00];

fn heartbeat_config() -> ServerConfig {
    ServerConfig {
        tick: Duration::from_millis(20),
        ping_interval: Some(Duration::from_millis(200)),
        pong_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    }
}

#[test]
fn a_silent_peer_is_pinged_at_the_interval_and_closed_at_the_pong_deadline() {
    let (mut w, ms) = worker_with(heartbeat_config(), Echo);
    let c = open_one(&mut w);
    let sent = w.io.sent_to(c.0, c.1).len();
    at(&mut w, &ms, 199);
    assert_eq!(w.io.sent_to(c.0, c.1).len(), sent, "no ping before 200 ms");
    at(&mut w, &ms, 200);
    assert_eq!(&w.io.sent_to(c.0, c.1)[sent..], PING, "the ping, at 200 ms");
    at(&mut w, &ms, 399);
    assert!(!closed(&w, c), "still open at 399 ms");
    at(&mut w, &ms, 400);
    assert!(closed(&w, c), "closed at the pong deadline, 400 ms");
    let counters = &w.counters;
    assert_eq!(counters.pings_sent.load(Ordering::Relaxed), 1);
    assert_eq!(counters.pong_timeouts.load(Ordering::Relaxed), 1);
    assert_eq!(counters.closed_abnormal.load(Ordering::Relaxed), 1);
    assert!(w.slots.get_mut(c.0, c.1).is_none(), "freed");
    assert_eq!(w.wheel.len(), 0, "its timer is gone too");
}

#[test]
fn any_traffic_moves_the_heartbeat_and_a_pong_answers_the_ping() {
    let (mut w, ms) = worker_with(heartbeat_config(), Echo);
    let c = open_one(&mut w);
    at(&mut w, &ms, 200);
    assert_eq!(w.counters.pings_sent.load(Ordering::Relaxed), 1);
    // The pong at 300 ms: the next ping is due 200 ms after it, and nothing closes at 400.
    w.io.recv(c.0, c.1, 1, &client_frame(OpCode::Pong, b""));
    at(&mut w, &ms, 300);
    at(&mut w, &ms, 499);
    assert_eq!(w.counters.pings_sent.load(Ordering::Relaxed), 1);
    at(&mut w, &ms, 500);
    assert_eq!(w.counters.pings_sent.load(Ordering::Relaxed), 2);
    // A message counts as much as a pong. Between two ticks (650 ms, ticks of 20): the ping
    // comes within the tick before 200 ms after it (a probe, never late), at 840 ms.
    w.io.recv(c.0, c.1, 1, &client_frame(OpCode::Text, b"hi"));
    at(&mut w, &ms, 650);
    at(&mut w, &ms, 829);
    assert_eq!(
        w.counters.pings_sent.load(Ordering::Relaxed),
        2,
        "not more than a tick early"
    );
    assert!(!closed(&w, c));
    at(&mut w, &ms, 850);
    assert_eq!(
        w.counters.pings_sent.load(Ordering::Relaxed),
        3,
        "never late"
    );
    // The pong deadline counts from the ping (840 ms), not from the message: the whole 200 ms.
    at(&mut w, &ms, 1039);
    assert!(!closed(&w, c), "open until 200 ms after the ping");
    at(&mut w, &ms, 1040);
    assert!(closed(&w, c), "closed 200 ms after the ping");
    assert_eq!(w.counters.pong_timeouts.load(Ordering::Relaxed), 1);
}

#[test]
fn an_unfinished_handshake_is_closed_at_its_deadline_however_it_trickles() {
    let cfg = ServerConfig {
        tick: Duration::from_millis(20),
        handshake_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let (mut w, ms) = worker_with(cfg, Echo);
    let c = accept(&mut w);
    // A byte every 50 ms: the deadline counts from the accept, not from the last byte.
    for (i, t) in (0..6).map(|i| (i, i as u64 * 50)) {
        w.io.recv(c.0, c.1, 1, &REQUEST[i..=i]);
        at(&mut w, &ms, t);
    }
    at(&mut w, &ms, 299);
    assert!(!closed(&w, c), "still open at 299 ms");
    at(&mut w, &ms, 300);
    assert!(closed(&w, c), "closed at 300 ms");
    assert_eq!(w.counters.handshake_timeouts.load(Ordering::Relaxed), 1);
    assert!(w.io.sent_to(c.0, c.1).is_empty(), "nothing was said to it");
}

#[test]
fn the_idle_timeout_counts_messages_not_heartbeats() {
    let cfg = ServerConfig {
        tick: Duration::from_millis(20),
        idle_timeout: Some(Duration::from_millis(500)),
        text_heartbeat: Some(("ping".into(), "pong".into())),
        ..ServerConfig::default()
    };
    let (mut w, ms) = worker_with(cfg, Echo);
    let c = open_one(&mut w);
    w.io.recv(c.0, c.1, 1, &client_frame(OpCode::Text, b"hello"));
    at(&mut w, &ms, 100); // a message at 100 ms: idle until 600
    for t in [200, 300, 400, 500] {
        w.io.recv(c.0, c.1, 1, &client_frame(OpCode::Text, b"ping"));
        w.io.recv(c.0, c.1, 2, &client_frame(OpCode::Ping, b""));
        at(&mut w, &ms, t);
    }
    at(&mut w, &ms, 599);
    let sent = w.io.sent_to(c.0, c.1);
    assert!(!sent.ends_with(&[0x88, 0x0e, 0x03, 0xe8]), "no close yet");
    at(&mut w, &ms, 600);
    // A close frame with 1000 and its reason.
    let sent = w.io.sent_to(c.0, c.1);
    let close = [&[0x88, 14, 0x03, 0xe8][..], b"idle timeout"].concat();
    assert!(sent.ends_with(&close), "{sent:?}");
    assert_eq!(w.counters.idle_timeouts.load(Ordering::Relaxed), 1);
    assert_eq!(w.counters.text_heartbeats.load(Ordering::Relaxed), 4);
}

/// Echoes, and closes (1000) on "bye".
#[derive(Clone)]
struct Closer;

impl Handler for Closer {
    type State = ();
    fn upgrade<'r>(&mut self, _req: &Upgrade<'_, 'r>) -> Decision<'r, ()> {
        Decision::Accept {
            state: (),
            protocol: None,
        }
    }
    fn message(&mut self, conn: &mut Conn<'_, ()>, msg: Message<'_>) {
        if msg == Message::Text("bye") {
            conn.close(CloseCode::NORMAL, "");
        }
    }
}

#[test]
fn our_close_waits_for_the_reply_until_the_close_timeout() {
    let mut cfg = heartbeat_config();
    cfg.ping_interval = None;
    cfg.proto.close_timeout = Duration::from_millis(300);
    let (mut w, ms) = worker_with(cfg, Closer);
    let c = open_one(&mut w);
    w.io.recv(c.0, c.1, 1, &client_frame(OpCode::Text, b"bye"));
    at(&mut w, &ms, 100); // our close goes out at 100 ms: the reply is due by 400
    assert!(w.io.sent_to(c.0, c.1).ends_with(&[0x88, 0x02, 0x03, 0xe8]));
    at(&mut w, &ms, 399);
    assert!(!closed(&w, c), "still waiting at 399 ms");
    at(&mut w, &ms, 400);
    assert!(closed(&w, c), "given up at 400 ms");
    assert_eq!(w.counters.close_timeouts.load(Ordering::Relaxed), 1);
}

#[test]
fn after_a_clean_close_the_socket_lingers_for_the_peers_eof_at_most_linger() {
    let mut cfg = heartbeat_config();
    cfg.ping_interval = None;
    cfg.linger = Duration::from_millis(300);
    let (mut w, ms) = worker_with(cfg, Closer);
    let c = open_one(&mut w);
    w.io.recv(c.0, c.1, 1, &client_frame(OpCode::Text, b"bye"));
    at(&mut w, &ms, 100);
    // The peer's reply completes the handshake at 120 ms; our side is shut down and lingers.
    w.io.recv(c.0, c.1, 1, &client_frame(OpCode::Close, &[0x03, 0xe8]));
    at(&mut w, &ms, 120);
    // The same iteration's flush found the queue empty: our side is shut down at 120 ms.
    assert!(!closed(&w, c));
    at(&mut w, &ms, 419);
    assert!(!closed(&w, c), "lingering until 420 ms");
    at(&mut w, &ms, 420);
    assert!(closed(&w, c), "closed once the linger ran out");
    assert_eq!(w.counters.closed_clean.load(Ordering::Relaxed), 1);
}

#[test]
fn a_deadline_counted_from_between_two_ticks_is_never_early() {
    // Accepted at 19 ms (ticks of 20 ms): a 300 ms handshake deadline is 319 ms at the
    // earliest, and within a tick of it (the stamp is the accept's tick, rounded up).
    let cfg = ServerConfig {
        tick: Duration::from_millis(20),
        handshake_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let (mut w, ms) = worker_with(cfg, Echo);
    ms.set(19);
    w.read_clock();
    let c = accept(&mut w);
    at(&mut w, &ms, 318);
    assert!(!closed(&w, c), "not at 318 ms");
    at(&mut w, &ms, 319 + 20);
    assert!(closed(&w, c), "by 339 ms");
}

/// On "go", asks the topic's home for two joins with 10 KB preambles (the second while the
/// first is still queued).
#[derive(Clone)]
struct TwoJoins;

impl Handler for TwoJoins {
    type State = ();
    fn upgrade<'r>(&mut self, _req: &Upgrade<'_, 'r>) -> Decision<'r, ()> {
        Decision::Accept {
            state: (),
            protocol: None,
        }
    }
    fn message(&mut self, conn: &mut Conn<'_, ()>, msg: Message<'_>) {
        if msg == Message::Text("go") {
            conn.to_home("t", ());
        }
    }
    fn home(&mut self, home: &mut crate::server::Home<'_>, _data: Box<dyn std::any::Any + Send>) {
        let big = |c: u8| Frame::binary(&[c; 10_000]);
        let from = home.from();
        home.join(
            from,
            vec![big(b'a'), big(b'b'), big(b'c')],
            vec![Frame::text("no room 1")],
        );
        home.join(from, vec![big(b'd')], vec![Frame::text("no room 2")]);
    }
}

#[test]
fn a_join_preamble_goes_whole_above_the_limit_or_its_fallback_goes_instead() {
    let mut cfg = ServerConfig {
        max_outbound_bytes: 16 * 1024,
        ..ServerConfig::default()
    };
    cfg.outbound_low_water = 4 * 1024;
    let (mut w, _) = worker_with(cfg, TwoJoins);
    let c = open_one(&mut w);
    let before = w.io.sent_to(c.0, c.1).len();
    w.io.recv(c.0, c.1, 1, &client_frame(OpCode::Text, b"go"));
    turn(&mut w);
    let sent = w.io.sent_to(c.0, c.1)[before..].to_vec();
    // The first preamble (30 KB, the queue empty before it) went whole, past the 16 KiB limit;
    // the second found the queue over the limit: its fallback went instead, nothing of it.
    let count = |byte: u8| sent.iter().filter(|&&b| b == byte).count();
    assert_eq!(
        (count(b'a'), count(b'b'), count(b'c')),
        (10_000, 10_000, 10_000)
    );
    assert_eq!(count(b'd'), 0, "no part of the second preamble");
    let text = String::from_utf8_lossy(&sent);
    assert!(
        text.contains("no room 2") && !text.contains("no room 1"),
        "{}",
        sent.len()
    );
    assert_eq!(w.counters.home_fallbacks.load(Ordering::Relaxed), 1);
    assert_eq!(w.counters.home_requests.load(Ordering::Relaxed), 1);
    assert_eq!(
        w.topics.subscribers(&Topic::from("t")).count(),
        1,
        "subscribed all the same"
    );
}

#[test]
fn the_chat_refuses_history_to_a_connection_that_has_not_read_what_it_was_sent() {
    use crate::app::chat::{Chat, ChatConfig};
    let mut chat = ChatConfig::default();
    chat.history.busy_bytes = 10;
    let (mut w, _) = worker_with(ServerConfig::default(), Chat::new(chat));
    let c = open_one(&mut w);
    let join = br#"{"op":"join","room":"r"}"#;
    w.io.recv(c.0, c.1, 1, &client_frame(OpCode::Text, join));
    turn(&mut w);
    let answered = w.io.sent_to(c.0, c.1).len();
    // One read: a bad request (its error is queued at once, before the loop's flush), then a
    // history request, which finds more than 10 bytes queued.
    let mut both = client_frame(OpCode::Text, b"not json");
    both.extend(client_frame(
        OpCode::Text,
        br#"{"op":"history","room":"r"}"#,
    ));
    w.io.recv(c.0, c.1, 1, &both);
    turn(&mut w);
    let sent = String::from_utf8_lossy(&w.io.sent_to(c.0, c.1)[answered..]).into_owned();
    assert!(sent.contains(r#""code":"bad_json""#), "{sent}");
    assert!(sent.contains(r#""code":"busy""#), "{sent}");
    assert!(!sent.contains(r#""op":"history""#), "no page built: {sent}");
    // Read (the queue is empty again): the page comes.
    w.io.recv(
        c.0,
        c.1,
        1,
        &client_frame(OpCode::Text, br#"{"op":"history","room":"r"}"#),
    );
    turn(&mut w);
    let sent = String::from_utf8_lossy(&w.io.sent_to(c.0, c.1)[answered..]).into_owned();
    assert!(sent.contains(r#""op":"history""#), "{sent}");
}

/// Joins the connection to "t" on "join"; on "runs" publishes two runs (three 10 KB frames,
/// then one); on "over" queues a 30 KB preamble (past the limit) and then a run; on "one"
/// publishes three 10 KB frames one by one.
#[derive(Clone)]
struct Runs;

impl Handler for Runs {
    type State = ();
    fn upgrade<'r>(&mut self, _req: &Upgrade<'_, 'r>) -> Decision<'r, ()> {
        Decision::Accept {
            state: (),
            protocol: None,
        }
    }
    fn message(&mut self, conn: &mut Conn<'_, ()>, msg: Message<'_>) {
        if let Message::Text(t) = msg {
            conn.to_home("t", t.to_owned());
        }
    }
    fn home(&mut self, home: &mut crate::server::Home<'_>, data: Box<dyn std::any::Any + Send>) {
        let big = |c: u8| Frame::binary(&[c; 10_000]);
        let from = home.from();
        match data.downcast::<String>().map(|s| *s).as_deref() {
            Ok("join") => home.join(from, vec![Frame::text("joined")], Vec::new()),
            Ok("runs") => {
                home.publish_run(vec![big(b'a'), big(b'b'), big(b'c')]);
                home.publish_run(vec![big(b'd')]);
            }
            Ok("over") => {
                home.join(from, vec![big(b'e'), big(b'f'), big(b'g')], Vec::new());
                home.publish_run(vec![big(b'h')]);
            }
            Ok("one") => {
                for c in [b'i', b'j', b'k'] {
                    home.publish(big(c));
                }
            }
            _ => {}
        }
    }
}

#[test]
fn a_run_goes_whole_above_the_limit_or_not_at_all_where_single_publications_are_cut() {
    let mut cfg = ServerConfig {
        max_outbound_bytes: 16 * 1024,
        ..ServerConfig::default()
    };
    cfg.outbound_low_water = 4 * 1024;
    let (mut w, _) = worker_with(cfg, Runs);
    let c = open_one(&mut w);
    w.io.recv(c.0, c.1, 1, &client_frame(OpCode::Text, b"join"));
    turn(&mut w);
    let step = |w: &mut Worker<Runs, Fake>, what: &[u8], bytes: &[u8]| {
        let before = w.io.sent_to(c.0, c.1).len();
        w.io.recv(c.0, c.1, 1, &client_frame(OpCode::Text, what));
        turn(w);
        let sent = w.io.sent_to(c.0, c.1)[before..].to_vec();
        bytes
            .iter()
            .map(|&b| sent.iter().filter(|&&x| x == b).count())
            .collect::<Vec<_>>()
    };
    // Two runs in one iteration: the first (30 KB, the queue empty before it) goes whole past
    // the 16 KiB limit, and the second goes with it (a burst that came in two pieces).
    assert_eq!(step(&mut w, b"runs", b"abcd"), [10_000; 4]);
    assert_eq!(w.counters.dropped.load(Ordering::Relaxed), 0);
    // A run that finds the queue over its limit (a preamble put it there): none of it.
    assert_eq!(step(&mut w, b"over", b"efgh"), [10_000, 10_000, 10_000, 0]);
    assert_eq!(w.counters.dropped.load(Ordering::Relaxed), 1);
    // The same frames published one by one: cut at the limit.
    assert_eq!(
        step(&mut w, b"one", b"ijk"),
        [10_000, 0, 0],
        "the second would pass the 16 KiB limit: cut there"
    );
}

#[test]
fn a_restart_closes_with_1012_and_lets_handshakes_under_way_finish_first() {
    let (mut w, ms) = worker_with(ServerConfig::default(), Echo);
    let open = open_one(&mut w);
    let mid_handshake = accept(&mut w);
    w.restart.store(true, Ordering::Relaxed);
    w.begin_shutdown().unwrap();
    at(&mut w, &ms, 10);
    // The open connection is told to come back: 1012.
    let sent = w.io.sent_to(open.0, open.1);
    let restart = [&[0x88, 0x13, 0x03, 0xf4][..], b"server restarting"].concat();
    assert!(sent.ends_with(&restart), "{sent:?}");
    // The one in its handshake is not dropped: its request is answered, then 1012.
    assert!(!closed(&w, mid_handshake));
    assert!(w.io.sent_to(mid_handshake.0, mid_handshake.1).is_empty());
    // One accepted once accepting had stopped is served the same way.
    let late = accept(&mut w);
    assert!(!closed(&w, late));
    for c in [mid_handshake, late] {
        w.io.recv(c.0, c.1, 2, REQUEST);
        at(&mut w, &ms, 20);
        let sent = w.io.sent_to(c.0, c.1);
        assert!(
            sent.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&sent)
        );
        assert!(
            sent.ends_with(&restart),
            "{}",
            String::from_utf8_lossy(&sent)
        );
    }
}

#[test]
fn a_plain_shutdown_closes_with_1001_and_drops_handshakes_under_way() {
    let (mut w, ms) = worker_with(ServerConfig::default(), Echo);
    let open = open_one(&mut w);
    let mid_handshake = accept(&mut w);
    w.begin_shutdown().unwrap();
    at(&mut w, &ms, 10);
    let sent = w.io.sent_to(open.0, open.1);
    let going_away = [&[0x88, 0x16, 0x03, 0xe9][..], b"server shutting down"].concat();
    assert!(sent.ends_with(&going_away), "{sent:?}");
    assert!(closed(&w, mid_handshake));
}
