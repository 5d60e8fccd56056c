//! Which DEFLATE codec for permessage-deflate: zlib-rs (through flate2, what ringws uses) against
//! miniz_oxide and libdeflate (whole buffers only: no context, so shared mode only), on a chat JSON stream (sixteen ~150-byte messages as the chat sends them), both
//! at ringws' default level (2) and 15-bit windows, each reusing one state: compressing a message on its own
//! (shared mode: reset after each), with context kept (dedicated mode), and inflating one.
//! Prints the compressed sizes first; criterion then times each per message, side by side.

use std::time::Duration;

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use miniz_oxide::deflate::core::{
    CompressorOxide, TDEFLFlush, compress, create_comp_flags_from_zip_params,
};
use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};
use ringws::proto::deflate::{Deflater, Inflater, SmallDeflater, TAIL};

/// libdeflate, one message on its own (it ends in a final block, which RFC 7692 §7.2.3.3
/// allows; no sync flush, so no tail to remove).
fn libdeflate_deflate(c: &mut libdeflater::Compressor, msg: &[u8], out: &mut Vec<u8>) {
    out.resize(c.deflate_compress_bound(msg.len()), 0);
    let n = c.deflate_compress(msg, out).unwrap();
    out.truncate(n);
}

/// libdeflate inflating a message as RFC 7692 sends it: the tail put back, then an empty final
/// block (libdeflate wants a stream that ends), into a buffer that must hold all of it.
fn libdeflate_inflate(
    d: &mut libdeflater::Decompressor,
    packed: &[u8],
    input: &mut Vec<u8>,
    out: &mut [u8],
) -> usize {
    input.clear();
    input.extend_from_slice(packed);
    input.extend_from_slice(&TAIL);
    input.extend_from_slice(&[0x03, 0x00]);
    d.deflate_decompress(input, out).unwrap()
}

/// The level timed: ringws' default (zlib-rs' level 1 is a static-Huffman fast path that
/// barely compresses short messages: see the sizes printed first).
const LEVEL: u8 = 2;

fn chat_messages() -> Vec<Vec<u8>> {
    // The same texts as `ringws-load --chat-json`.
    let texts: Vec<&str> = include_str!("data/chat-texts.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let names = ["alice", "bob", "carol", "dave"];
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            format!(
                r#"{{"op":"message","room":"lobby","from":"0.{}.1","name":"{}","ts":{},"seq":{},"text":"{text}","online":{}}}"#,
                1200 + i % 4,
                names[i % 4],
                1_764_806_400_000u64 + 1_379 * i as u64,
                4_100 + i,
                37 + i % 3
            )
            .into_bytes()
        })
        .collect()
}

/// miniz_oxide, one message, sync flush, the tail removed (as RFC 7692 sends it).
fn miniz_deflate(c: &mut CompressorOxide, msg: &[u8], out: &mut Vec<u8>, reset: bool) {
    out.resize(msg.len() + 64, 0);
    let (_, _, n) = compress(c, msg, out, TDEFLFlush::Sync);
    out.truncate(n.saturating_sub(TAIL.len()));
    if reset {
        c.reset();
    }
}

fn miniz_inflate(d: &mut DecompressorOxide, packed: &[u8], out: &mut [u8]) -> usize {
    let mut input = packed.to_vec();
    input.extend_from_slice(&TAIL);
    d.init();
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let (_, _, n) = decompress(d, &input, out, 0, flags);
    n
}

/// Times `deflate` over the chat messages in turn, one message per iteration.
fn each_message(
    b: &mut criterion::Bencher<'_>,
    msgs: &[Vec<u8>],
    i: &mut usize,
    mut deflate: impl FnMut(&[u8], &mut Vec<u8>),
) {
    let mut out = Vec::with_capacity(512);
    b.iter(|| {
        out.clear();
        deflate(&msgs[*i % msgs.len()], &mut out);
        *i += 1;
        black_box(out.len())
    })
}

