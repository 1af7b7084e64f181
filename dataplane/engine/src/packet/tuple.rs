//! The one five-tuple of the engine: what a packet carries, what sessions are keyed on, what
//! schedulers hash, what the rewrite writes.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::ipv4::IPPROTO_ICMP;

/// A flow as seen in one direction: protocol, source and destination address and port
/// (addresses in host order).
///
/// For ICMP echo the identifier stands in for both ports (as Linux conntrack does), so echo
/// request and reply of one ping map to reverse tuples of each other.
///
/// A session holds two: the client's (`client → VIP`) and the real server's (`RS → LIP`);
/// a packet arriving with one leaves with the other one reversed (see
/// [`super::rewrite::translate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Tuple {
    pub proto: u8,
    pub src_ip: u32,
    pub src_port: u16,
    pub dst_ip: u32,
    pub dst_port: u16,
}

impl Tuple {
    pub fn new(proto: u8, src: SocketAddrV4, dst: SocketAddrV4) -> Self {
        Tuple {
            proto,
            src_ip: u32::from(*src.ip()),
            src_port: src.port(),
            dst_ip: u32::from(*dst.ip()),
            dst_port: dst.port(),
        }
    }

    /// The same flow seen from the other end (what a reply carries).
    #[inline]
    pub const fn reverse(self) -> Self {
        Tuple {
            proto: self.proto,
            src_ip: self.dst_ip,
            src_port: self.dst_port,
            dst_ip: self.src_ip,
            dst_port: self.src_port,
        }
    }

    pub fn src_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(self.src_ip), self.src_port)
    }

    pub fn dst_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(self.dst_ip), self.dst_port)
    }

    pub fn is_icmp(&self) -> bool {
        self.proto == IPPROTO_ICMP
    }
}
