//! Exhaustion through the real dataplane: local ports of every LIP, the mbuf pool, and a
//! worker's redirect ring. Each must be counted, leak nothing, keep established flows going
//! and recover by itself.

use std::net::Ipv4Addr;
use std::time::Duration;

use fnat_tests::*;

const MS: u128 = 1_000_000;
const US: u128 = 1_000;
const S: u128 = 1_000_000_000;
const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
const CPORT: u16 = 40000;

fn new_client(k: u32) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 51, 100, 0)) + k),
        5000 + k as u16,
    )
}

/// Local ports of the SYNs that left on lan, in order.
fn syn_lports(frames: &[CapturedFrame]) -> Vec<u16> {
    frames
        .iter()
        .filter_map(|f| TcpFrame::parse(&f.data))
        .filter(|t| t.tcp.syn && !t.tcp.ack)
        .map(|t| t.tcp.source_port)
        .collect()
}

#[test]
fn local_port_exhaustion_refuses_new_flows_keeps_old_ones_and_recovers() {
    // Four local ports on the one LIP. The established flow holds the first.
    let dir = TempDir::new("lport-exhaustion");
    let (lmin, lmax) = (20000u16, 20003u16);
    let mut cap = LabCapture::default();
    let flow = (CLIENT, CPORT);
    cap.client(S, flow, "S", b"");
    cap.server(S + MS, lmin, "SA", b"");
    cap.client(S + 2 * MS, flow, "A", b"");
    // Ten new clients: three get the three free ports, seven are refused.
    for k in 0..10 {
        cap.client(2 * S + u128::from(k) * 10 * MS, new_client(k), "S", b"");
    }
    // The established flow keeps working while the ports are exhausted.
    cap.client(3 * S, flow, "AP", b"flow-0");
    cap.server(3 * S + MS, lmin, "AP", b"flow-0");
    // 70 s later the three half-open sessions have passed SYN_RECV (60 s): ports are free.
    let later = 73 * S;
    cap.echo(later);
    cap.echo(later + MS);
    cap.client(later + 2 * MS, flow, "AP", b"flow-1");
    cap.server(later + 3 * MS, lmin, "AP", b"flow-1");
    for k in 10..15 {
        cap.client(
            later + 10 * MS + u128::from(k) * MS,
            new_client(k),
            "S",
            b"",
        );
    }
    let args = cap.write(&dir);
    let run = replay_with_config(
        &dir,
        &fnat_lab_config(
            "",
            "workers = 1",
            &format!("local_port_range = [{lmin}, {lmax}]"),
            "",
        ),
        &args,
        Duration::from_secs(60),
    );
    let out = &run.stdout;
    let books = Books::parse(out);
    books.assert_sound(out);
    books.assert_no_engine_frames(out);
    // 7 refused while full, then 2 of the 5 after recovery (3 ports came back).
    assert_eq!(drop_counter(out, "local_ports_exhausted"), 9, "{out}");
    assert_eq!(books.dropped, 9, "{out}");
    // handshake 3 + 3 SYNs + flow 2 + echo 2 + flow 2 + 3 SYNs
    assert_eq!(books.forwarded, 3 + 3 + 2 + 2 + 2 + 3, "{out}");
    let lan_out = read_pcap(&dir.join("lan-out.pcap"));
    let mut lports = syn_lports(&lan_out);
    // Released ports come back in expiry order.
    lports[4..].sort_unstable();
    assert_eq!(
        lports,
        vec![20000, 20001, 20002, 20003, 20001, 20002, 20003],
        "local ports handed out, released and handed out again"
    );
    for (frames, side) in [
        (&lan_out, "lan"),
        (&read_pcap(&dir.join("wan-out.pcap")), "wan"),
    ] {
        let flow_frames = tcp_with_payload(frames, b"flow-");
        assert_eq!(flow_frames.len(), 2, "{side}: the established flow's data");
        assert!(flow_frames.iter().all(TcpFrame::checksums_valid));
    }
}

