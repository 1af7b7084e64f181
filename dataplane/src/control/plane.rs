//! The control plane's state and the one place requests are answered: the operator rule
//! set, the ids it maps to, and the path from a change to a published snapshot:
//! validate → compile → write the state file → publish → reply. Any failure before the
//! publish leaves everything (rules, ids, state file, running snapshot) as it was.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fnat_engine::rules::{Mode, Timeouts};
use fnat_proto::edit::{apply_all, Change};
use fnat_proto::model::{IpvsTimeouts, RuleSet, ServiceAddr};
use fnat_proto::msg::{ErrorBody, ErrorKind, Query, Request, Response};
use fnat_proto::stats::{Applied, Listing, RealStats, ServiceStats, Status};

use super::compile::{compile, timeouts};
use super::ids::IdBook;
use super::{state_file, DataplaneView};
use crate::rules_store::RulesStore;

/// How long a publish may wait for every worker to switch.
const PUBLISH_WAIT: Duration = Duration::from_secs(5);
/// Most connection entries one request returns.
const MAX_CONNECTIONS_LISTED: usize = 1_000_000;
const DEFAULT_CONNECTIONS_LISTED: usize = 10_000;

pub struct Plane {
    pub rules: RuleSet,
    pub ids: IdBook,
    pub store: Arc<RulesStore>,
    pub view: Arc<dyn DataplaneView>,
    /// The config's timeouts, before ipvsadm's `--set` overrides.
    pub base_timeouts: Timeouts,
    pub state_file: Option<PathBuf>,
    pub socket: PathBuf,
    pub started: Instant,
    /// The config file the daemon started from (what `reload` re-reads).
    pub config_path: PathBuf,
}

fn error(kind: ErrorKind, message: impl Into<String>) -> ErrorBody {
    ErrorBody {
        kind,
        message: message.into(),
    }
}

impl Plane {
    pub fn handle(&mut self, request: Request) -> Response {
        let result = match request {
            Request::Change(change) => self.change(std::slice::from_ref(&change)),
            Request::Query(Query::Apply { changes }) => self.change(&changes),
            Request::Query(q) => self.query(q),
        };
        match result {
            Ok(r) => r,
            Err(e) => Response::error(e),
        }
    }

    /// Applies `changes` all-or-nothing and publishes the result.
    pub fn change(&mut self, changes: &[Change]) -> Result<Response, ErrorBody> {
        let mut next = self.rules.clone();
        apply_all(&mut next, changes)?;
        let mut ids = self.ids.clone();
        ids.assign(&next);
        let current = self.store.current();
        let snapshot = compile(&current, &self.base_timeouts, &next, &ids)?;
        if let Some(path) = &self.state_file {
            state_file::store(path, &next).map_err(|e| error(ErrorKind::Internal, e))?;
        }
        // Stored even when a worker is slow to acknowledge: the model must follow the store.
        let published = self.store.publish(snapshot, PUBLISH_WAIT);
        self.rules = next;
        self.ids = ids;
        match published {
            Ok(generation) => Ok(Response::ok(Applied { generation })),
            Err(e) => Err(error(ErrorKind::Internal, e.to_string())),
        }
    }

    fn effective_timeouts(&self) -> IpvsTimeouts {
        let t = timeouts(&self.base_timeouts, &self.rules);
        IpvsTimeouts {
            tcp: t.tcp_established,
            tcp_fin: t.tcp_fin_wait,
            udp: t.udp,
        }
    }

    fn query(&mut self, q: Query) -> Result<Response, ErrorBody> {
        match q {
            Query::Status => Ok(Response::ok(self.status())),
            Query::TimeoutGet => Ok(Response::ok(self.effective_timeouts())),
            Query::List { service } => Ok(Response::ok(self.listing(service)?)),
            Query::Connections { filter, limit } => {
                let limit = limit
                    .unwrap_or(DEFAULT_CONNECTIONS_LISTED)
                    .min(MAX_CONNECTIONS_LISTED);
                Ok(Response::ok(self.view.connections(&filter, limit)))
            }
            Query::Zero { service } => {
                let id = match service {
                    Some(s) => {
                        if self.rules.service(&s).is_none() {
                            return Err(error(ErrorKind::NoSuchService, "No such service"));
                        }
                        Some(self.ids.service(&s).ok_or_else(|| {
                            error(ErrorKind::Internal, "service without an engine id")
                        })?)
                    }
                    None => None,
                };
                self.view.zero(id);
                Ok(Response::ok(serde_json::json!({})))
            }
            Query::Apply { .. } => Err(error(ErrorKind::Internal, "apply is a change")),
            Query::Reload => self.reload(),
        }
    }

