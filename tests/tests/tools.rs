//! The six tools end to end: the real shim over MCP stdio, the real daemon it
//! starts, and a real OpenSSH sshd on 127.0.0.1.

use serde_json::{Value, json};
use sshmcp_tests::{
    Env, Shim, Sshd, TestUser, World, processes_with, random_file, run_cli, sha256_file, wait_until,
};
use std::path::Path;
use std::time::Duration;

#[test]
fn tools_list_has_the_six_tools_with_the_spec_parameters() {
    let env = Env::new();
    let mut shim = Shim::spawn(&env);
    let init = shim.initialize();
    assert_eq!(init["protocolVersion"], "2025-11-25", "{init}");
    let tools = shim.list_tools();
    let mut names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "connect",
            "disconnect",
            "download",
            "execute",
            "list_sessions",
            "upload"
        ]
    );
    let params = |name: &str| -> (Vec<String>, Vec<String>) {
        let tool = tools.iter().find(|t| t["name"] == name).unwrap();
        let schema = &tool["inputSchema"];
        let mut props: Vec<String> = schema["properties"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        props.sort();
        let mut required: Vec<String> = schema["required"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        required.sort();
        assert!(
            tool["description"].as_str().is_some_and(|d| d.len() > 40),
            "{name} needs a real description"
        );
        assert!(
            tool.get("outputSchema").is_some(),
            "{name} has no outputSchema"
        );
        (props, required)
    };
    // The spec's parameters, exactly its required ones; anything added
    // beside them is optional. connect's username is optional since
    // ~/.ssh/config or the local user name supplies it, as for `ssh`.
    let spec: [(&str, &[&str], &[&str]); 6] = [
        (
            "connect",
            &[
                "hostname",
                "username",
                "password",
                "private_key",
                "port",
                "passphrase",
                "jump",
            ],
            &["hostname"],
        ),
        ("disconnect", &["session_id"], &["session_id"]),
        ("list_sessions", &[], &[]),
        (
            "execute",
            &["session_id", "command", "stdin", "timeout"],
            &["session_id", "command"],
        ),
        (
            "upload",
            &["session_id", "local_path", "remote_path"],
            &["session_id", "local_path", "remote_path"],
        ),
        (
            "download",
            &["session_id", "remote_path", "local_path"],
            &["session_id", "remote_path", "local_path"],
        ),
    ];
    for (name, names, required) in spec {
        let (props, req) = params(name);
        for p in names {
            assert!(props.iter().any(|x| x == p), "{name} lacks {p}: {props:?}");
        }
        let mut want: Vec<String> = required.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(req, want, "{name}'s required parameters");
    }
}

#[test]
fn connect_by_key_runs_commands_and_reports_exit_status() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let r = w.execute(&id, json!({"command": "echo out; echo err >&2; exit 3"}));
    assert_eq!(r["stdout"], "out\n");
    assert_eq!(r["stderr"], "err\n");
    assert_eq!(r["exit_status"], 3);
    assert_eq!(r["signal"], Value::Null);
    assert_eq!(r["timed_out"], false);
    assert_eq!(r["stdout_lossy"], false);
    let r = w.execute(&id, json!({"command": "id -un; pwd"}));
    assert_eq!(r["stdout"], "root\n/root\n");
    assert_eq!(r["exit_status"], 0);
}

#[test]
fn connect_reports_and_learns_the_host_key() {
    let mut w = World::new();
    let r = w.shim.call_tool(
        "connect",
        json!({"hostname": "127.0.0.1", "port": w.sshd.port(), "username": "root",
               "private_key": w.sshd.client_key()}),
    );
    let v = r.expect_ok();
    assert_eq!(v["host_key_fingerprint"], w.sshd.host_key_fingerprint());
    assert_eq!(v["host_key_learned"], true);
    let known = std::fs::read_to_string(w.env.home().join(".ssh/known_hosts")).unwrap();
    assert!(
        known.contains(&format!("[127.0.0.1]:{}", w.sshd.port())),
        "{known}"
    );
    let again = w.shim.call_tool(
        "connect",
        json!({"hostname": "127.0.0.1", "port": w.sshd.port(), "username": "root",
               "private_key": w.sshd.client_key()}),
    );
    assert_eq!(again.expect_ok()["host_key_learned"], false);
}

