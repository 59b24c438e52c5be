//! A real OpenSSH server per test, so the daemon is tested against the
//! server it will meet in production rather than a mock.
//!
//! Each [`Sshd`] owns a temp dir with its own host key, a client key pair and
//! an `authorized_keys` file that admits that client key for every user
//! (root and the [`TestUser`](crate::TestUser)). It listens on 127.0.0.1
//! only: tests enable root and password logins, which must never be
//! reachable from another host.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{is_root, run_checked, show_if_panicking, stop_in_drop};

/// Absolute, because sshd re-executes itself for every connection and
/// refuses to start when invoked by a relative path.
const SSHD: &str = "/usr/sbin/sshd";
const HOST: &str = "127.0.0.1";
/// sshd's privilege-separation directory: root-started sshd refuses to run
/// without it, and container images often lack it (systemd creates it).
const PRIVSEP_DIR: &str = "/run/sshd";
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Another process may take the port between our probe and sshd's bind.
const BIND_ATTEMPTS: usize = 5;

/// Keywords the fixture sets itself: it must listen on loopback, on the port
/// it picked, with the host key its accessors describe.
const FIXTURE_KEYWORDS: [&str; 4] = ["ListenAddress", "Port", "HostKey", "PidFile"];

/// Settings fit for tests: root and password logins allowed (the test
/// machine is loopback-only), no PAM (tests run in containers without a PAM
/// stack for sshd), no ownership checks on the temp dir, and room for many
/// parallel connections and channels.
const DEFAULTS: [(&str, &str); 10] = [
    ("UsePAM", "no"),
    ("StrictModes", "no"),
    ("PermitRootLogin", "yes"),
    ("PasswordAuthentication", "yes"),
    ("PubkeyAuthentication", "yes"),
    ("KbdInteractiveAuthentication", "no"),
    ("Subsystem", "sftp internal-sftp"),
    ("LogLevel", "VERBOSE"),
    ("MaxStartups", "100:30:200"),
    ("MaxSessions", "20"),
];

/// An `sshd_config` for a test server: the fixture's defaults plus
/// overrides.
///
/// sshd keeps the *first* value it reads for most keywords, so an override
/// must replace a default rather than follow it: use [`SshdConfig::set`].
/// [`SshdConfig::extra`] appends raw lines after everything else, which is
/// where `Match` blocks must go.
#[derive(Clone, Debug, Default)]
pub struct SshdConfig {
    overrides: Vec<(String, String)>,
    extra: Vec<String>,
    /// `ssh-keygen -t` types of host keys offered after the ed25519 one.
    extra_host_keys: Vec<String>,
    /// CA private key and principals to certify the ed25519 host key with.
    host_certificate: Option<(PathBuf, String)>,
}

impl SshdConfig {
    /// The defaults listed in this module (see `DEFAULTS`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `keyword` to `value`, replacing the default for that keyword
    /// (case-insensitively, as sshd reads them). `AuthorizedKeysFile` may be
    /// overridden like any other.
    ///
    /// # Panics
    ///
    /// For `ListenAddress`, `Port`, `HostKey` and `PidFile`, which the
    /// fixture owns.
    #[must_use]
    pub fn set(mut self, keyword: &str, value: &str) -> Self {
        assert!(
            !FIXTURE_KEYWORDS
                .iter()
                .any(|k| k.eq_ignore_ascii_case(keyword)),
            "the sshd fixture sets {keyword} itself"
        );
        self.overrides
            .retain(|(k, _)| !k.eq_ignore_ascii_case(keyword));
        self.overrides.push((keyword.to_owned(), value.to_owned()));
        self
    }

    /// Appends a raw config line after all settings, for `Match` blocks.
    /// A plain keyword here loses to any earlier setting of it.
    #[must_use]
    pub fn extra(mut self, line: &str) -> Self {
        self.extra.push(line.to_owned());
        self
    }

    /// Gives the server a second host key of `kind` (an `ssh-keygen -t`
    /// type such as `ecdsa`), listed after the ed25519 one. Its public half
    /// is [`Sshd::extra_host_public_key`].
    #[must_use]
    pub fn extra_host_key(mut self, kind: &str) -> Self {
        self.extra_host_keys.push(kind.to_owned());
        self
    }

