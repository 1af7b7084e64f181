//! The full-NAT pipeline of one worker: classify, look up or create the session, rewrite,
//! pick the egress; and bounded housekeeping.
//!
//! ```text
//! client C:cport → VIP:vport   ==>  LIP:lport → RS:rport      (Direction::Input)
//! RS:rport → LIP:lport         ==>  VIP:vport → C:cport       (Direction::Output)
//! ```
//!
//! The pipeline by phase, one file each: `FullNat::process` (here) runs the stages in order;
//! `fast.rs` takes established flows; `classify.rs` finds the session or the service;
//! `create.rs` schedules and creates a session; `forward.rs` rewrites, picks the next hop and
//! counts; `icmp_error.rs` translates ICMP errors; `housekeeping.rs` ends sessions and
//! publishes load between bursts; `update.rs` applies new rules.
//!
//! Everything here is pre-sized: the session table and timer wheel at construction, the
//! service index, address index, routes and port pools at rules update. The packet path does
//! no allocation, takes no lock and makes no system call.

mod classify;
pub mod client_addr;
mod create;
pub mod egress;
mod encap;
mod fast;
mod forward;
mod housekeeping;
mod icmp_error;
pub mod map;
mod snat;
pub mod sync;
pub mod synproxy;
mod update;

use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use crate::frame::Frame;
use crate::laddr::LocalAddrs;
use crate::neigh::{Emit, NeighTable, Neighbours};
use crate::packet::{PacketV4, Tuple};
use crate::persist::Templates;
use crate::rules::{Method, PortIndex, Rules, Timeouts};
use crate::sched::load::{LoadBoard, RsLoad};
use crate::sched::{RealSet, Scheduler};
use crate::session::table::Prefetch;
use crate::session::{ConnState, Session, SessionId, SessionTable, Side, TimerWheel};
use crate::stats::WorkerStats;
use crate::verdict::{DropReason, Verdict};

use egress::{Egress, HopCache};
use housekeeping::session_alive;
use map::FixedMap;

/// Address kinds in the address index.
/// Due sessions reaped inline when a new flow finds the table full (bounded work).
const FULL_TABLE_REAP: usize = 32;
const ADDR_VIP: u32 = 1;
const ADDR_LIP: u32 = 2;
const ADDR_OWN: u32 = 4;
/// A VRRP virtual address this director is backup for (`Rules::standby`).
const ADDR_STANDBY: u32 = 8;

/// Live sessions from which a burst's prefetch stages pay. Below, the sessions, their index
/// and timer nodes (112 B a session: under 1 MiB) stay in the core's L2 and the stages only
/// cost: 1k sessions forward 15 % faster without the session prefetch, 10k the same either
/// way, and 100k 50 % faster with it (`fnatd bench`, perf/RESULTS.md).
pub const PREFETCH_FROM_SESSIONS: usize = 8192;
/// Live sessions from which a burst's lookups load their index and session lines with the
/// streaming hint (`PREFETCHNTA` in fnatd), keeping them out of the outer caches. From there
/// on, nearly every such line comes from memory and is not seen again before it would be
/// evicted anyway, and loading it through L2 only pushes out what the rest of the packet path
/// uses (mbufs, rings, rules, counters). Measured side by side (`fnatd bench`, alternating
/// runs, perf/RESULTS.md "issue 12, session 11"): 10 M sessions +10 %, 3 M +5 %, 1 M -2 %,
/// 100 k -6 %, new connections unchanged (creation and expiry keep the normal hint: the
/// lines they load are written and read again, and streaming them cost 10 %).
pub const STREAM_FROM_SESSIONS: usize = 2 << 20;
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
    method: Method,
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
    /// Some real server is forwarded by NAT: the service's client packets are processed by
    /// their client's NAT owner ([`nat_owner`]), where the replies go too.
    nat: bool,
    /// Local address slots, in the order the rules list them.
    lips: Vec<u16>,
    /// Where this worker's next local-port search starts in `lips`: the addresses take new
    /// connections in turn, as DPVS's and IPVS's full NAT do (see `alloc_lport`).
    next_lip: usize,
    sched: Scheduler,
    persist: Option<PersistEntry>,
    /// Netmask to steer client packets that find no session to the template owner: the
    /// service is persistent, or was (its sessions then live on their owners).
    steer_mask: Option<u32>,
    /// Allow/deny lists (shared with the rules snapshot).
    acl: Option<Arc<crate::acl::ClientAcl>>,
    /// This worker's share of the per-prefix new-connection cap.
    rate: Option<Box<crate::acl::RateTable>>,
}

