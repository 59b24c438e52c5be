//! sshmcpd's own settings, from `$XDG_CONFIG_HOME/sshmcp/config.toml`
//! (`~/.config/sshmcp/config.toml`), read once when the daemon starts.
//!
//! Every key is optional and a missing file means all defaults. Unknown keys
//! are an error rather than ignored: a misspelt `host_key_policy` silently
//! falling back to the default would weaken host-key checking.
//!
//! ```toml
//! # What to do with a host no known_hosts file knows: "accept-new" (learn
//! # its key) or "strict" (refuse it). A changed key is always refused.
//! host_key_policy = "strict"
//!
//! # Seconds an execute may run when the call gives no timeout (default: no
//! # limit, as the tool's spec says), and at most whatever the call says.
//! default_timeout = 3600
//! max_timeout = 86400
//!
//! # Sessions unused this many seconds are closed (default 12 h; 0: never).
//! idle_timeout = 43200
//! # At most this many open sessions (default 64).
//! max_sessions = 64
//! # Calls running at once on one session; more wait their turn (default 8;
//! # OpenSSH allows 10 channels per connection unless MaxSessions says
//! # otherwise).
//! channels_per_session = 8
//! # SSH keepalives for hosts whose ~/.ssh/config sets none: every this many
//! # seconds (0 turns them off), and how many may go unanswered.
//! keepalive_interval = 15
//! keepalive_count_max = 3
//!
//! # Hosts connect may reach, as OpenSSH Host patterns (`*`, `?`, case
//! # ignored) matched against the name given and the name after HostName in
//! # ~/.ssh/config; every jump host is checked too. A host either of whose
//! # names matches deny_hosts is refused; when allow_hosts is not empty, a
//! # host neither of whose names matches it is refused. Deny wins. Names,
//! # not addresses: nothing is looked up in DNS. (Default: both empty.)
//! allow_hosts = ["*.example.com", "10.0.0.*"]
//! deny_hosts = ["*.prod.example.com"]
//!
//! # One JSON line per call appended to audit.jsonl in the state directory
//! # (beside sshmcpd.log), mode 0600 (default false).
//! audit_log = true
//! ```
//!
//! The host rule is in [`crate::policy`], the audit record in
//! [`crate::audit`].

use crate::policy::HostPatterns;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The name of the file in sshmcp's config directory.
pub const CONFIG_FILE: &str = "config.toml";

/// The daemon's settings. New keys get a field with a serde default, so
/// older files keep working.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub host_key_policy: HostKeyPolicy,
    /// Seconds an `execute` without a `timeout` may run.
    #[serde(default)]
    pub default_timeout: Option<PositiveSeconds>,
    /// Seconds no `execute` may exceed, whatever its `timeout`.
    #[serde(default)]
    pub max_timeout: Option<PositiveSeconds>,
    /// Seconds a session may go unused before it is closed; 0 never.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: u64,
    /// Open sessions at most.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: PositiveCount,
    /// Calls running at once on one session.
    #[serde(default = "default_channels_per_session")]
    pub channels_per_session: PositiveCount,
    /// Seconds between SSH keepalives; 0 turns them off.
    #[serde(default = "default_keepalive_interval")]
    pub keepalive_interval: u64,
    /// Unanswered keepalives before a connection counts as dead.
    #[serde(default = "default_keepalive_count_max")]
    pub keepalive_count_max: PositiveCount,
    /// Hosts `connect` may reach; empty: any not denied.
    #[serde(default)]
    pub allow_hosts: HostPatterns,
    /// Hosts `connect` must not reach, whatever `allow_hosts` says.
    #[serde(default)]
    pub deny_hosts: HostPatterns,
    /// Append a JSON line per call to the audit log.
    #[serde(default)]
    pub audit_log: bool,
}

fn default_keepalive_interval() -> u64 {
    15
}

fn default_keepalive_count_max() -> PositiveCount {
    PositiveCount(3)
}

fn default_idle_timeout() -> u64 {
    12 * 3600
}

fn default_max_sessions() -> PositiveCount {
    PositiveCount(64)
}

fn default_channels_per_session() -> PositiveCount {
    PositiveCount(8)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host_key_policy: HostKeyPolicy::default(),
            default_timeout: None,
            max_timeout: None,
            idle_timeout: default_idle_timeout(),
            max_sessions: default_max_sessions(),
            channels_per_session: default_channels_per_session(),
            keepalive_interval: default_keepalive_interval(),
            keepalive_count_max: default_keepalive_count_max(),
            allow_hosts: HostPatterns::default(),
            deny_hosts: HostPatterns::default(),
            audit_log: false,
        }
    }
}

/// A count greater than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct PositiveCount(pub usize);

impl TryFrom<u64> for PositiveCount {
    type Error = String;

    fn try_from(n: u64) -> Result<Self, Self::Error> {
        match usize::try_from(n) {
            Ok(n) if n > 0 => Ok(PositiveCount(n)),
            _ => Err("must be a whole number greater than 0".into()),
        }
    }
}

/// A number of seconds greater than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct PositiveSeconds(pub u64);

impl TryFrom<u64> for PositiveSeconds {
    type Error = String;

