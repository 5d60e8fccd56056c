//! The bridge thread: one tokio runtime on one thread, between the [`Link`] the workers fill
//! and the broker.
//!
//! ```text
//!  ┌──────────────┐ connected  ┌──────────────────────────────┐ lost / error / timeout
//!  │ ExpectSession│ ─────────▶ │ Serving: resubscribe, then   │ ───────────────┐
//!  │ (connect,    │            │ publish batches, subscribe / │                │
//!  │  backoff)    │ ◀───────── │ unsubscribe, deliver, ping   │                │
//!  └──────────────┘  retry     └──────────────────────────────┘                │
//!         ▲ after backoff (doubling, jittered, at most reconnect_max)          │
//!         └────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! An outage is logged when it starts and when it ends (with what could not cross), not per
//! attempt or per message.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;

use super::envelope::Incoming;
use super::interest::Interest;
use super::{Broker, BrokerConfig, BrokerError, BrokerRx, BrokerTx, Link, envelope};
use crate::server::{CONTROL_TOPIC, Frame, Inbound, LogEvent, Topic};

/// Most messages delivered to the workers in one batch.
const MAX_BATCH: usize = 1024;
/// Most channels subscribed or unsubscribed in one round trip (a batch is checked for a stop
/// request between two).
const MAX_CHANNELS_PER_BATCH: usize = 1024;
/// Unsubscriptions due within this much of the first one go with it (fewer round trips).
const UNSUBSCRIBE_WINDOW: Duration = Duration::from_millis(250);
/// How long a stopping bridge tries to pass on what the workers handed it last.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// Starts the bridge thread for `broker`, delivering what other nodes publish into `inbound`.
/// It runs until [`Link::stop`].
pub(crate) fn spawn<B: Broker>(
    broker: B,
    cfg: BrokerConfig,
    link: Arc<Link>,
    inbound: Inbound,
) -> io::Result<JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let bridge = Bridge {
        interest: Interest::new(cfg.unsubscribe_linger),
        outage: None,
        workers: vec![Vec::new(); inbound.workers()],
        unsent: 0,
        homes: Vec::new(),
        presence: Default::default(),
        control: Topic::from(CONTROL_TOPIC),
        broker,
        cfg,
        link,
        inbound,
    };
    std::thread::Builder::new()
        .name("ringws-broker".into())
        .spawn(move || {
            rt.block_on(bridge.run());
            // A name lookup still running in the blocking pool is not waited for.
            rt.shutdown_timeout(STOP_GRACE);
        })
}

pub(super) struct Bridge<B> {
    broker: B,
    pub(super) cfg: BrokerConfig,
    pub(super) link: Arc<Link>,
    pub(super) inbound: Inbound,
    pub(super) interest: Interest,
    /// Since when the broker is unreachable, and the drop count then.
    outage: Option<(Instant, u64)>,
    /// Deliveries being gathered for each worker.
    workers: Vec<Vec<(Topic, Frame)>>,
    /// Publications of a batch whose publish failed: counted as dropped with the outage.
    unsent: u64,
    /// What the logs tell the topics' home workers, gathered for one delivery.
    pub(super) homes: Vec<(Topic, LogEvent)>,
    /// This node's presence entries (set again with each new session).
    pub(super) presence: super::presence::Mine,
    /// [`CONTROL_TOPIC`], shared by every control message delivered.
    control: Topic,
}

/// Marks the broker unreachable however the bridge ends (a panic included), so the workers
/// stop handing it publications.
struct Disconnect(Arc<Link>);

impl Drop for Disconnect {
    fn drop(&mut self) {
        self.0.set_connected(false);
    }
}

/// Why a session ended.
enum End {
    Stop,
    Lost(String),
}

