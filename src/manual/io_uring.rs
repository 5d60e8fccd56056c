//! # io_uring: who owns which memory, and until when
//!
//! With io_uring the kernel reads and writes process memory long after the call that named it
//! has returned: a receive writes into a buffer the kernel chose from a ring, a send reads its
//! bytes whenever the socket has room, a message lands in another thread's ring. Every one of
//! those is a lifetime the compiler cannot see. This page states each one, the rule that keeps
//! it, where the rule lives (all of it in `runtime/`, the only module besides `proto/mask`
//! allowed `unsafe`) and the test that shows it holds. Paths are relative to `src/`; each proof
//! names a test as `PATH#NAME` after the word "test", checked by this module's own test to be
//! a `#[test]` that exists.
//!
//! ## Receive buffers: in the ring, lent, back
//!
//! A worker registers one provided-buffer ring (`runtime/uring/buf_ring.rs`): one mapping of
//! equal buffers. A buffer is always in exactly one of two hands:
//!
//! ```text
//!            kernel picks it for a receive, completion names it (F_BUFFER, bid)
//!   IN RING ──────────────────────────────────────────────────────────────▶ LENT
//!   (kernel may write)                                                       (only the worker
//!      ▲                                                                      reads it; the
//!      └──── recycle: written at the tail, published by one release store ◀───┘ kernel does not
//!            of the tail before the next io_uring_enter                          touch it)
//! ```
//!
//! | rule | where | proof |
//! |---|---|---|
//! | a buffer is recycled once per loan: recycling a buffer that is not lent is a bug and panics (two receives would fill it) | `BufRing::recycle` | test: runtime/uring/buf_ring.rs#recycle_unlent_panics |
//! | a slice of a lent buffer borrows the ring, so it cannot outlive the loan | `BufRing::get` returns `&mut [u8]` tied to `&mut self`; `recycle` needs `&mut self` | test: runtime/uring/buf_ring.rs#get_too_long_panics |
//! | a completion that names a buffer already lent (or an unknown id) is not a second loan: its bytes are handed to no one, the buffer is withheld for good, the connection is failed and logged, in release builds too (`ringws_ring_faults_total`) | `BufRing::lend`, `decode_recv` → `Completion::RecvFault`, the worker's `RecvFault` arm | test: runtime/uring/completion.rs#a_buffer_named_while_lent_is_a_fault_not_a_second_loan, test: server/worker/tests.rs#a_receive_that_names_a_lent_buffer_fails_its_connection_and_only_that_one |
//! | incremental buffers (kernel 6.12+): a piece with `F_BUF_MORE` is lent but the buffer stays in the ring; only the last piece sends it back | `BufRing::lend`, `Piece` | test: runtime/uring/buf_ring.rs#incremental_pieces_follow_each_other_and_only_the_last_recycles |
//! | a completion that names a buffer with no bytes goes back only if the kernel's commit took it out: a classic ring's head moves at 0 bytes, an incremental ring's does not, an error commits nothing; pushing it back otherwise would put it in the ring twice | `BufRing::returned_empty` | test: runtime/uring/buf_ring.rs#a_buffer_named_with_no_bytes_goes_back_only_if_the_kernel_consumed_it, test: runtime/uring/completion.rs#an_end_of_stream_naming_a_buffer_keeps_the_ring_consistent |
//! | on the kernels here an end of stream names no buffer at all (the receive gives its selection back), so the rule above is a guard, not the common path | the kernel's `io_recv` | test: runtime/uring/tests.rs#an_end_of_stream_arrives_without_a_buffer_on_this_kernel |
//! | the buffer memory is unmapped only after the kernel has forgotten the ring; if unregistering fails, the mapping is leaked, never unmapped under the kernel | `Drop for Uring` unregisters, `Drop for BufRing` leaks while registered | test: runtime/uring/buf_ring.rs#register_lend_recycle_accounting |
//! | an empty ring stops a receive (`-ENOBUFS`) without losing bytes; it is re-armed once buffers are back | the worker's starved list | test: runtime/uring/tests.rs#enobufs_rearm_loses_nothing |
//!
//! ## Send memory: owned by the ring until the last completion
//!
//! A send points the kernel at a `msghdr`, an iovec array and the bytes they name; the kernel
//! reads them when the socket has room, which can be much later. `Uring::send_owned` keeps all
//! three in a boxed record (the bytes as `Bytes` handles, which never change) until the send's
//! last completion has been read: its result, or for a zero-copy send the notification that
//! follows it. One send per connection is in flight at a time, which also keeps the byte order.
//! The raw `Uring::send`, whose caller would carry that duty, exists for the ring's own tests
//! only.
//!
//! | rule | where | proof |
//! |---|---|---|
//! | a short send resumes at the exact byte; what went out is released | `Outbox::sent` | test: server/outbox.rs#short_sends_resume_at_the_right_byte_and_memory_is_released |
//! | a send's memory is released by its own completion, a cancelled one included, never before | `OwnedSends::release` from `Uring::next_completion` | test: runtime/uring/tests.rs#dropping_a_ring_cancels_a_stuck_send_before_freeing_its_memory |
//!
//! ## Descriptors: one owner, one close
//!
//! An accepted socket arrives as an `OwnedFd` in `Completion::Accepted`. The connection's slot
//! owns it; operations borrow it (`BorrowedFd`); closing hands the `OwnedFd` to the backend
//! (`Backend::close`), which closes it once: through the ring (`IORING_OP_CLOSE`) or at once
//! (epoll). The receive is cancelled first, since an armed operation would keep the socket
//! open; the slot is freed only when both the cancel and the close have completed, and a
//! generation in every operation's tag makes a late completion of an earlier connection in the
//! same slot recognisable. None of this is reachable from outside the crate: `runtime` is
//! private.
//!
//! | rule | where | proof |
//! |---|---|---|
//! | cancel, then close; a stale completion is recognised by its generation | `Worker::close_fd`, `UserData` | test: runtime/uring/tests.rs#cancel_then_close_and_stale_generation, test: ../tests/churn.rs#abrupt_disconnects_free_everything |
//!
//! ## Wake-ups between rings
//!
//! A worker wakes another with `IORING_OP_MSG_RING`, naming the target ring by fd number. A
//! number read just before the target closed its ring could by then name another file (a new
//! socket, or another server's ring in the same process). So the hub keeps a duplicate of every
//! worker's ring fd for as long as anyone can send to it (`Hub::set_ring`): the number always
//! names that ring's file. A worker that stops is retired (`Hub::retire_ring`); a message
//! already on its way waits unread in a ring nobody reads, which costs nothing. A message the
//! kernel refuses comes back tagged with the target worker's index, whose eventfd is then
//! signalled instead.
//!
//! | rule | where | proof |
//! |---|---|---|
//! | the hub's fd outlives the worker's own | `Hub::set_ring`, `Hub::ring` | test: server/pubsub.rs#inbox_batches_wake_only_when_empty |
//! | a refused message names its target | `Completion::MsgSent`, the worker's fallback | test: runtime/uring/tests.rs#a_failed_msg_ring_comes_back_with_its_tag |
//!
//! ## Teardown
//!
//! Closing a ring's fd does not stop the kernel. It tears a ring down asynchronously, and not at
//! all while another reference to its file exists (the hub's duplicate). So dropping a `Uring`
//! first cancels every operation (`IORING_ASYNC_CANCEL_ANY`) and reads completions, recycling
//! buffers and releasing send records as usual, until a cancel finds nothing left and no send
//! waits for its last completion; only then does it unregister the buffer ring and free the
//! records. If that does not happen within its bound (32 rounds of at most 250 ms), the records
//! and the buffer mapping are leaked and the fact is logged: memory the kernel may still use is
//! never freed.
//!
//! | rule | where | proof |
//! |---|---|---|
//! | nothing in flight when the memory goes, with or without another reference to the ring | `Uring::quiesce`, `Drop for Uring` | test: runtime/uring/tests.rs#dropping_a_ring_cancels_a_stuck_send_before_freeing_its_memory |
//! | the worker's loop waits with a timespec passed to `io_uring_enter` (copied by the kernel during the call), not a timeout operation that would point at its memory | `Uring::enter` | test: runtime/uring/tests.rs#wait_with_timeout_returns_when_idle |
