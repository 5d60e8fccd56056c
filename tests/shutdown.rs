//! Graceful shutdown: stop accepting, close 1001 to every connection, wait for the replies up to
//! the deadline, then stop.

mod support;

use std::time::Duration;

use support::{Client, Got, TestServer, patience};

#[test]
fn graceful_shutdown_sends_1001_and_waits_for_replies() {
    // A deadline far beyond any wait here: a shutdown that waited for it would be seen.
    let mut cfg = support::config();
    cfg.shutdown_timeout = patience() * 10;
    let server = TestServer::start(cfg.clone(), ringws::app::echo::Echo);
    let mut a = Client::connect(server.addr);
    let mut b = Client::connect(server.addr);
    server.wait_counters("both open", |c| c.open == 2);
    let metrics = server.metrics();
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
        took < cfg.shutdown_timeout,
        "shutdown waited for the deadline: {took:?}"
    );
    let counters = metrics
        .per_worker()
        .iter()
        .fold((0, 0), |(clean, abnormal), w| {
            (clean + w.closed_clean, abnormal + w.closed_abnormal)
        });
    assert_eq!(counters, (2, 0), "both ended with the close handshake");
}

#[test]
fn shutdown_closes_silent_peers_at_the_deadline() {
    let mut cfg = support::config();
    cfg.shutdown_timeout = Duration::from_millis(400);
    let server = TestServer::start(cfg, ringws::app::echo::Echo);
    let mut c = Client::connect(server.addr);
    server.wait_counters("open", |c| c.open == 1);
    let took = server.shutdown(); // the client never answers the close
    assert!(took >= Duration::from_millis(400), "early: {took:?}");
    assert!(
        took <= Duration::from_millis(400) + patience(),
        "late: {took:?}"
    );
    assert!(matches!(c.next(), Got::Close(Some(1001), _)));
}
