//! Shared fixtures for the proto integration tests: one realistic value of
//! every message variant, hex helpers and a few hand-rolled readers.
//!
//! Each test binary uses a different subset of this module.
#![allow(dead_code)]

use sshmcp_proto::{
    ClientMessage, ConnectRequest, ConnectResult, DaemonStatus, Deadline, DeadlineSource,
    ErrorBody, ErrorKind, ExecuteRequest, ExecuteResult, HostKeyApproval, Needs, Progress, Request,
    Response, Secret, SecretKind, SecretPage, SecretPrompt, ServerMessage, SessionInfo,
    SessionState, StreamOutput, TransferRequest, TransferResult, UnknownHostKey,
};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// Lowercase hex without separators.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex, ignoring ASCII whitespace and `#` comments to the end of a
/// line, so pinned bytes can be grouped and labelled by field.
pub fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .lines()
        .flat_map(|line| line.split('#').next().unwrap_or("").bytes())
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in {s:?}"
    );
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// A jump chain as `connect` takes it: a user and port on the first hop, a
/// bare address on the second.
pub const JUMP_CHAIN: &str = "admin@bastion:2222,10.0.0.5";

/// A session reached through an `~/.ssh/config` alias and [`JUMP_CHAIN`]. A
/// disconnected one says why.
pub fn session(id: &str, state: SessionState) -> SessionInfo {
    SessionInfo {
        session_id: id.into(),
        hostname: "build-01.example.internal".into(),
        username: "deploy".into(),
        port: 2222,
        state,
        connected_at_ms: 1_735_689_600_000,
        last_used_at_ms: 1_735_693_200_123,
        alias: Some("build".into()),
        jump: Some(JUMP_CHAIN.into()),
        commands_run: 17,
        bytes_moved: 48_213_907,
        last_error: match state {
            SessionState::Connected => None,
            SessionState::Disconnected => {
                Some("the SSH connection was lost: connection reset by peer".into())
            }
        },
    }
}

/// A session that has done nothing yet: no alias, no jump, zero counters.
pub fn fresh_session(id: &str) -> SessionInfo {
    SessionInfo {
        session_id: id.into(),
        hostname: "10.0.0.5".into(),
        username: "root".into(),
        port: 22,
        state: SessionState::Connected,
        connected_at_ms: 0,
        last_used_at_ms: 0,
        alias: None,
        jump: None,
        commands_run: 0,
        bytes_moved: 0,
        last_error: None,
    }
}

/// A stream short enough to come whole in `head`.
pub fn whole_stream(bytes: &[u8]) -> StreamOutput {
    StreamOutput {
        head: bytes.to_vec(),
        tail: Vec::new(),
        total_bytes: bytes.len() as u64,
        omitted_bytes: 0,
        spill_path: None,
        spill_truncated: false,
    }
}

/// A stream of `total_bytes` that came as `head` and `tail`, the rest in a
/// spill file.
pub fn cut_stream(head: &[u8], tail: &[u8], total_bytes: u64, spill_path: &str) -> StreamOutput {
    let inline = (head.len() + tail.len()) as u64;
    assert!(total_bytes >= inline, "a cut stream holds its inline bytes");
    StreamOutput {
        head: head.to_vec(),
        tail: tail.to_vec(),
        total_bytes,
        omitted_bytes: total_bytes - inline,
        spill_path: Some(spill_path.into()),
        spill_truncated: false,
    }
}

