//! The daemon under test as a child process, and its command-line client.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::env::Env;
use crate::process::{
    bin_path, output_with_timeout, read_lossy, show_if_panicking, stop_in_drop, terminate,
};
use crate::wait::wait_until;

const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a graceful shutdown (closing sessions, removing the socket).
const STOP_GRACE: Duration = Duration::from_secs(10);
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// Numbers each spawned process's output file, so a daemon restarted in the
/// same sandbox does not overwrite its predecessor's output.
static SPAWNED: AtomicUsize = AtomicUsize::new(0);

/// `sshmcpd serve` in a sandbox, started by the test; stopped when dropped,
/// even when the test panics.
pub struct Daemon {
    child: Child,
    /// stdout and stderr together; the daemon's own log is in the sandbox.
    output: PathBuf,
}

impl Daemon {
    /// Starts `sshmcpd serve` in `env` and returns once the sandbox socket
    /// accepts connections and the process listening on it is this one, not
    /// some other daemon that already held the socket.
    ///
    /// # Panics
    ///
    /// When the daemon exits or is not accepting within 10 s; the message
    /// includes its output and log.
    pub fn start(env: &Env) -> Daemon {
        let output = env.dir().join(format!(
            "sshmcpd-serve.{}.out",
            SPAWNED.fetch_add(1, Ordering::Relaxed)
        ));
        let file =
            File::create(&output).unwrap_or_else(|e| panic!("create {}: {e}", output.display()));
        let stderr = file.try_clone().expect("duplicate the output file handle");
        let child = env
            .command(bin_path("sshmcpd"))
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sshmcpd serve: {e}"));
        // From here on, Drop stops the daemon whatever happens.
        let mut daemon = Daemon { child, output };
        let pid = daemon.pid();
        let mut exited = None;
        let ready = wait_until(START_TIMEOUT, "the daemon socket to accept", || {
            match daemon.child.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => {
                    exited = Some(status.to_string());
                    return true;
                }
                Err(e) => {
                    exited = Some(format!("cannot be waited for: {e}"));
                    return true;
                }
            }
            env.daemon_pid() == Some(pid)
        });
        if let Some(how) = exited {
            panic!(
                "sshmcpd serve exited during startup ({how}).\noutput:\n{}\nlog:\n{}",
                daemon.output(),
                env.daemon_log()
            );
        }
        if let Err(e) = ready {
            panic!(
                "sshmcpd serve: {e}.\noutput:\n{}\nlog:\n{}",
                daemon.output(),
                env.daemon_log()
            );
        }
        daemon
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the daemon wrote to stdout and stderr; its log proper is
    /// [`Env::daemon_log`].
    pub fn output(&self) -> String {
        read_lossy(&self.output)
    }

    /// Waits for the daemon to exit on its own, as after `sshmcpd stop`.
    ///
    /// # Panics
    ///
    /// When it is still running after `timeout` (`Drop` then stops it).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut status = None;
        let exited = wait_until(timeout, "the daemon to exit", || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        match (status, exited) {
            (Some(status), _) => status,
            (None, result) => panic!(
                "sshmcpd pid {}: {}.\noutput:\n{}",
                self.pid(),
                result
                    .err()
                    .map_or_else(|| "cannot be waited for".to_owned(), |e| e.to_string()),
                self.output()
            ),
        }
    }

    /// Sends SIGTERM and waits for a graceful exit, for tests of what the
    /// daemon does on shutdown.
    ///
    /// # Panics
    ///
    /// When it cannot be signalled or waited for. A daemon still running
    /// after 10 s is killed, and the returned status shows SIGKILL.
    pub fn terminate(&mut self) -> ExitStatus {
        terminate(&mut self.child, STOP_GRACE)
            .unwrap_or_else(|e| panic!("stop sshmcpd pid {}: {e}", self.pid()))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        stop_in_drop(&mut self.child, "sshmcpd", STOP_GRACE);
        show_if_panicking("sshmcpd output", &self.output());
    }
}

/// Runs `sshmcpd ARGS...` (`status --json`, `stop`, ...) in `env` and
/// returns its output, whatever its exit status.
///
/// # Panics
///
/// When it cannot be run or takes longer than 30 s.
pub fn run_cli(env: &Env, args: &[&str]) -> Output {
    output_with_timeout(env.command(bin_path("sshmcpd")).args(args), CLI_TIMEOUT)
}
