//! Unmasking throughput: every implementation this CPU can run, side by side, per payload size.
//!
//! One criterion group per size, with `Throughput::Bytes`, so criterion prints GB/s for each
//! implementation (plus `apply`, the dispatched entry point, to show what the dispatch costs).
//!
//! The payload sits where it would in a real receive buffer: right after the header of a masked
//! client frame that starts at a 64-byte-aligned address (6 header bytes for payloads up to 125
//! bytes, 8 up to 65535, 14 beyond). So the SIMD loops see an unaligned start, as in the server.
//!
//! Run with `cargo bench --bench mask`; the settings keep the whole run under two minutes.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use ringws::proto::mask::{Impl, apply, apply_with};

/// Payload sizes: a tiny frame, the largest control-frame payload, 1 KiB, 64 KiB, 1 MiB.
const SIZES: [(&str, usize); 5] = [
    ("16B", 16),
    ("125B", 125),
    ("1KiB", 1024),
    ("64KiB", 64 * 1024),
    ("1MiB", 1024 * 1024),
];

/// A masking key with four distinct bytes.
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The header length of a masked frame with a payload of `len` bytes (RFC 6455 §5.2).
fn header_len(len: usize) -> usize {
    match len {
        0..=125 => 6,
        126..=65535 => 8,
        _ => 14,
    }
}

/// A buffer holding `len` payload bytes at `offset` past a 64-byte-aligned address.
struct Payload {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl Payload {
    fn new(len: usize, offset: usize) -> Payload {
        let storage: Vec<u8> = (0..len + offset + 64).map(|i| i as u8).collect();
        let start = storage.as_ptr().align_offset(64) + offset;
        Payload {
            storage,
            start,
            len,
        }
    }

    fn bytes(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

fn mask(c: &mut Criterion) {
    for (label, size) in SIZES {
        let mut group = c.benchmark_group(format!("mask/{label}"));
        group
            .throughput(Throughput::Bytes(size as u64))
            .sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        let mut payload = Payload::new(size, header_len(size));
        for imp in Impl::available() {
            group.bench_function(imp.name(), |b| {
                b.iter(|| {
                    apply_with(
                        imp,
                        black_box(payload.bytes()),
                        black_box(KEY),
                        black_box(1),
                    )
                })
            });
        }
        group.bench_function(format!("apply ({})", Impl::best().name()), |b| {
            b.iter(|| apply(black_box(payload.bytes()), black_box(KEY), black_box(1)))
        });
        group.finish();
    }
}

// By hand rather than with `criterion_group!`, whose generated `pub fn` has no doc comment.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    mask(&mut c);
    c.final_summary();
}
