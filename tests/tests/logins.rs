//! Ways to log in, end to end against a real OpenSSH sshd: encrypted keys
//! and their passphrase, an ssh-agent the test starts itself, OpenSSH's
//! default identities and `IdentityFile`, `~/.ssh/config` aliases, RSA
//! keys, user certificates, keyboard-interactive for PAM-only servers, what
//! a failed login reports, and that secrets stay out of every log and
//! output.

use serde_json::{Value, json};
use sshmcp_tests::{
    Agent, Daemon, Env, Shim, Sshd, SshdConfig, TestUser, ToolResult, keygen, run_cli,
    sign_user_key,
};
use std::path::PathBuf;

/// A sandbox with `~/.ssh`, an sshd, and a shim started on first use so
/// that files and variables set before it are what it and its daemon see.
struct Logins {
    shim: Option<Shim>,
    env: Env,
    sshd: Sshd,
}

impl Logins {
    fn new() -> Logins {
        Self::with(Sshd::start())
    }

    fn with(sshd: Sshd) -> Logins {
        let env = Env::new();
        std::fs::create_dir(env.home().join(".ssh")).expect("create ~/.ssh");
        Logins {
            shim: None,
            env,
            sshd,
        }
    }

    fn shim(&mut self) -> &mut Shim {
        let env = &self.env;
        self.shim.get_or_insert_with(|| {
            let mut shim = Shim::spawn(env);
            shim.initialize();
            shim
        })
    }

    /// `connect` to the fixture sshd with `args` added to its address.
    fn connect(&mut self, args: Value) -> ToolResult {
        let mut all = json!({"hostname": self.sshd.host(), "port": self.sshd.port()});
        for (k, v) in args.as_object().expect("an object of arguments") {
            all[k] = v.clone();
        }
        self.shim().call_tool("connect", all)
    }

    /// Connects, expects success, and checks the session runs a command as
    /// `user`; returns the connect result.
    fn connect_ok(&mut self, user: &str, args: Value) -> Value {
        let value = self.connect(args).expect_ok().clone();
        let id = value["session_id"]
            .as_str()
            .expect("a session_id")
            .to_owned();
        let r = self
            .shim()
            .call_tool("execute", json!({"session_id": id, "command": "id -un"}));
        assert_eq!(r.expect_ok()["stdout"], format!("{user}\n"), "{}", r.text);
        value
    }

    fn connect_err(&mut self, args: Value) -> String {
        let r = self.connect(args);
        assert!(r.is_error, "expected a failed login, got {}", r.text);
        r.text
    }

    /// A path in the sandbox home.
    fn home(&self, rel: &str) -> PathBuf {
        self.env.home().join(rel)
    }

    fn write_ssh_config(&self, text: &str) {
        std::fs::write(self.home(".ssh/config"), text).expect("write ~/.ssh/config");
    }
}

/// The users to log in as: root always, the ordinary user when the tests
/// run as root (CI does), since sshd treats root logins differently.
fn users() -> Vec<&'static str> {
    let mut users = vec!["root"];
    if let Some(user) = TestUser::ensure() {
        users.push(user.name());
    }
    users
}

#[test]
fn an_encrypted_key_needs_its_passphrase() {
    let mut w = Logins::new();
    let key = w.home("keys/locked");
    std::fs::create_dir(w.home("keys")).unwrap();
    let public = keygen(&key, "ed25519", "correct horse");
    w.sshd.authorize(&public);

    let err = w.connect_err(json!({"username": "root", "private_key": key}));
    assert!(
        err.contains("is encrypted and no passphrase was given"),
        "{err}"
    );
    assert!(err.contains("passphrase"), "{err}");
    assert!(err.contains(&format!("ssh-add {}", key.display())), "{err}");

    let err =
        w.connect_err(json!({"username": "root", "private_key": key, "passphrase": "wrong horse"}));
    assert!(
        err.contains("passphrase given does not decrypt it"),
        "{err}"
    );
    assert!(!err.contains("wrong horse"), "{err}");

    let ok = w.connect_ok(
        "root",
        json!({"username": "root", "private_key": key, "passphrase": "correct horse"}),
    );
    assert_eq!(ok["auth_method"], "publickey");
}