/// One realistic value of every `Request` variant, in declaration order.
pub fn all_requests() -> Vec<Request> {
    vec![
        Request::Connect(ConnectRequest {
            hostname: "build-01.example.internal".into(),
            username: Some("deploy".into()),
            port: Some(22),
            password: Some(Secret::new("correct horse battery staple".into())),
            private_key: Some("/home/deploy/.ssh/id_ed25519".into()),
            passphrase: Some(Secret::new("tr0ub4dor&3 ünïcødé".into())),
            jump: Some(JUMP_CHAIN.into()),
            agent_socket: Some("/run/user/1000/gnupg/S.gpg-agent.ssh".into()),
            secret_ref: Some("6f1c2a9e-0b7d-4c8e-9a51-3d2e7f0b4c11".into()),
            approved_host_keys: vec![HostKeyApproval {
                host: "[build-01.example.internal]:2222".into(),
                fingerprint: "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s".into(),
            }],
        }),
        Request::Disconnect {
            session_id: "a1b2c3d4".into(),
        },
        Request::ListSessions,
        Request::Execute(ExecuteRequest {
            session_id: "a1b2c3d4".into(),
            command: "sort -u | head -n 3".into(),
            stdin: Some(b"pear\napple\npear\n\xff\x00binary".to_vec()),
            timeout_ms: Some(30_000),
            cwd: Some("~/src/app".into()),
            env: vec![
                ("LC_ALL".into(), "C.UTF-8".into()),
                ("RUST_LOG".into(), "debug,hyper=info".into()),
            ],
            pty: false,
            max_output_bytes: Some(65_536),
        }),
        Request::Upload(TransferRequest {
            session_id: "a1b2c3d4".into(),
            local_path: "/home/me/build/app.tar.gz".into(),
            remote_path: "/srv/releases/app.tar.gz".into(),
            recursive: false,
            preserve: true,
        }),
        Request::Download(TransferRequest {
            session_id: "a1b2c3d4".into(),
            local_path: "/home/me/logs/ünïcødé".into(),
            remote_path: "/var/log/app".into(),
            recursive: true,
            preserve: false,
        }),
        Request::Status,
        Request::Shutdown,
        Request::Cancel { id: 41 },
        Request::OpenSecretPage(SecretPrompt {
            kind: SecretKind::Passphrase,
            host: "build-01.example.internal".into(),
            username: "deploy".into(),
            key_path: Some("/home/deploy/.ssh/id_ed25519".into()),
        }),
        Request::AwaitSecret {
            id: "6f1c2a9e-0b7d-4c8e-9a51-3d2e7f0b4c11".into(),
        },
    ]
}

/// Extra requests that exercise the `None` / empty sides of optional fields.
pub fn edge_requests() -> Vec<Request> {
    vec![
        // Everything from `~/.ssh/config`: an alias and nothing else.
        Request::Connect(ConnectRequest {
            hostname: "build".into(),
            username: None,
            port: None,
            password: None,
            private_key: None,
            passphrase: None,
            jump: None,
            agent_socket: None,
            secret_ref: None,
            approved_host_keys: Vec::new(),
        }),
        // The agent only, through one jump host, with the port from config.
        Request::Connect(ConnectRequest {
            hostname: "10.0.0.5".into(),
            username: Some("root".into()),
            port: None,
            password: None,
            private_key: None,
            passphrase: None,
            jump: Some("bastion".into()),
            agent_socket: Some("/tmp/ssh-XXXXk3Jd9q/agent.4711".into()),
            secret_ref: None,
            approved_host_keys: Vec::new(),
        }),
        // An encrypted key and no password; extreme and empty values.
        Request::Connect(ConnectRequest {
            hostname: "[::1]".into(),
            username: Some(String::new()),
            port: Some(u16::MAX),
            password: None,
            private_key: Some("/home/me/.ssh/id_rsa".into()),
            passphrase: Some(Secret::new(String::new())),
            jump: Some(String::new()),
            agent_socket: Some(String::new()),
            secret_ref: None,
            approved_host_keys: Vec::new(),
        }),
        // A password and port 0, no user.
        Request::Connect(ConnectRequest {
            hostname: "db.example.internal".into(),
            username: None,
            port: Some(0),
            password: Some(Secret::new("hunter2".into())),
            private_key: None,
            passphrase: None,
            jump: Some(JUMP_CHAIN.into()),
            agent_socket: None,
            secret_ref: None,
            approved_host_keys: Vec::new(),
        }),
        Request::Execute(ExecuteRequest {
            session_id: String::new(),
            command: "true".into(),
            stdin: None,
            timeout_ms: None,
            cwd: None,
            env: Vec::new(),
            pty: false,
            max_output_bytes: None,
        }),
        Request::Execute(ExecuteRequest {
            session_id: "s".into(),
            command: "top -b -n 1".into(),
            stdin: Some(Vec::new()),
            timeout_ms: Some(u64::MAX),
            cwd: Some(String::new()),
            // An empty value, an `=` inside one, and non-ASCII.
            env: vec![
                ("EMPTY".into(), String::new()),
                ("OPTS".into(), "a=b c=d".into()),
                ("GRÜSSE".into(), "ünïcødé".into()),
            ],
            pty: true,
            max_output_bytes: Some(u64::MAX),
        }),
        Request::Execute(ExecuteRequest {
            session_id: "s".into(),
            command: "yes".into(),
            stdin: None,
            timeout_ms: Some(0),
            cwd: Some("/".into()),
            env: Vec::new(),
            pty: false,
            max_output_bytes: Some(0),
        }),
        Request::Upload(TransferRequest {
            session_id: "s".into(),
            local_path: "/home/me/site".into(),
            remote_path: "~/www".into(),
            recursive: true,
            preserve: true,
        }),
        Request::Cancel { id: 0 },
        Request::Cancel { id: u64::MAX },
        Request::OpenSecretPage(SecretPrompt {
            kind: SecretKind::Password,
            host: String::new(),
            username: String::new(),
            key_path: None,
        }),
        Request::AwaitSecret { id: String::new() },
    ]
}

