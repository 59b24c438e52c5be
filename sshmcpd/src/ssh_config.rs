//! The parts of OpenSSH's client configuration (`~/.ssh/config`) that
//! sshmcpd honours, resolved for one host the way `ssh` resolves them:
//! `Host` and `Match` blocks, `Include`, and the first value obtained for a
//! keyword winning. The same file configures the user's own `ssh`, so a host
//! the user has set up behaves the same through sshmcpd.
//!
//! Only the keywords in [`KEYWORDS`] are kept; every other line is skipped
//! without complaint, since the file is written for `ssh` and may use any of
//! its options. Adding a keyword means listing it there and adding a typed
//! accessor to [`HostConfig`] beside [`HostConfig::host_keys`] and
//! [`HostConfig::login`].
//!
//! A `Match` criterion sshmcpd cannot evaluate (`exec`, `localnetwork`,
//! `canonical`, …) leaves its block undecided. A block that sets nothing
//! sshmcpd honours is skipped with a warning in the log; one that would set
//! a keyword sshmcpd honours and that is still unset makes the whole lookup
//! fail with a message naming both lines, because guessing either way could
//! send a connection to the wrong host or trust the wrong keys.
//!
//! Why not a crate: `ssh2-config` (the best kept parser, with `Include`) does
//! not know `Match`, so it either refuses a file that has a `Match` block or
//! applies the lines under it to the `Host` block before it, which can turn
//! `StrictHostKeyChecking yes` for one host into `no`. `russh-config` and
//! `ssh_config` have no `Include`. `ssh -G` resolves everything, but reads
//! the config of the passwd home directory rather than `$HOME`.
//!
//! Also here: the pattern language of ssh_config(5) ("PATTERNS"), which
//! known_hosts host fields use as well.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The keywords resolved, spelled as in ssh_config(5); `ssh` compares them
/// ignoring case.
const KEYWORDS: [&str; 14] = [
    "StrictHostKeyChecking",
    "UserKnownHostsFile",
    "GlobalKnownHostsFile",
    "HashKnownHosts",
    "HostName",
    "User",
    "Port",
    "IdentityFile",
    "CertificateFile",
    "IdentitiesOnly",
    "ProxyJump",
    "ConnectTimeout",
    "ServerAliveInterval",
    "ServerAliveCountMax",
];

/// Keywords whose every value counts, in the order read, where the others
/// keep their first value: `ssh` offers every `IdentityFile` it is given.
const LISTS: [&str; 2] = ["IdentityFile", "CertificateFile"];

/// The identities `ssh` tries when the config names none, in its order
/// (DSA and the security-key types left out: sshmcpd cannot use them).
const DEFAULT_IDENTITIES: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// `ssh` stops following `Include` at this depth (`READCONF_MAX_DEPTH`).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Where a setting was read, for messages: `/home/me/.ssh/config:12`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// The config cannot be used as written; the message names the file and
/// line, as `ssh` would refuse it too.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SshConfigError {
    message: String,
}

impl SshConfigError {
    fn at(origin: &Origin, message: impl fmt::Display) -> Self {
        SshConfigError {
            message: format!("{origin}: {message}; fix that line of the SSH client config"),
        }
    }
}

/// What the config is looked up for: the name `Host` and `Match
/// originalhost` test, and the remote user when the caller gave one (`Match
/// user` then tests it rather than the config's `User`).
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// The host name or alias as given to `connect` or in a jump list.
    pub host: &'a str,
    pub user: Option<&'a str>,
}

/// A resolved connection, for `%` tokens in file names.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The name as given (`%n`).
    pub alias: &'a str,
    /// The host connected to, after `HostName` (`%h`).
    pub host: &'a str,
    pub port: u16,
    /// The remote user.
    pub user: &'a str,
}

/// One keyword's value for the target.
#[derive(Debug, Clone)]
struct Directive {
    args: Vec<String>,
    origin: Origin,
}

/// The resolved configuration for one target.
#[derive(Debug)]
pub struct HostConfig {
    /// One value per keyword, or every value for [`LISTS`].
    directives: HashMap<&'static str, Vec<Directive>>,
    home: PathBuf,
}

/// Where and how to log in, as far as the config says; `None` and empty
/// where it is silent, so that the caller's own arguments and defaults
/// apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// `HostName`, with `%h` expanded.
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// `ProxyJump` as written; `None` also for `ProxyJump none`.
    pub proxy_jump: Option<String>,
    pub connect_timeout: Option<Duration>,
    /// `ServerAliveInterval`; zero turns keepalives off.
    pub server_alive_interval: Option<Duration>,
    pub server_alive_count_max: Option<u32>,
    pub identities_only: bool,
}

/// The key files to offer, for one resolved target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identities {
    /// `IdentityFile`s in order, or OpenSSH's default files when there are
    /// none. Files that do not exist are kept: the caller says which were
    /// missing.
    pub files: Vec<PathBuf>,
    /// True when `files` are the defaults rather than configured.
    pub defaults: bool,
    /// `CertificateFile`s in order.
    pub certificates: Vec<PathBuf>,
}

