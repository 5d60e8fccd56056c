//! The 64-bit `user_data` tag every submission carries: operation kind, connection slot and
//! generation.
//!
//! ```text
//!  63        56 55                     32 31                                0
//! +------------+-------------------------+-----------------------------------+
//! |  op kind   |      slot (24 bits)     |        generation (32 bits)       |
//! +------------+-------------------------+-----------------------------------+
//! ```
//!
//! The kernel hands the tag back unchanged in the completion, so a completion names the
//! connection it belongs to without any lookup table in this layer. The generation is bumped by
//! the worker each time a slot is reused: a late completion of an earlier connection in the same
//! slot carries the old generation and is recognised (and ignored) by comparing it with the
//! slot's current one.

/// The largest slot index that fits in the 24 bits reserved for it.
pub const MAX_SLOT: u32 = (1 << 24) - 1;

/// What kind of operation a submission was, stored in the top 8 bits of its `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpKind {
    /// A multishot accept on a listener.
    Accept = 1,
    /// A multishot receive with buffer selection.
    Recv = 2,
    /// A gathered send (`sendmsg`).
    Send = 3,
    /// An `AsyncCancel` request itself (its own completion, not the cancelled op's).
    Cancel = 4,
    /// An asynchronous `close`.
    Close = 5,
    /// A ring timeout (the worker's tick).
    Timeout = 6,
    /// A message this ring posted into another ring (the sender's completion).
    MsgSent = 7,
    /// A message another ring posted into this one.
    Message = 8,
    /// A no-op, used to wake the loop and in tests.
    Nop = 9,
    /// A multishot poll on the worker's wake-up eventfd.
    Wake = 10,
}

impl OpKind {
    /// Decodes the kind byte; `None` for a byte this layer never writes.
    pub const fn from_u8(byte: u8) -> Option<OpKind> {
        Some(match byte {
            1 => OpKind::Accept,
            2 => OpKind::Recv,
            3 => OpKind::Send,
            4 => OpKind::Cancel,
            5 => OpKind::Close,
            6 => OpKind::Timeout,
            7 => OpKind::MsgSent,
            8 => OpKind::Message,
            9 => OpKind::Nop,
            10 => OpKind::Wake,
            _ => return None,
        })
    }
}

/// A packed `(kind, slot, generation)` triple, as carried in an SQE's and CQE's `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserData(u64);

impl UserData {
    /// Packs a tag.
    ///
    /// # Panics
    /// If `slot` exceeds [`MAX_SLOT`] (a programming error: the worker's slab never grows that
    /// large).
    pub const fn new(kind: OpKind, slot: u32, generation: u32) -> UserData {
        assert!(slot <= MAX_SLOT, "connection slot does not fit in 24 bits");
        UserData(((kind as u64) << 56) | ((slot as u64) << 32) | generation as u64)
    }

    /// Wraps a raw value read from a completion.
    pub const fn from_raw(raw: u64) -> UserData {
        UserData(raw)
    }

    /// The raw 64-bit value for a submission.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The operation kind, or `None` if the top byte is not one this layer writes.
    pub const fn kind(self) -> Option<OpKind> {
        OpKind::from_u8((self.0 >> 56) as u8)
    }

    /// The connection slot (24 bits).
    pub const fn slot(self) -> u32 {
        ((self.0 >> 32) as u32) & MAX_SLOT
    }

    /// The slot's generation (32 bits).
    pub const fn generation(self) -> u32 {
        self.0 as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [OpKind; 10] = [
        OpKind::Accept,
        OpKind::Recv,
        OpKind::Send,
        OpKind::Cancel,
        OpKind::Close,
        OpKind::Timeout,
        OpKind::MsgSent,
        OpKind::Message,
        OpKind::Nop,
        OpKind::Wake,
    ];

    #[test]
    fn round_trip_extremes() {
        for kind in KINDS {
            for slot in [0, 1, 0x00ab_cdef, MAX_SLOT] {
                for generation in [0, 1, 0x8000_0000, u32::MAX] {
                    let ud = UserData::new(kind, slot, generation);
                    let back = UserData::from_raw(ud.raw());
                    assert_eq!(back.kind(), Some(kind));
                    assert_eq!(back.slot(), slot);
                    assert_eq!(back.generation(), generation);
                }
            }
        }
    }

    #[test]
    fn fields_do_not_bleed() {
        let ud = UserData::new(OpKind::Recv, MAX_SLOT, u32::MAX);
        assert_eq!(ud.raw(), 0x02ff_ffff_ffff_ffff);
        let ud = UserData::new(OpKind::Send, 0, 0);
        assert_eq!(ud.raw(), 0x0300_0000_0000_0000);
    }

    #[test]
    fn unknown_kind_is_none() {
        assert_eq!(UserData::from_raw(0).kind(), None);
        assert_eq!(UserData::from_raw(0xff00_0000_0000_0000).kind(), None);
    }

    #[test]
    #[should_panic(expected = "24 bits")]
    fn oversized_slot_panics() {
        let _ = UserData::new(OpKind::Recv, MAX_SLOT + 1, 0);
    }
}
