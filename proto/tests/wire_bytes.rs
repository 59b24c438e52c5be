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
    ClientMessage, ConnectRequest, ConnectResult, DaemonStatus, ErrorBody, ErrorKind,
    ExecuteRequest, ExecuteResult, HELLO_MAGIC, Hello, HelloReply, HelloStatus, PROTOCOL_VERSION,
    Request, Response, Secret, ServerMessage, SessionInfo, SessionState, TransferRequest,
    TransferResult, decode, encode, write_message,
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
fn pinned_list_sessions() {
    // A change here is a wire break that must bump PROTOCOL_VERSION.
    assert_client_bytes(
        ClientMessage {
            id: 1,
            request: Request::ListSessions,
        },
        "01 02", // id 1 | variant 2 (ListSessions)
    );
}

#[tokio::test]
async fn pinned_list_sessions_frame() {
    // A change here is a wire break that must bump PROTOCOL_VERSION.
    let mut wire = Vec::new();
    let msg = ClientMessage {
        id: 1,
        request: Request::ListSessions,
    };
    write_message(&mut wire, &msg).await.unwrap();
    // u32 LE length 2 | payload
    assert_eq!(hex(&wire), hex(&unhex("02000000 0102")));
}

#[test]
fn pinned_execute_with_stdin_and_timeout() {
    // A change here is a wire break that must bump PROTOCOL_VERSION.
    assert_client_bytes(
        ClientMessage {
            id: 7,
            request: Request::Execute(ExecuteRequest {
                session_id: "s1".into(),
                command: "cat".into(),
                stdin: Some(b"hi\n".to_vec()),
                timeout_ms: Some(30_000),
            }),
        },
        "07               # id
         03               # Execute
         02 7331          # session_id \"s1\"
         03 636174        # command \"cat\"
         01 03 68690a     # stdin Some(b\"hi\\n\")
         01 fb 3075       # timeout_ms Some(30000)",
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
                    username: "u".into(),
                    port: 22,
                    password: Some(Secret::new("pw".into())),
                    private_key: Some("/k".into()),
                }),
            },
            // id | Connect | "h" | "u" | port 22 | Some("pw") | Some("/k")
            "02 00 0168 0175 16 01027077 01022f6b",
        ),
        (
            ClientMessage {
                id: 3,
                request: Request::Disconnect {
                    session_id: "s1".into(),
                },
            },
            "03 01 027331",
        ),
        (
            ClientMessage {
                id: 1,
                request: Request::ListSessions,
            },
            "01 02",
        ),
        (
            ClientMessage {
                id: 7,
                request: Request::Execute(ExecuteRequest {
                    session_id: "s1".into(),
                    command: "cat".into(),
                    stdin: None,
                    timeout_ms: None,
                }),
            },
            "07 03 027331 03636174 00 00",
        ),
        (
            ClientMessage {
                id: 4,
                request: Request::Upload(TransferRequest {
                    session_id: "s1".into(),
                    local_path: "/l".into(),
                    remote_path: "/r".into(),
                }),
            },
            // id | Upload | session_id | local_path | remote_path
            "04 04 027331 022f6c 022f72",
        ),
        (
            ClientMessage {
                id: 5,
                request: Request::Download(TransferRequest {
                    session_id: "s1".into(),
                    local_path: "/l".into(),
                    remote_path: "/r".into(),
                }),
            },
            "05 05 027331 022f6c 022f72",
        ),
        (
            ClientMessage {
                id: 6,
                request: Request::Status,
            },
            "06 06",
        ),
        (
            ClientMessage {
                id: 251,
                request: Request::Shutdown,
            },
            // id 251 is the first two-byte varint: fb + u16 LE
            "fbfb00 07",
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
        // id 300 (fb + u16) | Error | UnknownSession | message
        "fb2c01 07 01 0d 6e6f2073657373696f6e207339",
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
    };
    let cases = [
        (
            ServerMessage {
                id: 1,
                response: Response::Connected(ConnectResult {
                    session_id: "s1".into(),
                    host_key_fingerprint: "SHA256:x".into(),
                    host_key_learned: true,
                }),
            },
            "01 00 027331 085348413235363a78 01",
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
                    info("s1", SessionState::Connected),
                    info("s2", SessionState::Disconnected),
                ]),
            },
            // id | Sessions | 2 entries, each:
            //   session_id | hostname | username | port | state |
            //   connected_at_ms (fd + u64) | last_used_at_ms (fd + u64)
            "03 02 02
             027331 0168 0175 16 00 fd0068e5cf8b010000 fd6052e6cf8b010000
             027332 0168 0175 16 01 fd0068e5cf8b010000 fd6052e6cf8b010000",
        ),
        (
            ServerMessage {
                id: 4,
                response: Response::Executed(ExecuteResult {
                    stdout: b"ok\n".to_vec(),
                    stderr: vec![],
                    exit_status: Some(2),
                    signal: None,
                    timed_out: false,
                    stdout_truncated: false,
                    stderr_truncated: true,
                }),
            },
            // id | Executed | stdout | stderr | exit Some(2) | signal None |
            // timed_out | stdout_truncated | stderr_truncated
            "04 03 036f6b0a 00 0102 00 00 00 01",
        ),
        (
            ServerMessage {
                id: 5,
                response: Response::Executed(ExecuteResult {
                    stdout: vec![],
                    stderr: b"e".to_vec(),
                    exit_status: None,
                    signal: Some("KILL".into()),
                    timed_out: true,
                    stdout_truncated: false,
                    stderr_truncated: false,
                }),
            },
            // The flags differ between this case and the one above in a way
            // that catches any two of them swapping places.
            "05 03 00 0165 00 01044b494c4c 01 00 00",
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
                }),
            },
            // id | Transferred | local | remote | bytes (fc + u32) | replaced | notes
            "06 04 022f6c 022f72 fc70110100 01 01016e",
        ),
        (
            ServerMessage {
                id: 7,
                response: Response::Status(DaemonStatus {
                    pid: 4242,
                    version: "0.1.0".into(),
                    proto_version: 1,
                    uptime_s: 60,
                    socket: "/s".into(),
                    log_path: "/g".into(),
                    sessions: vec![],
                }),
            },
            // id | Status | pid | version | proto_version | uptime_s |
            // socket | log_path | sessions
            "07 05 fb9210 05302e312e30 01 3c 022f73 022f67 00",
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
            "fb2c01 07 01 0d6e6f2073657373696f6e207339",
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
