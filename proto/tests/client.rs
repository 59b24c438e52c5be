//! `Client` against a fake daemon on an in-memory stream: the handshake,
//! responses matched by id, and the ways a connection ends.

mod common;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sshmcp_proto::{
    Client, ClientError, ClientMessage, ExecuteRequest, Hello, HelloReply, HelloStatus,
    PROTOCOL_VERSION, ProtoError, Request, Response, ServerMessage, read_message, write_frame,
    write_message,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, DuplexStream};

/// Long enough never to fire on a slow machine when the code answers, short
/// enough that a hang fails the test instead of the whole run.
const PROMPT: Duration = Duration::from_secs(5);

const SHIM: &str = "test-shim 0.0.1";
const DAEMON: &str = "fake-sshmcpd 1.2.3";

/// The daemon half of the hello: checks the client's hello and accepts it.
async fn accept(io: &mut DuplexStream) {
    let hello = Hello::read(io).await.unwrap();
    assert_eq!(hello, Hello::current(SHIM));
    HelloReply {
        proto_version: PROTOCOL_VERSION,
        status: HelloStatus::Accepted,
        software: DAEMON.into(),
    }
    .write(io)
    .await
    .unwrap();
}

async fn next_request(io: &mut DuplexStream) -> ClientMessage {
    tokio::time::timeout(PROMPT, read_message(io))
        .await
        .expect("a request in time")
        .unwrap()
        .expect("a request, not the end of the stream")
}

fn disconnect(session_id: &str) -> Request {
    Request::Disconnect {
        session_id: session_id.into(),
    }
}

/// The answer the fake daemon gives to `disconnect(id)`.
fn echo(msg: ClientMessage) -> ServerMessage {
    let Request::Disconnect { session_id } = msg.request else {
        panic!("unexpected request {:?}", msg.request)
    };
    ServerMessage {
        id: msg.id,
        response: Response::Disconnected { session_id },
    }
}

async fn in_time<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(PROMPT, f)
        .await
        .expect("the client answered in time")
}

#[tokio::test]
async fn two_concurrent_calls_answered_out_of_order() {
    let (client_io, mut daemon_io) = tokio::io::duplex(4096);
    let daemon = tokio::spawn(async move {
        accept(&mut daemon_io).await;
        let first = next_request(&mut daemon_io).await;
        let second = next_request(&mut daemon_io).await;
        assert_ne!(first.id, second.id, "each request has its own id");
        // Answer the later request first.
        write_message(&mut daemon_io, &echo(second)).await.unwrap();
        write_message(&mut daemon_io, &echo(first)).await.unwrap();
        daemon_io
    });

    let client = in_time(Client::handshake(client_io, SHIM)).await.unwrap();
    assert_eq!(client.daemon_software(), DAEMON);
    let (a, b) = in_time(async {
        tokio::join!(
            client.call(disconnect("alpha")),
            client.call(disconnect("beta"))
        )
    })
    .await;
    assert_eq!(
        a.unwrap(),
        Response::Disconnected {
            session_id: "alpha".into()
        }
    );
    assert_eq!(
        b.unwrap(),
        Response::Disconnected {
            session_id: "beta".into()
        }
    );
    daemon.await.unwrap();
}

#[tokio::test]
async fn many_calls_from_shared_client_answered_in_shuffled_order() {
    const CALLS: usize = 40;
    let (client_io, mut daemon_io) = tokio::io::duplex(256);
    let daemon = tokio::spawn(async move {
        accept(&mut daemon_io).await;
        let mut requests = Vec::new();
        for _ in 0..CALLS {
            requests.push(next_request(&mut daemon_io).await);
        }
        let mut ids: Vec<u64> = requests.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CALLS, "ids are unique on a connection");
        let mut rng = StdRng::seed_from_u64(0xc11e_4700);
        requests.shuffle(&mut rng);
        for msg in requests {
            // An answer to nobody now and then: the client must ignore it.
            if rng.random_bool(0.2) {
                let stray = ServerMessage {
                    id: u64::MAX - rng.random_range(0..1000),
                    response: Response::ShuttingDown,
                };
                write_message(&mut daemon_io, &stray).await.unwrap();
            }
            write_message(&mut daemon_io, &echo(msg)).await.unwrap();
        }
        daemon_io
    });

    let client = Arc::new(in_time(Client::handshake(client_io, SHIM)).await.unwrap());
    let tasks: Vec<_> = (0..CALLS)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let name = format!("session-{i}");
                let got = client.call(disconnect(&name)).await.unwrap();
                assert_eq!(got, Response::Disconnected { session_id: name });
            })
        })
        .collect();
    for task in tasks {
        in_time(task).await.unwrap();
    }
    daemon.await.unwrap();
}