#[test]
fn a_changed_host_key_is_refused_with_both_fingerprints() {
    let mut w = World::new();
    let port = w.sshd.port();
    w.connect_as("root");
    // Another server with its own host key, recorded under the first one's
    // name: to the daemon, that host's key has changed.
    let imposter = Sshd::start();
    let known = w.env.home().join(".ssh/known_hosts");
    let text = std::fs::read_to_string(&known).unwrap().replace(
        &format!("[127.0.0.1]:{port}"),
        &format!("[127.0.0.1]:{}", imposter.port()),
    );
    std::fs::write(&known, text).unwrap();
    let r = w.shim.call_tool(
        "connect",
        json!({"hostname": "127.0.0.1", "port": imposter.port(), "username": "root",
               "private_key": imposter.client_key()}),
    );
    assert!(r.is_error, "a changed key must be refused: {}", r.text);
    assert!(r.text.contains("HOST KEY CHANGED"), "{}", r.text);
    assert!(
        r.text.contains(imposter.host_key_fingerprint()),
        "{}",
        r.text
    );
    assert!(r.text.contains("ssh-keygen -R"), "{}", r.text);
    assert!(r.text.contains("line 1"), "{}", r.text);
}

#[test]
fn ordinary_user_logs_in_by_key_and_by_password() {
    let user = TestUser::require();
    let mut w = World::new();
    let id = w.connect_as(user.name());
    let r = w.execute(&id, json!({"command": "id -un"}));
    assert_eq!(r["stdout"], format!("{}\n", user.name()));

    let r = w.shim.call_tool(
        "connect",
        json!({"hostname": "127.0.0.1", "port": w.sshd.port(), "username": user.name(),
               "password": user.password()}),
    );
    let id = r.expect_ok()["session_id"].as_str().unwrap().to_owned();
    let r = w.execute(&id, json!({"command": "id -un"}));
    assert_eq!(r["stdout"], format!("{}\n", user.name()));
}

#[test]
fn wrong_password_says_what_was_tried_and_leaks_nothing() {
    let user = TestUser::require();
    let mut w = World::new();
    let r = w.shim.call_tool(
        "connect",
        json!({"hostname": "127.0.0.1", "port": w.sshd.port(), "username": user.name(),
               "password": "not-the-password-xyzzy"}),
    );
    assert!(r.is_error, "{}", r.text);
    assert!(r.text.contains("password"), "{}", r.text);
    assert!(
        r.text.contains("publickey"),
        "should list what the server offers: {}",
        r.text
    );
    assert!(
        !r.text.contains("xyzzy"),
        "the password leaked into the error: {}",
        r.text
    );
    let list = w.shim.call_tool("list_sessions", json!({}));
    assert!(!list.text.contains("xyzzy"));
    assert!(
        !w.env.daemon_log().contains("xyzzy"),
        "the password leaked into the log"
    );
    let status = run_cli(&w.env, &["status", "--json"]);
    assert!(!String::from_utf8_lossy(&status.stdout).contains("xyzzy"));
}

#[test]
fn stdin_is_passed_and_eof_is_always_sent() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let r = w.execute(
        &id,
        json!({"command": "cat; echo done", "stdin": "hello\nworld\n"}),
    );
    assert_eq!(r["stdout"], "hello\nworld\ndone\n");
    // Without stdin a command reading it sees EOF at once instead of hanging.
    let r = w.execute(&id, json!({"command": "cat; echo eof"}));
    assert_eq!(r["stdout"], "eof\n");
    // A command that ignores a large stdin does not stall the call.
    let big = "x".repeat(4 * 1024 * 1024);
    let r = w.execute(&id, json!({"command": "echo ignored", "stdin": big}));
    assert_eq!(r["stdout"], "ignored\n");
}

#[test]
fn exit_by_signal_is_reported() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let r = w.execute(&id, json!({"command": "kill -TERM $$"}));
    assert_eq!(r["signal"], "TERM", "{r}");
    assert_eq!(r["exit_status"], Value::Null, "{r}");
}

