//! The answer to the `vrrp` query: each VRRP instance fnatd runs, as `fnatctl vrrp` shows it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One `vrrp_instance`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpInstanceStatus {
    pub name: String,
    /// The fnatd port (keepalived's `interface`) and the kernel twin the adverts use.
    pub interface: String,
    pub twin: String,
    pub virtual_router_id: u8,
    /// `INIT`, `BACKUP` or `MASTER` (keepalived's names).
    pub state: String,
    /// The configured priority.
    pub priority: u8,
    /// The priority in the adverts (tracking's weights applied).
    pub effective_priority: u8,
    /// The current master's primary address, when known.
    pub master: Option<String>,
    pub virtual_ipaddress: Vec<String>,
    /// keepalived's statistics names (`advert_rcvd`, `advert_interval_err`, `ip_ttl_err`,
    /// `auth_failure`, …) and fnat's `checksum_err`.
    pub counters: BTreeMap<String, u64>,
    /// Why the service is not running on the twin yet (it cannot open it), if so.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpListing {
    pub instances: Vec<VrrpInstanceStatus>,
}
