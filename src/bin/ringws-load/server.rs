//! The server process seen through `/proc`: CPU time and resident memory.
//!
//! CPU time comes from `/proc/PID/task/*/schedstat` (first field, nanoseconds on CPU), summed
//! over threads: tick-based counters in `/proc/PID/stat` read far too low on these VMs.

use std::fs;
use std::io;

/// A process to sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Its PID.
    pub pid: u32,
}

impl Probe {
    /// This process (to report the load tool's own cost).
    pub fn this_process() -> Self {
        Self {
            pid: std::process::id(),
        }
    }

    /// Nanoseconds on CPU so far, summed over the live threads.
    pub fn cpu_ns(&self) -> io::Result<u64> {
        let mut total = 0u64;
        for entry in fs::read_dir(format!("/proc/{}/task", self.pid))? {
            let path = entry?.path().join("schedstat");
            // A thread may exit between the listing and the read.
            let Ok(text) = fs::read_to_string(path) else {
                continue;
            };
            total += parse_schedstat(&text).unwrap_or(0);
        }
        Ok(total)
    }

    /// Resident set size in bytes (VmRSS).
    pub fn rss_bytes(&self) -> io::Result<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        parse_vm_rss(&status)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS line"))
    }
}

/// The first field of a schedstat line: time on CPU in nanoseconds.
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().next()?.parse().ok()
}

/// The `VmRSS:` line of `/proc/PID/status`, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut fields = line["VmRSS:".len()..].split_ascii_whitespace();
    let kb: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") | None => Some(kb * 1024),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_text() {
        assert_eq!(parse_schedstat("123456789 2000 17\n"), Some(123_456_789));
        assert_eq!(parse_schedstat(""), None);
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    4242 kB\nThreads: 1\n";
        assert_eq!(parse_vm_rss(status), Some(4242 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let p = Probe::this_process();
        assert!(p.cpu_ns().unwrap() > 0);
        assert!(p.rss_bytes().unwrap() > 0);
    }
}