#[test]
fn the_shims_agent_logs_in_although_the_daemon_has_none() {
    let mut w = Logins::new();
    let agent = Agent::start();
    agent.add(&w.sshd.client_key());
    // The daemon starts without SSH_AUTH_SOCK, as under systemd; only the
    // shim, started after, has it.
    let daemon = Daemon::start(&w.env);
    let environ = std::fs::read(format!("/proc/{}/environ", daemon.pid())).unwrap();
    assert!(
        !String::from_utf8_lossy(&environ).contains("SSH_AUTH_SOCK"),
        "the daemon must not see the agent itself"
    );
    w.env.set_var("SSH_AUTH_SOCK", agent.socket());
    for user in users() {
        // No password, no key, and ~/.ssh holds no key: only the agent can
        // log in.
        let ok = w.connect_ok(user, json!({"username": user}));
        assert_eq!(ok["auth_method"], "publickey", "{user}");
        assert!(
            w.sshd
                .log()
                .contains(&format!("Accepted publickey for {user} from 127.0.0.1")),
            "{}",
            w.sshd.log()
        );
    }
    assert_eq!(
        w.env.daemon_pid(),
        Some(daemon.pid()),
        "the same daemon served"
    );
}

#[test]
fn rsa_keys_sign_with_sha2_from_a_file_and_from_the_agent() {
    // OpenSSH 8.8 and later refuse SHA-1 `ssh-rsa` signatures: a login with
    // an RSA key works only if it signs with rsa-sha2-256/512.
    let mut w = Logins::new();
    std::fs::create_dir(w.home("keys")).unwrap();
    let key = w.home("keys/rsa");
    let public = keygen(&key, "rsa", "");
    w.sshd.authorize(&public);
    let ok = w.connect_ok("root", json!({"username": "root", "private_key": key}));
    assert_eq!(ok["auth_method"], "publickey");

    let agent = Agent::start();
    agent.add(&key);
    w.env.set_var("SSH_AUTH_SOCK", agent.socket());
    w.shim = None;
    let ok = w.connect_ok("root", json!({"username": "root"}));
    assert_eq!(ok["auth_method"], "publickey");
    let log = w.sshd.log();
    assert_eq!(
        log.matches("Accepted publickey for root from 127.0.0.1")
            .count(),
        2,
        "{log}"
    );
    assert!(log.contains("ssh2: RSA SHA256:"), "{log}");
}

#[test]
fn default_identities_are_tried_like_openssh() {
    let mut w = Logins::new();
    std::fs::copy(w.sshd.client_key(), w.home(".ssh/id_ed25519")).unwrap();
    for user in users() {
        let ok = w.connect_ok(user, json!({"username": user}));
        assert_eq!(ok["auth_method"], "publickey");
    }
}

#[test]
fn a_config_alias_supplies_host_port_user_and_identity_file() {
    let user = TestUser::require().name();
    let mut w = Logins::new();
    std::fs::create_dir(w.home("keys")).unwrap();
    std::fs::copy(w.sshd.client_key(), w.home("keys/box_key")).unwrap();
    std::fs::create_dir(w.home(".ssh/conf.d")).unwrap();
    w.write_ssh_config("Include conf.d/*\nHost *\n  User nobody\n  IdentityFile ~/keys/none\n");
    std::fs::write(
        w.home(".ssh/conf.d/box"),
        format!(
            "Host box-*\n  HostName {}\n  Port {}\n  User {user}\n  IdentityFile ~/keys/%n_key\n",
            w.sshd.host(),
            w.sshd.port()
        ),
    )
    .unwrap();
    let r = w.shim().call_tool("connect", json!({"hostname": "box-a"}));
    // box-a_key does not exist; the wildcard's ~/keys/none neither.
    assert!(r.is_error, "{}", r.text);
    assert!(
        r.text
            .contains("keys/box-a_key (not used: the file does not exist)"),
        "{}",
        r.text
    );
    std::fs::rename(w.home("keys/box_key"), w.home("keys/box-a_key")).unwrap();
    let r = w.shim().call_tool("connect", json!({"hostname": "box-a"}));
    let ok = r.expect_ok();
    assert_eq!(
        ok["target"],
        format!("{user}@{}:{}", w.sshd.host(), w.sshd.port())
    );
    let listed = w.shim().call_tool("list_sessions", json!({}));
    let sessions = listed.expect_ok()["sessions"].clone();
    assert_eq!(sessions[0]["alias"], "box-a", "{sessions}");
    assert_eq!(sessions[0]["hostname"], w.sshd.host(), "{sessions}");
    // Explicit arguments win over the file.
    let err = w
        .shim()
        .call_tool("connect", json!({"hostname": "box-a", "port": 1}))
        .text;
    assert!(
        err.contains(&format!("{user}@[{}]:1", w.sshd.host())),
        "{err}"
    );
}

