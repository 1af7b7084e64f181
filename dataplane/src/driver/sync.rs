//! The session sync service: a control-side thread (never a worker) between the workers'
//! sync rings and the sync group on a port's kernel twin.
//!
//! ```text
//! worker w: engine outbox ──drain──► out[w] (bounded, lock-free) ──► service ──UDP──► 224.0.0.81:8848
//! worker w: install_synced ◄── install[w] (bounded) ◄── sync_owner ◄── decode ◄──UDP── group
//! ```
//!
//! Workers only `try_send`/`try_recv` on bounded crossbeam channels (array flavour: no lock,
//! no allocation, no system call; the service never blocks on them, so no waker is ever
//! registered) and drop + count when full. The service packs entries into messages up to
//! maxlen and sends a message when it is full or its first entry waited [`FLUSH_AFTER`]
//! (the kernel waits up to 2 s; a failover wants its sessions sooner). A daemon that follows
//! a VRRP instance sends only while the instance is MASTER (master daemon) or receives only
//! while it is not (backup daemon). A backup that starts receiving asks the master for its
//! whole table (fnat's resync request, which a kernel master ignores: see `fnat_sync`).

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use fnat_control::config::PortSpec;
use fnat_engine::fnat::sync::{sync_owner, Installed, SyncReject, OUTBOX_CAPACITY};
use fnat_engine::Worker;
use fnat_proto::sync::{SyncDaemon, SyncDaemonStatus, SyncDaemons, SyncRole, SyncStatus};
use fnat_sync::{Conn, Encoder, Message, SyncRules};
use parking_lot::Mutex;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};

use crate::rules_store::RulesStore;

/// Entries each worker's ring holds toward the service, and from it.
pub const RING: usize = 4096;
/// Entries a worker installs per loop iteration (bounded work between bursts).
const INSTALL_BUDGET: usize = 64;
/// Arena slots a worker walks per loop iteration during a full resync.
const RESYNC_BUDGET: usize = 2048;
/// A message waits at most this long for more entries.
pub const FLUSH_AFTER: Duration = Duration::from_millis(100);
/// The service's poll period when idle.
const TICK: Duration = Duration::from_millis(2);
/// A backup repeats its resync request until a message arrives, this often, at most
/// [`RESYNC_TRIES`] times (a master with no sessions sends nothing back).
const RESYNC_RETRY: Duration = Duration::from_secs(2);
const RESYNC_TRIES: u32 = 3;

/// What one worker shares with the service (atomics only: the worker never waits).
pub struct WorkerSyncShared {
    /// Export on (a master daemon is active).
    export: AtomicBool,
    /// The kernel's `sync_refresh_period` export runs with (seconds, 0: off).
    refresh_period_s: AtomicU32,
    /// A master and a backup daemon are active at once (active peers): export also sends
    /// each connection at its first reply (`SyncRules::active_peers`).
    peers: AtomicBool,
    /// A full resync was asked for: the worker walks its table once.
    resync: AtomicBool,
    installed: AtomicU64,
    refreshed: AtomicU64,
    rejected: [AtomicU64; SyncReject::ALL.len()],
    /// Entries noted, and dropped (outbox or ring full), as the engine counts them.
    noted: AtomicU64,
    dropped: AtomicU64,
}

