//! The runs: ping-pong, pipelined, flood, broadcast and idle. Each sets up the connections,
//! drives the engine through its phases (warm-up, window, hold), samples the server around the
//! window and returns a report.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::broadcast::Plan;
use crate::engine::{Engine, Workload};
use crate::report::{BroadcastFigures, Report};
use crate::server::{MachineCpu, Probe};
use crate::target::Setup;
use crate::verify::Payload;

/// How long the connections get to answer our close frames at the end.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The message load of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// One message in flight per connection.
    PingPong,
    /// This many messages in flight per connection.
    Pipelined(u64),
    /// As many as the sockets accept.
    Flood,
}

impl Load {
    /// The mode's name in reports.
    pub fn mode(self) -> &'static str {
        match self {
            Load::PingPong => "pingpong",
            Load::Pipelined(_) => "pipelined",
            Load::Flood => "flood",
        }
    }
}

/// Runs a message load: `warmup`, then a window of `duration`.
pub fn messages(
    setup: &Setup,
    load: Load,
    payload: Payload,
    warmup: Duration,
    duration: Duration,
) -> io::Result<Report> {
    let mode = load.mode();
    let mut report = Report::new(mode, setup);
    report.size = Some(payload.len());
    report.binary = Some(payload.kind() == ringws::proto::connection::MessageKind::Binary);
    let workload = match load {
        Load::PingPong => Workload::Echo { payload, depth: 1 },
        Load::Pipelined(depth) => {
            report.depth = Some(depth);
            Workload::Echo { payload, depth }
        }
        Load::Flood => Workload::Flood(payload),
    };
    let mut engine = Engine::new(setup.target.clone(), setup.sources.clone(), workload)?;
    let mut progress = Progress::new(setup.progress, mode);
    report.server_rss_before = setup.server.map(|p| p.rss_bytes()).transpose()?;
    report.setup_secs = establish(
        &mut engine,
        setup.connections,
        setup.connect_timeout,
        setup,
        &mut progress,
    )?
    .as_secs_f64();
    report.established = engine.counters().open;

    measure(
        &mut engine,
        setup,
        Phases {
            warmup,
            duration,
            drain: Duration::ZERO,
            every: None,
        },
        &mut progress,
        &mut report,
    )?;

    // With every connection still open, after exchanging messages.
    report.server_rss_after = setup.server.map(|p| p.rss_bytes()).transpose()?;
    if setup.target.compress {
        let (conns, plain, packed) = engine.compression();
        report.compressed_conns = Some(conns);
        report.compression_ratio = (packed > 0).then(|| plain as f64 / packed as f64);
    }
    engine.close_all(CLOSE_GRACE)?;
    progress.done();
    report.errors = engine.counters().errors;
    report.notes = engine.counters().notes.clone();
    Ok(report)
}

/// A run's phases.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    /// Sending before the window (not measured).
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// After the window, how long a broadcast waits for what is still on its way.
    pub drain: Duration,
    /// Also report the window in parts this long (see [`Report::windows`]).
    pub every: Option<Duration>,
}

