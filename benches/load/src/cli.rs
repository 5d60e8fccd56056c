//! The command line.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::broadcast::Plan;
use crate::server::Probe;
use crate::target::Setup;
use crate::target::Target;

/// Load generator for WebSocket echo servers (ringws and its peers), on this machine only.
#[derive(Debug, Parser)]
#[command(name = "ringws-load", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The modes.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// N connections, each with exactly one message in flight; every echo is checked byte for
    /// byte.
    Pingpong(PingPongArgs),
    /// N connections, each with --depth messages in flight: the first D go out in one write,
    /// and whenever echoes come back every message owed goes out in one write. Every echo is
    /// checked in order, byte for byte; latency is from a message's write to its echo.
    Pipelined(PipelinedArgs),
    /// Open loop: every connection writes messages as fast as its socket accepts them for the
    /// duration, reading and checking the echoes as they come; reports the echoes (and payload
    /// bytes) per second the server sends back.
    Flood(PingPongArgs),
    /// Pub/sub over the ringws chat protocol (JSON text frames): -c subscribers join --rooms
    /// rooms (round-robin), --publishers more connections publish --rate messages per second
    /// in all (spread over the rooms and publishers), each stamped with its publisher, a
    /// sequence number and its send time. Reports deliveries per second, latency from the
    /// publisher's write to the subscriber's read, the server's CPU per delivery, and the
    /// messages lost (sequence gaps, and what has not arrived --drain seconds after the last
    /// publication): counted, an error only with --strict.
    Broadcast(BroadcastArgs),
    /// Open N connections and hold them, answering the server's pings; report the server's
    /// memory per connection and how late its heartbeat pings come.
    Idle(IdleArgs),
    /// The reconnect storm (ringws chat with history): -c members of one room, each --behind
    /// messages behind, reconnect at once and resume with `since`. Reports the time until all
    /// have recovered (and each member's), and the CPU of each --pid process per recovered
    /// message against a live delivery. Every member must be told `recovered` and get every
    /// missed message in order, once.
    Recover(RecoverArgs),
    /// Read JSON result lines (from --json runs) and print a Markdown table of medians.
    Summarize(SummarizeArgs),
}

/// `recover` options.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// A server the members connect to, as ws://HOST:PORT/ (repeat: the members are spread
    /// round-robin, e.g. over a cluster's servers).
    #[arg(long = "url", required = true)]
    pub urls: Vec<String>,
    /// Where the publisher connects (default: the first --url).
    #[arg(long)]
    pub publish_url: Option<String>,
    /// Members.
    #[arg(short = 'c', long, default_value_t = 1000)]
    pub members: usize,
    /// Messages each member is behind when the storm starts.
    #[arg(long, default_value_t = 100)]
    pub behind: usize,
    /// The room.
    #[arg(long, default_value = "storm")]
    pub room: String,
    /// A process whose CPU time is sampled, reported under NAME (repeat: the servers, Redis).
    #[arg(long, value_name = "NAME=PID", value_parser = parse_also_pid)]
    pub pid: Vec<(String, u32)>,
    /// Seconds each phase may take.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Print one JSON line instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// A name for the setup, copied into the JSON line.
    #[arg(long)]
    pub label: Option<String>,
}