fn bench(c: &mut Criterion) {
    let msgs = chat_messages();
    let plain: usize = msgs.iter().map(Vec::len).sum();
    // Sizes first: the ratio each codec gets on this stream.
    let mut z = Deflater::new(1, 15, true);
    let mut zk = Deflater::new(1, 15, false);
    let mut m = CompressorOxide::new(create_comp_flags_from_zip_params(1, -15, 0));
    let (mut zs, mut zks, mut ms) = (0, 0, 0);
    let mut out = Vec::new();
    for msg in &msgs {
        out.clear();
        z.deflate(msg, &mut out);
        zs += out.len();
        out.clear();
        zk.deflate(msg, &mut out);
        zks += out.len();
        miniz_deflate(&mut m, msg, &mut out, true);
        ms += out.len();
    }
    eprintln!(
        "chat stream, {} messages, {plain} B: zlib-rs {zs} B ({:.2}x), with context {zks} B \
         ({:.2}x); miniz_oxide {ms} B ({:.2}x)",
        msgs.len(),
        plain as f64 / zs as f64,
        plain as f64 / zks as f64,
        plain as f64 / ms as f64
    );

    // Per-message compression without context, by level.
    for level in [1u8, 2, 4, 6, 9] {
        let mut z = Deflater::new(level, 15, true);
        let mut zk = Deflater::new(level, 15, false);
        let flags = create_comp_flags_from_zip_params(i32::from(level), -15, 0);
        let (mut m, mut mk) = (CompressorOxide::new(flags), CompressorOxide::new(flags));
        let (mut zs, mut zks, mut ms, mut mks) = (0, 0, 0, 0);
        for msg in &msgs {
            out.clear();
            z.deflate(msg, &mut out);
            zs += out.len();
            out.clear();
            zk.deflate(msg, &mut out);
            zks += out.len();
            miniz_deflate(&mut m, msg, &mut out, true);
            ms += out.len();
            miniz_deflate(&mut mk, msg, &mut out, false);
            mks += out.len();
        }
        let mut l =
            libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level.into()).unwrap());
        let mut sd = SmallDeflater::new(level);
        let (mut ls, mut ss) = (0, 0);
        for msg in &msgs {
            libdeflate_deflate(&mut l, msg, &mut out);
            ls += out.len();
            out.clear();
            sd.deflate(msg, &mut out);
            ss += out.len();
        }
        let r = |n: usize| plain as f64 / n as f64;
        eprintln!(
            "  level {level}: no context zlib-rs {:.2}x, miniz_oxide {:.2}x, libdeflate {:.2}x, ringws SmallDeflater {:.2}x; context kept zlib-rs {:.2}x, miniz_oxide {:.2}x",
            r(zs),
            r(ms),
            r(ls),
            r(ss),
            r(zks),
            r(mks)
        );
    }

    let mut g = c.benchmark_group("deflate/chat-message");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(30);
    let mut i = 0usize;
    g.bench_function("zlib-rs, no context (shared)", |b| {
        let mut d = Deflater::new(LEVEL, 15, true);
        each_message(b, &msgs, &mut i, |m, out| d.deflate(m, out));
    });
    g.bench_function("miniz_oxide, no context (shared)", |b| {
        let mut d = CompressorOxide::new(create_comp_flags_from_zip_params(LEVEL.into(), -15, 0));
        each_message(b, &msgs, &mut i, |m, out| {
            miniz_deflate(&mut d, m, out, true)
        });
    });
    g.bench_function("ringws SmallDeflater, no context (shared)", |b| {
        let mut d = SmallDeflater::new(LEVEL);
        each_message(b, &msgs, &mut i, |m, out| {
            d.deflate(m, out);
        });
    });
    for level in [1, 2, 4, 6] {
        g.bench_function(
            format!("libdeflate level {level}, no context (shared)"),
            |b| {
                let mut d =
                    libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap());
                each_message(b, &msgs, &mut i, |m, out| {
                    libdeflate_deflate(&mut d, m, out)
                });
            },
        );
    }
    g.bench_function("zlib-rs, context kept (dedicated)", |b| {
        let mut d = Deflater::new(LEVEL, 15, false);
        each_message(b, &msgs, &mut i, |m, out| d.deflate(m, out));
    });
    g.bench_function("miniz_oxide, context kept (dedicated)", |b| {
        let mut d = CompressorOxide::new(create_comp_flags_from_zip_params(LEVEL.into(), -15, 0));
        each_message(b, &msgs, &mut i, |m, out| {
            miniz_deflate(&mut d, m, out, false)
        });
    });
    g.finish();

    let packed: Vec<Vec<u8>> = msgs
        .iter()
        .map(|msg| {
            let mut out = Vec::new();
            Deflater::new(LEVEL, 15, true).deflate(msg, &mut out);
            out
        })
        .collect();
    let mut g = c.benchmark_group("inflate/chat-message");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(30);
    g.bench_function("zlib-rs", |b| {
        let mut d = Inflater::new(15);
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            d.inflate(&packed[i % packed.len()], 1 << 16, &mut out)
                .unwrap();
            d.reset();
            i += 1;
            black_box(out.len())
        })
    });
    g.bench_function("libdeflate", |b| {
        let mut d = libdeflater::Decompressor::new();
        let (mut input, mut out) = (Vec::with_capacity(512), vec![0u8; 1024]);
        b.iter(|| {
            let n = libdeflate_inflate(&mut d, &packed[i % packed.len()], &mut input, &mut out);
            i += 1;
            black_box(n)
        })
    });
    g.bench_function("miniz_oxide", |b| {
        let mut d = DecompressorOxide::new();
        let mut out = vec![0u8; 1024];
        b.iter(|| {
            let n = miniz_inflate(&mut d, &packed[i % packed.len()], &mut out);
            i += 1;
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
