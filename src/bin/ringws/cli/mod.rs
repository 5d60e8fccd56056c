//! The command line: every flag, its parser and its check, and how the flags map onto the
//! library's configuration (`ServerConfig`, `ChatConfig`, `BrokerConfig`). Every limit left out
//! keeps the library's documented default.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use ringws::app::chat::identity::Tokens;
use ringws::app::chat::{AuthHook, ChatConfig};
use ringws::broker::BrokerConfig;
use ringws::proto::deflate::Mode as DeflateMode;
use ringws::proto::handshake::OriginPolicy;
use ringws::server::{Backpressure, IoChoice, ServerConfig};

/// What `--version` says: the version, the commit it was built from, the target, and the
/// I/O backends built in (which one runs is chosen at start: `--io`).
pub(crate) const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("RINGWS_COMMIT"),
    ", ",
    env!("RINGWS_TARGET"),
    ", backends io_uring epoll)"
);

/// A WebSocket server for Linux: thread per core, io_uring, strict RFC 6455.
///
/// Every limit left out keeps the default documented in the library (`ServerConfig`,
/// `proto::Limits`).
#[derive(Debug, Parser)]
#[command(name = "ringws", version = VERSION, args_override_self = true)]
pub(crate) struct Cli {
    /// A TOML file of options: the flags' long names as keys, e.g. `listen = "0.0.0.0:9001"`,
    /// `max-rooms = 32`, `allow-origin = ["https://chat.example.com"]`, `pin = true`. Flags on
    /// the command line win over the file.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Print the effective configuration (defaults, --config file and flags merged) as TOML
    /// that --config reads back, and exit.
    #[arg(long)]
    pub(crate) print_config: bool,
    /// Print an example configuration file (every option commented out, with its help and
    /// default; tuning/ringws.toml is this), and exit.
    #[arg(long)]
    pub(crate) print_example_config: bool,
    /// Print the manual page (roff, for `man -l -`; the Debian package installs it as
    /// ringws(1)), and exit.
    #[arg(long)]
    pub(crate) print_man_page: bool,
    /// Address to listen on [default: 127.0.0.1:9001].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Worker threads (one per core is the design) [default: number of CPUs].
    #[arg(long)]
    workers: Option<NonZeroUsize>,
    /// Pin worker i to CPU i.
    #[arg(long)]
    pin: bool,
    /// The I/O backend: auto (io_uring when the kernel offers it, else epoll, said in the log),
    /// uring (fail at start when unavailable), or epoll.
    #[arg(long, value_enum, default_value_t = IoArg::Auto)]
    io: IoArg,
    /// The application to run.
    #[arg(long, value_enum, default_value_t = Mode::Chat)]
    pub(crate) mode: Mode,
    /// Log lines on stderr: text (for people; coloured only on a terminal without NO_COLOR) or
    /// json (one object per line with the events' fields, for Loki or Elasticsearch)
    /// [default: text].
    #[arg(long, value_enum)]
    log_format: Option<crate::logs::LogFormat>,
    /// The least severe events logged: off, error, warn, info, debug or trace; RUST_LOG, when
    /// set, wins [default: info].
    #[arg(long, value_name = "LEVEL", value_parser = crate::logs::parse_level)]
    log_level: Option<tracing::level_filters::LevelFilter>,
    /// Largest message accepted, in bytes (close 1009 beyond) [default: 65536].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_message_bytes: Option<u32>,
    /// Largest frame accepted, in bytes [default: the message limit].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_frame_bytes: Option<u32>,
    /// Most frames in one message, empty ones included (close 1008 beyond) [default: 128].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_fragments: Option<u32>,
    /// Largest upgrade request head, in bytes (HTTP 431 beyond) [default: 8192].
    #[arg(long, value_parser = clap::value_parser!(u64).range(256..=1_048_576))]
    max_header_bytes: Option<u64>,
    /// Most header fields in the upgrade request (HTTP 431 beyond) [default: 64].
    #[arg(long, value_parser = clap::value_parser!(u64).range(8..=4096))]
    max_headers: Option<u64>,
    /// High-water mark of a connection's send queue: reading stops there (flow control) and
    /// the backpressure policy applies to broadcasts [default: 131072].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_outbound_bytes: Option<u64>,
    /// Reading resumes when a paused connection's send queue drains to this many bytes
    /// [default: 32768].
    #[arg(long, value_parser = clap::value_parser!(u64))]
    outbound_low_water: Option<u64>,
    /// What happens to a broadcast for a connection whose queue is full [default: drop-newest].
    #[arg(long, value_enum)]
    backpressure: Option<BackpressureArg>,
    /// How long to wait for the peer's close reply, e.g. 5s or 500ms [default: 5s].
    #[arg(long, value_parser = parse_duration)]
    close_timeout: Option<Duration>,
    /// How long a graceful shutdown waits for close replies [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    shutdown_timeout: Option<Duration>,
    /// Receive buffers in each worker's ring: a power of two, 1 to 32768 [default: 64].
    #[arg(long, value_parser = parse_power_of_two)]
    recv_buffers: Option<u16>,
    /// Close connections that have not finished the upgrade after this long [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    handshake_timeout: Option<Duration>,
    /// Ping a peer after this long without traffic; 0 disables heartbeats [default: 30s].
    #[arg(long, value_parser = parse_duration)]
    ping_interval: Option<Duration>,
    /// Close a peer that sends nothing this long after our ping [default: 20s].
    #[arg(long, value_parser = parse_duration)]
    pong_timeout: Option<Duration>,
    /// Close (1000) connections that send no message for this long [default: off].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    idle_timeout: Option<Duration>,
    /// Browser heartbeat: answer the text REQUEST with RESPONSE, e.g. ping:pong [default: off].
    #[arg(long, value_name = "REQUEST:RESPONSE", value_parser = parse_text_heartbeat)]
    text_heartbeat: Option<(String, String)>,
    /// Timer resolution: timeouts fire within one tick of their deadline, 10ms to 1s
    /// [default: 100ms].
    #[arg(long, value_parser = parse_tick)]
    tick: Option<Duration>,
    /// Send zero-copy (SENDMSG_ZC) when a send has at least this many bytes [default: off].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), value_name = "BYTES")]
    send_zc_min_bytes: Option<u32>,
    /// permessage-deflate: off, shared (no context takeover: one compressor per worker, no
    /// memory per connection) or dedicated (context takeover: better ratios, a compressor per
    /// connection) [default: shared in chat mode, off in echo mode].
    #[arg(long, value_enum)]
    compression: Option<CompressionArg>,
    /// permessage-deflate: zlib level, 1 (fastest) to 9 [default: 2].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=9))]
    compression_level: Option<u8>,
    /// permessage-deflate: messages shorter than this are sent uncompressed [default: 64].
    #[arg(long, value_parser = clap::value_parser!(u32))]
    compression_min_bytes: Option<u32>,
    /// permessage-deflate, dedicated mode: our compressor's window, 9 to 15 bits [default: 10].
    #[arg(long, value_parser = clap::value_parser!(u8).range(9..=15))]
    compression_window_bits: Option<u8>,
    /// permessage-deflate, dedicated mode: the window asked of clients that allow it, 8 to 15
    /// bits (our decompressor keeps that much per connection) [default: 10].
    #[arg(long, value_parser = clap::value_parser!(u8).range(8..=15))]
    compression_client_window_bits: Option<u8>,
    /// Chat: rooms one connection may be in at once [default: 16].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    max_rooms: Option<u32>,
    /// Chat: longest message text in bytes [default: 4096].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    max_text: Option<u32>,
    /// Chat: messages each room's history keeps, for recovery after a reconnect and for
    /// scrollback [default: 1000].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    history_messages: Option<u32>,
    /// Chat: bytes each room's history keeps (also the most one recovery sends at once)
    /// [default: 1048576].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    history_bytes: Option<u64>,
    /// Chat: how long a message is kept in its room's history, e.g. 10m or 90s [default: 10m].
    #[arg(long, value_parser = parse_duration)]
    history_age: Option<Duration>,
    /// Chat: bytes of history kept over all rooms [default: 268435456].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1 << 40))]
    history_total_bytes: Option<u64>,
    /// Chat: rooms whose history is kept, over all rooms [default: 100000].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    history_rooms: Option<u32>,
    /// Chat: most messages one history request returns [default: 100].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    history_page: Option<u32>,
    /// Chat: history pages and recoveries are refused (busy) to a connection with more than
    /// this many bytes queued to it [default: 65536].
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1 << 30))]
    history_busy_bytes: Option<u64>,
    /// Chat: accept browser pages from this origin only, e.g. https://chat.example.com
    /// (repeat for several) [default: any origin].
    #[arg(long, value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// Chat: clients must present this token (`?token=...` in the URL, or an
    /// `Authorization: Bearer ...` header); others get 401 [default: no token needed].
    #[arg(long, value_name = "TOKEN", conflicts_with_all = ["jwt_secret", "jwt_public_key"])]
    auth_token: Option<String>,
    /// Chat: connections need a JWT signed with this HS256 secret (at least 32 bytes), in
    /// `?token=` or `Authorization: Bearer`; 401 otherwise. Its `sub` is the user (README,
    /// "Identity and room rules"). Better in the config file than on a command line others
    /// can read [default: no tokens].
    #[arg(long, value_name = "SECRET", conflicts_with = "jwt_public_key")]
    jwt_secret: Option<String>,
    /// Chat: connections need a JWT signed with the private half of this PEM public key:
    /// RSA (RS256) or P-256 (ES256) [default: no tokens].
    #[arg(long, value_name = "FILE")]
    jwt_public_key: Option<std::path::PathBuf>,
    /// Chat: tokens must carry this `iss` (when the key is shared with other services)
    /// [default: not checked].
    #[arg(long, value_name = "ISSUER")]
    jwt_issuer: Option<String>,
    /// Chat: tokens must carry an `aud` naming this (a string, or one of an array)
    /// [default: not checked].
    #[arg(long, value_name = "AUDIENCE")]
    jwt_audience: Option<String>,
    /// Chat: how long before its token expires a connection is told to refresh it (then it is
    /// closed with 4001) [default: 60s].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    jwt_expiry_notice: Option<Duration>,
    /// TLS: serve wss:// and https:// on the listener with this certificate chain (PEM: the
    /// server's certificate first, then the intermediates); needs --tls-key [default: no TLS].
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// TLS: the private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// TLS: another certificate, for clients that name NAME in SNI (an exact DNS name the
    /// certificate is valid for); repeat for more names; any other client gets --tls-cert.
    /// Reloaded with it on SIGHUP [default: none].
    #[arg(long, value_name = "NAME=CERT,KEY", value_parser = parse_sni, requires = "tls_cert")]
    tls_sni: Vec<ringws::tls::NamedFiles>,
    /// Chat: messages one connection may send per second, sustained; 0: no limit; excess is
    /// refused with rate_limited [default: 100].
    #[arg(long, value_name = "N")]
    send_rate: Option<u32>,
    /// Chat: messages one connection may send at once after a quiet spell [default: 200].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    send_burst: Option<u32>,
    /// Chat: joins and history pages one connection may ask for per second; 0: no limit
    /// [default: 10].
    #[arg(long, value_name = "N")]
    join_rate: Option<u32>,
    /// Chat: connections one client address may have open at once (HTTP 429 beyond); 0: no
    /// limit (many users share an address behind a NAT: set it only where clients have their
    /// own) [default: 0].
    #[arg(long, value_name = "N")]
    max_conns_per_ip: Option<u32>,
    /// Chat: a load balancer or proxy (an address or a network, e.g. 10.0.0.0/8) whose
    /// X-Forwarded-For names the client; repeat for several [default: none].
    #[arg(long, value_name = "CIDR", value_parser = parse_net)]
    trusted_proxy: Vec<ipnet::IpNet>,
    /// Chat: serve the backend API (publish, broadcast, disconnect, presence, history, info;
    /// README "Backend API") on this address, e.g. 127.0.0.1:9002: keep it off the public
    /// network [default: no API].
    #[arg(long, value_name = "ADDR", requires = "api_key")]
    pub(crate) api_listen: Option<SocketAddr>,
    /// Chat: the key API requests must carry (`Authorization: apikey KEY`).
    #[arg(long, value_name = "KEY", requires = "api_listen")]
    pub(crate) api_key: Option<String>,
    /// Chat: joins and history pages one connection may ask for at once [default: 50].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    join_burst: Option<u32>,
    /// Let the allocator back memory with transparent huge pages (2 MiB). Off by default:
    /// resident memory then grows with what connections use, 4 KiB at a time, instead of in
    /// 2 MiB steps (tuning/README.md, "Transparent huge pages").
    #[arg(long)]
    pub(crate) huge_pages: bool,
    /// Size of each receive buffer in bytes, 256 to 1048576 [default: 65536; split into 4 KiB
    /// buffers on kernels before 6.12, which cannot fill a buffer piece by piece].
    #[arg(long, value_parser = clap::value_parser!(u32).range(256..=1_048_576))]
    recv_buffer_size: Option<u32>,
    /// Share rooms with other ringws servers through this Redis, e.g. redis://10.0.0.5:6379
    /// (README, "Running a cluster") [default: none, the server runs alone].
    #[arg(long, value_name = "URL")]
    pub(crate) broker: Option<String>,
    /// With --broker: prefix of the rooms' channel names; give each cluster sharing one Redis
    /// its own [default: ringws:room:].
    #[arg(long, value_name = "PREFIX", requires = "broker")]
    broker_prefix: Option<String>,
    /// With --broker: how long a server's presence entries outlive it in Redis: a server that
    /// dies drops out of every presence list within this [default: 30s].
    #[arg(long, requires = "broker", value_parser = parse_duration, value_name = "DURATION")]
    broker_presence_ttl: Option<Duration>,
    /// With --broker: bytes of publications waiting for Redis before more are dropped (and
    /// counted) [default: 8388608].
    #[arg(long, requires = "broker", value_name = "BYTES", value_parser = clap::value_parser!(u64).range(65_536..=1 << 32))]
    broker_max_pending_bytes: Option<u64>,
    /// Answer live hand-overs on this Unix socket (created owner-only): a `ringws --take-over`
    /// started with the same flags takes the listening sockets from here, so accepting never
    /// stops; this server then closes its connections with 1012 (service restart) and exits
    /// (README, "Zero-downtime upgrades") [default: none].
    #[arg(long, value_name = "PATH")]
    pub(crate) handoff_socket: Option<std::path::PathBuf>,
    /// Start by taking over from the server that answers on --handoff-socket: serve on its
    /// listening sockets, then tell it to stop; this server answers the next hand-over there.
    #[arg(long, requires = "handoff_socket")]
    pub(crate) take_over: bool,
    /// With --handoff-socket: how long either side of a hand-over waits for the other at each
    /// step; past it the hand-over is abandoned and the running server goes on serving
    /// [default: 30s].
    #[arg(long, requires = "handoff_socket", value_parser = parse_duration, value_name = "DURATION")]
    handoff_timeout: Option<Duration>,
}

