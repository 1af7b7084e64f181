//! Per-worker counters. Each worker owns its own; readers sum them.

use crate::verdict::DropReason;

/// Counters of one worker. Plain integers: only the owning worker writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStats {
    /// Frames handed to `Worker::process` (redirected-in frames included).
    pub received: u64,
    /// Frames given a `Transmit` verdict.
    pub transmitted: u64,
    /// Frames handed to another worker.
    pub redirected: u64,
    /// Drops by reason, indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::COUNT],
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            received: 0,
            transmitted: 0,
            redirected: 0,
            drops: [0; DropReason::COUNT],
        }
    }
}

impl WorkerStats {
    /// Counts one drop and returns its verdict, so call sites read `return self.drop(r)`.
    #[inline]
    pub fn count_drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// Total drops over all reasons.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Adds another worker's counters to these.
    pub fn add(&mut self, other: &WorkerStats) {
        self.received += other.received;
        self.transmitted += other.transmitted;
        self.redirected += other.redirected;
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += b;
        }
    }
}
