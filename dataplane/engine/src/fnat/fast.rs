//! The established-flow fast path.
//!
//! Nearly every packet through a load balancer belongs to a flow it already knows: a TCP
//! segment with ACK and without SYN/FIN/RST of a session in ESTABLISHED, or a datagram of a
//! UDP session. For those, every decision of the full pipeline (`FullNat::process`) is known
//! in advance: no service lookup, no scheduling, no state change, no ActiveConn/InActConn
//! move. This path takes exactly those packets, with the session hash the burst's prefetch
//! stage already computed, as the first stage of the one pipeline: the same parse (done once
//! by the burst), the same session lookup, the same rewrite ([`translate`]) and the same
//! counting as the later stages, minus the decisions it knows in advance.
//!
//! Anything else returns `None` before changing anything, and the later stages decide:
//! another header shape (IP options), flags, state or protocol; a next hop that is not static
//! or REACHABLE; rules in the middle of ending sessions of removed services.

use super::{BurstHint, FullNat, ADDR_STANDBY, ADDR_VIP, NS_PER_SEC};
use crate::packet::{translate, ttl_expires, EthernetHeader, PacketV4, Transport};
use crate::rules::{Method, PortIndex};
use crate::session::{ConnState, Direction, Side};
use crate::stats::WorkerStats;
use crate::verdict::Verdict;

impl FullNat {
    /// The first stage of the pipeline for one frame received on `rx_port`, parsed as `pkt`,
    /// with what the burst's prefetch stages learned about it (see the module doc).
    /// `Some(verdict)`: done, counted in the session, service and real server (the caller
    /// counts the frame itself). `None`: nothing changed; the next stages decide.
    #[inline(always)]
    pub(super) fn established(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        pkt: &PacketV4,
        hint: BurstHint,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Option<Verdict> {
        if self.check_alive() || pkt.ip.has_options() || ttl_expires(pkt.ip.ttl) {
            return None;
        }
        match pkt.transport {
            Transport::Tcp(t) => {
                let f = t.flags;
                if !f.ack() || f.syn() || f.fin() || f.rst() {
                    return None;
                }
            }
            Transport::Udp(_) => {}
            Transport::Icmp(_) => return None,
        }
        if !EthernetHeader::new_checked(frame)
            .ok()?
            .is_to(&self.egress.port_mac(rx_port)?)
        {
            return None;
        }
        let key = pkt.tuple()?;
        // The candidate of the prefetch stage, when it is still this key's session (keys are
        // unique in the table); else the index decides.
        let found = hint.candidate.and_then(|id| {
            let s = self.table.get(id)?;
            match (s.client_key() == key, s.real_key() == key) {
                (true, false) => Some((id, Side::Client)),
                (false, true) => Some((id, Side::Real)),
                _ => None,
            }
        });
        let (id, side) = match found {
            Some(f) => f,
            None => {
                let tag = hint.tag.unwrap_or_else(|| self.table.tag(&key));
                self.table.lookup_tagged(&key, tag)?
            }
        };
        // A client-side packet reaches its session only through an address that is still a
        // VIP (the full pipeline drops it as not for us otherwise); a reply's LIP always is
        // an owned address (local address pools are never removed).
        // Neither reaches it through an address this director is VRRP backup for (sessions
        // a backup holds from session sync wait for takeover; the full pipeline drops).
        if side == Side::Client {
            let kind = self.addresses.get(u64::from(key.dst_ip))?;
            if kind & ADDR_VIP == 0 || kind & ADDR_STANDBY != 0 {
                return None;
            }
        } else if self.standby
            && self
                .addresses
                .get(u64::from(key.dst_ip))
                .is_some_and(|k| k & ADDR_STANDBY != 0)
        {
            return None;
        }
        // Sessions with sequence state (Proxy Protocol, TOA) are taken here once nothing can
        // refuse their packets (no header or TOA still to decide on): `client_address` below
        // then only shifts numbers (or repeats the header on a retransmitted first segment).
        let adjust = self.adjusting
            && match self.adjust.get(id as usize) {
                Some(a) if a.flags & super::client_addr::ADJ_UNSETTLED != 0 => return None,
                Some(a) => a.flags != 0,
                None => false,
            };
        let s = self.table.get(id)?;
        if s.deadline <= now {
            return None; // timed out: the full pipeline ends it
        }
        let state = s.state;
        let timeout_secs = match state {
            ConnState::Established => self.timeouts.tcp_established,
            ConnState::Udp => self.timeouts.udp,
            _ => return None,
        };
        let (to, dir) = match side {
            Side::Client => (s.real_key().reverse(), Direction::Input),
            Side::Real => (s.client_key().reverse(), Direction::Output),
        };
        let (svc_slot, rs_slot, rs_ip, lip, vip) = (s.svc_slot, s.rs_slot, s.rs_ip, s.lip, s.vip);
        let method = s.method();
        // A reply only by the port toward its real server (else `wrong_ingress`).
        if side == Side::Real && self.hops.resolve(&self.egress, rs_ip).ok()?.port != rx_port {
            return None;
        }
        // Full NAT and NAT rewrite L3/L4 toward `to`; DR and TUN go to the real server itself.
        let rewrite = matches!(method, Method::FullNat | Method::Nat);
        let hop = *self
            .hops
            .resolve(&self.egress, if rewrite { to.dst_ip } else { rs_ip })
            .ok()?;
        let dst_mac = self.neigh.reachable_mac(&hop, now)?;
        let verdict = match method {
            Method::FullNat | Method::Nat => {
                translate(frame, pkt, &to).ok()?;
                if adjust && method == Method::FullNat {
                    // Settled state: nothing in it refuses a parsed packet that leaves now.
                    let settled = self.client_address(id, dir, frame, pkt, true, now, stats);
                    debug_assert!(settled.is_ok(), "{settled:?}");
                }
                EthernetHeader::new_checked_mut(frame)
                    .ok()?
                    .set_macs(hop.src_mac, dst_mac);
                Verdict::Transmit { port: hop.port }
            }
            Method::Dr => {
                if hop.gateway != rs_ip {
                    return None;
                }
                EthernetHeader::new_checked_mut(frame)
                    .ok()?
                    .set_macs(hop.src_mac, dst_mac);
                Verdict::Transmit { port: hop.port }
            }
            // Wrapped by `process`, which holds the frame's headroom.
            Method::Tun(tunnel) => {
                self.encap = Some(super::encap::Encap {
                    src: lip,
                    dst: rs_ip,
                    vip,
                    tunnel,
                    hop,
                    dst_mac: Some(dst_mac),
                });
                Verdict::Consumed
            }
        };
        // Counters and deadline, as `forward` advances them (the state stays as it is).
        let deadline = now.saturating_add(u64::from(timeout_secs) * NS_PER_SEC);
        self.advance(id, svc_slot, rs_slot, dir, pkt, state, now, deadline, stats);
        self.sync_note(id, None, dir == Direction::Input, now);
        Some(verdict)
    }
}
