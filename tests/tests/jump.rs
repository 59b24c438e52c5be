//! Jump hosts end to end: sshd instances on loopback, the target reached
//! through one or two others over `direct-tcpip` channels, from the `jump`
//! argument and from `ProxyJump` in `~/.ssh/config`, each hop's host key
//! verified like any other.

use serde_json::{Value, json};
use sshmcp_tests::{Agent, Env, Shim, Sshd, SshdConfig, ToolResult, run_cli};

/// A jump host whose log shows the forwards it opens: sshd logs
/// `direct-tcpip` requests at DEBUG1 only.
fn jump_host() -> Sshd {
    SshdConfig::new().set("LogLevel", "DEBUG1").start()
}

/// `~/.ssh/config` entries `Host NAME` for each sshd, with its address,
/// port, user root and its client key, plus `extra` lines for the target.
fn config_for(hosts: &[(&str, &Sshd)], extra: &str) -> String {
    let mut text = String::new();
    for (name, sshd) in hosts {
        text.push_str(&format!(
            "Host {name}\n  HostName {}\n  Port {}\n  User root\n  IdentityFile {}\n",
            sshd.host(),
            sshd.port(),
            sshd.client_key().display()
        ));
        if *name == "target" {
            text.push_str(extra);
        }
    }
    text
}

fn start(env: &Env, config: &str) -> Shim {
    std::fs::create_dir_all(env.home().join(".ssh")).unwrap();
    std::fs::write(env.home().join(".ssh/config"), config).unwrap();
    let mut shim = Shim::spawn(env);
    shim.initialize();
    shim
}

/// Whether the jump host's log shows a forward to `target`:
/// `server_request_direct_tcpip: originator … target HOST port PORT`.
fn forwarded_to(jump: &Sshd, target: &Sshd) -> bool {
    let wanted = format!("target {} port {}", target.host(), target.port());
    jump.log()
        .lines()
        .any(|l| l.contains("server_request_direct_tcpip:") && l.trim_end().ends_with(&wanted))
}

