//! The portable implementations: `Scalar`, the reference, and `Word`, the fallback. No `unsafe`.

use super::{end_phase, key_lanes};

/// The reference: byte `i` is XORed with `key[(phase + i) % 4]`.
pub(super) fn scalar(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    let p = phase & 3;
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(p + i) & 3];
    }
    end_phase(phase, buf.len())
}

/// `u64` at a time: bytes up to the first 8-aligned address, then whole words XORed with the
/// rotated key repeated twice, then the last bytes.
///
/// A word is 8 bytes, a multiple of 4, so every word starts at the same phase and one key word
/// serves the whole loop. The words are read and written through `from_ne_bytes`/`to_ne_bytes`,
/// which compile to plain loads and stores, so this needs no `unsafe`; the aligned start keeps
/// them from straddling words on targets where that is slow.
pub(super) fn word(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    let end = end_phase(phase, buf.len());
    let head_len = buf.as_ptr().align_offset(8).min(buf.len());
    let (head, body) = buf.split_at_mut(head_len);
    let phase = scalar(head, key, phase);

    let [k] = key_lanes::<1>(key, phase);
    // The same `u32` in both halves, whatever the byte order.
    let k = u64::from(k) * 0x1_0000_0001;
    let mut words = body.chunks_exact_mut(8);
    for w in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        w.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ k).to_ne_bytes());
    }
    // The words covered a multiple of 4 bytes: the tail starts at the same phase.
    scalar(words.into_remainder(), key, phase);
    end
}
