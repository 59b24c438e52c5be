//! The sshd fixture, checked with the plain OpenSSH client: if these fail,
//! the daemon's end-to-end tests would fail for reasons that are not the
//! daemon's.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sshmcp_tests::{Sshd, SshdConfig, TestUser, current_user_name, wait_until};

/// Runs an ssh command and returns its stdout, failing with ssh's stderr
/// and the server's log.
fn run_ssh(sshd: &Sshd, cmd: &mut Command) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .stdin(Stdio::null())
        .output()
        .expect("run the OpenSSH client");
    assert!(
        status.success(),
        "ssh failed ({status}): {}\nsshd log:\n{}",
        String::from_utf8_lossy(&stderr),
        sshd.log()
    );
    String::from_utf8(stdout).expect("UTF-8 output")
}

/// The runner's own login (root in CI) with the fixture's client key, and
/// the fixture's log records the authentication.
#[test]
fn runner_logs_in_with_the_client_key() {
    let sshd = Sshd::start();
    let user = current_user_name();
    let out = run_ssh(&sshd, sshd.ssh_command(user).arg("echo hello"));
    assert_eq!(out, "hello\n");
    let accepted = format!("Accepted publickey for {user} from 127.0.0.1");
    wait_until(Duration::from_secs(10), &accepted, || {
        sshd.log().contains(&accepted)
    })
    .unwrap();
}

/// The ordinary test user reads the same `authorized_keys` from the
/// fixture's temp dir and lands in its own home.
#[test]
fn test_user_logs_in_with_the_client_key() {
    let user = TestUser::require();
    let sshd = Sshd::start();
    let out = run_ssh(
        &sshd,
        sshd.ssh_command(user.name()).arg("id -un; echo $HOME"),
    );
    assert_eq!(out, format!("{}\n{}\n", user.name(), user.home().display()));
}

/// Password logins work for the test user with the password this process
/// set. OpenSSH reads a password only from a terminal or `SSH_ASKPASS`, so
/// an askpass script hands it over.
#[test]
fn test_user_logs_in_with_its_password() {
    let user = TestUser::require();
    let sshd = Sshd::start();
    let askpass = sshd.dir().join("askpass");
    std::fs::write(&askpass, "#!/bin/sh\nprintf '%s\\n' \"$TEST_PASSWORD\"\n").unwrap();
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut cmd = Command::new("ssh");
    // ssh keeps the first value of each option, so these come before the
    // host and override nothing else.
    cmd.args(["-F", "/dev/null", "-p"])
        .arg(sshd.port().to_string())
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            sshd.known_hosts_path().display()
        ))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-l",
            user.name(),
            sshd.host(),
            "id -un",
        ])
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("TEST_PASSWORD", user.password());
    assert_eq!(run_ssh(&sshd, &mut cmd), format!("{}\n", user.name()));
    let accepted = format!("Accepted password for {} from 127.0.0.1", user.name());
    wait_until(Duration::from_secs(10), &accepted, || {
        sshd.log().contains(&accepted)
    })
    .unwrap();
}

/// Fixtures running side by side share nothing a test could trip over.
#[test]
fn two_fixtures_have_distinct_ports_and_host_keys() {
    let a = Sshd::start();
    let b = Sshd::start();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.host_key_fingerprint(), b.host_key_fingerprint());
    for sshd in [&a, &b] {
        assert!(
            sshd.host_key_fingerprint().starts_with("SHA256:"),
            "{}",
            sshd.host_key_fingerprint()
        );
        let prefix = format!("[127.0.0.1]:{} ssh-ed25519 AAAA", sshd.port());
        assert!(
            sshd.known_hosts_line().starts_with(&prefix),
            "{}",
            sshd.known_hosts_line()
        );
    }
}

/// What sshd actually runs with (`sshd -T`): loopback only, and an override
/// replaces the default instead of losing to it.
#[test]
fn sshd_listens_on_loopback_only_and_honours_overrides() {
    let sshd = SshdConfig::new().set("MaxSessions", "3").start();
    let out = Command::new("/usr/sbin/sshd")
        .arg("-T")
        .arg("-f")
        .arg(sshd.config_path())
        .output()
        .expect("run sshd -T");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let effective = String::from_utf8(out.stdout).unwrap();
    let listen: Vec<&str> = effective
        .lines()
        .filter(|l| l.starts_with("listenaddress "))
        .collect();
    assert_eq!(listen, [format!("listenaddress 127.0.0.1:{}", sshd.port())]);
    assert!(
        effective.lines().any(|l| l == "maxsessions 3"),
        "{effective}"
    );
    assert!(
        effective.lines().any(|l| l == "passwordauthentication yes"),
        "{effective}"
    );
}
