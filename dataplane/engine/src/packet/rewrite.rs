//! The one L3/L4 rewrite: a parsed TCP/UDP packet leaves with another five-tuple, in place.
//!
//! Full NAT changes both ends, NAT only the destination (or, for replies, the source), SNAT
//! only the source: all are [`translate`] with the tuple the packet leaves with (an end that
//! does not change costs nothing in the checksums). DR changes no L3/L4 byte and TUN wraps the
//! packet instead (see docs/packet-path.md).

use super::checksum::{Delta, FoldedDelta};
use super::ipv4::Ipv4Header;
use super::l4::Transport;
use super::parse::PacketV4;
use super::tcp::TcpHeader;
use super::tuple::Tuple;
use super::udp::UdpHeader;
use crate::verdict::DropReason;

/// True when a packet with this TTL must not be forwarded (it would leave with TTL 0):
/// drop it as `TtlExpired`.
#[inline]
pub fn ttl_expires(ttl: u8) -> bool {
    ttl <= 1
}

/// What rewriting a packet of tuple `from` to tuple `to` changes in its checksums, folded
/// (4 bytes: a session keeps the one of its client packets, see
/// [`crate::session::Session::rewrite`]). The TTL's change is the same for every packet
/// and is added by [`translate_by`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TupleDelta {
    /// Both addresses: the IP header's and the L4 pseudo-header's change.
    addresses: FoldedDelta,
    /// Both addresses and both ports: a TCP or UDP checksum's change.
    l4: FoldedDelta,
}

impl TupleDelta {
    /// The changes from `from` to `to` (protocols aside: a rewrite keeps the protocol).
    #[inline]
    pub fn between(from: &Tuple, to: &Tuple) -> Self {
        let mut addresses = Delta::new();
        addresses.replace32(from.src_ip, to.src_ip);
        addresses.replace32(from.dst_ip, to.dst_ip);
        let mut l4 = addresses;
        l4.replace16(from.src_port, to.src_port);
        l4.replace16(from.dst_port, to.dst_port);
        TupleDelta {
            addresses: addresses.folded(),
            l4: l4.folded(),
        }
    }

    /// The changes from `to` back to `from` (see [`FoldedDelta::reversed`]).
    #[inline(always)]
    pub fn reversed(self) -> Self {
        TupleDelta {
            addresses: self.addresses.reversed(),
            l4: self.l4.reversed(),
        }
    }
}

/// Rewrites `pkt` (parsed from `frame`) to leave as `to`: both addresses and both ports,
/// TTL minus one, and the IP and TCP/UDP checksums updated incrementally (RFC 1624; the
/// addresses are in the L4 pseudo-header). A UDP checksum of 0 stays 0. `to.proto` is not
/// used (a rewrite keeps the protocol). IP options, TCP options, payload and MACs are not
/// touched; set the MACs with [`super::ether::set_macs`].
///
/// The checksum changes are those from the packet's own tuple ([`PacketV4::tuple`], what
/// [`parse`](super::parse()) read from the frame) to `to`: [`translate_by`] with
/// [`TupleDelta::between`] them.
#[inline]
pub fn translate(frame: &mut [u8], pkt: &PacketV4, to: &Tuple) -> Result<(), DropReason> {
    let from = pkt.tuple().ok_or(DropReason::IcmpUnsupported)?;
    translate_by(frame, pkt, to, TupleDelta::between(&from, to))
}

