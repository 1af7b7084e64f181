//! Forwarding a packet of a session: the reply-ingress check, the rewrite, the next hop, the
//! state machine and the counters.

use super::*;
use crate::packet::l4::TcpFlags;
use crate::packet::{ether, translate_by, PacketV4};
use crate::rules::{Method, PortIndex};
use crate::session::{ConnState, Direction, SessionId};
use crate::stats::{Traffic, WorkerStats};
use crate::verdict::{DropReason, Verdict};

impl FullNat {
    /// A reply from real server `rs` must come in by the port the route to `rs` leaves by:
    /// a frame claiming to be one from any other port (a client spoofing a server's reply
    /// to inject into a connection, or a routing loop) is dropped as `wrong_ingress`.
    #[inline(always)]
    pub(super) fn check_reply_ingress(
        &mut self,
        rs: u32,
        rx_port: PortIndex,
    ) -> Result<(), DropReason> {
        match self.hops.resolve(&self.egress, rs) {
            Ok(hop) if hop.port == rx_port => Ok(()),
            _ => Err(DropReason::WrongIngress),
        }
    }

    /// Rewrites a packet of session `id` travelling in `dir`, then advances the session's
    /// state, counters and deadline (in place). Nothing changes when the packet cannot leave.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn forward(
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
        self.forward_as::<false>(rx_port, frame, pkt, id, dir, tcp, now, stats)
    }

    /// [`FullNat::forward`], the one forwarding routine of every stage. `FAST`: the caller
    /// (the established-flow stage) only passes packets that leave the session's state as
    /// it is (an ACK of an ESTABLISHED session without SYN/FIN/RST, a datagram of a UDP
    /// session), so the state machine's answer is known; debug builds still ask it, and
    /// assert that it agrees.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn forward_as<const FAST: bool>(
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
        if self.sp.is_some() {
            if let Some(f) = tcp {
                let sp = self
                    .adjust
                    .get(id as usize)
                    .is_some_and(|a| a.flags & super::client_addr::ADJ_SP != 0);
                if sp {
                    if let Some(done) = self.synproxy_gate(frame, pkt, id, dir, f, now, stats) {
                        return done;
                    }
                }
            }
        }
        self.forward_inner::<FAST>(frame, pkt, id, dir, tcp, now, stats)
    }

    /// [`FullNat::forward_as`] past the reply-ingress check and the SYN proxy's handshake
    /// (which calls this for the segments it builds).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn forward_inner<const FAST: bool>(
        &mut self,
        frame: &mut [u8],
        pkt: &PacketV4,
        id: SessionId,
        dir: Direction,
        tcp: Option<TcpFlags>,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Result<Verdict, DropReason> {
        let s = self.table.get(id).ok_or(DropReason::NoSession)?;
        let (old_state, svc_slot, rs_slot, method) = (s.state, s.svc_slot, s.rs_slot, s.method());
        let verdict = match method {
            // The packet leaves with the other side's tuple, reversed (NAT: the client's own
            // address is the session's local address, so only the VIP end changes).
            Method::FullNat | Method::Nat => {
                let (to, delta) = s.rewrite(dir);
                debug_assert_eq!(
                    pkt.tuple(),
                    Some(match dir {
                        Direction::Input => s.client_key(),
                        Direction::Output => s.real_key(),
                    }),
                    "a session's stored rewrite is for the packets of its keys"
                );
                // This copy of the hop is `resolved` once its MAC is known, from a static
                // neighbour or the neighbour table (one flag, not an `Option` beside it).
                let mut hop = *self.hops.resolve(&self.egress, to.dst_ip)?;
                if !hop.resolved {
                    if let Some(mac) = self.neigh.next_hop_mac(&hop, now)? {
                        (hop.dst_mac, hop.resolved) = (mac, true);
                    }
                }
                translate_by(frame, pkt, &to, delta)?;
                if method == Method::FullNat && self.adjusting {
                    // On error the packet is dropped; the translation above is then moot.
                    self.client_address(id, dir, frame, pkt, hop.resolved, now, stats)?;
                }
                if hop.resolved {
                    ether::set_macs(frame, hop.src_mac, hop.dst_mac);
                    Verdict::Transmit { port: hop.port }
                } else {
                    self.neigh.hold(frame, &hop, now, stats)
                }
            }
            // Only the Ethernet destination: the real server's MAC. No IP byte changes, the
            // TTL neither (as IPVS's DR transmitter).
            Method::Dr => {
                let hop = *self.hops.resolve(&self.egress, s.rs_ip)?;
                if hop.gateway != s.rs_ip {
                    return Err(DropReason::NoRoute);
                }
                let dst_mac = if hop.resolved {
                    Some(hop.dst_mac)
                } else {
                    self.neigh.next_hop_mac(&hop, now)?
                };
                match dst_mac {
                    Some(mac) => {
                        ether::set_macs(frame, hop.src_mac, mac);
                        Verdict::Transmit { port: hop.port }
                    }
                    None => self.neigh.hold(frame, &hop, now, stats),
                }
            }
            // The outer header goes on in `process`, which holds the frame's headroom.
            Method::Tun(tunnel) => {
                let hop = *self.hops.resolve(&self.egress, s.rs_ip)?;
                let dst_mac = if hop.resolved {
                    Some(hop.dst_mac)
                } else {
                    self.neigh.next_hop_mac(&hop, now)?
                };
                self.encap = Some(super::encap::Encap::toward_real(s, tunnel, hop, dst_mac));
                Verdict::Consumed
            }
        };

        let state = if FAST {
            debug_assert_eq!(
                next_state(old_state, method, dir, tcp),
                old_state,
                "the fast path changes no state"
            );
            old_state
        } else {
            next_state(old_state, method, dir, tcp)
        };
        let timeout = self.timeouts_ns[state as usize];
        let deadline = now.saturating_add(timeout);
        self.advance(id, svc_slot, rs_slot, dir, pkt, state, now, deadline, stats);
        if !FAST {
            super::sync::move_active(stats, svc_slot, rs_slot, old_state, state);
        }
        self.sync_note(id, Some(old_state), dir == Direction::Input, now);
        Ok(verdict)
    }

    /// Advances session `id` (service slot `svc_slot`, real-server slot `rs_slot`) by one
    /// forwarded packet: its state to `state`, its packet count, its deadline to `deadline`
    /// (all in the session's one line, written through one borrow), and counts the packet in
    /// its service and real server (packets and bytes): every stage that forwards goes
    /// through here.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn advance(
        &mut self,
        id: SessionId,
        svc_slot: u16,
        rs_slot: u16,
        dir: Direction,
        pkt: &PacketV4,
        state: ConnState,
        now: u64,
        deadline: u64,
        stats: &mut WorkerStats,
    ) {
        let bytes = u64::from(pkt.ip.total_len);
        if let Some(m) = self.table.get_mut(id) {
            m.state = state;
            match dir {
                Direction::Input => m.packets_in = m.packets_in.wrapping_add(1),
                Direction::Output => m.packets_out = m.packets_out.wrapping_add(1),
            }
            self.wheel.schedule(id, &mut m.deadline, now, deadline);
        }
        if let Some(st) = stats.services.get_mut(usize::from(svc_slot)) {
            count(&mut st.traffic, dir, bytes);
            if let Some(r) = st.reals.get_mut(usize::from(rs_slot)) {
                count(&mut r.traffic, dir, bytes);
            }
        }
    }
}

/// The state machine's answer for a packet of a session in `old` forwarded by `method`
/// travelling in `dir` (TCP with `tcp`'s flags, or UDP).
#[inline(always)]
fn next_state(old: ConnState, method: Method, dir: Direction, tcp: Option<TcpFlags>) -> ConnState {
    match tcp {
        Some(f) if method.input_only() => old.on_tcp_input_only(f.syn(), f.fin(), f.ack(), f.rst()),
        Some(f) => old.on_tcp(dir, f.syn(), f.fin(), f.ack(), f.rst()),
        None => ConnState::Udp,
    }
}

#[inline]
pub(super) fn count(t: &mut Traffic, dir: Direction, bytes: u64) {
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
