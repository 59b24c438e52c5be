//! Exact bytes of a sample of every message variant and of the hello.
//!
//! These tests exist to fail. If one does, the wire format changed: either
//! the change was an accident (undo it), or it was meant, and then it is a
//! wire break that MUST bump `PROTOCOL_VERSION` before the new bytes are
//! pasted here. (Appending a variant at the end of an enum is the one change
//! that keeps every pinned byte here valid.)
//!
//! The hello bytes are different: their layout is frozen forever, whatever
//! the protocol version, so a failure there is always a bug.
//!
//! Layout reminders (bincode 2, standard config, varint): an integer below
//! 251 is one byte; 251..=65535 is `fb` + u16 LE; up to u32 is `fc` + u32 LE;
//! up to u64 is `fd` + u64 LE. Strings and `Vec`s are a varint length then
//! the elements; `Option` is `00` or `01` + value; an enum is its variant
//! position as a varint, then its fields; `u8` and `bool` are one raw byte.

mod common;

use common::{hex, unhex};
use sshmcp_proto::{
    ClientMessage, ConnectRequest, ConnectResult, DaemonStatus, Deadline, DeadlineSource,
    ErrorBody, ErrorKind, ExecuteRequest, ExecuteResult, HELLO_MAGIC, Hello, HelloReply,
    HelloStatus, HostKeyApproval, Needs, PROTOCOL_VERSION, Progress, Request, Response, Secret,
    SecretKind, SecretPage, SecretPrompt, ServerMessage, SessionInfo, SessionState, StreamOutput,
    TransferRequest, TransferResult, UnknownHostKey, decode, encode, write_message,
};

fn assert_client_bytes(msg: ClientMessage, pinned: &str) {
    let want = unhex(pinned);
    assert_eq!(
        hex(&encode(&msg).unwrap()),
        hex(&want),
        "encoding of {msg:?} changed: a wire break, bump PROTOCOL_VERSION"
    );
    assert_eq!(decode::<ClientMessage>(&want).unwrap(), msg);
}

fn assert_server_bytes(msg: ServerMessage, pinned: &str) {
    let want = unhex(pinned);
    assert_eq!(
        hex(&encode(&msg).unwrap()),
        hex(&want),
        "encoding of {msg:?} changed: a wire break, bump PROTOCOL_VERSION"
    );
    assert_eq!(decode::<ServerMessage>(&want).unwrap(), msg);
}

#[test]
fn pins_are_for_this_protocol_version() {
    // The bytes below are protocol version 4's. A bump re-pins them (and
    // updates this number); changing them without a bump is the wire break
    // this file exists to catch.
    assert_eq!(PROTOCOL_VERSION, 4);
}

#[test]
fn pinned_list_sessions() {
    // A change here is a wire break that must bump PROTOCOL_VERSION.
    assert_client_bytes(
        ClientMessage {
            id: 1,
            request: Request::ListSessions,
            progress: false,
        },
        "01 02 00", // id 1 | variant 2 (ListSessions) | progress false
    );
    assert_client_bytes(
        ClientMessage {
            id: 1,
            request: Request::ListSessions,
            progress: true,
        },
        "01 02 01", // the progress flag is the message's last byte
    );
}

#[tokio::test]
async fn pinned_list_sessions_frame() {
    // A change here is a wire break that must bump PROTOCOL_VERSION.
    let mut wire = Vec::new();
    let msg = ClientMessage {
        id: 1,
        request: Request::ListSessions,
        progress: false,
    };
    write_message(&mut wire, &msg).await.unwrap();
    // u32 LE length 3 | payload
    assert_eq!(hex(&wire), hex(&unhex("03000000 010200")));
}