#[test]
fn an_undecidable_match_block_is_reported() {
    let mut w = Logins::new();
    w.write_ssh_config("Match exec \"test -e /etc/hosts\"\n  User admin\n");
    let err = w.connect_err(json!({"private_key": w.sshd.client_key()}));
    assert!(err.contains(".ssh/config:2: this User line"), "{err}");
    assert!(err.contains("Match exec test -e /etc/hosts"), "{err}");
}

#[test]
fn a_user_certificate_beside_the_key_logs_in() {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("user_ca");
    let ca_public = keygen(&ca, "ed25519", "");
    let sshd = SshdConfig::new()
        .set("TrustedUserCAKeys", &ca_public.display().to_string())
        .start();
    let mut w = Logins::with(sshd);
    std::fs::create_dir(w.home("keys")).unwrap();
    let key = w.home("keys/certified");
    let public = keygen(&key, "ed25519", "");
    // Not in authorized_keys: only the certificate can log it in.
    let err = w.connect_err(json!({"username": "root", "private_key": key}));
    assert!(err.contains("tried, in order: publickey with "), "{err}");
    let cert = sign_user_key(&ca, &public, "root");
    let ok = w.connect_ok("root", json!({"username": "root", "private_key": key}));
    assert_eq!(ok["auth_method"], "publickey");
    // Elsewhere, named by CertificateFile.
    std::fs::rename(&cert, w.home("keys/elsewhere")).unwrap();
    w.connect_err(json!({"username": "root", "private_key": key}));
    w.write_ssh_config("CertificateFile ~/keys/elsewhere\n");
    let ok = w.connect_ok("root", json!({"username": "root", "private_key": key}));
    assert_eq!(ok["auth_method"], "publickey");
    let log = w.sshd.log();
    assert_eq!(log.matches("ED25519-CERT").count(), 2, "{log}");
    assert!(
        log.contains("Accepted publickey for root") && log.contains("ED25519-CERT"),
        "{log}"
    );
}

/// A server like many PAM setups: no `password` method, only
/// keyboard-interactive, which asks PAM's "Password:" question.
fn keyboard_interactive_only() -> Sshd {
    SshdConfig::new()
        .set("UsePAM", "yes")
        .set("PasswordAuthentication", "no")
        .set("KbdInteractiveAuthentication", "yes")
        .start()
}

#[test]
fn a_keyboard_interactive_server_gets_the_password() {
    let user = TestUser::require();
    let mut w = Logins::with(keyboard_interactive_only());
    let ok = w.connect_ok(
        user.name(),
        json!({"username": user.name(), "password": user.password()}),
    );
    assert_eq!(ok["auth_method"], "keyboard-interactive");

    let err = w.connect_err(json!({"username": user.name(), "password": "not-it"}));
    assert!(
        err.contains("tried, in order: keyboard-interactive (password answered)."),
        "{err}"
    );
    assert!(
        err.contains("The server offered: publickey, keyboard-interactive."),
        "{err}"
    );
}

