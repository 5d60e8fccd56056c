//! permessage-deflate on the server: what each connection agreed ([`Pmd`], a few bytes unless it
//! keeps its own context) and the worker's shared codecs ([`Codecs`]).
//!
//! Outbound, compression happens where a message is queued, before it is framed: a reply's
//! payload is deflated straight into its frame ([`message`]); a [`Frame`] (an echo, a
//! publication) is compressed from its payload, which the checked frame hands over without
//! being parsed again ([`frame`]). A publication is the same `Frame` for every subscriber of a
//! worker, so in shared mode its compressed frame is made once per worker (and window size) and
//! shared too: the cache below holds it for the rest of the worker's loop iteration. Inbound,
//! [`Codecs::inflate`] turns a compressed message into plain bytes under the message limit.

use std::cell::RefCell;
use std::collections::HashMap;
use std::mem;

use bytes::{BufMut, Bytes, BytesMut};

use super::counters::Counters;
use crate::proto::Error;
use crate::proto::deflate::{Agreement, DeflateConfig, Deflater, Inflater, SmallDeflater};
use crate::proto::frame::{FIN, Frame, Header, OpCode, RSV1, encode_frame};

/// One connection's side of the agreement, in one byte of its slot: 0 when not negotiated;
/// the window bits of our deflater (8 to 15) when neither side takes over context (the worker's
/// codecs serve it); [`Pmd::DEDICATED`] when it keeps context in some direction (its codecs are
/// in the worker's table, by slot, made when first needed).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pmd(u8);

/// The codecs of a connection that keeps context.
#[derive(Debug)]
pub(crate) struct Dedicated {
    agreement: Agreement,
    deflater: Option<Deflater>,
    inflater: Option<Inflater>,
}

impl Pmd {
    /// Not negotiated.
    pub(crate) const OFF: Pmd = Pmd(0);
    /// Context takeover in at least one direction.
    const DEDICATED: u8 = 0x80;

    /// Whether permessage-deflate was negotiated.
    pub(crate) fn is_on(self) -> bool {
        self.0 != 0
    }

    /// The window of the worker's deflater this connection uses, if it uses the worker's.
    fn shared_bits(self) -> Option<u8> {
        (self.is_on() && self.0 & Self::DEDICATED == 0).then_some(self.0)
    }
}

/// Frames compressed for the current fan-out, one per window size: (the plain frame, kept so
/// its address cannot be reused while cached; the compressed frame).
type FanOutCache = [Option<(Frame, Bytes)>; 8];

/// A worker's codecs, used for every connection without context of its own.
#[derive(Debug, Default)]
pub(crate) struct Codecs {
    /// 15-bit inflater, reset after every message.
    inflater: Option<Inflater>,
    /// Compresses messages without context up to [`SmallDeflater::MAX_INPUT`] bytes and the
    /// window, with tables sized to each message; made on first use.
    small: Option<SmallDeflater>,
    /// No-context deflaters (zlib-rs) by window size (index `bits - 8`) for longer messages,
    /// made on first use.
    deflaters: [Option<Deflater>; 8],
    /// Reused output buffer.
    buf: Vec<u8>,
    cache: FanOutCache,
    /// Codecs of connections that keep context, by slot.
    dedicated: HashMap<u32, Dedicated>,
}

/// The scratch buffer is kept between messages up to this capacity.
const KEEP_BUF: usize = 256 * 1024;

impl Codecs {
    /// The state for the connection in `slot` that agreed to `agreement` (if anything).
    pub(crate) fn agree(&mut self, slot: u32, agreement: Option<Agreement>) -> Pmd {
        match agreement {
            None => Pmd::OFF,
            Some(a) if a.server_no_context_takeover && a.client_no_context_takeover => {
                Pmd(a.server_max_window_bits.clamp(8, 15))
            }
            Some(agreement) => {
                self.dedicated.insert(
                    slot,
                    Dedicated {
                        agreement,
                        deflater: None,
                        inflater: None,
                    },
                );
                Pmd(Pmd::DEDICATED)
            }
        }
    }

