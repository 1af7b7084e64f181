//! ICMP: answering echo requests, and reading and NAT-translating error messages (RFC 5508).

use std::net::{Ipv4Addr, SocketAddrV4};

use super::bytes;
use super::checksum::Delta;
use super::ipv4::field::{CHECKSUM, DST, SRC, TTL};
use super::ipv4::{
    Ipv4Header, Ipv4Info, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPV4_MIN_HEADER_LEN,
};
use super::l4::{IcmpInfo, Transport, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_HEADER_LEN};
use super::parse::PacketV4;
use super::rewrite::ttl_expires;
use super::tcp::field::{CHECKSUM as TCP_CHECKSUM, DST_PORT, SRC_PORT};
use super::tuple::Tuple;
use super::udp::field::CHECKSUM as UDP_CHECKSUM;
use crate::verdict::DropReason;

/// Byte offsets of the ICMP header's fields.
pub mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    /// Identifier of an echo request/reply (other types use these bytes otherwise).
    pub const ID: usize = 4;
    /// Sequence number of an echo request/reply.
    pub const SEQ: usize = 6;
}

const ICMP_CHECKSUM: usize = field::CHECKSUM;
const QUOTED_L4_LEN: usize = 8;
/// Offset of the echo identifier in an ICMP echo header.
const ECHO_ID: usize = field::ID;

/// Turns an ICMP echo request addressed to us into the echo reply, in place: addresses
/// swapped, type 0, TTL set to `ttl`, checksums updated incrementally. Identifier, sequence,
/// payload and IP options stay. MACs are not touched: [`super::ether::swap_macs`] (same port)
/// or [`super::ether::set_macs`] (routed).
///
/// Errors (nothing written): `IcmpUnsupported` (not an echo request, code 0), `Truncated`
/// (`pkt` does not describe this frame).
pub fn echo_reply_in_place(frame: &mut [u8], pkt: &PacketV4, ttl: u8) -> Result<(), DropReason> {
    match pkt.transport {
        Transport::Icmp(IcmpInfo {
            icmp_type: ICMP_ECHO_REQUEST,
            code: 0,
            ..
        }) => {}
        _ => return Err(DropReason::IcmpUnsupported),
    }
    let ip = &pkt.ip;
    let truncated = DropReason::Truncated;
    if ip.end() > frame.len() || ip.l4() > ip.end() || ip.end() - ip.l4() < ICMP_HEADER_LEN {
        return Err(truncated);
    }
    let src = bytes::u32_at(frame, ip.l3() + SRC).ok_or(truncated)?;
    let dst = bytes::u32_at(frame, ip.l3() + DST).ok_or(truncated)?;
    let [old_ttl, proto] = bytes::array(frame, ip.l3() + TTL).ok_or(truncated)?;
    let ip_check = bytes::u16_at(frame, ip.l3() + CHECKSUM).ok_or(truncated)?;
    let [old_type, code] = bytes::array(frame, ip.l4()).ok_or(truncated)?;
    let icmp_check = bytes::u16_at(frame, ip.l4() + ICMP_CHECKSUM).ok_or(truncated)?;

    // Swapping the addresses leaves the header sum as it was; only the TTL word changes.
    let mut ip_delta = Delta::new();
    ip_delta.replace16(
        u16::from_be_bytes([old_ttl, proto]),
        u16::from_be_bytes([ttl, proto]),
    );
    let mut icmp_delta = Delta::new();
    icmp_delta.replace16(
        u16::from_be_bytes([old_type, code]),
        u16::from_be_bytes([ICMP_ECHO_REPLY, code]),
    );
    let mut new_icmp_check = icmp_delta.apply(icmp_check);

    bytes::set_u32(frame, ip.l3() + SRC, dst).ok_or(truncated)?;
    bytes::set_u32(frame, ip.l3() + DST, src).ok_or(truncated)?;
    *bytes::array_mut::<1>(frame, ip.l3() + TTL).ok_or(truncated)? = [ttl];
    bytes::set_u16(frame, ip.l3() + CHECKSUM, ip_delta.apply(ip_check)).ok_or(truncated)?;
    *bytes::array_mut::<1>(frame, ip.l4()).ok_or(truncated)? = [ICMP_ECHO_REPLY];
    // RFC 1624's corner: end-around-carry arithmetic never yields +0, so an update whose data
    // sum is zero gives checksum 0x0000 where a full computation gives 0xFFFF. Only a reply
    // with code, id, seq and payload all zero sums to zero; then 0xFFFF is the right value.
    if new_icmp_check == 0 && icmp_message_is_zero(frame, ip) {
        new_icmp_check = 0xFFFF;
    }
    bytes::set_u16(frame, ip.l4() + ICMP_CHECKSUM, new_icmp_check).ok_or(truncated)?;
    Ok(())
}