/// One realistic value of every `Response` variant, in declaration order.
pub fn all_responses() -> Vec<Response> {
    vec![
        Response::Connected(ConnectResult {
            session_id: "a1b2c3d4".into(),
            host_key_fingerprint: "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8".into(),
            host_key_learned: true,
            hostname: "build-01.example.internal".into(),
            username: "deploy".into(),
            port: 2222,
            auth_method: "publickey".into(),
        }),
        Response::Disconnected {
            session_id: "a1b2c3d4".into(),
        },
        Response::Sessions(vec![
            session("a1b2c3d4", SessionState::Connected),
            session("e5f6a7b8", SessionState::Disconnected),
        ]),
        Response::Executed(ExecuteResult {
            stdout: whole_stream(b"apple\npear\n"),
            stderr: cut_stream(
                b"sort: warning: line 1\n",
                b"\x1b[0msort: warning: line 99999\n",
                3_588_866,
                "/home/me/.local/state/sshmcp/spill/a1b2c3d4-17.stderr",
            ),
            exit_status: Some(0),
            signal: None,
            timed_out: false,
            deadline: Some(Deadline {
                ms: 30_000,
                source: DeadlineSource::Request,
            }),
            reconnected: false,
        }),
        Response::Transferred(TransferResult {
            local_path: "/home/me/build/app.tar.gz".into(),
            remote_path: "/srv/releases/app.tar.gz".into(),
            bytes: 48_213_907,
            replaced: true,
            notes: vec!["the remote file was replaced non-atomically".into()],
            files: 1,
            skipped: Vec::new(),
            reconnected: false,
        }),
        Response::Status(DaemonStatus {
            pid: 41_234,
            version: "sshmcpd 0.1.0".into(),
            proto_version: sshmcp_proto::PROTOCOL_VERSION,
            uptime_s: 86_461,
            socket: "/run/user/1000/sshmcp/sshmcpd.sock".into(),
            log_path: "/home/me/.local/state/sshmcp/sshmcpd.log".into(),
            sessions: vec![session("a1b2c3d4", SessionState::Connected)],
            socket_activated: false,
        }),
        Response::ShuttingDown,
        Response::Error(ErrorBody::new(
            ErrorKind::UnknownSession,
            "no session \"zz\"; known sessions: a1b2c3d4",
        )),
        Response::Progress(Progress {
            elapsed_ms: 1_500,
            done: 12_582_912,
            total: Some(48_213_907),
        }),
        Response::SecretPage(SecretPage {
            id: "6f1c2a9e-0b7d-4c8e-9a51-3d2e7f0b4c11".into(),
            url: "http://127.0.0.1:41233/q8Xr1vTzN0bKpL2mYcW5sJ7dF3hG9aE4".into(),
            expires_in_s: 300,
        }),
        Response::SecretReceived,
    ]
}

