//! Owned packet buffers, the RX timestamp dynamic field, and fixed-size bursts.

use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr::{self, NonNull};

use crate::error::{DpdkError, Result};
use crate::ffi;

/// An owned mbuf (a packet, possibly a chain of segments). Dropping it returns it to its pool.
///
/// Mbufs handed out by this crate (from [`crate::mempool::Mempool::alloc`], RX bursts and ring
/// dequeues) are not shared: this crate never clones or attaches mbufs, so `data_mut` is the
/// only writer of the bytes.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<ffi::rte_mbuf>);

// SAFETY: an owned mbuf may be freed or used from any thread (mempool put is thread-safe).
unsafe impl Send for Mbuf {}
// SAFETY: &Mbuf only reads the mbuf; no interior mutability.
unsafe impl Sync for Mbuf {}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (chain); it is freed exactly once, here.
        unsafe { ffi::fnat_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl Mbuf {
    #[inline]
    fn raw(&self) -> &ffi::rte_mbuf {
        // SAFETY: we own a valid mbuf; nothing else writes it while we hold &self.
        unsafe { self.0.as_ref() }
    }

    /// Packet bytes of the first segment (`data_len` bytes from `rte_pktmbuf_mtod`).
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's buffer (a DPDK
        // invariant of pktmbufs) and buf_addr is never null for a pktmbuf.
        unsafe {
            let p = m.buf_addr.cast::<u8>().add(m.data_off as usize);
            std::slice::from_raw_parts(p, m.data_len as usize)
        }
    }

    /// Mutable packet bytes of the first segment.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw();
        let (off, len) = (m.data_off as usize, m.data_len as usize);
        // SAFETY: as in `data`; &mut self gives exclusive access to the (unshared) buffer.
        unsafe {
            let p = m.buf_addr.cast::<u8>().add(off);
            std::slice::from_raw_parts_mut(p, len)
        }
    }

    /// Bytes in the first segment.
    #[inline]
    pub fn data_len(&self) -> usize {
        self.raw().data_len as usize
    }

    /// Bytes in the whole packet (all segments).
    #[inline]
    pub fn pkt_len(&self) -> usize {
        self.raw().pkt_len as usize
    }

    /// Number of segments.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.raw().nb_segs
    }

    /// Free bytes after the data of the last segment.
    pub fn tailroom(&self) -> usize {
        // SAFETY: valid owned mbuf; the call only reads it.
        unsafe { ffi::fnat_pktmbuf_tailroom(self.0.as_ptr()) as usize }
    }

    /// Free bytes before the data of the first segment.
    pub fn headroom(&self) -> usize {
        // SAFETY: valid owned mbuf; the call only reads it.
        unsafe { ffi::fnat_pktmbuf_headroom(self.0.as_ptr()) as usize }
    }

    /// Sets the length of a single-segment packet: shrinking always works, growing works within
    /// the tailroom (the new bytes are whatever the buffer held). Updates `pkt_len` too.
    /// Returns false, changing nothing, for chained mbufs or a length that does not fit.
    pub fn set_data_len(&mut self, len: usize) -> bool {
        if self.nb_segs() != 1 || len > u16::MAX as usize {
            return false;
        }
        let cur = self.data_len();
        if len > cur && len - cur > self.tailroom() {
            return false;
        }
        // SAFETY: single segment, and the new length stays within the buffer (checked above).
        unsafe {
            let m = self.0.as_ptr();
            (*m).data_len = len as u16;
            (*m).pkt_len = len as u32;
        }
        true
    }

    /// Appends `n` bytes at the end of the packet (`rte_pktmbuf_append`, last segment) and
    /// returns them (uninitialised contents: whatever the buffer held). `None` if no room.
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        // SAFETY: valid owned mbuf; append checks the tailroom and returns NULL if short.
        let p = unsafe { ffi::fnat_pktmbuf_append(self.0.as_ptr(), n16) };
        if p.is_null() {
            return None;
        }
        // SAFETY: p points at n bytes just added inside the last segment's buffer, exclusively
        // ours through &mut self.
        Some(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), n) })
    }

    /// Prepends `n` bytes in the headroom (`rte_pktmbuf_prepend`) and returns them (the new
    /// start of the packet). `None` if the headroom is too small.
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        // SAFETY: valid owned mbuf; prepend checks the headroom and returns NULL if short.
        let p = unsafe { ffi::fnat_pktmbuf_prepend(self.0.as_ptr(), n16) };
        if p.is_null() {
            return None;
        }
        // SAFETY: p points at n bytes at the new start of the first segment's data.
        Some(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), n) })
    }

    /// Removes `n` bytes from the front (`rte_pktmbuf_adj`). False if the first segment is
    /// shorter than `n`.
    pub fn adj(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: valid owned mbuf; adj checks the length and returns NULL if too short.
        !unsafe { ffi::fnat_pktmbuf_adj(self.0.as_ptr(), n16) }.is_null()
    }

    /// Removes `n` bytes from the end (`rte_pktmbuf_trim`). False if the last segment is
    /// shorter than `n`.
    pub fn trim(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: valid owned mbuf; trim checks the length and returns -1 if too short.
        unsafe { ffi::fnat_pktmbuf_trim(self.0.as_ptr(), n16) == 0 }
    }

    /// Input port as set by the driver on RX. Not every driver sets it: `net_ring` (22.11)
    /// leaves `u16::MAX` (`RTE_MBUF_PORT_INVALID`, the value after allocation); trust the
    /// port you polled instead.
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Sets the port field (what RX reports as the input port).
    pub fn set_port(&mut self, port: u16) {
        // SAFETY: exclusive access to a valid mbuf; plain field store.
        unsafe { (*self.0.as_ptr()).port = port }
    }

    /// RSS hash from the NIC (meaningful when `ol_flags` has `RTE_MBUF_F_RX_RSS_HASH`).
    #[inline]
    pub fn rss_hash(&self) -> u32 {
        // SAFETY: valid owned mbuf; the call only reads it.
        unsafe { ffi::fnat_mbuf_rss_hash(self.0.as_ptr()) }
    }

    /// Offload flags (`ol_flags`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.raw().ol_flags
    }

    /// Reference count (1 for every mbuf this crate hands out).
    pub fn refcnt(&self) -> u16 {
        // SAFETY: valid owned mbuf; the call only reads it.
        unsafe { ffi::fnat_mbuf_refcnt_read(self.0.as_ptr()) }
    }

    /// Gives up ownership; the caller must eventually free the mbuf (e.g. via `from_raw`).
    pub fn into_raw(self) -> *mut ffi::rte_mbuf {
        ManuallyDrop::new(self).0.as_ptr()
    }

    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `p` must be a valid, non-null pktmbuf that nothing else owns or references, whose pool
    /// outlives it.
    pub unsafe fn from_raw(p: *mut ffi::rte_mbuf) -> Mbuf {
        debug_assert!(!p.is_null());
        // SAFETY: the caller guarantees p is non-null.
        Mbuf(unsafe { NonNull::new_unchecked(p) })
    }

    /// The RX timestamp stored by the driver, if the mbuf carries one (the dynamic flag of `f`
    /// is set in `ol_flags`).
    ///
    /// Units are driver-defined. Checked on DPDK 22.11 `net_pcap` (tests/pcap.rs):
    /// * the value is the pcap record's time in **microseconds** since the epoch,
    ///   `ts_sec * 1_000_000 + ts_usec`;
    /// * a nanosecond-precision pcap file (magic `a1b23c4d`) is read at microsecond precision
    ///   too (the sub-microsecond part is dropped);
    /// * the PMD registers the field when the device is probed (during `Eal::init`), so
    ///   [`TimestampField::lookup`] succeeds from then on, and every RX mbuf carries the flag,
    ///   although net_pcap does not advertise `RTE_ETH_RX_OFFLOAD_TIMESTAMP`;
    /// * on TX, net_pcap ignores this field: `tx_pcap` files are written with nanosecond
    ///   precision stamped with the wall-clock send time.
    pub fn timestamp(&self, f: &TimestampField) -> Option<u64> {
        if self.ol_flags() & f.flag == 0 {
            return None;
        }
        // SAFETY: f.offset came from DPDK's registry for an 8-byte, 8-aligned dynfield that
        // lies inside every mbuf.
        Some(unsafe { ffi::fnat_mbuf_dynfield_u64_get(self.0.as_ptr(), f.offset) })
    }

    /// Stores `v` as the timestamp and sets the flag of `f`.
    pub fn set_timestamp(&mut self, f: &TimestampField, v: u64) {
        // SAFETY: as in `timestamp`; &mut self gives exclusive access.
        unsafe {
            let m = self.0.as_ptr();
            ffi::fnat_mbuf_dynfield_u64_set(m, f.offset, v);
            (*m).ol_flags |= f.flag;
        }
    }
}

