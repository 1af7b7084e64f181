//! The one error type of this crate: which DPDK operation failed and the (negative) errno it
//! reported.

use std::ffi::CStr;
use std::fmt;

use crate::ffi;

/// `EINVAL`, used when this crate rejects an argument before calling DPDK.
pub(crate) const EINVAL: i32 = 22;
/// `ENODEV`, used when EAL is not initialised.
pub(crate) const ENODEV: i32 = 19;
/// `EALREADY`.
pub(crate) const EALREADY: i32 = 114;

/// A failed DPDK call: `what` names the operation (and its object), `code` is the negative errno
/// (`-rte_errno` for calls that report through `rte_errno`, the return value otherwise).
///
/// Displays as `rte_eth_dev_configure(port 0): Invalid argument (-22)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkError {
    what: String,
    code: i32,
}

/// This crate's result type.
pub type Result<T> = std::result::Result<T, DpdkError>;

impl DpdkError {
    /// An error for operation `what` with errno `code` (either sign; stored negative).
    pub fn new(what: impl Into<String>, code: i32) -> Self {
        let code = if code > 0 { -code } else { code };
        DpdkError {
            what: what.into(),
            code,
        }
    }

    /// An error for `what` taking the code from the calling thread's `rte_errno`.
    pub(crate) fn from_errno(what: impl Into<String>) -> Self {
        // SAFETY: fnat_errno only reads the thread-local rte_errno.
        let e = unsafe { ffi::fnat_errno() };
        Self::new(what, if e == 0 { -EINVAL } else { e })
    }

    /// Turns a DPDK-style return value (negative errno on failure) into a result.
    pub(crate) fn check(what: impl FnOnce() -> String, ret: i32) -> Result<i32> {
        if ret < 0 {
            Err(Self::new(what(), ret))
        } else {
            Ok(ret)
        }
    }

    /// The operation that failed, e.g. `rte_eth_dev_configure(port 0)`.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The negative errno, e.g. `-22`.
    pub fn code(&self) -> i32 {
        self.code
    }
}

/// The text DPDK gives for errno `code` (either sign).
pub fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a pointer to a NUL-terminated string
    // (a static string, or a per-thread buffer for unknown codes) that we copy at once.
    let p = unsafe { ffi::rte_strerror(code.saturating_abs()) };
    if p.is_null() {
        return format!("error {}", code.saturating_abs());
    }
    // SAFETY: non-null, NUL-terminated, valid until the next rte_strerror call on this thread.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.what, strerror(self.code), self.code)
    }
}

impl std::error::Error for DpdkError {}
