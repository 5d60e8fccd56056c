//! UTF-8 validation, one-shot and streaming, on `simdutf8`.
//!
//! A text message may reach the server in many pieces: fragments, and within a fragment several
//! receive buffers. [`Utf8Stream`] validates piece by piece and fails on the first piece that
//! makes the text invalid, not at the end of the message: Autobahn's 6.4.x cases send an invalid
//! prefix and then wait, and count a late failure as NON-STRICT.
//!
//! Between pieces it carries at most three bytes: the start of a code point cut by the boundary.
//! Each piece is validated up to its last code-point boundary in one `simdutf8::basic` pass; the
//! cut bytes (if any) are checked with `simdutf8::compat` to still be a valid prefix, so an
//! invalid sequence is reported in the piece that holds it, not one piece later.

use simdutf8::{basic, compat};

/// The text was not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Validates a complete text in one call (SIMD, chosen at run time by `simdutf8`).
pub fn validate(bytes: &[u8]) -> Result<&str, InvalidUtf8> {
    basic::from_utf8(bytes).map_err(|_| InvalidUtf8)
}

/// The length of the UTF-8 sequence a leading byte starts (0 for a byte that cannot lead one).
const fn sequence_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

/// Where a code point cut by the end of `piece` starts (`piece.len()` if none is cut).
///
/// Looks at most 3 bytes back for the last byte that is not a continuation byte; if the
/// sequence it starts is longer than what is left, that is the cut. Anything else (complete,
/// or invalid) is left to the validator.
fn incomplete_tail_start(piece: &[u8]) -> usize {
    let n = piece.len();
    for i in (n.saturating_sub(3)..n).rev() {
        let b = piece[i];
        if b & 0xC0 != 0x80 {
            return if sequence_len(b) > n - i { i } else { n };
        }
    }
    n
}

/// Streaming validation state: the bytes of a code point cut by the last piece's end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utf8Stream {
    carry: [u8; 3],
    carry_len: u8,
}

impl Utf8Stream {
    /// A stream at the start of a text.
    pub const fn new() -> Self {
        Self {
            carry: [0; 3],
            carry_len: 0,
        }
    }

    /// Validates the next piece. Fails as soon as the text seen so far cannot be the start of
    /// valid UTF-8.
    pub fn feed(&mut self, mut piece: &[u8]) -> Result<(), InvalidUtf8> {
        if self.carry_len > 0 {
            piece = self.complete_carry(piece)?;
            if self.carry_len > 0 {
                return Ok(()); // the piece was too short to finish the code point
            }
        }
        // Validate up to the last code-point boundary in one SIMD pass; keep the cut code point
        // (at most 3 bytes) for the next piece, after checking it can still become valid.
        let boundary = incomplete_tail_start(piece);
        let (whole, tail) = piece.split_at(boundary);
        if basic::from_utf8(whole).is_err() {
            return Err(InvalidUtf8);
        }
        if !tail.is_empty() {
            if compat::from_utf8(tail).is_err_and(|e| e.error_len().is_some()) {
                return Err(InvalidUtf8);
            }
            self.carry[..tail.len()].copy_from_slice(tail);
            self.carry_len = tail.len() as u8;
        }
        Ok(())
    }

