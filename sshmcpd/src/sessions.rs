//! The session table: id → live SSH connection, and the requests that run on
//! one.
//!
//! The table's lock is only held to look up, insert or remove; never across
//! network I/O. Each request clones the session's `Arc` and works on it, so
//! one slow host never blocks calls on another, and several calls on one
//! session run concurrently on their own channels.

use crate::call::CallContext;
use crate::error::RequestError;
use crate::output::SpillDir;
use crate::ssh::exec::ExecParams;
use crate::ssh::{self, ConnectParams, HostKeyStatus, SshHandle, TrustSettings};
use sshmcp_proto::{
    ConnectRequest, ConnectResult, DEFAULT_OUTPUT_BYTES, Deadline, DeadlineSource, ErrorKind,
    ExecuteRequest, ExecuteResult, MAX_OUTPUT_BYTES, SessionInfo, SessionState, TransferRequest,
    TransferResult,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long `connect` may take before it gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One SSH connection and what `list_sessions` shows about it.
pub struct Session {
    id: String,
    hostname: String,
    username: String,
    port: u16,
    handle: SshHandle,
    connected_at_ms: u64,
    last_used_at_ms: AtomicU64,
}

impl Session {
    fn info(&self) -> SessionInfo {
        SessionInfo {
            session_id: self.id.clone(),
            hostname: self.hostname.clone(),
            username: self.username.clone(),
            port: self.port,
            state: if self.handle.is_closed() {
                SessionState::Disconnected
            } else {
                SessionState::Connected
            },
            connected_at_ms: self.connected_at_ms,
            last_used_at_ms: self.last_used_at_ms.load(Ordering::Relaxed),
        }
    }

    fn label(&self) -> String {
        format!("{}@{}:{}", self.username, self.hostname, self.port)
    }

    /// The connection, for a request that is about to use it.
    fn use_handle(&self) -> Result<&SshHandle, RequestError> {
        self.last_used_at_ms.store(now_ms(), Ordering::Relaxed);
        if self.handle.is_closed() {
            return Err(RequestError::new(
                ErrorKind::SessionClosed,
                format!(
                    "session {} ({}) has lost its SSH connection; call disconnect on it, then \
                     connect again",
                    self.id,
                    self.label()
                ),
            ));
        }
        Ok(&self.handle)
    }
}

/// How `execute` runs: where long output goes and which deadlines apply.
#[derive(Clone, Debug)]
pub struct ExecSettings {
    pub spill: SpillDir,
    /// For calls that give no timeout.
    pub default_timeout: Option<Duration>,
    /// Caps every call's timeout.
    pub max_timeout: Option<Duration>,
}

impl ExecSettings {
    /// The deadline for a call that asked for `requested_ms`: the call's
    /// own, else the default, and never past the maximum.
    pub fn deadline(&self, requested_ms: Option<u64>) -> Option<Deadline> {
        let ms = |d: Duration| d.as_millis().try_into().unwrap_or(u64::MAX);
        let chosen = match (requested_ms, self.default_timeout) {
            (Some(ms), _) => Some(Deadline {
                ms,
                source: DeadlineSource::Request,
            }),
            (None, Some(d)) => Some(Deadline {
                ms: ms(d),
                source: DeadlineSource::ConfigDefault,
            }),
            (None, None) => None,
        };
        match (chosen, self.max_timeout.map(ms)) {
            (Some(c), Some(max)) if c.ms > max => Some(Deadline {
                ms: max,
                source: DeadlineSource::ConfigMax,
            }),
            (None, Some(max)) => Some(Deadline {
                ms: max,
                source: DeadlineSource::ConfigMax,
            }),
            (c, _) => c,
        }
    }
}

/// All sessions of this daemon.
pub struct SessionManager {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    trust: Arc<TrustSettings>,
}

impl SessionManager {
    pub fn new(trust: TrustSettings) -> Self {
        SessionManager {
            sessions: Mutex::new(HashMap::new()),
            trust: Arc::new(trust),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every session, oldest first.
    pub fn list(&self) -> Vec<SessionInfo> {
        let mut all: Vec<_> = self.table().values().map(|s| s.info()).collect();
        all.sort_by(|a, b| {
            (a.connected_at_ms, &a.session_id).cmp(&(b.connected_at_ms, &b.session_id))
        });
        all
    }

    fn get(&self, id: &str) -> Result<Arc<Session>, RequestError> {
        if let Some(s) = self.table().get(id.trim()) {
            return Ok(s.clone());
        }
        let live = self.list();
        let hint = if live.is_empty() {
            "There are no sessions; call connect first.".to_owned()
        } else {
            format!(
                "Live sessions: {}.",
                live.iter()
                    .map(|s| format!(
                        "{} ({}@{}:{})",
                        s.session_id, s.username, s.hostname, s.port
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Err(RequestError::new(
            ErrorKind::UnknownSession,
            format!("unknown session id {id:?}. {hint}"),
        ))
    }

    pub async fn connect(&self, req: ConnectRequest) -> Result<ConnectResult, RequestError> {
        if req.hostname.trim().is_empty() {
            return Err(RequestError::bad_request("hostname is empty"));
        }
        if req.username.trim().is_empty() {
            return Err(RequestError::bad_request("username is empty"));
        }
        if req.port == 0 {
            return Err(RequestError::bad_request("port 0 is not a valid SSH port"));
        }
        if req.password.is_none() && req.private_key.is_none() {
            return Err(RequestError::bad_request(
                "give a password or a private_key path to log in with",
            ));
        }
        let conn = ssh::connect::connect(ConnectParams {
            hostname: req.hostname.clone(),
            port: req.port,
            username: req.username.clone(),
            password: req.password,
            private_key: req.private_key.map(PathBuf::from),
            trust: self.trust.clone(),
            timeout: CONNECT_TIMEOUT,
        })
        .await?;
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        let session = Arc::new(Session {
            id: id.clone(),
            hostname: req.hostname,
            username: req.username,
            port: req.port,
            handle: conn.handle,
            connected_at_ms: now,
            last_used_at_ms: AtomicU64::new(now),
        });
        tracing::info!(session = %id, target = %session.label(), "connected");
        self.table().insert(id.clone(), session);
        Ok(ConnectResult {
            session_id: id,
            host_key_fingerprint: conn.host_key_fingerprint,
            host_key_learned: conn.host_key_status == HostKeyStatus::Learned,
        })
    }

    pub async fn disconnect(&self, id: &str) -> Result<String, RequestError> {
        let session = self.get(id)?;
        self.table().remove(&session.id);
        close(&session).await;
        Ok(session.id.clone())
    }

    /// Closes every session (daemon shutdown).
    pub async fn close_all(&self) {
        let all: Vec<_> = self.table().drain().map(|(_, s)| s).collect();
        for session in all {
            close(&session).await;
        }
    }

    pub async fn execute(
        &self,
        req: ExecuteRequest,
        settings: &ExecSettings,
        ctx: &CallContext,
    ) -> Result<ExecuteResult, RequestError> {
        if req.command.trim().is_empty() {
            return Err(RequestError::bad_request("command is empty"));
        }
        let inline = req.max_output_bytes.map_or(DEFAULT_OUTPUT_BYTES, |n| {
            n.clamp(2, MAX_OUTPUT_BYTES as u64) as usize
        });
        let session = self.get(&req.session_id)?;
        let handle = session.use_handle()?;
        let params = ExecParams {
            command: req.command,
            stdin: req.stdin,
            deadline: settings.deadline(req.timeout_ms),
            cwd: req.cwd,
            env: req.env,
            pty: req.pty,
            inline,
        };
        ssh::exec::execute(handle, params, &settings.spill, ctx).await
    }

    pub async fn upload(
        &self,
        req: TransferRequest,
        ctx: &CallContext,
    ) -> Result<TransferResult, RequestError> {
        check_transfer(&req)?;
        let session = self.get(&req.session_id)?;
        let handle = session.use_handle()?;
        ssh::sftp::upload(handle, &req, ctx).await
    }

    pub async fn download(
        &self,
        req: TransferRequest,
        ctx: &CallContext,
    ) -> Result<TransferResult, RequestError> {
        check_transfer(&req)?;
        let session = self.get(&req.session_id)?;
        let handle = session.use_handle()?;
        ssh::sftp::download(handle, &req, ctx).await
    }
}

fn check_transfer(req: &TransferRequest) -> Result<(), RequestError> {
    if !req.local_path.starts_with('/') {
        return Err(RequestError::bad_request(format!(
            "local_path {:?} must be absolute (the client resolves relative paths)",
            req.local_path
        )));
    }
    if req.remote_path.trim().is_empty() {
        return Err(RequestError::bad_request("remote_path is empty"));
    }
    Ok(())
}

async fn close(session: &Session) {
    if let Err(e) = session
        .handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await
    {
        tracing::debug!(session = %session.id, "SSH disconnect: {e}");
    }
    tracing::info!(session = %session.id, target = %session.label(), "disconnected");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(default: Option<u64>, max: Option<u64>) -> ExecSettings {
        ExecSettings {
            spill: SpillDir {
                dir: PathBuf::from("/nonexistent"),
                max_bytes: 0,
                retention: Duration::from_secs(1),
            },
            default_timeout: default.map(Duration::from_secs),
            max_timeout: max.map(Duration::from_secs),
        }
    }

    #[test]
    fn deadlines_follow_request_then_default_capped_by_max() {
        let d = |ms, source| Some(Deadline { ms, source });
        assert_eq!(settings(None, None).deadline(None), None);
        assert_eq!(
            settings(None, None).deadline(Some(5)),
            d(5, DeadlineSource::Request)
        );
        assert_eq!(
            settings(Some(60), None).deadline(None),
            d(60_000, DeadlineSource::ConfigDefault)
        );
        assert_eq!(
            settings(Some(60), Some(600)).deadline(Some(1_000_000)),
            d(600_000, DeadlineSource::ConfigMax)
        );
        assert_eq!(
            settings(None, Some(600)).deadline(None),
            d(600_000, DeadlineSource::ConfigMax)
        );
        assert_eq!(
            settings(Some(60), Some(600)).deadline(Some(10_000)),
            d(10_000, DeadlineSource::Request)
        );
    }
}