/// Extra responses for the `None` / empty / extreme sides of fields.
pub fn edge_responses() -> Vec<Response> {
    vec![
        // Password login to a host given by address: no alias to resolve.
        Response::Connected(ConnectResult {
            session_id: "e5f6a7b8".into(),
            host_key_fingerprint: "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s".into(),
            host_key_learned: false,
            hostname: "10.0.0.5".into(),
            username: "root".into(),
            port: u16::MAX,
            auth_method: "keyboard-interactive".into(),
        }),
        Response::Connected(ConnectResult {
            session_id: String::new(),
            host_key_fingerprint: String::new(),
            host_key_learned: false,
            hostname: String::new(),
            username: String::new(),
            port: 0,
            auth_method: String::new(),
        }),
        Response::Sessions(Vec::new()),
        Response::Sessions(vec![
            fresh_session("00000000"),
            SessionInfo {
                commands_run: u64::MAX,
                bytes_moved: u64::MAX,
                last_error: Some("ünïcødé error: timed out after 30 s".into()),
                ..session("ffffffff", SessionState::Connected)
            },
            session("e5f6a7b8", SessionState::Disconnected),
        ]),
        Response::Executed(ExecuteResult {
            stdout: StreamOutput::default(),
            stderr: StreamOutput::default(),
            exit_status: None,
            signal: Some("KILL".into()),
            timed_out: true,
            deadline: Some(Deadline {
                ms: u64::MAX,
                source: DeadlineSource::ConfigMax,
            }),
            reconnected: true,
        }),
        Response::Executed(ExecuteResult {
            stdout: whole_stream(&[0; 1000]),
            stderr: StreamOutput::default(),
            exit_status: Some(u32::MAX),
            signal: None,
            timed_out: false,
            deadline: Some(Deadline {
                ms: 0,
                source: DeadlineSource::ConfigDefault,
            }),
            reconnected: false,
        }),
        // A pty run that outgrew its spill file: stdout holds both streams,
        // and the file lacks the end.
        Response::Executed(ExecuteResult {
            stdout: StreamOutput {
                spill_truncated: true,
                ..cut_stream(
                    b"\x1b[?1049h\x1b[H",
                    b"\r\nDone.\r\n",
                    u64::MAX,
                    "/tmp/sshmcp-spill/ünïcødé.out",
                )
            },
            stderr: StreamOutput::default(),
            exit_status: Some(130),
            signal: Some("INT".into()),
            timed_out: false,
            deadline: None,
            reconnected: true,
        }),
        Response::Transferred(TransferResult {
            local_path: String::new(),
            remote_path: String::new(),
            bytes: 0,
            replaced: false,
            notes: Vec::new(),
            files: 0,
            skipped: Vec::new(),
            reconnected: false,
        }),
        Response::Transferred(TransferResult {
            local_path: "/home/me/site".into(),
            remote_path: "/home/deploy/www".into(),
            bytes: 734_003_200,
            replaced: false,
            notes: vec!["modes and modification times were kept".into()],
            files: 1_204,
            skipped: vec![
                "cache/fifo: not a regular file, directory or symlink".into(),
                "img/caf\u{fffd}.png: name is not UTF-8".into(),
            ],
            reconnected: true,
        }),
        // Started by systemd socket activation, with sessions in both states.
        Response::Status(DaemonStatus {
            pid: u32::MAX,
            version: "sshmcpd 0.1.0".into(),
            proto_version: sshmcp_proto::PROTOCOL_VERSION,
            uptime_s: 0,
            socket: "/run/user/1000/sshmcp/sshmcpd.sock".into(),
            log_path: "/home/me/.local/state/sshmcp/sshmcpd.log".into(),
            sessions: vec![
                session("a1b2c3d4", SessionState::Connected),
                session("e5f6a7b8", SessionState::Disconnected),
                fresh_session("00000000"),
            ],
            socket_activated: true,
        }),
        Response::Error(ErrorBody::new(
            ErrorKind::Cancelled,
            "the call was cancelled; the command was killed",
        )),
        Response::Progress(Progress {
            elapsed_ms: 0,
            done: 0,
            total: None,
        }),
        Response::Progress(Progress {
            elapsed_ms: u64::MAX,
            done: u64::MAX,
            total: Some(0),
        }),
        Response::Error(
            ErrorBody::new(ErrorKind::AuthFailed, "needs a password").with_needs(Needs::Secret(
                SecretPrompt {
                    kind: SecretKind::Password,
                    host: "[h]:2222".into(),
                    username: "u".into(),
                    key_path: None,
                },
            )),
        ),
        Response::Error(
            ErrorBody::new(ErrorKind::HostKeyRejected, "unknown host").with_needs(Needs::HostKey(
                UnknownHostKey {
                    host: "h".into(),
                    algorithm: "ssh-ed25519".into(),
                    fingerprint: "SHA256:x".into(),
                },
            )),
        ),
    ]
}

