//! Benchmark instrumentation behind the hidden `fnatd bench` subcommand (used by `perf/run.sh`).
//!
//! `fnatd bench` runs the live dataplane exactly as `fnatd run` does, plus, in each worker:
//!
//! - **prefill**: before polling, the worker pushes `--flows` synthetic TCP SYNs (client
//!   `flow_addr(k)` → the first service's VIP:port, into port 0) through its own engine on a
//!   plain byte buffer. That creates `--flows` sessions (10 M takes seconds and needs no mbufs)
//!   and measures the engine's connection-creation rate without any device I/O; then each
//!   client's ACK (not timed), so that the sessions are ESTABLISHED before the measurement.
//! - **stamping** (the generator): the frames come from a real device (net_pcap with
//!   `infinite_rx=1`, the same input testpmd gets). With `--stamp`, the worker overwrites each
//!   received frame's client address and port (fixing both checksums incrementally) before the
//!   engine sees it: in `established` mode with flow `k`, walking all prefilled flows with a
//!   large odd stride so that consecutive packets hit sessions spread over the whole table; in
//!   `new` mode with a never-used `k`, so every SYN creates a session. The stamping cost is
//!   charged to fnatd (it runs inside the measured burst).
//! - **measurement**: after `--warmup` seconds of traffic the worker measures for `--seconds`:
//!   packets, TSC cycles, and the TSC spent processing each RX burst into an HdrHistogram
//!   (allocated before the loop; recording does not allocate).
//! - **rule-publish latency**: once every worker has measured, the main thread publishes
//!   `--publishes` unchanged snapshots through the rules store while traffic keeps flowing and
//!   times each until every worker acknowledged it. Then fnatd stops itself (SIGTERM to itself)
//!   and prints one `BENCH {json}` line after the usual forward statistics.
//!
//! Nothing here runs in `fnatd run`: `fnatd bench` hands the driver a [`ProbeFactory`], and
//! only then do the workers run their live loop with a probe (`fnatd run`'s loop is compiled
//! with none). Everything the run shares lives in one `Shared` value, not in statics.

use std::process::ExitCode;

use fnat_engine::packet::checksum::Delta;
use fnat_engine::packet::{Ipv4Header, TcpFlags, TcpHeader, ETH_HEADER_LEN};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use dpdk_bindings::mbuf::Burst;
use dpdk_bindings::time;
use fnat_engine::{Verdict, Worker};
use hdrhistogram::Histogram;

use crate::config::AppConfig;
use crate::driver::{self, BurstProbe, ProbeFactory, RunKind};
use crate::rules_store::RulesStore;

/// What traffic the generator makes of the device's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Frames go to the engine as received (the capture's own flows).
    Plain,
    /// Every frame is stamped with one of the prefilled flows (ACKs to live sessions).
    Established,
    /// Every frame is stamped with a flow never seen before (each SYN creates a session).
    New,
}

/// The options of `fnatd bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// How the device's frames are turned into traffic.
    #[arg(long, value_enum, default_value = "plain")]
    pub mode: Mode,
    /// Sessions to create in every worker before polling (synthetic SYNs on a byte buffer).
    #[arg(long, default_value_t = 0)]
    pub flows: u64,
    /// Seconds of traffic before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Rules snapshots to publish (and time) under load after measuring.
    #[arg(long, default_value_t = 0)]
    pub publishes: u32,
    /// Every frame takes the engine's full pipeline (the established-flow fast path off), to
    /// measure what the fast path gains.
    #[arg(long)]
    pub no_fast_path: bool,
    /// Give up (stop fnatd, exit 1) after this many seconds in all.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
}

