//! The established-flow fast path.
//!
//! Nearly every packet through a load balancer belongs to a flow it already knows: a TCP
//! segment with ACK and without SYN/FIN/RST of a session in ESTABLISHED, or a datagram of a
//! UDP session. For those, every decision of the full pipeline (`FullNat::process`) is known
//! in advance: no service lookup, no scheduling, no state change, no ActiveConn/InActConn
//! move. This path takes exactly those packets, with the session hash the burst's prefetch
//! stage already computed, and reads the header through one fixed-size view.
//!
//! It gives the same bytes, verdict, session state, deadline and counters as the full
//! pipeline (a differential test runs both on random traffic and rule changes). Anything
//! else returns `None` before changing anything, and the full pipeline decides: another
//! header shape, flags, state or protocol; a next hop that is not static or REACHABLE; rules
//! in the middle of ending sessions of removed services.

use super::{BurstHint, FullNat, ADDR_VIP, NS_PER_SEC};
use crate::packet::checksum::{fold, udp_wire};
use crate::packet::ipv4::{IPPROTO_TCP, IPPROTO_UDP};
use crate::packet::l4::TcpFlags;
use crate::rules::PortIndex;
use crate::session::{ConnState, Side, Tuple};
use crate::stats::WorkerStats;
use crate::verdict::Verdict;

const L3: usize = 14;
const L4: usize = L3 + 20;
/// Ethernet + IPv4 without options + the fixed TCP header: 54 bytes, which every Ethernet
/// frame has (60 at least); a shorter UDP frame (only software makes them) takes the full
/// pipeline.
const VIEW: usize = L4 + 20;

/// The one's-complement sum of a 32-bit value's two 16-bit halves, not folded.
#[inline(always)]
fn halves(v: u32) -> u32 {
    (v >> 16) + (v & 0xFFFF)
}

/// The one's-complement sum of the complemented halves (the `~m` of RFC 1624 eqn. 3).
#[inline(always)]
fn not_halves(v: u32) -> u32 {
    halves(!v)
}

#[inline(always)]
fn be16(h: &[u8; VIEW], at: usize) -> u16 {
    u16::from_be_bytes([h[at], h[at + 1]])
}

#[inline(always)]
fn be32(h: &[u8; VIEW], at: usize) -> u32 {
    u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]])
}

