//! The `ringws` binary: signals, logging, and starting the server with the application the
//! command line chose. The flags and their mapping onto the library's configuration are in
//! [`cli`]; `--config FILE` in [`config_file`]. The server and its applications live in the
//! library.

mod cli;
mod config_file;
mod logs;
mod notify;

use std::process::ExitCode;

use clap::Parser;
use ringws::app::chat::rules::Rules;
use ringws::app::chat::{Chat, api};
use ringws::app::echo::Echo;
use ringws::broker::redis::Redis;
use ringws::broker::{Broker, BrokerConfig, BrokerRelay, LogConfig};
use ringws::handoff::{Control, Listeners, TakeOver};
use ringws::server::{Handler, Server, ServerConfig, startup_warnings};

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
    if cli.print_example_config {
        print!("{}", cli::example_config());
        return ExitCode::SUCCESS;
    }
    if cli.print_man_page {
        use std::io::Write;
        return match std::io::stdout().write_all(&cli::man_page()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ringws: --print-man-page: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.print_config {
        return match cli.print_config(&namespaces) {
            Ok(toml) => {
                print!("{toml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ringws: {e}");
                ExitCode::from(2)
            }
        };
    }
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
    // Before the workers allocate: their memory is then counted in 4 KiB pages. A failure
    // (e.g. under qemu-user, which answers EINVAL) is logged once the log format is set, so
    // a JSON log stays JSON on every line.
    let huge_pages_kept_on = match cli.huge_pages {
        true => None,
        false => ringws::server::disable_huge_pages().err(),
    };
    logs::init(&cli.logs());
    if let Some(e) = huge_pages_kept_on {
        tracing::warn!(error = %e, "cannot turn transparent huge pages off; continuing");
    }
    let mut cfg = cli.config();
    match cli.tls_config() {
        Ok(tls) => cfg.tls = tls,
        Err(e) => {
            eprintln!("ringws: {e}");
            return ExitCode::from(2);
        }
    }
    let scheme = if cfg.tls.is_some() { "wss" } else { "ws" };
    // Handled with or without TLS: a SIGHUP out of habit (log rotation, `systemctl reload`)
    // never kills the server.
    if let Err(e) = reload_on_sighup(cfg.tls.clone()) {
        eprintln!("ringws: cannot handle SIGHUP: {e}");
        return ExitCode::FAILURE;
    }
    for warning in startup_warnings(&cfg) {
        tracing::warn!("{warning}");
    }
    let summary = Summary {
        scheme,
        mode: match cli.mode {
            Mode::Echo => "echo",
            Mode::Chat => "chat",
        },
        compression: match cfg.compression.mode {
            ringws::proto::deflate::Mode::Off => "off",
            ringws::proto::deflate::Mode::Shared => "shared",
            ringws::proto::deflate::Mode::Dedicated => "dedicated",
        },
        workers: cfg.workers,
        buffers: (cfg.uring.buf_entries, cfg.uring.buf_size),
    };
    let mut broker = cli.broker_config();
    let url = cli.broker.as_deref();
    let settings = cli.handoff();
    // A take-over first: the running server's listening sockets, before anything is bound.
    let mut taken = match &settings {
        Some(h) if h.take_over => match take_over(h, &cfg) {
            Ok(taken) => Some(taken),
            Err(e) => {
                eprintln!("ringws: --take-over: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let websocket = taken
        .as_mut()
        .map(|t| std::mem::take(&mut t.listeners.websocket));
    let api_listener = taken.as_mut().and_then(|t| t.listeners.api.take());
    let mut handover = HandOver {
        settings,
        taken,
        api: None,
        api_stop: None,
    };
    match cli.mode {
        Mode::Echo => {
            if api_listener.is_some() {
                tracing::warn!(
                    "hand-over: the running server had a backend API; echo mode has none: its socket is closed"
                );
            }
            let server = with_broker(bind(cfg, Echo, websocket), url, broker);
            serve(server, stop, &summary, handover)
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
            let server = with_broker(bind(cfg, chat, websocket), url, broker);
            // Attached before the workers start: the first connection finds the
            // application connected (its publisher, and every family on /metrics).
            if let Ok(server) = &server {
                attach.attach(server.publisher(), server.metrics());
            }
            let api_cfg = cli.api_config();
            if api_listener.is_some() && api_cfg.is_none() {
                tracing::warn!(
                    "hand-over: the running server had a backend API; this one has no --api-listen: its socket is closed"
                );
            }
            let started = api_cfg.map(|cfg| match api_listener {
                Some(listener) if listener.local_addr().ok() == Some(cfg.listen) || cfg.listen.port() == 0 => {
                    api::serve_on(attach.clone(), cfg, listener)
                }
                Some(listener) => {
                    tracing::warn!(
                        "hand-over: the running server's backend API is on {}, --api-listen says {}: binding that",
                        listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
                        cfg.listen
                    );
                    api::serve(attach.clone(), cfg)
                }
                None => api::serve(attach.clone(), cfg),
            });
            let _api = match started {
                None => None,
                Some(Ok(api)) => {
                    tracing::info!("backend API on http://{}/api/", api.local_addr());
                    if handover.settings.is_some() {
                        handover.api_stop = Some(api.stop_flag());
                        match api.listener_copy() {
                            Ok(copy) => handover.api = Some(copy),
                            Err(e) => {
                                eprintln!("ringws: --handoff-socket: {e}");
                                return ExitCode::FAILURE;
                            }
                        }
                    }
                    Some(api)
                }
                Some(Err(e)) => {
                    eprintln!("ringws: --api-listen: {e}");
                    return ExitCode::FAILURE;
                }
            };
            serve(server, stop, &summary, handover)
        }
    }
}

/// A live hand-over's part in a start (`--handoff-socket`, `--take-over`).
struct HandOver {
    settings: Option<cli::HandoffSettings>,
    /// The running server's sockets, when this process takes over (the WebSocket ones moved
    /// out already).
    taken: Option<TakeOver>,
    /// A copy of the backend API's listening socket, to hand on.
    api: Option<std::net::TcpListener>,
    /// Stops the backend API's accepting (once handed on).
    api_stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// Receives the running server's listening sockets (`--take-over`).
fn take_over(h: &cli::HandoffSettings, cfg: &ServerConfig) -> Result<TakeOver, String> {
    let taken = ringws::handoff::take_over(&h.socket, h.timeout).map_err(|e| e.to_string())?;
    let at = taken.listeners.websocket[0]
        .local_addr()
        .map_err(|e| e.to_string())?;
    if cfg.listen.port() != 0 && at != cfg.listen {
        // Dropped here: the running server is told nothing and goes on serving.
        return Err(format!(
            "the server at {} listens on {at} and --listen says {}: take over with the same --listen",
            h.socket.display(),
            cfg.listen
        ));
    }
    tracing::info!(
        old_pid = taken.from_pid,
        "hand-over: received {} listening sockets on {at} from process {}",
        taken.listeners.websocket.len() + usize::from(taken.listeners.api.is_some()),
        taken.from_pid
    );
    Ok(taken)
}

/// Binds the server, or serves on the sockets a take-over received.
fn bind<H: Handler>(
    cfg: ServerConfig,
    handler: H,
    taken: Option<Vec<std::net::TcpListener>>,
) -> std::io::Result<Server<H>> {
    match taken {
        Some(listeners) => Server::from_listeners(cfg, handler, listeners),
        None => Server::bind(cfg, handler),
    }
}

/// Reads the TLS certificate and key again on every SIGHUP: new handshakes use them, the
/// connections open keep theirs; files that cannot be used leave the certificate in use.
/// Without TLS a SIGHUP is logged and changes nothing.
fn reload_on_sighup(tls: Option<ringws::tls::TlsConfig>) -> std::io::Result<()> {
    let hup = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    std::thread::Builder::new()
        .name("ringws-sighup".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(200));
                if !hup.swap(false, std::sync::atomic::Ordering::Relaxed) {
                    continue;
                }
                let Some(tls) = &tls else {
                    tracing::info!("SIGHUP: nothing to reload (no --tls-cert); still serving");
                    continue;
                };
                match tls.reload() {
                    Ok(r) => tracing::info!(
                        "TLS: certificate reloaded from {} and {}{} (new handshakes use it)",
                        r.cert.display(),
                        r.key.display(),
                        match r.names {
                            0 => String::new(),
                            n => format!(", with {n} by server name"),
                        }
                    ),
                    Err(e) => {
                        tracing::warn!("TLS: reload refused ({e}); the certificate in use stays")
                    }
                }
            }
        })?;
    Ok(())
}

/// What the start line says, in words (and as fields).
struct Summary {
    scheme: &'static str,
    mode: &'static str,
    compression: &'static str,
    workers: usize,
    /// Receive buffers per worker: how many, of how many bytes.
    buffers: (u16, u32),
}

/// Starts a bound server, runs until SIGTERM or SIGINT, and stops it gracefully.
fn serve<H: Handler>(
    server: std::io::Result<Server<H>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    summary: &Summary,
    handover: HandOver,
) -> ExitCode {
    let server = match server {
        Ok(server) => server,
        Err(e) => {
            eprintln!("ringws: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = server.local_addr();
    let HandOver {
        settings,
        taken,
        api,
        api_stop,
    } = handover;
    // The sockets this server hands on: copies taken before the workers own them.
    let listeners = match settings.as_ref().map(|_| server.listener_copies()) {
        Some(Ok(websocket)) => Some(Listeners { websocket, api }),
        Some(Err(e)) => {
            eprintln!("ringws: --handoff-socket: {e}");
            return ExitCode::FAILURE;
        }
        None => None,
    };
    let restart = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handle = match server
        .with_stop_flag(stop.clone())
        .with_restart_flag(restart.clone())
        .start()
    {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("ringws: {e}");
            return ExitCode::FAILURE;
        }
    };
    let backend = match handle.ring_flags() {
        Some(f) => {
            tracing::info!(
                single_issuer = f.single_issuer,
                defer_taskrun = f.defer_taskrun,
                coop_taskrun = f.coop_taskrun,
                submit_all = f.submit_all,
                sq = f.sq_entries,
                cq = f.cq_entries,
                incremental_bufs = f.incremental_bufs,
                "backend io_uring: single_issuer={} defer_taskrun={} coop_taskrun={} submit_all={} sq={} cq={} incremental_bufs={}",
                f.single_issuer,
                f.defer_taskrun,
                f.coop_taskrun,
                f.submit_all,
                f.sq_entries,
                f.cq_entries,
                f.incremental_bufs
            );
            "io_uring"
        }
        None => "epoll",
    };
    let Summary {
        scheme,
        mode,
        compression,
        workers,
        buffers: (bufs, buf_size),
    } = *summary;
    let url = format!("{scheme}://{addr}/");
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        %url,
        mode,
        compression,
        backend,
        workers,
        "ringws {} listening on {url}: {mode} mode, compression {compression}, backend {backend}, {workers} workers, {bufs} x {buf_size} B receive buffers each",
        env!("CARGO_PKG_VERSION"),
    );
    // Serving: systemd (Type=notify) learns it, and that this process is now the main one.
    notify::ready();
    let took_over = taken.is_some();
    if let Some(taken) = taken {
        let from = taken.from_pid;
        // Workers run on the sockets: the running server may stop. If it is gone already,
        // this one serves alone, which is what was asked.
        match taken.accepting() {
            Ok(()) => tracing::info!(
                old_pid = from,
                "hand-over: accepting; process {from} told to stop"
            ),
            Err(e) => tracing::warn!(
                old_pid = from,
                "hand-over: cannot tell process {from} to stop ({e}); serving anyway"
            ),
        }
    }
    // Answering hand-overs from here on (after a take-over: in place of the old server).
    let _control = match (settings, listeners) {
        (Some(h), Some(listeners)) => {
            let handed = move |_: ringws::handoff::Handed| {
                use std::sync::atomic::Ordering::Relaxed;
                // The new process accepts on the same sockets: every connection and request
                // from now on is its.
                if let Some(api) = api_stop {
                    api.store(true, Relaxed);
                }
                // Release: a worker that sees the stop sees the restart (1012, not 1001).
                restart.store(true, Relaxed);
                stop.store(true, std::sync::atomic::Ordering::Release);
            };
            match Control::listen(&h.socket, listeners, h.timeout, handed) {
                Ok(control) => {
                    tracing::info!(
                        "hand-over: answering take-overs on {}",
                        control.path().display()
                    );
                    Some(control)
                }
                // The old server is stopping: serve on, without answering hand-overs.
                Err(e) if took_over => {
                    tracing::error!(
                        "--handoff-socket: cannot listen on {e}; serving, but no later hand-over can reach this process"
                    );
                    None
                }
                Err(e) => {
                    tracing::error!("--handoff-socket: cannot listen on {e}; stopping");
                    handle.shutdown();
                    let _ = handle.join();
                    return ExitCode::FAILURE;
                }
            }
        }
        _ => None,
    };
    match handle.join() {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "worker failed");
            ExitCode::FAILURE
        }
    }
}