impl<B: Broker> Bridge<B> {
    async fn run(mut self) {
        let _disconnect = Disconnect(self.link.clone());
        let link = self.link.clone();
        let mut backoff = self.cfg.reconnect_min;
        while !link.stopping() {
            self.absorb();
            let started = Instant::now();
            let timeout = self.cfg.timeout;
            let connected = tokio::select! {
                r = tokio::time::timeout(timeout, self.broker.connect()) => Some(r),
                _ = until_stop(&link) => None,
            };
            let end = match connected {
                None => End::Stop,
                Some(Ok(Ok((mut tx, mut rx)))) => self.session(&mut tx, &mut rx).await,
                Some(Ok(Err(e))) => End::Lost(e.to_string()),
                Some(Err(_)) => End::Lost(format!("no connection within {timeout:?}")),
            };
            match end {
                End::Stop => break,
                End::Lost(why) => self.went_down(&why),
            }
            if started.elapsed() > self.cfg.reconnect_max.saturating_mul(2) {
                backoff = self.cfg.reconnect_min; // a session that lasted: start over
            }
            self.pause(jitter(backoff)).await;
            backoff = backoff.saturating_mul(2).min(self.cfg.reconnect_max);
        }
        // What the workers handed over last cannot cross any more.
        self.absorb();
    }

    /// Applies what the workers submitted while no session is up: interest is recorded,
    /// publications are dropped (counted).
    fn absorb(&mut self) {
        let pending = self.link.take();
        let now = Instant::now();
        for (w, topic, on) in pending.interest {
            self.interest.apply(w, topic, on, now);
        }
        self.link.count_dropped(pending.outbound.len() as u64);
        self.refuse_log(pending.log, "the broker is unreachable");
        self.refuse_log(pending.log_refused, "too many requests wait for the broker");
    }