#[test]
fn a_failed_login_lists_what_was_tried_in_order_and_what_was_offered() {
    let mut w = Logins::new();
    // Keys the server does not know: one in the agent, one default file.
    std::fs::create_dir(w.home("keys")).unwrap();
    let agent_key = w.home("keys/in_agent");
    keygen(&agent_key, "ed25519", "");
    keygen(&w.home(".ssh/id_ecdsa"), "ecdsa", "");
    keygen(&w.home(".ssh/id_rsa"), "rsa", "locked");
    let agent = Agent::start();
    agent.add(&agent_key);
    w.env.set_var("SSH_AUTH_SOCK", agent.socket());

    let err = w.connect_err(json!({"username": "root"}));
    let home = w.env.home();
    assert!(
        err.contains("tried, in order: publickey with ssh-agent key ssh-ed25519 key SHA256:"),
        "{err}"
    );
    let agent_at = err.find("ssh-agent key").unwrap();
    let ecdsa_at = err
        .find(&format!(
            "publickey with {}/.ssh/id_ecdsa (ecdsa-sha2-nistp256 key SHA256:",
            home.display()
        ))
        .unwrap_or_else(|| panic!("{err}"));
    let rsa_at = err
        .find(&format!(
            "{}/.ssh/id_rsa (not used: it is encrypted and no passphrase was given",
            home.display()
        ))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(agent_at < ecdsa_at && ecdsa_at < rsa_at, "{err}");
    assert!(
        err.contains("The server offered: publickey, password."),
        "{err}"
    );

    if let Some(user) = TestUser::ensure() {
        let err = w.connect_err(json!({"username": user.name(), "password": "not-it"}));
        assert!(
            err.contains("tried, in order: password. The server offered: publickey, password."),
            "{err}"
        );
    }
}

/// Every place a secret could leak to: the daemon's and the shim's logs at
/// trace level (their own, russh's and rmcp's), tool results,
/// `sshmcpd status --json` and list_sessions.
#[test]
fn passwords_and_passphrases_appear_in_no_log_or_output() {
    let user = TestUser::require();
    let mut w = Logins::with(keyboard_interactive_only());
    w.env.set_var("RUST_LOG", "trace");
    w.env.set_var("SSHMCP_LOG", "trace");
    let _daemon = Daemon::start(&w.env);
    std::fs::create_dir(w.home("keys")).unwrap();
    let key = w.home("keys/locked");
    let passphrase = "passphrase-4f9c2e";
    w.sshd.authorize(&keygen(&key, "ed25519", passphrase));
    let wrong = "wrong-password-7d1b3a";

    let mut outputs = Vec::new();
    let ok = w.connect(json!({"username": user.name(), "password": user.password()}));
    let id = ok.expect_ok()["session_id"].as_str().unwrap().to_owned();
    outputs.push(ok.raw.to_string());
    let ok = w.connect(json!({"username": "root", "private_key": key, "passphrase": passphrase}));
    ok.expect_ok();
    outputs.push(ok.raw.to_string());
    let failed = w.connect(json!({"username": user.name(), "password": wrong}));
    assert!(failed.is_error);
    outputs.push(failed.raw.to_string());
    let failed = w.connect(json!({"username": "root", "private_key": key, "passphrase": wrong}));
    assert!(failed.is_error);
    outputs.push(failed.raw.to_string());
    let shim = w.shim();
    for (tool, args) in [
        (
            "execute",
            json!({"session_id": id, "command": "echo hello"}),
        ),
        ("list_sessions", json!({})),
        ("disconnect", json!({"session_id": id})),
    ] {
        outputs.push(shim.call_tool(tool, args).raw.to_string());
    }
    let status = run_cli(&w.env, &["status", "--json"]);
    assert!(status.status.success(), "{status:?}");
    outputs.push(String::from_utf8_lossy(&status.stdout).into_owned());
    outputs.push(String::from_utf8_lossy(&status.stderr).into_owned());
    outputs.push(w.shim().stderr());
    let log = w.env.daemon_log();
    assert!(
        log.contains("TRACE") && log.lines().count() > 100,
        "the daemon must log at trace level for this test to mean anything:\n{log}"
    );
    for secret in [user.password(), passphrase, wrong] {
        for line in log.lines() {
            assert!(!line.contains(secret), "secret in the daemon log: {line}");
        }
        for output in &outputs {
            assert!(!output.contains(secret), "secret in an output: {output}");
        }
    }
}
