//! The user's policy in config.toml, end to end: `allow_hosts` and
//! `deny_hosts` refuse hosts (targets and jump hosts, by the name given or
//! the name after `HostName`) before any connection is made, and the audit
//! log records each call without its secrets, stdin, environment or output.
//!
//! "No connection made" is checked with a trap: a TCP listener on
//! 127.0.0.1 that no one serves. Had the daemon connected, the connection
//! would sit in the trap's accept queue (and the daemon would still be
//! waiting for an SSH banner, so the call would fail with a timeout instead
//! of the policy's refusal).

use serde_json::{Value, json};
use sshmcp_tests::{Env, Shim, Sshd, TestUser, run_cli};
use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// A sandbox with config.toml and `~/.ssh/config` written before its shim
/// (and so the daemon it starts) runs. Field order is drop order.
struct Policy {
    shim: Shim,
    env: Env,
    sshd: Sshd,
}

impl Policy {
    /// `config` is config.toml; `ssh_config` is `~/.ssh/config`, with
    /// `{sshd}` standing for the fixture sshd's port, `{trap}` for the
    /// trap's and `{key}` for the fixture's client key.
    fn start(config: &str, ssh_config: &str, trap: &TcpListener) -> Policy {
        let sshd = Sshd::start();
        let env = Env::new();
        let dir = config_file(&env);
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        std::fs::write(&dir, config).unwrap();
        std::fs::create_dir(env.home().join(".ssh")).unwrap();
        let ssh_config = ssh_config
            .replace("{sshd}", &sshd.port().to_string())
            .replace("{trap}", &port(trap).to_string())
            .replace("{key}", &sshd.client_key().display().to_string());
        std::fs::write(env.home().join(".ssh/config"), ssh_config).unwrap();
        let mut shim = Shim::spawn(&env);
        shim.initialize();
        Policy { shim, env, sshd }
    }

    fn connect(&mut self, args: Value) -> sshmcp_tests::ToolResult {
        self.shim.call_tool("connect", args)
    }

    /// A connect that must be refused by the policy; returns its message.
    fn refused(&mut self, args: Value) -> String {
        let r = self.connect(args.clone());
        assert!(r.is_error, "{args} should be refused, got {}", r.text);
        assert!(
            r.text.contains("refused by the host policy"),
            "{args} failed, but not by the policy: {}",
            r.text
        );
        let file = config_file(&self.env).display().to_string();
        assert!(
            r.text.contains(&file) && r.text.contains("restarting the daemon"),
            "the refusal should name {file} and say to restart the daemon: {}",
            r.text
        );
        r.text
    }

    /// Connects and runs a command, which must work.
    fn reaches(&mut self, args: Value) {
        let r = self.connect(args);
        let id = r.expect_ok()["session_id"].as_str().unwrap().to_owned();
        let r = self
            .shim
            .call_tool("execute", json!({"session_id": id, "command": "echo here"}));
        assert_eq!(r.expect_ok()["stdout"], "here\n", "{}", r.text);
    }
}

fn config_file(env: &Env) -> PathBuf {
    env.dir().join("config/sshmcp/config.toml")
}

fn trap() -> TcpListener {
    let trap = TcpListener::bind("127.0.0.1:0").expect("bind a trap listener on 127.0.0.1");
    trap.set_nonblocking(true).unwrap();
    trap
}

fn port(trap: &TcpListener) -> u16 {
    trap.local_addr().unwrap().port()
}

/// Fails if anyone connected to the trap.
fn assert_untouched(trap: &TcpListener) {
    match trap.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("a refused host was connected to anyway (from {peer})"),
        Err(e) => panic!("cannot check the trap listener: {e}"),
    }
}

const ALIASES: &str = "\
Host web
  HostName 127.0.0.1
  Port {sshd}
  User root
  IdentityFile {key}
Host db.prod
  HostName 127.0.0.1
  Port {trap}
  User root
Host sneaky
  HostName localhost
  Port {trap}
  User root
";

