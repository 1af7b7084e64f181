//! Network plumbing of the ports: ARP answers for owned addresses, next-hop resolution with a
//! neighbour table, packets held while their next hop resolves, gratuitous ARP.
//!
//! - [`NeighTable`] is shared by all workers (fixed size, lock-free atomics, written only
//!   when an ARP packet arrives or a request goes out): a reply that lands on any worker's
//!   queue resolves the neighbour for every worker at once. Static neighbours from the rules
//!   live in the egress snapshot and never expire.
//! - Entry states follow the confirmation time: REACHABLE for `reachable_ns` after an ARP
//!   packet confirmed it, then STALE (still used, and refreshed by a request at most every
//!   `retrans_ns`) for `stale_ns`, then unusable until confirmed again. An entry without a MAC
//!   is INCOMPLETE.
//! - [`Neighbours`] is one worker's part: its owned-address index, its hold queue (frames
//!   copied into a pre-allocated buffer while their next hop is INCOMPLETE; overflow counted
//!   as `neighbour_queue_full`, timeout as `no_neighbour`) and its queue of ARP frames to
//!   originate. The driver collects originated and released frames with
//!   [`crate::Worker::drain_originated`].

pub mod arp;
pub mod table;

use std::sync::Arc;

use crate::fnat::egress::{Egress, NextHop};
use crate::fnat::map::FixedMap;
use crate::packet::ether;
use crate::rules::{prefix_mask, PortIndex, Rules};
use crate::stats::WorkerStats;
use crate::verdict::{DropReason, Verdict};

pub use table::{Entry, NeighTable};

const NS: u64 = 1_000_000_000;
/// Bytes of one hold slot: a full single-segment mbuf.
pub const HOLD_SLOT_BYTES: usize = 2048;
/// Default hold-queue slots per worker.
pub const DEFAULT_HOLD_SLOTS: usize = 64;
/// Default neighbour-table capacity (shared by all workers).
pub const DEFAULT_TABLE_CAPACITY: usize = 4096;
/// ARP requests waiting to go out, per worker.
const OUTBOX: usize = 64;
/// Most announcements of one address per VRRP request (keepalived allows up to 255).
const MAX_GARP_REPEAT: u32 = 255;
/// Gratuitous ARPs sent per drain call.
const GARP_PER_DRAIN: usize = 16;

/// Neighbour timers (ns), Linux-like defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighTimers {
    /// How long an ARP confirmation keeps an entry REACHABLE (Linux: base_reachable_time 30 s).
    pub reachable_ns: u64,
    /// How long a STALE entry stays usable after that (refreshed by requests meanwhile).
    pub stale_ns: u64,
    /// At most one ARP request per neighbour per this interval, over all workers (1 s).
    pub retrans_ns: u64,
    /// How long a held frame waits for its next hop before it is dropped (3 s).
    pub hold_ns: u64,
}

impl Default for NeighTimers {
    fn default() -> Self {
        NeighTimers {
            reachable_ns: 30 * NS,
            stale_ns: 60 * NS,
            retrans_ns: NS,
            hold_ns: 3 * NS,
        }
    }
}

/// What the driver did with a frame handed to it by `drain_originated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// Staged for transmission.
    Sent,
    /// No room right now (TX staging full): keep it, try again on the next call.
    Busy,
    /// No mbuf to put it in: the engine counts it as `mbuf_exhausted`.
    NoBuffer,
}

#[derive(Debug, Clone, Copy, Default)]
struct Held {
    live: bool,
    /// Originated by the engine with its MACs set: sent at the next drain.
    ready: bool,
    len: u16,
    port: PortIndex,
    hop: u32,
    deadline: u64,
}

/// A FIFO of frames waiting for their next hop, in one pre-allocated buffer.
struct HoldQueue {
    meta: Vec<Held>,
    buf: Vec<u8>,
    /// Monotonic positions; slot = pos % capacity.
    head: usize,
    tail: usize,
    live: usize,
}

impl HoldQueue {
    fn new(slots: usize) -> Self {
        let slots = slots.max(1);
        HoldQueue {
            meta: vec![Held::default(); slots],
            buf: vec![0; slots * HOLD_SLOT_BYTES],
            head: 0,
            tail: 0,
            live: 0,
        }
    }

    fn cap(&self) -> usize {
        self.meta.len()
    }

