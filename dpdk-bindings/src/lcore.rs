//! Logical cores: identity, enumeration, and launching closures on worker lcores.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::eal::ensure_up;
use crate::error::{DpdkError, Result, EINVAL};
use crate::ffi;

/// What [`wait`] returns for an lcore whose launched closure panicked (the panic message has
/// already been printed by the panic hook; the panic does not cross into C).
pub const PANICKED: i32 = i32::MIN;

/// `LCORE_ID_ANY`: what [`current`] returns on a thread that is not an EAL lcore.
pub const LCORE_ID_ANY: u32 = u32::MAX;

/// The calling thread's lcore id (`rte_lcore_id`), or [`LCORE_ID_ANY`] for non-EAL threads.
pub fn current() -> u32 {
    // SAFETY: reads the thread-local lcore id; valid on any thread.
    unsafe { ffi::fnat_lcore_id() }
}

/// The main lcore (the one that called `Eal::init`).
pub fn main_lcore() -> u32 {
    // SAFETY: reads EAL's configuration; returns 0 before init.
    unsafe { ffi::rte_get_main_lcore() }
}

/// Every enabled lcore except the main one, ascending.
pub fn worker_lcores() -> Vec<u32> {
    let mut out = Vec::new();
    if !crate::eal::is_initialized() {
        return out;
    }
    // SAFETY: rte_get_next_lcore only reads EAL's lcore table; starting from u32::MAX (-1)
    // is how RTE_LCORE_FOREACH_WORKER starts.
    let mut i = unsafe { ffi::rte_get_next_lcore(u32::MAX, 1, 0) };
    while i < ffi::RTE_MAX_LCORE {
        out.push(i);
        // SAFETY: as above; `i` is an lcore id the previous call returned.
        i = unsafe { ffi::rte_get_next_lcore(i, 1, 0) };
    }
    out
}

/// Number of enabled lcores, main included.
pub fn count() -> u32 {
    // SAFETY: reads EAL's configuration.
    unsafe { ffi::rte_lcore_count() }
}

/// NUMA socket of `lcore` (0 on single-socket machines).
pub fn socket_of(lcore: u32) -> i32 {
    if lcore >= ffi::RTE_MAX_LCORE {
        return ffi::SOCKET_ID_ANY;
    }
    // SAFETY: lcore is in range of EAL's lcore table.
    unsafe { ffi::rte_lcore_to_socket_id(lcore) as i32 }
}

extern "C" fn trampoline<F: FnOnce() -> i32 + Send + 'static>(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<F> leaked by `launch` for exactly this one call.
    let f = unsafe { Box::from_raw(arg.cast::<F>()) };
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(PANICKED)
}

/// Runs `f` on worker lcore `lcore` (`rte_eal_remote_launch`). The closure is boxed and freed
/// by the lcore once it has run. Fails (and drops `f`) if `lcore` is the caller's own lcore,
/// not a worker, or still busy with an earlier launch ([`wait`] for it first).
/// Must be called from the main lcore.
pub fn launch<F: FnOnce() -> i32 + Send + 'static>(lcore: u32, f: F) -> Result<()> {
    ensure_up("rte_eal_remote_launch")?;
    if lcore >= ffi::RTE_MAX_LCORE || lcore == main_lcore() || !worker_lcores().contains(&lcore) {
        return Err(DpdkError::new(
            format!("rte_eal_remote_launch(lcore {lcore}): not a worker lcore"),
            -EINVAL,
        ));
    }
    let arg = Box::into_raw(Box::new(f)).cast::<c_void>();
    // SAFETY: trampoline::<F> matches lcore_function_t and takes ownership of `arg` when (and
    // only when) the launch succeeds; F is Send + 'static so it may run on another thread.
    let ret = unsafe { ffi::rte_eal_remote_launch(Some(trampoline::<F>), arg, lcore) };
    if ret < 0 {
        // SAFETY: the launch failed, so the worker never saw `arg`; we still own the box.
        drop(unsafe { Box::from_raw(arg.cast::<F>()) });
        return Err(DpdkError::new(
            format!("rte_eal_remote_launch(lcore {lcore})"),
            ret,
        ));
    }
    Ok(())
}

/// Waits until the function launched on `lcore` has returned (`rte_eal_wait_lcore`) and gives
/// its return value ([`PANICKED`] if it panicked). Returns 0 if nothing was launched there.
pub fn wait(lcore: u32) -> i32 {
    if lcore >= ffi::RTE_MAX_LCORE || !crate::eal::is_initialized() {
        return 0;
    }
    // SAFETY: lcore is in range; the call only polls the worker's state and reads its result.
    unsafe { ffi::rte_eal_wait_lcore(lcore) }
}
