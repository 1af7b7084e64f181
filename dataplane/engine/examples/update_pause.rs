//! The worker's pause when the rules change: how long `FullNat::update` takes with many
//! services, for one typical change at a time. This is what a worker does between two bursts
//! when a new snapshot is published (`Worker::update_rules`), so it is the time that worker
//! does not forward.
//!
//! ```sh
//! CARGO_TARGET_DIR=/tmp/target-publish cargo build --release -p fnat-engine --example update_pause
//! # wall clock (secondary: the VM is shared and noisy)
//! /tmp/target-publish/release/examples/update_pause 10000 10 400 [update|from|edits] [services]
//! # instructions: only `measure` (the timed updates) is collected
//! valgrind --tool=callgrind --toggle-collect='*update_pause*measure*' \
//!     /tmp/target-publish/release/examples/update_pause 10000 10 40 [update|from]
//! ```
//!
//! `update` (the default) times `FullNat::update(rules)`; `from` times
//! `FullNat::update_from(previous, rules)` on snapshots that do not say what changed (it
//! compares every service with its previous self); `edits` the same on snapshots that carry
//! the control plane's list of the services it set (`Rules::edits`), what
//! `Worker::update_rules` gets from fnatd's control plane for such changes.
//!
//! Rules: SERVICES wrr services (10.0.0.0 + i, port 80) of REALS_PER_SERVICE real servers
//! each, one local address each, as `dataplane/examples/control_publish_latency.rs` loads.
//! The CHANGES cycle through what that example sends: two weight edits, a real server added,
//! the same one removed, on services spread over the table; with `services`, a service added
//! (`ipvsadm -A`) and one removed from the middle (`-D`) in turn. The snapshots are built before
//! the timed loop (the control plane builds them; here only the worker is measured).
//!
//! It also prints two other costs a worker pays at that scale, for comparison: housekeeping
//! that publishes the live connection counts of every real server (every millisecond), and
//! copying its counters for the control plane (what the driver does every 100 ms).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fnat_engine::fnat::FullNat;
use fnat_engine::rules::{
    EditStep, Protocol, RealServer, Rules, SchedulerKind, Service, ServiceEdits,
};
use fnat_engine::WorkerStats;

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn base(services: usize, reals_per: usize) -> Rules {
    // The set-up of the update tests (`fnat::update`), with services added.
    let mut r = fnat_engine::rules::fixture::two_ports(1024);
    let mut next_real = 0;
    for i in 0..services {
        let mut s = Service::new(
            i as u32 + 1,
            Ipv4Addr::from(0x0a00_0000 + i as u32),
            Protocol::Tcp,
            80,
            SchedulerKind::Wrr,
        );
        for j in 0..reals_per {
            next_real += 1;
            s.reals.push(RealServer::new(
                next_real,
                Ipv4Addr::from(0xc0a8_0000 + (i * reals_per + j) as u32),
                8080,
                1,
            ));
        }
        s.local_addresses.push(Ipv4Addr::new(198, 19, 0, 10));
        r.services.push(s);
    }
    r
}

