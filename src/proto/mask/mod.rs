//! In-place WebSocket masking and unmasking, with the SIMD loop chosen at run time.
//!
//! RFC 6455 §5.3: byte `i` of a masked payload is XORed with `key[i % 4]`. Masking and unmasking
//! are the same operation, so [`apply`] does both.
//!
//! # The phase
//!
//! A frame's payload can span several receive buffers, so every function here takes the key
//! offset of `buf[0]` (the *phase*; only `phase % 4` matters) and returns the phase after the last
//! byte, `(phase + buf.len()) % 4`. Feed it to the call for the next piece of the same payload;
//! start a payload at phase 0.
//!
//! # Implementations
//!
//! [`Impl`] lists them; [`apply_with`] runs one by name (tests and benchmarks).
//!
//! - `Scalar`, in `scalar.rs`: the byte-at-a-time loop, obviously correct. Every other
//!   implementation is tested against it.
//! - `Word`, in `scalar.rs`: portable. Bytes until the pointer is 8-aligned, then `u64` words
//!   XORed with the key rotated by the phase and repeated twice, then the remaining bytes. It is
//!   the fallback where no SIMD exists, and it finishes every SIMD loop's last few bytes.
//! - `Sse2`, `Avx2`, `Avx512`, in `x86.rs`, and `Neon`, in `neon.rs`: the key rotated by the
//!   phase and repeated across a vector. A vector's width is a multiple of 4, so every vector of
//!   the buffer starts at the same phase and one key vector serves the whole loop. Loads and
//!   stores are unaligned, so any start offset works; for long buffers the AVX loops first do the
//!   bytes up to the vector's alignment (with SSE2 and `Word`) so the main loop never splits a
//!   cache line. The main loop does four vectors per iteration, then single vectors, then
//!   narrower ones for the tail.
//!
//! # Dispatch
//!
//! The first call of [`apply`] detects the CPU's features (`is_x86_feature_detected!`, which
//! `std` caches as well) and stores the fastest implementation's function pointer in a
//! `OnceLock`; after that [`apply`] costs one load, one well-predicted branch and one indirect
//! call. Buffers shorter than `SIMD_MIN` skip the dispatch and run `Word` directly: a vector
//! loop has nothing to gain there. The preference is fixed, widest first ([`Impl::best`]):
//! AVX-512, AVX2, SSE2 on x86_64; NEON on aarch64; `Word` elsewhere.
//!
//! # Unsafe
//!
//! This is the only module of the protocol core allowed `unsafe`. There are two kinds of block:
//!
//! - a vector load or store at `p.add(i)` where `p` points into a chunk from `chunks_exact_mut`
//!   whose length covers the whole access (loads and stores are the unaligned kind, so alignment
//!   is never needed), or into a local key array of the vector's exact size;
//! - a call of a `#[target_feature]` function (or of a pointer to one) after the feature was
//!   detected: `raw` is the only place that hands out such pointers, and it checks first.
//!
//! Each block is kept so that it needs `unsafe` on every compiler from 1.85 on: since Rust 1.87
//! the value-only intrinsics (`_mm_xor_si128`, `veorq_u8`) are safe inside a function with the
//! feature enabled, so they are only ever called within a block that also does a pointer
//! access, and the key vector is loaded from memory rather than built with `set1`.
//!
//! # Minimum Rust version
//!
//! The AVX-512 intrinsics and `#[target_feature(enable = "avx512f")]` are stable only since Rust
//! 1.89, and the crate's MSRV is 1.85. The AVX-512 items are gated with
//! `#[rustversion::since(1.89)]`; on an older compiler `Impl::Avx512.is_available()` is false
//! and AVX2 is the best x86_64 path.

mod scalar;

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod neon;

#[cfg(test)]
mod tests;

use std::sync::OnceLock;

/// Buffers shorter than this skip the dispatch and run `Word`: a vector loop has nothing to gain.
const SIMD_MIN: usize = 16;

/// Unmasks (or masks) `buf` in place with the best implementation for this CPU.
///
/// `phase` is the key offset of `buf[0]` (only `phase % 4` matters); returns the phase after the
/// last byte, `(phase + buf.len()) % 4`, to pass with the next piece of the same payload.
///
/// ```
/// use ringws::proto::mask;
///
/// // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d, arriving in two receive buffers.
/// let key = [0x37, 0xfa, 0x21, 0x3d];
/// let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
/// let (first, second) = payload.split_at_mut(3);
/// let phase = mask::apply(first, key, 0);
/// assert_eq!(phase, 3);
/// assert_eq!(mask::apply(second, key, phase), 1);
/// assert_eq!(&payload, b"Hello");
/// ```
#[inline]
pub fn apply(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    if buf.len() < SIMD_MIN {
        return scalar::word(buf, key, phase);
    }
    let f = chosen().f;
    // SAFETY: `chosen` stores a pointer that `raw` returned, and `raw` returns a pointer only
    // after checking that this CPU has the features the function needs.
    unsafe { f(buf, key, phase) }
}

