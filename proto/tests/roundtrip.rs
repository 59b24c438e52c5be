//! Every message variant survives `encode`/`decode` and a trip through the
//! frame codec over an in-memory stream.

mod common;

use common::*;
use sshmcp_proto::{
    ClientMessage, ErrorBody, ErrorKind, ExecuteRequest, ExecuteResult, MAX_FRAME_LEN,
    MAX_OUTPUT_BYTES, MAX_STDIN_BYTES, Request, Response, ServerMessage, SessionState,
    StreamOutput, decode, encode, read_message, write_message,
};
use std::collections::BTreeSet;

#[test]
fn fixtures_cover_every_request_variant() {
    let seen: BTreeSet<u32> = all_requests().iter().map(request_index).collect();
    assert_eq!(seen, (0..REQUEST_VARIANTS).collect());
}

#[test]
fn fixtures_cover_every_response_variant() {
    let seen: BTreeSet<u32> = all_responses().iter().map(response_index).collect();
    assert_eq!(seen, (0..RESPONSE_VARIANTS).collect());
}

#[test]
fn every_request_roundtrips_through_codec() {
    for msg in client_messages() {
        let bytes = encode(&msg).unwrap();
        let back: ClientMessage = decode(&bytes).unwrap();
        assert_eq!(back, msg);
    }
}

#[test]
fn every_response_roundtrips_through_codec() {
    for msg in server_messages() {
        let bytes = encode(&msg).unwrap();
        let back: ServerMessage = decode(&bytes).unwrap();
        assert_eq!(back, msg);
    }
}

#[test]
fn every_error_kind_roundtrips() {
    for (i, kind) in ALL_ERROR_KINDS.into_iter().enumerate() {
        assert_eq!(error_kind_index(kind), i as u32, "fixture order");
        let msg = ServerMessage {
            id: i as u64,
            response: Response::Error(ErrorBody::new(kind, format!("failure of kind {kind:?}"))),
        };
        let back: ServerMessage = decode(&encode(&msg).unwrap()).unwrap();
        assert_eq!(back, msg);
        // The bare enum too: one byte, its declaration position.
        assert_eq!(encode(&kind).unwrap(), vec![i as u8]);
        assert_eq!(decode::<ErrorKind>(&[i as u8]).unwrap(), kind);
    }
    let past_end = ALL_ERROR_KINDS.len() as u8;
    assert!(decode::<ErrorKind>(&[past_end]).is_err());
}

#[test]
fn every_session_state_roundtrips() {
    for (i, state) in ALL_SESSION_STATES.into_iter().enumerate() {
        assert_eq!(session_state_index(state), i as u32, "fixture order");
        let msg = ServerMessage {
            id: 3,
            response: Response::Sessions(vec![session("s", state)]),
        };
        let back: ServerMessage = decode(&encode(&msg).unwrap()).unwrap();
        assert_eq!(back, msg);
        assert_eq!(encode(&state).unwrap(), vec![i as u8]);
        assert_eq!(decode::<SessionState>(&[i as u8]).unwrap(), state);
    }
    assert!(decode::<SessionState>(&[2]).is_err());
}

#[test]
fn session_state_names() {
    assert_eq!(SessionState::Connected.as_str(), "connected");
    assert_eq!(SessionState::Disconnected.as_str(), "disconnected");
}

#[test]
fn error_body_displays_its_message() {
    let e = ErrorBody::new(ErrorKind::AuthFailed, "tried publickey, password");
    assert_eq!(e.to_string(), "tried publickey, password");
    let _: &dyn std::error::Error = &e;
}

#[tokio::test]
async fn every_message_roundtrips_through_frames() {
    let (mut client, mut daemon) = tokio::io::duplex(64);
    let requests = client_messages();
    let responses = server_messages();

    // Both directions at once, through a buffer smaller than most frames, so
    // reads and writes interleave and frames arrive in pieces.
    let daemon_side = {
        let requests = requests.clone();
        let responses = responses.clone();
        async move {
            for want in &requests {
                let got: ClientMessage = read_message(&mut daemon).await.unwrap().unwrap();
                assert_eq!(&got, want);
            }
            for msg in &responses {
                write_message(&mut daemon, msg).await.unwrap();
            }
            drop(daemon);
        }
    };
    let client_side = async move {
        for msg in &requests {
            write_message(&mut client, msg).await.unwrap();
        }
        for want in &responses {
            let got: ServerMessage = read_message(&mut client).await.unwrap().unwrap();
            assert_eq!(&got, want);
        }
        // The daemon dropped its end after the last frame: a clean end.
        assert!(
            read_message::<ServerMessage, _>(&mut client)
                .await
                .unwrap()
                .is_none()
        );
    };
    tokio::join!(daemon_side, client_side);
}

#[tokio::test]
async fn frames_from_a_byte_at_a_time_reader() {
    let mut wire = Vec::new();
    for msg in server_messages() {
        write_message(&mut wire, &msg).await.unwrap();
    }
    let mut r = Trickle::new(wire);
    for want in server_messages() {
        let got: ServerMessage = read_message(&mut r).await.unwrap().unwrap();
        assert_eq!(got, want);
    }
    assert!(
        read_message::<ServerMessage, _>(&mut r)
            .await
            .unwrap()
            .is_none()
    );
}

