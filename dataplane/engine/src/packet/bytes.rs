//! Bounds-checked big-endian field access. Untrusted offsets only ever go through these, so an
//! inconsistent offset yields `None` instead of a panic.

/// The `N` bytes at `at`, if they are all inside `buf`.
#[inline]
pub(crate) fn array<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    let end = at.checked_add(N)?;
    buf.get(at..end)?.try_into().ok()
}

/// The `N` bytes at `at`, writable, if they are all inside `buf`.
#[inline]
pub(crate) fn array_mut<const N: usize>(buf: &mut [u8], at: usize) -> Option<&mut [u8; N]> {
    let end = at.checked_add(N)?;
    buf.get_mut(at..end)?.try_into().ok()
}

#[inline]
pub(crate) fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    array(buf, at).map(u16::from_be_bytes)
}

#[inline]
pub(crate) fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    array(buf, at).map(u32::from_be_bytes)
}

/// Writes `value` at `at`; returns `None` (writing nothing) when it does not fit.
#[inline]
pub(crate) fn set_u16(buf: &mut [u8], at: usize, value: u16) -> Option<()> {
    *array_mut(buf, at)? = value.to_be_bytes();
    Some(())
}

/// Writes `value` at `at`; returns `None` (writing nothing) when it does not fit.
#[inline]
pub(crate) fn set_u32(buf: &mut [u8], at: usize, value: u32) -> Option<()> {
    *array_mut(buf, at)? = value.to_be_bytes();
    Some(())
}

/// The big-endian 16-bit word at `at` of a fixed-size header (the views' accessors: `at` is a
/// `field` constant of that header, so always inside it).
#[inline(always)]
pub(crate) fn be16<const N: usize>(h: &[u8; N], at: usize) -> u16 {
    u16::from_be_bytes([h[at], h[at + 1]])
}

/// The big-endian 32-bit word at `at` of a fixed-size header.
#[inline(always)]
pub(crate) fn be32<const N: usize>(h: &[u8; N], at: usize) -> u32 {
    u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]])
}

/// Writes `value` big-endian at `at` of a fixed-size header.
#[inline(always)]
pub(crate) fn put16<const N: usize>(h: &mut [u8; N], at: usize, value: u16) {
    h[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Writes `value` big-endian at `at` of a fixed-size header.
#[inline(always)]
pub(crate) fn put32<const N: usize>(h: &mut [u8; N], at: usize, value: u32) {
    h[at..at + 4].copy_from_slice(&value.to_be_bytes());
}
