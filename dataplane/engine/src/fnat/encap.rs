//! TUN: the untouched client packet inside an outer IPv4 header (IPIP, GUE or GRE), as
//! kernel IPVS's tunnel transmitter sends it, and ICMP "fragmentation needed" when the
//! wrapped packet would not fit the port's MTU.
//!
//! The outer header goes into the frame's headroom ([`Frame::prepend`]: no copy of the
//! packet). Outer header as IPVS writes it: source = the port's address toward the real
//! server, TTL 64 (the route's default hop limit), DF and TOS copied from the inner header, a
//! fresh identification. The inner packet is not changed at all (its TTL neither).

use super::*;
use crate::packet::checksum::{checksum, pseudo_header_sum, udp_wire};
use crate::packet::ipv4::{DONT_FRAGMENT, IPV4_MIN_HEADER_LEN};
use crate::packet::udp::UDP_HEADER_LEN;
use crate::packet::{ether, icmp, EthernetHeader, Ipv4Header, UdpHeader, IPPROTO_UDP};
use crate::rules::{Tunnel, TunnelKind};
use egress::NextHop;

/// The MTU of every port (fnatd runs its ports at Ethernet's 1500 bytes).
pub const PORT_MTU: usize = 1500;
/// TTL of outer tunnel headers and of the ICMP errors fnatd originates.
pub const OUTER_TTL: u8 = 64;
/// GUE source ports (from the inner flow's hash, so the real server's RSS spreads flows).
const GUE_SPORT_BASE: u16 = 49152;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_GRE: u8 = 47;
const GUE_HEADER: [u8; 4] = [0, IPPROTO_IPIP, 0, 0];
/// GRE (RFC 2784): flags and version, protocol type, then (C bit set) checksum and reserved.
mod gre {
    pub const FLAGS: usize = 0;
    pub const PROTOCOL: usize = 2;
    pub const CHECKSUM: usize = 4;
    pub const CHECKSUM_PRESENT: u16 = 0x8000;
    pub const HEADER_LEN: usize = 4;
    pub const CHECKSUM_LEN: usize = 4;
}

/// What `forward` decided for a packet of a TUN session; `process` applies it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Encap {
    /// Outer source (the port's address toward the real server) and destination.
    pub src: u32,
    pub dst: u32,
    /// The service address: source of "fragmentation needed" to the client.
    pub vip: u32,
    pub tunnel: Tunnel,
    pub hop: NextHop,
    /// `None`: the next hop is being resolved (the wrapped frame is held).
    pub dst_mac: Option<[u8; 6]>,
}

impl Encap {
    /// The tunnel from session `s`'s local address to its real server (through `hop`), as
    /// every packet and ICMP error of a TUN session toward the real server takes it.
    pub fn toward_real(
        s: &crate::session::Session,
        tunnel: Tunnel,
        hop: NextHop,
        dst_mac: Option<[u8; 6]>,
    ) -> Self {
        Encap {
            src: s.lip,
            dst: s.rs_ip,
            vip: s.vip,
            tunnel,
            hop,
            dst_mac,
        }
    }
}

/// Bytes the tunnel puts in front of the inner IP packet.
pub fn tunnel_overhead(t: &Tunnel) -> usize {
    IPV4_MIN_HEADER_LEN
        + match t.kind {
            TunnelKind::Ipip => 0,
            TunnelKind::Gue => UDP_HEADER_LEN + GUE_HEADER.len(),
            TunnelKind::Gre if t.csum => gre::HEADER_LEN + gre::CHECKSUM_LEN,
            TunnelKind::Gre => gre::HEADER_LEN,
        }
}

