//! The DPDK side of fnatd: boots EAL, brings up ports with one RX and one TX queue per worker,
//! launches one poll loop per worker lcore, and tears everything down in order.

mod clock;
mod frame;
pub mod kernel;
mod metrics_source;
pub mod replay;
pub mod report;
pub mod sync;
pub mod view;
mod worker_loop;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use dpdk_bindings::eal::Eal;
use dpdk_bindings::lcore;
use dpdk_bindings::mbuf::{Burst, TimestampField};
use dpdk_bindings::mempool::{Mempool, DEFAULT_DATA_ROOM};
use dpdk_bindings::port::{Port, PortConfig, RxQueue, TxQueue};
use dpdk_bindings::ring::MbufRing;
use dpdk_bindings::signals;
use fnat_engine::{NeighTable, PortIndex, Rules, Worker};

use crate::config::{eal_args, AppConfig};
use crate::rules_store::RulesStore;
use clock::Clock;
use report::Totals;
use view::{DriverView, WorkerShared};
pub use worker_loop::{BurstProbe, ProbeFactory};
use worker_loop::{PublishedTime, ReplayEnd, WorkerLoop, WorkerReport};

/// Whether the dataplane runs live or replays captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// Until SIGINT/SIGTERM; "now" from the TSC.
    Live,
    /// Until every input is consumed; "now" from capture timestamps; TX never drops.
    Replay,
}

/// The net_pcap PMD stores a capture's time in the mbuf timestamp field as microseconds
/// (tv_sec * 10^6 + tv_usec); the engine counts nanoseconds.
pub fn capture_timestamp_ns(stored: u64) -> u64 {
    stored.saturating_mul(1_000)
}

/// Boots EAL for `cfg`, runs the dataplane, and cleans up. Returns the totals at exit.
/// With a bound control socket, the control plane serves it while the workers run. With a
/// `probe` factory (`fnatd bench` only), each live worker carries the probe it makes.
pub fn execute(
    cfg: &AppConfig,
    kind: RunKind,
    control: Option<crate::control::BoundSocket>,
    probe: Option<ProbeFactory>,
) -> Result<Totals, String> {
    execute_observed(cfg, kind, control, probe, None)
}

/// [`execute`], calling `progress` with the frames the ports have read so far (the main lcore
/// samples the devices' RX counters while it waits; `fnatd replay --progress`).
pub fn execute_observed(
    cfg: &AppConfig,
    kind: RunKind,
    control: Option<crate::control::BoundSocket>,
    probe: Option<ProbeFactory>,
    progress: Option<&mut dyn FnMut(u64)>,
) -> Result<Totals, String> {
    signals::install().map_err(|e| format!("installing signal handlers: {e}"))?;
    // Kernel twins are for live traffic: a replay makes none.
    let mut ports = cfg.ports.clone();
    if kind == RunKind::Replay {
        for p in &mut ports {
            p.kernel_interface = None;
        }
    }
    let args = eal_args(&cfg.eal, &ports);
    let eal = Eal::init(&args).map_err(|e| format!("EAL init ({}): {e}", args.join(" ")))?;
    let outcome = run_dataplane(cfg, kind, control, probe, progress);
    let cleanup = eal.cleanup().map_err(|e| format!("EAL cleanup: {e}"));
    let totals = outcome?;
    cleanup?;
    Ok(totals)
}

/// Ports that have been configured, stopped and closed in reverse on drop of the guard.
#[derive(Default)]
struct PortsUp {
    ports: Vec<Port>,
    started: Vec<bool>,
}

impl PortsUp {
    fn shutdown(&mut self) {
        for (port, started) in self.ports.iter().zip(self.started.iter_mut()) {
            if *started {
                if let Err(e) = port.stop() {
                    eprintln!("fnatd: stopping port {}: {e}", port.id());
                }
                if let Err(e) = port.close() {
                    eprintln!("fnatd: closing port {}: {e}", port.id());
                }
                *started = false;
            }
        }
    }
}

