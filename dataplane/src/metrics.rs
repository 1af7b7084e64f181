//! The Prometheus endpoint (`[metrics] listen`): `GET /metrics` on a management address,
//! answered by a thread of its own from counters the control plane and the workers already
//! publish. Nothing here runs on a worker or touches the packet path.
//!
//! Names follow node_exporter's IPVS family under `fnat_` (totals, and per backend the
//! `connections_active`/`_inactive`/`weight` gauges with the same six labels), then what only
//! fnatd knows: drops by reason, per-worker packets, busy cycles and sessions, redirect-ring and mbuf-pool
//! occupancy, local-port use per local address, publish generation and latency. The text is
//! written by `prometheus-client` (Prometheus text format 0.0.4).

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use fnat_proto::model::{Protocol, ServiceAddr};
use fnat_proto::stats::{Counters, Listing};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// One worker's counters as last published by it.
#[derive(Debug, Clone, Default)]
pub struct WorkerSample {
    pub received: u64,
    pub transmitted: u64,
    pub redirected: u64,
    pub fast_path: u64,
    pub sessions: u64,
    pub sessions_created: u64,
    /// New connections whose client prefix evicted a still-limited one from a full
    /// per-service rate table (`conn_rate`).
    pub rate_table_evictions: u64,
    /// New full-NAT sessions whose reply key another session held when the burst's keys
    /// were indexed (reachable by their client key only).
    pub reply_key_clashes: u64,
    /// New connections of persistent services scheduled without a template because the
    /// worker's template table was full.
    pub templates_full: u64,
    /// Frames waiting in this worker's redirect ring, and its size.
    pub redirect_ring_used: u32,
    pub redirect_ring_capacity: u32,
    /// TSC cycles of the worker's loop iterations that did work.
    pub busy_cycles: u64,
}

/// One kernel twin's traffic, as the kernel-path thread counts it (the exception path).
#[derive(Debug, Clone, Default)]
pub struct KernelSample {
    /// The twin interface's name.
    pub interface: String,
    /// Frames delivered to the kernel, and sent by it.
    pub to_kernel: u64,
    pub from_kernel: u64,
    /// Frames the twin refused, and frames from it the ring toward the workers had no room for.
    pub twin_tx_full: u64,
    pub ring_full: u64,
    /// Frames waiting in the twin's two rings now.
    pub ring_used: u32,
}

/// Everything one scrape reports.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// The rules with their counters, as `fnatctl list` gets them.
    pub listing: Listing,
    pub workers: Vec<WorkerSample>,
    /// Per kernel twin (empty without).
    pub kernel: Vec<KernelSample>,
    /// Session sync: the daemons and their counters (`fnatctl sync`).
    pub sync: fnat_proto::sync::SyncStatus,
    pub mbufs_in_use: u32,
    pub mbufs_capacity: u32,
    /// TSC cycles per second, to turn busy cycles into a load.
    pub tsc_hz: u64,
    /// Generation of the rules snapshot every worker runs.
    pub generation: u64,
    pub publishes: u64,
    pub publish_seconds_total: f64,
    pub publish_last_seconds: f64,
    /// The VRRP instances, as `fnatctl vrrp` shows them (empty without).
    pub vrrp: Vec<fnat_proto::vrrp::VrrpInstanceStatus>,
}

/// Where a scrape reads from (the driver implements it; tests use a fake).
pub trait Source: Send + Sync + 'static {
    /// The current sample, or why there is none (the scrape then says `fnat_up 0`).
    fn sample(&self) -> Result<Sample, String>;
}

/// The running endpoint; dropping it stops the thread.
pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub local_addr: SocketAddr,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How often the accept loop looks at the stop flag.
const ACCEPT_NAP: Duration = Duration::from_millis(50);
/// A scraper that sends nothing for this long is dropped.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request head read (a scrape's is a few hundred bytes).
const MAX_HEAD: usize = 8192;

/// Binds `listen` and serves `GET /metrics` from `source` on a thread of its own.
pub fn start(listen: SocketAddr, source: Arc<dyn Source>) -> Result<MetricsServer, String> {
    let listener =
        TcpListener::bind(listen).map_err(|e| format!("metrics.listen {listen}: {e}"))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| format!("metrics.listen {listen}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("metrics.listen {listen}: {e}"))?;
    let mut registry = Registry::with_prefix("fnat");
    registry.register_collector(Box::new(FnatCollector { source }));
    let registry = Arc::new(registry);
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("fnat-metrics".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = serve(stream, &registry);
                        }
                        Err(_) => std::thread::sleep(ACCEPT_NAP),
                    }
                }
            })
            .map_err(|e| format!("starting the metrics thread: {e}"))?
    };
    Ok(MetricsServer {
        stop,
        thread: Some(thread),
        local_addr,
    })
}

