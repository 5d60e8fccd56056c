//! UTF-8 validation throughput: one-shot (`simdutf8`), streaming in 4 KiB pieces (as a message
//! arriving over several receive buffers), and `std::str::from_utf8` as the baseline, on ASCII
//! and on mixed text (Latin, Greek, CJK, emoji).

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use ringws::proto::utf8::{self, Utf8Stream};
use std::time::Duration;

fn text(kind: &str, len: usize) -> Vec<u8> {
    let unit = match kind {
        "ascii" => "The quick brown fox jumps over the lazy dog. 0123456789\n",
        _ => "Grüße, κόσμε! 你好，世界。 こんにちは 🦀🚀 naïve café — ok.\n",
    };
    let mut s = unit.repeat(len / unit.len() + 1).into_bytes();
    // Cut on a character boundary at or below len.
    let mut end = len.min(s.len());
    while std::str::from_utf8(&s[..end]).is_err() {
        end -= 1;
    }
    s.truncate(end);
    s
}

fn bench(c: &mut Criterion) {
    for kind in ["ascii", "mixed"] {
        let mut group = c.benchmark_group(format!("utf8/{kind}"));
        group
            .measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(500))
            .sample_size(20);
        for len in [1024usize, 64 * 1024, 1024 * 1024] {
            let data = text(kind, len);
            group.throughput(Throughput::Bytes(data.len() as u64));
            group.bench_with_input(BenchmarkId::new("std", len), &data, |b, d| {
                b.iter(|| std::str::from_utf8(black_box(d)).is_ok())
            });
            group.bench_with_input(BenchmarkId::new("one-shot", len), &data, |b, d| {
                b.iter(|| utf8::validate(black_box(d)).is_ok())
            });
            group.bench_with_input(BenchmarkId::new("streaming-4k", len), &data, |b, d| {
                b.iter(|| {
                    let mut s = Utf8Stream::new();
                    for piece in black_box(d).chunks(4096) {
                        s.feed(piece).unwrap();
                    }
                    s.finish().is_ok()
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
