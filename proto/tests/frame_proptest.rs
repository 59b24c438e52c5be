//! Property tests of the frame reader and the hello decoders over untrusted
//! bytes: they never panic, every outcome is one the contract names, and
//! what they return agrees with a plain model of the layout. Plus round trips
//! of messages built from a few simple variants.
//!
//! The allocation bound under the same inputs is measured in
//! `tests/frame_alloc_proptest.rs`, which installs a counting allocator.
//!
//! These tests deliberately name as few message fields as possible, so that a
//! new field or variant in `messages` does not change them: arbitrary bytes
//! are decoded as whatever the current types are, and only variants that
//! carry nothing or an id or a string are built by hand.

use proptest::collection::vec;
use proptest::prelude::*;
use serde::{Serialize, de::DeserializeOwned};
use sshmcp_proto::{
    ClientMessage, ErrorBody, ErrorKind, HELLO_MAGIC, Hello, HelloReply, HelloStatus,
    MAX_FRAME_LEN, ProtoError, Request, Response, ServerMessage, decode, encode, read_frame,
    read_message, write_frame, write_message,
};
use std::fmt::Debug;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Yields `data` in reads no longer than the successive `chunks` (cycled; a
/// zero counts as one), then end of stream: the partial reads a socket may
/// deliver.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    chunks: Vec<usize>,
    next: usize,
}

impl Chunked {
    fn new(data: Vec<u8>, chunks: Vec<usize>) -> Self {
        Chunked {
            data,
            pos: 0,
            chunks,
            next: 0,
        }
    }
}

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let chunk = match this.chunks.len() {
            0 => usize::MAX,
            n => this.chunks[this.next % n].max(1),
        };
        this.next += 1;
        let n = chunk.min(buf.remaining()).min(this.data.len() - this.pos);
        buf.put_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// What `read_frame` must answer for `wire[pos..]`, and where the next frame
/// starts. Written from the layout in the crate docs, not from `frame.rs`.
#[derive(Debug, PartialEq)]
enum Expected {
    End,
    Frame(Vec<u8>),
    TooLarge(u64),
    Truncated,
}

fn model(wire: &[u8], pos: usize) -> (Expected, usize) {
    let rest = &wire[pos..];
    if rest.is_empty() {
        return (Expected::End, pos);
    }
    if rest.len() < 4 {
        return (Expected::Truncated, wire.len());
    }
    let len = u32::from_le_bytes(rest[..4].try_into().unwrap());
    if len > MAX_FRAME_LEN {
        return (Expected::TooLarge(len.into()), pos + 4);
    }
    let len = len as usize;
    if rest.len() - 4 < len {
        return (Expected::Truncated, wire.len());
    }
    (Expected::Frame(rest[4..4 + len].to_vec()), pos + 4 + len)
}

/// One piece of a hostile stream: raw bytes, a well-formed frame of random
/// bytes or of a (perhaps damaged) encoded message, or a prefix announcing
/// any length at all.
#[derive(Debug, Clone)]
enum Piece {
    Raw(Vec<u8>),
    Frame(Vec<u8>),
    Prefix(u32, Vec<u8>),
}

/// A simple client or server message, encoded, with at most one byte
/// overwritten.
fn encoded_message() -> impl Strategy<Value = Vec<u8>> {
    let client = (any::<u64>(), simple_request(), any::<bool>())
        .prop_map(|(id, request, progress)| encode(&client_message(id, request, progress)));
    let server = (any::<u64>(), simple_response())
        .prop_map(|(id, response)| encode(&ServerMessage { id, response }));
    let damage = prop::option::of((any::<prop::sample::Index>(), any::<u8>()));
    (prop_oneof![client, server], damage).prop_map(|(bytes, damage)| {
        let mut bytes = bytes.unwrap();
        if let Some((at, byte)) = damage {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        bytes
    })
}

fn piece() -> impl Strategy<Value = Piece> {
    // Bytes biased towards what bincode reads specially: small variant tags,
    // `Option`/`bool` bytes and the varint width markers.
    let byte = prop_oneof![0u8..12, 0xfbu8..=0xff, any::<u8>()];
    let bytes = vec(byte, 0..48);
    let length = prop_oneof![
        0u32..64,
        MAX_FRAME_LEN - 2..=MAX_FRAME_LEN + 2,
        any::<u32>(),
    ];
    prop_oneof![
        1 => bytes.clone().prop_map(Piece::Raw),
        2 => bytes.clone().prop_map(Piece::Frame),
        2 => encoded_message().prop_map(Piece::Frame),
        1 => (length, bytes).prop_map(|(len, tail)| Piece::Prefix(len, tail)),
    ]
}

fn wire_of(pieces: &[Piece]) -> Vec<u8> {
    let mut wire = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Raw(bytes) => wire.extend_from_slice(bytes),
            Piece::Frame(payload) => {
                wire.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                wire.extend_from_slice(payload);
            }
            Piece::Prefix(len, tail) => {
                wire.extend_from_slice(&len.to_le_bytes());
                wire.extend_from_slice(tail);
            }
        }
    }
    wire
}

