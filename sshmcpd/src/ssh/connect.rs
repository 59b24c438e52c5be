//! Opening an SSH connection: `~/.ssh/config` applied, TCP (or a
//! `direct-tcpip` channel through each jump host in turn), host-key
//! verification against known_hosts for every hop, and authentication (see
//! [`auth`](super::auth)).
//!
//! Host keys are checked the way `ssh` checks them, in the files `ssh` would
//! read (`UserKnownHostsFile`, `GlobalKnownHostsFile` from `~/.ssh/config`,
//! see [`known_hosts`](super::known_hosts)). What differs is what sshmcpd
//! never does, whatever any setting says: accept a changed key, or learn a
//! second key type for a host it already knows.

use super::auth::{self, Credentials};
use super::jump::{self, HopSpec};
use super::known_hosts::{self, CertCheck, Entry, HostEntries, KeyCheck};
use crate::config::HostKeyPolicy;
use crate::error::RequestError;
use crate::ssh_config::{
    self, HostConfig, Identities, Query, StrictHostKeyChecking, Target, local_user_name,
};
use russh::Preferred;
use russh::client::{self, Handle};
use russh::keys::{Algorithm, Certificate, HashAlg, PublicKey, PublicKeyOrCertificate};
use sshmcp_proto::{
    ConnectRequest, ErrorKind, HostKeyApproval, Needs, Secret, SecretKind, SecretPrompt,
    UnknownHostKey,
};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Jump hosts in one chain at most, counting those a first hop's own
/// `ProxyJump` adds: a bound for configs whose `ProxyJump`s form a loop.
const MAX_HOPS: usize = 16;

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
    /// Keepalives for hosts whose `~/.ssh/config` sets no
    /// `ServerAliveInterval`/`ServerAliveCountMax` (config.toml).
    pub keepalive: Keepalive,
}

/// SSH keepalives: how often, and how many may go unanswered before the
/// connection counts as dead.
#[derive(Debug, Clone, Copy)]
pub struct Keepalive {
    /// `None` turns keepalives off.
    pub interval: Option<Duration>,
    pub max: usize,
}

impl Default for Keepalive {
    /// Sessions are kept open for a long time; keepalives notice a dead
    /// peer without killing idle sessions.
    fn default() -> Self {
        Keepalive {
            interval: Some(Duration::from_secs(15)),
            max: 3,
        }
    }
}

/// Everything needed to open one connection, with `~/.ssh/config` already
/// applied. The session keeps it so that a dropped connection is re-opened
/// to the same place, through the same jump hosts, with the same
/// credentials (secrets zeroized on drop, in memory only).
#[derive(Clone)]
pub struct ConnectParams {
    pub target: Endpoint,
    /// Jump hosts, first hop first; empty for a direct connection.
    pub jumps: Vec<Endpoint>,
    /// Logs in to the target only, as `ssh -i` does; jump hosts use the
    /// agent and their identity files.
    pub private_key: Option<PathBuf>,
    pub password: Option<Secret>,
    /// Of `private_key`, or of encrypted identity files when there is none.
    pub passphrase: Option<Secret>,
    /// The client's ssh-agent, for the target and every hop.
    pub agent_socket: Option<PathBuf>,
    /// Unknown host keys a human accepted, for any hop.
    pub approved_host_keys: Vec<HostKeyApproval>,
    pub trust: Arc<TrustSettings>,
}

/// One SSH server on the way (a jump host or the target), resolved.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The name as given, which `Host` blocks were matched against.
    pub alias: String,
    /// Where to connect, after `HostName`.
    pub hostname: String,
    pub port: u16,
    pub username: String,
    pub identities: Identities,
    pub identities_only: bool,
    /// How long reaching and logging in to this host may take
    /// (`ConnectTimeout`, else sshmcpd's default).
    pub timeout: Duration,
    /// `ServerAliveInterval`, `None` when turned off.
    pub keepalive_interval: Option<Duration>,
    pub keepalive_max: usize,
    /// `ProxyJump` from the config, when the caller gave no `jump`.
    proxy_jump: Option<String>,
}

