//! The exception path's driver side: each port with `kernel_interface` gets a kernel twin, a
//! TAP device made by DPDK's `net_tap` PMD that carries the port's MAC and addresses. The
//! engine decides which frames are the kernel's (`Verdict::ToKernel`); the workers put them
//! in a bounded ring, and one kernel-path thread (a plain thread, never a worker lcore: the
//! TAP's read and write system calls happen there) writes them to the twin. What the kernel
//! sends on the twin goes the other way: the thread reads it and puts it in a second bounded
//! ring, from which worker 0 sends it out of the port unchanged (its own TX queue: no queue
//! is shared, and no PMD needs an extra one).
//!
//! Every frame is counted once on each side: the workers count `to_kernel`/`from_kernel` and
//! the drops `kernel_ring_full`/`kernel_port_tx_full` (the exit report's `accounted:` line);
//! the thread counts per twin what it moved and what it dropped (`kernel_tx_full`: the twin
//! refused a frame; `from_kernel_ring_full`: the ring toward worker 0 was full;
//! `kernel_stopped`: still in that ring when the dataplane stopped).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use dpdk_bindings::mbuf::Burst;
use dpdk_bindings::port::{RxQueue, TxQueue};
use dpdk_bindings::ring::MbufRing;
use fnat_engine::PortIndex;

/// Slots of each ring between the workers and the kernel-path thread.
pub const KERNEL_RING: u32 = 1024;

/// The kernel-path thread's longest sleep when there is nothing to move: bounds the latency
/// the exception path adds to the first frame after a quiet spell, and its idle cost (one
/// empty read of each twin per sleep).
pub const MAX_IDLE_SLEEP: Duration = Duration::from_micros(500);
/// Its first sleep after the last frame; each further idle round doubles it up to the max.
pub const MIN_IDLE_SLEEP: Duration = Duration::from_micros(10);

/// What the kernel-path thread did for one twin (read by the metrics endpoint and at exit).
#[derive(Debug, Default)]
pub struct TwinCounters {
    /// Frames taken from the workers' ring (the engine's `to_kernel`).
    pub from_workers: AtomicU64,
    /// Frames the twin accepted (delivered to the kernel).
    pub to_twin: AtomicU64,
    /// Frames the twin refused (`kernel_tx_full`).
    pub twin_tx_full: AtomicU64,
    /// Frames read from the twin (sent by the kernel).
    pub from_twin: AtomicU64,
    /// Frames handed to worker 0 to send out of the port.
    pub to_workers: AtomicU64,
    /// Frames dropped because the ring toward worker 0 was full (`from_kernel_ring_full`).
    pub ring_full: AtomicU64,
    /// Frames still in the ring toward worker 0 when the dataplane stopped (`kernel_stopped`).
    pub stopped: AtomicU64,
}

/// A plain copy of [`TwinCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TwinTotals {
    pub from_workers: u64,
    pub to_twin: u64,
    pub twin_tx_full: u64,
    pub from_twin: u64,
    pub to_workers: u64,
    pub ring_full: u64,
    pub stopped: u64,
}

impl TwinCounters {
    pub fn totals(&self) -> TwinTotals {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TwinTotals {
            from_workers: r(&self.from_workers),
            to_twin: r(&self.to_twin),
            twin_tx_full: r(&self.twin_tx_full),
            from_twin: r(&self.from_twin),
            to_workers: r(&self.to_workers),
            ring_full: r(&self.ring_full),
            stopped: r(&self.stopped),
        }
    }
}

impl TwinTotals {
    /// The thread's books close: everything from the workers reached the twin or was
    /// dropped; everything from the twin reached worker 0 or was dropped.
    pub fn balanced(&self) -> bool {
        self.from_workers == self.to_twin + self.twin_tx_full
            && self.from_twin == self.to_workers + self.ring_full + self.stopped
    }
}

/// One port's link to its twin, shared by the workers and the kernel-path thread.
#[derive(Debug)]
pub struct TwinLink {
    /// The engine's index of the port.
    pub port: PortIndex,
    /// The twin's interface name.
    pub name: String,
    /// Workers → thread (multi-producer, single consumer).
    pub to_kernel: Arc<MbufRing>,
    /// Thread → worker 0 (single producer, single consumer).
    pub from_kernel: Arc<MbufRing>,
    pub counters: Arc<TwinCounters>,
}

