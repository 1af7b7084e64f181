//! fnatd as a library: the config, the DPDK driver, the rules store and (later) the control
//! plane. The binary (`src/main.rs`) is a thin CLI over these.

pub mod bench;
pub mod config;
pub mod control;
pub mod driver;
pub mod hugealloc;
pub mod metrics;
pub mod notify;
pub mod preflight;
pub mod progress;
pub mod rules_store;
