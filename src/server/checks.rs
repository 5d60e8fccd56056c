//! Start-up checks: the host limits that cap a server of many connections, each reported with
//! the limit, its value and the fix (sections of `tuning/README.md`).

use super::config::ServerConfig;
use crate::runtime::sys;

/// Raises the soft open-files limit to the hard one, then lists what still caps the server.
pub fn startup_warnings(cfg: &ServerConfig) -> Vec<String> {
    let mut warnings = Vec::new();
    let _ = sys::raise_nofile_limit();
    if let Ok((soft, _)) = sys::nofile_limit() {
        let soft = soft.unwrap_or(u64::MAX);
        if soft < 65_536 {
            warnings.push(format!(
                "RLIMIT_NOFILE is {soft}: at most about {} connections; raise it with \
                 LimitNOFILE= in the service unit or `ulimit -n` (tuning/README.md, \"File descriptors\")",
                soft.saturating_sub(64)
            ));
        }
    }
    if let Some(somaxconn) = sys::sysctl("net/core/somaxconn") {
        if somaxconn < cfg.backlog as u64 {
            warnings.push(format!(
                "net.core.somaxconn is {somaxconn}, below the listen backlog {}: bursts of \
                 connects may be refused; `sysctl -w net.core.somaxconn={}` \
                 (tuning/README.md, \"Accept queue\")",
                cfg.backlog, cfg.backlog
            ));
        }
    }
    // Kernels before 5.12 charge io_uring rings and registered buffers to RLIMIT_MEMLOCK.
    let old_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|r| {
            let mut parts = r.trim().split(['.', '-']).map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??))
        });
    if let (Some(version), Ok((Some(memlock), _))) = (old_kernel, sys::memlock_limit()) {
        let needed = cfg.workers as u64
            * (u64::from(cfg.uring.buf_entries) * u64::from(cfg.uring.buf_size) + (1 << 20));
        if version < (5, 12) && memlock < needed {
            warnings.push(format!(
                "kernel {}.{} charges io_uring memory to RLIMIT_MEMLOCK ({memlock} bytes), below \
                 the ~{needed} bytes the rings need; raise LimitMEMLOCK= (tuning/README.md, \
                 \"Locked memory\")",
                version.0, version.1
            ));
        }
    }
    warnings
}
