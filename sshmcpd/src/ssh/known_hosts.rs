//! known_hosts files as OpenSSH reads and writes them (sshd(8), "SSH_KNOWN_HOSTS
//! FILE FORMAT").
//!
//! A line is `[@marker] hosts keytype base64 [comment]`, fields separated by
//! runs of spaces or tabs. `hosts` is either a comma list of patterns
//! (`*`/`?` wildcards, `!` negation, `[host]:port` for ports other than 22)
//! or one hashed name `|1|salt|hmac`. Markers are `@revoked` (never accept
//! this key) and `@cert-authority` (accept host certificates signed by this
//! key).
//!
//! ssh-key's `known_hosts` module parses markers and host fields (including
//! hashed ones), which is used here; but it splits fields on single spaces,
//! forgets line numbers, and matches nothing. The tokenizing, the real line
//! numbers users are told about, and the matching (wildcards, negation,
//! hashes) are done here.

use crate::ssh_config::pattern_list_matches;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::known_hosts::{HostPatterns, Marker};
use russh::keys::{Algorithm, Certificate, HashAlg, PublicKey};
use sha1::Sha1;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One usable line of a known_hosts file.
#[derive(Debug, Clone)]
pub struct Entry {
    pub file: Arc<Path>,
    /// 1-based, counting every line of the file, blank and comment lines too.
    pub line: usize,
    pub marker: Option<Marker>,
    hosts: HostPatterns,
    pub key: PublicKey,
}

impl Entry {
    /// `FILE line N`, as messages name an entry.
    pub fn location(&self) -> String {
        format!("{} line {}", self.file.display(), self.line)
    }

