//! ARP for IPv4 over Ethernet (RFC 826): parse a request or reply, turn a request into its
//! reply in place, and build requests and gratuitous announcements into a caller's buffer.

use crate::packet::ether::{EthernetHeader, ETHERTYPE_ARP, ETH_HEADER_LEN};
use crate::packet::ETHERTYPE_IPV4;
use crate::verdict::DropReason;

/// Length of an ARP packet for IPv4 over Ethernet.
pub const ARP_LEN: usize = 28;
/// Ethernet minimum frame length without FCS: ARP frames are padded to it.
pub const MIN_FRAME: usize = 60;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;
pub const BROADCAST: [u8; 6] = [0xff; 6];

const HTYPE_ETHERNET: u16 = 1;
/// Hardware and protocol address lengths of IPv4 over Ethernet.
const HLEN_ETHERNET: u8 = 6;
const PLEN_IPV4: u8 = 4;

/// Byte offsets of the ARP packet's fields (from the end of the Ethernet header).
mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OP: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
}

/// The fields of an ARP packet the dataplane acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    /// Sender hardware and protocol address.
    pub sha: [u8; 6],
    pub spa: u32,
    /// Target hardware and protocol address.
    pub tha: [u8; 6],
    pub tpa: u32,
}

impl Arp {
    /// An announcement (gratuitous ARP): the sender claims its own address.
    pub fn is_gratuitous(&self) -> bool {
        self.spa == self.tpa
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

#[inline]
fn mac(b: &[u8], at: usize) -> Option<[u8; 6]> {
    b.get(at..at + 6)?.try_into().ok()
}

/// Parses the ARP packet of an Ethernet frame whose EtherType is ARP. `Truncated` when cut
/// short, `UnsupportedEtherType` for ARP other than IPv4 over Ethernet or an unknown opcode.
pub fn parse(frame: &[u8]) -> Result<Arp, DropReason> {
    let t = DropReason::Truncated;
    let p: &[u8; ARP_LEN] = frame
        .get(ETH_HEADER_LEN..ETH_HEADER_LEN + ARP_LEN)
        .and_then(|p| p.try_into().ok())
        .ok_or(t)?;
    let bad = DropReason::UnsupportedEtherType;
    let htype = be16(p, field::HTYPE).ok_or(t)?;
    let ptype = be16(p, field::PTYPE).ok_or(t)?;
    if htype != HTYPE_ETHERNET
        || ptype != ETHERTYPE_IPV4
        || p[field::HLEN] != HLEN_ETHERNET
        || p[field::PLEN] != PLEN_IPV4
    {
        return Err(bad);
    }
    let op = be16(p, field::OP).ok_or(t)?;
    if op != OP_REQUEST && op != OP_REPLY {
        return Err(bad);
    }
    Ok(Arp {
        op,
        sha: mac(p, field::SHA).ok_or(t)?,
        spa: be32(p, field::SPA).ok_or(t)?,
        tha: mac(p, field::THA).ok_or(t)?,
        tpa: be32(p, field::TPA).ok_or(t)?,
    })
}

/// Writes Ethernet + ARP headers at the start of `buf` (at least 42 bytes).
fn write(buf: &mut [u8], eth_dst: [u8; 6], eth_src: [u8; 6], arp: &Arp) -> bool {
    if buf.len() < ETH_HEADER_LEN + ARP_LEN {
        return false;
    }
    let (eth, rest) = buf.split_at_mut(ETH_HEADER_LEN);
    let Some(p) = rest.get_mut(..ARP_LEN) else {
        return false;
    };
    let Ok(mut eth) = EthernetHeader::new_checked_mut(eth) else {
        return false;
    };
    eth.set_macs(eth_src, eth_dst);
    eth.set_ethertype(ETHERTYPE_ARP);
    p[field::HTYPE..field::HTYPE + 2].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
    p[field::PTYPE..field::PTYPE + 2].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    p[field::HLEN] = HLEN_ETHERNET;
    p[field::PLEN] = PLEN_IPV4;
    p[field::OP..field::OP + 2].copy_from_slice(&arp.op.to_be_bytes());
    p[field::SHA..field::SHA + 6].copy_from_slice(&arp.sha);
    p[field::SPA..field::SPA + 4].copy_from_slice(&arp.spa.to_be_bytes());
    p[field::THA..field::THA + 6].copy_from_slice(&arp.tha);
    p[field::TPA..field::TPA + 4].copy_from_slice(&arp.tpa.to_be_bytes());
    true
}

/// Turns the request `req` (parsed from `frame`) into the reply from `my_mac`, in place: the
/// frame goes back to the requester. The frame keeps its length (padding included).
pub fn reply_in_place(frame: &mut [u8], req: &Arp, my_mac: [u8; 6]) -> bool {
    let reply = Arp {
        op: OP_REPLY,
        sha: my_mac,
        spa: req.tpa,
        tha: req.sha,
        tpa: req.spa,
    };
    write(frame, req.sha, my_mac, &reply)
}

/// Builds a broadcast who-has request for `target` from (`my_mac`, `my_ip`) into `buf`,
/// padded to the Ethernet minimum. Returns the frame length (0 if `buf` is too small).
pub fn build_request(buf: &mut [u8], my_mac: [u8; 6], my_ip: u32, target: u32) -> usize {
    let req = Arp {
        op: OP_REQUEST,
        sha: my_mac,
        spa: my_ip,
        tha: [0; 6],
        tpa: target,
    };
    finish(buf, BROADCAST, my_mac, &req)
}

/// Builds a gratuitous ARP (a broadcast request for our own address, sender = target, as
/// Linux's `arping -U` sends) announcing that `ip` is at `my_mac`. Returns the frame length.
pub fn build_gratuitous(buf: &mut [u8], my_mac: [u8; 6], ip: u32) -> usize {
    let req = Arp {
        op: OP_REQUEST,
        sha: my_mac,
        spa: ip,
        tha: [0; 6],
        tpa: ip,
    };
    finish(buf, BROADCAST, my_mac, &req)
}

fn finish(buf: &mut [u8], dst: [u8; 6], src: [u8; 6], arp: &Arp) -> usize {
    if buf.len() < MIN_FRAME || !write(buf, dst, src, arp) {
        return 0;
    }
    buf[ETH_HEADER_LEN + ARP_LEN..MIN_FRAME].fill(0);
    MIN_FRAME
}
