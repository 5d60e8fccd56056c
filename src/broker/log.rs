//! The bridge's side of the topics' ordered logs (a cluster with history): appends and reads
//! go to the broker in batches, one round trip each per loop of the bridge; every request is
//! answered to the topic's home worker, also when the broker cannot be reached; entries that
//! arrive on a topic's channel go to the topic's home worker, and so does the news that the
//! bridge subscribed to a topic (again) or stopped receiving it.
//!
//! ```text
//!  workers ──LogRequest──▶ Link ──▶ bridge: appends (one pipeline) ──▶ broker: append script
//!                                          reads   (one pipeline) ──▶ broker: read script
//!  topic's home ◀── LogEvent::{Appended, Range}  (or unavailable) ─────────┘
//!  topic's home ◀── LogEvent::Live  ◀── channel message "rwl1…" (from any node)
//!  topic's home ◀── LogEvent::{Resync, Unsubscribed} ◀── subscription changes
//! ```

use std::sync::Arc;

use bytes::Bytes;

use super::bridge::Bridge;
use super::{Broker, BrokerError, BrokerTx, LogAppend, LogReadAt, NodeId};
use crate::server::{LogEntry, LogEvent, LogRequest, LogUnavailable, Topic};

impl<B: Broker> Bridge<B> {
    /// Answers `requests` with `why` (no session, or too many waiting).
    pub(super) fn refuse_log(&mut self, requests: Vec<LogRequest>, why: &str) {
        if requests.is_empty() {
            return;
        }
        self.link.count_log_unavailable(requests.len() as u64);
        self.presence_not_carried_out(&requests);
        for req in requests {
            if let Some(answer) =
                super::presence::unavailable(&req, &LogUnavailable(why.to_owned()))
            {
                self.homes.push(answer);
                continue;
            }
            let event = unavailable(&req, why);
            self.homes.push((req.topic().clone(), event));
        }
        self.flush_homes();
    }

    /// Sends a batch of log requests: the appends in one round trip, then the reads in one.
    /// An error ends the session; every request of the batch has been answered by then (those
    /// that failed as unavailable: an append whose answer was lost may have been appended,
    /// which its idempotency key makes safe to retry).
    pub(super) async fn forward_log(
        &mut self,
        tx: &mut B::Tx,
        requests: Vec<LogRequest>,
    ) -> Result<(), BrokerError> {
        if requests.is_empty() {
            return Ok(());
        }
        let (presence, requests): (Vec<_>, Vec<_>) = requests.into_iter().partition(|r| {
            matches!(
                r,
                LogRequest::Presence { .. } | LogRequest::PresenceList { .. }
            )
        });
        self.forward_presence(tx, presence).await?;
        if requests.is_empty() {
            return Ok(());
        }
        let Some(log) = self.cfg.log.clone() else {
            self.refuse_log(requests, "no logs on this broker");
            return Ok(());
        };

        let new_epoch = NodeId::random().to_string();
        let (appends, reads): (Vec<_>, Vec<_>) = requests
            .into_iter()
            .partition(|r| matches!(r, LogRequest::Append { .. }));
        let mut result = Ok(());
        if !appends.is_empty() {
            let channels: Vec<String> = appends.iter().map(|r| self.channel(r.topic())).collect();
            let batch: Vec<LogAppend<'_>> = appends
                .iter()
                .zip(&channels)
                .filter_map(|(r, channel)| match r {
                    LogRequest::Append { key, payload, .. } => Some(LogAppend {
                        channel,
                        key: key.as_deref(),
                        payload,
                        new_epoch: &new_epoch,
                    }),
                    _ => None,
                })
                .collect();
            match self.timed(tx.append(&log, &batch)).await {
                Ok(stamps) if stamps.len() == appends.len() => {
                    self.link.count_log_appends(stamps.len() as u64);
                    for (req, stamp) in appends.into_iter().zip(stamps) {
                        if let LogRequest::Append {
                            topic, from, key, ..
                        } = req
                        {
                            let result = Ok(stamp);
                            self.homes
                                .push((topic, LogEvent::Appended { from, key, result }));
                        }
                    }
                }
                Ok(_) => {
                    result =
                        Err("the broker answered a batch of appends with another count".into());
                    self.refuse_log(appends, "the broker's answer did not match");
                }
                Err(e) => {
                    self.refuse_log(appends, &e.to_string());
                    result = Err(e);
                }
            }
        }
        if !reads.is_empty() {
            if result.is_err() {
                self.refuse_log(reads, "the broker is unreachable");
            } else {
                let channels: Vec<String> = reads.iter().map(|r| self.channel(r.topic())).collect();
                let batch: Vec<LogReadAt<'_>> = reads
                    .iter()
                    .zip(&channels)
                    .filter_map(|(r, channel)| match r {
                        LogRequest::Read { range, limit, .. } => Some(LogReadAt {
                            channel,
                            range: *range,
                            limit: *limit,
                            new_epoch: &new_epoch,
                        }),
                        _ => None,
                    })
                    .collect();
                match self.timed(tx.read(&log, &batch)).await {
                    Ok(answers) if answers.len() == reads.len() => {
                        self.link.count_log_reads(answers.len() as u64);
                        for (req, answer) in reads.into_iter().zip(answers) {
                            if let LogRequest::Read { topic, tag, .. } = req {
                                let result = Ok(answer);
                                self.homes.push((topic, LogEvent::Range { tag, result }));
                            }
                        }
                    }
                    Ok(_) => {
                        result =
                            Err("the broker answered a batch of reads with another count".into());
                        self.refuse_log(reads, "the broker's answer did not match");
                    }
                    Err(e) => {
                        self.refuse_log(reads, &e.to_string());
                        result = Err(e);
                    }
                }
            }
        }
        self.flush_homes();
        result
    }

