//! The `ringws` binary: signals, logging, and starting the server with the application the
//! command line chose. The flags and their mapping onto the library's configuration are in
//! [`cli`]; `--config FILE` in [`config_file`]. The server and its applications live in the
//! library.

mod cli;
mod config_file;

use std::process::ExitCode;

use clap::Parser;
use ringws::app::chat::rules::Rules;
use ringws::app::chat::{Chat, api};
use ringws::app::echo::Echo;
use ringws::broker::redis::Redis;
use ringws::broker::{Broker, BrokerConfig, BrokerRelay, LogConfig};
use ringws::server::{Handler, Server, startup_warnings};

use cli::{Cli, Mode, redact};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Attaches the `--broker` to a bound server (a URL that parsed when the flags were read).
fn with_broker<H: Handler>(
    server: std::io::Result<Server<H>>,
    url: Option<&str>,
    cfg: Option<BrokerConfig>,
) -> std::io::Result<Server<H>> {
    let server = server?;
    let (Some(url), Some(cfg)) = (url, cfg) else {
        return Ok(server);
    };
    let redis = Redis::new(url)
        .map_err(|e| std::io::Error::other(format!("--broker {}: {e}", redact(url))))?;
    tracing::info!(
        "rooms shared through {} as node {} (channels {}*)",
        redis.describe(),
        cfg.node,
        cfg.channel_prefix
    );
    Ok(server.with_relay(BrokerRelay::new(redis, cfg)))
}

fn main() -> ExitCode {
    // Signals first: a SIGTERM at any later moment (even before the workers run) is a graceful
    // stop with exit code 0, never the default kill.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, stop.clone()) {
            eprintln!("ringws: cannot handle signal {signal}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let (cli, namespaces) = match config_file::args_with_config_file() {
        Ok(options) => (Cli::parse_from(options.args), options.namespaces),
        Err(e) => {
            eprintln!("ringws: {e}");
            return ExitCode::from(2);
        }
    };
    let rules = match Rules::new(namespaces) {
        Ok(rules) => rules,
        Err(e) => {
            eprintln!("ringws: --config: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Err(e)) = cli.broker.as_deref().map(cli::check_broker_url) {
        eprintln!("ringws: {e}");
        return ExitCode::from(2);
    }
    if !cli.huge_pages {
        // Before the workers allocate: their memory is then counted in 4 KiB pages.
        if let Err(e) = ringws::server::disable_huge_pages() {
            eprintln!("ringws: cannot turn transparent huge pages off ({e}); continuing");
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .init();
    let cfg = cli.config();
    for warning in startup_warnings(&cfg) {
        tracing::warn!("{warning}");
    }
    let (workers, bufs, buf_size) = (cfg.workers, cfg.uring.buf_entries, cfg.uring.buf_size);
    let summary = format!(
        "ringws {} ({:?} mode) listening on ws://{{addr}}/ with {workers} workers, {bufs} x {buf_size} B receive buffers each, permessage-deflate {:?}",
        env!("CARGO_PKG_VERSION"),
        cli.mode,
        cfg.compression.mode
    );
    let mut broker = cli.broker_config();
    let url = cli.broker.as_deref();
    match cli.mode {
        Mode::Echo => {
            let server = with_broker(Server::bind(cfg, Echo), url, broker);
            serve(server, stop, &summary)
        }
        Mode::Chat => {
            let mut chat_cfg = match cli.chat_config(&cfg) {
                Ok(chat_cfg) => chat_cfg,
                Err(e) => {
                    eprintln!("ringws: {e}");
                    return ExitCode::from(2);
                }
            };
            chat_cfg.rules = rules;
            chat_cfg.node = broker.as_ref().map(|b| b.node.to_string());
            if let Some(broker) = &mut broker {
                // Rooms have one order and a history across the servers: the broker's logs,
                // bounded as the history is.
                broker.log = Some(LogConfig {
                    max_entries: chat_cfg.history.max_messages,
                    max_age: chat_cfg.history.max_age,
                    ..LogConfig::default()
                });
                chat_cfg.log = true;
                // Presence lists and join/leave events cover every server.
                broker.presence.get_or_insert_with(Default::default);
                chat_cfg.shared_presence = true;
            }
            let chat = Chat::new(chat_cfg);
            let attach = chat.clone();
            let server = with_broker(Server::bind(cfg, chat), url, broker);
            // Attached before the workers start: the first connection finds the
            // application connected (its publisher, and every family on /metrics).
            if let Ok(server) = &server {
                attach.attach(server.publisher(), server.metrics());
            }
            let _api = match cli.api_config().map(|cfg| api::serve(attach.clone(), cfg)) {
                None => None,
                Some(Ok(api)) => {
                    tracing::info!("backend API on http://{}/api/", api.local_addr());
                    Some(api)
                }
                Some(Err(e)) => {
                    eprintln!("ringws: --api-listen: {e}");
                    return ExitCode::FAILURE;
                }
            };
            serve(server, stop, &summary)
        }
    }
}

/// Starts a bound server, runs until SIGTERM or SIGINT, and stops it gracefully.
fn serve<H: Handler>(
    server: std::io::Result<Server<H>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    summary: &str,
) -> ExitCode {
    let server = match server {
        Ok(server) => server,
        Err(e) => {
            eprintln!("ringws: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = server.local_addr();
    let handle = match server.with_stop_flag(stop).start() {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("ringws: {e}");
            return ExitCode::FAILURE;
        }
    };
    match handle.ring_flags() {
        Some(f) => tracing::info!(
            "backend io_uring: single_issuer={} defer_taskrun={} coop_taskrun={} submit_all={} sq={} cq={} incremental_bufs={}",
            f.single_issuer,
            f.defer_taskrun,
            f.coop_taskrun,
            f.submit_all,
            f.sq_entries,
            f.cq_entries,
            f.incremental_bufs
        ),
        None => tracing::info!("backend epoll"),
    }
    tracing::info!("{}", summary.replace("{addr}", &addr.to_string()));
    match handle.join() {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ringws: worker failed: {e}");
            ExitCode::FAILURE
        }
    }
}
