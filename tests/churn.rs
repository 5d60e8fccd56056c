//! Thousands of connects and abrupt disconnects: every slot, buffer, queued byte and file
//! descriptor comes back. Alone in its test binary so that the fd count is not disturbed by
//! other tests running in parallel.

mod support;

use support::{Client, TestServer, open_fds};

#[test]
fn abrupt_disconnects_free_everything() {
    let server = TestServer::echo();
    let fds_before = open_fds();
    for round in 0..10 {
        let mut clients: Vec<Client> = (0..200).map(|_| Client::connect(server.addr)).collect();
        for c in clients.iter_mut().step_by(2) {
            c.send_text("x"); // half of them have traffic in flight when they vanish
        }
        drop(clients);
        server.wait_counters(&format!("round {round} freed"), |c| c.connections == 0);
    }
    let counters = server.counters();
    assert_eq!(counters.upgraded, 2000);
    assert_eq!(
        (counters.open, counters.bytes_queued, counters.buffers_lent),
        (0, 0, 0)
    );
    // Every server-side socket was really closed (client sockets are closed by drop; a slot is
    // freed only once its close completed).
    assert!(
        open_fds() <= fds_before + 2,
        "fds before {fds_before}, after {}",
        open_fds()
    );
}
