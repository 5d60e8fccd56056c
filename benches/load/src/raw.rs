//! `--raw-echo`: against a server that sends back every byte as it came (the benchmarks' floor,
//! `ringws-floor`), echoes are checked byte for byte against the frames sent, still masked,
//! instead of being parsed as the server's frames.

use std::collections::VecDeque;

use crate::verify::Mismatch;

/// The frames sent and not yet echoed.
#[derive(Debug, Default)]
pub struct RawEcho {
    /// The bytes sent; `bytes[done..]` are not echoed yet.
    bytes: Vec<u8>,
    done: usize,
    /// The length of each frame not yet echoed whole, oldest first.
    lens: VecDeque<usize>,
    /// Bytes of the oldest frame already echoed.
    partial: usize,
}

impl RawEcho {
    /// A frame was queued for sending.
    pub fn sent(&mut self, frame: &[u8]) {
        if self.done == self.bytes.len() {
            self.bytes.clear();
            self.done = 0;
        } else if self.done > self.bytes.len() / 2 && self.done >= 4096 {
            self.bytes.drain(..self.done);
            self.done = 0;
        }
        self.bytes.extend_from_slice(frame);
        self.lens.push_back(frame.len());
    }

    /// Bytes came back: how many frames they complete, or where they differ from what was sent.
    pub fn received(&mut self, data: &[u8]) -> Result<u32, Mismatch> {
        let owed = &self.bytes[self.done..];
        if data.len() > owed.len() {
            return Err(Mismatch::Unexpected);
        }
        if let Some(offset) = owed.iter().zip(data).position(|(a, b)| a != b) {
            return Err(Mismatch::Bytes { offset });
        }
        self.done += data.len();
        let mut left = self.partial + data.len();
        let mut frames = 0;
        while let Some(&len) = self.lens.front() {
            if left < len {
                break;
            }
            left -= len;
            self.lens.pop_front();
            frames += 1;
        }
        self.partial = left;
        Ok(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_complete_across_reads_and_a_changed_byte_is_found() {
        let mut r = RawEcho::default();
        r.sent(b"abc");
        r.sent(b"defg");
        assert_eq!(r.received(b"ab"), Ok(0));
        assert_eq!(r.received(b"cde"), Ok(1));
        assert_eq!(r.received(b"fg"), Ok(1));
        assert_eq!(r.received(b"x"), Err(Mismatch::Unexpected));
        r.sent(b"hij");
        assert_eq!(r.received(b"hXj"), Err(Mismatch::Bytes { offset: 1 }));
    }

    #[test]
    fn two_frames_in_one_read_and_the_buffer_is_reused() {
        let mut r = RawEcho::default();
        for _ in 0..10_000 {
            r.sent(b"12");
            r.sent(b"345");
            assert_eq!(r.received(b"12345"), Ok(2));
        }
        assert!(r.bytes.capacity() < 64);
    }
}
