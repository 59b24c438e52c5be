//! Waiting for conditions that announce themselves with no event.
//!
//! Prefer a real event (a line on a pipe, a socket accepting, a response on
//! stdout). Some conditions have none a test can block on, such as "this
//! process is gone" for a process that is not our child; for those, poll with
//! a short interval against a deadline, never a bare sleep.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// How often [`wait_until`] re-checks. Short enough to keep tests fast, long
/// enough not to burn a core while a daemon starts.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Polls `condition` until it holds or `timeout` passes.
///
/// `what` names the condition for the error message ("daemon pid 42 gone").
///
/// # Errors
///
/// When the condition still does not hold after `timeout`.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Whether process `pid` is running.
///
/// A zombie counts as gone: it has stopped, and a process we are not the
/// parent of (an auto-started daemon) may stay a zombie until its parent or
/// init reaps it, which `kill(pid, 0)` would report as alive.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat"))
    else {
        return false;
    };
    // The command name in parentheses may itself contain ") ", so the state
    // is the field after the last ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    state.is_some_and(|s| s != "Z" && s != "X")
}

/// Pids of processes whose command line contains `marker`: how tests see
/// remote commands, which run under the fixture sshd on this machine.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .contains(marker)
                .then_some(pid)
        })
        .collect()
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
///
/// # Panics
///
/// When the process or the field is missing.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn zombie_and_reaped_children_are_not_alive() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        wait_until(Duration::from_secs(10), "child to exit", || !pid_alive(pid)).unwrap();
        child.wait().unwrap();
        assert!(!pid_alive(pid));
        assert!(pid_alive(std::process::id()));
    }

    #[test]
    fn timeout_names_the_condition() {
        let err = wait_until(Duration::from_millis(30), "the impossible", || false).unwrap_err();
        assert!(err.to_string().contains("the impossible"), "{err}");
    }
}
