//! `Client` against a fake daemon on an in-memory stream: the handshake,
//! responses matched by id, progress reports, cancelling a dropped call,
//! and the ways a connection ends.

mod common;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sshmcp_proto::{
    Client, ClientError, ClientMessage, ErrorBody, ErrorKind, ExecuteRequest, Hello, HelloReply,
    HelloStatus, PROTOCOL_VERSION, Progress, ProtoError, Request, Response, ServerMessage,
    read_message, write_frame, write_message,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, oneshot};

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
/// Frames are written whole by the client's writer task, never inside the
/// caller's future, so dropping the future mid-write cannot leave half a
/// frame on the wire for the daemon to read the next request into.
#[tokio::test]
async fn a_call_cancelled_mid_write_does_not_corrupt_the_stream() {
    // A small pipe, so a large request cannot be written in one go.
    let (client_io, mut daemon_io) = tokio::io::duplex(64);
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let daemon = tokio::spawn(async move {
        accept(&mut daemon_io).await;
        // Read nothing until the client has given up on its first call.
        go_rx.await.unwrap();
        let mut execute_id = None;
        while let Ok(Some(msg)) = read_message::<ClientMessage, _>(&mut daemon_io).await {
            let response = match msg.request {
                Request::Execute(_) => {
                    execute_id = Some(msg.id);
                    Response::ShuttingDown
                }
                // A cancel gets no answer of its own, and it names the call
                // that was given up on.
                Request::Cancel { id } => {
                    assert_eq!(Some(id), execute_id, "cancels the execute");
                    continue;
                }
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
        cwd: None,
        env: Vec::new(),
        pty: false,
        max_output_bytes: None,
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

/// A call's future, boxed so that `call` and `call_with_progress` can be
/// driven by the same test code.
type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<Response, ClientError>> + Send + 'a>>;

fn progress(elapsed_ms: u64, done: u64, total: Option<u64>) -> Progress {
    Progress {
        elapsed_ms,
        done,
        total,
    }
}

/// What the fake daemon sends while a transfer runs.
fn transfer_progress() -> Vec<Progress> {
    vec![
        progress(250, 0, Some(3_000_000)),
        progress(500, 1_048_576, Some(3_000_000)),
        progress(750, 3_000_000, Some(3_000_000)),
    ]
}

#[tokio::test]
async fn progress_reaches_the_callers_channel_in_order_then_the_answer() {
    let (client_io, mut daemon_io) = tokio::io::duplex(4096);
    let daemon = tokio::spawn(async move {
        accept(&mut daemon_io).await;
        let msg = next_request(&mut daemon_io).await;
        assert!(msg.progress, "call_with_progress asks for progress");
        let report = |id: u64, p: Progress| ServerMessage {
            id,
            response: Response::Progress(p),
        };
        for (i, p) in transfer_progress().into_iter().enumerate() {
            write_message(&mut daemon_io, &report(msg.id, p))
                .await
                .unwrap();
            if i == 0 {
                // Reports for calls the client does not know: ignored, and
                // they neither reach this call's channel nor end it.
                for stray in [msg.id + 1, u64::MAX, 0] {
                    let p = progress(9, 9, None);
                    write_message(&mut daemon_io, &report(stray, p))
                        .await
                        .unwrap();
                }
            }
        }
        write_message(&mut daemon_io, &echo(msg)).await.unwrap();
        daemon_io
    });

    let client = in_time(Client::handshake(client_io, SHIM)).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let got = in_time(client.call_with_progress(disconnect("alpha"), tx))
        .await
        .unwrap();
    assert_eq!(
        got,
        Response::Disconnected {
            session_id: "alpha".into()
        }
    );
    // Every report came before the answer, so all are queued by now, in
    // the order sent; then the channel closes, as the call is over.
    let mut reports = Vec::new();
    while let Some(p) = in_time(rx.recv()).await {
        reports.push(p);
    }
    assert_eq!(reports, transfer_progress());
    let _daemon_io = daemon.await.unwrap();
}

#[tokio::test]
async fn progress_goes_only_to_its_own_call() {
    // Two calls in flight: one with a channel, one without. Reports for the
    // plain call (whose message did not ask for them) are dropped; reports
    // for the other reach its channel only.
    let (client_io, mut daemon_io) = tokio::io::duplex(4096);
    let daemon = tokio::spawn(async move {
        accept(&mut daemon_io).await;
        let first = next_request(&mut daemon_io).await;
        let second = next_request(&mut daemon_io).await;
        let (watched, plain) = if first.progress {
            (first, second)
        } else {
            (second, first)
        };
        assert!(watched.progress && !plain.progress, "{watched:?} {plain:?}");
        for (i, p) in transfer_progress().into_iter().enumerate() {
            let id = if i % 2 == 0 { plain.id } else { watched.id };
            let report = ServerMessage {
                id,
                response: Response::Progress(p),
            };
            write_message(&mut daemon_io, &report).await.unwrap();
        }
        write_message(&mut daemon_io, &echo(plain)).await.unwrap();
        write_message(&mut daemon_io, &echo(watched)).await.unwrap();
        daemon_io
    });

    let client = in_time(Client::handshake(client_io, SHIM)).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (watched, plain) = in_time(async {
        tokio::join!(
            client.call_with_progress(disconnect("watched"), tx),
            client.call(disconnect("plain")),
        )
    })
    .await;
    assert_eq!(
        watched.unwrap(),
        Response::Disconnected {
            session_id: "watched".into()
        }
    );
    assert_eq!(
        plain.unwrap(),
        Response::Disconnected {
            session_id: "plain".into()
        }
    );
    let mut reports = Vec::new();
    while let Some(p) = in_time(rx.recv()).await {
        reports.push(p);
    }
    assert_eq!(reports, [transfer_progress()[1].clone()]);
    let _daemon_io = daemon.await.unwrap();
}

#[tokio::test]
async fn a_call_dropped_before_its_answer_sends_a_cancel() {
    // Both ways to call: a dropped `call_with_progress` is cancelled too.
    for with_progress in [false, true] {
        let (client_io, mut daemon_io) = tokio::io::duplex(4096);
        let (seen_tx, seen_rx) = oneshot::channel::<u64>();
        let daemon = tokio::spawn(async move {
            accept(&mut daemon_io).await;
            let call = next_request(&mut daemon_io).await;
            assert!(matches!(call.request, Request::Execute(_)), "{call:?}");
            assert_eq!(call.progress, with_progress);
            // Tell the test the call is in flight, then keep it unanswered.
            seen_tx.send(call.id).unwrap();

            let cancel_id = match next_request(&mut daemon_io).await {
                ClientMessage {
                    id,
                    request: Request::Cancel { id: target },
                    progress: false,
                } => {
                    assert_eq!(target, call.id, "cancels the dropped call");
                    assert_ne!(id, call.id, "the cancel has an id of its own");
                    id
                }
                other => panic!("expected a cancel for {}, got {other:?}", call.id),
            };
            // The daemon answers the cancelled call as cancelled; nobody is
            // waiting for it any more, and the client must ignore it.
            let answer = ServerMessage {
                id: call.id,
                response: Response::Error(ErrorBody::new(ErrorKind::Cancelled, "cancelled")),
            };
            write_message(&mut daemon_io, &answer).await.unwrap();

            // The connection goes on: the next call gets its own answer.
            let next = next_request(&mut daemon_io).await;
            assert_ne!(next.id, call.id);
            assert_ne!(next.id, cancel_id);
            write_message(&mut daemon_io, &echo(next)).await.unwrap();
            daemon_io
        });

        let client = in_time(Client::handshake(client_io, SHIM)).await.unwrap();
        let request = Request::Execute(ExecuteRequest {
            session_id: "a1b2c3d4".into(),
            command: "sleep 3600".into(),
            stdin: None,
            timeout_ms: None,
            cwd: None,
            env: Vec::new(),
            pty: false,
            max_output_bytes: None,
        });
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut call: CallFuture<'_> = if with_progress {
            Box::pin(client.call_with_progress(request, tx))
        } else {
            Box::pin(client.call(request))
        };
        // Drive the call until the daemon has its request, then give up on
        // it, as a cancelled tool call does.
        tokio::select! {
            answer = &mut call => panic!("the call was never answered: {answer:?}"),
            seen = in_time(seen_rx) => { seen.unwrap(); }
        }
        drop(call);

        let next = in_time(client.call(disconnect("after"))).await.unwrap();
        assert_eq!(
            next,
            Response::Disconnected {
                session_id: "after".into()
            }
        );
        let _daemon_io = daemon.await.unwrap();
    }
}

#[tokio::test]
async fn a_call_dropped_before_it_is_polled_sends_nothing() {
    // A future that never ran registered nothing and sent nothing, so
    // there is nothing to cancel.
    let (client_io, mut daemon_io) = tokio::io::duplex(4096);
    let daemon = tokio::spawn(async move {
        accept(&mut daemon_io).await;
        let msg = next_request(&mut daemon_io).await;
        assert_eq!(msg.request, disconnect("polled"), "nothing came before");
        write_message(&mut daemon_io, &echo(msg)).await.unwrap();
        daemon_io
    });
    let client = in_time(Client::handshake(client_io, SHIM)).await.unwrap();
    drop(client.call(disconnect("never polled")));
    in_time(client.call(disconnect("polled"))).await.unwrap();
    let _daemon_io = daemon.await.unwrap();
}

#[tokio::test]
async fn an_answered_call_sends_no_cancel() {
    let (client_io, mut daemon_io) = tokio::io::duplex(4096);
    let daemon = tokio::spawn(async move {
        accept(&mut daemon_io).await;
        // A plain call, then one with progress reports, each answered.
        let first = next_request(&mut daemon_io).await;
        assert_eq!(first.request, disconnect("first"));
        write_message(&mut daemon_io, &echo(first)).await.unwrap();

        // A cancel for the first call would come before this request: the
        // client sends its frames in order.
        let second = next_request(&mut daemon_io).await;
        assert_eq!(second.request, disconnect("second"), "{second:?}");
        let report = ServerMessage {
            id: second.id,
            response: Response::Progress(progress(1, 2, None)),
        };
        write_message(&mut daemon_io, &report).await.unwrap();
        write_message(&mut daemon_io, &echo(second)).await.unwrap();

        // Then the client goes away: the stream ends cleanly, with no
        // cancel for either call before the end.
        let end = tokio::time::timeout(PROMPT, read_message::<ClientMessage, _>(&mut daemon_io))
            .await
            .expect("the stream ends once the client is dropped");
        assert!(matches!(end, Ok(None)), "{end:?}");
    });

    let client = in_time(Client::handshake(client_io, SHIM)).await.unwrap();
    let first = in_time(client.call(disconnect("first"))).await.unwrap();
    assert_eq!(
        first,
        Response::Disconnected {
            session_id: "first".into()
        }
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let second = in_time(client.call_with_progress(disconnect("second"), tx))
        .await
        .unwrap();
    assert_eq!(
        second,
        Response::Disconnected {
            session_id: "second".into()
        }
    );
    assert_eq!(in_time(rx.recv()).await, Some(progress(1, 2, None)));
    drop(client);
    in_time(daemon).await.unwrap();
}
