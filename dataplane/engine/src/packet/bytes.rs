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
