//! The parts of OpenSSH's client configuration (`~/.ssh/config`) that
//! sshmcpd honours, resolved for one host the way `ssh` resolves them:
//! `Host` and `Match` blocks, `Include`, and the first value obtained for a
//! keyword winning. The same file configures the user's own `ssh`, so a host
//! the user has set up behaves the same through sshmcpd.
//!
//! Only the keywords in [`KEYWORDS`] are kept; every other line is skipped
//! without complaint, since the file is written for `ssh` and may use any of
//! its options. Adding a keyword (`HostName`, `User`, `Port`, `IdentityFile`,
//! `ProxyJump`) means listing it there and adding a typed accessor to
//! [`HostConfig`] beside [`HostConfig::host_keys`].
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

/// The keywords resolved, lowercased as `ssh` compares them.
const KEYWORDS: [&str; 4] = [
    "stricthostkeychecking",
    "userknownhostsfile",
    "globalknownhostsfile",
    "hashknownhosts",
];

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

/// The connection being configured: what `Host` and `Match` test.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The host name as given to `connect`.
    pub host: &'a str,
    pub port: u16,
    /// The remote user.
    pub user: &'a str,
}

/// One keyword's first value for the target.
#[derive(Debug, Clone)]
struct Directive {
    args: Vec<String>,
    origin: Origin,
}

/// The resolved configuration for one target.
#[derive(Debug)]
pub struct HostConfig {
    directives: HashMap<&'static str, Directive>,
    home: PathBuf,
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
    pub fn resolve(path: &Path, home: &Path, target: Target<'_>) -> Result<Self, SshConfigError> {
        let mut config = HostConfig {
            directives: HashMap::new(),
            home: home.to_path_buf(),
        };
        let mut reader = Reader {
            target,
            home,
            config: &mut config,
        };
        reader.read_file(path, 0, true, None)?;
        Ok(config)
    }

    /// The host-key settings, with the defaults `ssh` uses when the config
    /// is silent.
    ///
    /// # Errors
    /// A value `ssh` would refuse (`StrictHostKeyChecking maybe`), or a
    /// `%` token in a file name that is not supported.
    pub fn host_keys(&self, target: Target<'_>) -> Result<HostKeySettings, SshConfigError> {
        let strict = match self.directives.get("stricthostkeychecking") {
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
        let hash = match self.directives.get("hashknownhosts") {
            None => false,
            Some(d) => match single_arg(d)?.to_ascii_lowercase().as_str() {
                "yes" | "true" => true,
                "no" | "false" => false,
                other => {
                    return Err(SshConfigError::at(
                        &d.origin,
                        format!("HashKnownHosts {other:?} is not yes or no"),
                    ));
                }
            },
        };
        let ssh_dir = self.home.join(".ssh");
        Ok(HostKeySettings {
            strict_host_key_checking: strict,
            user_known_hosts_files: self.files(
                "userknownhostsfile",
                target,
                &[ssh_dir.join("known_hosts"), ssh_dir.join("known_hosts2")],
            )?,
            global_known_hosts_files: self.files(
                "globalknownhostsfile",
                target,
                &[
                    PathBuf::from("/etc/ssh/ssh_known_hosts"),
                    PathBuf::from("/etc/ssh/ssh_known_hosts2"),
                ],
            )?,
            hash_known_hosts: hash,
        })
    }

    /// A list of files, `none` for no file, with `~` and `%` tokens
    /// expanded as `ssh` expands them in known_hosts file names.
    fn files(
        &self,
        keyword: &str,
        target: Target<'_>,
        default: &[PathBuf],
    ) -> Result<Vec<PathBuf>, SshConfigError> {
        let Some(d) = self.directives.get(keyword) else {
            return Ok(default.to_vec());
        };
        if d.args.len() == 1 && d.args[0].eq_ignore_ascii_case("none") {
            return Ok(Vec::new());
        }
        d.args
            .iter()
            .map(|arg| {
                let expanded = expand_tokens(arg, target, &self.home)
                    .map_err(|e| SshConfigError::at(&d.origin, e))?;
                Ok(expand_tilde(&expanded, &self.home))
            })
            .collect()
    }
}

fn single_arg(d: &Directive) -> Result<&str, SshConfigError> {
    match d.args.as_slice() {
        [one] => Ok(one),
        _ => Err(SshConfigError::at(&d.origin, "expected exactly one value")),
    }
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
            Some('h' | 'n') => out.push_str(target.host),
            Some('p') => out.push_str(&target.port.to_string()),
            Some('r') => out.push_str(target.user),
            Some('u') => out.push_str(&local_user()),
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

fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default()
}

/// One pass over the config files for one target.
struct Reader<'a> {
    target: Target<'a>,
    home: &'a Path,
    config: &'a mut HostConfig,
}

