//! The poll loop of one worker lcore: RX bursts from every port and from its redirect ring,
//! through the engine, out to TX queues or to the owning worker's ring. Bounded housekeeping
//! between bursts. No locks, no allocation, no syscalls inside the loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dpdk_bindings::mbuf::{Burst, BURST_MAX};
use dpdk_bindings::mempool::Mempool;
use dpdk_bindings::port::{RxQueue, TxQueue};
use dpdk_bindings::ring::MbufRing;
use dpdk_bindings::time;
use fnat_engine::{Emit, PortIndex, Verdict, Worker, WorkerStats};

use super::clock::Clock;
use super::frame::MbufBurst;
use super::kernel::TwinLink;
use super::view::{WorkerShared, PUBLISH_INTERVAL};
use crate::rules_store::RulesStore;

/// What replay workers share to process all captures in one global time order.
///
/// Each worker publishes the capture time of the oldest frame waiting in its queues
/// (`u64::MAX` once they are all consumed) and processes a frame only when it is the oldest of
/// all workers' (ties: lower worker first). Frames redirected to a worker are handled before
/// its own, and a worker publishes a later time only after flushing its redirects, so a frame
/// is never overtaken by a newer one. Replay ends when every worker is consumed, every ring
/// is empty and every mbuf is back in the pool.
pub struct ReplayEnd {
    pub pool: Arc<Mempool>,
    pub heads: Arc<Vec<PublishedTime>>,
}

/// A worker's published head time, on its own cache line.
#[repr(align(64))]
pub struct PublishedTime(pub std::sync::atomic::AtomicU64);

impl PublishedTime {
    pub fn new() -> Self {
        PublishedTime(std::sync::atomic::AtomicU64::new(0))
    }
}

impl Default for PublishedTime {
    fn default() -> Self {
        Self::new()
    }
}

/// A worker's queues are consumed.
const CONSUMED: u64 = u64::MAX;

/// Everything a worker lcore owns. Built on the main lcore, moved to the worker.
pub struct WorkerLoop {
    pub engine: Worker,
    /// Where frames the engine originates (ARP, released held frames) get their mbufs.
    pub pool: Arc<Mempool>,
    /// This worker's RX queue on every port (claimed for it), indexed by the engine's
    /// `PortIndex`.
    pub rx: Vec<RxQueue>,
    /// This worker's TX queue on every port, indexed likewise.
    pub tx: Vec<TxQueue>,
    /// The engine's `PortIndex` of each DPDK port id (`u16::MAX`: not ours).
    pub index_of_port_id: Vec<PortIndex>,
    /// Input ring of every worker; `rings[w]` is where other workers hand frames to worker w.
    pub rings: Arc<Vec<MbufRing>>,
    pub clock: Clock,
    pub stop: Arc<AtomicBool>,
    pub replay: Option<ReplayEnd>,
    /// Where new rules snapshots appear.
    pub store: Arc<RulesStore>,
    /// Counters and listings this worker shares with the control plane.
    pub shared: Arc<WorkerShared>,
    /// `fnatd bench` only: makes the probe the live loop carries.
    pub probe: Option<ProbeFactory>,
    /// The exception path, by `PortIndex`: the link to the port's kernel twin, if it has one
    /// (empty: no twins).
    pub kernel: Vec<Option<Arc<TwinLink>>>,
    /// Frames staged for each port's kernel ring (by `PortIndex`, like `kernel`).
    pub kernel_stage: Vec<Burst>,
    /// This worker sends what the kernel twins send (worker 0 does).
    pub kernel_sender: bool,
    /// Its end of the session sync rings (live runs).
    pub sync: Option<super::sync::WorkerSync>,
}

/// Instrumentation a live loop can carry around each RX burst from a port (`fnatd bench`:
/// traffic generator and latency probe). `fnatd run`'s loop carries [`NoProbe`], whose calls
/// compile to nothing.
pub trait BurstProbe {
    /// Before the engine sees `rx`; returns what `after` gets back (a TSC reading).
    fn before(&mut self, rx: &mut Burst) -> u64;
    /// After the engine processed the `n` frames of the burst `before` saw.
    fn after(&mut self, engine: &Worker, t0: u64, n: usize);
    /// When the loop ends.
    fn finish(&mut self);
}

/// Makes a worker's probe, before its loop starts (it may prefill the worker's engine).
pub type ProbeFactory =
    Arc<dyn Fn(&mut Worker, &Arc<RulesStore>, u64) -> Box<dyn BurstProbe + Send> + Send + Sync>;

