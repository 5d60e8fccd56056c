//! The clock value the caller passes in. The core never reads a clock.

use core::time::Duration;

/// A point in time: milliseconds since an epoch the caller chooses (the runtime uses its own
/// monotonic start). Only differences between timestamps of one caller are meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The timestamp `d` later, saturating at the far future.
    pub fn after(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(ms))
    }
}