#[tokio::test]
async fn daemon_speaking_another_version_is_a_version_mismatch() {
    // Whatever status the daemon sends with it, another version is refused,
    // and the error carries both versions and the daemon's software.
    for status in [HelloStatus::VersionMismatch, HelloStatus::Accepted] {
        let (client_io, mut daemon_io) = tokio::io::duplex(4096);
        let daemon = tokio::spawn(async move {
            Hello::read(&mut daemon_io).await.unwrap();
            HelloReply {
                proto_version: PROTOCOL_VERSION + 1,
                status,
                software: "sshmcpd 9.0.0".into(),
            }
            .write(&mut daemon_io)
            .await
            .unwrap();
            daemon_io
        });
        let err = in_time(Client::handshake(client_io, SHIM))
            .await
            .err()
            .expect("handshake must fail");
        let text = err.to_string();
        match err {
            ClientError::Proto(ProtoError::VersionMismatch {
                ours,
                theirs,
                peer_software,
            }) => {
                assert_eq!(ours, PROTOCOL_VERSION);
                assert_eq!(theirs, PROTOCOL_VERSION + 1);
                assert_eq!(peer_software, "sshmcpd 9.0.0");
            }
            other => panic!("{status:?}: {other:?}"),
        }
        // The message names both versions and the peer, so a user can act.
        assert!(text.contains(&PROTOCOL_VERSION.to_string()), "{text}");
        assert!(text.contains(&(PROTOCOL_VERSION + 1).to_string()), "{text}");
        assert!(text.contains("sshmcpd 9.0.0"), "{text}");
        daemon.await.unwrap();
    }
}

#[tokio::test]
async fn daemon_refusing_the_same_version_is_refused() {
    // A status other than Accepted is never treated as acceptance, even
    // when the versions agree (a future daemon's other refusal reasons).
    let (client_io, mut daemon_io) = tokio::io::duplex(4096);
    let daemon = tokio::spawn(async move {
        Hello::read(&mut daemon_io).await.unwrap();
        let mut reply = HelloReply {
            proto_version: PROTOCOL_VERSION,
            status: HelloStatus::Accepted,
            software: DAEMON.into(),
        }
        .to_bytes();
        reply[12] = 9; // an unknown status byte
        daemon_io.write_all(&reply).await.unwrap();
        daemon_io
    });
    let err = in_time(Client::handshake(client_io, SHIM))
        .await
        .err()
        .expect("handshake must fail");
    assert!(
        matches!(err, ClientError::Proto(ProtoError::VersionMismatch { .. })),
        "{err:?}"
    );
    daemon.await.unwrap();
}

#[tokio::test]
async fn a_peer_that_is_not_a_daemon_is_bad_magic() {
    let (client_io, mut daemon_io) = tokio::io::duplex(4096);
    let daemon = tokio::spawn(async move {
        daemon_io
            .write_all(b"SSH-2.0-OpenSSH_9.6\r\n")
            .await
            .unwrap();
        daemon_io
    });
    let err = in_time(Client::handshake(client_io, SHIM))
        .await
        .err()
        .expect("handshake must fail");
    assert!(
        matches!(err, ClientError::Proto(ProtoError::BadMagic)),
        "{err:?}"
    );
    daemon.await.unwrap();
}

#[tokio::test]
async fn daemon_closing_during_the_hello_is_truncated() {
    let (client_io, mut daemon_io) = tokio::io::duplex(4096);
    let daemon = tokio::spawn(async move {
        Hello::read(&mut daemon_io).await.unwrap();
        // Half a reply, then gone.
        let reply = HelloReply {
            proto_version: PROTOCOL_VERSION,
            status: HelloStatus::Accepted,
            software: DAEMON.into(),
        }
        .to_bytes();
        daemon_io.write_all(&reply[..10]).await.unwrap();
    });
    let err = in_time(Client::handshake(client_io, SHIM))
        .await
        .err()
        .expect("handshake must fail");
    assert!(
        matches!(err, ClientError::Proto(ProtoError::Truncated)),
        "{err:?}"
    );
    daemon.await.unwrap();
}

#[tokio::test]
async fn daemon_closing_fails_the_pending_call_with_closed() {
    let (client_io, mut daemon_io) = tokio::io::duplex(4096);
    let daemon = tokio::spawn(async move {
        accept(&mut daemon_io).await;
        let msg = next_request(&mut daemon_io).await;
        assert_eq!(msg.request, Request::ListSessions);
        // Read the request, then hang up without answering.
        drop(daemon_io);
    });
    let client = in_time(Client::handshake(client_io, SHIM)).await.unwrap();
    let err = in_time(client.call(Request::ListSessions))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Closed), "{err:?}");
    daemon.await.unwrap();

    // The connection stays closed: later calls fail at once, the same way.
    let err = in_time(client.call(Request::Status)).await.unwrap_err();
    assert!(matches!(err, ClientError::Closed), "{err:?}");
}

