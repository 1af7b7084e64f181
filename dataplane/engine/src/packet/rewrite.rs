//! Full-NAT rewrite of a parsed TCP/UDP packet, in place.

use std::net::SocketAddrV4;

use super::bytes;
use super::checksum::Delta;
use super::ipv4::{CHECKSUM, DST, SRC, TTL};
use super::l4::{Transport, TCP_CHECKSUM, UDP_CHECKSUM};
use super::parse::PacketV4;
use crate::verdict::DropReason;

/// True when a packet with this TTL must not be forwarded (it would leave with TTL 0):
/// drop it as `TtlExpired`.
pub fn ttl_expires(ttl: u8) -> bool {
    ttl <= 1
}

/// Rewrites `pkt` (parsed from `frame`) to travel `src` → `dst`: both addresses and both ports,
/// TTL minus one, and the IP and TCP/UDP checksums updated incrementally (addresses are in the
/// L4 pseudo-header). A UDP checksum of 0 stays 0. IP options, TCP options, payload and MACs are
/// not touched; set the MACs with [`super::ether::set_macs`].
///
/// Old values are read from the frame, so the checksums stay consistent with its bytes. On
/// error nothing is written: `TtlExpired` (see [`ttl_expires`]), `IcmpUnsupported` (ICMP has no
/// ports to rewrite), `Truncated` (`pkt` does not describe this frame).
pub fn rewrite_fullnat(
    frame: &mut [u8],
    pkt: &PacketV4,
    src: SocketAddrV4,
    dst: SocketAddrV4,
) -> Result<(), DropReason> {
    let (l4_checksum_at, is_udp) = match pkt.transport {
        Transport::Tcp(_) => (TCP_CHECKSUM, false),
        Transport::Udp(_) => (UDP_CHECKSUM, true),
        Transport::Icmp(_) => return Err(DropReason::IcmpUnsupported),
    };
    let (l3, l4, end) = (pkt.ip.l3, pkt.ip.l4, pkt.ip.end);
    let truncated = DropReason::Truncated;
    // A `pkt` from `parse(frame)` always passes; this keeps offset sums below from overflowing
    // and every write inside the IP packet when handed something else.
    if end > frame.len() || l3 > l4 || l4 > end || end - l4 < l4_checksum_at + 2 {
        return Err(truncated);
    }
    let l4_checksum_at = l4 + l4_checksum_at;

    // Read (and so bounds-check) every old value before writing anything.
    let old_src = bytes::u32_at(frame, l3 + SRC).ok_or(truncated)?;
    let old_dst = bytes::u32_at(frame, l3 + DST).ok_or(truncated)?;
    let [ttl, proto] = bytes::array(frame, l3 + TTL).ok_or(truncated)?;
    let ip_check = bytes::u16_at(frame, l3 + CHECKSUM).ok_or(truncated)?;
    let old_sport = bytes::u16_at(frame, l4).ok_or(truncated)?;
    let old_dport = bytes::u16_at(frame, l4 + 2).ok_or(truncated)?;
    let l4_check = bytes::u16_at(frame, l4_checksum_at).ok_or(truncated)?;
    if ttl_expires(ttl) {
        return Err(DropReason::TtlExpired);
    }
    let (new_src, new_dst) = (u32::from(*src.ip()), u32::from(*dst.ip()));

    let mut addresses = Delta::new();
    addresses.replace32(old_src, new_src);
    addresses.replace32(old_dst, new_dst);

    let mut ip = addresses;
    ip.replace16(
        u16::from_be_bytes([ttl, proto]),
        u16::from_be_bytes([ttl - 1, proto]),
    );

    let mut l4_delta = addresses;
    l4_delta.replace16(old_sport, src.port());
    l4_delta.replace16(old_dport, dst.port());
    let new_l4_check = if is_udp {
        l4_delta.apply_udp(l4_check)
    } else {
        l4_delta.apply(l4_check)
    };

    // All offsets were read above, so these writes cannot miss; `?` keeps it panic-free anyway.
    bytes::set_u32(frame, l3 + SRC, new_src).ok_or(truncated)?;
    bytes::set_u32(frame, l3 + DST, new_dst).ok_or(truncated)?;
    *bytes::array_mut::<1>(frame, l3 + TTL).ok_or(truncated)? = [ttl - 1];
    bytes::set_u16(frame, l3 + CHECKSUM, ip.apply(ip_check)).ok_or(truncated)?;
    bytes::set_u16(frame, l4, src.port()).ok_or(truncated)?;
    bytes::set_u16(frame, l4 + 2, dst.port()).ok_or(truncated)?;
    bytes::set_u16(frame, l4_checksum_at, new_l4_check).ok_or(truncated)?;
    Ok(())
}
