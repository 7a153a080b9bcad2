//! Blob decompression with a cap: `compress::decompress(codec, data, expected_len)`.
//! Input: codec byte, expected_len (u32le, taken modulo 1 MiB + 1), then the stored bytes.
//!
//! Properties: an accepted output is exactly `expected_len` bytes (and for `Codec::None` it is
//! the input itself); no Rust allocation made during the call is larger than the cap, whatever
//! the frame claims. zstd's own C allocations are bounded by libFuzzer's `-malloc_limit_mb`
//! (scripts/fuzz.sh).
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_core::advanced::compress::{Codec, decompress};
use cairn_fuzz::Input;
use libfuzzer_sys::fuzz_target;

/// The cap the target uses.
const CAP: u32 = 1 << 20;

/// The system allocator, recording the largest single request.
struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Tracking = Tracking;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let codec = Codec::from_byte(input.u8() & 3).unwrap_or(Codec::None);
    let expected_len = (input.u32() % (CAP + 1)) as usize;
    let stored = input.rest().to_vec();

    LARGEST.store(0, Ordering::Relaxed);
    let result = decompress(codec, stored.clone(), expected_len);
    let largest = LARGEST.load(Ordering::Relaxed);
    // Error messages allocate a little; nothing may allocate in proportion to a claimed size.
    assert!(largest <= expected_len.max(4096), "allocated {largest} bytes for a cap of {expected_len}");

    if let Ok(out) = result {
        assert_eq!(out.len(), expected_len, "decompressed length differs from the cap");
        if codec == Codec::None {
            assert_eq!(out, stored);
        }
    }
});
