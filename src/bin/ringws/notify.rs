//! The systemd notification protocol (`sd_notify`, `Type=notify`): "READY=1" once the server
//! accepts, with its process id as "MAINPID=": after a live hand-over the new process is the
//! service's main process, and systemd must follow it (the unit says `NotifyAccess=all`), or it
//! would take the old one's exit for the service's end. Without `NOTIFY_SOCKET` (not started
//! by systemd with `Type=notify`) nothing is sent.

use std::os::unix::net::UnixDatagram;

/// Tells the service manager that this process serves and is the service's main process.
pub(crate) fn ready() {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let message = format!("READY=1\nMAINPID={}\n", std::process::id());
    if let Err(e) = send(&socket, message.as_bytes()) {
        tracing::warn!(
            "cannot notify systemd at {} ({e}): with Type=notify it will not see the service start",
            socket.to_string_lossy()
        );
    }
}

fn send(socket: &std::ffi::OsStr, message: &[u8]) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let sender = UnixDatagram::unbound()?;
    let bytes = socket.as_bytes();
    match bytes.strip_prefix(b"@") {
        // An abstract socket (systemd's usual choice).
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sender.send_to_addr(message, &addr)?;
        }
        None => {
            sender.send_to(message, socket)?;
        }
    }
    Ok(())
}