#[test]
fn non_utf8_output_is_converted_and_flagged() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let r = w.execute(
        &id,
        json!({"command": "printf 'ok\\377\\376'; printf 'e\\377' >&2"}),
    );
    assert_eq!(r["stdout_lossy"], true);
    assert_eq!(r["stderr_lossy"], true);
    assert!(
        r["stdout"].as_str().unwrap().starts_with("ok\u{fffd}"),
        "{r}"
    );
}

fn timeout_stops_the_command_and_its_children(user: &str) {
    let mut w = World::new();
    let id = w.connect_as(user);
    let marker = format!(
        "sleep {}.{:06}",
        4000 + rand::random::<u32>() % 1000,
        rand::random::<u32>() % 1_000_000
    );
    // The command ignores TERM, so only the KILL after the grace ends it.
    let command = format!("echo started; trap '' TERM; {marker} & {marker}; echo never");
    let r = w.execute(&id, json!({"command": command, "timeout": 1}));
    assert_eq!(r["timed_out"], true, "{r}");
    assert_eq!(r["timeout_source"], "timeout", "{r}");
    assert_eq!(r["stdout"], "started\n", "{r}");
    wait_until(
        Duration::from_secs(10),
        "the timed-out command's processes to go",
        || processes_with(&marker).is_empty(),
    )
    .unwrap_or_else(|e| panic!("{e}: still running: {:?}", processes_with(&marker)));
    // The session still works afterwards.
    let r = w.execute(&id, json!({"command": "echo alive"}));
    assert_eq!(r["stdout"], "alive\n");
}

#[test]
fn timeout_stops_the_command_and_its_children_as_root() {
    timeout_stops_the_command_and_its_children("root");
}

#[test]
fn timeout_stops_the_command_and_its_children_as_an_ordinary_user() {
    timeout_stops_the_command_and_its_children(TestUser::require().name());
}

#[test]
fn upload_and_download_a_20_mib_file_intact() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let remote_dir = tempfile::tempdir().unwrap();
    let local = w.env.dir().join("big.bin");
    let sum = random_file(&local, 20 * 1024 * 1024);
    let remote = remote_dir.path().join("big.bin");
    let r = w.shim.call_tool(
        "upload",
        json!({"session_id": id, "local_path": local, "remote_path": remote}),
    );
    let v = r.expect_ok();
    assert_eq!(v["bytes_transferred"], 20 * 1024 * 1024);
    assert!(
        v["status"]
            .as_str()
            .unwrap()
            .contains(remote.to_str().unwrap()),
        "{v}"
    );
    assert_eq!(sha256_file(&remote), sum);

    let back = w.env.dir().join("back.bin");
    let r = w.shim.call_tool(
        "download",
        json!({"session_id": id, "remote_path": remote, "local_path": back}),
    );
    assert_eq!(r.expect_ok()["bytes_transferred"], 20 * 1024 * 1024);
    assert_eq!(sha256_file(&back), sum);
    assert_no_temp_files(remote_dir.path());
    assert_no_temp_files(w.env.dir());
}

fn assert_no_temp_files(dir: &Path) {
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".sshmcp-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left in {}: {leftovers:?}",
        dir.display()
    );
}

#[test]
fn upload_replaces_an_existing_file_and_fills_a_directory() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let remote_dir = tempfile::tempdir().unwrap();
    let local = w.env.dir().join("note.txt");
    std::fs::write(&local, "new contents\n").unwrap();
    let target = remote_dir.path().join("note.txt");
    std::fs::write(&target, "old contents that are longer than the new ones\n").unwrap();
    let r = w.shim.call_tool(
        "upload",
        json!({"session_id": id, "local_path": local, "remote_path": target}),
    );
    r.expect_ok();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "new contents\n");
    // A directory as remote_path receives the file under its own name.
    let sub = remote_dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let r = w.shim.call_tool(
        "upload",
        json!({"session_id": id, "local_path": local, "remote_path": sub}),
    );
    r.expect_ok();
    assert_eq!(
        std::fs::read_to_string(sub.join("note.txt")).unwrap(),
        "new contents\n"
    );
    assert_no_temp_files(remote_dir.path());
}

