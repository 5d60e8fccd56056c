//! The runtime: what sits between the sockets and the protocol core.
//!
//! It holds the byte-level I/O layer, [`uring`]: one io_uring per
//! worker thread with multishot accept, multishot receive into a shared provided-buffer ring,
//! gathered sends, cancellation, close, timeouts and cross-ring messages. It knows nothing of
//! WebSocket: bytes in, byte slices out. The per-core worker (connection slab, send queues, timer
//! wheel, in `crate::server`) is built on it and is where it meets [`crate::proto`]. [`sys`] has
//! the few socket and process calls made outside the ring.
//!
//! Design in brief (details in [`uring`]):
//!
//! - **No buffer while idle.** An idle connection is an armed multishot receive in the kernel and
//!   nothing in user space; the kernel takes a buffer from the worker's shared ring only when
//!   bytes arrive, and the worker gives it back as soon as they are consumed.
//! - **Identity in the tag.** Every operation carries `(kind, slot, generation)` in its 64-bit
//!   `user_data`; a reused slot gets a new generation, so late completions of a closed
//!   connection are recognised and ignored.
//! - **Send memory is the ring's until the last completion.** A queued send points the kernel at
//!   a header, iovecs and bytes; `Uring::send_owned` keeps all three (the bytes as `Bytes`
//!   handles) until the send's last completion has been read.
//! - **Descriptors have one owner.** An accepted socket arrives as an `OwnedFd`; operations
//!   borrow it, and `Backend::close` takes it.
//! - **Teardown waits for the kernel.** Dropping a ring cancels and drains every operation before
//!   any memory they point at is freed (or leaks it, if the kernel does not finish in time).
//!
//! The manual's page [`crate::manual::io_uring`] states each of these lifetimes with its test.
//! This module is private to the crate (nothing outside can hand it a descriptor); with the SIMD
//! unmasking it is the only place allowed `unsafe`, and every block states its `// SAFETY:`
//! argument.

mod backend;
mod completion;
pub mod epoll;
pub mod seqpacket;
pub mod sys;
pub mod uring;

pub use backend::{Backend, IoChoice, WAKE_PAYLOAD, probe_uring};
pub use completion::Completion;
