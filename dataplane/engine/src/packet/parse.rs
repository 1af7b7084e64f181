//! The fast-path parser: one call from frame bytes to everything the session layer decides on.

use super::flow::FlowKey;
use std::net::Ipv4Addr;

use super::ipv4::{parse_ipv4, FragmentKind, Ipv4Packet, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};
use super::l4::{parse_l4, IcmpInfo, TcpFlags, TcpInfo, Transport};
use crate::verdict::DropReason;

/// A validated IPv4 TCP/UDP/ICMP packet in an Ethernet frame. Small and `Copy`: it holds
/// offsets into the frame, not the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketV4 {
    pub ip: Ipv4Packet,
    pub transport: Transport,
}

impl PacketV4 {
    /// (source port, destination port) of TCP/UDP; `None` for ICMP.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self.transport {
            Transport::Tcp(t) => Some((t.sport, t.dport)),
            Transport::Udp(u) => Some((u.sport, u.dport)),
            Transport::Icmp(_) => None,
        }
    }

    /// TCP flags; `None` for UDP and ICMP.
    pub fn tcp_flags(&self) -> Option<TcpFlags> {
        match self.transport {
            Transport::Tcp(t) => Some(t.flags),
            _ => None,
        }
    }

    pub fn icmp(&self) -> Option<IcmpInfo> {
        match self.transport {
            Transport::Icmp(i) => Some(i),
            _ => None,
        }
    }

    /// The session key of this packet (see [`FlowKey::of`]).
    pub fn flow_key(&self) -> Option<FlowKey> {
        FlowKey::of(self)
    }
}

/// Parses an Ethernet frame carrying IPv4 TCP, UDP or ICMP, without verifying checksums.
///
/// Checks, in order: Ethernet and IPv4 header ([`parse_ipv4`]: `Truncated`,
/// `UnsupportedEtherType`, `BadIpHeader`), protocol (`UnsupportedProtocol`), fragments
/// (`Fragment`: any fragment, since later ones carry no ports; use [`parse_ipv4`] to look at
/// one), then the L4 header ([`parse_l4`]: `Truncated`, `BadL4Header`, `BadTcpFlags`).
/// IP options are accepted; [`Ipv4Packet::has_options`] tells the caller.
#[inline]
pub fn parse(frame: &[u8]) -> Result<PacketV4, DropReason> {
    if let Some(p) = parse_plain_tcp(frame) {
        return Ok(p);
    }
    parse_general(frame)
}

/// The common case in one bounds check: untagged Ethernet, IPv4 without options, not a
/// fragment, TCP with a valid header and flags. `None` for anything else (then
/// [`parse_general`] decides, with the same result for frames this accepts).
#[inline(always)]
pub(crate) fn parse_plain_tcp(frame: &[u8]) -> Option<PacketV4> {
    const L3: usize = super::ether::ETH_HEADER_LEN;
    const L4: usize = L3 + 20;
    let h: &[u8; L4 + 20] = frame.get(..L4 + 20)?.try_into().ok()?;
    let total_len = u16::from_be_bytes([h[L3 + 2], h[L3 + 3]]);
    let flags_frag = u16::from_be_bytes([h[L3 + 6], h[L3 + 7]]);
    let tcp_len = usize::from(h[L4 + 12] >> 4) * 4;
    let flags = TcpFlags(h[L4 + 13]);
    let end = L3 + usize::from(total_len);
    if h[12] != 0x08
        || h[13] != 0x00
        || h[L3] != 0x45
        || h[L3 + 9] != IPPROTO_TCP
        || flags_frag & 0x3FFF != 0
        || end > frame.len()
        || tcp_len < 20
        || L4 + tcp_len > end
        || flags.is_invalid()
    {
        return None;
    }
    let ip4 = |at: usize| Ipv4Addr::new(h[at], h[at + 1], h[at + 2], h[at + 3]);
    Some(PacketV4 {
        ip: Ipv4Packet {
            l3: L3,
            l4: L4,
            end,
            header_len: 20,
            total_len,
            proto: IPPROTO_TCP,
            src: ip4(L3 + 12),
            dst: ip4(L3 + 16),
            ttl: h[L3 + 8],
            frag: FragmentKind::Unfragmented,
        },
        transport: Transport::Tcp(TcpInfo {
            sport: u16::from_be_bytes([h[L4], h[L4 + 1]]),
            dport: u16::from_be_bytes([h[L4 + 2], h[L4 + 3]]),
            flags,
            header_len: tcp_len,
        }),
    })
}

/// The 5-tuple (protocol, source address and port, destination address and port; host
/// order) of an untagged Ethernet/IPv4 frame without IP options carrying TCP or UDP, read
/// without validating anything else: a hint for prefetching, never a decision.
#[inline]
pub fn peek_tuple(frame: &[u8]) -> Option<(u8, u32, u16, u32, u16)> {
    const L3: usize = super::ether::ETH_HEADER_LEN;
    const L4: usize = L3 + 20;
    let h: &[u8; L4 + 4] = frame.get(..L4 + 4)?.try_into().ok()?;
    let proto = h[L3 + 9];
    if h[12] != 0x08
        || h[13] != 0x00
        || h[L3] != 0x45
        || (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
    {
        return None;
    }
    let rd32 = |at: usize| u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    Some((
        proto,
        rd32(L3 + 12),
        u16::from_be_bytes([h[L4], h[L4 + 1]]),
        rd32(L3 + 16),
        u16::from_be_bytes([h[L4 + 2], h[L4 + 3]]),
    ))
}

pub(crate) fn parse_general(frame: &[u8]) -> Result<PacketV4, DropReason> {
    let ip = parse_ipv4(frame)?;
    if !matches!(ip.proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_ICMP) {
        return Err(DropReason::UnsupportedProtocol);
    }
    if ip.is_fragment() {
        return Err(DropReason::Fragment);
    }
    let transport = parse_l4(frame, &ip)?;
    Ok(PacketV4 { ip, transport })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-check fast path accepts only what the general parser accepts, with the same
    /// result, whatever the bytes (mutations of a valid Ethernet/IPv4/TCP frame).
    #[test]
    fn fast_path_agrees_with_general_parser() {
        let mut base = vec![0u8; 14 + 20 + 20 + 6];
        base[12] = 0x08;
        base[14] = 0x45;
        base[16..18].copy_from_slice(&46u16.to_be_bytes());
        base[22] = 64;
        base[23] = 6;
        base[46] = 0x50;
        base[47] = 0x10;
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut fast = 0;
        for i in 0..50_000 {
            let mut f = base.clone();
            // A few random byte changes in the headers, sometimes a different length.
            for _ in 0..(i % 4) {
                let at = (next() % 54) as usize;
                f[at] = match next() % 4 {
                    0 => 0,
                    1 => 0xff,
                    _ => next() as u8,
                };
            }
            if i % 7 == 0 {
                f.truncate((next() % 61) as usize);
            }
            let general = parse_general(&f);
            if let Some(p) = parse_plain_tcp(&f) {
                assert_eq!(general, Ok(p), "{f:02x?}");
                fast += 1;
            }
            assert_eq!(parse(&f), general);
            if let (Ok(p), Some(t)) = (general, peek_tuple(&f)) {
                if let Some((sp, dp)) = p.ports() {
                    assert_eq!(
                        t,
                        (p.ip.proto, u32::from(p.ip.src), sp, u32::from(p.ip.dst), dp)
                    );
                }
            }
        }
        assert!(fast > 1000, "{fast}");
    }
}