impl Drop for PortsUp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Set-up, run and teardown of the dataplane, phase by phase (each phase is one function
/// below, as DPDK's l3fwd splits its `main`).
fn run_dataplane(
    cfg: &AppConfig,
    kind: RunKind,
    control: Option<crate::control::BoundSocket>,
    probe: Option<ProbeFactory>,
    progress: Option<&mut dyn FnMut(u64)>,
) -> Result<Totals, String> {
    let d = &cfg.dataplane;
    let workers = usize::from(d.workers);
    let lcores = lcore::worker_lcores();
    if lcores.len() < workers {
        return Err(format!(
            "EAL gave {} worker lcores for {workers} workers",
            lcores.len()
        ));
    }
    let socket = lcore::socket_of(lcore::main_lcore()).max(0);
    let pool = create_pool(cfg, socket)?;
    let (mut up, rules) = start_ports(cfg, kind, &pool, socket)?;
    let (mut twins_up, links, twin_queues) = match kind {
        RunKind::Live => start_twins(cfg, &rules, &pool, socket)?,
        RunKind::Replay => (PortsUp::default(), Vec::new(), Vec::new()),
    };
    let kernel_thread = match twin_queues.is_empty() {
        true => None,
        false => Some(kernel::KernelThread::spawn(twin_queues)?),
    };
    let store = RulesStore::new(rules, workers);
    let queues = claim_queues(&up, workers)?;
    let rings = create_rings(cfg, socket)?;
    let names: Vec<String> = cfg.ports.iter().map(|p| p.name.clone()).collect();
    let shared: Vec<Arc<WorkerShared>> = (0..workers)
        .map(|_| Arc::new(WorkerShared::default()))
        .collect();
    let view = DriverView::new(&shared, names.clone());
    let (sync_service, sync_ends) = start_sync(cfg, kind, &store, &view)?;
    let running = launch_workers(
        cfg,
        kind,
        Launch {
            lcores: &lcores,
            pool: &pool,
            up: &up,
            queues,
            rings: &rings,
            store: &store,
            shared: &shared,
            probe,
            kernel: &links,
            sync: sync_ends,
        },
    )?;
    let supervised = Supervised {
        up: &up,
        pool: &pool,
        rings: &rings,
        shared: &shared,
        progress,
        kernel: &links,
    };
    let reports = supervise(cfg, control, &store, &view, running, supervised)?;
    if let Some(service) = sync_service {
        service.stop();
    }
    // The workers have stopped: the kernel-path thread empties their rings and stops.
    if let Some(thread) = kernel_thread {
        thread.stop();
    }

    let mut totals = collect_totals(&names, &reports, &up, &links);
    twins_up.shutdown();
    up.shutdown();
    drop(links);
    drop(rings);
    // Every mbuf must be home once the ports are closed and the rings freed.
    totals.mbufs_leaked = Some(pool.in_use());
    Ok(totals)
}

/// The mbuf pool every port and worker takes frames from, on the main lcore's socket.
fn create_pool(cfg: &AppConfig, socket: i32) -> Result<Arc<Mempool>, String> {
    let d = &cfg.dataplane;
    Mempool::new_pktmbuf(
        "fnat_mbufs",
        d.mbufs,
        d.mbuf_cache,
        DEFAULT_DATA_ROOM,
        socket,
    )
    .map(Arc::new)
    .map_err(|e| format!("creating the mbuf pool ({} mbufs): {e}", d.mbufs))
}

/// The sync service and each worker's end of its rings (see [`start_sync`]).
type SyncEnds = (
    Option<Arc<sync::SyncService>>,
    Vec<Option<sync::WorkerSync>>,
);

/// Session sync (live runs): the control-side service (which `view` then lists) and each
/// worker's end of its rings; a replay has neither.
fn start_sync(
    cfg: &AppConfig,
    kind: RunKind,
    store: &Arc<RulesStore>,
    view: &DriverView,
) -> Result<SyncEnds, String> {
    let workers = usize::from(cfg.dataplane.workers);
    Ok(match kind {
        RunKind::Live => {
            let (service, ends) = sync::create(cfg.ports.clone(), workers, Arc::clone(store))?;
            view.set_sync(service.clone());
            (Some(service), ends.into_iter().map(Some).collect())
        }
        RunKind::Replay => (None, (0..workers).map(|_| None).collect()),
    })
}

/// The totals of a run whose workers have stopped: their reports, what each device dropped
/// on receive, and the exception path's counters when some port has a kernel twin.
fn collect_totals(
    names: &[String],
    reports: &[WorkerReport],
    up: &PortsUp,
    links: &KernelLinks,
) -> Totals {
    let device_rx_dropped: Vec<u64> = up
        .ports
        .iter()
        .map(|p| p.stats().map_or(0, |s| s.imissed + s.rx_nombuf + s.ierrors))
        .collect();
    let mut totals = Totals::new(names, reports, &device_rx_dropped);
    if !links.iter().all(Option::is_none) {
        totals.kernel = Some(
            links
                .iter()
                .flatten()
                .map(|l| (l.name.clone(), l.counters.totals()))
                .collect(),
        );
    }
    totals
}

/// Configures and starts every port of `cfg` (one RX and one TX queue per worker) and fills
/// in their MACs in the rules the workers start with.
fn start_ports(
    cfg: &AppConfig,
    kind: RunKind,
    pool: &Mempool,
    socket: i32,
) -> Result<(PortsUp, Rules), String> {
    let d = &cfg.dataplane;
    let mut up = PortsUp {
        ports: Vec::new(),
        started: Vec::new(),
    };
    let mut rules: Rules = cfg.rules.clone();
    for (i, spec) in cfg.ports.iter().enumerate() {
        let port = Port::by_name(spec.dpdk_name())
            .map_err(|e| format!("port '{}' (device {}): {e}", spec.name, spec.device))?;
        let conf = PortConfig {
            rx_queues: d.workers,
            tx_queues: d.workers,
            rx_desc: d.rx_desc,
            tx_desc: d.tx_desc,
            rss: d.workers > 1,
            rx_timestamp: kind == RunKind::Replay,
        };
        port.configure(&conf, pool, socket)
            .map_err(|e| format!("configuring port '{}': {e}", spec.name))?;
        up.ports.push(port);
        up.started.push(false);
        port.start()
            .map_err(|e| format!("starting port '{}': {e}", spec.name))?;
        up.started[i] = true;
        // Virtual devices may not support promiscuous mode; the engine filters by MAC anyway.
        let _ = port.promiscuous(true);
        rules.ports[i].mac = match spec.mac {
            Some(mac) => mac,
            None => port
                .mac()
                .map_err(|e| format!("MAC of port '{}': {e}", spec.name))?,
        };
    }
    Ok((up, rules))
}

/// The exception path's set-up: for every port with `kernel_interface`, its `net_tap` twin
/// (one queue each way), given the port's MAC and addresses, and the rings between it and the
/// workers. Returns the twin ports, the links by `PortIndex` (empty without twins), and the
/// twins' queues for the kernel-path thread.
fn start_twins(
    cfg: &AppConfig,
    rules: &Rules,
    pool: &Mempool,
    socket: i32,
) -> Result<(PortsUp, KernelLinks, Vec<kernel::TwinQueues>), String> {
    let mut up = PortsUp::default();
    let mut links: KernelLinks = Vec::new();
    let mut queues = Vec::new();
    if cfg.ports.iter().all(|p| p.kernel_interface.is_none()) {
        return Ok((up, links, queues));
    }
    let d = &cfg.dataplane;
    for (i, spec) in cfg.ports.iter().enumerate() {
        let Some(name) = &spec.kernel_interface else {
            links.push(None);
            continue;
        };
        let what = |e: String| format!("kernel twin '{name}' of port '{}': {e}", spec.name);
        let tap = Port::by_name(&crate::config::twin_device(i)).map_err(|e| what(e.to_string()))?;
        let conf = PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: d.rx_desc,
            tx_desc: d.tx_desc,
            rss: false,
            rx_timestamp: false,
        };
        tap.configure(&conf, pool, socket)
            .map_err(|e| what(e.to_string()))?;
        up.ports.push(tap);
        up.started.push(false);
        // The port's MAC: the peers' ARP caches hold one MAC for the port and its twin.
        tap.set_mac(rules.ports[i].mac)
            .map_err(|e| what(e.to_string()))?;
        tap.start().map_err(|e| what(e.to_string()))?;
        if let Some(s) = up.started.last_mut() {
            *s = true;
        }
        for a in &spec.addresses {
            let cidr = format!("{}/{}", a.addr, a.prefix_len);
            ip_command(&["addr", "replace", &cidr, "dev", name]).map_err(what)?;
        }
        ip_command(&["link", "set", name, "up"]).map_err(what)?;
        let link = Arc::new(kernel::TwinLink::new(i as PortIndex, name, socket)?);
        queues.push(kernel::TwinQueues {
            link: Arc::clone(&link),
            rx: tap.rx_queue(0).map_err(|e| what(e.to_string()))?,
            tx: tap.tx_queue(0).map_err(|e| what(e.to_string()))?,
        });
        links.push(Some(link));
    }
    Ok((up, links, queues))
}

