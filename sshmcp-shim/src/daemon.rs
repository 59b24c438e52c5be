//! The shim's link to sshmcpd: one connection over the rendezvous socket,
//! opened on the first tool call, shared by every call after it, and opened
//! again when the daemon goes away between calls.
//!
//! When nothing answers on the socket the shim starts `sshmcpd serve` itself,
//! so an MCP client needs to know about one binary only. Start-up is
//! serialised across shims by `flock` on the rendezvous lock file, so several
//! MCP clients starting at once end up sharing one daemon.

use sshmcp_proto::{
    Client, ClientError, DaemonFacts, Progress, ProtoError, Request, Response, rendezvous,
};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixStream;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::Instant;

/// What the shim calls itself in the hello, for the daemon's logs.
const SOFTWARE: &str = concat!("sshmcp-shim ", env!("CARGO_PKG_VERSION"));

/// Environment variable naming the daemon binary, for tests and unusual
/// installs.
pub const DAEMON_BIN_ENV: &str = "SSHMCPD_BIN";

/// How long a started daemon (or a shim holding the start-up lock) may take
/// before the call fails.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the socket is probed while waiting for a daemon.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A daemon that accepts the connection but never answers the hello is
/// wedged; waiting longer than this would only hang the tool call.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many lines of the daemon's log a start-up failure quotes.
const LOG_TAIL_LINES: usize = 20;

/// Why a request could not be carried to the daemon and back. The message is
/// written for the model reading the tool result: what failed, then what to
/// do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonError(String);

impl DaemonError {
    fn new(message: impl Into<String>) -> Self {
        DaemonError(message.into())
    }
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DaemonError {}

type DaemonClient = Client;

/// The daemon as this shim sees it: where it listens, and the connection to
/// it when one is open.
pub struct Daemon {
    socket: PathBuf,
    /// Held while connecting, so concurrent first calls share one connection
    /// (and one auto-start) instead of racing.
    link: Mutex<Option<Link>>,
}

/// How a handshake went.
enum Handshake {
    Open(Link),
    /// The daemon speaks another protocol version.
    Skew(Skew),
}

/// A daemon of another protocol version, as its hello described it.
struct Skew {
    theirs: u32,
    software: String,
    facts: DaemonFacts,
    /// Its pid, from the socket's peer credentials.
    pid: Option<u32>,
}

impl Skew {
    /// What the human should do about a daemon this shim must not replace.
    fn advice(&self, socket: &Path) -> DaemonError {
        let what = format!(
            "sshmcpd at {} speaks protocol {} ({}) but this shim speaks {}",
            socket.display(),
            self.theirs,
            self.software,
            sshmcp_proto::PROTOCOL_VERSION
        );
        let todo = if self.facts.socket_activated {
            "systemd manages it: run `systemctl --user restart sshmcpd` after installing the \
             same version of sshmcp-shim and sshmcpd"
                .to_owned()
        } else {
            let lost = match self.facts.sessions {
                Some(n) => format!("its {n} sessions will be lost"),
                None => "its sessions will be lost".to_owned(),
            };
            format!(
                "run `sshmcpd stop` with the sshmcpd that started it{} ({lost}), then retry; \
                 install the same version of sshmcp-shim and sshmcpd",
                self.pid
                    .map(|p| format!(" or `kill {p}`"))
                    .unwrap_or_default()
            )
        };
        DaemonError::new(format!("{what}: {todo}."))
    }
}

/// An open, handshaken connection.
struct Link {
    client: Arc<DaemonClient>,
}

impl Daemon {
    /// A daemon at the socket `sshmcp_proto::rendezvous` resolves from the
    /// environment. Nothing is opened until the first [`Daemon::call`].
    pub fn from_env() -> Self {
        Daemon::new(rendezvous::socket_path())
    }

    /// A daemon at `socket`. A relative path is made absolute against the
    /// current directory, because a started daemon runs from `/`.
    pub fn new(socket: PathBuf) -> Self {
        let socket = std::path::absolute(&socket).unwrap_or(socket);
        Daemon {
            socket,
            link: Mutex::new(None),
        }
    }

    /// The socket this shim talks to the daemon on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends one request and waits for the daemon's answer, connecting (and
    /// starting the daemon) first when needed.
    ///
    /// # Errors
    /// A [`DaemonError`] when the daemon cannot be reached or started, speaks
    /// another protocol version, or drops the connection before answering.
    /// A request the daemon refused is not an error here: it is a
    /// [`Response::Error`].
    pub async fn call(&self, request: Request) -> Result<Response, DaemonError> {
        self.call_inner(request, None).await
    }

