//! The full-NAT pipeline of one worker: classify, look up or create the session, rewrite,
//! pick the egress; and bounded housekeeping.
//!
//! ```text
//! client C:cport → VIP:vport   ==>  LIP:lport → RS:rport      (Direction::Input)
//! RS:rport → LIP:lport         ==>  VIP:vport → C:cport       (Direction::Output)
//! ```
//!
//! Everything here is pre-sized: the session table and timer wheel at construction, the
//! service index, address index, routes and port pools at rules update. The packet path does
//! no allocation, takes no lock and makes no system call.

pub mod egress;
pub mod map;

use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::laddr::{owner_of, LocalAddrs};
use crate::packet::l4::{TcpFlags, ICMP_ECHO_REQUEST};
use crate::packet::{self, ether, icmp, PacketV4, Transport};
use crate::rules::{PortIndex, Protocol, Rules, Timeouts};
use crate::sched::{RealSet, Scheduler};
use crate::session::{
    ConnState, Direction, Session, SessionId, SessionTable, Side, TimerWheel, Tuple,
};
use crate::stats::{LocalAddrStats, RealStats, ServiceStats, Traffic, WorkerStats};
use crate::verdict::{DropReason, Verdict};

use egress::Egress;
use map::FixedMap;

/// Address kinds in the address index.
const ADDR_VIP: u32 = 1;
const ADDR_LIP: u32 = 2;
const ADDR_OWN: u32 = 4;

/// TTL of the echo replies the balancer sends.
pub const ECHO_REPLY_TTL: u8 = 64;
/// Sessions expired per timer-wheel call inside housekeeping.
const EXPIRE_CHUNK: usize = 256;
const NS_PER_SEC: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct RealEntry {
    id: u32,
    addr: u32,
    port: u16,
    weight: u32,
    /// Index in the service's `RealStats`.
    slot: u16,
}

impl RealSet for [RealEntry] {
    fn len(&self) -> usize {
        <[RealEntry]>::len(self)
    }
    fn weight(&self, i: usize) -> u32 {
        self.get(i).map_or(0, |r| r.weight)
    }
}

#[derive(Debug, Clone)]
struct ServiceEntry {
    id: u32,
    /// Index in `WorkerStats::services`.
    slot: u16,
    reals: Vec<RealEntry>,
    /// Local address slots, in the order the rules list them.
    lips: Vec<u16>,
    sched: Scheduler,
    /// `service_key(vip, proto, port)`.
    key: u64,
}

#[inline]
fn service_key(vip: u32, proto: u8, port: u16) -> u64 {
    (u64::from(vip) << 24) | (u64::from(proto) << 16) | u64::from(port)
}

#[inline]
fn sock(ip: u32, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(ip), port)
}

/// The full-NAT state of one worker.
pub struct FullNat {
    id: u16,
    workers: u16,
    table: SessionTable,
    wheel: TimerWheel,
    laddrs: LocalAddrs,
    services: Vec<ServiceEntry>,
    /// (vip, proto, port) → index in `services`.
    service_index: FixedMap,
    /// address → ADDR_* bits.
    addresses: FixedMap,
    egress: Egress,
    timeouts: Timeouts,
    drop_ip_options: bool,
    expired: Vec<u32>,
    /// Next arena slot of a sweep ending the sessions of removed services.
    purge: Option<usize>,
}

impl FullNat {
    /// The state of worker `id` of `workers`, sized by `rules.session_capacity`; registers
    /// its services and local addresses in `stats`.
    pub fn new(id: u16, workers: u16, rules: &Rules, stats: &mut WorkerStats) -> Self {
        let seed = std::collections::hash_map::RandomState::new().hash_one(id);
        let capacity = rules.session_capacity;
        let mut f = FullNat {
            id,
            workers: workers.max(1),
            table: SessionTable::new(capacity, seed),
            wheel: TimerWheel::new(capacity),
            laddrs: LocalAddrs::new(id, workers.max(1), rules.lport_min, rules.lport_max),
            services: Vec::new(),
            service_index: FixedMap::with_capacity(0),
            addresses: FixedMap::with_capacity(0),
            egress: Egress::new(rules),
            timeouts: rules.timeouts,
            drop_ip_options: rules.drop_ip_options,
            expired: Vec::with_capacity(EXPIRE_CHUNK),
            purge: None,
        };
        f.update(rules, stats);
        f
    }

