//! ipvsadm compatibility: its command line, its rules files and its output formats.
//!
//! Exit codes follow ipvsadm: 2 when the command line is refused (`fail(2, …)`), 255 when
//! the kernel (here: fnatd) refuses a change (ipvsadm's `main` returns -1), 1 when a listing
//! fails.

pub mod args;
pub mod format;
pub mod rules_file;

/// The command line was refused.
pub const EXIT_USAGE: i32 = 2;
/// fnatd refused the change (ipvsadm returns -1 from main).
pub const EXIT_COMMAND_FAILED: i32 = 255;
/// A listing failed (ipvsadm calls exit(1)).
pub const EXIT_LIST_FAILED: i32 = 1;
