//! Opening an SSH connection: TCP, host-key verification against
//! known_hosts, and authentication.

use crate::error::RequestError;
use russh::client::{self, AuthResult, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use sshmcp_proto::{ErrorKind, Secret};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A connected, authenticated SSH connection.
pub type SshHandle = Handle<HostKeyVerifier>;

/// Everything needed to open one connection.
pub struct ConnectParams {
    pub hostname: String,
    pub port: u16,
    pub username: String,
    pub password: Option<Secret>,
    pub private_key: Option<PathBuf>,
    /// The known_hosts file to check and learn into.
    pub known_hosts: PathBuf,
    pub timeout: Duration,
}

/// Whether the server's host key was already trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyStatus {
    Known,
    Learned,
}

pub struct Connection {
    pub handle: SshHandle,
    pub host_key_fingerprint: String,
    pub host_key_status: HostKeyStatus,
}

/// The russh handler: verifies the server's host key against known_hosts,
/// learning unknown hosts (OpenSSH's `accept-new`) and refusing changed keys.
///
/// russh only learns that the key was refused, so the reason is left in
/// `verdict` for the caller to report.
pub struct HostKeyVerifier {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    verdict: Arc<Mutex<Option<Verdict>>>,
}

/// The fingerprint and whether it was known, or why the key was refused.
type Verdict = Result<(String, HostKeyStatus), String>;

impl client::Handler for HostKeyVerifier {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                verify_host_key(&self.host, self.port, key, &self.known_hosts)
            }
            PublicKeyOrCertificate::Certificate(_) => Err(format!(
                "{} presented an OpenSSH host certificate, which sshmcpd cannot verify yet; \
                 configure the server to offer a plain host key as well",
                host_label(&self.host, self.port)
            )),
        };
        let accepted = verdict.is_ok();
        *self.verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some(verdict);
        Ok(accepted)
    }
}

/// `host` for port 22, else `[host]:port`: how OpenSSH names hosts in
/// known_hosts and in `ssh-keygen -R`.
fn host_label(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Checks `key` against `known_hosts`, learning it when the host is unknown.
/// Returns the key's fingerprint, or a refusal that says how to fix it.
fn verify_host_key(
    host: &str,
    port: u16,
    key: &PublicKey,
    known_hosts: &Path,
) -> Result<(String, HostKeyStatus), String> {
    let label = host_label(host, port);
    let offered = fingerprint(key);
    let file = known_hosts.display();
    let recorded = russh::keys::known_hosts::known_host_keys_path(host, port, known_hosts)
        .map_err(|e| format!("cannot read {file} to verify the host key of {label}: {e}"))?;
    if recorded.iter().any(|(_, k)| k == key) {
        return Ok((offered, HostKeyStatus::Known));
    }
    let remove = format!("ssh-keygen -R '{label}' -f {file}");
    if let Some((line, old)) = recorded
        .iter()
        .find(|(_, k)| k.algorithm() == key.algorithm())
    {
        return Err(format!(
            "HOST KEY CHANGED for {label}: the server offered {} key {offered}, but {file} line {line} \
             records {}. This may be a man-in-the-middle attack, or the host was reinstalled. \
             If you trust the new key, remove the old entry with `{remove}` and connect again.",
            key.algorithm(),
            fingerprint(old),
        ));
    }
    if let Some((line, old)) = recorded.first() {
        return Err(format!(
            "{label} is known in {file} (line {line}) by a {} key, but the server offered a {} key \
             {offered}. sshmcpd does not learn a second key for a known host. If the host's keys \
             really changed, remove the old entries with `{remove}` and connect again.",
            old.algorithm(),
            key.algorithm(),
        ));
    }
    if let Some(dir) = known_hosts.parent() {
        crate::paths::create_private_dir(dir)
            .map_err(|e| format!("cannot create {} to record {label}: {e}", dir.display()))?;
    }
    learn(&label, key, known_hosts)
        .map_err(|e| format!("cannot record the host key of {label} in {file}: {e}"))?;
    tracing::info!(host = %label, fingerprint = %offered, "learned new host key");
    Ok((offered, HostKeyStatus::Learned))
}

/// Appends `label key` to known_hosts as OpenSSH writes it. (russh's own
/// helper starts a new file with a blank line, which shifts every line
/// number a user is told about.)
fn learn(label: &str, key: &PublicKey, known_hosts: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let encoded = key
        .to_openssh()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    let existing = std::fs::read(known_hosts).or_else(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Ok(Vec::new()),
        _ => Err(e),
    })?;
    let mut line = String::new();
    if existing.last().is_some_and(|b| *b != b'\n') {
        line.push('\n');
    }
    line.push_str(&format!("{label} {encoded}\n"));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(known_hosts)?;
    file.write_all(line.as_bytes())?;
    file.sync_all()
}

fn client_config() -> client::Config {
    client::Config {
        // Sessions are kept open for a long time; SSH keepalives notice a
        // dead peer without killing idle sessions.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        nodelay: true,
        window_size: 16 * 1024 * 1024,
        ..client::Config::default()
    }
}