/// Options shared by the load modes.
#[derive(Debug, Args)]
pub struct Common {
    /// The server, as ws://HOST:PORT/PATH (IP literal or localhost).
    #[arg(long, conflicts_with = "addr", required_unless_present = "addr")]
    pub url: Option<String>,
    /// The server, as HOST:PORT (path /).
    #[arg(long)]
    pub addr: Option<String>,
    /// Connections to open.
    #[arg(short, long, default_value_t = 100)]
    pub connections: usize,
    /// The server's PID: its CPU time (schedstat) and RSS are sampled around the window.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Print one JSON line instead of the table.
    #[arg(long)]
    pub json: bool,
    /// A name for the server, copied into the result (for scripts).
    #[arg(long)]
    pub label: Option<String>,
    /// A name for the scenario, copied into the result (for scripts).
    #[arg(long)]
    pub scenario: Option<String>,
    /// Most connections in setup (connect + handshake) at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Seconds the whole setup may take.
    #[arg(long, default_value_t = 30.0)]
    pub connect_timeout: f64,
    /// Spread connections over source addresses 127.0.0.1 ..= 127.0.0.N (for more connections
    /// than one address has ephemeral ports). 0: let the kernel choose.
    #[arg(long, default_value_t = 0)]
    pub sources: u8,
    /// No status line on stderr (there is one only when stderr is a terminal).
    #[arg(short, long)]
    pub quiet: bool,
    /// Offer permessage-deflate (client_no_context_takeover); where the server accepts, every
    /// message is sent compressed and compressed messages received are inflated (and checked).
    #[arg(long)]
    pub compress: bool,
    /// TLS (wss://): every connection makes a TLS handshake first, trusting the certificates
    /// of --tls-ca (a wss:// URL implies it).
    #[arg(long)]
    pub tls: bool,
    /// TLS: the PEM certificates (a CA, or the server's self-signed one) the server's
    /// certificate must chain to.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// TLS: connections resume the sessions earlier ones were given (TLS 1.3 tickets, the
    /// TLS 1.2 session ID), as returning browsers do; the report counts them (`tls_resumed`).
    /// Without it every connection makes a full handshake.
    #[arg(long)]
    pub tls_resume: bool,
    /// Also sample this process's CPU time over the window, reported under NAME (repeat): in a
    /// cluster, the publishers' node and Redis.
    #[arg(long, value_name = "NAME=PID", value_parser = parse_also_pid)]
    pub also_pid: Vec<(String, u32)>,
    /// Chat modes: the rooms' names are this and a number (r0, r1, ...), so that several runs
    /// against one server keep to rooms of their own.
    #[arg(long, default_value = "r", value_name = "PREFIX")]
    pub room_prefix: String,
}

fn parse_also_pid(s: &str) -> Result<(String, u32), String> {
    match s.split_once('=') {
        Some((name, pid)) if !name.is_empty() => pid
            .parse()
            .map(|pid| (name.to_owned(), pid))
            .map_err(|_| format!("'{s}': '{pid}' is not a process id")),
        _ => Err(format!("'{s}' is not NAME=PID, e.g. redis=1234")),
    }
}

/// `pingpong` and `flood` options (and `pipelined`'s, with its depth).
#[derive(Debug, Args)]
pub struct PingPongArgs {
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
    /// Payload bytes per message.
    #[arg(short, long, default_value_t = 20)]
    pub size: usize,
    /// Binary messages (default: text).
    #[arg(long)]
    pub binary: bool,
    /// Realistic chat messages instead of a letter pattern: JSON as the ringws chat sends it,
    /// sixteen different texts in turn, about 200 bytes (--size and --binary are ignored).
    #[arg(long, conflicts_with = "binary")]
    pub chat_json: bool,
    /// The server sends back every byte as it came, still masked (the benchmarks' floor,
    /// `ringws-floor`): echoes are checked byte for byte against the frames sent.
    #[arg(long)]
    pub raw_echo: bool,
    /// Seconds of the measurement window.
    #[arg(short, long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of warm-up before the window.
    #[arg(short, long, default_value_t = 2.0)]
    pub warmup: f64,
}