/// The snapshots the changes produce, in order (as the control plane would publish them),
/// each with the ids of the services set by every generation so far when `edits` (as the
/// control plane hands them on). `services` changes add and remove services instead of
/// editing real servers.
fn changes(
    mut r: Rules,
    n: usize,
    reals_per: usize,
    edits: bool,
    services_change: bool,
) -> Vec<Arc<Rules>> {
    let mut out = Vec::with_capacity(n);
    let mut added = 10_000_000;
    let mut next_service = r.services.iter().map(|s| s.id).max().unwrap_or(0);
    let mut history = ServiceEdits::default();
    for k in 0..n {
        let services = r.services.len();
        let i = (k * 7919) % services;
        let set = if services_change {
            if k % 2 == 0 {
                // Added at the end, as the control plane adds (`ipvsadm -A`).
                next_service += 1;
                let mut s = r.services[i].clone();
                s.id = next_service;
                s.vip = Ipv4Addr::from(0x0b00_0000 + next_service);
                r.services.push(s);
                vec![next_service]
            } else {
                // Removed from the middle (`ipvsadm -D`): the services after it move.
                r.services.remove(i);
                vec![]
            }
        } else {
            match k % 4 {
                0 | 1 => {
                    if let Some(rs) = r.services[i].reals.first_mut() {
                        rs.weight = (k % 100) as u32;
                    }
                    vec![r.services[i].id]
                }
                2 => {
                    added += 1;
                    r.services[i].reals.push(RealServer::new(
                        added,
                        Ipv4Addr::new(172, 16, 0, 1),
                        80,
                        1,
                    ));
                    vec![r.services[i].id]
                }
                _ => {
                    let j = ((k - 1) * 7919) % services;
                    r.services[j].reals.truncate(reals_per);
                    vec![r.services[j].id]
                }
            }
        };
        history = history.then(EditStep {
            from: r.generation,
            services: set.into(),
        });
        r.edits = edits.then(|| history.clone());
        r.generation += 1;
        out.push(Arc::new(r.clone()));
    }
    out
}

#[inline(never)]
fn measure(
    f: &mut FullNat,
    stats: &mut WorkerStats,
    first: &Arc<Rules>,
    snapshots: &[Arc<Rules>],
    from: bool,
) -> Vec<Duration> {
    let mut took = Vec::with_capacity(snapshots.len());
    let mut previous = first;
    for s in snapshots {
        let start = Instant::now();
        if from {
            f.update_from(previous, s, stats);
        } else {
            f.update(s, stats);
        }
        took.push(start.elapsed());
        previous = s;
    }
    took
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let services = arg(1, 10_000);
    let reals_per = arg(2, 10);
    let n = arg(3, 200);
    let mode = std::env::args().nth(4).unwrap_or_default();
    let (from, edits) = (mode == "from" || mode == "edits", mode == "edits");
    let rules = Arc::new(base(services, reals_per));
    let services_change = std::env::args().nth(5).as_deref() == Some("services");
    let snapshots = changes((*rules).clone(), n, reals_per, edits, services_change);
    let start = Instant::now();
    let mut stats = WorkerStats::default();
    let mut f = FullNat::new(0, 2, &rules, &mut stats);
    println!(
        "worker built with {services} services, {} reals: {:.1} ms",
        services * reals_per,
        start.elapsed().as_secs_f64() * 1e3
    );
    let mut took = measure(&mut f, &mut stats, &rules, &snapshots, from);
    black_box(&f);
    // What else a worker's loop pays per real server at this scale: housekeeping publishes
    // the live counts of every real server every millisecond (`sched::load`).
    let mut hk = Vec::with_capacity(200);
    for k in 1..=200u64 {
        let start = Instant::now();
        f.housekeeping(k * 1_000_000, 256, &mut stats);
        hk.push(start.elapsed());
    }
    hk.sort();
    // And what the driver does every 100 ms: copy the counters for the control plane.
    let mut copy = WorkerStats::default();
    let mut cp = Vec::with_capacity(50);
    for _ in 0..50 {
        let start = Instant::now();
        copy.clone_from(&stats);
        cp.push(start.elapsed());
    }
    black_box(&copy);
    cp.sort();
    took.sort();
    println!(
        "{n} updates ({}): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        match (from, edits) {
            (_, true) => "update_from with the publisher's edits",
            (true, _) => "update_from",
            _ => "update",
        },
        percentile(&took, 0.5).as_secs_f64() * 1e3,
        percentile(&took, 0.99).as_secs_f64() * 1e3,
        took.last().unwrap().as_secs_f64() * 1e3
    );
    println!(
        "housekeeping that publishes the live counts (every 1 ms): p50 {:.3} ms",
        percentile(&hk, 0.5).as_secs_f64() * 1e3
    );
    println!(
        "counters copied for the control plane (every 100 ms): p50 {:.3} ms",
        percentile(&cp, 0.5).as_secs_f64() * 1e3
    );
}
