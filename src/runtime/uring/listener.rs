//! Listening sockets (one per worker, spread by `SO_REUSEPORT`) and options for accepted ones.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// The default listen backlog: large enough for connection bursts of load tests; the kernel
/// clamps it to `net.core.somaxconn`.
pub const DEFAULT_BACKLOG: i32 = 4096;

/// Opens a nonblocking, close-on-exec TCP listener on `addr` with `SO_REUSEADDR` and
/// `SO_REUSEPORT` set, so each worker can bind its own listener to the same port and the kernel
/// spreads connections between them.
///
/// Note that `SO_REUSEPORT` also lets a stale process bound to the same port take a share of the
/// connections silently.
///
/// # Errors
/// Any error of `socket`, `setsockopt`, `bind` or `listen`.
pub fn bind_listener(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Fails with `AddrInUse` if another socket is bound to `addr`, with or without `SO_REUSEPORT`
/// (which would otherwise let a stale process silently take a share of the connections).
///
/// The probe binds with `SO_REUSEADDR` (as a std listener would, so connections in TIME_WAIT
/// from an earlier run do not count) but never listens: a client that connects while the
/// server starts is refused, never accepted by the probe and then reset, so "the port accepts"
/// means the real listeners are up.
///
/// # Errors
/// `AddrInUse`, or any error of `socket`, `setsockopt` or `bind`.
pub fn check_port_free(addr: SocketAddr) -> io::Result<()> {
    port_probe(addr).map(drop)
}

/// The bound, never listening, socket of [`check_port_free`].
fn port_probe(addr: SocketAddr) -> io::Result<Socket> {
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into())?;
    Ok(probe)
}

/// Sets `TCP_NODELAY` on an accepted socket: frames are written whole, so Nagle's delay would
/// only add latency.
///
/// # Errors
/// The error of `setsockopt` (e.g. `ENOTSOCK`).
pub fn set_nodelay(fd: &impl AsFd) -> io::Result<()> {
    SockRef::from(fd).set_tcp_nodelay(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_listeners_share_a_port() {
        let a = bind_listener("127.0.0.1:0".parse().unwrap(), 16).expect("bind");
        let addr = a.local_addr().unwrap();
        let b = bind_listener(addr, 16).expect("reuseport bind");
        assert_eq!(b.local_addr().unwrap(), addr);
        let sock = socket2::SockRef::from(&a);
        assert!(sock.reuse_port().unwrap());
        assert!(sock.nonblocking().unwrap());
    }

    #[test]
    fn the_port_probe_refuses_a_taken_port_and_never_accepts() {
        let taken = bind_listener("127.0.0.1:0".parse().unwrap(), 16).expect("bind");
        let addr = taken.local_addr().unwrap();
        let e = check_port_free(addr).expect_err("a listener holds the port");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        // A free port: while the probe holds it the port refuses connections (it never
        // listens), which is what a client polling for readiness must see.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = free.local_addr().unwrap();
        drop(free);
        let probe = port_probe(addr).expect("a free port");
        let e = std::net::TcpStream::connect(addr).expect_err("the probe does not listen");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        drop(probe);
        check_port_free(addr).expect("free again");
    }

    #[test]
    fn nodelay_on_connected_socket() {
        let l = bind_listener("127.0.0.1:0".parse().unwrap(), 16).expect("bind");
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        set_nodelay(&c).expect("nodelay");
        assert!(c.nodelay().unwrap());
        let not_a_socket = crate::runtime::sys::eventfd().unwrap();
        assert!(set_nodelay(&not_a_socket).is_err());
    }
}
