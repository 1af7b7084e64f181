//! What health checking costs the control side: N real servers, each with a TCP_CHECK every
//! `delay_loop` seconds, against a local listener (the real servers' side is not counted).
//! Prints the CPU time of the checker's threads (scheduler and probe threads, from
//! /proc/self/task) per second of wall time.
//!
//!   cargo run --release -p fnat-health --example health_cost -- [REALS] [SECONDS] [DELAY_LOOP]

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fnat_health::{HealthConfig, Monitor, RealSpec, ServiceSpec, Sink};
use fnat_keepalived::lvs::{Checker, CheckerKind, Timing};
use fnat_keepalived::Location;
use fnat_proto::health::ServiceOverlay;
use fnat_proto::model::ServiceAddr;

struct Count(AtomicU64);

impl Sink for Count {
    fn apply(&self, _: u64, _: ServiceAddr, _: ServiceOverlay) -> Result<(), String> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// utime + stime, in clock ticks, of this process's threads whose name starts with `prefix`.
fn thread_ticks(prefix: &str) -> u64 {
    let mut total = 0;
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // Fields 14 and 15 of stat(5), counted after the name.
        total += fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    }
    total
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reals: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20);
    let delay_loop: f64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            drop(s);
        }
    });
    let checker = Checker {
        at: Location {
            file: Arc::new("cost".into()),
            line: 1,
        },
        kind: CheckerKind::Tcp,
        connect_ip: Some(Ipv4Addr::LOCALHOST.into()),
        connect_port: Some(port),
        bindto: None,
        bind_port: None,
        timing: Timing {
            connect_timeout: Duration::from_secs(5),
            retry: 1,
            delay_before_retry: Duration::from_secs(1),
            delay_loop: Duration::from_secs_f64(delay_loop),
            warmup: Some(Duration::from_secs_f64(delay_loop)),
            alpha: false,
            inhibit_on_failure: false,
        },
    };
    let spec = ServiceSpec {
        addr: ServiceAddr::tcp(Ipv4Addr::new(198, 18, 0, 100), 80),
        quorum: 1,
        hysteresis: 0,
        quorum_up: None,
        quorum_down: None,
        omega: false,
        sorry: None,
        sorry_inhibit: false,
        reals: (0..reals)
            .map(|i| RealSpec {
                addr: SocketAddrV4::new(Ipv4Addr::from(0xc613_0000 + i as u32), 80),
                weight: 1,
                inhibit: false,
                notify_up: None,
                notify_down: None,
                checkers: vec![checker.clone()],
            })
            .collect(),
    };
    let sink = Arc::new(Count(AtomicU64::new(0)));
    let monitor = Monitor::start(
        HealthConfig {
            services: vec![spec],
            notify_fifos: Vec::new(),
        },
        sink.clone(),
        1,
        None,
    )
    .unwrap();
    // Past the warmup, then measure.
    std::thread::sleep(Duration::from_secs_f64(delay_loop * 2.0));
    let hz = 100.0; // USER_HZ on Linux
    let (t0, c0) = (Instant::now(), thread_ticks("fnat-"));
    std::thread::sleep(Duration::from_secs(seconds));
    let (wall, cpu) = (
        t0.elapsed().as_secs_f64(),
        (thread_ticks("fnat-") - c0) as f64 / hz,
    );
    let listing = monitor.listing();
    let up = listing.checkers.iter().filter(|c| c.state == "up").count();
    println!(
        "{reals} TCP_CHECK reals every {delay_loop} s: checker threads used {:.2} % of one CPU ({cpu:.2} s CPU in {wall:.1} s); {up} up; {} overlays handed over",
        100.0 * cpu / wall,
        sink.0.load(Ordering::Relaxed)
    );
    monitor.stop_and_wait();
}