/// Starts sending, warms up, then measures a window: messages (or deliveries), latency, the
/// server's and this process's CPU time, the server's RSS at the end; with `every`, also each
/// part of the window.
fn measure(
    engine: &mut Engine,
    setup: &Setup,
    phases: Phases,
    progress: &mut Progress,
    report: &mut Report,
) -> io::Result<()> {
    let Phases {
        warmup,
        duration,
        every,
        ..
    } = phases;
    engine.start_sending();
    progress.phase = "warm-up";
    drive_for(engine, warmup, progress)?;

    let cpu0 = setup.server.map(|p| p.cpu_ns()).transpose()?;
    let self0 = Probe::this_process().cpu_ns()?;
    let also0: Vec<u64> = setup
        .also
        .iter()
        .map(|(_, p)| p.cpu_ns())
        .collect::<io::Result<_>>()?;
    let machine0 = MachineCpu::read().ok();
    engine.open_window();
    let t0 = Instant::now();
    progress.phase = "window";
    // Whole seconds one by one (the per-second timeline), then the rest.
    let mut counted = 0;
    let mut part = PartStart::new(engine);
    for _ in 0..duration.as_secs() {
        drive_for(engine, Duration::from_secs(1), progress)?;
        let now = engine.counters().window_messages;
        report.per_second.push(now - counted);
        counted = now;
        if every.is_some_and(|every| part.at.elapsed() >= every) {
            report.windows.push(part.end(engine));
            part = PartStart::new(engine);
        }
    }
    drive_for(
        engine,
        duration - Duration::from_secs(duration.as_secs()),
        progress,
    )?;
    if every.is_some() && engine.counters().window_messages > part.messages {
        report.windows.push(part.end(engine));
    }
    engine.close_window();
    let window = t0.elapsed();
    let cpu1 = setup.server.map(|p| p.cpu_ns()).transpose()?;
    let self1 = Probe::this_process().cpu_ns()?;
    report.also_cpu_ns = setup
        .also
        .iter()
        .zip(also0)
        .map(|((name, p), before)| Ok((name.clone(), p.cpu_ns()?.saturating_sub(before))))
        .collect::<io::Result<_>>()?;
    if let (Some(m0), Ok(m1)) = (machine0, MachineCpu::read()) {
        let ours = cpu0.zip(cpu1).map_or(0, |(a, b)| b.saturating_sub(a))
            + self1.saturating_sub(self0)
            + report.also_cpu_ns.iter().map(|(_, ns)| ns).sum::<u64>();
        report.others = m1.others_since(&m0, ours, window.as_secs_f64());
    }

    report.window_secs = window.as_secs_f64();
    report.warmup_secs = warmup.as_secs_f64();
    report.messages = engine.counters().window_messages;
    report.sent = engine.counters().window_sent;
    report.latency = engine.counters().latency.summary();
    report.server_cpu_ns = cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a));
    report.client_cpu_ns = Some(self1.saturating_sub(self0));
    report.server_rss_after = setup.server.map(|p| p.rss_bytes()).transpose()?;
    report.open_at_end = engine.counters().open;

    Ok(())
}

/// Runs a broadcast: opens the plan's subscribers and publishers, waits for every join to be
/// acknowledged (at most the connect timeout), publishes for `warmup` and a window of
/// `duration`, then stops publishing and waits up to `drain` for the subscribers to receive
/// everything published. What they have not received by then is lost, as are sequence gaps.
pub fn broadcast(setup: &Setup, plan: Plan, phases: Phases, strict: bool) -> io::Result<Report> {
    let drain = phases.drain;
    let mut report = Report::new("broadcast", setup);
    report.connections = plan.connections();
    let mut engine = Engine::new(
        setup.target.clone(),
        setup.sources.clone(),
        Workload::Broadcast(plan),
    )?;
    engine.publish_target = setup.publish_target.clone();
    if let Some((addr, key)) = &setup.publish_api {
        engine.api = Some(crate::api::ApiPublisher::start(
            *addr,
            key.clone(),
            engine.epoch(),
        ));
    }
    let mut progress = Progress::new(setup.progress, "broadcast");
    let took = establish(
        &mut engine,
        plan.connections(),
        setup.connect_timeout,
        setup,
        &mut progress,
    )?;
    progress.phase = "join";
    let t0 = Instant::now();
    while engine.joins_pending() > 0 && t0.elapsed() < setup.connect_timeout {
        engine.turn(Duration::from_millis(100))?;
        progress.tick(&engine);
    }
    report.setup_secs = (took + t0.elapsed()).as_secs_f64();
    report.established = engine.counters().open;
    let joins_missing = engine.joins_pending();

    measure(&mut engine, setup, phases, &mut progress, &mut report)?;

    engine.stop_sending();
    let api = engine.api.take().map(crate::api::ApiPublisher::finish);
    progress.phase = "drain";
    let t0 = Instant::now();
    while engine.undelivered() > 0 && t0.elapsed() < drain {
        engine.turn(Duration::from_millis(50))?;
        progress.tick(&engine);
    }
    let drained = t0.elapsed();
    let (lost_gaps, out_of_order, publisher_copies) = engine
        .broadcast()
        .map_or((0, 0, 0), |b| (b.lost, b.out_of_order, b.publisher_copies));
    report.broadcast = Some(BroadcastFigures {
        subscribers: plan.subscribers,
        publishers: plan.publishers,
        rooms: plan.rooms,
        rate: plan.rate,
        lost_gaps,
        undelivered: engine.undelivered(),
        out_of_order,
        publisher_copies,
        joins_missing,
        drain_secs: drained.as_secs_f64(),
        strict,
    });
    engine.close_all(CLOSE_GRACE)?;
    progress.done();
    report.errors = engine.counters().errors;
    report.notes = engine.counters().notes.clone();
    if let Some(api) = api {
        let q = |p: f64| api.answer_us.value_at_quantile(p);
        report.api_publish = Some(format!(
            "{} answered 200, {} failed{}; POST answered in p50 {} µs, p99 {} µs, max {} µs",
            api.posted,
            api.errors,
            api.first_error
                .map_or(String::new(), |e| format!(" (first: {e})")),
            q(0.5),
            q(0.99),
            api.answer_us.max()
        ));
        // A refused or failed POST is a publication that never went out: a mismatch.
        report.errors.mismatch += api.errors;
    }
    Ok(report)
}

