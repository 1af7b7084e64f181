//! Taking a new rules snapshot: service, real-server and local-address slots kept stable by
//! id, per-service state carried over, and the read-only indexes of the packet path rebuilt
//! only when what they index changed. Control path: allocates; never called per packet.
//!
//! This runs on the worker between two bursts, so its cost is a pause of that worker's
//! forwarding. It is O(services + real servers) with small constants, and allocates only for
//! what changed:
//!
//! - A service whose id, real servers (ids, addresses, ports, weights, thresholds), local
//!   addresses, scheduler and flags are unchanged keeps its whole entry in place: scheduler
//!   state (rr/wrr cursors, hash and locality tables), real-server index, shared load cells,
//!   the other workers' counts. Nothing of it is rebuilt or copied.
//! - A changed service keeps what still applies: its scheduler (updated only when its real
//!   servers or weights changed), and per real server kept by id its load cell, its last
//!   read counts and its overload state.
//! - Counter slots are found by id through the previous entry (O(1)), else through a map
//!   built at most once per update; reusable slots through a list built at most once.
//! - The service index is kept when every service stayed in place with the same endpoints.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use super::client_addr::SeqAdjust;
use super::{
    service_key, state_timeouts_ns, FixedMap, FullNat, PersistEntry, RealEntry, ServiceEntry,
    SlotInfo, ADDR_LIP, ADDR_OWN, ADDR_STANDBY, ADDR_VIP, NS_PER_SEC,
};
use crate::fnat::egress::Egress;
use crate::persist::Templates;
use crate::rules::{Method, RealServer, Rules, Service};
use crate::sched::load::RsLoad;
use crate::sched::Scheduler;
use crate::session::TimerWheel;
use crate::stats::{LocalAddrStats, RealStats, ServiceStats, Traffic, WorkerStats};

/// Up to this many counter entries, slots are found by a linear scan (as cheap as a map).
/// Small under test, so that both ways are exercised.
#[cfg(not(test))]
const LINEAR: usize = 32;
#[cfg(test)]
const LINEAR: usize = 4;
/// Slots are u16 in sessions and entries.
/// Local-address slots stay below the values sessions use to name their method (and below
/// the foreign marker).
const MAX_SLOT: usize = crate::session::table::SLOT_FOREIGN as usize - 1;

/// A counter entry that holds a slot: a service's or a real server's.
trait Slotted {
    fn id(&self) -> u32;
    /// Left the rules and no session refers to it any more: its slot may be reused.
    fn reusable(&self) -> bool;
}

impl Slotted for ServiceStats {
    fn id(&self) -> u32 {
        self.id
    }
    fn reusable(&self) -> bool {
        self.removed && self.sessions() == 0
    }
}

impl Slotted for RealStats {
    fn id(&self) -> u32 {
        self.id
    }
    fn reusable(&self) -> bool {
        self.removed && self.active_conns + self.inactive_conns == 0
    }
}

/// The slot choices of one update over one vector of counter entries: which slots the new
/// rules hold, plus an id → slot map and the reusable slots, each built on first need.
///
/// The rule (unchanged from the first implementation): an id keeps the first slot holding
/// that id; a new id takes the first slot that is reusable and not yet taken in this update,
/// else a new slot at the end. A second holder of the same id, or a slot beyond the u16
/// range, is skipped.
struct Slots {
    seen: Vec<bool>,
    by_id: Option<HashMap<u32, usize>>,
    free: Option<Vec<usize>>,
    next_free: usize,
}

impl Slots {
    fn new(len: usize) -> Self {
        Slots {
            seen: vec![false; len],
            by_id: None,
            free: None,
            next_free: 0,
        }
    }

    fn is_seen(&self, i: usize) -> bool {
        self.seen.get(i).copied().unwrap_or(false)
    }

    /// The first slot holding `id`.
    fn find<E: Slotted>(&mut self, entries: &[E], id: u32) -> Option<usize> {
        if entries.len() <= LINEAR && self.by_id.is_none() {
            return entries.iter().position(|e| e.id() == id);
        }
        let map = self.by_id.get_or_insert_with(|| {
            let mut m = HashMap::with_capacity(entries.len());
            for (i, e) in entries.iter().enumerate() {
                m.entry(e.id()).or_insert(i);
            }
            m
        });
        map.get(&id)
            .copied()
            .filter(|&i| entries.get(i).is_some_and(|e| e.id() == id))
    }

    /// The first reusable slot not taken in this update.
    fn find_free<E: Slotted>(&mut self, entries: &[E]) -> Option<usize> {
        if entries.len() <= LINEAR && self.free.is_none() {
            return (0..entries.len()).find(|&i| !self.is_seen(i) && entries[i].reusable());
        }
        // Whether a slot is reusable does not change during an update except by being
        // taken, so the list is built once and walked forward.
        let free = self.free.get_or_insert_with(|| {
            (0..entries.len())
                .filter(|&i| entries[i].reusable())
                .collect()
        });
        while let Some(&i) = free.get(self.next_free) {
            self.next_free += 1;
            if !self.seen.get(i).copied().unwrap_or(false) {
                return Some(i);
            }
        }
        None
    }

    /// Takes `slot` for `id` when it still holds it and nobody took it yet in this update
    /// (what `claim` decides for an unchanged service); false otherwise.
    fn keep<E: Slotted>(&mut self, entries: &[E], slot: usize, id: u32) -> bool {
        let holds = entries.get(slot).is_some_and(|e| e.id() == id);
        if !holds || self.is_seen(slot) {
            return false;
        }
        self.seen[slot] = true;
        true
    }