/// `broadcast` options (-c: subscribers).
#[derive(Debug, Args)]
pub struct BroadcastArgs {
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
    /// Rooms the subscribers are spread over, round-robin (r0, r1, ...).
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Publisher connections, besides the subscribers (each joins the rooms it publishes to).
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Publications per second, over all publishers and rooms.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds of the measurement window.
    #[arg(short, long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of publishing before the window.
    #[arg(short, long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seconds to wait after the last publication for every subscriber to receive it; what has
    /// not arrived by then counts as lost.
    #[arg(long, default_value_t = 2.0)]
    pub drain: f64,
    /// Lost or out-of-order messages fail the run (exit code 1), like any error.
    #[arg(long)]
    pub strict: bool,
    /// Also report the window in parts of this many seconds (deliveries and latency
    /// percentiles of each, with the time it ended): how a long run went, e.g. a soak.
    #[arg(long, value_name = "SECS")]
    pub every: Option<f64>,
    /// Publishers connect to this HOST:PORT instead of the subscribers' server: another node of
    /// a ringws cluster (cross-node fan-out through its broker).
    #[arg(long, value_name = "ADDR")]
    pub publish_addr: Option<String>,
    /// Publish through the chat's backend API at this HOST:PORT (`POST /api/publish`, one at a
    /// time, in order) instead of the publishers' WebSockets; they still connect and join (and
    /// receive). Needs --api-key.
    #[arg(long, value_name = "ADDR", requires = "api_key")]
    pub publish_api: Option<std::net::SocketAddr>,
    /// The API key for --publish-api.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
}

impl BroadcastArgs {
    /// The plan these options describe.
    pub fn plan(&self) -> Result<Plan, String> {
        Plan::new(
            self.common.connections,
            self.publishers,
            self.rooms,
            self.rate,
        )
    }
}

/// `pipelined` options.
#[derive(Debug, Args)]
pub struct PipelinedArgs {
    /// The message options.
    #[command(flatten)]
    pub messages: PingPongArgs,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 16)]
    pub depth: u64,
}

/// `idle` options.
#[derive(Debug, Args)]
pub struct IdleArgs {
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
    /// Seconds to hold the connections (after the setup) before sampling the server's RSS.
    /// Any connection the server closes during the hold is an error.
    #[arg(short, long, visible_alias = "hold", default_value_t = 3.0)]
    pub duration: f64,
    /// The server's ping interval (as its --ping-interval: 5s, 500ms, 1m, or seconds): each
    /// ping's lateness is the time since the connection last sent anything minus this. Without
    /// it pings are still answered and counted, and the "lateness" is the whole interval.
    #[arg(long, value_parser = parse_duration)]
    pub ping_interval: Option<Duration>,
    /// Once the setup is done, write the number of established connections to this file (for
    /// scripts that sample the server over the hold, e.g. benches/heartbeat.sh).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// End every connection with a reset (RST: SO_LINGER 0, then close) instead of the close
    /// handshake, as a crashed client or a dropped network path leaves it.
    #[arg(long)]
    pub abort: bool,
    /// Also measure the server's RSS slope: open N connections first (N < -c), hold them as
    /// long as the hold (-d) and sample the server's RSS, then open the rest and hold and
    /// sample as usual. The report adds the RSS growth per connection between the two counts
    /// (`rss_slope_per_conn`), which does not depend on the allocator's page steps at the
    /// start the way the absolute figure does. Needs --server-pid.
    #[arg(long, value_name = "N")]
    pub sample_at: Option<usize>,
    /// Chat members instead of bare connections (the server in --mode chat): connection i
    /// joins room r{i % R} (the last one joins them all, at most 16) and holds; the report's
    /// memory is then per idle chat member.
    #[arg(long, value_name = "R")]
    pub rooms: Option<usize>,
}

impl IdleArgs {
    /// `--sample-at`, checked against the other options: at least 1, fewer than -c, and only
    /// with --server-pid (there is nothing to sample without it).
    pub fn sample_at(&self) -> Result<Option<usize>, String> {
        let Some(n) = self.sample_at else {
            return Ok(None);
        };
        let c = self.common.connections;
        if n == 0 || n >= c {
            return Err(format!(
                "--sample-at {n} must be at least 1 and fewer than the connections (-c {c})"
            ));
        }
        if self.common.server_pid.is_none() {
            return Err("--sample-at needs --server-pid (the server's RSS is sampled)".to_string());
        }
        Ok(Some(n))
    }
}