#[test]
fn pinned_execute_with_every_field_set() {
    // A change here is a wire break that must bump PROTOCOL_VERSION.
    assert_client_bytes(
        ClientMessage {
            id: 7,
            request: Request::Execute(ExecuteRequest {
                session_id: "s1".into(),
                command: "cat".into(),
                stdin: Some(b"hi\n".to_vec()),
                timeout_ms: Some(30_000),
                cwd: Some("~/s".into()),
                env: vec![("A".into(), "1".into())],
                pty: true,
                max_output_bytes: Some(65_536),
            }),
            progress: true,
        },
        "07               # id
         03               # Execute
         02 7331          # session_id \"s1\"
         03 636174        # command \"cat\"
         01 03 68690a     # stdin Some(b\"hi\\n\")
         01 fb 3075       # timeout_ms Some(30000)
         01 03 7e2f73     # cwd Some(\"~/s\")
         01 0141 0131     # env: 1 pair (\"A\", \"1\")
         01               # pty
         01 fc 00000100   # max_output_bytes Some(65536)
         01               # progress",
    );
}

#[test]
fn pinned_connect_with_every_field_set() {
    // A change here is a wire break that must bump PROTOCOL_VERSION.
    assert_client_bytes(
        ClientMessage {
            id: 2,
            request: Request::Connect(ConnectRequest {
                hostname: "build".into(),
                username: Some("deploy".into()),
                port: Some(2222),
                password: Some(Secret::new("pw".into())),
                private_key: Some("/k".into()),
                passphrase: Some(Secret::new("pp".into())),
                jump: Some("admin@bastion:2222,10.0.0.5".into()),
                agent_socket: Some("/a".into()),
                secret_ref: Some("r".into()),
                approved_host_keys: vec![HostKeyApproval {
                    host: "h".into(),
                    fingerprint: "SHA256:f".into(),
                }],
            }),
            progress: false,
        },
        "02                 # id
         00                 # Connect
         05 6275696c64      # hostname \"build\"
         01 06 6465706c6f79 # username Some(\"deploy\")
         01 fb ae08         # port Some(2222) (fb + u16)
         01 02 7077         # password Some(\"pw\"): a Secret is its string
         01 02 2f6b         # private_key Some(\"/k\")
         01 02 7070         # passphrase Some(\"pp\")
         01 1b              # jump Some(27 bytes:
            61646d696e4062617374696f6e3a323232322c31302e302e302e35
                            #   \"admin@bastion:2222,10.0.0.5\")
         01 02 2f61         # agent_socket Some(\"/a\")
         01 01 72           # secret_ref Some(\"r\")
         01 01 68 08 5348413235363a66
                            # approved_host_keys: 1 (\"h\", \"SHA256:f\")
         00                 # progress",
    );
}

#[test]
fn pinned_connect_from_ssh_config() {
    // A change here is a wire break that must bump PROTOCOL_VERSION.
    assert_client_bytes(
        ClientMessage {
            id: 2,
            request: Request::Connect(ConnectRequest {
                hostname: "build".into(),
                username: None,
                port: None,
                password: None,
                private_key: None,
                passphrase: None,
                jump: None,
                agent_socket: None,
                secret_ref: None,
                approved_host_keys: Vec::new(),
            }),
            progress: false,
        },
        // id | Connect | hostname "build" | username, port, password,
        // private_key, passphrase, jump, agent_socket, secret_ref: all None |
        // approved_host_keys empty | progress
        "02 00 05 6275696c64 00 00 00 00 00 00 00 00 00 00",
    );
}

#[test]
fn pinned_cancel() {
    // A change here is a wire break that must bump PROTOCOL_VERSION.
    assert_client_bytes(
        ClientMessage {
            id: 9,
            request: Request::Cancel { id: 7 },
            progress: false,
        },
        "09 08 07 00", // id | Cancel | the cancelled call's id | progress
    );
    assert_client_bytes(
        ClientMessage {
            id: 300,
            request: Request::Cancel { id: 65_536 },
            progress: false,
        },
        // id 300 (fb + u16) | Cancel | id 65536 (fc + u32) | progress
        "fb2c01 08 fc00000100 00",
    );
}

