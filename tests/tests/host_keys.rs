//! Host-key verification end to end: the real shim and daemon against a real
//! OpenSSH sshd, with known_hosts files, `~/.ssh/config` and sshmcp's
//! config.toml written the way users and OpenSSH's own tools write them.

use serde_json::json;
use sshmcp_tests::{Env, Shim, Sshd, SshdConfig, ToolResult};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A sandbox with an sshd. The shim starts only when a test asks for it, so
/// config files written before are what the daemon starts with.
struct World {
    sshd: Sshd,
    env: Env,
    shim: Option<Shim>,
}

impl World {
    fn new() -> World {
        Self::with(Sshd::start())
    }

    fn with(sshd: Sshd) -> World {
        let env = Env::new();
        std::fs::create_dir(env.home().join(".ssh")).expect("create ~/.ssh");
        World {
            sshd,
            env,
            shim: None,
        }
    }

    /// The sandbox user's `~/.ssh/known_hosts`.
    fn known_hosts(&self) -> PathBuf {
        self.env.home().join(".ssh/known_hosts")
    }

    /// `[127.0.0.1]:PORT`, as known_hosts and `ssh-keygen -R` name the host.
    fn label(&self) -> String {
        format!("[{}]:{}", self.sshd.host(), self.sshd.port())
    }

    fn write(&self, path: &Path, text: &str) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    fn connect(&mut self) -> ToolResult {
        let env = &self.env;
        let shim = self.shim.get_or_insert_with(|| {
            let mut shim = Shim::spawn(env);
            shim.initialize();
            shim
        });
        shim.call_tool(
            "connect",
            json!({"hostname": self.sshd.host(), "port": self.sshd.port(), "username": "root",
                   "private_key": self.sshd.client_key()}),
        )
    }

    /// Connects and expects success; returns (fingerprint, learned).
    fn connect_ok(&mut self) -> (String, bool) {
        let result = self.connect();
        let value = result.expect_ok();
        (
            value["host_key_fingerprint"]
                .as_str()
                .unwrap_or_else(|| panic!("no fingerprint: {value}"))
                .to_owned(),
            value["host_key_learned"]
                .as_bool()
                .unwrap_or_else(|| panic!("no host_key_learned: {value}")),
        )
    }

    /// Connects and expects a refusal; returns its text.
    fn connect_refused(&mut self) -> String {
        let result = self.connect();
        assert!(result.is_error, "expected a refusal, got: {}", result.text);
        result.text
    }
}

/// The `ssh-keygen -lf` fingerprint (`SHA256:...`) of a public key file.
fn fingerprint(public_key: &Path) -> String {
    let out = run(Command::new("ssh-keygen").arg("-lf").arg(public_key));
    out.split_whitespace().nth(1).unwrap_or_default().to_owned()
}

/// `type base64` of a public key file, without its comment.
fn key_fields(public_key: &Path) -> String {
    let text = std::fs::read_to_string(public_key).unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A new ed25519 key pair at `path`; returns the public key's path.
fn keygen(path: &Path) -> PathBuf {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path));
    PathBuf::from(format!("{}.pub", path.display()))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text between the first backticks after `start` in `message`.
fn quoted_command(message: &str, start: &str) -> String {
    let from = message
        .find(&format!("`{start}"))
        .unwrap_or_else(|| panic!("no `{start}...` in: {message}"));
    let rest = &message[from + 1..];
    rest[..rest.find('`').expect("closing backtick")].to_owned()
}

/// Whether OpenSSH itself finds `label` in `file` (`ssh-keygen -F`), so
/// the entry is written the way OpenSSH reads it.
fn openssh_finds(label: &str, file: &Path) -> bool {
    Command::new("ssh-keygen")
        .arg("-F")
        .arg(label)
        .arg("-f")
        .arg(file)
        .output()
        .expect("run ssh-keygen -F")
        .status
        .success()
}

#[test]
fn a_regenerated_host_key_is_refused_with_both_fingerprints_and_how_to_clear_it() {
    let mut w = World::new();
    let old = w.sshd.host_key_fingerprint().to_owned();
    assert_eq!(w.connect_ok(), (old.clone(), true));
    assert!(openssh_finds(&w.label(), &w.known_hosts()));
    let learned = std::fs::read_to_string(w.known_hosts()).unwrap();

    w.sshd.regenerate_host_key();
    let new = w.sshd.host_key_fingerprint().to_owned();
    assert_ne!(old, new);
    let text = w.connect_refused();
    assert!(text.contains("HOST KEY CHANGED"), "{text}");
    assert!(text.contains(&w.label()), "{text}");
    assert!(text.contains(&old), "should name the recorded key: {text}");
    assert!(text.contains(&new), "should name the offered key: {text}");
    let file = w.known_hosts().display().to_string();
    assert!(text.contains(&format!("{file} line 1")), "{text}");
    let remove = format!("ssh-keygen -R '{}' -f {file}", w.label());
    assert_eq!(quoted_command(&text, "ssh-keygen -R"), remove);
    assert_eq!(
        std::fs::read_to_string(w.known_hosts()).unwrap(),
        learned,
        "a refused key must not be recorded"
    );

    // The advice works: after the removal the new key is learned.
    run(Command::new("sh").arg("-c").arg(&remove));
    assert_eq!(w.connect_ok(), (new, true));
}