/// Answers one HTTP/1.x request and closes the connection.
fn serve(stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Read (and ignore) the headers, bounded.
    let mut read = request_line.len();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        read += n;
        if n == 0 || line == "\r\n" || line == "\n" || read > MAX_HEAD {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => {
            let mut text = String::new();
            match prometheus_client::encoding::prometheus_text::encode(&mut text, registry) {
                Ok(()) => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", text),
                Err(_) => (
                    "500 Internal Server Error",
                    "text/plain; charset=utf-8",
                    "encoding the metrics failed\n".to_string(),
                ),
            }
        }
        ("GET", "/") => (
            "200 OK",
            "text/html; charset=utf-8",
            "<html><body><a href=\"/metrics\">fnatd metrics</a></body></html>\n".to_string(),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: try /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".to_string(),
        ),
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    out.write_all(body.as_bytes())?;
    out.flush()
}

struct FnatCollector {
    source: Arc<dyn Source>,
}

impl std::fmt::Debug for FnatCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnatCollector")
    }
}

/// A backend's labels, as node_exporter's IPVS collector names them.
type Labels = Vec<(&'static str, String)>;

fn backend_labels(service: &ServiceAddr, remote: Option<Ipv4Addr>, remote_port: u16) -> Labels {
    let mut labels = service_labels(service);
    labels.insert(
        2,
        (
            "remote_address",
            remote.map_or(String::new(), |a| a.to_string()),
        ),
    );
    labels.insert(3, ("remote_port", remote_port.to_string()));
    labels
}

/// local_address, local_port, proto, local_mark (a fwmark service has only the mark).
fn service_labels(service: &ServiceAddr) -> Labels {
    match service {
        ServiceAddr::Inet {
            protocol,
            vip,
            port,
        } => vec![
            ("local_address", vip.to_string()),
            ("local_port", port.to_string()),
            (
                "proto",
                match protocol {
                    Protocol::Tcp => "TCP",
                    Protocol::Udp => "UDP",
                }
                .to_string(),
            ),
            ("local_mark", String::new()),
        ],
        ServiceAddr::Fwmark(mark) => vec![
            ("local_address", String::new()),
            ("local_port", "0".to_string()),
            ("proto", String::new()),
            ("local_mark", mark.to_string()),
        ],
        // A match service (SNAT) has neither address nor mark: its protocol says the most.
        ServiceAddr::Match(m) => vec![
            ("local_address", String::new()),
            ("local_port", "0".to_string()),
            ("proto", m.proto.name().to_ascii_uppercase()),
            ("local_mark", String::new()),
        ],
    }
}

/// Writes one metric family: a descriptor and its samples.
fn family<V>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, V)>,
    mut put: impl FnMut(&mut MetricEncoder, &V) -> Result<(), std::fmt::Error>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        if labels.is_empty() {
            put(&mut metric, &value)?;
        } else {
            put(&mut metric.encode_family(&labels)?, &value)?;
        }
    }
    Ok(())
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    family(encoder, name, help, MetricType::Counter, samples, |m, v| {
        m.encode_counter::<NoLabelSet, _, u64>(v, None)
    })
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, V)>,
) -> Result<(), std::fmt::Error> {
    family(encoder, name, help, MetricType::Gauge, samples, |m, v| {
        m.encode_gauge(v)
    })
}

