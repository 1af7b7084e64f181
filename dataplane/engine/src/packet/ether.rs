//! Ethernet II header: EtherType and MAC addresses.

use super::bytes;
use crate::verdict::DropReason;

/// Length of an untagged Ethernet II header.
pub const ETH_HEADER_LEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// 802.1Q tag: not handled by the dataplane (yet).
pub const ETHERTYPE_VLAN: u16 = 0x8100;

const DST_MAC: usize = 0;
const SRC_MAC: usize = 6;
const ETHERTYPE: usize = 12;

/// The frame's EtherType, or `Truncated` when the frame is shorter than an Ethernet header.
/// Lets the caller route ARP (and later VLAN) frames before IPv4 parsing.
pub fn ethertype(frame: &[u8]) -> Result<u16, DropReason> {
    bytes::u16_at(frame, ETHERTYPE).ok_or(DropReason::Truncated)
}

pub fn dst_mac(frame: &[u8]) -> Option<[u8; 6]> {
    bytes::array(frame, DST_MAC)
}

pub fn src_mac(frame: &[u8]) -> Option<[u8; 6]> {
    bytes::array(frame, SRC_MAC)
}

/// Sets both MAC addresses (next hop and egress port). False when the frame is too short.
pub fn set_macs(frame: &mut [u8], src: [u8; 6], dst: [u8; 6]) -> bool {
    match bytes::array_mut::<12>(frame, DST_MAC) {
        Some(macs) => {
            let (d, s) = macs.split_at_mut(6);
            d.copy_from_slice(&dst);
            s.copy_from_slice(&src);
            true
        }
        None => false,
    }
}

/// Swaps source and destination MAC (answering a frame on the port it came in on).
/// False when the frame is too short.
pub fn swap_macs(frame: &mut [u8]) -> bool {
    match bytes::array_mut::<12>(frame, DST_MAC) {
        Some(macs) => {
            let (d, s) = macs.split_at_mut(6);
            d.swap_with_slice(s);
            true
        }
        None => false,
    }
}
