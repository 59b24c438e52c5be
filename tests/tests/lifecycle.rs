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

#[test]
fn a_dropped_connection_is_reconnected_on_next_use() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let r = w.execute(&id, json!({"command": "echo before"}));
    assert_eq!(r["reconnected"], false);
    // Kill the sshd process serving the session: the connection drops as it
    // would when a server restarts or a network path dies.
    let serving = children_of(w.sshd.pid());
    assert!(!serving.is_empty(), "no sshd child serves the session");
    for pid in serving {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let shim = &mut w.shim;
    wait_until(
        Duration::from_secs(20),
        "the session to show as disconnected",
        || session_status(shim, &id).is_some_and(|s| s["status"] == "disconnected"),
    )
    .unwrap();
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
    for pid in serving {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let shim = &mut w.shim;
    wait_until(
        Duration::from_secs(20),
        "the session to show as disconnected",
        || session_status(shim, &id).is_some_and(|s| s["status"] == "disconnected"),
    )
    .unwrap();
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