/// Per service-counter slot: what ending a session of that slot must know.
#[derive(Debug, Clone, Copy, Default)]
struct SlotInfo {
    persist_mask: Option<u32>,
    expire_on_removal: bool,
    /// Proxy Protocol / TOA of the service's full-NAT sessions.
    client_address: crate::rules::ClientAddress,
    /// SYN proxy: SYN cookies answer the service's SYNs (`synproxy.rs`).
    synproxy: bool,
}

#[inline]
fn service_key(vip: u32, proto: u8, port: u16) -> u64 {
    (u64::from(vip) << 24) | (u64::from(proto) << 16) | u64::from(port)
}

#[inline]
fn sock(ip: u32, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(ip), port)
}

/// What a burst's prefetch stages learned about one frame ([`FullNat::burst_hint`],
/// [`FullNat::touch_index`], then [`FullNat::prefetch_session`]), for the established-flow
/// stage. Only a hint:
/// frames processed earlier in the burst may have changed the table since, so the fast path
/// checks the whole key against the candidate session before trusting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BurstHint {
    /// The frame may take the fast path.
    fast: bool,
    /// The frame's five-tuple and its hash tag, when the prefetch stage computed them.
    keyed: Option<(Tuple, u32)>,
    /// The session (and which of its keys) the index pointed to for that tag.
    candidate: Option<(SessionId, Side)>,
    /// A TCP SYN: the lines its lookup loads are written soon (the session it creates is
    /// indexed there) and keep the normal prefetch hint, never the burst's streaming one.
    syn: bool,
}

impl BurstHint {
    /// No hint: the frame takes the full pipeline.
    pub const NONE: BurstHint = BurstHint {
        fast: false,
        keyed: None,
        candidate: None,
        syn: false,
    };
    /// Nothing prefetched (the table is small enough to stay in cache), but the frame may
    /// take the fast path, which then hashes its key itself.
    pub(crate) const UNPREFETCHED: BurstHint = BurstHint {
        fast: true,
        keyed: None,
        candidate: None,
        syn: false,
    };

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
    /// The SNAT services' rules with their index in `services`, in rules order (the first
    /// that takes a packet wins).
    snat: Vec<(crate::rules::SnatRule, u32)>,
    egress: Egress,
    /// Next hops already resolved through `egress` (cleared when it is rebuilt).
    hops: HopCache,
    /// ARP: owned addresses, hold queue, the shared neighbour table.
    neigh: Neighbours,
    /// Each state's idle timeout in ns, by `ConnState as usize` ([`state_timeouts_ns`]).
    timeouts_ns: [u64; ConnState::ALL.len()],
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
    /// Live sessions from which bursts' lookups stream ([`STREAM_FROM_SESSIONS`]).
    stream_from: usize,
    /// Updates from a previous snapshot whose edits did not reach back to it (so every
    /// service was compared with its previous self).
    full_compares: u64,
    /// By `PortIndex`: the port has a kernel twin (the exception path).
    twins: Vec<bool>,
    /// Some service has (or had) a NAT real server: packets to addresses that are not ours
    /// may be replies of NAT sessions (sticky: sessions outlive their rules).
    nat_replies: bool,
    /// The tunnel a packet of a TUN session is to be wrapped in, set by `forward` and
    /// applied by `process` (which holds the frame, and so its headroom).
    encap: Option<encap::Encap>,
    /// IPv4 identification of the outer headers this worker writes.
    ip_id: u16,
    /// By session id: the sequence state of sessions whose service sends the client's
    /// address (Proxy Protocol, TOA), all zero for the others (`client_addr.rs`); empty
    /// until a service needs it (allocated by the rules switch, on the control path).
    adjust: Vec<client_addr::SeqAdjust>,
    /// Some session has had sequence state: `forward` checks `adjust` (sticky, so that
    /// workers without such services never read it).
    adjusting: bool,
    /// What `forward` left for `process` to add to the frame (header, TOA option).
    insert: Option<client_addr::Insert>,
    /// Session sync export: off unless the driver turns it on (`sync.rs`).
    sync: sync::SyncOut,
    /// SYN-proxy buffers (allocated by the rules switch once a service is SYN-proxied).
    sp: Option<Box<synproxy::SynProxy>>,
    /// Proxy Protocol headers sent alone and not acknowledged yet (`client_addr.rs`).
    pending_headers: Vec<client_addr::PendingHeader>,
    /// Client options 254 that `client_address` turned into NOPs since `process` last
    /// moved the count into the worker's stats (it has no stats of its own).
    toa_stripped: u64,
}