impl Default for WorkerSyncShared {
    fn default() -> Self {
        WorkerSyncShared {
            export: AtomicBool::new(false),
            refresh_period_s: AtomicU32::new(0),
            peers: AtomicBool::new(false),
            resync: AtomicBool::new(false),
            installed: AtomicU64::new(0),
            refreshed: AtomicU64::new(0),
            rejected: std::array::from_fn(|_| AtomicU64::new(0)),
            noted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }
}

/// A worker's end of the sync rings (moved into its loop).
pub struct WorkerSync {
    out: Sender<Conn>,
    install: Receiver<Conn>,
    shared: Arc<WorkerSyncShared>,
    export_on: bool,
    /// The refresh period and peer rule export was last turned on with.
    refresh_on: (u32, bool),
    resync_cursor: Option<usize>,
    /// (noted, dropped) as last published.
    published: (u64, u64),
}

impl WorkerSync {
    /// Between bursts: follows the export switch, hands noted entries to the service,
    /// installs what it sent (bounded), advances a full resync. Returns whether it did work.
    pub fn run(&mut self, engine: &mut Worker, now: u64) -> bool {
        let mut worked = false;
        let on = self.shared.export.load(Ordering::Relaxed);
        let refresh = (
            self.shared.refresh_period_s.load(Ordering::Relaxed),
            self.shared.peers.load(Ordering::Relaxed),
        );
        if on != self.export_on || refresh != self.refresh_on {
            // Allocates the outbox (and, with a refresh period, the per-slot sync times)
            // when turned on: a rare control event.
            engine.set_sync(on.then_some(SyncRules {
                refresh_period_s: refresh.0,
                active_peers: refresh.1,
                ..SyncRules::default()
            }));
            self.export_on = on;
            self.refresh_on = refresh;
        }
        // A load first: the read-modify-write only when a resync was asked for.
        if self.shared.resync.load(Ordering::Relaxed)
            && self.shared.resync.swap(false, Ordering::Relaxed)
            && on
        {
            self.resync_cursor = Some(0);
        }
        // A full resync advances only while the ring has room for what it notes: the
        // service drains it every tick, the table waits rather than drops.
        if let Some(from) = self
            .resync_cursor
            .filter(|_| self.out.len() + OUTBOX_CAPACITY <= RING)
        {
            let next = engine.sync_export_all(from, RESYNC_BUDGET, now);
            let capacity = engine.fullnat().table().capacity();
            self.resync_cursor = (next < capacity).then_some(next);
            worked = true;
        }
        let out = &self.out;
        engine.drain_sync(|c| out.try_send(*c).is_ok());
        for _ in 0..INSTALL_BUDGET {
            let Ok(c) = self.install.try_recv() else {
                break;
            };
            worked = true;
            match engine.install_synced(&c, now) {
                Ok(Installed::New) => self.shared.installed.fetch_add(1, Ordering::Relaxed),
                Ok(Installed::Refreshed) => self.shared.refreshed.fetch_add(1, Ordering::Relaxed),
                Err(r) => {
                    let i = SyncReject::ALL.iter().position(|x| *x == r).unwrap_or(0);
                    self.shared.rejected[i].fetch_add(1, Ordering::Relaxed)
                }
            };
        }
        // Published only when they change: no store to the shared line on idle iterations.
        let counts = engine.sync_counts();
        if counts != self.published {
            self.shared.noted.store(counts.0, Ordering::Relaxed);
            self.shared.dropped.store(counts.1, Ordering::Relaxed);
            self.published = counts;
        }
        worked
    }
}

/// Service-side counters.
#[derive(Default)]
struct Counters {
    sent_messages: AtomicU64,
    sent_conns: AtomicU64,
    send_errors: AtomicU64,
    received_messages: AtomicU64,
    received_conns: AtomicU64,
    install_ring_drops: AtomicU64,
    resync_requests_sent: AtomicU64,
    resync_requests_received: AtomicU64,
    /// `rejected_<reason>` of what the service itself refuses (decode, syncid, routing).
    rejected: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    fn reject(&self, reason: &str) {
        *self
            .rejected
            .lock()
            .entry(format!("rejected_{reason}"))
            .or_default() += 1;
    }
}

struct Shared {
    ports: Vec<PortSpec>,
    workers: Vec<Arc<WorkerSyncShared>>,
    install: Vec<Sender<Conn>>,
    store: Arc<RulesStore>,
    desired: Mutex<(u64, SyncDaemons)>,
    vrrp: Mutex<HashMap<String, bool>>,
    vrrp_generation: AtomicU64,
    counters: Counters,
    status: Mutex<Vec<SyncDaemonStatus>>,
    stop: AtomicBool,
}

/// The running service (one per dataplane); [`SyncService::stop`] ends its thread.
pub struct SyncService {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Makes the service and each worker's end of its rings.
pub fn create(
    ports: Vec<PortSpec>,
    workers: usize,
    store: Arc<RulesStore>,
) -> Result<(Arc<SyncService>, Vec<WorkerSync>), String> {
    let mut ends = Vec::with_capacity(workers);
    let mut outs = Vec::with_capacity(workers);
    let mut installs = Vec::with_capacity(workers);
    let mut shared_w = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (out_tx, out_rx) = crossbeam_channel::bounded(RING);
        let (in_tx, in_rx) = crossbeam_channel::bounded(RING);
        let s = Arc::new(WorkerSyncShared::default());
        ends.push(WorkerSync {
            out: out_tx,
            install: in_rx,
            shared: Arc::clone(&s),
            export_on: false,
            refresh_on: (0, false),
            resync_cursor: None,
            published: (0, 0),
        });
        outs.push(out_rx);
        installs.push(in_tx);
        shared_w.push(s);
    }
    let shared = Arc::new(Shared {
        ports,
        workers: shared_w,
        install: installs,
        store,
        desired: Mutex::new((0, SyncDaemons::default())),
        vrrp: Mutex::new(HashMap::new()),
        vrrp_generation: AtomicU64::new(0),
        counters: Counters::default(),
        status: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    });
    let thread_shared = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("fnat-sync".into())
        .spawn(move || serve(&thread_shared, outs))
        .map_err(|e| format!("starting the sync thread: {e}"))?;
    Ok((
        Arc::new(SyncService {
            shared,
            thread: Mutex::new(Some(thread)),
        }),
        ends,
    ))
}

impl SyncService {
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Drop for SyncService {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fnat_control::control::SyncControl for SyncService {
    fn configure(&self, daemons: &SyncDaemons) -> Result<(), String> {
        daemons.validate()?;
        for d in [&daemons.master, &daemons.backup].into_iter().flatten() {
            if fnat_control::config::sync_twin(&self.shared.ports, &d.interface).is_none() {
                return Err(format!(
                    "sync interface '{}' is not an fnatd port with a kernel_interface, nor a \
                     kernel twin",
                    d.interface
                ));
            }
        }
        let mut desired = self.shared.desired.lock();
        desired.0 += 1;
        desired.1 = daemons.clone();
        Ok(())
    }

    fn vrrp_state(&self, instance: &str, master: bool) {
        self.shared.vrrp.lock().insert(instance.to_string(), master);
        self.shared.vrrp_generation.fetch_add(1, Ordering::SeqCst);
    }

    fn status(&self) -> SyncStatus {
        let s = &self.shared;
        let c = &s.counters;
        let mut counters: BTreeMap<String, u64> = c.rejected.lock().clone();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for (name, v) in [
            ("sent_messages", load(&c.sent_messages)),
            ("sent_conns", load(&c.sent_conns)),
            ("send_errors", load(&c.send_errors)),
            ("received_messages", load(&c.received_messages)),
            ("received_conns", load(&c.received_conns)),
            ("install_ring_drops", load(&c.install_ring_drops)),
            ("resync_requests_sent", load(&c.resync_requests_sent)),
            (
                "resync_requests_received",
                load(&c.resync_requests_received),
            ),
        ] {
            counters.insert(name.into(), v);
        }
        let sum = |f: &dyn Fn(&WorkerSyncShared) -> u64| s.workers.iter().map(|w| f(w)).sum();
        counters.insert("installed".into(), sum(&|w| load(&w.installed)));
        counters.insert("refreshed".into(), sum(&|w| load(&w.refreshed)));
        counters.insert("noted".into(), sum(&|w| load(&w.noted)));
        counters.insert("ring_drops".into(), sum(&|w| load(&w.dropped)));
        for (i, r) in SyncReject::ALL.iter().enumerate() {
            let n: u64 = sum(&|w| load(&w.rejected[i]));
            *counters
                .entry(format!("rejected_{}", r.name()))
                .or_default() += n;
        }
        SyncStatus {
            daemons: s.status.lock().clone(),
            counters,
        }
    }
}

/// One daemon as the thread runs it.
struct Daemon {
    role: SyncRole,
    cfg: SyncDaemon,
    twin: String,
    addr: Option<Ipv4Addr>,
    socket: Option<UdpSocket>,
    error: Option<String>,
    active: bool,
    maxlen: usize,
    encoder: Encoder,
    pending_since: Option<Instant>,
    /// Backup: when it last asked for a resync, and whether anything has arrived since.
    asked: Option<Instant>,
    tries: u32,
    heard: bool,
}

impl Daemon {
    fn new(role: SyncRole, cfg: SyncDaemon, ports: &[PortSpec]) -> Daemon {
        let (twin, addr) = fnat_control::config::sync_twin(ports, &cfg.interface)
            .unwrap_or_else(|| (cfg.interface.clone(), None));
        let maxlen = match cfg.maxlen {
            0 => fnat_sync::DEFAULT_MAXLEN,
            l => usize::from(l),
        };
        let encoder = Encoder::new(cfg.syncid, maxlen);
        let mut d = Daemon {
            role,
            cfg,
            twin,
            addr,
            socket: None,
            error: None,
            active: false,
            maxlen: encoder.maxlen(),
            encoder,
            pending_since: None,
            asked: None,
            tries: 0,
            heard: false,
        };
        d.open();
        d
    }

    /// Opens the daemon's socket on the twin: bound to the sync port, member of the group,
    /// sending to it with the daemon's TTL and no loopback.
    fn open(&mut self) {
        match open_socket(&self.cfg, &self.twin, self.addr) {
            Ok(s) => {
                self.socket = Some(s);
                self.error = None;
            }
            Err(e) => {
                self.socket = None;
                self.error = Some(format!("{}: {e}", self.twin));
            }
        }
    }

    fn group(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.cfg.group, self.cfg.port)
    }

    fn send(&mut self, bytes: &[u8], counters: &Counters) -> bool {
        let Some(s) = &self.socket else {
            counters.send_errors.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        match s.send_to(bytes, self.group()) {
            Ok(_) => true,
            Err(_) => {
                counters.send_errors.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    fn flush(&mut self, counters: &Counters) {
        if self.encoder.is_empty() {
            return;
        }
        let n = self.encoder.len() as u64;
        let msg = self.encoder.message().to_vec();
        if self.send(&msg, counters) {
            counters.sent_messages.fetch_add(1, Ordering::Relaxed);
            counters.sent_conns.fetch_add(n, Ordering::Relaxed);
        }
        self.encoder.clear();
        self.pending_since = None;
    }

    fn status(&self) -> SyncDaemonStatus {
        SyncDaemonStatus {
            role: self.role,
            daemon: self.cfg.clone(),
            twin: self.twin.clone(),
            active: self.active,
            maxlen: self.maxlen as u16,
            error: self.error.clone(),
        }
    }
}

fn open_socket(cfg: &SyncDaemon, twin: &str, addr: Option<Ipv4Addr>) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(twin.as_bytes()))?;
    s.bind(&SockAddr::from(SocketAddrV4::new(
        Ipv4Addr::UNSPECIFIED,
        cfg.port,
    )))?;
    let ifindex = std::fs::read_to_string(format!("/sys/class/net/{twin}/ifindex"))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok());
    let iface = match (ifindex, addr) {
        (Some(i), _) => InterfaceIndexOrAddress::Index(i),
        (None, Some(a)) => InterfaceIndexOrAddress::Address(a),
        (None, None) => return Err(std::io::Error::other(format!("interface {twin} not found"))),
    };
    s.join_multicast_v4_n(&cfg.group, &iface)?;
    // The bound device picks the output interface; the address too where known.
    if let Some(a) = addr {
        s.set_multicast_if_v4(&a)?;
    }
    s.set_multicast_ttl_v4(u32::from(cfg.ttl))?;
    s.set_multicast_loop_v4(false)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// The thread: reconciles the daemons with the desired config and VRRP states, moves entries
/// from the workers' rings to the group, and from the group to the workers.
fn serve(shared: &Shared, outs: Vec<Receiver<Conn>>) {
    let mut daemons: Vec<Daemon> = Vec::new();
    let mut config_gen = u64::MAX;
    let mut vrrp_gen = u64::MAX;
    let mut buf = vec![0u8; 65536];
    let mut retry_open = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        // 1. Config.
        {
            let desired = shared.desired.lock();
            if desired.0 != config_gen {
                config_gen = desired.0;
                let (_, d) = &*desired;
                for w in &shared.workers {
                    w.refresh_period_s
                        .store(d.sync_refresh_period, Ordering::Relaxed);
                }
                daemons = [(SyncRole::Master, &d.master), (SyncRole::Backup, &d.backup)]
                    .into_iter()
                    .filter_map(|(role, c)| c.clone().map(|c| Daemon::new(role, c, &shared.ports)))
                    .collect();
                vrrp_gen = u64::MAX;
            }
        }
        if now >= retry_open {
            for d in daemons.iter_mut().filter(|d| d.socket.is_none()) {
                d.open();
            }
            retry_open = now + Duration::from_secs(1);
        }
        // 2. Who is active.
        let vg = shared.vrrp_generation.load(Ordering::SeqCst);
        if vg != vrrp_gen {
            vrrp_gen = vg;
            let vrrp = shared.vrrp.lock().clone();
            for d in &mut daemons {
                let master = d
                    .cfg
                    .vrrp_instance
                    .as_ref()
                    .map(|i| vrrp.get(i).copied().unwrap_or(false));
                let active = match (d.role, master) {
                    (_, None) => true,
                    (SyncRole::Master, Some(m)) => m,
                    (SyncRole::Backup, Some(m)) => !m,
                };
                if active && !d.active && d.role == SyncRole::Backup {
                    d.asked = None;
                    d.tries = 0;
                    d.heard = false;
                }
                d.active = active;
            }
        }
        let exporting = daemons
            .iter()
            .any(|d| d.role == SyncRole::Master && d.active);
        let peers = exporting
            && daemons
                .iter()
                .any(|d| d.role == SyncRole::Backup && d.active);
        for w in &shared.workers {
            w.export.store(exporting, Ordering::Relaxed);
            w.peers.store(peers, Ordering::Relaxed);
        }
        // 3. Send.
        let mut sent = false;
        if let Some(m) = daemons
            .iter_mut()
            .find(|d| d.role == SyncRole::Master && d.active)
        {
            for rx in &outs {
                while let Ok(c) = rx.try_recv() {
                    if !m.encoder.push(&c) {
                        m.flush(&shared.counters);
                        m.encoder.push(&c);
                        sent = true;
                    }
                    m.pending_since.get_or_insert(now);
                }
            }
            if m.pending_since
                .is_some_and(|t| now.duration_since(t) >= FLUSH_AFTER)
            {
                m.flush(&shared.counters);
                sent = true;
            }
        } else {
            // Nothing sends: whatever the workers noted before export stopped is dropped.
            for rx in &outs {
                while rx.try_recv().is_ok() {}
            }
        }
        // 4. Ask for a resync (an active backup that has heard nothing yet).
        for d in daemons
            .iter_mut()
            .filter(|d| d.role == SyncRole::Backup && d.active && !d.heard)
        {
            if d.tries < RESYNC_TRIES
                && d.asked
                    .is_none_or(|t| now.duration_since(t) >= RESYNC_RETRY)
            {
                d.tries += 1;
                let req = fnat_sync::resync_request(d.cfg.syncid);
                if d.send(&req, &shared.counters) {
                    shared
                        .counters
                        .resync_requests_sent
                        .fetch_add(1, Ordering::Relaxed);
                }
                d.asked = Some(now);
            }
        }
        // 5. Receive.
        let mut got = false;
        for i in 0..daemons.len() {
            for _ in 0..64 {
                let Some(s) = &daemons[i].socket else {
                    break;
                };
                let n = match s.recv_from(&mut buf) {
                    Ok((n, _)) => n,
                    Err(_) => break,
                };
                got = true;
                receive(shared, &mut daemons, &buf[..n]);
            }
        }
        if !sent && !got {
            std::thread::sleep(TICK);
        }
        *shared.status.lock() = daemons.iter().map(Daemon::status).collect();
    }
}

/// One datagram from daemon `i`'s socket.
fn receive(shared: &Shared, daemons: &mut [Daemon], bytes: &[u8]) {
    let c = &shared.counters;
    let msg = match fnat_sync::decode(bytes) {
        Ok(m) => m,
        Err(e) => {
            c.reject(&format!("message_{}", e.name()));
            return;
        }
    };
    match msg {
        Message::ResyncRequest { syncid } => {
            c.resync_requests_received.fetch_add(1, Ordering::Relaxed);
            let master = daemons
                .iter()
                .any(|d| d.role == SyncRole::Master && d.active && syncid_ok(d, syncid));
            if master {
                for w in &shared.workers {
                    w.resync.store(true, Ordering::Relaxed);
                }
            }
        }
        Message::Conns { syncid, conns } => {
            let Some(backup) = daemons
                .iter_mut()
                .find(|d| d.role == SyncRole::Backup && d.active)
            else {
                return;
            };
            if !syncid_ok(backup, syncid) {
                c.reject("syncid");
                return;
            }
            backup.heard = true;
            c.received_messages.fetch_add(1, Ordering::Relaxed);
            c.received_conns
                .fetch_add(conns.len() as u64, Ordering::Relaxed);
            let rules = shared.store.current();
            let workers = shared.workers.len() as u16;
            for conn in conns {
                let conn = match conn {
                    Ok(conn) => conn,
                    Err(r) => {
                        c.reject(r.name());
                        continue;
                    }
                };
                match sync_owner(&rules, workers, &conn) {
                    Ok(w) => match shared.install.get(usize::from(w)).map(|t| t.try_send(conn)) {
                        Some(Ok(())) => {}
                        Some(Err(TrySendError::Full(_) | TrySendError::Disconnected(_))) | None => {
                            c.install_ring_drops.fetch_add(1, Ordering::Relaxed);
                        }
                    },
                    Err(r) => c.reject(r.name()),
                }
            }
        }
    }
}

/// The kernel's check: a daemon with syncid 0 takes every message.
fn syncid_ok(d: &Daemon, syncid: u8) -> bool {
    d.cfg.syncid == 0 || d.cfg.syncid == syncid
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnat_control::control::SyncControl;

    fn wait(what: &str, mut cond: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("timed out waiting for {what}");
    }

    /// keepalived's `lvs_sync_daemon IF VI_1`: the master daemon sends (and the workers
    /// export) only while VI_1 is MASTER; the backup daemon receives otherwise.
    #[test]
    fn daemons_follow_their_vrrp_instance() {
        let ports = vec![PortSpec {
            name: "lan".into(),
            device: "net_null0".into(),
            mac: None,
            addresses: Vec::new(),
            // No such interface here: the daemons report why they have no socket, and still
            // follow the VRRP state.
            kernel_interface: Some("fnat-no-such0".into()),
        }];
        let store = RulesStore::new(fnat_engine::Rules::passthrough(Vec::new(), Vec::new()), 1);
        let (service, ends) = create(ports, 1, store).unwrap();
        let mut d = SyncDaemon::new("lan");
        d.vrrp_instance = Some("VI_1".into());
        let daemons = SyncDaemons {
            master: Some(d.clone()),
            backup: Some(d),
            ..Default::default()
        };
        service.configure(&daemons).unwrap();
        let active = |role: SyncRole| {
            service
                .status()
                .daemons
                .iter()
                .find(|s| s.role == role)
                .map(|s| s.active)
        };
        wait("backup first (VI_1 not MASTER yet)", || {
            active(SyncRole::Backup) == Some(true) && active(SyncRole::Master) == Some(false)
        });
        assert!(!ends[0].shared.export.load(Ordering::Relaxed));
        assert!(service.status().daemons[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("fnat-no-such0")));
        service.vrrp_state("VI_1", true);
        wait("master while VI_1 is MASTER", || {
            active(SyncRole::Master) == Some(true) && active(SyncRole::Backup) == Some(false)
        });
        assert!(
            ends[0].shared.export.load(Ordering::Relaxed),
            "workers export"
        );
        service.vrrp_state("VI_1", false);
        wait("backup again", || active(SyncRole::Backup) == Some(true));
        assert!(!ends[0].shared.export.load(Ordering::Relaxed));
        // Another instance changes nothing.
        service.vrrp_state("VI_2", true);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(active(SyncRole::Master), Some(false));
        // Not a port with a twin: refused, the running daemons unchanged.
        let bad = SyncDaemons {
            master: Some(SyncDaemon::new("wan")),
            backup: None,
            ..Default::default()
        };
        assert!(service.configure(&bad).is_err());
        assert_eq!(service.status().daemons.len(), 2);
        service.stop();
    }
}