/// Reads `wire` frame by frame as `T`, checking each answer against the
/// model and `decode`, until the stream ends or the reader must give up.
fn read_all_as<T>(wire: &[u8], chunks: &[usize]) -> Result<(), TestCaseError>
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let mut frames = Chunked::new(wire.to_vec(), chunks.to_vec());
    let mut messages = Chunked::new(wire.to_vec(), chunks.to_vec());
    let mut pos = 0;
    block_on(async {
        loop {
            let (expected, next) = model(wire, pos);
            let frame = read_frame(&mut frames).await;
            let message = read_message::<T, _>(&mut messages).await;
            match (&expected, frame, message) {
                (Expected::End, Ok(None), Ok(None)) => return Ok(()),
                (Expected::Frame(want), Ok(Some(got)), message) => {
                    prop_assert_eq!(want, &got);
                    match (decode::<T>(&got), message) {
                        (Ok(a), Ok(Some(b))) => {
                            prop_assert_eq!(&a, &b);
                            // Whatever decodes encodes again, and that
                            // decodes to the same value.
                            let again = encode(&a).unwrap();
                            prop_assert!(again.len() <= MAX_FRAME_LEN as usize);
                            prop_assert_eq!(decode::<T>(&again).unwrap(), a);
                        }
                        (Err(ProtoError::Decode(_)), Err(ProtoError::Decode(_))) => {}
                        (direct, framed) => {
                            return Err(TestCaseError::fail(format!(
                                "decode gave {direct:?}, read_message gave {framed:?}"
                            )));
                        }
                    }
                }
                (
                    Expected::TooLarge(want),
                    Err(ProtoError::FrameTooLarge { len, max }),
                    Err(ProtoError::FrameTooLarge { .. }),
                ) => {
                    prop_assert_eq!(*want, len);
                    prop_assert_eq!(max, MAX_FRAME_LEN);
                    // The stream cannot be resynchronised after a refused
                    // prefix; a caller drops the connection.
                    return Ok(());
                }
                (Expected::Truncated, Err(ProtoError::Truncated), Err(ProtoError::Truncated)) => {
                    return Ok(());
                }
                (_, frame, message) => {
                    return Err(TestCaseError::fail(format!(
                        "at byte {pos} expected {expected:?}, read_frame gave {frame:?}, \
                         read_message gave {message:?}"
                    )));
                }
            }
            pos = next;
        }
    })
}

/// What the hello decoders must make of `bytes`: the fields, and how many
/// bytes they consume. `with_status` selects the `HelloReply` layout.
fn hello_model(bytes: &[u8], with_status: bool) -> Result<(u32, Option<u8>, String, usize), &str> {
    // The magic is read whole before it is compared.
    if bytes.len() < 8 {
        return Err("truncated");
    }
    if bytes[..8] != HELLO_MAGIC {
        return Err("bad magic");
    }
    let head = if with_status { 14 } else { 13 };
    if bytes.len() < head {
        return Err("truncated");
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let status = with_status.then_some(bytes[12]);
    let len = usize::from(bytes[head - 1]);
    let Some(software) = bytes.get(head..head + len) else {
        return Err("truncated");
    };
    let software = String::from_utf8_lossy(software).into_owned();
    Ok((version, status, software, head + len))
}

/// Arbitrary bytes, half of them after a good magic so that the decoders get
/// past the first check.
fn hello_bytes() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), vec(any::<u8>(), 0..40)).prop_map(|(magic, tail)| {
        if magic {
            [&HELLO_MAGIC[..], &tail].concat()
        } else {
            tail
        }
    })
}

/// The one place this file spells out `ClientMessage`'s fields.
fn client_message(id: u64, request: Request, progress: bool) -> ClientMessage {
    ClientMessage {
        id,
        request,
        progress,
    }
}

fn simple_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::ListSessions),
        Just(Request::Status),
        Just(Request::Shutdown),
        any::<u64>().prop_map(|id| Request::Cancel { id }),
        any::<String>().prop_map(|session_id| Request::Disconnect { session_id }),
    ]
}

fn simple_response() -> impl Strategy<Value = Response> {
    prop_oneof![
        Just(Response::ShuttingDown),
        any::<String>().prop_map(|session_id| Response::Disconnected { session_id }),
        any::<String>().prop_map(|m| Response::Error(ErrorBody::new(ErrorKind::Timeout, m))),
    ]
}