    /// The slot of `id` in `entries` (`hint`: where it was last time). A reused slot is
    /// passed to `reset` before it is handed out; a new one is made by `make`. The caller
    /// then writes the entry's identity.
    fn claim<E: Slotted>(
        &mut self,
        entries: &mut Vec<E>,
        id: u32,
        hint: Option<usize>,
        reset: impl FnOnce(&mut E),
        make: impl FnOnce() -> E,
    ) -> Option<usize> {
        let own = match hint.filter(|&h| entries.get(h).is_some_and(|e| e.id() == id)) {
            Some(h) => Some(h),
            None => self.find(entries, id),
        };
        let slot = match own {
            Some(i) => i,
            None => match self.find_free(entries) {
                Some(i) => {
                    let old_id = entries[i].id();
                    reset(&mut entries[i]);
                    if let Some(m) = self.by_id.as_mut() {
                        if m.get(&old_id) == Some(&i) {
                            m.remove(&old_id);
                        }
                        m.insert(id, i);
                    }
                    i
                }
                None => {
                    entries.push(make());
                    self.seen.push(false);
                    let i = entries.len() - 1;
                    if let Some(m) = self.by_id.as_mut() {
                        m.entry(id).or_insert(i);
                    }
                    i
                }
            },
        };
        if slot > MAX_SLOT || self.is_seen(slot) {
            return None;
        }
        if slot >= self.seen.len() {
            self.seen.resize(slot + 1, false);
        }
        self.seen[slot] = true;
        Some(slot)
    }
}

/// What the per-service pass tells the rest of the update.
#[derive(Default)]
struct Pass {
    /// Some removed real server of an expire-on-removal service still has sessions.
    expire_removed: bool,
    /// Some service is persistent.
    persistent: bool,
    /// Some service sends the client's address (Proxy Protocol, TOA): sessions need
    /// sequence state.
    client_address: bool,
    /// Some service is SYN-proxied: the worker needs its hold slots and scratch frame.
    synproxy: bool,
}

impl Pass {
    /// What an unchanged service adds (as `sync_service` would find it).
    fn note_unchanged(&mut self, svc: &Service, st: &ServiceStats) {
        self.persistent |= svc.options.persistence.is_some();
        self.client_address |= svc.options.client_address.any() || svc.options.synproxy;
        self.synproxy |= svc.options.synproxy;
        if svc.options.expire_on_removal
            && st
                .reals
                .iter()
                .any(|r| r.removed && r.active_conns + r.inactive_conns > 0)
        {
            self.expire_removed = true;
        }
    }
}

/// An entry for a service the worker did not run before (filled in by `sync_service`).
fn fresh_entry(svc: &Service) -> ServiceEntry {
    ServiceEntry {
        id: svc.id,
        slot: u16::MAX,
        reals: Vec::new(),
        loads: Vec::new(),
        others: Vec::new(),
        rs_index: FixedMap::with_capacity(0),
        thresholds: false,
        nat: false,
        lips: Vec::new(),
        next_lip: 0,
        // Placeholder without tables: replaced once the real servers are known.
        sched: Scheduler::Lc,
        persist: None,
        steer_mask: None,
        acl: None,
        rate: None,
    }
}

/// The worker's view of a real server of the rules.
fn real_entry(rs: &RealServer, slot: usize, overloaded: bool) -> RealEntry {
    RealEntry {
        id: rs.id,
        addr: u32::from(rs.addr),
        port: rs.port,
        weight: rs.weight.min(i32::MAX as u32),
        slot: slot as u16,
        upper: rs.thresholds.upper,
        lower: rs.thresholds.lower,
        overloaded: rs.thresholds.upper > 0 && overloaded,
        method: rs.method,
    }
}

/// True when `entries` already describe `reals` exactly, in order, and their counter slots
/// (in `own`, the service's real-server counters) still hold them.
fn same_reals(entries: &[RealEntry], reals: &[RealServer], own: &[RealStats]) -> bool {
    entries.len() == reals.len()
        && entries.iter().zip(reals).all(|(e, r)| {
            e.id == r.id
                && e.addr == u32::from(r.addr)
                && e.port == r.port
                && e.weight == r.weight.min(i32::MAX as u32)
                && e.upper == r.thresholds.upper
                && e.lower == r.thresholds.lower
                && e.method == r.method
                && own
                    .get(e.slot as usize)
                    .is_some_and(|s| s.id == e.id && !s.removed)
        })
}

/// What the scheduler's tables depend on changed (servers, their order or weights).
fn sched_inputs_changed(old: &[RealEntry], new: &[RealEntry]) -> bool {
    old.len() != new.len()
        || old.iter().zip(new).any(|(a, b)| {
            a.id != b.id || a.weight != b.weight || a.addr != b.addr || a.port != b.port
        })
}

impl FullNat {
    /// Switches to a new rules snapshot. Sessions are kept; those of services that left the
    /// rules are ended (by the housekeeping sweep, or when a packet or timer touches them);
    /// those of removed real servers run on until they expire. Allocates (control path).
    /// The session capacity is fixed at construction (it changes only while no session lives).
    pub fn update(&mut self, rules: &Rules, stats: &mut WorkerStats) {
        self.switch_rules(None, rules, stats);
    }

    /// [`FullNat::update`] from `previous`, the snapshot this worker runs now (what it was
    /// built or last updated with): the same result, but what `previous` proves unchanged is
    /// not looked at again. A service equal to its previous self is skipped whole (O(1) but
    /// for the comparison), and the address index, the egress and the ARP state are kept
    /// when ports, routes, neighbours, VIPs and local addresses are all unchanged.
    pub fn update_from(&mut self, previous: &Rules, rules: &Rules, stats: &mut WorkerStats) {
        self.switch_rules(Some(previous), rules, stats);
    }