/// Frames much larger than one mbuf arrive as chains of mbufs: enough of them in one RX burst
/// drain an undersized pool, and the device then counts frames it could not store.
#[test]
fn mbuf_pool_exhaustion_is_counted_leaks_nothing_and_forwarding_recovers() {
    let dir = TempDir::new("mbuf-exhaustion");
    let mut cap = LabCapture::default();
    let flow = (CLIENT, CPORT);
    let lport = 20000;
    cap.client(S, flow, "S", b"");
    cap.server(S + MS, lport, "SA", b"");
    cap.client(S + 2 * MS, flow, "A", b"");
    // Replay reads each port up to 64 frames ahead; whichever port reads while the pool is
    // dry loses a frame. Small frames first, so that lan (read once, at the start) is read
    // before the storm, and a gap of small frames after it, so that no burst that runs dry
    // reaches the frames the test checks.
    for k in 0..70u32 {
        cap.client(S + 500 * MS + u128::from(k) * MS, flow, "AP", b"warm-up");
    }
    // The storm: 60 KB frames (30 mbufs each) with the flow's data in between. A 640-mbuf
    // pool holds about 20 of them.
    let jumbo = tcp_frame(
        lab::ROUTER_MAC,
        lab::WAN_MAC,
        (Ipv4Addr::new(100, 64, 0, 1), 1234),
        (lab::VIP, 80),
        "AP",
        1,
        &vec![0x5A; 60_000],
    );
    let storm = 120u32;
    for i in 0..storm {
        let t = 2 * S + u128::from(i) * MS;
        cap.wan.push(CapturedFrame {
            ts_ns: t,
            data: jumbo.clone(),
        });
        if i % 10 == 0 {
            cap.client(t + 100 * US, flow, "AP", b"storm");
        }
    }
    for k in 0..70u32 {
        cap.echo(2 * S + 900 * MS + u128::from(k) * MS);
    }
    // After the storm: the flow must go through, every frame.
    for k in 0..50u32 {
        let p = format!("after-{k}");
        cap.client(3 * S + u128::from(k) * MS, flow, "AP", p.as_bytes());
        cap.server(
            3 * S + u128::from(k) * MS + 100 * US,
            lport,
            "AP",
            p.as_bytes(),
        );
    }
    let args = cap.write(&dir);
    let run = replay_with_config(
        &dir,
        &fnat_lab_config(
            "",
            "workers = 1\nmbufs = 640\nmbuf_cache = 0\nrx_desc = 32\ntx_desc = 32",
            "local_port_range = [20000, 29999]",
            "",
        ),
        &args,
        Duration::from_secs(60),
    );
    let out = &run.stdout;
    let books = Books::parse(out);
    books.assert_sound(out);
    books.assert_no_engine_frames(out);
    let wan = port_stats(out, 0);
    let lan = port_stats(out, 1);
    assert!(
        wan.rx_dropped > 0,
        "the pool never ran dry: the test does not test anything\n{out}"
    );
    // Every frame of the capture was either received or counted by the device as dropped.
    assert_eq!(
        wan.rx + wan.rx_dropped,
        cap.wan.len() as u64,
        "frames lost without a count\n{out}"
    );
    // Exhaustion hits whichever port reads next: lan too may lose (and count) frames.
    assert_eq!(
        lan.rx + lan.rx_dropped,
        cap.lan.len() as u64,
        "frames lost without a count\n{out}"
    );
    // The jumbo frames that were received are dropped as multi-segment, nothing else.
    let multi = drop_counter(out, "multi_segment");
    assert!(multi > 0 && multi <= u64::from(storm), "{out}");
    assert_eq!(books.dropped, multi, "{out}");
    // Forwarding recovered: all of the flow's data after the storm left, both ways.
    let lan_out = read_pcap(&dir.join("lan-out.pcap"));
    let wan_out = read_pcap(&dir.join("wan-out.pcap"));
    assert_eq!(tcp_with_payload(&lan_out, b"after-").len(), 50, "{out}");
    assert_eq!(tcp_with_payload(&wan_out, b"after-").len(), 50, "{out}");
}

/// Two workers on one CPU, a 64-slot redirect ring, and 20 000 replies that all arrive on the
/// wrong worker: while the owner is not scheduled the ring fills. Frames that do not fit are
/// counted as `redirect_ring_full`; nothing stalls, nothing leaks, the books balance.
#[test]
fn redirect_ring_full_is_counted_without_stalling() {
    let dir = TempDir::new("ring-full");
    let lmin = 10000u16;
    let clients = 50u32;
    let mut wan0 = Vec::new();
    let mut lan1 = Vec::new();
    for k in 0..clients {
        let data = tcp_frame(
            lab::ROUTER_MAC,
            lab::WAN_MAC,
            new_client(k),
            (lab::VIP, 80),
            "S",
            1,
            b"",
        );
        wan0.push(CapturedFrame {
            ts_ns: S + u128::from(k) * MS,
            data,
        });
    }
    // Worker 0 takes the SYNs and hands out even local ports (10000, 10002, ...); the
    // replies all arrive on worker 1's queue.
    let replies = 20_000u32;
    for i in 0..replies {
        let k = i % clients;
        let data = tcp_frame(
            lab::RS_MAC,
            lab::LAN_MAC,
            (lab::RS, 80),
            (lab::LIP, lmin + 2 * k as u16),
            if i < clients { "SA" } else { "A" },
            1,
            b"",
        );
        lan1.push(CapturedFrame {
            ts_ns: 2 * S + u128::from(i) * 10 * US,
            data,
        });
    }
    let (wan_in, lan_in) = (dir.join("wan0.pcap"), dir.join("lan1.pcap"));
    write_pcap(&wan_in, &wan0);
    write_pcap(&lan_in, &lan1);
    let run = replay_with_config(
        &dir,
        &fnat_lab_config(
            "worker_cpus = [1, 1]",
            "workers = 2\nredirect_ring = 64",
            &format!("local_port_range = [{lmin}, 30000]"),
            "",
        ),
        &[
            format!("--rx=wan:0={}", wan_in.display()),
            format!("--rx=lan:1={}", lan_in.display()),
        ],
        Duration::from_secs(90),
    );
    let out = &run.stdout;
    let books = Books::parse(out);
    books.assert_sound(out);
    books.assert_no_engine_frames(out);
    let full = drop_counter(out, "redirect_ring_full");
    assert!(
        full > 0,
        "the ring never filled (did both workers share a CPU?)\n{out}"
    );
    assert_eq!(books.dropped, full, "{out}");
    assert_eq!(books.rx, u64::from(clients + replies), "{out}");
    // Every reply either went through the ring and out on wan, or was counted.
    let redirected: u64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Redirected between workers:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("redirected line");
    assert_eq!(redirected + full, u64::from(replies), "{out}");
    assert_eq!(port_stats(out, 0).tx, redirected, "{out}");
    assert_eq!(port_stats(out, 1).tx, u64::from(clients), "{out}");
}
