//! The audit log (config.toml's `audit_log = true`, off by default): one
//! JSON object per line for every call that acts on a host or on the
//! daemon, appended to [`AUDIT_FILE`] in the state directory, beside
//! `sshmcpd.log`.
//!
//! Logged: `connect`, `disconnect`, `execute`, `upload`, `download` and
//! `shutdown`. Not logged: `status` and `list_sessions`, which only read the
//! daemon's own table, cancellations (the cancelled call is logged, with
//! `Cancelled`) and any other call that acts on no host.
//!
//! A line (fields that do not apply to a tool are left out):
//!
//! ```json
//! {"time":"2025-01-02T03:04:05.678Z","tool":"execute","session_id":"…",
//!  "target":"deploy@web1:2222","command":"systemctl restart app",
//!  "status":"ok","exit_status":0,"timed_out":false,"duration_ms":812}
//! ```
//!
//! - `time`: when the call started, RFC 3339 in UTC.
//! - `session_id`: the call's session; for `connect`, the new session's
//!   (absent when it failed).
//! - `target`: `user@host`, with `:port` when not 22 (an IPv6 host in
//!   brackets then). For `connect`, where the session went after
//!   `~/.ssh/config` was applied, or when it failed what the call asked for
//!   (its user and port only when given). For the other tools, the session's
//!   as it was before the call (so `disconnect` has one); absent for an
//!   unknown session id.
//! - `command` (execute), `local_path` and `remote_path` (upload, download)
//!   as the call gave them.
//! - `status`: `ok` or `error`; `error`: the error kind (`AuthFailed`,
//!   `Timeout`, …). An execute that ran is `ok` whatever its exit status:
//!   `exit_status`, or `signal` when a signal ended it, and `timed_out`.
//! - `duration_ms`: how long the call took.
//!
//! Never logged: passwords and passphrases, stdin, output, environment
//! variables (neither names nor values), error messages. The command line
//! is logged as given, so a secret written into a command ends up here: the
//! file is created 0600 and is the user's to rotate or delete.
//!
//! A line is written before the call's answer is sent. Writing is one
//! `write` of a whole line to a file opened with `O_APPEND`; a failure is
//! logged and never fails the call.

use serde::Serialize;
use sshmcp_proto::{Request, Response, SessionInfo};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The audit log's name in the state directory.
pub const AUDIT_FILE: &str = "audit.jsonl";

/// `$XDG_STATE_HOME/sshmcp/audit.jsonl`, beside the daemon's log.
pub fn path() -> PathBuf {
    sshmcp_proto::rendezvous::state_dir().join(AUDIT_FILE)
}

/// The open audit log, shared by every call.
pub struct AuditLog {
    path: PathBuf,
    /// Appends only; the lock keeps one line's write from interleaving with
    /// another's.
    file: Mutex<File>,
}

impl AuditLog {
    /// Opens (creating it 0600, and its directory 0700) the log at `path`
    /// for appending. An existing file others could read is made 0600.
    ///
    /// # Errors
    /// When the directory or the file cannot be created or opened.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        if let Some(dir) = path.parent() {
            crate::paths::create_private_dir(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        let mode = file.metadata()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            tracing::warn!(
                path = %path.display(),
                "the audit log was mode {mode:o}; made it 0600"
            );
        }
        Ok(AuditLog {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts the record of a call about to run, or `None` for a call that
    /// is not audited. `session` looks a session up by id, for the target
    /// of calls on one (before `disconnect` removes it).
    pub fn begin(
        &self,
        request: &Request,
        session: impl Fn(&str) -> Option<SessionInfo>,
    ) -> Option<Entry<'_>> {
        Record::begin(request, SystemTime::now(), session).map(|record| Entry { log: self, record })
    }

    /// Appends one line; a failure is logged, never returned.
    fn append(&self, record: &Record) {
        let mut line = match serde_json::to_vec(record) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(tool = record.tool, "cannot encode an audit record: {e}");
                return;
            }
        };
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(&line) {
            tracing::error!(
                path = %self.path.display(),
                tool = record.tool,
                "cannot write the audit log: {e}"
            );
        }
    }
}

/// A call in flight: its record so far and the log it goes to.
pub struct Entry<'a> {
    log: &'a AuditLog,
    record: Record,
}

impl Entry<'_> {
    /// Completes the record with the call's answer and appends it.
    pub fn finish(mut self, response: &Response, duration: Duration) {
        self.record.finish(response, duration);
        self.log.append(&self.record);
    }
}

/// One line of the audit log (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub time: String,
    pub tool: &'static str,
    pub session_id: Option<String>,
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_path: Option<String>,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<bool>,
    pub duration_ms: u64,
}

