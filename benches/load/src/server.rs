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

/// The whole machine's CPU accounting from `/proc/stat`, for the share other processes used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineCpu {
    /// Busy time over all CPUs (user, nice, system, irq, softirq), ns.
    pub busy_ns: u64,
    /// Time stolen by the hypervisor over all CPUs, ns.
    pub steal_ns: u64,
    /// CPUs.
    pub cpus: u64,
}

/// What other processes (and the hypervisor) took during a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OthersShare {
    /// Busy time of processes other than the server and the load tool, % of all CPUs.
    pub others_percent: f64,
    /// Stolen time, % of all CPUs.
    pub steal_percent: f64,
}

impl MachineCpu {
    /// Reads `/proc/stat`.
    pub fn read() -> io::Result<Self> {
        let text = fs::read_to_string("/proc/stat")?;
        parse_proc_stat(&text)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no cpu line"))
    }

    /// The share of `after - self` not spent by `ours_ns` (server and load tool), over `secs`.
    pub fn others_since(
        &self,
        before: &MachineCpu,
        ours_ns: u64,
        secs: f64,
    ) -> Option<OthersShare> {
        let all = secs * 1e9 * self.cpus.max(1) as f64;
        if all <= 0.0 {
            return None;
        }
        let busy = self
            .busy_ns
            .saturating_sub(before.busy_ns)
            .saturating_sub(ours_ns);
        let steal = self.steal_ns.saturating_sub(before.steal_ns);
        Some(OthersShare {
            others_percent: busy as f64 / all * 100.0,
            steal_percent: steal as f64 / all * 100.0,
        })
    }
}

/// The aggregate `cpu` line of `/proc/stat` (in USER_HZ ticks, 100 per second on Linux) and
/// the count of `cpuN` lines.
pub fn parse_proc_stat(text: &str) -> Option<MachineCpu> {
    const NS_PER_TICK: u64 = 10_000_000;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let get = |i: usize| f.get(i).copied().unwrap_or(0);
    let busy = get(0) + get(1) + get(2) + get(5) + get(6);
    let cpus = text
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    Some(MachineCpu {
        busy_ns: busy * NS_PER_TICK,
        steal_ns: get(7) * NS_PER_TICK,
        cpus: cpus as u64,
    })
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
    fn proc_stat_busy_steal_and_cpus() {
        let text = "cpu  100 5 50 1000 7 3 2 9 0 0\ncpu0 50 2 25 500 3 1 1 4 0 0\ncpu1 50 3 25 500 4 2 1 5 0 0\nintr 1\n";
        let m = parse_proc_stat(text).unwrap();
        assert_eq!(m.busy_ns, (100 + 5 + 50 + 3 + 2) * 10_000_000);
        assert_eq!(m.steal_ns, 9 * 10_000_000);
        assert_eq!(m.cpus, 2);
        let before = MachineCpu {
            busy_ns: 0,
            steal_ns: 0,
            cpus: 2,
        };
        let o = m.others_since(&before, 60 * 10_000_000, 1.0).unwrap();
        assert!((o.others_percent - 50.0).abs() < 1e-9, "{o:?}");
    }

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
