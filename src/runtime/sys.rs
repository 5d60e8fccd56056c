//! Small socket and process calls the worker needs outside the ring: half-closing a socket,
//! asking its peer address, reading resource limits for the start-up checks.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};

use socket2::SockRef;

/// Shuts down the writing side of a socket: the peer reads EOF after the bytes already queued.
/// Used when closing, so that unread input does not turn the close into a reset that destroys
/// the last close frame in flight.
///
/// # Errors
/// The error of `shutdown(2)` (e.g. `ENOTCONN` when the peer is gone).
pub fn shutdown_write(fd: BorrowedFd<'_>) -> io::Result<()> {
    SockRef::from(&fd).shutdown(Shutdown::Write)
}

/// The address of the peer of a connected socket.
///
/// # Errors
/// The error of `getpeername(2)`, or `Unsupported` for a non-IP address family.
pub fn peer_addr(fd: BorrowedFd<'_>) -> io::Result<SocketAddr> {
    SockRef::from(&fd)
        .peer_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "not an IP socket"))
}

/// Pins the calling thread to one CPU.
///
/// # Errors
/// The error of `sched_setaffinity(2)` (e.g. `EINVAL` for a CPU outside the allowed set).
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data for which all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: `cpu` was checked to be below CPU_SETSIZE, so the bit is inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t and the size passed is its size; pid 0 is this thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A process resource limit: `(soft, hard)`, `None` meaning unlimited.
pub type Rlimit = (Option<u64>, Option<u64>);

fn rlimit(resource: libc::__rlimit_resource_t) -> io::Result<Rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit the kernel fills.
    if unsafe { libc::getrlimit(resource, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let finite = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    Ok((finite(lim.rlim_cur), finite(lim.rlim_max)))
}

/// `RLIMIT_NOFILE`: how many file descriptors (so connections) the process may hold.
///
/// # Errors
/// The error of `getrlimit(2)`.
pub fn nofile_limit() -> io::Result<Rlimit> {
    rlimit(libc::RLIMIT_NOFILE)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (allowed without privileges); returns the
/// new soft limit.
///
/// # Errors
/// The error of `getrlimit(2)`/`setrlimit(2)`.
pub fn raise_nofile_limit() -> io::Result<Option<u64>> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit the kernel fills, then reads.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur))
}

/// `RLIMIT_MEMLOCK`: older kernels (before 5.12) charge io_uring rings and buffers to it.
///
/// # Errors
/// The error of `getrlimit(2)`.
pub fn memlock_limit() -> io::Result<Rlimit> {
    rlimit(libc::RLIMIT_MEMLOCK)
}

/// Reads an integer from a `/proc/sys` file (e.g. `net/core/somaxconn`).
pub fn sysctl(name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/sys/{name}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Stops the kernel from backing this process's memory with transparent huge pages (the
/// allocator asks for them with `madvise(MADV_HUGEPAGE)`): resident memory then follows what is
/// used at 4 KiB granularity instead of jumping in 2 MiB steps, so a worker without connections
/// stays small and memory per connection is what the connections use. Applies to pages faulted
/// from now on.
///
/// # Errors
/// The error of `prctl(PR_SET_THP_DISABLE)` (kernels before 3.15).
pub fn disable_huge_pages() -> io::Result<()> {
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes a flag of this
    // process's memory management; no memory is passed to the kernel.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A non-blocking eventfd: the wake-up another thread signals a worker with.
///
/// # Errors
/// The error of `eventfd(2)` (out of descriptors).
pub fn eventfd() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: eventfd takes integer arguments only and returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Signals an eventfd (adds 1; a full counter already means "signalled").
pub fn eventfd_signal(fd: BorrowedFd<'_>) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live local to a descriptor the borrow keeps open; an error
    // (EAGAIN on a saturated counter) leaves nothing to undo.
    let _ = unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8) };
}

/// Resets an eventfd after a wake-up (reads its counter; nothing to read is fine).
pub fn eventfd_drain(fd: BorrowedFd<'_>) {
    let mut value: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live local from a descriptor the borrow keeps open.
    let _ = unsafe { libc::read(fd.as_raw_fd(), (&raw mut value).cast(), 8) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    #[test]
    fn peer_addr_and_half_close() {
        use std::io::Read;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        assert_eq!(
            peer_addr(server.as_fd()).unwrap(),
            client.local_addr().unwrap()
        );
        shutdown_write(server.as_fd()).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!((&client).read(&mut buf).unwrap(), 0, "the client sees EOF");
        let not_a_socket = eventfd().unwrap();
        assert!(peer_addr(not_a_socket.as_fd()).is_err());
    }

    #[test]
    fn limits_read() {
        let (soft, hard) = nofile_limit().unwrap();
        assert!(soft.unwrap_or(u64::MAX) <= hard.unwrap_or(u64::MAX));
        assert!(sysctl("net/core/somaxconn").is_some());
    }
}