/// Connects and authenticates.
///
/// # Errors
/// `ConnectFailed` (unreachable, timed out), `HostKeyRejected`, `AuthFailed`
/// (with the methods tried and offered), `LocalIo` (key file unreadable).
pub async fn connect(params: ConnectParams) -> Result<Connection, RequestError> {
    let label = format!(
        "{}@{}",
        params.username,
        host_label(&params.hostname, params.port)
    );
    let deadline = params.timeout;
    tokio::time::timeout(deadline, connect_inner(params, &label))
        .await
        .unwrap_or_else(|_| {
            Err(RequestError::new(
                ErrorKind::ConnectFailed,
                format!(
                    "connecting to {label} timed out after {} s; check that the host is up and \
                     the port is right",
                    deadline.as_secs()
                ),
            ))
        })
}

async fn connect_inner(params: ConnectParams, label: &str) -> Result<Connection, RequestError> {
    // Load the key first: a missing or encrypted key is the user's to fix
    // and needs no network.
    let key = match &params.private_key {
        Some(path) => Some(load_key(path)?),
        None => None,
    };
    let verdict = Arc::new(Mutex::new(None));
    let verifier = HostKeyVerifier {
        host: params.hostname.clone(),
        port: params.port,
        known_hosts: params.known_hosts.clone(),
        verdict: verdict.clone(),
    };
    let connected = client::connect(
        Arc::new(client_config()),
        (params.hostname.as_str(), params.port),
        verifier,
    )
    .await;
    let verdict = verdict.lock().unwrap_or_else(|e| e.into_inner()).take();
    let mut handle = match connected {
        Ok(handle) => handle,
        Err(e) => {
            return Err(match verdict {
                Some(Err(refusal)) => RequestError::new(ErrorKind::HostKeyRejected, refusal),
                _ => RequestError::new(
                    ErrorKind::ConnectFailed,
                    format!(
                        "cannot connect to {label}: {e}; check the hostname and port and that \
                         an SSH server is listening there"
                    ),
                ),
            });
        }
    };
    let Some(Ok((host_key_fingerprint, host_key_status))) = verdict else {
        return Err(RequestError::new(
            ErrorKind::Internal,
            format!("connected to {label} without a host-key verdict"),
        ));
    };
    authenticate(&mut handle, &params, key, label).await?;
    Ok(Connection {
        handle,
        host_key_fingerprint,
        host_key_status,
    })
}

fn load_key(path: &Path) -> Result<russh::keys::PrivateKey, RequestError> {
    let shown = path.display();
    match russh::keys::load_secret_key(path, None) {
        Ok(key) => Ok(key),
        Err(russh::keys::Error::IO(e)) if e.kind() == std::io::ErrorKind::NotFound => Err(
            RequestError::local_io(format!("private key file {shown} does not exist")),
        ),
        Err(russh::keys::Error::IO(e)) => Err(RequestError::local_io(format!(
            "cannot read private key file {shown}: {e}"
        ))),
        Err(russh::keys::Error::KeyIsEncrypted) => Err(RequestError::new(
            ErrorKind::AuthFailed,
            format!(
                "private key {shown} is encrypted with a passphrase, which sshmcpd cannot use \
                 yet; use an unencrypted key or a password"
            ),
        )),
        Err(e) => Err(RequestError::local_io(format!(
            "{shown} is not a private key sshmcpd can read: {e}"
        ))),
    }
}

async fn authenticate(
    handle: &mut SshHandle,
    params: &ConnectParams,
    key: Option<russh::keys::PrivateKey>,
    label: &str,
) -> Result<(), RequestError> {
    let auth_error = |e: russh::Error| {
        RequestError::new(
            ErrorKind::ConnectFailed,
            format!("the connection to {label} failed during authentication: {e}"),
        )
    };
    let mut tried = Vec::new();
    let mut offered = None;
    if let Some(key) = key {
        let hash = if key.algorithm().is_rsa() {
            // OpenSSH refuses SHA-1 `ssh-rsa` signatures by default.
            handle
                .best_supported_rsa_hash()
                .await
                .map_err(auth_error)?
                .flatten()
                .or(Some(HashAlg::Sha512))
        } else {
            None
        };
        let path = params
            .private_key
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        tried.push(format!("publickey ({} key {path})", key.algorithm()));
        let result = handle
            .authenticate_publickey(
                &params.username,
                PrivateKeyWithHashAlg::new(Arc::new(key), hash),
            )
            .await
            .map_err(auth_error)?;
        match result {
            AuthResult::Success => return Ok(()),
            AuthResult::Failure {
                remaining_methods, ..
            } => offered = Some(remaining_methods),
        }
    }
    if let Some(password) = &params.password {
        tried.push("password".to_owned());
        let result = handle
            .authenticate_password(&params.username, password.expose())
            .await
            .map_err(auth_error)?;
        match result {
            AuthResult::Success => return Ok(()),
            AuthResult::Failure {
                remaining_methods, ..
            } => offered = Some(remaining_methods),
        }
    }
    let offered = offered
        .map(|m| m.iter().map(String::from).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    Err(RequestError::new(
        ErrorKind::AuthFailed,
        format!(
            "authentication failed for {label}: tried {}; the server accepts: {}. Check the \
             username and the password or key, or whether the key is in the server's \
             authorized_keys.",
            if tried.is_empty() {
                "nothing (give a password or private_key)".to_owned()
            } else {
                tried.join(", then ")
            },
            if offered.is_empty() {
                "unknown"
            } else {
                &offered
            },
        ),
    ))
}