impl Endpoint {
    /// Applies `~/.ssh/config` to `name`; `user` and `port` given by the
    /// caller win over it.
    fn resolve(
        trust: &TrustSettings,
        name: &str,
        user: Option<&str>,
        port: Option<u16>,
        default_timeout: Duration,
    ) -> Result<Endpoint, RequestError> {
        let config_error = |e: ssh_config::SshConfigError| RequestError::local_io(e.to_string());
        let query = Query { host: name, user };
        let config =
            HostConfig::resolve(&trust.ssh_config, &trust.home, query).map_err(config_error)?;
        let login = config.login(query).map_err(config_error)?;
        let hostname = login.hostname.unwrap_or_else(|| name.to_owned());
        let username = user
            .map(str::to_owned)
            .or(login.user)
            .or_else(local_user_name)
            .ok_or_else(|| {
                RequestError::bad_request(format!(
                    "give a username for {name}: neither ~/.ssh/config nor the local user name \
                     supplies one"
                ))
            })?;
        let port = port.or(login.port).unwrap_or(22);
        let identities = config
            .identities(Target {
                alias: name,
                host: &hostname,
                port,
                user: &username,
            })
            .map_err(config_error)?;
        Ok(Endpoint {
            alias: name.to_owned(),
            hostname,
            port,
            username,
            identities,
            identities_only: login.identities_only,
            timeout: login
                .connect_timeout
                .filter(|t| !t.is_zero())
                .unwrap_or(default_timeout),
            keepalive_interval: match login.server_alive_interval {
                None => trust.keepalive.interval,
                Some(interval) => Some(interval).filter(|i| !i.is_zero()),
            },
            keepalive_max: login
                .server_alive_count_max
                .map_or(trust.keepalive.max, |n| n as usize),
            proxy_jump: login.proxy_jump,
        })
    }

    /// `user@host:port`, for messages.
    pub fn label(&self) -> String {
        format!(
            "{}@{}",
            self.username,
            host_label(&self.hostname, self.port)
        )
    }
}

impl ConnectParams {
    /// Resolves a connect request against `~/.ssh/config`: the target's
    /// `HostName`, `User`, `Port` and identities, and the jump chain (the
    /// request's `jump`, else the target's `ProxyJump`; a first hop's own
    /// `ProxyJump` goes before it, as with `ssh -J`).
    ///
    /// # Errors
    /// `BadRequest` for a malformed jump list or no user name to be had,
    /// `LocalIo` for a config `ssh` would refuse too.
    pub fn resolve(
        req: ConnectRequest,
        trust: Arc<TrustSettings>,
        timeout: Duration,
    ) -> Result<ConnectParams, RequestError> {
        let username = req.username.as_deref().filter(|u| !u.trim().is_empty());
        let target = Endpoint::resolve(&trust, &req.hostname, username, req.port, timeout)?;
        let chain = match req.jump.as_deref().map(str::trim) {
            Some(spec) if !spec.is_empty() => Some(spec.to_owned()),
            _ => target.proxy_jump.clone(),
        };
        let mut jumps = Vec::new();
        if let Some(chain) = chain {
            let hops = jump::parse(&chain).map_err(RequestError::bad_request)?;
            jumps = resolve_chain(&trust, hops, timeout, 0)?;
        }
        Ok(ConnectParams {
            target,
            jumps,
            private_key: req.private_key.map(PathBuf::from),
            password: req.password,
            passphrase: req.passphrase,
            agent_socket: req.agent_socket.map(PathBuf::from),
            approved_host_keys: req.approved_host_keys,
            trust,
        })
    }

    /// The jump hosts, `user@host:port` comma-separated, as `list_sessions`
    /// shows them; `None` for a direct connection.
    pub fn jump_list(&self) -> Option<String> {
        (!self.jumps.is_empty()).then(|| {
            self.jumps
                .iter()
                .map(Endpoint::label)
                .collect::<Vec<_>>()
                .join(",")
        })
    }
}

