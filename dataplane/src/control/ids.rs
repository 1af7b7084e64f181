//! Stable engine ids. Sessions refer to services and real servers by id, so an id must
//! survive every change that keeps its key: a service keeps its id across `-E`, a real keeps
//! its id across weight edits. New keys get fresh ids; ids are never reused while fnatd runs.

use std::collections::HashMap;
use std::net::SocketAddrV4;

use fnat_proto::model::{RuleSet, ServiceAddr};

#[derive(Debug, Clone, Default)]
pub struct IdBook {
    services: HashMap<ServiceAddr, u32>,
    reals: HashMap<(ServiceAddr, SocketAddrV4), u32>,
    next_service: u32,
    next_real: u32,
}

impl IdBook {
    /// Records an id already in use (from the config's first snapshot).
    pub fn keep_service(&mut self, key: ServiceAddr, id: u32) {
        self.services.insert(key, id);
        self.next_service = self.next_service.max(id);
    }
    pub fn keep_real(&mut self, service: ServiceAddr, real: SocketAddrV4, id: u32) {
        self.reals.insert((service, real), id);
        self.next_real = self.next_real.max(id);
    }

    /// Gives every service and real of `rules` an id (keeping existing ones) and forgets the
    /// keys that are gone.
    pub fn assign(&mut self, rules: &RuleSet) {
        let mut services = HashMap::with_capacity(rules.services.len());
        let mut reals = HashMap::with_capacity(rules.real_count());
        for s in &rules.services {
            let id = match self.services.get(&s.addr) {
                Some(id) => *id,
                None => {
                    self.next_service += 1;
                    self.next_service
                }
            };
            services.insert(s.addr, id);
            for r in &s.reals {
                let key = (s.addr, r.key());
                let id = match self.reals.get(&key) {
                    Some(id) => *id,
                    None => {
                        self.next_real += 1;
                        self.next_real
                    }
                };
                reals.insert(key, id);
            }
        }
        self.services = services;
        self.reals = reals;
    }

    pub fn service(&self, key: &ServiceAddr) -> Option<u32> {
        self.services.get(key).copied()
    }
    pub fn real(&self, service: &ServiceAddr, real: SocketAddrV4) -> Option<u32> {
        self.reals.get(&(*service, real)).copied()
    }

    /// Reverse maps for reading the dataplane's counters: service id → key, real id → key.
    pub fn reverse(
        &self,
    ) -> (
        HashMap<u32, ServiceAddr>,
        HashMap<u32, (ServiceAddr, SocketAddrV4)>,
    ) {
        (
            self.services.iter().map(|(k, v)| (*v, *k)).collect(),
            self.reals.iter().map(|(k, v)| (*v, *k)).collect(),
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
}
