//! The provided-buffer ring: a pool of equal buffers that the kernel picks from when a multishot
//! receive has data, so an idle connection owns no buffer at all.
//!
//! One anonymous mapping holds both parts:
//!
//! ```text
//! base (page-aligned)                               base + ring_bytes (page-aligned)
//! | BufRingEntry × entries (16 B each; the tail     | buffer 0 | buffer 1 | ... | buffer n-1 |
//! | overlays entry 0's reserved field), page padded |  buf_size bytes each                    |
//! ```
//!
//! Ownership of a buffer moves in a circle: *in the ring* (the kernel may fill it) → *lent*
//! (a completion named its buffer id; only user space touches it) → [`BufRing::recycle`] writes
//! it back at the ring's tail → [`BufRing::publish`] makes it visible to the kernel with one
//! release store of the tail. `publish` is called once per loop iteration by
//! [`super::Uring::submit_and_wait`], so a batch of recycles costs one atomic store.
//!
//! The pages of the buffer area are touched (and so become resident) only once the kernel has
//! written into them: a large pool costs address space, not memory, until traffic needs it.
//! And the ring starts with an eighth of the buffers: the kernel cycles through the buffers in
//! the ring, so a quiet worker keeps writing into the same few (512 KiB by default) instead of
//! touching the whole pool. When a receive finds the ring empty, [`BufRing::grow`] adds the next
//! unused buffers (doubling), so a busy worker reaches the full pool after a few such events.
//!
//! # Incremental consumption (kernel 6.12+)
//! Registered with `IOU_PBUF_RING_INC`, the kernel fills a buffer piece by piece: each receive
//! takes only the bytes it has, right after the previous piece, and the buffer stays at the head
//! of the ring until it is full. A completion whose buffer the kernel keeps using carries
//! `IORING_CQE_F_BUF_MORE`: its piece is lent to user space, but the buffer is not recycled.
//! So large buffers (64 KiB: a large message in one or two reads) waste nothing on small
//! messages (a 20-byte message takes 20 bytes, not a buffer). This ring tracks each buffer's
//! next piece offset, which mirrors the kernel's; completions are handled one at a time, in
//! order, so a piece is always the bytes right after the previous piece of its buffer.
//!
//! # A completion that names a buffer but carries no bytes
//! The kernel commits a receive's buffer with the byte count of the result: a classic ring's
//! head moves one buffer forward whatever the count (0 included), while an incremental ring's
//! head moves only once a buffer's bytes are used up, so a commit of 0 bytes consumes nothing
//! and the buffer stays at the head; an error result commits nothing in either kind. Pushing
//! such a buffer back at the tail would put it in the ring twice, and two receives could then
//! fill it at once. [`BufRing::returned_empty`] follows those rules. (On the kernels measured,
//! an end of stream or an error arrives without a buffer at all: the receive gives its
//! selection back before completing; the rules cover the case where a kernel does not.)
//!
//! # When the accounting and the kernel disagree
//! A completion that names a buffer this ring counts as lent (or an id out of range) means the
//! kernel and this process disagree about who owns it. [`BufRing::lend`] refuses it and the
//! completion becomes [`Completion::RecvFault`](crate::runtime::Completion::RecvFault): the
//! bytes are not handed to anyone, the buffer is never pushed back (the pool is one buffer
//! smaller from then on), and the worker fails that connection and logs it. In release builds
//! too: it is a check, not a debug assertion.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;
use io_uring::types::BufRingEntry;

/// The largest ring the kernel accepts (`IORING_REGISTER_PBUF_RING` caps it at 2^15).
pub const MAX_ENTRIES: u16 = 1 << 15;

/// `IOU_PBUF_RING_INC`: buffers are consumed incrementally (kernel 6.12).
const PBUF_RING_INC: u16 = 2;

/// `IORING_CQE_F_BUF_MORE`: the kernel keeps using this completion's buffer.
pub(crate) const CQE_F_BUF_MORE: u32 = 1 << 4;

