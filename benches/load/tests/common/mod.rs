//! Helpers shared by the load tool's integration tests: the backend under test, an echo
//! server, the load tool's command.

use std::process::Command;

use ringws::app::echo::Echo;
use ringws::server::{IoChoice, Server, ServerConfig};

/// The backend under test: `RINGWS_TEST_IO` (`epoll` or `uring`), as the server's own
/// integration tests choose it.
pub fn io() -> IoChoice {
    match std::env::var("RINGWS_TEST_IO").as_deref() {
        Ok("epoll") => IoChoice::Epoll,
        Ok("uring") => IoChoice::Uring,
        _ => IoChoice::Auto,
    }
}

/// An echo server with one worker on a free loopback port, on the backend under test.
pub fn echo_server() -> (std::net::SocketAddr, ringws::server::ServerHandle) {
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        io: io(),
        ..ServerConfig::default()
    };
    let server = Server::bind(cfg, Echo).expect("bind");
    let addr = server.local_addr();
    (addr, server.start().expect("start"))
}

/// Stops the server; a worker error fails the test.
pub fn stop(handle: ringws::server::ServerHandle) {
    handle.shutdown();
    handle.join().expect("the server stops cleanly");
}

/// The load tool's binary, through `RINGWS_TEST_RUNNER` when set (e.g. `qemu-aarch64 -L
/// /usr/aarch64-linux-gnu` in `tests/aarch64.sh`: a cross-built binary cannot run directly).
pub fn load_tool() -> Command {
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