#[test]
fn relative_local_paths_resolve_against_the_shims_directory() {
    let sshd = Sshd::start();
    let env = Env::new();
    // The shim runs in the sandbox HOME; the daemon it starts does too, so
    // use a working directory of its own for the shim.
    let work = env.dir().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("rel.txt"), "relative\n").unwrap();
    let mut shim = Shim::spawn_in(&env, &work);
    shim.initialize();
    let r = shim.call_tool(
        "connect",
        json!({"hostname": "127.0.0.1", "port": sshd.port(), "username": "root",
               "private_key": sshd.client_key()}),
    );
    let id = r.expect_ok()["session_id"].as_str().unwrap().to_owned();
    let remote_dir = tempfile::tempdir().unwrap();
    let remote = remote_dir.path().join("r.txt");
    let r = shim.call_tool(
        "upload",
        json!({"session_id": id, "local_path": "rel.txt", "remote_path": remote}),
    );
    let status = r.expect_ok()["status"].as_str().unwrap().to_owned();
    assert!(
        status.contains(work.join("rel.txt").to_str().unwrap()),
        "{status}"
    );
    assert_eq!(std::fs::read_to_string(&remote).unwrap(), "relative\n");
    let r = shim.call_tool(
        "download",
        json!({"session_id": id, "remote_path": remote, "local_path": "copy.txt"}),
    );
    r.expect_ok();
    assert_eq!(
        std::fs::read_to_string(work.join("copy.txt")).unwrap(),
        "relative\n"
    );
}

#[test]
fn missing_files_give_tool_errors_and_leave_nothing_behind() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let remote_dir = tempfile::tempdir().unwrap();
    let missing_local = w.env.dir().join("nope.txt");
    let r = w.shim.call_tool(
        "upload",
        json!({"session_id": id, "local_path": missing_local,
               "remote_path": remote_dir.path().join("x")}),
    );
    assert!(r.is_error);
    assert!(
        r.text.contains(missing_local.to_str().unwrap()),
        "{}",
        r.text
    );
    assert!(!remote_dir.path().join("x").exists());
    assert_no_temp_files(remote_dir.path());

    let target = w.env.dir().join("got.txt");
    let r = w.shim.call_tool(
        "download",
        json!({"session_id": id, "remote_path": remote_dir.path().join("absent"),
               "local_path": target}),
    );
    assert!(r.is_error);
    assert!(r.text.contains("absent"), "{}", r.text);
    assert!(!target.exists());
    assert_no_temp_files(w.env.dir());

    // A failed download never touches an existing destination.
    std::fs::write(&target, "keep me").unwrap();
    let r = w.shim.call_tool(
        "download",
        json!({"session_id": id, "remote_path": remote_dir.path().join("absent"),
               "local_path": target}),
    );
    assert!(r.is_error);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
}

#[test]
fn unknown_session_id_lists_the_live_ones() {
    let mut w = World::new();
    let r = w
        .shim
        .call_tool("execute", json!({"session_id": "nope", "command": "true"}));
    assert!(r.is_error);
    assert!(r.text.contains("connect"), "{}", r.text);
    let id = w.connect_as("root");
    let r = w
        .shim
        .call_tool("execute", json!({"session_id": "nope", "command": "true"}));
    assert!(r.is_error);
    assert!(
        r.text.contains(&id),
        "the error should list live sessions: {}",
        r.text
    );
}

