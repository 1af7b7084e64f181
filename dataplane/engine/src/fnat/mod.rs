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
mod fast;
pub mod map;
mod update;

use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use crate::laddr::{owner_of, LocalAddrs};
use crate::neigh::{Emit, NeighTable, Neighbours};
use crate::packet::l4::{TcpFlags, ICMP_ECHO_REQUEST};
use crate::packet::{self, ether, icmp, translate, PacketV4, Transport, Tuple};
use crate::persist::{self, Templates};
use crate::rules::{PortIndex, Protocol, Rules, Timeouts};
use crate::sched::load::{LoadBoard, RsLoad, PUBLISH_INTERVAL_NS};
use crate::sched::{RealSet, Scheduler};
use crate::session::{ConnState, Direction, Session, SessionId, SessionTable, Side, TimerWheel};
use crate::stats::{RealStats, Traffic, WorkerStats};
use crate::verdict::{DropReason, Verdict};

use egress::{Egress, HopCache};
use map::FixedMap;

/// Address kinds in the address index.
/// Due sessions reaped inline when a new flow finds the table full (bounded work).
const FULL_TABLE_REAP: usize = 32;
const ADDR_VIP: u32 = 1;
const ADDR_LIP: u32 = 2;
const ADDR_OWN: u32 = 4;

/// Live sessions from which a burst's prefetch stages pay. Below, the sessions, their index
/// and timer nodes (120 B a session: under 1 MiB) stay in the core's L2 and the stages only
/// cost: 1k sessions forward 15 % faster without the session prefetch, 10k the same either
/// way, and 100k 50 % faster with it (`fnatd bench`, perf/RESULTS.md).
pub const PREFETCH_FROM_SESSIONS: usize = 8192;
/// TTL of the echo replies the balancer sends.
pub const ECHO_REPLY_TTL: u8 = 64;
/// Sessions expired per timer-wheel call inside housekeeping.
const EXPIRE_CHUNK: usize = 256;
const NS_PER_SEC: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct RealEntry {
    id: u32,
    addr: u32,
    /// 0: the port the client asked for.
    port: u16,
    weight: u32,
    /// Index in the service's `RealStats`.
    slot: u16,
    /// Connection thresholds (0 = none) and the overload state they give.
    upper: u32,
    lower: u32,
    overloaded: bool,
}

impl RealEntry {
    #[inline]
    fn ident(&self) -> u64 {
        (u64::from(self.addr) << 16) | u64::from(self.port)
    }
}

impl RealSet for [RealEntry] {
    fn len(&self) -> usize {
        <[RealEntry]>::len(self)
    }
    fn weight(&self, i: usize) -> u32 {
        self.get(i).map_or(0, |r| r.weight)
    }
    fn overloaded(&self, i: usize) -> bool {
        self.get(i).is_some_and(|r| r.overloaded)
    }
    fn ident(&self, i: usize) -> u64 {
        self.get(i).map_or(i as u64, |r| r.ident())
    }
}

/// What the scheduler of a service sees: its real servers with this worker's exact live
/// counts plus the other workers' last published ones (see `sched::load`).
struct View<'a> {
    reals: &'a [RealEntry],
    own: &'a [RealStats],
    others: &'a [(u32, u32)],
}

impl View<'_> {
    #[inline]
    fn counts(&self, i: usize) -> (u32, u32) {
        let Some(r) = self.reals.get(i) else {
            return (0, 0);
        };
        let (oa, oi) = self.own.get(r.slot as usize).map_or((0, 0), |s| {
            (
                s.active_conns.min(u64::from(u32::MAX)) as u32,
                s.inactive_conns.min(u64::from(u32::MAX)) as u32,
            )
        });
        let (xa, xi) = self.others.get(i).copied().unwrap_or((0, 0));
        (oa.saturating_add(xa), oi.saturating_add(xi))
    }
}

impl RealSet for View<'_> {
    fn len(&self) -> usize {
        self.reals.len()
    }
    #[inline]
    fn weight(&self, i: usize) -> u32 {
        self.reals.get(i).map_or(0, |r| r.weight)
    }
    #[inline]
    fn active(&self, i: usize) -> u32 {
        self.counts(i).0
    }
    #[inline]
    fn inactive(&self, i: usize) -> u32 {
        self.counts(i).1
    }
    #[inline]
    fn overloaded(&self, i: usize) -> bool {
        self.reals.get(i).is_some_and(|r| r.overloaded)
    }
    fn ident(&self, i: usize) -> u64 {
        self.reals.get(i).map_or(i as u64, |r| r.ident())
    }
}

