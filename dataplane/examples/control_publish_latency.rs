//! Publish latency of the control plane with 10k services and 100k real servers: the whole
//! path a change takes (request line → validate → compile → publish to every worker →
//! reply), over the real unix socket, without EAL. Two simulated workers poll the rules
//! store the way worker loops do and acknowledge each generation.
//!
//!   cargo run --release -p fnatd --example control_publish_latency [SERVICES] [REALS_PER_SERVICE] [CHANGES]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fnat_proto::edit::Change;
use fnat_proto::model::{LocalAddress, Real, RuleSet, Scheduler, Service, ServiceAddr};
use fnat_proto::msg::{Request, Response};
use fnat_proto::stats::Applied;
use fnatd::config::AppConfig;
use fnatd::control::{self, NoDataplane};
use fnatd::rules_store::RulesStore;
use std::net::Ipv4Addr;

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn vip(i: usize) -> ServiceAddr {
    ServiceAddr::tcp(Ipv4Addr::from(0x0a00_0000 + i as u32), 80)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let services = arg(1, 10_000);
    let reals_per = arg(2, 10);
    let changes = arg(3, 200);
    let dir = std::env::temp_dir().join(format!("fnat-publish-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("ctl.sock");
    let text = format!(
        "[dataplane]\nworkers = 2\n[[port]]\nname = \"a\"\ndevice = \"net_null0\"\n\
         [control]\nsocket = \"{}\"\nmax_request_bytes = 67108864\n",
        socket.display()
    );
    let cfg = AppConfig::parse(Path::new("bench.toml"), &text).unwrap();
    let store = RulesStore::new(cfg.rules.clone(), 2);
    store.set_workers_running(true);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let store = Arc::clone(&store);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut running = store.generation();
                while !stop.load(Ordering::Relaxed) {
                    let g = store.generation();
                    if g != running {
                        let _snapshot = store.current();
                        running = g;
                        store.acknowledge(w, g);
                    }
                    std::thread::sleep(Duration::from_micros(20));
                }
            })
        })
        .collect();
    let handle = control::start(&cfg, Arc::clone(&store), Arc::new(NoDataplane)).unwrap();

    let mut rules = RuleSet::default();
    for i in 0..services {
        let mut s = Service::new(vip(i), Scheduler::Wrr);
        for j in 0..reals_per {
            s.reals.push(Real::new(
                Ipv4Addr::from(0xc0a8_0000 + (i * reals_per + j) as u32),
                8080,
                1,
            ));
        }
        s.local_addresses.push(LocalAddress {
            addr: Ipv4Addr::new(198, 19, 0, 10),
            device: None,
        });
        rules.services.push(s);
    }
    let mut conn = UnixStream::connect(&socket).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut call = |request: &Request| -> Duration {
        let line = request.encode();
        let start = Instant::now();
        conn.write_all(line.as_bytes()).unwrap();
        let mut reply = String::new();
        reader.read_line(&mut reply).unwrap();
        let took = start.elapsed();
        Response::decode::<Applied>(&reply).unwrap();
        took
    };
    let load = call(&Request::Change(Change::Replace { rules }));
    println!(
        "loaded {services} services, {} reals in one replace: {:.1} ms",
        services * reals_per,
        load.as_secs_f64() * 1e3
    );
    let mut took = Vec::with_capacity(changes);
    for k in 0..changes {
        let i = (k * 7919) % services;
        let request = match k % 4 {
            // A weight edit, a real added then removed, a local address added: typical changes.
            0 | 1 => Request::Change(Change::RealEdit {
                service: vip(i),
                real: Real::new(
                    Ipv4Addr::from(0xc0a8_0000 + (i * reals_per) as u32),
                    8080,
                    (k % 100) as u32,
                ),
            }),
            2 => Request::Change(Change::RealAdd {
                service: vip(i),
                real: Real::new(Ipv4Addr::new(172, 16, 0, 1), 80, 1),
            }),
            _ => Request::Change(Change::RealDel {
                service: vip((k - 1) * 7919 % services),
                addr: Ipv4Addr::new(172, 16, 0, 1),
                port: 80,
            }),
        };
        took.push(call(&request));
    }
    took.sort();
    println!(
        "{changes} changes: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&took, 0.5).as_secs_f64() * 1e3,
        percentile(&took, 0.99).as_secs_f64() * 1e3,
        took.last().unwrap().as_secs_f64() * 1e3
    );
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    handle.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
