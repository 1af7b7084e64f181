//! Taking a new rules snapshot: service, real-server and local-address slots kept stable by
//! id, schedulers carried over when their inputs did not change, and the read-only indexes
//! of the packet path rebuilt. Control path: allocates; never called per packet.

use std::hash::BuildHasher;
use std::sync::Arc;

use super::{
    service_key, FixedMap, FullNat, PersistEntry, RealEntry, ServiceEntry, SlotInfo, ADDR_LIP,
    ADDR_OWN, ADDR_VIP, NS_PER_SEC,
};
use crate::fnat::egress::Egress;
use crate::persist::Templates;
use crate::rules::Rules;
use crate::sched::load::RsLoad;
use crate::sched::Scheduler;
use crate::session::{SessionTable, TimerWheel};
use crate::stats::{LocalAddrStats, RealStats, ServiceStats, Traffic, WorkerStats};

impl FullNat {
    /// Switches to a new rules snapshot. Sessions are kept; those of services that left the
    /// rules are ended (by the housekeeping sweep, or when a packet or timer touches them);
    /// those of removed real servers run on until they expire. Allocates (control path).
    /// The session capacity is fixed at construction (it changes only while no session lives).
    pub fn update(&mut self, rules: &Rules, stats: &mut WorkerStats) {
        self.timeouts = rules.timeouts;
        self.drop_ip_options = rules.drop_ip_options;
        self.egress = Egress::new(rules);
        self.hops.clear();
        if self.table.capacity() != rules.session_capacity && self.table.is_empty() {
            let seed = std::collections::hash_map::RandomState::new().hash_one(self.id);
            self.table = SessionTable::new(rules.session_capacity, seed);
            self.wheel = TimerWheel::new(rules.session_capacity);
        }
        self.laddrs.set_range(rules.lport_min, rules.lport_max);

        let old = std::mem::take(&mut self.services);
        let mut expire_removed = false;
        let mut seen = vec![false; stats.services.len()];
        let mut services = Vec::with_capacity(rules.services.len());
        for svc in &rules.services {
            // The service's counter slot: its own, else a removed one without sessions.
            let slot = match stats.services.iter().position(|s| s.id == svc.id) {
                Some(i) => i,
                None => match (0..stats.services.len()).find(|&i| {
                    !seen[i] && stats.services[i].removed && stats.services[i].sessions() == 0
                }) {
                    Some(i) => {
                        stats.services[i].traffic = Traffic::default();
                        stats.services[i].reals.clear();
                        i
                    }
                    None => {
                        stats.services.push(ServiceStats {
                            id: svc.id,
                            vip: svc.vip,
                            protocol: svc.protocol,
                            port: svc.port,
                            traffic: Traffic::default(),
                            reals: Vec::new(),
                            removed: false,
                        });
                        seen.push(false);
                        stats.services.len() - 1
                    }
                },
            };
            if slot > u16::MAX as usize || seen[slot] {
                continue; // beyond the slot space, or a duplicate id
            }
            seen[slot] = true;
            let st = &mut stats.services[slot];
            st.id = svc.id;
            st.vip = svc.vip;
            st.protocol = svc.protocol;
            st.port = svc.port;
            st.removed = false;

            // Real servers: keep their slots by id; mark the others removed.
            let mut rs_seen = vec![false; st.reals.len()];
            let mut reals = Vec::with_capacity(svc.reals.len());
            for rs in &svc.reals {
                let rslot = match st.reals.iter().position(|r| r.id == rs.id) {
                    Some(i) => i,
                    None => match (0..st.reals.len()).find(|&i| {
                        !rs_seen[i]
                            && st.reals[i].removed
                            && st.reals[i].active_conns + st.reals[i].inactive_conns == 0
                    }) {
                        Some(i) => {
                            st.reals[i].traffic = Traffic::default();
                            i
                        }
                        None => {
                            st.reals.push(RealStats {
                                id: rs.id,
                                addr: rs.addr,
                                port: rs.port,
                                traffic: Traffic::default(),
                                active_conns: 0,
                                inactive_conns: 0,
                                removed: false,
                            });
                            rs_seen.push(false);
                            st.reals.len() - 1
                        }
                    },
                };
                if rslot > u16::MAX as usize || rs_seen[rslot] {
                    continue;
                }
                rs_seen[rslot] = true;
                let r = &mut st.reals[rslot];
                r.id = rs.id;
                r.addr = rs.addr;
                r.port = rs.port;
                r.removed = false;
                let prev = old
                    .iter()
                    .find(|o| o.id == svc.id)
                    .and_then(|o| o.reals.iter().find(|r| r.id == rs.id));
                reals.push(RealEntry {
                    id: rs.id,
                    addr: u32::from(rs.addr),
                    port: rs.port,
                    weight: rs.weight.min(i32::MAX as u32),
                    slot: rslot as u16,
                    upper: rs.thresholds.upper,
                    lower: rs.thresholds.lower,
                    overloaded: rs.thresholds.upper > 0 && prev.is_some_and(|p| p.overloaded),
                });
            }
            for (i, r) in st.reals.iter_mut().enumerate() {
                if !rs_seen[i] {
                    r.removed = true;
                    if svc.options.expire_on_removal && r.active_conns + r.inactive_conns > 0 {
                        expire_removed = true;
                    }
                }
            }

            let mut lips = Vec::with_capacity(svc.local_addresses.len());
            for &addr in &svc.local_addresses {
                let s = self.laddrs.ensure(addr);
                if s <= u16::MAX as usize && !lips.contains(&(s as u16)) {
                    lips.push(s as u16);
                }
            }

            let old_entry = old.iter().find(|o| o.id == svc.id);
            let flags = svc.options.sched_flags;
            let sched = match old_entry {
                Some(o) if o.sched.kind() == svc.scheduler && o.sched.flags() == flags => {
                    let mut s = o.sched.clone();
                    let changed = o.reals.len() != reals.len()
                        || o.reals.iter().zip(&reals).any(|(a, b)| {
                            a.id != b.id
                                || a.weight != b.weight
                                || a.addr != b.addr
                                || a.port != b.port
                        });
                    if changed {
                        s.update(&reals[..]);
                    }
                    s
                }
                _ => Scheduler::with_flags(svc.scheduler, flags, &reals[..]),
            };
            let persist = svc.options.persistence.map(|p| PersistEntry {
                mask: u32::from(p.netmask),
                timeout_ns: u64::from(p.timeout_secs.max(1)) * NS_PER_SEC,
            });
            let steer_mask = persist
                .map(|p| p.mask)
                .or(old_entry.and_then(|o| o.steer_mask));
            let mut rs_index = FixedMap::with_capacity(reals.len());
            for (i, r) in reals.iter().enumerate() {
                rs_index.insert(u64::from(r.id), i as u32);
            }
            let loads: Vec<Arc<RsLoad>> =
                reals.iter().map(|r| self.board.get(svc.id, r.id)).collect();
            if slot >= self.slot_info.len() {
                self.slot_info.resize(slot + 1, SlotInfo::default());
            }
            self.slot_info[slot] = SlotInfo {
                persist_mask: persist.map(|p| p.mask),
                expire_on_removal: svc.options.expire_on_removal,
            };
            services.push(ServiceEntry {
                id: svc.id,
                slot: slot as u16,
                others: vec![(0, 0); reals.len()],
                thresholds: reals.iter().any(|r| r.upper > 0),
                reals,
                loads,
                rs_index,
                lips,
                sched,
                persist,
                steer_mask,
            });
        }
        if services.iter().any(|s| s.persist.is_some()) && self.templates.is_none() {
            self.templates = Some(Templates::new(rules.session_capacity.max(64)));
        }
        // Publish and read the shared counts at the next housekeeping.
        self.next_publish = 0;
        let mut purge = false;
        for (i, st) in stats.services.iter_mut().enumerate() {
            if !seen[i] && !st.removed {
                st.removed = true;
                for r in &mut st.reals {
                    r.removed = true;
                }
            }
            if st.removed && st.sessions() > 0 {
                purge = true;
            }
        }
        if purge || expire_removed {
            self.purge = Some(0);
        }
        self.check_alive = stats.services.iter().enumerate().any(|(i, st)| {
            st.removed
                || (self.slot_info.get(i).is_some_and(|x| x.expire_on_removal)
                    && st.reals.iter().any(|r| r.removed))
        });

        // Local address counters, one per pool slot.
        for i in stats.local_addrs.len()..self.laddrs.len() {
            if let Some(p) = self.laddrs.pool(i) {
                stats.local_addrs.push(LocalAddrStats {
                    addr: p.addr(),
                    ports_in_use: p.in_use() as u64,
                    exhausted: 0,
                });
            }
        }

        // Indexes: every endpoint of a service (its VIP:port, port 0 for all ports, or the
        // members of its port group) leads to it; the first service listed wins a clash.
        let endpoints: usize = rules.services.iter().map(|s| s.endpoints().count()).sum();
        let mut service_index = FixedMap::with_capacity(endpoints);
        let mut i = 0;
        for svc in &rules.services {
            if services.get(i).is_some_and(|e| e.id == svc.id) {
                for ep in svc.endpoints() {
                    service_index.insert(
                        service_key(u32::from(ep.vip), ep.protocol.number(), ep.port),
                        i as u32,
                    );
                }
                i += 1;
            }
        }
        self.service_index = service_index;

        let own: usize = rules.ports.iter().map(|p| p.addresses.len()).sum();
        let mut addresses = FixedMap::with_capacity(endpoints + self.laddrs.len() + own);
        let or = |a: u32, b: u32| a | b;
        for svc in &rules.services {
            for ep in svc.endpoints() {
                addresses.insert_with(u64::from(u32::from(ep.vip)), ADDR_VIP, or);
            }
        }
        for i in 0..self.laddrs.len() {
            if let Some(p) = self.laddrs.pool(i) {
                addresses.insert_with(u64::from(u32::from(p.addr())), ADDR_LIP, or);
            }
        }
        for p in &rules.ports {
            for a in &p.addresses {
                addresses.insert_with(u64::from(u32::from(a.addr)), ADDR_OWN, or);
            }
        }
        self.addresses = addresses;
        self.services = services;
        let lips: Vec<u32> = (0..self.laddrs.len())
            .filter_map(|i| self.laddrs.pool(i).map(|p| u32::from(p.addr())))
            .collect();
        self.neigh.update(rules, &self.egress, lips.into_iter());
    }
}
