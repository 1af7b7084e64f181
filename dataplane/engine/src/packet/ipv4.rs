//! IPv4 header: a zero-copy view ([`Ipv4Header`]), and the validation of the header after an
//! untagged Ethernet header ([`parse_ipv4`] → [`Ipv4Info`]).

use std::borrow::{Borrow, BorrowMut};

use super::bytes::{be16, be32, put16, put32};
use super::ether::{EthernetHeader, ETHERTYPE_IPV4, ETH_HEADER_LEN};
use crate::verdict::DropReason;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// Length of an IPv4 header without options.
pub const IPV4_MIN_HEADER_LEN: usize = 20;

/// Byte offsets of the header's fields.
pub mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTO: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// Don't Fragment, in the flags and fragment offset word.
pub const DONT_FRAGMENT: u16 = 0x4000;
const MORE_FRAGMENTS: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1FFF;

type Fixed = [u8; IPV4_MIN_HEADER_LEN];

/// The fixed 20 bytes of an IPv4 header, read and written in place (options, when IHL
/// announces them, follow in the buffer the view was made from and are never touched).
///
/// Made by a checked constructor: version 4, IHL ≥ 5 and the whole header (IHL × 4 bytes)
/// inside the buffer; accessors then read fixed offsets ([`field`]) of a fixed-size array.
#[derive(Debug)]
pub struct Ipv4Header<T>(T);

/// Version and IHL checks shared by the constructors, on the fixed header of a buffer of
/// `available` bytes; the header length in bytes.
#[inline(always)]
fn check(h: &Fixed, available: usize) -> Result<usize, DropReason> {
    let ver_ihl = h[field::VER_IHL];
    // Nearly every packet: version 4 without options, and `h` is the whole of it.
    if ver_ihl == 0x45 {
        return Ok(IPV4_MIN_HEADER_LEN);
    }
    if ver_ihl >> 4 != 4 {
        return Err(DropReason::BadIpHeader);
    }
    let header_len = usize::from(ver_ihl & 0x0F) * 4;
    if header_len < IPV4_MIN_HEADER_LEN {
        return Err(DropReason::BadIpHeader);
    }
    if header_len > available {
        return Err(DropReason::Truncated);
    }
    Ok(header_len)
}

impl<'a> Ipv4Header<&'a Fixed> {
    /// The header at the start of `buf`: `Truncated` (fewer than 20 bytes, or fewer than IHL
    /// announces), `BadIpHeader` (version not 4, IHL < 5).
    #[inline(always)]
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, DropReason> {
        let h: &Fixed = buf
            .get(..IPV4_MIN_HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(DropReason::Truncated)?;
        check(h, buf.len())?;
        Ok(Ipv4Header(h))
    }
}

impl<'a> Ipv4Header<&'a mut Fixed> {
    /// [`Ipv4Header::new_checked`], writable.
    #[inline(always)]
    pub fn new_checked_mut(buf: &'a mut [u8]) -> Result<Self, DropReason> {
        let available = buf.len();
        let h: &mut Fixed = buf
            .get_mut(..IPV4_MIN_HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(DropReason::Truncated)?;
        check(h, available)?;
        Ok(Ipv4Header(h))
    }

    /// The fixed header at the start of `buf`, writable, without the version and IHL checks
    /// (for a header `parse` validated already): `Truncated` only when under 20 bytes.
    #[inline(always)]
    pub fn new_mut(buf: &'a mut [u8]) -> Result<Self, DropReason> {
        buf.get_mut(..IPV4_MIN_HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .map(Ipv4Header)
            .ok_or(DropReason::Truncated)
    }
}

impl<T: Borrow<Fixed>> Ipv4Header<T> {
    #[inline]
    fn bytes(&self) -> &Fixed {
        self.0.borrow()
    }
    /// IHL in bytes (20..=60).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.bytes()[field::VER_IHL] & 0x0F) * 4
    }
    /// Type of service (DSCP and ECN).
    #[inline]
    pub fn tos(&self) -> u8 {
        self.bytes()[field::TOS]
    }
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.bytes(), field::TOTAL_LEN)
    }
    /// The flags and fragment offset word.
    #[inline]
    pub fn flags_frag(&self) -> u16 {
        be16(self.bytes(), field::FLAGS_FRAG)
    }
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.bytes()[field::TTL]
    }
    #[inline]
    pub fn proto(&self) -> u8 {
        self.bytes()[field::PROTO]
    }
    /// The TTL and protocol bytes as the one 16-bit word the checksum covers.
    #[inline]
    pub fn ttl_proto(&self) -> u16 {
        be16(self.bytes(), field::TTL)
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.bytes(), field::CHECKSUM)
    }
    /// Source address, host order.
    #[inline]
    pub fn src(&self) -> u32 {
        be32(self.bytes(), field::SRC)
    }
    /// Destination address, host order.
    #[inline]
    pub fn dst(&self) -> u32 {
        be32(self.bytes(), field::DST)
    }
}

