//! The `ringws` binary.
//!
//! The server itself (io_uring workers, CLI, echo mode) is the next piece of work; until it lands
//! this binary only says so, so that nobody mistakes it for a server that runs.

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    eprintln!(
        "ringws {}: the server is not built yet; this release is the protocol core \
         (library). See README.md, section Status.",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
