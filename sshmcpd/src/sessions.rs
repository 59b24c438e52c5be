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
use crate::policy::HostPolicy;
use crate::ssh::connect::LossReason;
use crate::ssh::exec::ExecParams;
use crate::ssh::{self, ConnectParams, HostKeyStatus, SshHandle, TrustSettings};
use sshmcp_proto::{
    ConnectRequest, ConnectResult, DEFAULT_OUTPUT_BYTES, Deadline, DeadlineSource, ErrorKind,
    ExecuteRequest, ExecuteResult, MAX_OUTPUT_BYTES, SessionInfo, SessionState, TransferRequest,
    TransferResult,
};
use std::collections::HashMap;
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
    /// The name `connect` was given, when it is not the resolved host.
    alias: Option<String>,
    /// The jump hosts the session goes through, `user@host:port`
    /// comma-separated, first hop first.
    jump: Option<String>,
    hostname: String,
    username: String,
    port: u16,
    /// How to open the connection again after it drops.
    params: ConnectParams,
    /// The live connection; replaced by a reconnect. The lock is held only
    /// to read or swap the `Arc`, never across network I/O.
    handle: Mutex<Arc<SshHandle>>,
    /// Why the live connection ended, filled in by its handler; replaced
    /// with the connection.
    lost: Mutex<LossReason>,
    /// Serialises reconnects, so concurrent calls on a dropped session open
    /// one new connection between them.
    reconnecting: tokio::sync::Mutex<()>,
    /// Calls running at once; more wait here instead of failing when the
    /// server's channel limit (OpenSSH `MaxSessions`, 10) is reached. Leaves
    /// room for the channel that stops a timed-out command.
    channels: Arc<tokio::sync::Semaphore>,
    connected_at_ms: u64,
    last_used_at_ms: AtomicU64,
    commands_run: AtomicU64,
    bytes_moved: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A session's connection for one call, and whether the call had to
