//! The worker's time: the clock read once per loop iteration (events of one batch share it),
//! the wheel's ticks, and how long the loop may sleep. Tests set the time by hand
//! ([`Clock::Manual`]).

use std::time::{Duration, Instant};

use super::Worker;
use crate::proto::Timestamp;
use crate::runtime::Backend;
use crate::server::handler::Handler;

/// Where a worker's time comes from.
pub(crate) enum Clock {
    /// The monotonic clock, counted from the worker's start.
    Real(Instant),
    /// Milliseconds a test sets: timeouts tested to the tick, without waiting for them.
    #[cfg(test)]
    Manual(std::rc::Rc<std::cell::Cell<u64>>),
}

impl<H: Handler, B: Backend> Worker<H, B> {
    /// The time of this loop iteration.
    pub(super) fn now(&self) -> Timestamp {
        self.clock
    }

    /// The time of this loop iteration, rounded up: where a deadline counts from.
    pub(super) fn start_time(&self) -> Timestamp {
        self.clock_up
    }

    /// Reads the clock (once per loop iteration, after the wait).
    pub(super) fn read_clock(&mut self) {
        let nanos = match &self.time {
            Clock::Real(epoch) => epoch.elapsed().as_nanos(),
            #[cfg(test)]
            Clock::Manual(ms) => u128::from(ms.get()) * 1_000_000,
        };
        self.clock = Timestamp((nanos / 1_000_000) as u64);
        self.clock_up = Timestamp(nanos.div_ceil(1_000_000) as u64);
        self.clock_ns = nanos as u64;
    }

    pub(super) fn tick_ms(&self) -> u64 {
        self.cfg.tick.as_millis().max(1) as u64
    }

    /// The wheel's tick for the present moment.
    pub(super) fn tick(&self) -> u32 {
        (self.now().0 / self.tick_ms()) as u32
    }

    /// The present moment as a start time: the tick, rounded up (see `Ctx::stamp`).
    pub(super) fn stamp(&self) -> u32 {
        self.start_time().0.div_ceil(self.tick_ms()) as u32
    }

    /// How long the loop may sleep: until the wheel's next due tick, at most one tick (the
    /// shutdown flag is looked at every tick), and no later than the next handler timer.
    pub(super) fn wait_time(&self) -> Duration {
        let tick_ms = self.tick_ms();
        let until_next_tick = tick_ms - self.now().0 % tick_ms;
        let mut wait = match self.wheel.next_wake() {
            Some(t) if t.wrapping_sub(self.wheel.now()) <= 1 => until_next_tick,
            _ => tick_ms,
        };
        if let Some(due) = self.handler_timers.next_due() {
            wait = wait.min(due.0.saturating_sub(self.now().0));
        }
        Duration::from_millis(wait.max(1))
    }
}
