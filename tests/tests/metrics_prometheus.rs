//! The Prometheus endpoint seen by a real Prometheus (Debian's `prometheus`): fnatd runs with
//! two workers on net_pcap ports that read captures of SYNs (so the sessions, local ports and
//! drops are known exactly, as in control_ipvsadm_traffic), Prometheus scrapes it every
//! second on 127.0.0.1, and its query API must return the series with those values.
//! `promtool check metrics` must accept the endpoint's text without a complaint.
//! The busy-cycles counter is checked on its own: near all cycles with endless traffic
//! (net_null), near none without any (empty captures).

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fnat_tests::*;

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const WAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];

/// A port nothing listens on now (the kernel's choice, so parallel runs differ).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn config(dir: &TempDir, metrics_port: u16) -> String {
    let d = dir.path().display();
    format!(
        r#"
[dataplane]
workers = 2
rx_desc = 512
tx_desc = 512

[[port]]
name = "wan"
device = "net_pcap0,rx_pcap={d}/wan0.pcap,rx_pcap={d}/wan1.pcap,tx_pcap=/dev/null,tx_pcap=/dev/null"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24", "198.18.0.100"]

[[port]]
name = "lan"
device = "net_pcap1,rx_pcap={d}/empty.pcap,rx_pcap={d}/empty.pcap,tx_pcap=/dev/null,tx_pcap=/dev/null"
mac = "02:00:00:00:00:02"
addresses = ["198.19.0.1/24", "198.19.0.10", "198.19.0.11"]

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "rr"
local_addresses = ["198.19.0.10", "198.19.0.11"]
real = [ {{ address = "198.19.1.10", port = 80, weight = 3 }} ]

[[route]]
prefix = "198.19.1.0/24"
port = "lan"

[[neighbour]]
address = "198.19.1.10"
mac = "02:00:00:00:01:10"
port = "lan"

[session]
local_port_range = [1024, 1031]

[metrics]
listen = "127.0.0.1:{metrics_port}"
"#
    )
}

fn syns(path: &Path, net: u8, clients: u8) {
    let frames: Vec<CapturedFrame> = (1..=clients)
        .map(|i| CapturedFrame {
            ts_ns: 1_000_000_000 + u128::from(i) * 1_000,
            data: tcp_frame(
                CLIENT_MAC,
                WAN_MAC,
                (Ipv4Addr::new(198, 18, net, i), 40000 + u16::from(i)),
                (VIP, 80),
                "S",
                1,
                &[],
            ),
        })
        .collect();
    write_pcap(path, &frames);
}

