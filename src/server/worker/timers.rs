//! Timers handlers set ([`Conn::set_timer`](crate::server::Conn::set_timer)): a heap by due time
//! on each worker, bounded by `ServerConfig::max_handler_timers`. The connection timers of the
//! server itself (heartbeats, timeouts) are the wheel's, one per connection; these are the
//! application's, any number per connection, and cost nothing until set.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;

use super::Worker;
use crate::proto::Timestamp;
use crate::runtime::Backend;
use crate::server::handler::Handler;
use crate::server::pubsub::ConnId;

/// One pending timer: when, in which order it was set (timers due at the same moment run in
/// that order), for which connection, and the handler's token.
type Entry = Reverse<(u64, u64, u32, u32, u64)>;

/// A worker's pending handler timers.
#[derive(Debug)]
pub(super) struct HandlerTimers {
    heap: BinaryHeap<Entry>,
    /// Timers set so far (the order of timers due at the same moment).
    seq: u64,
    /// The most pending at once.
    max: usize,
}

impl HandlerTimers {
    pub(super) fn new(max: usize) -> Self {
        HandlerTimers {
            heap: BinaryHeap::new(),
            seq: 0,
            max,
        }
    }

    /// Sets a timer; `false` if the worker holds its maximum already.
    pub(super) fn set(&mut self, due: Timestamp, id: ConnId, token: u64) -> bool {
        if self.heap.len() >= self.max {
            return false;
        }
        self.seq += 1;
        self.heap
            .push(Reverse((due.0, self.seq, id.slot, id.generation, token)));
        true
    }

    /// When the next timer is due.
    pub(super) fn next_due(&self) -> Option<Timestamp> {
        self.heap.peek().map(|Reverse((due, ..))| Timestamp(*due))
    }

    /// The next timer due by `now`: `(slot, generation, token)`.
    fn pop_due(&mut self, now: Timestamp) -> Option<(u32, u32, u64)> {
        if self.next_due()? > now {
            return None;
        }
        let Reverse((_, _, slot, generation, token)) = self.heap.pop()?;
        Some((slot, generation, token))
    }

    /// Timers pending.
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }
}

impl<H: Handler, B: Backend> Worker<H, B> {
    /// Runs the handler timers that are due; those of connections gone meanwhile are dropped.
    pub(super) fn run_handler_timers(&mut self) -> io::Result<()> {
        let now = self.now();
        while let Some((slot, generation, token)) = self.handler_timers.pop_due(now) {
            self.with_slot(slot, generation, |s, h, ctx| {
                s.on_handler_timer(h, ctx, token)
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(slot: u32) -> ConnId {
        ConnId {
            worker: 0,
            slot,
            generation: 1,
        }
    }

    #[test]
    fn due_in_time_order_then_in_the_order_set_and_bounded() {
        let mut t = HandlerTimers::new(3);
        assert!(t.set(Timestamp(20), id(1), 10));
        assert!(t.set(Timestamp(10), id(2), 20));
        assert!(t.set(Timestamp(10), id(3), 30));
        assert!(!t.set(Timestamp(5), id(4), 40), "the fourth is refused");
        assert_eq!(t.next_due(), Some(Timestamp(10)));
        assert_eq!(t.pop_due(Timestamp(9)), None, "nothing due yet");
        assert_eq!(t.pop_due(Timestamp(10)), Some((2, 1, 20)));
        assert_eq!(
            t.pop_due(Timestamp(10)),
            Some((3, 1, 30)),
            "set later, runs later"
        );
        assert_eq!(t.pop_due(Timestamp(15)), None);
        assert!(t.set(Timestamp(5), id(4), 40), "room again");
        assert_eq!(t.pop_due(Timestamp(100)), Some((4, 1, 40)));
        assert_eq!(t.pop_due(Timestamp(100)), Some((1, 1, 10)));
        assert_eq!(t.len(), 0);
    }
}