/// Session sync: what `fnatctl sync` counts, as counter families (rejections and ring drops
/// by reason), and each daemon's state.
fn sync_families(
    e: &mut DescriptorEncoder,
    st: &fnat_proto::sync::SyncStatus,
) -> Result<(), std::fmt::Error> {
    let c = |name: &str| st.counters.get(name).copied().unwrap_or(0);
    for (name, key, help) in [
        (
            "sync_sent_messages",
            "sent_messages",
            "Sync messages the master daemon sent",
        ),
        (
            "sync_sent_conns",
            "sent_conns",
            "Session entries the master daemon sent",
        ),
        (
            "sync_received_messages",
            "received_messages",
            "Sync messages the backup daemon accepted",
        ),
        (
            "sync_received_conns",
            "received_conns",
            "Session entries in the accepted sync messages",
        ),
        (
            "sync_installed",
            "installed",
            "Synced sessions installed in their worker",
        ),
        (
            "sync_refreshed",
            "refreshed",
            "Synced entries that refreshed an existing session",
        ),
        (
            "sync_send_errors",
            "send_errors",
            "Sync messages the socket refused",
        ),
    ] {
        counter(e, name, help, one(c(key)))?;
    }
    counter(
        e,
        "sync_rejected",
        "Sync entries or messages refused, by reason",
        st.counters.iter().filter_map(|(k, v)| {
            k.strip_prefix("rejected_")
                .map(|r| (vec![("reason", r.to_string())], *v))
        }),
    )?;
    counter(
        e,
        "sync_ring_drops",
        "Sync entries dropped on a full ring: the workers' export rings and outboxes (export), the receiver's rings toward the workers (install)",
        [
            (vec![("ring", "export".to_string())], c("ring_drops")),
            (vec![("ring", "install".to_string())], c("install_ring_drops")),
        ],
    )?;
    counter(
        e,
        "sync_resync_requests",
        "Full-resync requests a backup sent or a master received",
        [
            (
                vec![("direction", "sent".to_string())],
                c("resync_requests_sent"),
            ),
            (
                vec![("direction", "received".to_string())],
                c("resync_requests_received"),
            ),
        ],
    )?;
    gauge(
        e,
        "sync_daemon_active",
        "1 while a sync daemon sends (master) or receives (backup); 0 while it waits for its VRRP state",
        st.daemons.iter().map(|d| {
            (
                vec![
                    ("role", d.role.name().to_string()),
                    ("interface", d.daemon.interface.clone()),
                ],
                u64::from(d.active),
            )
        }),
    )
}

fn one<V>(value: V) -> [(Labels, V); 1] {
    [(Vec::new(), value)]
}

/// A traffic counter every backend (and the totals) carry: name, help, field.
type Traffic = (&'static str, &'static str, fn(&Counters) -> u64);

const TRAFFIC: [Traffic; 5] = [
    ("connections", "Connections scheduled", |c| c.conns),
    (
        "incoming_packets",
        "Packets from clients to real servers",
        |c| c.in_packets,
    ),
    (
        "outgoing_packets",
        "Packets from real servers to clients",
        |c| c.out_packets,
    ),
    (
        "incoming_bytes",
        "Bytes from clients to real servers",
        |c| c.in_bytes,
    ),
    (
        "outgoing_bytes",
        "Bytes from real servers to clients",
        |c| c.out_bytes,
    ),
];

impl Collector for FnatCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sample = self.source.sample();
        gauge(
            &mut encoder,
            "up",
            "1 when the control plane answered this scrape",
            one(i64::from(sample.is_ok())),
        )?;
        let Ok(s) = sample else {
            return Ok(());
        };
        encode_sample(&mut encoder, &s)
    }
}