/// `StrictHostKeyChecking`, as far as sshmcpd can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictHostKeyChecking {
    /// `yes`, and `ask`: sshmcpd cannot ask, and "ask" means a person
    /// decides about an unknown host, never the program alone.
    Yes,
    /// `accept-new`, `no` and `off`: learn unknown hosts. A changed key is
    /// refused whatever this says.
    AcceptNew,
}

/// What the config says about host keys for one target, with OpenSSH's
/// defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeySettings {
    /// `None` when the config does not say; then sshmcpd's own policy holds.
    pub strict_host_key_checking: Option<(StrictHostKeyChecking, Origin)>,
    /// Checked, and the first one learned into. Empty for `none`.
    pub user_known_hosts_files: Vec<PathBuf>,
    pub global_known_hosts_files: Vec<PathBuf>,
    pub hash_known_hosts: bool,
}

impl HostConfig {
    /// Reads `path` (and what it includes) for `target`. A missing file is
    /// an empty config. `home` expands `~` and anchors relative `Include`s.
    ///
    /// # Errors
    /// An unreadable file, an `Include` nested too deep, or a `Host`/`Match`
    /// line or a resolved keyword that `ssh` would refuse too.
    pub fn resolve(path: &Path, home: &Path, query: Query<'_>) -> Result<Self, SshConfigError> {
        let mut config = HostConfig {
            directives: HashMap::new(),
            home: home.to_path_buf(),
        };
        let mut reader = Reader {
            query,
            home,
            config: &mut config,
        };
        reader.read_file(path, 0, &Block::Active, None)?;
        Ok(config)
    }

    fn first(&self, keyword: &str) -> Option<&Directive> {
        self.directives.get(keyword).and_then(|all| all.first())
    }

    /// Where and how to log in to the queried host.
    ///
    /// # Errors
    /// A value `ssh` would refuse too (`Port x`, `ConnectTimeout -1`), or a
    /// `%` token in `HostName` other than `%h` and `%%`.
    pub fn login(&self, query: Query<'_>) -> Result<Login, SshConfigError> {
        let hostname = match self.first("HostName") {
            None => None,
            Some(d) => Some(
                expand_hostname(single_arg(d)?, query.host)
                    .map_err(|e| SshConfigError::at(&d.origin, e))?,
            ),
        };
        let port = match self.first("Port") {
            None => None,
            Some(d) => Some(
                single_arg(d)?
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| {
                        SshConfigError::at(&d.origin, "Port must be a number from 1 to 65535")
                    })?,
            ),
        };
        let proxy_jump = match self.first("ProxyJump") {
            None => None,
            Some(d) => {
                let value = single_arg(d)?;
                (!value.eq_ignore_ascii_case("none")).then(|| value.to_owned())
            }
        };
        Ok(Login {
            hostname,
            user: self
                .first("User")
                .map(|d| single_arg(d).map(str::to_owned))
                .transpose()?,
            port,
            proxy_jump,
            connect_timeout: self.seconds("ConnectTimeout")?,
            server_alive_interval: self.seconds("ServerAliveInterval")?,
            server_alive_count_max: match self.first("ServerAliveCountMax") {
                None => None,
                Some(d) => Some(single_arg(d)?.parse::<u32>().map_err(|_| {
                    SshConfigError::at(&d.origin, "ServerAliveCountMax must be a whole number")
                })?),
            },
            identities_only: match self.first("IdentitiesOnly") {
                None => false,
                Some(d) => yes_no(d, "IdentitiesOnly")?,
            },
        })
    }

    /// The key files to offer to `target`, `~` and `%` tokens expanded.
    ///
    /// # Errors
    /// A `%` token that is not supported.
    pub fn identities(&self, target: Target<'_>) -> Result<Identities, SshConfigError> {
        let ssh_dir = self.home.join(".ssh");
        let files = self.files("IdentityFile", target, &[])?;
        let defaults = files.is_empty()
            && self
                .directives
                .get("IdentityFile")
                .is_none_or(Vec::is_empty);
        Ok(Identities {
            files: if defaults {
                DEFAULT_IDENTITIES.iter().map(|f| ssh_dir.join(f)).collect()
            } else {
                files
            },
            defaults,
            certificates: self.files("CertificateFile", target, &[])?,
        })
    }

    /// A time in seconds, as `ConnectTimeout` and `ServerAliveInterval`
    /// take it.
    fn seconds(&self, keyword: &str) -> Result<Option<Duration>, SshConfigError> {
        let Some(d) = self.first(keyword) else {
            return Ok(None);
        };
        let value = single_arg(d)?;
        value
            .parse::<u64>()
            .map(|s| Some(Duration::from_secs(s)))
            .map_err(|_| {
                SshConfigError::at(
                    &d.origin,
                    format!("{value:?} is not a whole number of seconds"),
                )
            })
    }

    /// The host-key settings, with the defaults `ssh` uses when the config
    /// is silent.
    ///
    /// # Errors
    /// A value `ssh` would refuse (`StrictHostKeyChecking maybe`), or a
    /// `%` token in a file name that is not supported.
    pub fn host_keys(&self, target: Target<'_>) -> Result<HostKeySettings, SshConfigError> {
        let strict = match self.first("StrictHostKeyChecking") {
            None => None,
            Some(d) => {
                let value = match single_arg(d)?.to_ascii_lowercase().as_str() {
                    "yes" | "true" | "ask" => StrictHostKeyChecking::Yes,
                    "accept-new" | "no" | "false" | "off" => StrictHostKeyChecking::AcceptNew,
                    other => {
                        return Err(SshConfigError::at(
                            &d.origin,
                            format!(
                                "StrictHostKeyChecking {other:?} is not one of yes, ask, \
                                 accept-new, no, off"
                            ),
                        ));
                    }
                };
                Some((value, d.origin.clone()))
            }
        };
        let hash = match self.first("HashKnownHosts") {
            None => false,
            Some(d) => yes_no(d, "HashKnownHosts")?,
        };
        let ssh_dir = self.home.join(".ssh");
        Ok(HostKeySettings {
            strict_host_key_checking: strict,
            user_known_hosts_files: self.files(
                "UserKnownHostsFile",
                target,
                &[ssh_dir.join("known_hosts"), ssh_dir.join("known_hosts2")],
            )?,
            global_known_hosts_files: self.files(
                "GlobalKnownHostsFile",
                target,
                &[
                    PathBuf::from("/etc/ssh/ssh_known_hosts"),
                    PathBuf::from("/etc/ssh/ssh_known_hosts2"),
                ],
            )?,
            hash_known_hosts: hash,
        })
    }

    /// The files a keyword names, `none` for no file, with `~` and `%`
    /// tokens expanded as `ssh` expands them in file names. For the
    /// [`LISTS`] keywords, the files of every line in order.
    fn files(
        &self,
        keyword: &str,
        target: Target<'_>,
        default: &[PathBuf],
    ) -> Result<Vec<PathBuf>, SshConfigError> {
        let Some(all) = self.directives.get(keyword).filter(|all| !all.is_empty()) else {
            return Ok(default.to_vec());
        };
        let mut files = Vec::new();
        for d in all {
            if d.args.len() == 1 && d.args[0].eq_ignore_ascii_case("none") {
                continue;
            }
            for arg in &d.args {
                let expanded = expand_tokens(arg, target, &self.home)
                    .map_err(|e| SshConfigError::at(&d.origin, e))?;
                files.push(expand_tilde(&expanded, &self.home));
            }
        }
        Ok(files)
    }
}