fn run_on(shim: &mut Shim, connected: &Value, command: &str) -> String {
    let id = connected["session_id"].as_str().expect("a session_id");
    let r = shim.call_tool("execute", json!({"session_id": id, "command": command}));
    r.expect_ok()["stdout"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_jump_argument_goes_through_the_jump_host() {
    let target = Sshd::start();
    let jump = jump_host();
    let env = Env::new();
    let mut shim = start(&env, &config_for(&[("bastion", &jump)], ""));
    let r = shim.call_tool(
        "connect",
        json!({"hostname": target.host(), "port": target.port(), "username": "root",
               "private_key": target.client_key(), "jump": "bastion"}),
    );
    let connected = r.expect_ok().clone();
    assert_eq!(run_on(&mut shim, &connected, "echo through"), "through\n");
    assert!(
        forwarded_to(&jump, &target),
        "jump host log:\n{}",
        jump.log()
    );
    // Both hosts' keys were verified and learned, each under its own name.
    let known = std::fs::read_to_string(env.home().join(".ssh/known_hosts")).unwrap();
    assert!(known.contains(jump.known_hosts_line()), "{known}");
    assert!(known.contains(target.known_hosts_line()), "{known}");
    assert_eq!(
        connected["host_key_fingerprint"],
        target.host_key_fingerprint()
    );
    let listed = shim.call_tool("list_sessions", json!({}));
    let listed = listed.expect_ok();
    assert_eq!(listed["sessions"][0]["hostname"], target.host(), "{listed}");
    let status = run_cli(&env, &["status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).expect("status --json");
    assert_eq!(
        status["sessions"][0]["jump"],
        format!("root@[{}]:{}", jump.host(), jump.port()),
        "{status}"
    );
}

#[test]
fn proxy_jump_from_the_config_chains_two_hops() {
    let target = Sshd::start();
    let first = jump_host();
    let second = jump_host();
    let env = Env::new();
    let config = config_for(
        &[("first", &first), ("second", &second), ("target", &target)],
        "  ProxyJump first,second\n",
    );
    let mut shim = start(&env, &config);
    let r = shim.call_tool("connect", json!({"hostname": "target"}));
    let connected = r.expect_ok().clone();
    assert_eq!(run_on(&mut shim, &connected, "echo two hops"), "two hops\n");
    assert!(forwarded_to(&first, &second), "first hop:\n{}", first.log());
    assert!(
        forwarded_to(&second, &target),
        "second hop:\n{}",
        second.log()
    );
    assert!(
        !forwarded_to(&first, &target),
        "the first hop must not reach the target itself:\n{}",
        first.log()
    );
}

/// The "done when": a host alias from `~/.ssh/config` with a jump
/// host and a key held only by ssh-agent connects with nothing but
/// `hostname`, as `ssh target` would.
#[test]
fn an_alias_with_a_jump_host_and_an_agent_key_needs_only_the_hostname() {
    let target = Sshd::start();
    let bastion = jump_host();
    let mut env = Env::new();
    let agent = Agent::start();
    agent.add(&target.client_key());
    agent.add(&bastion.client_key());
    env.set_var("SSH_AUTH_SOCK", agent.socket());
    let entry = |name: &str, sshd: &Sshd| {
        format!(
            "Host {name}\n  HostName {}\n  Port {}\n  User root\n",
            sshd.host(),
            sshd.port()
        )
    };
    let config = format!(
        "{}  ProxyJump bastion\n{}",
        entry("target", &target),
        entry("bastion", &bastion)
    );
    let mut shim = start(&env, &config);
    let r = shim.call_tool("connect", json!({"hostname": "target"}));
    let connected = r.expect_ok().clone();
    assert_eq!(connected["auth_method"], "publickey", "{connected}");
    assert_eq!(
        run_on(&mut shim, &connected, "echo via bastion"),
        "via bastion\n"
    );
    assert!(forwarded_to(&bastion, &target), "{}", bastion.log());
    for sshd in [&bastion, &target] {
        assert!(
            sshd.log().contains("Accepted publickey for root"),
            "{}",
            sshd.log()
        );
    }
    let list = shim.call_tool("list_sessions", json!({}));
    let session = &list.expect_ok()["sessions"][0];
    assert_eq!(session["alias"], "target", "{session}");
    assert_eq!(
        session["jump"],
        format!("root@[127.0.0.1]:{}", bastion.port()),
        "{session}"
    );
}

#[test]
fn a_jump_host_that_refuses_forwarding_stops_the_connection() {
    // The same target is reachable directly: failing through a jump host
    // that forwards nothing shows the connection really goes through it.
    let target = Sshd::start();
    let jump = SshdConfig::new().set("AllowTcpForwarding", "no").start();
    let env = Env::new();
    let mut shim = start(&env, &config_for(&[("bastion", &jump)], ""));
    let args = json!({"hostname": target.host(), "port": target.port(), "username": "root",
                      "private_key": target.client_key()});
    let mut through = args.clone();
    through["jump"] = json!("bastion");
    let r: ToolResult = shim.call_tool("connect", through);
    assert!(r.is_error, "{}", r.text);
    assert!(
        r.text
            .contains("jump host did not open a connection to root@"),
        "{}",
        r.text
    );
    assert!(r.text.contains("AllowTcpForwarding"), "{}", r.text);
    shim.call_tool("connect", args).expect_ok();
}

#[test]
fn a_jump_hosts_changed_key_is_refused() {
    let target = Sshd::start();
    let jump = jump_host();
    let env = Env::new();
    let mut shim = start(&env, &config_for(&[("bastion", &jump)], ""));
    // Record another key for the jump host, as if it had been replaced.
    std::fs::write(
        env.home().join(".ssh/known_hosts"),
        format!(
            "[{}]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBwrh94wCWIm/L05M34oHtsiy5a9li/TxIhVgoGTjLx9\n",
            jump.host(),
            jump.port()
        ),
    )
    .unwrap();
    let r = shim.call_tool(
        "connect",
        json!({"hostname": target.host(), "port": target.port(), "username": "root",
               "private_key": target.client_key(), "jump": "bastion"}),
    );
    assert!(r.is_error, "{}", r.text);
    assert!(r.text.starts_with("jump host root@["), "{}", r.text);
    assert!(r.text.contains("HOST KEY CHANGED"), "{}", r.text);
    assert!(!forwarded_to(&jump, &target), "{}", jump.log());
}