/// Resolves the hops of a jump list; the first hop's own `ProxyJump` (from
/// its config) is put before it, as `ssh` reaches a jump host the way it
/// would reach it directly.
fn resolve_chain(
    trust: &TrustSettings,
    hops: Vec<HopSpec>,
    timeout: Duration,
    depth: usize,
) -> Result<Vec<Endpoint>, RequestError> {
    let mut endpoints = Vec::new();
    for (index, hop) in hops.into_iter().enumerate() {
        let endpoint = Endpoint::resolve(trust, &hop.host, hop.user.as_deref(), hop.port, timeout)?;
        if index == 0
            && let Some(before) = &endpoint.proxy_jump
        {
            let before = jump::parse(before).map_err(|e| {
                RequestError::local_io(format!(
                    "ProxyJump of jump host {} in ~/.ssh/config: {e}",
                    hop.host
                ))
            })?;
            endpoints.extend(resolve_chain(trust, before, timeout, depth + 1)?);
        }
        endpoints.push(endpoint);
        if endpoints.len() + depth > MAX_HOPS {
            return Err(RequestError::bad_request(format!(
                "the jump chain to {} grows past {MAX_HOPS} hosts; check ~/.ssh/config for \
                 ProxyJump settings that lead back to each other",
                hop.host
            )));
        }
    }
    Ok(endpoints)
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
    /// The method that logged in.
    pub auth_method: &'static str,
    /// Why the connection ended, once it has.
    pub lost: LossReason,
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
    /// The fingerprint a human accepted for this host, learned even when
    /// `strict`.
    approved: Option<String>,
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
    /// Reads the host-key settings for `endpoint` from `~/.ssh/config`
    /// again (they may have changed since the session was opened) and the
    /// known_hosts entries for its host.
    fn resolve(
        endpoint: &Endpoint,
        trust: &TrustSettings,
        approvals: &[HostKeyApproval],
    ) -> Result<Self, RequestError> {
        let target = Target {
            alias: &endpoint.alias,
            host: &endpoint.hostname,
            port: endpoint.port,
            user: &endpoint.username,
        };
        let query = Query {
            host: &endpoint.alias,
            user: Some(&endpoint.username),
        };
        let settings = HostConfig::resolve(&trust.ssh_config, &trust.home, query)
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
        let name = known_hosts::lookup_name(&endpoint.hostname, endpoint.port);
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
                host_label(&endpoint.hostname, endpoint.port)
            ))
        })?;
        let label = host_label(&endpoint.hostname, endpoint.port);
        let approved = approvals
            .iter()
            .find(|a| a.host == label)
            .map(|a| a.fingerprint.clone());
        Ok(HostKeyRules {
            host: endpoint.hostname.clone(),
            port: endpoint.port,
            name,
            strict,
            approved,
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
///
/// russh keeps the handler for as long as the connection runs, so the
/// handler also owns the connection to the jump host this one is tunnelled
/// through: the tunnel lives exactly as long as the connection inside it.
pub struct HostKeyVerifier {
    rules: HostKeyRules,
    verdict: Arc<Mutex<Option<Verdict>>>,
    /// Why the connection ended, once it has: what `list_sessions` and
    /// `status` show for a disconnected session.
    lost: LossReason,
    _carrier: Option<SshHandle>,
}

/// Why a connection ended; `None` while it is up.
pub type LossReason = Arc<Mutex<Option<String>>>;

/// The fingerprint and whether it was known, or why the key was refused.
type Verdict = Result<(String, HostKeyStatus), Refusal>;

/// Why a host key was refused, and the key when only the `strict` policy
/// stood in the way (a human may accept it).
#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    message: String,
    unknown: Option<UnknownHostKey>,
}

impl From<String> for Refusal {
    fn from(message: String) -> Self {
        Refusal {
            message,
            unknown: None,
        }
    }
}

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

    async fn disconnected(
        &mut self,
        reason: client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let (why, result) = match reason {
            client::DisconnectReason::ReceivedDisconnect(info) => (
                format!(
                    "the server closed the connection ({:?}{})",
                    info.reason_code,
                    if info.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", info.message)
                    }
                ),
                Ok(()),
            ),
            client::DisconnectReason::Error(e) => (format!("the connection was lost: {e}"), Err(e)),
        };
        tracing::info!(host = %self.rules.label(), "{why}");
        *self.lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        result
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
        )
        .into()),
        KeyCheck::Changed(entry) => Err(format!(
            "HOST KEY CHANGED for {label}: the server offered {algorithm} key {offered}, but {} \
             records {}. This may be a man-in-the-middle attack, or the host was reinstalled. \
             If you trust the new key, remove the old entry with `{}` and connect again.",
            entry.location(),
            fingerprint(&entry.key),
            remove_command(&label, entry),
        )
        .into()),
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
            )
            .into())
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
        )
        .into());
    };
    let approved = rules.approved.as_deref() == Some(offered);
    if let Some(strict) = rules.strict.as_ref().filter(|_| !approved) {
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
        return Err(Refusal {
            message: format!(
                "{label} is not in any known_hosts file ({searched}), and {setting} refuses \
                 unknown hosts. The server offered {algorithm} key {offered}. With an MCP client \
                 that supports elicitation, sshmcp asks the human to confirm that fingerprint. \
                 Otherwise, to trust this host, confirm the fingerprint with its administrator, \
                 add its key with `{scan}` and connect again; or, to let sshmcpd learn new hosts \
                 itself, {change}."
            ),
            unknown: Some(UnknownHostKey {
                host: label,
                algorithm: algorithm.to_string(),
                fingerprint: offered.to_owned(),
            }),
        });
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
        accepted_by = if approved { "the user" } else { "policy accept-new" },
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
        )
        .into()),
        CertCheck::Invalid { authority, why } => Err(format!(
            "{label} presented a host certificate for key {offered} signed by the \
             @cert-authority at {}, but {why}, so it is refused. Ask the host's administrator \
             to issue a valid certificate for {}.",
            authority.location(),
            rules.host
        )
        .into()),
        CertCheck::NoAuthority => verify_host_key(rules, &certified),
    }
}

