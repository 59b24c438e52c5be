//! Hostile lengths are refused before anything is allocated for them.
//!
//! This binary installs a global allocator that records, per thread, the
//! largest single allocation since the last reset. Each test runs on its own
//! thread and the tokio runtime used is current-thread, so what a test
//! measures is what the code under test allocated.

mod common;

use common::StallAfter;
use sshmcp_proto::{ClientMessage, MAX_FRAME_LEN, ProtoError, ServerMessage, decode, read_frame};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct PeakAlloc;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = PEAK.try_with(|peak| peak.set(peak.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to `System`; only a size is
// recorded on the side, in a const-initialised thread-local that never
// allocates.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: PeakAlloc = PeakAlloc;

/// The largest single allocation `f` made on this thread.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    PEAK.with(|p| p.set(0));
    let out = f();
    (out, PEAK.with(Cell::get))
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

/// The codec's documented bound: an inner length inside the cap may be
/// allocated before the decoder notices the input is shorter, but never more
/// than `MAX_FRAME_LEN`, however small the frame. (Today a 14-byte message
/// claiming just under the cap does cost a zeroed allocation of that size,
/// as a 4-byte frame prefix does in `read_frame`: bounded, not free.)
#[test]
fn inner_allocation_is_bounded_by_the_frame_cap() {
    // Just under the cap, since the id and the variant tag count against
    // bincode's limit too.
    for len in [u64::from(MAX_FRAME_LEN) - 100, u64::from(MAX_FRAME_LEN)] {
        let (answer, peak) = peak_of(|| decode::<ClientMessage>(&string_claiming(len)));
        assert!(matches!(answer, Err(ProtoError::Decode(_))));
        assert!(peak <= MAX_FRAME_LEN as usize, "allocated {peak} bytes");
    }
}
