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
//! - **Send memory is the caller's.** A queued send points at the worker's header, iovecs and
//!   bytes until its completion arrives; [`Uring::send`](crate::runtime::uring::Uring::send) is
//!   `unsafe` for that reason.
//!
//! This module and the SIMD unmasking are the only places allowed `unsafe`; every block states
//! its `// SAFETY:` argument.

mod backend;
mod completion;
pub mod epoll;
pub mod sys;
pub mod uring;

pub use backend::{Backend, IoChoice, WAKE_PAYLOAD, probe_uring};
pub use completion::Completion;