#[test]
fn pinned_every_request_variant() {
    // A change here is a wire break that must bump PROTOCOL_VERSION.
    let cases = [
        (
            ClientMessage {
                id: 2,
                request: Request::Connect(ConnectRequest {
                    hostname: "h".into(),
                    username: Some("u".into()),
                    port: Some(22),
                    password: Some(Secret::new("pw".into())),
                    private_key: Some("/k".into()),
                    passphrase: None,
                    jump: Some("j".into()),
                    agent_socket: None,
                    secret_ref: None,
                    approved_host_keys: Vec::new(),
                }),
                progress: false,
            },
            // id | Connect | "h" | Some("u") | Some(22) | Some("pw") |
            // Some("/k") | passphrase None | Some("j") | agent_socket None |
            // secret_ref None | approved_host_keys empty | progress
            "02 00 0168 010175 0116 01027077 01022f6b 00 01016a 00 00 00 00",
        ),
        (
            ClientMessage {
                id: 2,
                request: Request::Connect(ConnectRequest {
                    hostname: "h".into(),
                    username: None,
                    port: None,
                    password: None,
                    private_key: Some("/k".into()),
                    passphrase: Some(Secret::new("pp".into())),
                    jump: None,
                    agent_socket: Some("/a".into()),
                    secret_ref: None,
                    approved_host_keys: Vec::new(),
                }),
                progress: false,
            },
            // The Options set and unset are the other way round from the
            // case above, so any two of them swapping places shows.
            "02 00 0168 00 00 00 01022f6b 01027070 00 01022f61 00 00 00",
        ),
        (
            ClientMessage {
                id: 3,
                request: Request::Disconnect {
                    session_id: "s1".into(),
                },
                progress: false,
            },
            "03 01 027331 00",
        ),
        (
            ClientMessage {
                id: 1,
                request: Request::ListSessions,
                progress: false,
            },
            "01 02 00",
        ),
        (
            ClientMessage {
                id: 7,
                request: Request::Execute(ExecuteRequest {
                    session_id: "s1".into(),
                    command: "cat".into(),
                    stdin: None,
                    timeout_ms: None,
                    cwd: None,
                    env: vec![],
                    pty: false,
                    max_output_bytes: None,
                }),
                progress: false,
            },
            // id | Execute | session_id | command | stdin | timeout_ms |
            // cwd | env (0 pairs) | pty | max_output_bytes | progress
            "07 03 027331 03636174 00 00 00 00 00 00 00",
        ),
        (
            ClientMessage {
                id: 4,
                request: Request::Upload(TransferRequest {
                    session_id: "s1".into(),
                    local_path: "/l".into(),
                    remote_path: "/r".into(),
                    recursive: false,
                    preserve: true,
                }),
                progress: false,
            },
            // id | Upload | session_id | local_path | remote_path |
            // recursive | preserve | progress
            "04 04 027331 022f6c 022f72 00 01 00",
        ),
        (
            ClientMessage {
                id: 5,
                request: Request::Download(TransferRequest {
                    session_id: "s1".into(),
                    local_path: "/l".into(),
                    remote_path: "/r".into(),
                    recursive: true,
                    preserve: false,
                }),
                progress: true,
            },
            // The flags differ from the upload's so that any two of them
            // swapping places shows.
            "05 05 027331 022f6c 022f72 01 00 01",
        ),
        (
            ClientMessage {
                id: 6,
                request: Request::Status,
                progress: false,
            },
            "06 06 00",
        ),
        (
            ClientMessage {
                id: 251,
                request: Request::Shutdown,
                progress: false,
            },
            // id 251 is the first two-byte varint: fb + u16 LE
            "fbfb00 07 00",
        ),
        (
            ClientMessage {
                id: 9,
                request: Request::Cancel { id: 7 },
                progress: false,
            },
            "09 08 07 00",
        ),
        (
            ClientMessage {
                id: 1,
                request: Request::OpenSecretPage(SecretPrompt {
                    kind: SecretKind::Password,
                    host: "h".into(),
                    username: "u".into(),
                    key_path: None,
                }),
                progress: false,
            },
            // id | OpenSecretPage | Password | "h" | "u" | key_path None |
            // progress
            "01 09 00 0168 0175 00 00",
        ),
        (
            ClientMessage {
                id: 1,
                request: Request::AwaitSecret { id: "i".into() },
                progress: false,
            },
            "01 0a 0169 00",
        ),
    ];
    for (msg, pinned) in cases {
        assert_client_bytes(msg, pinned);
    }
}

