//! CPU hints the packet path uses.

/// x86's `_MM_HINT_T0`: into every cache level.
const HINT_T0: i32 = 3;
/// x86's `_MM_HINT_NTA`: into the nearest cache, out of the others where the CPU can.
const HINT_NTA: i32 = 0;

/// Asks the CPU to start loading the cache line at `addr` into every cache level (DPDK's
/// `rte_prefetch0`). A hint: it never faults, whatever `addr` is (null, dangling, unmapped),
/// reads nothing the program can observe and changes nothing, so it is a safe function.
#[inline(always)]
pub fn prefetch0(addr: *const u8) {
    prefetch::<HINT_T0>(addr);
}

/// Asks the CPU to start loading the cache line at `addr` into the nearest cache, keeping it
/// out of the others where the CPU can (`PREFETCHNTA`, DPDK's `rte_prefetch_non_temporal`):
/// for a line used once and not again before it would be evicted anyway, which then does not
/// push out lines that are. A hint, as [`prefetch0`].
#[inline(always)]
pub fn prefetch_non_temporal(addr: *const u8) {
    prefetch::<HINT_NTA>(addr);
}

/// `PREFETCHh` with the locality `HINT` (one of the `HINT_*` above).
#[inline(always)]
#[allow(clippy::not_unsafe_ptr_arg_deref)] // a prefetch never dereferences `addr`
fn prefetch<const HINT: i32>(addr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHh is a hint: it does not fault on any address and has no architectural
    // effect; SSE (which provides it) is part of the x86-64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<HINT>(addr.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}