    fn compact(&mut self) {
        while self.head < self.tail && !self.meta[self.head % self.cap()].live {
            self.head += 1;
        }
    }

    fn has_room(&mut self) -> bool {
        self.compact();
        self.tail - self.head < self.cap()
    }

    fn push(
        &mut self,
        frame: &[u8],
        port: PortIndex,
        hop: u32,
        deadline: u64,
        ready: bool,
    ) -> bool {
        if frame.len() > HOLD_SLOT_BYTES || !self.has_room() {
            return false;
        }
        let i = self.tail % self.cap();
        self.buf[i * HOLD_SLOT_BYTES..i * HOLD_SLOT_BYTES + frame.len()].copy_from_slice(frame);
        self.meta[i] = Held {
            live: true,
            ready,
            len: frame.len() as u16,
            port,
            hop,
            deadline,
        };
        self.tail += 1;
        self.live += 1;
        true
    }
}

/// One worker's neighbour state (see the module documentation).
pub struct Neighbours {
    table: Arc<NeighTable>,
    timers: NeighTimers,
    /// Worker 0 announces; the others stay quiet (one GARP per address is enough).
    announcer: bool,
    announce: bool,
    /// (port, ip) → 1 for every address a port answers ARP for.
    owned: FixedMap,
    /// The same, sorted, to find addresses added by a rules change.
    owned_list: Vec<(PortIndex, u32)>,
    /// The VRRP gratuitous-ARP totals already queued (`Rules::garp`).
    garp_seen: Vec<(std::net::Ipv4Addr, u64)>,
    port_macs: Vec<[u8; 6]>,
    /// Per port: (net, mask, addr) of its interface addresses, and a fallback sender address.
    port_nets: Vec<Vec<(u32, u32, u32)>>,
    port_fallback: Vec<u32>,
    garps: Vec<(PortIndex, u32)>,
    /// By `PortIndex`: the port has a kernel twin, which gets the ARP replies for it.
    twins: Vec<bool>,
    outbox: Vec<(PortIndex, u32)>,
    hold: HoldQueue,
}

impl Neighbours {
    /// Worker state with `hold_slots` hold slots over the shared `table`.
    pub fn new(worker: u16, table: Arc<NeighTable>, hold_slots: usize) -> Self {
        Neighbours {
            table,
            timers: NeighTimers::default(),
            announcer: worker == 0,
            announce: true,
            owned: FixedMap::with_capacity(0),
            owned_list: Vec::new(),
            garp_seen: Vec::new(),
            port_macs: Vec::new(),
            port_nets: Vec::new(),
            port_fallback: Vec::new(),
            twins: Vec::new(),
            garps: Vec::new(),
            outbox: Vec::with_capacity(OUTBOX),
            hold: HoldQueue::new(hold_slots),
        }
    }

    pub fn table(&self) -> &Arc<NeighTable> {
        &self.table
    }

    pub fn set_table(&mut self, table: Arc<NeighTable>) {
        self.table = table;
    }

    pub fn timers(&self) -> NeighTimers {
        self.timers
    }

    pub fn set_timers(&mut self, timers: NeighTimers) {
        self.timers = timers;
    }

    /// Gratuitous ARP on (default) or off (replay: its outputs hold only what the input caused).
    pub fn set_announce(&mut self, on: bool) {
        self.announce = on;
        if !on {
            self.garps.clear();
        }
    }

    /// Frames waiting for a next hop now.
    pub fn held(&self) -> usize {
        self.hold.live
    }

