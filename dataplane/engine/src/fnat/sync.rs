//! Session sync, the engine's two ends: export (a worker notes the sessions the kernel's
//! rules say to send, into a bounded outbox the driver drains into the sync service's ring)
//! and install (a session a peer director sent, put in the table of the worker that owns
//! it, with the peer's remaining timeout).
//!
//! Nothing here runs per packet except [`FullNat::sync_note`], a few compares and at most one
//! copy into a pre-allocated outbox; a full outbox drops the note and counts it.

use super::*;
use crate::packet::Tuple;
use crate::persist;
use crate::rules::Method;
use crate::session::table::SLOT_FOREIGN;
use crate::session::{ConnState, Session, SessionId};
use crate::stats::WorkerStats;
use fnat_sync::{Conn, SyncRules};

/// Notes a worker holds between two drains (one loop iteration): a full burst of new
/// sessions and their templates, twice.
pub const OUTBOX_CAPACITY: usize = 4 * crate::BURST_CHUNK * 2;

/// A worker's sync export state: off until the driver turns it on.
#[derive(Default)]
pub(crate) struct SyncOut {
    rules: Option<SyncRules>,
    outbox: Vec<Conn>,
    /// Notes dropped because the outbox was full.
    pub(crate) dropped: u64,
    /// Notes queued (sent to the driver).
    pub(crate) noted: u64,
    /// With `sync_refresh_period`: each arena slot's session expiry (ns) when it was last
    /// synced (at or before now: never, or an earlier session of the slot). Empty when off.
    synced_end: Vec<u64>,
}

/// Why a synced session was not installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncReject {
    /// No service at the session's VIP, protocol and port (or an SNAT service).
    UnknownService,
    /// The service has no real server at the session's destination.
    UnknownReal,
    /// The entry's forwarding method is not the real server's here.
    MethodMismatch,
    /// Full NAT: the local address is not a unicast address (a peer's local address is
    /// installed as a foreign session).
    UnknownLocalAddress,
    /// Full NAT: the local port is in use here, or outside this worker's slice.
    LocalPortBusy,
    /// Not TCP or UDP, or a state the protocol does not have.
    BadState,
    /// The session table (or the template table) is full.
    TableFull,
    /// The client key is another session's (reply key clash for NAT).
    Clash,
    /// No route toward the real server (TUN needs its outer source).
    NoRoute,
    /// Sent to a worker that does not own it (control side bug, or rules changed between).
    NotOwner,
}

impl SyncReject {
    pub const ALL: [SyncReject; 10] = [
        SyncReject::UnknownService,
        SyncReject::UnknownReal,
        SyncReject::MethodMismatch,
        SyncReject::UnknownLocalAddress,
        SyncReject::LocalPortBusy,
        SyncReject::BadState,
        SyncReject::TableFull,
        SyncReject::Clash,
        SyncReject::NoRoute,
        SyncReject::NotOwner,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SyncReject::UnknownService => "unknown_service",
            SyncReject::UnknownReal => "unknown_real",
            SyncReject::MethodMismatch => "method_mismatch",
            SyncReject::UnknownLocalAddress => "unknown_local_address",
            SyncReject::LocalPortBusy => "local_port_busy",
            SyncReject::BadState => "bad_state",
            SyncReject::TableFull => "table_full",
            SyncReject::Clash => "clash",
            SyncReject::NoRoute => "no_route",
            SyncReject::NotOwner => "not_owner",
        }
    }
}

/// What installing a synced entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// A new session (or template).
    New,
    /// An existing one took the entry's state and timeout.
    Refreshed,
}

/// The kernel's state number of a session state (UDP: 0, `IP_VS_UDP_S_NORMAL`).
pub fn kernel_state(s: ConnState) -> u16 {
    match s {
        ConnState::Udp => 0,
        s => s as u16,
    }
}

