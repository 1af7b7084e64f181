//! fnat's control plane, without DPDK (unit-tested and fuzzed without EAL): the appliance
//! config file, the control socket and what answers it (validation and compilation through
//! fnat-proto's one rule model, publication to workers, the state file). fnatd's driver runs
//! it and reports live counters and sessions through [`control::DataplaneView`].

#![forbid(unsafe_code)]

pub mod config;
pub mod control;
pub mod rules_store;
