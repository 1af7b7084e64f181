//! TCP header: a zero-copy view of its fixed 20 bytes.

use std::borrow::{Borrow, BorrowMut};

use super::l4::TcpFlags;
use crate::verdict::DropReason;

pub const TCP_MIN_HEADER_LEN: usize = 20;

/// Byte offsets of the header's fields.
pub mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const CHECKSUM: usize = 16;
}

type Fixed = [u8; TCP_MIN_HEADER_LEN];

/// The fixed 20 bytes of a TCP header, read and written in place.
///
/// The checked constructor takes the segment (header and payload, up to the end of the IP
/// packet): a data offset below 5 words or beyond the segment is `BadL4Header`.
#[derive(Debug)]
pub struct TcpHeader<T>(T);

#[inline]
fn check(segment: &[u8]) -> Result<(), DropReason> {
    let offset = *segment
        .get(TCP_MIN_HEADER_LEN - 1)
        .and(segment.get(field::DATA_OFFSET))
        .ok_or(DropReason::Truncated)?;
    let header_len = usize::from(offset >> 4) * 4;
    if header_len < TCP_MIN_HEADER_LEN || header_len > segment.len() {
        return Err(DropReason::BadL4Header);
    }
    Ok(())
}

impl<'a> TcpHeader<&'a Fixed> {
    /// The header of `segment`: `Truncated` (under 20 bytes), `BadL4Header` (data offset).
    #[inline]
    pub fn new_checked(segment: &'a [u8]) -> Result<Self, DropReason> {
        check(segment)?;
        segment
            .get(..TCP_MIN_HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .map(TcpHeader)
            .ok_or(DropReason::Truncated)
    }
}

impl<'a> TcpHeader<&'a mut Fixed> {
    /// The fixed header at the start of `buf`, writable: only its 20 bytes are checked (the
    /// packet was validated by `parse` already).
    #[inline]
    pub fn new_mut(buf: &'a mut [u8]) -> Result<Self, DropReason> {
        buf.get_mut(..TCP_MIN_HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .map(TcpHeader)
            .ok_or(DropReason::Truncated)
    }
}

impl<T: Borrow<Fixed>> TcpHeader<T> {
    #[inline]
    fn bytes(&self) -> &Fixed {
        self.0.borrow()
    }
    #[inline]
    pub fn src_port(&self) -> u16 {
        let h = self.bytes();
        u16::from_be_bytes([h[field::SRC_PORT], h[field::SRC_PORT + 1]])
    }
    #[inline]
    pub fn dst_port(&self) -> u16 {
        let h = self.bytes();
        u16::from_be_bytes([h[field::DST_PORT], h[field::DST_PORT + 1]])
    }
    /// Data offset in bytes (20..=60), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.bytes()[field::DATA_OFFSET] >> 4) * 4
    }
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.bytes()[field::FLAGS])
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        let h = self.bytes();
        u16::from_be_bytes([h[field::CHECKSUM], h[field::CHECKSUM + 1]])
    }
}

impl<T: BorrowMut<Fixed>> TcpHeader<T> {
    #[inline]
    pub fn set_ports(&mut self, src: u16, dst: u16) {
        let h = self.0.borrow_mut();
        h[field::SRC_PORT..field::SRC_PORT + 2].copy_from_slice(&src.to_be_bytes());
        h[field::DST_PORT..field::DST_PORT + 2].copy_from_slice(&dst.to_be_bytes());
    }
    #[inline]
    pub fn set_checksum(&mut self, check: u16) {
        self.0.borrow_mut()[field::CHECKSUM..field::CHECKSUM + 2]
            .copy_from_slice(&check.to_be_bytes());
    }
}