/// reconnect first. Holds one of the session's channel slots until dropped.
pub struct Use {
    pub handle: Arc<SshHandle>,
    pub reconnected: bool,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Session {
    fn handle(&self) -> Arc<SshHandle> {
        self.handle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn info(&self) -> SessionInfo {
        let disconnected = self.handle().is_closed();
        SessionInfo {
            session_id: self.id.clone(),
            hostname: self.hostname.clone(),
            username: self.username.clone(),
            port: self.port,
            state: if disconnected {
                SessionState::Disconnected
            } else {
                SessionState::Connected
            },
            connected_at_ms: self.connected_at_ms,
            last_used_at_ms: self.last_used_at_ms.load(Ordering::Relaxed),
            alias: self.alias.clone(),
            jump: self.jump.clone(),
            commands_run: self.commands_run.load(Ordering::Relaxed),
            bytes_moved: self.bytes_moved.load(Ordering::Relaxed),
            last_error: {
                let last = self
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                match (self.lost_reason().filter(|_| disconnected), last) {
                    (Some(lost), Some(last)) => Some(format!("{lost}; last error: {last}")),
                    (lost, last) => lost.or(last),
                }
            },
        }
    }

    /// Why the current connection ended, if its handler has said.
    fn lost_reason(&self) -> Option<String> {
        let lost = self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone();
        lost.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn label(&self) -> String {
        format!("{}@{}:{}", self.username, self.hostname, self.port)
    }

    fn note_error(&self, e: &RequestError) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.message.clone());
    }

    /// The connection for a call about to use it. A connection that dropped
    /// (the server restarted, the network went away, keepalives went
    /// unanswered) is re-opened once with the same credentials.
    ///
    /// # Errors
    /// `SessionClosed` when the reconnect fails; the message says why.
    async fn use_handle(&self) -> Result<Use, RequestError> {
        self.last_used_at_ms.store(now_ms(), Ordering::Relaxed);
        let slot =
            self.channels.clone().acquire_owned().await.map_err(|_| {
                RequestError::new(ErrorKind::SessionClosed, "the session is closing")
            })?;
        let current = self.handle();
        if !current.is_closed() {
            return Ok(Use {
                handle: current,
                reconnected: false,
                _slot: slot,
            });
        }
        let _one_at_a_time = self.reconnecting.lock().await;
        let current = self.handle();
        if !current.is_closed() {
            // Another call reconnected while this one waited.
            return Ok(Use {
                handle: current,
                reconnected: true,
                _slot: slot,
            });
        }
        tracing::info!(session = %self.id, target = %self.label(), "reconnecting");
        match ssh::connect::connect(self.params.clone()).await {
            Ok(conn) => {
                let handle = Arc::new(conn.handle);
                *self.handle.lock().unwrap_or_else(|e| e.into_inner()) = handle.clone();
                *self.lost.lock().unwrap_or_else(|e| e.into_inner()) = conn.lost;
                tracing::info!(session = %self.id, "reconnected");
                Ok(Use {
                    handle,
                    reconnected: true,
                    _slot: slot,
                })
            }
            Err(e) => {
                let err = RequestError::new(
                    ErrorKind::SessionClosed,
                    format!(
                        "session {} ({}) lost its SSH connection and reconnecting failed: {}. \
                         Check the host, then call disconnect on this session and connect \
                         again.",
                        self.id,
                        self.label(),
                        e.message
                    ),
                );
                self.note_error(&err);
                Err(err)
            }
        }
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
    limits: SessionLimits,
    /// Which hosts `connect` may reach.
    policy: HostPolicy,
    /// When this daemon started, for telling a caller with an old session id
    /// that the daemon restarted since.
    started_at_ms: u64,
}

/// How many sessions, how busy and how idle.
#[derive(Clone, Copy, Debug)]
pub struct SessionLimits {
    pub max_sessions: usize,
    pub channels_per_session: usize,
    /// Sessions unused this long are closed; `None` never.
    pub idle_timeout: Option<Duration>,
}

impl SessionManager {
    pub fn new(trust: TrustSettings, limits: SessionLimits, policy: HostPolicy) -> Self {
        SessionManager {
            sessions: Mutex::new(HashMap::new()),
            trust: Arc::new(trust),
            limits,
            policy,
            started_at_ms: now_ms(),
        }
    }

    /// How often to look for idle sessions: a quarter of the timeout, within
    /// a second and a minute.
    pub fn idle_check_interval(&self) -> Duration {
        self.limits
            .idle_timeout
            .map_or(Duration::from_secs(60), |t| {
                (t / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
            })
    }

    /// Closes sessions unused for longer than the idle timeout.
    pub async fn close_idle(&self) {
        let Some(limit) = self.limits.idle_timeout else {
            return;
        };
        let cutoff = now_ms().saturating_sub(limit.as_millis() as u64);
        let idle: Vec<Arc<Session>> = {
            let mut table = self.table();
            let ids: Vec<String> = table
                .values()
                .filter(|s| s.last_used_at_ms.load(Ordering::Relaxed) < cutoff)
                .map(|s| s.id.clone())
                .collect();
            ids.iter().filter_map(|id| table.remove(id)).collect()
        };
        for session in idle {
            tracing::info!(session = %session.id, target = %session.label(), "closing idle session");
            close(&session).await;
        }
    }

    /// Refuses a new session when the cap is reached, naming the idlest
    /// sessions the caller could disconnect.
    fn check_capacity(&self) -> Result<(), RequestError> {
        let mut open = self.list();
        if open.len() < self.limits.max_sessions {
            return Ok(());
        }
        open.sort_by_key(|s| s.last_used_at_ms);
        let idlest: Vec<String> = open
            .iter()
            .take(5)
            .map(|s| {
                format!(
                    "{} ({}@{}:{})",
                    s.session_id, s.username, s.hostname, s.port
                )
            })
            .collect();
        Err(RequestError::new(
            ErrorKind::BadRequest,
            format!(
                "the daemon already holds {} sessions, its limit (max_sessions in config.toml); \
                 reuse one (list_sessions) or disconnect an idle one. Least recently used: {}",
                open.len(),
                idlest.join(", ")
            ),
        ))
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

    /// What `list_sessions` shows of one session, if `id` names one.
    pub fn info(&self, id: &str) -> Option<SessionInfo> {
        self.table().get(id.trim()).map(|s| s.info())
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
            format!(
                "unknown session id {id:?}. {hint} This daemon started at {}; sessions opened \
                 before then ended with the previous daemon and need a new connect.",
                humantime::format_rfc3339_seconds(
                    UNIX_EPOCH + Duration::from_millis(self.started_at_ms)
                )
            ),
        ))
    }

    pub async fn connect(&self, req: ConnectRequest) -> Result<ConnectResult, RequestError> {
        if req.hostname.trim().is_empty() {
            return Err(RequestError::bad_request("hostname is empty"));
        }
        if req.port == Some(0) {
            return Err(RequestError::bad_request("port 0 is not a valid SSH port"));
        }
        self.check_capacity()?;
        let alias = req.hostname.clone();
        let params = ConnectParams::resolve(req, self.trust.clone(), CONNECT_TIMEOUT)?;
        // Before any network I/O: a refused host is never contacted.
        self.policy.check_route(&params)?;
        let conn = ssh::connect::connect(params.clone()).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        let session = Arc::new(Session {
            id: id.clone(),
            alias: (alias != params.target.hostname).then_some(alias),
            jump: params.jump_list(),
            hostname: params.target.hostname.clone(),
            username: params.target.username.clone(),
            port: params.target.port,
            params,
            handle: Mutex::new(Arc::new(conn.handle)),
            lost: Mutex::new(conn.lost),
            reconnecting: tokio::sync::Mutex::new(()),
            channels: Arc::new(tokio::sync::Semaphore::new(
                self.limits.channels_per_session,
            )),
            connected_at_ms: now,
            last_used_at_ms: AtomicU64::new(now),
            commands_run: AtomicU64::new(0),
            bytes_moved: AtomicU64::new(0),
            last_error: Mutex::new(None),
        });
        tracing::info!(session = %id, target = %session.label(), "connected");
        let result = ConnectResult {
            session_id: id.clone(),
            host_key_fingerprint: conn.host_key_fingerprint,
            host_key_learned: conn.host_key_status == HostKeyStatus::Learned,
            hostname: session.hostname.clone(),
            username: session.username.clone(),
            port: session.port,
            auth_method: conn.auth_method.to_owned(),
        };
        self.table().insert(id, session);
        Ok(result)
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
        let mut closing = tokio::task::JoinSet::new();
        for session in all {
            closing.spawn(async move { close(&session).await });
        }
        while closing.join_next().await.is_some() {}
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
        let conn = session.use_handle().await?;
        let params = ExecParams {
            command: req.command,
            stdin: req.stdin,
            deadline: settings.deadline(req.timeout_ms),
            cwd: req.cwd,
            env: req.env,
            pty: req.pty,
            inline,
        };
        session.commands_run.fetch_add(1, Ordering::Relaxed);
        let result = ssh::exec::execute(&conn.handle, params, &settings.spill, ctx).await;
        let mut result = result.inspect_err(|e| session.note_error(e))?;
        result.reconnected = conn.reconnected;
        Ok(result)
    }

    pub async fn upload(
        &self,
        req: TransferRequest,
        ctx: &CallContext,
    ) -> Result<TransferResult, RequestError> {
        check_transfer(&req)?;
        let session = self.get(&req.session_id)?;
        let conn = session.use_handle().await?;
        let result = ssh::sftp::upload(&conn.handle, &req, ctx).await;
        session.finish_transfer(result, conn.reconnected)
    }

    pub async fn download(
        &self,
        req: TransferRequest,
        ctx: &CallContext,
    ) -> Result<TransferResult, RequestError> {
        check_transfer(&req)?;
        let session = self.get(&req.session_id)?;
        let conn = session.use_handle().await?;
        let result = ssh::sftp::download(&conn.handle, &req, ctx).await;
        session.finish_transfer(result, conn.reconnected)
    }
}

impl Session {
    /// Books a finished transfer into the session's counters.
    fn finish_transfer(
        &self,
        result: Result<TransferResult, RequestError>,
        reconnected: bool,
    ) -> Result<TransferResult, RequestError> {
        let mut result = result.inspect_err(|e| self.note_error(e))?;
        self.bytes_moved.fetch_add(result.bytes, Ordering::Relaxed);
        result.reconnected = reconnected;
        Ok(result)
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

/// How long a closing session gets to deliver its SSH disconnect.
const DISCONNECT_GRACE: Duration = Duration::from_secs(1);

async fn close(session: &Session) {
    let handle = session.handle();
    if let Err(e) = handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await
    {
        tracing::debug!(session = %session.id, "SSH disconnect: {e}");
    }
    // The disconnect is queued for the connection's task; give it a moment
    // to reach the server (the daemon may be about to exit). russh offers
    // no shared way to await that task, so watch its channel close.
    let deadline = tokio::time::Instant::now() + DISCONNECT_GRACE;
    while !handle.is_closed() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::info!(session = %session.id, target = %session.label(), "disconnected");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

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
