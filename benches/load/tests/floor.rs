//! The benchmarks' floor (`ringws::server::floor`, run as `ringws-floor`) with the load tool's
//! `--raw-echo`: ping-pong and pipelined runs get every echo back byte for byte, and the same
//! check against a real WebSocket server (whose frames are not the client's, masked) fails. The
//! fan-out floor (`--fanout`) with the load tool's broadcast: every publication reaches every
//! subscriber, in order.
//! The backend follows `RINGWS_TEST_IO` (`epoll` or `uring`), as the other tests do.

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{echo_server, io, load_tool, stop};
use ringws::server::{UringConfig, floor};

/// The floor on a free loopback port, on a thread of its own; stopped (and its error, if any,
/// failing the test) by [`Floor::stop`].
struct Floor {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Floor {
    fn start() -> Self {
        Floor::start_mode(floor::Mode::Echo)
    }

    fn start_mode(mode: floor::Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            floor::serve_mode(&listener, io(), UringConfig::default(), mode, &flag)
        });
        Floor { addr, stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .expect("the floor's thread")
            .expect("the floor stops cleanly");
    }
}

fn run(addr: std::net::SocketAddr, mode: &[&str]) -> (bool, serde_json::Value) {
    let out = load_tool()
        .args(mode)
        .args(["--addr", &addr.to_string(), "--raw-echo"])
        .args([
            "-c", "8", "--size", "100", "-d", "1", "-w", "0.2", "--json", "--quiet",
        ])
        .output()
        .expect("run ringws-load");
    let report = serde_json::from_slice(out.stdout.trim_ascii()).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    (out.status.success(), report)
}

#[test]
fn the_floor_echoes_every_frame_byte_for_byte() {
    let floor = Floor::start();
    for mode in [&["pingpong"][..], &["pipelined", "--depth", "8"]] {
        let (ok, report) = run(floor.addr, mode);
        assert!(ok, "{mode:?}: {report}");
        let errors = &report["errors"];
        assert_eq!(errors["total"], 0, "{mode:?}: {errors} {}", report["notes"]);
        assert!(report["messages"].as_u64().unwrap_or(0) > 100, "{report}");
        assert_eq!(report["open_at_end"], 8, "{report}");
    }
    floor.stop();
}

#[test]
fn raw_echo_checks_fail_against_a_websocket_server() {
    let (addr, handle) = echo_server();
    let (ok, report) = run(addr, &["pingpong"]);
    stop(handle);
    assert!(!ok, "{report}");
    assert_eq!(report["errors"]["mismatch"], 8, "{report}");
    assert_eq!(report["messages"], 0, "{report}");
}

#[test]
fn raw_echo_refuses_flood() {
    // Nothing listens there: the refusal comes before any connection.
    let out = load_tool()
        .args(["flood", "--addr", "127.0.0.1:9", "--raw-echo", "-d", "1"])
        .output()
        .expect("run ringws-load");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--raw-echo") && stderr.contains("flood"),
        "{stderr}"
    );
}

#[test]
fn the_fanout_floor_delivers_every_publication_to_every_member_in_order() {
    let floor = Floor::start_mode(floor::Mode::Fanout);
    let out = load_tool()
        .args(["broadcast", "-c", "50", "--rooms", "2", "--publishers", "2"])
        .args(["--rate", "100", "-d", "1", "-w", "0.2", "--drain", "2"])
        .args(["--addr", &floor.addr.to_string(), "--json", "--quiet"])
        .output()
        .expect("run ringws-load");
    let report: serde_json::Value = serde_json::from_slice(out.stdout.trim_ascii())
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    floor.stop();
    assert!(out.status.success(), "{report}");
    assert_eq!(report["errors"]["total"], 0, "{report}");
    for field in ["lost", "out_of_order", "joins_missing"] {
        assert_eq!(report[field], 0, "{field}: {report}");
    }
    // About 120 publications in 1.2 s, each to the 25 subscribers of its room.
    let deliveries = report["deliveries"].as_u64().unwrap_or(0);
    assert!(deliveries >= 25 * 50, "{deliveries}: {report}");
}
