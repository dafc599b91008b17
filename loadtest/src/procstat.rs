//! Readings from /proc and getrusage: the server's RSS and CPU (a process and its children, so
//! an nginx master with its workers counts whole), and the generator's own CPU.

use std::fs;

use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sample {
    pub rss_bytes: u64,
    pub cpu_ns: u64,
    /// Processes read (the given pids and their descendants).
    pub processes: u32,
}

/// Sums VmRSS and utime+stime over `pids` and all their descendants. A pid that has gone is
/// skipped: the caller sees it in `processes`.
pub fn sample(pids: &[u32]) -> Sample {
    let mut seen = Vec::new();
    let mut todo: Vec<u32> = pids.to_vec();
    let mut s = Sample::default();
    while let Some(pid) = todo.pop() {
        if seen.contains(&pid) {
            continue;
        }
        seen.push(pid);
        let Some((rss, cpu)) = read_pid(pid) else {
            continue;
        };
        s.rss_bytes += rss;
        s.cpu_ns += cpu;
        s.processes += 1;
        todo.extend(children(pid));
    }
    s
}

fn read_pid(pid: u32) -> Option<(u64, u64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some((rss_kb * 1024, cpu_from_stat(&stat)?))
}

/// utime + stime from a /proc/PID/stat line, in nanoseconds. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last ')'.
fn cpu_from_stat(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 1_000_000_000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn children(pid: u32) -> Vec<u32> {
    // /proc/PID/task/TID/children lists each thread's children; read them all.
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(list) = fs::read_to_string(t.path().join("children")) {
            out.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// This process's CPU time (user + system) in nanoseconds.
pub fn self_cpu_ns() -> u64 {
    rusage_cpu_ns(libc::RUSAGE_SELF).0
}

/// (CPU ns, max RSS KiB) for `who`.
pub fn rusage_cpu_ns(who: libc::c_int) -> (u64, u64) {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return (0, 0);
    }
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    (tv(ru.ru_utime) + tv(ru.ru_stime), ru.ru_maxrss as u64)
}

/// Raises the open-file soft limit to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return want.rlim_cur as u64;
            }
        }
        lim.rlim_cur as u64
    }
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line =
            "42 (we ird) name)) S 1 42 42 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 3 0 100 0 0";
        assert_eq!(
            cpu_from_stat(line),
            Some(400 * 1_000_000_000 / clock_ticks())
        );
    }

    #[test]
    fn own_process_is_sampled() {
        let s = sample(&[std::process::id()]);
        assert_eq!(s.processes, 1);
        assert!(s.rss_bytes > 0);
        assert_eq!(sample(&[u32::MAX - 1]).processes, 0);
    }
}
