//! IPv4 header validation (after an untagged Ethernet header).

use std::net::Ipv4Addr;

use super::bytes;
use super::ether::{self, ETHERTYPE_IPV4, ETH_HEADER_LEN};
use crate::verdict::DropReason;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// Length of an IPv4 header without options.
pub const IPV4_MIN_HEADER_LEN: usize = 20;

// Field offsets inside the IPv4 header.
pub(crate) const TTL: usize = 8;
pub(crate) const PROTO: usize = 9;
pub(crate) const CHECKSUM: usize = 10;
pub(crate) const SRC: usize = 12;
pub(crate) const DST: usize = 16;

const MORE_FRAGMENTS: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1FFF;

/// Where a packet sits in a fragmented datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentKind {
    /// A whole datagram (MF clear, offset 0).
    Unfragmented,
    /// The first fragment (MF set, offset 0): carries the L4 header.
    First,
    /// A middle or last fragment (offset > 0): no L4 header.
    Later,
}

/// A validated IPv4 header and where things are in the frame.
///
/// Offsets are from the start of the frame. `end` is where the IP packet ends according to
/// its total length; bytes beyond it (Ethernet padding of short frames) are not part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet {
    /// Offset of the IPv4 header.
    pub l3: usize,
    /// Offset of the L4 header (`l3 + header_len`).
    pub l4: usize,
    /// Offset just past the IP packet (`l3 + total_len`).
    pub end: usize,
    /// IHL in bytes (20..=60).
    pub header_len: usize,
    pub total_len: u16,
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub frag: FragmentKind,
}

impl Ipv4Packet {
    /// True when the header carries options (IHL > 5).
    pub fn has_options(&self) -> bool {
        self.header_len > IPV4_MIN_HEADER_LEN
    }

    /// True for any fragment (MF set or offset non-zero).
    pub fn is_fragment(&self) -> bool {
        self.frag != FragmentKind::Unfragmented
    }

    /// Bytes of L4 header and payload.
    pub fn l4_len(&self) -> usize {
        self.end.saturating_sub(self.l4)
    }
}

/// Validates the Ethernet and IPv4 headers of `frame`. Fragments are reported in
/// [`Ipv4Packet::frag`], not refused: the caller decides.
///
/// Errors: `Truncated` (frame shorter than the Ethernet header, 20 bytes of IPv4 header, or the
/// header length IHL announces), `UnsupportedEtherType` (anything but untagged IPv4),
/// `BadIpHeader` (version not 4, IHL < 5, total length below the header length or beyond the
/// frame).
pub fn parse_ipv4(frame: &[u8]) -> Result<Ipv4Packet, DropReason> {
    if ether::ethertype(frame)? != ETHERTYPE_IPV4 {
        return Err(DropReason::UnsupportedEtherType);
    }
    let l3 = ETH_HEADER_LEN;
    // A fixed-size copy: the constant indexes below are checked at compile time.
    let h: [u8; IPV4_MIN_HEADER_LEN] = bytes::array(frame, l3).ok_or(DropReason::Truncated)?;
    let ver_ihl = h[0];
    if ver_ihl >> 4 != 4 {
        return Err(DropReason::BadIpHeader);
    }
    let header_len = usize::from(ver_ihl & 0x0F) * 4;
    if header_len < IPV4_MIN_HEADER_LEN {
        return Err(DropReason::BadIpHeader);
    }
    let available = frame.len().saturating_sub(l3);
    if header_len > available {
        return Err(DropReason::Truncated);
    }
    let total_len = u16::from_be_bytes([h[2], h[3]]);
    if usize::from(total_len) < header_len || usize::from(total_len) > available {
        return Err(DropReason::BadIpHeader);
    }
    let flags_frag = u16::from_be_bytes([h[6], h[7]]);
    let frag = match (
        flags_frag & MORE_FRAGMENTS != 0,
        flags_frag & FRAG_OFFSET_MASK,
    ) {
        (false, 0) => FragmentKind::Unfragmented,
        (true, 0) => FragmentKind::First,
        _ => FragmentKind::Later,
    };
    Ok(Ipv4Packet {
        l3,
        l4: l3 + header_len,
        end: l3 + usize::from(total_len),
        header_len,
        total_len,
        proto: h[PROTO],
        src: Ipv4Addr::new(h[SRC], h[SRC + 1], h[SRC + 2], h[SRC + 3]),
        dst: Ipv4Addr::new(h[DST], h[DST + 1], h[DST + 2], h[DST + 3]),
        ttl: h[TTL],
        frag,
    })
}
