//! Graceful shutdown: stop accepting, close 1001 to every connection, wait for the replies up to
//! the deadline, then stop.

mod support;

use std::time::Duration;

use support::{Client, Got, TestServer};

#[test]
fn graceful_shutdown_sends_1001_and_waits_for_replies() {
    let server = TestServer::echo();
    let mut a = Client::connect(server.addr);
    let mut b = Client::connect(server.addr);
    server.wait_counters("both open", |c| c.open == 2);
    let t = std::thread::spawn(move || server.shutdown());
    for c in [&mut a, &mut b] {
        match c.next() {
            Got::Close(Some(1001), _) => {}
            other => panic!("expected close 1001, got {other:?}"),
        }
        c.send_close(1001, "");
        c.expect_eof();
    }
    let took = t.join().unwrap();
    assert!(
        took < Duration::from_secs(2),
        "shutdown waited for the deadline: {took:?}"
    );
}

#[test]
fn shutdown_closes_silent_peers_at_the_deadline() {
    let mut cfg = support::config();
    cfg.shutdown_timeout = Duration::from_millis(400);
    let server = TestServer::start(cfg, ringws::app::echo::Echo);
    let mut c = Client::connect(server.addr);
    server.wait_counters("open", |c| c.open == 1);
    let took = server.shutdown(); // the client never answers the close
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(matches!(c.next(), Got::Close(Some(1001), _)));
}