    /// Takes a new rules snapshot: owned addresses per port (interface addresses, plus VIPs
    /// and LIPs on the port their route leaves by), and queues gratuitous ARPs for addresses
    /// that were not owned before. Allocates (control path).
    pub fn update(&mut self, rules: &Rules, egress: &Egress, lips: impl Iterator<Item = u32>) {
        let mut list: Vec<(PortIndex, u32)> = Vec::new();
        for (i, p) in rules.ports.iter().enumerate() {
            for a in &p.addresses {
                list.push((i as PortIndex, u32::from(a.addr)));
            }
        }
        let extra = rules
            .services
            .iter()
            .map(|s| u32::from(s.vip))
            .chain(lips)
            .collect::<Vec<_>>();
        for ip in extra {
            if let Some(port) = egress.route_port(ip) {
                list.push((port, ip));
            }
        }
        // VRRP addresses this director is backup for belong to the master.
        list.retain(|(_, ip)| !rules.standby.iter().any(|s| u32::from(*s) == *ip));
        list.sort_unstable();
        list.dedup();
        let mut owned = FixedMap::with_capacity(list.len());
        for &(port, ip) in &list {
            owned.insert(owned_key(port, ip), 1);
        }
        if self.announcer && self.announce {
            for &(port, ip) in &list {
                if self.owned_list.binary_search(&(port, ip)).is_err() {
                    self.garps.push((port, ip));
                }
            }
            // VRRP's schedule (takeover bursts, garp_master_delay, _refresh): each owned
            // address of the request, `repeat` times, once per round.
            if rules.garp.totals != self.garp_seen {
                for &(addr, total) in &rules.garp.totals {
                    let seen = self
                        .garp_seen
                        .iter()
                        .find(|(a, _)| *a == addr)
                        .map_or(0, |(_, n)| *n);
                    let repeat = total.saturating_sub(seen).min(u64::from(MAX_GARP_REPEAT));
                    let ip = u32::from(addr);
                    for &(port, owned) in &list {
                        if owned == ip {
                            self.garps
                                .extend(std::iter::repeat_n((port, ip), repeat as usize));
                        }
                    }
                }
                self.garp_seen.clone_from(&rules.garp.totals);
            }
            // Announce in address order (garps is drained from the end).
            self.garps.reverse();
        }
        self.port_macs = rules.ports.iter().map(|p| p.mac).collect();
        self.port_nets = rules
            .ports
            .iter()
            .map(|p| {
                p.addresses
                    .iter()
                    .map(|a| {
                        let mask = prefix_mask(a.prefix_len);
                        let addr = u32::from(a.addr);
                        (addr & mask, mask, addr)
                    })
                    .collect()
            })
            .collect();
        self.port_fallback = (0..rules.ports.len())
            .map(|i| {
                list.iter()
                    .find(|(p, _)| usize::from(*p) == i)
                    .map_or(0, |&(_, ip)| ip)
            })
            .collect();
        self.owned = owned;
        self.owned_list = list;
    }

    /// True when `port` answers ARP for `ip`.
    #[inline]
    pub fn owns(&self, port: PortIndex, ip: u32) -> bool {
        self.owned.get(owned_key(port, ip)).is_some()
    }

    /// The address ARP requests to `target` out of `port` come from.
    fn sender_ip(&self, port: PortIndex, target: u32) -> u32 {
        let i = usize::from(port);
        self.port_nets
            .get(i)
            .and_then(|nets| {
                nets.iter()
                    .find(|(net, mask, _)| target & mask == *net)
                    .or(nets.first())
                    .map(|&(_, _, a)| a)
            })
            .or_else(|| self.port_fallback.get(i).copied())
            .unwrap_or(0)
    }

    fn want_request(&mut self, port: PortIndex, ip: u32, now: u64) {
        if self.outbox.len() < self.outbox.capacity()
            && self
                .table
                .claim_request(port, ip, now, self.timers.retrans_ns)
        {
            self.outbox.push((port, ip));
        }
    }

    /// An ARP frame received on `rx_port`: answer requests for owned addresses (in place),
    /// learn from requests and replies addressed to us, refresh known entries from any ARP
    /// packet (announcements included). Counts what it does; the caller counts the verdict.
    pub fn arp(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        now: u64,
        stats: &mut WorkerStats,
    ) -> Verdict {
        let a = match arp::parse(frame) {
            Ok(a) => a,
            Err(reason) => return Verdict::Drop(reason),
        };
        let Some(my_mac) = self.port_macs.get(usize::from(rx_port)).copied() else {
            return Verdict::Drop(DropReason::NotForUs);
        };
        let dst = ether::dst_mac(frame).unwrap_or([0; 6]);
        if (dst != arp::BROADCAST && dst != my_mac) || a.sha == my_mac {
            return Verdict::Drop(DropReason::NotForUs);
        }
        let for_us = self.owns(rx_port, a.tpa) && !a.is_gratuitous();
        // Never learn our own addresses, address 0 (probes) or a multicast/broadcast MAC.
        let learnable = a.spa != 0 && !self.owns(rx_port, a.spa) && a.sha[0] & 1 == 0;
        if learnable {
            let created = self.table.confirm(rx_port, a.spa, a.sha, now, for_us);
            if created && for_us {
                stats.neighbours_learned += 1;
            }
        }
        if !for_us {
            if a.is_gratuitous() && learnable {
                stats.consumed += 1;
                return Verdict::Consumed;
            }
            return Verdict::Drop(DropReason::NotForUs);
        }
        if a.op == arp::OP_REQUEST {
            if !arp::reply_in_place(frame, &a, my_mac) {
                return Verdict::Drop(DropReason::Truncated);
            }
            stats.arp_replies_sent += 1;
            return Verdict::Transmit { port: rx_port };
        }
        if self.twins.get(usize::from(rx_port)) == Some(&true) {
            // Learned, and the kernel twin learns it too: a reply to its own request looks
            // the same as one to ours (both carry the port's MAC and addresses).
            return Verdict::ToKernel { port: rx_port };
        }
        stats.consumed += 1;
        Verdict::Consumed
    }