/// True when the ICMP message, its checksum field aside, is all zero bytes.
fn icmp_message_is_zero(frame: &[u8], ip: &Ipv4Info) -> bool {
    let message = frame.get(ip.l4()..ip.end()).unwrap_or_default();
    message
        .iter()
        .enumerate()
        .all(|(i, &b)| b == 0 || i == ICMP_CHECKSUM || i == ICMP_CHECKSUM + 1)
}

/// The packet quoted inside an ICMP error: its IPv4 header and the first 8 bytes of its L4
/// header. Offsets are from the start of the frame.
///
/// The quoted packet travelled the opposite way to the error: [`EmbeddedV4::tuple`] is the
/// key of the quoted packet, and its `reverse()` is the key a packet of that flow would carry
/// arriving the way the error did, i.e. the key to look the session up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedV4 {
    /// Offset of the quoted IPv4 header.
    pub l3: usize,
    /// Offset of the quoted L4 header.
    pub l4: usize,
    pub header_len: usize,
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// TCP/UDP ports; for a quoted ICMP echo, the identifier (both).
    pub sport: u16,
    pub dport: u16,
    /// Bytes of the quoted L4 header present (at least 8; up to the end of the outer packet).
    pub l4_quoted: usize,
}

impl EmbeddedV4 {
    /// The flow key of the quoted packet, as it was sent.
    pub fn tuple(&self) -> Tuple {
        Tuple::new(
            self.proto,
            SocketAddrV4::new(self.src, self.sport),
            SocketAddrV4::new(self.dst, self.dport),
        )
    }
}

/// An ICMP error message (destination unreachable, time exceeded, parameter problem) and the
/// packet it quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpError {
    pub outer: Ipv4Info,
    pub icmp: IcmpInfo,
    pub embedded: EmbeddedV4,
}

/// Reads the ICMP error in `pkt` and the packet it quotes, with every offset checked against
/// the outer packet's total length.
///
/// Errors: `IcmpUnsupported` (not an error type this layer translates), `IcmpNoSession` (the
/// quote is cut short, is not IPv4, is a non-first fragment, or is not TCP, UDP or ICMP echo:
/// nothing to match a session with).
pub fn parse_error(frame: &[u8], pkt: &PacketV4) -> Result<IcmpError, DropReason> {
    let icmp = match pkt.transport {
        Transport::Icmp(icmp) if icmp.is_error() => icmp,
        _ => return Err(DropReason::IcmpUnsupported),
    };
    let no_session = DropReason::IcmpNoSession;
    let outer = pkt.ip;
    // Everything quoted lies in the ICMP body, which ends where the outer packet ends.
    let l3 = outer.l4().checked_add(ICMP_HEADER_LEN).ok_or(no_session)?;
    let quote = frame.get(l3..outer.end()).ok_or(no_session)?;

    let quoted = Ipv4Header::new_checked(quote).map_err(|_| no_session)?;
    let header_len = quoted.header_len();
    if usize::from(quoted.total_len()) < header_len || quoted.flags_frag() & 0x1FFF != 0 {
        return Err(no_session);
    }
    let proto = quoted.proto();
    let l4_bytes = quote.get(header_len..).ok_or(no_session)?;
    let q: [u8; QUOTED_L4_LEN] = bytes::array(l4_bytes, 0).ok_or(no_session)?;
    let word = |at: usize| u16::from_be_bytes([q[at], q[at + 1]]);
    let (sport, dport) = match proto {
        IPPROTO_TCP | IPPROTO_UDP => (word(SRC_PORT), word(DST_PORT)),
        IPPROTO_ICMP
            if q[field::TYPE] == ICMP_ECHO_REQUEST || q[field::TYPE] == ICMP_ECHO_REPLY =>
        {
            let id = word(field::ID);
            (id, id)
        }
        _ => return Err(no_session),
    };
    Ok(IcmpError {
        outer,
        icmp,
        embedded: EmbeddedV4 {
            l3,
            l4: l3 + header_len,
            header_len,
            proto,
            src: Ipv4Addr::from(quoted.src()),
            dst: Ipv4Addr::from(quoted.dst()),
            sport,
            dport,
            l4_quoted: l4_bytes.len(),
        },
    })
}