impl Record {
    /// What is known of a call before it runs; `None` for calls not
    /// audited.
    pub fn begin(
        request: &Request,
        started: SystemTime,
        session: impl Fn(&str) -> Option<SessionInfo>,
    ) -> Option<Record> {
        let on_session = |id: &str| {
            (
                Some(id.to_owned()),
                session(id).map(|s| user_at_host(Some(&s.username), &s.hostname, Some(s.port))),
            )
        };
        let (tool, (session_id, target), command, paths) = match request {
            Request::Connect(r) => (
                "connect",
                (
                    None,
                    Some(user_at_host(r.username.as_deref(), &r.hostname, r.port)),
                ),
                None,
                None,
            ),
            Request::Disconnect { session_id } => {
                ("disconnect", on_session(session_id), None, None)
            }
            Request::Execute(r) => (
                "execute",
                on_session(&r.session_id),
                Some(r.command.clone()),
                None,
            ),
            Request::Upload(r) => (
                "upload",
                on_session(&r.session_id),
                None,
                Some((r.local_path.clone(), r.remote_path.clone())),
            ),
            Request::Download(r) => (
                "download",
                on_session(&r.session_id),
                None,
                Some((r.local_path.clone(), r.remote_path.clone())),
            ),
            Request::Shutdown => ("shutdown", (None, None), None, None),
            // Reads of the daemon's own state, cancellations (the cancelled
            // call is logged) and calls that act on no host.
            _ => return None,
        };
        let (local_path, remote_path) = paths.unzip();
        Some(Record {
            time: humantime::format_rfc3339_millis(started).to_string(),
            tool,
            session_id,
            target,
            command,
            local_path,
            remote_path,
            status: "ok",
            error: None,
            exit_status: None,
            signal: None,
            timed_out: None,
            duration_ms: 0,
        })
    }

    /// Adds the call's outcome.
    pub fn finish(&mut self, response: &Response, duration: Duration) {
        self.duration_ms = duration.as_millis().try_into().unwrap_or(u64::MAX);
        match response {
            Response::Error(e) => {
                self.status = "error";
                self.error = Some(format!("{:?}", e.kind));
            }
            Response::Connected(r) => {
                self.session_id = Some(r.session_id.clone());
                self.target = Some(user_at_host(Some(&r.username), &r.hostname, Some(r.port)));
            }
            Response::Executed(r) => {
                self.exit_status = r.exit_status;
                self.signal = r.signal.clone();
                self.timed_out = Some(r.timed_out);
            }
            _ => {}
        }
    }
}