pub const ALL_ERROR_KINDS: [ErrorKind; 12] = [
    ErrorKind::BadRequest,
    ErrorKind::UnknownSession,
    ErrorKind::ConnectFailed,
    ErrorKind::AuthFailed,
    ErrorKind::HostKeyRejected,
    ErrorKind::Timeout,
    ErrorKind::RemoteIo,
    ErrorKind::LocalIo,
    ErrorKind::SessionClosed,
    ErrorKind::ShuttingDown,
    ErrorKind::Internal,
    ErrorKind::Cancelled,
];

pub const ALL_SESSION_STATES: [SessionState; 2] =
    [SessionState::Connected, SessionState::Disconnected];

// The functions below have no wildcard arm: adding a variant without adding it
// to the fixtures above fails to compile here, or fails the coverage tests.

/// Declaration position of a `Request` variant, which is its bincode tag.
pub fn request_index(r: &Request) -> u32 {
    match r {
        Request::Connect(_) => 0,
        Request::Disconnect { .. } => 1,
        Request::ListSessions => 2,
        Request::Execute(_) => 3,
        Request::Upload(_) => 4,
        Request::Download(_) => 5,
        Request::Status => 6,
        Request::Shutdown => 7,
        Request::Cancel { .. } => 8,
        Request::OpenSecretPage(_) => 9,
        Request::AwaitSecret { .. } => 10,
    }
}
pub const REQUEST_VARIANTS: u32 = 11;

/// Declaration position of a `Response` variant, which is its bincode tag.
pub fn response_index(r: &Response) -> u32 {
    match r {
        Response::Connected(_) => 0,
        Response::Disconnected { .. } => 1,
        Response::Sessions(_) => 2,
        Response::Executed(_) => 3,
        Response::Transferred(_) => 4,
        Response::Status(_) => 5,
        Response::ShuttingDown => 6,
        Response::Error(_) => 7,
        Response::Progress(_) => 8,
        Response::SecretPage(_) => 9,
        Response::SecretReceived => 10,
    }
}
pub const RESPONSE_VARIANTS: u32 = 11;

