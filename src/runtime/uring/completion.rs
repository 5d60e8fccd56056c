//! A raw CQE decoded into a [`Completion`] through its [`UserData`] tag.

use std::os::fd::{FromRawFd, OwnedFd};

use io_uring::cqueue;

use super::buf_ring::BufRing;
use super::listener::set_nodelay;
use super::user_data::{OpKind, UserData};
use crate::runtime::Completion;

/// Decodes one CQE, given as its three fields (`user_data`, `res`, `flags`) so that tests can
/// decode completions the kernel would rarely or never produce. A buffer named by a receive is
/// recorded as lent in `bufs` (or, when the accounting says it is lent already, reported as
/// [`Completion::RecvFault`]); a buffer that came with no data is handled as the kernel's
/// commit left it (see [`BufRing::returned_empty`]).
pub(crate) fn decode(
    user_data: u64,
    result: i32,
    flags: u32,
    bufs: &mut BufRing,
    nodelay: bool,
) -> Completion {
    let tag = UserData::from_raw(user_data);
    let more = cqueue::more(flags);
    let (slot, generation) = (tag.slot(), tag.generation());
    match tag.kind() {
        Some(OpKind::Accept) if result >= 0 => {
            // SAFETY: a successful accept's result is a descriptor the kernel just installed
            // in this process's table for this completion alone; nothing else owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(result) };
            if nodelay {
                // Failure (e.g. the peer already reset) surfaces on the first receive.
                let _ = set_nodelay(&fd);
            }
            Completion::Accepted { fd, more }
        }
        Some(OpKind::Accept) => Completion::AcceptError {
            errno: -result,
            more,
        },
        Some(OpKind::Recv) => decode_recv(tag, result, flags, bufs),
        // A zero-copy send posts its result (with `more` set), then a notification once the
        // kernel no longer reads the bytes.
        Some(OpKind::Send) if cqueue::notif(flags) => Completion::SendNotif { slot, generation },
        Some(OpKind::Send) => Completion::Sent {
            slot,
            generation,
            result,
        },
        Some(OpKind::Cancel) => Completion::CancelDone {
            slot,
            generation,
            result,
        },
        Some(OpKind::Close) => Completion::Closed {
            slot,
            generation,
            result,
        },
        #[cfg(test)]
        Some(OpKind::Timeout) => Completion::Timeout {
            token: generation,
            result,
        },
        Some(OpKind::MsgSent) => Completion::MsgSent {
            payload: generation,
            tag: slot,
            result,
        },
        Some(OpKind::Message) => Completion::Message {
            payload: generation,
        },
        #[cfg(test)]
        Some(OpKind::Nop) => Completion::Nop { token: generation },
        Some(OpKind::Wake) => Completion::Wake {
            more: more && result >= 0,
        },
        // Timeouts and no-ops are queued by tests only.
        #[cfg(not(test))]
        Some(OpKind::Timeout | OpKind::Nop) => Completion::Other {
            user_data,
            result,
            flags,
        },
        None => Completion::Other {
            user_data,
            result,
            flags,
        },
    }
}

