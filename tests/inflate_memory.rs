//! The inflater's memory, counted by the allocator rather than read off the process's RSS: a
//! message that inflates past the message limit (a "zip bomb") costs at most the limit plus one
//! block (`INFLATE_BLOCK`) of output memory, whatever it would inflate to. The count is of the
//! test's own thread, so nothing else running in the process can blur it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ringws::proto::Error;
use ringws::proto::deflate::codec::INFLATE_BLOCK;
use ringws::proto::deflate::{Deflater, Inflater};

/// The system allocator, counting the bytes each thread holds and the most it held.
struct Counting;

thread_local! {
    static HELD: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn record(grow: usize, shrink: usize) {
    // `try_with`: an allocation while the thread's locals are being torn down is not counted.
    let _ = HELD.try_with(|held| {
        let now = held.get() + grow - shrink.min(held.get() + grow);
        held.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is passed on to the system allocator unchanged; the counting around it
// touches only two thread-local cells with constant initialisers, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size(), 0);
        // SAFETY: the caller's contract for `alloc` is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record(0, layout.size());
        // SAFETY: `ptr` came from this allocator (the system's) with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size, layout.size());
        // SAFETY: the caller's contract for `realloc` is the system allocator's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes this thread holds now.
fn held() -> usize {
    HELD.with(Cell::get)
}

/// The most this thread held since the last call (starting from what it holds now).
fn take_peak() -> usize {
    PEAK.with(|peak| peak.replace(held()))
}

const LIMIT: usize = 1 << 20;

fn bomb(inflated: usize) -> Vec<u8> {
    let mut packed = Vec::new();
    Deflater::new(9, 15, true).deflate(&vec![0u8; inflated], &mut packed);
    packed
}

#[test]
fn a_zip_bomb_costs_at_most_the_limit_plus_one_block() {
    // 64 MiB of zeros in ~64 KiB. The inflater is made and used once first: its own state (the
    // window included) is a fixed cost, not what a message costs.
    let packed = bomb(64 << 20);
    let mut inflater = Inflater::new(15);
    inflater
        .inflate(&bomb(1000), LIMIT, &mut Vec::new())
        .unwrap();
    inflater.reset();
    for attempt in 0..3 {
        let mut out = Vec::new();
        let before = held();
        take_peak();
        let result = inflater.inflate(&packed, LIMIT, &mut out);
        let cost = take_peak() - before;
        assert_eq!(result, Err(Error::MessageTooLarge));
        assert!(
            cost <= LIMIT + INFLATE_BLOCK,
            "attempt {attempt}: {cost} bytes for a {LIMIT}-byte limit (bound {})",
            LIMIT + INFLATE_BLOCK
        );
        // It got close to the limit: the bound is not met by stopping early.
        assert!(out.len() > LIMIT, "{}", out.len());
        drop(out);
        inflater.reset();
    }
}

#[test]
fn a_message_at_the_limit_costs_the_limit() {
    let packed = bomb(LIMIT);
    let mut inflater = Inflater::new(15);
    inflater
        .inflate(&bomb(1000), LIMIT, &mut Vec::new())
        .unwrap();
    inflater.reset();
    let mut out = Vec::new();
    let before = held();
    take_peak();
    inflater.inflate(&packed, LIMIT, &mut out).unwrap();
    let cost = take_peak() - before;
    assert_eq!(out.len(), LIMIT);
    assert!(cost <= LIMIT + INFLATE_BLOCK, "{cost}");
}
