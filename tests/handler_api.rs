//! The handler API beyond echo: messages to one connection by its id (from a handler on any
//! worker, and from outside through the publisher), timers a handler sets (deferred work, order,
//! dropped with their connection, bounded), and the peer's address at upgrade. Both backends
//! (`RINGWS_TEST_IO`).

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringws::server::{Conn, ConnId, Decision, Frame, Handler, Message, ServerConfig, Upgrade};
use support::{Client, Got, TestServer, config};

/// A scripted handler: `id` answers the connection's id; `to <id> <text>` sends `text` to that
/// connection; `in <ms> <token>` sets a timer whose firing answers `timer <token>`.
#[derive(Clone, Default)]
struct Scripted {
    /// The peer address each upgrade saw.
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    /// Timers that reached the handler.
    fired: Arc<AtomicUsize>,
}

impl Handler for Scripted {
    type State = ();

    fn upgrade<'r>(&mut self, req: &Upgrade<'_, 'r>) -> Decision<'r, ()> {
        match req.peer_addr() {
            Ok(addr) => {
                self.peers.lock().unwrap().push(addr);
                Decision::Accept {
                    state: (),
                    protocol: None,
                }
            }
            Err(_) => Decision::Reject {
                status: 500,
                reason: "no peer address",
            },
        }
    }

    fn message(&mut self, conn: &mut Conn<'_, ()>, msg: Message<'_>) {
        let Message::Text(text) = msg else { return };
        let words: Vec<&str> = text.splitn(3, ' ').collect();
        match words[..] {
            ["id"] => {
                let id = conn.id().to_string();
                conn.send_text(&id);
            }
            ["to", id, text] => {
                let to = parse_id(id);
                conn.send_to(to, Frame::text(text));
            }
            ["in", ms, token] => {
                let after = Duration::from_millis(ms.parse().unwrap());
                conn.set_timer(after, token.parse().unwrap());
            }
            _ => {}
        }
    }

    fn timer(&mut self, conn: &mut Conn<'_, ()>, token: u64) {
        self.fired.fetch_add(1, Ordering::SeqCst);
        conn.send_text(&format!("timer {token}"));
    }
}

/// An id as `ConnId` displays itself.
fn parse_id(s: &str) -> ConnId {
    s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn text(c: &mut Client) -> String {
    loop {
        match c.next() {
            Got::Text(t) => return t,
            Got::Ping(_) | Got::Pong(_) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

fn id_of(c: &mut Client) -> ConnId {
    c.send_text("id");
    parse_id(&text(c))
}

#[test]
fn a_connection_reaches_another_by_id_on_either_worker_and_from_outside() {
    let server = TestServer::start(config(), Scripted::default());
    // Enough clients that both workers have some (the kernel spreads them by hash).
    let mut clients: Vec<(Client, ConnId)> = (0..12)
        .map(|_| {
            let mut c = Client::connect(server.addr);
            let id = id_of(&mut c);
            (c, id)
        })
        .collect();
    let workers: std::collections::HashSet<usize> =
        clients.iter().map(|(_, id)| id.worker()).collect();
    assert_eq!(workers.len(), 2, "both workers have connections");
    let (last, first) = (clients.len() - 1, 0);
    // Every pair in turn: from each connection to the next, whichever worker each is on.
    for i in 0..clients.len() {
        let j = if i == last { first } else { i + 1 };
        let to = clients[j].1;
        clients[i].0.send_text(&format!("to {to} from {i}"));
        assert_eq!(text(&mut clients[j].0), format!("from {i}"));
    }
    // From outside the workers.
    let publisher = server.publisher();
    for (c, id) in clients.iter_mut() {
        publisher.send_to(*id, Frame::text(&format!("for {id}")));
        assert_eq!(text(c), format!("for {id}"));
    }
    // To a connection that is gone: nothing happens, to anyone.
    let (mut gone, gone_id) = clients.pop().unwrap();
    gone.send_close(1000, "");
    gone.expect_close(1000);
    server.wait_counters("the close", |c| c.open == clients.len() as i64);
    clients[0].0.send_text(&format!("to {gone_id} lost"));
    publisher.send_to(gone_id, Frame::text("lost too"));
    let (first_client, _) = &mut clients[0];
    first_client.send_text("id");
    assert!(
        !text(first_client).contains("lost"),
        "the next thing it hears is its id"
    );
    server.shutdown();
}

#[test]
fn timers_fire_in_order_run_deferred_work_and_die_with_their_connection() {
    let handler = Scripted::default();
    let server = TestServer::start(config(), handler.clone());
    let mut c = Client::connect(server.addr);
    // Set in this order; due in another: they fire by due time.
    c.send_text("in 60 3");
    c.send_text("in 20 2");
    c.send_text("in 0 1"); // deferred: the next loop iteration
    assert_eq!(text(&mut c), "timer 1");
    assert_eq!(text(&mut c), "timer 2");
    assert_eq!(text(&mut c), "timer 3");
    server.wait_counters("no timer left", |c| c.handler_timers == 0);
    // A connection that closes before its timer: the timer is dropped, nothing fires.
    let mut short = Client::connect(server.addr);
    short.send_text("in 100 9");
    server.wait_counters("the timer set", |c| c.handler_timers == 1);
    short.send_close(1000, "");
    short.expect_close(1000);
    server.wait_counters("the timer gone", |c| c.handler_timers == 0);
    assert_eq!(
        handler.fired.load(Ordering::SeqCst),
        3,
        "the closed one's never ran"
    );
    assert_eq!(server.counters().open, 1);
    server.shutdown();
}

#[test]
fn a_worker_holds_at_most_max_handler_timers() {
    let cfg = ServerConfig {
        workers: 1,
        max_handler_timers: 2,
        ..config()
    };
    let server = TestServer::start(cfg, Scripted::default());
    let mut c = Client::connect(server.addr);
    for token in 1..=3 {
        c.send_text(&format!("in 200 {token}"));
    }
    server.wait_counters("the third refused", |c| c.handler_timers_refused == 1);
    assert_eq!(text(&mut c), "timer 1");
    assert_eq!(text(&mut c), "timer 2");
    // Room again once they fired.
    c.send_text("in 0 4");
    assert_eq!(text(&mut c), "timer 4");
    server.shutdown();
}

#[test]
fn the_upgrade_sees_the_peers_address() {
    let handler = Scripted::default();
    let server = TestServer::start(config(), handler.clone());
    let c = Client::connect(server.addr);
    let mine = c.stream.local_addr().unwrap();
    server.wait_counters("the upgrade", |c| c.open == 1);
    assert_eq!(handler.peers.lock().unwrap().as_slice(), [mine]);
    server.shutdown();
}