    fn try_from(secs: u64) -> Result<Self, Self::Error> {
        if secs == 0 {
            Err("must be a number of seconds greater than 0 (leave it out for no limit)".into())
        } else {
            Ok(PositiveSeconds(secs))
        }
    }
}

/// What to do with a host that no known_hosts file knows. `StrictHostKeyChecking`
/// in `~/.ssh/config` overrides it per host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Learn its key into the user's known_hosts (OpenSSH's `accept-new`).
    #[default]
    AcceptNew,
    /// Refuse it until its key is added to known_hosts.
    Strict,
}

/// `$XDG_CONFIG_HOME/sshmcp/config.toml`, else `~/.config/sshmcp/config.toml`;
/// `None` when there is no home directory to put it in.
pub fn path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "sshmcp").map(|d| d.config_dir().join(CONFIG_FILE))
}

/// Reads the config file; a missing file means the defaults.
///
/// # Errors
/// The file exists but cannot be read, or is not a valid config; the
/// message names the file, line and column and what is wrong there.
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(e) => anyhow::bail!("cannot read the config file {}: {e}", path.display()),
    };
    parse(&text, path)
}

fn parse(text: &str, path: &Path) -> anyhow::Result<Config> {
    toml::from_str(text).map_err(|e| {
        let at = match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
                format!("{}:{line}:{column}", path.display())
            }
            None => path.display().to_string(),
        };
        anyhow::anyhow!(
            "{at}: {}; fix the config file (valid keys: host_key_policy = \"accept-new\" or \
             \"strict\", default_timeout, max_timeout and idle_timeout in seconds, max_sessions, \
             channels_per_session, keepalive_interval, keepalive_count_max, allow_hosts and \
             deny_hosts as lists of host patterns such as [\"*.example.com\"], audit_log = true \
             or false) and start sshmcpd again",
            e.message().trim_end()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Config> {
        super::parse(text, Path::new("/c/config.toml"))
    }

    #[test]
    fn empty_and_missing_files_mean_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(Config::default().host_key_policy, HostKeyPolicy::AcceptNew);
        let missing = load(Path::new("/nonexistent/sshmcp/config.toml")).unwrap();
        assert_eq!(missing, Config::default());
    }

    #[test]
    fn policy_is_read() {
        let config = parse("# strict\nhost_key_policy = \"strict\"\n").unwrap();
        assert_eq!(config.host_key_policy, HostKeyPolicy::Strict);
        let config = parse("host_key_policy = \"accept-new\"").unwrap();
        assert_eq!(config.host_key_policy, HostKeyPolicy::AcceptNew);
    }

    #[test]
    fn timeouts_are_read_and_zero_is_refused() {
        let config = parse("default_timeout = 60\nmax_timeout = 3600\n").unwrap();
        assert_eq!(config.default_timeout, Some(PositiveSeconds(60)));
        assert_eq!(config.max_timeout, Some(PositiveSeconds(3600)));
        let err = parse("max_timeout = 0").unwrap_err().to_string();
        assert!(err.contains("greater than 0"), "{err}");
    }

    #[test]
    fn session_limits_have_defaults_and_refuse_zero() {
        let config = parse("").unwrap();
        assert_eq!(config.idle_timeout, 12 * 3600);
        assert_eq!(config.max_sessions, PositiveCount(64));
        assert_eq!(config.channels_per_session, PositiveCount(8));
        let config = parse("idle_timeout = 0\nmax_sessions = 2\n").unwrap();
        assert_eq!(
            (config.idle_timeout, config.max_sessions),
            (0, PositiveCount(2))
        );
        assert!(parse("channels_per_session = 0").is_err());
    }

    #[test]
    fn host_lists_and_audit_log_are_read() {
        let config = parse(
            "allow_hosts = [\"*.example.com\", \"10.0.0.*\"]\ndeny_hosts = [\"db?\"]\n\
             audit_log = true\n",
        )
        .unwrap();
        assert_eq!(
            config.allow_hosts.patterns(),
            ["*.example.com".to_owned(), "10.0.0.*".to_owned()]
        );
        assert_eq!(config.deny_hosts.patterns(), ["db?".to_owned()]);
        assert!(config.audit_log);
        let defaults = parse("").unwrap();
        assert!(defaults.allow_hosts.is_empty() && defaults.deny_hosts.is_empty());
        assert!(!defaults.audit_log);
        let err = parse("\ndeny_hosts = [\"a,b\"]\n").unwrap_err().to_string();
        assert!(err.starts_with("/c/config.toml:2:"), "{err}");
        assert!(err.contains("own string"), "{err}");
        let err = parse("allow_hosts = \"*\"").unwrap_err().to_string();
        assert!(err.contains("allow_hosts and deny_hosts as lists"), "{err}");
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let err = parse("\nhost_key_policy = \"ask\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/c/config.toml:2:19: "), "{err}");
        assert!(err.contains("ask"), "{err}");
        let err = parse("host_key_policy = \"strict\"\nhost_key_polcy = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/c/config.toml:2:1: "), "{err}");
        assert!(err.contains("host_key_polcy"), "{err}");
        let err = parse("host_key_policy = ").unwrap_err().to_string();
        assert!(err.starts_with("/c/config.toml:1:"), "{err}");
    }
}
