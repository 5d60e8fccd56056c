//! Unix `SOCK_SEQPACKET` sockets that carry file descriptors (`SCM_RIGHTS`): the control socket
//! of a live hand-over (`crate::handoff`). Every message arrives whole and alone, with the
//! descriptors sent with it; nothing here knows what the messages mean.
//!
//! Safe code over `rustix`: the descriptors received are `OwnedFd`s from the first moment (no
//! descriptor can leak, even from a message this side refuses).

use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

/// Most descriptors one message carries: the kernel's limit (`SCM_MAX_FD`) is 253.
pub const MAX_FDS: usize = 253;
/// Largest message, in bytes (a message's text; its descriptors travel beside it).
pub const MAX_MESSAGE: usize = 1 << 20;

/// A listening control socket.
#[derive(Debug)]
pub struct SeqPacketListener {
    fd: OwnedFd,
}

/// One end of a control connection.
#[derive(Debug)]
pub struct SeqPacket {
    fd: OwnedFd,
}

fn socket() -> io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

impl SeqPacketListener {
    /// Listens at `path`, readable and writable by this user only (mode 0600). The socket is
    /// bound at a temporary name beside `path`, restricted, then renamed over `path`: nobody
    /// else can connect in between, and a listener already at `path` (the process being
    /// replaced) is replaced in one step, never leaving `path` absent.
    pub fn bind(path: &Path) -> io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let fd = socket()?;
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(format!(".{}.new", std::process::id()));
        let temporary = std::path::PathBuf::from(temporary);
        let _ = std::fs::remove_file(&temporary);
        rustix::net::bind(&fd, &SocketAddrUnix::new(temporary.as_path())?)?;
        let placed = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| rustix::net::listen(&fd, 8).map_err(io::Error::from))
            .and_then(|()| std::fs::rename(&temporary, path));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&temporary);
            return Err(e);
        }
        Ok(SeqPacketListener { fd })
    }

    /// Waits for a connection; returns it with the peer's user id.
    pub fn accept(&self) -> io::Result<(SeqPacket, u32)> {
        let fd = rustix::net::accept_with(&self.fd, SocketFlags::CLOEXEC)?;
        let uid = rustix::net::sockopt::socket_peercred(&fd)?.uid.as_raw();
        Ok((SeqPacket { fd }, uid))
    }
}

/// This process's user id.
pub fn my_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

impl SeqPacket {
    /// Connects to the listener at `path`.
    pub fn connect(path: &Path) -> io::Result<Self> {
        let fd = socket()?;
        rustix::net::connect(&fd, &SocketAddrUnix::new(path)?)?;
        Ok(SeqPacket { fd })
    }

    /// Sends one message with `fds` (at most [`MAX_FDS`]).
    pub fn send(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        if fds.len() > MAX_FDS || bytes.len() > MAX_MESSAGE || bytes.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a control message of 1 byte to 1 MiB with at most 253 descriptors",
            ));
        }
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(io::Error::other(
                "descriptors do not fit the control buffer",
            ));
        }
        let sent = rustix::net::sendmsg(
            &self.fd,
            &[IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        )?;
        if sent != bytes.len() {
            return Err(io::Error::other("control message sent in part"));
        }
        Ok(())
    }

    /// Receives one message and the descriptors sent with it. `Ok(None)`: the other end
    /// closed the connection.
    pub fn recv(&self) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
        let mut bytes = vec![0u8; MAX_MESSAGE];
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = rustix::net::recvmsg(
            &self.fd,
            &mut [IoSliceMut::new(&mut bytes)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        let mut fds = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        if got.bytes == 0 && fds.is_empty() {
            return Ok(None);
        }
        if got.flags.contains(rustix::net::ReturnFlags::TRUNC)
            || got.flags.contains(rustix::net::ReturnFlags::CTRUNC)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "control message larger than allowed",
            ));
        }
        bytes.truncate(got.bytes);
        Ok(Some((bytes, fds)))
    }

    /// Waits for at most `timeout` for a message (`None`: for ever).
    pub fn set_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        rustix::net::sockopt::set_socket_timeout(
            &self.fd,
            rustix::net::sockopt::Timeout::Recv,
            timeout,
        )?;
        Ok(())
    }
}

impl AsFd for SeqPacket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsFd for SeqPacketListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_message_carries_descriptors_that_work_on_the_other_side() {
        let dir = std::env::temp_dir().join(format!("ringws-seqpacket-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control");
        let listener = SeqPacketListener::bind(&path).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "owner-only");
        let client = SeqPacket::connect(&path).unwrap();
        let (server, uid) = listener.accept().unwrap();
        assert_eq!(uid, my_uid());
        // One end of a socket pair travels; what is written to its copy arrives at the other.
        let (mut read, write) = std::os::unix::net::UnixStream::pair().unwrap();
        client.send(b"one", &[write.as_fd()]).unwrap();
        drop(write);
        client.send(b"two", &[]).unwrap();
        let (bytes, fds) = server.recv().unwrap().unwrap();
        assert_eq!((bytes.as_slice(), fds.len()), (&b"one"[..], 1));
        let mut copy = std::os::unix::net::UnixStream::from(fds.into_iter().next().unwrap());
        copy.write_all(b"through").unwrap();
        drop(copy);
        let mut got = String::new();
        read.read_to_string(&mut got).unwrap();
        assert_eq!(got, "through");
        // The second message arrives alone, without descriptors; then the end.
        let (bytes, fds) = server.recv().unwrap().unwrap();
        assert_eq!((bytes.as_slice(), fds.len()), (&b"two"[..], 0));
        drop(client);
        assert!(server.recv().unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