/// The live loop of `fnatd run`: no instrumentation.
struct NoProbe;

impl BurstProbe for NoProbe {
    #[inline(always)]
    fn before(&mut self, _rx: &mut Burst) -> u64 {
        0
    }
    #[inline(always)]
    fn after(&mut self, _engine: &Worker, _t0: u64, _n: usize) {}
    #[inline(always)]
    fn finish(&mut self) {}
}

/// What a worker reports when it stops.
#[derive(Debug, Clone, Default)]
pub struct WorkerReport {
    pub worker: u16,
    pub engine: WorkerStats,
    /// Frames received from each port's queue (by `PortIndex`).
    pub port_rx: Vec<u64>,
    /// Frames each port's TX queue accepted.
    pub port_tx: Vec<u64>,
    /// Frames each port's TX queue refused (counted as `tx_full` drops).
    pub port_tx_dropped: Vec<u64>,
    /// Live loop: TSC cycles spent in loop iterations that did work (received, sent or
    /// originated frames, ended sessions, served a listing). Iterations that found nothing
    /// do not count, so busy cycles over elapsed cycles is the worker's load (0 in replay).
    pub busy_cycles: u64,
}

/// How often a replay retries a TX queue that refused frames before counting them as dropped.
const REPLAY_TX_RETRIES: u32 = 1_000_000;

impl WorkerLoop {
    /// Runs until `stop` is set (live) or the input is consumed (replay). Returns the counters.
    pub fn run(mut self) -> WorkerReport {
        let nports = self.rx.len();
        let mut report = WorkerReport {
            worker: self.engine.id(),
            engine: WorkerStats::default(),
            port_rx: vec![0; nports],
            port_tx: vec![0; nports],
            port_tx_dropped: vec![0; nports],
            busy_cycles: 0,
        };
        // Staging bursts, allocated once before the loop.
        let mut tx: Vec<Burst> = (0..nports).map(|_| Burst::new()).collect();
        let mut redirect: Vec<Burst> = (0..self.rings.len()).map(|_| Burst::new()).collect();
        if self.replay.is_some() {
            self.run_replay(&mut tx, &mut redirect, &mut report);
        } else if let Some(factory) = self.probe.take() {
            let mut probe = factory(&mut self.engine, &self.store, self.clock.now());
            self.run_live(&mut tx, &mut redirect, &mut report, &mut *probe);
            probe.finish();
        } else {
            self.run_live(&mut tx, &mut redirect, &mut report, &mut NoProbe);
        }
        // Last chance for frames the engine still has to send, then whatever waits for a
        // neighbour is dropped (counted as no_neighbour).
        let now = self.clock.now();
        self.originate(now, &mut tx, &mut report);
        self.flush_all(&mut tx, &mut redirect, &mut report);
        self.send_from_kernel(&mut report);
        self.engine.drop_held();
        self.publish(&report);
        report.engine = self.engine.stats().clone();
        report
    }

    /// Live: poll the redirect ring and every port's queue, a burst at a time; between
    /// rounds, send what the engine originates, flush, and let the engine do its housekeeping.
    fn run_live<P: BurstProbe + ?Sized>(
        &mut self,
        tx: &mut [Burst],
        redirect: &mut [Burst],
        report: &mut WorkerReport,
        probe: &mut P,
    ) {
        let me = usize::from(self.engine.id());
        let mut rx = Burst::new();
        let mut next_publish = 0u64;
        // Busy accounting: one TSC read per iteration; the span since the previous read is
        // busy when anything in it did work (the previous iteration's tail, this one's RX).
        let mut last_tsc = time::tsc();
        let mut worked = false;
        while !self.stop.load(Ordering::Relaxed) {
            self.follow_rules();
            // Frames other workers handed us first: they are older than what waits in RX.
            if self.rings[me].dequeue(&mut rx) > 0 {
                worked = true;
                self.handle(&mut rx, tx, redirect, None, report);
            }
            for p in 0..self.rx.len() {
                let n = self.rx[p].rx_burst(&mut rx);
                if n > 0 {
                    worked = true;
                    report.port_rx[p] += n as u64;
                    let t0 = probe.before(&mut rx);
                    self.handle(&mut rx, tx, redirect, Some(p), report);
                    probe.after(&self.engine, t0, n);
                }
            }
            let tsc = time::tsc();
            if worked {
                report.busy_cycles += tsc.wrapping_sub(last_tsc);
            }
            last_tsc = tsc;
            let now = self.clock.at_tsc(tsc);
            worked = self.originate(now, tx, report) > 0;
            self.flush_all(tx, redirect, report);
            worked |= self.send_from_kernel(report) > 0;
            worked |= self.engine.between_bursts(now) > 0;
            if let Some(sync) = &mut self.sync {
                worked |= sync.run(&mut self.engine, now);
            }
            worked |= self.serve_control(now, report, &mut next_publish);
        }
    }

