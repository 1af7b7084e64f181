//! What the control plane sees of the running dataplane: counters summed over workers, rates,
//! the session listing and zeroing (ipvsadm -L --stats/--rate, -Lnc, -Z).
//!
//! Workers never block for it. Every `PUBLISH_INTERVAL` a worker copies its counters into its
//! own slot with `try_lock` (skipping a round if a reader holds it). A connection listing is a
//! request in the worker's mailbox: the worker walks its session table `SCAN_CHUNK` slots per
//! loop iteration and marks the request done. Zeroing keeps a baseline the readers subtract.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fnat_engine::rules::Method;
use fnat_engine::{DropReason, Worker, WorkerStats};
use fnat_proto::model::{ForwardMethod, Protocol as ProtoProtocol};
use fnat_proto::stats::{
    ConnEntry, ConnFilter, Counters, LaddrStats, PortStats, ViewRealStats, ViewServiceStats,
    ViewStats, CLIENT_ADDRESS_EVENTS,
};
use parking_lot::Mutex;

/// How often a worker publishes its counters.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);
/// Session-table slots a worker examines per loop iteration while serving a listing.
pub const SCAN_CHUNK: usize = 4096;
/// How long a listing may take before the control plane gives up on a worker.
const LISTING_TIMEOUT: Duration = Duration::from_secs(5);

/// A worker's published counters.
#[derive(Debug, Clone, Default)]
pub struct WorkerSnapshot {
    pub engine: WorkerStats,
    pub port_rx: Vec<u64>,
    pub port_tx: Vec<u64>,
    pub port_tx_dropped: Vec<u64>,
    /// TSC cycles of loop iterations that did work (see `WorkerReport::busy_cycles`).
    pub busy_cycles: u64,
}

/// A listing request being served by one worker.
struct ConnQuery {
    filter: ConnFilter,
    limit: usize,
    now_ns: Option<u64>,
    cursor: usize,
    results: Vec<ConnEntry>,
    done: bool,
}

/// What one worker shares with the control plane.
#[derive(Default)]
pub struct WorkerShared {
    snapshot: Mutex<WorkerSnapshot>,
    query_pending: AtomicBool,
    query: Mutex<Option<ConnQuery>>,
}

impl WorkerShared {
    /// Worker side: publishes counters unless a reader holds the slot right now.
    pub fn publish(
        &self,
        engine: &WorkerStats,
        port_rx: &[u64],
        port_tx: &[u64],
        port_tx_dropped: &[u64],
        busy_cycles: u64,
    ) {
        if let Some(mut s) = self.snapshot.try_lock() {
            s.engine.clone_from(engine);
            s.busy_cycles = busy_cycles;
            copy_into(&mut s.port_rx, port_rx);
            copy_into(&mut s.port_tx, port_tx);
            copy_into(&mut s.port_tx_dropped, port_tx_dropped);
        }
    }

    /// The counters this worker last published (for the metrics endpoint).
    pub fn engine_stats(&self) -> WorkerStats {
        self.snapshot.lock().engine.clone()
    }

    /// The busy cycles this worker last published (for the metrics endpoint).
    pub fn busy_cycles(&self) -> u64 {
        self.snapshot.lock().busy_cycles
    }

    /// Worker side: true when a listing waits (one relaxed load per loop iteration).
    #[inline]
    pub fn has_query(&self) -> bool {
        self.query_pending.load(Ordering::Relaxed)
    }

    /// Worker side: advances a pending listing by at most `SCAN_CHUNK` slots.
    pub fn serve_query(&self, worker: &Worker, now_ns: u64) {
        let Some(mut guard) = self.query.try_lock() else {
            return;
        };
        let Some(q) = guard.as_mut() else {
            self.query_pending.store(false, Ordering::Relaxed);
            return;
        };
        if q.done {
            return;
        }
        let now = *q.now_ns.get_or_insert(now_ns);
        let fullnat = worker.fullnat();
        let capacity = fullnat.table().capacity();
        let end = (q.cursor + SCAN_CHUNK).min(capacity);
        for slot in q.cursor..end {
            if q.results.len() >= q.limit {
                break;
            }
            if let Some((s, deadline)) = fullnat.session_at(slot) {
                // SNAT's ICMP echo sessions: ipvsadm's listing has TCP and UDP only.
                if s.proto == 1 {
                    continue;
                }
                let entry = ConnEntry {
                    worker: worker.id(),
                    protocol: if s.proto == 17 {
                        ProtoProtocol::Udp
                    } else {
                        ProtoProtocol::Tcp
                    },
                    client: SocketAddrV4::new(Ipv4Addr::from(s.client_ip), s.client_port),
                    vip: SocketAddrV4::new(Ipv4Addr::from(s.vip), s.vport),
                    lip: SocketAddrV4::new(Ipv4Addr::from(s.lip), s.lport),
                    rs: SocketAddrV4::new(Ipv4Addr::from(s.rs_ip), s.rs_port),
                    state: s.state.name().to_string(),
                    expires_in_s: (deadline.saturating_sub(now) / 1_000_000_000) as u32,
                    forward: conn_method(s),
                };
                if q.filter.matches(&entry) {
                    q.results.push(entry);
                }
            }
        }
        q.cursor = end;
        if q.cursor >= capacity || q.results.len() >= q.limit {
            q.done = true;
            self.query_pending.store(false, Ordering::Relaxed);
        }
    }
}

