//! The broadcast (pub/sub) load over the ringws chat protocol: subscribers spread over rooms,
//! publishers sending at a fixed total rate, and the check of what every subscriber receives.
//!
//! Connections `0..S` are subscribers, subscriber `i` in room `r{i % R}`; connections
//! `S..S+P` are publishers. Publication `k` (the `k`-th since the start, due at `k / rate`
//! seconds) goes to room `k % R`, sent by one of the publishers serving that room in turn (see
//! [`Plan::assign`]). Every connection joins its rooms first:
//!
//! ```json
//! → {"op":"join","room":"r0"}
//! ← {"op":"joined","room":"r0",...}
//! → {"op":"send","room":"r0","text":"<publisher>:<seq>:<send time, ns since the tool's start>"}
//! ← {"op":"message","room":"r0",...,"text":"0:17:1234567890",...}
//! ```
//!
//! `seq` counts per publisher and room from 1, so a subscriber sees every publisher's sequence
//! without gaps and in order: a gap is a lost message, a number at or below the last one seen is
//! out of order (or duplicated). The latency of a delivery is its read time minus the send time
//! in its text (one clock: the tool's own). Frames with another `op` (a welcome, presence) are
//! ignored; an `error` from the server is a mismatch.

use std::time::Duration;

/// Rooms one connection may join on ringws by default (`--max-rooms`): a publisher must not
/// need more.
pub const MAX_ROOMS_PER_CONN: usize = 16;

/// Who publishes what to whom.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Subscriber connections.
    pub subscribers: usize,
    /// Publisher connections.
    pub publishers: usize,
    /// Rooms.
    pub rooms: usize,
    /// Publications per second, over all publishers and rooms.
    pub rate: f64,
}

/// What a connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Joins one room and receives.
    Subscriber {
        /// Its room.
        room: usize,
    },
    /// Joins the rooms it serves and publishes to them.
    Publisher(usize),
}

impl Plan {
    /// A checked plan.
    pub fn new(
        subscribers: usize,
        publishers: usize,
        rooms: usize,
        rate: f64,
    ) -> Result<Self, String> {
        if rooms == 0 || publishers == 0 {
            return Err("--rooms and --publishers must be at least 1".to_string());
        }
        if subscribers < rooms {
            return Err(format!(
                "-c {subscribers} subscribers leave some of the {rooms} rooms empty"
            ));
        }
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!("--rate {rate}: must be a positive number"));
        }
        let plan = Self {
            subscribers,
            publishers,
            rooms,
            rate,
        };
        let most = plan.rooms_of(0).len();
        if most > MAX_ROOMS_PER_CONN {
            return Err(format!(
                "{rooms} rooms over {publishers} publishers is {most} rooms per publisher: \
                 a ringws connection may join {MAX_ROOMS_PER_CONN}; use more --publishers"
            ));
        }
        Ok(plan)
    }

    /// All connections: subscribers, then publishers.
    pub fn connections(&self) -> usize {
        self.subscribers + self.publishers
    }

    /// Connection `conn`'s role.
    pub fn role(&self, conn: usize) -> Role {
        if conn < self.subscribers {
            Role::Subscriber {
                room: conn % self.rooms,
            }
        } else {
            Role::Publisher(conn - self.subscribers)
        }
    }

    /// The rooms connection `conn` joins.
    pub fn rooms_of_conn(&self, conn: usize) -> Vec<usize> {
        match self.role(conn) {
            Role::Subscriber { room } => vec![room],
            Role::Publisher(p) => self.rooms_of(p),
        }
    }

    /// The rooms publisher `p` serves: with at least as many publishers as rooms, room
    /// `p % R`; with fewer, every room `r` with `r % P == p`.
    pub fn rooms_of(&self, p: usize) -> Vec<usize> {
        if self.publishers >= self.rooms {
            vec![p % self.rooms]
        } else {
            (p..self.rooms).step_by(self.publishers).collect()
        }
    }

    /// How many publishers serve `room`.
    pub fn publishers_of(&self, room: usize) -> usize {
        if self.publishers >= self.rooms {
            (self.publishers - room).div_ceil(self.rooms)
        } else {
            1
        }
    }

    /// Publication `k`'s room and publisher: room `k % R`, and the publishers serving that room
    /// take its publications in turn.
    pub fn assign(&self, k: u64) -> (usize, usize) {
        let rooms = self.rooms as u64;
        let room = (k % rooms) as usize;
        if self.publishers >= self.rooms {
            let turn = (k / rooms) % self.publishers_of(room) as u64;
            (room, room + self.rooms * turn as usize)
        } else {
            (room, room % self.publishers)
        }
    }

    /// Publications due in the first `elapsed` of publishing (the first is due at once).
    pub fn due(&self, elapsed: Duration) -> u64 {
        (elapsed.as_secs_f64() * self.rate).floor() as u64 + 1
    }

    /// When publication `k` is due, after the start of publishing.
    pub fn due_at(&self, k: u64) -> Duration {
        Duration::from_secs_f64(k as f64 / self.rate)
    }
}

