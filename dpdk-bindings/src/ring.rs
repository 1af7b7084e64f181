//! Lock-free rings of mbufs (`rte_ring`), for steering packets between lcores.

use std::ffi::{c_void, CString};
use std::hint::spin_loop;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::eal::ensure_up;
use crate::error::{DpdkError, Result, EINVAL};
use crate::ffi;
use crate::mbuf::Burst;

/// A ring of owned mbufs. `Send + Sync`: share it (e.g. in an `Arc`) between a producer and a
/// consumer thread.
///
/// A single-producer ring (the usual case) is only correct with one enqueuer at a time, and a
/// single-consumer ring with one dequeuer at a time; this wrapper enforces that with an
/// uncontended flag per side (one atomic swap per burst), spinning if two threads do collide.
/// Multi-producer/-consumer sides take no flag.
///
/// Dropping the ring frees the mbufs still in it, then the ring.
#[derive(Debug)]
pub struct MbufRing {
    ptr: NonNull<ffi::rte_ring>,
    capacity: u32,
    single_producer: bool,
    single_consumer: bool,
    producing: AtomicBool,
    consuming: AtomicBool,
}

// SAFETY: rte_ring is made for use across lcores; the single-producer/consumer restrictions are
// enforced by the `producing`/`consuming` flags.
unsafe impl Send for MbufRing {}
// SAFETY: as above.
unsafe impl Sync for MbufRing {}

struct SideGuard<'a>(Option<&'a AtomicBool>);

impl<'a> SideGuard<'a> {
    #[inline]
    fn take(flag: &'a AtomicBool, single: bool) -> Self {
        if !single {
            return SideGuard(None);
        }
        while flag.swap(true, Ordering::Acquire) {
            spin_loop();
        }
        SideGuard(Some(flag))
    }
}

impl Drop for SideGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(f) = self.0 {
            f.store(false, Ordering::Release);
        }
    }
}

impl MbufRing {
    /// Creates a ring holding up to exactly `capacity` mbufs (DPDK rounds its internal size up
    /// to a power of two; `RING_F_EXACT_SZ` keeps the usable count at `capacity`). `name` must
    /// be unique in the process and short (< 29 bytes).
    pub fn new(
        name: &str,
        capacity: u32,
        socket: i32,
        single_producer: bool,
        single_consumer: bool,
    ) -> Result<MbufRing> {
        let what = || format!("rte_ring_create({name:?}, {capacity})");
        ensure_up(&what())?;
        if capacity == 0 {
            return Err(DpdkError::new(what(), -EINVAL));
        }
        let cname = CString::new(name).map_err(|_| DpdkError::new(what(), -EINVAL))?;
        let mut flags = ffi::RING_F_EXACT_SZ;
        if single_producer {
            flags |= ffi::RING_F_SP_ENQ;
        }
        if single_consumer {
            flags |= ffi::RING_F_SC_DEQ;
        }
        // SAFETY: EAL is up; cname is a valid C string (DPDK copies it).
        let p = unsafe { ffi::rte_ring_create(cname.as_ptr(), capacity, socket, flags) };
        let ptr = NonNull::new(p).ok_or_else(|| DpdkError::from_errno(what()))?;
        Ok(MbufRing {
            ptr,
            capacity,
            single_producer,
            single_consumer,
            producing: AtomicBool::new(false),
            consuming: AtomicBool::new(false),
        })
    }

    /// Moves as many mbufs as fit from the front of `burst` into the ring (order kept; the rest
    /// stay in `burst`). Returns how many moved.
    #[inline]
    pub fn enqueue(&self, burst: &mut Burst) -> usize {
        let len = burst.len();
        if len == 0 {
            return 0;
        }
        let _g = SideGuard::take(&self.producing, self.single_producer);
        let objs = burst.front_raw().cast::<*mut c_void>();
        // SAFETY: objs points at len owned mbuf pointers; the ring takes the first n. The
        // guard makes this the only enqueuer of a single-producer ring.
        let n =
            unsafe { ffi::fnat_ring_enqueue_burst(self.ptr.as_ptr(), objs, len as u32) } as usize;
        // SAFETY: the ring now owns exactly the first n mbufs.
        unsafe { burst.consumed_front(n.min(len)) };
        n
    }

    /// Moves mbufs from the ring into the free space of `burst` (FIFO order). Returns how many.
    #[inline]
    pub fn dequeue(&self, burst: &mut Burst) -> usize {
        let (ptr, room) = burst.spare_raw();
        if room == 0 {
            return 0;
        }
        let _g = SideGuard::take(&self.consuming, self.single_consumer);
        // SAFETY: ptr has `room` writable slots; the ring only ever holds owned mbufs (only
        // `enqueue` puts anything in), which now pass to the burst. The guard makes this the
        // only dequeuer of a single-consumer ring.
        let n = unsafe { ffi::fnat_ring_dequeue_burst(self.ptr.as_ptr(), ptr.cast(), room as u32) }
            as usize;
        // SAFETY: the first n spare slots now hold owned mbufs.
        unsafe { burst.added(n.min(room)) };
        n
    }

    /// Mbufs currently in the ring.
    pub fn len(&self) -> u32 {
        // SAFETY: the ring is alive; counting only reads its indices.
        unsafe { ffi::fnat_ring_count(self.ptr.as_ptr()) }
    }

    /// True when the ring holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Maximum number of mbufs the ring holds (the `capacity` it was created with).
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Free slots.
    pub fn free_count(&self) -> u32 {
        // SAFETY: the ring is alive; counting only reads its indices.
        unsafe { ffi::fnat_ring_free_count(self.ptr.as_ptr()) }
    }
}

impl Drop for MbufRing {
    fn drop(&mut self) {
        let mut b = Burst::new();
        while self.dequeue(&mut b) > 0 {
            b.clear();
        }
        // SAFETY: we are the last user (Drop has &mut self) and the ring is empty.
        unsafe { ffi::rte_ring_free(self.ptr.as_ptr()) };
    }
}