#[test]
fn sessions_survive_a_shim_restart_and_show_in_status() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let daemon_pid = w.env.daemon_pid().expect("the shim started a daemon");
    w.shim.close_stdin_and_wait();

    let mut shim = Shim::spawn(&w.env);
    shim.initialize();
    let list = shim.call_tool("list_sessions", json!({}));
    let sessions = list.expect_ok()["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let s = &sessions[0];
    assert_eq!(s["session_id"], id);
    assert_eq!(s["hostname"], "127.0.0.1");
    assert_eq!(s["username"], "root");
    assert_eq!(s["port"], w.sshd.port());
    assert_eq!(s["status"], "connected");
    assert!(s["connected_at"].as_str().unwrap().ends_with('Z'));
    let r = shim.call_tool(
        "execute",
        json!({"session_id": id, "command": "echo still here"}),
    );
    assert_eq!(r.expect_ok()["stdout"], "still here\n");
    assert_eq!(
        w.env.daemon_pid(),
        Some(daemon_pid),
        "the same daemon serves the new shim"
    );

    let out = run_cli(&w.env, &["status", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["pid"], daemon_pid);
    assert_eq!(status["sessions"][0]["session_id"], id);
    for key in ["version", "proto_version", "uptime_s", "socket", "log_path"] {
        assert!(
            status.get(key).is_some(),
            "status --json lacks {key}: {status}"
        );
    }
    let out = run_cli(&w.env, &["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&id) && table.contains("root@127.0.0.1"),
        "{table}"
    );

    let r = shim.call_tool("disconnect", json!({"session_id": id}));
    assert!(r.expect_ok()["status"].as_str().unwrap().contains(&id));
    let list = shim.call_tool("list_sessions", json!({}));
    assert_eq!(list.expect_ok()["sessions"], json!([]));
    let r = shim.call_tool("execute", json!({"session_id": id, "command": "true"}));
    assert!(r.is_error);
}

#[test]
fn connect_errors_are_actionable() {
    let mut w = World::new();
    let r = w.shim.call_tool(
        "connect",
        json!({"hostname": "127.0.0.1", "port": w.sshd.port(), "username": "root"}),
    );
    assert!(r.is_error);
    assert!(
        r.text.contains("password") && r.text.contains("private_key"),
        "{}",
        r.text
    );
    let r = w.shim.call_tool(
        "connect",
        json!({"hostname": "127.0.0.1", "port": w.sshd.port(), "username": "root",
               "private_key": "/nonexistent/key"}),
    );
    assert!(r.is_error);
    assert!(r.text.contains("/nonexistent/key"), "{}", r.text);
    // A closed port: nothing listens on the sshd's port once it is gone.
    let port = w.sshd.port();
    drop(std::mem::replace(&mut w.sshd, Sshd::start()));
    let r = w.shim.call_tool(
        "connect",
        json!({"hostname": "127.0.0.1", "port": port, "username": "root",
               "private_key": w.sshd.client_key()}),
    );
    assert!(r.is_error);
    assert!(r.text.contains(&port.to_string()), "{}", r.text);
}

#[test]
fn shims_starting_at_once_share_one_daemon() {
    let env = Env::new();
    let pids: Vec<u32> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut shim = Shim::spawn(&env);
                    shim.initialize();
                    let r = shim.call_tool("list_sessions", json!({}));
                    assert_eq!(r.expect_ok()["sessions"], json!([]));
                    env.daemon_pid().expect("a daemon answers")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        pids.windows(2).all(|w| w[0] == w[1]),
        "one daemon for all: {pids:?}"
    );
    let out = run_cli(&env, &["status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["pid"], pids[0]);
}

/// Two calls on one session run at once: the first waits for a file only the
/// second creates, so run one after the other it would time out.
#[test]
fn executes_on_one_session_run_concurrently() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let flag = w.env.dir().join("flag");
    let waiter = format!(
        "while [ ! -e {0} ]; do sleep 0.05; done; echo saw it",
        flag.display()
    );
    let maker = format!("touch {}", flag.display());
    let env = &w.env;
    let results: Vec<Value> = std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            let mut shim = Shim::spawn(env);
            shim.initialize();
            shim.call_tool(
                "execute",
                json!({"session_id": id, "command": waiter, "timeout": 30}),
            )
            .expect_ok()
            .clone()
        });
        let making = scope.spawn(|| {
            let mut shim = Shim::spawn(env);
            shim.initialize();
            // Start the maker only once the waiter's shell is running.
            wait_until(
                Duration::from_secs(20),
                "the waiting command to start",
                || {
                    !processes_with(&format!("[ ! -e {}", flag.display())).is_empty()
                        || !processes_with("sleep 0.05").is_empty()
                },
            )
            .unwrap();
            shim.call_tool("execute", json!({"session_id": id, "command": maker}))
                .expect_ok()
                .clone()
        });
        vec![waiting.join().unwrap(), making.join().unwrap()]
    });
    assert_eq!(results[0]["timed_out"], false, "{:?}", results[0]);
    assert_eq!(results[0]["stdout"], "saw it\n");
    assert_eq!(results[1]["exit_status"], 0);
}