/// What one worker measured.
#[derive(Debug, Clone, Default)]
pub struct WorkerResult {
    pub worker: u16,
    pub measured: bool,
    pub prefill_sessions: u64,
    pub prefill_secs: f64,
    pub rss_before_prefill_kb: u64,
    pub rss_after_prefill_kb: u64,
    /// `AnonHugePages` of the process after the prefill (`/proc/self/smaps_rollup`): how much
    /// of the session tables the kernel backed with transparent huge pages (it may fall back
    /// to 4 KiB pages when memory is fragmented, which changes TLB misses per packet).
    pub anon_huge_after_prefill_kb: u64,
    pub window_secs: f64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub sessions_created: u64,
    /// Frames of the window that took the established-flow fast path.
    pub fast_path_packets: u64,
    pub live_sessions: u64,
    pub bursts: u64,
    pub window_cycles: u64,
    pub busy_cycles: u64,
    pub tsc_hz: u64,
    pub p50_cycles: u64,
    pub p99_cycles: u64,
    pub p999_cycles: u64,
    pub max_cycles: u64,
}

/// What `fnatd bench`'s controller and its workers' probes share (one per run, no statics).
struct Shared {
    opts: Options,
    results: Mutex<Vec<WorkerResult>>,
    /// Workers done measuring.
    measured: AtomicUsize,
    /// The dataplane's rules store (for timing publishes), from the first worker's attach.
    store: OnceLock<Arc<RulesStore>>,
    failed: AtomicBool,
}

/// Client address and port of synthetic flow `k`: 10.0.0.0/8 hosts, 60000 ports each.
#[inline]
pub fn flow_addr(k: u64) -> (u32, u16) {
    (
        0x0a00_0000u32.wrapping_add((k / 60_000) as u32),
        1024 + (k % 60_000) as u16,
    )
}

/// Rewrites the client address and port of an Ethernet/IPv4/TCP frame, fixing the IP and TCP
/// checksums incrementally (through the engine's header views and checksum helper). Frames
/// that are not that are left alone.
#[inline]
pub fn stamp(frame: &mut [u8], addr: u32, port: u16) {
    let Some(ip_bytes) = frame.get(ETH_HEADER_LEN..) else {
        return;
    };
    let Ok(header_len) = Ipv4Header::new_checked(ip_bytes).map(|ip| ip.header_len()) else {
        return;
    };
    let l4 = ETH_HEADER_LEN + header_len;
    if l4 > frame.len() {
        return;
    }
    let (head, tail) = frame.split_at_mut(l4);
    let (Ok(mut ip), Ok(mut tcp)) = (
        Ipv4Header::new_checked_mut(&mut head[ETH_HEADER_LEN..]),
        TcpHeader::new_mut(tail),
    ) else {
        return;
    };
    let mut delta = Delta::new();
    delta.replace32(ip.src(), addr);
    let ip_check = delta.apply(ip.checksum());
    delta.replace16(tcp.src_port(), port);
    let tcp_check = delta.apply(tcp.checksum());
    ip.set_src(addr);
    ip.set_checksum(ip_check);
    tcp.set_ports(port, tcp.dst_port());
    tcp.set_checksum(tcp_check);
}

/// A 64-byte TCP frame (60 bytes + FCS room: 6 bytes of payload) from flow 0 to `vip:vport`
/// arriving at `mac`, with TCP `flags` (SYN, ACK, FIN, RST, PSH bits), built by etherparse.
pub fn syn_frame(mac: [u8; 6], vip: u32, vport: u16, flags: u8) -> Vec<u8> {
    let (client, cport) = flow_addr(0);
    let mut builder = etherparse::PacketBuilder::ethernet2([0x02, 0, 0, 0, 0xc1, 0x01], mac)
        .ipv4(client.to_be_bytes(), vip.to_be_bytes(), 64)
        .tcp(cport, vport, 1, 0xffff);
    if flags & TcpFlags::SYN != 0 {
        builder = builder.syn();
    }
    if flags & TcpFlags::ACK != 0 {
        builder = builder.ack(1);
    }
    if flags & TcpFlags::FIN != 0 {
        builder = builder.fin();
    }
    if flags & TcpFlags::RST != 0 {
        builder = builder.rst();
    }
    if flags & TcpFlags::PSH != 0 {
        builder = builder.psh();
    }
    let payload = [0u8; 6];
    let mut f = Vec::with_capacity(builder.size(payload.len()));
    // Writing into a Vec cannot fail; an empty frame would only make the prefill stop.
    let _ = builder.write(&mut f, &payload);
    f
}

