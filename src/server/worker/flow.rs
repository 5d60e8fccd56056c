//! Flow control, the worker's side: reading resumes. (Pausing is settled with the event that
//! caused it: see `settle`.) Input that arrived before a pause took effect was held; it is fed,
//! a receive buffer at a time, before the receive is armed again.

use std::io;

use super::{Worker, rearm_recv};
use crate::runtime::Backend;
use crate::server::conn::Flags;
use crate::server::counters::Counters;
use crate::server::handler::Handler;

impl<H: Handler, B: Backend> Worker<H, B> {
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
        match self.slots.get_mut(slot, generation) {
            Some(s) => rearm_recv(s, slot, generation, &mut self.io),
            None => Ok(()),
        }
    }
}
