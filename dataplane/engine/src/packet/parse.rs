//! The fast-path parser: one call from frame bytes to everything the session layer decides on.

use super::flow::FlowKey;
use super::ipv4::{parse_ipv4, Ipv4Packet, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};
use super::l4::{parse_l4, IcmpInfo, TcpFlags, Transport};
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
pub fn parse(frame: &[u8]) -> Result<PacketV4, DropReason> {
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