/// The request at its cap: `MAX_STDIN_BYTES` of stdin, and every other field
/// filled in.
fn largest_request(stdin: Vec<u8>) -> ClientMessage {
    ClientMessage {
        id: u64::MAX,
        request: Request::Execute(ExecuteRequest {
            session_id: "a1b2c3d4".into(),
            command: "cat > /dev/null".into(),
            stdin: Some(stdin),
            timeout_ms: Some(u64::MAX),
            cwd: Some("~/src/app".into()),
            env: vec![("LC_ALL".into(), "C.UTF-8".into())],
            pty: true,
            max_output_bytes: Some(u64::MAX),
        }),
        progress: true,
    }
}

/// A stream as the daemon returns it once the output outgrew the inline
/// cap: `head` and `tail` inline (together at most `MAX_OUTPUT_BYTES`), the
/// rest in a spill file, and the counters at their widest varints.
fn capped_stream(head: Vec<u8>, tail: Vec<u8>) -> StreamOutput {
    StreamOutput {
        head,
        tail,
        total_bytes: u64::MAX,
        omitted_bytes: u64::MAX,
        spill_path: Some("/home/me/.local/state/sshmcp/spill/a1b2c3d4-17.stdout".into()),
        spill_truncated: true,
    }
}

/// The result holding both streams at the cap.
fn largest_result(stdout: StreamOutput, stderr: StreamOutput) -> ServerMessage {
    ServerMessage {
        id: u64::MAX,
        response: Response::Executed(ExecuteResult {
            stdout,
            stderr,
            exit_status: Some(u32::MAX),
            signal: Some("SEGV".into()),
            timed_out: true,
            deadline: Some(sshmcp_proto::Deadline {
                ms: u64::MAX,
                source: sshmcp_proto::DeadlineSource::ConfigMax,
            }),
            reconnected: true,
        }),
    }
}

/// How the inline bytes of each stream can be laid out at the cap: all in
/// `head` (output just past the cap), and split in half between `head` and
/// `tail` (output far past it; a few bytes larger, for the second long
/// varint length).
const CAP_LAYOUTS: [(usize, usize); 2] = [
    (MAX_OUTPUT_BYTES, 0),
    (
        MAX_OUTPUT_BYTES / 2,
        MAX_OUTPUT_BYTES - MAX_OUTPUT_BYTES / 2,
    ),
];

/// The limits are meant to fit together: the biggest `execute` request and
/// result the daemon will produce must fit one frame. Checked by size from a
/// small instance (a `Vec<u8>` is a varint length then its bytes, as the
/// pinned-bytes tests show), so it is cheap in debug builds.
#[test]
fn largest_allowed_execute_fits_one_frame_by_size() {
    fn varint_len(n: usize) -> usize {
        encode(&(n as u64)).unwrap().len()
    }
    fn bytes_len(n: usize) -> usize {
        varint_len(n) + n
    }
    let small = encode(&largest_request(vec![1, 2, 3])).unwrap().len();
    let predict = |n: usize| small - bytes_len(3) + bytes_len(n);
    // The formula holds where the real thing is cheap to check (a 5-byte
    // varint length, as at the caps).
    assert_eq!(
        predict(70_000),
        encode(&largest_request(vec![7; 70_000])).unwrap().len()
    );
    let largest = predict(MAX_STDIN_BYTES);
    assert!(largest <= MAX_FRAME_LEN as usize, "{largest} bytes");

    // Four byte strings: head and tail of stdout and of stderr.
    let result = |[a, b, c, d]: [usize; 4]| {
        largest_result(
            capped_stream(vec![1; a], vec![2; b]),
            capped_stream(vec![3; c], vec![4; d]),
        )
    };
    let small = encode(&result([3; 4])).unwrap().len();
    let predict = |lens: [usize; 4]| {
        small - 4 * bytes_len(3) + lens.into_iter().map(bytes_len).sum::<usize>()
    };
    for lens in [[70_000, 0, 70_000, 0], [35_000, 35_000, 0, 70_000]] {
        assert_eq!(
            predict(lens),
            encode(&result(lens)).unwrap().len(),
            "{lens:?}"
        );
    }
    for (head, tail) in CAP_LAYOUTS {
        let largest = predict([head, tail, head, tail]);
        assert!(
            largest <= MAX_FRAME_LEN as usize,
            "head {head} + tail {tail}: {largest} bytes"
        );
    }
}

/// The same at full size, which also proves the decoder's allocation limit
/// admits it.
#[test]
fn largest_allowed_execute_roundtrips_at_full_size() {
    let request = largest_request(vec![0xa5; MAX_STDIN_BYTES]);
    let bytes = encode(&request).unwrap();
    assert!(bytes.len() <= MAX_FRAME_LEN as usize);
    assert_eq!(decode::<ClientMessage>(&bytes).unwrap(), request);
    drop(bytes);

    for (head, tail) in CAP_LAYOUTS {
        let result = largest_result(
            capped_stream(vec![0x5a; head], vec![0x5b; tail]),
            capped_stream(vec![0xa5; head], vec![0xa6; tail]),
        );
        let bytes = encode(&result).unwrap();
        assert!(
            bytes.len() <= MAX_FRAME_LEN as usize,
            "head {head} + tail {tail}: {} bytes",
            bytes.len()
        );
        assert_eq!(decode::<ServerMessage>(&bytes).unwrap(), result);
    }
}
