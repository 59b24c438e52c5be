//! Which hosts `connect` may reach: config.toml's `allow_hosts` and
//! `deny_hosts`, checked for the target and every jump host after
//! `~/.ssh/config` is applied and before anything is sent over the network.
//!
//! The rule, for each host on the route (jump hosts first hop first, then
//! the target), with its two names: the *alias* (the name `connect` or the
//! jump list gave, which `Host` blocks were matched against) and the
//! *resolved name* (after `HostName`; the alias itself when there is none):
//!
//! 1. If either name matches a `deny_hosts` pattern, the host is refused.
//! 2. Otherwise, if `allow_hosts` is not empty, the host is refused unless
//!    either name matches one of its patterns.
//! 3. Otherwise it may be reached.
//!
//! Deny wins over allow. Patterns are OpenSSH `Host` patterns (`*` any run
//! of characters, `?` one character, case ignored), matched with the same
//! code as `~/.ssh/config` (`crate::ssh_config`). They compare names, never
//! addresses: nothing is looked up in DNS, so `10.0.0.*` matches a host
//! given as `10.0.0.5` or whose `HostName` is, not a name that resolves
//! there. A closed `allow_hosts` list is therefore the way to keep the
//! daemon within a set of hosts; `deny_hosts` alone is a guard against
//! mistakes, not against a caller who types an address instead of a name.
//!
//! The lists belong to the user, not to the caller: a refusal says which
//! rule refused and that changing it means editing config.toml and
//! restarting the daemon.

use crate::error::RequestError;
use crate::ssh::ConnectParams;
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

/// A list of host patterns from config.toml, each checked when the file is
/// read: no empty patterns, and none an OpenSSH pattern list would read
/// differently (commas, `!` negation, spaces).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct HostPatterns(Vec<String>);

impl TryFrom<Vec<String>> for HostPatterns {
    type Error = String;

    fn try_from(patterns: Vec<String>) -> Result<Self, Self::Error> {
        for pattern in &patterns {
            if pattern.is_empty() {
                return Err("an empty host pattern matches nothing; remove it".into());
            }
            if pattern.starts_with('!') {
                return Err(format!(
                    "{pattern:?}: negated patterns are not supported here; list the hosts to \
                     refuse in deny_hosts instead"
                ));
            }
            if pattern.contains(',') {
                return Err(format!(
                    "{pattern:?}: write each pattern as its own string, as in [\"a\", \"b\"]"
                ));
            }
            if pattern.chars().any(char::is_whitespace) {
                return Err(format!("{pattern:?}: a host pattern cannot contain spaces"));
            }
        }
        Ok(HostPatterns(patterns))
    }
}

impl HostPatterns {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn patterns(&self) -> &[String] {
        &self.0
    }

    /// The first pattern matching `name`, ignoring case as `ssh` does.
    fn first_match(&self, name: &str) -> Option<&str> {
        // Each pattern holds no comma or `!` (checked when read), so as a
        // "list" of one it is exactly that one pattern.
        self.0
            .iter()
            .map(String::as_str)
            .find(|pattern| crate::ssh_config::pattern_list_matches(name, pattern, true))
    }
}

impl fmt::Display for HostPatterns {
    /// As a TOML array: `["*.example.com", "10.0.0.*"]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted: Vec<String> = self.0.iter().map(|p| format!("{p:?}")).collect();
        write!(f, "[{}]", quoted.join(", "))
    }
}

/// The policy of one daemon, read from config.toml when it starts.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    pub allow: HostPatterns,
    pub deny: HostPatterns,
    /// Where the lists are set, named in refusals.
    pub config_file: Option<PathBuf>,
}

/// Which of a host's names matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// The name as given to `connect` or in the jump list.
    Alias,
    /// The name after `HostName` in `~/.ssh/config`.
    Resolved,
}

/// What the policy says about one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// A `deny_hosts` pattern matched this name.
    Denied {
        pattern: String,
        by: NameKind,
    },
    /// `allow_hosts` is set and neither name matches it.
    NotAllowed,
}

