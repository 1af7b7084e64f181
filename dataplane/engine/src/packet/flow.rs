//! The 5-tuple sessions are keyed on.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::ipv4::IPPROTO_ICMP;
use super::l4::Transport;
use super::parse::PacketV4;

/// A flow as seen in one direction: protocol, source and destination address and port.
///
/// For ICMP echo the identifier stands in for both ports (as Linux conntrack does), so echo
/// request and reply of one ping map to reverse keys of each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

impl FlowKey {
    pub const fn new(proto: u8, src: SocketAddrV4, dst: SocketAddrV4) -> Self {
        FlowKey {
            proto,
            src: *src.ip(),
            sport: src.port(),
            dst: *dst.ip(),
            dport: dst.port(),
        }
    }

    /// The key of a parsed TCP/UDP packet or ICMP echo request/reply. `None` for other ICMP
    /// messages: errors are matched through their embedded packet ([`super::icmp::parse_error`]).
    pub fn of(pkt: &PacketV4) -> Option<Self> {
        let (sport, dport) = match pkt.transport {
            Transport::Tcp(t) => (t.sport, t.dport),
            Transport::Udp(u) => (u.sport, u.dport),
            Transport::Icmp(i) if i.is_echo() => (i.id, i.id),
            Transport::Icmp(_) => return None,
        };
        Some(FlowKey {
            proto: pkt.ip.proto,
            src: pkt.ip.src,
            sport,
            dst: pkt.ip.dst,
            dport,
        })
    }

    /// The same flow seen from the other end (what a reply carries).
    pub const fn reverse(self) -> Self {
        FlowKey {
            proto: self.proto,
            src: self.dst,
            sport: self.dport,
            dst: self.src,
            dport: self.sport,
        }
    }

    pub const fn src_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.src, self.sport)
    }

    pub const fn dst_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.dst, self.dport)
    }

    pub fn is_icmp(&self) -> bool {
        self.proto == IPPROTO_ICMP
    }
}
