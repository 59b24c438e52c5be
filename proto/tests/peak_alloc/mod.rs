//! A global allocator that records, per thread, the largest single
//! allocation since the last [`reset`], for the test binaries that bound
//! what the decoder allocates. Each binary installs it itself:
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct PeakAlloc;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = PEAK.try_with(|peak| peak.set(peak.get().max(size)));
}

/// Starts a new measurement on this thread.
pub fn reset() {
    PEAK.with(|p| p.set(0));
}

/// The largest single allocation on this thread since [`reset`].
pub fn peak() -> usize {
    PEAK.with(Cell::get)
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