/// A registered provided-buffer ring (see the module docs for the layout and buffer life cycle).
///
/// Created and unregistered by [`super::Uring`]; the worker reaches it through
/// [`super::Uring::bufs`] to read a lent buffer ([`BufRing::get`]) and hand it back
/// ([`BufRing::recycle`]).
#[derive(Debug)]
pub struct BufRing {
    /// Start of the mapping: the `BufRingEntry` array.
    base: NonNull<u8>,
    /// Length of the whole mapping.
    map_len: usize,
    /// Offset of buffer 0 from `base`.
    bufs_offset: usize,
    /// Number of buffers (a power of two).
    entries: u16,
    /// Size of each buffer in bytes.
    buf_size: u32,
    /// The buffer group id this ring is registered under.
    bgid: u16,
    /// The next ring index user space fills (wrapping; the kernel masks it).
    tail: u16,
    /// The tail value last stored for the kernel to see.
    published: u16,
    /// One bit per buffer id: set while the buffer is lent out to user space.
    lent_bits: Vec<u64>,
    /// Number of bits set in `lent_bits`.
    lent: u32,
    /// Buffers put in the ring so far (ids `0..provided`); the rest wait for [`BufRing::grow`].
    provided: u16,
    /// Registered with incremental consumption.
    incremental: bool,
    /// Per buffer (incremental only): bytes the kernel has filled before the lent piece, and
    /// the offset of the lent piece; the kernel still holds the buffer while `kept` is set.
    pieces: Vec<Piece>,
    /// Whether the kernel still knows the ring; if so, Drop leaks the mapping rather than free
    /// memory the kernel could write into.
    registered: bool,
}

/// Where a buffer stands under incremental consumption.
#[derive(Debug, Clone, Copy, Default)]
struct Piece {
    /// Bytes filled by earlier completions, while the kernel keeps the buffer.
    filled: u32,
    /// Offset of the piece lent now.
    offset: u32,
    /// The lent piece came with `BUF_MORE`: the buffer stays in the kernel's hands, so
    /// recycling the piece must not put it back in the ring.
    kept: bool,
}