    /// Waits `d`, or less if asked to stop; what workers submit meanwhile is absorbed.
    async fn pause(&mut self, d: Duration) {
        let until = tokio::time::Instant::now() + d;
        let link = self.link.clone();
        while !link.stopping() {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return,
                _ = link.woken() => self.absorb(),
            }
        }
    }

    fn went_down(&mut self, why: &str) {
        // What the topics' homes know goes stale: the next session reads what they missed.
        let stale = self.interest.subscribed_topics();
        self.tell_homes(&stale, false);
        self.link.count_failure();
        self.link.set_connected(false);
        self.link.set_subscribed(0);
        let first = self.outage.is_none();
        if first {
            self.link.count_outage();
            self.outage = Some((Instant::now(), self.link.stats().dropped));
        }
        // The batch whose publish failed belongs to the outage's count.
        self.link.count_dropped(std::mem::take(&mut self.unsent));
        if first {
            tracing::warn!(
                broker = %self.link.describe(),
                reason = %why,
                "broker {} unreachable ({why}): rooms are served on this node only, \
                 publications for other nodes are dropped; reconnecting with backoff",
                self.link.describe()
            );
        } else {
            tracing::debug!(broker = %self.link.describe(), reason = %why, "broker {}: still unreachable ({why})", self.link.describe());
        }
    }

    async fn session(&mut self, tx: &mut B::Tx, rx: &mut B::Rx) -> End {
        // What was submitted before the session counts as not crossed.
        self.absorb();
        // Lingering topics are not subscribed again: their homes stop knowing them.
        let before = self.interest.subscribed_topics();
        let all = self.interest.resubscribe();
        let dropped: Vec<Topic> = before.into_iter().filter(|t| !all.contains(t)).collect();
        self.tell_homes(&dropped, false);
        // The servers' control messages: always wanted, never a room.
        if let Err(e) = self
            .timed(tx.subscribe(&[self.channel(CONTROL_TOPIC)]))
            .await
        {
            return End::Lost(format!("subscribing to control messages: {e}"));
        }
        for chunk in all.chunks(MAX_CHANNELS_PER_BATCH) {
            if self.link.stopping() {
                return End::Stop;
            }
            let channels = self.channels(chunk);
            if let Err(e) = self.timed(tx.subscribe(&channels)).await {
                return End::Lost(format!("resubscribing: {e}"));
            }
            self.link.count_command();
        }
        self.link.set_subscribed(self.interest.subscribed());
        if let Err(e) = self.restore_presence(tx).await {
            return End::Lost(format!("restoring presence: {e}"));
        }
        self.link.set_connected(true);
        // What was appended while this node was not subscribed is read back by the homes.
        self.tell_homes(&all, true);
        match self.outage.take() {
            Some((since, dropped)) => tracing::info!(
                broker = %self.link.describe(),
                dropped,
                "broker {} reachable again after {:.1} s: subscribed to {} rooms again; {} \
                 publications could not cross meanwhile",
                self.link.describe(),
                since.elapsed().as_secs_f64(),
                all.len(),
                self.link.stats().dropped - dropped
            ),
            None => tracing::info!(
                broker = %self.link.describe(),
                node = %self.link.node(),
                "broker {}: connected as node {}",
                self.link.describe(),
                self.link.node()
            ),
        }
        let mut last_heard = Instant::now();
        let link = self.link.clone();
        loop {
            if link.stopping() {
                self.last_forward(tx).await;
                return End::Stop;
            }
            let ping_at = last_heard + self.cfg.ping_interval;
            let refresh_at = self.next_refresh();
            let wake_at = self
                .interest
                .next_deadline()
                .map_or(ping_at, |d| d.min(ping_at));
            let wake_at = refresh_at.map_or(wake_at, |r| r.min(wake_at));
            // Not biased: a node whose workers publish all the time (a wake-up always pending)
            // must still receive.
            tokio::select! {
                _ = link.woken() => {
                    if !link.stopping() {
                        if let Err(e) = self.forward(tx).await {
                            return End::Lost(e.to_string());
                        }
                    }
                }
                m = rx.next() => {
                    let Some(first) = m else {
                        return End::Lost("connection closed".into());
                    };
                    last_heard = Instant::now();
                    if let Some(why) = self.receive(first, rx) {
                        return End::Lost(why);
                    }
                }
                _ = tokio::time::sleep_until(wake_at.into()) => {
                    if let Err(e) = self.change_subscriptions(tx).await {
                        return End::Lost(e.to_string());
                    }
                    if Instant::now() >= ping_at {
                        if let Err(e) = self.timed(tx.ping()).await {
                            return End::Lost(format!("ping: {e}"));
                        }
                        last_heard = Instant::now();
                    }
                    if refresh_at.is_some_and(|r| Instant::now() >= r) {
                        if let Err(e) = self.refresh_presence(tx).await {
                            return End::Lost(format!("refreshing presence: {e}"));
                        }
                    }
                }
            }
        }
    }

    /// Stopping: passes on what the workers handed over last, if the broker takes it soon.
    async fn last_forward(&mut self, tx: &mut B::Tx) {
        let pending = self.link.take();
        self.refuse_log(pending.log, "the server is stopping");
        self.refuse_log(pending.log_refused, "the server is stopping");
        let n = pending.outbound.len() as u64;
        if n > 0 {
            let batch = self.encode(&pending.outbound);
            match tokio::time::timeout(STOP_GRACE, tx.publish(&batch)).await {
                Ok(Ok(())) => self.link.count_sent(n),
                _ => self.link.count_dropped(n),
            }
        }
        self.drop_presence(tx, STOP_GRACE).await;
    }

    /// Sends what the workers submitted: publications, then changes of subscriptions.
    async fn forward(&mut self, tx: &mut B::Tx) -> Result<(), BrokerError> {
        let pending = self.link.take();
        let now = Instant::now();
        for (w, topic, on) in pending.interest {
            self.interest.apply(w, topic, on, now);
        }
        if !pending.outbound.is_empty() {
            let batch = self.encode(&pending.outbound);
            let n = batch.len() as u64;
            if let Err(e) = self.timed(tx.publish(&batch)).await {
                self.unsent = n;
                // Every log request is answered, whatever happens to the session.
                self.refuse_log(pending.log, "the broker is unreachable");
                self.refuse_log(pending.log_refused, "the broker is unreachable");
                return Err(e);
            }
            self.link.count_sent(n);
        }
        self.refuse_log(pending.log_refused, "too many requests wait for the broker");
        self.forward_log(tx, pending.log).await?;
        self.change_subscriptions(tx).await
    }

    fn encode(&self, outbound: &[(Topic, Frame)]) -> Vec<(String, Vec<u8>)> {
        let node = self.link.node();
        outbound
            .iter()
            .map(|(topic, frame)| (self.channel(topic), envelope::encode(node, frame)))
            .collect()
    }

    async fn change_subscriptions(&mut self, tx: &mut B::Tx) -> Result<(), BrokerError> {
        let (subscribe, unsubscribe) = self.interest.due(Instant::now(), UNSUBSCRIBE_WINDOW);
        for chunk in subscribe.chunks(MAX_CHANNELS_PER_BATCH) {
            let channels = self.channels(chunk);
            self.timed(tx.subscribe(&channels)).await?;
            self.link.count_command();
            self.tell_homes(chunk, true);
        }
        for chunk in unsubscribe.chunks(MAX_CHANNELS_PER_BATCH) {
            // Stale from now on, whether the command gets through or not.
            self.tell_homes(chunk, false);
            let channels = self.channels(chunk);
            self.timed(tx.unsubscribe(&channels)).await?;
            self.link.count_command();
        }
        self.link.set_subscribed(self.interest.subscribed());
        Ok(())
    }

    /// Delivers `first` and whatever else has already arrived (up to a batch) to the workers
    /// that want it: one inbox lock and at most one wake-up per worker. Returns why the session
    /// ended if it did meanwhile.
    fn receive(&mut self, first: (String, Bytes), rx: &mut B::Rx) -> Option<String> {
        let mut lost = None;
        self.take_in(first);
        for _ in 1..MAX_BATCH {
            match rx.next().now_or_never() {
                Some(Some(m)) => self.take_in(m),
                Some(None) => {
                    lost = Some("connection closed".to_owned());
                    break;
                }
                None => break,
            }
        }
        for (w, batch) in self.workers.iter_mut().enumerate() {
            self.inbound.deliver(w, batch);
        }
        self.flush_homes();
        lost
    }

    fn take_in(&mut self, (channel, payload): (String, Bytes)) {
        let Some(topic) = channel.strip_prefix(self.cfg.channel_prefix.as_str()) else {
            self.link.count_malformed(1);
            return;
        };
        let (origin, frame) = match envelope::decode_any(&payload) {
            Ok(Incoming::Publication(origin, frame)) => (origin, frame),
            Ok(Incoming::Entry(epoch, offset, payload)) if self.cfg.log.is_some() => {
                self.link.count_received(1);
                self.live_entry(topic, epoch, offset, payload);
                return;
            }
            Ok(Incoming::Entry(..)) | Err(_) => {
                self.link.count_malformed(1);
                return;
            }
        };
        if origin == self.link.node() {
            self.link.count_own(1);
            return;
        }
        self.link.count_received(1);
        if topic == CONTROL_TOPIC {
            let event = LogEvent::Control {
                payload: frame.wire().slice(frame.header_len()..),
            };
            self.homes.push((self.control.clone(), event));
            return;
        }
        // No worker wants it (the topic lingers before its unsubscribe): nowhere to go.
        let Some((topic, workers)) = self.interest.workers(topic) else {
            return;
        };
        for &w in workers {
            if let Some(batch) = self.workers.get_mut(usize::from(w)) {
                batch.push((topic.clone(), frame.clone()));
            }
        }
    }

    pub(super) fn channel(&self, topic: &str) -> String {
        format!("{}{topic}", self.cfg.channel_prefix)
    }

    fn channels(&self, topics: &[Topic]) -> Vec<String> {
        topics.iter().map(|t| self.channel(t)).collect()
    }

    /// `f`, or an error after the configured timeout.
    pub(super) async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, BrokerError>>,
    ) -> Result<T, BrokerError> {
        match tokio::time::timeout(self.cfg.timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(format!("no reply within {:?}", self.cfg.timeout).into()),
        }
    }
}