fn single_arg(d: &Directive) -> Result<&str, SshConfigError> {
    match d.args.as_slice() {
        [one] => Ok(one),
        _ => Err(SshConfigError::at(&d.origin, "expected exactly one value")),
    }
}

fn yes_no(d: &Directive, keyword: &str) -> Result<bool, SshConfigError> {
    match single_arg(d)?.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        other => Err(SshConfigError::at(
            &d.origin,
            format!("{keyword} {other:?} is not yes or no"),
        )),
    }
}

/// `HostName` with `%h` (the name as given) and `%%` expanded, the only
/// tokens `ssh` allows there.
fn expand_hostname(value: &str, host: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('h') => out.push_str(host),
            Some(other) => {
                return Err(format!(
                    "HostName allows only the tokens %h and %%, not %{other}"
                ));
            }
            None => return Err(format!("HostName {value:?} ends with a lone %")),
        }
    }
    Ok(out)
}

/// `~` and `~/…` against `home`; other paths as written.
fn expand_tilde(path: &str, home: &Path) -> PathBuf {
    if path == "~" {
        home.to_path_buf()
    } else if let Some(rest) = path.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(path)
    }
}

/// The `%` tokens ssh_config(5) allows in known_hosts file names, for those
/// sshmcpd knows the value of.
fn expand_tokens(arg: &str, target: Target<'_>, home: &Path) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = arg.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('d') => out.push_str(&home.to_string_lossy()),
            Some('h') => out.push_str(target.host),
            Some('n') => out.push_str(target.alias),
            Some('p') => out.push_str(&target.port.to_string()),
            Some('r') => out.push_str(target.user),
            Some('u') => out.push_str(&local_user_name().unwrap_or_default()),
            Some(other) => {
                return Err(format!(
                    "the token %{other} in {arg:?} is not supported by sshmcpd (it knows %%, %d, \
                     %h, %n, %p, %r, %u)"
                ));
            }
            None => return Err(format!("{arg:?} ends with a lone %")),
        }
    }
    Ok(out)
}