    fn switch_rules(&mut self, previous: Option<&Rules>, rules: &Rules, stats: &mut WorkerStats) {
        self.timeouts_ns = state_timeouts_ns(&rules.timeouts);
        self.drop_ip_options = rules.drop_ip_options;
        self.expire_quiescent = rules.expire_quiescent_template;
        let net_same = previous.is_some_and(|p| {
            p.ports == rules.ports
                && p.routes == rules.routes
                && p.neighbours == rules.neighbours
                && p.standby == rules.standby
                && p.garp == rules.garp
        });
        if !net_same {
            self.egress = Egress::new(rules);
            self.hops.clear();
        }
        if self.table.capacity() != rules.session_capacity && self.table.is_empty() {
            let seed = std::collections::hash_map::RandomState::new().hash_one(self.id);
            self.table.renew(rules.session_capacity, seed);
            self.wheel = TimerWheel::new(rules.session_capacity);
            if !self.adjust.is_empty() {
                self.adjust = vec![SeqAdjust::default(); rules.session_capacity];
            }
        }
        self.laddrs.set_range(rules.lport_min, rules.lport_max);
        let laddrs_before = self.laddrs.len();

        let mut slots = Slots::new(stats.services.len());
        let mut pass = Pass::default();
        let mut old = std::mem::take(&mut self.services);
        // The common change (real servers, weights, local addresses, options of existing
        // services) leaves every service where it was: update the entries in place.
        let in_place = old.len() == rules.services.len()
            && old.iter().zip(&rules.services).all(|(e, s)| e.id == s.id);
        // Services as they were, position by position (when the previous snapshot lines up).
        let before = previous
            .map(|p| &p.services[..])
            .filter(|p| in_place && p.len() == rules.services.len());
        // The publisher's word for which services it set (by id) in the generations since
        // the one this worker runs: every other service is unchanged without comparing it.
        let edited = previous.and_then(|p| {
            let ids = rules
                .edits
                .as_ref()
                .and_then(|e| e.since(p.generation, rules.generation));
            if ids.is_none() {
                self.full_compares += 1;
            }
            ids
        });
        let mut keep_index = in_place;
        // Every service keeps its VIP and endpoints (only known with `previous`).
        let mut vips_same = before.is_some();
        let services = if in_place {
            let mut dropped = Vec::new();
            let mut endpoints = 0;
            for (i, (entry, svc)) in old.iter_mut().zip(&rules.services).enumerate() {
                let was = before.and_then(|b| b.get(i));
                let unchanged = match &edited {
                    Some(set) => was.is_some() && set.binary_search(&svc.id).is_err(),
                    None => was == Some(svc),
                };
                if unchanged && slots.keep(&stats.services, usize::from(entry.slot), svc.id) {
                    // Unchanged: its entry, its counters and its endpoints are as they were.
                    let st = &stats.services[usize::from(entry.slot)];
                    pass.note_unchanged(svc, st);
                    endpoints += svc.endpoints().count();
                    continue;
                }
                vips_same &= was.is_some_and(|w| {
                    w.vip == svc.vip
                        && w.protocol == svc.protocol
                        && w.port == svc.port
                        && w.options.port_group == svc.options.port_group
                });
                if !self.sync_service(entry, svc, false, stats, &mut slots, &mut pass) {
                    dropped.push(i);
                }
                if keep_index {
                    for ep in svc.endpoints() {
                        endpoints += 1;
                        let key = service_key(u32::from(ep.vip), ep.protocol.number(), ep.port);
                        if self.service_index.get(key) != Some(i as u32) {
                            keep_index = false;
                            break;
                        }
                    }
                }
            }
            keep_index &= dropped.is_empty() && endpoints == self.service_index.len();
            for &i in dropped.iter().rev() {
                old.remove(i);
            }
            old
        } else {
            let mut by_id: HashMap<u32, usize> = HashMap::with_capacity(old.len());
            for (i, e) in old.iter().enumerate() {
                by_id.entry(e.id).or_insert(i);
            }
            let mut old: Vec<Option<ServiceEntry>> = old.into_iter().map(Some).collect();
            let mut services = Vec::with_capacity(rules.services.len());
            for svc in &rules.services {
                let prev = by_id
                    .get(&svc.id)
                    .and_then(|&i| old.get_mut(i))
                    .and_then(Option::take);
                let fresh = prev.is_none();
                let mut entry = prev.unwrap_or_else(|| fresh_entry(svc));
                // Added or removed services moved the others: those the edits do not name
                // are as they were under the same id.
                let unchanged = !fresh
                    && edited
                        .as_ref()
                        .is_some_and(|set| set.binary_search(&svc.id).is_err());
                if unchanged && slots.keep(&stats.services, usize::from(entry.slot), svc.id) {
                    let st = &stats.services[usize::from(entry.slot)];
                    pass.note_unchanged(svc, st);
                    services.push(entry);
                    continue;
                }
                if self.sync_service(&mut entry, svc, fresh, stats, &mut slots, &mut pass) {
                    services.push(entry);
                }
            }
            services
        };
        if pass.persistent && self.templates.is_none() {
            self.templates = Some(Templates::new(rules.session_capacity.max(64)));
        }
        // Sequence state (16 B a session) only once a service needs it; kept after, as its
        // sessions outlive the rules.
        if pass.client_address && self.adjust.is_empty() {
            self.adjust = vec![SeqAdjust::default(); self.table.capacity()];
            self.pending_headers = Vec::with_capacity(super::client_addr::PENDING_HEADERS);
        }
        if pass.synproxy && self.sp.is_none() {
            self.sp = Some(super::synproxy::SynProxy::new());
        }
        // Publish and read the shared counts at the next housekeeping.
        self.next_publish = 0;
        let mut purge = false;
        for (i, st) in stats.services.iter_mut().enumerate() {
            if !slots.is_seen(i) && !st.removed {
                st.removed = true;
                for r in &mut st.reals {
                    r.removed = true;
                }
            }
            if st.removed && st.sessions() > 0 {
                purge = true;
            }
        }
        if purge || pass.expire_removed {
            self.purge = Some(0);
        }

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

        // SNAT services are found by their rules, in rules order.
        self.snat.clear();
        let mut i = 0;
        for svc in &rules.services {
            if services.get(i).is_some_and(|e| e.id == svc.id) {
                if let Some(r) = svc.options.snat {
                    self.snat.push((r, i as u32));
                }
                i += 1;
            }
        }

        // Indexes: every endpoint of a service (its VIP:port, port 0 for all ports, or the
        // members of its port group) leads to it; the first service listed wins a clash.
        let endpoints: usize = rules.services.iter().map(|s| s.endpoints().count()).sum();
        if !keep_index {
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
        }

        // The address index and the ARP state depend on the ports, the routes, the VIPs and
        // the local addresses (pools are never removed: same count, same addresses).
        if net_same && vips_same && keep_index && self.laddrs.len() == laddrs_before {
            self.services = services;
            return;
        }
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
        for a in &rules.standby {
            addresses.insert_with(u64::from(u32::from(*a)), ADDR_STANDBY, or);
        }
        self.addresses = addresses;
        self.services = services;
        let lips: Vec<u32> = (0..self.laddrs.len())
            .filter_map(|i| self.laddrs.pool(i).map(|p| u32::from(p.addr())))
            .collect();
        self.neigh.update(rules, &self.egress, lips.into_iter());
    }

