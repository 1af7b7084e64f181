//! The fnat packet engine.
//!
//! Pure Rust over byte buffers: it parses, classifies and rewrites Ethernet frames and keeps
//! per-worker state (sessions, local ports, timers, counters). It never calls DPDK, never
//! allocates or locks per packet, and takes "now" from its caller, so it is tested, fuzzed and
//! replayed without EAL. The driver (crate `fnatd`) moves frames between DPDK and [`Worker`].

#![forbid(unsafe_code)]

pub mod acl;
pub mod fnat;
pub mod frame;
pub mod laddr;
pub mod neigh;
pub mod packet;
pub mod persist;
pub mod rules;
pub mod sched;
pub mod session;
pub mod stats;
pub mod verdict;
pub mod worker;

pub use frame::{Frame, Frames};
pub use neigh::{Emit, NeighTable};
pub use rules::{PortIndex, Rules};
pub use stats::WorkerStats;
pub use verdict::{DropReason, Verdict};
pub use worker::{Worker, BURST_CHUNK};