#[test]
fn a_hashed_entry_is_recognised() {
    let mut w = World::new();
    let known = w.known_hosts();
    w.write(&known, &format!("{}\n", w.sshd.known_hosts_line()));
    run(Command::new("ssh-keygen").arg("-H").arg("-f").arg(&known));
    let hashed = std::fs::read_to_string(&known).unwrap();
    assert!(
        hashed.starts_with("|1|") && !hashed.contains("127.0.0.1"),
        "{hashed}"
    );

    let fingerprint = w.sshd.host_key_fingerprint().to_owned();
    assert_eq!(w.connect_ok(), (fingerprint, false));
    assert_eq!(std::fs::read_to_string(&known).unwrap(), hashed);
}

#[test]
fn hash_known_hosts_and_user_known_hosts_file_from_ssh_config_are_honoured() {
    let mut w = World::new();
    let custom = w.env.home().join("hosts/learned");
    w.write(
        &w.env.home().join(".ssh/config"),
        "Host 127.0.0.1\n  HashKnownHosts yes\n  UserKnownHostsFile ~/hosts/learned\n",
    );
    let fingerprint = w.sshd.host_key_fingerprint().to_owned();
    assert_eq!(w.connect_ok(), (fingerprint.clone(), true));
    assert!(!w.known_hosts().exists(), "learned into the default file");
    let line = std::fs::read_to_string(&custom).unwrap();
    assert!(line.starts_with("|1|"), "not hashed: {line}");
    assert!(
        !line.contains("127.0.0.1"),
        "host name in the clear: {line}"
    );
    assert!(
        openssh_finds(&w.label(), &custom),
        "OpenSSH cannot read {line}"
    );
    assert_eq!(w.connect_ok(), (fingerprint, false));
}

#[test]
fn wildcard_and_negated_entries() {
    let mut w = World::new();
    let key = key_fields(&w.sshd.host_public_key());
    let fingerprint = w.sshd.host_key_fingerprint().to_owned();
    // Excluded by a negation: the host is unknown and gets learned.
    w.write(
        &w.known_hosts(),
        &format!("[127.0.0.*]:*,![127.0.0.1]:* {key}\n"),
    );
    assert_eq!(w.connect_ok(), (fingerprint.clone(), true));
    // Matched by wildcards alone: known.
    w.write(
        &w.known_hosts(),
        &format!("example.org,[127.0.0.?]:* {key}\n"),
    );
    assert_eq!(w.connect_ok(), (fingerprint, false));
}

#[test]
fn an_entry_after_comments_blank_lines_and_tabs_is_reported_at_its_real_line() {
    let mut w = World::new();
    let other = keygen(&w.env.dir().join("other_key"));
    let (kind, data) = key_fields(&other)
        .split_once(' ')
        .map(|(k, d)| (k.to_owned(), d.to_owned()))
        .unwrap();
    w.write(
        &w.known_hosts(),
        &format!(
            "# hosts\n\n   # indented comment\n\t\n{}  \t{kind}\t\t{data}   a comment\n",
            w.label()
        ),
    );
    let text = w.connect_refused();
    let file = w.known_hosts().display().to_string();
    assert!(text.contains(&format!("{file} line 5")), "{text}");
    assert!(text.contains(&fingerprint(&other)), "{text}");
    assert!(text.contains(w.sshd.host_key_fingerprint()), "{text}");
}

#[test]
fn a_revoked_key_is_refused_even_when_also_listed() {
    let mut w = World::new();
    let key = key_fields(&w.sshd.host_public_key());
    w.write(
        &w.known_hosts(),
        &format!("{}\n@revoked * {key}\n", w.sshd.known_hosts_line()),
    );
    let text = w.connect_refused();
    assert!(text.contains("@revoked"), "{text}");
    assert!(
        text.contains(&format!("{} line 2", w.known_hosts().display())),
        "{text}"
    );
    assert!(text.contains(w.sshd.host_key_fingerprint()), "{text}");
}

#[test]
fn a_changed_key_in_the_global_file_names_that_file() {
    let mut w = World::new();
    let global = w.env.dir().join("ssh_known_hosts");
    let other = keygen(&w.env.dir().join("other_key"));
    w.write(
        &global,
        &format!("# global\n{} {}\n", w.label(), key_fields(&other)),
    );
    w.write(
        &w.env.home().join(".ssh/config"),
        &format!("GlobalKnownHostsFile {}\n", global.display()),
    );
    let text = w.connect_refused();
    assert!(text.contains("HOST KEY CHANGED"), "{text}");
    assert!(
        text.contains(&format!("{} line 2", global.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "ssh-keygen -R '{}' -f {}",
            w.label(),
            global.display()
        )),
        "{text}"
    );
    assert!(
        !w.known_hosts().exists(),
        "a refused key must not be recorded"
    );
}

