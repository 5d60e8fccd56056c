//! Building the ring: setup flags tried best first and dropped one by one on `EINVAL`, and an
//! opcode probe.

use std::io;

use io_uring::{IoUring, Probe, opcode};

/// The optional setup flags that were accepted when the ring was built.
///
/// The builder asks for all of them and, when the kernel refuses with `EINVAL`, drops them one
/// at a time in the order `submit_all`, `coop_taskrun`, `defer_taskrun`, `single_issuer`, so the
/// flags kept are the best set this kernel accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingFlags {
    /// `IORING_SETUP_SINGLE_ISSUER`: only the creating thread submits; the kernel skips some
    /// locking. The ring (and so the worker's `Uring`) must stay on the thread that built it.
    pub single_issuer: bool,
    /// `IORING_SETUP_DEFER_TASKRUN`: completion work runs only when this thread waits with
    /// `GETEVENTS` (every wait here does), not by interrupting it. Fewer context switches, and
    /// completions are batched.
    pub defer_taskrun: bool,
    /// `IORING_SETUP_COOP_TASKRUN`: no inter-processor interrupt to run task work.
    pub coop_taskrun: bool,
    /// `IORING_SETUP_SUBMIT_ALL`: a failing SQE does not stop the rest of the batch.
    pub submit_all: bool,
    /// The completion queue size the kernel granted (it may round up).
    pub cq_entries: u32,
    /// The submission queue size the kernel granted.
    pub sq_entries: u32,
    /// Receive buffers are consumed incrementally (`IOU_PBUF_RING_INC`, kernel 6.12+); set by
    /// `Uring::flags` once the buffer ring is registered.
    pub incremental_bufs: bool,
}

/// Which of the opcodes this layer uses the kernel knows (from `IORING_REGISTER_PROBE`).
///
/// The probe says whether an opcode exists, not whether its multishot variant does: multishot
/// accept needs 5.19 and multishot receive 6.0, which the provided-buffer ring (5.19) and the
/// kernels we target (6.x) imply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpSupport {
    /// `IORING_OP_ACCEPT` (used multishot).
    pub accept: bool,
    /// `IORING_OP_RECV` (used multishot with buffer select).
    pub recv: bool,
    /// `IORING_OP_SENDMSG`.
    pub send_msg: bool,
    /// `IORING_OP_WRITEV`.
    pub writev: bool,
    /// `IORING_OP_ASYNC_CANCEL`.
    pub async_cancel: bool,
    /// `IORING_OP_TIMEOUT`.
    pub timeout: bool,
    /// `IORING_OP_MSG_RING` (cross-ring wake-up).
    pub msg_ring: bool,
    /// `IORING_OP_CLOSE`.
    pub close: bool,
}

impl OpSupport {
    /// Names of the required opcodes the kernel lacks; empty when all are there. `writev` is not
    /// required (sends use `sendmsg`).
    pub fn missing(&self) -> Vec<&'static str> {
        let required = [
            (self.accept, "ACCEPT"),
            (self.recv, "RECV"),
            (self.send_msg, "SENDMSG"),
            (self.async_cancel, "ASYNC_CANCEL"),
            (self.timeout, "TIMEOUT"),
            (self.msg_ring, "MSG_RING"),
            (self.close, "CLOSE"),
        ];
        required
            .into_iter()
            .filter(|(ok, _)| !ok)
            .map(|(_, name)| name)
            .collect()
    }
}