impl BufRing {
    /// Maps `entries` buffers of `buf_size` bytes, puts all of them in the ring and registers it
    /// with `ring` as buffer group `bgid`.
    ///
    /// The caller must call [`BufRing::unregister`] with the same `ring` before dropping it;
    /// a ring dropped while registered leaks its mapping (safe, but the memory is lost).
    ///
    /// # Errors
    /// `InvalidInput` if `entries` is not a power of two in `1..=32768` or `buf_size` is 0 or
    /// the sizes overflow; otherwise the error of `mmap` or of the registration (e.g. `EEXIST`
    /// when `bgid` is taken).
    pub(crate) fn new(
        ring: &IoUring,
        bgid: u16,
        entries: u16,
        buf_size: u32,
        incremental: bool,
    ) -> io::Result<Self> {
        let invalid = |msg| io::Error::new(io::ErrorKind::InvalidInput, msg);
        if !entries.is_power_of_two() || entries > MAX_ENTRIES {
            return Err(invalid(
                "buffer ring entries must be a power of two up to 32768",
            ));
        }
        if buf_size == 0 {
            return Err(invalid("buffer size must be positive"));
        }
        let page = page_size();
        let ring_bytes = usize::from(entries) * size_of::<BufRingEntry>();
        let bufs_offset = ring_bytes.div_ceil(page) * page;
        let map_len = usize::from(entries)
            .checked_mul(buf_size as usize)
            .and_then(|b| b.checked_add(bufs_offset))
            .ok_or_else(|| invalid("buffer ring too large"))?;

        // SAFETY: an anonymous private mapping with no address hint: it cannot alias any existing
        // Rust object; the result is checked against MAP_FAILED below.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                // Not populated: a page becomes resident when the kernel first writes into it,
                // so a worker without traffic does not pay for buffers it never used.
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(addr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        let mut this = BufRing {
            base,
            map_len,
            bufs_offset,
            entries,
            buf_size,
            bgid,
            tail: 0,
            published: 0,
            lent_bits: vec![0; usize::from(entries).div_ceil(64)],
            lent: 0,
            provided: 0,
            incremental,
            pieces: if incremental {
                vec![Piece::default(); usize::from(entries)]
            } else {
                Vec::new()
            },
            registered: false,
        };
        this.provide((entries / 8).max(1));
        let flags = if incremental { PBUF_RING_INC } else { 0 };
        // SAFETY: `base` is page-aligned (mmap) and holds `entries` entries; the mapping lives
        // until Drop, which leaks it instead of unmapping while `registered` is still true, so
        // the memory stays valid for as long as the kernel may use it.
        let res = unsafe {
            ring.submitter().register_buf_ring_with_flags(
                base.as_ptr() as u64,
                entries,
                bgid,
                flags,
            )
        };
        // On error `this` is dropped unregistered and unmaps the region.
        res?;
        this.registered = true;
        this.publish();
        Ok(this)
    }

    /// Removes the ring from `ring`'s buffer groups; after this the mapping is freed on drop.
    ///
    /// # Errors
    /// The registration call's error; the ring then stays registered and its memory is leaked
    /// on drop.
    pub(crate) fn unregister(&mut self, ring: &IoUring) -> io::Result<()> {
        if self.registered {
            ring.submitter().unregister_buf_ring(self.bgid)?;
            self.registered = false;
        }
        Ok(())
    }

    /// The buffer group id the ring is registered under (what receives name with
    /// `buf_group`).
    pub fn bgid(&self) -> u16 {
        self.bgid
    }

    /// The number of buffers.
    #[cfg(test)]
    pub fn entries(&self) -> u16 {
        self.entries
    }

    /// The size of each buffer in bytes.
    #[cfg(test)]
    pub fn buf_size(&self) -> u32 {
        self.buf_size
    }

    /// Whether buffers are consumed incrementally (see the module docs).
    pub fn incremental(&self) -> bool {
        self.incremental
    }

    /// How many buffers are lent out to user space (named by a completion, not yet recycled).
    pub fn lent(&self) -> u32 {
        self.lent
    }

    /// How many buffers the kernel can pick from once recycled ones are published.
    pub fn available(&self) -> u32 {
        u32::from(self.provided) - self.lent
    }

    /// Buffers put in the ring so far (see [`BufRing::grow`]).
    #[cfg(test)]
    pub fn provided(&self) -> u16 {
        self.provided
    }

    /// A receive found the ring empty: puts as many unused buffers in the ring as it holds
    /// already (up to all of them). Returns whether any was added (published with the next
    /// [`BufRing::publish`]).
    pub fn grow(&mut self) -> bool {
        let more = self.provided.min(self.entries - self.provided);
        self.provide(more);
        more > 0
    }

    /// Puts `count` never-used buffers in the ring.
    fn provide(&mut self, count: u16) {
        for _ in 0..count {
            let bid = self.provided;
            self.push_entry(bid);
            self.provided += 1;
        }
    }

    /// Whether buffer `bid` is lent out.
    pub fn is_lent(&self, bid: u16) -> bool {
        bid < self.entries && self.lent_bits[usize::from(bid / 64)] & (1 << (bid % 64)) != 0
    }

    /// Records that a completion handed `len` bytes (at least one) of buffer `bid` to user
    /// space, with the completion's flags (`BUF_MORE`: the kernel keeps the buffer for more
    /// pieces). Returns `false` (and changes nothing) if `bid` is out of range or already lent,
    /// which would mean the kernel and this accounting disagree.
    pub(crate) fn lend(&mut self, bid: u16, len: u32, cqe_flags: u32) -> bool {
        if bid >= self.entries || self.is_lent(bid) || len == 0 {
            return false;
        }
        self.lent_bits[usize::from(bid / 64)] |= 1 << (bid % 64);
        if let Some(piece) = self.pieces.get_mut(usize::from(bid)) {
            piece.offset = piece.filled;
            piece.kept = cqe_flags & CQE_F_BUF_MORE != 0;
            piece.filled = if piece.kept {
                piece.filled.saturating_add(len).min(self.buf_size)
            } else {
                0
            };
            if piece.kept {
                return true; // a piece: the buffer itself stays in the ring, not counted lent
            }
        }
        self.lent += 1;
        true
    }

    /// A completion named buffer `bid` with no bytes (`result` 0: an end of stream, or a
    /// negative errno). Puts the buffer back in the ring if the kernel's commit took it out (a
    /// classic ring at 0 bytes); leaves it where it is otherwise (an incremental ring at 0
    /// bytes, or an error: the kernel's head did not move, so the buffer is still in the ring,
    /// and for an incremental one its next piece starts where it did). Returns `false` (and
    /// changes nothing) if `bid` is out of range or lent out: the accounting and the kernel
    /// disagree (see the module docs).
    pub(crate) fn returned_empty(&mut self, bid: u16, result: i32) -> bool {
        if bid >= self.entries || self.is_lent(bid) || bid >= self.provided {
            return false;
        }
        if result == 0 && !self.incremental {
            self.push_entry(bid);
        }
        true
    }

    /// The first `len` bytes of lent buffer `bid`, mutable so the protocol core can unmask in
    /// place. The borrow of `self` keeps the buffer from being recycled while the slice lives.
    ///
    /// # Panics
    /// If `bid` is not lent out or `len` exceeds [`BufRing::buf_size`]: both are bugs of the
    /// caller, which must only pass the `bid` and `len` of a receive completion.
    pub fn get(&mut self, bid: u16, len: usize) -> &mut [u8] {
        assert!(self.is_lent(bid), "buffer {bid} is not lent out");
        let piece = self
            .pieces
            .get(usize::from(bid))
            .map_or(0, |p| p.offset as usize);
        assert!(
            piece + len <= self.buf_size as usize,
            "length {len} exceeds the buffer size"
        );
        let offset = self.bufs_offset + usize::from(bid) * self.buf_size as usize + piece;
        // SAFETY: `offset + len` lies inside the mapping (bid < entries, piece + len <=
        // buf_size). The bytes are lent: either the buffer is out of the ring, or (incremental)
        // they are a piece the kernel has filled and moved past, and it only writes after its
        // head; so the kernel does not write them until the buffer is recycled, and recycling
        // needs `&mut self`, which the returned borrow holds.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(offset), len) }
    }

    /// Gives lent buffer `bid` back to the ring. The kernel sees it after the next
    /// [`BufRing::publish`].
    ///
    /// # Panics
    /// If `bid` is not lent out: recycling a buffer twice would let two receives fill it at
    /// once.
    pub fn recycle(&mut self, bid: u16) {
        assert!(self.is_lent(bid), "buffer {bid} recycled but not lent out");
        self.lent_bits[usize::from(bid / 64)] &= !(1 << (bid % 64));
        if self.pieces.get(usize::from(bid)).is_some_and(|p| p.kept) {
            return; // only a piece: the kernel still holds the buffer
        }
        self.lent -= 1;
        self.push_entry(bid);
    }

    /// The ring's tail index (what has been pushed, published or not).
    #[cfg(test)]
    pub(crate) fn tail_for_tests(&self) -> u16 {
        self.tail
    }

    /// Makes every recycled buffer visible to the kernel with one release store of the tail.
    /// Cheap when nothing changed.
    pub fn publish(&mut self) {
        if self.tail == self.published {
            return;
        }
        // SAFETY: `base` points to entry 0 of an initialised, live ring; `tail` only computes
        // the address of its reserved field, which the kernel reads as the ring tail.
        let tail = unsafe { BufRingEntry::tail(self.base.as_ptr().cast::<BufRingEntry>()) };
        // SAFETY: the tail is a naturally aligned u16 (offset 14 of a page-aligned entry) inside
        // the mapping; the kernel only reads it (with acquire), user space only writes it here,
        // and every access from Rust goes through this atomic.
        let atomic = unsafe { AtomicU16::from_ptr(tail.cast_mut()) };
        atomic.store(self.tail, Ordering::Release);
        self.published = self.tail;
    }

    /// Writes buffer `bid` at the ring's tail index (not yet published).
    fn push_entry(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.entries - 1));
        let addr = self.base.as_ptr() as u64
            + self.bufs_offset as u64
            + u64::from(bid) * u64::from(self.buf_size);
        // SAFETY: `index < entries`, so the entry lies inside the mapped array. The kernel only
        // reads entries between its head and the published tail; `index` is at or past the
        // published tail and no more than `entries` buffers exist, so the kernel is not reading
        // this entry. Only addr/len/bid are written: the reserved field of entry 0 (the tail) is
        // left alone.
        unsafe {
            let entry = &mut *self.base.as_ptr().cast::<BufRingEntry>().add(index);
            entry.set_addr(addr);
            entry.set_len(self.buf_size);
            entry.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.registered {
            // The kernel may still write into the buffers: leaking the mapping is the only safe
            // choice. `Uring` unregisters before dropping, so this is not reached in normal use.
            return;
        }
        // SAFETY: the mapping was created in `new` with exactly this address and length, no
        // slice into it outlives `&mut self`, and the kernel no longer knows the ring.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.map_len);
        }
    }
}

