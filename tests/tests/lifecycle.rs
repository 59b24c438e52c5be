//! The daemon left running for weeks: reconnecting dropped sessions, closing
//! idle ones, capping how many there are, queueing calls beyond the server's
//! channel limit, and telling a caller with a stale id what happened.

use serde_json::{Value, json};
use sshmcp_tests::{Env, Shim, Sshd, SshdConfig, World, wait_until};
use std::time::Duration;

/// A sandbox whose daemon reads `config` as its config.toml.
fn env_with_config(config: &str) -> Env {
    let env = Env::new();
    let dir = env.dir().join("config/sshmcp");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), config).unwrap();
    env
}

fn connect(shim: &mut Shim, sshd: &Sshd) -> String {
    let r = shim.call_tool(
        "connect",
        json!({"hostname": "127.0.0.1", "port": sshd.port(), "username": "root",
               "private_key": sshd.client_key()}),
    );
    r.expect_ok()["session_id"].as_str().unwrap().to_owned()
}

fn session_status(shim: &mut Shim, id: &str) -> Option<Value> {
    let list = shim.call_tool("list_sessions", json!({}));
    list.expect_ok()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == id)
        .cloned()
}

/// Children of `pid` (the sshd processes serving its connections).
fn children_of(pid: u32) -> Vec<u32> {
    let out = std::process::Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Kills the sshd processes in `serving` (the ones serving session `id`)
/// and waits until the daemon shows the session as disconnected.
fn drop_connections(shim: &mut Shim, id: &str, serving: Vec<u32>) {
    assert!(!serving.is_empty(), "no sshd child serves the session");
    for pid in serving {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    wait_until(
        Duration::from_secs(20),
        "the session to show as disconnected",
        || session_status(shim, id).is_some_and(|s| s["status"] == "disconnected"),
    )
    .unwrap();
}

#[test]
fn a_dropped_connection_is_reconnected_on_next_use() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let r = w.execute(&id, json!({"command": "echo before"}));
    assert_eq!(r["reconnected"], false);
    // Kill the sshd process serving the session: the connection drops as it
    // would when a server restarts or a network path dies.
    let serving = children_of(w.sshd.pid());
    drop_connections(&mut w.shim, &id, serving);
    let s = session_status(&mut w.shim, &id).unwrap();
    assert!(
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("connection")),
        "a disconnected session says why: {s}"
    );
    let r = w.execute(&id, json!({"command": "echo after"}));
    assert_eq!(r["stdout"], "after\n");
    assert_eq!(r["reconnected"], true, "{r}");
    let s = session_status(&mut w.shim, &id).unwrap();
    assert_eq!(s["status"], "connected", "{s}");
    assert_eq!(s["commands_run"], 2, "{s}");
}

#[test]
fn a_failed_reconnect_says_the_session_is_gone_and_why() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let port = w.sshd.port();
    // The server goes away for good: its listener and its session child.
    let serving = children_of(w.sshd.pid());
    drop(std::mem::replace(&mut w.sshd, Sshd::start()));
    drop_connections(&mut w.shim, &id, serving);
    let r = w
        .shim
        .call_tool("execute", json!({"session_id": id, "command": "true"}));
    assert!(r.is_error, "{}", r.text);
    assert!(r.text.contains("reconnecting failed"), "{}", r.text);
    assert!(r.text.contains(&port.to_string()), "{}", r.text);
    let s = session_status(&mut w.shim, &id).unwrap();
    assert!(
        s["last_error"]
            .as_str()
            .unwrap()
            .contains("reconnecting failed"),
        "{s}"
    );
}

#[test]
fn idle_sessions_are_closed() {
    let sshd = Sshd::start();
    let env = env_with_config("idle_timeout = 2\n");
    let mut shim = Shim::spawn(&env);
    shim.initialize();
    let id = connect(&mut shim, &sshd);
    assert!(session_status(&mut shim, &id).is_some());
    wait_until(
        Duration::from_secs(30),
        "the idle session to be closed",
        || {
            std::fs::read_to_string(env.daemon_log_path())
                .is_ok_and(|log| log.contains("closing idle session"))
        },
    )
    .unwrap();
    assert!(session_status(&mut shim, &id).is_none());
}