    /// An entry of `topic`'s log arrived: to its home worker, if a worker here wants it (with
    /// the other entries of the topic that came in the same batch: one run).
    pub(super) fn live_entry(&mut self, topic: &str, epoch: Box<str>, offset: u64, payload: Bytes) {
        // Also while it lingers before its unsubscription: a member back within the linger is
        // answered from what the home knows, which must not miss what came meanwhile.
        let Some(topic) = self.interest.subscribed_topic(topic) else {
            return;
        };
        let entry = LogEntry { offset, payload };
        let last = self.homes.iter_mut().rev().find(|(t, _)| t == topic);
        if let Some((_, LogEvent::Live { epoch: e, entries })) = last {
            if **e == *epoch {
                entries.push(entry);
                return;
            }
        }
        let event = LogEvent::Live {
            epoch: Arc::from(epoch),
            entries: vec![entry],
        };
        self.homes.push((topic.clone(), event));
    }

    /// Tells each topic's home that the bridge subscribed to it (`Resync`: read what may have
    /// been missed) or stopped receiving it (`Unsubscribed`).
    pub(super) fn tell_homes(&mut self, topics: &[Topic], subscribed: bool) {
        if self.cfg.log.is_none() {
            return;
        }
        for topic in topics {
            let event = if subscribed {
                LogEvent::Resync
            } else {
                LogEvent::Unsubscribed
            };
            self.homes.push((topic.clone(), event));
        }
        self.flush_homes();
    }

    /// Delivers what was gathered for the topics' home workers.
    pub(super) fn flush_homes(&mut self) {
        if !self.homes.is_empty() {
            self.inbound.to_home(&mut self.homes);
        }
    }
}

/// The answer to `req` when it cannot be carried out.
fn unavailable(req: &LogRequest, why: &str) -> LogEvent {
    let why = LogUnavailable(why.to_owned());
    match req {
        LogRequest::Append { from, key, .. } => LogEvent::Appended {
            from: *from,
            key: key.clone(),
            result: Err(why),
        },
        LogRequest::Read { tag, .. } => LogEvent::Range {
            tag: *tag,
            result: Err(why),
        },
        // Answered by `presence::unavailable` (never reached).
        LogRequest::Presence { .. } | LogRequest::PresenceList { .. } => LogEvent::Unsubscribed,
    }
}