    /// [`Daemon::call`], with the daemon's progress reports sent to
    /// `progress` while the call runs. Dropping the future cancels the call
    /// in the daemon.
    ///
    /// # Errors
    /// As [`Daemon::call`].
    pub async fn call_with_progress(
        &self,
        request: Request,
        progress: mpsc::UnboundedSender<Progress>,
    ) -> Result<Response, DaemonError> {
        self.call_inner(request, Some(progress)).await
    }

    async fn call_inner(
        &self,
        request: Request,
        progress: Option<mpsc::UnboundedSender<Progress>>,
    ) -> Result<Response, DaemonError> {
        let client = self.client().await?;
        let answer = match progress {
            Some(progress) => client.call_with_progress(request, progress).await,
            None => client.call(request).await,
        };
        match answer {
            Ok(response) => Ok(response),
            Err(ClientError::Proto(
                e @ (ProtoError::FrameTooLarge { .. } | ProtoError::Encode(_)),
            )) => {
                // Refused before anything was written: the connection is fine.
                Err(DaemonError::new(format!(
                    "the request could not be sent to sshmcpd: {e}. Send less data in one call \
                     (for large stdin, upload a file and redirect it instead)."
                )))
            }
            Err(e) => {
                self.forget(&client).await;
                Err(DaemonError::new(format!(
                    "lost the connection to sshmcpd at {} during the call ({e}). The request may \
                     or may not have been carried out: call list_sessions to see the daemon's \
                     state, then retry. If this repeats, see the daemon's log at {}.",
                    self.socket.display(),
                    rendezvous::log_path().display()
                )))
            }
        }
    }

    /// The open connection, or a new one when there is none or the daemon
    /// closed it since the last call.
    async fn client(&self) -> Result<Arc<DaemonClient>, DaemonError> {
        let mut link = self.link.lock().await;
        if let Some(open) = link.as_ref()
            && !open.client.is_closed()
        {
            return Ok(open.client.clone());
        }
        *link = None;
        let stream = self.connect_or_start().await?;
        let opened = match self.handshake(stream).await? {
            Handshake::Open(link) => link,
            Handshake::Skew(skew) => {
                // A daemon of another version with nothing to lose is
                // replaced; anything else is the human's call.
                self.replace(&skew).await?;
                let stream = self.connect_or_start().await?;
                match self.handshake(stream).await? {
                    Handshake::Open(link) => link,
                    Handshake::Skew(again) => return Err(again.advice(&self.socket)),
                }
            }
        };
        let client = opened.client.clone();
        *link = Some(opened);
        Ok(client)
    }

    /// Stops an idle daemon of another protocol version so this shim can
    /// start its own.
    ///
    /// # Errors
    /// When the daemon must not be replaced (it has sessions, or systemd
    /// manages it), or does not go away.
    async fn replace(&self, skew: &Skew) -> Result<(), DaemonError> {
        let (Some(0), false, Some(pid)) =
            (skew.facts.sessions, skew.facts.socket_activated, skew.pid)
        else {
            return Err(skew.advice(&self.socket));
        };
        tracing::warn!(
            pid,
            daemon = %skew.software,
            "stopping an idle sshmcpd of protocol {} to start this version's", skew.theirs
        );
        // SAFETY: kill has no memory preconditions; the pid is the peer the
        // kernel reported for the daemon's socket, which runs as this user.
        if unsafe { libc::kill(pid as i32, libc::SIGTERM) } != 0 {
            return Err(skew.advice(&self.socket));
        }
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            match UnixStream::connect(&self.socket).await {
                Err(e) if no_daemon(&e) => return Ok(()),
                _ => tokio::time::sleep(POLL_INTERVAL).await,
            }
        }
        Err(DaemonError::new(format!(
            "asked the idle sshmcpd of another version (pid {pid}) at {} to stop, but it is \
             still answering; stop it by hand (`kill {pid}`) and retry.",
            self.socket.display()
        )))
    }

    /// Drops `client` as the cached connection, unless a newer one already
    /// replaced it.
    async fn forget(&self, client: &Arc<DaemonClient>) {
        let mut link = self.link.lock().await;
        if link
            .as_ref()
            .is_some_and(|open| Arc::ptr_eq(&open.client, client))
        {
            *link = None;
        }
    }

    async fn connect_or_start(&self) -> Result<UnixStream, DaemonError> {
        match UnixStream::connect(&self.socket).await {
            Ok(stream) => Ok(stream),
            Err(e) if no_daemon(&e) => {
                tracing::info!(socket = %self.socket.display(), "no daemon answering; starting one");
                self.start().await
            }
            Err(e) => Err(DaemonError::new(format!(
                "could not connect to sshmcpd at {}: {e}. Check that the socket and its directory \
                 belong to you, or point SSHMCP_SOCKET at another path.",
                self.socket.display()
            ))),
        }
    }

