//! A global allocator that counts the bytes each thread holds (and the most it held), for the
//! tests that measure memory by the allocator rather than by the process's RSS. Included by
//! those tests only (`#[path]`), so the others keep the plain system allocator.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

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
pub fn held() -> usize {
    HELD.with(Cell::get)
}

/// The most this thread held since the last call (starting from what it holds now).
pub fn take_peak() -> usize {
    PEAK.with(|peak| peak.replace(held()))
}