/// Builds a ring of `sq_entries` submissions and `cq_entries` completions with the best flags the
/// kernel accepts (see [`RingFlags`]).
///
/// `cq_entries` must be at least `sq_entries`; the kernel rounds both up to powers of two.
///
/// # Errors
/// The error of the last attempt (with no optional flag at all) if even that fails, e.g. `EPERM`
/// when io_uring is disabled by `kernel.io_uring_disabled`, or `ENOMEM` past `RLIMIT_MEMLOCK` on
/// old kernels.
pub fn build_ring(sq_entries: u32, cq_entries: u32) -> io::Result<(IoUring, RingFlags)> {
    let mut want = RingFlags {
        single_issuer: true,
        defer_taskrun: true,
        coop_taskrun: true,
        submit_all: true,
        cq_entries,
        sq_entries,
        incremental_bufs: false,
    };
    loop {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(cq_entries);
        if want.single_issuer {
            builder.setup_single_issuer();
        }
        if want.defer_taskrun {
            builder.setup_defer_taskrun();
        }
        if want.coop_taskrun {
            builder.setup_coop_taskrun();
        }
        if want.submit_all {
            builder.setup_submit_all();
        }
        match builder.build(sq_entries) {
            Ok(ring) => {
                want.cq_entries = ring.params().cq_entries();
                want.sq_entries = ring.params().sq_entries();
                return Ok((ring, want));
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match fallback(want) {
                Some(fewer) => want = fewer,
                None => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
}

/// The flag set to try after `flags` was refused: the newest optional flag dropped (DEFER_TASKRUN
/// needs SINGLE_ISSUER, so it goes first of the two); `None` once nothing is left to drop.
fn fallback(mut flags: RingFlags) -> Option<RingFlags> {
    if flags.submit_all {
        flags.submit_all = false;
    } else if flags.coop_taskrun {
        flags.coop_taskrun = false;
    } else if flags.defer_taskrun {
        flags.defer_taskrun = false;
    } else if flags.single_issuer {
        flags.single_issuer = false;
    } else {
        return None;
    }
    Some(flags)
}

/// Probes `ring` for the opcodes this layer uses.
///
/// # Errors
/// If the probe itself fails (kernels before 5.6 lack `IORING_REGISTER_PROBE`).
pub fn probe_ops(ring: &IoUring) -> io::Result<OpSupport> {
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    Ok(OpSupport {
        accept: probe.is_supported(opcode::AcceptMulti::CODE),
        recv: probe.is_supported(opcode::RecvMulti::CODE),
        send_msg: probe.is_supported(opcode::SendMsg::CODE),
        writev: probe.is_supported(opcode::Writev::CODE),
        async_cancel: probe.is_supported(opcode::AsyncCancel::CODE),
        timeout: probe.is_supported(opcode::Timeout::CODE),
        msg_ring: probe.is_supported(opcode::MsgRingData::CODE),
        close: probe.is_supported(opcode::Close::CODE),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_drops_one_flag_at_a_time() {
        let all = RingFlags {
            single_issuer: true,
            defer_taskrun: true,
            coop_taskrun: true,
            submit_all: true,
            incremental_bufs: false,
            cq_entries: 8,
            sq_entries: 4,
        };
        let mut steps = vec![all];
        while let Some(next) = fallback(*steps.last().unwrap()) {
            steps.push(next);
        }
        let bits: Vec<_> = steps
            .iter()
            .map(|f| {
                (
                    f.single_issuer,
                    f.defer_taskrun,
                    f.coop_taskrun,
                    f.submit_all,
                )
            })
            .collect();
        assert_eq!(
            bits,
            [
                (true, true, true, true),
                (true, true, true, false),
                (true, true, false, false),
                (true, false, false, false),
                (false, false, false, false),
            ]
        );
    }

    #[cfg_attr(
        ringws_no_uring,
        ignore = "io_uring is not emulated (qemu-user): tests/aarch64.sh"
    )]
    #[test]
    fn ring_builds_with_flags_and_ops() {
        let (ring, flags) = build_ring(64, 256).expect("io_uring available");
        assert!(flags.cq_entries >= 256, "{flags:?}");
        assert!(flags.sq_entries >= 64, "{flags:?}");
        // DEFER_TASKRUN is only accepted together with SINGLE_ISSUER.
        assert!(!flags.defer_taskrun || flags.single_issuer, "{flags:?}");
        let ops = probe_ops(&ring).expect("probe");
        assert!(
            ops.missing().is_empty(),
            "missing opcodes: {:?}",
            ops.missing()
        );
        eprintln!("ring flags accepted: {flags:?}");
    }
}
