//! Flow control: a connection whose replies filled its queue to the high-water mark stops being
//! read until the queue drains to the low-water mark; input that arrived before the pause took
//! effect is held and fed, a receive buffer at a time, when reading resumes.

use std::io;

use super::Worker;
use crate::runtime::Backend;
use crate::server::conn::{Flags, Flow};
use crate::server::counters::Counters;
use crate::server::handler::Handler;

impl<H: Handler, B: Backend> Worker<H, B> {
    /// Stops or restarts reading a connection by its queue (see `ServerConfig::max_outbound_bytes`).
    /// A receive armed while paused is cancelled; the bytes it delivers before the cancel lands
    /// are still handled (replies to them are bounded by the reply ceiling).
    pub(super) fn flow_control(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        let Some(s) = self.slots.get_mut(slot, generation) else {
            return Ok(());
        };
        match s.flow(&self.cfg) {
            Flow::Keep => {}
            Flow::Pause => {
                Counters::inc(&self.counters.read_pauses, 1);
                Counters::add(&self.counters.reading_paused, 1);
            }
            Flow::Resume => {
                Counters::add(&self.counters.reading_paused, -1);
                return self.resume_reading(slot, generation);
            }
        }
        let f = s.flags;
        if f.has(Flags::READ_PAUSED)
            && f.has(Flags::RECV_ARMED)
            && !f.has(Flags::RECV_STOPPING)
            && !f.has(Flags::FD_CLOSING)
        {
            s.flags.set(Flags::RECV_STOPPING, true);
            self.io.cancel_recv(slot, generation)?;
        }
        Ok(())
    }

    /// Arms the slot's multishot receive again, unless it is armed, paused by flow control or
    /// the slot is closing.
    /// Reading resumes: input held since the pause is fed first, a receive buffer's worth at a
    /// time with flow control checked in between (it may pause again), then reading is
    /// re-armed.
    pub(super) fn resume_reading(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        while let Some((g, buf, fed)) = self.held.remove(&slot) {
            let paused = self
                .slots
                .get_mut(slot, generation)
                .is_none_or(|s| s.flags.has(Flags::READ_PAUSED));
            if g != generation || paused {
                if g == generation {
                    self.held.insert(slot, (g, buf, fed));
                }
                break;
            }
            let n = (buf.len() - fed).min(self.cfg.uring.buf_size as usize);
            let mut chunk = buf[fed..fed + n].to_vec();
            Counters::add(&self.counters.input_held, -(n as i64));
            if fed + n < buf.len() {
                self.held.insert(slot, (g, buf, fed + n));
            } else if let Some(s) = self.slots.get_mut(slot, generation) {
                s.flags.set(Flags::INPUT_HELD, false);
            }
            self.with_slot(slot, generation, |s, h, ctx| s.on_bytes(&mut chunk, h, ctx))?;
        }
        self.rearm_recv(slot, generation)
    }
}
