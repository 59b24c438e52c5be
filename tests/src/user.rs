//! The local accounts tests log in as: root, and an ordinary user so that
//! tests see what a non-root remote account sees (home dir, permissions,
//! OpenSSH's root-only quirks not applying).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use rand::Rng;

use crate::process::{is_root, run_checked};

/// Serialises creating the user and setting its password between test
/// processes (two `cargo test` runs, a benchmark beside a test run).
const LOCK_FILE: &str = "/tmp/sshmcp-test-user.lock";

/// The ordinary account tests log in as, with a password this process chose.
///
/// # The password belongs to this process
///
/// [`TestUser::ensure`] sets a fresh random password once per process, and
/// every test in the process sees that same one. Another process calling
/// `ensure` later replaces it, which would break password logins here.
/// That is fine because cargo runs test binaries one after another (only
/// tests within one binary run in parallel); do not run two test or
/// benchmark processes that log in with the password at the same time.
pub struct TestUser {
    password: String,
    home: PathBuf,
}

static TEST_USER: OnceLock<Option<TestUser>> = OnceLock::new();

impl TestUser {
    pub const NAME: &'static str = "sshmcp-test";

    /// Creates the user `sshmcp-test` with a home dir if it does not exist
    /// and sets its password; the first call in a process does the work,
    /// later ones return the same user.
    ///
    /// Returns `None` when not running as root, which creating users needs.
    /// Tests that log in as this user need root; they should call
    /// [`TestUser::require`] so that they fail saying so, rather than pass
    /// without testing anything.
    ///
    /// # Panics
    ///
    /// When `useradd`, `chpasswd` or `getent` fail.
    pub fn ensure() -> Option<&'static TestUser> {
        TEST_USER
            .get_or_init(|| is_root().then(Self::create))
            .as_ref()
    }

    /// [`TestUser::ensure`] for tests that cannot run without the user.
    ///
    /// # Panics
    ///
    /// When not running as root.
    pub fn require() -> &'static TestUser {
        Self::ensure().unwrap_or_else(|| {
            panic!(
                "this test needs root to create the user {}; run the suite as root (CI does)",
                Self::NAME
            )
        })
    }

    /// The login name, [`TestUser::NAME`].
    pub fn name(&self) -> &'static str {
        Self::NAME
    }

    /// The password this process set; see the type's docs.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The user's home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    fn create() -> TestUser {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            // /tmp is world-writable: do not follow a planted symlink.
            .custom_flags(libc::O_NOFOLLOW)
            .open(LOCK_FILE)
            .unwrap_or_else(|e| panic!("open {LOCK_FILE}: {e}"));
        // SAFETY: flock on a descriptor we own; it is released when `lock`
        // is closed at the end of this function.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            panic!("lock {LOCK_FILE}: {}", std::io::Error::last_os_error());
        }

        let exists = Command::new("id")
            .arg("-u")
            .arg(Self::NAME)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run id: {e}"))
            .success();
        if !exists {
            run_checked(Command::new("useradd").args(["-m", "-s", "/bin/bash", Self::NAME]));
        }

        let password: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(24)
            .map(char::from)
            .collect();
        set_password(Self::NAME, &password);

        // getent passwd: name:x:uid:gid:gecos:home:shell
        let entry = run_checked(Command::new("getent").args(["passwd", Self::NAME]));
        let home = entry
            .trim_end()
            .split(':')
            .nth(5)
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| panic!("no home dir in passwd entry {entry:?}"));
        drop(lock);
        TestUser {
            password,
            home: PathBuf::from(home),
        }
    }
}

/// Sets a password through `chpasswd`'s stdin, so it never shows up in a
/// process listing. This also unlocks an account `useradd` left locked,
/// which sshd without PAM would refuse even for key logins.
fn set_password(user: &str, password: &str) {
    let mut child = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run chpasswd: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(format!("{user}:{password}\n").as_bytes())
        .unwrap_or_else(|e| panic!("write to chpasswd: {e}"));
    drop(stdin);
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for chpasswd: {e}"));
    assert!(
        out.status.success(),
        "chpasswd failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The name of the user running the tests: the default remote user when a
/// test connects without naming one.
pub fn current_user_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| run_checked(Command::new("id").arg("-un")).trim().to_owned())
}