    async fn handshake(&self, stream: UnixStream) -> Result<Handshake, DaemonError> {
        let pid = stream
            .peer_cred()
            .ok()
            .and_then(|c| c.pid())
            .and_then(|p| u32::try_from(p).ok());
        let handshake =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, Client::handshake(stream, SOFTWARE));
        let client = match handshake.await {
            Ok(Ok(client)) => client,
            Ok(Err(ClientError::Proto(ProtoError::VersionMismatch {
                theirs,
                peer_software,
                ..
            }))) => {
                return Ok(Handshake::Skew(Skew {
                    theirs,
                    facts: DaemonFacts::parse(&peer_software),
                    software: peer_software,
                    pid,
                }));
            }
            Ok(Err(ClientError::Proto(ProtoError::BadMagic))) => {
                return Err(DaemonError::new(format!(
                    "whatever listens on {} is not sshmcpd (it answered the handshake with \
                     something else). Stop that program, or point SSHMCP_SOCKET at another path.",
                    self.socket.display()
                )));
            }
            Ok(Err(e)) => {
                return Err(DaemonError::new(format!(
                    "the handshake with sshmcpd at {} failed: {e}. Retry; if it fails again, see \
                     the daemon's log at {}.",
                    self.socket.display(),
                    rendezvous::log_path().display()
                )));
            }
            Err(_elapsed) => {
                return Err(DaemonError::new(format!(
                    "sshmcpd at {} accepted the connection but did not answer the handshake within \
                     {}s. See its log at {}; `sshmcpd stop` and a retry may help.",
                    self.socket.display(),
                    HANDSHAKE_TIMEOUT.as_secs(),
                    rendezvous::log_path().display()
                )));
            }
        };
        tracing::debug!(daemon = client.daemon_software(), "connected to sshmcpd");
        Ok(Handshake::Open(Link {
            client: Arc::new(client),
        }))
    }

    /// Starts `sshmcpd serve` and returns a connection to it, or to a daemon
    /// another shim started meanwhile.
    async fn start(&self) -> Result<UnixStream, DaemonError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let lock_path = rendezvous::start_lock_path(&self.socket);
        let lock = open_lock(&self.socket, &lock_path)?;

        // Another shim may hold the lock while its daemon starts: wait for
        // either that daemon or the lock, never block on the lock alone.
        loop {
            if let Ok(stream) = UnixStream::connect(&self.socket).await {
                return Ok(stream);
            }
            if try_lock(&lock).map_err(|e| {
                DaemonError::new(format!(
                    "could not lock {} to start sshmcpd: {e}",
                    lock_path.display()
                ))
            })? {
                break;
            }
            if Instant::now() >= deadline {
                return Err(DaemonError::new(format!(
                    "another process has held {} for {}s while starting sshmcpd, and nothing \
                     answers on {}. See the daemon's log at {}, or stop the stuck process.",
                    lock_path.display(),
                    START_TIMEOUT.as_secs(),
                    self.socket.display(),
                    rendezvous::log_path().display()
                )));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }

        // The lock is released when `lock` is closed at return; the daemon
        // does not inherit it because std opens files close-on-exec.
        if let Ok(stream) = UnixStream::connect(&self.socket).await {
            return Ok(stream);
        }
        let bin = find_daemon()?;
        let mut exited = spawn_daemon(&bin, &self.socket).map_err(|e| {
            DaemonError::new(format!(
                "sshmcpd is not running at {}, and running {} serve failed: {e}. Set \
                 {DAEMON_BIN_ENV} to the path of a working sshmcpd binary.",
                self.socket.display(),
                bin.display()
            ))
        })?;
        loop {
            tokio::time::sleep(POLL_INTERVAL).await;
            if let Ok(stream) = UnixStream::connect(&self.socket).await {
                return Ok(stream);
            }
            // A daemon that exits with success may have handed over to
            // another process; keep waiting for the socket then.
            if let Ok(status) = exited.try_recv()
                && !status.as_ref().is_ok_and(ExitStatus::success)
            {
                let how = match status {
                    Ok(status) => format!("exited ({status})"),
                    Err(e) => format!("could not be waited for ({e})"),
                };
                return Err(self.start_failure(&bin, &format!("{how} without listening")));
            }
            if Instant::now() >= deadline {
                let waited = format!("did not listen within {}s", START_TIMEOUT.as_secs());
                return Err(self.start_failure(&bin, &waited));
            }
        }
    }

    fn start_failure(&self, bin: &Path, what: &str) -> DaemonError {
        let log = rendezvous::log_path();
        let tail = match log_tail(&log, LOG_TAIL_LINES) {
            Ok(tail) if tail.is_empty() => format!("Its log {} is empty.", log.display()),
            Ok(tail) => format!("The end of its log {}:\n{tail}", log.display()),
            Err(e) => format!("Its log {} could not be read: {e}.", log.display()),
        };
        DaemonError::new(format!(
            "started {} serve for socket {}, but it {what}. {tail}\nRun `{} serve` in a terminal \
             to see why it does not start.",
            bin.display(),
            self.socket.display(),
            bin.display()
        ))
    }
}

