//! Topics across workers: a publication reaches every subscriber on every worker, once, in
//! order per publisher; a slow subscriber loses messages by policy and delays nobody; closing
//! leaves every topic. Run on both backends (`RINGWS_TEST_IO=epoll` for the second).

mod support;

use std::collections::HashSet;

use ringws::server::Frame;
use ringws::server::Upgrade;
use ringws::server::{Conn, Decision, Handler, Message};
use support::{Client, Got, TestServer, config};

/// A tiny protocol: "join T", "leave T", "pub T text" (to everyone else), "all T text" (the
/// publisher included). Joining answers "joined T w" with the connection's worker.
#[derive(Clone, Default)]
struct Rooms;

impl Handler for Rooms {
    type State = ();

    fn upgrade<'r>(&mut self, _req: &Upgrade<'_, 'r>) -> Decision<'r, ()> {
        Decision::Accept {
            state: (),
            protocol: None,
        }
    }

    fn message(&mut self, conn: &mut Conn<'_, ()>, msg: Message<'_>) {
        let Message::Text(t) = msg else { return };
        let mut words = t.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("join"), Some(topic), None) => {
                conn.subscribe(topic);
                let worker = conn.id().to_string();
                let worker = worker.split('.').next().unwrap_or("?");
                conn.send_text(&format!("joined {topic} {worker}"));
            }
            (Some("leave"), Some(topic), None) => {
                conn.unsubscribe(topic);
                conn.send_text(&format!("left {topic}"));
            }
            (Some(op @ ("pub" | "all")), Some(topic), Some(text)) => {
                conn.publish(topic, Frame::text(text), op == "all");
            }
            _ => {
                conn.send_text("?");
            }
        }
    }
}

/// Joins `topic`; returns the worker the connection is on.
fn join(c: &mut Client, topic: &str) -> String {
    c.send_text(&format!("join {topic}"));
    match c.next() {
        Got::Text(t) => t
            .strip_prefix(&format!("joined {topic} "))
            .expect("joined")
            .to_owned(),
        other => panic!("expected joined, got {other:?}"),
    }
}

/// Subscribers of `topic` until there are at least `n` and both workers have one.
fn subscribers_on_both_workers(server: &TestServer, topic: &str, n: usize) -> Vec<Client> {
    let mut clients = Vec::new();
    let mut workers = HashSet::new();
    while clients.len() < n || workers.len() < 2 {
        assert!(clients.len() < 200, "SO_REUSEPORT never chose worker 1");
        let mut c = Client::connect(server.addr);
        workers.insert(join(&mut c, topic));
        clients.push(c);
    }
    clients
}

fn expect_text(c: &mut Client, want: &str) {
    match c.next() {
        Got::Text(t) => assert_eq!(t, want),
        other => panic!("expected {want:?}, got {other:?}"),
    }
}

#[test]
fn a_publication_reaches_every_subscriber_on_every_worker_in_order() {
    let server = TestServer::start(config(), Rooms);
    let mut subs = subscribers_on_both_workers(&server, "lobby", 6);
    let mut other_room = Client::connect(server.addr);
    join(&mut other_room, "elsewhere");
    let mut publisher = subs.pop().unwrap();
    for i in 0..50 {
        publisher.send_text(&format!("pub lobby m{i}"));
    }
    for c in &mut subs {
        for i in 0..50 {
            expect_text(c, &format!("m{i}"));
        }
    }
    // Not to the publisher ("to everyone else"), not to another room.
    publisher.send_text("all lobby last");
    for c in subs.iter_mut().chain([&mut publisher]) {
        expect_text(c, "last");
    }
    other_room.send_text("pub elsewhere hello");
    other_room.send_text("join probe");
    match other_room.next() {
        Got::Text(t) => assert!(t.starts_with("joined probe"), "{t}"),
        other => panic!("{other:?}"),
    }
    let counters = server.counters();
    assert_eq!(counters.published, 52);
    assert_eq!(
        counters.delivered,
        50 * subs.len() as i64 + subs.len() as i64 + 1
    );
}

#[test]
fn a_publication_is_timed_to_its_sends_on_every_worker_that_delivers_it() {
    let server = TestServer::start(config(), Rooms);
    let mut subs = subscribers_on_both_workers(&server, "lobby", 2);
    // One publication (the first of the publishing worker: always sampled), to everyone.
    subs[0].send_text("all lobby timed");
    for c in &mut subs {
        expect_text(c, "timed");
    }
    // Each worker records the sample once it has submitted the sends of the iteration that
    // queued it: both do, once each (nothing else was published).
    let count = |text: &str, w: usize| -> u64 {
        let prefix = format!("ringws_fanout_delay_seconds_count{{worker=\"{w}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix}in {text}"))
            .parse()
            .unwrap()
    };
    let start = std::time::Instant::now();
    let text = loop {
        let text = server.metrics().prometheus();
        if count(&text, 0) >= 1 && count(&text, 1) >= 1 {
            break text;
        }
        assert!(start.elapsed() < support::patience(), "{text}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert_eq!((count(&text, 0), count(&text, 1)), (1, 1), "{text}");
    for w in 0..2 {
        let prefix = format!("ringws_fanout_delay_seconds_sum{{worker=\"{w}\"}} ");
        let sum: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            sum > 0.0 && sum < support::patience().as_secs_f64(),
            "{sum}"
        );
    }
}

