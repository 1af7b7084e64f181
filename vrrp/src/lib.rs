//! VRRP for fnat (control side, never on workers).
//!
//! - [`machine`]: the RFC 5798 state machine of one virtual router, pure and clock-injected;
//! - [`packet`]: VRRP v2 (`auth_type PASS`) and v3 advertisements, checked as keepalived
//!   checks them, each refusal under keepalived's counter name;
//! - [`service`]: the instances of one interface over a raw socket, notify scripts and
//!   FIFO, sync groups, keepalived's counters;
//! - [`track`]: `vrrp_script`s and `track_interface`, with keepalived's weights.
#![forbid(unsafe_code)]

pub mod machine;
pub mod packet;
pub mod service;
pub mod track;