/// The worker that owns NAT sessions of client address `client`, for `workers` workers: both
/// directions of a NAT connection carry the client address (destination of replies, source
/// of requests), so requests and replies meet there whichever queue RSS put them in. A hash
/// of the address only (not the port), so a client's connections, and its persistence
/// templates, share a worker.
#[inline]
pub fn nat_owner(client: u32, workers: u16) -> u16 {
    if workers <= 1 {
        return 0;
    }
    let h = client.wrapping_mul(0x9E37_79B1);
    ((u64::from(h) * u64::from(workers)) >> 32) as u16
}

/// The worker that holds a foreign session (an active peer's full-NAT session, synced here)
/// of client `client`:`port`, for `workers` workers. The peer placed it by its own RSS, which
/// says nothing of where ours puts the client's packets; so sync installs it here, and a
/// client packet that finds no session on the worker RSS chose is sent here once (active
/// peers only: `SyncRules::active_peers`). Replies of it go to the peer, so the local
/// port does not matter here.
#[inline]
pub fn foreign_owner(client: u32, port: u16, workers: u16) -> u16 {
    if workers <= 1 {
        return 0;
    }
    let h = (client ^ u32::from(port).rotate_left(16)).wrapping_mul(0x9E37_79B1);
    ((u64::from(h) * u64::from(workers)) >> 32) as u16
}

