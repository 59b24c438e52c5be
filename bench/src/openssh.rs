//! The baselines users already have: OpenSSH's `ssh` (plain and over a
//! ControlMaster), `sftp` and `scp`, against the same sshd as ours.
//!
//! Every tool gets the same client options: no user config (`-F
//! /dev/null`), the fixture's client key only, and the fixture's host key
//! checked strictly, so no prompt or stray `~/.ssh` file changes what is
//! measured. Options are all `-o` forms, which `ssh`, `sftp` and `scp`
//! accept alike.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use sshmcp_tests::Sshd;

use crate::procs::run_timed;

/// Long enough for any single command here on a loaded machine, short
/// enough that a wedged one does not stall the run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub struct OpenSsh {
    options: Vec<OsString>,
    host: &'static str,
    /// Where control sockets and master logs go.
    dir: PathBuf,
    masters: AtomicUsize,
}

impl OpenSsh {
    /// Clients for `sshd`, logging in as `user`; control sockets go in
    /// `dir`, which must be short enough for a Unix socket path.
    pub fn new(sshd: &Sshd, user: &str, dir: &Path) -> OpenSsh {
        let mut options: Vec<OsString> = vec!["-F".into(), "/dev/null".into()];
        let settings = [
            format!("IdentityFile={}", sshd.client_key().display()),
            "IdentitiesOnly=yes".to_owned(),
            format!("Port={}", sshd.port()),
            format!("User={user}"),
            format!("UserKnownHostsFile={}", sshd.known_hosts_path().display()),
            "GlobalKnownHostsFile=/dev/null".to_owned(),
            "StrictHostKeyChecking=yes".to_owned(),
            "BatchMode=yes".to_owned(),
            "LogLevel=ERROR".to_owned(),
        ];
        for setting in settings {
            options.push("-o".into());
            options.push(setting.into());
        }
        OpenSsh {
            options,
            host: sshd.host(),
            dir: dir.to_owned(),
            masters: AtomicUsize::new(0),
        }
    }

