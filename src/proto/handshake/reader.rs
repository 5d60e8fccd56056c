//! The incremental request-head reader: finds the end of the HTTP head (`\r\n\r\n`) across
//! reads, in linear time, within [`Limits::max_header_bytes`].
//!
//! Every byte is scanned exactly once, whatever the read sizes: the scanner keeps how much of
//! `\r\n\r\n` the bytes so far end with (0 to 3), so it never re-scans the bytes of earlier
//! reads and never re-parses the head (tungstenite CVE-2023-43669 re-parsed the whole head on
//! every read: quadratic CPU for a client that trickles bytes). The head is parsed once, by
//! [`Request::parse`](super::Request::parse), when it is complete.

use crate::proto::config::Limits;
use crate::proto::error::Error;

/// The head terminator. A bare `\n\n` is not accepted: the head must end with CRLF CRLF.
const TERMINATOR: &[u8; 4] = b"\r\n\r\n";

/// Collects the request head (request line and headers) of one HTTP request from successive
/// reads.
///
/// Calling order: [`handle_bytes`](Self::handle_bytes) with the bytes of each read until it
/// returns [`Head::Complete`] or an error. Then:
///
/// - on `Complete`, parse the `head` and use `rest` (bytes after the head, e.g. the client's
///   first frames); calling `handle_bytes` again starts a new head (for a keep-alive plain HTTP
///   request: feed it `rest` first) and frees the buffer of the previous one;
/// - on an error, answer it and close the connection; the reader stays failed.
///
/// No allocation happens while each head arrives whole in one read: the head then borrows the
/// caller's read buffer. Only a head spanning reads is copied into an internal buffer, which
/// never holds more than [`Limits::max_header_bytes`].
#[derive(Debug, Default)]
pub struct HeadReader {
    /// The head so far, when it spans reads; empty (unallocated) otherwise.
    buf: Vec<u8>,
    /// How many bytes of [`TERMINATOR`] the scanned bytes end with (0..=3). Every byte in `buf`
    /// has been scanned, so `buf.len()` is the count of bytes already scanned.
    matched: u8,
    state: State,
    /// Bytes scanned over the reader's life, to test that the work is linear.
    #[cfg(test)]
    scanned: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the rest of a head.
    #[default]
    Reading,
    /// The last call returned `Complete`; `buf` may still hold that head.
    Complete,
    /// The head was too large; every call fails.
    Failed,
}

/// What [`HeadReader::handle_bytes`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head<'a> {
    /// No `\r\n\r\n` yet: read more.
    Incomplete,
    /// The head is complete.
    Complete {
        /// The request line and headers, ending with `\r\n\r\n`.
        head: &'a [u8],
        /// The bytes of this read after the head (the start of a body, or the client's first
        /// frames): they belong to the connection, not to the handshake, and must not be lost.
        rest: &'a [u8],
    },
}

impl HeadReader {
    /// A reader waiting for the first byte of a head. Allocates nothing.
    pub const fn new() -> Self {
        Self {
            buf: Vec::new(),
            matched: 0,
            state: State::Reading,
            #[cfg(test)]
            scanned: 0,
        }
    }