    /// Makes the server present an OpenSSH host certificate for its ed25519
    /// key, signed by the CA private key `ca_key` and valid for
    /// `principals` (a comma list, as `ssh-keygen -n` takes it).
    #[must_use]
    pub fn host_certificate(mut self, ca_key: &Path, principals: &str) -> Self {
        self.host_certificate = Some((ca_key.to_path_buf(), principals.to_owned()));
        self
    }

    /// Starts an sshd with this configuration; see [`Sshd::start`].
    pub fn start(&self) -> Sshd {
        Sshd::start_with(self)
    }

    fn render(&self, dir: &Path, port: u16) -> String {
        let mut lines = vec![
            format!("ListenAddress {HOST}"),
            format!("Port {port}"),
            format!("HostKey {}", dir.join(HOST_KEY).display()),
            "PidFile none".to_owned(),
        ];
        lines.extend(
            self.extra_host_keys
                .iter()
                .map(|kind| format!("HostKey {}", dir.join(extra_host_key(kind)).display())),
        );
        if self.host_certificate.is_some() {
            lines.push(format!(
                "HostCertificate {}",
                dir.join(format!("{HOST_KEY}-cert.pub")).display()
            ));
        }
        let overridden = |keyword: &str| {
            self.overrides
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(keyword))
        };
        lines.extend(self.overrides.iter().map(|(k, v)| format!("{k} {v}")));
        lines.extend(
            DEFAULTS
                .iter()
                .filter(|(k, _)| !overridden(k))
                .map(|(k, v)| format!("{k} {v}")),
        );
        if !overridden("AuthorizedKeysFile") {
            lines.push(format!(
                "AuthorizedKeysFile {}",
                dir.join(AUTHORIZED_KEYS).display()
            ));
        }
        lines.extend(self.extra.iter().cloned());
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }
}

const HOST_KEY: &str = "ssh_host_ed25519_key";
const CLIENT_KEY: &str = "id_ed25519";
const AUTHORIZED_KEYS: &str = "authorized_keys";
const KNOWN_HOSTS: &str = "known_hosts";
const CONFIG: &str = "sshd_config";

/// A running OpenSSH server on 127.0.0.1; killed when dropped, even when the
/// test panics, and its log is printed if the test fails.
///
/// Killing the listener does not end established connections: sshd serves
/// each one from a child in its own session, which exits when its client
/// disconnects.
pub struct Sshd {
    child: Child,
    port: u16,
    /// Keys, config and `known_hosts`; removed after sshd is killed.
    dir: TempDir,
    known_hosts_line: String,
    host_key_fingerprint: String,
    /// Everything sshd and its per-connection children wrote to stderr.
    log: Arc<Mutex<String>>,
}

/// Why one attempt to start sshd did not end with a listening server.
enum StartFailure {
    /// Someone else bound the port between our probe and sshd's bind.
    PortTaken,
    Other(String),
}

impl Sshd {
    /// Starts an sshd with the default [`SshdConfig`].
    ///
    /// # Panics
    ///
    /// When sshd cannot be set up or does not report listening within 10 s;
    /// the message includes its log.
    pub fn start() -> Sshd {
        Self::start_with(&SshdConfig::new())
    }

