//! Connection creation: persistence template or scheduler, local address and port, the new
//! session under both keys.

use super::*;
use crate::packet::Tuple;
use crate::persist;
use crate::rules::Method;
use crate::sched::RealSet;
use crate::session::{ConnState, Session, SessionId};
use crate::stats::{RealStats, WorkerStats};
use crate::verdict::DropReason;

impl FullNat {
    /// Schedules a real server and a local port and inserts the session (state NONE for TCP,
    /// UDP for UDP); the first packet's transition follows in `forward`. `tag` is `key`'s hash
    /// tag (`SessionTable::tag`), which the lookup that found no session computed.
    pub(super) fn create(
        &mut self,
        service: usize,
        key: &Tuple,
        tag: u32,
        is_tcp: bool,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<SessionId, DropReason> {
        self.admit(service, key.src_ip, now, stats)?;
        if self.table.is_full() {
            // Sessions may be due but not reaped yet (housekeeping runs between bursts): reap
            // a bounded few now rather than refuse a flow the table has room for.
            self.housekeeping(now, FULL_TABLE_REAP, stats);
            if self.table.is_full() {
                return Err(DropReason::SessionTableFull);
            }
        }
        let snat = self.is_snat(service);
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
        let (svc_id, svc_slot) = (svc.id, svc.slot);
        // SNAT: the scheduled real server is the WAN address (the pool of the same rank), the
        // destination stays the packet's own (see `snat`).
        let (rs_addr, rs_port) = if snat {
            (key.dst_ip, key.dst_port)
        } else if real.port == 0 {
            (real.addr, key.dst_port)
        } else {
            (real.addr, real.port)
        };
        // Never take a port for a flow that cannot leave.
        let hop = *self.hops.resolve(&self.egress, rs_addr)?;
        let (lip_slot, lip, lport) = match real.method {
            Method::FullNat => {
                let pool = snat.then_some(ri);
                let (slot, lport) = self.alloc_lport(service, pool, stats)?;
                let lip = self.laddrs.pool(slot).map_or(0, |p| u32::from(p.addr()));
                (slot, lip, lport)
            }
            // Replies carry RS:rport → client:cport: that is the real-server key.
            Method::Nat => (usize::MAX, key.src_ip, key.src_port),
            Method::Dr => {
                // The real server must be on a connected network (the control plane refuses
                // others; a route change may still take it off-link).
                if hop.gateway != real.addr {
                    return Err(DropReason::NoRoute);
                }
                (usize::MAX, 0, 0)
            }
            Method::Tun(t) => (
                usize::MAX,
                self.egress.source_toward(&hop).ok_or(DropReason::NoRoute)?,
                t.port,
            ),
        };
        // An echo's reply carries the identifier SNAT gave it (the local port) for both ports:
        // that is its real-server key's port too.
        let rs_port = if snat && key.proto == crate::packet::ipv4::IPPROTO_ICMP {
            lport
        } else {
            rs_port
        };
        let lip_slot_field = Session::method_slot(real.method, lip_slot as u16);
        let state = if is_tcp {
            ConnState::None
        } else {
            ConnState::Udp
        };
        // Written field by field into the free slot (which is all default): the slot is the
        // only copy of the session.
        // A full-NAT session's real-server key (its local address and port) is its own: its
        // indexing waits for the end of the burst (`SessionTable::insert_with`).
        let defer_real = real.method == Method::FullNat;
        let inserted = self.table.insert_with(tag, defer_real, |s: &mut Session| {
            s.client_ip = key.src_ip;
            s.vip = key.dst_ip;
            s.rs_ip = rs_addr;
            s.lip = lip;
            s.client_port = key.src_port;
            s.vport = key.dst_port;
            s.rs_port = rs_port;
            s.lport = lport;
            s.service_id = svc_id;
            s.rs_id = real.id;
            s.lip_slot = lip_slot_field;
            s.svc_slot = svc_slot;
            s.rs_slot = real.slot;
            s.proto = key.proto;
            s.state = state;
        });
        let id = match inserted {
            Ok(id) => id,
            Err(e) => {
                if real.method == Method::FullNat {
                    self.laddrs.release(lip_slot, lport);
                }
                return Err(match e {
                    crate::session::InsertError::Full => DropReason::SessionTableFull,
                    _ if real.method == Method::FullNat => DropReason::LocalPortsExhausted,
                    // NAT: the reply key RS:rport → client:cport is another session's.
                    _ => DropReason::SessionClash,
                });
            }
        };
        // Proxy Protocol / TOA: full-NAT sessions only (an SNAT session has no real server to
        // tell); every new session resets its slot's sequence state.
        let info = self
            .slot_info
            .get(usize::from(svc_slot))
            .copied()
            .unwrap_or_default();
        let ca = info.client_address;
        let synproxy = info.synproxy && is_tcp;
        let adj = if real.method == Method::FullNat && !snat && (ca.any() || synproxy) {
            self.adjusting = true;
            let mut a = super::client_addr::SeqAdjust::for_service(ca, is_tcp);
            if synproxy {
                a.flags |= super::client_addr::ADJ_SP;
            }
            a
        } else {
            super::client_addr::SeqAdjust::default()
        };
        if let Some(a) = self.adjust.get_mut(id as usize) {
            *a = adj;
        }
        if real.method == Method::FullNat {
            if let Some(l) = stats.local_addrs.get_mut(lip_slot) {
                l.ports_in_use += 1;
            }
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
}

impl FullNat {
    /// The service's admission of a new connection from `client`: allow/deny lists, then
    /// the per-prefix rate (a refused client takes no token).
    #[inline]
    fn admit(
        &mut self,
        service: usize,
        client: u32,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<(), DropReason> {
        let Some(svc) = self.services.get_mut(service) else {
            return Ok(());
        };
        if let Some(acl) = &svc.acl {
            acl.check(client).map_err(|r| match r {
                crate::acl::Refusal::Denied => DropReason::ClientDenied,
                crate::acl::Refusal::NotAllowed => DropReason::ClientNotAllowed,
            })?;
        }
        if let Some(rate) = &mut svc.rate {
            match rate.admit(client, now) {
                crate::acl::Admit::Yes => {}
                crate::acl::Admit::YesEvicted => stats.rate_table_evictions += 1,
                crate::acl::Admit::No => return Err(DropReason::ClientRateLimited),
            }
        }
        Ok(())
    }

    /// A local address and port of `service` for a full-NAT session.
    fn alloc_lport(
        &mut self,
        service: usize,
        pool: Option<usize>,
        stats: &mut WorkerStats,
    ) -> Result<(usize, u16), DropReason> {
        let svc = self
            .services
            .get_mut(service)
            .ok_or(DropReason::NoService)?;
        let local_addrs = &mut stats.local_addrs;
        let mut exhausted = |s: usize| {
            if let Some(l) = local_addrs.get_mut(s) {
                l.exhausted += 1;
            }
        };
        // SNAT takes the pool of its scheduled address (its real server of the same rank).
        if let Some(lips) = pool.and_then(|i| svc.lips.get(i..=i)) {
            return self
                .laddrs
                .alloc(lips, exhausted)
                .ok_or(DropReason::LocalPortsExhausted);
        }
        // Full NAT: the search starts at the address after the one the last connection got,
        // so the addresses share the connections and a search never walks the exhausted
        // addresses ahead of a free one (searching from the first address made each SYN walk
        // every full pool before it: `alloc_lport` was 12 % of a worker's time at 4.7 M live
        // sessions over 125 addresses).
        let start = svc.next_lip.min(svc.lips.len());
        let (before, after) = svc.lips.split_at(start);
        let at = match self.laddrs.alloc_from(after, &mut exhausted) {
            Some((i, port)) => Some((start + i, port)),
            None => self.laddrs.alloc_from(before, &mut exhausted),
        };
        let (i, port) = at.ok_or(DropReason::LocalPortsExhausted)?;
        let slot = *svc.lips.get(i).ok_or(DropReason::LocalPortsExhausted)?;
        svc.next_lip = i + 1;
        if let Some(&next) = svc.lips.get(i + 1).or(svc.lips.first()) {
            self.laddrs
                .prefetch(next as usize, self.table.prefetch_hint());
        }
        Ok((slot as usize, port))
    }
}

/// Applies connection thresholds as IPVS does: a server whose connections (active +
/// inactive, all workers) reach its upper threshold is overloaded until they fall below its
/// lower threshold (3/4 of the upper one when the lower is 0).
pub(super) fn refresh_overload(reals: &mut [RealEntry], own: &[RealStats], others: &[(u32, u32)]) {
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

/// What the scheduler of a service sees: its real servers with this worker's exact live
/// counts plus the other workers' last published ones (see `sched::load`).
pub(super) struct View<'a> {
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
