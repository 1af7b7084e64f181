//! What fnatd's control socket and fnatctl share: the operator rule model (every ipvsadm
//! attribute), the wire protocol (newline-delimited JSON with a version), the counters the
//! dataplane reports, and ipvsadm's command line, rules file and output formats.
//!
//! Pure Rust, no DPDK: everything here is unit-tested on its own.

#![forbid(unsafe_code)]

pub mod edit;
pub mod health;
pub mod ipvsadm;
pub mod model;
pub mod msg;
pub mod save;
pub mod stats;
pub mod sync;
pub mod vrrp;

/// The protocol version every request and reply carries.
pub const PROTOCOL_VERSION: u32 = 1;

#[cfg(feature = "cli-docs")]
pub mod cli_docs;