/// The rooms' names: this prefix and the room's number (`--room-prefix`, `r` by default), so
/// several runs against one server keep to rooms of their own.
static ROOM_PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets the rooms' name prefix, before any connection: 1 to 32 of `[A-Za-z0-9_-]`.
pub fn set_room_prefix(prefix: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(format!(
            "--room-prefix {prefix:?}: 1 to 32 letters, digits, '_' or '-'"
        ));
    }
    ROOM_PREFIX
        .set(prefix.to_owned())
        .map_err(|_| "--room-prefix: set twice".to_owned())
}

/// The rooms' name prefix.
pub fn room_prefix() -> &'static str {
    ROOM_PREFIX.get().map_or("r", String::as_str)
}

/// The join request for `room`.
pub fn join_request(room: usize) -> String {
    format!(r#"{{"op":"join","room":"{}{room}"}}"#, room_prefix())
}

/// Appends the send request of publisher `publisher`'s message `seq` to `room`, stamped with
/// `sent_ns`, to `out`.
pub fn write_send(out: &mut Vec<u8>, room: usize, stamp: Stamp) {
    use std::io::Write;
    let Stamp {
        publisher,
        seq,
        sent_ns,
    } = stamp;
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        r#"{{"op":"send","room":"{}{room}","text":"{publisher}:{seq}:{sent_ns}"}}"#,
        room_prefix()
    );
}

/// What a publication's text carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The publisher's index.
    pub publisher: usize,
    /// The publication's number for this publisher and room, from 1.
    pub seq: u64,
    /// When it was written, ns since the tool's start.
    pub sent_ns: u64,
}

/// Parses a publication's text, `<publisher>:<seq>:<sent ns>` (decimal digits only).
pub fn parse_stamp(text: &[u8]) -> Option<Stamp> {
    let mut parts = text.split(|&b| b == b':');
    let mut number = || -> Option<u64> {
        let digits = parts.next()?;
        if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    let stamp = Stamp {
        publisher: usize::try_from(number()?).ok()?,
        seq: number()?,
        sent_ns: number()?,
    };
    parts.next().is_none().then_some(stamp)
}

/// The top-level `op` and `text` string fields of a JSON object, raw (escapes not decoded: this
/// protocol's values have none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    /// `op`, if a string.
    pub op: Option<&'a [u8]>,
    /// `text`, if a string.
    pub text: Option<&'a [u8]>,
}

