//! The listener: one daemon per socket (a lock file), a socket only its user
//! can reach (0600 in a private directory, and every peer's uid checked),
//! one task per connection and one per request.

use crate::audit::AuditLog;
use crate::call::CallContext;
use crate::error::RequestError;
use crate::secret_page::SecretPages;
use crate::sessions::{ExecSettings, SessionManager};
use anyhow::{Context, bail};
use sshmcp_proto::{
    ClientMessage, DaemonFacts, DaemonStatus, ErrorBody, ErrorKind, Hello, HelloReply, HelloStatus,
    PROTOCOL_VERSION, ProtoError, Request, Response, ServerMessage, read_message, write_message,
};
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a new connection may take to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long calls in flight get to finish when the daemon stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How often old spilled output is deleted.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// A socket ready to serve: bound here (locked, and removed on drop), or
/// passed in by systemd (whose socket unit owns it: never removed here).
pub struct Listener {
    listener: UnixListener,
    socket: PathBuf,
    /// Held for the daemon's lifetime when the daemon bound the socket: the
    /// flock keeps a second daemon off it. `None` under socket activation.
    lock: Option<File>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if self.lock.is_none() {
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.socket) {
            tracing::warn!(socket = %self.socket.display(), "could not remove socket: {e}");
        }
    }
}

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const SYSTEMD_FIRST_FD: i32 = 3;

impl Listener {
    /// Takes the listening socket systemd passed in (`LISTEN_PID`/
    /// `LISTEN_FDS`), if it passed one to this process, and removes the
    /// variables so children do not take the socket for theirs. Call it
    /// before any thread starts: it changes the environment.
    ///
    /// # Errors
    /// When systemd passed something that is not a socket.
    pub fn take_systemd_socket() -> anyhow::Result<Option<std::os::unix::net::UnixListener>> {
        let for_us = std::env::var("LISTEN_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| p == std::process::id());
        let count = std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|n| n.parse::<i32>().ok())
            .unwrap_or(0);
        if !for_us || count < 1 {
            return Ok(None);
        }
        // SAFETY: the caller runs this before any other thread exists, so
        // nothing reads the environment concurrently.
        unsafe {
            std::env::remove_var("LISTEN_PID");
            std::env::remove_var("LISTEN_FDS");
            std::env::remove_var("LISTEN_FDNAMES");
        }
        // SAFETY: systemd passes open descriptors from 3 on, and nothing in
        // this process has taken descriptor 3 for anything else yet.
        let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(SYSTEMD_FIRST_FD) };
        listener
            .set_nonblocking(true)
            .context("systemd passed a descriptor that is not a socket")?;
        Ok(Some(listener))
    }

    /// Serves a socket systemd passed in (see
    /// [`Listener::take_systemd_socket`]).
    ///
    /// # Errors
    /// When it is not a Unix socket with a path.
    pub fn from_systemd(listener: std::os::unix::net::UnixListener) -> anyhow::Result<Self> {
        let socket = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_path_buf))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "systemd passed a socket that is not a Unix socket with a path; check \
                     ListenStream= in sshmcpd.socket"
                )
            })?;
        let listener =
            UnixListener::from_std(listener).context("cannot serve the socket systemd passed")?;
        Ok(Listener {
            listener,
            socket,
            lock: None,
        })
    }

    /// Whether systemd passed this socket in.
    pub fn socket_activated(&self) -> bool {
        self.lock.is_none()
    }

    /// Takes the lock, clears a stale socket and binds.
    ///
    /// # Errors
    /// When another daemon holds the lock or answers on the socket, or the
    /// socket directory is unsafe.
    pub fn bind(socket: &Path) -> anyhow::Result<Self> {
        crate::paths::prepare_socket_dir(socket)?;
        let lock_path = sshmcp_proto::rendezvous::lock_path(socket);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .with_context(|| format!("cannot open lock file {}", lock_path.display()))?;
        // SAFETY: flock on a valid, open descriptor.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            bail!(
                "another sshmcpd is already serving {} (it holds {}); use `sshmcpd status` or \
                 `sshmcpd stop`",
                socket.display(),
                lock_path.display()
            );
        }
        if socket.exists() {
            // We hold the lock, so a socket here is a leftover, unless a
            // daemon that predates locking still answers on it.
            match std::os::unix::net::UnixStream::connect(socket) {
                Ok(_) => bail!("a daemon is already answering on {}", socket.display()),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(socket).with_context(|| {
                        format!("cannot remove stale socket {}", socket.display())
                    })?;
                }
                Err(e) => bail!("cannot check existing socket {}: {e}", socket.display()),
            }
        }
        let listener = UnixListener::bind(socket)
            .with_context(|| format!("cannot listen on {}", socket.display()))?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", socket.display()))?;
        Ok(Listener {
            listener,
            socket: socket.to_path_buf(),
            lock: Some(lock),
        })
    }
}

/// What every connection handler shares.
struct Shared {
    sessions: SessionManager,
    shutdown: CancellationToken,
    started: Instant,
    socket: PathBuf,
    log_path: PathBuf,
    exec: ExecSettings,
    socket_activated: bool,
    uid: u32,
    /// Where each call is recorded, when config.toml turns the audit log on.
    audit: Option<AuditLog>,
    secret_pages: Arc<SecretPages>,
}