#[test]
fn pinned_unknown_session_error() {
    // A change here is a wire break that must bump PROTOCOL_VERSION.
    assert_server_bytes(
        ServerMessage {
            id: 300,
            response: Response::Error(ErrorBody::new(ErrorKind::UnknownSession, "no session s9")),
        },
        // id 300 (fb + u16) | Error | UnknownSession | message | needs None
        "fb2c01 07 01 0d 6e6f2073657373696f6e207339 00",
    );
}

#[test]
fn pinned_cancelled_error() {
    // A change here is a wire break that must bump PROTOCOL_VERSION.
    assert_server_bytes(
        ServerMessage {
            id: 7,
            response: Response::Error(ErrorBody::new(ErrorKind::Cancelled, "cancelled")),
        },
        // id | Error | Cancelled (position 11) | message | needs None
        "07 07 0b 09 63616e63656c6c6564 00",
    );
}

#[test]
fn pinned_progress() {
    // A change here is a wire break that must bump PROTOCOL_VERSION.
    assert_server_bytes(
        ServerMessage {
            id: 7,
            response: Response::Progress(Progress {
                elapsed_ms: 1_500,
                done: 70_000,
                total: Some(250),
            }),
        },
        // id | Progress | elapsed_ms (fb + u16) | done (fc + u32) | total Some(250)
        "07 08 fbdc05 fc70110100 01fa",
    );
    assert_server_bytes(
        ServerMessage {
            id: 7,
            response: Response::Progress(Progress {
                elapsed_ms: 0,
                done: 0,
                total: None,
            }),
        },
        "07 08 00 00 00",
    );
}

#[test]
fn pinned_execute_result_with_truncated_streams() {
    // A change here is a wire break that must bump PROTOCOL_VERSION.
    assert_server_bytes(
        ServerMessage {
            id: 12,
            response: Response::Executed(ExecuteResult {
                stdout: StreamOutput {
                    head: b"ab".to_vec(),
                    tail: b"yz".to_vec(),
                    total_bytes: 100_000,
                    omitted_bytes: 99_996,
                    spill_path: Some("/sp".into()),
                    spill_truncated: false,
                },
                stderr: StreamOutput {
                    head: b"e".to_vec(),
                    tail: b"!".to_vec(),
                    total_bytes: 1 << 32,
                    omitted_bytes: (1 << 32) - 2,
                    spill_path: Some("/e".into()),
                    spill_truncated: true,
                },
                exit_status: None,
                signal: Some("KILL".into()),
                timed_out: true,
                deadline: Some(Deadline {
                    ms: 1_000,
                    source: DeadlineSource::Request,
                }),
                reconnected: false,
            }),
        },
        "0c 03                # id 12 | Executed
         02 6162              # stdout.head \"ab\"
         02 797a              # stdout.tail \"yz\"
         fc a0860100          # stdout.total_bytes 100000
         fc 9c860100          # stdout.omitted_bytes 99996
         01 03 2f7370         # stdout.spill_path Some(\"/sp\")
         00                   # stdout.spill_truncated
         01 65                # stderr.head \"e\"
         01 21                # stderr.tail \"!\"
         fd 0000000001000000  # stderr.total_bytes 2^32 (fd + u64)
         fc feffffff          # stderr.omitted_bytes 2^32 - 2
         01 02 2f65           # stderr.spill_path Some(\"/e\")
         01                   # stderr.spill_truncated
         00                   # exit_status None
         01 04 4b494c4c       # signal Some(\"KILL\")
         01                   # timed_out
         01 fbe803 00         # deadline Some(1000 ms, Request)
         00                   # reconnected",
    );
    // An empty stream is six zero bytes: two empty byte strings, two zero
    // counters, no spill file, not truncated.
    assert_eq!(
        hex(&encode(&StreamOutput::default()).unwrap()),
        "000000000000"
    );
}