    /// Answers a pending listing query and publishes counters every `PUBLISH_INTERVAL`.
    /// Returns whether a listing was served (work; publishing is too small to count).
    fn serve_control(&mut self, now: u64, report: &WorkerReport, next_publish: &mut u64) -> bool {
        let serving = self.shared.has_query();
        if serving {
            self.shared.serve_query(&self.engine, now);
        }
        if now >= *next_publish {
            self.publish(report);
            *next_publish = now + PUBLISH_INTERVAL.as_nanos() as u64;
        }
        serving
    }

    /// Shares this worker's counters with the control plane (off the packet path).
    fn publish(&self, report: &WorkerReport) {
        self.shared.publish(
            self.engine.stats(),
            &report.port_rx,
            &report.port_tx,
            &report.port_tx_dropped,
            report.busy_cycles,
        );
    }

    /// Replay: frames of all ports and all workers are taken oldest capture timestamp first
    /// (ties: lower worker, then lower port first; see [`ReplayEnd`]), so a capture of the
    /// client side and one of the server side interleave as they happened, and every run
    /// processes the same frames in the same order. Housekeeping runs after every frame, so
    /// expiry follows capture time exactly.
    fn run_replay(&mut self, tx: &mut [Burst], redirect: &mut [Burst], report: &mut WorkerReport) {
        let Some(end) = self.replay.as_ref() else {
            return;
        };
        let (pool, heads) = (Arc::clone(&end.pool), Arc::clone(&end.heads));
        let nports = self.rx.len();
        let me = usize::from(self.engine.id());
        let mut queued: Vec<Burst> = (0..nports).map(|_| Burst::new()).collect();
        let mut one = Burst::new();
        let mut rx = Burst::new();
        // An empty RX means end of capture only if it cannot be a shortage of mbufs.
        let plenty = (nports * heads.len() * 4 * dpdk_bindings::mbuf::BURST_MAX) as u32;
        while !self.stop.load(Ordering::Relaxed) {
            self.follow_rules();
            for (p, q) in queued.iter_mut().enumerate() {
                if q.is_empty() {
                    report.port_rx[p] += self.rx[p].rx_burst(q) as u64;
                }
            }
            let oldest = (0..nports)
                .filter_map(|p| queued[p].get(0).map(|m| (self.clock.timestamp_of(m), p)))
                .min();
            let mine = match oldest {
                Some((ts, _)) => ts,
                None if pool.available() >= plenty => CONSUMED,
                None => continue,
            };
            heads[me].0.store(mine, Ordering::Release);
            // Read the others' times before draining the ring: whatever they redirected
            // before publishing those times is then in the ring.
            let first_other = heads
                .iter()
                .enumerate()
                .filter(|(w, _)| *w != me)
                .map(|(w, h)| (h.0.load(Ordering::Acquire), w))
                .min()
                .unwrap_or((CONSUMED, usize::MAX));
            if self.rings[me].dequeue(&mut rx) > 0 {
                self.handle(&mut rx, tx, redirect, None, report);
                self.flush_all(tx, redirect, report);
            }
            match oldest {
                Some((ts, p)) if (ts, me) < first_other => {
                    if let Some(mbuf) = queued[p].take(0) {
                        if one.push(mbuf).is_ok() {
                            self.handle(&mut one, tx, redirect, Some(p), report);
                        }
                    }
                    // Redirects must be in their rings before this worker publishes a later time.
                    let now = self.clock.now();
                    self.originate(now, tx, report);
                    self.flush_all(tx, redirect, report);
                    self.engine.between_bursts(now);
                }
                Some(_) => std::hint::spin_loop(),
                None => {
                    let all_consumed = heads
                        .iter()
                        .all(|h| h.0.load(Ordering::Acquire) == CONSUMED);
                    if all_consumed && self.rings.iter().all(|r| r.is_empty()) && pool.in_use() == 0
                    {
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
        }
    }

    /// Stages the frames the engine sends on its own (ARP requests, gratuitous ARPs, frames
    /// that waited for their next hop) for TX: each is copied into a fresh mbuf. A full TX
    /// staging burst is flushed once; a second refusal leaves the rest for the next call.
    /// Returns how many frames were staged.
    fn originate(&mut self, now: u64, tx: &mut [Burst], report: &mut WorkerReport) -> usize {
        let mut staged = 0;
        let pool = &self.pool;
        let queues = &mut self.tx;
        let port_tx = &mut report.port_tx;
        self.engine.drain_originated(now, |port, bytes| {
            let p = usize::from(port);
            let Some(burst) = tx.get_mut(p) else {
                return Emit::NoBuffer;
            };
            if burst.is_full() {
                // Flush inline; what the queue refuses stays staged for the next try.
                let sent = queues[p].tx_burst(burst);
                port_tx[p] += sent as u64;
                if burst.is_full() {
                    return Emit::Busy;
                }
            }
            let Some(mut mbuf) = pool.alloc() else {
                return Emit::NoBuffer;
            };
            match mbuf.append(bytes.len()) {
                Some(room) => room.copy_from_slice(bytes),
                None => return Emit::NoBuffer,
            }
            // Room was checked above; if it were not there, the frame stays with the engine.
            match burst.push(mbuf) {
                Ok(()) => {
                    staged += 1;
                    Emit::Sent
                }
                Err(_) => Emit::Busy,
            }
        });
        staged
    }

    /// Switches to a newly published rules snapshot, if there is one, and says so.
    #[inline]
    fn follow_rules(&mut self) {
        let published = self.store.generation();
        if published != self.engine.rules().generation {
            self.engine.update_rules(self.store.current());
            let me = usize::from(self.engine.id());
            self.store.acknowledge(me, self.engine.rules().generation);
        }
    }

    fn flush_all(&mut self, tx: &mut [Burst], redirect: &mut [Burst], report: &mut WorkerReport) {
        for (p, burst) in tx.iter_mut().enumerate() {
            if !burst.is_empty() {
                self.flush_tx(p, burst, report);
            }
        }
        for (w, burst) in redirect.iter_mut().enumerate() {
            if !burst.is_empty() {
                self.flush_redirect(w, burst);
            }
        }
        for p in 0..self.kernel_stage.len() {
            self.flush_kernel(p);
        }
    }

    /// Hands the frames staged for port `p`'s kernel twin to the kernel-path thread's ring;
    /// what the ring refuses is dropped and counted (`kernel_ring_full`).
    fn flush_kernel(&mut self, p: usize) {
        let Some(stage) = self.kernel_stage.get_mut(p) else {
            return;
        };
        if stage.is_empty() {
            return;
        }
        if let Some(Some(link)) = self.kernel.get(p) {
            link.to_kernel.enqueue(stage);
        }
        let refused = stage.len();
        if refused > 0 {
            self.engine.kernel_failed(refused as u64);
            stage.clear();
        }
    }

    /// Stages a frame with a `ToKernel` verdict for port `p`'s twin.
    fn stage_for_kernel(&mut self, p: usize, mbuf: dpdk_bindings::mbuf::Mbuf) {
        let Some(stage) = self.kernel_stage.get_mut(p) else {
            // No twin (the engine only says ToKernel for ports with one).
            self.engine.kernel_failed(1);
            return;
        };
        if let Err(mbuf) = stage.push(mbuf) {
            self.flush_kernel(p);
            if let Some(stage) = self.kernel_stage.get_mut(p) {
                if stage.push(mbuf).is_err() {
                    self.engine.kernel_failed(1);
                }
            }
        }
    }

    /// Worker 0: sends what the kernel twins sent out of their ports, unchanged (a burst per
    /// twin and round). Returns how many frames were taken.
    fn send_from_kernel(&mut self, report: &mut WorkerReport) -> usize {
        if !self.kernel_sender || self.kernel.is_empty() {
            return 0;
        }
        let mut taken = 0;
        let mut burst = Burst::new();
        for p in 0..self.kernel.len() {
            let Some(Some(link)) = self.kernel.get(p) else {
                continue;
            };
            let n = link.from_kernel.dequeue(&mut burst);
            if n == 0 {
                continue;
            }
            let sent = self.tx[p].tx_burst(&mut burst);
            let refused = burst.len();
            burst.clear();
            report.port_tx[p] += sent as u64;
            report.port_tx_dropped[p] += refused as u64;
            self.engine.from_kernel(n as u64, refused as u64);
            taken += n;
        }
        taken
    }

    /// Hands the burst `rx` (from port `rx_port`, or from the redirect ring when `None`) to
    /// the engine and carries out its verdicts: stage for TX, hand to the owning worker, or
    /// free.
    fn handle(
        &mut self,
        rx: &mut Burst,
        tx: &mut [Burst],
        redirect: &mut [Burst],
        rx_port: Option<usize>,
        report: &mut WorkerReport,
    ) {
        let mut verdicts = [Verdict::Consumed; BURST_MAX];
        let n = rx.len().min(BURST_MAX);
        self.decide(rx, rx_port, &mut verdicts[..n]);
        self.carry_out(rx, &verdicts[..n], tx, redirect, rx_port, report);
    }

    /// The engine's verdicts on the first `verdicts.len()` frames of `rx`. Live: the burst at
    /// once, at one clock reading. Replay: one frame at a time, each at its own capture time.
    #[inline]
    fn decide(&mut self, rx: &mut Burst, rx_port: Option<usize>, verdicts: &mut [Verdict]) {
        let index_of_port_id = match rx_port {
            Some(_) => None,
            None => Some(&self.index_of_port_id[..]),
        };
        let port = rx_port.map_or(0, |p| p as PortIndex);
        if self.replay.is_some() {
            for (i, v) in verdicts.iter_mut().enumerate() {
                let mbufs = &mut rx.as_mut_slice()[i..=i];
                if let Some(m) = mbufs.first() {
                    self.clock.observe(m);
                }
                let mut one = MbufBurst {
                    mbufs,
                    index_of_port_id,
                };
                let now = self.clock.now();
                self.engine
                    .process_burst(port, &mut one, now, std::slice::from_mut(v));
            }
        } else {
            // Live: one clock read per burst (a TSC read and a conversion per packet cost ~8%).
            let now = self.clock.now();
            let mut burst = MbufBurst {
                mbufs: rx.as_mut_slice(),
                index_of_port_id,
            };
            self.engine.process_burst(port, &mut burst, now, verdicts);
        }
    }

    /// Carries out the verdicts on the frames of `rx` (the first `verdicts.len()` of them;
    /// any beyond are freed uncounted, as the engine never saw them).
    #[inline]
    fn carry_out(
        &mut self,
        rx: &mut Burst,
        verdicts: &[Verdict],
        tx: &mut [Burst],
        redirect: &mut [Burst],
        rx_port: Option<usize>,
        report: &mut WorkerReport,
    ) {
        for (mut mbuf, &verdict) in rx.drain().zip(verdicts) {
            match verdict {
                Verdict::Transmit { port } => {
                    let p = usize::from(port);
                    if let Err(mbuf) = tx[p].push(mbuf) {
                        self.flush_tx(p, &mut tx[p], report);
                        if tx[p].push(mbuf).is_err() {
                            self.engine.tx_failed(1);
                            report.port_tx_dropped[p] += 1;
                        }
                    }
                }
                Verdict::Redirect { worker } => {
                    // The owner needs the RX port, and some PMDs (net_ring) leave it unset.
                    if let Some(p) = rx_port {
                        mbuf.set_port(self.rx[p].port().id());
                    }
                    let w = usize::from(worker);
                    match redirect.get_mut(w) {
                        Some(burst) => {
                            if let Err(mbuf) = burst.push(mbuf) {
                                self.flush_redirect(w, burst);
                                if burst.push(mbuf).is_err() {
                                    self.engine.redirect_failed(1);
                                }
                            }
                        }
                        None => self.engine.redirect_failed(1),
                    }
                }
                Verdict::ToKernel { port } => self.stage_for_kernel(usize::from(port), mbuf),
                // Dropped (counted), or taken by the engine (ARP learned, frame held).
                Verdict::Drop(_) | Verdict::Consumed => drop(mbuf),
            }
        }
    }

    /// Sends what is staged for port `p`. Live: what the queue refuses is dropped and counted.
    /// Replay: retried, because a replay must lose nothing.
    fn flush_tx(&mut self, p: usize, burst: &mut Burst, report: &mut WorkerReport) {
        let mut sent = self.tx[p].tx_burst(burst);
        if self.replay.is_some() {
            let mut tries = 0;
            while !burst.is_empty() && tries < REPLAY_TX_RETRIES {
                sent += self.tx[p].tx_burst(burst);
                tries += 1;
            }
        }
        report.port_tx[p] += sent as u64;
        let refused = burst.len();
        if refused > 0 {
            self.engine.tx_failed(refused as u64);
            report.port_tx_dropped[p] += refused as u64;
            burst.clear();
        }
    }

    fn flush_redirect(&mut self, w: usize, burst: &mut Burst) {
        self.rings[w].enqueue(burst);
        let refused = burst.len();
        if refused > 0 {
            self.engine.redirect_failed(refused as u64);
            burst.clear();
        }
    }
}