#[test]
fn the_session_cap_refuses_the_next_connect_naming_idle_ones() {
    let sshd = Sshd::start();
    let env = env_with_config("max_sessions = 1\n");
    let mut shim = Shim::spawn(&env);
    shim.initialize();
    let first = connect(&mut shim, &sshd);
    let r = shim.call_tool(
        "connect",
        json!({"hostname": "127.0.0.1", "port": sshd.port(), "username": "root",
               "private_key": sshd.client_key()}),
    );
    assert!(r.is_error, "{}", r.text);
    assert!(
        r.text.contains("max_sessions") && r.text.contains(&first),
        "{}",
        r.text
    );
}

#[test]
fn thirty_concurrent_executes_on_one_session_all_succeed() {
    // OpenSSH's default: 10 channels per connection.
    let sshd = SshdConfig::new().set("MaxSessions", "10").start();
    let env = Env::new();
    let mut shim = Shim::spawn(&env);
    shim.initialize();
    let id = connect(&mut shim, &sshd);
    let calls: Vec<u64> = (0..30)
        .map(|i| {
            shim.send_request(
                "tools/call",
                json!({"name": "execute", "arguments": {"session_id": id,
                       "command": format!("sleep 0.2; echo {i}")}}),
            )
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        let result = shim.wait_response(call).unwrap();
        assert_eq!(result["isError"], false, "call {i}: {result}");
        assert_eq!(result["structuredContent"]["stdout"], format!("{i}\n"));
    }
}

#[test]
fn an_unknown_session_says_when_the_daemon_started() {
    let mut w = World::new();
    let r = w.shim.call_tool(
        "execute",
        json!({"session_id": "from-yesterday", "command": "true"}),
    );
    assert!(r.is_error);
    assert!(r.text.contains("This daemon started at"), "{}", r.text);
    assert!(r.text.contains("connect"), "{}", r.text);
}

/// A daemon of protocol version 99 in a process of its own (so a shim may
/// stop it), saying `software` in its hello; returns once it listens.
fn fake_daemon(env: &Env, software: &str) -> std::process::Child {
    const SCRIPT: &str = r#"
import socket, struct, sys
path, software = sys.argv[1], sys.argv[2].encode()
listener = socket.socket(socket.AF_UNIX)
listener.bind(path)
listener.listen(8)
print("ready", flush=True)
while True:
    conn, _ = listener.accept()
    head = b""
    while len(head) < 13:
        chunk = conn.recv(13 - len(head))
        if not chunk:
            break
        head += chunk
    if len(head) == 13:
        conn.recv(head[12])
        conn.sendall(b"SSHMCP\0\n" + struct.pack("<I", 99) + bytes([1, len(software)]) + software)
    conn.close()
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(env.socket())
        .arg(software)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run python3 for the fake daemon");
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    child
}

#[test]
fn an_idle_daemon_of_another_version_is_replaced() {
    let env = Env::new();
    let mut fake = fake_daemon(&env, "sshmcpd 9.9.9; sessions=0");
    let mut shim = Shim::spawn(&env);
    shim.initialize();
    let r = shim.call_tool("list_sessions", json!({}));
    assert_eq!(r.expect_ok()["sessions"], json!([]));
    let status = fake.wait().unwrap();
    assert!(
        !status.success(),
        "the old daemon was stopped by a signal: {status:?}"
    );
    assert_ne!(env.daemon_pid(), Some(fake.id()));
}

#[test]
fn a_busy_daemon_of_another_version_is_left_alone_with_advice() {
    let env = Env::new();
    let mut fake = fake_daemon(&env, "sshmcpd 9.9.9; sessions=2");
    let mut shim = Shim::spawn(&env);
    shim.initialize();
    let r = shim.call_tool("list_sessions", json!({}));
    assert!(r.is_error, "{}", r.text);
    assert!(
        r.text.contains("protocol 99") && r.text.contains("sshmcpd stop"),
        "{}",
        r.text
    );
    assert!(r.text.contains("2 sessions will be lost"), "{}", r.text);
    assert!(
        fake.try_wait().unwrap().is_none(),
        "the busy daemon must keep running"
    );
    fake.kill().unwrap();
    fake.wait().unwrap();
}

#[test]
fn a_systemd_managed_daemon_of_another_version_gets_systemctl_advice() {
    let env = Env::new();
    let mut fake = fake_daemon(&env, "sshmcpd 9.9.9; sessions=0; socket-activated");
    let mut shim = Shim::spawn(&env);
    shim.initialize();
    let r = shim.call_tool("list_sessions", json!({}));
    assert!(r.is_error, "{}", r.text);
    assert!(
        r.text.contains("systemctl --user restart sshmcpd"),
        "{}",
        r.text
    );
    assert!(
        fake.try_wait().unwrap().is_none(),
        "systemd's daemon must keep running"
    );
    fake.kill().unwrap();
    fake.wait().unwrap();
}

#[test]
fn sigterm_closes_sessions_and_exits_cleanly_within_five_seconds() {
    let sshd = Sshd::start();
    let env = Env::new();
    let mut daemon = sshmcp_tests::Daemon::start(&env);
    let mut shim = Shim::spawn(&env);
    shim.initialize();
    let id = connect(&mut shim, &sshd);
    assert!(session_status(&mut shim, &id).is_some());
    let started = std::time::Instant::now();
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(!env.socket().exists(), "the daemon's own socket is removed");
    wait_until(
        Duration::from_secs(10),
        "sshd to see the session end",
        || sshd.log().contains("Received disconnect") || sshd.log().contains("Disconnected from"),
    )
    .unwrap();
}

#[test]
fn a_session_survives_ten_client_restarts() {
    let sshd = Sshd::start();
    let env = Env::new();
    let mut first = Shim::spawn(&env);
    first.initialize();
    let id = connect(&mut first, &sshd);
    drop(first);
    for round in 0..10 {
        let mut shim = Shim::spawn(&env);
        shim.initialize();
        let r = shim.call_tool(
            "execute",
            json!({"session_id": id, "command": format!("echo {round}")}),
        );
        assert_eq!(r.expect_ok()["stdout"], format!("{round}\n"));
        shim.close_stdin_and_wait();
    }
}

#[test]
fn the_terminal_commands_show_and_control_sessions() {
    let mut w = World::new();
    let id = w.connect_as("root");
    w.execute(&id, json!({"command": "true"}));
    let out = sshmcp_tests::run_cli(&w.env, &["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    for column in [
        "ID",
        "TARGET",
        "STATE",
        "AGE",
        "IDLE",
        "CMDS",
        "MOVED",
        "LAST ERROR",
    ] {
        assert!(table.contains(column), "{column} missing: {table}");
    }
    assert!(
        table.contains(&id) && table.contains("connected"),
        "{table}"
    );
    let out = sshmcp_tests::run_cli(&w.env, &["disconnect", &id]);
    assert!(out.status.success(), "{out:?}");
    assert!(session_status(&mut w.shim, &id).is_none());
    let out = sshmcp_tests::run_cli(&w.env, &["disconnect", &id]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown session"));
    let out = sshmcp_tests::run_cli(&w.env, &["--version"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sshmcpd "));
    // One log line per call: the tool, the session, how it went; never the
    // command.
    let log = w.env.daemon_log();
    let call = log
        .lines()
        .find(|l| l.contains(" call ") && l.contains("tool=\"execute\""))
        .unwrap_or_else(|| panic!("no call line in {log}"));
    assert!(
        call.contains(&id) && call.contains("outcome=\"ok\""),
        "{call}"
    );
    assert!(
        !log.contains("command=") && !log.contains("\"true\""),
        "{log}"
    );
}

#[test]
fn config_prints_effective_values_and_their_sources() {
    let env = env_with_config("max_sessions = 5\n");
    let out = sshmcp_tests::run_cli(&env, &["config"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("max_sessions = 5  # ") && text.contains("config.toml"),
        "{text}"
    );
    assert!(text.contains("idle_timeout = 43200  # default"), "{text}");
    let env = env_with_config("max_sesions = 5\n");
    let out = sshmcp_tests::run_cli(&env, &["config"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("config.toml:1:1"),
        "{out:?}"
    );
}