/// Runs idle: samples the server's RSS, opens the connections, holds them for `duration`
/// (answering the server's pings and timing them against `ping_interval`), samples again. The
/// server's CPU time is sampled over the hold. `ready_file`, if given, receives the number of
/// established connections when the setup is done.
///
/// With `sample_at` (N, fewer than the connections) the setup has two steps: N connections are
/// opened and held for `duration` too before the server's RSS is sampled, then the rest are
/// opened; the report then has the RSS slope per connection between N and all. The settle is as
/// long as the hold so that both samples see the server after the same quiet time. The
/// connect timeout bounds both steps together.
pub fn idle(
    setup: &Setup,
    duration: Duration,
    ping_interval: Option<Duration>,
    ready_file: Option<&Path>,
    sample_at: Option<usize>,
    rooms: Option<usize>,
    abort: bool,
) -> io::Result<Report> {
    let mut report = Report::new("idle", setup);
    report.ping_interval = ping_interval;
    report.server_rss_before = setup.server.map(|p| p.rss_bytes()).transpose()?;
    // Chat members: the broadcast plan's joins, and nothing ever published.
    let workload = match rooms {
        None => Workload::Idle,
        Some(r) => {
            let subscribers = setup.connections.saturating_sub(1);
            let plan = Plan::new(subscribers, 1, r, 1.0)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            Workload::Broadcast(plan)
        }
    };
    let mut engine = Engine::new(setup.target.clone(), setup.sources.clone(), workload)?;
    engine.expect_pings_every(ping_interval.unwrap_or_default());
    let mut progress = Progress::new(setup.progress, "idle");
    let mut budget = setup.connect_timeout;
    if let Some(first) = sample_at.filter(|&n| n < setup.connections) {
        let took = establish(&mut engine, first, budget, setup, &mut progress)?;
        let took = took + joined(&mut engine, budget.saturating_sub(took), &mut progress)?;
        report.setup_secs += took.as_secs_f64();
        budget = budget.saturating_sub(took);
        progress.phase = "settle";
        drive_for(&mut engine, duration, &mut progress)?;
        report.rss_first_conns = Some(engine.counters().open);
        report.server_rss_at_first = setup.server.map(|p| p.rss_bytes()).transpose()?;
    }
    let setup_cpu0 = setup.server.map(|p| p.cpu_ns()).transpose()?;
    let took = establish(&mut engine, setup.connections, budget, setup, &mut progress)?;
    let took = took + joined(&mut engine, budget.saturating_sub(took), &mut progress)?;
    let setup_cpu1 = setup.server.map(|p| p.cpu_ns()).transpose()?;
    if sample_at.filter(|&n| n < setup.connections).is_none() {
        report.setup_server_cpu_ns = setup_cpu0.zip(setup_cpu1).map(|(a, b)| b.saturating_sub(a));
    }
    report.setup_secs += took.as_secs_f64();
    report.established = engine.counters().open;
    report.tls_resumed = engine.counters().tls_resumed;
    if let Some(path) = ready_file {
        write_ready(path, report.established)?;
    }

    progress.phase = "hold";
    let cpu0 = setup.server.map(|p| p.cpu_ns()).transpose()?;
    let self0 = Probe::this_process().cpu_ns()?;
    engine.open_window();
    let t0 = Instant::now();
    drive_for(&mut engine, duration, &mut progress)?;
    engine.close_window();
    report.window_secs = t0.elapsed().as_secs_f64();
    let cpu1 = setup.server.map(|p| p.cpu_ns()).transpose()?;
    let self1 = Probe::this_process().cpu_ns()?;
    report.server_cpu_ns = cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a));
    report.client_cpu_ns = Some(self1.saturating_sub(self0));
    report.server_rss_after = setup.server.map(|p| p.rss_bytes()).transpose()?;
    report.open_at_end = engine.counters().open;
    let c = engine.counters();
    report.pings = c.window_pings;
    report.pings_total = c.pings;
    report.lateness = c.lateness.summary();
    report.lateness_hist = c.lateness.histogram_ms();

    if abort {
        engine.abort_all();
    } else {
        engine.close_all(CLOSE_GRACE)?;
    }
    progress.done();
    report.errors = engine.counters().errors;
    report.notes = engine.counters().notes.clone();
    Ok(report)
}