/// The `field` (e.g. `VmRSS:`) of a `/proc` file in `Name: <n> kB` lines, in kB; 0 when absent.
fn kb_field(text: &str, field: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn proc_kb(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path).map_or(0, |t| kb_field(&t, field))
}

fn rss_kb() -> u64 {
    proc_kb("/proc/self/status", "VmRSS:")
}

/// Anonymous memory backed by transparent huge pages (the whole process).
fn anon_huge_kb() -> u64 {
    proc_kb("/proc/self/smaps_rollup", "AnonHugePages:")
}

enum Phase {
    /// No traffic yet.
    Idle,
    /// Traffic flows; measuring starts at `until` (TSC).
    Warmup {
        until: u64,
    },
    Measuring {
        start: u64,
        end: u64,
        tx: u64,
        created: u64,
        rx: u64,
        fast: u64,
    },
    Done,
}

/// A worker's generator and probe (see the module documentation).
pub struct WorkerBench {
    shared: Arc<Shared>,
    hz: u64,
    phase: Phase,
    hist: Histogram<u64>,
    /// Established: the flow of the next packet and the stride. New: the next unused flow.
    next: u64,
    stride: u64,
    flows: u64,
    rx: u64,
    bursts: u64,
    busy: u64,
    result: WorkerResult,
}

impl WorkerBench {
    /// Called by a worker before its poll loop: prefills the worker's sessions (allocates;
    /// before the loop only).
    fn attach(
        shared: Arc<Shared>,
        engine: &mut Worker,
        store: &Arc<RulesStore>,
        now_ns: u64,
    ) -> Self {
        let opts = &shared.opts;
        let _ = shared.store.set(Arc::clone(store));
        engine.set_fast_path(!opts.no_fast_path);
        let hz = time::tsc_hz().max(1);
        let mut result = WorkerResult {
            worker: engine.id(),
            tsc_hz: hz,
            rss_before_prefill_kb: rss_kb(),
            ..WorkerResult::default()
        };
        let rules = Arc::clone(engine.rules());
        let target = rules
            .services
            .first()
            .map(|s| (u32::from(s.vip), s.port))
            .zip(rules.ports.first().map(|p| p.mac));
        if let Some(((vip, vport), mac)) = target {
            let syn = syn_frame(mac, vip, vport, TcpFlags::SYN);
            let mut frame = syn.clone();
            // Flow `k`'s copy of `template` through the engine (from the template each time:
            // TUN grows the frame by its outer header).
            let mut send = |engine: &mut Worker, template: &[u8], k: u64| {
                frame.clear();
                frame.extend_from_slice(template);
                let (a, p) = flow_addr(k);
                stamp(&mut frame, a, p);
                engine.process(0, &mut frame, now_ns)
            };
            let started = Instant::now();
            let before = engine.stats().sessions_created;
            for k in 0..opts.flows {
                if !matches!(send(engine, &syn, k), Verdict::Transmit { .. }) {
                    break;
                }
            }
            result.prefill_secs = started.elapsed().as_secs_f64();
            result.prefill_sessions = engine.stats().sessions_created - before;
            // Then each client's ACK (not timed: the rate above is of new connections), so
            // that the sessions are ESTABLISHED as those of a real established load are: left
            // in SYN_RECV, the measured packets' first visit to each flow made it established
            // through the full pipeline, which with 10 M flows was most of the window (2/3 of
            // the packets missed the established-flow stage).
            let ack = syn_frame(mac, vip, vport, TcpFlags::ACK);
            for k in 0..result.prefill_sessions {
                send(engine, &ack, k);
            }
        }
        result.rss_after_prefill_kb = rss_kb();
        result.anon_huge_after_prefill_kb = anon_huge_kb();
        let flows = result.prefill_sessions.max(1);
        // An odd stride near flows × (golden ratio) that shares no factor with `flows`.
        let mut stride = ((flows as f64 * 0.618_034) as u64) | 1;
        while gcd(stride, flows) != 1 {
            stride += 2;
        }
        let next = match opts.mode {
            Mode::New => opts.flows,
            _ => 0,
        };
        WorkerBench {
            shared,
            hz,
            phase: Phase::Idle,
            hist: Histogram::new_with_bounds(1, 1 << 40, 3).expect("histogram bounds"),
            next,
            stride: stride % flows,
            flows,
            rx: 0,
            bursts: 0,
            busy: 0,
            result,
        }
    }
}

