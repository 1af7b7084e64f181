//! UDP header: a zero-copy view of its 8 bytes.

use std::borrow::{Borrow, BorrowMut};

use super::bytes::{be16, put16};
use crate::verdict::DropReason;

pub const UDP_HEADER_LEN: usize = 8;

/// Byte offsets of the header's fields.
pub mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

type Fixed = [u8; UDP_HEADER_LEN];

/// A UDP header, read and written in place.
///
/// The checked constructor takes the datagram (up to the end of the IP packet): a length
/// field below 8 or beyond the IP payload is `BadL4Header` (like Linux; a shorter one is
/// accepted and the trailing bytes are carried along untouched).
#[derive(Debug)]
pub struct UdpHeader<T>(T);

impl<'a> UdpHeader<&'a Fixed> {
    /// The header of `datagram`: `Truncated` (under 8 bytes), `BadL4Header` (length).
    #[inline]
    pub fn new_checked(datagram: &'a [u8]) -> Result<Self, DropReason> {
        let h: &Fixed = datagram
            .get(..UDP_HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(DropReason::Truncated)?;
        let view = UdpHeader(h);
        let length = usize::from(view.length());
        if length < UDP_HEADER_LEN || length > datagram.len() {
            return Err(DropReason::BadL4Header);
        }
        Ok(view)
    }
}

impl<'a> UdpHeader<&'a mut Fixed> {
    /// The header at the start of `buf`, writable: only its 8 bytes are checked (the packet
    /// was validated by `parse` already).
    #[inline]
    pub fn new_mut(buf: &'a mut [u8]) -> Result<Self, DropReason> {
        buf.get_mut(..UDP_HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .map(UdpHeader)
            .ok_or(DropReason::Truncated)
    }
}

impl<T: Borrow<Fixed>> UdpHeader<T> {
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.0.borrow(), field::SRC_PORT)
    }
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.0.borrow(), field::DST_PORT)
    }
    /// The length field (header + payload).
    #[inline]
    pub fn length(&self) -> u16 {
        be16(self.0.borrow(), field::LENGTH)
    }
    /// 0 means the sender computed none.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.0.borrow(), field::CHECKSUM)
    }
}

impl<T: BorrowMut<Fixed>> UdpHeader<T> {
    #[inline]
    pub fn set_ports(&mut self, src: u16, dst: u16) {
        put16(self.0.borrow_mut(), field::SRC_PORT, src);
        put16(self.0.borrow_mut(), field::DST_PORT, dst);
    }
    /// Sets the length field (header + payload).
    #[inline]
    pub fn set_length(&mut self, length: u16) {
        put16(self.0.borrow_mut(), field::LENGTH, length);
    }
    #[inline]
    pub fn set_checksum(&mut self, check: u16) {
        put16(self.0.borrow_mut(), field::CHECKSUM, check);
    }
}
