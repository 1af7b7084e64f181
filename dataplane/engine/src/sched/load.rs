//! Live connection counts shared between workers, for the schedulers that count connections
//! (lc, wlc, sed, nq, ovf, lblc, lblcr) and for connection thresholds.
//!
//! Each worker counts its own sessions per real server exactly (ActiveConn/InActConn in its
//! `WorkerStats`). Every [`PUBLISH_INTERVAL_NS`] its housekeeping publishes those counts into
//! one atomic cell per (real server, worker) of a [`LoadBoard`] shared by all workers, and
//! reads back the sum of the other workers' cells. A scheduler then sees
//!
//! ```text
//! count(rs) = own live count (exact) + others' published counts (cached)
//! ```
//!
//! **Bound.** The cached part lags by at most one publish interval of the writer plus one of
//! the reader, so with workers publishing every `P` ns the count a worker sees differs from
//! the true global count by at most the number of sessions the *other* workers opened or
//! closed on that real server within the last `2P + L` (L = the longest gap between two
//! housekeeping calls of a worker, i.e. one burst). At P = 1 ms and 1 M new connections/s per
//! worker spread over k servers that is ≤ 2000·(N−1)/k connections per server; a worker's own
//! decisions are always exact. Nothing is locked on the packet path: writes are Relaxed
//! stores into the worker's own cell, reads are Relaxed loads, and the registry's mutex is
//! only taken when rules change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How often a worker publishes its counts and refreshes its view of the others'.
pub const PUBLISH_INTERVAL_NS: u64 = 1_000_000;

/// One real server's counts, one cell per worker: `active << 32 | inactive`.
#[derive(Debug)]
pub struct RsLoad {
    cells: Box<[AtomicU64]>,
}

#[inline]
fn pack(active: u64, inactive: u64) -> u64 {
    (active.min(u32::MAX as u64) << 32) | inactive.min(u32::MAX as u64)
}

impl RsLoad {
    fn new(workers: usize) -> Self {
        RsLoad {
            cells: (0..workers.max(1)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Publishes worker `me`'s counts.
    #[inline]
    pub fn publish(&self, me: usize, active: u64, inactive: u64) {
        if let Some(c) = self.cells.get(me) {
            c.store(pack(active, inactive), Ordering::Relaxed);
        }
    }

    /// The sum of the other workers' published counts: (active, inactive).
    #[inline]
    pub fn others(&self, me: usize) -> (u32, u32) {
        let (mut a, mut i) = (0u64, 0u64);
        for (w, c) in self.cells.iter().enumerate() {
            if w != me {
                let v = c.load(Ordering::Relaxed);
                a += v >> 32;
                i += v & 0xffff_ffff;
            }
        }
        (a.min(u32::MAX as u64) as u32, i.min(u32::MAX as u64) as u32)
    }
}

/// The registry of shared counts, by (service id, real-server id). One per dataplane, shared
/// by its workers (a worker created alone gets a private one: its view is then per worker).
#[derive(Debug)]
pub struct LoadBoard {
    workers: usize,
    cells: Mutex<Cells>,
}

#[derive(Debug, Default)]
struct Cells {
    map: HashMap<(u32, u32), Arc<RsLoad>>,
    /// The map is swept of cells no worker refers to once it holds more than this many:
    /// twice what the last sweep kept, so sweeping costs O(1) per `get` amortised.
    sweep_above: usize,
}

/// Cells kept at least before a sweep.
const SWEEP_MIN: usize = 64;

impl LoadBoard {
    pub fn new(workers: u16) -> Self {
        LoadBoard {
            workers: usize::from(workers.max(1)),
            cells: Mutex::new(Cells {
                map: HashMap::new(),
                sweep_above: SWEEP_MIN,
            }),
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The counts of a real server of a service (created on first use). Control path only:
    /// workers call it for the real servers a rules update brings that they did not run.
    pub fn get(&self, service: u32, real: u32) -> Arc<RsLoad> {
        let mut c = match self.cells.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Forget real servers no worker refers to any more.
        if c.map.len() > c.sweep_above {
            c.map.retain(|_, v| Arc::strong_count(v) > 1);
            c.sweep_above = (2 * c.map.len()).max(SWEEP_MIN);
        }
        Arc::clone(
            c.map
                .entry((service, real))
                .or_insert_with(|| Arc::new(RsLoad::new(self.workers))),
        )
    }

    /// Cells held now (live and not yet swept).
    pub fn len(&self) -> usize {
        match self.cells.lock() {
            Ok(c) => c.map.len(),
            Err(poisoned) => poisoned.into_inner().map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_shared_by_key_and_unreferenced_ones_swept() {
        let board = LoadBoard::new(2);
        let a = board.get(1, 1);
        assert!(Arc::ptr_eq(&a, &board.get(1, 1)));
        a.publish(0, 3, 4);
        assert_eq!(board.get(1, 1).others(1), (3, 4));
        // Many cells nobody keeps: the board stays bounded, and a kept one survives.
        for r in 0..10_000 {
            let _ = board.get(2, r);
        }
        assert!(board.len() <= 2 * SWEEP_MIN + 2, "{}", board.len());
        assert!(Arc::ptr_eq(&a, &board.get(1, 1)));
        assert_eq!(a.others(1), (3, 4));
    }
}