#[test]
fn strict_policy_refuses_an_unknown_host_with_advice_that_works() {
    let mut w = World::new();
    let config = w.env.dir().join("config/sshmcp/config.toml");
    w.write(&config, "host_key_policy = \"strict\"\n");
    let text = w.connect_refused();
    assert!(text.contains(w.sshd.host_key_fingerprint()), "{text}");
    assert!(
        text.contains(&format!(
            "host_key_policy = \"strict\" in {}",
            config.display()
        )),
        "{text}"
    );
    assert!(!w.known_hosts().exists(), "strict must not learn");
    let scan = quoted_command(&text, "ssh-keyscan");
    assert_eq!(
        scan,
        format!(
            "ssh-keyscan -p {} 127.0.0.1 >> {}",
            w.sshd.port(),
            w.known_hosts().display()
        )
    );
    run(Command::new("sh").arg("-c").arg(&scan));
    let fingerprint = w.sshd.host_key_fingerprint().to_owned();
    assert_eq!(w.connect_ok(), (fingerprint, false));
}

#[test]
fn strict_host_key_checking_in_ssh_config_overrides_the_policy_per_host() {
    let mut w = World::new();
    let ssh_config = w.env.home().join(".ssh/config");
    w.write(
        &ssh_config,
        "Host example.org\n  StrictHostKeyChecking no\n\n\
         Host 127.0.0.*\n  StrictHostKeyChecking yes\n",
    );
    let text = w.connect_refused();
    assert!(
        text.contains(&format!(
            "StrictHostKeyChecking at {}:5",
            ssh_config.display()
        )),
        "{text}"
    );
    assert!(!w.known_hosts().exists(), "strict must not learn");

    // accept-new for this host wins over a strict config.toml.
    let mut w = World::new();
    w.write(
        &w.env.dir().join("config/sshmcp/config.toml"),
        "host_key_policy = \"strict\"\n",
    );
    w.write(
        &w.env.home().join(".ssh/config"),
        "Host 127.0.0.1\n  StrictHostKeyChecking accept-new\n",
    );
    let fingerprint = w.sshd.host_key_fingerprint().to_owned();
    assert_eq!(w.connect_ok(), (fingerprint, true));
}

#[test]
fn a_host_known_by_its_ecdsa_key_is_asked_for_that_key() {
    // russh prefers ed25519, so without asking for the known type first the
    // server would show its ed25519 key, which nothing records.
    let mut w = World::with(SshdConfig::new().extra_host_key("ecdsa").start());
    let ecdsa = w.sshd.extra_host_public_key("ecdsa");
    w.write(
        &w.known_hosts(),
        &format!("{} {}\n", w.label(), key_fields(&ecdsa)),
    );
    assert_eq!(w.connect_ok(), (fingerprint(&ecdsa), false));

    // Known by its ed25519 key: that one is shown.
    w.write(
        &w.known_hosts(),
        &format!("{}\n", w.sshd.known_hosts_line()),
    );
    let ed25519 = w.sshd.host_key_fingerprint().to_owned();
    assert_eq!(w.connect_ok(), (ed25519, false));
}

#[test]
fn a_host_certificate_from_a_trusted_authority_is_accepted() {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("ca");
    let ca_public = keygen(&ca);
    let mut w = World::with(SshdConfig::new().host_certificate(&ca, "127.0.0.1").start());
    let entry = format!("@cert-authority [127.0.0.1]:* {}\n", key_fields(&ca_public));
    w.write(&w.known_hosts(), &entry);
    let fingerprint = w.sshd.host_key_fingerprint().to_owned();
    assert_eq!(w.connect_ok(), (fingerprint, false));
    assert_eq!(
        std::fs::read_to_string(w.known_hosts()).unwrap(),
        entry,
        "a certified host must not be learned"
    );
}

#[test]
fn a_host_certificate_for_another_host_is_refused() {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("ca");
    let ca_public = keygen(&ca);
    let mut w = World::with(
        SshdConfig::new()
            .host_certificate(&ca, "db.example.org")
            .start(),
    );
    w.write(
        &w.known_hosts(),
        &format!("\n@cert-authority * {}\n", key_fields(&ca_public)),
    );
    let text = w.connect_refused();
    assert!(text.contains("host certificate"), "{text}");
    assert!(
        text.contains(&format!("{} line 2", w.known_hosts().display())),
        "{text}"
    );
    assert!(text.contains("db.example.org"), "{text}");
    assert!(text.contains("not for 127.0.0.1"), "{text}");
}

#[test]
fn a_bad_config_file_stops_the_daemon_with_file_and_line() {
    let env = Env::new();
    let config = env.dir().join("config/sshmcp/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, "# sshmcp\nhost_key_policy = \"sometimes\"\n").unwrap();
    let out = env
        .command(sshmcp_tests::bin_path("sshmcpd"))
        .arg("serve")
        .output()
        .expect("run sshmcpd serve");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2:", config.display())),
        "{stderr}"
    );
    assert!(stderr.contains("sometimes"), "{stderr}");
}
