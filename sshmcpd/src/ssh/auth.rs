//! Logging in once the transport is up, in the order `ssh` uses: public
//! keys, then keyboard-interactive and password.
//!
//! What is tried follows what the caller gave, so that an explicit choice
//! is never drowned by other keys (sshd counts every rejected key against
//! `MaxAuthTries`):
//!
//! - a `private_key` is offered alone (its certificate first, when
//!   `<key>-cert.pub` lies beside it);
//! - a `password` is sent as `password` and, for servers that only allow
//!   `keyboard-interactive` (PAM), as the answer to its password prompt;
//! - with neither, the keys in ssh-agent, then the `IdentityFile`s of
//!   `~/.ssh/config` or OpenSSH's default identities, as `ssh` would.
//!
//! Every attempt is recorded, so a failure says what was tried in order and
//! what the server offered. Secrets never enter those records.

use super::connect::SshHandle;
use crate::error::RequestError;
use crate::ssh_config::Identities;
use russh::client::{AuthResult, KeyboardInteractiveAuthResponse};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{Algorithm, Certificate, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::{AgentAuthError, MethodKind, MethodSet};
use sshmcp_proto::{ErrorKind, Needs, Secret, SecretKind, SecretPrompt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Keyboard-interactive rounds answered before giving up: PAM may send an
/// empty round or an informational message before its password prompt.
const MAX_KBD_ROUNDS: usize = 5;

/// What one server is logged in with.
pub struct Credentials<'a> {
    pub user: &'a str,
    /// `host` or `[host]:port`, to name the login a missing password is
    /// for.
    pub host: &'a str,
    /// The caller's key, already loaded (see [`load_key`]), and its path.
    pub private_key: Option<(&'a Path, Arc<PrivateKey>)>,
    pub password: Option<&'a Secret>,
    /// For encrypted identity files when no `private_key` was given.
    pub passphrase: Option<&'a Secret>,
    /// The client's ssh-agent socket.
    pub agent_socket: Option<&'a Path>,
    /// From `~/.ssh/config`, or OpenSSH's defaults.
    pub identities: &'a Identities,
    /// `IdentitiesOnly`: offer only agent keys that are also identity files.
    pub identities_only: bool,
}

/// The record of one login: what was tried, in order, and what the server
/// said it accepts.
struct Attempts<'a> {
    handle: &'a mut SshHandle,
    user: &'a str,
    label: &'a str,
    tried: Vec<String>,
    /// Methods the server offered in its last answer.
    offered: MethodSet,
    /// Keys already offered, so an identity file the agent holds is not
    /// offered twice.
    offered_keys: Vec<PublicKey>,
    /// `None` until the server's RSA signature preference is asked for.
    rsa_hash: Option<Option<HashAlg>>,
}

/// Logs in and returns the method that worked.
///
/// # Errors
/// `AuthFailed` with every method tried, in order, and those the server
/// offered; `ConnectFailed` when the connection drops meanwhile.
pub async fn authenticate(
    handle: &mut SshHandle,
    creds: &Credentials<'_>,
    label: &str,
) -> Result<&'static str, RequestError> {
    let mut run = Attempts {
        handle,
        user: creds.user,
        label,
        tried: Vec::new(),
        offered: MethodSet::empty(),
        offered_keys: Vec::new(),
        rsa_hash: None,
    };
    // `none` first, as `ssh` does: it tells which methods the server
    // offers, and a server that wants none lets the login through.
    let result = run
        .handle
        .authenticate_none(creds.user)
        .await
        .map_err(|e| run.dropped(e))?;
    if run.settle(result) {
        return Ok("none");
    }
    if let Some((path, key)) = &creds.private_key
        && run
            .key_file(path, key.clone(), &creds.identities.certificates)
            .await?
    {
        return Ok("publickey");
    }
    if let Some(password) = creds.password
        && let Some(method) = run.password(password).await?
    {
        return Ok(method);
    }
    if creds.private_key.is_none() && creds.password.is_none() {
        if run.agent(creds).await? {
            return Ok("publickey");
        }
        if run.identity_files(creds).await? {
            return Ok("publickey");
        }
    }
    Err(run.failure(creds))
}