#[test]
fn denied_hosts_are_refused_by_alias_resolved_name_or_as_a_jump_before_connecting() {
    let trap = trap();
    let mut w = Policy::start("deny_hosts = [\"*.PROD\", \"localhost\"]\n", ALIASES, &trap);

    let text = w.refused(json!({"hostname": "db.prod"}));
    assert!(
        text.contains("deny_hosts in ")
            && text.contains("the target \"db.prod\" (resolved name \"127.0.0.1\")")
            && text.contains("its alias matches the deny_hosts pattern \"*.PROD\""),
        "{text}"
    );
    assert_untouched(&trap);

    let text = w.refused(json!({"hostname": "sneaky"}));
    assert!(
        text.contains("its resolved name matches the deny_hosts pattern \"localhost\""),
        "{text}"
    );
    assert_untouched(&trap);

    let text = w.refused(json!({"hostname": "localhost", "port": port(&trap), "username": "root"}));
    assert!(
        text.contains("the target \"localhost\" is not allowed: its name matches"),
        "{text}"
    );
    assert_untouched(&trap);

    // The target is allowed and up; the jump host in front of it is not.
    let text = w.refused(json!({"hostname": "127.0.0.1", "port": w.sshd.port(),
                                "username": "root", "private_key": w.sshd.client_key(),
                                "jump": "db.prod"}));
    assert!(
        text.contains("the jump host \"db.prod\"") && text.contains("\"*.PROD\""),
        "{text}"
    );
    assert_untouched(&trap);

    // Hosts no pattern matches are reached as before.
    w.reaches(json!({"hostname": "web"}));
    w.reaches(
        json!({"hostname": "127.0.0.1", "port": w.sshd.port(), "username": "root",
                     "private_key": w.sshd.client_key()}),
    );
}

#[test]
fn an_allow_list_admits_only_its_hosts_by_either_name() {
    let trap = trap();
    let mut w = Policy::start(
        "allow_hosts = [\"127.0.0.1\"]\n",
        "Host web\n  HostName 127.0.0.1\n  Port {sshd}\n  User root\n  IdentityFile {key}\n\
         Host elsewhere\n  HostName localhost\n  Port {trap}\n  User root\n",
        &trap,
    );

    w.reaches(
        json!({"hostname": "127.0.0.1", "port": w.sshd.port(), "username": "root",
                     "private_key": w.sshd.client_key()}),
    );
    // By its resolved name.
    w.reaches(json!({"hostname": "web"}));

    let text = w.refused(json!({"hostname": "localhost", "port": port(&trap), "username": "root"}));
    assert!(
        text.contains("allow_hosts in ")
            && text.contains(
                "the target \"localhost\" is not allowed: its name matches no pattern of \
                 allow_hosts [\"127.0.0.1\"]"
            ),
        "{text}"
    );
    assert_untouched(&trap);

    let text = w.refused(json!({"hostname": "elsewhere"}));
    assert!(
        text.contains("the target \"elsewhere\" (resolved name \"localhost\")")
            && text.contains("neither its alias nor its resolved name matches"),
        "{text}"
    );
    assert_untouched(&trap);
}

