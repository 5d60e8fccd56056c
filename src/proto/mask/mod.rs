//! (temporary scalar stand-in until the SIMD module lands)
/// Applies the mask in place; returns the phase after `buf`.
pub fn apply(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(i + phase) % 4];
    }
    (phase + buf.len()) % 4
}