/// The session state of a kernel state number, for protocol `proto`.
pub fn state_of(proto: u8, n: u16) -> Option<ConnState> {
    use ConnState as S;
    Some(match (proto, n) {
        (17, 0) => S::Udp,
        (6, 0) => S::None,
        (6, 1) => S::Established,
        (6, 2) => S::SynSent,
        (6, 3) => S::SynRecv,
        (6, 4) => S::FinWait,
        (6, 5) => S::TimeWait,
        (6, 6) => S::Close,
        (6, 7) => S::CloseWait,
        (6, 8) => S::LastAck,
        (6, 9) => S::Listen,
        (6, 10) => S::SynAck,
        _ => return None,
    })
}

/// The kernel's `IP_VS_CONN_F_*` forwarding bits of `method` (full NAT looks like NAT to a
/// kernel backup; its local address rides in the extension option).
fn method_flags(method: Method) -> u32 {
    match method {
        Method::FullNat | Method::Nat => fnat_sync::F_MASQ,
        Method::Dr => fnat_sync::F_DROUTE | fnat_sync::F_NOOUTPUT,
        Method::Tun(_) => fnat_sync::F_TUNNEL | fnat_sync::F_NOOUTPUT,
    }
}

/// The worker that owns the session (or template) `c` under `rules` with `workers` workers:
/// where replies (full NAT: by local port) and client packets are steered. Control side:
/// the sync receiver routes each entry with it. DR/TUN sessions of services that steer
/// nothing go by the client's NAT hash (their packets land where RSS puts them: with more
/// than one worker, a backup's RSS may differ from the master's).
pub fn sync_owner(rules: &Rules, workers: u16, c: &Conn) -> Result<u16, SyncReject> {
    let workers = workers.max(1);
    let svc = find_rule_service(rules, c).ok_or(SyncReject::UnknownService)?;
    let client = u32::from(*c.client.ip());
    let persist_owner = |mask: u32| persist::owner(svc.id, client & mask, workers);
    if c.is_template() {
        let p = svc.options.persistence.ok_or(SyncReject::UnknownService)?;
        return Ok(persist_owner(u32::from(p.netmask)));
    }
    if let Some(f) = c.fullnat {
        // Ours: where replies steer (by local port), which is where the master's RSS put
        // the client's packets (the same here with the same RSS). A peer's: where a client
        // packet that misses is sent (replies go to the peer).
        let ours = rules
            .services
            .iter()
            .any(|s| s.local_addresses.contains(&f.lip));
        return Ok(if ours {
            crate::laddr::owner_of(f.lport, workers)
        } else {
            super::foreign_owner(client, c.client.port(), workers)
        });
    }
    if svc.reals.iter().any(|r| r.method == Method::Nat) {
        return Ok(nat_owner(client, workers));
    }
    if let Some(p) = svc.options.persistence {
        return Ok(persist_owner(u32::from(p.netmask)));
    }
    Ok(nat_owner(client, workers))
}

/// The service of `c` in `rules`: an endpoint at its VIP, protocol and port, else the VIP's
/// port-0 service (as the engine looks services up).
fn find_rule_service<'a>(rules: &'a Rules, c: &Conn) -> Option<&'a crate::rules::Service> {
    let vip = *c.vip.ip();
    let find = |port: u16| {
        rules.services.iter().find(|s| {
            s.options.snat.is_none()
                && s.endpoints()
                    .any(|e| e.vip == vip && e.protocol.number() == c.protocol && e.port == port)
        })
    };
    find(c.vip.port()).or_else(|| find(0))
}

impl SyncOut {
    pub(crate) fn set_rules(&mut self, rules: Option<SyncRules>, slots: usize) {
        if rules.is_some() && self.outbox.capacity() < OUTBOX_CAPACITY {
            self.outbox.reserve_exact(OUTBOX_CAPACITY);
        }
        if rules.is_some_and(|r| r.refresh_period_s > 0) {
            if self.synced_end.len() != slots {
                self.synced_end = vec![0; slots];
            }
        } else {
            self.synced_end = Vec::new();
        }
        self.rules = rules;
    }