/// Writes `established` to `path` in one rename, so a reader never sees a partial file.
fn write_ready(path: &Path, established: usize) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{established}\n"))?;
    std::fs::rename(&tmp, path)
}

/// Opens connections until `count` have been started and all have settled, at most
/// `setup.concurrency` in setup at once, for at most `budget` (then the ones still in setup are
/// abandoned). Returns the time taken.
fn establish(
    engine: &mut Engine,
    count: usize,
    budget: Duration,
    setup: &Setup,
    progress: &mut Progress,
) -> io::Result<Duration> {
    progress.phase = "connect";
    let t0 = Instant::now();
    let deadline = t0 + budget;
    loop {
        while engine.counters().started < count && engine.pending() < setup.concurrency.max(1) {
            engine.start_connection();
        }
        let c = engine.counters();
        if c.started >= count && c.settled == c.started {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            engine.abandon_pending();
            break;
        }
        engine.turn((deadline - now).min(Duration::from_millis(100)))?;
        progress.tick(engine);
    }
    Ok(t0.elapsed())
}

/// Runs the loop until every open connection's joins are acknowledged (chat members; at
/// once otherwise), for at most `budget`. Returns the time taken.
fn joined(engine: &mut Engine, budget: Duration, progress: &mut Progress) -> io::Result<Duration> {
    progress.phase = "join";
    let t0 = Instant::now();
    while engine.joins_pending() > 0 && t0.elapsed() < budget {
        engine.turn(Duration::from_millis(100))?;
        progress.tick(engine);
    }
    if engine.joins_pending() > 0 {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{} joins not acknowledged in time", engine.joins_pending()),
        ));
    }
    Ok(t0.elapsed())
}

/// Runs the loop for `d`.
fn drive_for(engine: &mut Engine, d: Duration, progress: &mut Progress) -> io::Result<()> {
    let deadline = Instant::now() + d;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        engine.turn((deadline - now).min(Duration::from_millis(100)))?;
        progress.tick(engine);
    }
}

/// Where a part of the window (`--every`) started.
struct PartStart {
    at: Instant,
    messages: u64,
    latency: crate::stats::Latency,
}

impl PartStart {
    fn new(engine: &Engine) -> Self {
        Self {
            at: Instant::now(),
            messages: engine.counters().window_messages,
            latency: engine.counters().latency.clone(),
        }
    }

    /// The part from its start to now.
    fn end(&self, engine: &Engine) -> crate::report::Part {
        let c = engine.counters();
        crate::report::Part {
            ended_unix_secs: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            secs: self.at.elapsed().as_secs_f64(),
            messages: c.window_messages - self.messages,
            latency: c.latency.since(&self.latency),
        }
    }
}

/// The status line on stderr, updated once a second: on a terminal only (indicatif).
struct Progress {
    /// The status line; hidden (drawing nothing) when stderr is not a terminal, or with
    /// `--quiet`.
    bar: indicatif::ProgressBar,
    mode: &'static str,
    phase: &'static str,
    last: Instant,
    last_messages: u64,
    last_pings: u64,
}

impl Progress {
    fn new(on: bool, mode: &'static str) -> Self {
        // indicatif's stderr target draws only on a terminal: piped into a file or a script,
        // the tool writes nothing but its report.
        let bar = if on {
            indicatif::ProgressBar::new_spinner()
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{prefix} {elapsed}] {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_prefix(mode);
        bar.enable_steady_tick(Duration::from_millis(200));
        Self {
            bar,
            mode,
            phase: "",
            last: Instant::now(),
            last_messages: 0,
            last_pings: 0,
        }
    }

    fn tick(&mut self, engine: &Engine) {
        let elapsed = self.last.elapsed();
        if self.bar.is_hidden() || elapsed < Duration::from_secs(1) {
            return;
        }
        let c = engine.counters();
        let secs = elapsed.as_secs_f64();
        let rate = (c.messages - self.last_messages) as f64 / secs;
        let ping_rate = (c.pings - self.last_pings) as f64 / secs;
        self.last = Instant::now();
        self.last_messages = c.messages;
        self.last_pings = c.pings;
        self.bar.set_message(format!(
            "{}: open {}/{} msg/s {:.0} pings/s {:.0} errors {}",
            self.phase,
            c.open,
            c.started,
            rate,
            ping_rate,
            c.errors.total()
        ));
    }

    fn done(&self) {
        if !self.bar.is_hidden() {
            self.bar.finish_with_message(format!("{} done", self.mode));
        }
    }
}