/// `user@host`, `user@host:port` when the port is not 22 (`[host]` when
/// the host is an IPv6 address), without `user@` when none is known.
pub fn user_at_host(user: Option<&str>, host: &str, port: Option<u16>) -> String {
    let host = match port {
        Some(port) if port != 22 && host.contains(':') => format!("[{host}]:{port}"),
        Some(port) if port != 22 => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    match user {
        Some(user) => format!("{user}@{host}"),
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshmcp_proto::{
        ConnectRequest, ConnectResult, ErrorBody, ErrorKind, ExecuteRequest, ExecuteResult, Secret,
        SessionState, StreamOutput, TransferRequest, TransferResult,
    };

    fn info(id: &str) -> Option<SessionInfo> {
        (id == "s1").then(|| SessionInfo {
            session_id: "s1".into(),
            hostname: "web1.example.com".into(),
            username: "deploy".into(),
            port: 2222,
            state: SessionState::Connected,
            connected_at_ms: 0,
            last_used_at_ms: 0,
            alias: None,
            jump: None,
            commands_run: 0,
            bytes_moved: 0,
            last_error: None,
        })
    }

    fn started() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
    }

    fn line(request: &Request, response: &Response) -> serde_json::Value {
        let mut record = Record::begin(request, started(), info).expect("audited");
        record.finish(response, Duration::from_millis(42));
        serde_json::to_value(&record).unwrap()
    }

    fn connect_request() -> ConnectRequest {
        ConnectRequest {
            hostname: "web".into(),
            username: Some("deploy".into()),
            port: None,
            password: Some(Secret::new("hunter2-password".into())),
            private_key: None,
            passphrase: Some(Secret::new("hunter2-passphrase".into())),
            jump: None,
            agent_socket: None,
            secret_ref: None,
            approved_host_keys: Vec::new(),
        }
    }

    #[test]
    fn connect_takes_the_session_and_target_from_the_result() {
        let result = ConnectResult {
            session_id: "new-id".into(),
            host_key_fingerprint: "SHA256:x".into(),
            host_key_learned: false,
            hostname: "web1.example.com".into(),
            username: "deploy".into(),
            port: 22,
            auth_method: "password".into(),
        };
        let ok = line(
            &Request::Connect(connect_request()),
            &Response::Connected(result),
        );
        assert_eq!(
            ok,
            serde_json::json!({
                "time": "2023-11-14T22:13:20.123Z",
                "tool": "connect",
                "session_id": "new-id",
                "target": "deploy@web1.example.com",
                "status": "ok",
                "duration_ms": 42,
            })
        );
        let failed = line(
            &Request::Connect(connect_request()),
            &Response::Error(ErrorBody::new(ErrorKind::AuthFailed, "hunter2-password")),
        );
        assert_eq!(failed["session_id"], serde_json::Value::Null);
        assert_eq!(failed["target"], "deploy@web");
        assert_eq!(
            (&failed["status"], &failed["error"]),
            (&"error".into(), &"AuthFailed".into())
        );
        for record in [ok, failed] {
            assert!(!record.to_string().contains("hunter2"), "{record}");
        }
    }

    #[test]
    fn execute_logs_the_command_and_exit_but_no_stdin_env_or_output() {
        let request = Request::Execute(ExecuteRequest {
            session_id: "s1".into(),
            command: "make deploy".into(),
            stdin: Some(b"stdin-secret".to_vec()),
            timeout_ms: None,
            cwd: None,
            env: vec![("TOKEN".into(), "env-secret".into())],
            pty: false,
            max_output_bytes: None,
        });
        let output = StreamOutput {
            head: b"output-secret".to_vec(),
            total_bytes: 13,
            ..StreamOutput::default()
        };
        let response = Response::Executed(ExecuteResult {
            stdout: output.clone(),
            stderr: output,
            exit_status: Some(2),
            signal: None,
            timed_out: false,
            deadline: None,
            reconnected: false,
        });
        let record = line(&request, &response);
        assert_eq!(record["target"], "deploy@web1.example.com:2222");
        assert_eq!(record["command"], "make deploy");
        assert_eq!(record["exit_status"], 2);
        assert_eq!(record["timed_out"], false);
        assert_eq!(record["status"], "ok");
        assert!(record.get("signal").is_none() && record.get("local_path").is_none());
        for secret in ["stdin-secret", "env-secret", "output-secret", "TOKEN"] {
            assert!(!record.to_string().contains(secret), "{record}");
        }
    }

    #[test]
    fn transfers_log_both_paths_and_unknown_sessions_no_target() {
        let transfer = TransferRequest {
            session_id: "gone".into(),
            local_path: "/home/u/a.txt".into(),
            remote_path: "~/a.txt".into(),
            recursive: false,
            preserve: false,
        };
        let done = Response::Transferred(TransferResult {
            local_path: "/home/u/a.txt".into(),
            remote_path: "/root/a.txt".into(),
            bytes: 1,
            replaced: false,
            notes: Vec::new(),
            files: 1,
            skipped: Vec::new(),
            reconnected: false,
        });
        let record = line(&Request::Download(transfer), &done);
        assert_eq!(record["tool"], "download");
        assert_eq!(record["session_id"], "gone");
        assert_eq!(record["target"], serde_json::Value::Null);
        assert_eq!(record["local_path"], "/home/u/a.txt");
        assert_eq!(record["remote_path"], "~/a.txt");
        assert!(record.get("exit_status").is_none() && record.get("command").is_none());
    }

    #[test]
    fn reads_of_the_daemons_state_are_not_audited() {
        for request in [
            Request::Status,
            Request::ListSessions,
            Request::Cancel { id: 1 },
        ] {
            assert!(Record::begin(&request, started(), info).is_none());
        }
        let record = line(
            &Request::Disconnect {
                session_id: "s1".into(),
            },
            &Response::Disconnected {
                session_id: "s1".into(),
            },
        );
        assert_eq!(record["target"], "deploy@web1.example.com:2222");
    }

    #[test]
    fn targets_show_the_port_only_when_not_22() {
        assert_eq!(user_at_host(Some("u"), "h", Some(22)), "u@h");
        assert_eq!(user_at_host(Some("u"), "h", None), "u@h");
        assert_eq!(user_at_host(None, "h", Some(2222)), "h:2222");
        assert_eq!(user_at_host(Some("u"), "::1", Some(2222)), "u@[::1]:2222");
    }

    #[test]
    fn lines_are_appended_to_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join(AUDIT_FILE);
        std::fs::create_dir(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "earlier\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let log = AuditLog::open(&path).unwrap();
        for id in ["s1", "other"] {
            let request = Request::Disconnect {
                session_id: id.into(),
            };
            let entry = log.begin(&request, info).expect("audited");
            entry.finish(
                &Response::Disconnected {
                    session_id: id.into(),
                },
                Duration::from_millis(1),
            );
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], "earlier");
        for line in &lines[1..] {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["tool"], "disconnect");
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