impl TwinLink {
    /// The rings of port `port`'s twin `name` (created on `socket`).
    pub fn new(port: PortIndex, name: &str, socket: i32) -> Result<TwinLink, String> {
        let ring = |dir: &str, sp: bool| {
            MbufRing::new(&format!("fnat_k{dir}{port}"), KERNEL_RING, socket, sp, true)
                .map_err(|e| format!("creating the kernel ring of port {port}: {e}"))
        };
        Ok(TwinLink {
            port,
            name: name.to_string(),
            to_kernel: Arc::new(ring("in", false)?),
            from_kernel: Arc::new(ring("out", true)?),
            counters: Arc::new(TwinCounters::default()),
        })
    }
}

/// The twin device's own queues (queue 0 of the `net_tap` port), owned by the thread.
pub struct TwinQueues {
    pub link: Arc<TwinLink>,
    pub rx: RxQueue,
    pub tx: TxQueue,
}

/// The running kernel-path thread.
pub struct KernelThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl KernelThread {
    /// Starts the thread serving `twins` (a plain OS thread: the main lcore's CPU set).
    pub fn spawn(twins: Vec<TwinQueues>) -> Result<KernelThread, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("fnat-kernel".into())
            .spawn(move || serve(twins, &flag))
            .map_err(|e| format!("starting the kernel-path thread: {e}"))?;
        Ok(KernelThread {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread (after the workers stopped) and waits for it.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for KernelThread {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// The thread's loop: move frames both ways for every twin; sleep, with a doubling back-off,
/// when a round moved nothing. On stop: the workers have stopped, so what is left in their
/// ring goes to the twin, and what is left in worker 0's ring is counted as `stopped`.
fn serve(mut twins: Vec<TwinQueues>, stop: &AtomicBool) {
    let mut burst = Burst::new();
    let mut sleep = MIN_IDLE_SLEEP;
    while !stop.load(Ordering::Relaxed) {
        let mut moved = 0;
        for t in &mut twins {
            moved += to_twin(t, &mut burst);
            moved += from_twin(t, &mut burst);
        }
        if moved > 0 {
            sleep = MIN_IDLE_SLEEP;
        } else {
            std::thread::sleep(sleep);
            sleep = (sleep * 2).min(MAX_IDLE_SLEEP);
        }
    }
    for t in &mut twins {
        while to_twin(t, &mut burst) > 0 {}
        loop {
            let n = t.link.from_kernel.dequeue(&mut burst);
            if n == 0 {
                break;
            }
            let c = &t.link.counters;
            c.to_workers.fetch_sub(n as u64, Ordering::Relaxed);
            c.stopped.fetch_add(n as u64, Ordering::Relaxed);
            burst.clear();
        }
    }
}

/// Workers' ring → twin. Returns the frames taken.
fn to_twin(t: &mut TwinQueues, burst: &mut Burst) -> usize {
    let n = t.link.to_kernel.dequeue(burst);
    if n == 0 {
        return 0;
    }
    let sent = t.tx.tx_burst(burst);
    let refused = burst.len();
    burst.clear();
    let c = &t.link.counters;
    c.from_workers.fetch_add(n as u64, Ordering::Relaxed);
    c.to_twin.fetch_add(sent as u64, Ordering::Relaxed);
    c.twin_tx_full.fetch_add(refused as u64, Ordering::Relaxed);
    n
}

/// Twin → worker 0's ring. Returns the frames read.
fn from_twin(t: &mut TwinQueues, burst: &mut Burst) -> usize {
    let n = t.rx.rx_burst(burst);
    if n == 0 {
        return 0;
    }
    let queued = t.link.from_kernel.enqueue(burst);
    let refused = burst.len();
    burst.clear();
    let c = &t.link.counters;
    c.from_twin.fetch_add(n as u64, Ordering::Relaxed);
    c.to_workers.fetch_add(queued as u64, Ordering::Relaxed);
    c.ring_full.fetch_add(refused as u64, Ordering::Relaxed);
    n
}
