//! The daemon's socket against hostile or confused peers: garbage, truncated
//! and oversize frames, other protocol versions, other users. None of it may
//! take the daemon down.

use sshmcp_proto::{
    Client, ClientError, ErrorKind, Hello, HelloReply, HelloStatus, PROTOCOL_VERSION, ProtoError,
    Request, Response, ServerMessage, read_message,
};
use sshmcp_tests::{Daemon, Env, bin_path, run_cli};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

async fn handshaken(socket: &Path) -> UnixStream {
    let mut stream = UnixStream::connect(socket)
        .await
        .expect("connect to the daemon");
    Hello::current("sshmcp-tests")
        .write(&mut stream)
        .await
        .unwrap();
    let reply = HelloReply::read(&mut stream).await.unwrap();
    assert_eq!(reply.status, HelloStatus::Accepted);
    stream
}

/// The daemon still answers a well-formed client.
async fn assert_still_serving(socket: &Path) {
    let stream = UnixStream::connect(socket)
        .await
        .expect("daemon still accepting");
    let client = Client::handshake(stream, "sshmcp-tests").await.unwrap();
    match client.call(Request::ListSessions).await.unwrap() {
        Response::Sessions(s) => assert!(s.is_empty()),
        other => panic!("unexpected answer {other:?}"),
    }
}

/// Reads until the daemon closes the connection, returning what it sent. A
/// reset counts as a close: the kernel resets when the daemon closes with
/// our garbage still unread.
async fn read_to_close(stream: &mut UnixStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut buf))
        .await
        .expect("the daemon should close the connection");
    match read {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("reading until close failed: {e}"),
    }
    buf
}

#[tokio::test]
async fn garbage_before_the_hello_is_dropped() {
    let env = Env::new();
    let _daemon = Daemon::start(&env);
    let mut stream = UnixStream::connect(env.socket()).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut stream).await;
    assert!(
        answer.is_empty(),
        "no answer to a non-sshmcp peer: {answer:?}"
    );
    assert_still_serving(&env.socket()).await;
    assert!(
        env.daemon_log().contains("bad hello"),
        "{}",
        env.daemon_log()
    );
}

#[tokio::test]
async fn an_undecodable_frame_gets_an_error_and_a_close() {
    let env = Env::new();
    let _daemon = Daemon::start(&env);
    let mut stream = handshaken(&env.socket()).await;
    sshmcp_proto::write_frame(&mut stream, &[0xff; 40])
        .await
        .unwrap();
    let msg: ServerMessage = read_message(&mut stream)
        .await
        .unwrap()
        .expect("an error frame");
    match msg.response {
        Response::Error(e) => {
            assert_eq!(e.kind, ErrorKind::BadRequest);
            assert!(e.message.contains("bad frame"), "{}", e.message);
        }
        other => panic!("expected an error, got {other:?}"),
    }
    read_to_close(&mut stream).await;
    assert_still_serving(&env.socket()).await;
}

#[tokio::test]
async fn a_truncated_frame_is_survived() {
    let env = Env::new();
    let _daemon = Daemon::start(&env);
    let mut stream = handshaken(&env.socket()).await;
    stream.write_all(&100u32.to_le_bytes()).await.unwrap();
    stream.write_all(&[1, 2, 3]).await.unwrap();
    drop(stream);
    assert_still_serving(&env.socket()).await;
}

#[tokio::test]
async fn an_oversize_length_is_refused() {
    let env = Env::new();
    let _daemon = Daemon::start(&env);
    let mut stream = handshaken(&env.socket()).await;
    stream.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
    let msg: ServerMessage = read_message(&mut stream)
        .await
        .unwrap()
        .expect("an error frame");
    match msg.response {
        Response::Error(e) => assert!(e.message.contains("larger than"), "{}", e.message),
        other => panic!("expected an error, got {other:?}"),
    }
    read_to_close(&mut stream).await;
    assert_still_serving(&env.socket()).await;
}

#[tokio::test]
async fn a_newer_protocol_version_gets_the_mismatch_answer() {
    let env = Env::new();
    let _daemon = Daemon::start(&env);
    let mut stream = UnixStream::connect(env.socket()).await.unwrap();
    Hello {
        proto_version: PROTOCOL_VERSION + 1,
        software: "sshmcp-shim 99.0.0".into(),
    }
    .write(&mut stream)
    .await
    .unwrap();
    let reply = HelloReply::read(&mut stream).await.unwrap();
    assert_eq!(reply.status, HelloStatus::VersionMismatch);
    assert_eq!(reply.proto_version, PROTOCOL_VERSION);
    assert!(reply.software.starts_with("sshmcpd "), "{}", reply.software);
    assert!(read_to_close(&mut stream).await.is_empty());
    assert_still_serving(&env.socket()).await;
}

#[tokio::test]
async fn a_client_of_another_version_reads_a_typed_mismatch() {
    // A fake daemon of protocol version 2 on a socket of its own.
    let env = Env::new();
    let listener = tokio::net::UnixListener::bind(env.socket()).unwrap();
    let fake = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        Hello::read(&mut s).await.unwrap();
        HelloReply {
            proto_version: PROTOCOL_VERSION + 1,
            status: HelloStatus::VersionMismatch,
            software: "sshmcpd 9.9.9".into(),
        }
        .write(&mut s)
        .await
        .unwrap();
    });
    let stream = UnixStream::connect(env.socket()).await.unwrap();
    match Client::handshake(stream, "sshmcp-tests").await {
        Err(ClientError::Proto(ProtoError::VersionMismatch {
            ours,
            theirs,
            peer_software,
        })) => {
            assert_eq!((ours, theirs), (PROTOCOL_VERSION, PROTOCOL_VERSION + 1));
            assert_eq!(peer_software, "sshmcpd 9.9.9");
        }
        Err(e) => panic!("expected a version mismatch, got {e}"),
        Ok(_) => panic!("expected a version mismatch, got a connection"),
    }
    fake.await.unwrap();
}

