//! aarch64 NEON: 16-byte vectors, four per iteration.
//!
//! NEON is part of the baseline of every aarch64 Linux target (the module is compiled only when
//! `target_feature = "neon"` is on), so no detection is needed and this is a safe function.
//! Loads and stores are `vld1q_u8`/`vst1q_u8`, which need no alignment beyond a byte's.

use core::arch::aarch64::{veorq_u8, vld1q_u8, vst1q_u8};

use super::{end_phase, key_lanes, scalar};

/// XORs whole 16-byte vectors with the rotated key, then hands the tail to `Word`.
pub(super) fn neon(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    let end = end_phase(phase, buf.len());
    let k = key_lanes::<4>(key, phase);
    // SAFETY: `k` is 16 bytes (four `u32` lanes), the size of the load; `vld1q_u8` needs only
    // byte alignment; NEON is enabled at compile time (`target_feature = "neon"`).
    let kv = unsafe { vld1q_u8(k.as_ptr().cast()) };

    let mut quads = buf.chunks_exact_mut(64);
    for c in &mut quads {
        let p = c.as_mut_ptr();
        // SAFETY: `c` is exactly 64 bytes, so the four 16-byte accesses at `p`, `p + 16`,
        // `p + 32` and `p + 48` are in bounds; `vld1q_u8`/`vst1q_u8` need only byte alignment;
        // NEON is enabled at compile time.
        unsafe {
            let a = veorq_u8(vld1q_u8(p), kv);
            let b = veorq_u8(vld1q_u8(p.add(16)), kv);
            let c = veorq_u8(vld1q_u8(p.add(32)), kv);
            let d = veorq_u8(vld1q_u8(p.add(48)), kv);
            vst1q_u8(p, a);
            vst1q_u8(p.add(16), b);
            vst1q_u8(p.add(32), c);
            vst1q_u8(p.add(48), d);
        }
    }
    let mut singles = quads.into_remainder().chunks_exact_mut(16);
    for c in &mut singles {
        let p = c.as_mut_ptr();
        // SAFETY: `c` is exactly 16 bytes, the size of the access; `vld1q_u8`/`vst1q_u8` need
        // only byte alignment; NEON is enabled at compile time.
        unsafe { vst1q_u8(p, veorq_u8(vld1q_u8(p), kv)) };
    }
    // Whole vectors cover a multiple of 4 bytes: the tail starts at the same phase.
    scalar::word(singles.into_remainder(), key, phase);
    end
}
