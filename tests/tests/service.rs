//! The daemon as a systemd user service: the units `install-service` writes
//! pass `systemd-analyze verify`, and a daemon started by socket activation
//! serves tool calls on the socket it was handed and leaves that socket to
//! its owner when it stops.

use serde_json::{Value, json};
use sshmcp_tests::{Env, Shim, Sshd, bin_path, run_cli, wait_until};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn installed_units_pass_systemd_analyze_verify() {
    let env = Env::new();
    let units = env.dir().join("units");
    let out = run_cli(&env, &["install-service", "--dir", units.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("systemctl --user enable --now sshmcpd.socket"),
        "{printed}"
    );
    let service = std::fs::read_to_string(units.join("sshmcpd.service")).unwrap();
    let binary = bin_path("sshmcpd");
    assert!(
        service.contains(&format!("ExecStart={} serve", binary.display())),
        "{service}"
    );
    let verify = env
        .command("systemd-analyze")
        .args(["verify", "--user"])
        .arg(units.join("sshmcpd.socket"))
        .arg(units.join("sshmcpd.service"))
        .output()
        .expect("run systemd-analyze (Debian's systemd package)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn a_socket_activated_daemon_serves_calls_and_leaves_the_socket() {
    let sshd = Sshd::start();
    let env = Env::new();
    let mut activator = Command::new("systemd-socket-activate");
    activator.arg("-l").arg(env.socket());
    for (name, value) in env.vars() {
        let mut pair = name;
        pair.push("=");
        pair.push(value);
        activator.arg("-E").arg(pair);
    }
    let mut activator = activator
        .arg(bin_path("sshmcpd"))
        .arg("serve")
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run systemd-socket-activate (Debian's systemd package)");
    let socket = env.socket();
    wait_until(Duration::from_secs(10), "the activation socket", || {
        socket.exists()
    })
    .unwrap();

    let mut shim = Shim::spawn(&env);
    shim.initialize();
    let r = shim.call_tool(
        "connect",
        json!({"hostname": "127.0.0.1", "port": sshd.port(), "username": "root",
               "private_key": sshd.client_key()}),
    );
    let id = r.expect_ok()["session_id"].as_str().unwrap().to_owned();
    let r = shim.call_tool(
        "execute",
        json!({"session_id": id, "command": "echo activated"}),
    );
    assert_eq!(r.expect_ok()["stdout"], "activated\n");

    let out = run_cli(&env, &["status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["socket_activated"], true, "{status}");
    // The activator execs the daemon in its own place on the first
    // connection.
    assert_eq!(status["pid"], activator.id(), "{status}");
    drop(shim);

    let out = run_cli(&env, &["stop"]);
    assert!(out.status.success(), "{out:?}");
    let exited = activator.wait().unwrap();
    assert!(exited.success(), "{exited:?}");
    assert!(
        socket.exists(),
        "a socket systemd passed in belongs to the socket unit"
    );
}