/// Resolves once the bridge is asked to stop.
async fn until_stop(link: &Link) {
    while !link.stopping() {
        link.woken().await;
    }
}

/// `d` scaled by a random factor in [0.5, 1.0): nodes that lost the broker together do not all
/// come back in the same millisecond.
fn jitter(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let f = 0.5 + (h.finish() % 1000) as f64 / 2000.0;
    d.mul_f64(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::NodeId;
    use crate::server::pubsub::Hub;
    use std::collections::HashSet;
    use std::sync::Mutex;
    use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

    /// An in-memory broker: connections refused on demand, a session the test can cut, what
    /// was published and subscribed kept for the test to see.
    #[derive(Default)]
    struct State {
        refuse: u32,
        connects: u32,
        published: Vec<(String, Vec<u8>)>,
        subscribed: HashSet<String>,
        incoming: Option<UnboundedSender<(String, Bytes)>>,
        publish_delay: Duration,
        /// Presence entries (channel, member) → value, kept across sessions (a broker the
        /// link to which was lost, not one that restarted).
        presence: std::collections::BTreeMap<(String, String), Vec<u8>>,
    }

    #[derive(Clone, Default)]
    struct Fake(Arc<Mutex<State>>);
    struct FakeTx(Arc<Mutex<State>>);
    struct FakeRx(UnboundedReceiver<(String, Bytes)>);

    impl Fake {
        fn state(&self) -> std::sync::MutexGuard<'_, State> {
            self.0.lock().unwrap()
        }
        /// A message from another node on `topic`'s channel, if a session is up.
        fn inject(&self, topic: &str, text: &str) -> bool {
            let msg = envelope::encode(NodeId(99), &Frame::text(text));
            let state = self.state();
            state.incoming.as_ref().is_some_and(|tx| {
                tx.send((format!("ringws:room:{topic}"), Bytes::from(msg)))
                    .is_ok()
            })
        }
    }

    impl Broker for Fake {
        type Tx = FakeTx;
        type Rx = FakeRx;
        async fn connect(&mut self) -> Result<(FakeTx, FakeRx), BrokerError> {
            let mut state = self.state();
            state.connects += 1;
            if state.refuse > 0 {
                state.refuse -= 1;
                return Err("connection refused".into());
            }
            let (tx, rx) = unbounded_channel();
            state.incoming = Some(tx);
            state.subscribed.clear();
            Ok((FakeTx(self.0.clone()), FakeRx(rx)))
        }
        fn describe(&self) -> String {
            "fake".into()
        }
    }

    impl BrokerTx for FakeTx {
        async fn publish(&mut self, batch: &[(String, Vec<u8>)]) -> Result<(), BrokerError> {
            let delay = self.0.lock().unwrap().publish_delay;
            tokio::time::sleep(delay).await;
            self.0.lock().unwrap().published.extend_from_slice(batch);
            Ok(())
        }
        async fn subscribe(&mut self, channels: &[String]) -> Result<(), BrokerError> {
            let mut state = self.0.lock().unwrap();
            state.subscribed.extend(channels.iter().cloned());
            Ok(())
        }
        async fn unsubscribe(&mut self, channels: &[String]) -> Result<(), BrokerError> {
            let mut state = self.0.lock().unwrap();
            for c in channels {
                state.subscribed.remove(c);
            }
            Ok(())
        }
        async fn ping(&mut self) -> Result<(), BrokerError> {
            Ok(())
        }
        async fn presence(
            &mut self,
            _cfg: &super::super::PresenceConfig,
            _node: &str,
            batch: &[super::super::PresenceSet<'_>],
        ) -> Result<Vec<bool>, BrokerError> {
            let mut state = self.0.lock().unwrap();
            for p in batch {
                let key = (p.channel.to_owned(), p.member.to_owned());
                match p.value {
                    Some(v) => state.presence.insert(key, v.to_vec()),
                    None => state.presence.remove(&key),
                };
            }
            Ok(vec![false; batch.len()])
        }
    }

    impl BrokerRx for FakeRx {
        async fn next(&mut self) -> Option<(String, Bytes)> {
            self.0.recv().await
        }
    }

    fn start(fake: &Fake) -> (Arc<Link>, Arc<Hub>, JoinHandle<()>) {
        start_with(fake, None)
    }

    fn start_with(
        fake: &Fake,
        log: Option<super::super::LogConfig>,
    ) -> (Arc<Link>, Arc<Hub>, JoinHandle<()>) {
        start_with_cfg(
            fake,
            BrokerConfig {
                log,
                ..BrokerConfig::default()
            },
        )
    }

    fn start_with_cfg(fake: &Fake, cfg: BrokerConfig) -> (Arc<Link>, Arc<Hub>, JoinHandle<()>) {
        let cfg = BrokerConfig {
            node: NodeId(1),
            reconnect_min: Duration::from_millis(5),
            reconnect_max: Duration::from_millis(20),
            ..cfg
        };
        let mut link = Link::new(cfg.node, "fake".into(), cfg.max_pending_bytes);
        link.set_log(cfg.log.is_some(), cfg.presence.is_some(), 4);
        let link = Arc::new(link);
        let hub = Arc::new(Hub::new(2).unwrap());
        let inbound = Inbound { hub: hub.clone() };
        let thread = spawn(fake.clone(), cfg, link.clone(), inbound).unwrap();
        (link, hub, thread)
    }

    fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < Duration::from_secs(5), "{what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn topic(s: &str) -> Topic {
        Arc::from(s)
    }

    #[test]
    fn a_node_that_publishes_all_the_time_still_receives() {
        let fake = Fake::default();
        fake.state().publish_delay = Duration::from_millis(1);
        let (link, hub, thread) = start(&fake);
        link.submit(0, &mut Vec::new(), &mut vec![(topic("t"), true)]);
        wait_for("subscribed", || {
            fake.state().subscribed.contains("ringws:room:t")
        });
        // A worker publishing without pause: a wake-up is always pending for the bridge.
        let publishing = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let publisher = {
            let (link, publishing) = (link.clone(), publishing.clone());
            std::thread::spawn(move || {
                let frame = Frame::text("mine");
                while publishing.load(std::sync::atomic::Ordering::Relaxed) {
                    link.submit(0, &mut vec![(topic("t"), frame.clone())], &mut Vec::new());
                    std::thread::sleep(Duration::from_micros(100));
                }
            })
        };
        wait_for("publishing", || fake.state().published.len() > 20);
        // Meanwhile 100 messages from another node wait to be received.
        for i in 0..100 {
            assert!(fake.inject("t", &format!("{i}")));
        }
        let mut got = Vec::new();
        let start = Instant::now();
        while got.len() < 100 && start.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(1));
            let mut batch = Vec::new(); // (take swaps: it wants an empty vector)
            hub.take(0, &mut batch);
            got.append(&mut batch);
        }
        // The bridge was (and still is) publishing all the while.
        let before = fake.state().published.len();
        wait_for("still publishing", || {
            fake.state().published.len() > before + 5
        });
        publishing.store(false, std::sync::atomic::Ordering::Relaxed);
        publisher.join().unwrap();
        assert_eq!(got.len(), 100, "received while publishing");
        let texts: Vec<_> = got
            .iter()
            .filter_map(|i| i.publication())
            .map(|p| p.frame.payload().to_vec())
            .collect();
        let expected: Vec<_> = (0..100).map(|i| i.to_string().into_bytes()).collect();
        assert_eq!(texts, expected, "in order");
        let mut other = Vec::new();
        hub.take(1, &mut other);
        assert!(other.is_empty(), "worker 1 has no subscriber");
        link.stop();
        thread.join().unwrap();
        assert!(!fake.state().published.is_empty());
    }

    #[test]
    fn unreachable_then_lost_then_back_resubscribes_and_counts() {
        let fake = Fake::default();
        fake.state().refuse = 3;
        let (link, _hub, thread) = start(&fake);
        link.submit(1, &mut Vec::new(), &mut vec![(topic("a"), true)]);
        let frame = Frame::text("x");
        // Refused at first: publications are dropped (and counted), interest is kept.
        link.submit(1, &mut vec![(topic("a"), frame.clone())], &mut Vec::new());
        wait_for("connected", || link.stats().connected);
        assert!(fake.state().connects >= 4, "three refusals, then a session");
        assert!(fake.state().subscribed.contains("ringws:room:a"));
        let s = link.stats();
        assert_eq!((s.outages, s.dropped, s.subscribed), (1, 1, 1));

        link.submit(1, &mut vec![(topic("a"), frame.clone())], &mut Vec::new());
        wait_for("published", || fake.state().published.len() == 1);
        let (channel, payload) = fake.state().published[0].clone();
        assert_eq!(channel, "ringws:room:a");
        let payload = Bytes::from(payload);
        assert_eq!(
            envelope::decode(&payload).unwrap(),
            (NodeId(1), frame.clone())
        );

        // The session is cut: a second outage, then a new session subscribes again.
        fake.state().incoming = None;
        wait_for("reconnected", || {
            link.stats().outages == 2 && link.stats().connected
        });
        wait_for("subscribed again", || {
            fake.state().subscribed.contains("ringws:room:a")
        });
        // Its own publications coming back are skipped.
        let own = envelope::encode(NodeId(1), &frame);
        let tx = fake.state().incoming.clone().unwrap();
        tx.send(("ringws:room:a".into(), Bytes::from(own))).unwrap();
        tx.send(("ringws:room:a".into(), Bytes::from_static(b"junk")))
            .unwrap();
        wait_for("own and malformed counted", || {
            link.stats().own == 1 && link.stats().malformed == 1
        });
        assert_eq!(link.stats().received, 0);
        link.stop();
        thread.join().unwrap();
        assert!(!link.stats().connected, "a stopped bridge is not connected");
    }

    /// The log events delivered to the home workers so far.
    fn log_events(hub: &Hub) -> Vec<crate::server::LogEvent> {
        let mut out = Vec::new();
        for w in 0..2 {
            let mut batch = Vec::new();
            hub.take(w, &mut batch);
            for item in batch {
                if let crate::server::pubsub::Item::Home(req) = item {
                    if let Ok(event) = req.data.downcast::<crate::server::LogEvent>() {
                        out.push(*event);
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_log_request_is_answered_without_a_session_past_the_bound_and_on_failure() {
        use crate::server::{ConnId, LogEvent, LogRange, LogRequest};
        let fake = Fake::default();
        fake.state().refuse = u32::MAX; // no session, ever
        let (link, hub, thread) = start_with(&fake, Some(Default::default()));
        let read = |tag| LogRequest::Read {
            topic: topic("a"),
            range: LogRange::Tail,
            limit: 10,
            tag,
        };
        let append = LogRequest::Append {
            topic: topic("a"),
            from: ConnId::NONE,
            key: Some("k".into()),
            payload: Bytes::from_static(b"{}"),
        };
        // Six requests, four waiting at most: all six answered, as unavailable.
        let mut batch = vec![read(1), append, read(3), read(4), read(5), read(6)];
        link.submit_log(&mut batch);
        let mut got = Vec::new();
        wait_for("answered", || {
            got.extend(log_events(&hub));
            got.len() == 6
        });
        let tags: Vec<u64> = got
            .iter()
            .filter_map(|e| match e {
                LogEvent::Range { tag, result } => {
                    assert!(result.is_err());
                    Some(*tag)
                }
                LogEvent::Appended { key, result, .. } => {
                    assert_eq!((key.as_deref(), result.is_err()), (Some("k"), true));
                    None
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(tags.len(), 5);
        assert_eq!(link.stats().log_unavailable, 6);
        link.stop();
        thread.join().unwrap();

        // With a session, a broker that fails the reads (the fake keeps no logs): answered
        // too, and the session starts again.
        let fake = Fake::default();
        let (link, hub, thread) = start_with(&fake, Some(Default::default()));
        wait_for("connected", || link.stats().connected);
        link.submit_log(&mut vec![read(7)]);
        let mut got = Vec::new();
        wait_for("answered", || {
            got.extend(log_events(&hub));
            !got.is_empty()
        });
        assert!(matches!(
            &got[0],
            LogEvent::Range {
                tag: 7,
                result: Err(_)
            }
        ));
        wait_for("a new session", || fake.state().connects >= 2);
        link.stop();
        thread.join().unwrap();
    }

    #[test]
    fn jitter_stays_within_half_to_all_of_the_wait() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(1000));
            assert!((500..1000).contains(&j.as_millis()), "{j:?}");
        }
    }

    #[test]
    fn presence_refused_while_connected_is_set_by_the_next_refresh_within_the_session() {
        use crate::server::{LogEvent, LogRequest};
        let fake = Fake::default();
        let cfg = BrokerConfig {
            // Refreshed every 100 ms.
            presence: Some(super::super::PresenceConfig {
                ttl: Duration::from_millis(300),
            }),
            ..BrokerConfig::default()
        };
        let (link, hub, thread) = start_with_cfg(&fake, cfg);
        wait_for("connected", || link.stats().connected);
        let _ = log_events(&hub);
        // Six members join at once; four requests may wait: two are refused ("too many
        // requests wait"), with the session up.
        let mut batch: Vec<LogRequest> = (0..6)
            .map(|i| LogRequest::Presence {
                topic: topic("r"),
                member: format!("m{i}").into(),
                value: Some(Bytes::from(format!("v{i}"))),
            })
            .collect();
        link.submit_log(&mut batch);
        let mut got = Vec::new();
        wait_for("answered", || {
            got.extend(log_events(&hub));
            got.len() == 6
        });
        let refused = got
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    LogEvent::PresenceChanged {
                        elsewhere: Err(_),
                        ..
                    }
                )
            })
            .count();
        assert_eq!(refused, 2, "{got:?}");
        // The refresh sets the two refused ones, in the same session.
        let members = |fake: &Fake| -> Vec<String> {
            let state = fake.state();
            state.presence.keys().map(|(_, m)| m.clone()).collect()
        };
        let want: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
        wait_for("all six set by a refresh", || members(&fake) == want);
        assert_eq!(fake.state().connects, 1, "no new session did it");
        link.stop();
        thread.join().unwrap();
    }

    #[test]
    fn presence_changed_while_the_broker_is_unreachable_is_set_and_removed_at_the_next_session() {
        use crate::server::{LogEvent, LogRequest};
        let fake = Fake::default();
        let cfg = BrokerConfig {
            presence: Some(super::super::PresenceConfig::default()),
            ..BrokerConfig::default()
        };
        let (link, hub, thread) = start_with_cfg(&fake, cfg);
        let set = |member: &str, value: Option<&'static str>| LogRequest::Presence {
            topic: topic("r"),
            member: member.into(),
            value: value.map(|v| Bytes::from_static(v.as_bytes())),
        };
        let entries = |fake: &Fake| -> Vec<(String, String)> {
            let state = fake.state();
            let e = state.presence.iter();
            e.map(|((_, m), v)| (m.clone(), String::from_utf8_lossy(v).into_owned()))
                .collect()
        };
        wait_for("connected", || link.stats().connected);
        link.submit_log(&mut vec![
            set("alice", Some("a1")),
            set("carol", Some("c1")),
        ]);
        wait_for("set", || entries(&fake).len() == 2);
        // The link is lost (the broker keeps its entries) and cannot come back for now.
        fake.state().refuse = u32::MAX;
        fake.state().incoming = None;
        wait_for("unreachable", || !link.stats().connected);
        let _ = log_events(&hub);
        // Alice leaves, Bob joins, Carol's entry changes: each refused as unavailable.
        link.submit_log(&mut vec![
            set("alice", None),
            set("bob", Some("b1")),
            set("carol", Some("c2")),
        ]);
        let mut got = Vec::new();
        wait_for("answered", || {
            got.extend(log_events(&hub));
            got.len() == 3
        });
        assert!(
            got.iter().all(|e| matches!(
                e,
                LogEvent::PresenceChanged {
                    elsewhere: Err(_),
                    ..
                }
            )),
            "{got:?}"
        );
        assert_eq!(entries(&fake).len(), 2, "nothing reached the broker");
        // Back: the broker holds what the node's homes last asked for.
        fake.state().refuse = 0;
        let want = vec![
            ("bob".to_owned(), "b1".to_owned()),
            ("carol".to_owned(), "c2".to_owned()),
        ];
        wait_for("synced at the new session", || entries(&fake) == want);
        // A broker that restarted empty gets the same again at the next session.
        fake.state().presence.clear();
        fake.state().incoming = None;
        wait_for("synced again", || entries(&fake) == want);
        link.stop();
        thread.join().unwrap();
    }
}