/// Copies a counter slice into a vector, reusing its allocation.
fn copy_into(dst: &mut Vec<u64>, src: &[u64]) {
    dst.clear();
    dst.extend_from_slice(src);
}

/// Rate estimate state: the last sample and the rates derived from it.
#[derive(Default)]
struct Rates {
    last: Option<(Instant, ViewStats)>,
    /// (service id, real id or 0) → rates
    current: BTreeMap<(u32, u32), Counters>,
}

/// The dataplane as the control plane sees it.
pub struct DriverView {
    workers: Vec<Arc<WorkerShared>>,
    port_names: Vec<String>,
    /// Counters at the last `zero`, subtracted from every reading.
    baseline: Mutex<ViewStats>,
    rates: Mutex<Rates>,
    /// Workers are polling (else listings would wait for nobody).
    running: AtomicBool,
    /// The session sync service (live runs).
    sync: Mutex<Option<Arc<dyn crate::control::SyncControl>>>,
}

impl DriverView {
    pub fn new(workers: &[Arc<WorkerShared>], port_names: Vec<String>) -> Arc<DriverView> {
        Arc::new(DriverView {
            workers: workers.to_vec(),
            port_names,
            baseline: Mutex::new(ViewStats::default()),
            rates: Mutex::new(Rates::default()),
            running: AtomicBool::new(false),
            sync: Mutex::new(None),
        })
    }

    /// Hands the control plane the session sync service.
    pub fn set_sync(&self, sync: Arc<dyn crate::control::SyncControl>) {
        *self.sync.lock() = Some(sync);
    }

