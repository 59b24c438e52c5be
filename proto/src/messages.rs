//! Message types. Append-only within a protocol version: see the crate docs.

use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroize;

/// A request from a client, tagged with an id the client picks; the
/// daemon's answer carries the same id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientMessage {
    pub id: u64,
    pub request: Request,
    /// Send [`Response::Progress`] frames for this call while it runs.
    pub progress: bool,
}

/// An answer from the daemon to the request with the same `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerMessage {
    pub id: u64,
    pub response: Response,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    Connect(ConnectRequest),
    Disconnect {
        session_id: String,
    },
    ListSessions,
    Execute(ExecuteRequest),
    Upload(TransferRequest),
    Download(TransferRequest),
    /// What `sshmcpd status` shows.
    Status,
    /// Ask the daemon to shut down (`sshmcpd stop`).
    Shutdown,
    /// Stop the call with this id on the same connection: a command is
    /// killed, a transfer aborted and its temporary file removed. Gets no
    /// answer of its own; the cancelled call answers with
    /// [`ErrorKind::Cancelled`].
    Cancel {
        id: u64,
    },
    /// Open a one-time page on 127.0.0.1 where a human types the secret a
    /// login needs ([`Needs::Secret`]), so it never passes through the MCP
    /// client or the model. Answered at once with [`Response::SecretPage`].
    OpenSecretPage(SecretPrompt),
    /// Wait until the page `id` has received its secret; answered with
    /// [`Response::SecretReceived`], or an error when the page expired.
    /// Cancelling this call closes the page.
    AwaitSecret {
        id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Connected(ConnectResult),
    Disconnected {
        session_id: String,
    },
    Sessions(Vec<SessionInfo>),
    Executed(ExecuteResult),
    Transferred(TransferResult),
    Status(DaemonStatus),
    ShuttingDown,
    Error(ErrorBody),
    /// Not an answer: a progress report for a call still running. The final
    /// answer follows with the same id.
    Progress(Progress),
    SecretPage(SecretPage),
    /// The page's secret arrived; pass its id as `secret_ref` to `connect`.
    SecretReceived,
}

/// How far a running call has got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub elapsed_ms: u64,
    /// Bytes of output so far (execute) or bytes moved (transfers).
    pub done: u64,
    /// Bytes to move, when known (transfers).
    pub total: Option<u64>,
}

/// A secret (password, passphrase). Its `Debug` never shows the value and its
/// memory is wiped on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The secret itself; callers must not log or echo it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectRequest {
    /// A host name, an address, or a `Host` alias from `~/.ssh/config`.
    pub hostname: String,
    /// From `~/.ssh/config` or the local user name when `None`.
    pub username: Option<String>,
    /// From `~/.ssh/config` or 22 when `None`.
    pub port: Option<u16>,
    pub password: Option<Secret>,
    /// Absolute path of a private key file, as the client resolved it.
    pub private_key: Option<String>,
    /// Passphrase of an encrypted `private_key`.
    pub passphrase: Option<Secret>,
    /// Jump hosts, `[user@]host[:port]`, comma-separated, first hop first
    /// (overrides `ProxyJump` from `~/.ssh/config`).
    pub jump: Option<String>,
    /// The client's `SSH_AUTH_SOCK`: the daemon may have been started with
    /// another environment (systemd).
    pub agent_socket: Option<String>,
    /// The id of a secret page whose secret answers this login's
    /// [`Needs::Secret`]; used once.
    pub secret_ref: Option<String>,
    /// Unknown host keys a human accepted (see [`Needs::HostKey`]): learned
    /// even under the `strict` policy, if the server still offers exactly
    /// that key.
    pub approved_host_keys: Vec<HostKeyApproval>,
}

/// A host key a human looked at and accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKeyApproval {
    /// `host` or `[host]:port`, as known_hosts names it.
    pub host: String,
    /// `SHA256:…`.
    pub fingerprint: String,
}

/// A secret a login needs: what, for which login, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretPrompt {
    pub kind: SecretKind,
    /// `host` or `[host]:port`.
    pub host: String,
    pub username: String,
    /// The encrypted key, for [`SecretKind::Passphrase`].
    pub key_path: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecretKind {
    Password,
    Passphrase,
}

/// A page opened by [`Request::OpenSecretPage`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretPage {
    /// Names the page in [`Request::AwaitSecret`] and in `secret_ref`.
    pub id: String,
    /// `http://127.0.0.1:PORT/TOKEN`: the token is the only way in, so the
    /// URL must go to the human and nowhere else.
    pub url: String,
    /// The page closes this many seconds after it opened.
    pub expires_in_s: u64,
}