    /// Starts an sshd with `config`; one config may start several servers.
    ///
    /// # Panics
    ///
    /// As [`Sshd::start`].
    pub fn start_with(config: &SshdConfig) -> Sshd {
        ensure_privsep_dir();
        let dir = tempfile::Builder::new()
            .prefix("sshmcp-sshd-")
            .tempdir()
            .expect("create the sshd temp dir");
        // sshd reads AuthorizedKeysFile as the user logging in, and that user
        // is not always the one running the tests.
        set_mode(dir.path(), 0o755);
        keygen(&dir.path().join(HOST_KEY));
        for kind in &config.extra_host_keys {
            keygen_type(&dir.path().join(extra_host_key(kind)), kind);
        }
        if let Some((ca_key, principals)) = &config.host_certificate {
            run_checked(
                Command::new("ssh-keygen")
                    .args(["-q", "-h", "-I", "sshmcp-tests", "-n", principals, "-s"])
                    .arg(ca_key)
                    .arg(dir.path().join(format!("{HOST_KEY}.pub"))),
            );
        }
        keygen(&dir.path().join(CLIENT_KEY));
        let authorized = dir.path().join(AUTHORIZED_KEYS);
        fs::copy(dir.path().join(format!("{CLIENT_KEY}.pub")), &authorized)
            .expect("write authorized_keys");
        set_mode(&authorized, 0o644);
        let host_pub = dir.path().join(format!("{HOST_KEY}.pub"));
        let host_key_fingerprint = fingerprint(&host_pub);
        let host_pub_text = fs::read_to_string(&host_pub).expect("read the host public key");

        let mut failures = Vec::new();
        for _ in 0..BIND_ATTEMPTS {
            let port = free_port();
            let config_path = dir.path().join(CONFIG);
            fs::write(&config_path, config.render(dir.path(), port)).expect("write sshd_config");
            set_mode(&config_path, 0o644);
            let log = Arc::new(Mutex::new(String::new()));
            let (child, result) = launch(&config_path, port, &log);
            match result {
                Ok(()) => {
                    let known_hosts_line = known_hosts_line(port, &host_pub_text);
                    fs::write(
                        dir.path().join(KNOWN_HOSTS),
                        format!("{known_hosts_line}\n"),
                    )
                    .expect("write known_hosts");
                    return Sshd {
                        child,
                        port,
                        dir,
                        known_hosts_line,
                        host_key_fingerprint,
                        log,
                    };
                }
                Err(StartFailure::PortTaken) => {
                    failures.push(format!("port {port} taken:\n{}", lock(&log)));
                }
                Err(StartFailure::Other(why)) => {
                    panic!("sshd did not start: {why}\nlog:\n{}", lock(&log))
                }
            }
        }
        panic!(
            "sshd could not bind a port in {BIND_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// The listening sshd's pid; each connection is served by a child of it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The port sshd listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address sshd listens on; always loopback.
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// The client private key that `authorized_keys` admits. Mode 0600 and
    /// owned by the user running the tests: OpenSSH clients refuse a key
    /// others can read, and the daemon under test runs as that same user.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join(CLIENT_KEY)
    }

    /// Adds the public key file `public` to `authorized_keys`, for every
    /// user, as the fixture's own client key is.
    ///
    /// # Panics
    ///
    /// When either file cannot be read or written.
    pub fn authorize(&self, public: &Path) {
        let key =
            fs::read_to_string(public).unwrap_or_else(|e| panic!("read {}: {e}", public.display()));
        let path = self.dir.path().join(AUTHORIZED_KEYS);
        let mut text = fs::read_to_string(&path).expect("read authorized_keys");
        text.push_str(key.trim_end());
        text.push('\n');
        fs::write(&path, text).expect("write authorized_keys");
    }

    /// The server's public host key (`ssh-ed25519 AAAA... comment`).
    pub fn host_public_key(&self) -> PathBuf {
        self.dir.path().join(format!("{HOST_KEY}.pub"))
    }

    /// The public half of a host key added with
    /// [`SshdConfig::extra_host_key`].
    pub fn extra_host_public_key(&self, kind: &str) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.pub", extra_host_key(kind)))
    }

    /// Replaces the ed25519 host key with a new one and restarts sshd on the
    /// same port, as when a host is reinstalled: to a client, the host's key
    /// has changed. The accessors describe the new key afterwards. A host
    /// certificate, if any, is not renewed.
    ///
    /// # Panics
    ///
    /// When the new key cannot be made or sshd does not come back on its
    /// port.
    pub fn regenerate_host_key(&mut self) {
        stop_in_drop(&mut self.child, "sshd", Duration::ZERO);
        let key = self.dir.path().join(HOST_KEY);
        let public = self.host_public_key();
        for path in [&key, &public] {
            fs::remove_file(path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
        }
        keygen(&key);
        self.host_key_fingerprint = fingerprint(&public);
        let public_text = fs::read_to_string(&public).expect("read the host public key");
        self.known_hosts_line = known_hosts_line(self.port, &public_text);
        fs::write(
            self.known_hosts_path(),
            format!("{}\n", self.known_hosts_line),
        )
        .expect("write known_hosts");
        let (child, result) = launch(&self.config_path(), self.port, &self.log);
        self.child = child;
        match result {
            Ok(()) => {}
            Err(StartFailure::PortTaken) => panic!(
                "sshd could not get port {} back after the restart:\n{}",
                self.port,
                self.log()
            ),
            Err(StartFailure::Other(why)) => {
                panic!("sshd did not restart: {why}\nlog:\n{}", self.log())
            }
        }
    }

    /// The fixture's temp dir, holding keys, config and `known_hosts`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `sshd_config` sshd was started with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join(CONFIG)
    }