/// Writes `messages` one after another into one stream and reads them
/// back through reads of `chunks` sizes.
fn through_a_stream<M: Serialize + DeserializeOwned>(messages: &[M], chunks: Vec<usize>) -> Vec<M> {
    let mut wire = Vec::new();
    block_on(async {
        for msg in messages {
            write_message(&mut wire, msg).await.unwrap();
        }
    });
    let mut r = Chunked::new(wire, chunks);
    block_on(async {
        let mut back = Vec::new();
        while let Some(msg) = read_message::<M, _>(&mut r).await.unwrap() {
            back.push(msg);
        }
        back
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_stream_reads_as_the_layout_says(
        pieces in vec(piece(), 0..6),
        chunks in vec(0usize..9, 0..4),
    ) {
        let wire = wire_of(&pieces);
        read_all_as::<ClientMessage>(&wire, &chunks)?;
        read_all_as::<ServerMessage>(&wire, &chunks)?;
    }

    #[test]
    fn any_bytes_read_as_the_layout_says(
        wire in vec(any::<u8>(), 0..64),
        chunks in vec(0usize..9, 0..4),
    ) {
        read_all_as::<ClientMessage>(&wire, &chunks)?;
        read_all_as::<ServerMessage>(&wire, &chunks)?;
    }

    #[test]
    fn any_bytes_read_as_a_hello_as_the_layout_says(
        bytes in hello_bytes(),
        chunks in vec(0usize..9, 0..4),
    ) {
        let mut r = Chunked::new(bytes.clone(), chunks);
        let got = block_on(Hello::read(&mut r));
        match (hello_model(&bytes, false), got) {
            (Ok((version, None, software, used)), Ok(hello)) => {
                prop_assert_eq!(hello, Hello { proto_version: version, software });
                prop_assert_eq!(r.pos, used, "read past the hello");
            }
            (Err("bad magic"), Err(ProtoError::BadMagic))
            | (Err("truncated"), Err(ProtoError::Truncated)) => {}
            (want, got) => {
                return Err(TestCaseError::fail(format!("expected {want:?}, got {got:?}")));
            }
        }
    }

    #[test]
    fn any_bytes_read_as_a_hello_reply_as_the_layout_says(
        bytes in hello_bytes(),
        chunks in vec(0usize..9, 0..4),
    ) {
        let mut r = Chunked::new(bytes.clone(), chunks);
        let got = block_on(HelloReply::read(&mut r));
        match (hello_model(&bytes, true), got) {
            (Ok((version, Some(status), software, used)), Ok(reply)) => {
                let status = if status == 0 {
                    HelloStatus::Accepted
                } else {
                    HelloStatus::VersionMismatch
                };
                prop_assert_eq!(
                    reply,
                    HelloReply { proto_version: version, status, software }
                );
                prop_assert_eq!(r.pos, used, "read past the hello reply");
            }
            (Err("bad magic"), Err(ProtoError::BadMagic))
            | (Err("truncated"), Err(ProtoError::Truncated)) => {}
            (want, got) => {
                return Err(TestCaseError::fail(format!("expected {want:?}, got {got:?}")));
            }
        }
    }

    #[test]
    fn any_hello_round_trips(
        proto_version in any::<u32>(),
        software in any::<String>(),
        accepted in any::<bool>(),
    ) {
        let hello = Hello { proto_version, software: software.clone() };
        let back = block_on(Hello::read(&mut hello.to_bytes().as_slice())).unwrap();
        prop_assert_eq!(back.proto_version, proto_version);

        let status = if accepted {
            HelloStatus::Accepted
        } else {
            HelloStatus::VersionMismatch
        };
        let reply = HelloReply { proto_version, status, software: software.clone() };
        let reply_back = block_on(HelloReply::read(&mut reply.to_bytes().as_slice())).unwrap();
        prop_assert_eq!(reply_back.proto_version, proto_version);
        prop_assert_eq!(reply_back.status, status);

        for got in [back.software, reply_back.software] {
            if software.len() <= 255 {
                prop_assert_eq!(&got, &software);
            } else {
                // Cut to the length byte's 255, on a char boundary.
                prop_assert!(software.starts_with(&got));
                prop_assert!(got.len() > 255 - 4 && got.len() <= 255, "{}", got.len());
            }
        }
    }

    #[test]
    fn client_messages_round_trip_through_a_stream(
        messages in vec((any::<u64>(), simple_request(), any::<bool>()), 1..5),
        chunks in vec(0usize..9, 0..4),
    ) {
        let messages: Vec<ClientMessage> = messages
            .into_iter()
            .map(|(id, request, progress)| client_message(id, request, progress))
            .collect();
        prop_assert_eq!(through_a_stream(&messages, chunks), messages);
    }

    #[test]
    fn server_messages_round_trip_through_a_stream(
        messages in vec((any::<u64>(), simple_response()), 1..5),
        chunks in vec(0usize..9, 0..4),
    ) {
        let messages: Vec<ServerMessage> = messages
            .into_iter()
            .map(|(id, response)| ServerMessage { id, response })
            .collect();
        prop_assert_eq!(through_a_stream(&messages, chunks), messages);
    }

    #[test]
    fn any_payload_round_trips_as_a_frame(
        payload in vec(any::<u8>(), 0..256),
        chunks in vec(0usize..9, 0..4),
    ) {
        let mut wire = Vec::new();
        block_on(write_frame(&mut wire, &payload)).unwrap();
        prop_assert_eq!(wire.len(), 4 + payload.len());
        let mut r = Chunked::new(wire, chunks);
        let (frame, end) = block_on(async {
            (read_frame(&mut r).await.unwrap(), read_frame(&mut r).await.unwrap())
        });
        prop_assert_eq!(frame, Some(payload));
        prop_assert_eq!(end, None);
    }
}
