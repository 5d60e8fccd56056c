//! The reconnect storm over the ringws chat protocol: M members of one room, all behind by B
//! messages, reconnect at once and resume with `since`; how long until every one has recovered,
//! and what a recovered message costs the servers against a live delivery.
//!
//! ```text
//!  1. M members connect (round-robin over --url), join the room: its epoch and offset
//!  2. live: the publisher (--publish-url) sends B messages; every member gets them
//!     (the servers' CPU over it, per delivery: the live figure)
//!  3. the members disconnect; the publisher sends B more (each member now B behind)
//!  4. the storm: all M reconnect at once, join with since {epoch, offset}; each must get
//!     joined{recovered:true} and the B missed messages, offsets without a gap, then it is done
//!     (the servers' CPU from the first connect to the last done, per recovered message)
//! ```
//!
//! The storm's CPU includes the M handshakes (a real storm has them too). Everything is
//! checked: a member that is not recovered, sees a gap, a duplicate or an error fails the run.

use std::collections::HashMap;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use ringws::proto::Config;
use ringws::proto::connection::{Event, Sink};
use ringws::proto::frame::OpCode;
use serde_json::{Value, json};

use crate::client::{Client, Phase};
use crate::handshake::{self, check_response};
use crate::rng::Rng;
use crate::server::Probe;
use crate::target::Target;

/// What the storm needs.
#[derive(Debug, Clone)]
pub struct Storm {
    /// Where the members connect, round-robin.
    pub members_at: Vec<Target>,
    /// Where the publisher connects.
    pub publisher_at: Target,
    /// Members.
    pub members: usize,
    /// Messages each member is behind.
    pub behind: usize,
    /// The room.
    pub room: String,
    /// Processes whose CPU time is sampled, by name.
    pub probes: Vec<(String, Probe)>,
    /// How long each phase may take.
    pub timeout: Duration,
}

/// One member: its connection and where it is in the room.
struct Member {
    c: Client,
    /// Text messages received and not yet looked at.
    texts: Vec<Vec<u8>>,
    welcomed: bool,
    joined: bool,
    /// The last offset had.
    offset: u64,
    /// When it had every message up to the target.
    done: Option<Instant>,
    closed: bool,
}

/// Collects a connection's text messages; pongs and close replies go to its output.
struct Collect<'a> {
    out: &'a mut Vec<u8>,
    texts: &'a mut Vec<Vec<u8>>,
    closed: bool,
}

impl Sink for Collect<'_> {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Text(t) => self.texts.push(t.as_bytes().to_vec()),
            Event::Close { .. } => self.closed = true,
            _ => {}
        }
    }

    fn transmit(&mut self, _opcode: OpCode, frame: &[u8]) {
        self.out.extend_from_slice(frame);
    }
}

/// CPU nanoseconds of each probe now.
fn cpu(probes: &[(String, Probe)]) -> Vec<u64> {
    probes
        .iter()
        .map(|(_, p)| p.cpu_ns().unwrap_or(0))
        .collect()
}

