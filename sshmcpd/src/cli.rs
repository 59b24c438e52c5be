//! The command line: `serve` runs the daemon; `status` and `stop` are small
//! clients of a running one.

use crate::audit::AuditLog;
use crate::config::Config;
use crate::log::RotatingLog;
use crate::output::SpillDir;
use crate::policy::HostPolicy;
use crate::server::{self, Listener};
use crate::sessions::SessionManager;
use crate::sessions::{ExecSettings, SessionLimits};
use crate::ssh::TrustSettings;
use crate::ssh::connect::Keepalive;
use anyhow::Context;
use clap::{Parser, Subcommand};
use sshmcp_proto::{Client, ClientError, DaemonStatus, ProtoError, Request, Response, SessionInfo};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

/// Exit code of `status` and `stop` when no daemon is running.
pub const EXIT_NOT_RUNNING: u8 = 3;

/// How much of one output stream is kept on disk beyond what is inline.
const SPILL_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// How long spilled output is kept.
const SPILL_RETENTION: Duration = Duration::from_secs(24 * 3600);

#[derive(Parser)]
#[command(
    name = "sshmcpd",
    version,
    about = "The sshmcp daemon: owns SSH sessions for MCP clients"
)]
pub struct Cli {
    /// Socket path (default: $SSHMCP_SOCKET, else $XDG_RUNTIME_DIR/sshmcp/sshmcpd.sock,
    /// else /run/user/$UID/sshmcp/sshmcpd.sock, else /tmp/sshmcp-$UID/sshmcpd.sock).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground (what systemd and the shim's auto-start run).
    Serve,
    /// Show the running daemon and its sessions. Exit code 0: running; 3: not running; 1: error.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Ask the running daemon to shut down (its sessions are closed).
    Stop,
    /// Print the effective configuration and where each value comes from.
    Config,
    /// Close one session of the running daemon.
    Disconnect {
        /// The session id, as `status` shows it.
        session_id: String,
    },
    /// Write the systemd user units (sshmcpd.socket, sshmcpd.service) for
    /// this binary, and say how to enable them.
    InstallService {
        /// Also run `systemctl --user daemon-reload` and
        /// `systemctl --user enable --now sshmcpd.socket`.
        #[arg(long)]
        enable: bool,
        /// Where to write the units (default: ~/.config/systemd/user).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Parses arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(sshmcp_proto::rendezvous::socket_path);
    // Before the runtime starts threads: taking the socket edits the
    // environment.
    let activated = match &cli.command {
        Command::Serve => match Listener::take_systemd_socket() {
            Ok(passed) => passed,
            Err(e) => {
                eprintln!("sshmcpd: {e:#}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sshmcpd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => serve(&socket, activated).await.map(|()| ExitCode::SUCCESS),
            Command::Status { json } => status(&socket, json).await,
            Command::Stop => stop(&socket).await,
            Command::Disconnect { session_id } => disconnect(&socket, session_id).await,
            Command::Config => show_config(),
            Command::InstallService { enable, dir } => install_service(enable, dir),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sshmcpd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(log_path: &Path) -> anyhow::Result<()> {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    if let Some(dir) = log_path.parent() {
        crate::paths::create_private_dir(dir)
            .with_context(|| format!("cannot create log directory {}", dir.display()))?;
    }
    let file = RotatingLog::open(log_path, crate::log::MAX_LOG_BYTES)
        .with_context(|| format!("cannot open log file {}", log_path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SSHMCP_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(file.and(std::io::stderr))
        .init();
    Ok(())
}

async fn serve(
    socket: &Path,
    activated: Option<std::os::unix::net::UnixListener>,
) -> anyhow::Result<()> {
    // Everything the daemon creates (socket, lock, known_hosts, downloads'
    // temporary files) starts private to the user.
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0o077) };
    let log_path = sshmcp_proto::rendezvous::log_path();
    init_logging(&log_path)?;
    // Logged as well as returned: an auto-started daemon's stderr goes nowhere.
    let (config, config_file) = load_config().inspect_err(|e| tracing::error!("{e:#}"))?;
    let policy = host_policy(&config, config_file.clone());
    let trust = trust_settings(&config, config_file);
    let audit = if config.audit_log {
        let path = crate::audit::path();
        let log = AuditLog::open(&path)
            .with_context(|| {
                format!(
                    "audit_log = true in config.toml, but the audit log {} cannot be opened; \
                     fix that or turn audit_log off, and start sshmcpd again",
                    path.display()
                )
            })
            .inspect_err(|e| tracing::error!("{e:#}"))?;
        tracing::info!(path = %path.display(), "audit log on");
        Some(log)
    } else {
        None
    };
    let listener = match activated {
        Some(passed) => {
            tracing::info!("serving the socket systemd passed in");
            Listener::from_systemd(passed).inspect_err(|e| tracing::error!("{e:#}"))?
        }
        None => Listener::bind(socket).inspect_err(|e| tracing::error!("{e:#}"))?,
    };
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers; stop the daemon with `sshmcpd stop`");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        signals.cancel();
    });
    let sessions = SessionManager::new(
        trust,
        SessionLimits {
            max_sessions: config.max_sessions.0,
            channels_per_session: config.channels_per_session.0,
            idle_timeout: (config.idle_timeout > 0)
                .then(|| Duration::from_secs(config.idle_timeout)),
        },
        policy,
    );
    let exec = ExecSettings {
        spill: SpillDir {
            dir: sshmcp_proto::rendezvous::state_dir().join("output"),
            max_bytes: SPILL_MAX_BYTES,
            retention: SPILL_RETENTION,
        },
        default_timeout: config.default_timeout.map(|s| Duration::from_secs(s.0)),
        max_timeout: config.max_timeout.map(|s| Duration::from_secs(s.0)),
    };
    server::run(listener, sessions, log_path, exec, audit, shutdown).await;
    tracing::info!("sshmcpd stopped");
    Ok(())
}

/// config.toml and where it is. Read once: a daemon with a broken config
/// refuses to start rather than run with weaker host-key checking or other
/// limits than the user asked for.
fn load_config() -> anyhow::Result<(Config, Option<PathBuf>)> {
    let config_file = crate::config::path();
    let config = match &config_file {
        Some(path) => crate::config::load(path)?,
        None => Config::default(),
    };
    Ok((config, config_file))
}

/// Which hosts `connect` may reach, logged so the log says what applied.
fn host_policy(config: &Config, config_file: Option<PathBuf>) -> HostPolicy {
    let policy = HostPolicy {
        allow: config.allow_hosts.clone(),
        deny: config.deny_hosts.clone(),
        config_file,
    };
    if !policy.is_open() {
        tracing::info!(
            allow_hosts = %policy.allow,
            deny_hosts = %policy.deny,
            "host policy"
        );
    }
    policy
}

/// The host-key policy and where the user's SSH client config is.
fn trust_settings(config: &Config, config_file: Option<PathBuf>) -> TrustSettings {
    let home = crate::paths::home();
    tracing::info!(
        policy = ?config.host_key_policy,
        config = %config_file.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
        "host key policy"
    );
    TrustSettings {
        keepalive: Keepalive {
            interval: (config.keepalive_interval > 0)
                .then(|| Duration::from_secs(config.keepalive_interval)),
            max: config.keepalive_count_max.0,
        },
        policy: config.host_key_policy,
        config_file,
        ssh_config: home.join(".ssh").join("config"),
        home,
    }
}

/// Connects to the daemon; `Ok(None)` when none is running there.
async fn connect(socket: &Path) -> anyhow::Result<Option<Client>> {
    let stream = match UnixStream::connect(socket).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot reach {}", socket.display())),
    };
    let client = tokio::time::timeout(
        Duration::from_secs(10),
        Client::handshake(stream, crate::SOFTWARE),
    )
    .await
    .with_context(|| format!("the daemon at {} did not answer", socket.display()))?
    .map_err(|e| match e {
        ClientError::Proto(ProtoError::VersionMismatch {
            theirs,
            peer_software,
            ..
        }) => anyhow::anyhow!(
            "the daemon at {} ({peer_software}) speaks protocol {theirs}, this sshmcpd speaks {}; \
             stop it with the sshmcpd it came with, or kill it",
            socket.display(),
            sshmcp_proto::PROTOCOL_VERSION
        ),
        e => anyhow::Error::new(e)
            .context(format!("cannot talk to the daemon at {}", socket.display())),
    })?;
    Ok(Some(client))
}

async fn status(socket: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let Some(client) = connect(socket).await? else {
        println!("sshmcpd is not running (no daemon at {})", socket.display());
        return Ok(ExitCode::from(EXIT_NOT_RUNNING));
    };
    let status = match client.call(Request::Status).await? {
        Response::Status(s) => s,
        Response::Error(e) => anyhow::bail!("the daemon refused the status request: {e}"),
        other => anyhow::bail!("the daemon answered the status request with {other:?}"),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&status_json(&status))?);
    } else {
        print!("{}", status_table(&status));
    }
    Ok(ExitCode::SUCCESS)
}

async fn stop(socket: &Path) -> anyhow::Result<ExitCode> {
    let Some(client) = connect(socket).await? else {
        println!("sshmcpd is not running (no daemon at {})", socket.display());
        return Ok(ExitCode::from(EXIT_NOT_RUNNING));
    };
    match client.call(Request::Shutdown).await? {
        Response::ShuttingDown => {}
        other => anyhow::bail!("the daemon did not agree to stop: {other:?}"),
    }
    // The daemon closes the connection as it exits; wait for that.
    let gone = tokio::time::timeout(Duration::from_secs(10), async {
        while !matches!(
            client.call(Request::Status).await,
            Err(ClientError::Closed | ClientError::Proto(_))
        ) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if gone.is_err() {
        anyhow::bail!("the daemon agreed to stop but is still answering after 10 s");
    }
    println!("sshmcpd stopped");
    Ok(ExitCode::SUCCESS)
}

fn show_config() -> anyhow::Result<ExitCode> {
    let (config, file) = load_config()?;
    let set_in_file: toml::Table = file
        .as_deref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|text| text.parse().ok())
        .unwrap_or_default();
    let secs = |s: Option<crate::config::PositiveSeconds>| {
        s.map_or("none".to_owned(), |s| s.0.to_string())
    };
    let values = [
        (
            "host_key_policy",
            match config.host_key_policy {
                crate::config::HostKeyPolicy::AcceptNew => "\"accept-new\"".to_owned(),
                crate::config::HostKeyPolicy::Strict => "\"strict\"".to_owned(),
            },
        ),
        ("default_timeout", secs(config.default_timeout)),
        ("max_timeout", secs(config.max_timeout)),
        ("idle_timeout", config.idle_timeout.to_string()),
        ("max_sessions", config.max_sessions.0.to_string()),
        (
            "channels_per_session",
            config.channels_per_session.0.to_string(),
        ),
        ("keepalive_interval", config.keepalive_interval.to_string()),
        (
            "keepalive_count_max",
            config.keepalive_count_max.0.to_string(),
        ),
        ("allow_hosts", config.allow_hosts.to_string()),
        ("deny_hosts", config.deny_hosts.to_string()),
        ("audit_log", config.audit_log.to_string()),
    ];
    let origin = file
        .as_deref()
        .map_or("no config file".to_owned(), |f| f.display().to_string());
    println!("# config file: {origin}");
    for (key, value) in values {
        let source = if set_in_file.contains_key(key) {
            origin.as_str()
        } else {
            "default"
        };
        println!("{key} = {value}  # {source}");
    }
    if config.audit_log {
        println!("# audit log file: {}", crate::audit::path().display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn disconnect(socket: &Path, session_id: String) -> anyhow::Result<ExitCode> {
    let Some(client) = connect(socket).await? else {
        println!("sshmcpd is not running (no daemon at {})", socket.display());
        return Ok(ExitCode::from(EXIT_NOT_RUNNING));
    };
    match client.call(Request::Disconnect { session_id }).await? {
        Response::Disconnected { session_id } => {
            println!("disconnected session {session_id}");
            Ok(ExitCode::SUCCESS)
        }
        Response::Error(e) => anyhow::bail!("{e}"),
        other => anyhow::bail!("the daemon answered the disconnect with {other:?}"),
    }
}

fn install_service(enable: bool, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let binary = std::env::current_exe().context("cannot find this sshmcpd binary's path")?;
    let dir = match dir {
        Some(dir) => dir,
        None => crate::service::user_unit_dir()?,
    };
    for path in crate::service::install(&dir, &binary)? {
        println!("wrote {}", path.display());
    }
    let steps: [&[&str]; 2] = [
        &["--user", "daemon-reload"],
        &["--user", "enable", "--now", crate::service::SOCKET_UNIT],
    ];
    if !enable {
        println!(
            "enable it with: systemctl --user daemon-reload && systemctl --user enable --now {}",
            crate::service::SOCKET_UNIT
        );
        return Ok(ExitCode::SUCCESS);
    }
    for args in steps {
        let status = std::process::Command::new("systemctl")
            .args(args)
            .status()
            .context("cannot run systemctl")?;
        if !status.success() {
            anyhow::bail!("`systemctl {}` failed ({status})", args.join(" "));
        }
    }
    println!(
        "{} is enabled: the daemon starts on the first connection",
        crate::service::SOCKET_UNIT
    );
    Ok(ExitCode::SUCCESS)
}

/// RFC 3339 in UTC, seconds precision.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn session_json(s: &SessionInfo) -> serde_json::Value {
    serde_json::json!({
        "session_id": s.session_id,
        "hostname": s.hostname,
        "username": s.username,
        "port": s.port,
        "status": s.state.as_str(),
        "connected_at": rfc3339(s.connected_at_ms),
        "last_used_at": rfc3339(s.last_used_at_ms),
        "alias": s.alias,
        "jump": s.jump,
        "commands_run": s.commands_run,
        "bytes_moved": s.bytes_moved,
        "last_error": s.last_error,
    })
}

fn status_json(s: &DaemonStatus) -> serde_json::Value {
    serde_json::json!({
        "pid": s.pid,
        "version": s.version,
        "proto_version": s.proto_version,
        "uptime_s": s.uptime_s,
        "socket": s.socket,
        "log_path": s.log_path,
        "sessions": s.sessions.iter().map(session_json).collect::<Vec<_>>(),
        "socket_activated": s.socket_activated,
    })
}

fn status_table(s: &DaemonStatus) -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let ago = |ms: u64| {
        let secs = now_ms.saturating_sub(ms) / 1000;
        humantime::format_duration(Duration::from_secs(secs)).to_string()
    };
    let mut lines = vec![
        format!(
            "sshmcpd {} running (pid {}, protocol {}{})",
            s.version,
            s.pid,
            s.proto_version,
            if s.socket_activated {
                ", started by systemd socket activation"
            } else {
                ""
            }
        ),
        format!(
            "uptime:  {}",
            humantime::format_duration(Duration::from_secs(s.uptime_s))
        ),
        format!("socket:  {}", s.socket),
        format!("log:     {}", s.log_path),
    ];
    if s.sessions.is_empty() {
        lines.push("sessions: none".to_owned());
        return lines.join("\n") + "\n";
    }
    lines.push(format!("sessions: {}", s.sessions.len()));
    let header = [
        "ID",
        "TARGET",
        "STATE",
        "AGE",
        "IDLE",
        "CMDS",
        "MOVED",
        "LAST ERROR",
    ]
    .map(String::from);
    let rows: Vec<[String; 8]> = s
        .sessions
        .iter()
        .map(|x| {
            let target = format!("{}@{}:{}", x.username, x.hostname, x.port);
            [
                x.session_id.clone(),
                match &x.alias {
                    Some(alias) => format!("{alias} ({target})"),
                    None => target,
                },
                x.state.as_str().to_owned(),
                ago(x.connected_at_ms),
                ago(x.last_used_at_ms),
                x.commands_run.to_string(),
                format!("{} B", x.bytes_moved),
                x.last_error.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        lines.push(cells.join("  ").trim_end().to_owned());
    }
    lines.join("\n") + "\n"
}