fn try_http_get(url: &str) -> Result<String, String> {
    let done = run_with_deadline(
        Command::new("curl").args(["-sS", "--max-time", "5", "-g", url]),
        Duration::from_secs(10),
    );
    match done.code() {
        Some(0) => Ok(done.stdout),
        _ => Err(done.stderr),
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the single series `query` returns in Prometheus's query API, if any yet.
fn query(prom_port: u16, query: &str) -> Option<f64> {
    let encoded = percent_encode(query);
    // None until Prometheus listens.
    let body = try_http_get(&format!(
        "http://127.0.0.1:{prom_port}/api/v1/query?query={encoded}"
    ))
    .ok()?;
    // Not JSON while Prometheus starts ("Service Unavailable").
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    assert_eq!(json["status"], "success", "{query}: {body}");
    let result = json["data"]["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str()?.parse().ok()
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        signal(self.0.id(), libc::SIGTERM);
        let _ = self.0.wait();
    }
}

#[test]
fn prometheus_scrapes_fnatd() {
    assert!(
        Command::new("prometheus").arg("--version").output().is_ok(),
        "Debian's prometheus is not installed (scripts/setup-debian.sh installs it)"
    );
    let dir = TempDir::new("metrics");
    // 15 SYNs for 8 local ports per worker: 13 sessions, 2 dropped (as in
    // control_ipvsadm_traffic): worker 0 gets 10, worker 1 gets 5.
    syns(&dir.join("wan0.pcap"), 5, 10);
    syns(&dir.join("wan1.pcap"), 6, 5);
    write_pcap(&dir.join("empty.pcap"), &[]);
    let metrics_port = free_port();
    let cfg = dir.join("fnatd.toml");
    std::fs::write(&cfg, config(&dir, metrics_port)).expect("write config");
    let daemon = Daemon::start(&cfg, &dir.join("ctl.sock"), &[]);

    // The endpoint itself (it opens once the ports are up, after the control socket), once the
    // workers have published; then promtool's verdict on it.
    let endpoint = format!("http://127.0.0.1:{metrics_port}/metrics");
    let start = Instant::now();
    let mut text = String::new();
    while start.elapsed() < Duration::from_secs(20) {
        text = try_http_get(&endpoint).unwrap_or_else(|e| e);
        if text.lines().any(|l| l == "fnat_connections_total 13") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        text.lines().any(|l| l == "fnat_connections_total 13"),
        "{text}"
    );
    let saved = dir.join("metrics.txt");
    std::fs::write(&saved, &text).expect("save metrics");
    let check = run_with_deadline(
        Command::new("sh")
            .arg("-c")
            .arg(format!("promtool check metrics < {}", saved.display())),
        Duration::from_secs(30),
    );
    assert_eq!(
        check.code(),
        Some(0),
        "promtool check metrics:\n{}{}",
        check.stdout,
        check.stderr
    );
    assert_eq!(
        format!("{}{}", check.stdout, check.stderr).trim(),
        "",
        "promtool lint"
    );

    let prom_port = free_port();
    let prom_cfg = dir.join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: fnatd\n    \
             static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .expect("write prometheus.yml");
    let _prometheus = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log file"))
            .spawn()
            .expect("spawn prometheus"),
    );

    let backend = "remote_address=\"198.19.1.10\",remote_port=\"80\",local_address=\"198.18.0.100\",local_port=\"80\",proto=\"TCP\"";
    let want: Vec<(String, f64)> = vec![
        ("up{job=\"fnatd\"}".into(), 1.0),
        ("fnat_up".into(), 1.0),
        ("fnat_connections_total".into(), 13.0),
        ("fnat_incoming_packets_total".into(), 13.0),
        ("fnat_incoming_bytes_total".into(), 13.0 * 40.0),
        ("fnat_outgoing_packets_total".into(), 0.0),
        (
            format!("fnat_backend_connections_inactive{{{backend}}}"),
            13.0,
        ),
        (format!("fnat_backend_connections_active{{{backend}}}"), 0.0),
        (format!("fnat_backend_weight{{{backend}}}"), 3.0),
        (format!("fnat_backend_connections_total{{{backend}}}"), 13.0),
        (
            "fnat_drops_total{reason=\"local_ports_exhausted\"}".into(),
            2.0,
        ),
        ("sum(fnat_sessions)".into(), 13.0),
        ("fnat_sessions{worker=\"1\"}".into(), 5.0),
        ("sum(fnat_sessions_created_total)".into(), 13.0),
        ("sum(fnat_worker_received_packets_total)".into(), 15.0),
        ("sum(fnat_worker_busy_cycles_total) > 0".into(), 1.0),
        ("fnat_worker_tsc_hz > 0".into(), 1.0),
        (
            "fnat_local_ports_in_use{local_address=\"198.19.0.10\"}".into(),
            7.0,
        ),
        (
            "fnat_local_ports_in_use{local_address=\"198.19.0.11\"}".into(),
            6.0,
        ),
        (
            "fnat_port_received_packets_total{port=\"wan\"}".into(),
            15.0,
        ),
        ("fnat_redirect_ring_capacity{worker=\"0\"}".into(), 4096.0),
        ("fnat_mbufs_capacity > 0".into(), 1.0),
        ("fnat_publish_generation".into(), 1.0),
        ("fnat_publishes_total".into(), 0.0),
    ];
    await_series(prom_port, &dir, &want);

    // A rules change: the weight follows, and so do the generation and the publish counters.
    let links = ipvsadm_dir(&dir);
    let edit = ipvsadm(
        &links,
        &dir.join("ctl.sock"),
        &[
            "-e",
            "-t",
            "198.18.0.100:80",
            "-r",
            "198.19.1.10:80",
            "-w",
            "5",
        ],
    );
    assert_eq!(edit.code(), Some(0), "{}", edit.stderr);
    let want: Vec<(String, f64)> = vec![
        (format!("fnat_backend_weight{{{backend}}}"), 5.0),
        ("fnat_publish_generation".into(), 2.0),
        ("fnat_publishes_total".into(), 1.0),
        ("fnat_publish_duration_seconds_total > 0".into(), 1.0),
        ("fnat_publish_last_duration_seconds > 0".into(), 1.0),
    ];
    await_series(prom_port, &dir, &want);

    // The Grafana dashboard's queries: Prometheus accepts each, every series name it uses is
    // one fnatd exports, and the per-service and per-server ones return data.
    let text = try_http_get(&endpoint).expect("scrape");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("packaging/grafana/fnat-dashboard.json"))
            .expect("packaging/grafana/fnat-dashboard.json"),
    )
    .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6);
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("fnat_"))
            {
                assert!(
                    text.lines().any(|l| l.starts_with(name)),
                    "dashboard panel {:?} uses {name}, which fnatd does not export",
                    panel["title"]
                );
            }
            let promql = expr
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*");
            let encoded = percent_encode(&promql);
            let body = try_http_get(&format!(
                "http://127.0.0.1:{prom_port}/api/v1/query?query={encoded}"
            ))
            .expect("query API");
            assert!(
                body.contains("\"status\":\"success\""),
                "dashboard query {promql:?} refused: {body}"
            );
        }
    }
    daemon.stop();
}

