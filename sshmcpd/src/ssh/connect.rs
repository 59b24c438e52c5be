//! Opening an SSH connection: TCP, host-key verification against
//! known_hosts, and authentication.
//!
//! Host keys are checked the way `ssh` checks them, in the files `ssh` would
//! read (`UserKnownHostsFile`, `GlobalKnownHostsFile` from `~/.ssh/config`,
//! see [`known_hosts`](super::known_hosts)). What differs is what sshmcpd
//! never does, whatever any setting says: accept a changed key, or learn a
//! second key type for a host it already knows.

use super::known_hosts::{self, CertCheck, Entry, HostEntries, KeyCheck};
use crate::config::HostKeyPolicy;
use crate::error::RequestError;
use crate::ssh_config::{self, HostConfig, StrictHostKeyChecking, Target};
use russh::Preferred;
use russh::client::{self, AuthResult, Handle};
use russh::keys::{
    Algorithm, Certificate, HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate,
};
use sshmcp_proto::{ErrorKind, Secret};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A connected, authenticated SSH connection.
pub type SshHandle = Handle<HostKeyVerifier>;

/// What decides which host keys are trusted, besides the known_hosts files
/// themselves. Fixed for the daemon's life; `~/.ssh/config` is read again
/// on every connect, as `ssh` reads it on every run.
#[derive(Debug, Clone)]
pub struct TrustSettings {
    /// From config.toml; `StrictHostKeyChecking` overrides it per host.
    pub policy: HostKeyPolicy,
    /// Where `policy` is set, for advice on changing it.
    pub config_file: Option<PathBuf>,
    /// The user's SSH client config.
    pub ssh_config: PathBuf,
    /// What `~` stands for in it.
    pub home: PathBuf,
}

/// Everything needed to open one connection.
pub struct ConnectParams {
    pub hostname: String,
    pub port: u16,
    pub username: String,
    pub password: Option<Secret>,
    pub private_key: Option<PathBuf>,
    pub trust: Arc<TrustSettings>,
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

/// The host-key rules for one connection, resolved before connecting: the
/// known types decide which key the server is asked for.
struct HostKeyRules {
    host: String,
    port: u16,
    /// `host` or `[host]:port`, as known_hosts records it.
    name: String,
    /// Why unknown hosts are refused (which setting, where), or `None`
    /// when they are learned.
    strict: Option<Strictness>,
    /// The first one is learned into.
    user_files: Vec<PathBuf>,
    global_files: Vec<PathBuf>,
    hash: bool,
    entries: HostEntries,
}

/// Which setting made the host strict, so the refusal says what to change.
enum Strictness {
    Config(Option<PathBuf>),
    SshConfig(ssh_config::Origin),
}

impl HostKeyRules {
    fn resolve(params: &ConnectParams) -> Result<Self, RequestError> {
        let trust = &params.trust;
        let target = Target {
            host: &params.hostname,
            port: params.port,
            user: &params.username,
        };
        let settings = HostConfig::resolve(&trust.ssh_config, &trust.home, target)
            .and_then(|config| config.host_keys(target))
            .map_err(|e| RequestError::local_io(e.to_string()))?;
        let strict = match settings.strict_host_key_checking {
            Some((StrictHostKeyChecking::Yes, origin)) => Some(Strictness::SshConfig(origin)),
            Some((StrictHostKeyChecking::AcceptNew, _)) => None,
            None => match trust.policy {
                HostKeyPolicy::Strict => Some(Strictness::Config(trust.config_file.clone())),
                HostKeyPolicy::AcceptNew => None,
            },
        };
        let name = known_hosts::lookup_name(&params.hostname, params.port);
        let files: Vec<PathBuf> = settings
            .user_known_hosts_files
            .iter()
            .chain(&settings.global_known_hosts_files)
            .cloned()
            .collect();
        let entries = HostEntries::load(&files, &name).map_err(|(file, e)| {
            RequestError::local_io(format!(
                "cannot read {} to verify the host key of {}: {e}; fix its permissions or set \
                 UserKnownHostsFile/GlobalKnownHostsFile in ~/.ssh/config",
                file.display(),
                host_label(&params.hostname, params.port)
            ))
        })?;
        Ok(HostKeyRules {
            host: params.hostname.clone(),
            port: params.port,
            name,
            strict,
            user_files: settings.user_known_hosts_files,
            global_files: settings.global_known_hosts_files,
            hash: settings.hash_known_hosts,
            entries,
        })
    }

    fn label(&self) -> String {
        host_label(&self.host, self.port)
    }