    /// Marks the ports with a kernel twin (by `PortIndex`): ARP replies to their addresses
    /// go to the twin after the engine learned from them.
    pub fn set_kernel_twins(&mut self, twins: &[bool]) {
        self.twins = twins.to_vec();
    }

    /// The destination MAC toward `hop`: `Some` when known (static, REACHABLE or STALE: a
    /// STALE one is refreshed by a request); `None` when the frame must wait (a request is
    /// queued); `NeighbourQueueFull` when it cannot wait.
    #[inline]
    pub fn next_hop_mac(&mut self, hop: &NextHop, now: u64) -> Result<Option<[u8; 6]>, DropReason> {
        if hop.resolved {
            return Ok(Some(hop.dst_mac));
        }
        if let Some(e) = self.table.get(hop.port, hop.gateway) {
            if let Some(mac) = e.mac {
                let age = now.saturating_sub(e.confirmed);
                if age < self.timers.reachable_ns {
                    return Ok(Some(mac));
                }
                if age
                    < self
                        .timers
                        .reachable_ns
                        .saturating_add(self.timers.stale_ns)
                {
                    self.want_request(hop.port, hop.gateway, now);
                    return Ok(Some(mac));
                }
            }
        }
        if !self.hold.has_room() {
            return Err(DropReason::NeighbourQueueFull);
        }
        self.want_request(hop.port, hop.gateway, now);
        Ok(None)
    }

    /// The destination MAC toward `hop` when nothing else is to be done for it: static, or
    /// learned and still REACHABLE. `None` otherwise, and then [`Self::next_hop_mac`] decides
    /// (it may queue a request). Changes nothing.
    #[inline(always)]
    pub fn reachable_mac(&self, hop: &NextHop, now: u64) -> Option<[u8; 6]> {
        if hop.resolved {
            return Some(hop.dst_mac);
        }
        let e = self.table.get(hop.port, hop.gateway)?;
        let mac = e.mac?;
        (now.saturating_sub(e.confirmed) < self.timers.reachable_ns).then_some(mac)
    }

