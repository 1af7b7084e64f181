//! fnat's health checker: keepalived's checkers (TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK,
//! UDP_CHECK, DNS_CHECK, PING_CHECK) with keepalived's state machine (retry, delay_before_retry,
//! delay_loop, alpha, inhibit_on_failure, quorum and hysteresis with the sorry server,
//! notify scripts), run by the control side and never on a worker.
//!
//! - [`spec`]: what is checked (built from keepalived.conf or the native TOML by the one
//!   validator in fnat-control);
//! - [`machine`]: the state machine, pure and driven by outcomes (unit-tested as timelines);
//! - [`probe`]: one probe of each kind, through the host kernel's sockets;
//! - [`monitor`]: the scheduler thread and its probe threads, handing each service's overlay
//!   to a [`monitor::Sink`] (the control plane's one road for changes).
#![forbid(unsafe_code)]

pub mod machine;
pub mod monitor;
pub mod probe;
pub mod spec;

pub use monitor::{Monitor, Sink};
pub use spec::{HealthConfig, RealSpec, ServiceSpec};
