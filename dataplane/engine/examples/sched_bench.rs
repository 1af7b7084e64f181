//! Scheduler cost per new connection, for every scheduler with 10 and 1000 real servers.
//!
//! `cargo run --release -p fnat-engine --example sched_bench`
//!
//! Each pick sees live connection counts that it updates itself (a pick adds an inactive
//! connection to the chosen server; every 8th pick retires one), with varied weights and
//! source addresses, so the connection-counting schedulers do their full scan and the
//! hashing ones miss their caches as they would. Prints ns per pick (best of 3 runs).

use std::hint::black_box;
use std::time::Instant;

use fnat_engine::packet::Tuple;
use fnat_engine::rules::{SchedFlags, SchedulerKind};
use fnat_engine::sched::{Scheduler, StaticReals};

fn bench(kind: SchedulerKind, n: usize, picks: u32) -> (f64, f64) {
    let weights: Vec<u32> = (0..n).map(|i| 1 + (i as u32 * 7) % 10).collect();
    let mut reals = StaticReals::new(&weights);
    reals.idents = (0..n as u64)
        .map(|i| (0x0a00_0000 + i) << 16 | 80)
        .collect();
    let t0 = Instant::now();
    let mut s = Scheduler::with_flags(kind, SchedFlags(SchedFlags::FALLBACK), &reals);
    let build = t0.elapsed().as_secs_f64() * 1e6;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        for k in 0..picks {
            let flow = Tuple {
                proto: 6,
                src_ip: 0xc633_6400 ^ k.wrapping_mul(2_654_435_761),
                src_port: k as u16,
                dst_ip: 0xc612_0000 | (k & 0xff),
                dst_port: 80,
            };
            if let Some(i) = black_box(s.pick(&reals, &flow, u64::from(k) * 1000)) {
                reals.inactive[i] += 1;
                if k % 8 == 0 {
                    let j = (k as usize / 8) % n;
                    reals.inactive[j] = reals.inactive[j].saturating_sub(1);
                }
                if k % 4 == 0 {
                    reals.active[i] += 1;
                }
            }
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e9 / f64::from(picks));
    }
    (best, build)
}

fn main() {
    println!(
        "{:<6} {:>14} {:>16} {:>15} {:>17}",
        "sched", "10 RS ns/pick", "1000 RS ns/pick", "10 RS build µs", "1000 RS build µs"
    );
    for kind in SchedulerKind::ALL {
        let (a, ab) = bench(kind, 10, 1_000_000);
        let (b, bb) = bench(kind, 1000, 100_000);
        println!(
            "{:<6} {:>14.1} {:>16.1} {:>15.0} {:>17.0}",
            kind.name(),
            a,
            b,
            ab,
            bb
        );
    }
}