fn encode_sample(e: &mut DescriptorEncoder, s: &Sample) -> Result<(), std::fmt::Error> {
    let l = &s.listing;
    // node_exporter's IPVS family: totals over every service (ipvsadm -L --stats), then per
    // backend.
    let mut total = Counters::default();
    for svc in &l.stats {
        total.add(&svc.counters);
    }
    for (name, help, field) in TRAFFIC {
        counter(
            e,
            name,
            &format!("{help}, all services"),
            one(field(&total)),
        )?;
    }
    let backends: Vec<(Labels, &fnat_proto::stats::RealStats, u32)> = l
        .stats
        .iter()
        .flat_map(|svc| {
            let rules = l.rules.service(&svc.service);
            svc.reals.iter().map(move |r| {
                let weight = rules
                    .and_then(|s| {
                        s.reals
                            .iter()
                            .find(|x| Some(x.addr) == r.addr && x.port == r.port)
                    })
                    .map_or(0, |x| x.weight);
                (backend_labels(&svc.service, r.addr, r.port), r, weight)
            })
        })
        .collect();
    gauge(
        e,
        "backend_connections_active",
        "Established TCP connections per real server (ipvsadm ActiveConn)",
        backends
            .iter()
            .map(|(labels, r, _)| (labels.clone(), r.active_conns)),
    )?;
    gauge(
        e,
        "backend_connections_inactive",
        "Other connections per real server (ipvsadm InActConn)",
        backends
            .iter()
            .map(|(labels, r, _)| (labels.clone(), r.inactive_conns)),
    )?;
    gauge(
        e,
        "backend_weight",
        "Weight of each real server",
        backends.iter().map(|(labels, _, w)| (labels.clone(), *w)),
    )?;
    for (name, help, field) in TRAFFIC {
        counter(
            e,
            &format!("backend_{name}"),
            &format!("{help}, per real server"),
            backends
                .iter()
                .map(|(labels, r, _)| (labels.clone(), field(&r.counters))),
        )?;
    }

    counter(
        e,
        "drops",
        "Frames dropped, by reason (the drop-counter reference names each)",
        l.drops
            .iter()
            .map(|(reason, n)| (vec![("reason", reason.clone())], *n)),
    )?;
    counter(
        e,
        "client_address",
        "Proxy Protocol and TOA work, by event (headers inserted, headers split off, TOA added, TOA without room, client option 254 removed)",
        l.client_address
            .iter()
            .map(|(event, n)| (vec![("event", event.clone())], *n)),
    )?;
    counter(
        e,
        "synproxy_events",
        "SYN proxy: cookies sent, valid cookie ACKs, client data held, hold slots full",
        l.syn_proxy
            .iter()
            .map(|(event, n)| (vec![("event", event.clone())], *n)),
    )?;
    let port = |name: &str| vec![("port", name.to_string())];
    counter(
        e,
        "port_received_packets",
        "Frames received per port",
        l.ports.iter().map(|p| (port(&p.name), p.rx_packets)),
    )?;
    counter(
        e,
        "port_transmitted_packets",
        "Frames sent per port",
        l.ports.iter().map(|p| (port(&p.name), p.tx_packets)),
    )?;
    counter(
        e,
        "port_transmit_dropped_packets",
        "Frames a TX queue refused, per port",
        l.ports.iter().map(|p| (port(&p.name), p.tx_dropped)),
    )?;

    let twin = |k: &KernelSample| vec![("interface", k.interface.clone())];
    counter(
        e,
        "kernel_delivered_packets",
        "Frames the exception path delivered to a port's kernel twin",
        s.kernel.iter().map(|k| (twin(k), k.to_kernel)),
    )?;
    counter(
        e,
        "kernel_sent_packets",
        "Frames a kernel twin sent, taken to go out of its port",
        s.kernel.iter().map(|k| (twin(k), k.from_kernel)),
    )?;
    counter(
        e,
        "kernel_dropped_packets",
        "Frames the kernel-path thread dropped: the twin refused them (kernel_tx_full) or the ring toward the workers was full (from_kernel_ring_full)",
        s.kernel.iter().flat_map(|k| {
            [
                (
                    vec![
                        ("interface", k.interface.clone()),
                        ("reason", "kernel_tx_full".to_string()),
                    ],
                    k.twin_tx_full,
                ),
                (
                    vec![
                        ("interface", k.interface.clone()),
                        ("reason", "from_kernel_ring_full".to_string()),
                    ],
                    k.ring_full,
                ),
            ]
        }),
    )?;
    gauge(
        e,
        "kernel_ring_used",
        "Frames waiting in the rings between the workers and a kernel twin",
        s.kernel.iter().map(|k| (twin(k), k.ring_used)),
    )?;
    sync_families(e, &s.sync)?;
    let worker = |w: usize| vec![("worker", w.to_string())];
    let per_worker = |f: fn(&WorkerSample) -> u64| {
        s.workers
            .iter()
            .enumerate()
            .map(move |(w, x)| (worker(w), f(x)))
    };
    counter(
        e,
        "worker_received_packets",
        "Frames a worker processed (its own RX and its redirect ring)",
        per_worker(|x| x.received),
    )?;
    counter(
        e,
        "worker_transmitted_packets",
        "Frames a worker gave a transmit verdict",
        per_worker(|x| x.transmitted),
    )?;
    counter(
        e,
        "worker_redirected_packets",
        "Frames a worker handed to the worker that owns their session",
        per_worker(|x| x.redirected),
    )?;
    counter(
        e,
        "worker_fast_path_packets",
        "Frames of established flows a worker forwarded on the fast path",
        per_worker(|x| x.fast_path),
    )?;
    counter(
        e,
        "worker_busy_cycles",
        "TSC cycles of a worker's poll-loop iterations that did work (load: rate over fnat_worker_tsc_hz)",
        per_worker(|x| x.busy_cycles),
    )?;
    gauge(
        e,
        "worker_tsc_hz",
        "TSC cycles per second of the workers' clock",
        one(s.tsc_hz),
    )?;
    gauge(
        e,
        "sessions",
        "Sessions live, per worker",
        per_worker(|x| x.sessions),
    )?;
    counter(
        e,
        "sessions_created",
        "Sessions created, per worker",
        per_worker(|x| x.sessions_created),
    )?;
    counter(
        e,
        "rate_table_evictions",
        "New connections whose client prefix evicted a still-limited prefix from a full per-service conn_rate table, per worker",
        per_worker(|x| x.rate_table_evictions),
    )?;
    counter(
        e,
        "reply_key_clashes",
        "New full-NAT sessions whose reply key another session already held (a client spoofing a local address), reachable by their client key only, per worker",
        per_worker(|x| x.reply_key_clashes),
    )?;
    counter(
        e,
        "templates_full",
        "New connections of persistent services scheduled without a template (the worker's template table was full), per worker",
        per_worker(|x| x.templates_full),
    )?;
    gauge(
        e,
        "redirect_ring_used",
        "Frames waiting in a worker's redirect ring",
        per_worker(|x| u64::from(x.redirect_ring_used)),
    )?;
    gauge(
        e,
        "redirect_ring_capacity",
        "Slots of a worker's redirect ring",
        per_worker(|x| u64::from(x.redirect_ring_capacity)),
    )?;
    gauge(
        e,
        "mbufs_in_use",
        "Mbufs out of the pool (in rings, queues and bursts)",
        one(s.mbufs_in_use),
    )?;
    gauge(
        e,
        "mbufs_capacity",
        "Mbufs in the pool",
        one(s.mbufs_capacity),
    )?;

    let laddr = |a: Ipv4Addr| vec![("local_address", a.to_string())];
    gauge(
        e,
        "local_ports_in_use",
        "Local ports held by sessions, per local address (ipvsadm -G CONNS)",
        l.local_addrs
            .iter()
            .map(|x| (laddr(x.addr), x.ports_in_use)),
    )?;
    counter(
        e,
        "local_ports_exhausted",
        "New sessions that found a local address out of ports (ipvsadm -G CONFLICTS)",
        l.local_addrs.iter().map(|x| (laddr(x.addr), x.exhausted)),
    )?;

    gauge(
        e,
        "publish_generation",
        "Generation of the rules snapshot the workers run",
        one(s.generation),
    )?;
    counter(
        e,
        "publishes",
        "Rules snapshots published to the workers",
        one(s.publishes),
    )?;
    family(
        e,
        "publish_duration_seconds",
        "Time from storing a snapshot to the last worker's acknowledgement, summed",
        MetricType::Counter,
        one(s.publish_seconds_total),
        |m, v| m.encode_counter::<NoLabelSet, _, u64>(v, None),
    )?;
    gauge(
        e,
        "publish_last_duration_seconds",
        "Time the last publish took until every worker ran it",
        one(s.publish_last_seconds),
    )?;
    encode_vrrp(e, &s.vrrp)
}