/// Serves until `shutdown` is cancelled (by a signal or a `Shutdown`
/// request), then closes every session. Calls are recorded in `audit` when
/// there is one.
pub async fn run(
    listener: Listener,
    sessions: SessionManager,
    log_path: PathBuf,
    exec: ExecSettings,
    audit: Option<AuditLog>,
    shutdown: CancellationToken,
) {
    let shared = Arc::new(Shared {
        sessions,
        shutdown: shutdown.clone(),
        started: Instant::now(),
        socket: listener.socket.clone(),
        log_path,
        exec,
        socket_activated: listener.socket_activated(),
        uid: sshmcp_proto::rendezvous::current_uid(),
        audit,
        secret_pages: Arc::default(),
    });
    let tracker = TaskTracker::new();
    let sweeper = shared.clone();
    tracker.spawn(async move {
        let mut spill = tokio::time::interval(SWEEP_INTERVAL);
        let mut idle = tokio::time::interval(sweeper.sessions.idle_check_interval());
        loop {
            tokio::select! {
                () = sweeper.shutdown.cancelled() => break,
                _ = spill.tick() => sweeper.exec.spill.sweep(),
                _ = idle.tick() => sweeper.sessions.close_idle().await,
            }
        }
    });
    tracing::info!(socket = %shared.socket.display(), pid = std::process::id(), "sshmcpd listening");
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    tracker.spawn(async move { handle_connection(stream, shared).await });
                }
                Err(e) => {
                    // Usually EMFILE; back off so the loop does not spin.
                    tracing::error!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    tracing::info!("shutting down");
    drop(listener);
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("calls still running after the grace period; closing sessions under them");
    }
    shared.sessions.close_all().await;
}

async fn handle_connection(stream: UnixStream, shared: Arc<Shared>) {
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == shared.uid => {}
        Ok(cred) => {
            tracing::warn!(
                peer_uid = cred.uid(),
                peer_pid = cred.pid(),
                "refused a connection from another user"
            );
            return;
        }
        Err(e) => {
            tracing::warn!("refused a connection whose peer is unknown: {e}");
            return;
        }
    }
    let (mut read, mut write) = stream.into_split();
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, Hello::read(&mut read)).await {
        Ok(Ok(hello)) => hello,
        Ok(Err(ProtoError::Truncated | ProtoError::Io(_))) => {
            // A probe (is a daemon listening?) or a client that gave up.
            tracing::debug!("a client left before finishing its hello");
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!("dropped a connection with a bad hello: {e}");
            return;
        }
        Err(_) => {
            tracing::warn!("dropped a connection that sent no hello");
            return;
        }
    };
    let accepted = hello.proto_version == PROTOCOL_VERSION;
    let reply = HelloReply {
        proto_version: PROTOCOL_VERSION,
        status: if accepted {
            HelloStatus::Accepted
        } else {
            HelloStatus::VersionMismatch
        },
        software: DaemonFacts {
            sessions: Some(shared.sessions.list().len() as u64),
            socket_activated: shared.socket_activated,
        }
        .describe(crate::SOFTWARE),
    };
    if let Err(e) = reply.write(&mut write).await {
        tracing::debug!("client left during the hello: {e}");
        return;
    }
    if !accepted {
        tracing::warn!(
            client = %hello.software,
            client_proto = hello.proto_version,
            "refused a client of another protocol version"
        );
        return;
    }
    tracing::debug!(client = %hello.software, "client connected");

    // One writer task, so concurrent responses never interleave frames.
    let (tx, mut rx) = mpsc::channel::<ServerMessage>(64);
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if let Err(e) = write_message(&mut write, &msg).await {
                tracing::debug!("client left before its answer: {e}");
                break;
            }
        }
    });
    let requests = TaskTracker::new();
    // Calls in flight on this connection, so a `Cancel` can find them.
    let calls: Arc<Mutex<HashMap<u64, CancellationToken>>> = Arc::default();
    let connection_gone = CancellationToken::new();
    let shutting_down = loop {
        let msg = tokio::select! {
            () = shared.shutdown.cancelled() => break true,
            msg = read_message::<ClientMessage, _>(&mut read) => msg,
        };
        match msg {
            Ok(Some(ClientMessage {
                request: Request::Cancel { id },
                ..
            })) => {
                let token = calls
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&id)
                    .cloned();
                match token {
                    Some(token) => {
                        tracing::info!(call = id, "call cancelled by the client");
                        token.cancel();
                    }
                    None => tracing::debug!(call = id, "cancel for a call that already ended"),
                }
            }
            Ok(Some(msg)) => {
                let cancel = connection_gone.child_token();
                calls
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(msg.id, cancel.clone());
                let ctx = CallContext::new(cancel, msg.id, msg.progress.then(|| tx.clone()));
                let shared = shared.clone();
                let tx = tx.clone();
                let calls = calls.clone();
                requests.spawn(async move {
                    let (tool, session) = summary(&msg.request);
                    let started = Instant::now();
                    // Taken before the call runs: disconnect removes the
                    // session whose target the record names.
                    let audit = shared
                        .audit
                        .as_ref()
                        .and_then(|log| log.begin(&msg.request, |id| shared.sessions.info(id)));
                    let response = dispatch(msg.request, &shared, &ctx).await;
                    let outcome = match &response {
                        Response::Error(e) => format!("{:?}", e.kind),
                        _ => "ok".to_owned(),
                    };
                    tracing::info!(
                        call = msg.id,
                        tool,
                        session = session.as_deref().unwrap_or("-"),
                        duration_ms = started.elapsed().as_millis() as u64,
                        outcome,
                        "call"
                    );
                    // Before the answer, so a client that got one finds the
                    // call recorded.
                    if let Some(entry) = audit {
                        entry.finish(&response, started.elapsed());
                    }
                    calls
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&msg.id);
                    // The client may be gone; its answer is then moot.
                    drop(
                        tx.send(ServerMessage {
                            id: msg.id,
                            response,
                        })
                        .await,
                    );
                });
            }
            Ok(None) => break false,
            Err(ProtoError::Io(e)) => {
                tracing::debug!("client connection failed: {e}");
                break false;
            }
            Err(e) => {
                // A frame we cannot trust: the stream may be out of step, so
                // say why and drop the connection.
                tracing::warn!("dropping a client that sent a bad frame: {e}");
                let answer = ServerMessage {
                    id: 0,
                    response: Response::Error(ErrorBody::new(
                        ErrorKind::BadRequest,
                        format!("bad frame: {e}; closing the connection"),
                    )),
                };
                drop(tx.send(answer).await);
                break false;
            }
        }
    };
    requests.close();
    if shutting_down {
        // Calls in flight get a grace period, then are cancelled.
        if tokio::time::timeout(SHUTDOWN_GRACE, requests.wait())
            .await
            .is_err()
        {
            connection_gone.cancel();
        }
    } else {
        // Nobody is left to read the answers: stop remote commands and
        // transfers rather than let them run on unobserved.
        connection_gone.cancel();
    }
    requests.wait().await;
    drop(tx);
    if let Err(e) = writer.await {
        tracing::error!("connection writer failed: {e}");
    }
}

