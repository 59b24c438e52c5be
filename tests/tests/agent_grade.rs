//! Execute and transfer as an agent needs them: bounded output with the rest
//! saved to a file, cwd/env/pty, progress, cancellation that leaves nothing
//! running, large files in bounded memory, and directory trees.

use serde_json::{Value, json};
use sshmcp_tests::{
    Shim, TestUser, World, proc_status_kib, processes_with, random_file, sha256_file, wait_until,
};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn unique_sleep() -> String {
    format!(
        "sleep {}.{:06}",
        5000 + rand::random::<u32>() % 4000,
        rand::random::<u32>() % 1_000_000
    )
}

#[test]
fn a_gigabyte_of_output_returns_head_tail_and_a_file_in_bounded_memory() {
    let mut w = World::new();
    w.shim.set_timeout(Duration::from_secs(300));
    let id = w.connect_as("root");
    let pid = w.daemon_pid();
    let before = proc_status_kib(pid, "VmRSS");
    let r = w.execute(&id, json!({"command": "yes | head -c 1073741824"}));
    let peak = proc_status_kib(pid, "VmHWM");
    assert_eq!(r["stdout_bytes"], 1u64 << 30);
    assert_eq!(r["truncated"], true);
    assert_eq!(r["stdout_truncated"], true);
    let stdout = r["stdout"].as_str().unwrap();
    assert!(
        stdout.len() < 40 * 1024,
        "inline output is {} bytes",
        stdout.len()
    );
    assert!(
        stdout.starts_with("y\ny\n") && stdout.ends_with("y\ny\n"),
        "{}",
        &stdout[..64]
    );
    assert!(stdout.contains("bytes omitted of 1073741824"), "no marker");
    let file = r["stdout_file"].as_str().expect("the full output is saved");
    assert!(stdout.contains(file), "the marker names the file");
    assert_eq!(std::fs::metadata(file).unwrap().len(), 1u64 << 30);
    assert!(
        peak.saturating_sub(before) < 100 * 1024,
        "daemon RSS grew from {before} KiB to a peak of {peak} KiB"
    );
}

#[test]
fn output_over_the_cap_keeps_head_and_tail_and_the_file_has_it_all() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let r = w.execute(&id, json!({"command": "seq 1 100000; echo err >&2"}));
    let expected = std::process::Command::new("seq")
        .args(["1", "100000"])
        .output()
        .unwrap();
    assert_eq!(r["stdout_bytes"], expected.stdout.len());
    let stdout = r["stdout"].as_str().unwrap();
    assert!(stdout.starts_with("1\n2\n3\n"));
    assert!(stdout.ends_with("99999\n100000\n"));
    assert!(stdout.len() < 33 * 1024, "{} bytes inline", stdout.len());
    let file = r["stdout_file"].as_str().unwrap();
    assert_eq!(std::fs::read(file).unwrap(), expected.stdout);
    // The short stream is whole and has no file.
    assert_eq!(r["stderr"], "err\n");
    assert_eq!(r["stderr_file"], Value::Null);
    assert_eq!(r["stderr_truncated"], false);

    let r = w.execute(
        &id,
        json!({"command": "seq 1 1000", "max_output_bytes": 100}),
    );
    let stdout = r["stdout"].as_str().unwrap();
    let marker = stdout.find("\n[...").unwrap();
    assert!(marker <= 50, "head longer than half the cap: {stdout}");
    assert!(stdout.ends_with("999\n1000\n"), "{stdout}");
}

#[test]
fn cwd_and_env_apply_to_one_command() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let r = w.execute(
        &id,
        json!({"command": "pwd; printf '%s\\n' \"$GREETING\"", "cwd": "/tmp",
               "env": {"GREETING": "it's a \"test\" $HOME"}}),
    );
    assert_eq!(r["stdout"], "/tmp\nit's a \"test\" $HOME\n");
    let r = w.execute(&id, json!({"command": "pwd", "cwd": "~"}));
    assert_eq!(r["stdout"], "/root\n");
    let r = w.execute(&id, json!({"command": "pwd; echo \"[$GREETING]\""}));
    assert_eq!(r["stdout"], "/root\n[]\n", "nothing carries over");
    let r = w.shim.call_tool(
        "execute",
        json!({"session_id": id, "command": "true", "env": {"BAD-NAME": "x"}}),
    );
    assert!(r.is_error && r.text.contains("BAD-NAME"), "{}", r.text);
    let r = w.execute(&id, json!({"command": "pwd", "cwd": "/no/such/dir"}));
    assert_eq!(r["exit_status"], 1);
    assert!(
        r["stderr"].as_str().unwrap().contains("/no/such/dir"),
        "{r}"
    );
}