    /// Whether this entry is about `name` (see [`lookup_name`]).
    fn applies_to(&self, name: &str) -> bool {
        match &self.hosts {
            HostPatterns::Patterns(patterns) => {
                pattern_list_matches(name, &patterns.join(","), true)
            }
            HostPatterns::HashedName { salt, hash } => {
                let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(salt) else {
                    return false;
                };
                mac.update(name.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
        }
    }
}

/// The name a host is recorded under: `host` for port 22, else
/// `[host]:port`, lowercased as `ssh` looks it up.
pub fn lookup_name(host: &str, port: u16) -> String {
    let host = host.to_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// Parses a known_hosts file's text. A line that cannot be parsed is
/// skipped with a warning naming its file and line, as `ssh` skips it: one
/// bad line must not make every host unknown.
pub fn parse(text: &str, file: &Path) -> Vec<Entry> {
    let file: Arc<Path> = Arc::from(file);
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        match parse_line(line) {
            Ok(None) => {}
            Ok(Some((marker, hosts, key))) => entries.push(Entry {
                file: file.clone(),
                line: line_number,
                marker,
                hosts,
                key,
            }),
            Err(why) => tracing::warn!(
                "{} line {line_number}: skipping a known_hosts line that cannot be read: {why}",
                file.display()
            ),
        }
    }
    entries
}

type Parsed = (Option<Marker>, HostPatterns, PublicKey);

fn parse_line(line: &str) -> Result<Option<Parsed>, String> {
    let mut fields = line.split([' ', '\t']).filter(|f| !f.is_empty());
    let Some(mut first) = fields.next() else {
        return Ok(None);
    };
    if first.starts_with('#') {
        return Ok(None);
    }
    let marker = if first.starts_with('@') {
        let marker = first
            .parse::<Marker>()
            .map_err(|_| format!("unknown marker {first}"))?;
        first = fields.next().ok_or("no host names after the marker")?;
        Some(marker)
    } else {
        None
    };
    let hosts = first
        .parse::<HostPatterns>()
        .map_err(|e| format!("bad host field {first:?}: {e}"))?;
    let (Some(kind), Some(data)) = (fields.next(), fields.next()) else {
        return Err("no key type and key after the host names".to_owned());
    };
    let key = PublicKey::from_openssh(&format!("{kind} {data}"))
        .map_err(|e| format!("bad {kind} key: {e}"))?;
    Ok(Some((marker, hosts, key)))
}

/// Reads a known_hosts file; a missing file has no entries.
///
/// # Errors
/// Any other failure to read it: checking a host against a file that
/// cannot be read could learn a key the file contradicts.
pub fn read(file: &Path) -> std::io::Result<Vec<Entry>> {
    match std::fs::read(file) {
        Ok(bytes) => Ok(parse(&String::from_utf8_lossy(&bytes), file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Every entry about one host, from all the files `ssh` consults, in the
/// order it consults them.
#[derive(Debug, Clone)]
pub struct HostEntries {
    entries: Vec<Entry>,
}

/// How a plain host key compares with what the files record.
#[derive(Debug)]
pub enum KeyCheck<'a> {
    Known(&'a Entry),
    Revoked(&'a Entry),
    /// A different key of the same type is recorded.
    Changed(&'a Entry),
    /// Only keys of other types are recorded (the first one).
    OtherType(&'a Entry),
    Unknown,
}

/// How a host certificate compares with what the files record.
#[derive(Debug)]
pub enum CertCheck<'a> {
    /// Signed by this `@cert-authority` and valid for the host now.
    Trusted(&'a Entry),
    /// The certified key or its signer is `@revoked` here.
    Revoked(&'a Entry),
    /// Signed by a trusted authority but not valid for this host now.
    Invalid { authority: &'a Entry, why: String },
    /// No `@cert-authority` for this host signed it.
    NoAuthority,
}

impl HostEntries {
    /// Loads the entries for `name` (see [`lookup_name`]) from `files`.
    ///
    /// # Errors
    /// The file that could not be read, and why.
    pub fn load(files: &[PathBuf], name: &str) -> Result<Self, (PathBuf, std::io::Error)> {
        let mut entries = Vec::new();
        for file in files {
            let all = read(file).map_err(|e| (file.clone(), e))?;
            entries.extend(all.into_iter().filter(|e| e.applies_to(name)));
        }
        Ok(HostEntries { entries })
    }

    fn plain(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.marker.is_none())
    }

    fn revoked(&self, key: &PublicKey) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.marker == Some(Marker::Revoked) && e.key.key_data() == key.key_data())
    }

    /// Compares a plain host key with the entries. A revocation anywhere
    /// wins, then a match anywhere (as in `ssh`, a key recorded in any file
    /// is trusted even if another file records a different one).
    pub fn check_key(&self, key: &PublicKey) -> KeyCheck<'_> {
        if let Some(entry) = self.revoked(key) {
            return KeyCheck::Revoked(entry);
        }
        if let Some(entry) = self.plain().find(|e| e.key.key_data() == key.key_data()) {
            return KeyCheck::Known(entry);
        }
        if let Some(entry) = self.plain().find(|e| e.key.algorithm() == key.algorithm()) {
            return KeyCheck::Changed(entry);
        }
        match self.plain().next() {
            Some(entry) => KeyCheck::OtherType(entry),
            None => KeyCheck::Unknown,
        }
    }

    /// Checks a host certificate as `ssh` does: signed by a
    /// `@cert-authority` for this host, a host certificate, within its
    /// validity period at `now` (seconds since the epoch), naming `host`
    /// among its principals (or naming none), with no critical options,
    /// and a signature that verifies.
    pub fn check_certificate(&self, cert: &Certificate, host: &str, now: u64) -> CertCheck<'_> {
        let certified = PublicKey::new(cert.public_key().clone(), "");
        let signer = PublicKey::new(cert.signature_key().clone(), "");
        if let Some(entry) = self.revoked(&certified).or_else(|| self.revoked(&signer)) {
            return CertCheck::Revoked(entry);
        }
        let Some(authority) = self.entries.iter().find(|e| {
            e.marker == Some(Marker::CertAuthority) && e.key.key_data() == cert.signature_key()
        }) else {
            return CertCheck::NoAuthority;
        };
        let invalid = |why: String| CertCheck::Invalid { authority, why };
        if cert.cert_type() != CertType::Host {
            return invalid("it is a user certificate, not a host certificate".to_owned());
        }
        if now < cert.valid_after() {
            return invalid(format!(
                "it is not valid before {}",
                time(cert.valid_after())
            ));
        }
        if now >= cert.valid_before() {
            return invalid(format!("it expired at {}", time(cert.valid_before())));
        }
        let host = host.to_lowercase();
        let principals = cert.valid_principals();
        if !principals.is_empty() && !principals.contains(&host) {
            return invalid(format!(
                "it is valid for {} but not for {host}",
                principals.join(", ")
            ));
        }
        if !cert.critical_options().is_empty() {
            return invalid("it carries critical options, which host certificates may not".into());
        }
        let ca = authority.key.fingerprint(HashAlg::Sha256);
        if cert.validate_at(now, [&ca]).is_err() {
            return invalid("its signature does not verify".to_owned());
        }
        CertCheck::Trusted(authority)
    }

    /// The key types recorded for the host, in file order: the server is
    /// asked for these first, so it shows the key that can be checked.
    pub fn known_algorithms(&self) -> Vec<Algorithm> {
        let mut algorithms: Vec<Algorithm> = Vec::new();
        for entry in self.plain() {
            let algorithm = entry.key.algorithm();
            if !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
        }
        algorithms
    }

    /// Whether some `@cert-authority` may vouch for this host, so asking the
    /// server for a certificate makes sense.
    pub fn has_cert_authority(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.marker == Some(Marker::CertAuthority))
    }
}

fn time(secs: u64) -> String {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_else(|| format!("{secs} s after 1970"))
}

/// The current time as certificates count it.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The line OpenSSH writes for a newly learned host: `name keytype base64`,
/// with the name hashed (`|1|salt|hmac`) when `hash` is set, as with
/// `HashKnownHosts yes`.
pub fn entry_line(name: &str, key: &PublicKey, hash: bool) -> Result<String, String> {
    let encoded = PublicKey::new(key.key_data().clone(), "")
        .to_openssh()
        .map_err(|e| e.to_string())?;
    let hosts = if hash {
        let salt: [u8; 20] = rand::random();
        let mut mac = Hmac::<Sha1>::new_from_slice(&salt).map_err(|e| e.to_string())?;
        mac.update(name.as_bytes());
        HostPatterns::HashedName {
            salt: salt.to_vec(),
            hash: mac.finalize().into_bytes().into(),
        }
        .to_string()
    } else {
        name.to_owned()
    };
    Ok(format!("{hosts} {encoded}"))
}

/// Appends `line` to `file`, starting a new line first if the file does not
/// end with one (so every line number stays right), and returns the line
/// number it was written at.
pub fn append(file: &Path, line: &str) -> std::io::Result<usize> {
    use std::io::Write;
    let existing = std::fs::read(file).or_else(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Ok(Vec::new()),
        _ => Err(e),
    })?;
    let mut text = String::new();
    if existing.last().is_some_and(|b| *b != b'\n') {
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    out.write_all(text.as_bytes())?;
    out.sync_all()?;
    let before = existing.iter().filter(|b| **b == b'\n').count();
    Ok(before + usize::from(!existing.is_empty() && existing.last() != Some(&b'\n')) + 1)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBwrh94wCWIm/L05M34oHtsiy5a9li/TxIhVgoGTjLx9";
    const ED2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBfK4bXeDkUuu/3gJ8/HTCYosQ4jiZq0/xChv9WwO/8J";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBCyGSQ1+eNwEegaoCkbRy3+0gcxspCQVBQUk4EnQb335O87p2dWFkJ9/yAkjqnXrmDOtB3rmli8nsqbiALMGggA=";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).unwrap()
    }

    fn entries(text: &str, name: &str) -> HostEntries {
        HostEntries {
            entries: parse(text, Path::new("/kh"))
                .into_iter()
                .filter(|e| e.applies_to(name))
                .collect(),
        }
    }

    fn known_line(text: &str, name: &str, k: &str) -> Option<usize> {
        match entries(text, name).check_key(&key(k)) {
            KeyCheck::Known(e) => Some(e.line),
            _ => None,
        }
    }

    #[test]
    fn line_numbers_count_comments_and_blank_lines() {
        let text = format!("# comment\n\n   \n\t# indented comment\nhost {ED}\n");
        assert_eq!(known_line(&text, "host", ED), Some(5));
    }

    #[test]
    fn runs_of_spaces_and_tabs_separate_fields() {
        let text = format!(
            "host \t  {}  comment with  spaces\r\n",
            ED.replace(' ', "\t\t")
        );
        assert_eq!(known_line(&text, "host", ED), Some(1));
    }

    #[test]
    fn ports_other_than_22_are_bracketed() {
        let text = format!("[host]:2222 {ED}\nhost {ED2}\n");
        assert_eq!(lookup_name("HOST", 2222), "[host]:2222");
        assert_eq!(known_line(&text, &lookup_name("host", 2222), ED), Some(1));
        assert_eq!(known_line(&text, &lookup_name("host", 22), ED2), Some(2));
        assert_eq!(known_line(&text, &lookup_name("host", 22), ED), None);
    }

    #[test]
    fn comma_lists_wildcards_and_negation() {
        let text = format!("a.example.com,[b.example.com]:2222 {ED}\n*.lan,!bad.lan {ED2}\n");
        assert_eq!(known_line(&text, "a.example.com", ED), Some(1));
        assert_eq!(known_line(&text, "[b.example.com]:2222", ED), Some(1));
        assert_eq!(known_line(&text, "b.example.com", ED), None);
        assert_eq!(known_line(&text, "printer.lan", ED2), Some(2));
        assert_eq!(known_line(&text, "bad.lan", ED2), None);
        let text = format!("[10.0.0.?]:22* {ED}\n");
        assert_eq!(known_line(&text, "[10.0.0.7]:2222", ED), Some(1));
    }

    #[test]
    fn hashed_names_match_what_ssh_keygen_writes() {
        // `ssh-keygen -H` output for "host.example.com" and
        // "[host.example.com]:2222".
        let text = format!(
            "|1|BtherOla5wpk1Y1dGHmvdafk+Kk=|/lxugBOWEEQL7zR2Vca89AVAgQ4= {ED}\n\
             |1|f2H5ZW6SOWV2VB8GGGypXKstkPc=|wSopWDHfns9+U9fO0SPdlYkFCHA= {ED}\n"
        );
        assert_eq!(known_line(&text, "host.example.com", ED), Some(1));
        assert_eq!(known_line(&text, "[host.example.com]:2222", ED), Some(2));
        assert_eq!(known_line(&text, "other.example.com", ED), None);
    }

    #[test]
    fn hashed_entries_written_here_match() {
        let line = entry_line("[h.example.com]:2222", &key(ED), true).unwrap();
        assert!(line.starts_with("|1|"), "{line}");
        assert!(!line.contains("example"), "{line}");
        assert_eq!(known_line(&line, "[h.example.com]:2222", ED), Some(1));
        assert_eq!(known_line(&line, "h.example.com", ED), None);
        // A fresh salt each time: two hashes of one name differ.
        let again = entry_line("[h.example.com]:2222", &key(ED), true).unwrap();
        assert_ne!(line, again);
        assert_eq!(known_line(&again, "[h.example.com]:2222", ED), Some(1));
    }

    #[test]
    fn plain_entries_are_written_as_openssh_writes_them() {
        assert_eq!(
            entry_line("[h]:2222", &key(&format!("{ED} a comment")), false).unwrap(),
            format!("[h]:2222 {ED}")
        );
    }

    #[test]
    fn changed_other_type_and_unknown() {
        let text = format!("h {ED}\n");
        assert!(matches!(
            entries(&text, "h").check_key(&key(ED2)),
            KeyCheck::Changed(e) if e.line == 1
        ));
        assert!(matches!(
            entries(&text, "h").check_key(&key(ECDSA)),
            KeyCheck::OtherType(e) if e.line == 1
        ));
        assert!(matches!(
            entries(&text, "other").check_key(&key(ED)),
            KeyCheck::Unknown
        ));
        // A match anywhere wins over a different key elsewhere.
        let text = format!("h {ED2}\nh {ED}\n");
        assert_eq!(known_line(&text, "h", ED), Some(2));
    }

    #[test]
    fn revoked_keys_are_refused_even_when_also_listed() {
        let text = format!("h {ED}\n# why\n@revoked * {ED}\n");
        assert!(matches!(
            entries(&text, "h").check_key(&key(ED)),
            KeyCheck::Revoked(e) if e.line == 3
        ));
    }

    #[test]
    fn known_algorithms_come_in_file_order() {
        let text = format!("h {ECDSA}\nh {ED}\nh {ED2}\n@cert-authority h {ED}\n");
        let e = entries(&text, "h");
        assert_eq!(
            e.known_algorithms(),
            [key(ECDSA).algorithm(), Algorithm::Ed25519]
        );
        assert!(e.has_cert_authority());
        assert!(!entries(&format!("h {ED}\n"), "h").has_cert_authority());
    }

    /// Made with `ssh-keygen -s ca -h -I <name> -n h.example.org host.pub`
    /// (`any`: signed by `CA2`, no `-n`; `expired`: `-V 20000101:20000102`;
    /// `user`: no `-h`; `crit`: `-O critical:foo=bar`; `forged`: `valid`
    /// with its key id changed afterwards).
    pub(crate) mod certs {
        pub const CA: &str =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIImjMYtFegYRiTIUn3T338PyG6Lo25LKRly+URZOaV5z";
        pub const CA2: &str =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQFm+5rKfnvoqXu5SS1n12XWbNwTSQ5SAEZzGgF4wVx";
        pub const HOST: &str =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJYEcYelcRoeyg4mEFo9wBG/lM0fq5fN/9NCgfT2o5s4";
        pub const VALID: &str = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAILpQi0XxBMqhmUob+U6vWTi4UXKKbvhZr3dpEl3C/O3FAAAAIJYEcYelcRoeyg4mEFo9wBG/lM0fq5fN/9NCgfT2o5s4AAAAAAAAAAAAAAACAAAABXZhbGlkAAAAEQAAAA1oLmV4YW1wbGUub3JnAAAAAAAAAAD//////////wAAAAAAAAAAAAAAAAAAADMAAAALc3NoLWVkMjU1MTkAAAAgiaMxi0V6BhGJMhSfdPffw/IboujbkspGXL5RFk5pXnMAAABTAAAAC3NzaC1lZDI1NTE5AAAAQMswzE2n/8ZxwD2EMa8xLNLCHVIf5E6SN40IXjr7vYeVP9VtwhWoNHyW9yrOAFBsVvN2iz5Eu+Yossaucl7LIg4=";
        pub const EXPIRED: &str = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAINODmsjYrWC/uqY5WhmUtawVf9StlYkvJiUB0dPan+NGAAAAIJYEcYelcRoeyg4mEFo9wBG/lM0fq5fN/9NCgfT2o5s4AAAAAAAAAAAAAAACAAAAB2V4cGlyZWQAAAARAAAADWguZXhhbXBsZS5vcmcAAAAAOG1DgAAAAAA4bpUAAAAAAAAAAAAAAAAAAAAAMwAAAAtzc2gtZWQyNTUxOQAAACCJozGLRXoGEYkyFJ9099/D8hui6NuSykZcvlEWTmlecwAAAFMAAAALc3NoLWVkMjU1MTkAAABAZQhI384gi62eu9/IckgL2+tn+C0tIdYWEfCRu7as4i4wPC97vtq4HgHNLInsn9UbO6f3rQU7BQTUJAAvrw76Dg==";
        pub const USER: &str = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIK6ds0531y4E550QJjWkEYSTwz78htiKcD1gah4ji3FkAAAAIJYEcYelcRoeyg4mEFo9wBG/lM0fq5fN/9NCgfT2o5s4AAAAAAAAAAAAAAABAAAABHVzZXIAAAARAAAADWguZXhhbXBsZS5vcmcAAAAAAAAAAP//////////AAAAAAAAAIIAAAAVcGVybWl0LVgxMS1mb3J3YXJkaW5nAAAAAAAAABdwZXJtaXQtYWdlbnQtZm9yd2FyZGluZwAAAAAAAAAWcGVybWl0LXBvcnQtZm9yd2FyZGluZwAAAAAAAAAKcGVybWl0LXB0eQAAAAAAAAAOcGVybWl0LXVzZXItcmMAAAAAAAAAAAAAADMAAAALc3NoLWVkMjU1MTkAAAAgiaMxi0V6BhGJMhSfdPffw/IboujbkspGXL5RFk5pXnMAAABTAAAAC3NzaC1lZDI1NTE5AAAAQFHuyRkBoaFLLaDOuBImMeO6+7iwIe5k+ND9vT/iBJzF4fLkB+JNekgNSb+t+ot289ttyxrDWPxhJ9R0mbRIPQI=";
        pub const CRIT: &str = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIG54uGnnqfuAUiux4E7yy/4Xb0h6aYx8kqkRw5w9kOtdAAAAIJYEcYelcRoeyg4mEFo9wBG/lM0fq5fN/9NCgfT2o5s4AAAAAAAAAAAAAAACAAAABGNyaXQAAAARAAAADWguZXhhbXBsZS5vcmcAAAAAAAAAAP//////////AAAAEgAAAANmb28AAAAHAAAAA2JhcgAAAAAAAAAAAAAAMwAAAAtzc2gtZWQyNTUxOQAAACCJozGLRXoGEYkyFJ9099/D8hui6NuSykZcvlEWTmlecwAAAFMAAAALc3NoLWVkMjU1MTkAAABANTLejGT+Ym8pR1I7ipvblUxDR/SCUT03mRZWtbWced8XkzOFTcLIED5yGDV6yM6gha2o3qdG1gQV3blD7GzCBA==";
        pub const ANY: &str = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIMNGZSOqixIif+9FnDnrP2z2gAbnZpXRIQ8DyGbDhQlJAAAAIJYEcYelcRoeyg4mEFo9wBG/lM0fq5fN/9NCgfT2o5s4AAAAAAAAAAAAAAACAAAAA2FueQAAAAAAAAAAAAAAAP//////////AAAAAAAAAAAAAAAAAAAAMwAAAAtzc2gtZWQyNTUxOQAAACBkBZvuayn576Kl7uUktZ9dl1mzcE0kOUgBGcxoBeMFcQAAAFMAAAALc3NoLWVkMjU1MTkAAABAQflP9EsqzLhbRGt6DY++C308qjPepqS80dcw6uzVbZ6cM0QEAZCuC6+J52mTdySyGWb8icBd1gk9Hdd+Q9PAAg==";
        pub const FORGED: &str = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAILpQi0XxBMqhmUob+U6vWTi4UXKKbvhZr3dpEl3C/O3FAAAAIJYEcYelcRoeyg4mEFo9wBG/lM0fq5fN/9NCgfT2o5s4AAAAAAAAAAAAAAACAAAABWZvcmdlAAAAEQAAAA1oLmV4YW1wbGUub3JnAAAAAAAAAAD//////////wAAAAAAAAAAAAAAAAAAADMAAAALc3NoLWVkMjU1MTkAAAAgiaMxi0V6BhGJMhSfdPffw/IboujbkspGXL5RFk5pXnMAAABTAAAAC3NzaC1lZDI1NTE5AAAAQMswzE2n/8ZxwD2EMa8xLNLCHVIf5E6SN40IXjr7vYeVP9VtwhWoNHyW9yrOAFBsVvN2iz5Eu+Yossaucl7LIg4=";
    }

    fn cert_check(known_hosts: &str, cert: &str, host: &str) -> Result<usize, String> {
        let cert = Certificate::from_openssh(cert).unwrap();
        match entries(known_hosts, host).check_certificate(&cert, host, now()) {
            CertCheck::Trusted(e) => Ok(e.line),
            CertCheck::Revoked(e) => Err(format!("revoked at {}", e.line)),
            CertCheck::Invalid { why, .. } => Err(why),
            CertCheck::NoAuthority => Err("no authority".to_owned()),
        }
    }

    #[test]
    fn host_certificates_are_checked_as_ssh_checks_them() {
        use certs::*;
        let ca = format!("# CA\n@cert-authority *.example.org {CA}\n");
        assert_eq!(cert_check(&ca, VALID, "h.example.org"), Ok(2));
        // No principals: valid for any host the authority vouches for.
        let ca2 = format!("@cert-authority *.example.org {CA2}\n");
        assert_eq!(cert_check(&ca2, ANY, "x.example.org"), Ok(1));
        let refused = |cert, host| cert_check(&ca, cert, host).unwrap_err();
        assert!(refused(VALID, "x.example.org").contains("not for x.example.org"));
        assert!(refused(EXPIRED, "h.example.org").contains("expired at 2000-01-02"));
        assert!(refused(USER, "h.example.org").contains("user certificate"));
        assert!(refused(CRIT, "h.example.org").contains("critical options"));
        assert!(refused(FORGED, "h.example.org").contains("signature"));
        // Signed by an authority that is not trusted for this host.
        assert_eq!(refused(ANY, "h.example.org"), "no authority");
        assert_eq!(
            cert_check(
                &format!("@cert-authority other.org {CA}\n"),
                VALID,
                "h.example.org"
            ),
            Err("no authority".to_owned())
        );
        // A revoked certified key or authority is refused either way.
        let revoked_host = format!("{ca}@revoked * {HOST}\n");
        assert_eq!(
            cert_check(&revoked_host, VALID, "h.example.org"),
            Err("revoked at 3".to_owned())
        );
        let revoked_ca = format!("{ca}@revoked * {CA}\n");
        assert_eq!(
            cert_check(&revoked_ca, VALID, "h.example.org"),
            Err("revoked at 3".to_owned())
        );
    }

    #[test]
    fn malformed_lines_are_skipped_not_fatal() {
        let text =
            format!("@bogus h {ED}\nh\nh ssh-ed25519 !!!notbase64\n|1|bad|hash {ED}\nh {ED}\n");
        let parsed = parse(&text, Path::new("/kh"));
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].line, 5);
    }

    #[test]
    fn append_starts_a_new_line_and_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        assert_eq!(append(&file, "a").unwrap(), 1);
        std::fs::write(&file, "a\n\nb").unwrap();
        assert_eq!(append(&file, "c").unwrap(), 4);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "a\n\nb\nc\n");
        assert_eq!(append(&file, "d").unwrap(), 5);
    }
}
