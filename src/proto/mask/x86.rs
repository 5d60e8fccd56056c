//! x86_64 SIMD: SSE2 (16-byte vectors), AVX2 (32) and AVX-512F (64).
//!
//! Each loop XORs whole vectors with the key rotated by the phase and repeated across a vector,
//! four vectors per iteration, then one at a time; what is left (less than one vector) is done
//! 16 bytes at a time, and the last few bytes by `Word`. Loads and stores are the unaligned kind. The
//! AVX loops first do the head of a long buffer, up to the vector's alignment, with SSE2, so the
//! main loop's accesses never split a cache line (for 64-byte vectors an unaligned buffer would
//! split every one).
//!
//! The AVX functions are `#[target_feature]` and `unsafe`: only `super::raw` hands them out,
//! after `is_x86_feature_detected!`.

use core::arch::x86_64::{
    __m128i, __m256i, _mm_loadu_si128, _mm_storeu_si128, _mm_xor_si128, _mm256_loadu_si256,
    _mm256_storeu_si256, _mm256_xor_si256,
};

use super::{RawFn, end_phase, key_lanes, scalar};

/// Buffers at least this long get their head done first, so that the main loop is aligned.
const ALIGN_MIN: usize = 256;

/// Splits off the bytes before the first `align`-aligned address if `buf` is long enough for
/// that to pay off; otherwise the head is empty.
fn split_head(buf: &mut [u8], align: usize) -> (&mut [u8], &mut [u8]) {
    let n = if buf.len() >= ALIGN_MIN {
        buf.as_ptr().align_offset(align).min(buf.len())
    } else {
        0
    };
    buf.split_at_mut(n)
}

/// SSE2 is part of the x86_64 baseline, so this needs no detection and is a safe function.
pub(super) fn sse2(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    let end = end_phase(phase, buf.len());
    let k = key_lanes::<4>(key, phase);
    // SAFETY: `k` is 16 bytes (4 `u32` lanes), the size of the load; `loadu` needs no
    // alignment. SSE2 is enabled on every x86_64 target.
    let kv = unsafe { _mm_loadu_si128(k.as_ptr().cast()) };

    let mut quads = buf.chunks_exact_mut(64);
    for c in &mut quads {
        let p = c.as_mut_ptr().cast::<__m128i>();
        // SAFETY: `c` is exactly 64 bytes, so the four 16-byte accesses at `p.add(0..4)` are in
        // bounds; `loadu`/`storeu` need no alignment; SSE2 is enabled on every x86_64 target.
        unsafe {
            let a = _mm_xor_si128(_mm_loadu_si128(p), kv);
            let b = _mm_xor_si128(_mm_loadu_si128(p.add(1)), kv);
            let c = _mm_xor_si128(_mm_loadu_si128(p.add(2)), kv);
            let d = _mm_xor_si128(_mm_loadu_si128(p.add(3)), kv);
            _mm_storeu_si128(p, a);
            _mm_storeu_si128(p.add(1), b);
            _mm_storeu_si128(p.add(2), c);
            _mm_storeu_si128(p.add(3), d);
        }
    }
    let rest = xor_16s(quads.into_remainder(), kv);
    // Whole vectors cover a multiple of 4 bytes: the tail starts at the same phase.
    scalar::word(rest, key, phase);
    end
}

/// XORs `kv` into each whole 16-byte chunk of `buf` and returns the rest (under 16 bytes).
///
/// The AVX loops use it for their tails too (inlined, so it costs no call).
#[inline(always)]
fn xor_16s(buf: &mut [u8], kv: __m128i) -> &mut [u8] {
    let mut singles = buf.chunks_exact_mut(16);
    for c in &mut singles {
        let p = c.as_mut_ptr().cast::<__m128i>();
        // SAFETY: `c` is exactly 16 bytes, the size of the access; `loadu`/`storeu` need no
        // alignment; SSE2 is enabled on every x86_64 target.
        unsafe { _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), kv)) };
    }
    singles.into_remainder()
}

/// Masks the head that `split_head` split off (often empty: then no call).
#[inline(always)]
fn head(head: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    if head.is_empty() {
        phase
    } else {
        sse2(head, key, phase)
    }
}

/// `Some(avx2)` if this CPU has AVX2.
pub(super) fn avx2() -> Option<RawFn> {
    if is_x86_feature_detected!("avx2") {
        Some(avx2_apply as RawFn)
    } else {
        None
    }
}