    pub fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::SeqCst);
    }

    /// Counters summed over workers, before zeroing and without rates.
    fn raw(&self) -> ViewStats {
        let mut total = WorkerStats::default();
        let nports = self.port_names.len();
        let (mut rx, mut tx, mut txd) =
            (vec![0u64; nports], vec![0u64; nports], vec![0u64; nports]);
        for w in &self.workers {
            let s = w.snapshot.lock();
            total.add(&s.engine);
            for i in 0..nports {
                rx[i] += s.port_rx.get(i).copied().unwrap_or(0);
                tx[i] += s.port_tx.get(i).copied().unwrap_or(0);
                txd[i] += s.port_tx_dropped.get(i).copied().unwrap_or(0);
            }
        }
        let mut view = ViewStats::default();
        for svc in total.services.iter().filter(|s| !s.removed) {
            view.services.push(ViewServiceStats {
                service_id: svc.id,
                counters: counters(&svc.traffic),
            });
            for r in svc.reals.iter().filter(|r| !r.removed) {
                view.reals.push(ViewRealStats {
                    service_id: svc.id,
                    real_id: r.id,
                    counters: counters(&r.traffic),
                    active_conns: r.active_conns,
                    inactive_conns: r.inactive_conns,
                    persistent_conns: 0,
                });
            }
        }
        // Per local address (ipvsadm -G): ports held now and exhaustion, summed over workers
        // (`WorkerStats::add` merges them by address). Neither is reset by -Z.
        for l in &total.local_addrs {
            view.local_addrs.push(LaddrStats {
                addr: l.addr,
                ports_in_use: l.ports_in_use,
                exhausted: l.exhausted,
            });
        }
        for (name, n) in [
            ("syn_cookies_sent", total.syn_cookies_sent),
            ("syn_cookies_valid", total.syn_cookies_valid),
            ("data_held", total.synproxy_data_held),
            ("hold_full", total.synproxy_hold_full),
        ] {
            view.syn_proxy.insert(name.to_string(), n);
        }
        for reason in DropReason::ALL {
            view.drops
                .insert(reason.name().to_string(), total.drops[*reason as usize]);
        }
        let events = [
            total.proxy_headers,
            total.proxy_split,
            total.toa_added,
            total.toa_no_room,
            total.toa_stripped,
        ];
        for (name, n) in CLIENT_ADDRESS_EVENTS.iter().zip(events) {
            view.client_address.insert(name.to_string(), n);
        }
        for (i, name) in self.port_names.iter().enumerate() {
            view.ports.push(PortStats {
                name: name.clone(),
                rx_packets: rx[i],
                tx_packets: tx[i],
                tx_dropped: txd[i],
                ..PortStats::default()
            });
        }
        view
    }

    /// Takes a rate sample; called about once a second by the main lcore.
    pub fn sample_rates(&self) {
        let now = Instant::now();
        let raw = self.raw();
        let mut rates = self.rates.lock();
        if let Some((then, prev)) = &rates.last {
            let secs = now.duration_since(*then).as_secs_f64().max(1e-3);
            let mut current = BTreeMap::new();
            let per_sec = |a: u64, b: u64| ((a.saturating_sub(b)) as f64 / secs).round() as u64;
            let rate = |c: &Counters, p: Option<&Counters>| {
                let p = p.copied().unwrap_or_default();
                Counters {
                    cps: per_sec(c.conns, p.conns),
                    in_pps: per_sec(c.in_packets, p.in_packets),
                    out_pps: per_sec(c.out_packets, p.out_packets),
                    in_bps: per_sec(c.in_bytes, p.in_bytes),
                    out_bps: per_sec(c.out_bytes, p.out_bytes),
                    ..Counters::default()
                }
            };
            for s in &raw.services {
                let p = prev.services.iter().find(|x| x.service_id == s.service_id);
                current.insert((s.service_id, 0), rate(&s.counters, p.map(|x| &x.counters)));
            }
            for r in &raw.reals {
                let p = prev
                    .reals
                    .iter()
                    .find(|x| x.service_id == r.service_id && x.real_id == r.real_id);
                current.insert(
                    (r.service_id, r.real_id),
                    rate(&r.counters, p.map(|x| &x.counters)),
                );
            }
            rates.current = current;
        }
        rates.last = Some((now, raw));
    }

    /// Counters since the last zeroing, with the latest rates.
    pub fn stats(&self) -> ViewStats {
        let mut view = self.raw();
        let base = self.baseline.lock();
        let rates = self.rates.lock();
        for s in &mut view.services {
            if let Some(b) = base.services.iter().find(|b| b.service_id == s.service_id) {
                subtract(&mut s.counters, &b.counters);
            }
            apply_rates(&mut s.counters, rates.current.get(&(s.service_id, 0)));
        }
        for r in &mut view.reals {
            if let Some(b) = base
                .reals
                .iter()
                .find(|b| b.service_id == r.service_id && b.real_id == r.real_id)
            {
                subtract(&mut r.counters, &b.counters);
            }
            apply_rates(
                &mut r.counters,
                rates.current.get(&(r.service_id, r.real_id)),
            );
        }
        view
    }

    /// ipvsadm -Z: service and real-server counters start again from zero, those of one
    /// service (by engine id) or all of them.
    pub fn zero(&self, service_id: Option<u32>) {
        let raw = self.raw();
        let mut base = self.baseline.lock();
        match service_id {
            None => *base = raw,
            Some(id) => {
                base.services.retain(|s| s.service_id != id);
                base.reals.retain(|r| r.service_id != id);
                base.services
                    .extend(raw.services.into_iter().filter(|s| s.service_id == id));
                base.reals
                    .extend(raw.reals.into_iter().filter(|r| r.service_id == id));
            }
        }
    }

    /// Sessions matching `filter`, at most `limit`, gathered from every worker.
    pub fn connections(&self, filter: &ConnFilter, limit: usize) -> Vec<ConnEntry> {
        if !self.running.load(Ordering::SeqCst) {
            return Vec::new();
        }
        for w in &self.workers {
            *w.query.lock() = Some(ConnQuery {
                filter: filter.clone(),
                limit,
                now_ns: None,
                cursor: 0,
                results: Vec::new(),
                done: false,
            });
            w.query_pending.store(true, Ordering::Release);
        }
        let deadline = Instant::now() + LISTING_TIMEOUT;
        let mut out = Vec::new();
        for w in &self.workers {
            loop {
                let mut q = w.query.lock();
                if q.as_ref().is_some_and(|q| q.done)
                    || Instant::now() >= deadline
                    || !self.running.load(Ordering::SeqCst)
                {
                    if let Some(q) = q.take() {
                        out.extend(q.results);
                    }
                    w.query_pending.store(false, Ordering::Release);
                    break;
                }
                drop(q);
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        out.truncate(limit);
        out
    }
}

impl crate::control::DataplaneView for DriverView {
    fn stats(&self) -> ViewStats {
        DriverView::stats(self)
    }
    fn connections(&self, filter: &ConnFilter, limit: usize) -> Vec<ConnEntry> {
        DriverView::connections(self, filter, limit)
    }
    fn zero(&self, service_id: Option<u32>) {
        DriverView::zero(self, service_id)
    }
    fn sync(&self) -> Option<Arc<dyn crate::control::SyncControl>> {
        self.sync.lock().clone()
    }
}

fn counters(t: &fnat_engine::stats::Traffic) -> Counters {
    Counters {
        conns: t.conns,
        in_packets: t.packets_in,
        out_packets: t.packets_out,
        in_bytes: t.bytes_in,
        out_bytes: t.bytes_out,
        ..Counters::default()
    }
}

fn subtract(c: &mut Counters, base: &Counters) {
    c.conns = c.conns.saturating_sub(base.conns);
    c.in_packets = c.in_packets.saturating_sub(base.in_packets);
    c.out_packets = c.out_packets.saturating_sub(base.out_packets);
    c.in_bytes = c.in_bytes.saturating_sub(base.in_bytes);
    c.out_bytes = c.out_bytes.saturating_sub(base.out_bytes);
}

fn apply_rates(c: &mut Counters, rates: Option<&Counters>) {
    if let Some(r) = rates {
        c.cps = r.cps;
        c.in_pps = r.in_pps;
        c.out_pps = r.out_pps;
        c.in_bps = r.in_bps;
        c.out_bps = r.out_bps;
    }
}

/// The method a session lists with (`ipvsadm -Lnc`): its own; a full-NAT session whose
/// "VIP" is its real server is SNAT's (the outside peer; a full-NAT VIP is an own address,
/// never a real server's).
fn conn_method(s: &fnat_engine::session::Session) -> ForwardMethod {
    match s.method() {
        Method::FullNat if s.vip == s.rs_ip && s.vport == s.rs_port => ForwardMethod::Snat,
        Method::FullNat => ForwardMethod::FullNat,
        Method::Nat => ForwardMethod::Masq,
        Method::Dr => ForwardMethod::Route,
        Method::Tun(_) => ForwardMethod::Tunnel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnat_engine::rules::{Ipv4Cidr, Rules};

    const VIP: [u8; 4] = [198, 18, 0, 100];

    fn rules() -> Rules {
        let cidr = |a: [u8; 4], l| Ipv4Cidr {
            addr: Ipv4Addr::from(a),
            prefix_len: l,
        };
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../configs/fnat-replay.toml"
        ))
        .unwrap();
        let cfg = crate::config::AppConfig::parse(std::path::Path::new("fnat-replay.toml"), &text)
            .unwrap();
        let mut r = cfg.rules;
        // Sanity: the shipped config is what these tests assume.
        assert_eq!(r.services[0].vip, Ipv4Addr::from(VIP));
        assert!(r.ports[0].addresses.contains(&cidr(VIP, 32)));
        r.session_capacity = 1000;
        r
    }

    fn syn(client: u8) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 9, 9], [2, 0, 0, 0, 0, 1])
            .ipv4([198, 18, 5, client], VIP, 64)
            .tcp(40000 + u16::from(client), 80, 1, 65535)
            .syn();
        let mut out = Vec::new();
        b.write(&mut out, &[]).unwrap();
        out
    }

    /// A thread playing the poll loop: serves listings and publishes counters until stopped.
    fn spawn_worker(
        shared: Arc<WorkerShared>,
        worker: Worker,
        stop: Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if shared.has_query() {
                    shared.serve_query(&worker, 1_000_000_000);
                }
                shared.publish(worker.stats(), &[10, 0], &[0, 10], &[0, 0], 0);
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    }

    #[test]
    fn stats_listing_and_zeroing() {
        let rules = Arc::new(rules());
        let mut worker = Worker::new(0, 1, Arc::clone(&rules));
        for c in 1..=10 {
            let mut f = syn(c);
            assert!(matches!(
                worker.process(0, &mut f, 1_000_000_000),
                fnat_engine::Verdict::Transmit { port: 1 }
            ));
        }
        let shared = Arc::new(WorkerShared::default());
        let view = DriverView::new(&[Arc::clone(&shared)], vec!["wan".into(), "lan".into()]);
        view.set_running(true);
        // Published once before the thread starts: a busy machine may not run it for a while.
        shared.publish(worker.stats(), &[10, 0], &[0, 10], &[0, 0], 0);
        let stop = Arc::new(AtomicBool::new(false));
        let t = spawn_worker(Arc::clone(&shared), worker, Arc::clone(&stop));

        let stats = view.stats();
        let svc = rules.services[0].id;
        let conns_in = |st: &ViewStats| {
            st.services
                .iter()
                .find(|s| s.service_id == svc)
                .unwrap()
                .counters
                .conns
        };
        let conns = |v: &DriverView| conns_in(&v.stats());
        assert_eq!(conns_in(&stats), 10);
        let inactive: u64 = stats.reals.iter().map(|r| r.inactive_conns).sum();
        assert_eq!(inactive, 10, "SYN_RECV sessions are InActConn");
        assert_eq!(stats.ports[0].rx_packets, 10);
        assert_eq!(stats.drops["no_service"], 0);
        let lip = Ipv4Addr::new(198, 19, 0, 10);
        assert_eq!(
            stats.local_addrs,
            vec![LaddrStats {
                addr: lip,
                ports_in_use: 10,
                exhausted: 0
            }],
            "every session holds one port of the LIP"
        );

        let all = view.connections(&ConnFilter::default(), 100);
        assert_eq!(all.len(), 10);
        assert!(all
            .iter()
            .all(|c| c.vip == SocketAddrV4::new(Ipv4Addr::from(VIP), 80) && c.state == "SYN_RECV"));
        assert!(
            all.iter()
                .all(|c| c.expires_in_s == rules.timeouts.tcp_syn_recv),
            "{all:?}"
        );
        let one = view.connections(
            &ConnFilter {
                client: Some(Ipv4Addr::new(198, 18, 5, 3)),
                ..Default::default()
            },
            100,
        );
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].client.port(), 40003);
        assert_eq!(
            view.connections(&ConnFilter::default(), 4).len(),
            4,
            "limit honoured"
        );

        view.zero(Some(svc + 1000));
        assert_eq!(conns(&view), 10, "zeroing another service leaves this one");
        view.zero(Some(svc));
        assert_eq!(conns(&view), 0, "-Z -t zeroes that service");
        view.zero(None);
        let zeroed = view.stats();
        assert_eq!(conns_in(&zeroed), 0);
        assert_eq!(
            zeroed.reals.iter().map(|r| r.inactive_conns).sum::<u64>(),
            10,
            "gauges are not zeroed"
        );
        assert_eq!(zeroed.local_addrs[0].ports_in_use, 10, "nor ports in use");

        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        view.set_running(false);
        assert!(
            view.connections(&ConnFilter::default(), 10).is_empty(),
            "no workers, no wait"
        );
    }

    #[test]
    fn local_address_counters_are_summed_over_workers() {
        let mut rules = rules();
        // Three ports in all: worker 0 owns 1024 and 1026, worker 1 owns 1025.
        rules.lport_min = 1024;
        rules.lport_max = 1026;
        let rules = Arc::new(rules);
        let mut w0 = Worker::new(0, 2, Arc::clone(&rules));
        let mut w1 = Worker::new(1, 2, Arc::clone(&rules));
        let mut transmitted = 0;
        for (w, clients) in [(&mut w0, 1..=3u8), (&mut w1, 11..=13u8)] {
            for c in clients {
                let mut f = syn(c);
                if matches!(
                    w.process(0, &mut f, 1_000_000_000),
                    fnat_engine::Verdict::Transmit { .. }
                ) {
                    transmitted += 1;
                }
            }
        }
        assert_eq!(transmitted, 3, "three ports, three sessions");
        let (s0, s1) = (
            Arc::new(WorkerShared::default()),
            Arc::new(WorkerShared::default()),
        );
        s0.publish(w0.stats(), &[0, 0], &[0, 0], &[0, 0], 0);
        s1.publish(w1.stats(), &[0, 0], &[0, 0], &[0, 0], 0);
        let view = DriverView::new(&[s0, s1], vec!["wan".into(), "lan".into()]);
        assert_eq!(
            view.stats().local_addrs,
            vec![LaddrStats {
                addr: Ipv4Addr::new(198, 19, 0, 10),
                ports_in_use: 3,
                exhausted: 3,
            }],
            "worker 0: 2 sessions + 1 refused, worker 1: 1 session + 2 refused"
        );
    }
}