/// The live hand-over's settings (`--handoff-socket`, `--take-over`, `--handoff-timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HandoffSettings {
    /// The control socket.
    pub(crate) socket: std::path::PathBuf,
    /// Take over from the server answering there before serving.
    pub(crate) take_over: bool,
    /// Each step's patience.
    pub(crate) timeout: Duration,
}

/// An address or a network: `10.0.0.1`, `10.0.0.0/8`, `::1`.
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("'{s}' is not an address or a network like 10.0.0.0/8"))
}

/// Checks `--broker` (after parsing: clap's own message would print the URL, password and all).
pub(crate) fn check_broker_url(s: &str) -> Result<(), String> {
    let shown = redact(s);
    if !s.starts_with("redis://") {
        return Err(format!(
            "--broker: '{shown}' is not a redis:// URL, e.g. redis://127.0.0.1:6379"
        ));
    }
    ringws::broker::redis::Redis::new(s)
        .map(drop)
        .map_err(|e| format!("--broker: '{shown}' is not a usable Redis URL: {e}"))
}

/// A URL fit for messages: any credentials (`user:password@`) replaced by `***@`.
pub(crate) fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Mode {
    /// Every message back to its sender (Autobahn, benchmarks).
    Echo,
    /// The chat backend: rooms, a JSON protocol, the demo page on /, /metrics.
    Chat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CompressionArg {
    /// Never negotiated.
    Off,
    /// No context takeover either way: per-worker codecs.
    Shared,
    /// Context takeover where the client allows it: per-connection codecs.
    Dedicated,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum IoArg {
    /// io_uring when available, else epoll.
    Auto,
    /// io_uring or nothing.
    Uring,
    /// epoll.
    Epoll,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BackpressureArg {
    /// Drop the new message; the connection stays.
    #[value(alias = "drop")]
    DropNewest,
    /// Drop the oldest queued messages to make room for the new one.
    DropOldest,
    /// Close the connection with 1013.
    Close,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 5s or 500ms"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        // Zero needs no unit (`--ping-interval 0` turns heartbeats off, as its help says).
        "" if n == 0 => Ok(Duration::ZERO),
        _ => Err(format!("'{s}' is not a duration like 5s or 500ms")),
    }
}

fn parse_text_heartbeat(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((request, response)) if !request.is_empty() && !response.is_empty() => {
            Ok((request.to_owned(), response.to_owned()))
        }
        _ => Err(format!("'{s}' is not REQUEST:RESPONSE, e.g. ping:pong")),
    }
}

fn parse_tick(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if (Duration::from_millis(10)..=Duration::from_secs(1)).contains(&d) {
        Ok(d)
    } else {
        Err(format!("'{s}' is outside 10ms..1s"))
    }
}

fn parse_power_of_two(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(n) if n.is_power_of_two() && n <= 32768 => Ok(n),
        _ => Err(format!("'{s}' is not a power of two from 1 to 32768")),
    }
}

