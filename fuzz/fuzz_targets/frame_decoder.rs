//! Feeds arbitrary bytes to everything that reads untrusted input off the
//! daemon's socket: the frame reader (as a stream of `ClientMessage`s, as
//! the daemon reads it, and of `ServerMessage`s, as a client does) and the
//! hello decoders. A panic, a hang, or an allocation past libFuzzer's
//! `-malloc_limit_mb` is a finding.
//!
//! The first input byte sets how many bytes each read delivers, so that the
//! partial-read paths are covered as well as whole reads.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Serialize, de::DeserializeOwned};
use sshmcp_proto::{
    ClientMessage, Hello, HelloReply, MAX_FRAME_LEN, ProtoError, ServerMessage, decode, encode,
    read_frame, read_message,
};
use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, ReadBuf};

/// Runs `f` to completion. Every reader here is backed by memory and never
/// waits, so one poll must finish it: a `Pending` would be a hang on a real
/// socket whose peer has sent everything.
fn finish<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a reader over bytes already present did not finish"),
    }
}

/// Yields `data` at most `chunk` bytes per read, then end of stream.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.chunk.min(buf.remaining()).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = rest;
        Poll::Ready(Ok(()))
    }
}

/// Reads `data` as a stream of `T` until it ends or the reader gives up,
/// checking that each outcome is one the frame contract names and that
/// whatever decodes also encodes and decodes back to itself.
fn read_stream<T>(data: &[u8], chunk: usize)
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let mut frames = Chunked { data, chunk };
    let mut messages = Chunked { data, chunk };
    loop {
        let frame = finish(read_frame(&mut frames));
        let message = finish(read_message::<T, _>(&mut messages));
        match (frame, message) {
            (Ok(None), Ok(None)) => return,
            (Ok(Some(payload)), message) => {
                assert!(payload.len() <= MAX_FRAME_LEN as usize);
                match (decode::<T>(&payload), message) {
                    (Ok(direct), Ok(Some(framed))) => {
                        assert_eq!(direct, framed);
                        let again = encode(&direct).expect("a decoded message encodes");
                        assert_eq!(decode::<T>(&again).expect("and decodes again"), direct);
                    }
                    (Err(ProtoError::Decode(_)), Err(ProtoError::Decode(_))) => {}
                    (direct, framed) => panic!("decode: {direct:?}, read_message: {framed:?}"),
                }
            }
            (Err(ProtoError::FrameTooLarge { .. }), Err(ProtoError::FrameTooLarge { .. }))
            | (Err(ProtoError::Truncated), Err(ProtoError::Truncated)) => return,
            (frame, message) => panic!("read_frame: {frame:?}, read_message: {message:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let chunk = match data.first() {
        Some(b) if b % 4 != 0 => usize::from(b % 16) + 1,
        _ => usize::MAX,
    };

    read_stream::<ClientMessage>(data, chunk);
    read_stream::<ServerMessage>(data, chunk);

    match finish(Hello::read(&mut Chunked { data, chunk })) {
        Ok(_) | Err(ProtoError::BadMagic | ProtoError::Truncated) => {}
        Err(other) => panic!("Hello::read: {other:?}"),
    }
    match finish(HelloReply::read(&mut Chunked { data, chunk })) {
        Ok(_) | Err(ProtoError::BadMagic | ProtoError::Truncated) => {}
        Err(other) => panic!("HelloReply::read: {other:?}"),
    }
});