impl<T: BorrowMut<Fixed>> Ipv4Header<T> {
    #[inline]
    fn bytes_mut(&mut self) -> &mut Fixed {
        self.0.borrow_mut()
    }
    /// Version 4 and a header of `len` bytes (a multiple of 4, 20..=60).
    #[inline]
    pub fn set_version_and_header_len(&mut self, len: usize) {
        self.bytes_mut()[field::VER_IHL] = 0x40 | ((len / 4) as u8 & 0x0F);
    }
    #[inline]
    pub fn set_tos(&mut self, tos: u8) {
        self.bytes_mut()[field::TOS] = tos;
    }
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        put16(self.bytes_mut(), field::TOTAL_LEN, len);
    }
    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        put16(self.bytes_mut(), field::IDENT, ident);
    }
    /// The flags and fragment offset word.
    #[inline]
    pub fn set_flags_frag(&mut self, flags_frag: u16) {
        put16(self.bytes_mut(), field::FLAGS_FRAG, flags_frag);
    }
    #[inline]
    pub fn set_proto(&mut self, proto: u8) {
        self.bytes_mut()[field::PROTO] = proto;
    }
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.bytes_mut()[field::TTL] = ttl;
    }
    #[inline]
    pub fn set_checksum(&mut self, check: u16) {
        put16(self.bytes_mut(), field::CHECKSUM, check);
    }
    #[inline]
    pub fn set_src(&mut self, addr: u32) {
        put32(self.bytes_mut(), field::SRC, addr);
    }
    #[inline]
    pub fn set_dst(&mut self, addr: u32) {
        put32(self.bytes_mut(), field::DST, addr);
    }
}

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

impl FragmentKind {
    /// The kind of a packet with this flags/fragment-offset word.
    #[inline]
    pub fn of(flags_frag: u16) -> Self {
        match (
            flags_frag & MORE_FRAGMENTS != 0,
            flags_frag & FRAG_OFFSET_MASK,
        ) {
            (false, 0) => FragmentKind::Unfragmented,
            (true, 0) => FragmentKind::First,
            _ => FragmentKind::Later,
        }
    }
}

/// A validated IPv4 header: what the engine decides on, and where things are in the frame.
///
/// The header follows an untagged Ethernet header ([`Ipv4Info::l3`] is always 14); `l4` is
/// an offset from the start of the frame (`u16`: a frame is at most 64 KiB). Only what is
/// read from the header is stored (small, so that a burst's parses stay cheap to carry): the
/// other offsets follow from it. [`Ipv4Info::end`] is where the IP packet ends according to
/// its total length; bytes beyond it (Ethernet padding of short frames) are not part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Info {
    /// Offset of the L4 header (`l3 + header_len`).
    pub l4: u16,
    pub total_len: u16,
    pub proto: u8,
    /// Source address, host order (as [`super::Tuple`]'s).
    pub src: u32,
    /// Destination address, host order.
    pub dst: u32,
    pub ttl: u8,
    pub frag: FragmentKind,
}

impl Ipv4Info {
    /// True when the header carries options (IHL > 5).
    pub fn has_options(&self) -> bool {
        self.header_len() > IPV4_MIN_HEADER_LEN
    }

    /// True for any fragment (MF set or offset non-zero).
    pub fn is_fragment(&self) -> bool {
        self.frag != FragmentKind::Unfragmented
    }

    /// Bytes of L4 header and payload.
    pub fn l4_len(&self) -> usize {
        self.end().saturating_sub(self.l4())
    }

    /// Offset of the IPv4 header: just past the Ethernet header.
    #[inline]
    pub fn l3(&self) -> usize {
        ETH_HEADER_LEN
    }

    /// IHL in bytes (20..=60).
    #[inline]
    pub fn header_len(&self) -> usize {
        self.l4().saturating_sub(self.l3())
    }

    /// [`Ipv4Info::l4`] as an index.
    #[inline]
    pub fn l4(&self) -> usize {
        usize::from(self.l4)
    }

    /// Offset just past the IP packet (`l3 + total_len`).
    #[inline]
    pub fn end(&self) -> usize {
        self.l3() + usize::from(self.total_len)
    }
}

/// Validates the Ethernet and IPv4 headers of `frame`. Fragments are reported in
/// [`Ipv4Info::frag`], not refused: the caller decides.
///
/// Errors: `Truncated` (frame shorter than the Ethernet header, 20 bytes of IPv4 header, or the
/// header length IHL announces), `UnsupportedEtherType` (anything but untagged IPv4),
/// `BadIpHeader` (version not 4, IHL < 5, total length below the header length or beyond the
/// frame).
#[inline(always)]
pub fn parse_ipv4(frame: &[u8]) -> Result<Ipv4Info, DropReason> {
    if EthernetHeader::new_checked(frame)?.ethertype() != ETHERTYPE_IPV4 {
        return Err(DropReason::UnsupportedEtherType);
    }
    let l3 = ETH_HEADER_LEN;
    let ip_bytes = frame.get(l3..).ok_or(DropReason::Truncated)?;
    let ip = Ipv4Header::new_checked(ip_bytes)?;
    let header_len = ip.header_len() as u16; // 20..=60
    let total_len = ip.total_len();
    if total_len < header_len || usize::from(total_len) > ip_bytes.len() {
        return Err(DropReason::BadIpHeader);
    }
    Ok(Ipv4Info {
        // 34..=74.
        l4: l3 as u16 + header_len,
        total_len,
        proto: ip.proto(),
        src: ip.src(),
        dst: ip.dst(),
        ttl: ip.ttl(),
        frag: FragmentKind::of(ip.flags_frag()),
    })
}