/// `NAME=CERT,KEY` (`--tls-sni`).
fn parse_sni(s: &str) -> Result<ringws::tls::NamedFiles, String> {
    let parsed = s.split_once('=').and_then(|(name, files)| {
        let (cert, key) = files.split_once(',')?;
        (!name.is_empty() && !cert.is_empty() && !key.is_empty()).then(|| ringws::tls::NamedFiles {
            name: name.to_owned(),
            cert: cert.into(),
            key: key.into(),
        })
    });
    parsed.ok_or_else(|| {
        format!("'{s}' is not NAME=CERT,KEY (e.g. chat.example.com=/etc/ringws/chat.pem,/etc/ringws/chat.key)")
    })
}

impl Cli {
    /// What --log-format and --log-level say.
    pub(crate) fn logs(&self) -> crate::logs::LogSettings {
        crate::logs::LogSettings {
            format: self.log_format.unwrap_or(crate::logs::LogFormat::Text),
            level: self
                .log_level
                .unwrap_or(tracing::level_filters::LevelFilter::INFO),
        }
    }

    /// The TLS configuration from --tls-cert, --tls-key and --tls-sni, if given.
    ///
    /// # Errors
    /// A file that cannot be read or used, with the flag's name.
    pub(crate) fn tls_config(&self) -> Result<Option<ringws::tls::TlsConfig>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                ringws::tls::TlsConfig::from_pem_files_with_names(cert, key, &self.tls_sni)
                    .map(Some)
                    .map_err(|e| match e {
                        ringws::tls::TlsConfigError::Name(..) => format!("--tls-sni: {e}"),
                        e => format!("--tls-cert / --tls-key: {e}"),
                    })
            }
            _ => Ok(None),
        }
    }

    pub(crate) fn config(&self) -> ServerConfig {
        let mut cfg = ServerConfig::default();
        if let Some(listen) = self.listen {
            cfg.listen = listen;
        }
        if let Some(workers) = self.workers {
            cfg.workers = workers.get();
        }
        cfg.pin_workers = self.pin;
        cfg.io = match self.io {
            IoArg::Auto => IoChoice::Auto,
            IoArg::Uring => IoChoice::Uring,
            IoArg::Epoll => IoChoice::Epoll,
        };
        let limits = &mut cfg.proto.limits;
        if let Some(n) = self.max_message_bytes {
            limits.max_message_bytes = n;
            limits.max_frame_bytes = n;
        }
        if let Some(n) = self.max_frame_bytes {
            limits.max_frame_bytes = n;
        }
        if let Some(n) = self.max_fragments {
            limits.max_fragments = n;
        }
        if let Some(n) = self.max_header_bytes {
            limits.max_header_bytes = n as usize;
        }
        if let Some(n) = self.max_headers {
            limits.max_headers = n as usize;
        }
        if let Some(n) = self.max_outbound_bytes {
            cfg.max_outbound_bytes = n as usize;
        }
        if let Some(n) = self.outbound_low_water {
            cfg.outbound_low_water = n as usize;
        }
        if let Some(b) = self.backpressure {
            cfg.backpressure = match b {
                BackpressureArg::DropNewest => Backpressure::DropNewest,
                BackpressureArg::DropOldest => Backpressure::DropOldest,
                BackpressureArg::Close => Backpressure::Close,
            };
        }
        if let Some(d) = self.close_timeout {
            cfg.proto.close_timeout = d;
        }
        if let Some(d) = self.shutdown_timeout {
            cfg.shutdown_timeout = d;
        }
        if let Some(n) = self.recv_buffers {
            cfg.uring.buf_entries = n;
        }
        if let Some(n) = self.recv_buffer_size {
            cfg.uring.buf_size = n;
        }
        if let Some(d) = self.handshake_timeout {
            cfg.handshake_timeout = d;
        }
        if let Some(d) = self.ping_interval {
            cfg.ping_interval = (!d.is_zero()).then_some(d);
        }
        if let Some(d) = self.pong_timeout {
            cfg.pong_timeout = d;
        }
        if self.idle_timeout.is_some() {
            cfg.idle_timeout = self.idle_timeout;
        }
        if self.text_heartbeat.is_some() {
            cfg.text_heartbeat = self.text_heartbeat.clone();
        } else if matches!(self.mode, Mode::Chat) {
            // The browser library's heartbeat.
            cfg.text_heartbeat = Some(("ping".to_owned(), "pong".to_owned()));
        }
        if let Some(d) = self.tick {
            cfg.tick = d;
        }
        if self.send_zc_min_bytes.is_some() {
            cfg.uring.send_zc_min_bytes = self.send_zc_min_bytes;
        }
        let z = &mut cfg.compression;
        z.mode = match (self.compression, self.mode) {
            (Some(CompressionArg::Off), _) | (None, Mode::Echo) => DeflateMode::Off,
            (Some(CompressionArg::Shared), _) | (None, Mode::Chat) => DeflateMode::Shared,
            (Some(CompressionArg::Dedicated), _) => DeflateMode::Dedicated,
        };
        if let Some(n) = self.compression_level {
            z.level = n;
        }
        if let Some(n) = self.compression_min_bytes {
            z.min_bytes = n as usize;
        }
        if let Some(n) = self.compression_window_bits {
            z.server_max_window_bits = n;
        }
        if let Some(n) = self.compression_client_window_bits {
            z.client_max_window_bits = n;
        }
        cfg
    }
}

