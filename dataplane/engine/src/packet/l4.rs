//! TCP, UDP and ICMP header validation, and the fields the session layer reads from them.

use super::bytes;
use super::icmp::field as icmp_field;
use super::ipv4::{Ipv4Info, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};
use super::tcp::TcpHeader;
use super::udp::UdpHeader;
use crate::verdict::DropReason;

pub use super::tcp::TCP_MIN_HEADER_LEN;
pub use super::udp::UDP_HEADER_LEN;
pub const ICMP_HEADER_LEN: usize = 8;

/// TCP flags (the low byte of the flags field: CWR ECE URG ACK PSH RST SYN FIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    /// True when every flag in `mask` is set.
    pub fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }

    pub fn syn(self) -> bool {
        self.has(Self::SYN)
    }
    pub fn ack(self) -> bool {
        self.has(Self::ACK)
    }
    pub fn fin(self) -> bool {
        self.has(Self::FIN)
    }
    pub fn rst(self) -> bool {
        self.has(Self::RST)
    }

    /// Combinations no real stack sends (scans, fingerprinting): SYN+FIN, SYN+RST, or none of
    /// FIN SYN RST PSH ACK URG (a "null" segment; ECE/CWR alone count as none).
    #[inline]
    pub fn is_invalid(self) -> bool {
        // One bit per value of the six core flags, set where that combination is invalid:
        // a shift and a test on every TCP segment parsed, instead of three comparisons.
        const INVALID: u64 = {
            let mut set = 0u64;
            let mut core = 0u8;
            while core < 64 {
                let syn_fin = TcpFlags::SYN | TcpFlags::FIN;
                let syn_rst = TcpFlags::SYN | TcpFlags::RST;
                if core == 0 || core & syn_fin == syn_fin || core & syn_rst == syn_rst {
                    set |= 1 << core;
                }
                core += 1;
            }
            set
        };
        INVALID >> (self.0 & 0x3F) & 1 != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    pub sport: u16,
    pub dport: u16,
    pub flags: TcpFlags,
    /// Data offset in bytes (20..=60), options included.
    pub header_len: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpInfo {
    pub sport: u16,
    pub dport: u16,
    /// The UDP length field (header + payload), at most the IP payload length.
    pub length: u16,
    /// 0 means the sender computed none.
    pub checksum: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpInfo {
    pub icmp_type: u8,
    pub code: u8,
    /// Bytes 4..6: the identifier for echo request/reply (other types use them otherwise).
    pub id: u16,
    /// Bytes 6..8: the sequence number for echo (next-hop MTU for fragmentation needed).
    pub seq: u16,
}

pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_DEST_UNREACHABLE: u8 = 3;
pub const ICMP_ECHO_REQUEST: u8 = 8;
pub const ICMP_TIME_EXCEEDED: u8 = 11;
pub const ICMP_PARAMETER_PROBLEM: u8 = 12;
/// Destination-unreachable code: fragmentation needed and DF set (path MTU discovery).
pub const ICMP_CODE_FRAG_NEEDED: u8 = 4;

impl IcmpInfo {
    pub fn is_echo(&self) -> bool {
        self.icmp_type == ICMP_ECHO_REQUEST || self.icmp_type == ICMP_ECHO_REPLY
    }

    /// Error messages that quote the packet that caused them (and so can be NAT-translated).
    pub fn is_error(&self) -> bool {
        matches!(
            self.icmp_type,
            ICMP_DEST_UNREACHABLE | ICMP_TIME_EXCEEDED | ICMP_PARAMETER_PROBLEM
        )
    }
}

/// The transport header of a parsed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp(TcpInfo),
    Udp(UdpInfo),
    Icmp(IcmpInfo),
}

/// Validates the L4 header of an unfragmented packet (or first fragment) `ip` in `frame`.
///
/// Only bytes in `ip.l4..ip.end` are L4; Ethernet padding is ignored. Errors: `Truncated`
/// (fewer bytes than the fixed header), `BadL4Header` (TCP data offset < 5 or past the
/// segment; UDP length < 8 or past the IP payload), `BadTcpFlags` (see
/// [`TcpFlags::is_invalid`]), `UnsupportedProtocol` (not TCP, UDP or ICMP).
#[inline(always)]
pub fn parse_l4(frame: &[u8], ip: &Ipv4Info) -> Result<Transport, DropReason> {
    let segment = frame.get(ip.l4()..ip.end()).ok_or(DropReason::Truncated)?;
    match ip.proto {
        IPPROTO_TCP => parse_tcp(segment).map(Transport::Tcp),
        IPPROTO_UDP => parse_udp(segment).map(Transport::Udp),
        IPPROTO_ICMP => parse_icmp(segment).map(Transport::Icmp),
        _ => Err(DropReason::UnsupportedProtocol),
    }
}

#[inline(always)]
fn parse_tcp(segment: &[u8]) -> Result<TcpInfo, DropReason> {
    let h = TcpHeader::new_checked(segment)?;
    let flags = h.flags();
    if flags.is_invalid() {
        return Err(DropReason::BadTcpFlags);
    }
    Ok(TcpInfo {
        sport: h.src_port(),
        dport: h.dst_port(),
        flags,
        header_len: h.header_len() as u8, // 20..=60
    })
}

#[inline(always)]
fn parse_udp(segment: &[u8]) -> Result<UdpInfo, DropReason> {
    let h = UdpHeader::new_checked(segment)?;
    Ok(UdpInfo {
        sport: h.src_port(),
        dport: h.dst_port(),
        length: h.length(),
        checksum: h.checksum(),
    })
}

fn parse_icmp(segment: &[u8]) -> Result<IcmpInfo, DropReason> {
    let h: [u8; ICMP_HEADER_LEN] = bytes::array(segment, 0).ok_or(DropReason::Truncated)?;
    let word = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    Ok(IcmpInfo {
        icmp_type: h[icmp_field::TYPE],
        code: h[icmp_field::CODE],
        id: word(icmp_field::ID),
        seq: word(icmp_field::SEQ),
    })
}
