//! The frame layer: clean ends, truncation, the size cap and recovery after
//! an undecodable frame.

mod common;

use common::{FailAfter, StallAfter, Trickle};
use sshmcp_proto::{
    ClientMessage, MAX_FRAME_LEN, ProtoError, Request, ServerMessage, encode, read_frame,
    read_message, write_frame, write_message,
};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Long enough never to fire on a slow CI machine when the code under test
/// answers at once, short enough to fail fast when it would hang.
const PROMPT: Duration = Duration::from_secs(5);

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

#[tokio::test]
async fn clean_eof_before_any_frame_is_none() {
    let mut r: &[u8] = &[];
    assert!(read_frame(&mut r).await.unwrap().is_none());
    let mut r: &[u8] = &[];
    assert!(
        read_message::<ClientMessage, _>(&mut r)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn clean_eof_between_frames_is_none() {
    let wire = [frame(b"abc"), frame(b""), frame(b"xy")].concat();
    let mut r = wire.as_slice();
    assert_eq!(read_frame(&mut r).await.unwrap().unwrap(), b"abc");
    assert_eq!(read_frame(&mut r).await.unwrap().unwrap(), b"");
    assert_eq!(read_frame(&mut r).await.unwrap().unwrap(), b"xy");
    assert!(read_frame(&mut r).await.unwrap().is_none());
    // And it stays at the end.
    assert!(read_frame(&mut r).await.unwrap().is_none());
}

#[tokio::test]
async fn clean_eof_over_a_duplex_is_none() {
    let (mut a, mut b) = tokio::io::duplex(16);
    let msg = ClientMessage {
        id: 9,
        request: Request::Status,
        progress: false,
    };
    write_message(&mut a, &msg).await.unwrap();
    a.shutdown().await.unwrap();
    drop(a);
    assert_eq!(
        read_message::<ClientMessage, _>(&mut b).await.unwrap(),
        Some(msg)
    );
    assert!(
        read_message::<ClientMessage, _>(&mut b)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn eof_inside_the_length_prefix_is_truncated() {
    for cut in 1..4 {
        let wire = frame(b"hello");
        let mut r = &wire[..cut];
        let err = read_frame(&mut r).await.unwrap_err();
        assert!(matches!(err, ProtoError::Truncated), "cut {cut}: {err:?}");
        // Also when the bytes arrive one read at a time.
        let err = read_frame(&mut Trickle::new(&wire[..cut]))
            .await
            .unwrap_err();
        assert!(matches!(err, ProtoError::Truncated), "cut {cut}: {err:?}");
    }
}

#[tokio::test]
async fn eof_inside_the_payload_is_truncated() {
    let wire = frame(b"hello");
    for cut in 4..wire.len() {
        let mut r = &wire[..cut];
        let err = read_frame(&mut r).await.unwrap_err();
        assert!(matches!(err, ProtoError::Truncated), "cut {cut}: {err:?}");
    }
    // A complete frame followed by a partial one: the first reads fine.
    let wire = [frame(b"one"), frame(b"two")[..5].to_vec()].concat();
    let mut r = wire.as_slice();
    assert_eq!(read_frame(&mut r).await.unwrap().unwrap(), b"one");
    assert!(matches!(
        read_frame(&mut r).await.unwrap_err(),
        ProtoError::Truncated
    ));
}

#[tokio::test]
async fn truncated_message_is_truncated_not_decode() {
    let msg = ClientMessage {
        id: 1,
        request: Request::Disconnect {
            session_id: "a1b2c3d4".into(),
        },
        progress: true,
    };
    let mut wire = Vec::new();
    write_message(&mut wire, &msg).await.unwrap();
    let mut r = &wire[..wire.len() - 1];
    assert!(matches!(
        read_message::<ClientMessage, _>(&mut r).await.unwrap_err(),
        ProtoError::Truncated
    ));
}

#[tokio::test]
async fn io_errors_are_io_not_truncated() {
    // A reset is not a clean end and not a truncation: it stays an I/O error,
    // at either point of the frame.
    for prefix in [Vec::new(), vec![5, 0], frame(b"hello")[..6].to_vec()] {
        let mut r = FailAfter::new(prefix.clone(), std::io::ErrorKind::ConnectionReset);
        match read_frame(&mut r).await {
            Err(ProtoError::Io(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset)
            }
            other => panic!("after {prefix:?}: {other:?}"),
        }
    }
}

/// The reader gives only the 4 length bytes and then nothing, ever (no EOF
/// either). A reader that trusted the prefix would allocate and wait for the
/// payload; ours must answer from the prefix alone, at once.
async fn assert_refused_at_once(len: u32) {
    let mut r = StallAfter::new(len.to_le_bytes());
    let answer = tokio::time::timeout(PROMPT, read_frame(&mut r))
        .await
        .expect("an oversize prefix must be refused without waiting for a payload");
    match answer {
        Err(ProtoError::FrameTooLarge { len: got, max }) => {
            assert_eq!(got, u64::from(len));
            assert_eq!(max, MAX_FRAME_LEN);
        }
        other => panic!("length {len}: {other:?}"),
    }
    // It never asked for a payload-sized buffer either.
    assert!(r.largest_read_buf <= 4, "asked for {}", r.largest_read_buf);
}

#[tokio::test]
async fn max_u32_length_is_refused_at_once() {
    assert_refused_at_once(u32::MAX).await;
}

#[tokio::test]
async fn one_over_the_cap_is_refused_at_once() {
    assert_refused_at_once(MAX_FRAME_LEN + 1).await;
}

#[tokio::test]
async fn oversize_prefix_refused_for_messages_too() {
    let mut r = StallAfter::new(u32::MAX.to_le_bytes());
    let answer = tokio::time::timeout(PROMPT, read_message::<ServerMessage, _>(&mut r))
        .await
        .expect("answered at once");
    assert!(matches!(answer, Err(ProtoError::FrameTooLarge { .. })));
}

#[tokio::test]
async fn a_frame_at_the_cap_is_accepted() {
    // The cap is inclusive: exactly MAX_FRAME_LEN bytes is a legal frame.
    let payload = vec![0x42u8; MAX_FRAME_LEN as usize];
    let mut wire = Vec::new();
    write_frame(&mut wire, &payload).await.unwrap();
    assert_eq!(wire.len(), 4 + payload.len());
    assert_eq!(wire[..4], MAX_FRAME_LEN.to_le_bytes());
    let mut r = wire.as_slice();
    assert!(read_frame(&mut r).await.unwrap().unwrap() == payload);
}

#[tokio::test]
async fn write_frame_refuses_an_oversize_payload_and_writes_nothing() {
    let payload = vec![0u8; MAX_FRAME_LEN as usize + 1];
    let mut wire = Vec::new();
    match write_frame(&mut wire, &payload).await {
        Err(ProtoError::FrameTooLarge { len, max }) => {
            assert_eq!(len, u64::from(MAX_FRAME_LEN) + 1);
            assert_eq!(max, MAX_FRAME_LEN);
        }
        other => panic!("{other:?}"),
    }
    assert!(wire.is_empty(), "nothing may reach the wire");
}

#[tokio::test]
async fn write_message_refuses_an_oversize_message() {
    let msg = ServerMessage {
        id: 1,
        response: sshmcp_proto::Response::Disconnected {
            session_id: "x".repeat(MAX_FRAME_LEN as usize),
        },
    };
    let mut wire = Vec::new();
    assert!(matches!(
        write_message(&mut wire, &msg).await,
        Err(ProtoError::FrameTooLarge { .. })
    ));
    assert!(wire.is_empty());
}

#[tokio::test]
async fn write_frame_layout() {
    let mut wire = Vec::new();
    write_frame(&mut wire, b"").await.unwrap();
    write_frame(&mut wire, &[0xab; 258]).await.unwrap();
    assert_eq!(wire[..4], [0, 0, 0, 0]);
    assert_eq!(wire[4..8], [2, 1, 0, 0], "u32 little-endian length");
    assert_eq!(wire.len(), 8 + 258);
}

#[tokio::test]
async fn undecodable_frame_is_decode_and_the_stream_recovers() {
    // A frame that holds garbage is a decode error, not a disconnect, and the
    // frame boundary keeps the next message readable.
    let good = ClientMessage {
        id: 2,
        request: Request::ListSessions,
        progress: false,
    };
    let wire = [
        frame(&[0x01, 0x63]), // id 1, request variant 99: no such variant
        frame(&encode(&good).unwrap()),
        frame(&[]), // empty payload: not a message
        frame(&encode(&good).unwrap()),
    ]
    .concat();
    let mut r = wire.as_slice();
    assert!(matches!(
        read_message::<ClientMessage, _>(&mut r).await,
        Err(ProtoError::Decode(_))
    ));
    assert_eq!(read_message(&mut r).await.unwrap(), Some(good.clone()));
    assert!(matches!(
        read_message::<ClientMessage, _>(&mut r).await,
        Err(ProtoError::Decode(_))
    ));
    assert_eq!(read_message(&mut r).await.unwrap(), Some(good));
    assert!(
        read_message::<ClientMessage, _>(&mut r)
            .await
            .unwrap()
            .is_none()
    );
}