    /// Re-reads the config file: its services, local addresses and timeouts replace the live
    /// ones, published like any change. A file that does not validate, or whose rules the
    /// engine cannot run, leaves everything as it was and says why. Ports, EAL and dataplane
    /// sizes are read only at start.
    pub fn reload(&mut self) -> Result<Response, ErrorBody> {
        let unchanged = "; the running rules are unchanged";
        let cfg = crate::config::AppConfig::load(&self.config_path)
            .map_err(|e| error(ErrorKind::Invalid, format!("config reload: {e}{unchanged}")))?;
        let (rules, _) = super::compile::from_engine(&cfg.rules);
        let previous = std::mem::replace(&mut self.base_timeouts, cfg.rules.timeouts);
        let result = self.change(&[fnat_proto::edit::Change::Replace { rules }]);
        if let Err(e) = &result {
            self.base_timeouts = previous;
            return Err(error(
                e.kind,
                format!("config reload: {}{unchanged}", e.message),
            ));
        }
        result
    }

    fn status(&self) -> Status {
        let current = self.store.current();
        Status {
            daemon_version: env!("CARGO_PKG_VERSION").to_string(),
            protocol_version: fnat_proto::PROTOCOL_VERSION,
            generation: current.generation,
            mode: match current.mode {
                Mode::FullNat => "fullnat".into(),
                Mode::Passthrough { .. } => "passthrough".into(),
            },
            services: self.rules.services.len(),
            reals: self.rules.real_count(),
            local_addresses: self
                .rules
                .services
                .iter()
                .map(|s| s.local_addresses.len())
                .sum(),
            uptime_s: self.started.elapsed().as_secs(),
            socket: self.socket.display().to_string(),
            state_file: self.state_file.as_ref().map(|p| p.display().to_string()),
        }
    }

    /// The rules (or one service) with the dataplane's counters mapped from ids to keys.
    fn listing(&self, only: Option<ServiceAddr>) -> Result<Listing, ErrorBody> {
        let rules = match only {
            Some(addr) => RuleSet {
                timeouts: self.rules.timeouts,
                services: vec![self
                    .rules
                    .service(&addr)
                    .cloned()
                    .ok_or_else(|| error(ErrorKind::NoSuchService, "No such service"))?],
            },
            None => self.rules.clone(),
        };
        let view = self.view.stats();
        let (service_of, real_of) = self.ids.reverse();
        let mut by_service: HashMap<ServiceAddr, ServiceStats> = HashMap::new();
        let mut has_own_counters = HashMap::new();
        for s in &view.services {
            if let Some(addr) = service_of.get(&s.service_id) {
                let entry = by_service.entry(*addr).or_insert_with(|| ServiceStats {
                    service: *addr,
                    counters: Default::default(),
                    reals: Vec::new(),
                });
                entry.counters.add(&s.counters);
                has_own_counters.insert(*addr, true);
            }
        }
        for r in &view.reals {
            let Some((addr, key)) = real_of.get(&r.real_id) else {
                continue;
            };
            let entry = by_service.entry(*addr).or_insert_with(|| ServiceStats {
                service: *addr,
                counters: Default::default(),
                reals: Vec::new(),
            });
            // Without service-level counters, a service counts what its reals count (DPVS).
            if !has_own_counters.contains_key(addr) {
                entry.counters.add(&r.counters);
            }
            entry.reals.push(RealStats {
                addr: Some(*key.ip()),
                port: key.port(),
                counters: r.counters,
                active_conns: r.active_conns,
                inactive_conns: r.inactive_conns,
                persistent_conns: r.persistent_conns,
            });
        }
        let stats = rules
            .services
            .iter()
            .filter_map(|s| by_service.remove(&s.addr))
            .collect();
        Ok(Listing {
            rules,
            timeouts: Some(self.effective_timeouts()),
            stats,
            drops: view.drops,
            ports: view.ports,
            local_addrs: view.local_addrs,
        })
    }
}