    #[inline]
    fn push(&mut self, c: Conn) {
        if self.outbox.len() < OUTBOX_CAPACITY {
            self.outbox.push(c);
            self.noted += 1;
        } else {
            self.dropped += 1;
        }
    }
}

impl FullNat {
    /// Turns session export on with the kernel's rules (or off with `None`). Allocates the
    /// outbox: call it from the loop, not per packet.
    pub fn set_sync(&mut self, rules: Option<SyncRules>) {
        self.sync.set_rules(rules, self.table.capacity());
    }

    /// The rules export runs with (None: off).
    pub fn sync_rules(&self) -> Option<SyncRules> {
        self.sync.rules
    }

    pub fn sync_enabled(&self) -> bool {
        self.sync.rules.is_some()
    }

    /// Notes sent to the outbox, and dropped because it was full.
    pub fn sync_counts(&self) -> (u64, u64) {
        (self.sync.noted, self.sync.dropped)
    }

    /// Hands every noted entry to `send` (false: the ring is full; the entry is dropped and
    /// counted), emptying the outbox.
    pub fn drain_sync(&mut self, mut send: impl FnMut(&Conn) -> bool) {
        for c in self.sync.outbox.drain(..) {
            if !send(&c) {
                self.sync.dropped += 1;
                self.sync.noted = self.sync.noted.saturating_sub(1);
            }
        }
    }

    /// After a packet of session `id` moved it from `old` (`None`: unchanged) to its current
    /// state: notes the session (and its template) when the kernel's rules say so. `input`:
    /// the packet came from the client (the kernel counts those). One load and branch, inlined
    /// into every forwarding stage, when sync is off (a call cost every packet 16
    /// instructions).
    #[inline(always)]
    pub(super) fn sync_note(
        &mut self,
        id: SessionId,
        old: Option<ConnState>,
        input: bool,
        now: u64,
    ) {
        if self.sync.rules.is_some() {
            self.sync_note_on(id, old, input, now);
        }
    }

    /// [`FullNat::sync_note`] with sync on.
    #[inline(never)]
    fn sync_note_on(&mut self, id: SessionId, old: Option<ConnState>, input: bool, now: u64) {
        let Some(rules) = self.sync.rules else {
            return;
        };
        let Some(s) = self.table.get(id) else {
            return;
        };
        let old = old.unwrap_or(s.state);
        let tcp = s.proto == crate::packet::ipv4::IPPROTO_TCP;
        let (old, state) = (kernel_state(old), kernel_state(s.state));
        let forced = tcp && state != old && state != 1 && fnat_sync::tcp_state_synced(state);
        let needed = if input {
            rules.needed(tcp, old, state, s.packets_in)
        } else {
            // The kernel syncs from its input path only; a state change the real server's
            // packet made (its FIN) is sent at once too, as a backup needs it as much.
            forced || (rules.active_peers && s.packets_out == 1)
        };
        if !needed {
            return;
        }
        if let Some(last) = self.sync.synced_end.get_mut(id as usize) {
            // sync_refresh_period: an unforced sync waits until the expiry moved enough.
            let end = self.wheel.deadline(&self.table, id).unwrap_or(now);
            if !forced && *last > now {
                let moved_s = (end as i64).wrapping_sub(*last as i64) / NS_PER_SEC as i64;
                if !rules.refresh_allows(moved_s, end.saturating_sub(now) / NS_PER_SEC) {
                    return;
                }
            }
            *last = end;
        }
        self.sync_export(id, now);
    }

    /// Puts session `id` (and its persistence template) in the outbox.
    fn sync_export(&mut self, id: SessionId, now: u64) {
        if let Some(c) = self.export(id, now) {
            if let Some(t) = self.export_template(id, now) {
                self.sync.push(t);
            }
            self.sync.push(c);
        }
    }