impl Attempts<'_> {
    /// Notes the server's answer; true when logged in.
    fn settle(&mut self, result: AuthResult) -> bool {
        match result {
            AuthResult::Success => true,
            AuthResult::Failure {
                remaining_methods, ..
            } => {
                self.offered = remaining_methods;
                false
            }
        }
    }

    fn offers(&self, method: MethodKind) -> bool {
        self.offered.contains(&method)
    }

    fn dropped(&self, e: impl std::fmt::Display) -> RequestError {
        RequestError::new(
            ErrorKind::ConnectFailed,
            format!(
                "the connection to {} failed during authentication: {e}",
                self.label
            ),
        )
    }

    /// The hash RSA keys sign with. OpenSSH refuses SHA-1 `ssh-rsa`
    /// signatures by default, so SHA-2 unless the server's
    /// `server-sig-algs` lists no `rsa-sha2-*` at all.
    async fn rsa_hash(&mut self) -> Result<Option<HashAlg>, RequestError> {
        if let Some(hash) = self.rsa_hash {
            return Ok(hash);
        }
        let hash = match self
            .handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| self.dropped(e))?
        {
            Some(hash) => hash,
            None => Some(HashAlg::Sha512),
        };
        self.rsa_hash = Some(hash);
        Ok(hash)
    }

    async fn hash_for(&mut self, key: &PublicKey) -> Result<Option<HashAlg>, RequestError> {
        if key.algorithm().is_rsa() {
            self.rsa_hash().await
        } else {
            Ok(None)
        }
    }

    /// Offers a key read from `path`, its certificate first when there is
    /// one (see [`certificate_for`]). True when logged in.
    async fn key_file(
        &mut self,
        path: &Path,
        key: Arc<PrivateKey>,
        certificate_files: &[PathBuf],
    ) -> Result<bool, RequestError> {
        if !self.offers(MethodKind::PublicKey) {
            return Ok(false);
        }
        let public = key.public_key().clone();
        self.offered_keys.push(public.clone());
        if let Some((cert_path, cert)) = certificate_for(path, &public, certificate_files) {
            self.tried.push(format!(
                "publickey with certificate {}",
                cert_path.display()
            ));
            let result = self
                .handle
                .authenticate_openssh_cert(self.user, key.clone(), cert)
                .await
                .map_err(|e| self.dropped(e))?;
            if self.settle(result) {
                return Ok(true);
            }
        }
        if !self.offers(MethodKind::PublicKey) {
            return Ok(false);
        }
        let hash = self.hash_for(&public).await?;
        self.tried.push(format!(
            "publickey with {} ({})",
            path.display(),
            describe_key(&public, hash)
        ));
        let result = self
            .handle
            .authenticate_publickey(self.user, PrivateKeyWithHashAlg::new(key, hash))
            .await
            .map_err(|e| self.dropped(e))?;
        Ok(self.settle(result))
    }

    /// `password`, then keyboard-interactive answered with the same
    /// password, each only if the server offers it. Returns the method that
    /// worked.
    async fn password(&mut self, password: &Secret) -> Result<Option<&'static str>, RequestError> {
        if self.offers(MethodKind::Password) {
            self.tried.push("password".to_owned());
            let result = self
                .handle
                .authenticate_password(self.user, password.expose())
                .await
                .map_err(|e| self.dropped(e))?;
            if self.settle(result) {
                return Ok(Some("password"));
            }
        }
        if self.offers(MethodKind::KeyboardInteractive)
            && self.keyboard_interactive(password).await?
        {
            return Ok(Some("keyboard-interactive"));
        }
        Ok(None)
    }

    /// Answers the server's password prompt with `password`. Any other
    /// question (a one-time code, a new password) cannot be answered: the
    /// attempt ends there and the record says what was asked.
    async fn keyboard_interactive(&mut self, password: &Secret) -> Result<bool, RequestError> {
        let mut reply = self
            .handle
            .authenticate_keyboard_interactive_start(self.user, None)
            .await
            .map_err(|e| self.dropped(e))?;
        let mut answered = false;
        let mut unanswerable = None;
        for _ in 0..MAX_KBD_ROUNDS {
            let prompts = match reply {
                KeyboardInteractiveAuthResponse::Success => {
                    self.tried
                        .push("keyboard-interactive (password answered)".to_owned());
                    return Ok(true);
                }
                KeyboardInteractiveAuthResponse::Failure {
                    remaining_methods, ..
                } => {
                    self.offered = remaining_methods;
                    break;
                }
                KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => prompts,
            };
            let is_password =
                |p: &russh::client::Prompt| !p.echo && p.prompt.to_lowercase().contains("password");
            let answers = match prompts.as_slice() {
                [] => Vec::new(),
                [prompt] if is_password(prompt) && !answered => {
                    answered = true;
                    vec![password.expose().to_owned()]
                }
                _ => {
                    unanswerable = Some(
                        prompts
                            .iter()
                            .map(|p| format!("{:?}", p.prompt.trim()))
                            .collect::<Vec<_>>()
                            .join(", "),
                    );
                    // Empty answers end the exchange with a failure.
                    vec![String::new(); prompts.len()]
                }
            };
            reply = self
                .handle
                .authenticate_keyboard_interactive_respond(answers)
                .await
                .map_err(|e| self.dropped(e))?;
        }
        self.tried.push(match (unanswerable, answered) {
            (Some(asked), _) => format!(
                "keyboard-interactive (the server asked {asked}, which sshmcpd cannot answer)"
            ),
            (None, true) => "keyboard-interactive (password answered)".to_owned(),
            (None, false) => "keyboard-interactive (the server asked for no password)".to_owned(),
        });
        Ok(false)
    }

    /// The keys and certificates in the client's ssh-agent.
    async fn agent(&mut self, creds: &Credentials<'_>) -> Result<bool, RequestError> {
        let Some(socket) = creds.agent_socket else {
            return Ok(false);
        };
        let mut agent = match AgentClient::connect_uds(socket).await {
            Ok(agent) => agent,
            Err(e) => {
                self.tried.push(format!(
                    "ssh-agent at {} (cannot connect: {e})",
                    socket.display()
                ));
                return Ok(false);
            }
        };
        let identities = match agent.request_identities().await {
            Ok(ids) => ids,
            Err(e) => {
                self.tried.push(format!(
                    "ssh-agent at {} (cannot list its keys: {e})",
                    socket.display()
                ));
                return Ok(false);
            }
        };
        if identities.is_empty() {
            self.tried.push(format!(
                "ssh-agent at {} (it holds no keys)",
                socket.display()
            ));
            return Ok(false);
        }
        let wanted = if creds.identities_only {
            Some(identity_public_keys(creds.identities))
        } else {
            None
        };
        for identity in identities {
            if !self.offers(MethodKind::PublicKey) {
                break;
            }
            let public = identity.public_key().into_owned();
            if wanted
                .as_ref()
                .is_some_and(|keys| !keys.iter().any(|k| k.key_data() == public.key_data()))
            {
                continue;
            }
            let hash = self.hash_for(&public).await?;
            let comment = match identity.comment() {
                "" => String::new(),
                c => format!(" {c}"),
            };
            let (what, result) = match identity {
                AgentIdentity::PublicKey { key, .. } => (
                    format!(
                        "publickey with ssh-agent key {}{comment}",
                        describe_key(&key, hash)
                    ),
                    self.handle
                        .authenticate_publickey_with(self.user, key, hash, &mut agent)
                        .await,
                ),
                AgentIdentity::Certificate { certificate, .. } => (
                    format!(
                        "publickey with ssh-agent certificate for {}{comment}",
                        describe_key(&public, hash)
                    ),
                    self.handle
                        .authenticate_certificate_with(self.user, certificate, hash, &mut agent)
                        .await,
                ),
            };
            self.offered_keys.push(public);
            match result {
                Ok(result) => {
                    self.tried.push(what);
                    if self.settle(result) {
                        return Ok(true);
                    }
                }
                Err(AgentAuthError::Send(e)) => return Err(self.dropped(e)),
                Err(AgentAuthError::Key(e)) => {
                    self.tried
                        .push(format!("{what} (the agent did not sign: {e})"));
                }
            }
        }
        Ok(false)
    }

    /// The identity files, skipping keys the agent already offered.
    async fn identity_files(&mut self, creds: &Credentials<'_>) -> Result<bool, RequestError> {
        for path in &creds.identities.files {
            if !self.offers(MethodKind::PublicKey) {
                break;
            }
            if creds.identities.defaults && !path.exists() {
                // `ssh` passes over missing default files silently.
                continue;
            }
            let key = match load_key(path, creds.passphrase) {
                Ok(key) => key,
                Err(e) => {
                    self.tried
                        .push(format!("{} (not used: {})", path.display(), e.why));
                    continue;
                }
            };
            if self
                .offered_keys
                .iter()
                .any(|k| k.key_data() == key.public_key().key_data())
            {
                continue;
            }
            if self
                .key_file(path, Arc::new(key), &creds.identities.certificates)
                .await?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn failure(self, creds: &Credentials<'_>) -> RequestError {
        let offered = self
            .offered
            .iter()
            .map(<&str>::from)
            .collect::<Vec<_>>()
            .join(", ");
        let tried = if self.tried.is_empty() {
            "nothing".to_owned()
        } else {
            self.tried.join("; then ")
        };
        // Nothing but a password can log in now: say so in a form the shim
        // can turn into a question for the human.
        let needs_password = creds.private_key.is_none()
            && creds.password.is_none()
            && (self.offers(MethodKind::Password) || self.offers(MethodKind::KeyboardInteractive));
        let advice = if creds.private_key.is_some() || creds.password.is_some() {
            "Check the username and the password or key, or whether the key is in the server's \
             authorized_keys."
        } else if needs_password {
            "The server takes a password, and none was given. With an MCP client that supports \
             URL-mode elicitation, sshmcp asks the human for it on a local page so it never \
             reaches the model. Otherwise: load a key into ssh-agent (`ssh-add KEYFILE`), give \
             private_key, or give password (it then passes through the model's context)."
        } else if creds.agent_socket.is_none() {
            "No password or private_key was given and no ssh-agent is reachable (SSH_AUTH_SOCK \
             was not set where sshmcp-shim runs): give a password or private_key, or load a key \
             into ssh-agent."
        } else {
            "No password or private_key was given: give one, or add the right key to ssh-agent \
             (`ssh-add KEYFILE`) or to IdentityFile in ~/.ssh/config."
        };
        RequestError::new(
            ErrorKind::AuthFailed,
            format!(
                "authentication failed for {}: tried, in order: {tried}. The server offered: \
                 {}. {advice}",
                self.label,
                if offered.is_empty() {
                    "nothing more"
                } else {
                    &offered
                },
            ),
        )
        .with_needs(needs_password.then(|| {
            Needs::Secret(SecretPrompt {
                kind: SecretKind::Password,
                host: creds.host.to_owned(),
                username: creds.user.to_owned(),
                key_path: None,
            })
        }))
    }
}

/// `ED25519 SHA256:…`, and the signature algorithm for RSA keys.
fn describe_key(key: &PublicKey, hash: Option<HashAlg>) -> String {
    let name = match key.algorithm() {
        Algorithm::Rsa { .. } => Algorithm::Rsa { hash }.as_str().to_owned(),
        other => other.as_str().to_owned(),
    };
    format!("{name} key {}", key.fingerprint(HashAlg::Sha256))
}

/// The certificate `ssh` would use with the key at `path`: the first of the
/// `CertificateFile`s, then `<path>-cert.pub`, that certifies that very key.
fn certificate_for(
    path: &Path,
    key: &PublicKey,
    certificate_files: &[PathBuf],
) -> Option<(PathBuf, Certificate)> {
    let mut beside = path.as_os_str().to_owned();
    beside.push("-cert.pub");
    certificate_files
        .iter()
        .cloned()
        .chain([PathBuf::from(beside)])
        .filter(|cert_path| cert_path.exists())
        .find_map(
            |cert_path| match russh::keys::load_openssh_certificate(&cert_path) {
                Ok(cert) if cert.public_key() == key.key_data() => Some((cert_path, cert)),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(
                        "{} is not a certificate sshmcpd can read: {e}",
                        cert_path.display()
                    );
                    None
                }
            },
        )
}