/// # Safety
///
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
unsafe fn avx2_apply(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    let end = end_phase(phase, buf.len());
    let (h, body) = split_head(buf, 32);
    let phase = head(h, key, phase);
    let k = key_lanes::<8>(key, phase);
    // SAFETY: `k` is 32 bytes (8 `u32` lanes), the size of the load; `loadu` needs no
    // alignment; the caller guarantees AVX2.
    let kv = unsafe { _mm256_loadu_si256(k.as_ptr().cast()) };

    let mut quads = body.chunks_exact_mut(128);
    for c in &mut quads {
        let p = c.as_mut_ptr().cast::<__m256i>();
        // SAFETY: `c` is exactly 128 bytes, so the four 32-byte accesses at `p.add(0..4)` are
        // in bounds; `loadu`/`storeu` need no alignment; the caller guarantees AVX2.
        unsafe {
            let a = _mm256_xor_si256(_mm256_loadu_si256(p), kv);
            let b = _mm256_xor_si256(_mm256_loadu_si256(p.add(1)), kv);
            let c = _mm256_xor_si256(_mm256_loadu_si256(p.add(2)), kv);
            let d = _mm256_xor_si256(_mm256_loadu_si256(p.add(3)), kv);
            _mm256_storeu_si256(p, a);
            _mm256_storeu_si256(p.add(1), b);
            _mm256_storeu_si256(p.add(2), c);
            _mm256_storeu_si256(p.add(3), d);
        }
    }
    let mut singles = quads.into_remainder().chunks_exact_mut(32);
    for c in &mut singles {
        let p = c.as_mut_ptr().cast::<__m256i>();
        // SAFETY: `c` is exactly 32 bytes, the size of the access; `loadu`/`storeu` need no
        // alignment; the caller guarantees AVX2.
        unsafe { _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), kv)) };
    }
    // Whole vectors cover a multiple of 4 bytes: the tail starts at the same phase. It is done
    // with 16-byte vectors, then `Word`.
    // SAFETY: `k` is at least 16 bytes, the size of the load; `loadu` needs no alignment; SSE2
    // is enabled on every x86_64 target.
    let kv16 = unsafe { _mm_loadu_si128(k.as_ptr().cast()) };
    let rest = xor_16s(singles.into_remainder(), kv16);
    scalar::word(rest, key, phase);
    end
}

/// `Some(avx512)` if this CPU has AVX-512F.
#[rustversion::since(1.89)]
pub(super) fn avx512() -> Option<RawFn> {
    if is_x86_feature_detected!("avx512f") {
        Some(avx512_apply as RawFn)
    } else {
        None
    }
}

/// Always `None`: this compiler predates stable AVX-512 (Rust 1.89).
#[rustversion::before(1.89)]
pub(super) fn avx512() -> Option<RawFn> {
    None
}

/// # Safety
///
/// The CPU must support AVX-512F.
#[rustversion::since(1.89)]
#[target_feature(enable = "avx512f")]
unsafe fn avx512_apply(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    use core::arch::x86_64::{__m512i, _mm512_loadu_si512, _mm512_storeu_si512, _mm512_xor_si512};

    let end = end_phase(phase, buf.len());
    let (h, body) = split_head(buf, 64);
    let phase = head(h, key, phase);
    let k = key_lanes::<16>(key, phase);
    // SAFETY: `k` is 64 bytes (16 `u32` lanes), the size of the load; `loadu` needs no
    // alignment; the caller guarantees AVX-512F.
    let kv = unsafe { _mm512_loadu_si512(k.as_ptr().cast()) };

    let mut quads = body.chunks_exact_mut(256);
    for c in &mut quads {
        let p = c.as_mut_ptr().cast::<__m512i>();
        // SAFETY: `c` is exactly 256 bytes, so the four 64-byte accesses at `p.add(0..4)` are
        // in bounds; `loadu`/`storeu` need no alignment; the caller guarantees AVX-512F.
        unsafe {
            let a = _mm512_xor_si512(_mm512_loadu_si512(p.cast()), kv);
            let b = _mm512_xor_si512(_mm512_loadu_si512(p.add(1).cast()), kv);
            let c = _mm512_xor_si512(_mm512_loadu_si512(p.add(2).cast()), kv);
            let d = _mm512_xor_si512(_mm512_loadu_si512(p.add(3).cast()), kv);
            _mm512_storeu_si512(p.cast(), a);
            _mm512_storeu_si512(p.add(1).cast(), b);
            _mm512_storeu_si512(p.add(2).cast(), c);
            _mm512_storeu_si512(p.add(3).cast(), d);
        }
    }
    let mut singles = quads.into_remainder().chunks_exact_mut(64);
    for c in &mut singles {
        let p = c.as_mut_ptr().cast::<__m512i>();
        // SAFETY: `c` is exactly 64 bytes, the size of the access; `loadu`/`storeu` need no
        // alignment; the caller guarantees AVX-512F.
        unsafe {
            _mm512_storeu_si512(p.cast(), _mm512_xor_si512(_mm512_loadu_si512(p.cast()), kv))
        };
    }
    // Whole vectors cover a multiple of 4 bytes: the tail starts at the same phase. It is done
    // with 16-byte vectors, then `Word` (not with AVX2: only AVX-512F was detected).
    // SAFETY: `k` is at least 16 bytes, the size of the load; `loadu` needs no alignment; SSE2
    // is enabled on every x86_64 target.
    let kv16 = unsafe { _mm_loadu_si128(k.as_ptr().cast()) };
    let rest = xor_16s(singles.into_remainder(), kv16);
    scalar::word(rest, key, phase);
    end
}