/// Persistence of a service as the worker applies it.
#[derive(Debug, Clone, Copy)]
struct PersistEntry {
    mask: u32,
    timeout_ns: u64,
}

#[derive(Debug, Clone)]
struct ServiceEntry {
    id: u32,
    /// Index in `WorkerStats::services`.
    slot: u16,
    reals: Vec<RealEntry>,
    /// Shared live counts of each real server (same order as `reals`).
    loads: Vec<Arc<RsLoad>>,
    /// The other workers' counts of each real server, as last read: (active, inactive).
    others: Vec<(u32, u32)>,
    /// Real-server id → index in `reals` (templates name real servers by id).
    rs_index: FixedMap,
    /// Some real server has an upper threshold.
    thresholds: bool,
    /// Local address slots, in the order the rules list them.
    lips: Vec<u16>,
    sched: Scheduler,
    persist: Option<PersistEntry>,
    /// Netmask to steer client packets that find no session to the template owner: the
    /// service is persistent, or was (its sessions then live on their owners).
    steer_mask: Option<u32>,
}

/// Per service-counter slot: what ending a session of that slot must know.
#[derive(Debug, Clone, Copy, Default)]
struct SlotInfo {
    persist_mask: Option<u32>,
    expire_on_removal: bool,
}

#[inline]
fn service_key(vip: u32, proto: u8, port: u16) -> u64 {
    (u64::from(vip) << 24) | (u64::from(proto) << 16) | u64::from(port)
}

#[inline]
fn sock(ip: u32, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(ip), port)
}

/// What a burst's prefetch stages learned about one frame ([`FullNat::prefetch_index`],
/// then [`FullNat::prefetch_session`]), for the established-flow fast path. Only a hint:
/// frames processed earlier in the burst may have changed the table since, so the fast path
/// checks the whole key against the candidate session before trusting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurstHint {
    /// The frame may take the fast path.
    fast: bool,
    /// The hash tag of the frame's 5-tuple, when the prefetch stage computed it.
    tag: Option<u32>,
    /// The session the index pointed to for that tag.
    candidate: Option<SessionId>,
}

impl BurstHint {
    /// No hint: the frame takes the full pipeline.
    pub const NONE: BurstHint = BurstHint {
        fast: false,
        tag: None,
        candidate: None,
    };
    /// Nothing prefetched (the table is small enough to stay in cache), but the frame may
    /// take the fast path, which then hashes its key itself.
    const UNPREFETCHED: BurstHint = BurstHint {
        fast: true,
        tag: None,
        candidate: None,
    };

    /// The frame may take the fast path.
    #[inline]
    pub fn fast(&self) -> bool {
        self.fast
    }

    /// Keeps the prefetched hash and candidate but sends the frame through the later stages
    /// (the established-flow stage turned off, for tests and measurements).
    #[inline]
    pub fn no_fast_path(&mut self) {
        self.fast = false;
    }
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
    /// Next hops already resolved through `egress` (cleared when it is rebuilt).
    hops: HopCache,
    /// ARP: owned addresses, hold queue, the shared neighbour table.
    neigh: Neighbours,
    timeouts: Timeouts,
    drop_ip_options: bool,
    /// IPVS's `expire_quiescent_template` (see [`Rules::expire_quiescent_template`]).
    expire_quiescent: bool,
    expired: Vec<u32>,
    /// Next arena slot of a sweep ending the sessions of removed services.
    purge: Option<usize>,
    /// Live connection counts shared with the other workers.
    board: Arc<LoadBoard>,
    /// When the counts are next published (ns).
    next_publish: u64,
    /// Persistence templates (allocated once a service is persistent).
    templates: Option<Templates>,
    /// By service-counter slot.
    slot_info: Vec<SlotInfo>,
    /// Live sessions from which bursts are prefetched ([`PREFETCH_FROM_SESSIONS`]).
    prefetch_from: usize,
}

impl FullNat {
    /// The state of worker `id` of `workers`, sized by `rules.session_capacity`; registers
    /// its services and local addresses in `stats`.
    pub fn new(id: u16, workers: u16, rules: &Rules, stats: &mut WorkerStats) -> Self {
        Self::with_board(id, workers, rules, stats, Arc::new(LoadBoard::new(workers)))
    }

