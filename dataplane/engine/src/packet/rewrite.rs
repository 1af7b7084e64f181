//! Full-NAT rewrite of a parsed TCP/UDP packet, in place.

use std::net::SocketAddrV4;

use super::bytes;
use super::checksum::{fold, udp_wire, Delta};
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
#[inline(always)]
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
    if let Some(r) = rewrite_split(frame, l3, l4, l4_checksum_at, is_udp, src, dst) {
        return r;
    }
    rewrite_general(frame, l3, l4, l4_checksum_at, is_udp, src, dst)
}

/// The general path of [`rewrite_fullnat`] (offsets already checked against each other and
/// the frame): every field read through a bounds check, word-by-word checksum updates.
#[cold]
#[inline(never)]
fn rewrite_general(
    frame: &mut [u8],
    l3: usize,
    l4: usize,
    l4_checksum_at: usize,
    is_udp: bool,
    src: SocketAddrV4,
    dst: SocketAddrV4,
) -> Result<(), DropReason> {
    let truncated = DropReason::Truncated;
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

/// The common case of [`rewrite_fullnat`]: the IPv4 header (20 bytes at `l3`) lies wholly
/// before the L4 header at `l4`, so both are borrowed once, bounds-checked once, and read and
/// written through fixed-size arrays. `None` when that layout does not hold (the caller then
/// takes the general path); otherwise the same result and the same bytes as the general path.
#[inline]
fn rewrite_split(
    frame: &mut [u8],
    l3: usize,
    l4: usize,
    l4_checksum_at: usize,
    is_udp: bool,
    src: SocketAddrV4,
    dst: SocketAddrV4,
) -> Option<Result<(), DropReason>> {
    if l4 < l3.checked_add(20)? || l4 > frame.len() {
        return None;
    }
    let (head, tail) = frame.split_at_mut(l4);
    let ip: &mut [u8; 20] = head.get_mut(l3..l3 + 20)?.try_into().ok()?;
    // TCP: 18 bytes reach the checksum; UDP: 8.
    let l4h = tail.get_mut(..l4_checksum_at + 2)?;
    let ttl = ip[TTL];
    if ttl_expires(ttl) {
        return Some(Err(DropReason::TtlExpired));
    }
    let rd16 = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let old_src = u32::from_be_bytes([ip[SRC], ip[SRC + 1], ip[SRC + 2], ip[SRC + 3]]);
    let old_dst = u32::from_be_bytes([ip[DST], ip[DST + 1], ip[DST + 2], ip[DST + 3]]);
    let proto = ip[TTL + 1];
    let ip_check = rd16(ip, CHECKSUM);
    let old_sport = rd16(l4h, 0);
    let old_dport = rd16(l4h, 2);
    let l4_check = rd16(l4h, l4_checksum_at);
    let (new_src, new_dst) = (u32::from(*src.ip()), u32::from(*dst.ip()));

    // RFC 1624 eqn. 3 over all changed words at once: ~HC + Σ(~m + m'), folded once. The
    // one's-complement sum is associative, so this equals the word-by-word `Delta` updates
    // of the general path bit for bit (a fold yields 0 only for an all-zero sum).
    let hi = |v: u32| v >> 16;
    let lo = |v: u32| v & 0xFFFF;
    let not16 = |v: u32| !v & 0xFFFF;
    let addresses = not16(hi(old_src))
        + not16(lo(old_src))
        + hi(new_src)
        + lo(new_src)
        + not16(hi(old_dst))
        + not16(lo(old_dst))
        + hi(new_dst)
        + lo(new_dst);
    let ttl_proto = u32::from(u16::from_be_bytes([ttl, proto]));
    let ip_sum = u32::from(!ip_check) + addresses + not16(ttl_proto) + (ttl_proto - 0x100);
    let new_ip_check = !fold(ip_sum);
    let l4_sum = u32::from(!l4_check)
        + addresses
        + not16(u32::from(old_sport))
        + u32::from(src.port())
        + not16(u32::from(old_dport))
        + u32::from(dst.port());
    let new_l4_check = match (is_udp, l4_check) {
        (true, 0) => 0,
        (true, _) => udp_wire(!fold(l4_sum)),
        (false, _) => !fold(l4_sum),
    };

    ip[SRC..SRC + 4].copy_from_slice(&new_src.to_be_bytes());
    ip[DST..DST + 4].copy_from_slice(&new_dst.to_be_bytes());
    ip[TTL] = ttl - 1;
    ip[CHECKSUM..CHECKSUM + 2].copy_from_slice(&new_ip_check.to_be_bytes());
    l4h[0..2].copy_from_slice(&src.port().to_be_bytes());
    l4h[2..4].copy_from_slice(&dst.port().to_be_bytes());
    l4h[l4_checksum_at..l4_checksum_at + 2].copy_from_slice(&new_l4_check.to_be_bytes());
    Some(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::parse;
    use std::net::Ipv4Addr;

    /// The split path gives the same result and the same bytes as the general one, for TCP
    /// and UDP (checksum 0 included), over many random headers.
    #[test]
    fn split_path_equals_general_path() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut checked = 0;
        for i in 0..20_000u32 {
            let udp = i % 2 == 1;
            let mut f = vec![0u8; 14 + 20 + 20 + 6];
            f[12] = 0x08;
            f[14] = 0x45;
            let total = (f.len() - 14) as u16;
            f[16..18].copy_from_slice(&total.to_be_bytes());
            f[22] = (next() % 4) as u8 * 64 + (next() % 3) as u8; // TTL, 0..=2 included
            f[23] = if udp { 17 } else { 6 };
            for b in f[24..].iter_mut() {
                *b = next() as u8;
            }
            if udp {
                f[38..40].copy_from_slice(&26u16.to_be_bytes());
                if i % 6 == 1 {
                    f[40..42].copy_from_slice(&[0, 0]);
                }
            } else {
                f[46] = 0x50;
                f[47] = 0x10;
            }
            let Ok(pkt) = parse(&f) else {
                continue;
            };
            let src = SocketAddrV4::new(Ipv4Addr::from(next() as u32), next() as u16);
            let dst = SocketAddrV4::new(Ipv4Addr::from(next() as u32), next() as u16);
            let (csum, is_udp) = if udp {
                (UDP_CHECKSUM, true)
            } else {
                (TCP_CHECKSUM, false)
            };
            let (mut a, mut b) = (f.clone(), f.clone());
            let ra = rewrite_split(&mut a, 14, 34, csum, is_udp, src, dst).unwrap();
            let rb = rewrite_general(&mut b, 14, 34, csum, is_udp, src, dst);
            assert_eq!(ra, rb);
            assert_eq!(a, b);
            let mut c = f.clone();
            assert_eq!(rewrite_fullnat(&mut c, &pkt, src, dst), rb);
            assert_eq!(c, b);
            checked += 1;
        }
        assert!(checked > 10_000);
    }
}