/// Puts AES-GCM first when the CPU does AES in hardware: russh's default
/// order starts with chacha20-poly1305, which costs this daemon (and sshd)
/// about twice the CPU per byte there, and bulk transfers are CPU-bound on
/// small machines (BENCHMARKS.md, figure 3).
fn hardware_cipher_first(mut preferred: Preferred) -> Preferred {
    if hardware_aes() && preferred.cipher.contains(&russh::cipher::AES_256_GCM) {
        let rest = preferred
            .cipher
            .iter()
            .copied()
            .filter(|c| *c != russh::cipher::AES_256_GCM);
        preferred.cipher = std::iter::once(russh::cipher::AES_256_GCM)
            .chain(rest)
            .collect::<Vec<_>>()
            .into();
    }
    preferred
}

#[cfg(target_arch = "x86_64")]
fn hardware_aes() -> bool {
    std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(target_arch = "aarch64")]
fn hardware_aes() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull")
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn hardware_aes() -> bool {
    false
}

fn client_config(preferred: Preferred, endpoint: &Endpoint) -> client::Config {
    let preferred = hardware_cipher_first(preferred);
    client::Config {
        // Sessions are kept open for a long time; SSH keepalives notice a
        // dead peer without killing idle sessions.
        inactivity_timeout: None,
        keepalive_interval: endpoint.keepalive_interval,
        keepalive_max: endpoint.keepalive_max,
        nodelay: true,
        window_size: 16 * 1024 * 1024,
        preferred,
        ..client::Config::default()
    }
}

