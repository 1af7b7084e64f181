//! The one parser: frame bytes to everything every stage decides on, once per frame.

use super::ipv4::{parse_ipv4, FragmentKind, Ipv4Info, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};
use super::l4::{parse_l4, IcmpInfo, TcpFlags, Transport};
use super::tuple::Tuple;
use crate::verdict::DropReason;

/// A validated IPv4 TCP/UDP/ICMP packet in an Ethernet frame. Small and `Copy`: it holds
/// offsets into the frame and the fields decisions need, not the frame. Computed once per
/// frame (by the burst's first stage) and handed to every later stage: prefetch hashing,
/// session lookup, classification and the rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketV4 {
    pub ip: Ipv4Info,
    pub transport: Transport,
}

impl PacketV4 {
    /// (source port, destination port) of TCP/UDP; `None` for ICMP.
    #[inline]
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self.transport {
            Transport::Tcp(t) => Some((t.sport, t.dport)),
            Transport::Udp(u) => Some((u.sport, u.dport)),
            Transport::Icmp(_) => None,
        }
    }

    /// TCP flags; `None` for UDP and ICMP.
    #[inline]
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

    /// The five-tuple of a TCP/UDP packet or ICMP echo request/reply (the echo identifier
    /// stands for both ports). `None` for other ICMP messages: errors are matched through
    /// their embedded packet ([`super::icmp::parse_error`]).
    #[inline]
    pub fn tuple(&self) -> Option<Tuple> {
        let (sport, dport) = match self.transport {
            Transport::Tcp(t) => (t.sport, t.dport),
            Transport::Udp(u) => (u.sport, u.dport),
            Transport::Icmp(i) if i.is_echo() => (i.id, i.id),
            Transport::Icmp(_) => return None,
        };
        Some(Tuple {
            proto: self.ip.proto,
            src_ip: self.ip.src,
            src_port: sport,
            dst_ip: self.ip.dst,
            dst_port: dport,
        })
    }
}

/// Parses an Ethernet frame carrying IPv4 TCP, UDP or ICMP, without verifying checksums.
///
/// Checks, in order: Ethernet and IPv4 header ([`parse_ipv4`]: `Truncated`,
/// `UnsupportedEtherType`, `BadIpHeader`), protocol (`UnsupportedProtocol`), fragments
/// (`Fragment`: any fragment, since later ones carry no ports; use [`parse_ipv4`] to look at
/// one), then the L4 header ([`parse_l4`]: `Truncated`, `BadL4Header`, `BadTcpFlags`).
/// IP options are accepted; [`Ipv4Info::has_options`] tells the caller.
#[inline(always)]
pub fn parse(frame: &[u8]) -> Result<PacketV4, DropReason> {
    let ip = parse_ipv4(frame)?;
    if !matches!(ip.proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_ICMP) {
        return Err(DropReason::UnsupportedProtocol);
    }
    if ip.is_fragment() {
        return Err(DropReason::Fragment);
    }
    let transport = parse_l4(frame, &ip)?;
    // Known here; said so, the compiler drops computing it from the header again.
    let ip = Ipv4Info {
        frag: FragmentKind::Unfragmented,
        ..ip
    };
    Ok(PacketV4 { ip, transport })
}