/// Reads `op` and `text` out of one JSON object, skipping every other member whatever its
/// value; `None` if `json` is not one well-formed object (as far as the scan looks: numbers and
/// literals are skipped, not checked). Allocates nothing: this runs for every delivery.
pub fn scan(json: &[u8]) -> Option<Fields<'_>> {
    let mut s = Scanner { b: json, i: 0 };
    let mut fields = Fields::default();
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            s.ws();
            let key = s.string()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            if s.peek() == Some(b'"') {
                let value = s.string()?;
                match key {
                    b"op" => fields.op = Some(value),
                    b"text" => fields.text = Some(value),
                    _ => {}
                }
            } else {
                s.skip_value()?;
            }
            s.ws();
            match s.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    (s.i == json.len()).then_some(fields)
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    /// A string at the cursor: its raw contents, between the quotes.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match self.next()? {
                b'"' => return Some(&self.b[start..self.i - 1]),
                b'\\' => {
                    self.next()?;
                }
                _ => {}
            }
        }
    }

    /// Any value at the cursor: a string, an object or array (nested, strings inside them
    /// skipped as strings), or a number or literal (up to the next delimiter).
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth -= 1,
                        _ => {}
                    }
                    self.i += 1;
                    if depth == 0 {
                        return Some(());
                    }
                }
            }
            _ => {
                let start = self.i;
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')
                ) {
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }
}

/// How a received sequence number relates to the last one seen from the same publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The next one.
    Next,
    /// Later than the next: this many in between were lost.
    Gap(u64),
    /// At or before the last one seen: out of order or duplicated.
    Stale,
}

/// Checks `seq` against `last` (0: none yet) and moves `last` forward.
pub fn check_seq(last: &mut u64, seq: u64) -> Order {
    if seq <= *last {
        return Order::Stale;
    }
    let gap = seq - *last - 1;
    *last = seq;
    if gap == 0 {
        Order::Next
    } else {
        Order::Gap(gap)
    }
}

/// What a received text frame was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A subscriber's delivery, sent this many ns before `now_ns`.
    Delivery {
        /// Its latency, ns.
        latency_ns: u64,
    },
    /// A publisher got a copy of a publication (its own or another's).
    PublisherCopy,
    /// A join was acknowledged.
    Joined,
    /// Something else (a welcome, presence).
    Ignored,
}

/// The run's broadcast state: what was published, what each subscriber saw.
#[derive(Debug, Clone)]
pub struct State {
    /// The plan.
    pub plan: Plan,
    /// Per subscriber and publisher (`i * P + p`): the last sequence number received.
    last: Vec<u64>,
    /// Per publisher and room (`p * R + r`): the last sequence number sent.
    sent: Vec<u64>,
    /// Per connection: joins not acknowledged yet.
    owed_joins: Vec<u32>,
    /// Publications made so far (the next one's `k`).
    pub next: u64,
    /// Messages missing between two received ones (sequence gaps), over the whole run.
    pub lost: u64,
    /// Messages at or before the last one seen from their publisher.
    pub out_of_order: u64,
    /// Copies of publications received by publishers.
    pub publisher_copies: u64,
}

impl State {
    /// Nothing sent or received yet.
    pub fn new(plan: Plan) -> Self {
        Self {
            plan,
            last: vec![0; plan.subscribers * plan.publishers],
            sent: vec![0; plan.publishers * plan.rooms],
            owed_joins: (0..plan.connections())
                .map(|c| plan.rooms_of_conn(c).len() as u32)
                .collect(),
            next: 0,
            lost: 0,
            out_of_order: 0,
            publisher_copies: 0,
        }
    }

    /// Joins connection `conn` is still owed.
    pub fn owed_joins(&self, conn: usize) -> u32 {
        self.owed_joins.get(conn).copied().unwrap_or(0)
    }

    /// Takes publication `k`'s number: its room, publisher and sequence number.
    pub fn take(&mut self) -> (usize, usize, u64) {
        let (room, p) = self.plan.assign(self.next);
        self.next += 1;
        let seq = &mut self.sent[p * self.plan.rooms + room];
        *seq += 1;
        (room, p, *seq)
    }