#[test]
fn status_and_stop_report_a_missing_daemon_with_exit_code_3() {
    let env = Env::new();
    for cmd in ["status", "stop"] {
        let out = run_cli(&env, &[cmd]);
        assert_eq!(out.status.code(), Some(3), "{cmd}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("not running"));
    }
}

#[test]
fn stop_shuts_the_daemon_down_and_removes_its_socket() {
    let env = Env::new();
    let mut daemon = Daemon::start(&env);
    let out = run_cli(&env, &["stop"]);
    assert!(out.status.success(), "{out:?}");
    let status = daemon.wait_exit(Duration::from_secs(10));
    assert!(
        status.success(),
        "the daemon should exit cleanly: {status:?}"
    );
    assert!(!env.socket().exists(), "the socket should be removed");
}

#[test]
fn a_second_daemon_on_the_same_socket_refuses_to_start() {
    let env = Env::new();
    let _daemon = Daemon::start(&env);
    let out = env
        .command(bin_path("sshmcpd"))
        .arg("serve")
        .output()
        .expect("run a second sshmcpd");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already serving"), "{err}");
    assert!(
        env.socket().exists(),
        "the running daemon's socket must stay"
    );
}

/// Runs `sshmcpd serve` in `env`, expects it to refuse to start, and
/// returns what it said.
fn serve_refused(env: &Env) -> String {
    let out = env
        .command(bin_path("sshmcpd"))
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(!env.socket().exists());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn socket_dir(env: &Env) -> std::path::PathBuf {
    env.socket().parent().unwrap().to_path_buf()
}

#[test]
fn a_socket_directory_writable_by_others_is_refused() {
    let env = Env::new();
    std::fs::set_permissions(socket_dir(&env), std::fs::Permissions::from_mode(0o777)).unwrap();
    let stderr = serve_refused(&env);
    assert!(stderr.contains("world-writable"), "{stderr}");
}

#[test]
fn a_socket_directory_writable_by_the_group_is_refused() {
    let env = Env::new();
    std::fs::set_permissions(socket_dir(&env), std::fs::Permissions::from_mode(0o770)).unwrap();
    let stderr = serve_refused(&env);
    assert!(
        stderr.contains("group- or world-writable (mode 770)"),
        "{stderr}"
    );
}

#[test]
fn a_socket_directory_owned_by_another_user_is_refused() {
    assert!(
        sshmcp_tests::is_root(),
        "this test needs root to give the socket directory to nobody; run the suite as root \
         (CI does)"
    );
    let env = Env::new();
    std::os::unix::fs::chown(socket_dir(&env), Some(65534), None).unwrap();
    let stderr = serve_refused(&env);
    assert!(
        stderr.contains("it belongs to uid 65534, not to you"),
        "{stderr}"
    );
}

/// The peer-uid check is the only barrier here: the daemon runs as `nobody`
/// and root (who passes every file permission) connects.
#[tokio::test]
async fn another_uid_is_refused_by_the_peer_check() {
    assert!(
        sshmcp_tests::is_root(),
        "this test needs root to run a daemon as nobody; run the suite as root (CI does)"
    );
    const NOBODY: u32 = 65534;
    let dir = tempfile::Builder::new()
        .prefix("sshmcp-nobody-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for sub in ["run", "state", "home"] {
        let p = dir.path().join(sub);
        std::fs::create_dir(&p).unwrap();
        std::os::unix::fs::chown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let socket = dir.path().join("run/sshmcpd.sock");
    let mut child = std::process::Command::new(bin_path("sshmcpd"))
        .arg("serve")
        .env_clear()
        .env("HOME", dir.path().join("home"))
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .env("SSHMCP_SOCKET", &socket)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sshmcpd as nobody");
    let log = dir.path().join("state/sshmcp/sshmcpd.log");
    let result = async {
        sshmcp_tests::wait_until(
            Duration::from_secs(10),
            "the nobody daemon to listen",
            || socket.exists(),
        )?;
        let mut stream = UnixStream::connect(&socket).await?;
        // The daemon closes the connection as soon as it has checked the
        // peer, which may be before the hello is even written.
        match Hello::current("sshmcp-tests").write(&mut stream).await {
            Err(ProtoError::Io(_)) => {}
            Err(e) => anyhow::bail!("writing the hello failed otherwise: {e}"),
            Ok(()) => match HelloReply::read(&mut stream).await {
                Err(ProtoError::Truncated) | Err(ProtoError::Io(_)) => {}
                other => anyhow::bail!("root was not refused: {other:?}"),
            },
        }
        sshmcp_tests::wait_until(Duration::from_secs(10), "the refusal in the log", || {
            std::fs::read_to_string(&log)
                .is_ok_and(|l| l.contains("refused a connection from another user"))
        })
    }
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    result.unwrap();
}