/// The auth hook of `--auth-token`: the token in the query or a bearer header.
fn token_hook(token: String) -> AuthHook {
    use subtle::ConstantTimeEq;
    std::sync::Arc::new(move |req: &ringws::proto::handshake::UpgradeRequest<'_>| {
        // Compared in constant time: the time taken says nothing of how much was right.
        let same = |given: &str| bool::from(given.as_bytes().ct_eq(token.as_bytes()));
        let query = req.path().split_once('?').map_or("", |(_, q)| q);
        let in_query = query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("token="))
            .any(same);
        let in_header = req
            .header("authorization")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(same);
        if in_query || in_header {
            Ok(None)
        } else {
            Err((401, "a valid token is required"))
        }
    })
}

impl Cli {
    /// The chat's configuration from the flags (and the heartbeat the server answers).
    ///
    /// # Errors
    /// A JWT key that cannot be used (a short secret, a file that is not a public key), with
    /// the flag's name.
    pub(crate) fn chat_config(&self, server: &ServerConfig) -> Result<ChatConfig, String> {
        let mut chat = ChatConfig::default();
        let tokens = match (&self.jwt_secret, &self.jwt_public_key) {
            (Some(secret), _) => {
                Some(Tokens::hs256(secret.as_bytes()).map_err(|e| format!("--jwt-secret: {e}"))?)
            }
            (None, Some(path)) => {
                let pem = std::fs::read(path).map_err(|e| {
                    format!("--jwt-public-key: cannot read {}: {e}", path.display())
                })?;
                Some(
                    Tokens::public_key_pem(&pem)
                        .map_err(|e| format!("--jwt-public-key: {}: {e}", path.display()))?,
                )
            }
            (None, None) => None,
        };
        if tokens.is_none() && (self.jwt_issuer.is_some() || self.jwt_audience.is_some()) {
            return Err(
                "--jwt-issuer / --jwt-audience: give the key too (--jwt-secret or --jwt-public-key)"
                    .to_owned(),
            );
        }
        if let Some(mut tokens) = tokens {
            tokens.max_name = chat.max_name;
            for (flag, value) in [
                ("--jwt-issuer", &self.jwt_issuer),
                ("--jwt-audience", &self.jwt_audience),
            ] {
                if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                    return Err(format!("{flag}: empty"));
                }
            }
            if let Some(iss) = &self.jwt_issuer {
                tokens.require_issuer(iss);
            }
            if let Some(aud) = &self.jwt_audience {
                tokens.require_audience(aud);
            }
            chat.tokens = Some(std::sync::Arc::new(tokens));
        }
        if let Some(d) = self.jwt_expiry_notice {
            chat.expiry_notice = d;
        }
        if let Some(n) = self.send_rate {
            chat.send_rate.per_second = n;
        }
        if let Some(n) = self.send_burst {
            chat.send_rate.burst = n;
        }
        if let Some(n) = self.join_rate {
            chat.join_rate.per_second = n;
        }
        if let Some(n) = self.join_burst {
            chat.join_rate.burst = n;
        }
        if let Some(n) = self.max_conns_per_ip {
            chat.max_conns_per_ip = n;
        }
        chat.trusted_proxies = self.trusted_proxy.clone();
        if let Some(n) = self.max_rooms {
            chat.max_rooms = n as usize;
        }
        if let Some(n) = self.max_text {
            chat.max_text = n as usize;
        }
        let history = &mut chat.history;
        if let Some(n) = self.history_messages {
            history.max_messages = n as usize;
        }
        if let Some(n) = self.history_bytes {
            history.max_bytes = n as usize;
        }
        if let Some(d) = self.history_age {
            history.max_age = d;
        }
        if let Some(n) = self.history_total_bytes {
            history.total_bytes = n as usize;
        }
        if let Some(n) = self.history_rooms {
            history.max_rooms = n as usize;
        }
        if let Some(n) = self.history_page {
            history.page = n as usize;
        }
        if let Some(n) = self.history_busy_bytes {
            history.busy_bytes = n as usize;
        }
        if !self.allow_origin.is_empty() {
            chat.origins = OriginPolicy::allow_list(self.allow_origin.clone());
        }
        chat.auth = self.auth_token.clone().map(token_hook);
        // Browsers cannot send ping frames: the client library pings with text, twice as
        // often as the server's silence threshold.
        chat.heartbeat = server.text_heartbeat.clone().map(|(ping, pong)| {
            let interval = server
                .ping_interval
                .map_or(20_000, |d| (d.as_millis() as u64 / 2).max(1000));
            (ping, pong, interval)
        });
        Ok(chat)
    }

    /// The backend API's configuration, when `--api-listen` is given.
    pub(crate) fn api_config(&self) -> Option<ringws::app::chat::api::ApiConfig> {
        let (listen, key) = (self.api_listen?, self.api_key.clone()?);
        Some(ringws::app::chat::api::ApiConfig::new(listen, key))
    }

    /// The live hand-over's settings, when `--handoff-socket` is given.
    pub(crate) fn handoff(&self) -> Option<HandoffSettings> {
        Some(HandoffSettings {
            socket: self.handoff_socket.clone()?,
            take_over: self.take_over,
            timeout: self.handoff_timeout.unwrap_or(Duration::from_secs(30)),
        })
    }

    /// The broker bridge's configuration, when `--broker` is given.
    pub(crate) fn broker_config(&self) -> Option<BrokerConfig> {
        self.broker.as_ref()?;
        let mut cfg = BrokerConfig::default();
        if let Some(prefix) = &self.broker_prefix {
            cfg.channel_prefix = prefix.clone();
        }
        if let Some(ttl) = self.broker_presence_ttl {
            cfg.presence = Some(ringws::broker::PresenceConfig { ttl });
        }
        if let Some(n) = self.broker_max_pending_bytes {
            cfg.max_pending_bytes = n as usize;
        }
        Some(cfg)
    }
}

mod example;
mod man;
mod print;
#[cfg(test)]
mod tests;

pub(crate) use example::example_config;
pub(crate) use man::man_page;
