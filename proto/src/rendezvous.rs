//! Where clients and the daemon meet: the socket path, and the state
//! directory holding the daemon's log. Both sides must compute the same
//! answer from the same environment, so the rule lives here, once.
//!
//! Resolution order for the socket:
//! 1. `$SSHMCP_SOCKET`;
//! 2. `$XDG_RUNTIME_DIR/sshmcp/sshmcpd.sock`;
//! 3. `/run/user/$UID/sshmcp/sshmcpd.sock` when `/run/user/$UID` exists and
//!    belongs to the user (some MCP clients strip `XDG_RUNTIME_DIR` from the
//!    shim's environment, and the shim must still find a systemd-started
//!    daemon);
//! 4. `/tmp/sshmcp-$UID/sshmcpd.sock` (root and many containers have no
//!    runtime dir).
//!
//! Checking that the directory is safe to use is the daemon's job.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

pub const SOCKET_ENV: &str = "SSHMCP_SOCKET";
pub const SOCKET_FILE: &str = "sshmcpd.sock";
pub const LOG_FILE: &str = "sshmcpd.log";

/// The current user's uid.
pub fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The socket path, resolved from the process environment.
pub fn socket_path() -> PathBuf {
    socket_path_from(|k| std::env::var_os(k), current_uid())
}

/// The socket path, resolved from an explicit environment (for tests).
pub fn socket_path_from(env: impl Fn(&str) -> Option<OsString>, uid: u32) -> PathBuf {
    if let Some(p) = env(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(dir) = env("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(dir).join("sshmcp").join(SOCKET_FILE);
    }
    let run_user = PathBuf::from(format!("/run/user/{uid}"));
    if std::fs::metadata(&run_user).is_ok_and(|m| m.is_dir() && m.uid() == uid) {
        return run_user.join("sshmcp").join(SOCKET_FILE);
    }
    PathBuf::from(format!("/tmp/sshmcp-{uid}")).join(SOCKET_FILE)
}

/// The lock file that keeps one daemon per socket and serialises auto-start.
pub fn lock_path(socket: &std::path::Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// The lock clients take while they start a daemon, so that several clients
/// starting at once start one. Separate from [`lock_path`], which the daemon
/// holds for its whole life.
pub fn start_lock_path(socket: &std::path::Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".start.lock");
    PathBuf::from(name)
}

/// `$XDG_STATE_HOME/sshmcp`, else `~/.local/state/sshmcp`: logs and state.
pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(dir).join("sshmcp");
    }
    let home = std::env::var_os("HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local").join("state").join("sshmcp")
}

/// The daemon's log file.
pub fn log_path() -> PathBuf {
    state_dir().join(LOG_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_socket_wins() {
        let p = socket_path_from(
            |k| match k {
                "SSHMCP_SOCKET" => Some("/x/y.sock".into()),
                "XDG_RUNTIME_DIR" => Some("/run/user/5".into()),
                _ => None,
            },
            5,
        );
        assert_eq!(p, PathBuf::from("/x/y.sock"));
    }

    #[test]
    fn runtime_dir_next() {
        let p = socket_path_from(|k| (k == "XDG_RUNTIME_DIR").then(|| "/rt".into()), 5);
        assert_eq!(p, PathBuf::from("/rt/sshmcp/sshmcpd.sock"));
    }

    #[test]
    fn tmp_fallback_is_per_uid() {
        // uid 4000000 has no /run/user directory on any sane machine.
        let p = socket_path_from(|_| None, 4_000_000);
        assert_eq!(p, PathBuf::from("/tmp/sshmcp-4000000/sshmcpd.sock"));
    }

    #[test]
    fn lock_beside_socket() {
        assert_eq!(
            lock_path(std::path::Path::new("/a/s.sock")),
            PathBuf::from("/a/s.sock.lock")
        );
    }
}
