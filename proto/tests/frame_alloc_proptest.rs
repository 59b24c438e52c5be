//! Property: whatever length a frame prefix announces, the frame reader
//! allocates only for the bytes that actually arrived. A prefix over
//! [`MAX_FRAME_LEN`] is refused before anything is allocated, and a prefix
//! under it grows the buffer with the payload instead of reserving the
//! announced length up front, whether the peer then closes (truncated) or
//! goes quiet (the read is still pending).
//!
//! This binary installs a global allocator that records, per thread, the
//! largest single allocation since the last reset. The futures under test are
//! polled by hand with a no-op waker, not by a runtime, so every allocation
//! measured is the frame reader's, and a stalled peer shows as `Pending`
//! without a timer.

mod peak_alloc;

use proptest::prelude::*;
use sshmcp_proto::{
    ClientMessage, MAX_FRAME_LEN, ProtoError, ServerMessage, read_frame, read_message,
};
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, ReadBuf};

#[global_allocator]
static GLOBAL: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

/// Polls `f` once, on this thread, and returns its answer (if it had one)
/// with the largest single allocation made meanwhile.
fn poll_once<F: Future>(f: F) -> (Poll<F::Output>, usize) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut f = pin!(f);
    peak_alloc::reset();
    let answer = f.as_mut().poll(&mut cx);
    (answer, peak_alloc::peak())
}

/// More than the reader's own bookkeeping, far less than any length a
/// hostile prefix could make it reserve.
const BOOKKEEPING: usize = 1024;

/// The frame reader's first buffer: `min(len, FIRST_BUFFER)` whatever
/// arrives, so that ordinary frames need no regrowth.
const FIRST_BUFFER: usize = 64 * 1024;

/// The most the reader may hold for a payload of which `arrived` bytes came:
/// its first buffer, or amortised doubling over what arrived (plus the
/// 32-byte read-ahead tokio's `read_to_end` reserves).
fn payload_bound(arrived: usize) -> usize {
    FIRST_BUFFER.max(2 * (arrived + 32))
}

/// A peer that sends `data` and then either closes or goes quiet forever.
struct Peer {
    data: Vec<u8>,
    pos: usize,
    closes: bool,
}

impl AsyncRead for Peer {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos == this.data.len() && !this.closes {
            return Poll::Pending;
        }
        let n = buf.remaining().min(this.data.len() - this.pos);
        buf.put_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// A prefix announcing `len` and then `arrived` bytes of payload.
fn peer(len: u32, arrived: usize, closes: bool) -> Peer {
    let mut data = len.to_le_bytes().to_vec();
    data.resize(4 + arrived, 0xa5);
    Peer {
        data,
        pos: 0,
        closes,
    }
}

/// Lengths under the cap, weighted towards the ones that would hurt if
/// believed.
fn length_under_cap() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..=1024,
        1024u32..=1024 * 1024,
        MAX_FRAME_LEN - 1024..=MAX_FRAME_LEN,
        0..=MAX_FRAME_LEN,
    ]
}

/// What decoding a frame of at most 4 KiB may allocate at once.
const SMALL_FRAME_DECODE: usize = 1024 * 1024;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_prefix_over_the_cap_is_refused_before_allocating(
        len in MAX_FRAME_LEN + 1..=u32::MAX,
        arrived in 0usize..1024,
        closes in any::<bool>(),
    ) {
        let mut r = peer(len, arrived, closes);
        let (answer, peak) = poll_once(read_frame(&mut r));
        let Poll::Ready(Err(ProtoError::FrameTooLarge { len: got, max })) = answer else {
            return Err(TestCaseError::fail(format!("{answer:?}")));
        };
        prop_assert_eq!(got, u64::from(len));
        prop_assert_eq!(max, MAX_FRAME_LEN);
        prop_assert!(peak < BOOKKEEPING, "allocated {} bytes", peak);
        // Not one payload byte was read.
        prop_assert_eq!(r.pos, 4);

        // The same through the message reader, for either side's type.
        let mut r = peer(len, arrived, closes);
        let (answer, peak) = poll_once(read_message::<ClientMessage, _>(&mut r));
        prop_assert!(
            matches!(answer, Poll::Ready(Err(ProtoError::FrameTooLarge { .. }))),
            "{:?}", answer
        );
        prop_assert!(peak < BOOKKEEPING, "allocated {} bytes", peak);
        let mut r = peer(len, arrived, closes);
        let (answer, peak) = poll_once(read_message::<ServerMessage, _>(&mut r));
        prop_assert!(
            matches!(answer, Poll::Ready(Err(ProtoError::FrameTooLarge { .. }))),
            "{:?}", answer
        );
        prop_assert!(peak < BOOKKEEPING, "allocated {} bytes", peak);
    }

    #[test]
    fn a_short_payload_allocates_for_what_arrived_not_what_was_announced(
        len in length_under_cap(),
        arrived_share in 0.0f64..1.0,
        closes in any::<bool>(),
    ) {
        // At most 256 KiB arrive, so each case stays cheap; the announced
        // length may be up to 64 MiB.
        let arrived = ((f64::from(len) * arrived_share) as usize).min(256 * 1024);
        prop_assume!(arrived < len as usize);
        let mut r = peer(len, arrived, closes);
        let (answer, peak) = poll_once(read_frame(&mut r));
        match answer {
            Poll::Ready(Err(ProtoError::Truncated)) => prop_assert!(closes),
            Poll::Pending => prop_assert!(!closes),
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        }
        prop_assert_eq!(r.pos, 4 + arrived, "every byte that came was read");
        prop_assert!(
            peak <= payload_bound(arrived),
            "announced {}, {} arrived, allocated {}", len, arrived, peak
        );
    }

    #[test]
    fn a_whole_frame_allocates_about_its_own_size(
        len in 0usize..=256 * 1024,
    ) {
        let len32 = u32::try_from(len).unwrap();
        let mut r = peer(len32, len, true);
        let (answer, peak) = poll_once(read_frame(&mut r));
        let Poll::Ready(Ok(Some(payload))) = answer else {
            return Err(TestCaseError::fail(format!("{answer:?}")));
        };
        prop_assert_eq!(payload.len(), len);
        prop_assert!(peak <= payload_bound(len), "{} bytes, allocated {}", len, peak);
    }

    /// Decoding a small frame stays small too, never near the frame cap:
    /// a string's claimed length may cost one zeroed allocation up to the
    /// codec's limit for a frame of that size (128 KiB up to 4 KiB of
    /// frame; see `tests/alloc.rs`), and serde sizes a list by its claimed
    /// length up to its own 1 MiB cap.
    #[test]
    fn decoding_a_small_frame_allocates_little(
        payload in prop::collection::vec(
            prop_oneof![0u8..12, 0xfbu8..=0xff, any::<u8>()],
            0..64,
        ),
    ) {
        let len = u32::try_from(payload.len()).unwrap();
        let wire = [&len.to_le_bytes()[..], &payload].concat();
        let (answer, peak) = poll_once(read_message::<ClientMessage, _>(&mut wire.as_slice()));
        prop_assert!(answer.is_ready());
        prop_assert!(peak <= SMALL_FRAME_DECODE, "allocated {}", peak);
        let (answer, peak) = poll_once(read_message::<ServerMessage, _>(&mut wire.as_slice()));
        prop_assert!(answer.is_ready());
        prop_assert!(peak <= SMALL_FRAME_DECODE, "allocated {}", peak);
    }
}