/// Decodes a multishot receive completion.
fn decode_recv(tag: UserData, result: i32, flags: u32, bufs: &mut BufRing) -> Completion {
    let (slot, generation) = (tag.slot(), tag.generation());
    let more = cqueue::more(flags);
    if let Some(bid) = cqueue::buffer_select(flags) {
        let fault = Completion::RecvFault {
            slot,
            generation,
            bid,
            more,
        };
        if result > 0 {
            if !bufs.lend(bid, result.unsigned_abs(), flags) {
                return fault;
            }
            return Completion::Recv {
                slot,
                generation,
                bid,
                len: result.unsigned_abs(),
                more,
            };
        }
        // A buffer named with no data: back in the ring only if the kernel's head moved.
        if !bufs.returned_empty(bid, result) {
            return fault;
        }
    }
    match result {
        0 => Completion::RecvEof { slot, generation },
        r if r == -libc::ENOBUFS => {
            // The ring ran dry: put more of the pool in it (if any is left) before re-arming.
            bufs.grow();
            Completion::RecvNoBufs { slot, generation }
        }
        r if r == -libc::ECANCELED => Completion::RecvCancelled { slot, generation },
        r if r < 0 => Completion::RecvError {
            slot,
            generation,
            errno: -r,
            more,
        },
        // Data without a buffer cannot happen with buffer select; report it as an I/O error.
        _ => Completion::RecvError {
            slot,
            generation,
            errno: libc::EIO,
            more,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::uring::buf_ring::CQE_F_BUF_MORE;
    use crate::runtime::uring::ring::build_ring;

    const F_BUFFER: u32 = 1 << 0; // IORING_CQE_F_BUFFER
    const F_MORE: u32 = 1 << 1; // IORING_CQE_F_MORE

    /// The flags of a receive completion that names buffer `bid`.
    fn with_buffer(bid: u16, extra: u32) -> u32 {
        F_BUFFER | (u32::from(bid) << 16) | extra
    }

    fn recv_tag(slot: u32, generation: u32) -> u64 {
        UserData::new(OpKind::Recv, slot, generation).raw()
    }

    #[cfg_attr(
        ringws_no_uring,
        ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
    )]
    #[test]
    fn a_buffer_named_while_lent_is_a_fault_not_a_second_loan() {
        let (ring, _) = build_ring(8, 16).expect("io_uring");
        let mut bufs = BufRing::new(&ring, 0, 8, 64, false).expect("register");
        let first = decode(recv_tag(3, 1), 20, with_buffer(0, F_MORE), &mut bufs, false);
        assert!(
            matches!(
                first,
                Completion::Recv {
                    bid: 0,
                    len: 20,
                    ..
                }
            ),
            "{first:?}"
        );
        let tail = bufs.tail_for_tests();
        // The kernel names buffer 0 again while it is lent (our accounting or the kernel is
        // wrong): the bytes are not handed out and nothing is pushed back, in release builds
        // too.
        let again = decode(recv_tag(4, 9), 7, with_buffer(0, F_MORE), &mut bufs, false);
        assert!(
            matches!(
                again,
                Completion::RecvFault {
                    slot: 4,
                    generation: 9,
                    bid: 0,
                    more: true
                }
            ),
            "{again:?}"
        );
        assert_eq!(bufs.lent(), 1, "still one loan");
        assert_eq!(bufs.tail_for_tests(), tail, "nothing pushed back");
        // Out of range is a fault too, and so is an empty completion naming a lent buffer.
        let out = decode(recv_tag(4, 9), 7, with_buffer(99, 0), &mut bufs, false);
        assert!(
            matches!(out, Completion::RecvFault { bid: 99, .. }),
            "{out:?}"
        );
        let empty = decode(recv_tag(3, 1), 0, with_buffer(0, 0), &mut bufs, false);
        assert!(
            matches!(empty, Completion::RecvFault { bid: 0, .. }),
            "{empty:?}"
        );
        bufs.recycle(0);
        assert_eq!(bufs.lent(), 0);
        bufs.unregister(&ring).expect("unregister");
    }

    #[cfg_attr(
        ringws_no_uring,
        ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
    )]
    #[test]
    fn an_end_of_stream_naming_a_buffer_keeps_the_ring_consistent() {
        let (ring, _) = build_ring(8, 16).expect("io_uring");
        let mut classic = BufRing::new(&ring, 1, 8, 64, false).expect("register");
        let tail = classic.tail_for_tests();
        let eof = decode(recv_tag(1, 1), 0, with_buffer(0, 0), &mut classic, false);
        assert!(matches!(eof, Completion::RecvEof { .. }), "{eof:?}");
        assert_eq!(
            classic.tail_for_tests(),
            tail + 1,
            "classic: consumed, so pushed back"
        );
        let reset = decode(
            recv_tag(1, 1),
            -libc::ECONNRESET,
            with_buffer(0, 0),
            &mut classic,
            false,
        );
        assert!(matches!(
            reset,
            Completion::RecvError {
                errno: libc::ECONNRESET,
                ..
            }
        ));
        assert_eq!(
            classic.tail_for_tests(),
            tail + 1,
            "an error commits nothing"
        );
        classic.unregister(&ring).expect("unregister");

        let Ok(mut inc) = BufRing::new(&ring, 2, 2, 100, true) else {
            crate::runtime::uring::skipped(
                "the incremental half: no IOU_PBUF_RING_INC here (6.12+)",
            );
            return;
        };
        let tail = inc.tail_for_tests();
        let piece = decode(
            recv_tag(1, 1),
            10,
            with_buffer(0, F_MORE | CQE_F_BUF_MORE),
            &mut inc,
            false,
        );
        assert!(matches!(piece, Completion::Recv { len: 10, .. }));
        inc.recycle(0);
        let eof = decode(recv_tag(1, 1), 0, with_buffer(0, 0), &mut inc, false);
        assert!(matches!(eof, Completion::RecvEof { .. }), "{eof:?}");
        assert_eq!(
            inc.tail_for_tests(),
            tail,
            "incremental: still at the kernel's head"
        );
        inc.unregister(&ring).expect("unregister");
    }
}