fn pty_allocates_a_terminal(user: &str) {
    let mut w = World::new();
    let id = w.connect_as(user);
    let r = w.execute(&id, json!({"command": "tty", "pty": true}));
    assert!(
        r["stdout"].as_str().unwrap().starts_with("/dev/pts/"),
        "{r}"
    );
    assert_eq!(r["exit_status"], 0);
    let r = w.execute(&id, json!({"command": "tty"}));
    assert_eq!(r["stdout"], "not a tty\n");
}

#[test]
fn pty_allocates_a_terminal_for_root() {
    pty_allocates_a_terminal("root");
}

#[test]
fn pty_allocates_a_terminal_for_an_ordinary_user() {
    pty_allocates_a_terminal(TestUser::require().name());
}

#[test]
fn execute_reports_progress_when_asked() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let call = w.shim.send_request(
        "tools/call",
        json!({"name": "execute", "_meta": {"progressToken": "tok-1"},
               "arguments": {"session_id": id, "command": "echo start; sleep 2.5; echo done"}}),
    );
    let note = w.shim.wait_notification("a progress notification", |n| {
        n["method"] == "notifications/progress" && n["params"]["progressToken"] == "tok-1"
    });
    assert!(note["params"]["progress"].as_f64().unwrap() > 0.0, "{note}");
    assert!(
        note["params"]["message"]
            .as_str()
            .unwrap()
            .contains("bytes of output"),
        "{note}"
    );
    let result = w.shim.wait_response(call).unwrap();
    assert_eq!(result["structuredContent"]["stdout"], "start\ndone\n");
}

fn cancelling_stops_the_remote_command(user: &str) {
    let mut w = World::new();
    let id = w.connect_as(user);
    let marker = unique_sleep();
    let call = w.shim.send_request(
        "tools/call",
        json!({"name": "execute",
               "arguments": {"session_id": id, "command": format!("{marker} & {marker}")}}),
    );
    wait_until(Duration::from_secs(20), "the command to start", || {
        processes_with(&marker).len() >= 2
    })
    .unwrap();
    w.shim.notify(
        "notifications/cancelled",
        json!({"requestId": call, "reason": "the test cancels it"}),
    );
    wait_until(
        Duration::from_secs(15),
        "the cancelled command to go",
        || processes_with(&marker).is_empty(),
    )
    .unwrap_or_else(|e| panic!("{e}: still running {:?}", processes_with(&marker)));
    let r = w.execute(&id, json!({"command": "echo alive"}));
    assert_eq!(r["stdout"], "alive\n");
}

#[test]
fn cancelling_stops_the_remote_command_as_root() {
    cancelling_stops_the_remote_command("root");
}

#[test]
fn cancelling_stops_the_remote_command_as_an_ordinary_user() {
    cancelling_stops_the_remote_command(TestUser::require().name());
}

#[test]
fn a_shim_killed_mid_call_leaves_no_remote_process() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let marker = unique_sleep();
    let mut doomed = Shim::spawn(&w.env);
    doomed.initialize();
    doomed.send_request(
        "tools/call",
        json!({"name": "execute", "arguments": {"session_id": id, "command": marker}}),
    );
    wait_until(Duration::from_secs(20), "the command to start", || {
        !processes_with(&marker).is_empty()
    })
    .unwrap();
    drop(doomed);
    wait_until(
        Duration::from_secs(15),
        "the orphaned command to go",
        || processes_with(&marker).is_empty(),
    )
    .unwrap();
    let r = w.execute(&id, json!({"command": "echo alive"}));
    assert_eq!(r["stdout"], "alive\n");
}