/// [`translate`] with its checksum changes computed already: `delta` must be
/// [`TupleDelta::between`] the packet's tuple and `to` (a session's stored one is, for a
/// packet its lookup matched; see [`crate::session::Session::rewrite`]). The one rewrite:
/// [`translate`] comes here too.
///
/// An ICMP echo request or reply (code 0) has its identifier for both ports (as
/// [`PacketV4::tuple`] reads it): it leaves with `to.src_port` as identifier, the ICMP checksum
/// updated for it alone (ICMP has no pseudo-header). SNAT translates echoes this way.
///
/// On error nothing is written: `TtlExpired` (see [`ttl_expires`]), `IcmpUnsupported` (ICMP
/// other than echo: no ports to rewrite), `Truncated` (`pkt` does not describe this frame).
#[inline(always)]
pub fn translate_by(
    frame: &mut [u8],
    pkt: &PacketV4,
    to: &Tuple,
    delta: TupleDelta,
) -> Result<(), DropReason> {
    let kind = match pkt.transport {
        Transport::Tcp(_) => Kind::Tcp,
        Transport::Udp(_) => Kind::Udp,
        Transport::Icmp(i) if i.is_echo() && i.code == 0 => Kind::Echo,
        Transport::Icmp(_) => return Err(DropReason::IcmpUnsupported),
    };
    let truncated = DropReason::Truncated;
    let (l3, l4, end) = (pkt.ip.l3(), pkt.ip.l4(), pkt.ip.end());
    // Both headers borrowed once, each through its view; every check before any write.
    let packet = frame.get_mut(l3..end).ok_or(truncated)?;
    let (head, segment) = packet
        .split_at_mut_checked(l4.wrapping_sub(l3))
        .ok_or(truncated)?;
    let ip = Ipv4Header::new_mut(head)?;
    // Each protocol's header view first, then the IP header's rewrite (which checks the TTL):
    // every check before any write.
    let l4_delta = delta.l4.delta();
    match kind {
        Kind::Tcp => {
            let mut t = TcpHeader::new_mut(segment)?;
            rewrite_ip(ip, to, delta)?;
            let check = l4_delta.apply(t.checksum());
            t.set_ports(to.src_port, to.dst_port);
            t.set_checksum(check);
        }
        Kind::Udp => {
            let mut u = UdpHeader::new_mut(segment)?;
            rewrite_ip(ip, to, delta)?;
            let check = l4_delta.apply_udp(u.checksum());
            u.set_ports(to.src_port, to.dst_port);
            u.set_checksum(check);
        }
        Kind::Echo => {
            let h = segment
                .first_chunk_mut::<ICMP_ECHO_HEADER_LEN>()
                .ok_or(truncated)?;
            rewrite_ip(ip, to, delta)?;
            // The identifier changes; the addresses are not covered by the ICMP checksum.
            use super::icmp::field::{CHECKSUM, ID};
            let word =
                |h: &[u8; ICMP_ECHO_HEADER_LEN], at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
            let check = super::checksum::update16(word(h, CHECKSUM), word(h, ID), to.src_port);
            h[CHECKSUM..CHECKSUM + 2].copy_from_slice(&check.to_be_bytes());
            h[ID..ID + 2].copy_from_slice(&to.src_port.to_be_bytes());
        }
    }
    Ok(())
}

/// The IP header's part of [`translate_by`]: `TtlExpired` (nothing written), else both
/// addresses, the TTL minus one and the checksum.
#[inline(always)]
fn rewrite_ip(
    mut ip: Ipv4Header<&mut [u8; super::ipv4::IPV4_MIN_HEADER_LEN]>,
    to: &Tuple,
    delta: TupleDelta,
) -> Result<(), DropReason> {
    let ttl = ip.ttl();
    if ttl_expires(ttl) {
        return Err(DropReason::TtlExpired);
    }
    let mut ip_delta = delta.addresses.delta();
    // The TTL/protocol word `m` becomes `m - 0x100`: `~m + m'` is 0xFEFF whatever `m`, as
    // for 0x0100 → 0.
    ip_delta.replace16(0x0100, 0);
    let ip_check = ip_delta.apply(ip.checksum());
    ip.set_src(to.src_ip);
    ip.set_dst(to.dst_ip);
    ip.set_ttl(ttl - 1);
    ip.set_checksum(ip_check);
    Ok(())
}

/// The fixed part of an ICMP echo header: type, code, checksum, identifier, sequence.
const ICMP_ECHO_HEADER_LEN: usize = 8;

#[derive(Clone, Copy)]
enum Kind {
    Tcp,
    Udp,
    Echo,
}
