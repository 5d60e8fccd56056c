//! permessage-deflate (RFC 7692): the negotiation and the codec, with no I/O.
//!
//! | module | concept |
//! |---|---|
//! | [`negotiate`](mod@negotiate) | the offer/response grammar of §7: declining malformed offers, choosing the first acceptable one |
//! | [`codec`] | [`Inflater`] and [`Deflater`] (zlib-rs): one whole message at a time, the inflated size checked while inflating; context kept between messages where agreed |
//! | [`small`] | [`SmallDeflater`]: short messages that stand alone (shared mode), every table sized to the message |
//!
//! The protocol core only carries the RSV1 bit: a message whose first frame has it arrives as
//! [`Sink::compressed`](super::Sink::compressed), and the layer above inflates it with an
//! [`Inflater`] (whose limit is the message limit: a small message that would inflate past it
//! fails with 1009 as soon as the limit is passed, never after). Frames to send are compressed
//! with a [`Deflater`] and sent with RSV1 on their (only) frame.
//!
//! # Memory
//!
//! What each mode costs per connection is the reason [`Mode`] exists (measured figures are in
//! the README's compression section; the backend is zlib-rs through flate2, whose deflater has
//! a fixed 128 KiB hash table whatever the window):
//!
//! | mode | per connection | per worker |
//! |---|---|---|
//! | [`Mode::Off`] | 0 | 0 |
//! | [`Mode::Shared`] | 0 (no context takeover either way: every message stands alone) | one inflater, one [`SmallDeflater`] (a few KiB), a zlib-rs deflater per window size in use for longer messages |
//! | [`Mode::Dedicated`] | a deflater (when the client lets us take over context) and an inflater (when it takes over its own) | as shared |

pub mod codec;
pub mod negotiate;
pub mod small;

pub use codec::{Deflater, Inflater};
pub use negotiate::{Agreement, Mode, negotiate};
pub use small::SmallDeflater;

/// The permessage-deflate settings of a server, with the reason for each default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Whether and how messages are compressed. Default [`Mode::Off`]: compression costs CPU on
    /// every message and a benchmark of echo traffic would measure zlib, not the server; the
    /// chat mode turns it on ([`Mode::Shared`]) because chat JSON compresses several-fold.
    pub mode: Mode,
    /// zlib compression level, 1 (fastest) to 9. Default 2: zlib-rs' level 1 is a fast path
    /// with fixed Huffman codes that barely compresses short messages (1.03× on chat JSON
    /// against 1.22× at 2, `benches/deflate.rs`), and levels above 2 gain nothing more on
    /// messages compressed one at a time. The same number sets how hard [`SmallDeflater`]
    /// (shared mode's short messages) looks for matches: 4 places tried per match at 2.
    pub level: u8,
    /// Messages shorter than this are sent uncompressed (RFC 7692 allows it per message).
    /// Default 64 bytes: below that DEFLATE's block overhead eats the gain.
    pub min_bytes: usize,
    /// [`Mode::Dedicated`]: the largest window our deflater keeps per connection, in bits (9 to
    /// 15; a client's `server_max_window_bits` may ask for less). Default 10 (1 KiB): a chat
    /// connection's repetition (keys, room names, recent texts) fits in it (3× on the chat
    /// stream of `ringws-load --chat-json`). It bounds the window's share of the memory only:
    /// zlib-rs' deflater keeps hash tables of a fixed size whatever the window, which is why a
    /// dedicated connection measures about 190 KB (README, Compression).
    pub server_max_window_bits: u8,
    /// [`Mode::Dedicated`]: the window we ask clients that allow it (`client_max_window_bits`
    /// in their offer; browsers do) to keep, in bits (8 to 15): our inflater holds that much per
    /// connection. Default 10. A client that does not allow it keeps 15 bits (32 KiB).
    pub client_max_window_bits: u8,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Off,
            level: 2,
            min_bytes: 64,
            server_max_window_bits: 10,
            client_max_window_bits: 10,
        }
    }
}

/// The four bytes a sync flush ends with; RFC 7692 §7.2.1 removes them from every message and
/// §7.2.2 appends them before inflating.
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Messages for the codecs' tests.
#[cfg(test)]
pub(crate) mod test_data {
    /// `n` chat messages in a row, as one buffer.
    pub(crate) fn chat(n: usize) -> Vec<u8> {
        let mut s = String::new();
        for i in 0..n {
            s.push_str(&format!(
                r#"{{"op":"message","room":"lobby","from":{i},"text":"hello number {i}","seq":{i}}}"#
            ));
        }
        s.into_bytes()
    }
}
