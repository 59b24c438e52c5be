//! What a model sees of the six tools: their descriptions, argument and
//! result types (whose JSON schemas rmcp derives from the doc comments
//! below), and the conversions between them and the wire types of
//! `sshmcp_proto`.
//!
//! Wire types never face the model directly: they are bincode-shaped and
//! change by protocol version, while these keep the spec's field names.
//! Conversions are pure functions of their inputs so that path resolution and
//! validation can be tested without a daemon.

use crate::daemon::DaemonError;
use rmcp::model::{ContentBlock, IntoContents};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{
    ConnectRequest, ConnectResult, DeadlineSource, ErrorBody, ExecuteRequest, ExecuteResult,
    MAX_OUTPUT_BYTES, MAX_STDIN_BYTES, Secret, SessionInfo, StreamOutput, TransferRequest,
    TransferResult,
};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub const SERVER_INSTRUCTIONS: &str = "\
sshmcp runs commands and copies files on remote machines over SSH. Sessions are held by a \
per-user daemon and survive MCP client restarts, so call list_sessions first to reuse a \
connected session; otherwise call connect (a hostname or ~/.ssh/config alias; the user's \
ssh-agent, keys and config apply as for `ssh`, or give username, password or private_key) \
to get a session_id. Then execute runs a shell command (a fresh shell each call: chain \
dependent steps with &&, pass timeout for anything that may not end), upload and download \
copy files or trees over SFTP, and disconnect closes the session when you are done.";

pub const CONNECT_DESCRIPTION: &str = "\
Open an SSH session to a remote machine and return its session_id, which execute, upload, \
download and disconnect take. hostname may be a Host alias from ~/.ssh/config, whose \
HostName, User, Port, IdentityFile and ProxyJump apply; arguments given here win. Log in \
with a password (also answered to a keyboard-interactive password prompt), or a private key \
file on the machine running this server (with its passphrase if it is encrypted); give \
neither to use the user's ssh-agent and default keys, as ssh does. Prefer not to pass a \
password or passphrase yourself: when one is needed and this client supports elicitation, \
sshmcp asks the user for it on a local page the model never sees. jump reaches the host \
through jump hosts, like ssh -J. The server's host key is checked against OpenSSH's \
known_hosts files: an unknown host is trusted and its key recorded (host_key_learned is \
true, show host_key_fingerprint to the user if in doubt), or, under the strict policy, \
confirmed by the user first; a host whose key differs from the recorded one is refused. A failed login lists the methods tried and those the server \
offers. Sessions persist across MCP client restarts: call list_sessions to find an existing \
session to the same host before opening another.";

pub const DISCONNECT_DESCRIPTION: &str = "\
Close a session opened with connect. Its session_id stops working, and calls still running \
on it fail; a command started without a timeout may keep running on the remote machine. \
Call this when you are done with a machine.";

pub const LIST_SESSIONS_DESCRIPTION: &str = "\
List the SSH sessions the sshmcp daemon holds, including ones opened before this MCP client \
started: session_id, hostname, username, port, status and when each was opened and last \
used (RFC 3339, UTC). Reuse a connected session rather than opening another to the same \
host. A session whose status is disconnected has lost its SSH connection: disconnect it and \
connect again.";

pub const EXECUTE_DESCRIPTION: &str = "\
Run a shell command on a session's remote machine and return its stdout, stderr and \
exit_status. Each call runs in a fresh shell on its own SSH channel: cd, environment \
variables and other shell state do not carry over to the next call, so combine dependent \
steps in one command (`cd /srv/app && make`) or pass cwd and env. There is no terminal unless \
pty is true: pass input in stdin (it is closed afterwards) and use non-interactive flags \
(`apt-get -y`, `sudo -n`). A non-zero exit_status is a normal result, not a tool error; \
exit_status is null when a signal ended the command (see signal). Pass timeout (seconds) for \
anything that might not end by itself (`tail -f`, a server in the foreground): the command \
and its children are then stopped and the output so far comes back with timed_out true; \
without it the call waits as long as the command runs. Each stream returns at most \
max_output_bytes inline (default 32 KiB): longer output comes back as its head and tail with \
a marker, truncated is true, and the whole stream is saved in stdout_file/stderr_file on the \
machine running this server for you to read or grep. Bytes that are not UTF-8 are replaced \
(stdout_lossy/stderr_lossy is true), so for binary output write it to a file and download that.";

pub const UPLOAD_DESCRIPTION: &str = "\
Copy one file from the machine running this server to a session's remote machine over \
SFTP. An existing file at remote_path is replaced whole, and a failed upload leaves nothing \
behind; an existing directory receives the file under its own name. A relative local_path \
is relative to this server's working directory, a relative remote_path to the remote \
user's home directory. Returns both resolved paths and the number of bytes copied.";

pub const DOWNLOAD_DESCRIPTION: &str = "\
Copy one file from a session's remote machine to the machine running this server over \
SFTP. An existing file at local_path is replaced whole, and a failed download leaves \
nothing behind; an existing directory receives the file under its remote name. A relative \
local_path is relative to this server's working directory, a relative remote_path to the \
remote user's home directory. Returns both resolved paths and the number of bytes copied.";

/// A tool that ran and failed. Its text goes to the model as an `isError`
/// result, so it says what failed and what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError(String);