    /// A `known_hosts` file holding only [`Sshd::known_hosts_line`]. It is
    /// the fixture's own, not the sandbox user's `~/.ssh/known_hosts`.
    pub fn known_hosts_path(&self) -> PathBuf {
        self.dir.path().join(KNOWN_HOSTS)
    }

    /// This server's `known_hosts` entry: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub fn known_hosts_line(&self) -> &str {
        &self.known_hosts_line
    }

    /// The host key's fingerprint as OpenSSH prints it: `SHA256:...`.
    pub fn host_key_fingerprint(&self) -> &str {
        &self.host_key_fingerprint
    }

    /// Everything sshd logged so far (LogLevel VERBOSE: connections,
    /// accepted and failed authentications, disconnects).
    ///
    /// Lines from a connection arrive asynchronously; to assert on one, wait
    /// for it with [`wait_until`](crate::wait_until).
    pub fn log(&self) -> String {
        lock(&self.log).clone()
    }

    /// A plain OpenSSH `ssh` command logging in as `user` with the client
    /// key and checking the host key against [`Sshd::known_hosts_path`];
    /// append the remote command. `-F /dev/null` keeps the runner's own ssh
    /// config (and its `~/.ssh`) out of the test.
    pub fn ssh_command(&self, user: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-i"])
            .arg(self.client_key())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts_path().display()
            ))
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "LogLevel=ERROR",
                "-l",
                user,
                HOST,
                "--",
            ]);
        cmd
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // sshd needs no grace: killing the listener loses nothing.
        stop_in_drop(&mut self.child, "sshd", Duration::ZERO);
        show_if_panicking(&format!("sshd log (port {})", self.port), &self.log());
    }
}

/// Spawns sshd and waits until it reports listening, binding failed, or it
/// exited. The child is returned in every case so the caller owns reaping
/// (on failure it has already been killed and reaped).
fn launch(config: &Path, port: u16, log: &Arc<Mutex<String>>) -> (Child, Result<(), StartFailure>) {
    // -D: stay in the foreground, so the child is sshd itself and Drop
    // kills the right process. -e: log to stderr rather than syslog.
    let mut child = Command::new(SSHD)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {SSHD} (is openssh-server installed?): {e}"));
    let stderr = child.stderr.take().expect("piped stderr");
    let lines = drain(stderr, Arc::clone(log));
    let result = wait_listening(&lines, port);
    if result.is_err() {
        stop_in_drop(&mut child, "sshd", Duration::ZERO);
    }
    (child, result)
}

/// Copies sshd's stderr into `log` for as long as anyone writes to it, so
/// the pipe never fills and blocks sshd, and forwards each line to the
/// returned channel while startup still listens.
///
/// Per-connection sshd children inherit the pipe, so the thread lives until
/// the last of them exits; it touches nothing but `log`.
fn drain(stderr: impl std::io::Read + Send + 'static, log: Arc<Mutex<String>>) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut tx = Some(tx);
        let mut reader = BufReader::new(stderr);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    lock(&log).push_str(&format!("<reading sshd stderr failed: {e}>\n"));
                    break;
                }
            }
            let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
            {
                let mut log = lock(&log);
                log.push_str(&line);
                log.push('\n');
            }
            // Once startup is over nobody receives; stop forwarding.
            if let Some(sender) = &tx
                && sender.send(line).is_err()
            {
                tx = None;
            }
        }
    });
    rx
}