impl BurstProbe for WorkerBench {
    /// Before the engine sees a received burst: stamps it (the generator) and returns the TSC.
    #[inline]
    fn before(&mut self, rx: &mut Burst) -> u64 {
        match self.shared.opts.mode {
            Mode::Plain => {}
            Mode::Established => {
                for m in rx.iter_mut() {
                    let (a, p) = flow_addr(self.next);
                    stamp(m.data_mut(), a, p);
                    self.next += self.stride;
                    if self.next >= self.flows {
                        self.next -= self.flows;
                    }
                }
            }
            Mode::New => {
                for m in rx.iter_mut() {
                    let (a, p) = flow_addr(self.next);
                    stamp(m.data_mut(), a, p);
                    self.next += 1;
                }
            }
        }
        time::tsc()
    }

    /// After the engine processed a burst of `n` frames that started at TSC `t0`.
    #[inline]
    fn after(&mut self, engine: &Worker, t0: u64, n: usize) {
        let t1 = time::tsc();
        match self.phase {
            Phase::Idle => {
                let warm = (self.shared.opts.warmup * self.hz as f64) as u64;
                self.phase = Phase::Warmup { until: t1 + warm };
            }
            Phase::Warmup { until } if t1 >= until => {
                let span = (self.shared.opts.seconds * self.hz as f64) as u64;
                let st = engine.stats();
                self.phase = Phase::Measuring {
                    start: t1,
                    end: t1 + span,
                    tx: st.transmitted,
                    created: st.sessions_created,
                    rx: st.received,
                    fast: st.fast_path,
                };
            }
            Phase::Measuring {
                start,
                end,
                tx,
                created,
                rx,
                fast,
            } => {
                let cycles = t1.wrapping_sub(t0);
                self.hist.saturating_record(cycles.max(1));
                self.busy += cycles;
                self.rx += n as u64;
                self.bursts += 1;
                if t1 >= end {
                    let st = engine.stats();
                    let r = &mut self.result;
                    r.measured = true;
                    r.window_cycles = t1 - start;
                    r.window_secs = (t1 - start) as f64 / self.hz as f64;
                    r.rx_packets = st.received - rx;
                    r.tx_packets = st.transmitted - tx;
                    r.sessions_created = st.sessions_created - created;
                    r.fast_path_packets = st.fast_path - fast;
                    r.live_sessions = st.sessions;
                    r.bursts = self.bursts;
                    r.busy_cycles = self.busy;
                    self.phase = Phase::Done;
                    self.shared.measured.fetch_add(1, Ordering::SeqCst);
                }
            }
            _ => {}
        }
    }

