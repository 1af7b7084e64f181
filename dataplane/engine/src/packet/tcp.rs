//! TCP header: a zero-copy view of its fixed 20 bytes.

use std::borrow::{Borrow, BorrowMut};

use super::bytes::{be16, be32, put16, put32};
use super::l4::TcpFlags;
use crate::verdict::DropReason;

pub const TCP_MIN_HEADER_LEN: usize = 20;

/// Byte offsets of the header's fields.
pub mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
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
        be16(self.bytes(), field::SRC_PORT)
    }
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.bytes(), field::DST_PORT)
    }
    #[inline]
    pub fn seq(&self) -> u32 {
        be32(self.bytes(), field::SEQ)
    }
    #[inline]
    pub fn ack(&self) -> u32 {
        be32(self.bytes(), field::ACK)
    }
    /// The window field as sent (unscaled).
    #[inline]
    pub fn window(&self) -> u16 {
        be16(self.bytes(), field::WINDOW)
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
        be16(self.bytes(), field::CHECKSUM)
    }
}

impl<T: BorrowMut<Fixed>> TcpHeader<T> {
    #[inline]
    pub fn set_ports(&mut self, src: u16, dst: u16) {
        put16(self.0.borrow_mut(), field::SRC_PORT, src);
        put16(self.0.borrow_mut(), field::DST_PORT, dst);
    }
    #[inline]
    pub fn set_seq(&mut self, seq: u32) {
        put32(self.0.borrow_mut(), field::SEQ, seq);
    }
    #[inline]
    pub fn set_ack(&mut self, ack: u32) {
        put32(self.0.borrow_mut(), field::ACK, ack);
    }
    /// Sets the data offset to `len` bytes (a multiple of 4, 20..=60), keeping the reserved
    /// bits beside it.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let h = self.0.borrow_mut();
        h[field::DATA_OFFSET] = (((len / 4) as u8) << 4) | (h[field::DATA_OFFSET] & 0x0F);
    }
    #[inline]
    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.0.borrow_mut()[field::FLAGS] = flags.0;
    }
    #[inline]
    pub fn set_window(&mut self, window: u16) {
        put16(self.0.borrow_mut(), field::WINDOW, window);
    }
    #[inline]
    pub fn set_checksum(&mut self, check: u16) {
        put16(self.0.borrow_mut(), field::CHECKSUM, check);
    }
}

/// What a TCP option list holds at one offset (RFC 9293 3.1): the one reading of option lists
/// that the SYN proxy, SACK shifting and TOA stripping all walk with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOptionAt {
    /// End of list (kind 0), or the offset is past the options.
    End,
    /// A length below 2 or running past the options: a receiver stops reading here.
    Malformed,
    /// No-operation (kind 1), one byte.
    Nop,
    /// Option `kind` of `len` bytes (kind and length bytes included).
    Option { kind: u8, len: usize },
}

/// Reads the option list `opts` at offset `at`.
#[inline]
pub fn tcp_option_at(opts: &[u8], at: usize) -> TcpOptionAt {
    match opts.get(at) {
        None | Some(0) => TcpOptionAt::End,
        Some(1) => TcpOptionAt::Nop,
        Some(&kind) => match opts.get(at + 1).map(|&l| usize::from(l)) {
            Some(len) if len >= 2 && at + len <= opts.len() => TcpOptionAt::Option { kind, len },
            _ => TcpOptionAt::Malformed,
        },
    }
}

/// The well-formed options of `opts` as `(offset, kind, len)`, up to the end of the list or
/// the first malformed one.
pub fn tcp_options(opts: &[u8]) -> impl Iterator<Item = (usize, u8, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || loop {
        match tcp_option_at(opts, at) {
            TcpOptionAt::End | TcpOptionAt::Malformed => return None,
            TcpOptionAt::Nop => at += 1,
            TcpOptionAt::Option { kind, len } => {
                let found = (at, kind, len);
                at += len;
                return Some(found);
            }
        }
    })
}

#[cfg(test)]
mod option_tests {
    use super::*;

    #[test]
    fn option_walk_stops_at_end_and_at_malformed_lengths() {
        // MSS, NOP, wscale, SACK-permitted, end, then garbage that must not be read.
        let opts = [2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 0, 5, 9];
        let found: Vec<_> = tcp_options(&opts).collect();
        assert_eq!(found, vec![(0, 2, 4), (5, 3, 3), (8, 4, 2)]);
        assert_eq!(tcp_option_at(&opts, 10), TcpOptionAt::End);
        assert_eq!(tcp_option_at(&[5, 1], 0), TcpOptionAt::Malformed);
        assert_eq!(tcp_option_at(&[5, 9, 0, 0], 0), TcpOptionAt::Malformed);
        assert_eq!(tcp_option_at(&[8], 0), TcpOptionAt::Malformed);
        assert_eq!(tcp_options(&[3, 0, 4, 2]).count(), 0);
    }
}