/// Connects through the jump hosts, if any, to the target and logs in.
///
/// # Errors
/// `ConnectFailed` (unreachable, timed out, a jump host refused to
/// forward), `HostKeyRejected` (for any hop), `AuthFailed` (with the
/// methods tried and offered, and which hop), `LocalIo` (key file
/// unreadable, `~/.ssh/config` unusable).
pub async fn connect(params: ConnectParams) -> Result<Connection, RequestError> {
    // Load the key first: a missing or encrypted key is the user's to fix
    // and needs no network.
    let key = match &params.private_key {
        Some(path) => Some(
            auth::load_key(path, params.passphrase.as_ref())
                .map(Arc::new)
                .map_err(|e| {
                    let target = &params.target;
                    RequestError::new(e.kind, format!("private key {}: {}", path.display(), e.why))
                        .with_needs(e.needs_passphrase.then(|| {
                            Needs::Secret(SecretPrompt {
                                kind: SecretKind::Passphrase,
                                host: host_label(&target.hostname, target.port),
                                username: target.username.clone(),
                                key_path: Some(path.display().to_string()),
                            })
                        }))
                })?,
        ),
        None => None,
    };
    let mut carrier: Option<SshHandle> = None;
    for (index, hop) in params.jumps.iter().enumerate() {
        let what = format!(
            "jump host {} (hop {} of {})",
            hop.label(),
            index + 1,
            params.jumps.len()
        );
        let host = host_label(&hop.hostname, hop.port);
        let creds = Credentials {
            user: &hop.username,
            host: &host,
            private_key: None,
            password: None,
            passphrase: None,
            agent_socket: params.agent_socket.as_deref(),
            identities: &hop.identities,
            identities_only: hop.identities_only,
        };
        let conn = open(hop, &params, carrier.take(), &creds)
            .await
            .map_err(|e| e.context(&what))?;
        tracing::info!(hop = %hop.label(), method = conn.auth_method, "logged in to jump host");
        carrier = Some(conn.handle);
    }
    let target = &params.target;
    let host = host_label(&target.hostname, target.port);
    let creds = Credentials {
        user: &target.username,
        host: &host,
        private_key: params.private_key.as_deref().zip(key),
        password: params.password.as_ref(),
        passphrase: params.passphrase.as_ref(),
        agent_socket: params.agent_socket.as_deref(),
        identities: &target.identities,
        identities_only: target.identities_only,
    };
    open(target, &params, carrier, &creds).await
}

/// Connects to one endpoint, directly or through `carrier`, within its
/// timeout, and logs in.
async fn open(
    endpoint: &Endpoint,
    params: &ConnectParams,
    carrier: Option<SshHandle>,
    creds: &Credentials<'_>,
) -> Result<Connection, RequestError> {
    let label = endpoint.label();
    tokio::time::timeout(
        endpoint.timeout,
        open_inner(endpoint, params, carrier, creds, &label),
    )
    .await
    .unwrap_or_else(|_| {
        Err(RequestError::new(
            ErrorKind::ConnectFailed,
            format!(
                "connecting to {label} timed out after {} s; check that the host is up and \
                     the port is right (ConnectTimeout in ~/.ssh/config sets this limit)",
                endpoint.timeout.as_secs()
            ),
        ))
    })
}