/// What a call is, for its log line: the tool and the session, never the
/// arguments (commands and paths may hold secrets; passwords do).
fn summary(request: &Request) -> (&'static str, Option<String>) {
    match request {
        Request::Connect(_) => ("connect", None),
        Request::Disconnect { session_id } => ("disconnect", Some(session_id.clone())),
        Request::ListSessions => ("list_sessions", None),
        Request::Execute(r) => ("execute", Some(r.session_id.clone())),
        Request::Upload(r) => ("upload", Some(r.session_id.clone())),
        Request::Download(r) => ("download", Some(r.session_id.clone())),
        Request::Status => ("status", None),
        Request::Shutdown => ("shutdown", None),
        Request::Cancel { .. } => ("cancel", None),
        Request::OpenSecretPage(_) => ("open_secret_page", None),
        Request::AwaitSecret { .. } => ("await_secret", None),
    }
}

async fn dispatch(request: Request, shared: &Shared, ctx: &CallContext) -> Response {
    let sessions = &shared.sessions;
    let result: Result<Response, RequestError> = match request {
        Request::Connect(mut req) => {
            async {
                shared.secret_pages.fill(&mut req)?;
                sessions.connect(req).await.map(Response::Connected)
            }
            .await
        }
        Request::Disconnect { session_id } => sessions
            .disconnect(&session_id)
            .await
            .map(|session_id| Response::Disconnected { session_id }),
        Request::ListSessions => Ok(Response::Sessions(sessions.list())),
        Request::Execute(req) => sessions
            .execute(req, &shared.exec, ctx)
            .await
            .map(Response::Executed),
        Request::Upload(req) => sessions.upload(req, ctx).await.map(Response::Transferred),
        Request::Download(req) => sessions.download(req, ctx).await.map(Response::Transferred),
        Request::Status => Ok(Response::Status(DaemonStatus {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            proto_version: PROTOCOL_VERSION,
            uptime_s: shared.started.elapsed().as_secs(),
            socket: shared.socket.display().to_string(),
            log_path: shared.log_path.display().to_string(),
            sessions: sessions.list(),
            socket_activated: shared.socket_activated,
        })),
        Request::Shutdown => {
            tracing::info!("shutdown requested by a client");
            shared.shutdown.cancel();
            Ok(Response::ShuttingDown)
        }
        // Handled by the connection loop; a cancel never reaches here.
        Request::Cancel { .. } => Err(RequestError::bad_request("nothing to cancel")),
        Request::OpenSecretPage(prompt) => shared
            .secret_pages
            .open(prompt)
            .await
            .map(Response::SecretPage),
        Request::AwaitSecret { id } => shared
            .secret_pages
            .wait(&id, &ctx.cancel)
            .await
            .map(|()| Response::SecretReceived),
    };
    result.unwrap_or_else(|e| Response::Error(e.into()))
}