impl ToolError {
    pub fn new(message: impl Into<String>) -> Self {
        ToolError(message.into())
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ToolError {}

impl From<DaemonError> for ToolError {
    fn from(e: DaemonError) -> Self {
        ToolError(e.to_string())
    }
}

/// The daemon's messages already say what failed and what to do.
impl From<ErrorBody> for ToolError {
    fn from(e: ErrorBody) -> Self {
        ToolError(e.message)
    }
}

/// Lets tools return `Result<Json<T>, ToolError>`: rmcp turns the error arm
/// into a result with `isError: true` carrying this text.
impl IntoContents for ToolError {
    fn into_contents(self) -> Vec<ContentBlock> {
        vec![ContentBlock::text(self.0)]
    }
}

/// Where local paths in tool arguments are resolved from. The shim resolves
/// them, not the daemon, because "relative" means relative to the MCP
/// client's project, which is the shim's working directory; the daemon runs
/// from `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPaths {
    /// What a leading `~` stands for; `None` when it cannot be determined.
    pub home: Option<PathBuf>,
    /// What relative paths are relative to; `None` when it cannot be read.
    pub cwd: Option<PathBuf>,
}

impl LocalPaths {
    /// This process's home and working directories.
    pub fn from_env() -> Self {
        LocalPaths {
            home: directories::BaseDirs::new().map(|dirs| dirs.home_dir().to_path_buf()),
            cwd: std::env::current_dir().ok(),
        }
    }

    /// Expands a leading `~` and makes `path` absolute, removing `.`
    /// components and trailing slashes. `..` is kept: resolving it
    /// lexically would be wrong across symbolic links.
    ///
    /// # Errors
    /// When `path` is empty, starts with `~user`, needs a home or working
    /// directory that is unknown, or does not resolve to UTF-8.
    pub fn resolve(&self, field: &str, path: &str) -> Result<String, ToolError> {
        if path.is_empty() {
            return Err(ToolError::new(format!(
                "{field} is empty: give a file path"
            )));
        }
        let expanded = if let Some(rest) = path.strip_prefix('~') {
            if !(rest.is_empty() || rest.starts_with('/')) {
                return Err(ToolError::new(format!(
                    "{field} `{path}`: only a leading `~` or `~/` is expanded (to your home \
                     directory); give the full path instead of `~user`"
                )));
            }
            let home = self.home.as_deref().ok_or_else(|| {
                ToolError::new(format!(
                    "{field} `{path}`: the home directory is unknown (HOME is not set); give an \
                     absolute path"
                ))
            })?;
            home.join(rest.trim_start_matches('/'))
        } else {
            PathBuf::from(path)
        };
        let absolute = if expanded.is_absolute() {
            expanded
        } else {
            let cwd = self.cwd.as_deref().ok_or_else(|| {
                ToolError::new(format!(
                    "{field} `{path}` is relative, but this server's working directory cannot \
                     be read; give an absolute path"
                ))
            })?;
            cwd.join(expanded)
        };
        let clean: PathBuf = absolute.components().collect();
        clean.into_os_string().into_string().map_err(|raw| {
            ToolError::new(format!(
                "{field} `{path}` resolves to {}, which is not valid UTF-8; give a path that is",
                Path::new(&raw).display()
            ))
        })
    }
}

/// Arguments of `connect`. Not `Debug`: it holds the password.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectArgs {
    /// Host name or IP address of the SSH server, or a Host alias from
    /// ~/.ssh/config.
    pub hostname: String,
    /// User to log in as. Default: User from ~/.ssh/config, else the local
    /// user name.
    pub username: Option<String>,
    /// Password for the login. Leave out password and private_key to use
    /// ssh-agent and the default keys. Leave it out when the user has not
    /// given it to you: if the server needs one, the user is asked for it
    /// directly (when the client supports elicitation).
    pub password: Option<String>,
    /// Path of a private key file on the machine running this server, such as
    /// ~/.ssh/id_ed25519 (a leading ~ is your home directory; a relative path
    /// is relative to this server's working directory). A path, not the key
    /// itself.
    pub private_key: Option<String>,
    /// Passphrase of an encrypted private_key (or of an encrypted default
    /// key when private_key is left out).
    pub passphrase: Option<String>,
    /// SSH port of the server. Default: Port from ~/.ssh/config, else 22.
    #[schemars(range(min = 1, max = 65535), extend("default" = DEFAULT_PORT))]
    pub port: Option<i64>,
    /// Jump hosts to go through, [user@]host[:port], comma-separated, first
    /// hop first (as ssh -J). Overrides ProxyJump from ~/.ssh/config; "none"
    /// connects directly.
    pub jump: Option<String>,
}

pub const DEFAULT_PORT: u16 = 22;

impl ConnectArgs {
    /// The request, carrying this process's `SSH_AUTH_SOCK`: the daemon may
    /// have been started elsewhere (systemd) without one, or with another.
    ///
    /// # Errors
    /// As [`ConnectArgs::into_request_with_agent`].
    pub fn into_request(self, paths: &LocalPaths) -> Result<ConnectRequest, ToolError> {
        let agent = std::env::var("SSH_AUTH_SOCK")
            .ok()
            .filter(|s| !s.is_empty());
        self.into_request_with_agent(paths, agent)
    }

