//! Packet-buffer memory pools.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::eal::ensure_up;
use crate::error::{DpdkError, Result, EINVAL};
use crate::ffi;
use crate::mbuf::{Burst, Mbuf};

/// Default mbuf data room: 2048 bytes of packet plus `RTE_PKTMBUF_HEADROOM` (128) of headroom,
/// i.e. DPDK's `RTE_MBUF_DEFAULT_BUF_SIZE` (a macro expression bindgen cannot evaluate).
pub const DEFAULT_DATA_ROOM: u16 =
    (ffi::RTE_MBUF_DEFAULT_DATAROOM + ffi::RTE_PKTMBUF_HEADROOM) as u16;

/// Headroom reserved in front of the packet data of a freshly allocated mbuf.
pub const HEADROOM: u16 = ffi::RTE_PKTMBUF_HEADROOM as u16;

#[derive(Debug)]
struct Inner {
    ptr: NonNull<ffi::rte_mempool>,
    name: String,
}

// SAFETY: a DPDK mempool is a thread-safe object (per-lcore caches plus a multi-producer /
// multi-consumer ring by default); all access goes through DPDK functions made for that.
unsafe impl Send for Inner {}
// SAFETY: as above; &Inner only hands out the pointer to thread-safe DPDK calls.
unsafe impl Sync for Inner {}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: the pool is alive (we own it) and counting is thread-safe.
        let in_use = unsafe { ffi::fnat_mempool_in_use_count(self.ptr.as_ptr()) };
        if in_use != 0 {
            // Freeing now would leave those mbufs dangling: leak the pool instead.
            eprintln!(
                "dpdk-bindings: mempool {:?} dropped with {in_use} mbufs still in use; leaking it",
                self.name
            );
            return;
        }
        // SAFETY: no mbuf of this pool is outstanding and no port references it any more (ports
        // hold a clone until closed), so nothing can touch the pool after this.
        unsafe { ffi::rte_mempool_free(self.ptr.as_ptr()) };
    }
}

/// A pool of packet mbufs (`rte_pktmbuf_pool_create`). Cheap to clone (shared handle).
///
/// Thread-safe (`Send + Sync`). The pool is freed when the last handle is dropped — but only if
/// every mbuf allocated from it has been returned: a pool dropped with mbufs still in use
/// (including mbufs posted to a port's RX ring or sitting in a [`crate::ring::MbufRing`]) is
/// leaked, with a message on stderr, rather than freed under them. A configured port keeps a
/// handle to its pool until [`crate::port::Port::close`].
#[derive(Debug, Clone)]
pub struct Mempool(Arc<Inner>);

impl Mempool {
    /// Creates a pool of `n` mbufs (best: 2^k − 1) with a per-lcore cache of `cache` mbufs
    /// (0 disables it; at most 512 and at most n / 1.5), each with `data_room` bytes of buffer
    /// (headroom included; see [`DEFAULT_DATA_ROOM`]), on NUMA `socket` (-1 = any).
    pub fn new_pktmbuf(
        name: &str,
        n: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool> {
        let what = || format!("rte_pktmbuf_pool_create({name:?})");
        ensure_up(&what())?;
        let cname = CString::new(name).map_err(|_| DpdkError::new(what(), -EINVAL))?;
        // SAFETY: EAL is up; cname is a valid C string for the duration of the call (DPDK
        // copies the name).
        let p =
            unsafe { ffi::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        match NonNull::new(p) {
            Some(ptr) => Ok(Mempool(Arc::new(Inner {
                ptr,
                name: name.to_owned(),
            }))),
            None => Err(DpdkError::from_errno(what())),
        }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Mbufs free in the pool (per-lcore caches included).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive while we hold a handle; counting is thread-safe.
        unsafe { ffi::fnat_mempool_avail_count(self.0.ptr.as_ptr()) }
    }

    /// Mbufs currently allocated from the pool.
    pub fn in_use(&self) -> u32 {
        // SAFETY: as in `available`.
        unsafe { ffi::fnat_mempool_in_use_count(self.0.ptr.as_ptr()) }
    }

    /// Allocates one mbuf (reset, single segment, data_len 0, headroom [`HEADROOM`]).
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is alive and a pktmbuf pool; allocation is thread-safe.
        let m = unsafe { ffi::fnat_pktmbuf_alloc(self.0.ptr.as_ptr()) };
        // SAFETY: a non-null result is a fresh mbuf that we now own.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m.as_ptr()) })
    }

    /// Allocates `n` mbufs into the free space of `burst`, all or nothing. Returns false (and
    /// adds nothing) if the pool has fewer than `n` free or `burst` has less room.
    pub fn alloc_bulk(&self, burst: &mut Burst, n: usize) -> bool {
        let (ptr, room) = burst.spare_raw();
        if n > room {
            return false;
        }
        if n == 0 {
            return true;
        }
        // SAFETY: ptr points at `room >= n` writable slots of the burst; on success DPDK fills
        // exactly n of them with fresh mbufs that the burst then owns.
        let ret = unsafe { ffi::fnat_pktmbuf_alloc_bulk(self.0.ptr.as_ptr(), ptr, n as u32) };
        if ret != 0 {
            return false;
        }
        // SAFETY: the n slots after the current length were just initialised.
        unsafe { burst.added(n) };
        true
    }

    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.0.ptr.as_ptr()
    }
}
