//! One worker's engine: classifies each frame, rewrites it, and says where it goes.

use std::sync::Arc;

use crate::fnat::{BurstHint, FullNat};
use crate::frame::{Frame, Frames};
use crate::neigh::{Emit, NeighTable};
use crate::packet::{self, ether, PacketV4};
use crate::rules::{Mode, PortIndex, Rules};
use crate::sched::load::LoadBoard;
use crate::session::table::Prefetch;
use crate::stats::WorkerStats;
use crate::verdict::{DropReason, Verdict};

/// Frames per prefetch chunk of [`Worker::process_burst`]: a whole DPDK burst (the driver's
/// `BURST_MAX`), so that the pipeline fills once per burst, not twice (with 32 it restarted
/// mid-burst: 1 M live sessions 9.2 → 9.6 Mpps, 10 M 6.9 → 7.1, new connections unchanged).
pub const BURST_CHUNK: usize = 64;
/// How many frames ahead of the one being processed [`Worker::process_burst`] starts loading
/// a session line: enough frames (≈ 150 cycles each when established) to cover a memory
/// access, few enough that the lines are still in L1 when their frame comes.
const SESSION_AHEAD: usize = 8;
/// How many frames ahead of the one being processed [`Worker::process_burst`] parses a frame
/// and starts loading its index line: the line then has `INDEX_AHEAD - SESSION_AHEAD` frames
/// to arrive before the session prefetch reads it.
const INDEX_AHEAD: usize = 16;
/// How many frames' prefetches [`Worker::process_burst`] issues together, every that many
/// frames: a prefetch that misses the TLB holds up retirement until its page walk is done, and
/// prefetches issued back to back walk at the same time instead of one stall per frame.
const PREFETCH_GROUP: usize = 8;
// A group's session prefetches read index lines requested a group earlier, not just now.
const _: () = assert!(INDEX_AHEAD >= SESSION_AHEAD + PREFETCH_GROUP);

/// The engine state owned by one worker thread. Nothing in it is shared with other workers.
pub struct Worker {
    id: u16,
    workers: u16,
    rules: Arc<Rules>,
    stats: WorkerStats,
    fnat: FullNat,
    /// Established flows take the fast path (on unless a test compares the two paths).
    fast_path: bool,
    /// Sessions [`Worker::between_bursts`] may end per call.
    expire_budget: usize,
}