    /// As [`FullNat::new`], sharing live connection counts with the other workers through
    /// `board` (one board per dataplane).
    pub fn with_board(
        id: u16,
        workers: u16,
        rules: &Rules,
        stats: &mut WorkerStats,
        board: Arc<LoadBoard>,
    ) -> Self {
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
            hops: HopCache::new(),
            neigh: Neighbours::new(
                id,
                std::sync::Arc::new(NeighTable::new(crate::neigh::DEFAULT_TABLE_CAPACITY)),
                crate::neigh::DEFAULT_HOLD_SLOTS,
            ),
            timeouts: rules.timeouts,
            drop_ip_options: rules.drop_ip_options,
            expire_quiescent: rules.expire_quiescent_template,
            expired: Vec::with_capacity(EXPIRE_CHUNK),
            purge: None,
            board,
            next_publish: 0,
            templates: None,
            slot_info: Vec::new(),
            prefetch_from: PREFETCH_FROM_SESSIONS,
        };
        f.update(rules, stats);
        f
    }

    /// Prefetches bursts from `sessions` live sessions on (default [`PREFETCH_FROM_SESSIONS`]):
    /// for tests that cover both ways, and for tuning to another cache size.
    pub fn set_prefetch_from(&mut self, sessions: usize) {
        self.prefetch_from = sessions;
    }

    /// Some session may have to end because its service, or its real server of a service
    /// that expires them, left the rules (see `session_alive`). That is so exactly while the
    /// sweep ending them runs: a rules update starts it whenever such a session exists. Until
    /// then, and once it is done, the packet path spares itself the check.
    #[inline]
    fn check_alive(&self) -> bool {
        self.purge.is_some()
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

    /// The worker's neighbour state (ARP, hold queue, shared table).
    pub fn neighbours(&self) -> &Neighbours {
        &self.neigh
    }

    pub fn neighbours_mut(&mut self) -> &mut Neighbours {
        &mut self.neigh
    }

    /// An ARP frame received on `rx_port` (see [`Neighbours::arp`]).
    pub fn arp(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        now_ns: u64,
        stats: &mut WorkerStats,
    ) -> Verdict {
        self.neigh.arp(rx_port, frame, now_ns, stats)
    }

    /// Frames to originate and held frames to release (see [`Neighbours::drain`]).
    pub fn drain_originated(
        &mut self,
        now_ns: u64,
        stats: &mut WorkerStats,
        emit: &mut impl FnMut(PortIndex, &[u8]) -> Emit,
    ) {
        self.neigh.drain(now_ns, stats, emit)
    }

    /// Burst stage 1 (a hint, changes nothing): hashes the tuple of `pkt` (the frame's one
    /// parse) and starts loading the index line where its lookup begins. Hand the result to
    /// [`FullNat::prefetch_session`]; [`BurstHint::NONE`] when the frame did not parse. While
    /// the table is small enough to stay in the core's own caches, where prefetching only
    /// costs (see [`PREFETCH_FROM_SESSIONS`]), nothing is prefetched.
    #[inline]
    pub(crate) fn prefetch_index(&self, pkt: Option<&PacketV4>) -> BurstHint {
        let Some(key) = pkt.and_then(PacketV4::tuple) else {
            return BurstHint::NONE;
        };
        if self.table.len() < self.prefetch_from {
            return BurstHint::UNPREFETCHED;
        }
        let tag = self.table.tag(&key);
        self.table.prefetch_index(tag);
        BurstHint {
            fast: true,
            tag: Some(tag),
            candidate: None,
        }
    }

    /// Burst stage 2 (a hint, changes nothing): with the index line of stage 1 loaded by now,
    /// starts loading the session and its timer node the frame most likely belongs to, and
    /// notes that session in `hint`.
    #[inline]
    pub(crate) fn prefetch_session(&self, hint: &mut BurstHint) {
        let Some(tag) = hint.tag else {
            return;
        };
        hint.candidate = self.table.prefetch_session(tag);
        if let Some(id) = hint.candidate {
            self.wheel.prefetch(id);
        }
    }

    /// Decides what happens to one frame (rewritten in place), parsed once as `parsed`, with
    /// what the burst's prefetch stages learned in `hint`. The first stage takes established
    /// flows ([`FullNat::established`]); the others classify, look up or create the session,
    /// rewrite. Does not count the verdict: the caller does.
    #[inline(always)]
    pub fn process(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        parsed: Result<PacketV4, DropReason>,
        hint: BurstHint,
        now_ns: u64,
        stats: &mut WorkerStats,
    ) -> Verdict {
        let pkt = match parsed {
            Ok(pkt) => pkt,
            Err(reason) => return Verdict::Drop(reason),
        };
        if hint.fast {
            if let Some(v) = self.established(rx_port, frame, &pkt, hint, now_ns, stats) {
                stats.fast_path += 1;
                return v;
            }
        }
        match self.classify_parsed(rx_port, frame, pkt, now_ns, stats) {
            Ok(v) => v,
            Err(reason) => Verdict::Drop(reason),
        }
    }

    #[inline(always)]
    fn classify_parsed(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        pkt: PacketV4,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Verdict, DropReason> {
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
                rx_port,
                frame,
                &pkt,
                t.sport,
                t.dport,
                Some(t.flags),
                kind,
                now,
                stats,
            ),
            Transport::Udp(u) => self.tcp_udp(
                rx_port, frame, &pkt, u.sport, u.dport, None, kind, now, stats,
            ),
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
    #[inline(always)]
    fn tcp_udp(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        pkt: &PacketV4,
        sport: u16,
        dport: u16,
        tcp: Option<TcpFlags>,
        kind: u32,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Verdict, DropReason> {
        let key = Tuple::new(
            pkt.ip.proto,
            SocketAddrV4::new(pkt.ip.src, sport),
            SocketAddrV4::new(pkt.ip.dst, dport),
        );
        let service = if kind & ADDR_VIP != 0 {
            self.find_service(key.dst_ip, key.proto, dport)
        } else {
            None
        };
        let Some(service) = service else {
            if kind & ADDR_VIP != 0 {
                // No service at this endpoint (any more), yet a session may have come in by
                // it (a port left its service's port group): sessions first, as IPVS looks
                // connections up before services, so it runs on until it ends. A session of
                // a removed service is ended by `lookup_live`.
                if packet::ttl_expires(pkt.ip.ttl) {
                    return Err(DropReason::TtlExpired);
                }
                if let Some((id, side)) = self.lookup_live(&key, now, stats) {
                    if side == Side::Client && self.reused_port(id, tcp) {
                        self.end_session(id, stats);
                        return Err(DropReason::NoService);
                    }
                    let dir = match side {
                        Side::Client => Direction::Input,
                        Side::Real => Direction::Output,
                    };
                    return self.forward(rx_port, frame, pkt, id, dir, tcp, now, stats);
                }
            }
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
                    self.forward(rx_port, frame, pkt, id, Direction::Output, tcp, now, stats)
                }
                _ => Err(DropReason::NoSession),
            };
        };
        if packet::ttl_expires(pkt.ip.ttl) {
            return Err(DropReason::TtlExpired);
        }
        if let Some((id, side)) = self.lookup_live(&key, now, stats) {
            if side == Side::Client && self.reused_port(id, tcp) {
                // The client reused the port of a connection it already closed: as IPVS's
                // conn_reuse_mode, the old session ends and the SYN is scheduled afresh, so a
                // drained or removed real server gets no new connection this way.
                self.end_session(id, stats);
            } else {
                let dir = match side {
                    Side::Client => Direction::Input,
                    Side::Real => Direction::Output,
                };
                return self.forward(rx_port, frame, pkt, id, dir, tcp, now, stats);
            }
        }
        let starts = match tcp {
            Some(f) => f.syn() && !f.ack(),
            None => true,
        };
        if let Some(owner) = self.steer(service as usize, key.src_ip, starts) {
            return Ok(Verdict::Redirect { worker: owner });
        }
        if !starts {
            return Err(DropReason::NoSession);
        }
        let id = self.create(service as usize, &key, tcp.is_some(), now, stats)?;
        self.forward(rx_port, frame, pkt, id, Direction::Input, tcp, now, stats)
    }

    /// True for a new SYN (no ACK) on a session the connection already left (TIME_WAIT or
    /// CLOSE): the client reused its source port for a new connection.
    #[inline]
    fn reused_port(&self, id: SessionId, tcp: Option<TcpFlags>) -> bool {
        tcp.is_some_and(|f| f.syn() && !f.ack())
            && self
                .table
                .get(id)
                .is_some_and(|s| matches!(s.state, ConnState::TimeWait | ConnState::Close))
    }

    /// The service of a packet to `vip`:`port`: an exact endpoint first, else the VIP's
    /// port-0 service (as IPVS looks services up).
    #[inline]
    fn find_service(&self, vip: u32, proto: u8, port: u16) -> Option<u32> {
        self.service_index
            .get(service_key(vip, proto, port))
            .or_else(|| self.service_index.get(service_key(vip, proto, 0)))
    }

    /// For a client packet of `service` that found no session here: the worker owning its
    /// client's persistence template, when that is another worker (see `persist`). Packets
    /// that start a connection are steered while the service is persistent; others also
    /// after it stopped being persistent (their sessions live on the owners).
    #[inline]
    fn steer(&self, service: usize, client: u32, starts: bool) -> Option<u16> {
        if self.workers <= 1 {
            return None;
        }
        let svc = self.services.get(service)?;
        let mask = svc.steer_mask?;
        if starts && svc.persist.is_none() {
            return None;
        }
        let owner = persist::owner(svc.id, client & mask, self.workers);
        (owner != self.id).then_some(owner)
    }

    /// Looks a session up; ends it instead when it has timed out (exactly at its deadline),
    /// its service is gone, or its real server left a service that expires its sessions.
    #[inline(always)]
    fn lookup_live(
        &mut self,
        key: &Tuple,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Option<(SessionId, Side)> {
        let (id, side) = self.table.lookup(key)?;
        let s = self.table.get(id)?;
        let timed_out = !matches!(self.wheel.deadline(id), Some(d) if d > now);
        if timed_out || (self.check_alive() && !session_alive(stats, &self.slot_info, s)) {
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
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<SessionId, DropReason> {
        if self.table.is_full() {
            // Sessions may be due but not reaped yet (housekeeping runs between bursts): reap
            // a bounded few now rather than refuse a flow the table has room for.
            self.housekeeping(now, FULL_TABLE_REAP, stats);
            if self.table.is_full() {
                return Err(DropReason::SessionTableFull);
            }
        }
        let svc = self
            .services
            .get_mut(service)
            .ok_or(DropReason::NoService)?;
        let own: &[RealStats] = stats
            .services
            .get(svc.slot as usize)
            .map_or(&[], |st| &st.reals[..]);
        if svc.thresholds {
            refresh_overload(&mut svc.reals, own, &svc.others);
        }
        let view = View {
            reals: &svc.reals,
            own,
            others: &svc.others,
        };
        // A persistent client goes where its template says while that server is in the
        // service and not overloaded; a drained one (weight 0) keeps its persistent clients
        // unless `expire_quiescent_template` (IPVS's default and sysctl).
        let mut template = None;
        let mut ri = None;
        if let Some(p) = svc.persist {
            let tkey = persist::key(svc.id, key.src_ip & p.mask);
            template = Some((tkey, p.timeout_ns));
            if let Some(t) = self.templates.as_mut().and_then(|t| t.get(tkey, now)) {
                ri = svc
                    .rs_index
                    .get(u64::from(t.rs_id))
                    .map(|i| i as usize)
                    .filter(|&i| {
                        if self.expire_quiescent {
                            view.available(i)
                        } else {
                            !view.overloaded(i)
                        }
                    });
            }
        }
        let ri = match ri {
            Some(i) => i,
            None => svc
                .sched
                .pick(&view, key, now)
                .ok_or(DropReason::NoRealServer)?,
        };
        let real = *svc.reals.get(ri).ok_or(DropReason::NoRealServer)?;
        let rs_port = if real.port == 0 {
            key.dst_port
        } else {
            real.port
        };
        // Never take a port for a flow that cannot leave.
        self.hops.resolve(&self.egress, real.addr)?;
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
            rs_port,
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
        if let (Some((tkey, timeout)), Some(t)) = (template, self.templates.as_mut()) {
            if !t.bind(tkey, real.id, now, timeout) {
                stats.templates_full += 1;
            }
        }
        Ok(id)
    }

    /// A reply from real server `rs` must come in by the port the route to `rs` leaves by:
    /// a frame claiming to be one from any other port (a client spoofing a server's reply
    /// to inject into a connection, or a routing loop) is dropped as `wrong_ingress`.
    #[inline(always)]
    fn check_reply_ingress(&mut self, rs: u32, rx_port: PortIndex) -> Result<(), DropReason> {
        match self.hops.resolve(&self.egress, rs) {
            Ok(hop) if hop.port == rx_port => Ok(()),
            _ => Err(DropReason::WrongIngress),
        }
    }

    /// Rewrites a packet of session `id` travelling in `dir`, then advances the session's
    /// state, counters and deadline (in place). Nothing changes when the packet cannot leave.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn forward(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        pkt: &PacketV4,
        id: SessionId,
        dir: Direction,
        tcp: Option<TcpFlags>,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Verdict, DropReason> {
        if dir == Direction::Output {
            let rs = self.table.get(id).ok_or(DropReason::NoSession)?.rs_ip;
            self.check_reply_ingress(rs, rx_port)?;
        }
        let s = self.table.get(id).ok_or(DropReason::NoSession)?;
        // The packet leaves with the other side's tuple, reversed.
        let to = match dir {
            Direction::Input => s.real_key().reverse(),
            Direction::Output => s.client_key().reverse(),
        };
        let (old_state, svc_slot, rs_slot) = (s.state, s.svc_slot, s.rs_slot);
        let hop = self.hops.resolve(&self.egress, to.dst_ip)?;
        let dst_mac = if hop.resolved {
            Some(hop.dst_mac)
        } else {
            self.neigh.next_hop_mac(&hop, now)?
        };
        translate(frame, pkt, &to)?;
        let verdict = match dst_mac {
            Some(mac) => {
                ether::set_macs(frame, hop.src_mac, mac);
                Verdict::Transmit { port: hop.port }
            }
            None => self.neigh.hold(frame, &hop, now, stats),
        };

        let state = match tcp {
            Some(f) => old_state.on_tcp(dir, f.syn(), f.fin(), f.ack(), f.rst()),
            None => ConnState::Udp,
        };
        if let Some(m) = self.table.get_mut(id) {
            m.state = state;
        }
        self.count_packet(id, svc_slot, rs_slot, dir, pkt, stats);
        if let Some(r) = stats
            .services
            .get_mut(usize::from(svc_slot))
            .and_then(|st| st.reals.get_mut(usize::from(rs_slot)))
        {
            match (old_state.is_active(), state.is_active()) {
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
        let timeout = u64::from(state.timeout_secs(&self.timeouts)) * NS_PER_SEC;
        self.wheel.schedule(id, now, now.saturating_add(timeout));
        Ok(verdict)
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
        let key = err.embedded.tuple().reverse();
        if key.proto != Protocol::Tcp.number() && key.proto != Protocol::Udp.number() {
            return Err(DropReason::IcmpNoSession);
        }
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
        let Some((id, side)) = self.lookup_live(&key, now, stats) else {
            // About a packet to a client of a persistent service: its session lives on the
            // client's template owner.
            if kind & ADDR_VIP != 0 && key.dst_ip == outer_dst {
                if let Some(owner) = self
                    .find_service(key.dst_ip, key.proto, key.dst_port)
                    .and_then(|svc| self.steer(svc as usize, key.src_ip, false))
                {
                    return Ok(Verdict::Redirect { worker: owner });
                }
            }
            return Err(DropReason::IcmpNoSession);
        };
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
        let dst_mac = self.neigh.next_hop_mac(&hop, now)?;
        icmp::translate_error(
            frame,
            &err,
            Ipv4Addr::from(outer_src),
            Ipv4Addr::from(to),
            quoted_src,
            quoted_dst,
        )?;
        stats.icmp_errors_translated += 1;
        Ok(match dst_mac {
            Some(mac) => {
                ether::set_macs(frame, hop.src_mac, mac);
                Verdict::Transmit { port: hop.port }
            }
            None => self.neigh.hold(frame, &hop, now, stats),
        })
    }

    /// Counts one forwarded packet of session `id` (service slot `svc_slot`, real-server slot
    /// `rs_slot`) in the session, its service and its real server: every stage that forwards
    /// counts through here.
    #[inline(always)]
    fn count_packet(
        &mut self,
        id: SessionId,
        svc_slot: u16,
        rs_slot: u16,
        dir: Direction,
        pkt: &PacketV4,
        stats: &mut WorkerStats,
    ) {
        let bytes = u64::from(pkt.ip.total_len);
        if let Some(m) = self.table.get_mut(id) {
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
        if let Some(st) = stats.services.get_mut(usize::from(svc_slot)) {
            count(&mut st.traffic, dir, bytes);
            if let Some(r) = st.reals.get_mut(usize::from(rs_slot)) {
                count(&mut r.traffic, dir, bytes);
            }
        }
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
        if let (Some(mask), Some(t)) = (
            self.slot_info
                .get(s.svc_slot as usize)
                .and_then(|i| i.persist_mask),
            self.templates.as_mut(),
        ) {
            t.release(persist::key(s.service_id, s.client_ip & mask));
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
            // Software pipeline over the batch: load the session 16 ahead, the index lines of
            // its keys 8 ahead, so that removing each finds them in cache.
            for i in 0..n {
                if let Some(&ahead) = self.expired.get(i + 16) {
                    self.table.prefetch_slot(ahead);
                }
                if let Some(&ahead) = self.expired.get(i + 8) {
                    self.table.prefetch_keys(ahead);
                }
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
                    if !session_alive(stats, &self.slot_info, s) {
                        self.end_session(cursor as SessionId, stats);
                        done += 1;
                    }
                }
                cursor += 1;
                scanned += 1;
            }
            self.purge = if cursor >= cap { None } else { Some(cursor) };
        }
        if let Some(t) = self.templates.as_mut() {
            t.expire(now_ns, budget.max(64));
            stats.templates = t.len() as u64;
        }
        if now_ns >= self.next_publish {
            self.publish_counts(stats);
            self.next_publish = now_ns.saturating_add(PUBLISH_INTERVAL_NS);
        }
        done
    }

    /// Publishes this worker's live counts per real server and reads the other workers'.
    /// O(real servers × workers); runs every `PUBLISH_INTERVAL_NS` from housekeeping.
    fn publish_counts(&mut self, stats: &WorkerStats) {
        let me = self.id as usize;
        for svc in &mut self.services {
            let own = stats.services.get(svc.slot as usize);
            for (i, r) in svc.reals.iter().enumerate() {
                let (a, n) = own
                    .and_then(|st| st.reals.get(r.slot as usize))
                    .map_or((0, 0), |x| (x.active_conns, x.inactive_conns));
                if let (Some(load), Some(o)) = (svc.loads.get(i), svc.others.get_mut(i)) {
                    load.publish(me, a, n);
                    *o = load.others(me);
                }
            }
        }
    }

    /// The persistence templates of this worker (for listings and tests).
    pub fn templates(&self) -> Option<&Templates> {
        self.templates.as_ref()
    }
}

/// A session may go on: its service is still in the rules, and its real server too unless
/// the service expires the sessions of removed real servers.
#[inline]
fn session_alive(stats: &WorkerStats, slot_info: &[SlotInfo], s: &Session) -> bool {
    let Some(st) = stats.services.get(s.svc_slot as usize) else {
        return false;
    };
    if st.removed || st.id != s.service_id {
        return false;
    }
    let expire = slot_info
        .get(s.svc_slot as usize)
        .is_some_and(|i| i.expire_on_removal);
    !(expire
        && st
            .reals
            .get(s.rs_slot as usize)
            .is_some_and(|r| r.removed && r.id == s.rs_id))
}

/// Applies connection thresholds as IPVS does: a server whose connections (active +
/// inactive, all workers) reach its upper threshold is overloaded until they fall below its
/// lower threshold (3/4 of the upper one when the lower is 0).
fn refresh_overload(reals: &mut [RealEntry], own: &[RealStats], others: &[(u32, u32)]) {
    for (i, r) in reals.iter_mut().enumerate() {
        if r.upper == 0 {
            r.overloaded = false;
            continue;
        }
        let mine = own
            .get(r.slot as usize)
            .map_or(0, |s| s.active_conns + s.inactive_conns);
        let theirs = others
            .get(i)
            .map_or(0, |&(a, n)| u64::from(a) + u64::from(n));
        let total = mine + theirs;
        if total >= u64::from(r.upper) {
            r.overloaded = true;
        } else if r.overloaded {
            let below = if r.lower != 0 {
                total < u64::from(r.lower)
            } else {
                total * 4 < u64::from(r.upper) * 3
            };
            if below {
                r.overloaded = false;
            }
        }
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