const TS_FIELD: &[u8] = b"rte_dynfield_timestamp\0";
const TS_FLAG: &[u8] = b"rte_dynflag_rx_timestamp\0";

/// The mbuf RX timestamp dynamic field (`rte_dynfield_timestamp`, a u64) and its flag
/// (`rte_dynflag_rx_timestamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampField {
    offset: i32,
    flag: u64,
}

impl TimestampField {
    /// Finds the field if a driver (or [`TimestampField::register`]) registered it already.
    pub fn lookup() -> Option<Self> {
        if !crate::eal::is_initialized() {
            return None;
        }
        // SAFETY: EAL is up; the names are valid C strings; a null params pointer is allowed.
        let offset =
            unsafe { ffi::rte_mbuf_dynfield_lookup(TS_FIELD.as_ptr().cast(), ptr::null_mut()) };
        // SAFETY: as above.
        let bit = unsafe { ffi::rte_mbuf_dynflag_lookup(TS_FLAG.as_ptr().cast(), ptr::null_mut()) };
        if offset < 0 || !(0..64).contains(&bit) {
            return None;
        }
        Some(TimestampField {
            offset,
            flag: 1u64 << bit,
        })
    }

    /// Registers (or finds) the field and the RX flag (`rte_mbuf_dyn_rx_timestamp_register`).
    pub fn register() -> Result<Self> {
        crate::eal::ensure_up("rte_mbuf_dyn_rx_timestamp_register")?;
        let mut offset = -1;
        let mut flag = 0u64;
        // SAFETY: EAL is up; both out-pointers are valid for writes.
        let ret = unsafe { ffi::rte_mbuf_dyn_rx_timestamp_register(&mut offset, &mut flag) };
        if ret < 0 {
            return Err(DpdkError::from_errno("rte_mbuf_dyn_rx_timestamp_register"));
        }
        Ok(TimestampField { offset, flag })
    }

