//! A real OpenSSH `ssh-agent` per test, and the key files tests log in with:
//! the daemon must work with the agent and keys users really have, not with
//! what sshmcp writes itself.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{run_checked, stop_in_drop};

/// `ssh-agent -D` on a socket in its own temp dir; killed when dropped.
///
/// The runner's own `SSH_AUTH_SOCK` is never used: tests hand this socket
/// to exactly the processes that should see it.
pub struct Agent {
    child: Child,
    /// Holds the socket; removed after the agent is killed.
    dir: TempDir,
}

impl Agent {
    /// Starts an agent and returns once its socket accepts connections
    /// (ssh-agent prints its environment lines after binding the socket).
    ///
    /// # Panics
    ///
    /// When ssh-agent cannot be run or exits before it is ready.
    pub fn start() -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("sshmcp-agent-")
            .tempdir()
            .expect("create the agent temp dir");
        let socket = dir.path().join("agent.sock");
        let mut child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run ssh-agent (is openssh-client installed?): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut first = String::new();
        let ready = BufReader::new(stdout).read_line(&mut first);
        let mut agent = Agent { child, dir };
        assert!(
            matches!(ready, Ok(n) if n > 0) && first.contains("SSH_AUTH_SOCK="),
            "ssh-agent did not start: {ready:?} {first:?}"
        );
        assert!(
            agent.socket().exists(),
            "ssh-agent printed {first:?} but made no socket"
        );
        agent.child.stdout = None;
        agent
    }

    /// The agent's socket, for `SSH_AUTH_SOCK`.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    /// `ssh-add KEY`: the key must not be encrypted (ssh-add would prompt).
    ///
    /// # Panics
    ///
    /// When ssh-add fails.
    pub fn add(&self, key: &Path) {
        run_checked(
            Command::new("ssh-add")
                .arg("-q")
                .arg(key)
                .env_clear()
                .env("SSH_AUTH_SOCK", self.socket()),
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        stop_in_drop(&mut self.child, "ssh-agent", Duration::ZERO);
    }
}

/// Makes a new key pair of `kind` (an `ssh-keygen -t` type) at `path`,
/// encrypted with `passphrase` when it is not empty; returns the public
/// key's path. The private key is 0600, as OpenSSH writes it.
///
/// # Panics
///
/// When ssh-keygen fails.
pub fn keygen(path: &Path, kind: &str, passphrase: &str) -> PathBuf {
    run_checked(
        Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                kind,
                "-N",
                passphrase,
                "-C",
                "sshmcp-tests",
                "-f",
            ])
            .arg(path),
    );
    let mut public = path.as_os_str().to_owned();
    public.push(".pub");
    PathBuf::from(public)
}

/// Signs the public key `public` with the CA private key `ca` as a user
/// certificate for `principals` (a comma list); returns the certificate's
/// path, `<key>-cert.pub` beside the key, where `ssh` looks for it.
///
/// # Panics
///
/// When ssh-keygen fails.
pub fn sign_user_key(ca: &Path, public: &Path, principals: &str) -> PathBuf {
    run_checked(
        Command::new("ssh-keygen")
            .args(["-q", "-I", "sshmcp-tests", "-n", principals, "-s"])
            .arg(ca)
            .arg(public),
    );
    let text = public.to_string_lossy();
    PathBuf::from(format!(
        "{}-cert.pub",
        text.strip_suffix(".pub").unwrap_or(&text)
    ))
}
