//! Sends whose memory the ring owns until they complete: the safe face of [`Uring::send`].
//!
//! [`Uring::send_owned`] takes `Bytes` handles (reference counts, not copies), keeps them with
//! the `msghdr` and iovec array in a boxed record until the kernel's completion for that send has
//! been read, then drops them. The worker above never touches a raw pointer, and the send bytes
//! cannot be freed or changed while the kernel may read them: `Bytes` is immutable and the record
//! holds a handle.
//!
//! Records are indexed by connection slot (the worker keeps at most one send in flight per
//! connection, which also keeps the byte order) and recycled through a spare list, so a steady
//! state of sends allocates nothing.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use bytes::Bytes;

use super::{SendHeader, Uring};

/// The most iovecs one send gathers (the kernel allows 1024): enough to flush many small frames
/// in one call, small enough that the record stays cheap.
pub const MAX_IOVECS: usize = 64;

/// One send in flight: the header the kernel reads, its iovecs and the bytes they point to.
struct OwnedSend {
    generation: u32,
    header: SendHeader,
    iovecs: Vec<libc::iovec>,
    bufs: Vec<Bytes>,
}

/// The records of the sends in flight, by slot.
#[derive(Default)]
pub(super) struct OwnedSends {
    by_slot: Vec<Option<Box<OwnedSend>>>,
    /// Boxed on purpose: a record's address must not change while it is in flight, and spare
    /// records move back into `by_slot` without reallocating.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<OwnedSend>>,
}

impl OwnedSends {
    /// Whether `slot` has a send in flight.
    pub(super) fn in_flight(&self, slot: u32) -> bool {
        self.by_slot.get(slot as usize).is_some_and(Option::is_some)
    }

    /// Whether any send is in flight.
    pub(super) fn any_in_flight(&self) -> bool {
        self.by_slot.iter().any(Option::is_some)
    }

    /// Gives up the records of the sends still in flight without freeing them (the kernel may
    /// still read their memory): for a teardown that could not wait for their completions.
    pub(super) fn leak(&mut self) {
        for send in self.by_slot.drain(..).flatten() {
            std::mem::forget(send);
        }
    }

    /// Drops the record of `(slot, generation)` once its completion has been read.
    pub(super) fn release(&mut self, slot: u32, generation: u32) {
        let Some(entry) = self.by_slot.get_mut(slot as usize) else {
            return;
        };
        if entry.as_ref().is_some_and(|s| s.generation == generation) {
            if let Some(mut send) = entry.take() {
                send.bufs.clear();
                send.iovecs.clear();
                send.header = SendHeader::new();
                self.spare.push(send);
            }
        }
    }
}

impl Uring {
    /// Whether `slot` still has a send record in flight (a zero-copy send waits for its
    /// notification after its result): [`Uring::send_owned`] would refuse.
    pub fn send_busy(&self, slot: u32) -> bool {
        self.sends.in_flight(slot)
    }

    /// Queues one gathered `sendmsg` of `frames` (at most [`MAX_IOVECS`] are taken; the number
    /// taken is returned with the byte count) on `fd` for connection `(slot, generation)`. The
    /// ring keeps the `Bytes` handles until the [`super::Completion::Sent`] of this send has been
    /// returned by [`Uring::next_completion`]; a short send leaves the rest to the caller.
    ///
    /// # Errors
    /// `ResourceBusy` if `slot` already has a send in flight (one at a time keeps the byte
    /// order); otherwise only if making room in a full submission queue fails. Nothing is
    /// queued on error.
    pub fn send_owned(
        &mut self,
        fd: BorrowedFd<'_>,
        slot: u32,
        generation: u32,
        frames: impl IntoIterator<Item = Bytes>,
    ) -> io::Result<(usize, usize)> {
        if self.sends.in_flight(slot) {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "a send is in flight",
            ));
        }
        let mut send = self.sends.spare.pop().unwrap_or_else(|| {
            Box::new(OwnedSend {
                generation,
                header: SendHeader::new(),
                // Grown to what sends need (most send one or two frames), not preallocated.
                iovecs: Vec::new(),
                bufs: Vec::new(),
            })
        });
        send.generation = generation;
        send.bufs.extend(
            frames
                .into_iter()
                .filter(|b| !b.is_empty())
                .take(MAX_IOVECS),
        );
        let bytes: usize = send.bufs.iter().map(Bytes::len).sum();
        let count = send.bufs.len();
        let OwnedSend {
            header,
            iovecs,
            bufs,
            ..
        } = &mut *send;
        iovecs.extend(bufs.iter().map(|b| libc::iovec {
            iov_base: b.as_ptr().cast_mut().cast(),
            iov_len: b.len(),
        }));
        header.set_raw_iovecs(iovecs);
        let zero_copy = self
            .send_zc_min_bytes
            .is_some_and(|min| bytes >= min as usize);
        // SAFETY: the header, the iovec array and the bytes live in `send`, which is boxed (its
        // address does not change when the box moves) and is kept in `self.sends` until the
        // last completion of this send (the result, or for a zero-copy send its notification)
        // is returned by `next_completion` (see `release`), or until the ring is dropped;
        // `Bytes` never changes its bytes, and the vectors are not touched while in flight.
        let queued = unsafe {
            self.queue_sendmsg(fd.as_raw_fd(), slot, generation, &send.header, zero_copy)
        };
        if let Err(e) = queued {
            send.bufs.clear();
            send.iovecs.clear();
            self.sends.spare.push(send);
            return Err(e);
        }
        let index = slot as usize;
        if self.sends.by_slot.len() <= index {
            self.sends.by_slot.resize_with(index + 1, || None);
        }
        self.sends.by_slot[index] = Some(send);
        Ok((bytes, count))
    }
}
