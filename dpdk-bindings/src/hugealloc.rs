//! The global allocator of `fnatd`: the system allocator, plus advice to back large allocations
//! with transparent huge pages.
//!
//! A worker's session table, hash index and timer wheel are hundreds of megabytes to gigabytes
//! touched at random on every packet. On 4 KiB pages nearly every packet then misses the TLB
//! (in a virtual machine, a two-dimensional page walk); on 2 MiB pages the same tables need a
//! few hundred TLB entries. Most distributions set THP to `madvise`, so fnatd asks for it:
//! every allocation of at least [`THRESHOLD`] bytes gets `madvise(MADV_HUGEPAGE)` on its
//! 2 MiB-aligned interior right after allocation, before the caller first touches it. Nothing
//! changes where THP is `never` (the advice is ignored) or for small allocations. Measured by
//! perf/run.sh (see perf/RESULTS.md).

use std::alloc::{GlobalAlloc, Layout, System};

const HUGE_PAGE: usize = 2 << 20;
/// Allocations from this size on are advised (smaller ones would gain little).
pub const THRESHOLD: usize = 2 * HUGE_PAGE;

/// [`System`] plus `MADV_HUGEPAGE` on large allocations.
pub struct HugePageAlloc;

#[inline]
fn advise(ptr: *mut u8, len: usize) {
    if ptr.is_null() || len < THRESHOLD {
        return;
    }
    let start = (ptr as usize + HUGE_PAGE - 1) & !(HUGE_PAGE - 1);
    let end = (ptr as usize + len) & !(HUGE_PAGE - 1);
    if end > start {
        // SAFETY: [start, end) lies inside the allocation just made; MADV_HUGEPAGE only changes
        // how the kernel backs these pages, never their contents. Failure is harmless.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments; `advise` only adds
// advice on memory the allocation owns.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        advise(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        advise(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        advise(p, new_size);
        p
    }
}