    /// The client's algorithm preferences for this host: known key types
    /// first, as `ssh` orders them, so a server with several host keys
    /// shows the one that can be checked; certificates first when an
    /// `@cert-authority` may vouch for the host.
    fn preferred(&self) -> Preferred {
        let mut preferred = Preferred::default();
        let known = self.entries.known_algorithms();
        let is_known = |a: &Algorithm| known.iter().any(|k| same_key_type(k, a));
        let (first, rest): (Vec<Algorithm>, Vec<Algorithm>) =
            preferred.key.iter().cloned().partition(is_known);
        preferred.key = first.into_iter().chain(rest).collect::<Vec<_>>().into();
        if self.entries.has_cert_authority() {
            preferred.host_key_certificates = preferred.key.clone();
        }
        preferred
    }
}

/// RSA keys are one key type signed with several hashes.
fn same_key_type(a: &Algorithm, b: &Algorithm) -> bool {
    a == b || matches!((a, b), (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }))
}

/// The russh handler: checks the server's host key or certificate against
/// the [`HostKeyRules`].
///
/// russh only learns that the key was refused, so the reason is left in
/// `verdict` for the caller to report.
pub struct HostKeyVerifier {
    rules: HostKeyRules,
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
            PublicKeyOrCertificate::PublicKey { key, .. } => verify_host_key(&self.rules, key),
            PublicKeyOrCertificate::Certificate(cert) => verify_certificate(&self.rules, cert),
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

/// `word` as one shell word.
fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The command that removes `label`'s entries from the file holding `entry`.
fn remove_command(label: &str, entry: &Entry) -> String {
    format!(
        "ssh-keygen -R {} -f {}",
        shell_quote(label),
        shell_quote(&entry.file.to_string_lossy())
    )
}

/// Checks a plain host key, learning it when the host is unknown and the
/// rules allow. Returns the key's fingerprint, or a refusal that says how
/// to fix it.
fn verify_host_key(rules: &HostKeyRules, key: &PublicKey) -> Verdict {
    let label = rules.label();
    let offered = fingerprint(key);
    let algorithm = key.algorithm();
    match rules.entries.check_key(key) {
        KeyCheck::Known(_) => Ok((offered, HostKeyStatus::Known)),
        KeyCheck::Revoked(entry) => Err(format!(
            "{label} offered {algorithm} key {offered}, which {} marks @revoked: sshmcpd never \
             accepts a revoked key. Ask the host's administrator to replace the key; if the \
             revocation is a mistake, delete that line.",
            entry.location()
        )),
        KeyCheck::Changed(entry) => Err(format!(
            "HOST KEY CHANGED for {label}: the server offered {algorithm} key {offered}, but {} \
             records {}. This may be a man-in-the-middle attack, or the host was reinstalled. \
             If you trust the new key, remove the old entry with `{}` and connect again.",
            entry.location(),
            fingerprint(&entry.key),
            remove_command(&label, entry),
        )),
        KeyCheck::OtherType(entry) => {
            let known = entry.key.algorithm();
            Err(format!(
                "{label} is known in {} by {known} key {}, but the server offered {algorithm} key \
                 {offered} and no {known} key. sshmcpd does not learn a second key for a known \
                 host. If the host's keys really changed, remove the old entries with `{}` and \
                 connect again.",
                entry.location(),
                fingerprint(&entry.key),
                remove_command(&label, entry),
            ))
        }
        KeyCheck::Unknown => learn(rules, key, &offered),
    }
}

/// A host no file knows: learned under `accept-new`, refused with advice
/// under `strict`.
fn learn(rules: &HostKeyRules, key: &PublicKey, offered: &str) -> Verdict {
    let label = rules.label();
    let algorithm = key.algorithm();
    let searched = rules
        .user_files
        .iter()
        .chain(&rules.global_files)
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let Some(file) = rules.user_files.first() else {
        return Err(format!(
            "{label} is not in any known_hosts file ({searched}) and UserKnownHostsFile is none, \
             so sshmcpd has nowhere to record its {algorithm} key {offered}. Set \
             UserKnownHostsFile in ~/.ssh/config, or add the key to a global known_hosts file."
        ));
    };
    if let Some(strict) = &rules.strict {
        let scan = format!(
            "ssh-keyscan {}{}{} >> {}",
            if rules.hash { "-H " } else { "" },
            if rules.port == 22 {
                String::new()
            } else {
                format!("-p {} ", rules.port)
            },
            shell_quote(&rules.host),
            shell_quote(&file.to_string_lossy())
        );
        let (setting, change) = match strict {
            Strictness::Config(Some(config)) => (
                format!("host_key_policy = \"strict\" in {}", config.display()),
                "set host_key_policy = \"accept-new\" there and restart sshmcpd \
                 (`sshmcpd stop`; it starts again on the next call)"
                    .to_owned(),
            ),
            Strictness::Config(None) => (
                "host_key_policy = \"strict\"".to_owned(),
                "set host_key_policy = \"accept-new\"".to_owned(),
            ),
            Strictness::SshConfig(origin) => (
                format!("StrictHostKeyChecking at {origin}"),
                "change that line to StrictHostKeyChecking accept-new".to_owned(),
            ),
        };
        return Err(format!(
            "{label} is not in any known_hosts file ({searched}), and {setting} refuses unknown \
             hosts. The server offered {algorithm} key {offered}. To trust this host, confirm \
             that fingerprint with its administrator, add its key with `{scan}` and connect \
             again; or, to let sshmcpd learn new hosts itself, {change}."
        ));
    }
    let written = known_hosts::entry_line(&rules.name, key, rules.hash)
        .map_err(|e| format!("cannot encode the host key of {label}: {e}"))
        .and_then(|line| {
            if let Some(dir) = file.parent() {
                crate::paths::create_private_dir(dir).map_err(|e| {
                    format!("cannot create {} to record {label}: {e}", dir.display())
                })?;
            }
            known_hosts::append(file, &line).map_err(|e| {
                format!(
                    "cannot record the host key of {label} in {}: {e}",
                    file.display()
                )
            })
        })?;
    tracing::info!(
        host = %label,
        fingerprint = %offered,
        "learned new host key into {} line {written}",
        file.display()
    );
    Ok((offered.to_owned(), HostKeyStatus::Learned))
}

/// Checks a host certificate against the `@cert-authority` entries. A
/// certificate no authority here signed is checked as the plain key it
/// certifies, as `ssh` does.
fn verify_certificate(rules: &HostKeyRules, cert: &Certificate) -> Verdict {
    let label = rules.label();
    let certified = PublicKey::new(cert.public_key().clone(), "");
    let offered = fingerprint(&certified);
    match rules
        .entries
        .check_certificate(cert, &rules.host, known_hosts::now())
    {
        CertCheck::Trusted(authority) => {
            tracing::info!(
                host = %label,
                fingerprint = %offered,
                "host certificate {:?} signed by the @cert-authority at {}",
                cert.key_id(),
                authority.location()
            );
            Ok((offered, HostKeyStatus::Known))
        }
        CertCheck::Revoked(entry) => Err(format!(
            "{label} presented a host certificate for key {offered} signed by CA key {}, and {} \
             marks one of those keys @revoked: sshmcpd never accepts a revoked key. Ask the \
             host's administrator to replace it; if the revocation is a mistake, delete that \
             line.",
            fingerprint(&PublicKey::new(cert.signature_key().clone(), "")),
            entry.location()
        )),
        CertCheck::Invalid { authority, why } => Err(format!(
            "{label} presented a host certificate for key {offered} signed by the \
             @cert-authority at {}, but {why}, so it is refused. Ask the host's administrator \
             to issue a valid certificate for {}.",
            authority.location(),
            rules.host
        )),
        CertCheck::NoAuthority => verify_host_key(rules, &certified),
    }
}

fn client_config(preferred: Preferred) -> client::Config {
    client::Config {
        // Sessions are kept open for a long time; SSH keepalives notice a
        // dead peer without killing idle sessions.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        nodelay: true,
        window_size: 16 * 1024 * 1024,
        preferred,
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
    let rules = HostKeyRules::resolve(&params)?;
    let config = client_config(rules.preferred());
    let verdict = Arc::new(Mutex::new(None));
    let verifier = HostKeyVerifier {
        rules,
        verdict: verdict.clone(),
    };
    let connected = client::connect(
        Arc::new(config),
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

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::EcdsaCurve;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBwrh94wCWIm/L05M34oHtsiy5a9li/TxIhVgoGTjLx9";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBCyGSQ1+eNwEegaoCkbRy3+0gcxspCQVBQUk4EnQb335O87p2dWFkJ9/yAkjqnXrmDOtB3rmli8nsqbiALMGggA=";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).unwrap()
    }

    /// Rules for `host:port` with `known_hosts` as the one user file.
    fn rules(
        dir: &Path,
        host: &str,
        port: u16,
        known_hosts: &str,
        strict: Option<Strictness>,
    ) -> HostKeyRules {
        let file = dir.join("known_hosts");
        std::fs::write(&file, known_hosts).unwrap();
        let name = known_hosts::lookup_name(host, port);
        HostKeyRules {
            host: host.to_owned(),
            port,
            entries: HostEntries::load(std::slice::from_ref(&file), &name).unwrap(),
            name,
            strict,
            user_files: vec![file],
            global_files: Vec::new(),
            hash: false,
        }
    }

    #[test]
    fn a_second_key_type_for_a_known_host_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let r = rules(dir.path(), "h", 2222, &format!("[h]:2222 {ED}\n"), None);
        let err = verify_host_key(&r, &key(ECDSA)).unwrap_err();
        assert!(
            err.contains("known_hosts line 1 by ssh-ed25519 key SHA256:"),
            "{err}"
        );
        assert!(
            err.contains("offered ecdsa-sha2-nistp256 key SHA256:"),
            "{err}"
        );
        assert!(err.contains("and no ssh-ed25519 key"), "{err}");
        assert!(err.contains("ssh-keygen -R '[h]:2222' -f "), "{err}");
    }

