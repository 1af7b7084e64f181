//! Health checking as the control socket shows it: what the checks do to a configured
//! service's live form (an overlay the control plane applies on top of the operator's rules,
//! never written into them), and each checker's state for `fnatctl health`.

use std::net::SocketAddrV4;

use serde::{Deserialize, Serialize};

use crate::model::{Real, Service};

/// What health checking does to one configured service: reals taken out, reals given another
/// weight (0 under `inhibit_on_failure`, a `misc_dynamic` weight), the sorry server put in.
/// Reals the service does not have are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceOverlay {
    #[serde(default)]
    pub removed: Vec<SocketAddrV4>,
    #[serde(default)]
    pub weights: Vec<(SocketAddrV4, u32)>,
    #[serde(default)]
    pub sorry: Option<Real>,
}

impl ServiceOverlay {
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.weights.is_empty() && self.sorry.is_none()
    }

    /// The live form of `configured`: the operator's service with this overlay applied.
    pub fn apply(&self, configured: &Service) -> Service {
        let mut s = configured.clone();
        s.reals.retain(|r| !self.removed.contains(&r.key()));
        for (key, weight) in &self.weights {
            for r in s.reals.iter_mut().filter(|r| r.key() == *key) {
                r.weight = *weight;
            }
        }
        if let Some(sorry) = &self.sorry {
            match s.reals.iter_mut().find(|r| r.key() == sorry.key()) {
                Some(r) => r.weight = sorry.weight,
                None => s.reals.push(*sorry),
            }
        }
        s
    }
}

/// One checker of one real server, as `fnatctl health` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckerStatus {
    /// The service, as fnatctl names it (`tcp/198.18.10.100:80`, `fwmark/7`).
    pub service: String,
    /// The real server `IP:PORT`.
    pub real: String,
    /// keepalived's keyword: TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, UDP_CHECK, ...
    pub checker: String,
    /// What is probed (`connect_ip:connect_port`, or the script).
    pub target: String,
    /// "up" or "down".
    pub state: String,
    /// "success", "failure", or "none" before the first probe.
    pub last_result: String,
    /// Why the last probe failed (e.g. "HTTP status 500", "connect timeout").
    pub reason: String,
    pub consecutive_failures: u32,
    /// Unix time (seconds) of the last change of state, if any.
    pub last_transition: Option<u64>,
    /// The real server's state over all its checkers and the weight it has in the live table
    /// (None: not in the table).
    pub real_state: String,
    pub live_weight: Option<u32>,
}

/// One virtual service's quorum, as `fnatctl health` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceHealth {
    pub service: String,
    pub quorum: u32,
    pub hysteresis: u32,
    /// Sum of the weights of the reals that are up.
    pub alive_weight: u64,
    pub quorum_up: bool,
    /// The sorry server is in the pool.
    pub sorry_in_use: bool,
}

/// The answer to the `health` query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthListing {
    pub services: Vec<ServiceHealth>,
    pub checkers: Vec<CheckerStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Scheduler, ServiceAddr};
    use std::net::Ipv4Addr;

    #[test]
    fn overlay_removes_reweights_and_adds_the_sorry_server() {
        let mut s = Service::new(
            ServiceAddr::tcp(Ipv4Addr::new(198, 18, 0, 1), 80),
            Scheduler::Rr,
        );
        s.reals = vec![
            Real::new(Ipv4Addr::new(198, 19, 1, 11), 80, 5),
            Real::new(Ipv4Addr::new(198, 19, 1, 12), 80, 5),
            Real::new(Ipv4Addr::new(198, 19, 1, 13), 80, 5),
        ];
        let o = ServiceOverlay {
            removed: vec![s.reals[0].key()],
            weights: vec![(s.reals[1].key(), 0)],
            sorry: Some(Real::new(Ipv4Addr::new(198, 19, 1, 99), 80, 1)),
        };
        let live = o.apply(&s);
        let got: Vec<(String, u32)> = live
            .reals
            .iter()
            .map(|r| (r.key().to_string(), r.weight))
            .collect();
        assert_eq!(
            got,
            [
                ("198.19.1.12:80".to_string(), 0),
                ("198.19.1.13:80".to_string(), 5),
                ("198.19.1.99:80".to_string(), 1)
            ]
        );
        assert!(ServiceOverlay::default().apply(&s) == s);
    }
}
