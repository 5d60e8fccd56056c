//! Per-connection rate limits: a token bucket per kind of request (sends, joins), in integer
//! arithmetic, 16 bytes each, with time passed in.

/// A rate: `per_second` requests on average, up to `burst` at once. `per_second == 0`: no
/// limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per second, sustained (0: unlimited).
    pub per_second: u32,
    /// Requests at once after a quiet spell (at least 1).
    pub burst: u32,
}

impl Rate {
    /// No limit.
    pub const UNLIMITED: Rate = Rate {
        per_second: 0,
        burst: 0,
    };
}

/// A token bucket: starts full (`burst`), refills `per_second` tokens a second.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bucket {
    /// Thousandths of a token (so a refill of less than one token a millisecond adds up).
    milli: u64,
    /// When `milli` was last brought up to date (monotonic ms; 0: never, the bucket is full).
    at: u64,
}

impl Bucket {
    /// Takes one token at `now_ms` (monotonic, from 1): `false` if there is none.
    pub fn take(&mut self, rate: Rate, now_ms: u64) -> bool {
        if rate.per_second == 0 {
            return true;
        }
        let cap = u64::from(rate.burst.max(1)) * 1000;
        let milli = if self.at == 0 {
            cap
        } else {
            let refill = now_ms
                .saturating_sub(self.at)
                .saturating_mul(u64::from(rate.per_second));
            self.milli.saturating_add(refill).min(cap)
        };
        self.at = now_ms;
        if milli < 1000 {
            self.milli = milli;
            return false;
        }
        self.milli = milli - 1000;
        true
    }
}

/// `errors` refusals counted as of `at` (ms), as of `now`: one forgiven per whole `period`
/// passed (0: never). Returns the count and the time it is counted as of (the start of the
/// period under way, so partial periods add up).
pub(super) fn decayed(errors: u8, at: u64, now: u64, period: u64) -> (u8, u64) {
    if period == 0 || errors == 0 {
        return (errors, now);
    }
    let periods = now.saturating_sub(at) / period;
    let forgiven = periods.min(u64::from(errors)) as u8;
    if forgiven == errors {
        return (0, now);
    }
    (errors - forgiven, at + periods * period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let rate = Rate {
            per_second: 10,
            burst: 3,
        };
        let mut b = Bucket::default();
        let taken = (0..5).filter(|_| b.take(rate, 1_000)).count();
        assert_eq!(taken, 3, "the burst, at once");
        assert!(!b.take(rate, 1_050), "half a token after 50 ms");
        assert!(b.take(rate, 1_100), "one token after 100 ms");
        assert!(!b.take(rate, 1_100));
        // A quiet minute refills the burst, no more.
        let taken = (0..10).filter(|_| b.take(rate, 61_000)).count();
        assert_eq!(taken, 3);
    }

    #[test]
    fn slow_rates_add_up_and_zero_is_unlimited() {
        let rate = Rate {
            per_second: 1,
            burst: 1,
        };
        let mut b = Bucket::default();
        assert!(b.take(rate, 10));
        let mut t = 10;
        let mut refused = 0;
        while !b.take(rate, t) {
            refused += 1;
            t += 100;
        }
        assert_eq!(
            (refused, t),
            (10, 1_010),
            "one token a second, in 100 ms steps"
        );
        let mut free = Bucket::default();
        assert!((0..10_000).all(|_| free.take(Rate::UNLIMITED, 5)));
    }

    #[test]
    fn refusals_are_forgiven_one_per_period() {
        assert_eq!(
            decayed(0, 0, 5_000, 1_000),
            (0, 5_000),
            "nothing to forgive"
        );
        assert_eq!(
            decayed(5, 1_000, 1_999, 1_000),
            (5, 1_000),
            "not a whole period yet"
        );
        assert_eq!(
            decayed(5, 1_000, 3_500, 1_000),
            (3, 3_000),
            "two periods; the half kept"
        );
        assert_eq!(
            decayed(3, 3_000, 4_000, 1_000),
            (2, 4_000),
            "the half counted"
        );
        assert_eq!(
            decayed(2, 0, 1_000_000, 1_000),
            (0, 1_000_000),
            "all of them, no more"
        );
        assert_eq!(
            decayed(7, 0, 1_000_000, 0),
            (7, 1_000_000),
            "a period of 0: never"
        );
    }
}