fn wait_listening(lines: &Receiver<String>, port: u16) -> Result<(), StartFailure> {
    let ready = format!("Server listening on {HOST} port {port}.");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(&ready) => return Ok(()),
            // "Bind to port N on 127.0.0.1 failed: Address already in use."
            // At LogLevel DEBUG1 a successful bind logs "Bind to port N" too.
            Ok(line)
                if (line.contains("Bind to port") && line.contains("failed"))
                    || line.contains("Address already in use") =>
            {
                return Err(StartFailure::PortTaken);
            }
            Ok(_) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(StartFailure::Other("sshd exited during startup".into()));
            }
            Err(RecvTimeoutError::Timeout) => {
                return Err(StartFailure::Other(format!(
                    "sshd did not report listening on port {port} within {START_TIMEOUT:?}"
                )));
            }
        }
    }
}

/// A port that was free a moment ago. sshd refuses `Port 0`, so the port is
/// chosen here; the caller retries if someone takes it in between.
fn free_port() -> u16 {
    TcpListener::bind((HOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0 to find a free port")
        .port()
}

fn ensure_privsep_dir() {
    let dir = Path::new(PRIVSEP_DIR);
    // Only root can create it, and only a root-started sshd needs it.
    if dir.is_dir() || !is_root() {
        return;
    }
    // Parallel tests may race here; create_dir_all tolerates that.
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {PRIVSEP_DIR}: {e}"));
    set_mode(dir, 0o755);
}

/// The file name of an extra host key of `kind`.
fn extra_host_key(kind: &str) -> String {
    format!("ssh_host_{kind}_key")
}

fn keygen(path: &Path) {
    keygen_type(path, "ed25519");
}

fn keygen_type(path: &Path, kind: &str) {
    run_checked(
        Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-C", "sshmcp-tests", "-f"])
            .arg(path),
    );
    let mut public = path.as_os_str().to_owned();
    public.push(".pub");
    set_mode(Path::new(&public), 0o644);
}

/// `ssh-keygen -lf` prints `256 SHA256:... comment (ED25519)`.
fn fingerprint(public_key: &Path) -> String {
    let out = run_checked(Command::new("ssh-keygen").arg("-lf").arg(public_key));
    let fp = out.split_whitespace().nth(1).unwrap_or_default();
    assert!(
        fp.starts_with("SHA256:"),
        "unexpected `ssh-keygen -lf` output: {out}"
    );
    fp.to_owned()
}

/// `[127.0.0.1]:PORT type base64`: the comment is dropped, and a port other
/// than 22 puts the host in brackets, as OpenSSH writes it.
fn known_hosts_line(port: u16, public_key: &str) -> String {
    let mut fields = public_key.split_whitespace();
    let (Some(kind), Some(key)) = (fields.next(), fields.next()) else {
        panic!("malformed host public key: {public_key:?}");
    };
    format!("[{HOST}]:{port} {kind} {key}")
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// The log stays readable after a panic elsewhere poisoned its lock: it is
/// only ever appended to, so it is never left inconsistent.
fn lock(log: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_defaults_and_extras_come_last() {
        let text = SshdConfig::new()
            .set("maxsessions", "3")
            .extra("Match User nobody")
            .extra("  PasswordAuthentication no")
            .render(Path::new("/d"), 2222);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[..4],
            [
                "ListenAddress 127.0.0.1",
                "Port 2222",
                "HostKey /d/ssh_host_ed25519_key",
                "PidFile none"
            ]
        );
        assert!(lines.contains(&"maxsessions 3"));
        assert!(!lines.iter().any(|l| l.starts_with("MaxSessions")));
        assert!(lines.contains(&"AuthorizedKeysFile /d/authorized_keys"));
        assert_eq!(
            lines[lines.len() - 2..],
            ["Match User nobody", "  PasswordAuthentication no"]
        );
    }

    #[test]
    #[should_panic(expected = "sets Port itself")]
    fn fixture_keywords_cannot_be_overridden() {
        let _ = SshdConfig::new().set("Port", "22");
    }

    #[test]
    fn known_hosts_line_drops_the_comment() {
        assert_eq!(
            known_hosts_line(2200, "ssh-ed25519 AAAAC3 root@box\n"),
            "[127.0.0.1]:2200 ssh-ed25519 AAAAC3"
        );
    }
}
