//! A scripted I/O backend for unit tests of the worker: the test queues completions (even ones
//! no kernel sends, such as a receive that names a buffer twice) and reads back what the worker
//! asked of its I/O.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use bytes::Bytes;

use crate::runtime::{Backend, Completion};

/// What the worker asked of the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    ArmRecv(u32, u32),
    CancelRecv(u32, u32),
    Send(u32, u32, Vec<u8>),
    Cancel(u32, u32),
    Close(u32, u32),
}

/// The scripted backend.
#[derive(Default)]
pub(crate) struct Fake {
    /// Completions the worker reads next, in order.
    pub(crate) pending: VecDeque<Completion>,
    /// The bytes of each receive buffer the script names.
    pub(crate) bufs: HashMap<u16, Vec<u8>>,
    /// Buffers lent to the worker and not recycled yet.
    pub(crate) lent: u32,
    /// What the worker asked, in order.
    pub(crate) log: Vec<Op>,
}

impl Fake {
    /// Queues a receive of `bytes` for `(slot, generation)` in buffer `bid`.
    pub(crate) fn recv(&mut self, slot: u32, generation: u32, bid: u16, bytes: &[u8]) {
        self.bufs.insert(bid, bytes.to_vec());
        self.pending.push_back(Completion::Recv {
            slot,
            generation,
            bid,
            len: bytes.len() as u32,
            more: true,
        });
    }

    /// The bytes the worker sent to `(slot, generation)` so far.
    pub(crate) fn sent_to(&self, slot: u32, generation: u32) -> Vec<u8> {
        self.log
            .iter()
            .filter_map(|op| match op {
                Op::Send(s, g, bytes) if (*s, *g) == (slot, generation) => Some(bytes.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

impl Backend for Fake {
    fn arm_accept(&mut self, _listener: BorrowedFd<'_>) -> io::Result<()> {
        Ok(())
    }
    fn cancel_accept(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn arm_recv(&mut self, _fd: BorrowedFd<'_>, slot: u32, generation: u32) -> io::Result<()> {
        self.log.push(Op::ArmRecv(slot, generation));
        Ok(())
    }
    fn cancel_recv(&mut self, slot: u32, generation: u32) -> io::Result<()> {
        self.log.push(Op::CancelRecv(slot, generation));
        Ok(())
    }
    fn recv_buf(&mut self, bid: u16, len: usize) -> &mut [u8] {
        self.lent += 1;
        &mut self.bufs.get_mut(&bid).expect("a scripted buffer")[..len]
    }
    fn recycle(&mut self, _bid: u16) {
        self.lent = self.lent.saturating_sub(1);
    }
    fn buffers_lent(&self) -> u32 {
        self.lent
    }
    fn buffers_available(&self) -> bool {
        true
    }
    fn send(
        &mut self,
        _fd: BorrowedFd<'_>,
        slot: u32,
        generation: u32,
        frames: &mut dyn Iterator<Item = Bytes>,
    ) -> io::Result<usize> {
        let frames: Vec<Bytes> = frames.collect();
        let bytes: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        // Everything goes out at once.
        self.pending.push_back(Completion::Sent {
            slot,
            generation,
            result: bytes.len() as i32,
        });
        self.log.push(Op::Send(slot, generation, bytes));
        Ok(frames.len())
    }
    fn send_busy(&self, _slot: u32) -> bool {
        false
    }
    fn cancel(&mut self, _fd: BorrowedFd<'_>, slot: u32, generation: u32) -> io::Result<()> {
        self.log.push(Op::Cancel(slot, generation));
        self.pending
            .push_back(Completion::RecvCancelled { slot, generation });
        Ok(())
    }
    fn close(&mut self, fd: OwnedFd, slot: u32, generation: u32) -> io::Result<()> {
        drop(fd);
        self.log.push(Op::Close(slot, generation));
        self.pending.push_back(Completion::Closed {
            slot,
            generation,
            result: 0,
        });
        Ok(())
    }
    fn ring_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    fn arm_wake(&mut self, _efd: BorrowedFd<'_>) -> io::Result<()> {
        Ok(())
    }
    fn wake_peer(
        &mut self,
        _ring: Option<BorrowedFd<'_>>,
        _efd: BorrowedFd<'_>,
        _tag: u32,
    ) -> io::Result<()> {
        Ok(())
    }
    fn wait(&mut self, _timeout: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
    fn next_completion(&mut self) -> Option<Completion> {
        self.pending.pop_front()
    }
    fn name(&self) -> &'static str {
        "fake"
    }
}