/// Runs a specific implementation (for tests and benchmarks); returns `None` if it is not
/// available here.
///
/// `phase` and the result are as for [`apply`].
pub fn apply_with(imp: Impl, buf: &mut [u8], key: [u8; 4], phase: usize) -> Option<usize> {
    let f = raw(imp)?;
    // SAFETY: `raw` returns a pointer only after checking that this CPU has the features the
    // function needs.
    Some(unsafe { f(buf, key, phase) })
}

/// One implementation of the masking loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// The byte-at-a-time reference loop; everything is tested against it.
    Scalar,
    /// Portable `u64`-at-a-time loop; the fallback where no SIMD exists.
    Word,
    /// x86_64 SSE2, 16 bytes per vector (always present on x86_64).
    Sse2,
    /// x86_64 AVX2, 32 bytes per vector.
    Avx2,
    /// x86_64 AVX-512F, 64 bytes per vector (needs Rust 1.89 or later to be compiled in).
    Avx512,
    /// aarch64 NEON, 16 bytes per vector (always present on aarch64 Linux).
    Neon,
}

impl Impl {
    /// Every implementation, slowest first.
    const ALL: [Impl; 6] = [
        Impl::Scalar,
        Impl::Word,
        Impl::Sse2,
        Impl::Avx2,
        Impl::Avx512,
        Impl::Neon,
    ];

    /// A short lower-case name, as benchmarks print it.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Scalar => "scalar",
            Impl::Word => "word",
            Impl::Sse2 => "sse2",
            Impl::Avx2 => "avx2",
            Impl::Avx512 => "avx512",
            Impl::Neon => "neon",
        }
    }

    /// Whether this CPU (and this compiler) can run it.
    pub fn is_available(self) -> bool {
        raw(self).is_some()
    }

    /// Every implementation this CPU can run, slowest first.
    pub fn available() -> Vec<Impl> {
        Impl::ALL
            .into_iter()
            .filter(|imp| imp.is_available())
            .collect()
    }

    /// The one `apply` uses (chosen once, at first use).
    pub fn best() -> Impl {
        chosen().imp
    }
}

/// The function signature every implementation shares. It is `unsafe` because the SIMD ones
/// need CPU features that only `raw` checks.
type RawFn = unsafe fn(&mut [u8], [u8; 4], usize) -> usize;

/// The implementation `apply` uses, with its function pointer.
struct Chosen {
    imp: Impl,
    f: RawFn,
}

/// Detects the best implementation once and caches it.
fn chosen() -> &'static Chosen {
    static CHOSEN: OnceLock<Chosen> = OnceLock::new();
    CHOSEN.get_or_init(|| {
        Impl::ALL
            .into_iter()
            .rev()
            .find_map(|imp| raw(imp).map(|f| Chosen { imp, f }))
            .unwrap_or(Chosen {
                imp: Impl::Word,
                f: scalar::word,
            })
    })
}

/// The function of `imp`, if this CPU and this compiler can run it.
///
/// This is the only place that hands out pointers to `#[target_feature]` functions: it returns
/// one only after the features were detected, which is what makes calling it sound.
fn raw(imp: Impl) -> Option<RawFn> {
    match imp {
        Impl::Scalar => Some(scalar::scalar as RawFn),
        Impl::Word => Some(scalar::word as RawFn),
        #[cfg(target_arch = "x86_64")]
        Impl::Sse2 => Some(x86::sse2 as RawFn),
        #[cfg(target_arch = "x86_64")]
        Impl::Avx2 => x86::avx2(),
        #[cfg(target_arch = "x86_64")]
        Impl::Avx512 => x86::avx512(),
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        Impl::Neon => Some(neon::neon as RawFn),
        _ => None,
    }
}

/// The phase after `len` bytes starting at `phase`, without overflow for any `phase`.
fn end_phase(phase: usize, len: usize) -> usize {
    ((phase & 3) + (len & 3)) & 3
}

/// The key as seen from a byte at `phase`: `rotate(key, p)[j] == key[(p + j) % 4]`.
fn rotate(key: [u8; 4], phase: usize) -> [u8; 4] {
    // Little-endian, byte `j` is bits 8j..8j+8: rotating right by 8p bytes moves key[p] to 0.
    let shift = 8 * (phase & 3) as u32;
    u32::from_le_bytes(key).rotate_right(shift).to_le_bytes()
}

/// The key as seen from a byte at `phase`, repeated over `N` 4-byte lanes: one vector's worth.
///
/// Built as a `u32` array (not byte by byte) so that the compiler makes it one broadcast, and a
/// vector load of it is forwarded from a store of the same width.
fn key_lanes<const N: usize>(key: [u8; 4], phase: usize) -> [u32; N] {
    [u32::from_ne_bytes(rotate(key, phase)); N]
}