/// NAT-translates an ICMP error in place (RFC 5508 §4): the outer header goes `outer_src` →
/// `outer_dst` with TTL minus one; the quoted packet becomes `quoted_src` → `quoted_dst`
/// (addresses and ports; for a quoted echo the identifier becomes `quoted_src`'s port).
///
/// Checksums, all incremental: outer IP header; quoted IP header; the quoted L4 checksum when
/// it is inside the quote (UDP's always is and is left alone when 0; TCP's only when 18+ bytes
/// of TCP are quoted; an echo's always is); and the ICMP checksum, which covers every quoted
/// byte changed. The rest of the message (e.g. the next-hop MTU of fragmentation needed) stays.
///
/// Errors (nothing written): `TtlExpired` (see [`ttl_expires`]), `Truncated` (`err` does not
/// describe this frame).
pub fn translate_error(
    frame: &mut [u8],
    err: &IcmpError,
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
    quoted_src: SocketAddrV4,
    quoted_dst: SocketAddrV4,
) -> Result<(), DropReason> {
    let truncated = DropReason::Truncated;
    let (outer, inner) = (&err.outer, &err.embedded);
    // Bounds: every word touched lies inside the outer IP packet, which lies inside the frame.
    // Checked up front so that nothing is written on error and the sums below cannot overflow.
    if outer.end() > frame.len()
        || outer.l3() > outer.l4()
        || outer.l4() > inner.l3
        || inner.l3 > inner.l4
        || inner.l4 > outer.end()
        || outer.end() - inner.l4 < QUOTED_L4_LEN
        || inner.l4 - inner.l3 < IPV4_MIN_HEADER_LEN
    {
        return Err(truncated);
    }
    let quoted_l4_check = match inner.proto {
        IPPROTO_UDP => Some(UDP_CHECKSUM),
        IPPROTO_TCP if outer.end() - inner.l4 >= TCP_CHECKSUM + 2 => Some(TCP_CHECKSUM),
        IPPROTO_ICMP => Some(ICMP_CHECKSUM),
        _ => None,
    };

    // Old values, all read before anything is written.
    let o_src = bytes::u32_at(frame, outer.l3() + SRC).ok_or(truncated)?;
    let o_dst = bytes::u32_at(frame, outer.l3() + DST).ok_or(truncated)?;
    let [o_ttl, o_proto] = bytes::array(frame, outer.l3() + TTL).ok_or(truncated)?;
    let o_check = bytes::u16_at(frame, outer.l3() + CHECKSUM).ok_or(truncated)?;
    let icmp_check = bytes::u16_at(frame, outer.l4() + ICMP_CHECKSUM).ok_or(truncated)?;
    let i_src = bytes::u32_at(frame, inner.l3 + SRC).ok_or(truncated)?;
    let i_dst = bytes::u32_at(frame, inner.l3 + DST).ok_or(truncated)?;
    let i_check = bytes::u16_at(frame, inner.l3 + CHECKSUM).ok_or(truncated)?;
    let i_ports = bytes::u32_at(frame, inner.l4 + SRC_PORT).ok_or(truncated)?;
    let i_echo_id = bytes::u16_at(frame, inner.l4 + ECHO_ID).ok_or(truncated)?;
    let i_l4_check = match quoted_l4_check {
        Some(at) => Some(bytes::u16_at(frame, inner.l4 + at).ok_or(truncated)?),
        None => None,
    };
    if ttl_expires(o_ttl) {
        return Err(DropReason::TtlExpired);
    }

    // Outer IP header: addresses and TTL. (ICMP has no pseudo-header.)
    let (n_src, n_dst) = (u32::from(outer_src), u32::from(outer_dst));
    let mut outer_delta = Delta::new();
    outer_delta.replace32(o_src, n_src);
    outer_delta.replace32(o_dst, n_dst);
    outer_delta.replace16(
        u16::from_be_bytes([o_ttl, o_proto]),
        u16::from_be_bytes([o_ttl - 1, o_proto]),
    );

    // Quoted IP header: addresses. Every changed quoted word also changes the ICMP checksum.
    let (ni_src, ni_dst) = (u32::from(*quoted_src.ip()), u32::from(*quoted_dst.ip()));
    let mut inner_addrs = Delta::new();
    inner_addrs.replace32(i_src, ni_src);
    inner_addrs.replace32(i_dst, ni_dst);
    let ni_check = inner_addrs.apply(i_check);
    let mut icmp_delta = inner_addrs;
    icmp_delta.replace16(i_check, ni_check);

    // Quoted L4: ports (or echo id), then its own checksum if quoted.
    let mut l4_words = Delta::new();
    let (ni_ports, ni_echo_id) = if inner.proto == IPPROTO_ICMP {
        l4_words.replace16(i_echo_id, quoted_src.port());
        (i_ports, quoted_src.port())
    } else {
        let ports = u32::from(quoted_src.port()) << 16 | u32::from(quoted_dst.port());
        l4_words.replace32(i_ports, ports);
        (ports, i_echo_id)
    };
    icmp_delta.merge(l4_words);
    let ni_l4_check = i_l4_check.map(|check| {
        let new = match inner.proto {
            // An echo checksum has no pseudo-header.
            IPPROTO_ICMP => l4_words.apply(check),
            proto => {
                let mut delta = inner_addrs;
                delta.merge(l4_words);
                if proto == IPPROTO_UDP {
                    delta.apply_udp(check)
                } else {
                    delta.apply(check)
                }
            }
        };
        icmp_delta.replace16(check, new);
        new
    });

    bytes::set_u32(frame, outer.l3() + SRC, n_src).ok_or(truncated)?;
    bytes::set_u32(frame, outer.l3() + DST, n_dst).ok_or(truncated)?;
    *bytes::array_mut::<1>(frame, outer.l3() + TTL).ok_or(truncated)? = [o_ttl - 1];
    bytes::set_u16(frame, outer.l3() + CHECKSUM, outer_delta.apply(o_check)).ok_or(truncated)?;
    bytes::set_u32(frame, inner.l3 + SRC, ni_src).ok_or(truncated)?;
    bytes::set_u32(frame, inner.l3 + DST, ni_dst).ok_or(truncated)?;
    bytes::set_u16(frame, inner.l3 + CHECKSUM, ni_check).ok_or(truncated)?;
    bytes::set_u32(frame, inner.l4 + SRC_PORT, ni_ports).ok_or(truncated)?;
    bytes::set_u16(frame, inner.l4 + ECHO_ID, ni_echo_id).ok_or(truncated)?;
    if let (Some(at), Some(check)) = (quoted_l4_check, ni_l4_check) {
        bytes::set_u16(frame, inner.l4 + at, check).ok_or(truncated)?;
    }
    // The quoted IP header's version byte is never zero, so RFC 1624's -0 corner cannot arise.
    bytes::set_u16(
        frame,
        outer.l4() + ICMP_CHECKSUM,
        icmp_delta.apply(icmp_check),
    )
    .ok_or(truncated)?;
    Ok(())
}