impl FullNat {
    /// The fast path for one frame received on `rx_port`, with what the burst's prefetch
    /// stages learned about it (see the module doc). `Some(verdict)`: done, counted in the
    /// session, service and real server (the caller counts the frame itself). `None`: nothing
    /// changed; run the full pipeline.
    #[inline(always)]
    pub(crate) fn established(
        &mut self,
        rx_port: PortIndex,
        frame: &mut [u8],
        hint: BurstHint,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Option<Verdict> {
        if !hint.fast || self.check_alive() {
            return None;
        }
        let frame_len = frame.len();
        let h: &mut [u8; VIEW] = frame.get_mut(..VIEW)?.try_into().ok()?;
        // What `parse` would accept, narrowed to the plain case: untagged IPv4 without
        // options, not a fragment, TTL that survives the hop.
        let total_len = be16(h, L3 + 2);
        let end = L3 + usize::from(total_len);
        let proto = h[L3 + 9];
        if h[12] != 0x08
            || h[13] != 0x00
            || h[L3] != 0x45
            || be16(h, L3 + 6) & 0x3FFF != 0
            || end > frame_len
            || h[L3 + 8] <= 1
        {
            return None;
        }
        let checksum_at = match proto {
            IPPROTO_TCP => {
                let tcp_len = usize::from(h[L4 + 12] >> 4) * 4;
                let flags = TcpFlags(h[L4 + 13]);
                if tcp_len < 20
                    || L4 + tcp_len > end
                    || !flags.ack()
                    || flags.syn()
                    || flags.fin()
                    || flags.rst()
                {
                    return None;
                }
                L4 + 16
            }
            IPPROTO_UDP => {
                let udp_len = usize::from(be16(h, L4 + 4));
                if udp_len < 8 || L4 + udp_len > end {
                    return None;
                }
                L4 + 6
            }
            _ => return None,
        };
        if self.egress.port_mac(rx_port)? != h[..6] {
            return None;
        }
        let key = Tuple {
            proto,
            src_ip: be32(h, L3 + 12),
            src_port: be16(h, L4),
            dst_ip: be32(h, L3 + 16),
            dst_port: be16(h, L4 + 2),
        };
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
        if side == Side::Client && self.addresses.get(u64::from(key.dst_ip))? & ADDR_VIP == 0 {
            return None;
        }
        if !matches!(self.wheel.deadline(id), Some(d) if d > now) {
            return None;
        }
        let s = self.table.get(id)?;
        let timeout_secs = match (proto, s.state) {
            (IPPROTO_TCP, ConnState::Established) => self.timeouts.tcp_established,
            (IPPROTO_UDP, ConnState::Udp) => self.timeouts.udp,
            _ => return None,
        };
        let (src_ip, src_port, dst_ip, dst_port) = match side {
            Side::Client => (s.lip, s.lport, s.rs_ip, s.rs_port),
            Side::Real => (s.vip, s.vport, s.client_ip, s.client_port),
        };
        let (svc_slot, rs_slot, rs_ip) = (s.svc_slot, s.rs_slot, s.rs_ip);
        // A reply only by the port toward its real server (else `wrong_ingress`).
        if side == Side::Real && self.hops.resolve(&self.egress, rs_ip).ok()?.port != rx_port {
            return None;
        }
        let hop = self.hops.resolve(&self.egress, dst_ip).ok()?;
        let dst_mac = self.neigh.reachable_mac(&hop, now)?;

        // Rewrite: RFC 1624 eqn. 3 over every changed word at once (the old words are the
        // key's), exactly as `packet::rewrite_fullnat` computes it.
        let addresses =
            not_halves(key.src_ip) + not_halves(key.dst_ip) + halves(src_ip) + halves(dst_ip);
        let ttl = h[L3 + 8];
        let ttl_proto = u32::from(u16::from_be_bytes([ttl, proto]));
        let ip_sum =
            u32::from(!be16(h, L3 + 10)) + addresses + (!ttl_proto & 0xFFFF) + (ttl_proto - 0x100);
        let l4_check = be16(h, checksum_at);
        let l4_sum = u32::from(!l4_check)
            + addresses
            + u32::from(!key.src_port)
            + u32::from(src_port)
            + u32::from(!key.dst_port)
            + u32::from(dst_port);
        let new_l4_check = match (proto, l4_check) {
            (IPPROTO_UDP, 0) => 0,
            (IPPROTO_UDP, _) => udp_wire(!fold(l4_sum)),
            _ => !fold(l4_sum),
        };
        h[..6].copy_from_slice(&dst_mac);
        h[6..12].copy_from_slice(&hop.src_mac);
        h[L3 + 8] = ttl - 1;
        h[L3 + 10..L3 + 12].copy_from_slice(&(!fold(ip_sum)).to_be_bytes());
        h[L3 + 12..L3 + 16].copy_from_slice(&src_ip.to_be_bytes());
        h[L3 + 16..L3 + 20].copy_from_slice(&dst_ip.to_be_bytes());
        h[L4..L4 + 2].copy_from_slice(&src_port.to_be_bytes());
        h[L4 + 2..L4 + 4].copy_from_slice(&dst_port.to_be_bytes());
        h[checksum_at..checksum_at + 2].copy_from_slice(&new_l4_check.to_be_bytes());

        // Counters and deadline, as `forward` advances them (the state stays as it is).
        let bytes = u64::from(total_len);
        if let Some(m) = self.table.get_mut(id) {
            match side {
                Side::Client => {
                    m.packets_in = m.packets_in.wrapping_add(1);
                    m.bytes_in = m.bytes_in.wrapping_add(bytes);
                }
                Side::Real => {
                    m.packets_out = m.packets_out.wrapping_add(1);
                    m.bytes_out = m.bytes_out.wrapping_add(bytes);
                }
            }
        }
        if let Some(st) = stats.services.get_mut(usize::from(svc_slot)) {
            let traffic = st
                .reals
                .get_mut(usize::from(rs_slot))
                .map(|r| &mut r.traffic);
            match side {
                Side::Client => {
                    st.traffic.packets_in += 1;
                    st.traffic.bytes_in += bytes;
                    if let Some(t) = traffic {
                        t.packets_in += 1;
                        t.bytes_in += bytes;
                    }
                }
                Side::Real => {
                    st.traffic.packets_out += 1;
                    st.traffic.bytes_out += bytes;
                    if let Some(t) = traffic {
                        t.packets_out += 1;
                        t.bytes_out += bytes;
                    }
                }
            }
        }
        let timeout = u64::from(timeout_secs) * NS_PER_SEC;
        self.wheel.schedule(id, now, now.saturating_add(timeout));
        Some(Verdict::Transmit { port: hop.port })
    }
}