    /// Handles text frame `text` received on connection `conn` at `now_ns`.
    pub fn receive(
        &mut self,
        conn: usize,
        text: &[u8],
        now_ns: u64,
    ) -> Result<Received, &'static str> {
        let fields = scan(text).ok_or("not a JSON object")?;
        match fields.op {
            Some(b"message") => {}
            Some(b"joined") => {
                let owed = self.owed_joins.get_mut(conn).ok_or("no such connection")?;
                *owed = owed.checked_sub(1).ok_or("joined more than asked")?;
                return Ok(Received::Joined);
            }
            Some(b"error") => return Err("the server answered with an error"),
            _ => return Ok(Received::Ignored),
        }
        let stamp = fields
            .text
            .and_then(parse_stamp)
            .ok_or("a message whose text is not publisher:seq:ns")?;
        if stamp.publisher >= self.plan.publishers {
            return Err("a message from an unknown publisher");
        }
        let Role::Subscriber { .. } = self.plan.role(conn) else {
            self.publisher_copies += 1;
            return Ok(Received::PublisherCopy);
        };
        let last = &mut self.last[conn * self.plan.publishers + stamp.publisher];
        match check_seq(last, stamp.seq) {
            Order::Next => {}
            Order::Gap(n) => self.lost += n,
            Order::Stale => self.out_of_order += 1,
        }
        Ok(Received::Delivery {
            latency_ns: now_ns.saturating_sub(stamp.sent_ns),
        })
    }

    /// Messages published to the rooms of the subscribers for which `open(i)` holds and not
    /// received by them (yet): after the last gap-free message each saw from each publisher.
    pub fn undelivered(&self, open: impl Fn(usize) -> bool) -> u64 {
        let plan = &self.plan;
        let mut missing = 0;
        for i in (0..plan.subscribers).filter(|&i| open(i)) {
            let room = i % plan.rooms;
            for p in 0..plan.publishers {
                let sent = self.sent[p * plan.rooms + room];
                missing += sent.saturating_sub(self.last[i * plan.publishers + p]);
            }
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_checks() {
        assert!(Plan::new(10, 1, 1, 100.0).is_ok());
        assert!(Plan::new(10, 0, 1, 100.0).is_err());
        assert!(Plan::new(10, 1, 0, 100.0).is_err());
        assert!(Plan::new(3, 1, 4, 100.0).is_err());
        assert!(Plan::new(10, 1, 1, 0.0).is_err());
        assert!(Plan::new(10, 1, 1, f64::NAN).is_err());
        // 17 rooms for one publisher: more than a ringws connection may join.
        assert!(Plan::new(100, 1, 16, 1.0).is_ok());
        assert!(Plan::new(100, 1, 17, 1.0).is_err());
        assert!(Plan::new(100, 2, 17, 1.0).is_ok());
    }

    #[test]
    fn roles_and_rooms() {
        let plan = Plan::new(5, 2, 2, 10.0).unwrap();
        assert_eq!(plan.connections(), 7);
        assert_eq!(plan.role(0), Role::Subscriber { room: 0 });
        assert_eq!(plan.role(3), Role::Subscriber { room: 1 });
        assert_eq!(plan.role(5), Role::Publisher(0));
        assert_eq!(plan.rooms_of_conn(6), vec![1]);
        // Fewer publishers than rooms: each serves every P-th room.
        let plan = Plan::new(10, 2, 5, 10.0).unwrap();
        assert_eq!(plan.rooms_of(0), vec![0, 2, 4]);
        assert_eq!(plan.rooms_of(1), vec![1, 3]);
        assert_eq!(plan.publishers_of(3), 1);
        // More publishers than rooms: room r has publishers r, r + R, ...
        let plan = Plan::new(10, 5, 2, 10.0).unwrap();
        assert_eq!((plan.publishers_of(0), plan.publishers_of(1)), (3, 2));
        assert_eq!(plan.rooms_of(4), vec![0]);
    }

    #[test]
    fn publications_are_spread_over_rooms_and_publishers() {
        let plan = Plan::new(10, 5, 2, 10.0).unwrap();
        let got: Vec<_> = (0..10).map(|k| plan.assign(k)).collect();
        assert_eq!(
            got,
            [
                (0, 0),
                (1, 1),
                (0, 2),
                (1, 3),
                (0, 4),
                (1, 1),
                (0, 0),
                (1, 3),
                (0, 2),
                (1, 1)
            ]
        );
        // Every publication's publisher serves its room.
        for (p, r) in [(1, 2), (1, 1), (3, 7), (4, 4), (16, 1)] {
            let plan = Plan::new(100, p, r, 1.0).unwrap();
            for k in 0..50 {
                let (room, publisher) = plan.assign(k);
                assert_eq!(room, k as usize % r);
                assert!(plan.rooms_of(publisher).contains(&room), "{p} {r} {k}");
            }
        }
    }

    #[test]
    fn schedule() {
        let plan = Plan::new(1, 1, 1, 1000.0).unwrap();
        assert_eq!(plan.due(Duration::ZERO), 1);
        assert_eq!(plan.due(Duration::from_micros(999)), 1);
        assert_eq!(plan.due(Duration::from_millis(1)), 2);
        assert_eq!(plan.due(Duration::from_secs(2)), 2001);
        assert_eq!(plan.due_at(1500), Duration::from_millis(1500));
        let plan = Plan::new(1, 1, 1, 0.5).unwrap();
        assert_eq!(plan.due(Duration::from_secs(3)), 2);
        assert_eq!(plan.due_at(2), Duration::from_secs(4));
    }

    #[test]
    fn requests() {
        assert_eq!(join_request(3), r#"{"op":"join","room":"r3"}"#);
        let mut out = b"x".to_vec();
        let stamp = Stamp {
            publisher: 2,
            seq: 17,
            sent_ns: 1_234_567_890,
        };
        write_send(&mut out, 4, stamp);
        assert_eq!(
            out,
            br#"x{"op":"send","room":"r4","text":"2:17:1234567890"}"#
        );
        let fields = scan(&out[1..]).unwrap();
        assert_eq!(parse_stamp(fields.text.unwrap()), Some(stamp));
    }

    #[test]
    fn stamps() {
        assert_eq!(
            parse_stamp(b"0:1:0"),
            Some(Stamp {
                publisher: 0,
                seq: 1,
                sent_ns: 0
            })
        );
        let max = format!("1:{}:{}", u64::MAX, u64::MAX);
        assert_eq!(parse_stamp(max.as_bytes()).unwrap().sent_ns, u64::MAX);
        for bad in [
            &b""[..],
            b"1:2",
            b"1:2:3:4",
            b"1::3",
            b"a:2:3",
            b"1:+2:3",
            b"1:2:3 ",
            b"1:2:18446744073709551616",
            b"1:2:-3",
        ] {
            assert_eq!(parse_stamp(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn scans_the_servers_messages() {
        // ringws's message frame: other fields before and after the text.
        let ringws = br#"{"op":"message","room":"r0","from":"0.12.1","name":null,"ts":1764806400000,"seq":42,"text":"0:5:99","online":3}"#;
        assert_eq!(
            scan(ringws),
            Some(Fields {
                op: Some(b"message"),
                text: Some(b"0:5:99")
            })
        );
        // JSON.stringify's, and whitespace, nesting and escapes elsewhere.
        let js = br#" { "op" : "message" , "room":"r0","text":"1:2:3","ts":1.5e3 } "#;
        assert_eq!(scan(js).unwrap().text, Some(&b"1:2:3"[..]));
        let nested =
            br#"{"heartbeat":{"ping":"p}i\"ng","x":[1,{"a":"]"}]},"op":"welcome","ok":true}"#;
        assert_eq!(
            scan(nested),
            Some(Fields {
                op: Some(b"welcome"),
                text: None
            })
        );
        assert_eq!(scan(b"{}"), Some(Fields::default()));
        // A text with an escape stays raw.
        assert_eq!(
            scan(br#"{"text":"a\"b"}"#).unwrap().text,
            Some(&br#"a\"b"#[..])
        );
        for bad in [
            &b""[..],
            b"[]",
            b"{",
            br#"{"op":"message""#,
            br#"{"op" "message"}"#,
            br#"{"op":}"#,
            br#"{"op":"message"} x"#,
            br#"{"op":"message",}"#,
            br#"{"x":{"a":1}"#,
            b"{op:1}",
        ] {
            assert_eq!(scan(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn sequence_checks() {
        let mut last = 0;
        assert_eq!(check_seq(&mut last, 1), Order::Next);
        assert_eq!(check_seq(&mut last, 2), Order::Next);
        assert_eq!(check_seq(&mut last, 5), Order::Gap(2));
        assert_eq!(last, 5);
        assert_eq!(check_seq(&mut last, 4), Order::Stale);
        assert_eq!(check_seq(&mut last, 5), Order::Stale);
        assert_eq!(last, 5);
        assert_eq!(check_seq(&mut last, 6), Order::Next);
    }

    fn message(text: &str) -> Vec<u8> {
        format!(r#"{{"op":"message","room":"r0","text":"{text}","ts":1}}"#).into_bytes()
    }

    #[test]
    fn deliveries_losses_and_copies() {
        // Subscribers 0..3 in rooms 0, 1, 0; publishers 0 and 1 (connections 3 and 4).
        let plan = Plan::new(3, 2, 2, 10.0).unwrap();
        let mut s = State::new(plan);
        assert_eq!((s.owed_joins(0), s.owed_joins(3)), (1, 1));
        assert_eq!(
            s.receive(0, br#"{"op":"welcome","id":"x"}"#, 0),
            Ok(Received::Ignored)
        );
        assert_eq!(
            s.receive(0, br#"{"op":"joined","room":"r0","online":1}"#, 0),
            Ok(Received::Joined)
        );
        assert_eq!(s.owed_joins(0), 0);
        assert!(s.receive(0, br#"{"op":"joined","room":"r0"}"#, 0).is_err());

        // Publications 0..4: rooms 0, 1, 0, 1; publishers 0, 1, 0, 1.
        let taken: Vec<_> = (0..4).map(|_| s.take()).collect();
        assert_eq!(taken, [(0, 0, 1), (1, 1, 1), (0, 0, 2), (1, 1, 2)]);
        assert_eq!(
            s.receive(0, &message("0:1:1000"), 1500),
            Ok(Received::Delivery { latency_ns: 500 })
        );
        // Subscriber 2 misses the first: seen as lost when the second arrives.
        assert_eq!(
            s.receive(2, &message("0:2:2000"), 1000),
            Ok(Received::Delivery { latency_ns: 0 })
        );
        assert_eq!(s.lost, 1);
        assert_eq!(s.receive(2, &message("0:1:1000"), 3000).map(drop), Ok(()));
        assert_eq!(s.out_of_order, 1);
        assert_eq!(
            s.receive(4, &message("1:1:1"), 5),
            Ok(Received::PublisherCopy)
        );
        assert_eq!(s.publisher_copies, 1);
        // Subscriber 0 still owes 0:2; subscriber 1 both of room 1's; subscriber 2 nothing.
        assert_eq!(s.undelivered(|_| true), 3);
        assert_eq!(s.undelivered(|i| i != 1), 1);

        assert!(s.receive(0, &message("2:1:1"), 5).is_err());
        assert!(s.receive(0, &message("hello"), 5).is_err());
        assert!(
            s.receive(0, br#"{"op":"error","code":"not_joined"}"#, 5)
                .is_err()
        );
        assert!(s.receive(0, b"not json", 5).is_err());
    }
}