pub fn error_kind_index(k: ErrorKind) -> u32 {
    match k {
        ErrorKind::BadRequest => 0,
        ErrorKind::UnknownSession => 1,
        ErrorKind::ConnectFailed => 2,
        ErrorKind::AuthFailed => 3,
        ErrorKind::HostKeyRejected => 4,
        ErrorKind::Timeout => 5,
        ErrorKind::RemoteIo => 6,
        ErrorKind::LocalIo => 7,
        ErrorKind::SessionClosed => 8,
        ErrorKind::ShuttingDown => 9,
        ErrorKind::Internal => 10,
        ErrorKind::Cancelled => 11,
    }
}

pub fn session_state_index(s: SessionState) -> u32 {
    match s {
        SessionState::Connected => 0,
        SessionState::Disconnected => 1,
    }
}

/// Ids of every varint width and at the width boundaries; fixtures past
/// these get their position as id (small and distinct from these).
const IDS: [u64; 8] = [0, 1, 250, 251, 65_535, 65_536, u32::MAX as u64, u64::MAX];

fn fixture_id(position: usize) -> u64 {
    IDS.get(position).copied().unwrap_or(position as u64)
}

/// Every fixture as a `ClientMessage`, with distinct ids of varying widths.
/// Calls that can report progress ask for it on every other message, so
/// both values of the flag are on the wire for them.
pub fn client_messages() -> Vec<ClientMessage> {
    all_requests()
        .into_iter()
        .chain(edge_requests())
        .enumerate()
        .map(|(i, request)| {
            let reports = matches!(
                request,
                Request::Execute(_) | Request::Upload(_) | Request::Download(_)
            );
            ClientMessage {
                id: fixture_id(i),
                progress: reports && i % 2 == 1,
                request,
            }
        })
        .collect()
}

/// Every fixture as a `ServerMessage`, with distinct ids of varying widths.
pub fn server_messages() -> Vec<ServerMessage> {
    all_responses()
        .into_iter()
        .chain(edge_responses())
        .enumerate()
        .map(|(i, response)| ServerMessage {
            id: fixture_id(i),
            response,
        })
        .collect()
}

/// Yields `data`, then never completes a read again (and never wakes the
/// task): a peer that sent a prefix and went quiet without closing.
pub struct StallAfter {
    data: Vec<u8>,
    pos: usize,
    /// The largest buffer a caller offered to `poll_read`.
    pub largest_read_buf: usize,
}

impl StallAfter {
    pub fn new(data: impl Into<Vec<u8>>) -> Self {
        StallAfter {
            data: data.into(),
            pos: 0,
            largest_read_buf: 0,
        }
    }
}

impl AsyncRead for StallAfter {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.largest_read_buf = this.largest_read_buf.max(buf.remaining());
        if this.pos == this.data.len() {
            return Poll::Pending;
        }
        let n = buf.remaining().min(this.data.len() - this.pos);
        buf.put_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// Yields `data` one byte per read, then EOF: exercises every partial-read
/// path of the frame reader.
pub struct Trickle {
    data: Vec<u8>,
    pos: usize,
}

impl Trickle {
    pub fn new(data: impl Into<Vec<u8>>) -> Self {
        Trickle {
            data: data.into(),
            pos: 0,
        }
    }
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.data.len() && buf.remaining() > 0 {
            let b = self.data[self.pos];
            buf.put_slice(&[b]);
            self.pos += 1;
        }
        Poll::Ready(Ok(()))
    }
}

/// Yields `data`, then fails every read with `kind`.
pub struct FailAfter {
    data: Vec<u8>,
    pos: usize,
    kind: io::ErrorKind,
}

impl FailAfter {
    pub fn new(data: impl Into<Vec<u8>>, kind: io::ErrorKind) -> Self {
        FailAfter {
            data: data.into(),
            pos: 0,
            kind,
        }
    }
}

impl AsyncRead for FailAfter {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos == self.data.len() {
            return Poll::Ready(Err(io::Error::new(self.kind, "injected failure")));
        }
        let n = buf.remaining().min(self.data.len() - self.pos);
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}