    /// The request, with `agent_socket` as the ssh-agent to use; a
    /// relative socket path resolves like a local path.
    ///
    /// # Errors
    /// When the hostname is empty, the port is out of range, or a path
    /// cannot be resolved.
    pub fn into_request_with_agent(
        self,
        paths: &LocalPaths,
        agent_socket: Option<String>,
    ) -> Result<ConnectRequest, ToolError> {
        if self.hostname.trim().is_empty() {
            return Err(ToolError::new(
                "hostname is empty: give a host name, an address or a Host alias from \
                 ~/.ssh/config",
            ));
        }
        let port = match self.port {
            None => None,
            Some(port) => Some(
                u16::try_from(port)
                    .ok()
                    .filter(|port| *port != 0)
                    .ok_or_else(|| {
                        ToolError::new(format!(
                            "port must be between 1 and 65535, not {port}; leave it out for the \
                             SSH default, {DEFAULT_PORT}"
                        ))
                    })?,
            ),
        };
        let private_key = match self.private_key {
            Some(key) if key.contains("-----BEGIN") || key.contains('\n') => {
                return Err(ToolError::new(
                    "private_key takes the path of a key file, not the key itself: save the key \
                     to a file readable only by you and pass its path",
                ));
            }
            Some(key) => Some(paths.resolve("private_key", &key)?),
            None => None,
        };
        let agent_socket = match agent_socket {
            Some(socket) => Some(paths.resolve("SSH_AUTH_SOCK", &socket)?),
            None => None,
        };
        Ok(ConnectRequest {
            hostname: self.hostname,
            username: self.username.filter(|u| !u.trim().is_empty()),
            port,
            password: self.password.map(Secret::new),
            private_key,
            passphrase: self.passphrase.map(Secret::new),
            jump: self.jump.filter(|j| !j.trim().is_empty()),
            agent_socket,
            secret_ref: None,
            approved_host_keys: Vec::new(),
        })
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ConnectOutput {
    /// Pass this to execute, upload, download and disconnect.
    pub session_id: String,
    /// The server's host key, `SHA256:…` as `ssh-keygen -lf` prints it.
    pub host_key_fingerprint: String,
    /// True when the host was unknown and its key was just added to
    /// known_hosts.
    pub host_key_learned: bool,
    /// Where the session went: `user@host:port` after defaults were applied.
    pub target: String,
    /// The login method that succeeded.
    pub auth_method: String,
}

impl From<ConnectResult> for ConnectOutput {
    fn from(r: ConnectResult) -> Self {
        ConnectOutput {
            session_id: r.session_id,
            host_key_fingerprint: r.host_key_fingerprint,
            host_key_learned: r.host_key_learned,
            target: format!("{}@{}:{}", r.username, r.hostname, r.port),
            auth_method: r.auth_method,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DisconnectArgs {
    /// The session to close, as returned by connect or list_sessions.
    pub session_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DisconnectOutput {
    /// What was closed.
    pub status: String,
    /// The session that was closed.
    pub session_id: String,
}

impl DisconnectOutput {
    /// `session` is what the daemon listed for this id before closing it, if
    /// it could be read, so the status names the machine too.
    pub fn new(session_id: String, session: Option<&SessionInfo>) -> Self {
        let status = match session {
            Some(s) => format!(
                "disconnected session {session_id} ({}@{}:{})",
                s.username, s.hostname, s.port
            ),
            None => format!("disconnected session {session_id}"),
        };
        DisconnectOutput { status, session_id }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListSessionsOutput {
    pub sessions: Vec<SessionEntry>,
}

#[derive(Debug, Serialize, JsonSchema, PartialEq, Eq)]
pub struct SessionEntry {
    pub session_id: String,
    pub hostname: String,
    pub username: String,
    pub port: u16,
    /// `connected`, or `disconnected` when the SSH connection was lost.
    pub status: String,
    /// When the session was opened (RFC 3339, UTC).
    pub connected_at: String,
    /// When the session was last used (RFC 3339, UTC).
    pub last_used_at: String,
    /// The name given to connect, when it was an ~/.ssh/config alias.
    pub alias: Option<String>,
    /// Jump hosts the session goes through.
    pub jump: Option<String>,
    /// Commands run on the session.
    pub commands_run: u64,
    /// Bytes uploaded and downloaded on the session.
    pub bytes_moved: u64,
    /// Why the session is disconnected, or the last failed call's error.
    pub last_error: Option<String>,
}

impl From<SessionInfo> for SessionEntry {
    fn from(s: SessionInfo) -> Self {
        SessionEntry {
            status: s.state.as_str().to_owned(),
            connected_at: rfc3339(s.connected_at_ms),
            last_used_at: rfc3339(s.last_used_at_ms),
            session_id: s.session_id,
            hostname: s.hostname,
            username: s.username,
            port: s.port,
            alias: s.alias,
            jump: s.jump,
            commands_run: s.commands_run,
            bytes_moved: s.bytes_moved,
            last_error: s.last_error,
        }
    }
}

/// RFC 3339 in UTC to the second. Times past year 9999, which humantime
/// cannot format, are clamped to its last second rather than failing the
/// whole listing.
pub fn rfc3339(ms_since_epoch: u64) -> String {
    const LAST_SECOND_OF_9999: u64 = 253_402_300_799;
    let secs = (ms_since_epoch / 1000).min(LAST_SECOND_OF_9999);
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .to_string()
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteArgs {
    /// The session to run in, as returned by connect or list_sessions.
    pub session_id: String,
    /// Shell command line, run by the remote user's login shell.
    pub command: String,
    /// Text written to the command's standard input, which is then closed.
    pub stdin: Option<String>,
    /// Seconds after which the command is stopped and its output so far
    /// returned. No limit when left out: pass one for anything that might
    /// not end by itself.
    #[schemars(range(min = 1))]
    pub timeout: Option<i64>,
    /// Remote directory to run in (~/ is the remote home). Default: the
    /// login directory.
    pub cwd: Option<String>,
    /// Environment variables for this command only.
    pub env: Option<BTreeMap<String, String>>,
    /// Run under a pseudo-terminal, for commands that insist on one. Output
    /// then arrives merged in stdout (stderr is empty) with terminal line
    /// endings, and stdin is echoed. Default false.
    pub pty: Option<bool>,
    /// Bytes of each stream to return inline (default 32768). Longer output
    /// comes back as its head and tail, with the whole stream saved in a file
    /// named in stdout_file / stderr_file.
    #[schemars(range(min = 2))]
    pub max_output_bytes: Option<u64>,
}

impl ExecuteArgs {
    /// # Errors
    /// When the timeout is not positive or too large, or stdin is over the
    /// protocol's cap.
    pub fn into_request(self) -> Result<ExecuteRequest, ToolError> {
        let timeout_ms = match self.timeout {
            None => None,
            Some(secs) if secs <= 0 => {
                return Err(ToolError::new(format!(
                    "timeout must be a positive number of seconds, not {secs}; leave it out to \
                     wait as long as the command runs"
                )));
            }
            Some(secs) => Some(
                u64::try_from(secs)
                    .ok()
                    .and_then(|secs| secs.checked_mul(1000))
                    .ok_or_else(|| {
                        ToolError::new(format!(
                            "timeout {secs} is too large; leave it out for no limit"
                        ))
                    })?,
            ),
        };
        let stdin = self.stdin.map(String::into_bytes);
        if let Some(len) = stdin.as_ref().map(Vec::len)
            && len > MAX_STDIN_BYTES
        {
            return Err(ToolError::new(format!(
                "stdin is {len} bytes, over the {MAX_STDIN_BYTES}-byte limit: upload the data as \
                 a file and redirect it into the command instead (`command < file`)"
            )));
        }
        if self
            .max_output_bytes
            .is_some_and(|n| n > MAX_OUTPUT_BYTES as u64)
        {
            return Err(ToolError::new(format!(
                "max_output_bytes may be at most {MAX_OUTPUT_BYTES}; the full output is always \
                 saved to a file when it is longer"
            )));
        }
        Ok(ExecuteRequest {
            session_id: self.session_id,
            command: self.command,
            stdin,
            timeout_ms,
            cwd: self.cwd.filter(|d| !d.is_empty()),
            env: self.env.unwrap_or_default().into_iter().collect(),
            pty: self.pty.unwrap_or(false),
            max_output_bytes: self.max_output_bytes,
        })
    }
}

#[derive(Debug, Serialize, JsonSchema, PartialEq)]
pub struct ExecuteOutput {
    /// Standard output; when long, its head and tail around a marker that
    /// says how much was left out and where the whole of it is.
    pub stdout: String,
    /// Standard error, shortened like stdout.
    pub stderr: String,
    /// The command's exit status; null when a signal ended it or none was
    /// reported.
    pub exit_status: Option<u32>,
    /// The signal that ended the command, without `SIG` (e.g. `KILL`).
    pub signal: Option<String>,
    /// True when the timeout stopped the command; the output is what it wrote
    /// until then.
    pub timed_out: bool,
    /// Which limit stopped it, when timed_out: "timeout" (this call's),
    /// "default_timeout" or "max_timeout" (the daemon's configuration).
    pub timeout_source: Option<String>,
    /// The limit that applied, in seconds, if any.
    pub timeout_seconds: Option<f64>,
    /// True when stdout was not valid UTF-8 and invalid bytes were replaced
    /// with U+FFFD.
    pub stdout_lossy: bool,
    /// True when stderr was not valid UTF-8 and invalid bytes were replaced
    /// with U+FFFD.
    pub stderr_lossy: bool,
    /// True when either stream was shortened.
    pub truncated: bool,
    /// True when stdout was shortened (see stdout_file).
    pub stdout_truncated: bool,
    /// True when stderr was shortened (see stderr_file).
    pub stderr_truncated: bool,
    /// Bytes the command wrote to stdout in all.
    pub stdout_bytes: u64,
    /// Bytes the command wrote to stderr in all.
    pub stderr_bytes: u64,
    /// A file on the machine running this server holding all of stdout, when
    /// it was shortened; read or grep it with your own tools.
    pub stdout_file: Option<String>,
    /// The same for stderr.
    pub stderr_file: Option<String>,
    /// True when the session's connection had dropped and was re-opened
    /// before the command ran.
    pub reconnected: bool,
}

impl From<ExecuteResult> for ExecuteOutput {
    fn from(r: ExecuteResult) -> Self {
        let stdout_truncated = r.stdout.omitted_bytes > 0;
        let stderr_truncated = r.stderr.omitted_bytes > 0;
        let (stdout_bytes, stderr_bytes) = (r.stdout.total_bytes, r.stderr.total_bytes);
        let stdout_file = r.stdout.spill_path.clone();
        let stderr_file = r.stderr.spill_path.clone();
        let (stdout, stdout_lossy) = stream_text(r.stdout);
        let (stderr, stderr_lossy) = stream_text(r.stderr);
        ExecuteOutput {
            stdout,
            stderr,
            exit_status: r.exit_status,
            signal: r.signal,
            timed_out: r.timed_out,
            timeout_source: r.deadline.filter(|_| r.timed_out).map(|d| {
                match d.source {
                    DeadlineSource::Request => "timeout",
                    DeadlineSource::ConfigDefault => "default_timeout",
                    DeadlineSource::ConfigMax => "max_timeout",
                }
                .to_owned()
            }),
            timeout_seconds: r.deadline.map(|d| d.ms as f64 / 1000.0),
            stdout_lossy,
            stderr_lossy,
            truncated: stdout_truncated || stderr_truncated,
            stdout_truncated,
            stderr_truncated,
            stdout_bytes,
            stderr_bytes,
            stdout_file,
            stderr_file,
            reconnected: r.reconnected,
        }
    }
}

/// One stream as text: whole when it fit, else head, a marker and tail. The
/// cut points may split a UTF-8 character; the broken pieces at the cuts are
/// dropped rather than shown as replacement characters.
pub fn stream_text(out: StreamOutput) -> (String, bool) {
    if out.omitted_bytes == 0 {
        let mut whole = out.head;
        whole.extend_from_slice(&out.tail);
        return utf8_lossy(whole);
    }
    let head = trim_partial_end(out.head);
    let tail = trim_partial_start(out.tail);
    let (head, head_lossy) = utf8_lossy(head);
    let (tail, tail_lossy) = utf8_lossy(tail);
    let whole = match (&out.spill_path, out.spill_truncated) {
        (Some(path), false) => format!("the whole output is in {path}"),
        (Some(path), true) => format!("{path} holds the output up to its size cap"),
        (None, _) => "the whole output could not be saved (see the daemon's log)".to_owned(),
    };
    let marker = format!(
        "\n[... {} bytes omitted of {}; {whole} ...]\n",
        out.omitted_bytes, out.total_bytes
    );
    (format!("{head}{marker}{tail}"), head_lossy || tail_lossy)
}

/// Drops an incomplete UTF-8 sequence at the end of `bytes`.
fn trim_partial_end(mut bytes: Vec<u8>) -> Vec<u8> {
    let start = bytes.len().saturating_sub(3);
    for i in (start..bytes.len()).rev() {
        let b = bytes[i];
        if b & 0xC0 == 0x80 {
            continue;
        }
        let need = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        if bytes.len() - i < need {
            bytes.truncate(i);
        }
        break;
    }
    bytes
}

/// Drops UTF-8 continuation bytes at the start of `bytes` (at most three).
fn trim_partial_start(bytes: Vec<u8>) -> Vec<u8> {
    let skip = bytes
        .iter()
        .take(3)
        .take_while(|b| **b & 0xC0 == 0x80)
        .count();
    bytes[skip..].to_vec()
}

/// The bytes as text, and whether any had to be replaced to get it. Valid
/// UTF-8 is moved, not copied.
pub fn utf8_lossy(bytes: Vec<u8>) -> (String, bool) {
    match String::from_utf8(bytes) {
        Ok(text) => (text, false),
        Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadArgs {
    /// The session whose machine receives the file.
    pub session_id: String,
    /// The file to send, on the machine running this server. A leading ~ is
    /// your home directory; a relative path is relative to this server's
    /// working directory.
    pub local_path: String,
    /// Where to write it on the remote machine; relative to the remote
    /// user's home directory (also written ~/) unless absolute.
    pub remote_path: String,
    /// Copy a whole directory tree (file modes and symlinks as links).
    /// Default false.
    pub recursive: Option<bool>,
    /// Keep modification times, and modes even over existing files.
    /// Default false.
    pub preserve: Option<bool>,
}

impl UploadArgs {
    /// # Errors
    /// When `local_path` cannot be resolved.
    pub fn into_request(self, paths: &LocalPaths) -> Result<TransferRequest, ToolError> {
        Ok(TransferRequest {
            local_path: paths.resolve("local_path", &self.local_path)?,
            session_id: self.session_id,
            remote_path: remote_path(self.remote_path),
            recursive: self.recursive.unwrap_or(false),
            preserve: self.preserve.unwrap_or(false),
        })
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DownloadArgs {
    /// The session whose machine holds the file.
    pub session_id: String,
    /// The file to fetch on the remote machine; relative to the remote user's
    /// home directory (also written ~/) unless absolute.
    pub remote_path: String,
    /// Where to write it on the machine running this server. A leading ~ is
    /// your home directory; a relative path is relative to this server's
    /// working directory.
    pub local_path: String,
    /// Copy a whole directory tree (file modes and symlinks as links).
    /// Default false.
    pub recursive: Option<bool>,
    /// Keep modification times, and modes even over existing files.
    /// Default false.
    pub preserve: Option<bool>,
}

impl DownloadArgs {
    /// # Errors
    /// When `local_path` cannot be resolved.
    pub fn into_request(self, paths: &LocalPaths) -> Result<TransferRequest, ToolError> {
        Ok(TransferRequest {
            local_path: paths.resolve("local_path", &self.local_path)?,
            session_id: self.session_id,
            remote_path: remote_path(self.remote_path),
            recursive: self.recursive.unwrap_or(false),
            preserve: self.preserve.unwrap_or(false),
        })
    }
}

/// Turns a leading `~` or `~/` into a path relative to the remote user's
/// home directory, which is what SFTP resolves relative paths against:
/// models write `~/file`, but SFTP servers take `~` literally. `~user` is
/// left for the daemon to report.
pub fn remote_path(path: String) -> String {
    match path.strip_prefix('~') {
        Some("") => ".".to_owned(),
        Some(rest) if rest.starts_with('/') => match rest.trim_start_matches('/') {
            "" => ".".to_owned(),
            rest => rest.to_owned(),
        },
        _ => path,
    }
}

#[derive(Debug, Serialize, JsonSchema, PartialEq, Eq)]
pub struct TransferOutput {
    /// What was copied where, and anything worth knowing about it.
    pub status: String,
    pub bytes_transferred: u64,
    /// The local file, fully resolved.
    pub local_path: String,
    /// The remote file, fully resolved.
    pub remote_path: String,
    /// Regular files copied (1 for a single file).
    pub files: u64,
    /// Entries of a tree that were not copied, and why.
    pub skipped: Vec<String>,
    /// True when the session's connection had dropped and was re-opened
    /// first.
    pub reconnected: bool,
}

/// Which way a transfer went, for its status message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Upload,
    Download,
}

impl TransferOutput {
    pub fn new(direction: Direction, r: TransferResult) -> Self {
        let unit = if r.bytes == 1 { "byte" } else { "bytes" };
        let files = if r.files == 1 {
            String::new()
        } else {
            format!(" in {} files", r.files)
        };
        let unit = format!("{unit}{files}");
        let mut status = match direction {
            Direction::Upload => format!(
                "uploaded {} {unit} from {} to {}",
                r.bytes, r.local_path, r.remote_path
            ),
            Direction::Download => format!(
                "downloaded {} {unit} from {} to {}",
                r.bytes, r.remote_path, r.local_path
            ),
        };
        if r.replaced {
            status.push_str(", replacing the file that was there");
        }
        for note in &r.notes {
            status.push_str(". Note: ");
            status.push_str(note);
        }
        if !r.skipped.is_empty() {
            status.push_str(&format!(
                ". Skipped {}: {}",
                r.skipped.len(),
                r.skipped.join("; ")
            ));
        }
        TransferOutput {
            status,
            bytes_transferred: r.bytes,
            local_path: r.local_path,
            remote_path: r.remote_path,
            files: r.files,
            skipped: r.skipped,
            reconnected: r.reconnected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshmcp_proto::SessionState;

    fn paths() -> LocalPaths {
        LocalPaths {
            home: Some(PathBuf::from("/home/ada")),
            cwd: Some(PathBuf::from("/work/project")),
        }
    }

    fn connect_args() -> ConnectArgs {
        ConnectArgs {
            hostname: "example.net".into(),
            username: Some("ada".into()),
            password: None,
            private_key: Some("~/.ssh/id_ed25519".into()),
            passphrase: None,
            port: None,
            jump: None,
        }
    }

    #[test]
    fn tilde_expands_to_home() {
        let p = paths();
        assert_eq!(p.resolve("f", "~").unwrap(), "/home/ada");
        assert_eq!(p.resolve("f", "~/").unwrap(), "/home/ada");
        assert_eq!(p.resolve("f", "~/.ssh/id").unwrap(), "/home/ada/.ssh/id");
    }

    #[test]
    fn tilde_user_is_refused() {
        let e = paths().resolve("local_path", "~bob/x").unwrap_err();
        assert!(e.message().contains("~user"), "{e}");
    }

    #[test]
    fn relative_paths_resolve_against_cwd() {
        let p = paths();
        assert_eq!(p.resolve("f", "out.txt").unwrap(), "/work/project/out.txt");
        assert_eq!(p.resolve("f", "./a/./b/").unwrap(), "/work/project/a/b");
        assert_eq!(p.resolve("f", "../x").unwrap(), "/work/project/../x");
        assert_eq!(p.resolve("f", "/abs/path").unwrap(), "/abs/path");
    }

    #[test]
    fn unresolvable_paths_are_errors() {
        let p = LocalPaths {
            home: None,
            cwd: None,
        };
        assert!(p.resolve("f", "").is_err());
        assert!(
            p.resolve("f", "~/x")
                .unwrap_err()
                .message()
                .contains("HOME")
        );
        assert!(
            p.resolve("f", "rel")
                .unwrap_err()
                .message()
                .contains("absolute")
        );
        assert_eq!(p.resolve("f", "/abs").unwrap(), "/abs");
    }

    #[test]
    fn connect_defaults_port_and_resolves_key() {
        let request = connect_args().into_request(&paths()).unwrap();
        assert_eq!(request.port, None, "the daemon applies ssh config, then 22");
        assert_eq!(
            request.private_key.as_deref(),
            Some("/home/ada/.ssh/id_ed25519")
        );
        assert_eq!(request.password, None);
    }

    #[test]
    fn connect_passes_password_and_port() {
        let args = ConnectArgs {
            password: Some("hunter2".into()),
            private_key: None,
            port: Some(2222),
            ..connect_args()
        };
        let request = args.into_request(&paths()).unwrap();
        assert_eq!(request.port, Some(2222));
        assert_eq!(
            request.password.as_ref().map(Secret::expose),
            Some("hunter2")
        );
        assert_eq!(request.private_key, None);
    }

    #[test]
    fn connect_validates_port() {
        for port in [0, -1, 65536] {
            let args = ConnectArgs {
                port: Some(port),
                ..connect_args()
            };
            let e = args.into_request(&paths()).unwrap_err();
            assert!(e.message().contains("between 1 and 65535"), "{e}");
        }
        let args = ConnectArgs {
            port: Some(65535),
            ..connect_args()
        };
        assert_eq!(args.into_request(&paths()).unwrap().port, Some(65535));
    }

    #[test]
    fn connect_without_credentials_leaves_the_choice_to_the_daemon() {
        let args = ConnectArgs {
            username: None,
            private_key: None,
            ..connect_args()
        };
        let request = args
            .into_request_with_agent(&paths(), Some("/run/user/1000/agent.sock".into()))
            .unwrap();
        assert_eq!(request.username, None, "from ssh config or the local user");
        assert_eq!((request.password, request.private_key), (None, None));
        assert_eq!(
            request.agent_socket.as_deref(),
            Some("/run/user/1000/agent.sock")
        );
        let request = connect_args()
            .into_request_with_agent(&paths(), None)
            .unwrap();
        assert_eq!(request.agent_socket, None);
    }

    #[test]
    fn connect_passes_passphrase_and_jump() {
        let args = ConnectArgs {
            passphrase: Some("s3cret".into()),
            jump: Some("ops@bastion:2222,gw".into()),
            ..connect_args()
        };
        let request = args.into_request_with_agent(&paths(), None).unwrap();
        assert_eq!(
            request.passphrase.as_ref().map(Secret::expose),
            Some("s3cret")
        );
        assert_eq!(request.jump.as_deref(), Some("ops@bastion:2222,gw"));
        assert!(!format!("{request:?}").contains("s3cret"));
        let e = ConnectArgs {
            hostname: " ".into(),
            ..connect_args()
        }
        .into_request_with_agent(&paths(), None)
        .unwrap_err();
        assert!(e.message().contains("hostname is empty"), "{e}");
    }

    #[test]
    fn connect_refuses_key_contents() {
        let args = ConnectArgs {
            private_key: Some("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n".into()),
            ..connect_args()
        };
        let e = args.into_request(&paths()).unwrap_err();
        assert!(e.message().contains("path of a key file"), "{e}");
    }

    #[test]
    fn connect_args_reject_unknown_fields() {
        let parsed = serde_json::from_value::<ConnectArgs>(serde_json::json!({
            "hostname": "h", "username": "u", "key_file": "/k"
        }));
        assert!(parsed.is_err());
    }

    #[test]
    fn execute_converts_timeout_and_stdin() {
        let args = ExecuteArgs {
            session_id: "s1".into(),
            command: "cat".into(),
            stdin: Some("hi".into()),
            timeout: Some(30),
            cwd: None,
            env: None,
            pty: None,
            max_output_bytes: None,
        };
        let request = args.into_request().unwrap();
        assert_eq!(request.timeout_ms, Some(30_000));
        assert_eq!(request.stdin.as_deref(), Some(&b"hi"[..]));

        let args = ExecuteArgs {
            session_id: "s1".into(),
            command: "true".into(),
            stdin: None,
            timeout: None,
            cwd: None,
            env: None,
            pty: None,
            max_output_bytes: None,
        };
        let request = args.into_request().unwrap();
        assert_eq!(request.timeout_ms, None);
        assert_eq!(request.stdin, None);
    }

    #[test]
    fn execute_validates_timeout() {
        for timeout in [0, -5, i64::MAX] {
            let args = ExecuteArgs {
                session_id: "s1".into(),
                command: "true".into(),
                stdin: None,
                timeout: Some(timeout),
                cwd: None,
                env: None,
                pty: None,
                max_output_bytes: None,
            };
            assert!(args.into_request().is_err(), "timeout {timeout}");
        }
    }

    #[test]
    fn execute_caps_stdin() {
        let args = ExecuteArgs {
            session_id: "s1".into(),
            command: "cat".into(),
            stdin: Some("x".repeat(MAX_STDIN_BYTES + 1)),
            timeout: None,
            cwd: None,
            env: None,
            pty: None,
            max_output_bytes: None,
        };
        let e = args.into_request().unwrap_err();
        assert!(e.message().contains("upload"), "{e}");
    }

    #[test]
    fn descriptions_state_the_real_caps() {
        assert_eq!(sshmcp_proto::DEFAULT_OUTPUT_BYTES, 32 * 1024);
        assert!(EXECUTE_DESCRIPTION.contains("32 KiB"));
    }

    #[test]
    fn execute_passes_cwd_env_pty_and_caps() {
        let args: ExecuteArgs = serde_json::from_value(serde_json::json!({
            "session_id": "s1", "command": "make", "cwd": "~/src",
            "env": {"B": "2", "A": "1"}, "pty": true, "max_output_bytes": 100
        }))
        .unwrap();
        let r = args.into_request().unwrap();
        assert_eq!(r.cwd.as_deref(), Some("~/src"));
        assert_eq!(
            r.env,
            vec![("A".into(), "1".into()), ("B".into(), "2".into())]
        );
        assert!(r.pty);
        assert_eq!(r.max_output_bytes, Some(100));
        let too_big: ExecuteArgs = serde_json::from_value(serde_json::json!({
            "session_id": "s1", "command": "x", "max_output_bytes": u64::MAX
        }))
        .unwrap();
        assert!(too_big.into_request().is_err());
    }

    #[test]
    fn long_output_shows_head_marker_and_tail_without_broken_characters() {
        // "é" is two bytes; the cuts fall inside one at each end.
        let (text, lossy) = stream_text(StreamOutput {
            head: b"ab\xc3".to_vec(),
            tail: b"\xa9cd".to_vec(),
            total_bytes: 100,
            omitted_bytes: 94,
            spill_path: Some("/state/x.log".into()),
            spill_truncated: false,
        });
        assert!(!lossy);
        assert_eq!(
            text,
            "ab\n[... 94 bytes omitted of 100; the whole output is in /state/x.log ...]\ncd"
        );
    }

    #[test]
    fn utf8_is_flagged_only_when_lossy() {
        assert_eq!(utf8_lossy(b"ok\n".to_vec()), ("ok\n".to_owned(), false));
        assert_eq!(
            utf8_lossy(vec![b'a', 0xff, b'b']),
            ("a\u{fffd}b".to_owned(), true)
        );
    }

    #[test]
    fn execute_output_flags_each_stream() {
        let output = ExecuteOutput::from(ExecuteResult {
            stdout: StreamOutput {
                head: vec![0xc3, 0x28],
                total_bytes: 2,
                ..StreamOutput::default()
            },
            stderr: StreamOutput {
                head: b"fi".to_vec(),
                tail: b"ne".to_vec(),
                total_bytes: 10,
                omitted_bytes: 6,
                spill_path: Some("/s/e.log".into()),
                spill_truncated: false,
            },
            exit_status: None,
            signal: Some("KILL".into()),
            timed_out: true,
            deadline: Some(sshmcp_proto::Deadline {
                ms: 1500,
                source: DeadlineSource::ConfigMax,
            }),
            reconnected: false,
        });
        assert_eq!(output.timeout_source.as_deref(), Some("max_timeout"));
        assert_eq!(output.timeout_seconds, Some(1.5));
        assert!(output.stdout_lossy);
        assert!(!output.stderr_lossy);
        assert!(
            output.stderr.starts_with("fi\n[... 6 bytes omitted"),
            "{}",
            output.stderr
        );
        assert_eq!(output.signal.as_deref(), Some("KILL"));
        assert!(output.timed_out && output.stderr_truncated && output.truncated);
        assert!(!output.stdout_truncated);
        assert_eq!(output.stderr_file.as_deref(), Some("/s/e.log"));
        assert_eq!((output.stdout_bytes, output.stderr_bytes), (2, 10));
        let json = serde_json::to_value(&output).unwrap();
        assert_eq!(json["exit_status"], serde_json::Value::Null);
    }

    #[test]
    fn rfc3339_formats_to_the_second() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_999), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn sessions_map_state_and_times() {
        let entry = SessionEntry::from(SessionInfo {
            session_id: "s1".into(),
            hostname: "h".into(),
            username: "u".into(),
            port: 22,
            state: SessionState::Disconnected,
            connected_at_ms: 0,
            last_used_at_ms: 1_000,
            alias: None,
            jump: None,
            commands_run: 0,
            bytes_moved: 0,
            last_error: None,
        });
        assert_eq!(entry.status, "disconnected");
        assert_eq!(entry.connected_at, "1970-01-01T00:00:00Z");
        assert_eq!(entry.last_used_at, "1970-01-01T00:00:01Z");
    }

    #[test]
    fn transfer_status_names_paths_bytes_and_notes() {
        let output = TransferOutput::new(
            Direction::Download,
            TransferResult {
                local_path: "/l/f".into(),
                remote_path: "/r/f".into(),
                bytes: 1,
                replaced: true,
                notes: vec!["the replace was not atomic".into()],
                files: 1,
                skipped: Vec::new(),
                reconnected: false,
            },
        );
        assert_eq!(
            output.status,
            "downloaded 1 byte from /r/f to /l/f, replacing the file that was there. Note: the \
             replace was not atomic"
        );
        assert_eq!(output.bytes_transferred, 1);
    }

    #[test]
    fn transfer_args_resolve_local_path_only() {
        let upload = UploadArgs {
            session_id: "s1".into(),
            local_path: "build/app.tar".into(),
            remote_path: "app.tar".into(),
            recursive: None,
            preserve: None,
        };
        let request = upload.into_request(&paths()).unwrap();
        assert_eq!(request.local_path, "/work/project/build/app.tar");
        assert_eq!(request.remote_path, "app.tar");

        let download = DownloadArgs {
            session_id: "s1".into(),
            remote_path: "~/log".into(),
            local_path: "~/log".into(),
            recursive: None,
            preserve: None,
        };
        let request = download.into_request(&paths()).unwrap();
        assert_eq!(request.local_path, "/home/ada/log");
        assert_eq!(request.remote_path, "log");
    }

    #[test]
    fn remote_tilde_becomes_home_relative() {
        assert_eq!(remote_path("~".into()), ".");
        assert_eq!(remote_path("~/".into()), ".");
        assert_eq!(remote_path("~/a/b".into()), "a/b");
        assert_eq!(remote_path("~bob/a".into()), "~bob/a");
        assert_eq!(remote_path("/etc/~/x".into()), "/etc/~/x");
        assert_eq!(remote_path("rel".into()), "rel");
    }

    #[test]
    fn disconnect_status_names_the_machine() {
        let info = SessionInfo {
            session_id: "s1".into(),
            hostname: "h".into(),
            username: "u".into(),
            port: 2222,
            state: SessionState::Connected,
            connected_at_ms: 0,
            last_used_at_ms: 0,
            alias: None,
            jump: None,
            commands_run: 0,
            bytes_moved: 0,
            last_error: None,
        };
        assert_eq!(
            DisconnectOutput::new("s1".into(), Some(&info)).status,
            "disconnected session s1 (u@h:2222)"
        );
        assert_eq!(
            DisconnectOutput::new("s1".into(), None).status,
            "disconnected session s1"
        );
    }
}
