//! The time-stamp counter.

use crate::ffi;

/// Current TSC value (`rte_rdtsc`).
#[inline]
pub fn tsc() -> u64 {
    // SAFETY: rdtsc has no preconditions.
    unsafe { ffi::fnat_rdtsc() }
}

/// TSC ticks per second as measured by EAL (`rte_get_tsc_hz`); 0 before EAL is up.
pub fn tsc_hz() -> u64 {
    if !crate::eal::is_initialized() {
        return 0;
    }
    // SAFETY: EAL is up, so the TSC frequency has been calibrated.
    unsafe { ffi::fnat_get_tsc_hz() }
}
