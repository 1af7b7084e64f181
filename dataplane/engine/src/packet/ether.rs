//! Ethernet II header: a zero-copy view ([`EthernetHeader`]) and the EtherTypes fnat knows.

use std::borrow::{Borrow, BorrowMut};

use super::bytes::{be16, put16};
use crate::verdict::DropReason;

/// Length of an untagged Ethernet II header.
pub const ETH_HEADER_LEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// 802.1Q tag: not handled by the dataplane (yet).
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// IPv6: not handled by the dataplane yet (see docs/packet-path.md for where it goes).
pub const ETHERTYPE_IPV6: u16 = 0x86DD;

/// Byte offsets of the header's fields.
pub mod field {
    use std::ops::Range;
    pub const DST_MAC: Range<usize> = 0..6;
    pub const SRC_MAC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
}

/// The 14-byte Ethernet header at the start of a frame, read and written in place.
#[derive(Debug)]
pub struct EthernetHeader<T>(T);

impl<'a> EthernetHeader<&'a [u8; ETH_HEADER_LEN]> {
    /// The header of `frame`, or `Truncated` when the frame is shorter than one.
    #[inline]
    pub fn new_checked(frame: &'a [u8]) -> Result<Self, DropReason> {
        frame
            .get(..ETH_HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .map(EthernetHeader)
            .ok_or(DropReason::Truncated)
    }
}

impl<'a> EthernetHeader<&'a mut [u8; ETH_HEADER_LEN]> {
    /// The header of `frame`, writable, or `Truncated` when the frame is shorter than one.
    #[inline]
    pub fn new_checked_mut(frame: &'a mut [u8]) -> Result<Self, DropReason> {
        frame
            .get_mut(..ETH_HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .map(EthernetHeader)
            .ok_or(DropReason::Truncated)
    }
}

impl<T: Borrow<[u8; ETH_HEADER_LEN]>> EthernetHeader<T> {
    #[inline]
    fn bytes(&self) -> &[u8; ETH_HEADER_LEN] {
        self.0.borrow()
    }

    #[inline]
    pub fn dst_mac(&self) -> [u8; 6] {
        mac(self.bytes(), field::DST_MAC.start)
    }

    /// True when the frame is addressed to `mac` (compared in place, nothing copied).
    #[inline]
    pub fn is_to(&self, mac: &[u8; 6]) -> bool {
        self.bytes()[field::DST_MAC] == mac[..]
    }

    #[inline]
    pub fn src_mac(&self) -> [u8; 6] {
        mac(self.bytes(), field::SRC_MAC.start)
    }

    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.bytes(), field::ETHERTYPE)
    }
}

impl<T: BorrowMut<[u8; ETH_HEADER_LEN]>> EthernetHeader<T> {
    /// Sets both MAC addresses (next hop and egress port).
    #[inline]
    pub fn set_macs(&mut self, src: [u8; 6], dst: [u8; 6]) {
        let h = self.0.borrow_mut();
        h[field::DST_MAC].copy_from_slice(&dst);
        h[field::SRC_MAC].copy_from_slice(&src);
    }

    /// Sets the destination MAC (a next hop that resolved).
    #[inline]
    pub fn set_dst_mac(&mut self, dst: [u8; 6]) {
        self.0.borrow_mut()[field::DST_MAC].copy_from_slice(&dst);
    }

    #[inline]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        put16(self.0.borrow_mut(), field::ETHERTYPE, ethertype);
    }

    /// Swaps source and destination MAC (answering on the port a frame came in on).
    #[inline]
    pub fn swap_macs(&mut self) {
        let (dst, src) = (self.dst_mac(), self.src_mac());
        self.set_macs(dst, src);
    }
}

#[inline]
fn mac(h: &[u8; ETH_HEADER_LEN], at: usize) -> [u8; 6] {
    [h[at], h[at + 1], h[at + 2], h[at + 3], h[at + 4], h[at + 5]]
}

/// The frame's EtherType, or `Truncated` when the frame is shorter than an Ethernet header.
/// Lets the caller route ARP (and later VLAN) frames before IPv4 parsing.
#[inline]
pub fn ethertype(frame: &[u8]) -> Result<u16, DropReason> {
    EthernetHeader::new_checked(frame).map(|h| h.ethertype())
}

pub fn dst_mac(frame: &[u8]) -> Option<[u8; 6]> {
    EthernetHeader::new_checked(frame).ok().map(|h| h.dst_mac())
}

pub fn src_mac(frame: &[u8]) -> Option<[u8; 6]> {
    EthernetHeader::new_checked(frame).ok().map(|h| h.src_mac())
}

/// Sets both MAC addresses (next hop and egress port). False when the frame is too short.
pub fn set_macs(frame: &mut [u8], src: [u8; 6], dst: [u8; 6]) -> bool {
    match EthernetHeader::new_checked_mut(frame) {
        Ok(mut h) => {
            h.set_macs(src, dst);
            true
        }
        Err(_) => false,
    }
}

/// Swaps source and destination MAC (answering a frame on the port it came in on).
/// False when the frame is too short.
pub fn swap_macs(frame: &mut [u8]) -> bool {
    match EthernetHeader::new_checked_mut(frame) {
        Ok(mut h) => {
            h.swap_macs();
            true
        }
        Err(_) => false,
    }
}