#[test]
fn pinned_every_response_variant() {
    // A change here is a wire break that must bump PROTOCOL_VERSION.
    let info = |id: &str, state| SessionInfo {
        session_id: id.into(),
        hostname: "h".into(),
        username: "u".into(),
        port: 22,
        state,
        connected_at_ms: 1_700_000_000_000,
        last_used_at_ms: 1_700_000_060_000,
        alias: None,
        jump: None,
        commands_run: 0,
        bytes_moved: 0,
        last_error: None,
    };
    let whole = |bytes: &[u8]| StreamOutput {
        head: bytes.to_vec(),
        tail: vec![],
        total_bytes: bytes.len() as u64,
        omitted_bytes: 0,
        spill_path: None,
        spill_truncated: false,
    };
    let cases = [
        (
            ServerMessage {
                id: 1,
                response: Response::Connected(ConnectResult {
                    session_id: "s1".into(),
                    host_key_fingerprint: "SHA256:x".into(),
                    host_key_learned: true,
                    hostname: "h".into(),
                    username: "u".into(),
                    port: 22,
                    auth_method: "publickey".into(),
                }),
            },
            // id | Connected | session_id | fingerprint | learned |
            // hostname | username | port | auth_method
            "01 00 027331 085348413235363a78 01 0168 0175 16 097075626c69636b6579",
        ),
        (
            ServerMessage {
                id: 1,
                response: Response::Connected(ConnectResult {
                    session_id: "s1".into(),
                    host_key_fingerprint: "SHA256:x".into(),
                    host_key_learned: false,
                    hostname: "h".into(),
                    username: "u".into(),
                    port: 2222,
                    auth_method: "password".into(),
                }),
            },
            // port 2222 (fb + u16)
            "01 00 027331 085348413235363a78 00 0168 0175 fbae08 0870617373776f7264",
        ),
        (
            ServerMessage {
                id: 2,
                response: Response::Disconnected {
                    session_id: "s1".into(),
                },
            },
            "02 01 027331",
        ),
        (
            ServerMessage {
                id: 3,
                response: Response::Sessions(vec![
                    SessionInfo {
                        alias: Some("a".into()),
                        jump: Some("j".into()),
                        commands_run: 3,
                        bytes_moved: 70_000,
                        ..info("s1", SessionState::Connected)
                    },
                    SessionInfo {
                        commands_run: 300,
                        last_error: Some("e".into()),
                        ..info("s2", SessionState::Disconnected)
                    },
                ]),
            },
            // id | Sessions | 2 entries, each:
            //   session_id | hostname | username | port | state |
            //   connected_at_ms (fd + u64) | last_used_at_ms (fd + u64) |
            //   alias | jump | commands_run | bytes_moved | last_error
            "03 02 02
             027331 0168 0175 16 00 fd0068e5cf8b010000 fd6052e6cf8b010000
                    010161 01016a 03 fc70110100 00
             027332 0168 0175 16 01 fd0068e5cf8b010000 fd6052e6cf8b010000
                    00 00 fb2c01 00 010165",
        ),
        (
            ServerMessage {
                id: 4,
                response: Response::Executed(ExecuteResult {
                    stdout: whole(b"ok\n"),
                    stderr: StreamOutput::default(),
                    exit_status: Some(2),
                    signal: None,
                    timed_out: false,
                    deadline: None,
                    reconnected: true,
                }),
            },
            // id | Executed |
            // stdout: head | tail | total_bytes | omitted | spill_path | spill_truncated
            // stderr: the same, all empty |
            // exit Some(2) | signal None | timed_out |
            // deadline None | reconnected
            "04 03
             036f6b0a 00 03 00 00 00
             00 00 00 00 00 00
             0102 00 00
             00 01",
        ),
        (
            ServerMessage {
                id: 5,
                response: Response::Executed(ExecuteResult {
                    stdout: StreamOutput::default(),
                    stderr: whole(b"e"),
                    exit_status: None,
                    signal: Some("KILL".into()),
                    timed_out: true,
                    deadline: Some(Deadline {
                        ms: 5,
                        source: DeadlineSource::ConfigMax,
                    }),
                    reconnected: false,
                }),
            },
            // The streams and flags differ from the case above in a way
            // that catches any two of them swapping places.
            "05 03
             00 00 00 00 00 00
             0165 00 01 00 00 00
             00 01044b494c4c 01
             01 05 02 00",
        ),
        (
            ServerMessage {
                id: 6,
                response: Response::Transferred(TransferResult {
                    local_path: "/l".into(),
                    remote_path: "/r".into(),
                    bytes: 70_000,
                    replaced: true,
                    notes: vec!["n".into()],
                    files: 1,
                    skipped: vec![],
                    reconnected: false,
                }),
            },
            // id | Transferred | local | remote | bytes (fc + u32) | replaced |
            // notes | files | skipped | reconnected
            "06 04 022f6c 022f72 fc70110100 01 01016e 01 00 00",
        ),
        (
            ServerMessage {
                id: 6,
                response: Response::Transferred(TransferResult {
                    local_path: "/l".into(),
                    remote_path: "/r".into(),
                    bytes: 0,
                    replaced: false,
                    notes: vec![],
                    files: 300,
                    skipped: vec!["x".into()],
                    reconnected: true,
                }),
            },
            // A tree: files 300 (fb + u16) | skipped ["x"] | reconnected
            "06 04 022f6c 022f72 00 00 00 fb2c01 010178 01",
        ),
        (
            ServerMessage {
                id: 7,
                response: Response::Status(DaemonStatus {
                    pid: 4242,
                    version: "0.1.0".into(),
                    proto_version: 3,
                    uptime_s: 60,
                    socket: "/s".into(),
                    log_path: "/g".into(),
                    sessions: vec![],
                    socket_activated: true,
                }),
            },
            // id | Status | pid | version | proto_version | uptime_s |
            // socket | log_path | sessions | socket_activated
            "07 05 fb9210 05302e312e30 03 3c 022f73 022f67 00 01",
        ),
        (
            ServerMessage {
                id: 7,
                response: Response::Status(DaemonStatus {
                    pid: 4242,
                    version: "0.1.0".into(),
                    proto_version: 3,
                    uptime_s: 60,
                    socket: "/s".into(),
                    log_path: "/g".into(),
                    sessions: vec![info("s1", SessionState::Connected)],
                    socket_activated: false,
                }),
            },
            // One session, then socket_activated false.
            "07 05 fb9210 05302e312e30 03 3c 022f73 022f67
             01 027331 0168 0175 16 00 fd0068e5cf8b010000 fd6052e6cf8b010000
                00 00 00 00 00
             00",
        ),
        (
            ServerMessage {
                id: 8,
                response: Response::ShuttingDown,
            },
            "08 06",
        ),
        (
            ServerMessage {
                id: 300,
                response: Response::Error(ErrorBody::new(
                    ErrorKind::UnknownSession,
                    "no session s9",
                )),
            },
            "fb2c01 07 01 0d6e6f2073657373696f6e207339 00",
        ),
        (
            ServerMessage {
                id: 9,
                response: Response::Progress(Progress {
                    elapsed_ms: 1_500,
                    done: 70_000,
                    total: Some(250),
                }),
            },
            "09 08 fbdc05 fc70110100 01fa",
        ),
        (
            ServerMessage {
                id: 1,
                response: Response::SecretPage(SecretPage {
                    id: "i".into(),
                    url: "u".into(),
                    expires_in_s: 300,
                }),
            },
            // id | SecretPage | id | url | expires_in_s 300 (fb + u16)
            "01 09 0169 0175 fb2c01",
        ),
        (
            ServerMessage {
                id: 1,
                response: Response::SecretReceived,
            },
            "01 0a",
        ),
        (
            ServerMessage {
                id: 2,
                response: Response::Error(ErrorBody::new(ErrorKind::AuthFailed, "m").with_needs(
                    Needs::Secret(SecretPrompt {
                        kind: SecretKind::Passphrase,
                        host: "h".into(),
                        username: "u".into(),
                        key_path: Some("/k".into()),
                    }),
                )),
            },
            // id | Error | AuthFailed | "m" | needs Some(Secret(Passphrase,
            // "h", "u", Some("/k")))
            "02 07 03 016d 01 00 01 0168 0175 01022f6b",
        ),
        (
            ServerMessage {
                id: 2,
                response: Response::Error(
                    ErrorBody::new(ErrorKind::HostKeyRejected, "m").with_needs(Needs::HostKey(
                        UnknownHostKey {
                            host: "h".into(),
                            algorithm: "a".into(),
                            fingerprint: "f".into(),
                        },
                    )),
                ),
            },
            // id | Error | HostKeyRejected | "m" | needs Some(HostKey("h",
            // "a", "f"))
            "02 07 04 016d 01 01 0168 0161 0166",
        ),
    ];
    for (msg, pinned) in cases {
        assert_server_bytes(msg, pinned);
    }
}