    /// The connection in `slot` is over: its codecs (if it had any) are freed.
    pub(crate) fn forget(&mut self, slot: u32, pmd: Pmd) {
        if pmd.is_on() && pmd.shared_bits().is_none() {
            self.dedicated.remove(&slot);
        }
    }

    /// Connections with codecs of their own.
    pub(crate) fn dedicated(&self) -> usize {
        self.dedicated.len()
    }

    /// Inflates a compressed message of the connection `pmd` into a buffer the caller gives
    /// back with [`Codecs::recycle`]. `limit` is the message limit, applied to the inflated size.
    pub(crate) fn inflate(
        &mut self,
        pmd: Pmd,
        slot: u32,
        payload: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, Error> {
        let mut out = mem::take(&mut self.buf);
        out.clear();
        let own = match pmd.shared_bits() {
            None if pmd.is_on() => self
                .dedicated
                .get_mut(&slot)
                .filter(|d| !d.agreement.client_no_context_takeover),
            _ => None,
        };
        let result = match own {
            Some(d) => {
                let bits = d.agreement.client_max_window_bits;
                d.inflater
                    .get_or_insert_with(|| Inflater::new(bits))
                    .inflate(payload, limit, &mut out)
            }
            None => {
                let inflater = self.inflater.get_or_insert_with(|| Inflater::new(15));
                let r = inflater.inflate(payload, limit, &mut out);
                inflater.reset();
                r
            }
        };
        match result {
            Ok(()) => Ok(out),
            Err(e) => {
                self.recycle(out);
                Err(e)
            }
        }
    }

    /// Takes back a buffer from [`Codecs::inflate`].
    pub(crate) fn recycle(&mut self, buf: Vec<u8>) {
        if buf.capacity() <= KEEP_BUF && buf.capacity() > self.buf.capacity() {
            self.buf = buf;
        }
    }

    /// Forgets the frames compressed for the last fan-out (call once per loop iteration).
    pub(crate) fn end_of_batch(&mut self) {
        if self.cache.iter().any(Option::is_some) {
            self.cache = Default::default();
        }
    }

    /// The compressed frame (RSV1) of a message for the connection `pmd` (in `slot`), or `None`
    /// when it goes uncompressed: permessage-deflate not negotiated, or a payload shorter than
    /// `cfg.min_bytes`. `fan_out` is the message's frame when the same one goes to many
    /// connections: in shared mode it is compressed once per window and loop iteration.
    pub(crate) fn compress(
        &mut self,
        pmd: Pmd,
        slot: u32,
        text: bool,
        payload: &[u8],
        fan_out: Option<&Frame>,
        cfg: &DeflateConfig,
    ) -> Option<Bytes> {
        if !pmd.is_on() || payload.len() < cfg.min_bytes {
            return None;
        }
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        // Our window, and our own deflater when we keep context.
        let (bits, own) = match pmd.shared_bits() {
            Some(bits) => (bits, None),
            None => match self.dedicated.get_mut(&slot) {
                Some(d) if !d.agreement.server_no_context_takeover => {
                    let (level, bits) = (cfg.level, d.agreement.server_max_window_bits);
                    (
                        bits,
                        Some(
                            d.deflater
                                .get_or_insert_with(|| Deflater::new(level, bits, false)),
                        ),
                    )
                }
                Some(d) => (d.agreement.server_max_window_bits, None),
                None => return None, // unreachable: agreed connections have an entry
            },
        };
        if let Some(deflater) = own {
            return Some(encode(opcode, &mut self.buf, |buf| {
                deflater.deflate(payload, buf)
            }));
        }
        // The worker's deflater for this window; a fan-out's frame is compressed once.
        let window_bits = bits.clamp(8, 15);
        let i = usize::from(window_bits - 8);
        if let (Some(frame), Some((plain, packed))) = (fan_out, &self.cache[i]) {
            if plain.wire().as_ptr() == frame.wire().as_ptr()
                && plain.wire().len() == frame.wire().len()
            {
                return Some(packed.clone());
            }
        }
        // A short message goes through the small deflater when it is no longer than the window
        // (its matches cannot reach further back than its start); zlib-rs takes the rest.
        let (small, deflater) = (&mut self.small, &mut self.deflaters[i]);
        let packed = encode(opcode, &mut self.buf, |buf| {
            let fits = payload.len() <= 1 << window_bits;
            if !(fits
                && small
                    .get_or_insert_with(|| SmallDeflater::new(cfg.level))
                    .deflate(payload, buf))
            {
                deflater
                    .get_or_insert_with(|| Deflater::new(cfg.level, bits, true))
                    .deflate(payload, buf);
            }
        });
        if let Some(frame) = fan_out {
            self.cache[i] = Some((frame.clone(), packed.clone()));
        }
        Some(packed)
    }
}

/// The bytes to queue for `frame` on the connection `pmd` (in `slot`): compressed when it
/// should be (see [`Codecs::compress`]; counted in `compressed_out`), else the frame itself.
pub(crate) fn frame(
    codecs: &RefCell<Codecs>,
    pmd: Pmd,
    slot: u32,
    frame: &Frame,
    cfg: &DeflateConfig,
    counters: &Counters,
) -> Bytes {
    if pmd.is_on() {
        let packed = codecs.borrow_mut().compress(
            pmd,
            slot,
            frame.is_text(),
            frame.payload(),
            Some(frame),
            cfg,
        );
        if let Some(packed) = packed {
            Counters::inc(&counters.compressed_out, 1);
            return packed;
        }
    }
    frame.wire().clone()
}

/// The bytes to queue for a message written from `payload` (a reply): compressed straight into
/// its frame when it should be, else framed as it is. One frame is built either way.
pub(crate) fn message(
    codecs: &RefCell<Codecs>,
    pmd: Pmd,
    slot: u32,
    text: bool,
    payload: &[u8],
    cfg: &DeflateConfig,
    counters: &Counters,
) -> Bytes {
    if pmd.is_on() {
        let packed = codecs
            .borrow_mut()
            .compress(pmd, slot, text, payload, None, cfg);
        if let Some(packed) = packed {
            Counters::inc(&counters.compressed_out, 1);
            return packed;
        }
    }
    encode_frame(if text { OpCode::Text } else { OpCode::Binary }, payload)
}

/// A compressed frame (RSV1, FIN) of a payload that `deflate` compresses into the scratch `buf`.
fn encode(opcode: OpCode, buf: &mut Vec<u8>, deflate: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    buf.clear();
    deflate(buf);
    let header = Header {
        fin: true,
        rsv: RSV1,
        opcode,
        mask: None,
        payload_len: buf.len() as u64,
    }
    .encode();
    debug_assert_eq!(header[0] & (FIN | RSV1), FIN | RSV1);
    let mut frame = BytesMut::with_capacity(header.len() + buf.len());
    frame.put_slice(&header);
    frame.put_slice(buf);
    if buf.capacity() > KEEP_BUF {
        *buf = Vec::new();
    }
    frame.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::deflate::{Mode, negotiate};
    use crate::proto::handshake::Extensions;

    fn agreement(offer: &str, mode: Mode) -> Option<Agreement> {
        let headers = [httparse::Header {
            name: "Sec-WebSocket-Extensions",
            value: offer.as_bytes(),
        }];
        let cfg = DeflateConfig {
            mode,
            ..DeflateConfig::default()
        };
        negotiate(Extensions::new(&headers), &cfg)
    }

    impl Codecs {
        /// [`Codecs::compress`] for a frame that goes to many connections.
        fn compress_frame(
            &mut self,
            pmd: Pmd,
            slot: u32,
            frame: &Frame,
            cfg: &DeflateConfig,
        ) -> Option<Bytes> {
            self.compress(
                pmd,
                slot,
                frame.is_text(),
                frame.payload(),
                Some(frame),
                cfg,
            )
        }
    }

    fn inflate_frame(frame: &[u8]) -> Vec<u8> {
        let (h, n) = Header::parse(frame).unwrap().unwrap();
        assert_eq!(h.rsv, RSV1);
        let mut out = Vec::new();
        Inflater::new(15)
            .inflate(&frame[n..], 1 << 20, &mut out)
            .unwrap();
        out
    }

    #[test]
    fn shared_mode_compresses_a_fan_out_once_per_window() {
        let cfg = DeflateConfig {
            mode: Mode::Shared,
            ..DeflateConfig::default()
        };
        let mut codecs = Codecs::default();
        let a = codecs.agree(1, agreement("permessage-deflate", Mode::Shared));
        let b = codecs.agree(2, agreement("permessage-deflate", Mode::Shared));
        assert_eq!(a, Pmd(15));
        assert_eq!(
            codecs.dedicated(),
            0,
            "shared mode keeps nothing per connection"
        );
        let text = "{\"op\":\"message\",\"text\":\"hello hello hello hello hello\"}".repeat(4);
        let frame = Frame::text(&text);
        let fa = codecs.compress_frame(a, 1, &frame, &cfg).unwrap();
        let fb = codecs.compress_frame(b, 2, &frame, &cfg).unwrap();
        assert_eq!(fa.as_ptr(), fb.as_ptr(), "the same compressed bytes");
        assert!(fa.len() < frame.wire().len() / 2);
        assert_eq!(inflate_frame(&fa), text.as_bytes());
        // A new batch compresses again; so does a reply's payload (not a fan-out).
        codecs.end_of_batch();
        let fc = codecs.compress_frame(a, 1, &frame, &cfg).unwrap();
        assert_ne!(fc.as_ptr(), fa.as_ptr());
        let reply = codecs
            .compress(a, 1, true, text.as_bytes(), None, &cfg)
            .unwrap();
        assert_eq!(reply, fc, "the same bytes, compressed on their own");
        assert_ne!(reply.as_ptr(), fc.as_ptr());
        // Short messages and connections without the extension are left alone.
        assert_eq!(codecs.compress_frame(a, 1, &Frame::text("hi"), &cfg), None);
        assert_eq!(codecs.compress_frame(Pmd::OFF, 3, &frame, &cfg), None);
    }

    #[test]
    fn shared_mode_output_does_not_depend_on_earlier_messages() {
        // RFC 7692 §8: with no context takeover, a message's compressed bytes (and so its
        // length) depend on that message alone, not on what was compressed before it.
        let cfg = DeflateConfig {
            mode: Mode::Shared,
            ..DeflateConfig::default()
        };
        let secret =
            "{\"op\":\"message\",\"room\":\"ops\",\"text\":\"the password is hunter2, keep it\"}";
        let guess =
            "{\"op\":\"message\",\"room\":\"ops\",\"text\":\"the password is hunter2? no idea\"}";
        assert!(guess.len() >= cfg.min_bytes, "long enough to be compressed");
        let fresh = |history: &[&str]| {
            let mut codecs = Codecs::default();
            let p = codecs.agree(1, agreement("permessage-deflate", Mode::Shared));
            for earlier in history {
                codecs.compress_frame(p, 1, &Frame::text(earlier), &cfg);
                codecs.end_of_batch();
            }
            codecs
                .compress_frame(p, 1, &Frame::text(guess), &cfg)
                .expect("compressed")
        };
        let alone = fresh(&[]);
        assert_eq!(fresh(&[secret]), alone, "after the secret: the same bytes");
        assert_eq!(fresh(&[secret, secret, "x"]), alone);
        // With context takeover the same message is shorter after the secret: the channel.
        let mut codecs = Codecs::default();
        let d = codecs.agree(1, agreement("permessage-deflate", Mode::Dedicated));
        let dedicated = DeflateConfig {
            mode: Mode::Dedicated,
            ..DeflateConfig::default()
        };
        let mut send = |t: &str| codecs.compress_frame(d, 1, &Frame::text(t), &dedicated);
        let first = send(guess).unwrap();
        send(secret);
        let after = send(guess).unwrap();
        assert!(after.len() < first.len(), "{} {}", after.len(), first.len());
    }

    #[test]
    fn shared_mode_compresses_short_messages_with_the_small_deflater_within_the_window() {
        let cfg = DeflateConfig {
            mode: Mode::Shared,
            ..DeflateConfig::default()
        };
        for bits in 8..=15u8 {
            let mut codecs = Codecs::default();
            let offer = format!("permessage-deflate; server_max_window_bits={bits}");
            let p = codecs.agree(1, agreement(&offer, Mode::Shared));
            assert_eq!(p.shared_bits(), Some(bits));
            let window = 1usize << bits;
            for len in [100, window, window + 1, 5000] {
                let msg: String = (0..len)
                    .map(|i| char::from(b'a' + (i * 7 % 13) as u8))
                    .collect();
                let frame = codecs
                    .compress_frame(p, 1, &Frame::text(&msg), &cfg)
                    .expect("compressed");
                let (_, n) = Header::parse(&frame).unwrap().unwrap();
                // A client with the window it asked for reads it, whichever encoder made it.
                let mut out = Vec::new();
                Inflater::new(bits)
                    .inflate(&frame[n..], 1 << 20, &mut out)
                    .unwrap();
                assert_eq!(out, msg.as_bytes(), "{bits} bits, {len} bytes");
                let mut small = Vec::new();
                let fits = SmallDeflater::new(cfg.level).deflate(msg.as_bytes(), &mut small)
                    && len <= window;
                assert_eq!(frame[n..] == small[..], fits, "{bits} bits, {len} bytes");
                codecs.end_of_batch();
            }
        }
    }

    #[test]
    fn dedicated_mode_keeps_context_per_connection() {
        let cfg = DeflateConfig {
            mode: Mode::Dedicated,
            ..DeflateConfig::default()
        };
        let mut codecs = Codecs::default();
        let p = codecs.agree(
            7,
            agreement(
                "permessage-deflate; client_max_window_bits",
                Mode::Dedicated,
            ),
        );
        assert_eq!(codecs.dedicated(), 1);
        let text = "{\"op\":\"message\",\"room\":\"lobby\",\"text\":\"good morning everyone, \
                    how is everyone doing?\"}";
        let frame = Frame::text(text);
        let first = codecs.compress_frame(p, 7, &frame, &cfg).unwrap();
        codecs.end_of_batch();
        let second = codecs.compress_frame(p, 7, &frame, &cfg).unwrap();
        assert!(
            second.len() < first.len() / 2,
            "{} {}",
            second.len(),
            first.len()
        );
        // A client decoding with one inflater that keeps its window gets both back.
        let mut inflater = Inflater::new(15);
        for f in [&first, &second] {
            let (_, n) = Header::parse(f).unwrap().unwrap();
            let mut out = Vec::new();
            inflater.inflate(&f[n..], 1 << 16, &mut out).unwrap();
            assert_eq!(out, text.as_bytes());
        }
        codecs.forget(7, p);
        assert_eq!(codecs.dedicated(), 0);
    }

    #[test]
    fn inflate_applies_the_limit_and_recycles_its_buffer() {
        let mut codecs = Codecs::default();
        let p = codecs.agree(1, agreement("permessage-deflate", Mode::Shared));
        let mut packed = Vec::new();
        Deflater::new(1, 15, true).deflate(&[b'a'; 10_000], &mut packed);
        let out = codecs.inflate(p, 1, &packed, 10_000).unwrap();
        assert_eq!(out.len(), 10_000);
        codecs.recycle(out);
        assert_eq!(
            codecs.inflate(p, 1, &packed, 9_999),
            Err(Error::MessageTooLarge)
        );
        // The worker's inflater was reset: the next message inflates.
        assert_eq!(codecs.inflate(p, 1, &packed, 10_000).unwrap().len(), 10_000);
    }
}
