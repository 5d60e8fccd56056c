//! The load tool against a real ringws server (in this process, on a free loopback port): its
//! flood mode (open loop, every echo checked) completes with no error of any kind. The backend
//! follows `RINGWS_TEST_IO` (`epoll` or `uring`), as the server's own integration tests do.

use std::process::Command;

use ringws::app::echo::Echo;
use ringws::server::{IoChoice, Server, ServerConfig};

#[test]
fn the_load_tools_flood_mode_gets_every_echo() {
    let io = match std::env::var("RINGWS_TEST_IO").as_deref() {
        Ok("epoll") => IoChoice::Epoll,
        Ok("uring") => IoChoice::Uring,
        _ => IoChoice::Auto,
    };
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        io,
        ..ServerConfig::default()
    };
    let server = Server::bind(cfg, Echo).expect("bind");
    let addr = server.local_addr();
    let handle = server.start().expect("start");
    let out = load_tool()
        .args(["flood", "--addr", &addr.to_string()])
        .args([
            "-c", "8", "--size", "1024", "--binary", "-d", "2", "-w", "0.5",
        ])
        .args(["--json", "--quiet"])
        .output()
        .expect("run ringws-load");
    handle.shutdown();
    handle.join().expect("the server stops cleanly");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    let errors = &report["errors"];
    assert!(
        errors.as_object().unwrap().values().all(|v| v == 0),
        "{errors}"
    );
    assert!(report["messages"].as_u64().unwrap_or(0) > 0, "{report}");
}

/// The load tool's binary, through `RINGWS_TEST_RUNNER` when set (e.g. `qemu-aarch64 -L
/// /usr/aarch64-linux-gnu` in `tests/aarch64.sh`: a cross-built binary cannot run directly).
fn load_tool() -> Command {
    let path = env!("CARGO_BIN_EXE_ringws-load");
    match std::env::var("RINGWS_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut words = runner.split_whitespace();
            let mut cmd = Command::new(words.next().unwrap_or_default());
            cmd.args(words).arg(path);
            cmd
        }
        _ => Command::new(path),
    }
}