    /// Session `id` as a sync entry at `now` (None: free slot, SNAT or ICMP session).
    pub fn export(&self, id: SessionId, now: u64) -> Option<Conn> {
        let s = self.table.get(id)?;
        if s.proto != crate::packet::ipv4::IPPROTO_TCP
            && s.proto != crate::packet::ipv4::IPPROTO_UDP
        {
            return None;
        }
        let snat = self
            .services
            .iter()
            .position(|e| e.slot == s.svc_slot)
            .is_some_and(|i| self.is_snat(i));
        if snat {
            return None;
        }
        let deadline = self.wheel.deadline(&self.table, id).unwrap_or(now);
        let method = s.method();
        let mut flags = method_flags(method);
        if !s.state.is_active() {
            flags |= fnat_sync::F_INACTIVE;
        }
        let fullnat = (method == Method::FullNat).then(|| {
            let a = self.adjust.get(id as usize).copied().unwrap_or_default();
            fnat_sync::FullNat {
                lip: Ipv4Addr::from(s.lip),
                lport: s.lport,
                adjust_flags: a.flags,
                first_seq: a.first_seq,
                in_delta: a.in_delta,
                out_delta: a.out_delta,
                rs_wscale: a.rs_wscale,
            }
        });
        Some(Conn {
            protocol: s.proto,
            flags,
            state: kernel_state(s.state),
            client: sock(s.client_ip, s.client_port),
            vip: sock(s.vip, s.vport),
            dest: sock(s.rs_ip, s.rs_port),
            fwmark: 0,
            timeout_s: secs_until(deadline, now),
            fullnat,
        })
    }

    /// The persistence template session `id` was scheduled through, as the kernel sends it
    /// (client port 0, `IP_VS_CONN_F_TEMPLATE`, state 0).
    fn export_template(&mut self, id: SessionId, now: u64) -> Option<Conn> {
        let s = *self.table.get(id)?;
        let mask = self.slot_info.get(usize::from(s.svc_slot))?.persist_mask?;
        let t = self
            .templates
            .as_mut()?
            .get(persist::key(s.service_id, s.client_ip & mask), now)?;
        // A port-0 service's template has port 0, as the kernel's.
        let exact = self
            .service_index
            .get(service_key(s.vip, s.proto, s.vport))
            .is_some();
        let vport = if exact { s.vport } else { 0 };
        Some(Conn {
            protocol: s.proto,
            flags: fnat_sync::F_TEMPLATE | method_flags(s.method()),
            state: 0,
            client: sock(s.client_ip & mask, 0),
            vip: sock(s.vip, vport),
            dest: sock(s.rs_ip, s.rs_port),
            fwmark: 0,
            timeout_s: secs_until(t.deadline_ns, now),
            fullnat: None,
        })
    }

    /// Every live session (and its template) into the outbox from arena slot `from`, at most
    /// `budget` slots and while the outbox has room; returns the slot to resume from (the
    /// table's capacity when done). For a full resync, run between bursts.
    pub fn sync_export_all(&mut self, from: usize, budget: usize, now: u64) -> usize {
        let end = from.saturating_add(budget).min(self.table.capacity());
        for slot in from..end {
            if self.sync.outbox.len() + 2 > OUTBOX_CAPACITY {
                return slot;
            }
            if self.table.slot(slot).is_some() {
                self.sync_export(slot as SessionId, now);
            }
        }
        end
    }

