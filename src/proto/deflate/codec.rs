//! Whole-message DEFLATE for RFC 7692 (§7.2): raw DEFLATE (no zlib header), each message ended
//! by a sync flush whose `00 00 ff ff` tail is removed before sending and put back before
//! inflating.
//!
//! Both sides work on one whole message at a time (the protocol core assembles a compressed
//! message before handing it over, bounded by the message limit on its compressed size). The
//! inflater checks the *inflated* size while inflating, a bounded block at a time, so a small
//! message that would inflate to gigabytes (a "zip bomb") stops at the limit with
//! [`Error::MessageTooLarge`], having used at most the limit plus one block of memory.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::TAIL;
use crate::proto::error::Error;

/// Output is produced at most this many bytes at a time: what an inflation can overshoot the
/// limit by before it is caught, and the growth step of the output buffer. A message that
/// inflates past the limit costs at most the limit plus this much output memory (the inflater's
/// own state, with its window, is a fixed cost of its own).
pub const INFLATE_BLOCK: usize = 16 * 1024;
const BLOCK: usize = INFLATE_BLOCK;

/// zlib's raw deflate cannot use a 256-byte window (8 bits) and uses 512 (9) instead; with 9
/// bits its matches reach back at most 512 - 262 = 250 bytes, so the output is valid for a peer
/// that allowed only 8 (zlib's own documented behaviour, which Node's ws relies on too).
fn zlib_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// Decompresses whole messages. With context takeover (the peer keeps its window between
/// messages) keep one per connection and never [`reset`](Self::reset) it; without, one per
/// worker serves every connection, reset after each message.
pub struct Inflater {
    d: Decompress,
}

impl core::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Inflater").finish_non_exhaustive()
    }
}

impl Inflater {
    /// An inflater for a peer that compresses with at most `window_bits` (8 to 15).
    pub fn new(window_bits: u8) -> Self {
        Self {
            d: Decompress::new_with_window_bits(false, zlib_bits(window_bits)),
        }
    }

    /// Forgets the window (between messages when the peer does not take over context).
    pub fn reset(&mut self) {
        self.d.reset(false);
    }

    /// Inflates one message's `payload` (as received, without the tail) and appends it to
    /// `out`, failing with [`Error::MessageTooLarge`] as soon as it passes `limit` bytes and
    /// with [`Error::BadCompressedData`] if it is not valid DEFLATE. `out` grows a block at a
    /// time, never beyond `limit` + `BLOCK` bytes more than it held. After an error the
    /// inflater must be reset or dropped (the connection is failed anyway).
    pub fn inflate(
        &mut self,
        payload: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let start = out.len();
        for input in [payload, &TAIL[..]] {
            let mut used = 0;
            loop {
                let produced = out.len() - start;
                if produced > limit {
                    return Err(Error::MessageTooLarge);
                }
                // Room for the rest of the limit plus one byte (to see it passed), a block at
                // most.
                let room = (limit - produced + 1).min(BLOCK);
                if out.capacity() - out.len() < room {
                    // Doubling, but never past the limit (plus the block that detects it).
                    let cap = (out.capacity() * 2).clamp(out.len() + room, start + limit + 1);
                    out.reserve_exact(cap.max(out.len() + room) - out.len());
                }
                let before = (self.d.total_in(), self.d.total_out());
                let status = self
                    .d
                    .decompress_vec(&input[used..], out, FlushDecompress::Sync)
                    .map_err(|_| Error::BadCompressedData)?;
                used += (self.d.total_in() - before.0) as usize;
                if out.len() - start > limit {
                    return Err(Error::MessageTooLarge);
                }
                if status == Status::StreamEnd {
                    // A final block (BFINAL) ends the stream; what follows is ignored and the
                    // next message starts a new stream (§7.2.3.3 allows it).
                    self.d.reset(false);
                    return Ok(());
                }
                let progressed = (self.d.total_in(), self.d.total_out()) != before;
                if used == input.len() && out.len() < out.capacity() {
                    break; // all input in, and output space left over: this part is done
                }
                if !progressed && out.len() < out.capacity() {
                    // Input left and room to write, yet nothing moved.
                    return Err(Error::BadCompressedData);
                }
            }
        }
        Ok(())
    }
}