/// What a failed `connect` would need from a human to succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Needs {
    /// A password or key passphrase the call did not give.
    Secret(SecretPrompt),
    /// The `strict` policy refused a host no known_hosts file knows.
    HostKey(UnknownHostKey),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownHostKey {
    /// `host` or `[host]:port`.
    pub host: String,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, …
    pub algorithm: String,
    /// `SHA256:…`.
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectResult {
    pub session_id: String,
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    pub host_key_fingerprint: String,
    /// True when the host was unknown and its key was just added to
    /// known_hosts.
    pub host_key_learned: bool,
    /// Where the session went after `~/.ssh/config` was applied.
    pub hostname: String,
    pub username: String,
    pub port: u16,
    /// The method that logged in (`publickey`, `password`, …).
    pub auth_method: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionState {
    Connected,
    Disconnected,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Connected => "connected",
            SessionState::Disconnected => "disconnected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub session_id: String,
    /// The resolved host name or address.
    pub hostname: String,
    pub username: String,
    pub port: u16,
    pub state: SessionState,
    /// Milliseconds since the Unix epoch.
    pub connected_at_ms: u64,
    /// Milliseconds since the Unix epoch.
    pub last_used_at_ms: u64,
    /// The name `connect` was given, when it differs from `hostname` (an
    /// `~/.ssh/config` alias).
    pub alias: Option<String>,
    /// Jump hosts the session goes through, as given.
    pub jump: Option<String>,
    pub commands_run: u64,
    /// Bytes uploaded and downloaded.
    pub bytes_moved: u64,
    /// Why the session is disconnected, or the last failed call's error.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecuteRequest {
    pub session_id: String,
    pub command: String,
    #[serde(with = "serde_bytes")]
    pub stdin: Option<Vec<u8>>,
    /// No deadline when `None`.
    pub timeout_ms: Option<u64>,
    /// Run in this remote directory (a leading `~/` is the remote home).
    pub cwd: Option<String>,
    /// Variables set for this command only.
    pub env: Vec<(String, String)>,
    /// Allocate a terminal; stdout and stderr then arrive merged as stdout.
    pub pty: bool,
    /// Inline bytes per stream; the daemon's default when `None`.
    pub max_output_bytes: Option<u64>,
}

/// One output stream of a command. Short output comes whole in `head`;
/// longer output comes as its first and last bytes, and in full (up to the
/// spill cap) in a file on the daemon's machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOutput {
    // serde_bytes: encoded exactly as a plain Vec<u8>, but decoded in one
    // copy instead of byte by byte.
    #[serde(with = "serde_bytes")]
    pub head: Vec<u8>,
    /// The last bytes, when the stream was longer than the inline cap.
    #[serde(with = "serde_bytes")]
    pub tail: Vec<u8>,
    /// Every byte the command wrote to this stream.
    pub total_bytes: u64,
    /// Bytes between `head` and `tail` that are not inline.
    pub omitted_bytes: u64,
    /// The file holding the whole stream, when it did not fit inline.
    pub spill_path: Option<String>,
    /// The spill file stopped at its cap and lacks the end of the stream.
    pub spill_truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecuteResult {
    pub stdout: StreamOutput,
    pub stderr: StreamOutput,
    /// `None` when the command was ended by a signal or never reported one.
    pub exit_status: Option<u32>,
    /// Signal name without `SIG`, when a signal ended the command.
    pub signal: Option<String>,
    pub timed_out: bool,
    /// The deadline that applied to the command, if any (whether or not it
    /// fired: see `timed_out`).
    pub deadline: Option<Deadline>,
    /// The session's connection had dropped and was re-established first.
    pub reconnected: bool,
}

/// A command's deadline and who set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    pub ms: u64,
    pub source: DeadlineSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeadlineSource {
    /// The call's own `timeout`.
    Request,
    /// The daemon's `default_timeout`, for a call that gave none.
    ConfigDefault,
    /// The daemon's `max_timeout`, which caps every call.
    ConfigMax,
}

/// Paths for `upload` and `download`. `local_path` is absolute: the client
/// resolves it against its own working directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferRequest {
    pub session_id: String,
    pub local_path: String,
    pub remote_path: String,
    /// Copy a directory tree (files, modes, symlinks as links).
    pub recursive: bool,
    /// Keep modification times (and modes, also over existing files).
    pub preserve: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferResult {
    /// The local file written or read, fully resolved.
    pub local_path: String,
    /// The remote file written or read, fully resolved.
    pub remote_path: String,
    pub bytes: u64,
    /// True when the destination existed and was replaced.
    pub replaced: bool,
    /// Anything the caller should know, such as a non-atomic replace.
    pub notes: Vec<String>,
    /// Regular files copied (1 for a single file).
    pub files: u64,
    /// Entries not copied, with why (names that are not UTF-8, special
    /// files).
    pub skipped: Vec<String>,
    /// The session's connection had dropped and was re-established first.
    pub reconnected: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub pid: u32,
    pub version: String,
    pub proto_version: u32,
    pub uptime_s: u64,
    pub socket: String,
    pub log_path: String,
    pub sessions: Vec<SessionInfo>,
    /// The daemon serves a socket systemd passed in (socket activation);
    /// clients must not start a second daemon.
    pub socket_activated: bool,
}

/// What kind of failure, so clients can phrase advice without parsing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The request itself is invalid (empty command, bad path, …).
    BadRequest,
    UnknownSession,
    /// Could not reach the SSH server (DNS, refused, timed out).
    ConnectFailed,
    AuthFailed,
    HostKeyRejected,
    Timeout,
    /// Something failed on the remote side (SFTP error, channel refused).
    RemoteIo,
    /// Something failed on the daemon's machine (local file missing, …).
    LocalIo,
    /// The session's SSH connection is gone.
    SessionClosed,
    /// The daemon is shutting down.
    ShuttingDown,
    Internal,
    /// The client cancelled the call.
    Cancelled,
}

/// A failed request: a typed kind plus a message that says what happened and
/// what to do next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub kind: ErrorKind,
    pub message: String,
    /// What a human could supply for the call to succeed, when anything.
    pub needs: Option<Needs>,
}

impl ErrorBody {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ErrorBody {
            kind,
            message: message.into(),
            needs: None,
        }
    }

    pub fn with_needs(mut self, needs: Needs) -> Self {
        self.needs = Some(needs);
        self
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ErrorBody {}