    /// Byte offset of the field in the mbuf.
    pub fn offset(&self) -> i32 {
        self.offset
    }

    /// The `ol_flags` bit that says the field is valid.
    pub fn flag(&self) -> u64 {
        self.flag
    }
}

/// Maximum number of mbufs in a [`Burst`].
pub const BURST_MAX: usize = 64;

/// Up to [`BURST_MAX`] owned mbufs in a fixed inline array (no heap allocation). Slots
/// `0..len` are initialised. Dropping or clearing it frees the mbufs it still holds.
pub struct Burst {
    len: usize,
    items: [MaybeUninit<Mbuf>; BURST_MAX],
}

impl Default for Burst {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Burst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Burst").field("len", &self.len).finish()
    }
}

impl Burst {
    /// An empty burst.
    pub fn new() -> Self {
        Burst {
            len: 0,
            // SAFETY: an array of MaybeUninit needs no initialisation.
            items: unsafe { MaybeUninit::uninit().assume_init() },
        }
    }

    /// Number of mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when holding [`BURST_MAX`] mbufs.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == BURST_MAX
    }

    /// Free slots.
    #[inline]
    pub fn room(&self) -> usize {
        BURST_MAX - self.len
    }

    /// Adds `m` at the end; gives it back if the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> std::result::Result<(), Mbuf> {
        if self.len == BURST_MAX {
            return Err(m);
        }
        self.items[self.len].write(m);
        self.len += 1;
        Ok(())
    }

    /// Removes the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slot len was initialised and is now outside 0..len, so read it out once.
        Some(unsafe { self.items[self.len].assume_init_read() })
    }

    /// The held mbufs, in order.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: slots 0..len are initialised; MaybeUninit<Mbuf> has Mbuf's layout.
        unsafe { std::slice::from_raw_parts(self.items.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The held mbufs, in order, mutably.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in `as_slice`, with exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.items.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The mbuf at `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&Mbuf> {
        self.as_slice().get(i)
    }

    /// The mbuf at `i`, mutably.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Mbuf> {
        self.as_mut_slice().get_mut(i)
    }

    /// Iterates over the held mbufs.
    pub fn iter(&self) -> std::slice::Iter<'_, Mbuf> {
        self.as_slice().iter()
    }

    /// Iterates mutably over the held mbufs.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Mbuf> {
        self.as_mut_slice().iter_mut()
    }

    /// Removes and returns the mbuf at `i`, shifting the later ones down (order is kept).
    pub fn take(&mut self, i: usize) -> Option<Mbuf> {
        if i >= self.len {
            return None;
        }
        // SAFETY: slot i is initialised; we read it out, then move slots i+1..len down by one
        // (bitwise moves of owned values) and shrink len so every value has exactly one owner.
        unsafe {
            let base = self.items.as_mut_ptr();
            let m = (*base.add(i)).assume_init_read();
            ptr::copy(base.add(i + 1), base.add(i), self.len - i - 1);
            self.len -= 1;
            Some(m)
        }
    }

    /// Removes and returns the mbuf at `i`, replacing it with the last one (order not kept).
    pub fn swap_remove(&mut self, i: usize) -> Option<Mbuf> {
        if i >= self.len {
            return None;
        }
        let last = self.len - 1;
        self.as_mut_slice().swap(i, last);
        self.pop()
    }

    /// Frees every held mbuf (`rte_pktmbuf_free_bulk`).
    pub fn clear(&mut self) {
        let n = self.len;
        if n == 0 {
            return;
        }
        self.len = 0;
        // SAFETY: slots 0..n hold owned mbufs laid out as rte_mbuf pointers; len is already 0,
        // so they are freed exactly once, here.
        unsafe { ffi::rte_pktmbuf_free_bulk(self.items.as_mut_ptr().cast(), n as u32) };
    }

    /// Moves every mbuf out, in order (the burst is empty afterwards; mbufs the iterator did
    /// not yield are freed when it is dropped).
    pub fn drain(&mut self) -> Drain<'_> {
        let end = self.len;
        self.len = 0;
        Drain {
            burst: self,
            pos: 0,
            end,
        }
    }

    /// Raw pointer to the first free slot and the number of free slots, for DPDK to fill.
    pub(crate) fn spare_raw(&mut self) -> (*mut *mut ffi::rte_mbuf, usize) {
        // SAFETY: len <= BURST_MAX, so the pointer stays within (or one past) the array.
        let p = unsafe { self.items.as_mut_ptr().add(self.len) };
        (p.cast(), BURST_MAX - self.len)
    }

    /// Raw pointer to the first held mbuf, for DPDK to consume from.
    pub(crate) fn front_raw(&mut self) -> *mut *mut ffi::rte_mbuf {
        self.items.as_mut_ptr().cast()
    }

    /// Marks `n` more slots (after the current length) as initialised.
    ///
    /// # Safety
    /// Those slots must have just been filled with owned, valid mbufs, and `len + n <= BURST_MAX`.
    pub(crate) unsafe fn added(&mut self, n: usize) {
        debug_assert!(self.len + n <= BURST_MAX);
        self.len += n;
    }

    /// Forgets the first `n` mbufs (ownership passed to DPDK) and moves the rest down.
    ///
    /// # Safety
    /// DPDK must have taken ownership of exactly the first `n <= len` mbufs.
    pub(crate) unsafe fn consumed_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        let rest = self.len - n;
        if n > 0 && rest > 0 {
            let base = self.items.as_mut_ptr();
            // SAFETY: slots n..len are initialised and move to 0..rest; slots 0..n are no
            // longer ours (caller's guarantee), so nothing is duplicated or leaked.
            unsafe { ptr::copy(base.add(n), base, rest) };
        }
        self.len = rest;
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<'a> IntoIterator for &'a Burst {
    type Item = &'a Mbuf;
    type IntoIter = std::slice::Iter<'a, Mbuf>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut Burst {
    type Item = &'a mut Mbuf;
    type IntoIter = std::slice::IterMut<'a, Mbuf>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

/// Iterator returned by [`Burst::drain`].
pub struct Drain<'a> {
    burst: &'a mut Burst,
    pos: usize,
    end: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.pos == self.end {
            return None;
        }
        // SAFETY: slots pos..end are initialised and owned by this iterator (the burst's len
        // was set to 0); each is read out exactly once.
        let m = unsafe { self.burst.items[self.pos].assume_init_read() };
        self.pos += 1;
        Some(m)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.pos;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Drain<'_> {}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        for _ in self.by_ref() {}
    }
}