    /// When the worker stops: hands its result to `fnatd bench`.
    fn finish(&mut self) {
        let h = &self.hist;
        self.result.p50_cycles = h.value_at_quantile(0.50);
        self.result.p99_cycles = h.value_at_quantile(0.99);
        self.result.p999_cycles = h.value_at_quantile(0.999);
        self.result.max_cycles = h.max();
        if let Ok(mut results) = self.shared.results.lock() {
            results.push(self.result.clone());
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn stop_self() {
    dpdk_bindings::signals::request_stop();
}

/// The controller on the main thread's side: waits for every worker to measure, times rule
/// publishes under load, then stops the dataplane. Bounded by `opts.timeout`.
fn control(shared: &Shared, workers: usize) -> Vec<f64> {
    let opts = &shared.opts;
    let deadline = Instant::now() + Duration::from_secs_f64(opts.timeout.max(1.0));
    let mut publish_us = Vec::new();
    while shared.measured.load(Ordering::SeqCst) < workers {
        if Instant::now() >= deadline {
            shared.failed.store(true, Ordering::SeqCst);
            eprintln!(
                "fnatd bench: workers did not finish measuring within {} s",
                opts.timeout
            );
            stop_self();
            return publish_us;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(store) = shared.store.get() {
        for _ in 0..opts.publishes {
            if Instant::now() >= deadline {
                break;
            }
            let rules = (*store.current()).clone();
            let t = Instant::now();
            match store.publish(rules, Duration::from_secs(1)) {
                Ok(_) => publish_us.push(t.elapsed().as_secs_f64() * 1e6),
                Err(e) => eprintln!("fnatd bench: publish: {e}"),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    stop_self();
    publish_us
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `fnatd bench`: runs the live dataplane with the generator and probes, prints the forward
/// statistics and one `BENCH {json}` line.
pub fn run(cfg: &AppConfig, opts: Options) -> ExitCode {
    let workers = usize::from(cfg.dataplane.workers);
    let shared = Arc::new(Shared {
        opts,
        results: Mutex::new(Vec::new()),
        measured: AtomicUsize::new(0),
        store: OnceLock::new(),
        failed: AtomicBool::new(false),
    });
    let for_controller = Arc::clone(&shared);
    let controller = std::thread::spawn(move || control(&for_controller, workers));
    let for_workers = Arc::clone(&shared);
    let probe: ProbeFactory = Arc::new(move |engine: &mut Worker, store: &Arc<RulesStore>, now| {
        Box::new(WorkerBench::attach(
            Arc::clone(&for_workers),
            engine,
            store,
            now,
        )) as Box<dyn BurstProbe + Send>
    });
    let outcome = driver::execute(cfg, RunKind::Live, None, Some(probe));
    // The dataplane may have failed before any worker measured: release the controller.
    if outcome.is_err() {
        shared.measured.fetch_add(workers, Ordering::SeqCst);
    }
    let opts = &shared.opts;
    let mut publish_us = controller.join().unwrap_or_default();
    let totals = match outcome {
        Ok(t) => t,
        Err(e) => {
            eprintln!("fnatd: {e}");
            return ExitCode::from(1);
        }
    };
    print!("{}", totals.render());
    publish_us.sort_by(f64::total_cmp);
    let mut results = shared.results.lock().map(|r| r.clone()).unwrap_or_default();
    results.sort_by_key(|r| r.worker);
    let mut json = format!(
        "{{\"mode\":\"{:?}\",\"flows\":{},\"rss_exit_kb\":{},\"publishes\":{},\
         \"publish_p50_us\":{:.1},\"publish_max_us\":{:.1},\"workers\":[",
        opts.mode,
        opts.flows,
        rss_kb(),
        publish_us.len(),
        quantile(&publish_us, 0.5),
        quantile(&publish_us, 1.0),
    );
    for (i, r) in results.iter().enumerate() {
        let hz = r.tsc_hz.max(1) as f64;
        let us = |c: u64| c as f64 * 1e6 / hz;
        let secs = r.window_secs.max(1e-9);
        json.push_str(&format!(
            "{}{{\"worker\":{},\"measured\":{},\"prefill_sessions\":{},\"prefill_secs\":{:.6},\
             \"rss_before_prefill_kb\":{},\"rss_after_prefill_kb\":{},\
             \"anon_huge_after_prefill_kb\":{},\"window_secs\":{:.3},\
             \"rx_packets\":{},\"tx_packets\":{},\"mpps\":{:.3},\"sessions_created\":{},\
             \"new_conns_per_sec\":{:.0},\"fast_path_packets\":{},\"live_sessions\":{},\"bursts\":{},\
             \"avg_burst\":{:.2},\"cycles_per_packet\":{:.1},\"busy_cycles_per_packet\":{:.1},\
             \"tsc_hz\":{},\"p50_burst_us\":{:.3},\"p99_burst_us\":{:.3},\
             \"p999_burst_us\":{:.3},\"max_burst_us\":{:.3}}}",
            if i == 0 { "" } else { "," },
            r.worker,
            r.measured,
            r.prefill_sessions,
            r.prefill_secs,
            r.rss_before_prefill_kb,
            r.rss_after_prefill_kb,
            r.anon_huge_after_prefill_kb,
            r.window_secs,
            r.rx_packets,
            r.tx_packets,
            r.tx_packets as f64 / secs / 1e6,
            r.sessions_created,
            r.sessions_created as f64 / secs,
            r.fast_path_packets,
            r.live_sessions,
            r.bursts,
            r.rx_packets as f64 / (r.bursts.max(1) as f64),
            r.window_cycles as f64 / (r.rx_packets.max(1) as f64),
            r.busy_cycles as f64 / (r.rx_packets.max(1) as f64),
            r.tsc_hz,
            us(r.p50_cycles),
            us(r.p99_cycles),
            us(r.p999_cycles),
            us(r.max_cycles),
        ));
    }
    json.push_str("]}");
    println!("BENCH {json}");
    let all_measured = results.len() == workers && results.iter().all(|r| r.measured);
    if shared.failed.load(Ordering::SeqCst) || !all_measured {
        eprintln!("fnatd bench: not every worker measured (no traffic?)");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kb_fields_of_proc_files() {
        let rollup = "55d0c0a00000-7ffd1b5f4000 ---p 00000000 00:00 0 [rollup]\n\
                      Rss:             1180932 kB\n\
                      AnonHugePages:    999424 kB\n\
                      ShmemHugePages:        0 kB\n";
        assert_eq!(kb_field(rollup, "AnonHugePages:"), 999_424);
        assert_eq!(kb_field(rollup, "Rss:"), 1_180_932);
        assert_eq!(kb_field(rollup, "VmRSS:"), 0);
        assert_eq!(kb_field("VmRSS:\t  2048 kB\n", "VmRSS:"), 2048);
        // This process's own files parse (its RSS is never 0).
        assert!(rss_kb() > 0);
    }

    /// The frame's IPv4 source and TCP source port, after checking both checksums with
    /// etherparse.
    fn checked_source(f: &[u8]) -> (u32, u16) {
        let p = etherparse::SlicedPacket::from_ethernet(f).expect("parses");
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!("not IPv4");
        };
        let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
            panic!("not TCP");
        };
        let header = ip.header().to_header();
        assert_eq!(
            header.calc_header_checksum(),
            header.header_checksum,
            "ip checksum"
        );
        let expected = tcp
            .to_header()
            .calc_checksum_ipv4(&header, tcp.payload())
            .expect("checksum");
        assert_eq!(expected, tcp.checksum(), "tcp checksum");
        (u32::from_be_bytes(header.source), tcp.source_port())
    }

    #[test]
    fn stamping_keeps_checksums_valid() {
        let mut f = syn_frame([2, 0, 0, 0, 0, 1], 0xc612_0064, 80, 0x02);
        assert_eq!(f.len(), 60);
        checked_source(&f);
        for k in [0u64, 1, 59_999, 60_000, 12_345_678] {
            let (a, p) = flow_addr(k);
            stamp(&mut f, a, p);
            assert_eq!(checked_source(&f), (a, p), "flow {k}");
        }
    }

    #[test]
    fn flows_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for k in 0..200_000 {
            assert!(seen.insert(flow_addr(k)));
        }
    }
}