impl FullNat {
    /// Wraps `pkt` (parsed from `frame`) in `e`'s tunnel and says where it goes; answers the
    /// client with "fragmentation needed" instead when it is too big and has DF set.
    pub(super) fn encapsulate<F: Frame>(
        &mut self,
        frame: &mut F,
        pkt: &PacketV4,
        e: Encap,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Verdict {
        let (l3, inner_len) = (pkt.ip.l3(), usize::from(pkt.ip.total_len));
        let n = tunnel_overhead(&e.tunnel);
        let Some(Ok(inner)) = frame.data().get(l3..).map(Ipv4Header::new_checked) else {
            return Verdict::Drop(DropReason::Truncated);
        };
        let (df, tos) = (inner.flags_frag() & DONT_FRAGMENT, inner.tos());
        if inner_len + n > PORT_MTU {
            if df == 0 {
                return Verdict::Drop(DropReason::TooBig);
            }
            return self.frag_needed(frame, pkt, e.vip, (PORT_MTU - n) as u16, now, stats);
        }
        // Ethernet padding of a short frame is not part of the packet.
        if frame.data().len() < l3 + inner_len || !frame.set_len(l3 + inner_len) {
            return Verdict::Drop(DropReason::Truncated);
        }
        if !frame.prepend(n) {
            return Verdict::Drop(DropReason::NoHeadroom);
        }
        let ip_id = self.ip_id;
        self.ip_id = self.ip_id.wrapping_add(1);
        let data = frame.data_mut();
        // The Ethernet header moves to the new start; the outer header follows it.
        data.copy_within(n..n + l3, 0);
        let proto = match e.tunnel.kind {
            TunnelKind::Ipip => IPPROTO_IPIP,
            TunnelKind::Gue => IPPROTO_UDP,
            TunnelKind::Gre => IPPROTO_GRE,
        };
        let Some(outer) = data.get_mut(l3..l3 + n + inner_len) else {
            return Verdict::Drop(DropReason::Truncated);
        };
        let (ip, rest) = outer.split_at_mut(IPV4_MIN_HEADER_LEN);
        ip.fill(0);
        let Ok(mut h) = Ipv4Header::new_mut(ip) else {
            return Verdict::Drop(DropReason::Truncated);
        };
        h.set_version_and_header_len(IPV4_MIN_HEADER_LEN);
        h.set_tos(tos);
        h.set_total_len((n + inner_len) as u16);
        h.set_ident(ip_id);
        h.set_flags_frag(df);
        h.set_ttl(OUTER_TTL);
        h.set_proto(proto);
        h.set_src(e.src);
        h.set_dst(e.dst);
        let check = checksum(ip, 0);
        if let Ok(mut h) = Ipv4Header::new_mut(ip) {
            h.set_checksum(check);
        }
        match e.tunnel.kind {
            TunnelKind::Ipip => {}
            TunnelKind::Gue => {
                let udp_len = rest.len() as u16;
                let sport = GUE_SPORT_BASE | (flow_hash(pkt) as u16 & 0x3fff);
                let (udp, gue) = rest.split_at_mut(UDP_HEADER_LEN);
                if let Ok(mut u) = UdpHeader::new_mut(udp) {
                    u.set_ports(sport, e.tunnel.port);
                    u.set_length(udp_len);
                    u.set_checksum(0);
                }
                gue[..GUE_HEADER.len()].copy_from_slice(&GUE_HEADER);
                if e.tunnel.csum {
                    let pseudo = pseudo_header_sum(
                        Ipv4Addr::from(e.src),
                        Ipv4Addr::from(e.dst),
                        IPPROTO_UDP,
                        udp_len,
                    );
                    let c = udp_wire(checksum(rest, pseudo));
                    if let Ok(mut u) = UdpHeader::new_mut(rest) {
                        u.set_checksum(c);
                    }
                }
            }
            TunnelKind::Gre => {
                let flags = if e.tunnel.csum {
                    gre::CHECKSUM_PRESENT
                } else {
                    0
                };
                let word = |b: &mut [u8], at: usize, v: u16| {
                    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
                };
                word(rest, gre::FLAGS, flags);
                word(rest, gre::PROTOCOL, ether::ETHERTYPE_IPV4);
                if e.tunnel.csum {
                    rest[gre::CHECKSUM..gre::CHECKSUM + gre::CHECKSUM_LEN].fill(0);
                    let c = checksum(rest, 0);
                    word(rest, gre::CHECKSUM, c);
                }
            }
        }
        if let Ok(mut eth) = EthernetHeader::new_checked_mut(data) {
            eth.set_ethertype(ether::ETHERTYPE_IPV4);
        }
        match e.dst_mac {
            Some(mac) => {
                ether::set_macs(data, e.hop.src_mac, mac);
                Verdict::Transmit { port: e.hop.port }
            }
            None => self.neigh.hold(data, &e.hop, now, stats),
        }
    }

    /// Replaces the frame with ICMP "fragmentation needed" (next-hop MTU `mtu`) from `src`
    /// to the packet's sender, quoting its IP header and first 8 L4 bytes.
    fn frag_needed<F: Frame>(
        &mut self,
        frame: &mut F,
        pkt: &PacketV4,
        src: u32,
        mtu: u16,
        now: u64,
        stats: &mut WorkerStats,
    ) -> Verdict {
        let to = pkt.ip.src;
        let hop = match self.hops.resolve(&self.egress, to) {
            Ok(h) => *h,
            Err(r) => return Verdict::Drop(r),
        };
        let dst_mac = match self.neigh.next_hop_mac(&hop, now) {
            Ok(m) => m,
            Err(r) => return Verdict::Drop(r),
        };
        let ip_id = self.ip_id;
        self.ip_id = self.ip_id.wrapping_add(1);
        let len =
            match icmp::frag_needed_in_place(frame.data_mut(), pkt, src, mtu, OUTER_TTL, ip_id) {
                Ok(len) => len,
                Err(r) => return Verdict::Drop(r),
            };
        if !frame.set_len(len) {
            return Verdict::Drop(DropReason::Truncated);
        }
        stats.tunnel_frag_needed += 1;
        let data = frame.data_mut();
        match dst_mac {
            Some(mac) => {
                ether::set_macs(data, hop.src_mac, mac);
                Verdict::Transmit { port: hop.port }
            }
            None => self.neigh.hold(data, &hop, now, stats),
        }
    }
}

/// A hash of the inner flow (addresses, protocol, ports): the GUE source port.
#[inline]
fn flow_hash(pkt: &PacketV4) -> u32 {
    let (sport, dport) = pkt.ports().unwrap_or((0, 0));
    let a = u64::from(pkt.ip.src) << 32 | u64::from(pkt.ip.dst);
    let b = u64::from(sport) << 24 | u64::from(dport) << 8 | u64::from(pkt.ip.proto);
    let h = (a ^ b.rotate_left(40)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 32) as u32 ^ (h as u32)
}