    /// Brings `entry` (the worker's state of `svc` from the previous snapshot, or a
    /// [`fresh_entry`] when `fresh`) up to date with `svc`, and the counter slots with it.
    /// False when the service cannot be run (a second service with the same id, or no slot
    /// left): it is then left out.
    fn sync_service(
        &mut self,
        entry: &mut ServiceEntry,
        svc: &Service,
        fresh: bool,
        stats: &mut WorkerStats,
        slots: &mut Slots,
        pass: &mut Pass,
    ) -> bool {
        // The service's counter slot: its own, else a removed one without sessions.
        let hint = (!fresh).then_some(entry.slot as usize);
        let Some(slot) = slots.claim(
            &mut stats.services,
            svc.id,
            hint,
            |st| {
                st.traffic = Traffic::default();
                st.reals.clear();
            },
            || ServiceStats {
                id: svc.id,
                vip: svc.vip,
                protocol: svc.protocol,
                port: svc.port,
                traffic: Traffic::default(),
                reals: Vec::new(),
                removed: false,
            },
        ) else {
            return false;
        };
        let st = &mut stats.services[slot];
        st.id = svc.id;
        st.vip = svc.vip;
        st.protocol = svc.protocol;
        st.port = svc.port;
        st.removed = false;

        let flags = svc.options.sched_flags;
        let same_sched =
            !fresh && entry.sched.kind() == svc.scheduler && entry.sched.flags() == flags;
        let reals_kept = !fresh
            && usize::from(entry.slot) == slot
            && same_reals(&entry.reals, &svc.reals, &st.reals);
        if reals_kept {
            // Real servers that left earlier are already marked removed.
            if svc.options.expire_on_removal
                && st
                    .reals
                    .iter()
                    .any(|r| r.removed && r.active_conns + r.inactive_conns > 0)
            {
                pass.expire_removed = true;
            }
            if !same_sched {
                entry.sched = Scheduler::with_flags(svc.scheduler, flags, &entry.reals[..]);
            }
        } else {
            // Real servers: keep their slots by id; mark the others removed.
            let mut rs_slots = Slots::new(st.reals.len());
            let n = svc.reals.len();
            let mut reals = Vec::with_capacity(n);
            let mut loads: Vec<Arc<RsLoad>> = Vec::with_capacity(n);
            let mut others = Vec::with_capacity(n);
            for rs in &svc.reals {
                // The same real server in the previous entry (the first with its id).
                let prev = if fresh {
                    None
                } else {
                    entry
                        .rs_index
                        .get(u64::from(rs.id))
                        .map(|i| i as usize)
                        .filter(|&i| entry.reals.get(i).is_some_and(|r| r.id == rs.id))
                };
                let hint = prev
                    .and_then(|i| entry.reals.get(i))
                    .map(|r| r.slot as usize);
                let Some(rslot) = rs_slots.claim(
                    &mut st.reals,
                    rs.id,
                    hint,
                    |r| r.traffic = Traffic::default(),
                    || RealStats {
                        id: rs.id,
                        addr: rs.addr,
                        port: rs.port,
                        traffic: Traffic::default(),
                        active_conns: 0,
                        inactive_conns: 0,
                        removed: false,
                    },
                ) else {
                    continue;
                };
                let r = &mut st.reals[rslot];
                r.id = rs.id;
                r.addr = rs.addr;
                r.port = rs.port;
                r.removed = false;
                let overloaded = prev
                    .and_then(|i| entry.reals.get(i))
                    .is_some_and(|p| p.overloaded);
                reals.push(real_entry(rs, rslot, overloaded));
                loads.push(
                    prev.and_then(|i| entry.loads.get(i))
                        .cloned()
                        .unwrap_or_else(|| self.board.get(svc.id, rs.id)),
                );
                others.push(
                    prev.and_then(|i| entry.others.get(i))
                        .copied()
                        .unwrap_or((0, 0)),
                );
            }
            for (i, r) in st.reals.iter_mut().enumerate() {
                if !rs_slots.is_seen(i) {
                    r.removed = true;
                    if svc.options.expire_on_removal && r.active_conns + r.inactive_conns > 0 {
                        pass.expire_removed = true;
                    }
                }
            }
            if same_sched {
                if sched_inputs_changed(&entry.reals, &reals) {
                    entry.sched.update(&reals[..]);
                }
            } else {
                entry.sched = Scheduler::with_flags(svc.scheduler, flags, &reals[..]);
            }
            let mut rs_index = FixedMap::with_capacity(reals.len());
            for (i, r) in reals.iter().enumerate() {
                rs_index.insert(u64::from(r.id), i as u32);
            }
            entry.thresholds = reals.iter().any(|r| r.upper > 0);
            entry.nat = reals.iter().any(|r| r.method == Method::Nat);
            self.nat_replies |= entry.nat;
            entry.rs_index = rs_index;
            entry.reals = reals;
            entry.loads = loads;
            entry.others = others;
        }

        let lips_kept = !fresh
            && entry.lips.len() == svc.local_addresses.len()
            && entry
                .lips
                .iter()
                .zip(&svc.local_addresses)
                .all(|(&s, &a)| self.laddrs.pool(s as usize).is_some_and(|p| p.addr() == a));
        if !lips_kept {
            let mut lips = Vec::with_capacity(svc.local_addresses.len());
            for &addr in &svc.local_addresses {
                let s = self.laddrs.ensure(addr);
                if s <= MAX_SLOT && !lips.contains(&(s as u16)) {
                    lips.push(s as u16);
                }
            }
            entry.lips = lips;
        }

        let persist = svc.options.persistence.map(|p| PersistEntry {
            mask: u32::from(p.netmask),
            timeout_ns: u64::from(p.timeout_secs.max(1)) * NS_PER_SEC,
        });
        pass.persistent |= persist.is_some();
        pass.client_address |= svc.options.client_address.any() || svc.options.synproxy;
        pass.synproxy |= svc.options.synproxy;
        let steer_mask = persist
            .map(|p| p.mask)
            .or(if fresh { None } else { entry.steer_mask });
        if slot >= self.slot_info.len() {
            self.slot_info.resize(slot + 1, SlotInfo::default());
        }
        self.slot_info[slot] = SlotInfo {
            persist_mask: persist.map(|p| p.mask),
            expire_on_removal: svc.options.expire_on_removal,
            client_address: svc.options.client_address,
            synproxy: svc.options.synproxy,
        };
        entry.id = svc.id;
        entry.slot = slot as u16;
        entry.persist = persist;
        entry.steer_mask = steer_mask;
        self.sync_admission(entry, svc);
        true
    }