/// The public halves of the identity files (`<file>.pub`, else the private
/// key when it is not encrypted), for `IdentitiesOnly`.
fn identity_public_keys(identities: &Identities) -> Vec<PublicKey> {
    identities
        .files
        .iter()
        .filter_map(|path| {
            let mut public = path.as_os_str().to_owned();
            public.push(".pub");
            russh::keys::load_public_key(PathBuf::from(public))
                .ok()
                .or_else(|| {
                    russh::keys::load_secret_key(path, None)
                        .ok()
                        .map(|k| k.public_key().clone())
                })
        })
        .collect()
}

/// Why a key file cannot be used, and which error kind that is.
#[derive(Debug)]
pub struct KeyError {
    pub kind: ErrorKind,
    /// Without the path: callers say which file.
    pub why: String,
    /// The key is encrypted and no passphrase was given.
    pub needs_passphrase: bool,
}

/// Reads a private key, decrypting it with `passphrase` if it is encrypted.
///
/// # Errors
/// A missing or unreadable file (`LocalIo`), an encrypted key without a
/// passphrase or with the wrong one (`AuthFailed`), or a file that is not
/// a key sshmcpd can read (`LocalIo`).
pub fn load_key(path: &Path, passphrase: Option<&Secret>) -> Result<PrivateKey, KeyError> {
    let local = |why: String| KeyError {
        kind: ErrorKind::LocalIo,
        why,
        needs_passphrase: false,
    };
    let auth = |why: String| KeyError {
        kind: ErrorKind::AuthFailed,
        why,
        needs_passphrase: false,
    };
    let shown = path.display();
    match russh::keys::load_secret_key(path, None) {
        Ok(key) => Ok(key),
        Err(russh::keys::Error::IO(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(local("the file does not exist".to_owned()))
        }
        Err(russh::keys::Error::IO(e)) => Err(local(format!("cannot read it: {e}"))),
        Err(russh::keys::Error::KeyIsEncrypted) => match passphrase {
            None => Err(KeyError {
                needs_passphrase: true,
                ..auth(format!(
                    "it is encrypted and no passphrase was given. With an MCP client that \
                     supports URL-mode elicitation, sshmcp asks the human for it on a local \
                     page so it never reaches the model. Otherwise: load it into ssh-agent \
                     (`ssh-add {shown}`) and connect without private_key so the agent is used, \
                     or pass passphrase (it then passes through the model's context)"
                ))
            }),
            Some(passphrase) => russh::keys::load_secret_key(path, Some(passphrase.expose()))
                .map_err(|_| {
                    auth("it is encrypted and the passphrase given does not decrypt it".to_owned())
                }),
        },
        Err(e) => Err(local(format!(
            "it is not a private key sshmcpd can read: {e}"
        ))),
    }
}