/// ICMP type "destination unreachable" and its code "fragmentation needed and DF set".
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_FRAG_NEEDED: u8 = 4;

/// Turns the frame holding `pkt` into ICMP "fragmentation needed" (next-hop MTU `mtu`) from
/// `src` to `pkt`'s sender, quoting its IP header and first 8 bytes of payload (RFC 792/1191).
/// The Ethernet header stays (set its MACs after). Returns the new frame length (the caller
/// sets it). Errors (nothing written): `Truncated`.
pub fn frag_needed_in_place(
    frame: &mut [u8],
    pkt: &PacketV4,
    src: u32,
    mtu: u16,
    ttl: u8,
    ip_id: u16,
) -> Result<usize, DropReason> {
    let ip = &pkt.ip;
    let quoted_len = (ip.header_len() + QUOTED_L4_LEN).min(ip.end() - ip.l3());
    let mut quoted = [0u8; 60 + QUOTED_L4_LEN];
    let q = quoted.get_mut(..quoted_len).ok_or(DropReason::Truncated)?;
    q.copy_from_slice(
        frame
            .get(ip.l3()..ip.l3() + quoted_len)
            .ok_or(DropReason::Truncated)?,
    );
    let total = IPV4_MIN_HEADER_LEN + ICMP_HEADER_LEN + quoted_len;
    let out = frame
        .get_mut(ip.l3()..ip.l3() + total)
        .ok_or(DropReason::Truncated)?;
    let dst = ip.src;
    let (hdr, rest) = out.split_at_mut(IPV4_MIN_HEADER_LEN);
    hdr.copy_from_slice(&[
        0x45,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        ttl,
        IPPROTO_ICMP,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    hdr[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    hdr[4..6].copy_from_slice(&ip_id.to_be_bytes());
    hdr[12..16].copy_from_slice(&src.to_be_bytes());
    hdr[16..20].copy_from_slice(&dst.to_be_bytes());
    let check = super::checksum::checksum(hdr, 0);
    hdr[10..12].copy_from_slice(&check.to_be_bytes());
    let (icmp, body) = rest.split_at_mut(ICMP_HEADER_LEN);
    icmp.copy_from_slice(&[ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, 0, 0, 0, 0, 0, 0]);
    icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
    body.copy_from_slice(q);
    let check = super::checksum::checksum(rest, 0);
    rest[2..4].copy_from_slice(&check.to_be_bytes());
    Ok(ip.l3() + total)
}
