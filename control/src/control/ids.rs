//! Stable engine ids. Sessions refer to services and real servers by id, so an id must
//! survive every change that keeps its key: a service keeps its id across `-E`, a real keeps
//! its id across weight edits. New keys get fresh ids; ids are never reused while fnatd runs.
//!
//! Ids are kept per service, so that a change to one service costs what that service holds
//! ([`IdBook::assign_service`], [`IdBook::forget`]), and can be taken back ([`IdBook::undo`]).

use std::collections::HashMap;
use std::net::SocketAddrV4;

use fnat_proto::model::{RuleSet, Service, ServiceAddr};

/// The ids of one service and of its real servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceIds {
    id: u32,
    reals: HashMap<SocketAddrV4, u32>,
}

#[derive(Debug, Clone, Default)]
pub struct IdBook {
    services: HashMap<ServiceAddr, ServiceIds>,
    next_service: u32,
    next_real: u32,
}

/// What an incremental change to the book replaced ([`IdBook::undo`] puts it back).
#[derive(Debug)]
pub struct IdUndo {
    addr: ServiceAddr,
    before: Option<ServiceIds>,
    next_service: u32,
    next_real: u32,
}

impl IdBook {
    /// Records an id already in use (from the config's first snapshot).
    pub fn keep_service(&mut self, key: ServiceAddr, id: u32) {
        self.services.entry(key).or_default().id = id;
        self.next_service = self.next_service.max(id);
    }
    pub fn keep_real(&mut self, service: ServiceAddr, real: SocketAddrV4, id: u32) {
        self.services
            .entry(service)
            .or_default()
            .reals
            .insert(real, id);
        self.next_real = self.next_real.max(id);
    }

    /// The ids of `s`: those it had (`before`), fresh ones for new keys, in list order.
    fn ids_for(&mut self, s: &Service, before: Option<ServiceIds>) -> ServiceIds {
        let (id, mut old_reals) = match before {
            Some(b) => (b.id, b.reals),
            None => {
                self.next_service += 1;
                (self.next_service, HashMap::new())
            }
        };
        let mut reals = HashMap::with_capacity(s.reals.len());
        for r in &s.reals {
            let key = r.key();
            let id = match old_reals.remove(&key) {
                Some(id) => id,
                None => match reals.get(&key) {
                    // Listed twice: one key, one id.
                    Some(&id) => id,
                    None => {
                        self.next_real += 1;
                        self.next_real
                    }
                },
            };
            reals.insert(key, id);
        }
        ServiceIds { id, reals }
    }

    /// Gives every service and real of `rules` an id (keeping existing ones) and forgets the
    /// keys that are gone.
    pub fn assign(&mut self, rules: &RuleSet) {
        let mut old = std::mem::take(&mut self.services);
        let mut services = HashMap::with_capacity(rules.services.len());
        for s in &rules.services {
            let before = old.remove(&s.addr);
            let ids = match before {
                // Listed twice: the ids the first listing got.
                None if services.contains_key(&s.addr) => continue,
                before => self.ids_for(s, before),
            };
            services.insert(s.addr, ids);
        }
        self.services = services;
    }

    /// Gives `s` and its reals ids (keeping existing ones, forgetting reals that are gone).
    pub fn assign_service(&mut self, s: &Service) -> IdUndo {
        let undo = IdUndo {
            addr: s.addr,
            before: self.services.get(&s.addr).cloned(),
            next_service: self.next_service,
            next_real: self.next_real,
        };
        let before = self.services.remove(&s.addr);
        let ids = self.ids_for(s, before);
        self.services.insert(s.addr, ids);
        undo
    }

    /// Forgets a service that left the rules, with its reals.
    pub fn forget(&mut self, addr: &ServiceAddr) -> IdUndo {
        IdUndo {
            addr: *addr,
            before: self.services.remove(addr),
            next_service: self.next_service,
            next_real: self.next_real,
        }
    }

    /// Takes back one [`IdBook::assign_service`] or [`IdBook::forget`] (the latest first).
    pub fn undo(&mut self, undo: IdUndo) {
        match undo.before {
            Some(ids) => self.services.insert(undo.addr, ids),
            None => self.services.remove(&undo.addr),
        };
        self.next_service = undo.next_service;
        self.next_real = undo.next_real;
    }

