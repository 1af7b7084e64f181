//! Full-NAT with 2 and 3 workers through `fnatd replay` on multi-queue pcap devices. Client
//! flows are spread over the wan queues as RSS would; every server reply is delivered to a
//! worker that does not own its session, so it must cross a redirect ring to the owner.
//! Frames are built and checked with etherparse.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fnat_tests::*;

const VIP: [u8; 4] = [198, 18, 0, 100];
const LIP: [u8; 4] = [198, 19, 0, 10];
const WAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const FLOWS: u32 = 60;

fn client(i: u32) -> ([u8; 4], u16) {
    (
        [198, 18, 1 + (i / 200) as u8, (i % 200) as u8 + 1],
        40000 + i as u16,
    )
}

fn tcp(
    macs: ([u8; 6], [u8; 6]),
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    seq: u32,
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = etherparse::PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, seq, 65535);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(1),
            'F' => b.fin(),
            'P' => b.psh(),
            _ => unreachable!(),
        };
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// The client's frames of flow i: SYN, ACK+data, FIN.
fn client_frames(i: u32) -> Vec<CapturedFrame> {
    let (m, c, v) = (([2, 0, 0, 0, 9, 9], WAN_MAC), client(i), (VIP, 80));
    vec![
        CapturedFrame {
            ts_ns: replay_ts(i, 0),
            data: tcp(m, c, v, 1000, "S", &[]),
        },
        CapturedFrame {
            ts_ns: replay_ts(i, 2),
            data: tcp(m, c, v, 1001, "AP", format!("GET /{i}").as_bytes()),
        },
        CapturedFrame {
            ts_ns: replay_ts(i, 4),
            data: tcp(m, c, v, 1010, "AF", &[]),
        },
    ]
}

