//! What is checked: per service its quorum settings and sorry server, per real server its
//! weight, inhibit and notify scripts, and its checkers in keepalived's own model (after
//! keepalived's defaults and VS → RS → checker inheritance).

use std::net::SocketAddrV4;

use fnat_keepalived::lvs::Checker;
use fnat_proto::model::{Real, ServiceAddr};

/// Every checked service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthConfig {
    pub services: Vec<ServiceSpec>,
    /// keepalived's `notify_fifo` and `lvs_notify_fifo`: FIFOs (made if missing) that get
    /// one line per change of state (`RS <rs> <vs> UP|DOWN`, `VS <vs> UP|DOWN`), written by
    /// [`fnat_keepalived::notify_fifo`].
    pub notify_fifos: Vec<std::path::PathBuf>,
}

impl HealthConfig {
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Number of checkers over every real server.
    pub fn checker_count(&self) -> usize {
        self.services
            .iter()
            .flat_map(|s| &s.reals)
            .map(|r| r.checkers.len())
            .sum()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub addr: ServiceAddr,
    /// keepalived's `quorum` (default 1): the least sum of live weights for the service to be up.
    pub quorum: u32,
    pub hysteresis: u32,
    pub quorum_up: Option<String>,
    pub quorum_down: Option<String>,
    /// Run `quorum_down` when the checker stops (keepalived's `omega`).
    pub omega: bool,
    /// Put in the pool while the quorum is lost.
    pub sorry: Option<Real>,
    /// The sorry server stays in the table at weight 0 when not in use.
    pub sorry_inhibit: bool,
    pub reals: Vec<RealSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RealSpec {
    pub addr: SocketAddrV4,
    /// The configured weight.
    pub weight: u32,
    /// `inhibit_on_failure`: down means weight 0, not removal.
    pub inhibit: bool,
    pub notify_up: Option<String>,
    pub notify_down: Option<String>,
    pub checkers: Vec<Checker>,
}
