//! One worker's engine: classifies each frame, rewrites it, and says where it goes.

use std::sync::Arc;

use crate::fnat::{BurstHint, FullNat};
use crate::frame::Frame;
use crate::neigh::{Emit, NeighTable};
use crate::packet::ether;
use crate::rules::{Mode, PortIndex, Rules};
use crate::sched::load::LoadBoard;
use crate::stats::WorkerStats;
use crate::verdict::{DropReason, Verdict};

/// The engine state owned by one worker thread. Nothing in it is shared with other workers.
pub struct Worker {
    id: u16,
    workers: u16,
    rules: Arc<Rules>,
    stats: WorkerStats,
    fnat: FullNat,
    /// Established flows take the fast path (on unless a test compares the two paths).
    fast_path: bool,
}

impl Worker {
    /// Worker `id` of `workers`, running `rules`. Allocates everything the worker will ever
    /// use: the session table and timer wheel (`rules.session_capacity` sessions), the port
    /// pools of its slice of every local address, the service and address indexes.
    pub fn new(id: u16, workers: u16, rules: Arc<Rules>) -> Self {
        Self::with_board(id, workers, rules, Arc::new(LoadBoard::new(workers)))
    }

    /// As [`Worker::new`], sharing live connection counts with the other workers of the
    /// dataplane through `board` (give every worker the same one); without it a worker's
    /// connection-counting schedulers see only its own sessions.
    pub fn with_board(id: u16, workers: u16, rules: Arc<Rules>, board: Arc<LoadBoard>) -> Self {
        assert!(workers > 0 && id < workers, "worker {id} of {workers}");
        let mut stats = WorkerStats::default();
        let fnat = FullNat::with_board(id, workers, &rules, &mut stats, board);
        Worker {
            id,
            workers,
            rules,
            stats,
            fnat,
            fast_path: true,
        }
    }

    /// Prefetches bursts once `sessions` sessions live (see
    /// [`crate::fnat::PREFETCH_FROM_SESSIONS`], the default).
    pub fn set_prefetch_from(&mut self, sessions: usize) {
        self.fnat.set_prefetch_from(sessions);
    }

    /// Turns the established-flow fast path off (or back on): every frame then takes the full
    /// pipeline. For tests that check both give the same results, and for measuring the gain.
    pub fn set_fast_path(&mut self, on: bool) {
        self.fast_path = on;
    }

    /// Makes the worker use `table`, the neighbour table every worker of the dataplane shares
    /// (a neighbour resolved by any worker is then resolved for all). Without it a worker has
    /// a table of its own. Call it before the first frame.
    pub fn share_neighbours(&mut self, table: Arc<NeighTable>) {
        self.fnat.neighbours_mut().set_table(table);
    }

    /// Gratuitous ARP for owned addresses at start and when rules add one (worker 0 sends
    /// them). On by default; replay turns it off so outputs hold only what inputs caused.
    pub fn set_announce(&mut self, on: bool) {
        self.fnat.neighbours_mut().set_announce(on);
    }

    /// Hands `emit` every frame the engine sends on its own: held frames whose next hop has
    /// resolved, ARP requests, gratuitous ARPs; drops held frames whose hold time is over
    /// (`no_neighbour`). `emit(port, bytes)` copies the bytes into a buffer staged for TX on
    /// `port` and says how that went ([`Emit`]). Bounded; call it once per loop iteration.
    pub fn drain_originated(
        &mut self,
        now_ns: u64,
        mut emit: impl FnMut(PortIndex, &[u8]) -> Emit,
    ) {
        if let Mode::FullNat = self.rules.mode {
            self.fnat
                .drain_originated(now_ns, &mut self.stats, &mut emit);
        }
    }

