//! A SYN flood of spoofed sources through `fnatd replay`, interleaved with an established flow.
//!
//! The session table (capacity 1000) fills to its limit; every SYN beyond it is dropped and
//! counted as `session_table_full`; the established flow keeps flowing both ways; and once
//! capture time passes the SYN_RECV timeout (60 s) the half-open sessions expire and new
//! clients get sessions again. Memory stays bounded: ten times the flood does not grow the
//! daemon's peak RSS (the table is allocated once, at start).
//!
//! One test in this file on purpose: it measures its children's peak RSS.

use std::net::Ipv4Addr;
use std::time::Duration;

use fnat_tests::*;

const MS: u128 = 1_000_000;
const US: u128 = 1_000;
const S: u128 = 1_000_000_000;
const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
const CPORT: u16 = 40000;
const LPORT_MIN: u16 = 10000;
const CAPACITY: u64 = 1000;

struct Outcome {
    stdout: String,
    lan_out: Vec<CapturedFrame>,
    wan_out: Vec<CapturedFrame>,
    rx: u64,
}

fn replay(dir: &TempDir, cap: &LabCapture, session: &str) -> Outcome {
    let args = cap.write(dir);
    let run = replay_with_config(
        dir,
        &fnat_lab_config("", "workers = 1", session, ""),
        &args,
        Duration::from_secs(120),
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    Outcome {
        stdout: run.stdout,
        lan_out: read_pcap(&dir.join("lan-out.pcap")),
        wan_out: read_pcap(&dir.join("wan-out.pcap")),
        rx: cap.len() as u64,
    }
}

/// Peak RSS (KiB) of the largest child this process has waited for.
fn children_max_rss_kib() -> i64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage(RUSAGE_CHILDREN)")
        .max_rss()
}

/// The flood capture: an established flow, `flood` spoofed SYNs with the flow's data every
/// 200 of them, then (70 s later in capture time) the flow again and 500 new clients.
fn flood_capture(flood: u32) -> (LabCapture, u32) {
    let mut cap = LabCapture::default();
    let client = (CLIENT, CPORT);
    cap.client(S, client, "S", b"");
    cap.server(S + MS, LPORT_MIN, "SA", b"");
    cap.client(S + 2 * MS, client, "A", b"");
    let mut rng = Rng::new(8);
    let mut data = 0u32;
    for i in 0..flood {
        let t = 2 * S + u128::from(i) * 50 * US;
        // Unique spoofed sources from 100.64.0.0/10, random ports.
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + i);
        cap.client(t, (ip, 1024 + rng.below(64000) as u16), "S", b"");
        if i % 200 == 0 {
            let payload = format!("e-data-{data}");
            cap.client(t + 10 * US, client, "AP", payload.as_bytes());
            cap.server(t + 20 * US, LPORT_MIN, "AP", payload.as_bytes());
            data += 1;
        }
    }
    // Past the SYN_RECV timeout, with nothing in between: the flow, then new clients, whose
    // SYNs find the table full of due sessions and reap them as they come.
    let later = 2 * S + u128::from(flood) * 50 * US + 70 * S;
    let payload = format!("e-data-{data}");
    cap.client(later + 10 * MS, client, "AP", payload.as_bytes());
    cap.server(later + 11 * MS, LPORT_MIN, "AP", payload.as_bytes());
    data += 1;
    for k in 0..500u32 {
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 51, 100, 0)) + k);
        cap.client(later + 20 * MS + u128::from(k) * MS, (ip, 5555), "S", b"");
    }
    (cap, data)
}

#[test]
fn syn_flood_fills_the_table_established_flow_survives_and_the_table_recovers() {
    let session = format!("capacity = {CAPACITY}\nlocal_port_range = [{LPORT_MIN}, 65000]");

    // Baseline: a tenth of the flood (it fills the table all the same).
    let dir = TempDir::new("syn-flood-small");
    let (small, _) = flood_capture(2_000);
    let base = replay(&dir, &small, &session);
    Books::parse(&base.stdout).assert_sound(&base.stdout);
    let rss_small = children_max_rss_kib();

    let flood = 20_000u32;
    let dir = TempDir::new("syn-flood");
    let (cap, data) = flood_capture(flood);
    let out = replay(&dir, &cap, &session);
    let stdout = &out.stdout;
    let rss_big = children_max_rss_kib();

    // The table took CAPACITY - 1 flood sessions (the flow holds one); the rest are counted.
    let admitted = CAPACITY - 1;
    let refused = u64::from(flood) - admitted;
    assert_eq!(
        drop_counter(stdout, "session_table_full"),
        refused,
        "{stdout}"
    );
    let books = Books::parse(stdout);
    books.assert_sound(stdout);
    books.assert_no_engine_frames(stdout);
    // Handshake 3, admitted SYNs, the flow's data both ways, 500 new clients.
    let forwarded = 3 + admitted + 2 * u64::from(data) + 500;
    assert_eq!(
        (books.rx, books.forwarded, books.dropped),
        (out.rx, forwarded, refused),
        "{stdout}"
    );
    for reason in fnat_engine::DropReason::ALL {
        if reason.name() != "session_table_full" {
            assert_eq!(drop_counter(stdout, reason.name()), 0, "{}", reason.name());
        }
    }

    // The established flow flowed through the flood and after it, both ways, rewritten.
    for (frames, side) in [(&out.lan_out, "lan"), (&out.wan_out, "wan")] {
        let seen = tcp_with_payload(frames, b"e-data-");
        assert_eq!(seen.len(), data as usize, "{side}: the flow's data");
        for (k, t) in seen.iter().enumerate() {
            assert_eq!(t.payload, format!("e-data-{k}").as_bytes(), "{side}");
            assert!(t.checksums_valid(), "{side}: checksum");
            let tuple = (
                Ipv4Addr::from(t.ip.source),
                t.tcp.source_port,
                Ipv4Addr::from(t.ip.destination),
                t.tcp.destination_port,
            );
            if side == "lan" {
                assert_eq!(tuple, (lab::LIP, LPORT_MIN, lab::RS, 80));
            } else {
                assert_eq!(tuple, (lab::VIP, 80, CLIENT, CPORT));
            }
        }
    }
    // After the SYN_RECV timeout every new client got a session again.
    let new_clients = out
        .lan_out
        .iter()
        .filter_map(|f| TcpFrame::parse(&f.data))
        .filter(|t| t.tcp.syn && t.ip.source == lab::LIP.octets())
        .count();
    assert_eq!(new_clients as u64, 1 + admitted + 500, "SYNs out on lan");

    // Ten times the flood, same peak memory (within noise): nothing grows per refused SYN.
    assert!(
        rss_big <= rss_small + 16 * 1024,
        "peak RSS grew from {rss_small} KiB to {rss_big} KiB with 10x the flood"
    );
}