#[test]
fn sshmcpd_config_shows_the_policy_keys_and_refuses_bad_patterns() {
    let env = Env::new();
    let file = config_file(&env);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        "allow_hosts = [\"*.example.com\", \"10.0.0.*\"]\naudit_log = true\n",
    )
    .unwrap();
    let out = run_cli(&env, &["config"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let origin = file.display().to_string();
    for line in [
        format!("allow_hosts = [\"*.example.com\", \"10.0.0.*\"]  # {origin}"),
        "deny_hosts = []  # default".to_owned(),
        format!("audit_log = true  # {origin}"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
    }
    assert!(text.contains("state/sshmcp/audit.jsonl"), "{text}");

    std::fs::write(&file, "deny_hosts = [\"!prod\"]\n").unwrap();
    let out = run_cli(&env, &["config"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.toml:1:") && err.contains("negated patterns are not supported"),
        "{err}"
    );
}

fn audit_path(env: &Env) -> PathBuf {
    env.dir().join("state/sshmcp/audit.jsonl")
}

#[test]
fn the_audit_log_is_off_by_default() {
    let trap = trap();
    let mut w = Policy::start("", "", &trap);
    w.reaches(
        json!({"hostname": "127.0.0.1", "port": w.sshd.port(), "username": "root",
                     "private_key": w.sshd.client_key()}),
    );
    assert!(
        w.env.daemon_log_path().exists(),
        "the daemon should have written its log in the state dir"
    );
    assert!(
        !audit_path(&w.env).exists(),
        "an audit log was written though config.toml does not ask for one"
    );
}

/// Every call that acts on a host gets one line, written before its answer,
/// with the fields the README lists and none of the secrets.
#[test]
fn the_audit_log_records_each_call_and_no_secret_stdin_env_or_output() {
    let user = TestUser::require();
    let trap = trap();
    let mut w = Policy::start("audit_log = true\n", "", &trap);
    let sshd_port = w.sshd.port();
    let target = format!("{}@127.0.0.1:{sshd_port}", user.name());
    let wrong = "wrong-password-c0ffee";
    let stdin = "stdin-text-8c1f2a";
    let env_value = "env-value-5e3a90";
    let content = "file-content-77d1b4\n";
    // The command prints a line that is not in the command itself.
    let command = "cat >/dev/null; printf 'zq%sj\\n' 918273";
    let output = "zq918273j";

    let r = w.connect(json!({"hostname": "127.0.0.1", "port": sshd_port,
                             "username": user.name(), "password": user.password()}));
    let id = r.expect_ok()["session_id"].as_str().unwrap().to_owned();
    let r = w.connect(json!({"hostname": "127.0.0.1", "port": sshd_port,
                             "username": user.name(), "password": wrong}));
    assert!(r.is_error, "{}", r.text);
    let r = w.shim.call_tool(
        "execute",
        json!({"session_id": id, "command": command, "stdin": stdin,
               "env": {"AUDIT_TEST_VAR": env_value}}),
    );
    assert_eq!(r.expect_ok()["stdout"], format!("{output}\n"));
    let local = w.env.dir().join("up.txt");
    std::fs::write(&local, content).unwrap();
    let remote = user
        .home()
        .join(format!("sshmcp-audit-{}.txt", std::process::id()));
    let r = w.shim.call_tool(
        "upload",
        json!({"session_id": id, "local_path": local, "remote_path": remote}),
    );
    r.expect_ok();
    let back = w.env.dir().join("back.txt");
    let r = w.shim.call_tool(
        "download",
        json!({"session_id": id, "remote_path": remote, "local_path": back}),
    );
    r.expect_ok();
    std::fs::remove_file(&remote).unwrap();
    assert_eq!(std::fs::read_to_string(&back).unwrap(), content);
    w.shim.call_tool("list_sessions", json!({})).expect_ok();
    w.shim
        .call_tool("disconnect", json!({"session_id": id}))
        .expect_ok();

    let path = audit_path(&w.env);
    let mode = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("no audit log at {}: {e}", path.display()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the audit log is readable by others");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let tools: Vec<&str> = lines.iter().map(|l| l["tool"].as_str().unwrap()).collect();
    assert_eq!(
        tools,
        [
            "connect",
            "connect",
            "execute",
            "upload",
            "download",
            "disconnect"
        ],
        "one line per call, list_sessions left out:\n{text}"
    );
    for line in &lines {
        let time = line["time"].as_str().unwrap();
        assert!(
            time.len() == "2025-01-02T03:04:05.678Z".len()
                && time.ends_with('Z')
                && time.as_bytes()[10] == b'T',
            "time is not RFC 3339 UTC: {line}"
        );
        assert!(line["duration_ms"].is_u64(), "{line}");
        assert_eq!(line["target"], target, "{line}");
    }
    let (ok, failed) = (&lines[0], &lines[1]);
    assert_eq!(ok["session_id"], id, "{ok}");
    assert_eq!(ok["status"], "ok", "{ok}");
    assert_eq!(failed["status"], "error", "{failed}");
    assert_eq!(failed["error"], "AuthFailed", "{failed}");
    assert_eq!(failed["session_id"], Value::Null, "{failed}");
    let exec = &lines[2];
    assert_eq!(exec["session_id"], id);
    assert_eq!(exec["command"], command, "{exec}");
    assert_eq!(exec["exit_status"], 0, "{exec}");
    assert_eq!(exec["timed_out"], false, "{exec}");
    for transfer in &lines[3..5] {
        assert_eq!(transfer["session_id"], id);
        assert_eq!(transfer["status"], "ok", "{transfer}");
        assert_eq!(
            transfer["local_path"],
            if transfer["tool"] == "upload" {
                local.to_str().unwrap()
            } else {
                back.to_str().unwrap()
            }
        );
        assert_eq!(transfer["remote_path"], remote.to_str().unwrap());
    }
    assert_eq!(lines[5]["session_id"], id);
    assert_eq!(lines[5]["status"], "ok");
    for secret in [
        user.password(),
        wrong,
        stdin,
        env_value,
        "AUDIT_TEST_VAR",
        output,
        content.trim_end(),
    ] {
        assert!(
            !text.contains(secret),
            "{secret:?} is in the audit log:\n{text}"
        );
    }
}
