//! Broadcast publications through the chat's backend API (`POST /api/publish`) instead of a
//! publisher's WebSocket: the same stamps (`<publisher>:<seq>:<sent ns>`), so the subscribers'
//! checks (order, gaps, latency from the POST to each delivery) are unchanged. One thread posts
//! the publications in the order they are due, one request per TCP connection (as the API
//! answers: `Connection: close`); a publication waits for the one before it (the API answers
//! once the room's home has given it its offset), so the rate it sustains is also measured.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::broadcast::Stamp;

/// What the API publisher did.
#[derive(Debug)]
pub struct Figures {
    /// Publications answered 200.
    pub posted: u64,
    /// Publications refused or failed (anything but 200).
    pub errors: u64,
    /// The POST's round trip (connect, request, answer with the offset), µs.
    pub answer_us: Histogram<u64>,
    /// The first failure, for the report.
    pub first_error: Option<String>,
}

/// Posts publications on its own thread.
pub struct ApiPublisher {
    tx: Option<mpsc::Sender<(usize, usize, u64)>>,
    thread: Option<JoinHandle<()>>,
    figures: Arc<Mutex<Figures>>,
}

impl ApiPublisher {
    /// A publisher to the API at `addr` with `key`; stamps are ns since `epoch`.
    pub fn start(addr: SocketAddr, key: String, epoch: Instant) -> Self {
        let (tx, rx) = mpsc::channel::<(usize, usize, u64)>();
        let figures = Arc::new(Mutex::new(Figures {
            posted: 0,
            errors: 0,
            answer_us: Histogram::new(3).expect("3 significant figures"),
            first_error: None,
        }));
        let theirs = figures.clone();
        let thread = std::thread::spawn(move || {
            for (room, publisher, seq) in rx {
                let stamp = Stamp {
                    publisher,
                    seq,
                    sent_ns: epoch.elapsed().as_nanos() as u64,
                };
                let t0 = Instant::now();
                let result = post(addr, &key, room, stamp);
                let took = t0.elapsed().as_micros() as u64;
                let mut f = theirs.lock().unwrap_or_else(|p| p.into_inner());
                match result {
                    Ok(()) => {
                        f.posted += 1;
                        let _ = f.answer_us.record(took.max(1));
                    }
                    Err(e) => {
                        f.errors += 1;
                        f.first_error.get_or_insert(e);
                    }
                }
            }
        });
        ApiPublisher {
            tx: Some(tx),
            thread: Some(thread),
            figures,
        }
    }

    /// Queues a publication (posted in order, as soon as the ones before it are answered).
    pub fn publish(&self, room: usize, publisher: usize, seq: u64) {
        if let Some(tx) = &self.tx {
            let _ = tx.send((room, publisher, seq));
        }
    }

    /// Waits for every queued publication to be posted; the figures.
    pub fn finish(mut self) -> Figures {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let f = self.figures.lock().unwrap_or_else(|p| p.into_inner());
        Figures {
            posted: f.posted,
            errors: f.errors,
            answer_us: f.answer_us.clone(),
            first_error: f.first_error.clone(),
        }
    }
}

fn post(addr: SocketAddr, key: &str, room: usize, stamp: Stamp) -> Result<(), String> {
    let body = format!(
        r#"{{"room":"{}{room}","text":"{}:{}:{}"}}"#,
        crate::broadcast::room_prefix(),
        stamp.publisher,
        stamp.seq,
        stamp.sent_ns
    );
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).ok();
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: api\r\nAuthorization: apikey {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::with_capacity(256);
    s.read_to_end(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let answer = String::from_utf8_lossy(&answer);
    if answer.starts_with("HTTP/1.1 200 ") {
        Ok(())
    } else {
        Err(answer.lines().next().unwrap_or("no answer").to_owned())
    }
}
