//! Hostile lengths are refused before anything is allocated for them.
//!
//! This binary installs a global allocator that records, per thread, the
//! largest single allocation since the last reset. Each test runs on its own
//! thread and the tokio runtime used is current-thread, so what a test
//! measures is what the code under test allocated.

mod common;

mod peak_alloc;

use common::StallAfter;
use sshmcp_proto::{ClientMessage, MAX_FRAME_LEN, ProtoError, ServerMessage, decode, read_frame};

#[global_allocator]
static GLOBAL: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

/// The largest single allocation `f` made on this thread.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    peak_alloc::reset();
    let out = f();
    (out, peak_alloc::peak())
}

/// Anything under this is bookkeeping, not a buffer sized by the input.
const SMALL: usize = 64 * 1024;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn oversize_frame_prefix_allocates_nothing_for_the_payload() {
    for len in [u32::MAX, MAX_FRAME_LEN + 1] {
        let mut r = StallAfter::new(len.to_le_bytes());
        // Build the runtime outside the measurement.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // The timeout only keeps a regression from hanging the run: the
        // reader never delivers a payload, so only a refusal completes.
        let (answer, peak) = peak_of(|| {
            rt.block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(5), read_frame(&mut r)).await
            })
        });
        assert!(peak < SMALL, "length {len}: allocated {peak} bytes");
        let answer = answer.expect("refused at once, without waiting for a payload");
        assert!(
            matches!(answer, Err(ProtoError::FrameTooLarge { .. })),
            "{answer:?}"
        );
    }
}

#[test]
fn the_allocator_probe_works() {
    let (buf, peak) = peak_of(|| vec![1u8; 1024 * 1024]);
    assert_eq!(buf.len(), 1024 * 1024);
    assert!(peak >= buf.len(), "peak {peak}");
}

#[test]
fn a_large_prefix_within_the_cap_allocates_only_what_arrives() {
    let len = MAX_FRAME_LEN - 1;
    let mut r = StallAfter::new(len.to_le_bytes());
    let (answer, peak) = peak_of(|| {
        block_on(async {
            tokio::time::timeout(std::time::Duration::from_millis(10), read_frame(&mut r)).await
        })
    });
    assert!(answer.is_err(), "the stalled reader cannot complete");
    assert!(
        peak < SMALL * 2,
        "allocated {peak} bytes for a payload that never came"
    );
}

/// A `Disconnect` whose session id claims `len` bytes and holds 3.
fn string_claiming(len: u64) -> Vec<u8> {
    let mut v = vec![0x01, 0x01, 0xfd];
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(b"abc");
    v
}

/// An `Execute` whose stdin claims `len` bytes and holds 3.
fn stdin_claiming(len: u64) -> Vec<u8> {
    let mut v = vec![0x01, 0x03, 0x01, b's', 0x01, b'c', 0x01, 0xfd];
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(b"abc");
    v
}

/// A `Sessions` response whose list claims `len` entries and holds none.
fn sessions_claiming(len: u64) -> Vec<u8> {
    let mut v = vec![0x01, 0x02, 0xfd];
    v.extend_from_slice(&len.to_le_bytes());
    v
}

#[test]
fn inner_length_of_2_pow_40_allocates_nothing_for_it() {
    for len in [1u64 << 40, u64::MAX, u64::from(MAX_FRAME_LEN) + 1] {
        let (answer, peak) = peak_of(|| decode::<ClientMessage>(&string_claiming(len)));
        assert!(matches!(answer, Err(ProtoError::Decode(_))));
        assert!(peak < SMALL, "string of {len}: allocated {peak} bytes");

        let (answer, peak) = peak_of(|| decode::<ClientMessage>(&stdin_claiming(len)));
        assert!(matches!(answer, Err(ProtoError::Decode(_))));
        // serde pre-sizes a sequence to at most 1 MiB whatever it claims.
        assert!(
            peak <= 1024 * 1024,
            "stdin of {len}: allocated {peak} bytes"
        );

        let (answer, peak) = peak_of(|| decode::<ServerMessage>(&sessions_claiming(len)));
        assert!(matches!(answer, Err(ProtoError::Decode(_))));
        assert!(
            peak <= 1024 * 1024,
            "{len} sessions: allocated {peak} bytes"
        );
    }
}

/// An inner length inside a small frame may be allocated before the
/// decoder notices the input is shorter, but only up to the limit for that
/// frame's size (16 times it at least, in steps), not the frame cap.
#[test]
fn inner_allocation_is_bounded_by_the_frames_size() {
    for len in [
        100_000,
        u64::from(MAX_FRAME_LEN) - 100,
        u64::from(MAX_FRAME_LEN),
    ] {
        let frame = string_claiming(len);
        assert!(frame.len() < 64);
        let (answer, peak) = peak_of(|| decode::<ClientMessage>(&frame));
        assert!(matches!(answer, Err(ProtoError::Decode(_))));
        assert!(
            peak <= 128 * 1024,
            "allocated {peak} bytes for a claim of {len}"
        );
    }
}