/// The `offset` of a message event, found without parsing the whole object (the texts sent
/// here never contain the key).
fn offset_of(text: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"offset\":";
    let at = text.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits: &[u8] = &text[at..];
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

fn is_op(text: &[u8], op: &str) -> bool {
    let needle = format!("\"op\":\"{op}\"");
    text.windows(needle.len()).any(|w| w == needle.as_bytes())
}

struct Driver {
    poll: Poll,
    events: Events,
    cfg: Config,
    rng: Rng,
    buf: Vec<u8>,
}

impl Driver {
    fn new() -> io::Result<Self> {
        Ok(Driver {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            cfg: Config::client(),
            rng: Rng::from_os(),
            buf: vec![0u8; 64 << 10],
        })
    }

    /// Starts a connection to `target` as token `i` (the upgrade request queued).
    fn connect(&mut self, i: usize, target: &Target) -> io::Result<Member> {
        let key = handshake::key_from(self.rng.bytes16());
        let seed = self.rng.next_u64() as u32;
        let mut c = Client::connect(target.addr, None, key, seed)?;
        handshake::write_request(target, &c.key, &mut c.out);
        if let Some(s) = c.stream.as_mut() {
            self.poll
                .registry()
                .register(s, Token(i), Interest::READABLE | Interest::WRITABLE)?;
        }
        Ok(Member {
            c,
            texts: Vec::new(),
            welcomed: false,
            joined: false,
            offset: 0,
            done: None,
            closed: false,
        })
    }

    /// Closes a connection at once (the server sees the end of the stream).
    fn drop_conn(&mut self, m: &mut Member) {
        if let Some(mut s) = m.c.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        m.c.phase = Phase::Done;
    }

    /// Runs the event loop until `done(members)` or the timeout; `step` sees each member whose
    /// messages arrived.
    fn drive(
        &mut self,
        members: &mut [Member],
        timeout: Duration,
        what: &str,
        mut step: impl FnMut(usize, &mut Member, &Config) -> Result<(), String>,
        mut done: impl FnMut(&[Member]) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while !done(members) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("{what}: not done within {timeout:?}"));
            }
            self.poll
                .poll(&mut self.events, Some(left.min(Duration::from_millis(100))))
                .map_err(|e| e.to_string())?;
            let ready: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
            for i in ready {
                let Some(m) = members.get_mut(i) else {
                    continue;
                };
                self.service(m)
                    .map_err(|e| format!("{what}: connection {i}: {e}"))?;
                if !m.texts.is_empty() {
                    step(i, m, &self.cfg)?;
                }
                if m.closed {
                    return Err(format!("{what}: connection {i} closed by the server"));
                }
                if m.c.has_output() {
                    m.c.flush().map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// Writes what is owed, reads what came: the handshake, then frames.
    fn service(&mut self, m: &mut Member) -> io::Result<()> {
        if m.c.stream.is_none() {
            return Ok(());
        }
        m.c.flush()?;
        if m.c.phase == Phase::Connecting && !m.c.has_output() {
            m.c.phase = Phase::Handshake;
        }
        loop {
            let Some(stream) = m.c.stream.as_mut() else {
                return Ok(());
            };
            let n = match stream.read(&mut self.buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(e),
            };
            let mut start = 0;
            if m.c.phase != Phase::Open {
                m.c.head.extend_from_slice(&self.buf[..n]);
                match check_response(&m.c.head, &m.c.key) {
                    Ok(None) => continue,
                    Ok(Some(len)) => {
                        let extra = m.c.head.len() - len;
                        start = n - extra;
                        m.c.head = Vec::new();
                        m.c.phase = Phase::Open;
                    }
                    Err(e) => return Err(io::Error::other(e.to_string())),
                }
            }
            let mut sink = Collect {
                out: &mut m.c.out,
                texts: &mut m.texts,
                closed: false,
            };
            let data = &mut self.buf[start..n];
            if !data.is_empty() {
                m.c.proto
                    .handle_read(&self.cfg, data, &mut sink)
                    .map_err(|e| io::Error::other(format!("{e:?}")))?;
            }
            m.closed |= sink.closed;
        }
    }
}

/// Queues a chat request on a member's connection.
fn request(m: &mut Member, cfg: &Config, v: &Value) -> Result<(), String> {
    m.c.queue_text(cfg, v.to_string().as_bytes())
        .map_err(|e| format!("cannot send: {e:?}"))
}

/// What the storm measured.
#[derive(Debug, Clone)]
pub struct StormReport {
    /// The options, for the record.
    pub members: usize,
    /// Messages each member was behind.
    pub behind: usize,
    /// From the first reconnect to the last member recovered, ms.
    pub all_recovered_ms: f64,
    /// Each member's time to recover: p50, p99, max (ms).
    pub member_ms: (f64, f64, f64),
    /// Per probe: (name, CPU ns per live delivery, CPU ns per recovered message).
    pub cpu: Vec<(String, f64, f64)>,
}

impl StormReport {
    /// One JSON line.
    pub fn to_json(&self, label: Option<&str>) -> String {
        let cpu: serde_json::Map<String, Value> = self
            .cpu
            .iter()
            .map(|(name, live, rec)| {
                (
                    name.clone(),
                    json!({"live_us_per_delivery": live / 1e3, "recovered_us_per_message": rec / 1e3}),
                )
            })
            .collect();
        json!({
            "mode": "recover", "label": label, "members": self.members, "behind": self.behind,
            "all_recovered_ms": self.all_recovered_ms,
            "member_p50_ms": self.member_ms.0, "member_p99_ms": self.member_ms.1,
            "member_max_ms": self.member_ms.2, "cpu": cpu,
        })
        .to_string()
    }

    /// A few lines for people.
    pub fn to_table(&self) -> String {
        let mut s = format!(
            "{} members, {} behind each: all recovered in {:.0} ms (per member p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms)\n",
            self.members,
            self.behind,
            self.all_recovered_ms,
            self.member_ms.0,
            self.member_ms.1,
            self.member_ms.2
        );
        for (name, live, rec) in &self.cpu {
            s.push_str(&format!(
                "  {name}: {:.2} us CPU per live delivery, {:.2} us per recovered message (x{:.2})\n",
                live / 1e3,
                rec / 1e3,
                if *live > 0.0 { rec / live } else { 0.0 }
            ));
        }
        s
    }
}

/// Runs the storm.
pub fn run(storm: &Storm) -> Result<StormReport, String> {
    if storm.members == 0 || storm.behind == 0 || storm.members_at.is_empty() {
        return Err("-c, --behind and --url must be at least 1".into());
    }
    let mut d = Driver::new().map_err(|e| e.to_string())?;
    let room = storm.room.as_str();
    let m = storm.members;
    let t = storm.timeout;
    // Token m is the publisher; 0..m the members.
    let mut conns: Vec<Member> = Vec::with_capacity(m + 1);
    for i in 0..m {
        let target = &storm.members_at[i % storm.members_at.len()];
        conns.push(d.connect(i, target).map_err(|e| format!("connect: {e}"))?);
    }
    conns.push(
        d.connect(m, &storm.publisher_at)
            .map_err(|e| format!("connect: {e}"))?,
    );
    // 1. Everyone welcomed and joined: the room's epoch and offset.
    let mut epoch = String::new();
    let join = json!({"op": "join", "room": room});
    d.drive(
        &mut conns,
        t,
        "joining",
        |_, mb, cfg| {
            for text in std::mem::take(&mut mb.texts) {
                if !mb.welcomed && is_op(&text, "welcome") {
                    mb.welcomed = true;
                    request(mb, cfg, &join)?;
                } else if is_op(&text, "joined") {
                    let v: Value = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
                    mb.joined = true;
                    mb.offset = v["offset"].as_u64().ok_or("joined without an offset")?;
                    epoch = v["epoch"].as_str().unwrap_or_default().to_owned();
                }
            }
            Ok(())
        },
        |c| c.iter().all(|x| x.joined),
    )?;
    if epoch.is_empty() {
        return Err("the room has no epoch: the server keeps no history".into());
    }
    // 2. Live: B messages to everyone.
    let publish = |d: &mut Driver, conns: &mut [Member], tag: &str| -> Result<u64, String> {
        let p = &mut conns[m];
        for k in 0..storm.behind {
            let v = json!({"op": "send", "room": room, "text": format!("{tag}{k}")});
            request(p, &d.cfg, &v)?;
        }
        p.c.flush().map_err(|e| e.to_string())?;
        Ok(p.offset + storm.behind as u64)
    };
    let check = |mb: &mut Member, target: u64| -> Result<(), String> {
        for text in std::mem::take(&mut mb.texts) {
            if is_op(&text, "error") {
                return Err(format!("error: {}", String::from_utf8_lossy(&text)));
            }
            if !is_op(&text, "message") {
                continue;
            }
            let o = offset_of(&text).ok_or("a message without an offset")?;
            if o != mb.offset + 1 {
                return Err(format!("offset {o} after {}: a gap or a repeat", mb.offset));
            }
            mb.offset = o;
            if o == target && mb.done.is_none() {
                mb.done = Some(Instant::now());
            }
        }
        Ok(())
    };
    let before = cpu(&storm.probes);
    let target = publish(&mut d, &mut conns, "live")?;
    d.drive(
        &mut conns,
        t,
        "live delivery",
        |_, mb, _| check(mb, target),
        |c| c.iter().all(|x| x.offset >= target),
    )?;
    let live: Vec<f64> = cpu(&storm.probes)
        .iter()
        .zip(&before)
        .map(|(a, b)| a.saturating_sub(*b) as f64 / (m * storm.behind) as f64)
        .collect();
    // 3. The members go; B more messages are sent meanwhile.
    let positions: Vec<u64> = conns[..m].iter().map(|x| x.offset).collect();
    for mb in &mut conns[..m] {
        d.drop_conn(mb);
    }
    // (The servers see the members go and stop receiving the room a second later.)
    std::thread::sleep(Duration::from_secs(2));
    let target = publish(&mut d, &mut conns, "missed")?;
    d.drive(
        &mut conns,
        t,
        "publishing",
        |i, mb, _| if i == m { check(mb, target) } else { Ok(()) },
        |c| c[m].offset >= target,
    )?;
    // 4. The storm.
    let before = cpu(&storm.probes);
    let start = Instant::now();
    for i in 0..m {
        let target = &storm.members_at[i % storm.members_at.len()];
        let mut fresh = d
            .connect(i, target)
            .map_err(|e| format!("reconnect: {e}"))?;
        fresh.offset = positions[i];
        conns[i] = fresh;
    }
    let mut recovered = HashMap::new();
    d.drive(
        &mut conns,
        t,
        "recovering",
        |i, mb, cfg| {
            if !mb.welcomed && mb.texts.iter().any(|x| is_op(x, "welcome")) {
                mb.welcomed = true;
                mb.texts.retain(|x| !is_op(x, "welcome"));
                let since = json!({"epoch": epoch, "offset": mb.offset});
                request(
                    mb,
                    cfg,
                    &json!({"op": "join", "room": room, "since": since}),
                )?;
            }
            if let Some(at) = mb.texts.iter().position(|x| is_op(x, "joined")) {
                let joined = mb.texts.remove(at);
                let v: Value = serde_json::from_slice(&joined).map_err(|e| e.to_string())?;
                if v["recovered"] != true {
                    return Err(format!("member {i} not recovered: {v}"));
                }
                recovered.insert(i, ());
            }
            check(mb, target)
        },
        |c| c[..m].iter().all(|x| x.done.is_some()),
    )?;
    let all = start.elapsed();
    let after = cpu(&storm.probes);
    if recovered.len() != m {
        return Err(format!("{} of {m} members told recovered", recovered.len()));
    }
    let mut each: Vec<f64> = conns[..m]
        .iter()
        .filter_map(|x| x.done)
        .map(|at| at.duration_since(start).as_secs_f64() * 1e3)
        .collect();
    each.sort_by(f64::total_cmp);
    let pick = |q: f64| each[((each.len() - 1) as f64 * q).round() as usize];
    let cpu = storm
        .probes
        .iter()
        .enumerate()
        .map(|(k, (name, _))| {
            let rec = after[k].saturating_sub(before[k]) as f64 / (m * storm.behind) as f64;
            (name.clone(), live[k], rec)
        })
        .collect();
    for mb in &mut conns {
        d.drop_conn(mb);
    }
    Ok(StormReport {
        members: m,
        behind: storm.behind,
        all_recovered_ms: all.as_secs_f64() * 1e3,
        member_ms: (pick(0.5), pick(0.99), pick(1.0)),
        cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_ops_are_found() {
        let m = br#"{"seq":12,"offset":12,"op":"message","room":"r","text":"x"}"#;
        assert_eq!(offset_of(m), Some(12));
        assert!(is_op(m, "message") && !is_op(m, "joined"));
        assert_eq!(offset_of(br#"{"op":"message"}"#), None);
    }
}
