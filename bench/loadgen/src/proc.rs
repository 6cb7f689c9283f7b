//! Reading a server's memory and CPU time from `/proc`, and raising our own
//! file-descriptor limit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `VmRSS` of `pid` in KiB, or `None` if the process is gone or unreadable.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// User + system CPU time of `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after the last ')' are fixed.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / if hz > 0.0 { hz } else { 100.0 })
}

/// Whole-machine CPU time from /proc/stat, in seconds: (user + nice + system
/// over all cores, steal). Busy time minus the server's and our own is what
/// other processes took during a run; steal is what the hypervisor took.
pub fn machine_cpu_seconds() -> Option<(f64, f64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let hz = if hz > 0.0 { hz } else { 100.0 };
    let busy = f.first()? + f.get(1)? + f.get(2)?;
    let steal = f.get(7).copied().unwrap_or(0.0);
    Some((busy / hz, steal / hz))
}

/// Our own CPU time (user + system) in seconds.
pub fn self_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id()).unwrap_or(0.0)
}

/// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
// `rlim_t` is `u64` on Linux x86_64 but not on every target: keep the cast.
#[allow(clippy::unnecessary_cast)]
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur as u64
}

/// Samples a process's RSS in the background and keeps the peak.
pub struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<async_std::task::JoinHandle<()>>,
}

impl RssSampler {
    /// Starts sampling `pid` every `every` (no-op sampler when `pid` is `None`).
    pub fn start(pid: Option<u32>, every: Duration) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = pid.map(|pid| {
            let (peak, stop) = (peak.clone(), stop.clone());
            async_std::task::spawn(async move {
                // Bounded: stops when told, or when the process is gone.
                while !stop.load(Ordering::Relaxed) {
                    match rss_kib(pid) {
                        Some(v) => {
                            peak.fetch_max(v, Ordering::Relaxed);
                        }
                        None => break,
                    }
                    async_std::task::sleep(every).await;
                }
            })
        });
        RssSampler { peak, stop, handle }
    }

    /// Peak RSS seen so far, in KiB.
    pub fn peak_kib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Stops sampling and returns the peak in KiB.
    pub async fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.await;
        }
        self.peak_kib()
    }
}
