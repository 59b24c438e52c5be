//! A sandbox for the daemon and the shim: a temp dir standing in for the
//! user's home, runtime, state and config dirs, so nothing a test starts
//! reads or writes the real user's files or finds the real user's daemon.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sshmcp_proto::rendezvous::{LOG_FILE, SOCKET_ENV, SOCKET_FILE};
use tempfile::TempDir;

use crate::process::{bin_path, read_lossy, show_if_panicking, signal};
use crate::user::current_user_name;
use crate::wait::{pid_alive, wait_until};

/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
/// How long a stray daemon gets to exit on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Variables passed through from the test runner: the tools a daemon spawns
/// must be found, and logging and backtraces help debug a failing test.
const PASS_THROUGH: [&str; 3] = ["PATH", "RUST_LOG", "RUST_BACKTRACE"];

/// One sandbox: `<tmp>/home` is `HOME`, `<tmp>/run` (0700) is
/// `XDG_RUNTIME_DIR` and holds the socket, `<tmp>/state` is
/// `XDG_STATE_HOME` (the daemon's log), `<tmp>/config` is
/// `XDG_CONFIG_HOME`.
///
/// `HOME` starts empty: the daemon creates `~/.ssh/known_hosts` itself, and
/// tests check that it does.
///
/// Dropping an `Env` stops any daemon still answering on its socket, such as
/// one the shim auto-started, which is no child of the test. Declare the
/// `Env` before the fixtures that borrow it, so they are dropped first.
pub struct Env {
    dir: TempDir,
    sshmcpd: PathBuf,
    /// Set with [`Env::set_var`]; they come last, so they win.
    extra: Vec<(OsString, OsString)>,
}

impl Env {
    /// Creates the sandbox.
    ///
    /// # Panics
    ///
    /// When the dirs cannot be created, the socket path would not fit in a
    /// `sockaddr_un` (a long `$TMPDIR`), or `sshmcpd` is not built.
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("sshmcp-env-")
            .tempdir()
            .expect("create the sandbox temp dir");
        let env = Env {
            dir,
            sshmcpd: bin_path("sshmcpd"),
            extra: Vec::new(),
        };
        for sub in ["home", "run", "state", "config"] {
            let path = env.dir().join(sub);
            fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        }
        let socket = env.socket();
        assert!(
            socket.as_os_str().len() <= MAX_SOCKET_PATH,
            "socket path {} is too long for a Unix socket; set TMPDIR to a shorter dir",
            socket.display()
        );
        env
    }

    /// The sandbox's root dir; a place for a test's own files too.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The sandbox `HOME`.
    pub fn home(&self) -> PathBuf {
        self.dir().join("home")
    }

    /// `$SSHMCP_SOCKET`: where the daemon listens.
    pub fn socket(&self) -> PathBuf {
        self.dir().join("run").join(SOCKET_FILE)
    }

    /// Where the daemon writes its log: `$XDG_STATE_HOME/sshmcp/sshmcpd.log`.
    pub fn daemon_log_path(&self) -> PathBuf {
        self.dir().join("state").join("sshmcp").join(LOG_FILE)
    }

    /// The daemon's log so far; empty if it has written none.
    pub fn daemon_log(&self) -> String {
        read_lossy(&self.daemon_log_path())
    }

    /// The whole environment of a child process in this sandbox. It is a
    /// complete list, not additions: nothing else of the runner's
    /// environment (its `XDG_*`, `SSH_AUTH_SOCK`, `SSHMCP_*`) may leak in.
    pub fn vars(&self) -> Vec<(OsString, OsString)> {
        let user = OsString::from(current_user_name());
        let mut vars: Vec<(OsString, OsString)> = vec![
            ("HOME".into(), self.home().into()),
            ("USER".into(), user.clone()),
            ("LOGNAME".into(), user),
            ("XDG_RUNTIME_DIR".into(), self.dir().join("run").into()),
            ("XDG_STATE_HOME".into(), self.dir().join("state").into()),
            ("XDG_CONFIG_HOME".into(), self.dir().join("config").into()),
            (SOCKET_ENV.into(), self.socket().into()),
            ("SSHMCPD_BIN".into(), self.sshmcpd.clone().into()),
        ];
        vars.extend(
            PASS_THROUGH
                .iter()
                .filter_map(|k| std::env::var_os(k).map(|v| (OsString::from(k), v))),
        );
        vars.extend(self.extra.iter().cloned());
        vars
    }

    /// Sets `key` for every process started in this sandbox from now on
    /// (not for those already running): `SSH_AUTH_SOCK` for a shim but not
    /// the daemon started before it, `SSHMCP_LOG` for a daemon.
    pub fn set_var(&mut self, key: impl Into<OsString>, value: impl Into<OsString>) {
        let key = key.into();
        self.extra.retain(|(k, _)| *k != key);
        self.extra.push((key, value.into()));
    }

    /// A command for `program` with exactly this sandbox's environment and
    /// the sandbox `HOME` as working dir.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear().envs(self.vars()).current_dir(self.home());
        cmd
    }

    /// The pid of the process listening on the socket, if one answers.
    ///
    /// The kernel records who listens on a Unix socket (`SO_PEERCRED`), so
    /// this finds a daemon the shim auto-started without trusting anything
    /// the daemon says.
    pub fn daemon_pid(&self) -> Option<u32> {
        let stream = UnixStream::connect(self.socket()).ok()?;
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = libc::socklen_t::try_from(size_of::<libc::ucred>()).ok()?;
        // SAFETY: `cred` and `len` are valid for writes and `len` holds
        // `cred`'s size, as SO_PEERCRED requires.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&raw mut cred).cast(),
                &raw mut len,
            )
        };
        if rc != 0 {
            return None;
        }
        u32::try_from(cred.pid).ok().filter(|&pid| pid != 0)
    }
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // A listener in this very process (a test's fake daemon) is not ours
        // to signal.
        if let Some(pid) = self.daemon_pid().filter(|&p| p != std::process::id()) {
            stop_pid(pid);
        }
        show_if_panicking("sshmcpd log", &self.daemon_log());
    }
}

/// Stops a process that is not our child, so cannot be waited for: SIGTERM,
/// then SIGKILL if it lingers.
fn stop_pid(pid: u32) {
    signal(pid, libc::SIGTERM);
    let what = format!("daemon pid {pid} to exit");
    if wait_until(STOP_GRACE, &what, || !pid_alive(pid)).is_err() {
        signal(pid, libc::SIGKILL);
        if let Err(e) = wait_until(STOP_GRACE, &what, || !pid_alive(pid)) {
            eprintln!("sandbox: {e}");
        }
    }
}