#[test]
fn pinned_error_kind_positions() {
    // A change here is a wire break that must bump PROTOCOL_VERSION.
    let pinned = [
        (ErrorKind::BadRequest, 0u8),
        (ErrorKind::UnknownSession, 1),
        (ErrorKind::ConnectFailed, 2),
        (ErrorKind::AuthFailed, 3),
        (ErrorKind::HostKeyRejected, 4),
        (ErrorKind::Timeout, 5),
        (ErrorKind::RemoteIo, 6),
        (ErrorKind::LocalIo, 7),
        (ErrorKind::SessionClosed, 8),
        (ErrorKind::ShuttingDown, 9),
        (ErrorKind::Internal, 10),
        (ErrorKind::Cancelled, 11),
    ];
    for (kind, byte) in pinned {
        assert_eq!(encode(&kind).unwrap(), [byte], "{kind:?}");
    }
    let pinned = [
        (SessionState::Connected, 0u8),
        (SessionState::Disconnected, 1),
    ];
    for (state, byte) in pinned {
        assert_eq!(encode(&state).unwrap(), [byte], "{state:?}");
    }
}

#[test]
fn pinned_hello() {
    // The hello layout is frozen forever (see hello.rs): never change these.
    assert_eq!(HELLO_MAGIC, *b"SSHMCP\0\n");
    let hello = Hello {
        proto_version: 1,
        software: "x".into(),
    };
    // magic | proto_version u32 LE | software_len | software
    assert_eq!(
        hex(&hello.to_bytes()),
        hex(&unhex("5353484d4350000a 01000000 01 78"))
    );
    // A version from the far future keeps the layout.
    let hello = Hello {
        proto_version: 0x0403_0201,
        software: String::new(),
    };
    assert_eq!(
        hex(&hello.to_bytes()),
        hex(&unhex("5353484d4350000a 01020304 00"))
    );
}

#[test]
fn pinned_current_hello() {
    // The hello layout is frozen forever; only the version field follows
    // PROTOCOL_VERSION.
    let mut want = unhex("5353484d4350000a");
    want.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    want.extend_from_slice(&unhex("01 78"));
    assert_eq!(hex(&Hello::current("x").to_bytes()), hex(&want));
}

#[test]
fn pinned_hello_reply() {
    // The hello layout is frozen forever (see hello.rs): never change these.
    let reply = HelloReply {
        proto_version: 1,
        status: HelloStatus::Accepted,
        software: "sshmcpd 0.1.0".into(),
    };
    // magic | proto_version u32 LE | status | software_len | software
    assert_eq!(
        hex(&reply.to_bytes()),
        hex(&unhex(
            "5353484d4350000a 01000000 00 0d 7373686d63706420302e312e30"
        ))
    );
    let reply = HelloReply {
        proto_version: 2,
        status: HelloStatus::VersionMismatch,
        software: "d".into(),
    };
    assert_eq!(
        hex(&reply.to_bytes()),
        hex(&unhex("5353484d4350000a 02000000 01 01 64"))
    );
}
