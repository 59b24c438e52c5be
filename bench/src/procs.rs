//! Child processes with deadlines, and the memory of running processes.
//!
//! The baselines are processes (`ssh`, `sftp`, `scp`), so their timing is
//! spawn to exit. Waiting blocks on the child rather than polling it, so a
//! 40 ms command is not measured to a 10 ms poll interval; a watchdog thread
//! kills it if it outlives its deadline, so no loop can hang the benchmark.

use std::io::Read;
use std::process::{Child, Command, Output};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Runs `cmd` as configured (the caller picks its stdio) and returns how
/// long it took from spawn to exit.
///
/// # Errors
///
/// When it cannot be started, exits unsuccessfully (the error quotes its
/// stderr when piped) or is still running after `timeout` (it is killed).
pub fn run_timed(cmd: &mut Command, timeout: Duration) -> Result<Duration> {
    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("cannot run {cmd:?}"))?;
    let output = wait_all(vec![child], timeout).with_context(|| format!("{cmd:?}"))?;
    let elapsed = start.elapsed();
    check(cmd, &output[0])?;
    Ok(elapsed)
}

/// Runs every command at once and returns how long it took until the last
/// one exited.
///
/// # Errors
///
/// As [`run_timed`], for any of them; on a spawn failure the ones already
/// started are killed.
pub fn run_all_timed(cmds: &mut [Command], timeout: Duration) -> Result<Duration> {
    let start = Instant::now();
    let mut children = Vec::with_capacity(cmds.len());
    for cmd in cmds.iter_mut() {
        match cmd.spawn() {
            Ok(child) => children.push(child),
            Err(e) => {
                for child in &mut children {
                    // Already gone is fine: it is being cleaned up anyway.
                    drop(child.kill());
                }
                drop(wait_all(children, timeout));
                return Err(e).with_context(|| format!("cannot run {cmd:?}"));
            }
        }
    }
    let outputs = wait_all(children, timeout)?;
    let elapsed = start.elapsed();
    for (cmd, output) in cmds.iter().zip(&outputs) {
        check(cmd, output)?;
    }
    Ok(elapsed)
}

fn check(cmd: &Command, output: &Output) -> Result<()> {
    if !output.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Waits for every child (reading any piped output), killing all of them if
/// the deadline passes first.
///
/// Piped output is read to its end before the child is waited for, one
/// child after another: fine for the few lines `ssh` writes to stderr, not
/// for bulk output, which callers send to a file or `/dev/null`.
fn wait_all(children: Vec<Child>, timeout: Duration) -> Result<Vec<Output>> {
    // Pids the watchdog may still kill: a pid leaves this list, under its
    // lock, before its process is reaped, so a kill never reaches a reused
    // pid.
    let unreaped = Arc::new(Mutex::new(
        children.iter().map(Child::id).collect::<Vec<_>>(),
    ));
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = {
        let unreaped = unreaped.clone();
        thread::spawn(move || {
            let expired = matches!(
                finished.recv_timeout(timeout),
                Err(RecvTimeoutError::Timeout)
            );
            if expired {
                for &pid in lock(&unreaped).iter() {
                    kill(pid);
                }
            }
            expired
        })
    };
    let outputs: Result<Vec<Output>> = children
        .into_iter()
        .map(|child| reap(child, &unreaped))
        .collect();
    drop(done);
    let expired = watchdog
        .join()
        .map_err(|_| anyhow::anyhow!("the watchdog thread panicked"))?;
    if expired {
        bail!("did not finish within {timeout:?}; killed");
    }
    outputs
}

fn reap(mut child: Child, unreaped: &Mutex<Vec<u32>>) -> Result<Output> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_end(&mut stdout)
            .context("read a child's stdout")?;
    }
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_end(&mut stderr)
            .context("read a child's stderr")?;
    }
    wait_exited(child.id())?;
    lock(unreaped).retain(|&pid| pid != child.id());
    let status = child.wait().context("reap a child")?;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Blocks until child `pid` has exited, leaving it unreaped (a zombie that
/// still holds its pid).
fn wait_exited(pid: u32) -> Result<()> {
    let id = libc::id_t::from(pid);
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is valid for writes; WNOWAIT leaves the child
        // unreaped for `Child::wait`.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                id,
                &raw mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).with_context(|| format!("wait for pid {pid}"));
        }
    }
}

/// The pid list stays consistent even if a thread panicked holding it: it
/// is only ever shortened.
fn lock(pids: &Mutex<Vec<u32>>) -> std::sync::MutexGuard<'_, Vec<u32>> {
    pids.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// SIGKILL to a child that is past its deadline; see `wait_all` for why the
/// pid is still its own.
fn kill(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the most that was ever resident at once.
    pub peak_kib: u64,
}

impl Memory {
    /// # Errors
    ///
    /// When the process is gone or the file lacks the fields.
    pub fn of(pid: u32) -> Result<Memory> {
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
        Ok(Memory {
            rss_kib: kib_field(&status, "VmRSS:").with_context(|| format!("VmRSS in {path}"))?,
            peak_kib: kib_field(&status, "VmHWM:").with_context(|| format!("VmHWM in {path}"))?,
        })
    }
}

/// The proportional set size of a process: its private pages plus its share
/// of pages it shares (libraries, copy-on-write pages from a fork). Summed
/// over processes it counts every page once, so it is the fair memory cost
/// of one process among many alike.
///
/// # Errors
///
/// When the process is gone or the kernel lacks `smaps_rollup` (before 4.14).
pub fn pss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    kib_field(&text, "Pss:").with_context(|| format!("Pss in {path}"))
}

/// The number in a `Key:   1234 kB` line.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    #[test]
    fn own_memory_is_readable() {
        let m = Memory::of(std::process::id()).unwrap();
        assert!(m.rss_kib > 0 && m.peak_kib >= m.rss_kib, "{m:?}");
        assert!(pss_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn kib_fields_parse() {
        assert_eq!(
            kib_field("Name:\tx\nVmRSS:\t  1234 kB\n", "VmRSS:"),
            Some(1234)
        );
        assert_eq!(kib_field("VmRSS:\n", "VmRSS:"), None);
    }

    #[test]
    fn failures_and_hangs_are_errors() {
        let err = run_timed(
            Command::new("sh")
                .args(["-c", "echo oops >&2; exit 3"])
                .stderr(Stdio::piped()),
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("oops"), "{err:#}");
        let err =
            run_timed(Command::new("sleep").arg("10"), Duration::from_millis(100)).unwrap_err();
        assert!(format!("{err:#}").contains("killed"), "{err:#}");
        let mut both = [Command::new("true"), Command::new("true")];
        assert!(run_all_timed(&mut both, Duration::from_secs(10)).is_ok());
    }
}