/// Where a host sits on the route, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Target,
    Jump,
}

impl HostPolicy {
    /// Whether the lists say anything at all.
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// The verdict for one host named `alias` whose resolved name is
    /// `resolved` (see the module doc for the rule).
    pub fn verdict(&self, alias: &str, resolved: &str) -> Verdict {
        let names = [(alias, NameKind::Alias), (resolved, NameKind::Resolved)];
        for (name, by) in names {
            if let Some(pattern) = self.deny.first_match(name) {
                return Verdict::Denied {
                    pattern: pattern.to_owned(),
                    by,
                };
            }
        }
        if self.allow.is_empty()
            || names
                .iter()
                .any(|(name, _)| self.allow.first_match(name).is_some())
        {
            Verdict::Allowed
        } else {
            Verdict::NotAllowed
        }
    }

    /// Checks one host.
    ///
    /// # Errors
    /// `BadRequest` naming the config file, the key, the pattern (or the
    /// allow list) and the name that decided, and how the user changes it.
    pub fn check(&self, role: Role, alias: &str, resolved: &str) -> Result<(), RequestError> {
        let one_name = alias == resolved;
        let (key, why, change) = match self.verdict(alias, resolved) {
            Verdict::Allowed => return Ok(()),
            Verdict::Denied { pattern, by } => {
                let name = match (by, one_name) {
                    (_, true) => "its name",
                    (NameKind::Alias, false) => "its alias",
                    (NameKind::Resolved, false) => "its resolved name",
                };
                (
                    "deny_hosts",
                    format!("{name} matches the deny_hosts pattern {pattern:?}"),
                    "removing the pattern from deny_hosts",
                )
            }
            Verdict::NotAllowed => (
                "allow_hosts",
                format!(
                    "{} no pattern of allow_hosts {}",
                    if one_name {
                        "its name matches"
                    } else {
                        "neither its alias nor its resolved name matches"
                    },
                    self.allow
                ),
                "adding a pattern to allow_hosts",
            ),
        };
        let role = match role {
            Role::Target => "the target",
            Role::Jump => "the jump host",
        };
        let host = if one_name {
            format!("{role} {alias:?}")
        } else {
            format!("{role} {alias:?} (resolved name {resolved:?})")
        };
        let file = self
            .config_file
            .as_deref()
            .map_or_else(|| "config.toml".to_owned(), |f| f.display().to_string());
        Err(RequestError::denied_by_policy(format!(
            "connect refused by the host policy ({key} in {file}): {host} is not allowed: {why}. \
             Nothing was sent to any host. This is the user's own setting: only they can change \
             it, by {change} in {file} and restarting the daemon (`sshmcpd stop`, after which \
             the next call starts it again, or `systemctl --user restart sshmcpd` under systemd)."
        )))
    }