/// Runs `ip ARGS` (iproute2) at set-up, on the main thread: gives a twin its addresses.
fn ip_command(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running `ip {}`: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The exception path's link of each port (by `PortIndex`), `None` for ports without a twin.
type KernelLinks = Vec<Option<Arc<kernel::TwinLink>>>;

/// A worker's RX and TX queue on every port.
type WorkerQueues = (Vec<RxQueue>, Vec<TxQueue>);

/// Queue w of every port belongs to worker w: all claimed before any worker starts, each
/// worker's handles then moved to its lcore.
fn claim_queues(up: &PortsUp, workers: usize) -> Result<Vec<WorkerQueues>, String> {
    (0..workers)
        .map(|w| {
            let queue = w as u16;
            let rx = up
                .ports
                .iter()
                .map(|p| p.rx_queue(queue))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("claiming RX queues of worker {w}: {e}"))?;
            let tx = up
                .ports
                .iter()
                .map(|p| p.tx_queue(queue))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("claiming TX queues of worker {w}: {e}"))?;
            Ok((rx, tx))
        })
        .collect()
}

/// One input ring per worker: any worker may produce, only the owner consumes.
fn create_rings(cfg: &AppConfig, socket: i32) -> Result<Arc<Vec<MbufRing>>, String> {
    let d = &cfg.dataplane;
    let rings = (0..usize::from(d.workers))
        .map(|w| {
            MbufRing::new(
                &format!("fnat_redir{w}"),
                d.redirect_ring,
                socket,
                false,
                true,
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("creating redirect rings: {e}"))?;
    Ok(Arc::new(rings))
}

/// What launching the workers needs from the set-up phases.
struct Launch<'a> {
    lcores: &'a [u32],
    pool: &'a Arc<Mempool>,
    up: &'a PortsUp,
    queues: Vec<WorkerQueues>,
    rings: &'a Arc<Vec<MbufRing>>,
    store: &'a Arc<RulesStore>,
    shared: &'a [Arc<WorkerShared>],
    probe: Option<ProbeFactory>,
    kernel: &'a KernelLinks,
    /// Each worker's end of the session sync rings (live runs).
    sync: Vec<Option<sync::WorkerSync>>,
}

/// What the main lcore watches besides the workers: the ports (replay progress) and what the
/// metrics endpoint reads.
struct Supervised<'a, 'p> {
    up: &'a PortsUp,
    pool: &'a Arc<Mempool>,
    rings: &'a Arc<Vec<MbufRing>>,
    shared: &'a [Arc<WorkerShared>],
    progress: Option<&'p mut dyn FnMut(u64)>,
    kernel: &'a KernelLinks,
}

/// Workers running on their lcores.
struct Running {
    launched: Vec<u32>,
    stop: Arc<AtomicBool>,
    reports: mpsc::Receiver<WorkerReport>,
    workers: usize,
}

impl Running {
    /// Stops every launched worker and waits for it.
    fn stop_and_wait(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for l in &self.launched {
            lcore::wait(*l);
        }
    }
}

/// Builds each worker's engine and poll loop and launches it on its lcore.
fn launch_workers(cfg: &AppConfig, kind: RunKind, mut l: Launch<'_>) -> Result<Running, String> {
    let d = &cfg.dataplane;
    let workers = usize::from(d.workers);
    let rules = l.store.current();
    let max_id =
        l.up.ports
            .iter()
            .map(|p| usize::from(p.id()))
            .max()
            .unwrap_or(0);
    let mut index_of_port_id = vec![PortIndex::MAX; max_id + 1];
    for (i, p) in l.up.ports.iter().enumerate() {
        index_of_port_id[usize::from(p.id())] = i as PortIndex;
    }
    let timestamp = match kind {
        RunKind::Replay => TimestampField::lookup(),
        RunKind::Live => None,
    };
    let replay_heads: Arc<Vec<PublishedTime>> =
        Arc::new((0..workers).map(|_| PublishedTime::new()).collect());
    let (report_tx, report_rx) = mpsc::channel::<WorkerReport>();
    let mut running = Running {
        launched: Vec::with_capacity(workers),
        stop: Arc::new(AtomicBool::new(false)),
        reports: report_rx,
        workers,
    };
    // One neighbour table for all workers: an ARP reply on any queue resolves for everyone.
    let neighbours = Arc::new(NeighTable::new(fnat_engine::neigh::DEFAULT_TABLE_CAPACITY));
    // Live connection counts per real server, shared by the workers' schedulers.
    let load_board = Arc::new(fnat_engine::sched::load::LoadBoard::new(d.workers));
    for ((w, &lcore_id), (rx, tx)) in l.lcores.iter().take(workers).enumerate().zip(l.queues) {
        let mut engine = Worker::with_board(
            w as u16,
            d.workers,
            Arc::clone(&rules),
            Arc::clone(&load_board),
        );
        engine.share_neighbours(Arc::clone(&neighbours));
        // Replay outputs hold only what the captures caused: no gratuitous ARP there.
        engine.set_announce(kind == RunKind::Live);
        engine.set_expire_budget(d.expire_budget as usize);
        engine.set_prefetch(dpdk_bindings::cpu::prefetch0);
        engine.set_prefetch_streaming(dpdk_bindings::cpu::prefetch_non_temporal);
        let twins: Vec<PortIndex> = l
            .kernel
            .iter()
            .enumerate()
            .filter(|(_, k)| k.is_some())
            .map(|(p, _)| p as PortIndex)
            .collect();
        engine.set_kernel_twins(&twins);
        let worker_loop = WorkerLoop {
            engine,
            pool: Arc::clone(l.pool),
            rx,
            tx,
            index_of_port_id: index_of_port_id.clone(),
            rings: Arc::clone(l.rings),
            clock: match kind {
                RunKind::Live => Clock::tsc(),
                RunKind::Replay => Clock::capture(timestamp),
            },
            stop: Arc::clone(&running.stop),
            replay: match kind {
                RunKind::Replay => Some(ReplayEnd {
                    pool: Arc::clone(l.pool),
                    heads: Arc::clone(&replay_heads),
                }),
                RunKind::Live => None,
            },
            store: Arc::clone(l.store),
            shared: Arc::clone(&l.shared[w]),
            probe: l.probe.clone(),
            kernel: l.kernel.clone(),
            kernel_stage: l.kernel.iter().map(|_| Burst::new()).collect(),
            kernel_sender: w == 0,
            sync: l.sync.get_mut(w).and_then(Option::take),
        };
        let report_tx = report_tx.clone();
        let started = lcore::launch(lcore_id, move || {
            let report = worker_loop.run();
            let _ = report_tx.send(report);
            0
        });
        match started {
            Ok(()) => running.launched.push(lcore_id),
            Err(e) => {
                running.stop_and_wait();
                return Err(format!("launching worker {w} on lcore {lcore_id}: {e}"));
            }
        }
    }
    Ok(running)
}

/// The main lcore while the workers run: serves the control socket, waits for a signal
/// (live) or for the workers to finish (replay), samples rates once a second; then stops
/// the workers and collects their reports, in worker order.
fn supervise(
    cfg: &AppConfig,
    control: Option<crate::control::BoundSocket>,
    store: &Arc<RulesStore>,
    view: &Arc<DriverView>,
    running: Running,
    mut sup: Supervised<'_, '_>,
) -> Result<Vec<WorkerReport>, String> {
    let workers = running.workers;
    store.set_workers_running(true);
    view.set_running(true);
    let dataplane_view: Arc<dyn crate::control::DataplaneView> = view.clone();
    let control = match control
        .map(|socket| crate::control::serve(cfg, socket, Arc::clone(store), dataplane_view))
    {
        Some(Err(e)) => {
            running.stop_and_wait();
            return Err(format!("control plane: {e}"));
        }
        Some(Ok(handle)) => Some(handle),
        None => None,
    };
    // The Prometheus endpoint reads what the control plane and the workers already publish.
    let metrics = match (cfg.metrics.listen, control.as_ref()) {
        (Some(listen), Some(control)) => {
            let source = metrics_source::DriverMetrics {
                control: control.querier(),
                workers: sup.shared.to_vec(),
                rings: Arc::clone(sup.rings),
                pool: Arc::clone(sup.pool),
                store: Arc::clone(store),
                kernel: sup.kernel.iter().flatten().cloned().collect(),
            };
            match crate::metrics::start(listen, Arc::new(source)) {
                Ok(server) => Some(server),
                Err(e) => {
                    running.stop_and_wait();
                    return Err(e);
                }
            }
        }
        _ => None,
    };
    // systemd (Type=notify): ready once every port is up and the control socket answers.
    if control.is_some() {
        if let Err(e) = crate::notify::ready(&cfg.control.socket) {
            eprintln!("fnatd: readiness: {e}");
        }
    }

    let mut reports = Vec::with_capacity(workers);
    let mut next_sample = std::time::Instant::now();
    // Set on the first stop signal when `control.withdraw_on_stop_ms` asks to keep forwarding
    // with every VIP withdrawn until then.
    let mut withdrawn_until: Option<std::time::Instant> = None;
    while reports.len() < workers {
        if signals::stop_requested() && withdrawn_until.is_none() {
            if let (Some(c), false) = (control.as_ref(), cfg.control.withdraw_on_stop.is_zero()) {
                c.withdraw_all();
                eprintln!(
                    "fnatd: stopping: every VIP withdrawn; forwarding {} ms more",
                    cfg.control.withdraw_on_stop.as_millis()
                );
            }
            withdrawn_until = Some(std::time::Instant::now() + cfg.control.withdraw_on_stop);
        }
        if withdrawn_until.is_some_and(|t| std::time::Instant::now() >= t) {
            if !running.stop.load(Ordering::SeqCst) {
                // VRRP first: its priority-0 adverts leave through the twins while the
                // workers still carry the twins' frames out.
                if let Some(c) = control.as_ref() {
                    c.stop_vrrp();
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            running.stop.store(true, Ordering::SeqCst);
        }
        if signals::take_reload_request() {
            match control.as_ref().map(|c| c.reload()) {
                Some(Ok(message)) => eprintln!("fnatd: SIGHUP: {message}"),
                Some(Err(message)) => eprintln!("fnatd: SIGHUP: {message}"),
                None => eprintln!("fnatd: SIGHUP: no control plane in this mode; nothing reloaded"),
            }
        }
        if std::time::Instant::now() >= next_sample {
            view.sample_rates();
            next_sample += Duration::from_secs(1);
        }
        if let Some(report_progress) = sup.progress.as_mut() {
            let read: u64 = sup
                .up
                .ports
                .iter()
                .filter_map(|p| p.stats().ok())
                .map(|s| s.ipackets)
                .sum();
            report_progress(read);
        }
        match running.reports.recv_timeout(Duration::from_millis(50)) {
            Ok(report) => reports.push(report),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    running.stop.store(true, Ordering::SeqCst);
    let _ = crate::notify::notify("STOPPING=1");
    store.set_workers_running(false);
    view.set_running(false);
    drop(metrics);
    if let Some(control) = control {
        control.stop();
    }
    for l in &running.launched {
        let rc = lcore::wait(*l);
        if rc != 0 {
            return Err(format!("worker on lcore {l} failed (returned {rc})"));
        }
    }
    if reports.len() < workers {
        return Err(format!(
            "only {} of {workers} workers reported",
            reports.len()
        ));
    }
    reports.sort_by_key(|r| r.worker);
    Ok(reports)
}