    /// Ends the text: fails if it stopped inside a code point. Resets the stream.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let cut = self.carry_len > 0;
        *self = Self::new();
        if cut { Err(InvalidUtf8) } else { Ok(()) }
    }

    /// Moves bytes from the front of `piece` into the carried code point, validates what is
    /// there, and returns the rest of `piece`.
    fn complete_carry<'a>(&mut self, piece: &'a [u8]) -> Result<&'a [u8], InvalidUtf8> {
        let have = usize::from(self.carry_len);
        let need = sequence_len(self.carry[0]);
        let take = (need - have).min(piece.len());
        let mut cp = [0u8; 4];
        cp[..have].copy_from_slice(&self.carry[..have]);
        cp[have..have + take].copy_from_slice(&piece[..take]);
        let len = have + take;
        match compat::from_utf8(&cp[..len]) {
            Ok(_) => self.carry_len = 0,
            Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
            Err(_) => {
                // Still cut (the piece was shorter than the rest of the code point).
                self.carry[..len].copy_from_slice(&cp[..len]);
                self.carry_len = len as u8;
            }
        }
        Ok(&piece[take..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stream_validate(pieces: &[&[u8]]) -> Result<(), InvalidUtf8> {
        let mut s = Utf8Stream::new();
        for p in pieces {
            s.feed(p)?;
        }
        s.finish()
    }

    #[test]
    fn one_shot_matches_std() {
        assert_eq!(validate("κόσμε".as_bytes()), Ok("κόσμε"));
        assert_eq!(validate(b"\xed\xa0\x80"), Err(InvalidUtf8)); // surrogate
        assert_eq!(validate(b"\xf4\x90\x80\x80"), Err(InvalidUtf8)); // > U+10FFFF
    }

    #[test]
    fn code_point_split_at_every_point() {
        let text = "a€𝄞é z".as_bytes();
        for i in 0..=text.len() {
            for j in i..=text.len() {
                let r = stream_validate(&[&text[..i], &text[i..j], &text[j..]]);
                assert_eq!(r, Ok(()), "split {i} {j}");
            }
        }
    }

    #[test]
    fn byte_by_byte_four_byte_sequence() {
        let mut s = Utf8Stream::new();
        for b in "𝄞".as_bytes() {
            s.feed(std::slice::from_ref(b)).unwrap();
        }
        s.finish().unwrap();
    }

    #[test]
    fn fails_fast_on_invalid_prefix() {
        // Autobahn 6.4.1: "κόσμε" followed by the start of a surrogate; the error must show at
        // the piece that holds 0xED 0xA0, before the message ends.
        let mut s = Utf8Stream::new();
        s.feed("κόσμε".as_bytes()).unwrap();
        assert_eq!(s.feed(b"\xed\xa0\x80"), Err(InvalidUtf8));
        // The same cut after 0xED: the 0xA0 that follows is what is invalid.
        let mut s = Utf8Stream::new();
        s.feed(b"ab\xed").unwrap();
        assert_eq!(s.feed(b"\xa0"), Err(InvalidUtf8));
        // A byte that can never lead a sequence fails at once.
        let mut s = Utf8Stream::new();
        assert_eq!(s.feed(b"ab\xf5"), Err(InvalidUtf8));
    }

    #[test]
    fn truncated_text_fails_at_finish() {
        let mut s = Utf8Stream::new();
        s.feed(b"ab\xe2\x82").unwrap();
        assert_eq!(s.finish(), Err(InvalidUtf8));
        // finish resets the stream for the next message
        assert_eq!(s.finish(), Ok(()));
    }

    proptest! {
        #[test]
        fn streaming_equals_std_on_random_bytes(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
            points.sort_unstable();
            let mut pieces = Vec::new();
            let mut last = 0;
            for p in points { pieces.push(&data[last..p]); last = p; }
            pieces.push(&data[last..]);
            let expected = std::str::from_utf8(&data).is_ok();
            prop_assert_eq!(stream_validate(&pieces).is_ok(), expected);
        }

        #[test]
        fn streaming_equals_std_on_mostly_valid_text(
            text in "\\PC{0,80}",
            flip in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut_a in any::<prop::sample::Index>(),
            cut_b in any::<prop::sample::Index>(),
        ) {
            let mut data = text.into_bytes();
            if !data.is_empty() { let i = flip.index(data.len()); data[i] = byte; }
            let (mut a, mut b) = (cut_a.index(data.len() + 1), cut_b.index(data.len() + 1));
            if a > b { std::mem::swap(&mut a, &mut b); }
            let expected = std::str::from_utf8(&data).is_ok();
            let got = stream_validate(&[&data[..a], &data[a..b], &data[b..]]).is_ok();
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn streaming_fails_at_the_first_invalid_piece(
            data in proptest::collection::vec(any::<u8>(), 1..120),
            step in 1usize..8,
        ) {
            // Feed in steps: the first failing feed must be the piece holding the first byte
            // that proves the text invalid, never a later one.
            let mut s = Utf8Stream::new();
            let mut failed_at = None;
            for (i, piece) in data.chunks(step).enumerate() {
                if s.feed(piece).is_err() { failed_at = Some(i); break; }
            }
            // The reference: the first byte k at which data[..=k] cannot start valid UTF-8.
            let proven_at = (0..data.len()).find(|&k| {
                std::str::from_utf8(&data[..=k]).is_err_and(|e| e.error_len().is_some())
            });
            prop_assert_eq!(failed_at, proven_at.map(|k| k / step));
        }
    }
}