    /// `program` with the common options; stdin and stdout closed, stderr
    /// piped so a failure can say why.
    fn tool(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(&self.options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }

    /// Starts a ControlMaster (`ssh -o ControlMaster=yes -S SOCKET -fN`,
    /// key auth) and returns it with how long it took until `ssh` went to
    /// the background, which it does once the master accepts clients.
    ///
    /// # Errors
    ///
    /// When the master does not start, or does not answer `-O check`.
    pub fn start_master(&self) -> Result<(Master, Duration)> {
        self.start_master_with(&[])
    }

    /// [`OpenSsh::start_master`] with extra `-o` settings, such as another
    /// key exchange.
    ///
    /// # Errors
    ///
    /// As [`OpenSsh::start_master`].
    pub fn start_master_with(&self, settings: &[&str]) -> Result<(Master, Duration)> {
        let n = self.masters.fetch_add(1, Ordering::Relaxed);
        let socket = self.dir.join(format!("cm{n}"));
        let log_path = self.dir.join(format!("cm{n}.log"));
        // The master keeps the stderr it was started with after it forks,
        // so it gets a file: a pipe would never reach EOF.
        let log =
            File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
        let mut cmd = self.tool("ssh");
        for setting in settings {
            cmd.args(["-o", setting]);
        }
        cmd.args(["-o", "ControlMaster=yes", "-S"])
            .arg(&socket)
            .args(["-f", "-N", self.host])
            .stderr(log);
        let elapsed = run_timed(&mut cmd, COMMAND_TIMEOUT).with_context(|| {
            format!(
                "starting an OpenSSH ControlMaster; its log: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            )
        })?;
        let pid = match self.master_pid(&socket) {
            Ok(pid) => pid,
            Err(e) => {
                // It may be running all the same: ask it to go.
                drop(run_timed(
                    &mut self.control(&socket, "exit"),
                    COMMAND_TIMEOUT,
                ));
                return Err(e);
            }
        };
        let master = Master {
            exit: self.control(&socket, "exit"),
            socket,
            pid,
        };
        Ok((master, elapsed))
    }

    /// `n` ControlMasters, started at once: figures that need dozens would
    /// otherwise spend most of their time starting them one by one.
    ///
    /// # Errors
    ///
    /// When any of them fails to start; those that started are stopped.
    pub fn start_masters(&self, n: usize) -> Result<Vec<Master>> {
        thread::scope(|scope| {
            let starting: Vec<_> = (0..n)
                .map(|_| scope.spawn(|| self.start_master().map(|(master, _)| master)))
                .collect();
            starting
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err(anyhow!("starting a ControlMaster panicked")))
                })
                .collect()
        })
    }

    /// `ssh -O <op>` for the master at `socket`.
    fn control(&self, socket: &Path, op: &str) -> Command {
        let mut cmd = self.tool("ssh");
        cmd.arg("-S").arg(socket).args(["-O", op, self.host]);
        cmd
    }

    /// The master's pid, from `ssh -O check` ("Master running (pid=N)").
    fn master_pid(&self, socket: &Path) -> Result<u32> {
        let out = self
            .control(socket, "check")
            .output()
            .context("run ssh -O check")?;
        let text = String::from_utf8_lossy(&out.stderr);
        text.split("pid=")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|pid| pid.parse().ok())
            .with_context(|| format!("ssh -O check did not report a master: {text}"))
    }

    /// `ssh -O check` against `master`: the cost of starting an OpenSSH
    /// client that only talks to its local multiplexer, the counterpart of
    /// the shim's cold start.
    pub fn check(&self, master: &Master) -> Command {
        self.control(&master.socket, "check")
    }

    /// `ssh -S SOCKET host -- COMMAND`: OpenSSH's fastest warm path, a new
    /// channel on the master's open connection.
    pub fn via(&self, master: &Master, command: &str) -> Command {
        let mut cmd = self.tool("ssh");
        cmd.arg("-S")
            .arg(&master.socket)
            .args([self.host, "--", command]);
        cmd
    }

    /// `sftp -b BATCH host`, over `master`'s connection when given (then it
    /// pays for no handshake, as ours transfers on an open session), else
    /// over a connection of its own, as a user types it.
    pub fn sftp(&self, master: Option<&Master>, batch: &Path) -> Command {
        let mut cmd = match master {
            Some(master) => self.muxed("sftp", master),
            None => self.tool("sftp"),
        };
        cmd.arg("-b").arg(batch).arg(self.host);
        cmd
    }

    /// `scp FROM TO` over `master`'s connection; name the remote side with
    /// [`OpenSsh::remote`].
    pub fn scp(&self, master: &Master, from: &str, to: &str) -> Command {
        let mut cmd = self.muxed("scp", master);
        cmd.args([from, to]);
        cmd
    }

    /// `program` told to use `master` (`sftp` and `scp` lack `ssh -S` but
    /// pass `-o` options on to the `ssh` they run).
    fn muxed(&self, program: &str, master: &Master) -> Command {
        let mut cmd = self.tool(program);
        cmd.args(["-o", "ControlMaster=no", "-o"])
            .arg(format!("ControlPath={}", master.socket.display()));
        cmd
    }

    /// `host:path`, scp's name for a remote file.
    pub fn remote(&self, path: &Path) -> String {
        format!("{}:{}", self.host, path.display())
    }
}

/// Whatever path the run took (an error between starting a master and
/// wrapping it, a panic in a figure), no ControlMaster outlives the
/// clients: any process still running with a control socket in `dir` is
/// killed.
impl Drop for OpenSsh {
    fn drop(&mut self) {
        let marker = format!("-S {}/cm", self.dir.display());
        for pid in sshmcp_tests::processes_with(&marker) {
            eprintln!("killing a ControlMaster left running: pid {pid}");
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// A running ControlMaster; asked to exit (`ssh -O exit`) when dropped, and
/// killed if it does not.
pub struct Master {
    socket: PathBuf,
    pid: u32,
    exit: Command,
}

impl Master {
    /// The master process, whose memory figure 5 reads.
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        let Err(e) = run_timed(&mut self.exit, COMMAND_TIMEOUT) else {
            return;
        };
        eprintln!("stopping the ControlMaster pid {}: {e:#}", self.pid);
        // The master forked away from us, so its pid is not ours to trust:
        // kill it only while that pid still runs this master's command line.
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.pid)).unwrap_or_default();
        let ours = String::from_utf8_lossy(&cmdline).contains(&*self.socket.to_string_lossy());
        if ours && let Ok(pid) = libc::pid_t::try_from(self.pid) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Writes an `sftp -b` batch file of one command, such as `put` or `get`,
/// with its two paths quoted.
///
/// # Errors
///
/// When the file cannot be written.
pub fn batch_file(path: &Path, command: &str, from: &Path, to: &Path) -> Result<()> {
    let line = format!("{command} \"{}\" \"{}\"\n", from.display(), to.display());
    std::fs::write(path, line).with_context(|| format!("write {}", path.display()))
}
