//! The malformed-packet corpus (dataplane/engine/tests/malformed_support) replayed through the
//! real DPDK dataplane with `fnatd replay`: every printed drop counter must equal what the
//! corpus expects, the books must balance with the exact numbers, no mbuf may leak, and the
//! session set up first must keep forwarding correctly between the cases.
//!
//! Also: docs/drop-counters.md must explain every drop counter the engine has.

#[path = "../../dataplane/engine/tests/malformed_support/mod.rs"]
mod corpus;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use corpus::{Expect, Lab, Side};
use fnat_engine::DropReason;
use fnat_tests::*;

const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
const CPORT: u16 = 40000;
/// The first local port of the range: the live session's (ports are handed out in order).
const LPORT_MIN: u16 = 20000;
/// The largest frame that fits one mbuf (DPDK's default data room); larger ones arrive as
/// several segments, which the driver drops as `multi_segment`.
const ONE_MBUF: usize = 2048;

fn lab() -> Lab {
    Lab {
        wan_mac: lab::WAN_MAC,
        lan_mac: lab::LAN_MAC,
        router_mac: lab::ROUTER_MAC,
        rs_mac: lab::RS_MAC,
        vip: lab::VIP,
        vport: 80,
        udp_vport: 53,
        own_ip: lab::WAN_IP,
        lip: lab::LIP,
        lport: LPORT_MIN,
        free_lport: LPORT_MIN + 500,
        rs: lab::RS,
        rport: 80,
        client: CLIENT,
        cport: CPORT,
        stranger: Ipv4Addr::new(192, 0, 2, 99),
    }
}

const MS: u128 = 1_000_000;
const S: u128 = 1_000_000_000;

#[test]
fn the_corpus_through_fnatd_replay_counts_every_drop_exactly() {
    let dir = TempDir::new("robust-corpus");
    let lab = lab();
    let (mut wan, mut lan) = (Vec::new(), Vec::new());
    let mut push = |side: Side, ts_ns: u128, data: Vec<u8>| {
        let f = CapturedFrame { ts_ns, data };
        match side {
            Side::Wan => wan.push(f),
            Side::Lan => lan.push(f),
        }
    };
    // The live session: a real handshake.
    push(Side::Wan, S, lab.client_segment(corpus::SYN, 64, b""));
    push(
        Side::Lan,
        S + MS,
        lab.rs_segment(corpus::SYN | corpus::ACK, 64, b""),
    );
    push(
        Side::Wan,
        S + 2 * MS,
        lab.client_segment(corpus::ACK, 64, b""),
    );
    let mut forwarded = 3u64;
    let mut expected: BTreeMap<DropReason, u64> = BTreeMap::new();
    let cases = corpus::cases(&lab);
    let mut probes = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let t = 2 * S + i as u128 * 10 * MS;
        push(case.side, t, case.frame.clone());
        match case.expect {
            Expect::Drop(r) => *expected.entry(r).or_default() += 1,
            Expect::Forward(_) if case.frame.len() > ONE_MBUF => {
                *expected.entry(DropReason::MultiSegment).or_default() += 1
            }
            Expect::Forward(_) => forwarded += 1,
        }
        let payload = format!("probe after {}", case.name).into_bytes();
        push(Side::Wan, t + MS, lab.client_data(&payload));
        push(Side::Lan, t + 2 * MS, lab.rs_data(&payload));
        forwarded += 2;
        probes.push(payload);
    }
    let dropped: u64 = expected.values().sum();
    let (wan_in, lan_in) = (dir.join("wan-in.pcap"), dir.join("lan-in.pcap"));
    let (wan_out, lan_out) = (dir.join("wan-out.pcap"), dir.join("lan-out.pcap"));
    write_pcap(&wan_in, &wan);
    write_pcap(&lan_in, &lan);
    let config = fnat_lab_config(
        "",
        "workers = 1",
        &format!("local_port_range = [{LPORT_MIN}, 29999]"),
        "",
    );
    let run = replay_with_config(
        &dir,
        &config,
        &[
            format!("--rx=wan={}", wan_in.display()),
            format!("--rx=lan={}", lan_in.display()),
            format!("--tx=wan={}", wan_out.display()),
            format!("--tx=lan={}", lan_out.display()),
        ],
        Duration::from_secs(60),
    );
    let out = &run.stdout;

    // Every counter, zeros included, is what the corpus says.
    for reason in DropReason::ALL {
        assert_eq!(
            drop_counter(out, reason.name()),
            expected.get(reason).copied().unwrap_or(0),
            "counter {}\n{out}",
            reason.name()
        );
    }
    let books = Books::parse(out);
    books.assert_sound(out);
    let rx = (wan.len() + lan.len()) as u64;
    assert_eq!(
        (books.rx, books.forwarded, books.dropped),
        (rx, forwarded, dropped),
        "{out}"
    );
    books.assert_no_engine_frames(out);

    // The session survived every case: each probe left rewritten, in order, both ways.
    let lan_frames: Vec<TcpFrame> = read_pcap(&lan_out)
        .iter()
        .filter_map(|f| TcpFrame::parse(&f.data))
        .collect();
    assert_eq!(lan_frames[0].tcp.source_port, LPORT_MIN, "the first lport");
    let wan_frames: Vec<TcpFrame> = read_pcap(&wan_out)
        .iter()
        .filter_map(|f| TcpFrame::parse(&f.data))
        .collect();
    for (frames, src, dst, side) in [
        (&lan_frames, (lab::LIP, LPORT_MIN), (lab::RS, 80), "lan"),
        (&wan_frames, (lab::VIP, 80), (CLIENT, CPORT), "wan"),
    ] {
        let seen: Vec<&TcpFrame> = frames
            .iter()
            .filter(|t| t.payload.starts_with(b"probe after "))
            .collect();
        assert_eq!(seen.len(), probes.len(), "{side}: probes out");
        for (t, payload) in seen.iter().zip(&probes) {
            assert_eq!(&t.payload, payload, "{side}: probe order");
            assert!(t.checksums_valid(), "{side}: probe checksum");
            assert_eq!(
                (
                    Ipv4Addr::from(t.ip.source),
                    t.tcp.source_port,
                    Ipv4Addr::from(t.ip.destination),
                    t.tcp.destination_port
                ),
                (src.0, src.1, dst.0, dst.1),
                "{side}: probe {}",
                String::from_utf8_lossy(payload)
            );
        }
    }
    for pcap in [&lan_out, &wan_out] {
        assert!(
            tshark_bad_checksums(pcap).is_empty(),
            "tshark finds bad checksums in {}",
            pcap.display()
        );
    }
}

#[test]
fn docs_explain_every_drop_counter() {
    let readme = std::fs::read_to_string(root().join("docs/drop-counters.md"))
        .expect("docs/drop-counters.md");
    let section = readme
        .split_once("## Drop counters")
        .expect("docs/drop-counters.md has a `## Drop counters` section")
        .1;
    let section = section.split("\n## ").next().unwrap_or(section);
    for reason in DropReason::ALL {
        let row = format!("| {} |", reason.name());
        let line = section
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| panic!("the drop counter table has no row `{row}`"));
        let meaning = line[row.len()..].trim().trim_end_matches('|').trim();
        assert!(
            meaning.len() >= 10,
            "docs/drop-counters.md explains `{}` too briefly: {line:?}",
            reason.name()
        );
    }
}
