//! VRRP for fnat (control side, never on workers).
//!
//! - [`machine`]: the RFC 5798 state machine of one virtual router, pure and clock-injected;
//! - [`packet`]: VRRP v2 (`auth_type PASS`) and v3 advertisements, checked as keepalived
//!   checks them, each refusal under keepalived's counter name.
#![forbid(unsafe_code)]

pub mod machine;
pub mod packet;