/// Connect errors that mean no daemon is listening, so starting one is the
/// fix.
fn no_daemon(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// Opens the start-up lock file, creating the socket's directory (private to
/// the user) when it does not exist yet.
fn open_lock(socket: &Path, lock_path: &Path) -> Result<File, DaemonError> {
    if let Some(dir) = socket.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                DaemonError::new(format!(
                    "could not create the socket directory {} to start sshmcpd: {e}. Point \
                     SSHMCP_SOCKET at a path in a directory you own.",
                    dir.display()
                ))
            })?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path)
        .map_err(|e| {
            DaemonError::new(format!(
                "could not open the lock file {} to start sshmcpd: {e}",
                lock_path.display()
            ))
        })
}

/// Takes an exclusive `flock` without blocking; `Ok(false)` when another
/// process holds it.
fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: flock only reads the descriptor, which `file` keeps open.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(e)
    }
}

/// The daemon binary: `$SSHMCPD_BIN`, else `sshmcpd` beside this executable
/// (how releases and `cargo build` lay them out), else `sshmcpd` on `PATH`.
fn find_daemon() -> Result<PathBuf, DaemonError> {
    if let Some(bin) = std::env::var_os(DAEMON_BIN_ENV).filter(|b| !b.is_empty()) {
        return Ok(PathBuf::from(bin));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("sshmcpd")));
    if let Some(bin) = beside.as_deref().filter(|b| is_executable(b)) {
        return Ok(bin.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(bin) = std::env::split_paths(&path)
        .map(|dir| dir.join("sshmcpd"))
        .find(|b| is_executable(b))
    {
        return Ok(bin);
    }
    let beside = beside.map_or_else(
        || "beside this shim".to_owned(),
        |b| format!("at {}", b.display()),
    );
    Err(DaemonError::new(format!(
        "sshmcpd is not running and could not be started: {DAEMON_BIN_ENV} is not set, there is \
         no sshmcpd {beside}, and none on PATH ({}). Install sshmcpd next to sshmcp-shim, or set \
         {DAEMON_BIN_ENV} to its path in the MCP client's configuration.",
        path.to_string_lossy()
    )))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `bin serve` detached from the shim: its own session (so the MCP
/// client's terminal or process-group signals do not reach it), no stdio
/// (it writes its own log), and reaped by a thread so it never lingers as a
/// zombie. The receiver yields its exit status if it ends while the shim
/// runs.
fn spawn_daemon(
    bin: &Path,
    socket: &Path,
) -> io::Result<oneshot::Receiver<io::Result<ExitStatus>>> {
    let mut command = Command::new(bin);
    command
        .arg("serve")
        // The daemon must listen exactly where this shim probes, whatever
        // its working directory and however the environment resolves.
        .env(rendezvous::SOCKET_ENV, socket)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of the
    // parent, so it may run between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
    }
    let mut child = command.spawn()?;
    tracing::info!(bin = %bin.display(), pid = child.id(), "started sshmcpd");
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("sshmcpd-reaper".to_owned())
        .spawn(move || {
            // The shim may have stopped waiting; then nobody needs the status.
            drop(tx.send(child.wait()));
        })?;
    Ok(rx)
}

/// The last `lines` lines of the daemon's log, read from its end so a large
/// log costs no more than a small one.
fn log_tail(path: &Path, lines: usize) -> io::Result<String> {
    const TAIL_BYTES: u64 = 16 * 1024;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(last_lines(&String::from_utf8_lossy(&bytes), lines))
}

fn last_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_end() {
        let text = (1..=30).map(|n| format!("line {n}\n")).collect::<String>();
        let tail = last_lines(&text, 3);
        assert_eq!(tail, "line 28\nline 29\nline 30");
        assert_eq!(last_lines("one\ntwo\n", 20), "one\ntwo");
        assert_eq!(last_lines("", 20), "");
    }

    #[test]
    fn relative_socket_is_made_absolute() {
        let daemon = Daemon::new(PathBuf::from("rel/sshmcpd.sock"));
        assert!(daemon.socket().is_absolute());
        assert!(daemon.socket().ends_with("rel/sshmcpd.sock"));
    }
}