/// Compresses whole messages. With context takeover keep one per connection; without, one per
/// worker (and window size) serves every connection, reset after each message.
pub struct Deflater {
    c: Compress,
    no_context_takeover: bool,
}

impl core::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Deflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .finish_non_exhaustive()
    }
}

impl Deflater {
    /// A deflater at `level` (1 to 9) keeping at most `window_bits` (8 to 15) of window;
    /// `no_context_takeover`: every message is compressed on its own.
    pub fn new(level: u8, window_bits: u8, no_context_takeover: bool) -> Self {
        Self {
            c: Compress::new_with_window_bits(
                Compression::new(u32::from(level.clamp(1, 9))),
                false,
                zlib_bits(window_bits),
            ),
            no_context_takeover,
        }
    }

    /// Compresses `payload` as one message and appends it to `out`, without the tail.
    pub fn deflate(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        let mut used = 0;
        loop {
            // A sync flush of `n` bytes needs at most n + 5 per 16 KiB block + 6: reserve
            // generously, and loop if it still was not enough.
            out.reserve(payload.len() - used + 64);
            let before = self.c.total_in();
            // Only a stream error can fail, and a raw deflate stream with valid parameters
            // has none; if it ever did, the message is sent as a stored block below.
            if self
                .c
                .compress_vec(&payload[used..], out, FlushCompress::Sync)
                .is_err()
            {
                out.truncate(start);
                self.c.reset();
                store(payload, out);
                return;
            }
            used += (self.c.total_in() - before) as usize;
            if used == payload.len() && out.len() < out.capacity() {
                break;
            }
        }
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if self.no_context_takeover {
            self.c.reset();
        }
    }
}