    pub fn service(&self, key: &ServiceAddr) -> Option<u32> {
        self.services.get(key).map(|s| s.id)
    }
    pub fn real(&self, service: &ServiceAddr, real: SocketAddrV4) -> Option<u32> {
        self.services.get(service)?.reals.get(&real).copied()
    }

    /// Reverse maps for reading the dataplane's counters: service id → key, real id → key.
    pub fn reverse(
        &self,
    ) -> (
        HashMap<u32, ServiceAddr>,
        HashMap<u32, (ServiceAddr, SocketAddrV4)>,
    ) {
        let mut reals = HashMap::new();
        for (addr, s) in &self.services {
            for (key, id) in &s.reals {
                reals.insert(*id, (*addr, *key));
            }
        }
        (
            self.services.iter().map(|(k, v)| (v.id, *k)).collect(),
            reals,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnat_proto::model::{Real, Scheduler, Service};
    use std::net::Ipv4Addr;

    #[test]
    fn ids_survive_edits_and_are_not_reused() {
        let a = ServiceAddr::tcp(Ipv4Addr::new(10, 0, 0, 1), 80);
        let b = ServiceAddr::tcp(Ipv4Addr::new(10, 0, 0, 2), 80);
        let mut rules = RuleSet::default();
        let mut sa = Service::new(a, Scheduler::Rr);
        sa.reals
            .push(Real::new(Ipv4Addr::new(192, 168, 0, 1), 80, 1));
        rules.services.push(sa);
        rules.services.push(Service::new(b, Scheduler::Rr));
        let mut ids = IdBook::default();
        ids.assign(&rules);
        let (ida, idb) = (ids.service(&a).unwrap(), ids.service(&b).unwrap());
        let rid = ids.real(&a, rules.services[0].reals[0].key()).unwrap();
        rules.services[0].scheduler = Scheduler::Wrr;
        rules.services[0].reals[0].weight = 9;
        rules.services.remove(1);
        ids.assign(&rules);
        assert_eq!(ids.service(&a), Some(ida));
        assert_eq!(ids.real(&a, rules.services[0].reals[0].key()), Some(rid));
        assert_eq!(ids.service(&b), None);
        rules.services.push(Service::new(b, Scheduler::Rr));
        ids.assign(&rules);
        assert!(
            ids.service(&b).unwrap() > idb,
            "a re-added service gets a fresh id"
        );
    }

    #[test]
    fn per_service_changes_match_a_full_assign_and_undo() {
        let a = ServiceAddr::tcp(Ipv4Addr::new(10, 0, 0, 1), 80);
        let b = ServiceAddr::udp(Ipv4Addr::new(10, 0, 0, 2), 53);
        let rs = |i: u8| Real::new(Ipv4Addr::new(192, 168, 0, i), 80, 1);
        let mut rules = RuleSet::default();
        let mut sa = Service::new(a, Scheduler::Rr);
        sa.reals = vec![rs(1), rs(2)];
        rules.services.push(sa);
        let mut full = IdBook::default();
        full.assign(&rules);
        let mut inc = full.clone();
        // A real added and one removed in service a, then service b added.
        rules.services[0].reals = vec![rs(2), rs(3)];
        let mut sb = Service::new(b, Scheduler::Wlc);
        sb.reals = vec![rs(4)];
        rules.services.push(sb);
        full.assign(&rules);
        let before = inc.clone();
        let u1 = inc.assign_service(&rules.services[0]);
        let u2 = inc.assign_service(&rules.services[1]);
        for s in &rules.services {
            assert_eq!(inc.service(&s.addr), full.service(&s.addr));
            for r in &s.reals {
                assert_eq!(inc.real(&s.addr, r.key()), full.real(&s.addr, r.key()));
            }
        }
        assert_eq!(inc.real(&a, rs(1).key()), None);
        // Taken back, the book is as it was (counters included: no id is skipped).
        inc.undo(u2);
        inc.undo(u1);
        assert_eq!(inc.services, before.services);
        assert_eq!(
            (inc.next_service, inc.next_real),
            (before.next_service, before.next_real)
        );
        let u = inc.forget(&a);
        assert_eq!(inc.service(&a), None);
        inc.undo(u);
        assert_eq!(inc.services, before.services);
    }
}