    /// Feeds the bytes of one read.
    ///
    /// When nothing is buffered and the whole head is in `data`, `head` borrows `data`
    /// (zero-copy). Otherwise the head's bytes are appended to the internal buffer and `head`
    /// borrows it. Only the new bytes are scanned. `rest` is always the part of `data` after
    /// the head.
    ///
    /// # Errors
    ///
    /// [`Error::HeaderTooLarge`] as soon as the head cannot end within
    /// `limits.max_header_bytes` (a head of exactly that many bytes, terminator included, is
    /// accepted). The buffer is freed and every later call fails the same way.
    pub fn handle_bytes<'a>(
        &'a mut self,
        data: &'a [u8],
        limits: &Limits,
    ) -> Result<Head<'a>, Error> {
        match self.state {
            State::Failed => return Err(Error::HeaderTooLarge),
            State::Complete => {
                self.buf = Vec::new();
                self.matched = 0;
                self.state = State::Reading;
            }
            State::Reading => {}
        }
        // The head may still grow by `room` bytes; the terminator must end within them.
        let room = limits.max_header_bytes.saturating_sub(self.buf.len());
        let window = data.get(..room).unwrap_or(data);
        match self.scan(window) {
            Some(end) => {
                let (head, rest) = data.split_at_checked(end).unwrap_or((data, &[]));
                self.state = State::Complete;
                if self.buf.is_empty() {
                    return Ok(Head::Complete { head, rest });
                }
                self.buf.extend_from_slice(head);
                Ok(Head::Complete {
                    head: &self.buf,
                    rest,
                })
            }
            None if data.len() > room => {
                self.buf = Vec::new();
                self.state = State::Failed;
                Err(Error::HeaderTooLarge)
            }
            None => {
                self.append(data, limits.max_header_bytes);
                Ok(Head::Incomplete)
            }
        }
    }

    /// Bytes held by the reader: the partial head while waiting, or the completed head until
    /// the next call (for memory accounting).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Continues the terminator search over `window`; returns the index just past the
    /// terminator if it ends in `window`.
    fn scan(&mut self, window: &[u8]) -> Option<usize> {
        let mut matched = usize::from(self.matched);
        let mut found = None;
        for (i, &b) in window.iter().enumerate() {
            // A failed match falls back to the longest prefix of "\r\n\r\n" that the bytes
            // end with: "\r" if this byte is '\r', otherwise nothing.
            matched = if TERMINATOR.get(matched) == Some(&b) {
                matched + 1
            } else {
                usize::from(b == b'\r')
            };
            if matched == TERMINATOR.len() {
                found = Some(i + 1);
                break;
            }
        }
        #[cfg(test)]
        {
            self.scanned += found.unwrap_or(window.len());
        }
        // `matched` is at most 3 unless found, when the reader is done with it.
        self.matched = u8::try_from(matched).unwrap_or(0);
        found
    }

    /// Buffers `data` (known to fit within `max` in total), growing the buffer by doubling but
    /// never its capacity beyond `max`.
    fn append(&mut self, data: &[u8], max: usize) {
        let needed = self.buf.len() + data.len();
        if needed > self.buf.capacity() {
            let target = needed
                .max(self.buf.capacity().saturating_mul(2))
                .max(256)
                .min(max)
                .max(needed);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REQ: &[u8] = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    fn limits(max_header_bytes: usize) -> Limits {
        Limits {
            max_header_bytes,
            ..Limits::default()
        }
    }

    /// Feeds `chunks` until the head is complete; returns (head, rest of that chunk followed by
    /// the chunks not fed), or the error.
    /// A completed head and every byte after it.
    type HeadAndRest = (Vec<u8>, Vec<u8>);

    fn feed(
        reader: &mut HeadReader,
        chunks: &[&[u8]],
        limits: &Limits,
    ) -> Result<Option<HeadAndRest>, Error> {
        for (i, chunk) in chunks.iter().enumerate() {
            if let Head::Complete { head, rest } = reader.handle_bytes(chunk, limits)? {
                let mut after = rest.to_vec();
                for later in &chunks[i + 1..] {
                    after.extend_from_slice(later);
                }
                return Ok(Some((head.to_vec(), after)));
            }
            assert!(reader.buffered() <= limits.max_header_bytes);
        }
        Ok(None)
    }

    #[test]
    fn whole_head_in_one_read_is_zero_copy() {
        let mut data = REQ.to_vec();
        data.extend_from_slice(b"\x81\x85frame");
        let mut reader = HeadReader::new();
        let Head::Complete { head, rest } = reader.handle_bytes(&data, &Limits::default()).unwrap()
        else {
            panic!("incomplete");
        };
        assert_eq!(head, REQ);
        assert_eq!(head.as_ptr(), data.as_ptr(), "head borrows the read buffer");
        assert_eq!(rest, b"\x81\x85frame");
        assert_eq!(reader.buffered(), 0);
        assert_eq!(reader.buf.capacity(), 0, "nothing allocated");
    }

    #[test]
    fn new_allocates_nothing_and_empty_reads_are_incomplete() {
        let mut reader = HeadReader::new();
        assert_eq!(reader.buf.capacity(), 0);
        assert_eq!(
            reader.handle_bytes(b"", &Limits::default()),
            Ok(Head::Incomplete)
        );
        assert_eq!(reader.buf.capacity(), 0);
    }

    #[test]
    fn byte_by_byte_scans_each_byte_once() {
        let mut data = REQ.to_vec();
        data.extend_from_slice(b"rest");
        let chunks: Vec<&[u8]> = data.chunks(1).collect();
        let mut reader = HeadReader::new();
        let (head, rest) = feed(&mut reader, &chunks, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(head, REQ);
        assert_eq!(rest, b"rest");
        assert_eq!(reader.scanned, REQ.len(), "every byte scanned exactly once");
    }

    #[test]
    fn terminator_split_across_reads() {
        for split in [REQ.len() - 4, REQ.len() - 3, REQ.len() - 2, REQ.len() - 1] {
            let (a, b) = REQ.split_at(split);
            let mut reader = HeadReader::new();
            let got = feed(&mut reader, &[a, b, b"xy"], &Limits::default())
                .unwrap()
                .unwrap();
            assert_eq!(got, (REQ.to_vec(), b"xy".to_vec()), "split at {split}");
        }
    }

    #[test]
    fn bare_lf_and_near_misses_are_not_terminators() {
        let mut reader = HeadReader::new();
        let limits = Limits::default();
        for chunk in [
            &b"GET / HTTP/1.1\n\n"[..],
            b"\r\n\r",
            b"\r\r\n\n",
            b"\n\r\n\r",
            b"\r",
        ] {
            assert_eq!(reader.handle_bytes(chunk, &limits), Ok(Head::Incomplete));
        }
        // Pending "\r", then "\n\r\n": the last four bytes complete the terminator.
        let Ok(Head::Complete { head, rest }) = reader.handle_bytes(b"\n\r\nz", &limits) else {
            panic!("not complete");
        };
        assert!(head.ends_with(b"\r\r\n\r\n"));
        assert_eq!(rest, b"z");
    }

    #[test]
    fn limit_boundary_exact_and_one_over() {
        let len = REQ.len();
        // Exactly at the limit, in one read and split across reads.
        assert!(matches!(
            HeadReader::new().handle_bytes(REQ, &limits(len)),
            Ok(Head::Complete { .. })
        ));
        let mut reader = HeadReader::new();
        let got = feed(&mut reader, &[&REQ[..10], &REQ[10..]], &limits(len)).unwrap();
        assert_eq!(got, Some((REQ.to_vec(), vec![])));
        // One byte over, in one read and split across reads.
        assert_eq!(
            HeadReader::new().handle_bytes(REQ, &limits(len - 1)),
            Err(Error::HeaderTooLarge)
        );
        let mut reader = HeadReader::new();
        assert_eq!(
            reader.handle_bytes(&REQ[..len - 1], &limits(len - 1)),
            Ok(Head::Incomplete)
        );
        assert_eq!(reader.buffered(), len - 1);
        assert_eq!(
            reader.handle_bytes(&REQ[len - 1..], &limits(len - 1)),
            Err(Error::HeaderTooLarge)
        );
        assert_eq!(reader.buffered(), 0, "freed on failure");
        // Failed stays failed.
        assert_eq!(
            reader.handle_bytes(REQ, &limits(len)),
            Err(Error::HeaderTooLarge)
        );
    }

    #[test]
    fn endless_stream_fails_quickly_within_the_limit() {
        let limits = Limits::default();
        let junk = vec![b'a'; 1 << 20];
        let mut reader = HeadReader::new();
        let mut fed = 0;
        let mut result = Ok(Head::Incomplete);
        for chunk in junk.chunks(7) {
            fed += chunk.len();
            result = reader
                .handle_bytes(chunk, &limits)
                .map(|_| Head::Incomplete);
            assert!(reader.buffered() <= limits.max_header_bytes);
            assert!(reader.buf.capacity() <= limits.max_header_bytes);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(Error::HeaderTooLarge));
        assert!(
            fed <= limits.max_header_bytes + 7,
            "failed after {fed} bytes"
        );
        assert!(reader.scanned <= limits.max_header_bytes);
    }

    #[test]
    fn completed_reader_starts_a_new_head() {
        let limits = Limits::default();
        let mut reader = HeadReader::new();
        assert_eq!(
            reader.handle_bytes(&REQ[..5], &limits),
            Ok(Head::Incomplete)
        );
        let mut second = REQ[5..].to_vec();
        second.extend_from_slice(b"GET /b HTTP/1.1\r\n");
        let Ok(Head::Complete { rest, .. }) = reader.handle_bytes(&second, &limits) else {
            panic!()
        };
        let rest = rest.to_vec();
        assert_eq!(
            reader.buffered(),
            REQ.len(),
            "holds the head until the next call"
        );
        assert_eq!(reader.handle_bytes(&rest, &limits), Ok(Head::Incomplete));
        assert_eq!(reader.buffered(), rest.len());
        let Ok(Head::Complete { head, rest }) = reader.handle_bytes(b"Host: x\r\n\r\n", &limits)
        else {
            panic!()
        };
        assert_eq!(head, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(rest.is_empty());
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_head_and_rest(
            tail in proptest::collection::vec(any::<u8>(), 0..64),
            cuts in proptest::collection::vec(0usize..256, 0..40),
        ) {
            let mut data = REQ.to_vec();
            data.extend_from_slice(&tail);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                chunks.push(&data[start..cut]);
                start = cut;
            }
            let limits = Limits::default();
            let all_at_once = feed(&mut HeadReader::new(), &[&data], &limits).unwrap();
            let byte_by_byte: Vec<&[u8]> = data.chunks(1).collect();
            let mut reader = HeadReader::new();
            let one_by_one = feed(&mut reader, &byte_by_byte, &limits).unwrap();
            prop_assert_eq!(reader.scanned, REQ.len());
            let mut reader = HeadReader::new();
            let random = feed(&mut reader, &chunks, &limits).unwrap();
            prop_assert_eq!(reader.scanned, REQ.len());
            prop_assert_eq!(&all_at_once, &Some((REQ.to_vec(), tail.clone())));
            prop_assert_eq!(&one_by_one, &all_at_once);
            prop_assert_eq!(&random, &all_at_once);
        }

        #[test]
        fn arbitrary_bytes_never_exceed_the_limit(
            data in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()],
                0..600,
            ),
            chunk in 1usize..50,
            max in 0usize..300,
        ) {
            let limits = limits(max);
            let mut reader = HeadReader::new();
            for piece in data.chunks(chunk) {
                match reader.handle_bytes(piece, &limits) {
                    Ok(Head::Complete { head, rest }) => {
                        prop_assert!(head.len() <= max);
                        prop_assert!(head.ends_with(TERMINATOR));
                        let first = head.windows(4).position(|w| w == TERMINATOR);
                        prop_assert_eq!(first, Some(head.len() - 4));
                        prop_assert!(piece.ends_with(rest));
                        break;
                    }
                    Ok(Head::Incomplete) => prop_assert!(reader.buffered() <= max),
                    Err(e) => { prop_assert_eq!(e, Error::HeaderTooLarge); break; }
                }
            }
        }
    }
}