    /// Installs (or refreshes) the session or template `c` a peer director sent, at `now`.
    pub fn install_synced(
        &mut self,
        c: &Conn,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Installed, SyncReject> {
        let proto = c.protocol;
        if proto != crate::packet::ipv4::IPPROTO_TCP && proto != crate::packet::ipv4::IPPROTO_UDP {
            return Err(SyncReject::BadState);
        }
        let vip = u32::from(*c.vip.ip());
        let service = self
            .find_service(vip, proto, c.vip.port())
            .map(|i| i as usize)
            .filter(|&i| !self.is_snat(i))
            .ok_or(SyncReject::UnknownService)?;
        let svc = self
            .services
            .get(service)
            .ok_or(SyncReject::UnknownService)?;
        let (dest, dport) = (u32::from(*c.dest.ip()), c.dest.port());
        let real = *svc
            .reals
            .iter()
            .find(|r| r.addr == dest && (r.port == dport || r.port == 0))
            .ok_or(SyncReject::UnknownReal)?;
        let fwd = c.flags & fnat_sync::F_FWD_MASK;
        // A template names only the real server: no local address, even for full NAT.
        let method_ok = match real.method {
            Method::FullNat => (c.fullnat.is_some() || c.is_template()) && fwd == fnat_sync::F_MASQ,
            Method::Nat => c.fullnat.is_none() && fwd == fnat_sync::F_MASQ,
            Method::Dr => fwd == fnat_sync::F_DROUTE,
            Method::Tun(_) => fwd == fnat_sync::F_TUNNEL,
        };
        if !method_ok {
            return Err(SyncReject::MethodMismatch);
        }
        let (svc_id, svc_slot, persist) = (svc.id, svc.slot, svc.persist);
        if c.is_template() {
            let p = persist.ok_or(SyncReject::UnknownService)?;
            let key = persist::key(svc_id, u32::from(*c.client.ip()) & p.mask);
            let t = self.templates.as_mut().ok_or(SyncReject::UnknownService)?;
            let fresh = t.get(key, now).is_none();
            // A template with no session of this director: bound, then released, so that
            // it lives its timeout and the sessions that follow count on it.
            if !t.bind(key, real.id, now, u64::from(c.timeout_s) * NS_PER_SEC) {
                return Err(SyncReject::TableFull);
            }
            t.release(key);
            return Ok(if fresh {
                Installed::New
            } else {
                Installed::Refreshed
            });
        }
        let state = state_of(proto, c.state).ok_or(SyncReject::BadState)?;
        let deadline = now.saturating_add(u64::from(c.timeout_s) * NS_PER_SEC);
        let key = Tuple {
            proto,
            src_ip: u32::from(*c.client.ip()),
            src_port: c.client.port(),
            dst_ip: vip,
            dst_port: c.vip.port(),
        };
        if let Some((id, crate::session::Side::Client)) = self.table.lookup(&key) {
            let s = self.table.get_mut(id).ok_or(SyncReject::Clash)?;
            if s.rs_ip != dest {
                return Err(SyncReject::Clash);
            }
            let old = s.state;
            s.state = state;
            let (svc_slot, rs_slot) = (s.svc_slot, s.rs_slot);
            move_active(stats, svc_slot, rs_slot, old, state);
            if let Some(s) = self.table.get_mut(id) {
                self.wheel.schedule(id, &mut s.deadline, now, deadline);
            }
            return Ok(Installed::Refreshed);
        }
        let rs_port = if real.port == 0 {
            c.vip.port()
        } else {
            real.port
        };
        let (slot, lip, lport) = match real.method {
            Method::FullNat => {
                let f = c.fullnat.ok_or(SyncReject::MethodMismatch)?;
                if f.lip.is_unspecified() || f.lip.is_broadcast() || f.lip.is_multicast() {
                    return Err(SyncReject::UnknownLocalAddress);
                }
                match self.laddrs.slot_of(f.lip) {
                    Some(slot) => {
                        if !self.laddrs.take(slot, f.lport) {
                            return Err(SyncReject::LocalPortBusy);
                        }
                        (slot, u32::from(f.lip), f.lport)
                    }
                    // An active peer's session (sync both ways between active appliances):
                    // its client packets may reach us when the routers move them; we send
                    // them on from the peer's local address, so that the real server's
                    // replies return to the peer, which still holds the session and the
                    // port. No pool of ours is touched.
                    None => (usize::from(SLOT_FOREIGN), u32::from(f.lip), f.lport),
                }
            }
            Method::Nat => (usize::MAX, key.src_ip, key.src_port),
            Method::Dr => (usize::MAX, 0, 0),
            Method::Tun(t) => {
                let hop = *self
                    .hops
                    .resolve(&self.egress, dest)
                    .map_err(|_| SyncReject::NoRoute)?;
                let src = self.egress.source_toward(&hop).ok_or(SyncReject::NoRoute)?;
                (usize::MAX, src, t.port)
            }
        };
        if self.table.is_full() {
            self.housekeeping(now, FULL_TABLE_REAP, stats);
        }
        let session = Session {
            client_ip: key.src_ip,
            vip,
            rs_ip: dest,
            lip,
            client_port: key.src_port,
            vport: key.dst_port,
            rs_port: if dport != 0 { dport } else { rs_port },
            lport,
            service_id: svc_id,
            rs_id: real.id,
            lip_slot: Session::method_slot(real.method, slot as u16),
            svc_slot,
            rs_slot: real.slot,
            proto,
            state,
            ..Session::default()
        };
        let id = match self.table.insert(session) {
            Ok(id) => id,
            Err(e) => {
                if real.method == Method::FullNat && slot < usize::from(SLOT_FOREIGN) {
                    self.laddrs.release(slot, lport);
                }
                return Err(match e {
                    crate::session::InsertError::Full => SyncReject::TableFull,
                    _ => SyncReject::Clash,
                });
            }
        };
        let adj = match c.fullnat {
            Some(f) if f.adjust_flags != 0 || f.in_delta != 0 || f.out_delta != 0 => {
                self.adjusting = true;
                client_addr::SeqAdjust {
                    first_seq: f.first_seq,
                    in_delta: f.in_delta,
                    out_delta: f.out_delta,
                    flags: f.adjust_flags,
                    rs_wscale: f.rs_wscale,
                }
            }
            _ => client_addr::SeqAdjust::default(),
        };
        if let Some(a) = self.adjust.get_mut(id as usize) {
            *a = adj;
        }
        if real.method == Method::FullNat && slot < usize::from(SLOT_FOREIGN) {
            if let Some(l) = stats.local_addrs.get_mut(slot) {
                l.ports_in_use += 1;
            }
        }
        if let Some(st) = stats.services.get_mut(usize::from(svc_slot)) {
            if let Some(r) = st.reals.get_mut(usize::from(real.slot)) {
                if state.is_active() {
                    r.active_conns += 1;
                } else {
                    r.inactive_conns += 1;
                }
            }
        }
        stats.sessions += 1;
        if let (Some(p), Some(t)) = (persist, self.templates.as_mut()) {
            let tkey = persist::key(svc_id, key.src_ip & p.mask);
            if !t.bind(tkey, real.id, now, p.timeout_ns) {
                stats.templates_full += 1;
            }
        }
        if let Some(s) = self.table.get_mut(id) {
            self.wheel.schedule(id, &mut s.deadline, now, deadline);
        }
        Ok(Installed::New)
    }
}

/// Moves one connection between ActiveConn and InActConn when its state changes. The test
/// is inlined into every caller: most packets (a SYN too) change neither.
#[inline(always)]
pub(super) fn move_active(
    stats: &mut WorkerStats,
    svc: u16,
    rs: u16,
    old: ConnState,
    new: ConnState,
) {
    if old.is_active() != new.is_active() {
        move_one(stats, svc, rs, new.is_active());
    }
}

/// [`move_active`] for a connection that became active (`active`) or inactive.
#[inline(never)]
fn move_one(stats: &mut WorkerStats, svc: u16, rs: u16, active: bool) {
    if let Some(r) = stats
        .services
        .get_mut(usize::from(svc))
        .and_then(|st| st.reals.get_mut(usize::from(rs)))
    {
        if active {
            r.inactive_conns = r.inactive_conns.saturating_sub(1);
            r.active_conns += 1;
        } else {
            r.active_conns = r.active_conns.saturating_sub(1);
            r.inactive_conns += 1;
        }
    }
}

/// Whole seconds from `now` to `deadline`, rounded up (a session due within the second is
/// still sent with 1).
fn secs_until(deadline: u64, now: u64) -> u32 {
    let ns = deadline.saturating_sub(now);
    (ns.div_ceil(NS_PER_SEC)).min(u64::from(u32::MAX)) as u32
}
