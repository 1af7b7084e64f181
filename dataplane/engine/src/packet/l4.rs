//! TCP, UDP and ICMP header validation, and the fields the session layer reads from them.

use super::bytes;
use super::ipv4::{Ipv4Packet, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};
use crate::verdict::DropReason;

pub const TCP_MIN_HEADER_LEN: usize = 20;
pub const UDP_HEADER_LEN: usize = 8;
pub const ICMP_HEADER_LEN: usize = 8;

// Checksum offsets inside the L4 headers.
pub(crate) const TCP_CHECKSUM: usize = 16;
pub(crate) const UDP_CHECKSUM: usize = 6;
pub(crate) const ICMP_CHECKSUM: usize = 2;

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
    pub fn is_invalid(self) -> bool {
        let core = self.0 & 0x3F;
        core == 0 || self.has(Self::SYN | Self::FIN) || self.has(Self::SYN | Self::RST)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    pub sport: u16,
    pub dport: u16,
    pub flags: TcpFlags,
    /// Data offset in bytes (20..=60), options included.
    pub header_len: usize,
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
pub fn parse_l4(frame: &[u8], ip: &Ipv4Packet) -> Result<Transport, DropReason> {
    let segment = frame.get(ip.l4..ip.end).ok_or(DropReason::Truncated)?;
    match ip.proto {
        IPPROTO_TCP => parse_tcp(segment).map(Transport::Tcp),
        IPPROTO_UDP => parse_udp(segment).map(Transport::Udp),
        IPPROTO_ICMP => parse_icmp(segment).map(Transport::Icmp),
        _ => Err(DropReason::UnsupportedProtocol),
    }
}

fn parse_tcp(segment: &[u8]) -> Result<TcpInfo, DropReason> {
    let h: [u8; TCP_MIN_HEADER_LEN] = bytes::array(segment, 0).ok_or(DropReason::Truncated)?;
    let [sp0, sp1, dp0, dp1, _, _, _, _, _, _, _, _, offset_byte, flags, ..] = h;
    let header_len = usize::from(offset_byte >> 4) * 4;
    if header_len < TCP_MIN_HEADER_LEN || header_len > segment.len() {
        return Err(DropReason::BadL4Header);
    }
    let flags = TcpFlags(flags);
    if flags.is_invalid() {
        return Err(DropReason::BadTcpFlags);
    }
    Ok(TcpInfo {
        sport: u16::from_be_bytes([sp0, sp1]),
        dport: u16::from_be_bytes([dp0, dp1]),
        flags,
        header_len,
    })
}

fn parse_udp(segment: &[u8]) -> Result<UdpInfo, DropReason> {
    let [sp0, sp1, dp0, dp1, l0, l1, c0, c1] =
        bytes::array::<UDP_HEADER_LEN>(segment, 0).ok_or(DropReason::Truncated)?;
    let length = u16::from_be_bytes([l0, l1]);
    // Like Linux: a UDP length beyond the IP payload (or below the header) is bad; a shorter
    // one is accepted and the trailing bytes are carried along untouched.
    if usize::from(length) < UDP_HEADER_LEN || usize::from(length) > segment.len() {
        return Err(DropReason::BadL4Header);
    }
    Ok(UdpInfo {
        sport: u16::from_be_bytes([sp0, sp1]),
        dport: u16::from_be_bytes([dp0, dp1]),
        length,
        checksum: u16::from_be_bytes([c0, c1]),
    })
}

fn parse_icmp(segment: &[u8]) -> Result<IcmpInfo, DropReason> {
    let [icmp_type, code, _, _, i0, i1, s0, s1] =
        bytes::array::<ICMP_HEADER_LEN>(segment, 0).ok_or(DropReason::Truncated)?;
    Ok(IcmpInfo {
        icmp_type,
        code,
        id: u16::from_be_bytes([i0, i1]),
        seq: u16::from_be_bytes([s0, s1]),
    })
}
