//! Unit tests of the worker over the scripted backend (`server::fake`).

use super::*;
use crate::app::echo::Echo;
use crate::server::fake::{Fake, Op};

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

fn worker() -> Worker<Echo, Fake> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let shared = Shared {
        cfg: Arc::new(ServerConfig::default()),
        stop: Arc::new(AtomicBool::new(false)),
        hub: Arc::new(Hub::new(1).unwrap()),
        relay: None,
    };
    let counters = Arc::new(Counters::default());
    Worker::new(Fake::default(), listener, Echo, shared, counters, 0)
}

/// Feeds the scripted completions and flushes, as one loop iteration does.
fn turn(w: &mut Worker<Echo, Fake>) {
    while let Some(c) = w.io.next_completion() {
        w.on_completion(c).unwrap();
    }
    w.flush().unwrap();
    while let Some(c) = w.io.next_completion() {
        w.on_completion(c).unwrap();
    }
}

/// Accepts a connection (any descriptor stands for its socket) and upgrades it.
fn open_one(w: &mut Worker<Echo, Fake>) -> (u32, u32) {
    let fd = crate::runtime::sys::eventfd().unwrap();
    w.io.pending
        .push_back(Completion::Accepted { fd, more: true });
    turn(w);
    let Some(&Op::ArmRecv(slot, generation)) = w.io.log.last() else {
        panic!("no receive armed: {:?}", w.io.log);
    };
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