/// `summarize` options.
#[derive(Debug, Args)]
pub struct SummarizeArgs {
    /// A file of JSON lines ("-": standard input).
    pub file: PathBuf,
    /// The server other servers are compared to.
    #[arg(long, default_value = "ringws")]
    pub baseline: String,
    /// Also a table of the baseline's server CPU per message divided by this server's, per
    /// scenario (repeat: one column each), e.g. `--versus floor --versus uws-cpp`.
    #[arg(long, value_name = "SERVER")]
    pub versus: Vec<String>,
}

impl Common {
    /// The run setup these options describe.
    pub fn setup(&self) -> Result<Setup, String> {
        let target = match (&self.url, &self.addr) {
            (Some(u), _) => Target::from_url(u)?,
            (None, Some(a)) => Target::from_addr(a)?,
            (None, None) => return Err("--url or --addr is required".to_string()),
        };
        let sources = (1..=self.sources)
            .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
            .collect();
        if self.sources > 0 && !target.addr.ip().is_loopback() {
            return Err("--sources needs a loopback target".to_string());
        }
        let mut target = target;
        target.compress = self.compress;
        let wss = self
            .url
            .as_deref()
            .is_some_and(|u| u.to_ascii_lowercase().starts_with("wss://"));
        target.tls = match (self.tls || wss, &self.tls_ca) {
            (false, None) => None,
            (_, Some(ca)) => Some(crate::target::Tls::trusting(ca, self.tls_resume)?),
            (true, None) => return Err("--tls (or a wss:// URL) needs --tls-ca FILE".to_string()),
        };
        if self.tls_resume && target.tls.is_none() {
            return Err("--tls-resume needs TLS (--tls or a wss:// URL, and --tls-ca)".to_string());
        }
        crate::broadcast::set_room_prefix(&self.room_prefix)?;
        Ok(Setup {
            target,
            connections: self.connections,
            concurrency: self.concurrency,
            connect_timeout: seconds(self.connect_timeout)?,
            sources,
            server: self.server_pid.map(|pid| Probe { pid }),
            also: self
                .also_pid
                .iter()
                .map(|(name, pid)| (name.clone(), Probe { pid: *pid }))
                .collect(),
            publish_target: None,
            publish_api: None,
            progress: !self.quiet,
        })
    }
}

/// A duration as the server's options take it: `5s`, `500ms`, `1m`, or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("'{s}' is not a duration like 5s, 500ms or 1.5");
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let n: f64 = number.trim().parse().map_err(|_| bad())?;
    Duration::try_from_secs_f64(n * scale).map_err(|_| bad())
}

