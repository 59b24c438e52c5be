//! Finding the binaries under test and the child-process plumbing shared by
//! the fixtures: running a command to completion with a deadline, stopping a
//! child politely then firmly, and showing a fixture's output when a test
//! fails.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::wait::wait_until;

/// The path of a workspace binary (`sshmcpd`, `sshmcp-shim`).
///
/// `$SSHMCPD_BIN` / `$SSHMCP_SHIM_BIN` win, so CI or a benchmark can test an
/// installed build. Otherwise the binary is looked up in the cargo target
/// directory this executable was built into: test executables live in
/// `target/<profile>/deps/`, binaries (such as the benchmark) in
/// `target/<profile>/` beside the product's. Cargo builds another package's
/// binaries only when asked, hence the hint in the panic.
///
/// # Panics
///
/// When the binary is not there.
pub fn bin_path(name: &str) -> PathBuf {
    let var = match name {
        "sshmcpd" => Some("SSHMCPD_BIN"),
        "sshmcp-shim" => Some("SSHMCP_SHIM_BIN"),
        _ => None,
    };
    if let Some(path) = var.and_then(std::env::var_os).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "${} points at {}, which is not a file",
            var.unwrap_or_default(),
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(|dir| {
            if dir.ends_with("deps") {
                dir.parent()
            } else {
                Some(dir)
            }
        })
        .unwrap_or_else(|| {
            panic!(
                "cannot find the cargo target dir from {}: set ${} to the {name} binary",
                exe.display(),
                var.unwrap_or("the matching *_BIN variable"),
            )
        });
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first (same profile as the tests)",
        path.display()
    );
    path
}

/// Whether this process runs as root, which creating users, `/run/sshd` and
/// logging in as someone else need.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `cmd` to completion and returns its stdout, panicking with its
/// stderr when it fails: for setup steps a test cannot go on without.
pub(crate) fn run_checked(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `cmd` with piped stdout and stderr and returns its output; kills it
/// and panics if it takes longer than `timeout`, so a hung CLI fails the test
/// instead of hanging the suite.
pub(crate) fn output_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    // wait_with_output drains both pipes concurrently; it runs on its own
    // thread so this one can keep the deadline.
    thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(timeout) {
        Ok(out) => out.unwrap_or_else(|e| panic!("waiting for {cmd:?}: {e}")),
        Err(_) => {
            // The child is not reaped until the thread's wait returns, so the
            // pid still names it.
            signal(pid, libc::SIGKILL);
            panic!("{cmd:?} did not finish within {timeout:?}; killed it");
        }
    }
}

/// Sends `sig` to `pid`; a process that is already gone is not an error.
pub(crate) fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) };
}

/// Asks `child` to stop with SIGTERM, gives it `grace` to exit, then kills
/// it, and reaps it either way. Returns how it ended.
pub(crate) fn terminate(child: &mut Child, grace: Duration) -> std::io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    signal(child.id(), libc::SIGTERM);
    let exited = wait_until(grace, "exit after SIGTERM", || {
        matches!(child.try_wait(), Ok(Some(_)) | Err(_))
    });
    if exited.is_err() {
        child.kill()?;
    }
    child.wait()
}

/// The stop step of every fixture's `Drop`: errors can only be reported,
/// since panicking in `drop` during an unwind aborts the test binary.
pub(crate) fn stop_in_drop(child: &mut Child, what: &str, grace: Duration) {
    if let Err(e) = terminate(child, grace) {
        eprintln!("{what}: could not stop pid {}: {e}", child.id());
    }
}

/// When the current test is failing, prints a fixture's captured output so
/// the failure report says what the server saw. libtest shows this only for
/// failed tests.
pub(crate) fn show_if_panicking(what: &str, text: &str) {
    if !thread::panicking() {
        return;
    }
    let text = text.trim_end();
    if text.is_empty() {
        eprintln!("----- {what}: empty -----");
    } else {
        eprintln!("----- {what} -----\n{text}\n----- end of {what} -----");
    }
}

/// A text file's content for diagnostics: missing reads as empty, bytes that
/// are not UTF-8 are replaced rather than failing the read.
pub(crate) fn read_lossy(path: &Path) -> String {
    let mut bytes = Vec::new();
    match std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)) {
        Ok(_) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}
