//! `ringws-floor`: the floor of the benchmark tables, a raw TCP echo on ringws's own I/O loop
//! (see `ringws::server::floor`), or with `--fanout` the floor of the broadcast table (the chat
//! protocol's join/send subset, each publication written as one shared frame to every member).
//! Runs until killed.
//!
//! ```text
//! ringws-floor --listen 127.0.0.1:9001 [--io auto|io_uring|epoll] [--fanout]
//! ```

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicBool;

use clap::Parser;
use ringws::server::{IoChoice, UringConfig, floor};

#[derive(Parser, Debug)]
#[command(
    name = "ringws-floor",
    version,
    about = "Raw echo on ringws's I/O loop (the benchmarks' floor)"
)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// The backend: `io_uring`, `epoll`, or `auto` (io_uring where the kernel has it).
    #[arg(long, default_value = "auto", value_parser = ["auto", "io_uring", "epoll"])]
    io: String,
    /// Instead of echoing: `join` and `send` of the chat protocol, each `send` written to every
    /// connection that joined its room (the floor of `benches/broadcast.sh`).
    #[arg(long)]
    fanout: bool,
}

fn main() {
    let args = Args::parse();
    let io = match args.io.as_str() {
        "io_uring" => IoChoice::Uring,
        "epoll" => IoChoice::Epoll,
        _ => IoChoice::Auto,
    };
    let served = TcpListener::bind(args.listen).and_then(|listener| {
        listener.set_nonblocking(true)?;
        let mode = if args.fanout {
            floor::Mode::Fanout
        } else {
            floor::Mode::Echo
        };
        floor::serve_mode(
            &listener,
            io,
            UringConfig::default(),
            mode,
            &AtomicBool::new(false),
        )
    });
    if let Err(e) = served {
        eprintln!("ringws-floor: {}: {e}", args.listen);
        std::process::exit(1);
    }
}
