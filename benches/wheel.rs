//! The timer wheel at scale: ns per insert, re-arm, cancel and expiry with 1,000,000 timers
//! armed, deadlines spread like connection timeouts (0-60 s at 100 ms ticks). Seven runs;
//! min / median / max per operation. `cargo bench --bench wheel`.

use std::hint::black_box;
use std::time::Instant;

use ringws::server::wheel::Wheel;

const N: u32 = 1_000_000;
const RUNS: usize = 7;

/// A cheap deterministic spread of deadlines (xorshift).
fn deadlines(seed: u32) -> Vec<u32> {
    let mut x = seed | 1;
    (0..N)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            1 + x % 600 // up to 60 s at 100 ms ticks
        })
        .collect()
}

fn ns_per(n: u32, f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    let mut results: [Vec<f64>; 4] = Default::default();
    for run in 0..RUNS {
        let d = deadlines(run as u32 + 7);
        let mut w = Wheel::new(0);
        results[0].push(ns_per(N, || {
            for id in 0..N {
                w.insert(id, d[id as usize]);
            }
        }));
        assert_eq!(w.len(), N as usize);
        // Re-arm every timer (a heartbeat re-armed after each ping).
        results[1].push(ns_per(N, || {
            for id in 0..N {
                w.insert(id, d[(id as usize + 1) % d.len()] + 5);
            }
        }));
        // Cancel half, then let the rest expire tick by tick.
        results[2].push(ns_per(N / 2, || {
            for id in (0..N).step_by(2) {
                w.cancel(id);
            }
        }));
        let mut fired = Vec::with_capacity(N as usize);
        let expiring = w.len() as u32;
        results[3].push(ns_per(expiring, || {
            for tick in 1..=700 {
                w.advance(tick, &mut fired);
            }
        }));
        assert_eq!(fired.len() as u32, expiring);
        assert_eq!(w.len(), 0);
        black_box(&fired);
    }
    println!("timer wheel, {N} timers, {RUNS} runs: ns per operation, median [min–max]");
    for (name, mut v) in ["insert", "re-arm", "cancel", "expire"]
        .into_iter()
        .zip(results)
    {
        v.sort_by(f64::total_cmp);
        println!(
            "  {name:7} {:6.1} [{:.1}–{:.1}]",
            v[RUNS / 2],
            v[0],
            v[RUNS - 1]
        );
    }
}