async fn open_inner(
    endpoint: &Endpoint,
    params: &ConnectParams,
    carrier: Option<SshHandle>,
    creds: &Credentials<'_>,
    label: &str,
) -> Result<Connection, RequestError> {
    let rules = HostKeyRules::resolve(endpoint, &params.trust, &params.approved_host_keys)?;
    let config = Arc::new(client_config(rules.preferred(), endpoint));
    let verdict = Arc::new(Mutex::new(None));
    let lost = LossReason::default();
    let connected = match carrier {
        None => {
            let verifier = HostKeyVerifier {
                rules,
                verdict: verdict.clone(),
                lost: lost.clone(),
                _carrier: None,
            };
            client::connect(
                config,
                (endpoint.hostname.as_str(), endpoint.port),
                verifier,
            )
            .await
        }
        Some(carrier) => {
            let channel = carrier
                .channel_open_direct_tcpip(
                    endpoint.hostname.as_str(),
                    u32::from(endpoint.port),
                    "127.0.0.1",
                    0,
                )
                .await
                .map_err(|e| {
                    RequestError::new(
                        ErrorKind::ConnectFailed,
                        format!(
                            "the jump host did not open a connection to {label}: {e}; check \
                             that it may forward TCP (AllowTcpForwarding in its sshd_config) \
                             and can reach {}",
                            host_label(&endpoint.hostname, endpoint.port)
                        ),
                    )
                })?;
            let verifier = HostKeyVerifier {
                rules,
                verdict: verdict.clone(),
                lost: lost.clone(),
                _carrier: Some(carrier),
            };
            client::connect_stream(config, channel.into_stream(), verifier).await
        }
    };
    let verdict = verdict.lock().unwrap_or_else(|e| e.into_inner()).take();
    let mut handle = match connected {
        Ok(handle) => handle,
        Err(e) => {
            return Err(match verdict {
                Some(Err(refusal)) => {
                    RequestError::new(ErrorKind::HostKeyRejected, refusal.message)
                        .with_needs(refusal.unknown.map(Needs::HostKey))
                }
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
    let auth_method = auth::authenticate(&mut handle, creds, label).await?;
    Ok(Connection {
        handle,
        host_key_fingerprint,
        host_key_status,
        auth_method,
        lost,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn aes_gcm_goes_first_only_with_hardware_aes() {
        let default = Preferred::default();
        let ordered = super::hardware_cipher_first(Preferred::default());
        assert_eq!(ordered.cipher.len(), default.cipher.len());
        if super::hardware_aes() {
            assert_eq!(ordered.cipher[0], russh::cipher::AES_256_GCM);
        } else {
            assert_eq!(ordered.cipher, default.cipher);
        }
    }

    use super::*;
    use russh::keys::EcdsaCurve;
    use std::path::Path;

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
            approved: None,
            user_files: vec![file],
            global_files: Vec::new(),
            hash: false,
        }
    }

    #[test]
    fn a_second_key_type_for_a_known_host_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let r = rules(dir.path(), "h", 2222, &format!("[h]:2222 {ED}\n"), None);
        let err = verify_host_key(&r, &key(ECDSA)).unwrap_err().message;
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
        let err = verify_host_key(&r, &key(ED)).unwrap_err().message;
        let file = dir.path().join("known_hosts");
        assert!(
            err.contains(&format!("`ssh-keyscan -H h >> {}`", file.display())),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
    }

    #[test]
    fn strict_learns_only_the_key_the_human_approved() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = rules(dir.path(), "h", 2222, "", Some(Strictness::Config(None)));
        let refusal = verify_host_key(&r, &key(ED)).unwrap_err();
        let Some(unknown) = refusal.unknown else {
            panic!("a strict refusal names the key: {}", refusal.message)
        };
        assert_eq!(unknown.host, "[h]:2222");
        assert_eq!(unknown.algorithm, "ssh-ed25519");
        r.approved = Some("SHA256:not-this-one".into());
        assert!(verify_host_key(&r, &key(ED)).is_err());
        let known = dir.path().join("known_hosts");
        assert_eq!(std::fs::read_to_string(&known).unwrap(), "");
        r.approved = Some(unknown.fingerprint.clone());
        let (fingerprint, status) = verify_host_key(&r, &key(ED)).ok().unwrap();
        assert_eq!(
            (fingerprint, status),
            (unknown.fingerprint, HostKeyStatus::Learned)
        );
        let written = std::fs::read_to_string(&known).unwrap();
        assert!(written.starts_with("[h]:2222 ssh-ed25519 "), "{written}");
    }

    #[test]
    fn nowhere_to_learn_is_a_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = rules(dir.path(), "h", 22, "", None);
        r.user_files.clear();
        let err = verify_host_key(&r, &key(ED)).unwrap_err().message;
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
        let err = verify_certificate(&r, &cert).unwrap_err().message;
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