    /// The session table (read-only: for listings and tests).
    pub fn table(&self) -> &SessionTable {
        &self.table
    }

    /// Live sessions with their deadline (ns): O(capacity), for the control plane and tests.
    pub fn sessions(&self) -> impl Iterator<Item = (SessionId, &Session, u64)> + '_ {
        (0..self.table.capacity()).filter_map(move |i| {
            let s = self.table.slot(i)?;
            Some((
                i as SessionId,
                s,
                self.wheel.deadline(i as u32).unwrap_or(0),
            ))
        })
    }

    /// The session in arena slot `slot` with its deadline (ns), if live: lets a listing walk
    /// the table a bounded chunk at a time between bursts.
    pub fn session_at(&self, slot: usize) -> Option<(&Session, u64)> {
        let s = self.table.slot(slot)?;
        Some((s, self.wheel.deadline(slot as u32).unwrap_or(0)))
    }

    /// Switches to a new rules snapshot. Sessions are kept; those of services that left the
    /// rules are ended (by the housekeeping sweep, or when a packet or timer touches them);
    /// those of removed real servers run on until they expire. Allocates (control path).
    /// The session capacity is fixed at construction (it changes only while no session lives).
    pub fn update(&mut self, rules: &Rules, stats: &mut WorkerStats) {
        self.timeouts = rules.timeouts;
        self.drop_ip_options = rules.drop_ip_options;
        self.egress = Egress::new(rules);
        if self.table.capacity() != rules.session_capacity && self.table.is_empty() {
            let seed = std::collections::hash_map::RandomState::new().hash_one(self.id);
            self.table = SessionTable::new(rules.session_capacity, seed);
            self.wheel = TimerWheel::new(rules.session_capacity);
        }
        self.laddrs.set_range(rules.lport_min, rules.lport_max);

        let old = std::mem::take(&mut self.services);
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
                reals.push(RealEntry {
                    id: rs.id,
                    addr: u32::from(rs.addr),
                    port: rs.port,
                    weight: rs.weight,
                    slot: rslot as u16,
                });
            }
            for (i, r) in st.reals.iter_mut().enumerate() {
                if !rs_seen[i] {
                    r.removed = true;
                }
            }

            let mut lips = Vec::with_capacity(svc.local_addresses.len());
            for &addr in &svc.local_addresses {
                let s = self.laddrs.ensure(addr);
                if s <= u16::MAX as usize && !lips.contains(&(s as u16)) {
                    lips.push(s as u16);
                }
            }

            let sched = match old.iter().find(|o| o.id == svc.id) {
                Some(o) if o.sched.kind() == svc.scheduler => {
                    let mut s = o.sched.clone();
                    let changed = o.reals.len() != reals.len()
                        || o.reals
                            .iter()
                            .zip(&reals)
                            .any(|(a, b)| a.id != b.id || a.weight != b.weight);
                    if changed {
                        s.update(&reals[..]);
                    }
                    s
                }
                _ => Scheduler::new(svc.scheduler, &reals[..]),
            };
            services.push(ServiceEntry {
                id: svc.id,
                slot: slot as u16,
                reals,
                lips,
                sched,
                key: service_key(u32::from(svc.vip), svc.protocol.number(), svc.port),
            });
        }
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
        if purge {
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

        // Indexes.
        let mut service_index = FixedMap::with_capacity(services.len());
        for (i, entry) in services.iter().enumerate() {
            service_index.insert(entry.key, i as u32);
        }
        self.service_index = service_index;

        let own: usize = rules.ports.iter().map(|p| p.addresses.len()).sum();
        let mut addresses = FixedMap::with_capacity(rules.services.len() + self.laddrs.len() + own);
        let or = |a: u32, b: u32| a | b;
        for svc in &rules.services {
            addresses.insert_with(u64::from(u32::from(svc.vip)), ADDR_VIP, or);
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
    }

    /// Decides what happens to one frame (rewritten in place). Does not count the verdict:
    /// the caller does.
    pub fn process(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        now_ns: u64,
        stats: &mut WorkerStats,
    ) -> Verdict {
        match self.classify(rx_port, frame, now_ns, stats) {
            Ok(v) => v,
            Err(reason) => Verdict::Drop(reason),
        }
    }

    fn classify(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Verdict, DropReason> {
        let pkt = packet::parse(frame)?;
        let port_mac = self.egress.port_mac(rx_port).ok_or(DropReason::NotForUs)?;
        if ether::dst_mac(frame) != Some(port_mac) {
            return Err(DropReason::NotForUs);
        }
        let kind = self
            .addresses
            .get(u64::from(u32::from(pkt.ip.dst)))
            .ok_or(DropReason::NotForUs)?;
        if pkt.ip.has_options() {
            stats.ip_options += 1;
            if self.drop_ip_options {
                return Err(DropReason::IpOptions);
            }
        }
        match pkt.transport {
            Transport::Tcp(t) => self.tcp_udp(
                frame,
                &pkt,
                t.sport,
                t.dport,
                Some(t.flags),
                kind,
                now,
                stats,
            ),
            Transport::Udp(u) => {
                self.tcp_udp(frame, &pkt, u.sport, u.dport, None, kind, now, stats)
            }
            Transport::Icmp(i) => {
                if i.icmp_type == ICMP_ECHO_REQUEST {
                    let peer = ether::src_mac(frame).ok_or(DropReason::Truncated)?;
                    icmp::echo_reply_in_place(frame, &pkt, ECHO_REPLY_TTL)?;
                    ether::set_macs(frame, port_mac, peer);
                    stats.icmp_echo_replies += 1;
                    Ok(Verdict::Transmit { port: rx_port })
                } else if i.is_error() {
                    self.icmp_error(frame, &pkt, kind, now, stats)
                } else {
                    Err(DropReason::IcmpUnsupported)
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp_udp(
        &mut self,
        frame: &mut [u8],
        pkt: &PacketV4,
        sport: u16,
        dport: u16,
        tcp: Option<TcpFlags>,
        kind: u32,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Verdict, DropReason> {
        let key = Tuple {
            proto: pkt.ip.proto,
            src_ip: u32::from(pkt.ip.src),
            src_port: sport,
            dst_ip: u32::from(pkt.ip.dst),
            dst_port: dport,
        };
        let service = if kind & ADDR_VIP != 0 {
            self.service_index
                .get(service_key(key.dst_ip, key.proto, dport))
        } else {
            None
        };
        let Some(service) = service else {
            if kind & ADDR_LIP == 0 {
                return Err(DropReason::NoService);
            }
            // A real server's reply to LIP:lport: the owner of lport has the session.
            let owner = owner_of(dport, self.workers);
            if owner != self.id {
                return Ok(Verdict::Redirect { worker: owner });
            }
            if packet::ttl_expires(pkt.ip.ttl) {
                return Err(DropReason::TtlExpired);
            }
            return match self.lookup_live(&key, now, stats) {
                Some((id, Side::Real)) => {
                    self.forward(frame, pkt, id, Direction::Output, tcp, now, stats)
                }
                _ => Err(DropReason::NoSession),
            };
        };
        if packet::ttl_expires(pkt.ip.ttl) {
            return Err(DropReason::TtlExpired);
        }
        if let Some((id, side)) = self.lookup_live(&key, now, stats) {
            let dir = match side {
                Side::Client => Direction::Input,
                Side::Real => Direction::Output,
            };
            return self.forward(frame, pkt, id, dir, tcp, now, stats);
        }
        let starts = match tcp {
            Some(f) => f.syn() && !f.ack(),
            None => true,
        };
        if !starts {
            return Err(DropReason::NoSession);
        }
        let id = self.create(service as usize, &key, tcp.is_some(), stats)?;
        self.forward(frame, pkt, id, Direction::Input, tcp, now, stats)
    }

    /// Looks a session up; ends it instead when it has timed out (exactly at its deadline) or
    /// its service is gone.
    #[inline]
    fn lookup_live(
        &mut self,
        key: &Tuple,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Option<(SessionId, Side)> {
        let (id, side) = self.table.lookup(key)?;
        let s = self.table.get(id)?;
        let timed_out = !matches!(self.wheel.deadline(id), Some(d) if d > now);
        let service_alive = stats
            .services
            .get(s.svc_slot as usize)
            .is_some_and(|st| !st.removed && st.id == s.service_id);
        if timed_out || !service_alive {
            self.end_session(id, stats);
            return None;
        }
        Some((id, side))
    }

    /// Schedules a real server and a local port and inserts the session (state NONE for TCP,
    /// UDP for UDP); the first packet's transition follows in `forward`.
    fn create(
        &mut self,
        service: usize,
        key: &Tuple,
        is_tcp: bool,
        stats: &mut WorkerStats,
    ) -> Result<SessionId, DropReason> {
        if self.table.is_full() {
            return Err(DropReason::SessionTableFull);
        }
        let svc = self
            .services
            .get_mut(service)
            .ok_or(DropReason::NoService)?;
        let ri = svc
            .sched
            .pick(&svc.reals[..])
            .ok_or(DropReason::NoRealServer)?;
        let real = *svc.reals.get(ri).ok_or(DropReason::NoRealServer)?;
        // Never take a port for a flow that cannot leave.
        self.egress.resolve(real.addr)?;
        let local_addrs = &mut stats.local_addrs;
        let (lip_slot, lport) = self
            .laddrs
            .alloc(&svc.lips, |s| {
                if let Some(l) = local_addrs.get_mut(s) {
                    l.exhausted += 1;
                }
            })
            .ok_or(DropReason::LocalPortsExhausted)?;
        let lip = self
            .laddrs
            .pool(lip_slot)
            .map_or(0, |p| u32::from(p.addr()));
        let session = Session {
            client_ip: key.src_ip,
            vip: key.dst_ip,
            rs_ip: real.addr,
            lip,
            client_port: key.src_port,
            vport: key.dst_port,
            rs_port: real.port,
            lport,
            service_id: svc.id,
            rs_id: real.id,
            lip_slot: lip_slot as u16,
            svc_slot: svc.slot,
            rs_slot: real.slot,
            proto: key.proto,
            state: if is_tcp {
                ConnState::None
            } else {
                ConnState::Udp
            },
            ..Session::default()
        };
        let svc_slot = svc.slot;
        let id = match self.table.insert(session) {
            Ok(id) => id,
            Err(e) => {
                self.laddrs.release(lip_slot, lport);
                return Err(match e {
                    crate::session::InsertError::Full => DropReason::SessionTableFull,
                    _ => DropReason::LocalPortsExhausted,
                });
            }
        };
        if let Some(l) = stats.local_addrs.get_mut(lip_slot) {
            l.ports_in_use += 1;
        }
        if let Some(st) = stats.services.get_mut(svc_slot as usize) {
            st.traffic.conns += 1;
            if let Some(r) = st.reals.get_mut(real.slot as usize) {
                r.traffic.conns += 1;
                r.inactive_conns += 1;
            }
        }
        stats.sessions += 1;
        stats.sessions_created += 1;
        Ok(id)
    }

    /// Rewrites a packet of session `id` travelling in `dir`, then advances the session's
    /// state, counters and deadline.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        frame: &mut [u8],
        pkt: &PacketV4,
        id: SessionId,
        dir: Direction,
        tcp: Option<TcpFlags>,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Verdict, DropReason> {
        let s = *self.table.get(id).ok_or(DropReason::NoSession)?;
        let (src, dst) = match dir {
            Direction::Input => (sock(s.lip, s.lport), sock(s.rs_ip, s.rs_port)),
            Direction::Output => (sock(s.vip, s.vport), sock(s.client_ip, s.client_port)),
        };
        let hop = self.egress.resolve(u32::from(*dst.ip()))?;
        packet::rewrite_fullnat(frame, pkt, src, dst)?;
        ether::set_macs(frame, hop.src_mac, hop.dst_mac);

        let state = match tcp {
            Some(f) => s.state.on_tcp(dir, f.syn(), f.fin(), f.ack(), f.rst()),
            None => ConnState::Udp,
        };
        let bytes = u64::from(pkt.ip.total_len);
        if let Some(m) = self.table.get_mut(id) {
            m.state = state;
            match dir {
                Direction::Input => {
                    m.packets_in = m.packets_in.wrapping_add(1);
                    m.bytes_in = m.bytes_in.wrapping_add(bytes);
                }
                Direction::Output => {
                    m.packets_out = m.packets_out.wrapping_add(1);
                    m.bytes_out = m.bytes_out.wrapping_add(bytes);
                }
            }
        }
        if let Some(st) = stats.services.get_mut(s.svc_slot as usize) {
            count(&mut st.traffic, dir, bytes);
            if let Some(r) = st.reals.get_mut(s.rs_slot as usize) {
                count(&mut r.traffic, dir, bytes);
                match (s.state.is_active(), state.is_active()) {
                    (false, true) => {
                        r.inactive_conns = r.inactive_conns.saturating_sub(1);
                        r.active_conns += 1;
                    }
                    (true, false) => {
                        r.active_conns = r.active_conns.saturating_sub(1);
                        r.inactive_conns += 1;
                    }
                    _ => {}
                }
            }
        }
        let timeout = u64::from(state.timeout_secs(&self.timeouts)) * NS_PER_SEC;
        self.wheel.schedule(id, now, now.saturating_add(timeout));
        Ok(Verdict::Transmit { port: hop.port })
    }

    /// Translates an ICMP error about a session's packet (RFC 5508) and sends it to the other
    /// side: errors from the real-server side (quoting LIP:lport → RS) go to the client as
    /// VIP → client quoting client → VIP; errors from the client side (quoting VIP → client)
    /// go to the real server as LIP → RS quoting RS → LIP.
    fn icmp_error(
        &mut self,
        frame: &mut [u8],
        pkt: &PacketV4,
        kind: u32,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Verdict, DropReason> {
        let err = icmp::parse_error(frame, pkt)?;
        let q = err.embedded.flow_key().reverse();
        if q.proto != Protocol::Tcp.number() && q.proto != Protocol::Udp.number() {
            return Err(DropReason::IcmpNoSession);
        }
        let key = Tuple {
            proto: q.proto,
            src_ip: u32::from(q.src),
            src_port: q.sport,
            dst_ip: u32::from(q.dst),
            dst_port: q.dport,
        };
        let outer_dst = u32::from(pkt.ip.dst);
        // About a packet we sent from LIP:lport: only lport's owner knows the session.
        if kind & ADDR_LIP != 0 && key.dst_ip == outer_dst {
            let owner = owner_of(key.dst_port, self.workers);
            if owner != self.id {
                return Ok(Verdict::Redirect { worker: owner });
            }
        }
        if packet::ttl_expires(pkt.ip.ttl) {
            return Err(DropReason::TtlExpired);
        }
        let (id, side) = self
            .lookup_live(&key, now, stats)
            .ok_or(DropReason::IcmpNoSession)?;
        let s = *self.table.get(id).ok_or(DropReason::IcmpNoSession)?;
        let (outer_src, to, quoted_src, quoted_dst) = match side {
            Side::Real if outer_dst == s.lip => (
                s.vip,
                s.client_ip,
                sock(s.client_ip, s.client_port),
                sock(s.vip, s.vport),
            ),
            Side::Client if outer_dst == s.vip => (
                s.lip,
                s.rs_ip,
                sock(s.rs_ip, s.rs_port),
                sock(s.lip, s.lport),
            ),
            _ => return Err(DropReason::IcmpNoSession),
        };
        let hop = self.egress.resolve(to)?;
        icmp::translate_error(
            frame,
            &err,
            Ipv4Addr::from(outer_src),
            Ipv4Addr::from(to),
            quoted_src,
            quoted_dst,
        )?;
        ether::set_macs(frame, hop.src_mac, hop.dst_mac);
        stats.icmp_errors_translated += 1;
        Ok(Verdict::Transmit { port: hop.port })
    }

    /// Ends a session: frees both keys, its timer and its local port; updates the gauges.
    fn end_session(&mut self, id: SessionId, stats: &mut WorkerStats) {
        let Some(s) = self.table.remove(id) else {
            self.wheel.cancel(id);
            return;
        };
        self.wheel.cancel(id);
        if self.laddrs.release(s.lip_slot as usize, s.lport) {
            if let Some(l) = stats.local_addrs.get_mut(s.lip_slot as usize) {
                l.ports_in_use = l.ports_in_use.saturating_sub(1);
            }
        }
        if let Some(r) = stats
            .services
            .get_mut(s.svc_slot as usize)
            .and_then(|st| st.reals.get_mut(s.rs_slot as usize))
        {
            if s.state.is_active() {
                r.active_conns = r.active_conns.saturating_sub(1);
            } else {
                r.inactive_conns = r.inactive_conns.saturating_sub(1);
            }
        }
        stats.sessions = stats.sessions.saturating_sub(1);
        stats.sessions_ended += 1;
    }

    /// Ends at most `budget` sessions: those whose deadline passed (the wheel reports them at
    /// most one tick late; packets see the exact deadline), then sessions of removed services
    /// (a bounded sweep). Returns how many were ended.
    pub fn housekeeping(&mut self, now_ns: u64, budget: usize, stats: &mut WorkerStats) -> usize {
        let mut done = 0;
        while done < budget {
            self.expired.clear();
            let chunk = (budget - done).min(EXPIRE_CHUNK);
            let n = self.wheel.expire(now_ns, chunk, &mut self.expired);
            for i in 0..n {
                let id = self.expired[i];
                self.end_session(id, stats);
            }
            done += n;
            if n < chunk {
                break;
            }
        }
        if let Some(mut cursor) = self.purge {
            let cap = self.table.capacity();
            let scan_limit = budget
                .saturating_sub(done)
                .saturating_mul(8)
                .saturating_add(256);
            let mut scanned = 0;
            while cursor < cap && scanned < scan_limit && done < budget {
                if let Some(s) = self.table.slot(cursor) {
                    let alive = stats
                        .services
                        .get(s.svc_slot as usize)
                        .is_some_and(|st| !st.removed && st.id == s.service_id);
                    if !alive {
                        self.end_session(cursor as SessionId, stats);
                        done += 1;
                    }
                }
                cursor += 1;
                scanned += 1;
            }
            self.purge = if cursor >= cap { None } else { Some(cursor) };
        }
        done
    }
}

#[inline]
fn count(t: &mut Traffic, dir: Direction, bytes: u64) {
    match dir {
        Direction::Input => {
            t.packets_in += 1;
            t.bytes_in += bytes;
        }
        Direction::Output => {
            t.packets_out += 1;
            t.bytes_out += bytes;
        }
    }
}