    /// Drops every frame still waiting for a next hop (the dataplane is stopping).
    pub fn drop_held(&mut self) {
        self.fnat.neighbours_mut().drop_held(&mut self.stats);
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

    /// Switches to a new rules snapshot. Established sessions keep running; sessions of a
    /// service that left the rules are ended (during housekeeping, or when next touched);
    /// sessions of a removed real server run until they expire (IPVS's default). Allocates
    /// (it rebuilds the indexes): call it from the loop, not per packet.
    pub fn update_rules(&mut self, rules: Arc<Rules>) {
        // From the snapshot this worker runs now: what it proves unchanged is not rebuilt.
        self.fnat.update_from(&self.rules, &rules, &mut self.stats);
        self.rules = rules;
    }

    /// The full-NAT state (sessions, for listings and tests).
    pub fn fullnat(&self) -> &FullNat {
        &self.fnat
    }

    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// Counts a drop decided outside the engine (ring full, mbuf exhausted, ...) for a frame
    /// that was not handed to `process`, or whose `Redirect` verdict could not be carried out.
    pub fn count_drop(&mut self, reason: DropReason) {
        self.stats.count_drop(reason);
    }

    /// The driver could not transmit `n` frames that got a `Transmit` verdict (or were handed
    /// to `drain_originated`'s `emit`): moves them from `transmitted` to the `TxFull` drop
    /// counter, so that received + originated = transmitted + redirected + dropped + consumed
    /// + held keeps holding.
    pub fn tx_failed(&mut self, n: u64) {
        let n = n.min(self.stats.transmitted);
        self.stats.transmitted -= n;
        self.stats.drops[DropReason::TxFull as usize] += n;
    }

    /// A `Redirect` verdict could not be carried out (ring full): recount it as a drop.
    pub fn redirect_failed(&mut self, n: u64) {
        let n = n.min(self.stats.redirected);
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
                let data = frame.data_mut();
                if ether::ethertype(data) == Ok(ether::ETHERTYPE_ARP) {
                    self.fnat.arp(rx_port, data, now_ns, &mut self.stats)
                } else {
                    self.fnat.process(rx_port, data, now_ns, &mut self.stats)
                }
            }
        };
        match verdict {
            Verdict::Transmit { .. } => self.stats.transmitted += 1,
            Verdict::Redirect { .. } => self.stats.redirected += 1,
            Verdict::Drop(reason) => self.stats.count_drop(reason),
            // Counted by the engine as consumed or held.
            Verdict::Consumed => {}
        }
        verdict
    }

    /// [`Worker::process`] for a frame whose burst went through [`Worker::prefetch_index`]
    /// and [`Worker::prefetch_session`] (`hint` is what they gave for this frame): an
    /// established flow takes the fast path, with the hash and session they found. Same
    /// decisions and counters as `process`.
    #[inline]
    pub fn process_hinted<F: Frame>(
        &mut self,
        rx_port: PortIndex,
        frame: &mut F,
        hint: BurstHint,
        now_ns: u64,
    ) -> Verdict {
        if self.fast_path && hint.fast() {
            if let Mode::FullNat = self.rules.mode {
                if let Some(v) =
                    self.fnat
                        .established(rx_port, frame.data_mut(), hint, now_ns, &mut self.stats)
                {
                    self.stats.received += 1;
                    self.stats.transmitted += 1;
                    self.stats.fast_path += 1;
                    return v;
                }
            }
        }
        self.process(rx_port, frame, now_ns)
    }

    /// [`Worker::process`] for a burst of frames received on `rx_port` at `now_ns`: the verdict
    /// of `frames[i]` goes to `verdicts[i]` (only `min(frames, verdicts)` frames are processed).
    /// Same decisions and counters as calling `process` on each frame in order; in chunks of
    /// 32 frames it first prefetches the session index lines of all of them, then their
    /// sessions and timer nodes, so that the lookups of large tables overlap their cache
    /// misses instead of taking them one after another.
    pub fn process_burst<F: Frame>(
        &mut self,
        rx_port: PortIndex,
        frames: &mut [F],
        now_ns: u64,
        verdicts: &mut [Verdict],
    ) {
        const CHUNK: usize = 32;
        let n = frames.len().min(verdicts.len());
        let mut hints = [BurstHint::NONE; CHUNK];
        let mut start = 0;
        while start < n {
            let end = n.min(start + CHUNK);
            let (fs, vs) = (&mut frames[start..end], &mut verdicts[start..end]);
            for (f, h) in fs.iter().zip(hints.iter_mut()) {
                *h = self.prefetch_index(f.data());
            }
            for h in &mut hints[..fs.len()] {
                self.prefetch_session(h);
            }
            for ((f, v), &h) in fs.iter_mut().zip(vs.iter_mut()).zip(hints.iter()) {
                *v = self.process_hinted(rx_port, f, h, now_ns);
            }
            start = end;
        }
    }

    /// Burst stage 1 for one frame (see [`Worker::process_burst`]): a prefetch hint only, it
    /// changes nothing. Hand the result to [`Worker::prefetch_session`] once every frame of
    /// the burst went through this stage, then to [`Worker::process_hinted`].
    #[inline]
    pub fn prefetch_index(&self, frame: &[u8]) -> BurstHint {
        match self.rules.mode {
            Mode::FullNat => self.fnat.prefetch_index(frame),
            Mode::Passthrough { .. } => BurstHint::NONE,
        }
    }

    /// Burst stage 2 for one frame (see [`Worker::prefetch_index`]); a hint only.
    #[inline]
    pub fn prefetch_session(&self, hint: &mut BurstHint) {
        self.fnat.prefetch_session(hint);
    }

    /// Bounded housekeeping between bursts: expires at most `budget` sessions due by `now_ns`
    /// (frees both keys and the local port; a session is reported at most one second after
    /// its deadline, while packets see the exact deadline), and ends sessions of removed
    /// services. Returns how many sessions were ended.
    pub fn housekeeping(&mut self, now_ns: u64, budget: usize) -> usize {
        self.fnat.housekeeping(now_ns, budget, &mut self.stats)
    }
}