/// `payload` as stored (uncompressed) DEFLATE blocks, ending like a sync flush minus its tail.
fn store(payload: &[u8], out: &mut Vec<u8>) {
    for chunk in payload.chunks(0xffff) {
        let len = chunk.len() as u16;
        out.push(0x00); // BFINAL 0, BTYPE 00, padded to the byte
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    // The empty stored block a sync flush ends with, minus the `00 00 ff ff` that follows its
    // header byte.
    out.push(0x00);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::deflate::test_data::chat;

    fn roundtrip(level: u8, bits: u8, takeover: bool, messages: &[Vec<u8>]) {
        let mut d = Deflater::new(level, bits, !takeover);
        let mut i = Inflater::new(bits);
        for m in messages {
            let mut packed = Vec::new();
            d.deflate(m, &mut packed);
            assert!(!packed.ends_with(&TAIL));
            let mut out = Vec::new();
            i.inflate(&packed, m.len(), &mut out).unwrap();
            assert_eq!(&out, m);
            if !takeover {
                i.reset();
            }
        }
    }

    #[test]
    fn messages_roundtrip_at_every_window_with_and_without_context() {
        let msgs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"a".to_vec(),
            chat(3),
            chat(200),
            (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ];
        for bits in 8..=15 {
            for takeover in [false, true] {
                roundtrip(1, bits, takeover, &msgs);
            }
        }
        roundtrip(9, 15, true, &msgs);
    }

    #[test]
    fn context_takeover_makes_repeated_messages_smaller() {
        let m = chat(1);
        let mut fresh = Deflater::new(1, 15, true);
        let mut kept = Deflater::new(1, 15, false);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            a.clear();
            b.clear();
            fresh.deflate(&m, &mut a);
            kept.deflate(&m, &mut b);
        }
        assert!(b.len() < a.len() / 2, "{} vs {}", b.len(), a.len());
    }

    #[test]
    fn an_empty_message_is_one_byte() {
        let mut out = Vec::new();
        Deflater::new(1, 15, true).deflate(b"", &mut out);
        assert_eq!(out, [0x00]);
        let mut inflated = Vec::new();
        Inflater::new(15).inflate(&out, 0, &mut inflated).unwrap();
        assert!(inflated.is_empty());
    }

    #[test]
    fn a_bomb_stops_at_the_limit_with_bounded_memory() {
        // 64 MiB of zeros compress to ~64 KiB; the limit is 1 MiB.
        let zeros = vec![0u8; 64 << 20];
        let mut packed = Vec::new();
        Deflater::new(9, 15, true).deflate(&zeros, &mut packed);
        assert!(packed.len() < 128 << 10, "{}", packed.len());
        let mut out = Vec::new();
        let e = Inflater::new(15).inflate(&packed, 1 << 20, &mut out);
        assert_eq!(e, Err(Error::MessageTooLarge));
        assert!(out.capacity() <= (1 << 20) + BLOCK, "{}", out.capacity());
        // Exactly at the limit is fine.
        let mut out = Vec::new();
        Inflater::new(15)
            .inflate(&packed, zeros.len(), &mut out)
            .unwrap();
        assert_eq!(out.len(), zeros.len());
    }

    #[test]
    fn garbage_is_bad_compressed_data_not_a_panic() {
        for bad in [&[0xff_u8; 8][..], &[0x07], &[0x00, 0x05, 0x00, 0x00, 0x00]] {
            let mut out = Vec::new();
            let r = Inflater::new(15).inflate(bad, 1 << 16, &mut out);
            assert!(
                matches!(r, Err(Error::BadCompressedData) | Ok(())),
                "{bad:?}: {r:?}"
            );
        }
        let mut out = Vec::new();
        assert_eq!(
            Inflater::new(15).inflate(&[0xff; 8], 1 << 16, &mut out),
            Err(Error::BadCompressedData)
        );
    }

    #[test]
    fn a_final_block_ends_the_message_and_the_next_starts_fresh() {
        // BFINAL=1 fixed-Huffman block holding "a" (what some clients send): 4b 04 00.
        let mut c = Compress::new(Compression::new(1), false);
        let mut packed = Vec::with_capacity(64);
        c.compress_vec(b"abc", &mut packed, FlushCompress::Finish)
            .unwrap();
        let mut i = Inflater::new(15);
        for _ in 0..2 {
            let mut out = Vec::new();
            i.inflate(&packed, 16, &mut out).unwrap();
            assert_eq!(out, b"abc");
        }
    }

    #[test]
    fn stored_fallback_inflates() {
        let data = chat(2000);
        let mut out = Vec::new();
        store(&data, &mut out);
        let mut inflated = Vec::new();
        Inflater::new(15)
            .inflate(&out, data.len(), &mut inflated)
            .unwrap();
        assert_eq!(inflated, data);
    }

    proptest::proptest! {
        // The fuzz target's invariants (fuzz/fuzz_targets/inflate.rs) on every `cargo test`:
        // arbitrary bytes, and real compressed data cut or corrupted at a random place.
        #[test]
        fn arbitrary_payloads_never_pass_the_limit(
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            limit in 0usize..70_000,
        ) {
            check_inflate(&payload, limit);
        }

        #[test]
        fn damaged_compressed_data_never_passes_the_limit(
            repeat in 1usize..200,
            cut in 0usize..2_000,
            flip in 0usize..2_000,
            limit in 0usize..20_000,
        ) {
            let mut packed = Vec::new();
            Deflater::new(1, 15, true).deflate(&chat(repeat), &mut packed);
            let len = packed.len();
            packed[flip % len] ^= 0x5a;
            packed.truncate(cut.min(len));
            check_inflate(&packed, limit);
        }
    }

    fn check_inflate(payload: &[u8], limit: usize) {
        let mut out = Vec::new();
        match Inflater::new(15).inflate(payload, limit, &mut out) {
            Ok(()) => assert!(out.len() <= limit),
            Err(e) => assert!(matches!(
                e,
                Error::MessageTooLarge | Error::BadCompressedData
            )),
        }
        assert!(
            out.capacity() <= limit + 2 * BLOCK,
            "{} for {limit}",
            out.capacity()
        );
    }
}