#[test]
fn a_gigabyte_each_way_in_bounded_memory() {
    let mut w = World::new();
    w.shim.set_timeout(Duration::from_secs(300));
    let id = w.connect_as("root");
    let pid = w.daemon_pid();
    let local = w.env.dir().join("big.bin");
    let sum = random_file(&local, 1 << 30);
    let remote_dir = tempfile::tempdir().unwrap();
    let remote = remote_dir.path().join("big.bin");
    let before = proc_status_kib(pid, "VmRSS");
    let r = w.shim.call_tool(
        "upload",
        json!({"session_id": id, "local_path": local, "remote_path": remote}),
    );
    assert_eq!(r.expect_ok()["bytes_transferred"], 1u64 << 30);
    std::fs::remove_file(&local).unwrap();
    let back = w.env.dir().join("back.bin");
    let r = w.shim.call_tool(
        "download",
        json!({"session_id": id, "remote_path": remote, "local_path": back}),
    );
    assert_eq!(r.expect_ok()["bytes_transferred"], 1u64 << 30);
    let peak = proc_status_kib(pid, "VmHWM");
    assert_eq!(sha256_file(&remote), sum);
    assert_eq!(sha256_file(&back), sum);
    assert!(
        peak.saturating_sub(before) < 64 * 1024,
        "daemon RSS grew from {before} KiB to a peak of {peak} KiB"
    );
}

fn temp_files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".sshmcp-"))
        .collect()
}

#[test]
fn a_cancelled_upload_leaves_the_destination_untouched() {
    let mut w = World::new();
    let id = w.connect_as("root");
    // Sparse: reads as zeros at disk speed, so the upload lasts a few
    // seconds without a large file on disk.
    let local = w.env.dir().join("sparse.bin");
    std::fs::File::create(&local)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let remote_dir = tempfile::tempdir().unwrap();
    let remote = remote_dir.path().join("target.bin");
    std::fs::write(&remote, "the old contents").unwrap();
    let call = w.shim.send_request(
        "tools/call",
        json!({"name": "upload", "_meta": {"progressToken": 7},
               "arguments": {"session_id": id, "local_path": local, "remote_path": remote}}),
    );
    let note = w.shim.wait_notification("upload progress", |n| {
        n["method"] == "notifications/progress" && n["params"]["progressToken"] == 7
    });
    assert_eq!(
        note["params"]["total"].as_f64(),
        Some((4u64 << 30) as f64),
        "{note}"
    );
    w.shim
        .notify("notifications/cancelled", json!({"requestId": call}));
    wait_until(
        Duration::from_secs(20),
        "the temporary file to be removed",
        || temp_files_in(remote_dir.path()).is_empty(),
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(&remote).unwrap(),
        "the old contents"
    );
    // The daemon answers the next call on the same session.
    let r = w.execute(&id, json!({"command": "echo alive"}));
    assert_eq!(r["stdout"], "alive\n");
    assert!(temp_files_in(remote_dir.path()).is_empty());
}

/// Builds a tree with a subdirectory, an executable, a symlink, an empty
/// directory and a name that is not UTF-8.
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::create_dir(root.join("empty")).unwrap();
    std::fs::write(root.join("sub/deeper/data.txt"), "data\n").unwrap();
    std::fs::write(root.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("sub/deeper/data.txt", root.join("link")).unwrap();
    let bad = std::ffi::OsStr::from_bytes(b"bad-\xff-name");
    std::fs::write(root.join(bad), "skipped").unwrap();
}