    #[test]
    fn learning_appends_where_openssh_would() {
        let dir = tempfile::tempdir().unwrap();
        let r = rules(dir.path(), "H", 22, "# mine\nother.org ssh-ed25519 x", None);
        let (fp, status) = verify_host_key(&r, &key(ED)).unwrap();
        assert_eq!(status, HostKeyStatus::Learned);
        assert_eq!(fp, key(ED).fingerprint(HashAlg::Sha256).to_string());
        let text = std::fs::read_to_string(dir.path().join("known_hosts")).unwrap();
        assert_eq!(text, format!("# mine\nother.org ssh-ed25519 x\nh {ED}\n"));
    }

    #[test]
    fn strict_advice_fits_the_port_and_hashing() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = rules(dir.path(), "h", 22, "", Some(Strictness::Config(None)));
        r.hash = true;
        let err = verify_host_key(&r, &key(ED)).unwrap_err();
        let file = dir.path().join("known_hosts");
        assert!(
            err.contains(&format!("`ssh-keyscan -H h >> {}`", file.display())),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
    }

    #[test]
    fn nowhere_to_learn_is_a_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = rules(dir.path(), "h", 22, "", None);
        r.user_files.clear();
        let err = verify_host_key(&r, &key(ED)).unwrap_err();
        assert!(err.contains("UserKnownHostsFile is none"), "{err}");
    }

    #[test]
    fn known_key_types_are_asked_for_first() {
        let dir = tempfile::tempdir().unwrap();
        let p256 = Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        };
        let r = rules(dir.path(), "h", 22, &format!("h {ECDSA}\n"), None);
        let preferred = r.preferred();
        assert_eq!(preferred.key[0], p256);
        assert_eq!(preferred.key.len(), Preferred::default().key.len());
        assert!(preferred.host_key_certificates.is_empty());
        // Unknown host: russh's order, no certificates.
        let r = rules(dir.path(), "other", 22, &format!("h {ECDSA}\n"), None);
        assert_eq!(r.preferred().key, Preferred::default().key);
        // An authority for the host: certificates are asked for too.
        let r = rules(
            dir.path(),
            "h",
            22,
            &format!("@cert-authority h {ED}\n"),
            None,
        );
        assert_eq!(
            r.preferred().host_key_certificates,
            Preferred::default().key
        );
    }

    #[test]
    fn a_certificate_no_trusted_authority_signed_is_checked_as_its_key() {
        use super::known_hosts::tests::certs::{CA, CA2, HOST, VALID};
        let dir = tempfile::tempdir().unwrap();
        let cert = Certificate::from_openssh(VALID).unwrap();
        let host_fp = key(HOST).fingerprint(HashAlg::Sha256).to_string();
        let known = format!("@cert-authority * {CA2}\nh.example.org {HOST}\n");
        let r = rules(dir.path(), "h.example.org", 22, &known, None);
        assert_eq!(
            verify_certificate(&r, &cert),
            Ok((host_fp.clone(), HostKeyStatus::Known))
        );
        let known = format!("@cert-authority * {CA}\n");
        let r = rules(dir.path(), "h.example.org", 22, &known, None);
        assert_eq!(
            verify_certificate(&r, &cert),
            Ok((host_fp, HostKeyStatus::Known))
        );
        let r = rules(dir.path(), "x.example.org", 22, &known, None);
        let err = verify_certificate(&r, &cert).unwrap_err();
        assert!(err.contains("@cert-authority at "), "{err}");
        assert!(
            err.contains("known_hosts line 1, but it is valid for h.example.org"),
            "{err}"
        );
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(
            shell_quote("/home/me/.ssh/known_hosts"),
            "/home/me/.ssh/known_hosts"
        );
        assert_eq!(shell_quote("[h]:2222"), "'[h]:2222'");
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
