//! What random cache lines cost on this machine, away from fnatd: the ceiling the session
//! table's lookups work under (perf/RESULTS.md, "issue 12, session 10"). No EAL; memory comes
//! from fnatd's allocator (transparent huge pages advised, as for the tables).
//!
//! ```sh
//! cargo build --release -p dpdk-bindings --example memory_walk
//! taskset -c 1 target/release/examples/memory_walk latency MIB
//! taskset -c 1 target/release/examples/memory_walk packets MIB GROUP WORK
//! ```
//!
//! - `latency MIB`: one load after the other over a random cycle of the lines of `MIB` MiB
//!   (each load's address is the previous load's value): the latency of a random line.
//! - `packets MIB GROUP WORK`: the burst loop's shape. Each item (a packet) reads two
//!   random lines: an "index" line, whose value gives its "session" line. As in
//!   `Worker::process_burst`, the index line is prefetched 16 items ahead and the session
//!   line 8 (read from its index line, loaded by then; both distances at least `GROUP`),
//!   `GROUP` items' prefetches issued together every `GROUP` items (`GROUP` 1: one at a time,
//!   every item); each item then reads its session line and does `WORK` rounds of independent
//!   ALU work (about 8 instructions a round; 70 rounds are about an established packet's).

use std::hint::black_box;
use std::time::Instant;

use dpdk_bindings::cpu::prefetch0;
use dpdk_bindings::hugealloc::HugePageAlloc;
use dpdk_bindings::time::tsc;

#[global_allocator]
static ALLOC: HugePageAlloc = HugePageAlloc;

const LINE: usize = 64;
/// u64 words per line.
const WORDS: usize = LINE / 8;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn usage() -> ! {
    eprintln!("usage: memory_walk latency MIB | memory_walk packets MIB GROUP WORK");
    std::process::exit(2)
}

fn arg(args: &[String], i: usize) -> usize {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage())
}

/// `MiB` of memory as lines of words, touched (so backed) before timing.
fn memory(mib: usize) -> Vec<u64> {
    vec![1u64; mib << 20 >> 3]
}

/// MiB of this process backed by transparent huge pages (`AnonHugePages`).
fn thp_mib() -> u64 {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

/// Nanoseconds and TSC cycles `f` took.
fn timed(f: impl FnOnce() -> u64) -> (f64, f64) {
    let (t0, c0) = (Instant::now(), tsc());
    black_box(f());
    let (c1, ns) = (tsc(), t0.elapsed().as_nanos() as f64);
    (ns, c1.wrapping_sub(c0) as f64)
}

fn latency(mib: usize) {
    let mut mem = memory(mib);
    let lines = mem.len() / WORDS;
    // A random cycle through every line (Sattolo's shuffle), each line naming the next.
    let mut order: Vec<usize> = (0..lines).collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    for i in (1..lines).rev() {
        let j = (xorshift(&mut seed) % i as u64) as usize;
        order.swap(i, j);
    }
    for w in 0..lines {
        mem[order[w] * WORDS] = (order[(w + 1) % lines] * WORDS) as u64;
    }
    let loads = 4_000_000;
    let (ns, cycles) = timed(|| {
        let mut at = order[0] * WORDS;
        for _ in 0..loads {
            at = mem[at] as usize;
        }
        at as u64
    });
    println!(
        "latency {mib} MiB (THP {} MiB): {:.1} ns, {:.0} cycles a random line",
        thp_mib(),
        ns / loads as f64,
        cycles / loads as f64
    );
}

fn packets(mib: usize, group: usize, work: usize) {
    let group = group.max(1);
    let mut mem = memory(mib);
    let lines = mem.len() / WORDS;
    let items = 8_000_000;
    let session_ahead = group.max(8);
    let index_ahead = session_ahead + group.max(8);
    let mut seed = 0x2545_f491_4f6c_dd1d;
    // Item i's index line, whose first word is the offset of its session line.
    let index: Vec<usize> = (0..items + index_ahead)
        .map(|_| {
            let at = (xorshift(&mut seed) % lines as u64) as usize * WORDS;
            mem[at] = (xorshift(&mut seed) % lines as u64) * WORDS as u64;
            at
        })
        .collect();
    let mut session = vec![0usize; items + index_ahead];
    let (ns, cycles) = timed(|| {
        let mut sum = 0u64;
        for i in 0..items {
            if i % group == 0 {
                for k in i + index_ahead..i + index_ahead + group {
                    prefetch0(mem[index[k]..].as_ptr().cast());
                }
                for k in i + session_ahead..i + session_ahead + group {
                    session[k] = mem[index[k]] as usize;
                    prefetch0(mem[session[k]..].as_ptr().cast());
                }
            }
            sum = sum.wrapping_add(mem[session[i] + 1]);
            let (mut a, mut b, mut c, mut d) = (i as u64, sum, 3u64, 5u64);
            for w in 0..work as u64 {
                a = a.rotate_left(5) ^ w;
                b = b.rotate_left(7) ^ w;
                c = c.rotate_left(11) ^ w;
                d = d.rotate_left(13) ^ w;
            }
            sum = sum.wrapping_add(a ^ b ^ c ^ d);
        }
        sum
    });
    println!(
        "packets {mib} MiB (THP {} MiB), prefetch group {group}, work {work}: {:.1} ns, {:.0} \
         cycles an item",
        thp_mib(),
        ns / items as f64,
        cycles / items as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("latency") => latency(arg(&args, 2)),
        Some("packets") => packets(arg(&args, 2), arg(&args, 3), arg(&args, 4)),
        _ => usage(),
    }
}
