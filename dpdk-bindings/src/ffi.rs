//! Raw FFI: the bindgen output over `shim/shim.h` (DPDK 22.11 headers plus the `fnat_` shim
//! wrappers for DPDK's static-inline functions and macros). Nothing outside this crate sees it.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    improper_ctypes,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    clippy::restriction
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