    /// Checks every host on a resolved route: the jump hosts, first hop
    /// first, then the target.
    ///
    /// # Errors
    /// As [`HostPolicy::check`], for the first host refused.
    pub fn check_route(&self, params: &ConnectParams) -> Result<(), RequestError> {
        if self.is_open() {
            return Ok(());
        }
        for hop in &params.jumps {
            self.check(Role::Jump, &hop.alias, &hop.hostname)?;
        }
        self.check(Role::Target, &params.target.alias, &params.target.hostname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> HostPatterns {
        HostPatterns::try_from(list.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    fn policy(allow: &[&str], deny: &[&str]) -> HostPolicy {
        HostPolicy {
            allow: patterns(allow),
            deny: patterns(deny),
            config_file: Some(PathBuf::from("/c/sshmcp/config.toml")),
        }
    }

    fn denied(pattern: &str, by: NameKind) -> Verdict {
        Verdict::Denied {
            pattern: pattern.to_owned(),
            by,
        }
    }

    #[test]
    fn no_lists_allow_everything() {
        let p = policy(&[], &[]);
        assert!(p.is_open());
        assert_eq!(p.verdict("anything", "10.1.2.3"), Verdict::Allowed);
    }

    #[test]
    fn deny_matches_the_alias_or_the_resolved_name() {
        let p = policy(&[], &["*.prod.example.com", "10.0.0.?"]);
        assert_eq!(
            p.verdict("db.prod.example.com", "db.prod.example.com"),
            denied("*.prod.example.com", NameKind::Alias)
        );
        assert_eq!(
            p.verdict("db", "DB.Prod.Example.com"),
            denied("*.prod.example.com", NameKind::Resolved)
        );
        assert_eq!(
            p.verdict("10.0.0.7", "10.0.0.7"),
            denied("10.0.0.?", NameKind::Alias)
        );
        assert_eq!(p.verdict("10.0.0.17", "10.0.0.17"), Verdict::Allowed);
        assert_eq!(p.verdict("prod.example.com", "x"), Verdict::Allowed);
    }

    #[test]
    fn allow_admits_by_either_name_and_refuses_the_rest() {
        let p = policy(&["*.example.com", "127.0.0.1"], &[]);
        assert_eq!(p.verdict("127.0.0.1", "127.0.0.1"), Verdict::Allowed);
        assert_eq!(p.verdict("web", "web.example.com"), Verdict::Allowed);
        assert_eq!(p.verdict("web.example.com", "10.9.9.9"), Verdict::Allowed);
        assert_eq!(p.verdict("localhost", "localhost"), Verdict::NotAllowed);
        assert_eq!(p.verdict("example.com", "example.com"), Verdict::NotAllowed);
    }

    #[test]
    fn deny_wins_over_allow() {
        let p = policy(&["*.example.com"], &["db*"]);
        assert_eq!(
            p.verdict("db1.example.com", "db1.example.com"),
            denied("db*", NameKind::Alias)
        );
        assert_eq!(p.verdict("web.example.com", "x"), Verdict::Allowed);
    }

    #[test]
    fn refusals_name_the_file_key_pattern_and_name() {
        let p = policy(&["127.0.0.1"], &["bastion"]);
        let e = p.check(Role::Jump, "bastion", "127.0.0.1").unwrap_err();
        assert_eq!(e.kind, sshmcp_proto::ErrorKind::BadRequest);
        for part in [
            "deny_hosts in /c/sshmcp/config.toml",
            "the jump host \"bastion\" (resolved name \"127.0.0.1\")",
            "its alias matches the deny_hosts pattern \"bastion\"",
            "restarting the daemon",
        ] {
            assert!(e.message.contains(part), "{part:?} not in {}", e.message);
        }
        let e = p.check(Role::Target, "localhost", "localhost").unwrap_err();
        for part in [
            "allow_hosts in /c/sshmcp/config.toml",
            "the target \"localhost\" is not allowed",
            "its name matches no pattern of allow_hosts [\"127.0.0.1\"]",
            "adding a pattern to allow_hosts",
        ] {
            assert!(e.message.contains(part), "{part:?} not in {}", e.message);
        }
        let e = p.check(Role::Target, "elsewhere", "localhost").unwrap_err();
        assert!(
            e.message
                .contains("neither its alias nor its resolved name matches"),
            "{}",
            e.message
        );
        assert!(p.check(Role::Target, "127.0.0.1", "127.0.0.1").is_ok());
    }

    #[test]
    fn patterns_an_openssh_list_would_read_differently_are_refused() {
        let bad = |p: &str| HostPatterns::try_from(vec![p.to_owned()]).unwrap_err();
        assert!(bad("").contains("empty"));
        assert!(bad("!prod").contains("deny_hosts"));
        assert!(bad("a,b").contains("own string"));
        assert!(bad("a b").contains("spaces"));
        assert_eq!(
            patterns(&["*.example.com", "10.0.0.*"]).to_string(),
            "[\"*.example.com\", \"10.0.0.*\"]"
        );
    }
}
