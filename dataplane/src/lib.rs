//! fnatd as a library: the config, the DPDK driver, the rules store and (later) the control
//! plane. The binary (`src/main.rs`) is a thin CLI over these.

#![forbid(unsafe_code)]

pub mod bench;
pub mod driver;
pub mod metrics;
pub mod notify;
pub mod preflight;
pub mod progress;

// The control plane and the config file live in the DPDK-free crate fnat-control.
pub use fnat_control::{config, control, rules_store};