/// Per VRRP instance: its state and effective priority, and keepalived's counters under
/// their names (`fnat_vrrp_advert_rcvd_total`, `fnat_vrrp_auth_failure_total`, …).
fn encode_vrrp(
    e: &mut DescriptorEncoder,
    vrrp: &[fnat_proto::vrrp::VrrpInstanceStatus],
) -> Result<(), std::fmt::Error> {
    if vrrp.is_empty() {
        return Ok(());
    }
    let labels = |i: &fnat_proto::vrrp::VrrpInstanceStatus| -> Labels {
        vec![
            ("instance", i.name.clone()),
            ("vrid", i.virtual_router_id.to_string()),
            ("interface", i.interface.clone()),
        ]
    };
    // keepalived's numbering of its states (vrrp_t.state): INIT 0, BACKUP 1, MASTER 2, FAULT 3.
    let state = |s: &str| match s {
        "BACKUP" => 1i64,
        "MASTER" => 2,
        "FAULT" => 3,
        _ => 0,
    };
    gauge(
        e,
        "vrrp_state",
        "VRRP state: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT (keepalived's numbers)",
        vrrp.iter().map(|i| (labels(i), state(&i.state))),
    )?;
    gauge(
        e,
        "vrrp_effective_priority",
        "The priority this director advertises (tracking included)",
        vrrp.iter()
            .map(|i| (labels(i), i64::from(i.effective_priority))),
    )?;
    let names: std::collections::BTreeSet<&String> =
        vrrp.iter().flat_map(|i| i.counters.keys()).collect();
    for name in names {
        counter(
            e,
            &format!("vrrp_{name}"),
            &format!("keepalived's VRRP statistic {name}"),
            vrrp.iter()
                .map(|i| (labels(i), i.counters.get(name).copied().unwrap_or(0))),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnat_proto::model::{Real, RuleSet, Scheduler, Service};
    use fnat_proto::stats::{LaddrStats, RealStats, ServiceStats};

    struct Fake(Result<Sample, String>);
    impl Source for Fake {
        fn sample(&self) -> Result<Sample, String> {
            self.0.clone()
        }
    }

    fn sample() -> Sample {
        let svc = ServiceAddr::tcp(Ipv4Addr::new(198, 18, 0, 100), 80);
        let real = Real::new(Ipv4Addr::new(198, 19, 1, 10), 8080, 3);
        let mut rules = RuleSet::default();
        rules.services.push(Service {
            reals: vec![real],
            ..Service::new(svc, Scheduler::Wlc)
        });
        let counters = Counters {
            conns: 7,
            in_packets: 70,
            out_packets: 60,
            in_bytes: 7000,
            out_bytes: 6000,
            ..Counters::default()
        };
        let mut listing = Listing {
            rules,
            ..Listing::default()
        };
        listing.stats.push(ServiceStats {
            service: svc,
            counters,
            reals: vec![RealStats {
                addr: Some(Ipv4Addr::new(198, 19, 1, 10)),
                port: 8080,
                counters,
                active_conns: 2,
                inactive_conns: 5,
                persistent_conns: 0,
            }],
        });
        listing.drops.insert("no_service".into(), 4);
        listing.client_address.insert("toa_added".into(), 9);
        listing.local_addrs.push(LaddrStats {
            addr: Ipv4Addr::new(198, 19, 0, 10),
            ports_in_use: 7,
            exhausted: 0,
        });
        Sample {
            listing,
            workers: vec![WorkerSample {
                received: 134,
                busy_cycles: 123_456,
                sessions: 7,
                redirect_ring_capacity: 4096,
                templates_full: 11,
                ..WorkerSample::default()
            }],
            mbufs_capacity: 8191,
            tsc_hz: 2_000_000_000,
            generation: 3,
            ..Sample::default()
        }
    }

    fn scrape(server: &MetricsServer, request: &str) -> String {
        let mut s = TcpStream::connect(server.local_addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut s, &mut out).unwrap();
        out
    }

    #[test]
    fn sync_has_its_families() {
        let mut sample = sample();
        sample.sync.counters.insert("sent_conns".into(), 12);
        sample.sync.counters.insert("installed".into(), 7);
        sample
            .sync
            .counters
            .insert("rejected_unknown_service".into(), 2);
        sample.sync.counters.insert("install_ring_drops".into(), 1);
        sample
            .sync
            .daemons
            .push(fnat_proto::sync::SyncDaemonStatus {
                role: fnat_proto::sync::SyncRole::Backup,
                daemon: fnat_proto::sync::SyncDaemon::new("lan"),
                twin: "fkl".into(),
                active: true,
                maxlen: 1472,
                error: None,
            });
        let server = start("127.0.0.1:0".parse().unwrap(), Arc::new(Fake(Ok(sample)))).unwrap();
        let out = scrape(&server, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        for line in [
            "fnat_sync_sent_conns_total 12",
            "fnat_sync_installed_total 7",
            "fnat_sync_rejected_total{reason=\"unknown_service\"} 2",
            "fnat_sync_ring_drops_total{ring=\"install\"} 1",
            "fnat_sync_daemon_active{role=\"backup\",interface=\"lan\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing:\n{out}");
        }
    }

    #[test]
    fn kernel_twins_have_their_families() {
        let mut sample = sample();
        sample.kernel.push(KernelSample {
            interface: "fkw".into(),
            to_kernel: 5,
            from_kernel: 9,
            twin_tx_full: 1,
            ring_full: 2,
            ring_used: 3,
        });
        let server = start("127.0.0.1:0".parse().unwrap(), Arc::new(Fake(Ok(sample)))).unwrap();
        let out = scrape(&server, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        for line in [
            "fnat_kernel_delivered_packets_total{interface=\"fkw\"} 5",
            "fnat_kernel_sent_packets_total{interface=\"fkw\"} 9",
            "fnat_kernel_dropped_packets_total{interface=\"fkw\",reason=\"kernel_tx_full\"} 1",
            "fnat_kernel_dropped_packets_total{interface=\"fkw\",reason=\"from_kernel_ring_full\"} 2",
            "fnat_kernel_ring_used{interface=\"fkw\"} 3",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing:\n{out}");
        }
    }

    #[test]
    fn vrrp_instances_have_keepalived_counter_names() {
        let mut sample = sample();
        sample.vrrp.push(fnat_proto::vrrp::VrrpInstanceStatus {
            name: "VI_1".into(),
            interface: "wan".into(),
            virtual_router_id: 51,
            state: "MASTER".into(),
            priority: 100,
            effective_priority: 80,
            counters: [("advert_rcvd", 12), ("auth_failure", 2), ("ip_ttl_err", 1)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            ..Default::default()
        });
        let server = start("127.0.0.1:0".parse().unwrap(), Arc::new(Fake(Ok(sample)))).unwrap();
        let out = scrape(&server, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let l = "instance=\"VI_1\",vrid=\"51\",interface=\"wan\"";
        for line in [
            format!("fnat_vrrp_state{{{l}}} 2"),
            format!("fnat_vrrp_effective_priority{{{l}}} 80"),
            format!("fnat_vrrp_advert_rcvd_total{{{l}}} 12"),
            format!("fnat_vrrp_auth_failure_total{{{l}}} 2"),
            format!("fnat_vrrp_ip_ttl_err_total{{{l}}} 1"),
        ] {
            assert!(out.lines().any(|x| x == line), "missing `{line}` in\n{out}");
        }
    }

    #[test]
    fn node_exporter_names_and_labels() {
        let server = start("127.0.0.1:0".parse().unwrap(), Arc::new(Fake(Ok(sample())))).unwrap();
        let out = scrape(&server, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("text/plain; version=0.0.4"), "{out}");
        let labels = "local_address=\"198.18.0.100\",local_port=\"80\",\
                      remote_address=\"198.19.1.10\",remote_port=\"8080\",proto=\"TCP\",local_mark=\"\"";
        for line in [
            "fnat_up 1".to_string(),
            "fnat_connections_total 7".to_string(),
            "fnat_incoming_packets_total 70".to_string(),
            "fnat_outgoing_bytes_total 6000".to_string(),
            format!("fnat_backend_connections_active{{{labels}}} 2"),
            format!("fnat_backend_connections_inactive{{{labels}}} 5"),
            format!("fnat_backend_weight{{{labels}}} 3"),
            format!("fnat_backend_incoming_bytes_total{{{labels}}} 7000"),
            "fnat_drops_total{reason=\"no_service\"} 4".to_string(),
            "fnat_client_address_total{event=\"toa_added\"} 9".to_string(),
            "fnat_worker_received_packets_total{worker=\"0\"} 134".to_string(),
            "fnat_worker_busy_cycles_total{worker=\"0\"} 123456".to_string(),
            "fnat_worker_tsc_hz 2000000000".to_string(),
            "fnat_sessions{worker=\"0\"} 7".to_string(),
            "fnat_templates_full_total{worker=\"0\"} 11".to_string(),
            "fnat_redirect_ring_capacity{worker=\"0\"} 4096".to_string(),
            "fnat_mbufs_capacity 8191".to_string(),
            "fnat_local_ports_in_use{local_address=\"198.19.0.10\"} 7".to_string(),
            "fnat_publish_generation 3".to_string(),
        ] {
            assert!(out.lines().any(|l| l == line), "missing `{line}` in\n{out}");
        }
        let not_found = scrape(&server, "GET /nothing HTTP/1.0\r\n\r\n");
        assert!(not_found.starts_with("HTTP/1.1 404"), "{not_found}");
    }

    #[test]
    fn a_failed_sample_says_down() {
        let server = start(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(Fake(Err("no control plane".into()))),
        )
        .unwrap();
        let out = scrape(&server, "GET /metrics HTTP/1.1\r\n\r\n");
        assert!(out.lines().any(|l| l == "fnat_up 0"), "{out}");
        assert!(!out.contains("fnat_connections_total"), "{out}");
    }
}