#[tokio::test]
async fn every_pending_call_fails_when_the_daemon_closes() {
    let (client_io, mut daemon_io) = tokio::io::duplex(4096);
    let daemon = tokio::spawn(async move {
        accept(&mut daemon_io).await;
        for _ in 0..3 {
            next_request(&mut daemon_io).await;
        }
        drop(daemon_io);
    });
    let client = in_time(Client::handshake(client_io, SHIM)).await.unwrap();
    let (a, b, c) = in_time(async {
        tokio::join!(
            client.call(Request::Status),
            client.call(Request::ListSessions),
            client.call(disconnect("x")),
        )
    })
    .await;
    for r in [a, b, c] {
        assert!(matches!(r, Err(ClientError::Closed)), "{r:?}");
    }
    daemon.await.unwrap();
}

#[tokio::test]
async fn garbage_from_the_daemon_fails_the_pending_call() {
    // An undecodable frame must not leave the caller waiting forever.
    let (client_io, mut daemon_io) = tokio::io::duplex(4096);
    let daemon = tokio::spawn(async move {
        accept(&mut daemon_io).await;
        next_request(&mut daemon_io).await;
        write_frame(&mut daemon_io, &[0x01, 0x63, 0x63])
            .await
            .unwrap();
        // Return the stream, keeping it open: the failure must come from the
        // garbage, not from an end of stream.
        daemon_io
    });
    let client = in_time(Client::handshake(client_io, SHIM)).await.unwrap();
    let got = in_time(client.call(Request::Status)).await;
    assert!(got.is_err(), "{got:?}");
    let _daemon_io = daemon.await.unwrap();
}

#[tokio::test]
async fn an_oversize_frame_from_the_daemon_fails_the_pending_call() {
    let (client_io, mut daemon_io) = tokio::io::duplex(4096);
    let daemon = tokio::spawn(async move {
        accept(&mut daemon_io).await;
        next_request(&mut daemon_io).await;
        daemon_io.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
        daemon_io
    });
    let client = in_time(Client::handshake(client_io, SHIM)).await.unwrap();
    let got = in_time(client.call(Request::Status)).await;
    assert!(got.is_err(), "{got:?}");
    let _daemon_io = daemon.await.unwrap();
}

#[tokio::test]
async fn dropping_the_client_closes_the_connection() {
    let (client_io, mut daemon_io) = tokio::io::duplex(4096);
    let daemon = tokio::spawn(async move {
        accept(&mut daemon_io).await;
        // The client going away reads as a clean end of stream.
        let end = tokio::time::timeout(PROMPT, read_message::<ClientMessage, _>(&mut daemon_io))
            .await
            .expect("the stream ends once the client is dropped");
        assert!(matches!(end, Ok(None)), "{end:?}");
    });
    let client = in_time(Client::handshake(client_io, SHIM)).await.unwrap();
    drop(client);
    daemon.await.unwrap();
}

/// A call whose future is dropped part-way through writing its request (a
/// caller's timeout, a cancelled MCP tool call) must not corrupt the stream
/// for the calls after it.
///
/// Today `Client::call` writes the frame with `write_all` inside the caller's
/// future; dropping it mid-write leaves half a frame on the wire, and the
/// daemon then reads the next request's bytes as the rest of that frame. See
/// the report: the fix is a writer task fed by a channel.
#[tokio::test]
async fn a_call_cancelled_mid_write_does_not_corrupt_the_stream() {
    // A small pipe, so a large request cannot be written in one go.
    let (client_io, mut daemon_io) = tokio::io::duplex(64);
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(async move {
        accept(&mut daemon_io).await;
        // Read nothing until the client has given up on its first call.
        go_rx.await.unwrap();
        while let Ok(Some(msg)) = read_message::<ClientMessage, _>(&mut daemon_io).await {
            let response = match msg.request {
                Request::ListSessions => Response::Sessions(Vec::new()),
                _ => Response::ShuttingDown,
            };
            let answer = ServerMessage {
                id: msg.id,
                response,
            };
            write_message(&mut daemon_io, &answer).await.unwrap();
        }
    });
    let client = in_time(Client::handshake(client_io, SHIM)).await.unwrap();
    let big = Request::Execute(ExecuteRequest {
        session_id: "s".into(),
        command: "cat".into(),
        stdin: Some(vec![b'x'; 100_000]),
        timeout_ms: None,
    });
    let cancelled = tokio::time::timeout(Duration::from_millis(50), client.call(big)).await;
    assert!(cancelled.is_err(), "the first call was cut off mid-write");
    go_tx.send(()).unwrap();

    let next = tokio::time::timeout(PROMPT, client.call(Request::ListSessions)).await;
    assert!(
        matches!(next, Ok(Ok(Response::Sessions(_)))),
        "the next call must still work: {next:?}"
    );
    drop(client);
    daemon.await.unwrap();
}