/// The system page size.
fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::uring::ring::build_ring;

    fn ring() -> IoUring {
        build_ring(8, 16).expect("io_uring").0
    }

    #[cfg_attr(
        ringws_no_uring,
        ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
    )]
    #[test]
    fn rejects_bad_sizes() {
        let ring = ring();
        assert!(BufRing::new(&ring, 0, 3, 64, false).is_err());
        assert!(BufRing::new(&ring, 0, 0, 64, false).is_err());
        assert!(BufRing::new(&ring, 0, 4, 0, false).is_err());
    }

    #[cfg_attr(
        ringws_no_uring,
        ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
    )]
    #[test]
    fn register_lend_recycle_accounting() {
        let ring = ring();
        let mut bufs = BufRing::new(&ring, 7, 4, 128, false).expect("register");
        assert_eq!((bufs.entries(), bufs.buf_size(), bufs.bgid()), (4, 128, 7));
        // An eighth (at least one) at first, then doubling up to all of them.
        assert_eq!((bufs.provided(), bufs.available()), (1, 1));
        assert!(bufs.grow());
        assert!(bufs.grow());
        assert!(!bufs.grow(), "all four are in the ring");
        assert_eq!((bufs.lent(), bufs.available()), (0, 4));
        // The same group id cannot be registered twice on one ring.
        assert!(BufRing::new(&ring, 7, 4, 128, false).is_err());

        assert!(bufs.lend(2, 128, 0));
        assert!(!bufs.lend(2, 128, 0), "double lend is refused");
        assert!(!bufs.lend(4, 128, 0), "out of range bid is refused");
        assert!(
            !bufs.lend(1, 0, 0),
            "a loan carries bytes (see returned_empty)"
        );
        assert!(bufs.lend(0, 1, 0));
        assert_eq!((bufs.lent(), bufs.available()), (2, 2));
        bufs.get(2, 128).fill(0xab);
        assert!(bufs.get(2, 3).iter().all(|&b| b == 0xab));
        assert_eq!(bufs.get(0, 1).len(), 1);

        bufs.recycle(2);
        bufs.recycle(0);
        assert_eq!((bufs.lent(), bufs.available()), (0, 4));
        bufs.publish();
        assert_eq!(bufs.tail, 6);
        assert_eq!(bufs.published, 6);
        bufs.unregister(&ring).expect("unregister");
        // After unregistering, the group id is free again.
        let mut again = BufRing::new(&ring, 7, 2, 64, false).expect("re-register");
        again.unregister(&ring).expect("unregister");
    }

    #[cfg_attr(
        ringws_no_uring,
        ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
    )]
    #[test]
    fn incremental_pieces_follow_each_other_and_only_the_last_recycles() {
        let ring = ring();
        let Ok(mut bufs) = BufRing::new(&ring, 3, 2, 100, true) else {
            // No incremental consumption on this kernel (6.12+): what runs here is the fallback,
            // so that is what is checked: the same memory in 4 KiB classic buffers.
            crate::runtime::uring::skipped(
                "incremental pieces: this kernel has no IOU_PBUF_RING_INC; checked the fallback",
            );
            let uring = crate::runtime::uring::Uring::new(crate::runtime::uring::UringConfig {
                incremental_bufs: true,
                ..Default::default()
            })
            .expect("io_uring");
            assert!(!uring.flags().incremental_bufs);
            assert_eq!(uring.bufs_ref().buf_size(), 4096);
            assert_eq!(
                uring.bufs_ref().entries(),
                1024,
                "64 x 64 KiB as 1024 x 4 KiB"
            );
            return;
        };
        assert!(bufs.incremental());
        let tail = bufs.tail;
        let base = |b: &mut BufRing| b.get(0, 0).as_ptr() as usize;
        // Three pieces of buffer 0: 10 and 30 bytes while the kernel keeps it, then the rest.
        assert!(bufs.lend(0, 10, CQE_F_BUF_MORE));
        let first = base(&mut bufs);
        assert_eq!(
            bufs.lent(),
            0,
            "a piece does not take the buffer out of the ring"
        );
        bufs.recycle(0);
        assert_eq!(bufs.tail, tail, "nothing pushed back");
        assert!(bufs.lend(0, 30, CQE_F_BUF_MORE));
        assert_eq!(base(&mut bufs), first + 10);
        bufs.recycle(0);
        assert!(bufs.lend(0, 60, 0));
        assert_eq!(base(&mut bufs), first + 40);
        assert_eq!(bufs.get(0, 60).len(), 60);
        assert_eq!(bufs.lent(), 1);
        bufs.recycle(0);
        assert_eq!(
            (bufs.tail, bufs.lent()),
            (tail + 1, 0),
            "the finished buffer goes back"
        );
        // Its next life starts at offset 0.
        assert!(bufs.lend(0, 5, CQE_F_BUF_MORE));
        assert_eq!(base(&mut bufs), first);
        bufs.recycle(0);
        bufs.unregister(&ring).expect("unregister");
    }

    #[cfg_attr(
        ringws_no_uring,
        ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
    )]
    #[test]
    fn a_buffer_named_with_no_bytes_goes_back_only_if_the_kernel_consumed_it() {
        let ring = ring();
        // Classic ring: a commit of 0 bytes still moves the kernel's head past the buffer, so
        // it must be pushed back; an error commits nothing, so it must not.
        let mut classic = BufRing::new(&ring, 4, 8, 64, false).expect("register");
        let tail = classic.tail;
        assert!(classic.returned_empty(0, 0));
        assert_eq!(classic.tail, tail + 1, "pushed back once");
        assert!(classic.returned_empty(0, -libc::ECONNRESET));
        assert_eq!(classic.tail, tail + 1, "an error leaves it in the ring");
        assert!(classic.lend(0, 10, 0));
        assert!(
            !classic.returned_empty(0, 0),
            "lent: the kernel and we disagree"
        );
        assert!(!classic.returned_empty(7, 0), "never provided yet");
        assert!(!classic.returned_empty(8, 0), "out of range");
        assert_eq!(classic.tail, tail + 1, "nothing pushed by a refusal");
        classic.recycle(0);
        classic.unregister(&ring).expect("unregister");

        let Ok(mut inc) = BufRing::new(&ring, 5, 2, 100, true) else {
            crate::runtime::uring::skipped(
                "the incremental half: no IOU_PBUF_RING_INC here (6.12+)",
            );
            return;
        };
        let tail = inc.tail;
        let start = |b: &mut BufRing| b.get(0, 1).as_ptr() as usize;
        assert!(inc.lend(0, 10, CQE_F_BUF_MORE));
        let first = start(&mut inc);
        inc.recycle(0);
        // Incremental ring: 0 bytes consumed nothing; the buffer stays at the kernel's head and
        // its next piece starts where it would have.
        assert!(inc.returned_empty(0, 0));
        assert_eq!(inc.tail, tail, "not pushed back");
        assert!(inc.lend(0, 5, CQE_F_BUF_MORE));
        assert_eq!(start(&mut inc), first + 10);
        inc.recycle(0);
        inc.unregister(&ring).expect("unregister");
    }

    #[cfg_attr(
        ringws_no_uring,
        ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
    )]
    #[test]
    #[should_panic(expected = "not lent out")]
    fn recycle_unlent_panics() {
        let ring = ring();
        let mut bufs = BufRing::new(&ring, 1, 2, 64, false).expect("register");
        bufs.unregister(&ring).expect("unregister");
        bufs.recycle(1);
    }

    #[cfg_attr(
        ringws_no_uring,
        ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
    )]
    #[test]
    #[should_panic(expected = "exceeds the buffer size")]
    fn get_too_long_panics() {
        let ring = ring();
        let mut bufs = BufRing::new(&ring, 1, 2, 64, false).expect("register");
        bufs.unregister(&ring).expect("unregister");
        assert!(bufs.lend(1, 64, 0));
        let _ = bufs.get(1, 65);
    }
}