    /// The service's allow/deny lists and its per-prefix rate table (kept, with its state,
    /// while the limit is unchanged).
    fn sync_admission(&self, entry: &mut ServiceEntry, svc: &Service) {
        entry.acl = svc.options.acl.clone().filter(|a| !a.is_empty());
        entry.rate = match svc.options.conn_rate {
            None => None,
            Some(l) => match entry.rate.take() {
                Some(t) if t.limit() == l => Some(t),
                _ => Some(Box::new(crate::acl::RateTable::new(l, self.workers))),
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Tuple;
    use crate::rules::{
        EditStep, Endpoint, Ipv4Cidr, Persistence, PortGroup, Protocol, SchedFlags, SchedulerKind,
        ServiceEdits, Thresholds,
    };
    use crate::sched::load::LoadBoard;
    use std::net::Ipv4Addr;

    fn cidr(a: [u8; 4], prefix_len: u8) -> Ipv4Cidr {
        Ipv4Cidr {
            addr: Ipv4Addr::from(a),
            prefix_len,
        }
    }

    fn base() -> Rules {
        crate::rules::fixture::two_ports(64)
    }

    fn service(id: u32, vip: u8, port: u16, kind: SchedulerKind, reals: &[(u32, u32)]) -> Service {
        let mut s = Service::new(
            id,
            Ipv4Addr::new(198, 18, 1, vip),
            Protocol::Tcp,
            port,
            kind,
        );
        s.reals = reals
            .iter()
            .map(|&(rid, w)| RealServer::new(rid, Ipv4Addr::new(198, 19, 1, rid as u8), 80, w))
            .collect();
        s.local_addresses = vec![Ipv4Addr::new(198, 19, 0, 10)];
        s
    }

    fn fullnat(rules: &Rules, stats: &mut WorkerStats) -> FullNat {
        FullNat::with_board(0, 2, rules, stats, Arc::new(LoadBoard::new(2)))
    }

    fn pick(f: &mut FullNat, service: usize) -> Option<usize> {
        let e = &mut f.services[service];
        e.sched.pick(&e.reals[..], &Tuple::default(), 0)
    }

    /// Two workers' states are equal: each path of the one update (comparing every service,
    /// applying the publisher's edits, skipping generations) reaches the same state as
    /// another; [`assert_follows`] checks each against what the rules say.
    fn assert_same(
        step: usize,
        rules: &Rules,
        a: &FullNat,
        sa: &WorkerStats,
        b: &FullNat,
        sb: &WorkerStats,
    ) {
        assert_eq!(sa, sb, "step {step}: counters and their slots");
        assert_eq!(a.services.len(), b.services.len(), "step {step}");
        for (x, y) in a.services.iter().zip(&b.services) {
            let what = format!("step {step}: service {}", x.id);
            assert_eq!(
                (x.id, x.slot, x.thresholds, x.nat),
                (y.id, y.slot, y.thresholds, y.nat),
                "{what}"
            );
            assert_eq!(format!("{:?}", x.reals), format!("{:?}", y.reals), "{what}");
            assert_eq!(x.lips, y.lips, "{what}");
            assert_eq!(x.sched, y.sched, "{what}");
            assert_eq!(
                format!("{:?}", x.persist),
                format!("{:?}", y.persist),
                "{what}"
            );
            assert_eq!(x.steer_mask, y.steer_mask, "{what}");
            assert_eq!(x.others, y.others, "{what}");
            assert_eq!(x.loads.len(), x.reals.len(), "{what}");
            assert_eq!(x.rs_index.len(), y.rs_index.len(), "{what}");
            for r in &x.reals {
                let id = u64::from(r.id);
                assert_eq!(x.rs_index.get(id), y.rs_index.get(id), "{what}");
            }
        }
        assert_eq!(
            format!("{:?}", a.slot_info),
            format!("{:?}", b.slot_info),
            "step {step}"
        );
        assert_eq!(a.service_index.len(), b.service_index.len(), "step {step}");
        assert_eq!(a.addresses.len(), b.addresses.len(), "step {step}");
        for svc in &rules.services {
            for ep in svc.endpoints() {
                let key = service_key(u32::from(ep.vip), ep.protocol.number(), ep.port);
                assert_eq!(
                    a.service_index.get(key),
                    b.service_index.get(key),
                    "step {step}"
                );
                let vip = u64::from(u32::from(ep.vip));
                assert_eq!(a.addresses.get(vip), b.addresses.get(vip), "step {step}");
            }
        }
        // Egress and ARP: what they answer for every address the rules name.
        let mut addrs: Vec<u32> = rules
            .ports
            .iter()
            .flat_map(|p| p.addresses.iter().map(|c| u32::from(c.addr)))
            .collect();
        for svc in &rules.services {
            addrs.push(u32::from(svc.vip));
            addrs.extend(svc.endpoints().map(|e| u32::from(e.vip)));
            addrs.extend(svc.reals.iter().map(|r| u32::from(r.addr)));
            addrs.extend(svc.local_addresses.iter().map(|&l| u32::from(l)));
        }
        for &ip in &addrs {
            assert_eq!(a.egress.resolve(ip), b.egress.resolve(ip), "step {step}");
            for port in 0..rules.ports.len() as u16 + 1 {
                assert_eq!(
                    a.neigh.owns(port, ip),
                    b.neigh.owns(port, ip),
                    "step {step}"
                );
            }
            let key = u64::from(ip);
            assert_eq!(a.addresses.get(key), b.addresses.get(key), "step {step}");
        }
        assert_eq!(a.purge, b.purge, "step {step}");
        assert_eq!(a.templates.is_some(), b.templates.is_some(), "step {step}");
        assert_eq!(a.laddrs.len(), b.laddrs.len(), "step {step}");
    }

    /// What the rules say any worker's state must show after an update, whatever path it
    /// took (a model of the outcome, checked on the one implementation): the services in
    /// rule order (the first of an id given twice) with their real servers in rule order; each service's counter slot holding
    /// its id; every endpoint looked up to a service that has that endpoint, its VIP an
    /// address taken as a VIP; every counter slot of a service not in the rules marked
    /// removed.
    fn assert_follows(step: usize, rules: &Rules, f: &FullNat, stats: &WorkerStats) {
        // A service id given twice: the first one is the service.
        let mut kept: Vec<&Service> = Vec::new();
        for svc in &rules.services {
            if !kept.iter().any(|k| k.id == svc.id) {
                kept.push(svc);
            }
        }
        let ids: Vec<u32> = kept.iter().map(|s| s.id).collect();
        let have: Vec<u32> = f.services.iter().map(|s| s.id).collect();
        assert_eq!(have, ids, "step {step}: services in rule order");
        for (svc, e) in kept.iter().zip(&f.services) {
            let what = format!("step {step}: service {}", svc.id);
            let reals: Vec<u32> = svc.reals.iter().map(|r| r.id).collect();
            let have: Vec<u32> = e.reals.iter().map(|r| r.id).collect();
            assert_eq!(have, reals, "{what}: real servers in rule order");
            let slot = stats.services.get(e.slot as usize).expect("counter slot");
            assert_eq!(slot.id, svc.id, "{what}: its counter slot");
            assert!(!slot.removed, "{what}: its counter slot is live");
            for ep in svc.endpoints() {
                let key = service_key(u32::from(ep.vip), ep.protocol.number(), ep.port);
                let i = f.service_index.get(key).expect("endpoint indexed") as usize;
                let owner = kept[i];
                assert!(
                    owner
                        .endpoints()
                        .any(|o| (o.vip, o.protocol, o.port) == (ep.vip, ep.protocol, ep.port)),
                    "{what}: endpoint {ep:?} looked up to service {}",
                    owner.id
                );
                let kind = f.addresses.get(u64::from(u32::from(ep.vip)));
                assert!(
                    kind.is_some_and(|k| k & crate::fnat::ADDR_VIP != 0),
                    "{what}: VIP {} taken as a VIP",
                    ep.vip
                );
            }
        }
        for slot in &stats.services {
            if !ids.contains(&slot.id) {
                assert!(
                    slot.removed,
                    "step {step}: slot of gone service {}",
                    slot.id
                );
            }
        }
    }

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn incremental_update_agrees_with_the_full_rebuild() {
        for seed in 1..=6u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut rules = base();
            let (mut next_svc, mut next_real) = (0u32, 0u32);
            let mut gone_services: Vec<Service> = Vec::new();
            let mut gone_reals: Vec<(usize, RealServer)> = Vec::new();
            for _ in 0..8 {
                next_svc += 1;
                let reals: Vec<(u32, u32)> = (0..3)
                    .map(|_| {
                        next_real += 1;
                        (next_real, 1)
                    })
                    .collect();
                rules.services.push(service(
                    next_svc,
                    next_svc as u8,
                    80,
                    SchedulerKind::ALL[next_svc as usize % 13],
                    &reals,
                ));
            }
            let mut sa = WorkerStats::default();
            let mut sc = WorkerStats::default();
            let mut a = fullnat(&rules, &mut sa);
            let mut c = fullnat(&rules, &mut sc);
            // `d` takes each snapshot with the publisher's edits (the ids it set, every
            // generation, additions, removals and moves included); `e` does too but skips
            // generations (a long run beyond the history once), `g` rebuilds fully on the
            // same schedule as `e`.
            let mut sd = WorkerStats::default();
            let mut d = fullnat(&rules, &mut sd);
            let (mut se, mut sg) = (WorkerStats::default(), WorkerStats::default());
            let mut e = fullnat(&rules, &mut se);
            let mut g = fullnat(&rules, &mut sg);
            let mut history = ServiceEdits::default();
            let mut previous = rules.clone();
            let mut e_runs = rules.clone();
            let mut skips = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
            assert_follows(0, &rules, &a, &sa);
            for step in 1..=400 {
                let n = rules.services.len();
                let i = rng.below(n);
                let op = rng.below(22);
                match op {
                    0..=3 if n > 0 => {
                        let s = &mut rules.services[i];
                        let k = rng.below(s.reals.len());
                        if let Some(r) = s.reals.get_mut(k) {
                            r.weight = rng.below(4) as u32;
                        }
                    }
                    4 | 5 if n > 0 => {
                        if rng.below(3) == 0 && !gone_reals.is_empty() {
                            let (_, r) = gone_reals.swap_remove(rng.below(gone_reals.len()));
                            rules.services[i].reals.push(r);
                        } else {
                            next_real += 1;
                            rules.services[i].reals.push(RealServer::new(
                                next_real,
                                Ipv4Addr::new(198, 19, 2, next_real as u8),
                                80,
                                1,
                            ));
                        }
                    }
                    6 if n > 0 => {
                        let s = &mut rules.services[i];
                        if !s.reals.is_empty() {
                            let r = s.reals.remove(rng.below(s.reals.len()));
                            gone_reals.push((i, r));
                        }
                    }
                    7 => {
                        if rng.below(3) == 0 && !gone_services.is_empty() {
                            let s = gone_services.swap_remove(rng.below(gone_services.len()));
                            rules.services.push(s);
                        } else {
                            next_svc += 1;
                            let reals: Vec<(u32, u32)> = (0..rng.below(4))
                                .map(|_| {
                                    next_real += 1;
                                    (next_real, 1 + rng.below(3) as u32)
                                })
                                .collect();
                            let kind = SchedulerKind::ALL[rng.below(13)];
                            rules.services.push(service(
                                next_svc,
                                rng.below(40) as u8,
                                80 + rng.below(3) as u16,
                                kind,
                                &reals,
                            ));
                        }
                    }
                    8 if n > 0 => gone_services.push(rules.services.remove(i)),
                    9 if n > 0 => {
                        let s = &mut rules.services[i];
                        if rng.below(2) == 0 {
                            s.scheduler = SchedulerKind::ALL[rng.below(13)];
                        } else {
                            s.options.sched_flags = SchedFlags(rng.below(4) as u8);
                        }
                    }
                    10 if n > 0 => {
                        let s = &mut rules.services[i];
                        s.options.persistence = match rng.below(3) {
                            0 => None,
                            1 => Some(Persistence::default()),
                            _ => Some(Persistence {
                                timeout_secs: 60,
                                netmask: Ipv4Addr::new(255, 255, 255, 0),
                            }),
                        };
                    }
                    11 if n > 0 => {
                        let s = &mut rules.services[i];
                        s.options.expire_on_removal = !s.options.expire_on_removal;
                    }
                    12 if n > 0 => {
                        let s = &mut rules.services[i];
                        match rng.below(3) {
                            0 => s.local_addresses.push(Ipv4Addr::new(
                                198,
                                19,
                                0,
                                10 + rng.below(4) as u8,
                            )),
                            1 => {
                                s.local_addresses.pop();
                            }
                            _ => {
                                s.local_addresses =
                                    vec![Ipv4Addr::new(198, 19, 0, 20 + rng.below(3) as u8)]
                            }
                        }
                    }
                    13 if n > 0 => {
                        let s = &mut rules.services[i];
                        let k = rng.below(s.reals.len());
                        if let Some(r) = s.reals.get_mut(k) {
                            r.thresholds = Thresholds {
                                upper: rng.below(3) as u32,
                                lower: 0,
                            };
                        }
                    }
                    14 if n > 1 => rules.services.swap(i, rng.below(n)),
                    15 if n > 0 && rng.below(4) == 0 => {
                        let dup = rules.services[i].clone();
                        rules.services.push(dup);
                    }
                    16 if n > 0 => {
                        let s = &mut rules.services[i];
                        s.options.port_group = match s.options.port_group {
                            Some(_) => None,
                            None => Some(PortGroup {
                                mark: 7,
                                name: "g".into(),
                                members: vec![
                                    Endpoint {
                                        vip: Ipv4Addr::new(198, 18, 2, 1),
                                        protocol: Protocol::Tcp,
                                        port: 80,
                                    },
                                    Endpoint {
                                        vip: Ipv4Addr::new(198, 18, 2, 1),
                                        protocol: Protocol::Tcp,
                                        port: 443,
                                    },
                                ],
                            }),
                        };
                    }
                    17 => {
                        // Sessions come and go: the same on both sides.
                        let k = rng.below(sa.services.len());
                        let j = sa.services.get(k).map_or(0, |s| rng.below(s.reals.len()));
                        let conns = rng.below(3) as u64;
                        for st in [&mut sa, &mut sc, &mut sd, &mut se, &mut sg] {
                            if let Some(r) = st.services.get_mut(k).and_then(|s| s.reals.get_mut(j))
                            {
                                r.active_conns = conns;
                            }
                        }
                    }
                    19 if !gone_services.is_empty() => {
                        // Several at once: a new service, one that comes back to the slot
                        // it left (unless the new one took it), more new ones.
                        next_svc += 1;
                        rules.services.push(service(
                            next_svc,
                            rng.below(40) as u8,
                            81,
                            SchedulerKind::Rr,
                            &[],
                        ));
                        let s = gone_services.swap_remove(rng.below(gone_services.len()));
                        rules.services.push(s);
                        for _ in 0..2 {
                            next_svc += 1;
                            rules.services.push(service(
                                next_svc,
                                rng.below(40) as u8,
                                81,
                                SchedulerKind::Rr,
                                &[],
                            ));
                        }
                        if n > 2 {
                            gone_services.push(rules.services.remove(rng.below(n)));
                        }
                    }
                    20 => {
                        rules.routes[0].via =
                            Some(Ipv4Addr::new(198, 19, 0, 250 + rng.below(3) as u8));
                    }
                    18 => {
                        let addrs = &mut rules.ports[0].addresses;
                        if addrs.len() > 1 {
                            addrs.pop();
                        } else {
                            addrs.push(cidr([198, 18, 0, 7], 32));
                        }
                    }
                    _ => {}
                }
                rules.generation += 1;
                a.update(&rules, &mut sa);
                c.update_from(&previous, &rules, &mut sc);
                // What the publisher set: the ids of the services new or not equal to the
                // one of that id before (removed ones are just gone).
                let mut set: Vec<u32> = rules
                    .services
                    .iter()
                    .filter(|s| previous.services.iter().find(|p| p.id == s.id) != Some(*s))
                    .map(|s| s.id)
                    .collect();
                set.sort_unstable();
                set.dedup();
                history = history.then(EditStep {
                    from: previous.generation,
                    services: set.into(),
                });
                let mut with = rules.clone();
                with.edits = Some(history.clone());
                d.update_from(&previous, &with, &mut sd);
                previous = rules.clone();
                assert_follows(step, &rules, &a, &sa);
                assert_same(step, &rules, &c, &sc, &a, &sa);
                assert_same(step, &rules, &d, &sd, &a, &sa);
                let skipping = step % (1 + skips.below(6)) != 0 || (200..=290).contains(&step);
                if !skipping {
                    e.update_from(&e_runs, &with, &mut se);
                    g.update(&rules, &mut sg);
                    e_runs = with;
                    assert_follows(step, &rules, &g, &sg);
                    assert_same(step, &rules, &e, &se, &g, &sg);
                }
            }
            // Every worker given edits applied them; the one that skipped past the history
            // compared once; without edits, every update compares.
            assert_eq!(d.full_compares(), 0, "seed {seed}");
            assert_eq!(e.full_compares(), 1, "seed {seed}");
            assert_eq!(c.full_compares(), 400, "seed {seed}");
        }
    }

    #[test]
    fn an_unchanged_service_keeps_its_scheduler_state_across_other_changes() {
        let mut rules = base();
        rules.services.push(service(
            1,
            1,
            80,
            SchedulerKind::Rr,
            &[(1, 1), (2, 1), (3, 1)],
        ));
        rules
            .services
            .push(service(2, 2, 80, SchedulerKind::Wrr, &[(4, 3), (5, 1)]));
        rules
            .services
            .push(service(3, 3, 80, SchedulerKind::Rr, &[(6, 1)]));
        let mut stats = WorkerStats::default();
        let mut f = fullnat(&rules, &mut stats);
        assert_eq!(pick(&mut f, 0), Some(0));
        assert_eq!(pick(&mut f, 1), Some(0));
        // Another service's weight, a new service, a removed one: service 1 and 2 go on
        // where they were (rr: 1 then 2; wrr 3:1: 0, 0, then 1).
        let mut changes = Vec::new();
        let mut r = rules.clone();
        r.services[2].reals[0].weight = 5;
        changes.push(r.clone());
        r.services
            .push(service(4, 4, 80, SchedulerKind::Rr, &[(7, 1)]));
        changes.push(r.clone());
        r.services.remove(2);
        changes.push(r.clone());
        let mut rr = Vec::new();
        let mut wrr = Vec::new();
        for r in &changes {
            f.update(r, &mut stats);
            rr.push(pick(&mut f, 0));
            wrr.push(pick(&mut f, 1));
        }
        assert_eq!(rr, vec![Some(1), Some(2), Some(0)]);
        assert_eq!(wrr, vec![Some(0), Some(0), Some(1)]);
        // A change to the service itself restarts what the change invalidates (as IPVS).
        let mut r = changes.last().unwrap().clone();
        r.services[1].reals[1].weight = 3;
        f.update(&r, &mut stats);
        assert_eq!(
            pick(&mut f, 1),
            Some(0),
            "wrr restarts at the head on a weight change"
        );
    }

    #[test]
    fn counter_slots_stay_with_their_ids() {
        let mut rules = base();
        rules.services.push(service(
            1,
            1,
            80,
            SchedulerKind::Rr,
            &[(1, 1), (2, 1), (3, 1)],
        ));
        rules
            .services
            .push(service(2, 2, 80, SchedulerKind::Rr, &[(4, 1)]));
        let mut stats = WorkerStats::default();
        let mut f = fullnat(&rules, &mut stats);
        let slot = |st: &WorkerStats, id: u32| st.services.iter().position(|s| s.id == id);
        let rslot = |st: &WorkerStats, s: u32, r: u32| {
            st.services
                .iter()
                .find(|x| x.id == s)
                .and_then(|x| x.reals.iter().position(|y| y.id == r))
        };
        // Real server 2 has a session, 3 has none; both leave, then 5 and 6 arrive.
        stats.services[0].reals[1].active_conns = 1;
        let mut r = rules.clone();
        r.services[0].reals.retain(|x| x.id == 1);
        f.update(&r, &mut stats);
        r.services[0]
            .reals
            .push(RealServer::new(5, Ipv4Addr::new(198, 19, 1, 5), 80, 1));
        r.services[0]
            .reals
            .push(RealServer::new(6, Ipv4Addr::new(198, 19, 1, 6), 80, 1));
        // Service 1 moves behind a new service 3; service 2 stays.
        let first = r.services.remove(0);
        r.services
            .push(service(3, 3, 80, SchedulerKind::Rr, &[(7, 1)]));
        r.services.push(first);
        f.update(&r, &mut stats);
        assert_eq!(
            (slot(&stats, 1), slot(&stats, 2), slot(&stats, 3)),
            (Some(0), Some(1), Some(2))
        );
        assert_eq!(rslot(&stats, 1, 1), Some(0));
        assert_eq!(
            rslot(&stats, 1, 2),
            Some(1),
            "a removed real server with sessions keeps its slot"
        );
        assert_eq!(
            rslot(&stats, 1, 5),
            Some(2),
            "the slot of a removed one without sessions is reused"
        );
        assert_eq!(rslot(&stats, 1, 6), Some(3));
        assert!(stats.services[0].reals[1].removed);
        // The entries point at the same slots as the counters.
        let e = f.services.iter().find(|e| e.id == 1).unwrap();
        assert_eq!(e.slot, 0);
        assert_eq!(
            e.reals.iter().map(|r| (r.id, r.slot)).collect::<Vec<_>>(),
            vec![(1, 0), (5, 2), (6, 3)]
        );
    }

    static PREFETCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    fn counting_prefetch(_: *const u8) {
        PREFETCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    static STREAMED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    fn counting_streamed(_: *const u8) {
        STREAMED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    #[test]
    fn a_new_session_capacity_keeps_the_prefetch_hint() {
        let mut stats = WorkerStats::default();
        let mut r = base();
        r.services
            .push(service(1, 1, 80, SchedulerKind::Rr, &[(1, 1)]));
        let mut f = fullnat(&r, &mut stats);
        f.set_prefetch(counting_prefetch);
        f.set_prefetch_streaming(counting_streamed);
        let prefetches = || PREFETCHES.load(std::sync::atomic::Ordering::Relaxed);
        let streamed = || STREAMED.load(std::sync::atomic::Ordering::Relaxed);
        let before = prefetches();
        f.table.prefetch_index(0);
        assert_eq!(prefetches(), before + 1);
        // An empty table of another capacity is rebuilt by the update.
        r.session_capacity = 4 * f.table.capacity();
        f.update(&r, &mut stats);
        assert_eq!(f.table.capacity(), r.session_capacity);
        let before = prefetches();
        f.table.prefetch_index(0);
        f.touch_index(
            &crate::fnat::BurstHint {
                fast: true,
                keyed: Some((crate::packet::Tuple::default(), 7)),
                candidate: None,
                syn: false,
            },
            f.table.prefetch_hint(),
        );
        assert_eq!(
            prefetches(),
            before + 2,
            "the new table lost the prefetch hint"
        );
        let before = streamed();
        f.table.prefetch_lookup(0, f.table.lookup_prefetch(true));
        assert_eq!(
            streamed(),
            before + 1,
            "the new table lost the streaming hint"
        );
    }
}