    /// Copies a frame whose next hop is unresolved into the hold queue (source MAC set).
    pub fn hold(
        &mut self,
        frame: &mut [u8],
        hop: &NextHop,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Verdict {
        ether::set_macs(frame, hop.src_mac, [0; 6]);
        let deadline = now.saturating_add(self.timers.hold_ns);
        if frame.len() > HOLD_SLOT_BYTES {
            return Verdict::Drop(DropReason::NoNeighbour);
        }
        if !self
            .hold
            .push(frame, hop.port, hop.gateway, deadline, false)
        {
            return Verdict::Drop(DropReason::NeighbourQueueFull);
        }
        stats.held += 1;
        stats.held_total += 1;
        Verdict::Consumed
    }

    /// Queues a frame the engine built (MACs set) to leave by `port` at the next drain, in
    /// the hold queue's slots. False when they are all taken.
    pub fn originate(&mut self, frame: &[u8], port: PortIndex) -> bool {
        self.hold.push(frame, port, 0, u64::MAX, true)
    }

    /// Hands the driver every frame the engine has to send on its own: held frames whose next
    /// hop resolved, ARP requests, gratuitous ARPs. Drops held frames past their deadline as
    /// `no_neighbour`. Bounded: one pass over the hold queue, the outbox and a few GARPs.
    pub fn drain(
        &mut self,
        now: u64,
        stats: &mut WorkerStats,
        emit: &mut impl FnMut(PortIndex, &[u8]) -> Emit,
    ) {
        if self.hold.live > 0 && !self.drain_held(now, stats, emit) {
            return;
        }
        let mut buf = [0u8; arp::MIN_FRAME];
        while let Some(&(port, ip)) = self.outbox.last() {
            let Some(mac) = self.port_macs.get(usize::from(port)).copied() else {
                self.outbox.pop();
                continue;
            };
            let n = arp::build_request(&mut buf, mac, self.sender_ip(port, ip), ip);
            match emit(port, &buf[..n]) {
                Emit::Busy => return,
                r => originated(stats, r, |s| s.arp_requests_sent += 1),
            }
            self.outbox.pop();
        }
        for _ in 0..GARP_PER_DRAIN {
            let Some(&(port, ip)) = self.garps.last() else {
                break;
            };
            // Only addresses still owned are announced.
            if let (true, Some(mac)) = (
                self.owns(port, ip),
                self.port_macs.get(usize::from(port)).copied(),
            ) {
                let n = arp::build_gratuitous(&mut buf, mac, ip);
                match emit(port, &buf[..n]) {
                    Emit::Busy => return,
                    r => originated(stats, r, |s| s.gratuitous_arps_sent += 1),
                }
            }
            self.garps.pop();
        }
    }

    /// Returns false when the driver is busy (stop draining for now).
    fn drain_held(
        &mut self,
        now: u64,
        stats: &mut WorkerStats,
        emit: &mut impl FnMut(PortIndex, &[u8]) -> Emit,
    ) -> bool {
        let cap = self.hold.cap();
        for pos in self.hold.head..self.hold.tail {
            let i = pos % cap;
            let h = self.hold.meta[i];
            if !h.live {
                continue;
            }
            if h.ready {
                let bytes =
                    &self.hold.buf[i * HOLD_SLOT_BYTES..i * HOLD_SLOT_BYTES + usize::from(h.len)];
                match emit(h.port, bytes) {
                    Emit::Busy => return false,
                    r => originated(stats, r, |_| {}),
                }
                self.hold.meta[i].live = false;
                self.hold.live -= 1;
                continue;
            }
            let mac = self.table.get(h.port, h.hop).and_then(|e| {
                let fresh = now.saturating_sub(e.confirmed)
                    < self
                        .timers
                        .reachable_ns
                        .saturating_add(self.timers.stale_ns);
                e.mac.filter(|_| fresh)
            });
            match mac {
                Some(mac) => {
                    let bytes = &mut self.hold.buf
                        [i * HOLD_SLOT_BYTES..i * HOLD_SLOT_BYTES + usize::from(h.len)];
                    if let Ok(mut eth) = crate::packet::EthernetHeader::new_checked_mut(bytes) {
                        eth.set_dst_mac(mac);
                    }
                    match emit(h.port, bytes) {
                        Emit::Busy => return false,
                        Emit::Sent => {
                            stats.transmitted += 1;
                            stats.held_released += 1;
                        }
                        Emit::NoBuffer => stats.count_drop(DropReason::MbufExhausted),
                    }
                }
                None if h.deadline <= now => stats.count_drop(DropReason::NoNeighbour),
                None => {
                    self.want_request(h.port, h.hop, now);
                    continue;
                }
            }
            self.hold.meta[i].live = false;
            self.hold.live -= 1;
            stats.held = stats.held.saturating_sub(1);
        }
        self.hold.compact();
        true
    }

    /// Drops every held frame as `no_neighbour` (the dataplane is stopping).
    pub fn drop_held(&mut self, stats: &mut WorkerStats) {
        for h in self.hold.meta.iter_mut().filter(|h| h.live) {
            h.live = false;
            stats.count_drop(DropReason::NoNeighbour);
            stats.held = stats.held.saturating_sub(1);
        }
        self.hold.live = 0;
        self.hold.head = self.hold.tail;
    }
}

#[inline]
fn owned_key(port: PortIndex, ip: u32) -> u64 {
    (u64::from(port) << 32) | u64::from(ip)
}

fn originated(stats: &mut WorkerStats, r: Emit, kind: impl FnOnce(&mut WorkerStats)) {
    stats.originated += 1;
    match r {
        Emit::Sent => {
            stats.transmitted += 1;
            kind(stats);
        }
        _ => stats.count_drop(DropReason::MbufExhausted),
    }
}