/// Waits (60 s at most) until every query in `want` returns its value from Prometheus.
fn await_series(prom_port: u16, dir: &TempDir, want: &[(String, f64)]) {
    let start = Instant::now();
    let mut missing: Vec<String> = Vec::new();
    while start.elapsed() < Duration::from_secs(60) {
        missing = want
            .iter()
            .filter_map(|(q, v)| {
                let got = query(prom_port, q);
                // A comparison returns the left side's value when it holds.
                let ok = if q.contains(" > ") {
                    got.is_some()
                } else {
                    got == Some(*v)
                };
                (!ok).then(|| format!("{q}: want {v}, got {got:?}"))
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        missing.is_empty(),
        "Prometheus's query API after 60 s:\n{}\nprometheus.log:\n{}",
        missing.join("\n"),
        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
    );
}

/// A one-worker config whose two ports are `devices`, with the metrics endpoint on.
fn load_config(devices: [&str; 2], metrics_port: u16) -> String {
    format!(
        r#"
[dataplane]
workers = 1
rx_desc = 512
tx_desc = 512

[[port]]
name = "wan"
device = "{}"
addresses = ["198.18.0.1/24"]

[[port]]
name = "lan"
device = "{}"
addresses = ["198.19.0.1/24"]

[metrics]
listen = "127.0.0.1:{metrics_port}"
"#,
        devices[0], devices[1]
    )
}

/// The value of the unlabelled or single-worker series `name` in an exposition text.
fn exposed(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Worker 0's share of cycles spent busy over `window`, from two scrapes of its endpoint,
/// and its busy-cycles counter at the end.
fn busy_share(devices: [&str; 2], tag: &str, window: Duration) -> (f64, f64) {
    let dir = TempDir::new(tag);
    let metrics_port = free_port();
    let cfg = dir.join("fnatd.toml");
    std::fs::write(&cfg, load_config(devices, metrics_port)).expect("write config");
    let daemon = Daemon::start(&cfg, &dir.join("ctl.sock"), &[]);
    let endpoint = format!("http://127.0.0.1:{metrics_port}/metrics");
    let busy = "fnat_worker_busy_cycles_total{worker=\"0\"}";
    let scrape = || -> Option<(Instant, f64, f64)> {
        let text = try_http_get(&endpoint).ok()?;
        Some((
            Instant::now(),
            exposed(&text, busy)?,
            exposed(&text, "fnat_worker_tsc_hz")?,
        ))
    };
    let start = Instant::now();
    let first = loop {
        if let Some(s) = scrape() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no {busy} from {endpoint}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(window);
    let last = scrape().expect("second scrape");
    daemon.stop();
    let (t0, busy0, hz) = first;
    let (t1, busy1, _) = last;
    assert!(hz > 1e8, "fnat_worker_tsc_hz {hz}");
    let share = (busy1 - busy0) / (hz * (t1 - t0).as_secs_f64());
    (share, busy1)
}

#[test]
fn busy_cycles_count_work_not_idle_polls() {
    let window = Duration::from_secs(2);
    // Endless frames from net_null on both ports: nearly every iteration received something
    // (counted even while the machine's other work preempts the worker mid-iteration).
    let (loaded, loaded_total) = busy_share(["net_null0", "net_null1"], "busy-load", window);
    assert!(loaded_total > 0.0);
    assert!(
        loaded > 0.5,
        "busy share {loaded:.3} with endless traffic (want > 0.5)"
    );
    // Empty captures: the worker polls as fast, but nothing arrives, so nothing counts.
    let dir = TempDir::new("busy-idle-pcap");
    write_pcap(&dir.join("empty.pcap"), &[]);
    let empty = |n: u8| {
        format!(
            "net_pcap{n},rx_pcap={},tx_pcap=/dev/null",
            dir.join("empty.pcap").display()
        )
    };
    let (idle, _) = busy_share([&empty(0), &empty(1)], "busy-idle", window);
    eprintln!("busy share: {loaded:.3} loaded, {idle:.5} idle");
    assert!(
        idle < 0.02,
        "busy share {idle:.4} with no traffic at all (want < 0.02)"
    );
}