/// Each state's idle timeout in ns ([`ConnState::timeout_secs`]), by `ConnState as usize`:
/// forwarding reads one word instead of matching the state.
fn state_timeouts_ns(t: &Timeouts) -> [u64; ConnState::ALL.len()] {
    ConnState::ALL.map(|s| u64::from(s.timeout_secs(t)) * NS_PER_SEC)
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
            snat: Vec::new(),
            egress: Egress::new(rules),
            hops: HopCache::new(),
            neigh: Neighbours::new(
                id,
                std::sync::Arc::new(NeighTable::new(crate::neigh::DEFAULT_TABLE_CAPACITY)),
                crate::neigh::DEFAULT_HOLD_SLOTS,
            ),
            timeouts_ns: state_timeouts_ns(&rules.timeouts),
            drop_ip_options: rules.drop_ip_options,
            expire_quiescent: rules.expire_quiescent_template,
            expired: Vec::with_capacity(EXPIRE_CHUNK),
            purge: None,
            board,
            next_publish: 0,
            templates: None,
            slot_info: Vec::new(),
            prefetch_from: PREFETCH_FROM_SESSIONS,
            stream_from: STREAM_FROM_SESSIONS,
            full_compares: 0,
            twins: Vec::new(),
            nat_replies: false,
            encap: None,
            ip_id: id.wrapping_mul(0x1000),
            adjust: Vec::new(),
            adjusting: false,
            insert: None,
            sync: sync::SyncOut::default(),
            sp: None,
            pending_headers: Vec::new(),
            toa_stripped: 0,
        };
        f.update(rules, stats);
        f
    }

    /// How many updates from a previous snapshot compared every service because the new
    /// snapshot's edits did not reach back to it (unknown edits, or more generations skipped
    /// than [`crate::rules::EDIT_HISTORY`]).
    pub fn full_compares(&self) -> u64 {
        self.full_compares
    }

    /// Uses `prefetch` for the burst's prefetch stages and housekeeping's look-ahead (see
    /// [`crate::session::table::Prefetch`]; without it they only compute hints).
    pub fn set_prefetch(&mut self, prefetch: Prefetch) {
        self.table.set_prefetch(prefetch);
    }

    /// Uses `prefetch` for the lines of bursts' lookups once the table holds
    /// [`STREAM_FROM_SESSIONS`] live sessions (see there).
    pub fn set_prefetch_streaming(&mut self, prefetch: Prefetch) {
        self.table.set_prefetch_streaming(prefetch);
    }

    /// Streams bursts' lookup lines from `sessions` live sessions on (default
    /// [`STREAM_FROM_SESSIONS`]): for tests, and for tuning to another cache size.
    pub fn set_stream_from(&mut self, sessions: usize) {
        self.stream_from = sessions;
    }

    /// The prefetch hint of this burst's lookups (once per burst: see
    /// [`STREAM_FROM_SESSIONS`]).
    #[inline]
    pub(crate) fn burst_prefetch(&self) -> Prefetch {
        self.table
            .lookup_prefetch(self.table.len() >= self.stream_from)
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

    /// Marks the ports with a kernel twin (see `Worker::set_kernel_twins`).
    pub fn set_kernel_twins(&mut self, ports: &[PortIndex]) {
        let len = ports.iter().map(|&p| usize::from(p) + 1).max().unwrap_or(0);
        self.twins = vec![false; len];
        for &p in ports {
            self.twins[usize::from(p)] = true;
        }
        self.neigh.set_kernel_twins(&self.twins);
    }

    /// The exception-path verdict for a frame received on `rx_port` to an address of kind
    /// `kind` that the dataplane does not consume: to the port's twin when the address is
    /// one of the ports' own and the port has a twin; `None` otherwise.
    #[inline]
    pub(super) fn to_kernel(&self, rx_port: PortIndex, kind: u32) -> Option<Verdict> {
        (kind & ADDR_OWN != 0 && self.twins.get(usize::from(rx_port)) == Some(&true))
            .then_some(Verdict::ToKernel { port: rx_port })
    }

    /// VRRP (IP protocol 112) to 224.0.0.18 or to a port's own address (unicast peers),
    /// received on a port with a twin: the kernel's, where fnat's VRRP service reads it
    /// (it checks TTL 255 and everything else, and counts what it refuses). Only looked at
    /// for frames the parser refused as an unsupported protocol.
    fn vrrp_to_kernel(&self, rx_port: PortIndex, frame: &[u8]) -> Option<Verdict> {
        const VRRP: u8 = 112;
        const GROUP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(224, 0, 0, 18);
        let ip = crate::packet::ipv4::parse_ipv4(frame).ok()?;
        if ip.proto != VRRP || self.twins.get(usize::from(rx_port)) != Some(&true) {
            return None;
        }
        let own = self
            .addresses
            .get(u64::from(ip.dst))
            .is_some_and(|kind| kind & ADDR_OWN != 0);
        (ip.dst == u32::from(GROUP) || own).then_some(Verdict::ToKernel { port: rx_port })
    }

    /// The session table (read-only: for listings and tests).
    pub fn table(&self) -> &SessionTable {
        &self.table
    }

    /// Live sessions with their deadline (ns): O(capacity), for the control plane and tests.
    pub fn sessions(&self) -> impl Iterator<Item = (SessionId, &Session, u64)> + '_ {
        (0..self.table.capacity()).filter_map(move |i| {
            let s = self.table.slot(i)?;
            Some((i as SessionId, s, s.deadline))
        })
    }

    /// The session in arena slot `slot` with its deadline (ns), if live: lets a listing walk
    /// the table a bounded chunk at a time between bursts.
    pub fn session_at(&self, slot: usize) -> Option<(&Session, u64)> {
        let s = self.table.slot(slot)?;
        Some((s, s.deadline))
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

    /// Ends a burst's new connections: indexes their real-server keys (see
    /// `SessionTable::insert_with`).
    #[inline]
    pub(crate) fn settle(&mut self, stats: &mut WorkerStats) {
        self.table.settle();
        stats.reply_key_clashes += self.table.take_deferred_clashes();
    }

    /// Starts loading the index lines the burst's new sessions' deferred real-server keys go
    /// to (see `SessionTable::prefetch_deferred`).
    #[inline]
    pub(crate) fn prefetch_deferred(&mut self) {
        self.table.prefetch_deferred();
    }

    /// True when bursts are worth prefetching: the table holds [`PREFETCH_FROM_SESSIONS`]
    /// (or what [`FullNat::set_prefetch_from`] set) live sessions or more.
    #[inline]
    pub(crate) fn prefetches(&self) -> bool {
        self.table.len() >= self.prefetch_from
    }

    /// Burst stage 1 (changes nothing): the hash tag of `pkt`'s tuple (`pkt` is the frame's
    /// one parse), for [`FullNat::touch_index`] and the lookup; [`BurstHint::NONE`] when the
    /// frame did not parse, [`BurstHint::UNPREFETCHED`] while the table is small enough to
    /// stay in the core's own caches (see [`PREFETCH_FROM_SESSIONS`]).
    #[inline]
    pub(crate) fn burst_hint(&self, pkt: Option<&PacketV4>) -> BurstHint {
        let Some(pkt) = pkt else {
            return BurstHint::NONE;
        };
        if self.table.len() < self.prefetch_from {
            return BurstHint::UNPREFETCHED;
        }
        let Some(key) = pkt.tuple() else {
            return BurstHint::NONE;
        };
        BurstHint {
            fast: true,
            keyed: Some((key, self.table.tag(&key))),
            candidate: None,
            syn: pkt.tcp_flags().is_some_and(|f| f.syn()),
        }
    }

    /// Burst stage 1b (a hint, changes nothing): starts loading the index line where the
    /// lookup of `hint`'s tag begins, with the burst's lookup hint `prefetch` (see
    /// [`FullNat::burst_prefetch`]; a SYN's with the normal one).
    #[inline]
    pub(crate) fn touch_index(&self, hint: &BurstHint, prefetch: Prefetch) {
        if let Some((_, tag)) = hint.keyed {
            let prefetch = match hint.syn {
                true => self.table.prefetch_hint(),
                false => prefetch,
            };
            self.table.prefetch_lookup(tag, prefetch);
        }
    }

    /// Burst stage 2 (a hint, changes nothing): with the index line of stage 1 loaded by now,
    /// starts loading the session the frame most likely belongs to (its one line holds all
    /// an established packet needs, deadline included), and notes that session in `hint`.
    #[inline]
    pub(crate) fn prefetch_session(&self, hint: &mut BurstHint, prefetch: Prefetch) {
        let Some((_, tag)) = hint.keyed else {
            return;
        };
        hint.candidate = self.table.prefetch_session(tag, prefetch);
    }

    /// Decides what happens to one frame (rewritten in place), parsed once as `parsed`, with
    /// what the burst's prefetch stages learned in `hint`. The first stage takes established
    /// flows ([`FullNat::established`]); the others classify, look up or create the session,
    /// rewrite. Does not count the verdict: the caller does.
    #[inline(always)]
    pub(crate) fn process<F: Frame>(
        &mut self,
        rx_port: PortIndex,
        frame: &mut F,
        parsed: &Result<PacketV4, DropReason>,
        hint: BurstHint,
        now_ns: u64,
        stats: &mut WorkerStats,
    ) -> Verdict {
        let pkt = match parsed {
            Ok(pkt) => pkt,
            Err(DropReason::UnsupportedProtocol) => {
                return self
                    .vrrp_to_kernel(rx_port, frame.data())
                    .unwrap_or(Verdict::Drop(DropReason::UnsupportedProtocol))
            }
            Err(reason) => return Verdict::Drop(*reason),
        };
        let verdict = self.process_bytes(rx_port, frame.data_mut(), pkt, hint, now_ns, stats);
        // Nearly every frame: nothing left for this function to finish (the same result as
        // the steps below, each of which then does nothing), without writing the fields.
        if self.sp.is_none() && !self.adjusting && self.insert.is_none() && self.encap.is_none() {
            return verdict;
        }
        let mut pkt = pkt;
        // A SYN proxy answered with (or forwarded) a frame it built: it replaces this one.
        let built = self.sp.as_mut().and_then(|sp| {
            let (len, built) = sp.replace.take()?;
            let fits = !matches!(verdict, Verdict::Transmit { .. })
                || (frame.set_len(len) && {
                    frame.data_mut()[..len].copy_from_slice(&sp.scratch[..len]);
                    true
                });
            Some((fits, built))
        });
        let built_pkt;
        if let Some((fits, b)) = built {
            if !fits {
                self.insert = None;
                return Verdict::Drop(DropReason::NoTailroom);
            }
            built_pkt = b;
            pkt = &built_pkt;
        }
        if self.adjusting {
            stats.toa_stripped += std::mem::take(&mut self.toa_stripped);
        }
        if let Some(ins) = self.insert.take() {
            return self.grow(frame, pkt, ins, verdict, stats);
        }
        match self.encap.take() {
            None => verdict,
            Some(e) => self.encapsulate(frame, pkt, e, now_ns, stats),
        }
    }

    #[inline(always)]
    fn process_bytes(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        pkt: &PacketV4,
        hint: BurstHint,
        now_ns: u64,
        stats: &mut WorkerStats,
    ) -> Verdict {
        if hint.fast {
            if let Some(v) = self.established(rx_port, frame, pkt, hint, now_ns, stats) {
                return v;
            }
        }
        match self.classify_parsed(rx_port, frame, pkt, now_ns, stats) {
            Ok(v) => v,
            Err(reason) => Verdict::Drop(reason),
        }
    }

    /// The persistence templates of this worker (for listings and tests).
    pub fn templates(&self) -> Option<&Templates> {
        self.templates.as_ref()
    }
}