/// The local user's login name: `$USER`, else the passwd entry of this
/// process's uid. The default remote user, as for `ssh`.
pub fn local_user_name() -> Option<String> {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            // SAFETY: getpwuid returns a pointer into static storage or null;
            // it is read at once, before any other call could reuse it.
            unsafe {
                let pw = libc::getpwuid(libc::getuid());
                if pw.is_null() || (*pw).pw_name.is_null() {
                    return None;
                }
                std::ffi::CStr::from_ptr((*pw).pw_name)
                    .to_str()
                    .ok()
                    .map(str::to_owned)
            }
        })
}

/// One pass over the config files for one target.
struct Reader<'a> {
    query: Query<'a>,
    home: &'a Path,
    config: &'a mut HostConfig,
}

/// Whether the lines of the current block apply to the target.
#[derive(Debug, Clone)]
enum Block {
    Active,
    Inactive,
    /// Behind a `Match` criterion sshmcpd cannot evaluate: where, and which.
    Undecided(Origin, String),
}

impl Block {
    /// The state of a block inside a file included from a block in state
    /// `self`: an inactive include makes everything in it inactive, as in
    /// `ssh`.
    fn within(&self, own: Block) -> Block {
        match (self, own) {
            (Block::Inactive, _) | (_, Block::Inactive) => Block::Inactive,
            (Block::Undecided(origin, why), _) => Block::Undecided(origin.clone(), why.clone()),
            (Block::Active, own) => own,
        }
    }
}