fn write_config(dir: &TempDir, workers: usize) -> std::path::PathBuf {
    let text = std::fs::read_to_string(config("fnat-replay.toml")).unwrap();
    let text = text.replace("workers = 1", &format!("workers = {workers}"));
    assert!(text.contains(&format!("workers = {workers}")));
    let path = dir.join("fnat.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn replay(cfg: &std::path::Path, args: &[String]) -> Finished {
    fnatd_replay_ok(cfg, args, Duration::from_secs(60))
}

/// Flow → (lport, real server), from the lan outputs of every queue, checking that each flow
/// left through the queue of the worker that owns its local port.
fn check_lan(workers: usize, lan_out: &[std::path::PathBuf]) -> BTreeMap<u16, (u16, [u8; 4])> {
    let mut mapping = BTreeMap::new();
    let mut frames = 0;
    for (q, file) in lan_out.iter().enumerate() {
        for f in read_pcap(file) {
            frames += 1;
            let t = TcpFrame::parse(&f.data).expect("IPv4/TCP on lan");
            assert!(t.checksums_valid(), "bad checksum on lan queue {q}");
            assert_eq!((t.ip.source, t.eth.source), (LIP, LAN_MAC));
            assert_eq!(
                usize::from(t.tcp.source_port) % workers,
                q,
                "lport {} left through queue {q}",
                t.tcp.source_port
            );
            mapping
                .entry((t.tcp.source_port, t.ip.destination))
                .or_insert_with(Vec::new)
                .push(t);
        }
    }
    assert_eq!(
        frames,
        FLOWS as usize * 3,
        "every client frame is forwarded exactly once"
    );
    // Identify each session's flow by its data payload ("GET /i").
    let mut by_flow = BTreeMap::new();
    for ((lport, rs), segs) in mapping {
        assert_eq!(segs.len(), 3, "a session carries its flow's three frames");
        let data = segs
            .iter()
            .find(|t| !t.payload.is_empty())
            .expect("data segment");
        let i: u32 = std::str::from_utf8(&data.payload).unwrap()[5..]
            .parse()
            .unwrap();
        assert!(
            by_flow.insert(client(i).1, (lport, rs)).is_none(),
            "flow {i} got two sessions"
        );
    }
    assert_eq!(by_flow.len(), FLOWS as usize);
    let lports: BTreeSet<u16> = by_flow.values().map(|(l, _)| *l).collect();
    assert_eq!(
        lports.len(),
        FLOWS as usize,
        "no two sessions share LIP:lport"
    );
    by_flow
}

fn run_workers(workers: usize) {
    let dir = TempDir::new(&format!("fnat-w{workers}"));
    let cfg = write_config(&dir, workers);
    // Client flows spread over wan queues, flow i on queue i mod workers.
    let mut wan_in: Vec<Vec<CapturedFrame>> = vec![Vec::new(); workers];
    for i in 0..FLOWS {
        wan_in[i as usize % workers].extend(client_frames(i));
    }
    let wan_files: Vec<_> = (0..workers)
        .map(|q| dir.join(&format!("wan-in-{q}.pcap")))
        .collect();
    for (q, f) in wan_files.iter().enumerate() {
        write_pcap(f, &wan_in[q]);
    }
    let lan_first: Vec<_> = (0..workers)
        .map(|q| dir.join(&format!("lan-first-{q}.pcap")))
        .collect();
    let mut args: Vec<String> = Vec::new();
    for q in 0..workers {
        args.push(format!("--rx=wan:{q}={}", wan_files[q].display()));
        args.push(format!("--tx=lan:{q}={}", lan_first[q].display()));
    }
    let first = replay(&cfg, &args);
    let total = FLOWS * 3;
    assert!(
        first.stdout.contains(&format!(
            "accounted: RX {total} + originated 0 = forwarded {total} + dropped 0 + consumed 0 + held 0"
        )),
        "{}",
        first.stdout
    );
    let mapping = check_lan(workers, &lan_first);

    // The servers' replies (SYN-ACK, data, FIN) to LIP:lport, each put on a lan queue whose
    // worker does not own the lport.
    let mut lan_in: Vec<Vec<CapturedFrame>> = vec![Vec::new(); workers];
    for i in 0..FLOWS {
        let (lport, rs) = mapping[&client(i).1];
        let m = ([2, 0, 0, 0, 1, rs[3]], LAN_MAC);
        let (from, to) = ((rs, 80), (LIP, lport));
        let wrong = (usize::from(lport) + 1) % workers;
        lan_in[wrong].push(CapturedFrame {
            ts_ns: replay_ts(i, 1),
            data: tcp(m, from, to, 5000, "SA", &[]),
        });
        lan_in[wrong].push(CapturedFrame {
            ts_ns: replay_ts(i, 3),
            data: tcp(m, from, to, 5001, "AP", format!("page {i}").as_bytes()),
        });
        lan_in[wrong].push(CapturedFrame {
            ts_ns: replay_ts(i, 5),
            data: tcp(m, from, to, 5008, "AF", &[]),
        });
    }
    for q in &mut lan_in {
        q.sort_by_key(|f| f.ts_ns);
    }
    let lan_files: Vec<_> = (0..workers)
        .map(|q| dir.join(&format!("lan-in-{q}.pcap")))
        .collect();
    let lan_out: Vec<_> = (0..workers)
        .map(|q| dir.join(&format!("lan-out-{q}.pcap")))
        .collect();
    let wan_out: Vec<_> = (0..workers)
        .map(|q| dir.join(&format!("wan-out-{q}.pcap")))
        .collect();
    let mut args: Vec<String> = Vec::new();
    for q in 0..workers {
        write_pcap(&lan_files[q], &lan_in[q]);
        args.push(format!("--rx=wan:{q}={}", wan_files[q].display()));
        args.push(format!("--rx=lan:{q}={}", lan_files[q].display()));
        args.push(format!("--tx=lan:{q}={}", lan_out[q].display()));
        args.push(format!("--tx=wan:{q}={}", wan_out[q].display()));
    }
    let second = replay(&cfg, &args);
    let total = FLOWS * 6;
    assert!(
        second.stdout.contains(&format!(
            "accounted: RX {total} + originated 0 = forwarded {total} + dropped 0 + consumed 0 + held 0"
        )),
        "{}",
        second.stdout
    );
    assert!(
        second
            .stdout
            .contains(&format!("Redirected between workers: {}", FLOWS * 3)),
        "{}",
        second.stdout
    );
    // Same input, same output: the client side leaves exactly as in the first run.
    for q in 0..workers {
        assert_eq!(
            read_pcap(&lan_first[q])
                .iter()
                .map(|f| &f.data)
                .collect::<Vec<_>>(),
            read_pcap(&lan_out[q])
                .iter()
                .map(|f| &f.data)
                .collect::<Vec<_>>(),
            "lan queue {q}"
        );
    }
    // Every reply reaches its own client from the VIP, through the owner's queue.
    let mut replies: BTreeMap<u16, usize> = BTreeMap::new();
    for (q, file) in wan_out.iter().enumerate() {
        for f in read_pcap(file) {
            let t = TcpFrame::parse(&f.data).expect("IPv4/TCP on wan");
            assert!(t.checksums_valid(), "bad checksum on wan queue {q}");
            assert_eq!((t.ip.source, t.tcp.source_port), (VIP, 80));
            let i = u32::from(t.tcp.destination_port - 40000);
            assert_eq!(
                t.ip.destination,
                client(i).0,
                "reply of flow {i} to the wrong client"
            );
            let (lport, _) = mapping[&client(i).1];
            assert_eq!(
                usize::from(lport) % workers,
                q,
                "reply of flow {i} left through a non-owner"
            );
            *replies.entry(t.tcp.destination_port).or_default() += 1;
        }
    }
    assert_eq!(replies.len(), FLOWS as usize);
    assert!(
        replies.values().all(|n| *n == 3),
        "each flow gets its three replies"
    );
}

#[test]
fn two_workers_redirect_replies_to_their_owner() {
    run_workers(2);
}

#[test]
fn three_workers_redirect_replies_to_their_owner() {
    run_workers(3);
}
