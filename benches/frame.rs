//! The receive path for small messages: header parse + in-place unmask + UTF-8 validation +
//! event delivery, through `Connection::handle_read`, for a 20-byte masked text frame. Measured
//! one frame per read and 64 frames per read (pipelined clients); criterion reports the time per
//! read, and the 64-frame figure divided by 64 is the cost per frame.

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use ringws::proto::frame::{OpCode, encode_masked_frame};
use ringws::proto::{Config, Connection, Event, Sink};
use std::time::Duration;

struct Count(usize);

impl Sink for Count {
    fn event(&mut self, event: Event<'_>) {
        if let Event::Text(t) = event {
            self.0 += black_box(t).len();
        }
    }
    fn transmit(&mut self, _opcode: OpCode, frame: &[u8]) {
        black_box(frame);
    }
}

fn bench(c: &mut Criterion) {
    let cfg = Config::default();
    let frame = encode_masked_frame(
        OpCode::Text,
        true,
        [0x12, 0x34, 0x56, 0x78],
        b"hello, chat room #42",
    );
    assert_eq!(frame.len(), 26);
    let mut group = c.benchmark_group("receive/20B-text");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(30);
    for frames in [1usize, 64] {
        let template: Vec<u8> = frame
            .iter()
            .copied()
            .cycle()
            .take(frame.len() * frames)
            .collect();
        let mut buf = template.clone();
        let mut conn = Connection::new();
        group.throughput(Throughput::Elements(frames as u64));
        group.bench_function(BenchmarkId::new("frames-per-read", frames), |b| {
            b.iter(|| {
                // Restore the masked bytes (unmasking is in place): a memcpy of 26 B per frame.
                buf.copy_from_slice(&template);
                let mut sink = Count(0);
                conn.handle_read(&cfg, black_box(&mut buf), &mut sink)
                    .unwrap();
                assert_eq!(sink.0, 20 * frames);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