impl Reader<'_> {
    /// Reads one file. `outer` is the state of the block the file is
    /// included from (`Active` for the top file): lines before the file's
    /// first `Host` or `Match` are in that state, and the file's own blocks
    /// can narrow it but never widen it.
    fn read_file(
        &mut self,
        path: &Path,
        depth: usize,
        outer: &Block,
        included_at: Option<&Origin>,
    ) -> Result<(), SshConfigError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && included_at.is_none() => {
                return Ok(());
            }
            Err(e) => {
                let message = format!("cannot read SSH client config {}: {e}", path.display());
                return Err(match included_at {
                    Some(origin) => SshConfigError::at(origin, message),
                    None => SshConfigError { message },
                });
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut block = outer.clone();
        // Undecided blocks that set nothing sshmcpd honours are logged once.
        let mut unreported: Option<(Origin, String)> = None;
        for (index, line) in text.lines().enumerate() {
            let origin = Origin {
                file: path.to_path_buf(),
                line: index + 1,
            };
            let Some((keyword, args)) =
                split_line(line).map_err(|e| SshConfigError::at(&origin, e))?
            else {
                continue;
            };
            match keyword.to_ascii_lowercase().as_str() {
                "host" => {
                    if args.is_empty() {
                        return Err(SshConfigError::at(&origin, "Host needs a pattern"));
                    }
                    let own = if host_line_matches(self.query.host, &args) {
                        Block::Active
                    } else {
                        Block::Inactive
                    };
                    block = outer.within(own);
                }
                "match" => {
                    let own = self.match_line(&args, &origin)?;
                    if let Block::Undecided(at, criterion) = &own {
                        unreported = Some((at.clone(), criterion.clone()));
                    }
                    block = outer.within(own);
                }
                "include" => {
                    if depth + 1 > MAX_INCLUDE_DEPTH {
                        return Err(SshConfigError::at(
                            &origin,
                            format!("Include nested more than {MAX_INCLUDE_DEPTH} deep"),
                        ));
                    }
                    for file in self.include_files(&args, &origin)? {
                        self.read_file(&file, depth + 1, &block, Some(&origin))?;
                    }
                }
                other => {
                    let Some(keyword) = KEYWORDS.iter().find(|k| k.eq_ignore_ascii_case(other))
                    else {
                        continue;
                    };
                    match &block {
                        Block::Active => self.set(keyword, Directive { args, origin }),
                        Block::Inactive => {}
                        Block::Undecided(at, criterion) => {
                            if self.undecided_matters(keyword) {
                                return Err(SshConfigError::at(
                                    &origin,
                                    format!(
                                        "this {} line is in the block of `Match {criterion}` at \
                                         {at}, which sshmcpd cannot evaluate, so it cannot tell \
                                         whether the line applies to {}. Rather than guess, \
                                         sshmcpd refuses; add a criterion it can evaluate \
                                         (`host`, `originalhost`, `user`, `localuser`) to that \
                                         Match line so the block is decided without the other",
                                        keyword, self.query.host
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
        }
        if let Some((at, criterion)) = unreported {
            tracing::warn!(
                "{at}: sshmcpd cannot evaluate `Match {criterion}`; the block sets nothing \
                 sshmcpd uses for {} yet, so it is skipped",
                self.query.host
            );
        }
        Ok(())
    }

    /// Records a value: the first one for most keywords, every one for
    /// [`LISTS`].
    fn set(&mut self, keyword: &'static str, directive: Directive) {
        let values = self.config.directives.entry(keyword).or_default();
        if values.is_empty() || LISTS.contains(&keyword) {
            values.push(directive);
        }
    }

    /// Whether a line in an undecided block could change the result: a list
    /// keyword always, another only while it has no value yet.
    fn undecided_matters(&self, keyword: &str) -> bool {
        LISTS.contains(&keyword)
            || self
                .config
                .directives
                .get(keyword)
                .is_none_or(|values| values.is_empty())
    }

    /// The host `Match host` tests: `HostName` as read so far, else the
    /// name as given, as in `ssh`.
    fn match_host(&self) -> String {
        self.config
            .first("HostName")
            .and_then(|d| d.args.first())
            .and_then(|h| expand_hostname(h, self.query.host).ok())
            .unwrap_or_else(|| self.query.host.to_owned())
    }

    /// The remote user `Match user` tests: the caller's, else `User` as
    /// read so far, else the local user.
    fn match_user(&self) -> String {
        self.query
            .user
            .map(str::to_owned)
            .or_else(|| {
                self.config
                    .first("User")
                    .and_then(|d| d.args.first().cloned())
            })
            .or_else(local_user_name)
            .unwrap_or_default()
    }

    /// The files an `Include` names: `~` expanded, relative paths under
    /// `~/.ssh`, globs expanded in sorted order, unmatched globs skipped.
    fn include_files(
        &self,
        args: &[String],
        origin: &Origin,
    ) -> Result<Vec<PathBuf>, SshConfigError> {
        if args.is_empty() {
            return Err(SshConfigError::at(origin, "Include needs a file"));
        }
        let mut files = Vec::new();
        for arg in args {
            let path = expand_tilde(arg, self.home);
            let path = if path.is_absolute() {
                path
            } else {
                self.home.join(".ssh").join(path)
            };
            let pattern = path.to_string_lossy();
            let matches = glob::glob(&pattern).map_err(|e| {
                SshConfigError::at(
                    origin,
                    format!("Include {arg:?} is not a valid pattern: {e}"),
                )
            })?;
            for found in matches {
                let found = found
                    .map_err(|e| SshConfigError::at(origin, format!("Include {arg:?}: {e}")))?;
                files.push(found);
            }
        }
        Ok(files)
    }

    /// A `Match` line's criteria, all of which must hold. One that fails
    /// decides the line whatever the others say; otherwise a criterion
    /// sshmcpd cannot evaluate (`exec`, `localnetwork`, `canonical`,
    /// `final`, `tagged`, …) leaves it undecided.
    fn match_line(&self, args: &[String], origin: &Origin) -> Result<Block, SshConfigError> {
        if args.is_empty() {
            return Err(SshConfigError::at(origin, "Match needs a criterion"));
        }
        let mut undecided = None;
        let mut words = args.iter();
        while let Some(word) = words.next() {
            let (negate, criterion) = match word.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, word.as_str()),
            };
            let criterion = criterion.to_ascii_lowercase();
            if criterion == "all" {
                if negate {
                    return Ok(Block::Inactive);
                }
                continue;
            }
            // Hostname canonicalisation and the final pass are not done.
            if criterion == "canonical" || criterion == "final" {
                undecided.get_or_insert_with(|| word.clone());
                continue;
            }
            let Some(value) = words.next() else {
                return Err(SshConfigError::at(
                    origin,
                    format!("Match {criterion} needs an argument"),
                ));
            };
            let matched = match criterion.as_str() {
                "host" => pattern_list_matches(&self.match_host(), value, true),
                "originalhost" => pattern_list_matches(self.query.host, value, true),
                "user" => pattern_list_matches(&self.match_user(), value, false),
                "localuser" => {
                    pattern_list_matches(&local_user_name().unwrap_or_default(), value, false)
                }
                _ => {
                    undecided.get_or_insert_with(|| format!("{word} {value}"));
                    continue;
                }
            };
            if matched == negate {
                return Ok(Block::Inactive);
            }
        }
        Ok(match undecided {
            Some(criterion) => Block::Undecided(origin.clone(), criterion),
            None => Block::Active,
        })
    }
}

/// Splits a config line into its keyword and arguments as `ssh` does:
/// `Keyword args`, `Keyword=args` or `Keyword = args`; double or single
/// quotes group an argument; a `#` starting an argument ends the line.
/// `None` for blank and comment lines.
fn split_line(line: &str) -> Result<Option<(String, Vec<String>)>, String> {
    let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let end = line
        .find(|c: char| c.is_ascii_whitespace() || c == '=')
        .unwrap_or(line.len());
    let keyword = line[..end].to_owned();
    let mut rest = line[end..].trim_start_matches(|c: char| c.is_ascii_whitespace());
    if let Some(after) = rest.strip_prefix('=') {
        rest = after;
    }
    let mut args = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.next_if(char::is_ascii_whitespace).is_some() {}
        let Some(&first) = chars.peek() else { break };
        if first == '#' {
            break;
        }
        let mut arg = String::new();
        let mut quote = None;
        while let Some(&c) = chars.peek() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => arg.push(c),
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c.is_ascii_whitespace() => break,
                None => arg.push(c),
            }
            chars.next();
        }
        if quote.is_some() {
            return Err("unterminated quote".to_owned());
        }
        args.push(arg);
    }
    Ok(Some((keyword, args)))
}

/// A `Host` line: the host matches one of the patterns and none of the
/// negated ones.
fn host_line_matches(host: &str, patterns: &[String]) -> bool {
    patterns_match(host, patterns.iter().map(String::as_str), true)
}

/// A comma-separated pattern list as in known_hosts host fields and `Match
/// host`: some pattern matches and no negated pattern (`!pattern`) does.
pub fn pattern_list_matches(name: &str, list: &str, fold_case: bool) -> bool {
    patterns_match(name, list.split(','), fold_case)
}

fn patterns_match<'a>(
    name: &str,
    patterns: impl Iterator<Item = &'a str>,
    fold_case: bool,
) -> bool {
    let fold = |s: &str| {
        if fold_case {
            s.to_lowercase()
        } else {
            s.to_owned()
        }
    };
    let name: Vec<char> = fold(name).chars().collect();
    let mut positive = false;
    for pattern in patterns {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let pattern: Vec<char> = fold(pattern).chars().collect();
        if wildcard_match(&name, &pattern) {
            if negated {
                return false;
            }
            positive = true;
        }
    }
    positive
}

/// `*` matches any run of characters, `?` exactly one; everything else
/// itself.
fn wildcard_match(name: &[char], pattern: &[char]) -> bool {
    let (mut n, mut p) = (0, 0);
    // Where the last `*` was, and how much of `name` it has taken so far.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                n += 1;
                p += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    star = Some((star_p, star_n + 1));
                    p = star_p + 1;
                    n = star_n + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Target<'static> = Target {
        alias: "prod.example.com",
        host: "prod.example.com",
        port: 22,
        user: "deploy",
    };

    fn resolve(files: &[(&str, &str)], target: Target<'_>) -> Result<HostConfig, SshConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        std::fs::create_dir(home.join(".ssh")).unwrap();
        for (name, text) in files {
            let path = home.join(".ssh").join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let query = Query {
            host: target.alias,
            user: Some(target.user),
        };
        HostConfig::resolve(&home.join(".ssh/config"), home, query)
    }

    fn strict(
        files: &[(&str, &str)],
        target: Target<'_>,
    ) -> Option<(StrictHostKeyChecking, usize)> {
        resolve(files, target)
            .unwrap()
            .host_keys(target)
            .unwrap()
            .strict_host_key_checking
            .map(|(v, o)| (v, o.line))
    }

    #[test]
    fn wildcards_and_negation() {
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        assert!(wildcard_match(
            &chars("a.example.com"),
            &chars("*.example.com")
        ));
        assert!(wildcard_match(&chars("[h]:2222"), &chars("[h]:22??")));
        assert!(!wildcard_match(&chars("[h]:222"), &chars("[h]:22??")));
        assert!(wildcard_match(&chars("abcabd"), &chars("*ab?")));
        assert!(wildcard_match(&chars(""), &chars("*")));
        assert!(!wildcard_match(
            &chars("example.com"),
            &chars("*.example.com")
        ));
        assert!(pattern_list_matches(
            "Web1.Example.com",
            "*.example.com,db",
            true
        ));
        assert!(!pattern_list_matches(
            "bad.example.com",
            "*.example.com,!bad.*",
            true
        ));
        assert!(!pattern_list_matches("x", "!y", true));
        assert!(!pattern_list_matches("Deploy", "deploy", false));
    }

    #[test]
    fn first_value_wins_and_blocks_scope_settings() {
        let config = "# comment\n\
                      Host other\n  StrictHostKeyChecking no\n\
                      Host *.example.com !db.example.com\n  StrictHostKeyChecking yes\n\
                      Host *\n  StrictHostKeyChecking=accept-new\n";
        assert_eq!(
            strict(&[("config", config)], TARGET),
            Some((StrictHostKeyChecking::Yes, 5))
        );
        let db = Target {
            alias: "db.example.com",
            host: "db.example.com",
            ..TARGET
        };
        assert_eq!(
            strict(&[("config", config)], db),
            Some((StrictHostKeyChecking::AcceptNew, 7))
        );
    }

    #[test]
    fn match_blocks_end_the_block_before_them() {
        let config = "Host prod.example.com\n  StrictHostKeyChecking yes\n\
                      Match host dev\n  StrictHostKeyChecking no\n";
        assert_eq!(
            strict(&[("config", config)], TARGET),
            Some((StrictHostKeyChecking::Yes, 2))
        );
        let config = "Match host dev\n  StrictHostKeyChecking no\n\
                      Match user deploy host *.example.com\n  StrictHostKeyChecking ask\n";
        assert_eq!(
            strict(&[("config", config)], TARGET),
            Some((StrictHostKeyChecking::Yes, 4))
        );
    }

    #[test]
    fn an_undecidable_match_is_reported_where_it_could_matter() {
        // `exec` cannot be evaluated, and the block would decide
        // StrictHostKeyChecking: refused, naming both lines.
        let config = "Match exec \"true\"\n  StrictHostKeyChecking no\n\
                      Match all\n  StrictHostKeyChecking yes\n";
        let err = resolve(&[("config", config)], TARGET)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/.ssh/config:2: this StrictHostKeyChecking line"),
            "{err}"
        );
        assert!(err.contains("`Match exec true` at "), "{err}");
        assert!(err.contains("/.ssh/config:1"), "{err}");
        // Decided by a criterion that fails, whatever exec would say.
        let config = "Match host other exec \"true\"\n  StrictHostKeyChecking no\n\
                      Match all\n  StrictHostKeyChecking yes\n";
        assert_eq!(
            strict(&[("config", config)], TARGET),
            Some((StrictHostKeyChecking::Yes, 4))
        );
        // Too late to matter: the keyword already has its value.
        let config = "StrictHostKeyChecking yes\nMatch canonical\n  StrictHostKeyChecking no\n\
                      ForwardAgent yes\n";
        assert_eq!(
            strict(&[("config", config)], TARGET),
            Some((StrictHostKeyChecking::Yes, 1))
        );
        // A list keyword always matters; so does an included file's line.
        let files = [
            (
                "config",
                "IdentityFile ~/a\nMatch localnetwork 10.0.0.0/8\n  Include more\n",
            ),
            ("more", "IdentityFile ~/b\n"),
        ];
        let err = resolve(&files, TARGET).unwrap_err().to_string();
        assert!(
            err.contains("/.ssh/more:1: this IdentityFile line"),
            "{err}"
        );
    }

    fn lookup(files: &[(&str, &str)], host: &str, user: Option<&str>) -> (Login, Identities) {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        std::fs::create_dir(home.join(".ssh")).unwrap();
        for (name, text) in files {
            std::fs::write(home.join(".ssh").join(name), text).unwrap();
        }
        let query = Query { host, user };
        let config = HostConfig::resolve(&home.join(".ssh/config"), home, query).unwrap();
        let login = config.login(query).unwrap();
        let resolved = login.hostname.clone().unwrap_or_else(|| host.to_owned());
        let target = Target {
            alias: host,
            host: &resolved,
            port: login.port.unwrap_or(22),
            user: user.or(login.user.as_deref()).unwrap_or("me"),
        };
        let mut identities = config.identities(target).unwrap();
        // Relative to the temp home, which is gone once this returns.
        for f in identities
            .files
            .iter_mut()
            .chain(&mut identities.certificates)
        {
            *f = f
                .strip_prefix(home)
                .map(Path::to_path_buf)
                .unwrap_or(f.clone());
        }
        (login, identities)
    }

    #[test]
    fn login_settings_for_an_alias() {
        let config = "Host web\n  HostName %h.internal\n  User deploy\n  Port 2222\n\
                      \x20 ProxyJump ops@bastion:22\n  IdentityFile ~/.ssh/web_%r_%h\n\
                      \x20 IdentitiesOnly yes\n  ConnectTimeout 7\n  ServerAliveInterval 0\n\
                      Match host web.internal\n  User ignored\n  IdentityFile ~/.ssh/second\n\
                      Host *\n  ServerAliveCountMax 9\n  User fallback\n";
        let (login, identities) = lookup(&[("config", config)], "web", None);
        assert_eq!(
            login,
            Login {
                hostname: Some("web.internal".to_owned()),
                user: Some("deploy".to_owned()),
                port: Some(2222),
                proxy_jump: Some("ops@bastion:22".to_owned()),
                connect_timeout: Some(Duration::from_secs(7)),
                server_alive_interval: Some(Duration::ZERO),
                server_alive_count_max: Some(9),
                identities_only: true,
            }
        );
        assert!(!identities.defaults);
        assert_eq!(
            identities.files,
            [
                PathBuf::from(".ssh/web_deploy_web.internal"),
                PathBuf::from(".ssh/second")
            ]
        );
        // Another host: only the wildcard block, default identities.
        let (login, identities) = lookup(&[("config", config)], "db", Some("root"));
        assert_eq!(login.user.as_deref(), Some("fallback"));
        assert_eq!(login.hostname, None);
        assert_eq!(login.proxy_jump, None);
        assert!(identities.defaults);
        assert_eq!(
            identities.files,
            [".ssh/id_ed25519", ".ssh/id_ecdsa", ".ssh/id_rsa"].map(PathBuf::from)
        );
    }

    #[test]
    fn match_user_tests_the_callers_user_first() {
        let config = "Match user admin\n  Port 2200\nHost *\n  User admin\n\
                      Match user admin\n  ProxyJump gw\n";
        let (login, _) = lookup(&[("config", config)], "h", Some("ops"));
        assert_eq!((login.port, login.proxy_jump), (None, None));
        let (login, _) = lookup(&[("config", config)], "h", None);
        assert_eq!(login.port, None, "User is not set yet when line 1 is read");
        assert_eq!(login.proxy_jump.as_deref(), Some("gw"));
        let (login, _) = lookup(&[("config", "ProxyJump none\n")], "h", None);
        assert_eq!(login.proxy_jump, None);
    }

    #[test]
    fn bad_login_values_name_the_line() {
        for (text, why) in [
            ("Port 0\n", "Port must be"),
            ("ConnectTimeout soon\n", "seconds"),
            ("HostName %d.x\n", "%h and %%"),
            ("IdentitiesOnly maybe\n", "yes or no"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join(".ssh")).unwrap();
            std::fs::write(dir.path().join(".ssh/config"), text).unwrap();
            let query = Query {
                host: "h",
                user: None,
            };
            let err = HostConfig::resolve(&dir.path().join(".ssh/config"), dir.path(), query)
                .unwrap()
                .login(query)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("/.ssh/config:1: ") && err.contains(why),
                "{err}"
            );
        }
    }

    #[test]
    fn include_reads_files_in_place_and_in_order() {
        let files = [
            (
                "config",
                "Host prod.*\n  Include conf.d/*.conf\nHost *\n  HashKnownHosts no\n",
            ),
            (
                "conf.d/a.conf",
                "HashKnownHosts yes\nUserKnownHostsFile ~/kh/%h_%p %d/second\n",
            ),
            ("conf.d/b.conf", "UserKnownHostsFile /ignored\n"),
        ];
        let dir_config = resolve(&files, TARGET).unwrap();
        let keys = dir_config.host_keys(TARGET).unwrap();
        assert!(keys.hash_known_hosts);
        let home = &dir_config.home;
        assert_eq!(
            keys.user_known_hosts_files,
            [home.join("kh/prod.example.com_22"), home.join("second")]
        );
        assert_eq!(
            keys.global_known_hosts_files,
            [
                PathBuf::from("/etc/ssh/ssh_known_hosts"),
                PathBuf::from("/etc/ssh/ssh_known_hosts2")
            ]
        );
        // Included from a block that does not apply: nothing in it applies.
        let other = Target {
            alias: "other",
            host: "other",
            ..TARGET
        };
        let keys = resolve(&files, other).unwrap().host_keys(other).unwrap();
        assert!(!keys.hash_known_hosts);
        assert_eq!(keys.user_known_hosts_files.len(), 2);
    }

    #[test]
    fn missing_config_means_openssh_defaults() {
        let config = resolve(&[], TARGET).unwrap();
        let keys = config.host_keys(TARGET).unwrap();
        assert_eq!(keys.strict_host_key_checking, None);
        assert!(!keys.hash_known_hosts);
        assert_eq!(
            keys.user_known_hosts_files,
            [
                config.home.join(".ssh/known_hosts"),
                config.home.join(".ssh/known_hosts2")
            ]
        );
    }

    #[test]
    fn none_means_no_file() {
        let config = resolve(&[("config", "UserKnownHostsFile none\n")], TARGET).unwrap();
        assert!(
            config
                .host_keys(TARGET)
                .unwrap()
                .user_known_hosts_files
                .is_empty()
        );
    }

    #[test]
    fn bad_values_name_the_file_and_line() {
        let config = resolve(&[("config", "\n\nStrictHostKeyChecking maybe\n")], TARGET).unwrap();
        let err = config.host_keys(TARGET).unwrap_err().to_string();
        assert!(err.contains("/.ssh/config:3:"), "{err}");
        assert!(err.contains("maybe"), "{err}");
        let err = resolve(&[("config", "Host\n")], TARGET)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/.ssh/config:1:"), "{err}");
        let err = resolve(
            &[("config", "Include /nonexistent/dir/x\nInclude 'a\n")],
            TARGET,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/.ssh/config:2: unterminated quote"), "{err}");
    }

    #[test]
    fn include_loops_stop() {
        let err = resolve(&[("config", "Include config\n")], TARGET)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nested more than 16"), "{err}");
    }

    #[test]
    fn lines_split_like_ssh() {
        assert_eq!(split_line("  # c").unwrap(), None);
        assert_eq!(
            split_line("UserKnownHostsFile \"/a b\" /c # trailing").unwrap(),
            Some((
                "UserKnownHostsFile".to_owned(),
                vec!["/a b".to_owned(), "/c".to_owned()]
            ))
        );
        assert_eq!(
            split_line("Host=a\tb").unwrap(),
            Some(("Host".to_owned(), vec!["a".to_owned(), "b".to_owned()]))
        );
        assert_eq!(
            split_line("Host = a").unwrap(),
            Some(("Host".to_owned(), vec!["a".to_owned()]))
        );
    }
}