impl Reader<'_> {
    /// Reads one file. `active` says whether lines before the file's first
    /// `Host` or `Match` apply; `never` is set for a file included from a
    /// block that does not apply, whose own blocks then never apply either
    /// (as in `ssh`).
    fn read_file(
        &mut self,
        path: &Path,
        depth: usize,
        mut active: bool,
        included_at: Option<&Origin>,
    ) -> Result<(), SshConfigError> {
        let never = !active;
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
                    active = !never && host_line_matches(self.target.host, &args);
                }
                "match" => {
                    active = !never && self.match_line_matches(&args, &origin)?;
                }
                "include" => {
                    if depth + 1 > MAX_INCLUDE_DEPTH {
                        return Err(SshConfigError::at(
                            &origin,
                            format!("Include nested more than {MAX_INCLUDE_DEPTH} deep"),
                        ));
                    }
                    for file in self.include_files(&args, &origin)? {
                        self.read_file(&file, depth + 1, active, Some(&origin))?;
                    }
                }
                lower => {
                    if let Some(keyword) = KEYWORDS.iter().find(|k| **k == lower)
                        && active
                    {
                        self.config
                            .directives
                            .entry(keyword)
                            .or_insert(Directive { args, origin });
                    }
                }
            }
        }
        Ok(())
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

    /// `Match` criteria. Those sshmcpd cannot evaluate (`exec`,
    /// `localnetwork`, `canonical`, …) make the block not apply, with a
    /// warning, so the settings under them are visibly ignored rather than
    /// applied to the wrong hosts.
    fn match_line_matches(&self, args: &[String], origin: &Origin) -> Result<bool, SshConfigError> {
        if args.is_empty() {
            return Err(SshConfigError::at(origin, "Match needs a criterion"));
        }
        let mut all = true;
        let mut words = args.iter();
        while let Some(word) = words.next() {
            let (negate, criterion) = match word.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, word.as_str()),
            };
            let criterion = criterion.to_ascii_lowercase();
            if criterion == "all" {
                all &= !negate;
                continue;
            }
            let Some(value) = words.next() else {
                return Err(SshConfigError::at(
                    origin,
                    format!("Match {criterion} needs an argument"),
                ));
            };
            let matched = match criterion.as_str() {
                "host" | "originalhost" => pattern_list_matches(self.target.host, value, true),
                "user" => pattern_list_matches(self.target.user, value, false),
                "localuser" => pattern_list_matches(&local_user(), value, false),
                _ => {
                    tracing::warn!(
                        "{origin}: sshmcpd cannot evaluate `Match {criterion}`; the settings \
                         under it are ignored"
                    );
                    return Ok(false);
                }
            };
            all &= matched != negate;
        }
        Ok(all)
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
        HostConfig::resolve(&home.join(".ssh/config"), home, target)
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
        // `exec` cannot be evaluated: its block is ignored, not misapplied.
        let config = "Match exec \"true\"\n  StrictHostKeyChecking no\n\
                      Match all\n  StrictHostKeyChecking yes\n";
        assert_eq!(
            strict(&[("config", config)], TARGET),
            Some((StrictHostKeyChecking::Yes, 4))
        );
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