/// Default of [`Worker::set_expire_budget`].
pub const DEFAULT_EXPIRE_BUDGET: usize = 256;

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
            expire_budget: DEFAULT_EXPIRE_BUDGET,
        }
    }

    /// Makes the burst's prefetch stages use `prefetch` to start loading cache lines (fnatd
    /// gives the CPU's prefetch instruction; see [`crate::session::table::Prefetch`]).
    pub fn set_prefetch(&mut self, prefetch: Prefetch) {
        self.fnat.set_prefetch(prefetch);
    }

    /// Uses `prefetch` for bursts' lookup lines in a very large table (see
    /// [`crate::fnat::STREAM_FROM_SESSIONS`]).
    pub fn set_prefetch_streaming(&mut self, prefetch: Prefetch) {
        self.fnat.set_prefetch_streaming(prefetch);
    }

    /// Streams bursts' lookup lines once `sessions` sessions live (see
    /// [`crate::fnat::STREAM_FROM_SESSIONS`], the default).
    pub fn set_stream_from(&mut self, sessions: usize) {
        self.fnat.set_stream_from(sessions);
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

    /// Turns session sync export on (the kernel's rules) or off. Allocates: call it from
    /// the loop, not per packet.
    pub fn set_sync(&mut self, rules: Option<fnat_sync::SyncRules>) {
        self.fnat.set_sync(rules);
    }

    /// Hands the sync entries noted since the last call to `send` (false: its ring is full,
    /// the entry is dropped and counted). Bounded by the outbox; once per loop iteration.
    pub fn drain_sync(&mut self, send: impl FnMut(&fnat_sync::Conn) -> bool) {
        self.fnat.drain_sync(send);
    }

    /// Sync entries noted, and dropped (outbox or ring full).
    pub fn sync_counts(&self) -> (u64, u64) {
        self.fnat.sync_counts()
    }

    /// Full resync: notes the sessions of arena slots `from..` (at most `budget` slots, while
    /// the outbox has room); returns where to resume (`>= capacity`: done).
    pub fn sync_export_all(&mut self, from: usize, budget: usize, now_ns: u64) -> usize {
        self.fnat.sync_export_all(from, budget, now_ns)
    }

    /// Installs or refreshes a session (or persistence template) a peer director sent.
    pub fn install_synced(
        &mut self,
        conn: &fnat_sync::Conn,
        now_ns: u64,
    ) -> Result<crate::fnat::sync::Installed, crate::fnat::sync::SyncReject> {
        self.fnat.install_synced(conn, now_ns, &mut self.stats)
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
    /// + held + to_kernel keeps holding.
    pub fn tx_failed(&mut self, n: u64) {
        let n = n.min(self.stats.transmitted);
        self.stats.transmitted -= n;
        self.stats.drops[DropReason::TxFull as usize] += n;
    }

    /// `n` frames with a `ToKernel` verdict could not be queued for the kernel-path thread
    /// (its ring was full): recounts them as `kernel_ring_full` drops.
    pub fn kernel_failed(&mut self, n: u64) {
        let n = n.min(self.stats.to_kernel);
        self.stats.to_kernel -= n;
        self.stats.drops[DropReason::KernelRingFull as usize] += n;
    }

    /// The driver took `n` frames the kernel twin sent, to transmit them unchanged on their
    /// port, and the TX queue refused `refused` of them (counted as `kernel_port_tx_full`):
    /// received + originated + from_kernel = transmitted + ... keeps holding at the ports.
    pub fn from_kernel(&mut self, n: u64, refused: u64) {
        self.stats.from_kernel += n;
        self.stats.drops[DropReason::KernelPortTxFull as usize] += refused.min(n);
    }

    /// Marks the ports (by `PortIndex`) that have a kernel twin interface: frames for their
    /// own addresses that the dataplane does not consume get a [`Verdict::ToKernel`]
    /// verdict instead of a drop. Off for every port by default. Call it before the first
    /// frame (it allocates).
    pub fn set_kernel_twins(&mut self, ports: &[PortIndex]) {
        self.fnat.set_kernel_twins(ports);
    }

    /// A `Redirect` verdict could not be carried out (ring full): recount it as a drop.
    pub fn redirect_failed(&mut self, n: u64) {
        let n = n.min(self.stats.redirected);
        self.stats.redirected -= n;
        self.stats.drops[DropReason::RedirectRingFull as usize] += n;
    }

    /// Decides what happens to one frame received on `rx_port` at time `now_ns`, rewriting it
    /// in place, and counts the outcome: [`Worker::process_burst`] with a burst of one.
    pub fn process<F: Frame>(&mut self, rx_port: PortIndex, frame: &mut F, now_ns: u64) -> Verdict {
        let mut verdict = [Verdict::Consumed];
        self.process_burst(rx_port, std::slice::from_mut(frame), now_ns, &mut verdict);
        verdict[0]
    }

    /// The one burst loop, the one production runs and every test drives: decides what
    /// happens to each frame of `frames` received on `rx_port` (unless the burst says
    /// otherwise per frame) at `now_ns`, rewriting it in place; the verdict of frame `i` goes
    /// to `verdicts[i]` (only `min(frames, verdicts)` frames are processed). Counts every
    /// outcome.
    ///
    /// In chunks of [`BURST_CHUNK`] frames, three stages run as a rolling pipeline, in groups
    /// of [`PREFETCH_GROUP`] frames: (1) parse a frame once and hash its tuple, then start
    /// loading the session index line it will look up; (2) [`SESSION_AHEAD`] frames later,
    /// start loading the session that line points to (its one line holds the deadline too);
    /// (3) [`INDEX_AHEAD`] frames later, run it through the pipeline, whose first stage takes
    /// established flows, with its parse and hints. The table's cache misses then overlap
    /// instead of stalling each frame in turn; below [`crate::fnat::PREFETCH_FROM_SESSIONS`]
    /// live sessions nothing is prefetched, from [`crate::fnat::STREAM_FROM_SESSIONS`] on the
    /// lookups' lines are streamed (kept out of the outer caches). Last, the reply keys of the
    /// burst's new full-NAT sessions go into the index (see `SessionTable::insert_with`): their
    /// lines loaded while the burst went on.
    pub fn process_burst<B: Frames + ?Sized>(
        &mut self,
        rx_port: PortIndex,
        frames: &mut B,
        now_ns: u64,
        verdicts: &mut [Verdict],
    ) {
        let n = frames.len().min(verdicts.len());
        let full_nat = matches!(self.rules.mode, Mode::FullNat);
        if n <= 1 || !(full_nat && self.fnat.prefetches()) {
            // A table small enough to stay in cache, a single frame, or no NAT at all: nothing
            // to overlap, so each frame is parsed right where it is processed.
            let fast = if full_nat && self.fast_path {
                BurstHint::UNPREFETCHED
            } else {
                BurstHint::NONE
            };
            for i in 0..n {
                let parsed = match full_nat {
                    true => packet::parse(frames.data(i)),
                    false => Err(DropReason::UnsupportedEtherType),
                };
                // A frame that did not parse never reaches the stage the hint is for.
                let verdict = self.stage_three(rx_port, frames, i, &parsed, fast, now_ns);
                if let Some(v) = verdicts.get_mut(i) {
                    *v = verdict;
                }
            }
            self.fnat.settle(&mut self.stats);
            return;
        }
        let lookup = self.fnat.burst_prefetch();
        let mut start = 0;
        while start < n {
            let end = n.min(start + BURST_CHUNK);
            let mut parsed = [Err(DropReason::Truncated); BURST_CHUNK];
            let mut hints = [BurstHint::NONE; BURST_CHUNK];
            let m = end - start;
            // A rolling software pipeline, a group of frames at a time: before frames
            // j..j + PREFETCH_GROUP are processed, the group INDEX_AHEAD frames ahead is
            // parsed and its index lines start loading, the group SESSION_AHEAD ahead has its
            // session lines requested (read from its index lines, loaded by now), and so have
            // the index lines of new sessions' deferred reply keys. Each prefetch of a large
            // table misses the TLB and holds up retirement until its page walk is done:
            // issued together, the walks overlap (one prefetch per frame was 52 % of a worker
            // with 10 M sessions; all of a chunk's at once queued behind each other).
            for k in 0..m.min(INDEX_AHEAD) {
                self.stage_one(frames, start + k, &mut parsed[k], &mut hints[k], lookup);
            }
            for h in &mut hints[..m.min(SESSION_AHEAD)] {
                self.fnat.prefetch_session(h, lookup);
            }
            for j in 0..m {
                if j % PREFETCH_GROUP == 0 {
                    for k in j + INDEX_AHEAD..m.min(j + INDEX_AHEAD + PREFETCH_GROUP) {
                        self.stage_one(frames, start + k, &mut parsed[k], &mut hints[k], lookup);
                    }
                    let ahead = j + SESSION_AHEAD;
                    for h in hints[..m].iter_mut().skip(ahead).take(PREFETCH_GROUP) {
                        self.fnat.prefetch_session(h, lookup);
                    }
                    self.fnat.prefetch_deferred();
                }
                let (p, h) = (&parsed[j], hints[j]);
                let verdict = self.stage_three(rx_port, frames, start + j, p, h, now_ns);
                if let Some(v) = verdicts.get_mut(start + j) {
                    *v = verdict;
                }
            }
            start = end;
        }
        self.fnat.settle(&mut self.stats);
    }

    /// Stage 1 for frame `i` of `frames`: parse it once, hash its tuple and start loading the
    /// index line its lookup begins at (a prefetch does not block).
    #[inline(always)]
    fn stage_one<B: Frames + ?Sized>(
        &self,
        frames: &B,
        i: usize,
        parsed: &mut Result<PacketV4, DropReason>,
        hint: &mut BurstHint,
        lookup: Prefetch,
    ) {
        *parsed = packet::parse(frames.data(i));
        *hint = self.fnat.burst_hint(parsed.as_ref().ok());
        if !self.fast_path {
            hint.no_fast_path();
        }
        self.fnat.touch_index(hint, lookup);
    }

    /// Stage 3 for frame `i` of `frames`: its port, the multi-segment check, the pipeline.
    #[inline(always)]
    fn stage_three<B: Frames + ?Sized>(
        &mut self,
        rx_port: PortIndex,
        frames: &mut B,
        i: usize,
        parsed: &Result<PacketV4, DropReason>,
        hint: BurstHint,
        now_ns: u64,
    ) -> Verdict {
        let port = frames.rx_port(i).unwrap_or(rx_port);
        let whole = frames.is_whole(i);
        match frames.frame_mut(i) {
            Some(mut frame) if whole => self.process_parsed(port, &mut frame, parsed, hint, now_ns),
            _ => {
                // Not looked at: counted as the driver's drop, not as received.
                self.stats.count_drop(DropReason::MultiSegment);
                Verdict::Drop(DropReason::MultiSegment)
            }
        }
    }

    /// Stage 3 of [`Worker::process_burst`] for one frame.
    #[inline(always)]
    fn process_parsed<F: Frame>(
        &mut self,
        rx_port: PortIndex,
        frame: &mut F,
        parsed: &Result<PacketV4, DropReason>,
        hint: BurstHint,
        now_ns: u64,
    ) -> Verdict {
        self.stats.received += 1;
        let verdict = match &self.rules.mode {
            Mode::Passthrough { forward } => match forward.get(rx_port as usize).copied().flatten()
            {
                Some(port) => Verdict::Transmit { port },
                None => Verdict::Drop(DropReason::NoForwardRule),
            },
            Mode::FullNat => match parsed {
                Err(DropReason::UnsupportedEtherType)
                    if ether::ethertype(frame.data()) == Ok(ether::ETHERTYPE_ARP) =>
                {
                    self.fnat
                        .arp(rx_port, frame.data_mut(), now_ns, &mut self.stats)
                }
                _ => self
                    .fnat
                    .process(rx_port, frame, parsed, hint, now_ns, &mut self.stats),
            },
        };
        // Nearly every frame is transmitted: one test for it before the table of the rest.
        if let Verdict::Transmit { .. } = verdict {
            self.stats.transmitted += 1;
            return verdict;
        }
        match verdict {
            Verdict::Transmit { .. } => {} // counted above
            Verdict::Redirect { .. } => self.stats.redirected += 1,
            Verdict::ToKernel { .. } => self.stats.to_kernel += 1,
            Verdict::Drop(reason) => self.stats.count_drop(reason),
            // Counted by the engine as consumed or held.
            Verdict::Consumed => {}
        }
        verdict
    }

    /// Sets how many sessions [`Worker::between_bursts`] may end per call (the config's
    /// `expire_budget`).
    pub fn set_expire_budget(&mut self, budget: usize) {
        self.expire_budget = budget;
    }

    /// What the engine does between two rounds of bursts (call it once per poll-loop round,
    /// after the frames it handed out were flushed): [`Worker::housekeeping`] with the
    /// configured budget. Returns how many sessions were ended.
    pub fn between_bursts(&mut self, now_ns: u64) -> usize {
        self.housekeeping(now_ns, self.expire_budget)
    }

    /// Bounded housekeeping between bursts: expires at most `budget` sessions due by `now_ns`
    /// (frees both keys and the local port; a session is reported at most one second after
    /// its deadline, while packets see the exact deadline), and ends sessions of removed
    /// services. Returns how many sessions were ended.
    pub fn housekeeping(&mut self, now_ns: u64, budget: usize) -> usize {
        self.fnat.housekeeping(now_ns, budget, &mut self.stats)
    }
}
