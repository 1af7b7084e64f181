//! One worker's engine: classifies each frame, rewrites it, and says where it goes.

use std::sync::Arc;

use crate::frame::Frame;
use crate::rules::{Mode, PortIndex, Rules};
use crate::stats::WorkerStats;
use crate::verdict::{DropReason, Verdict};

/// The engine state owned by one worker thread. Nothing in it is shared with other workers.
pub struct Worker {
    id: u16,
    workers: u16,
    rules: Arc<Rules>,
    stats: WorkerStats,
}

impl Worker {
    /// Worker `id` of `workers`, running `rules`.
    pub fn new(id: u16, workers: u16, rules: Arc<Rules>) -> Self {
        assert!(workers > 0 && id < workers, "worker {id} of {workers}");
        Worker {
            id,
            workers,
            rules,
            stats: WorkerStats::default(),
        }
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    pub fn workers(&self) -> u16 {
        self.workers
    }

    pub fn rules(&self) -> &Arc<Rules> {
        &self.rules
    }

    /// Switches to a new rules snapshot (established sessions keep running).
    pub fn update_rules(&mut self, rules: Arc<Rules>) {
        self.rules = rules;
    }

    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// Counts a drop decided outside the engine (ring full, mbuf exhausted, ...) for a frame
    /// that was not handed to `process`, or whose `Redirect` verdict could not be carried out.
    pub fn count_drop(&mut self, reason: DropReason) {
        self.stats.count_drop(reason);
    }

    /// The driver could not transmit `n` frames that got a `Transmit` verdict: moves them from
    /// `transmitted` to the `TxFull` drop counter, so that received = transmitted + redirected +
    /// dropped keeps holding.
    pub fn tx_failed(&mut self, n: u64) {
        self.stats.transmitted -= n;
        self.stats.drops[DropReason::TxFull as usize] += n;
    }

    /// A `Redirect` verdict could not be carried out (ring full): recount it as a drop.
    pub fn redirect_failed(&mut self, n: u64) {
        self.stats.redirected -= n;
        self.stats.drops[DropReason::RedirectRingFull as usize] += n;
    }

    /// Decides what happens to one frame received on `rx_port` at time `now_ns`, rewriting it
    /// in place. Counts the outcome.
    pub fn process<F: Frame>(&mut self, rx_port: PortIndex, frame: &mut F, now_ns: u64) -> Verdict {
        self.stats.received += 1;
        let verdict = match &self.rules.mode {
            Mode::Passthrough { forward } => match forward.get(rx_port as usize).copied().flatten()
            {
                Some(port) => Verdict::Transmit { port },
                None => Verdict::Drop(DropReason::NoForwardRule),
            },
            Mode::FullNat => {
                let _ = (frame.data(), now_ns);
                Verdict::Drop(DropReason::NoService)
            }
        };
        match verdict {
            Verdict::Transmit { .. } => self.stats.transmitted += 1,
            Verdict::Redirect { .. } => self.stats.redirected += 1,
            Verdict::Drop(reason) => self.stats.count_drop(reason),
        }
        verdict
    }

    /// Bounded housekeeping between bursts: expires at most `budget` sessions due by `now_ns`.
    /// Returns how many were expired.
    pub fn housekeeping(&mut self, now_ns: u64, budget: usize) -> usize {
        let _ = (now_ns, budget);
        0
    }
}