#[test]
fn a_publisher_handle_reaches_every_worker_from_another_thread() {
    let server = TestServer::start(config(), Rooms);
    let mut subs = subscribers_on_both_workers(&server, "news", 4);
    let publisher = server.publisher();
    std::thread::spawn(move || {
        for i in 0..20 {
            publisher.publish("news", Frame::text(&format!("n{i}")));
        }
    })
    .join()
    .unwrap();
    for c in &mut subs {
        for i in 0..20 {
            expect_text(c, &format!("n{i}"));
        }
    }
}

#[test]
fn leaving_and_closing_leave_the_topic() {
    let server = TestServer::start(config(), Rooms);
    let mut subs = subscribers_on_both_workers(&server, "t", 2);
    let mut leaver = subs.pop().unwrap();
    leaver.send_text("leave t");
    expect_text(&mut leaver, "left t");
    let mut publisher = Client::connect(server.addr);
    publisher.send_text("pub t after");
    for c in &mut subs {
        expect_text(c, "after");
    }
    // The leaver got nothing: its next message is the answer to a probe.
    leaver.send_text("nonsense");
    expect_text(&mut leaver, "?");
    drop(subs);
    drop(leaver);
    let c = server.wait_counters("every subscriber gone", |c| c.topics == 0);
    assert_eq!(c.topics, 0);
}

#[test]
fn a_slow_subscriber_loses_messages_and_delays_nobody() {
    let mut cfg = config();
    cfg.max_outbound_bytes = 64 * 1024;
    let server = TestServer::start(cfg, Rooms);
    let mut fast = subscribers_on_both_workers(&server, "feed", 3);
    let mut slow = Client::connect(server.addr);
    socket2::SockRef::from(&slow.stream)
        .set_recv_buffer_size(4096)
        .unwrap();
    join(&mut slow, "feed");
    let mut publisher = Client::connect(server.addr);
    let payload = "x".repeat(1000);
    let count = 10_000; // 10 MB: far past the slow subscriber's queue and socket buffers
    let mut got = vec![0usize; fast.len()];
    let mut sent = 0;
    // Publish in bursts, reading the fast subscribers as we go: they keep up, the slow one
    // never reads.
    while sent < count {
        for _ in 0..20 {
            publisher.send_text(&format!("pub feed {sent:05}{payload}"));
            sent += 1;
        }
        for (c, n) in fast.iter_mut().zip(&mut got) {
            while *n < sent {
                match c.next() {
                    Got::Text(t) => {
                        assert_eq!(&t[..5], format!("{:05}", *n), "in order, none lost");
                        *n += 1;
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }
    // The fast ones got everything (each read above would have timed out had the slow one held
    // the room up); how fast it goes is the broadcast benchmark's business.
    let c = server.counters();
    assert!(c.dropped > 0, "the slow subscriber lost messages: {c:#?}");
    // The slow subscriber's queue stays at the mark (64 KiB and one message); the fast ones'
    // hold at most a burst (20 KB) each.
    assert!(
        c.bytes_queued < 64 * 1024 + 1024 + 4 * 21 * 1024,
        "its queue stays bounded: {c:#?}"
    );
    // The publisher's own connection still answers at once.
    publisher.send_text("nonsense");
    expect_text(&mut publisher, "?");
}

#[test]
fn a_subscriber_whose_queue_broadcasts_fill_is_still_read() {
    // Broadcasts must not stop the server reading a subscriber: its requests (and heartbeats)
    // still get through, however busy its rooms. Frames of 1,009 bytes against a mark of 64 of
    // them, drop-oldest, and heartbeat pings pushed onto the full queue. A liveness check of the
    // whole server: the socket buffers absorb much of the flood here, so this test did not
    // reproduce the old pause rule by itself; the unit test
    // `broadcasts_never_pause_reading_and_a_paused_queue_takes_them_to_the_low_water_mark` in
    // src/server/conn.rs pins the rule.
    let frame_len = 4 + "00000".len() + 1000;
    let mut cfg = config();
    cfg.max_outbound_bytes = 64 * frame_len;
    cfg.backpressure = ringws::server::Backpressure::DropOldest;
    // A heartbeat ping pushed onto the full queue takes it past the mark.
    cfg.ping_interval = Some(std::time::Duration::from_millis(300));
    let server = TestServer::start(cfg, Rooms);
    let mut slow = Client::connect(server.addr);
    socket2::SockRef::from(&slow.stream)
        .set_recv_buffer_size(4096)
        .unwrap();
    join(&mut slow, "feed");
    let mut publisher = Client::connect(server.addr);
    join(&mut publisher, "back");
    let payload = "x".repeat(1000);
    for i in 0..10_000 {
        publisher.send_text(&format!("pub feed {i:05}{payload}"));
    }
    server.wait_counters("the slow subscriber's queue to fill", |c| c.dropped > 0);
    server.wait_counters("a heartbeat ping", |c| c.pings_sent > 0);
    for n in 0..3 {
        slow.send_text(&format!("pub back still here {n}"));
        // The publisher gets heartbeat pings too (300 ms here): skip them.
        loop {
            match publisher.next() {
                Got::Ping(_) => continue,
                Got::Text(t) => break assert_eq!(t, format!("still here {n}")),
                other => panic!("expected still here {n}, got {other:?}"),
            }
        }
    }
    assert_eq!(server.counters().reading_paused, 0);
}