/// Every entry under `root` (but non-UTF-8 names) as (path, kind, mode,
/// contents or link target).
fn describe(root: &Path) -> Vec<(String, String, u32, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let Some(rel) = path.strip_prefix(root).unwrap().to_str().map(String::from) else {
                continue;
            };
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.push((rel, "link".into(), 0, target.display().to_string()));
            } else if meta.is_dir() {
                out.push((rel, "dir".into(), mode, String::new()));
                stack.push(path);
            } else {
                out.push((
                    rel,
                    "file".into(),
                    mode,
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_directory_tree_goes_up_and_comes_back_identical() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let local = w.env.dir().join("tree");
    make_tree(&local);
    let remote_parent = tempfile::tempdir().unwrap();
    let remote = remote_parent.path().join("copy");
    let r = w.shim.call_tool(
        "upload",
        json!({"session_id": id, "local_path": local, "remote_path": remote, "recursive": true}),
    );
    let v = r.expect_ok();
    assert_eq!(v["files"], 2, "{v}");
    assert_eq!(v["skipped"].as_array().unwrap().len(), 1, "{v}");
    assert!(
        v["skipped"][0]
            .as_str()
            .unwrap()
            .contains("not valid UTF-8"),
        "{v}"
    );
    assert_eq!(describe(&remote), describe(&local));

    // A remote name that is not UTF-8 is reported, not mangled.
    let bad = std::ffi::OsStr::from_bytes(b"remote-\xfe-name");
    std::fs::write(remote.join(bad), "skipped").unwrap();
    let back = w.env.dir().join("back");
    let r = w.shim.call_tool(
        "download",
        json!({"session_id": id, "remote_path": remote, "local_path": back, "recursive": true}),
    );
    let v = r.expect_ok();
    assert_eq!(v["files"], 2, "{v}");
    assert_eq!(v["skipped"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(describe(&back), describe(&local));

    // Without recursive, a directory is refused with advice.
    let r = w.shim.call_tool(
        "upload",
        json!({"session_id": id, "local_path": local, "remote_path": remote}),
    );
    assert!(r.is_error && r.text.contains("recursive"), "{}", r.text);
}

#[test]
fn preserve_keeps_the_modification_time() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let local = w.env.dir().join("old.txt");
    std::fs::write(&local, "old\n").unwrap();
    let then = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(&local)
        .unwrap()
        .set_modified(then)
        .unwrap();
    let remote_dir = tempfile::tempdir().unwrap();
    let remote = remote_dir.path().join("old.txt");
    let r = w.shim.call_tool(
        "upload",
        json!({"session_id": id, "local_path": local, "remote_path": remote, "preserve": true}),
    );
    r.expect_ok();
    assert_eq!(
        std::fs::metadata(&remote).unwrap().modified().unwrap(),
        then
    );
    let back = w.env.dir().join("back.txt");
    let r = w.shim.call_tool(
        "download",
        json!({"session_id": id, "remote_path": remote, "local_path": back, "preserve": true}),
    );
    r.expect_ok();
    assert_eq!(std::fs::metadata(&back).unwrap().modified().unwrap(), then);
    // Without preserve the copy is new.
    let r = w.shim.call_tool(
        "upload",
        json!({"session_id": id, "local_path": local, "remote_path": remote_dir.path().join("new.txt")}),
    );
    r.expect_ok();
    let fresh = std::fs::metadata(remote_dir.path().join("new.txt"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(fresh > SystemTime::now() - Duration::from_secs(600));
}

#[test]
fn tilde_paths_mean_the_remote_home() {
    let mut w = World::new();
    let id = w.connect_as("root");
    let name = format!("sshmcp-tilde-{}.txt", rand::random::<u32>());
    let local = w.env.dir().join("t.txt");
    std::fs::write(&local, "tilde\n").unwrap();
    let r = w.shim.call_tool(
        "upload",
        json!({"session_id": id, "local_path": local, "remote_path": format!("~/{name}")}),
    );
    r.expect_ok();
    let placed = Path::new("/root").join(&name);
    assert_eq!(std::fs::read_to_string(&placed).unwrap(), "tilde\n");
    std::fs::remove_file(placed).unwrap();
}

#[test]
fn the_configured_default_and_maximum_timeouts_apply_and_say_so() {
    let sshd = sshmcp_tests::Sshd::start();
    let env = sshmcp_tests::Env::new();
    let config = env.dir().join("config/sshmcp");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.toml"),
        "default_timeout = 1\nmax_timeout = 2\n",
    )
    .unwrap();
    let mut shim = Shim::spawn(&env);
    shim.initialize();
    let r = shim.call_tool(
        "connect",
        json!({"hostname": "127.0.0.1", "port": sshd.port(), "username": "root",
               "private_key": sshd.client_key()}),
    );
    let id = r.expect_ok()["session_id"].as_str().unwrap().to_owned();
    let r = shim.call_tool("execute", json!({"session_id": id, "command": "sleep 30"}));
    let v = r.expect_ok();
    assert_eq!(v["timed_out"], true, "{v}");
    assert_eq!(v["timeout_source"], "default_timeout", "{v}");
    assert_eq!(v["timeout_seconds"], 1.0, "{v}");
    let r = shim.call_tool(
        "execute",
        json!({"session_id": id, "command": "sleep 30", "timeout": 600}),
    );
    let v = r.expect_ok();
    assert_eq!(v["timeout_source"], "max_timeout", "{v}");
    let r = shim.call_tool(
        "execute",
        json!({"session_id": id, "command": "echo quick", "timeout": 1}),
    );
    let v = r.expect_ok();
    assert_eq!(
        (v["timed_out"].clone(), v["timeout_source"].clone()),
        (json!(false), Value::Null)
    );
}