/// A duration from a number of seconds given on the command line.
pub fn seconds(s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("{s}: not a duration in seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn pipelined_takes_depth_and_message_options() {
        let cli = Cli::try_parse_from([
            "ringws-load",
            "pipelined",
            "--addr",
            "127.0.0.1:1",
            "--depth",
            "8",
            "--size",
            "1024",
            "--binary",
        ])
        .unwrap();
        let Command::Pipelined(a) = cli.command else {
            panic!("not pipelined");
        };
        assert_eq!(a.depth, 8);
        assert_eq!(a.messages.size, 1024);
        assert!(a.messages.binary);
        let cli = Cli::try_parse_from(["ringws-load", "flood", "--addr", "127.0.0.1:1"]).unwrap();
        assert!(matches!(cli.command, Command::Flood(_)));
    }

    #[test]
    fn idle_takes_hold_and_ping_interval() {
        let cli = Cli::try_parse_from([
            "ringws-load",
            "idle",
            "--addr",
            "127.0.0.1:1",
            "--hold",
            "60",
            "--ping-interval",
            "5s",
        ])
        .unwrap();
        let Command::Idle(a) = cli.command else {
            panic!("not idle");
        };
        assert_eq!(a.duration, 60.0);
        assert_eq!(a.ping_interval, Some(Duration::from_secs(5)));
        assert_eq!(a.sample_at, None);
        assert_eq!(a.sample_at(), Ok(None));
    }

    #[test]
    fn broadcast_options() {
        let cli = Cli::try_parse_from([
            "ringws-load",
            "broadcast",
            "--addr",
            "127.0.0.1:1",
            "-c",
            "1000",
            "--rate",
            "250",
            "--strict",
        ])
        .unwrap();
        let Command::Broadcast(a) = cli.command else {
            panic!("not broadcast");
        };
        assert_eq!((a.rooms, a.publishers, a.drain), (1, 1, 2.0));
        assert!(a.strict);
        let plan = a.plan().unwrap();
        assert_eq!((plan.subscribers, plan.rate), (1000, 250.0));
        assert_eq!(plan.connections(), 1001);
        let cli = Cli::try_parse_from([
            "ringws-load",
            "broadcast",
            "--addr",
            "127.0.0.1:1",
            "-c",
            "2",
            "--rooms",
            "3",
        ])
        .unwrap();
        let Command::Broadcast(a) = cli.command else {
            panic!("not broadcast");
        };
        assert!(a.plan().is_err());
    }

    fn idle_args(extra: &[&str]) -> IdleArgs {
        let mut argv = vec!["ringws-load", "idle", "--addr", "127.0.0.1:1"];
        argv.extend_from_slice(extra);
        let Command::Idle(a) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not idle");
        };
        a
    }

    #[test]
    fn tls_needs_a_ca_and_wss_implies_tls() {
        let setup = |extra: &[&str]| {
            let mut argv = vec!["ringws-load", "idle"];
            argv.extend_from_slice(extra);
            let Command::Idle(a) = Cli::try_parse_from(argv).unwrap().command else {
                panic!("not idle");
            };
            a.common.setup()
        };
        for args in [
            &["--url", "wss://127.0.0.1:1/"][..],
            &["--addr", "127.0.0.1:1", "--tls"][..],
        ] {
            let e = setup(args).unwrap_err();
            assert!(e.contains("--tls-ca"), "{args:?}: {e}");
        }
        let e = setup(
            &[
                "--url",
                "wss://127.0.0.1:1/",
                "--tls-ca",
                "/nonexistent.pem",
            ][..],
        )
        .unwrap_err();
        assert!(e.contains("/nonexistent.pem"), "{e}");
        let plain = setup(&["--url", "ws://127.0.0.1:1/"][..]).unwrap();
        assert!(plain.target.tls.is_none());
        let e = setup(&["--url", "ws://127.0.0.1:1/", "--tls-resume"][..]).unwrap_err();
        assert!(e.contains("--tls-resume needs TLS"), "{e}");
    }

    #[test]
    fn idle_sample_at() {
        let a = idle_args(&["-c", "19000", "--sample-at", "5000", "--server-pid", "1"]);
        assert_eq!(a.sample_at, Some(5000));
        assert_eq!(a.sample_at(), Ok(Some(5000)));
        // Not fewer than -c, zero, or without a server to sample: refused.
        for extra in [
            &["-c", "100", "--sample-at", "100", "--server-pid", "1"][..],
            &["-c", "100", "--sample-at", "200", "--server-pid", "1"],
            &["-c", "100", "--sample-at", "0", "--server-pid", "1"],
            &["-c", "100", "--sample-at", "50"],
        ] {
            let a = idle_args(extra);
            assert!(a.sample_at().is_err(), "{extra:?}");
        }
        assert!(
            Cli::try_parse_from([
                "ringws-load",
                "idle",
                "--addr",
                "127.0.0.1:1",
                "--sample-at",
                "x"
            ])
            .is_err()
        );
    }
}
