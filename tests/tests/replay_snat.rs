//! SNAT through `fnatd replay` (the dataplane fnatd runs, on pcap devices), frames built and
//! checked with etherparse: inside hosts' connections leave wan from the SNAT address with
//! their destination untouched, and the outside peer's replies come back to the inside hosts.

use std::collections::BTreeMap;
use std::time::Duration;

use fnat_tests::*;

const WAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const SNAT_ADDR: [u8; 4] = [198, 18, 0, 50];
/// An outside web server, behind wan's default route.
const PEER: ([u8; 4], u16) = ([198, 18, 5, 9], 80);
const FLOWS: u32 = 20;

/// Inside host of flow i: 198.19.1.10 or .11 (static neighbours of lan), port 30000 + i.
fn host(i: u32) -> ([u8; 4], u16) {
    ([198, 19, 1, 10 + (i % 2) as u8], 30000 + i as u16)
}

/// The config's static neighbour MAC of an inside host: 02:00:00:00:01:NN, NN the address's
/// last number written in hex digits (.10 → :10).
fn host_mac(h: [u8; 4]) -> [u8; 6] {
    [
        2,
        0,
        0,
        0,
        1,
        u8::from_str_radix(&h[3].to_string(), 16).unwrap(),
    ]
}

fn tcp(
    macs: ([u8; 6], [u8; 6]),
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    tcp_frame(
        macs.0,
        macs.1,
        (src.0.into(), src.1),
        (dst.0.into(), dst.1),
        flags,
        1000,
        payload,
    )
}

/// Flow i's frames from its inside host: SYN, ACK+request, FIN.
fn inside_frames(i: u32) -> Vec<CapturedFrame> {
    let h = host(i);
    let m = (host_mac(h.0), LAN_MAC);
    [
        (0, "S", String::new()),
        (2, "AP", format!("GET /{i}")),
        (4, "AF", String::new()),
    ]
    .into_iter()
    .map(|(step, flags, payload)| CapturedFrame {
        ts_ns: replay_ts(i, step),
        data: tcp(m, h, PEER, flags, payload.as_bytes()),
    })
    .collect()
}

fn config_file(dir: &TempDir) -> std::path::PathBuf {
    let mut text = std::fs::read_to_string(config("fnat-replay.toml")).unwrap();
    text.push_str(
        "\n[[service]]\n\
         match = { proto = \"tcp\", src-range = \"198.19.1.0-198.19.1.255\", iif = \"lan\", oif = \"wan\" }\n\
         scheduler = \"rr\"\n\
         real = [ { address = \"198.18.0.50\", port = 0 } ]\n",
    );
    let path = dir.join("snat.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn accounted(run: &Finished, total: u32) {
    assert!(
        run.stdout.contains(&format!(
            "accounted: RX {total} + originated 0 = forwarded {total} + dropped 0 + consumed 0 + held 0"
        )),
        "{}",
        run.stdout
    );
}

#[test]
fn snat_out_and_back_through_the_replay_dataplane() {
    let dir = TempDir::new("replay-snat");
    let cfg = config_file(&dir);
    let lan_in = dir.join("lan-in.pcap");
    let frames: Vec<CapturedFrame> = (0..FLOWS).flat_map(inside_frames).collect();
    write_pcap(&lan_in, &frames);
    let wan_out = dir.join("wan-out.pcap");
    let run = fnatd_replay_ok(
        &cfg,
        &[
            format!("--rx=lan={}", lan_in.display()),
            format!("--tx=wan={}", wan_out.display()),
        ],
        Duration::from_secs(60),
    );
    accounted(&run, FLOWS * 3);
    // Out: only the source changes, to the SNAT address and a port of its own per flow.
    let mut port_of: BTreeMap<u16, u16> = BTreeMap::new();
    for f in read_pcap(&wan_out) {
        let t = TcpFrame::parse(&f.data).expect("IPv4/TCP on wan");
        assert!(t.checksums_valid(), "bad checksum on wan");
        assert_eq!((t.eth.source, t.eth.destination), (WAN_MAC, ROUTER_MAC));
        assert_eq!(t.ip.time_to_live, 63);
        assert_eq!(t.ip.source, SNAT_ADDR);
        assert_eq!((t.ip.destination, t.tcp.destination_port), PEER);
        let i = match t.payload.strip_prefix(b"GET /") {
            Some(n) => std::str::from_utf8(n).unwrap().parse::<u32>().unwrap(),
            None => continue,
        };
        port_of.insert(host(i).1, t.tcp.source_port);
    }
    assert_eq!(port_of.len(), FLOWS as usize);
    let mut ports: Vec<u16> = port_of.values().copied().collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), FLOWS as usize, "one SNAT port per flow");

    // Back: the same inside frames, and the peer's replies to SNAT_ADDR:port in between.
    let mut wan_in = Vec::new();
    for i in 0..FLOWS {
        let to = (SNAT_ADDR, port_of[&host(i).1]);
        for (step, flags, payload) in [
            (1, "SA", String::new()),
            (3, "AP", format!("page {i}")),
            (5, "AF", String::new()),
        ] {
            wan_in.push(CapturedFrame {
                ts_ns: replay_ts(i, step),
                data: tcp((ROUTER_MAC, WAN_MAC), PEER, to, flags, payload.as_bytes()),
            });
        }
    }
    let wan_in_file = dir.join("wan-in.pcap");
    write_pcap(&wan_in_file, &wan_in);
    let lan_out = dir.join("lan-out.pcap");
    let run = fnatd_replay_ok(
        &cfg,
        &[
            format!("--rx=lan={}", lan_in.display()),
            format!("--rx=wan={}", wan_in_file.display()),
            format!("--tx=wan={}", dir.join("wan-out-2.pcap").display()),
            format!("--tx=lan={}", lan_out.display()),
        ],
        Duration::from_secs(60),
    );
    accounted(&run, FLOWS * 6);
    let mut replies: BTreeMap<u16, usize> = BTreeMap::new();
    for f in read_pcap(&lan_out) {
        let t = TcpFrame::parse(&f.data).expect("IPv4/TCP on lan");
        assert!(t.checksums_valid(), "bad checksum on lan");
        assert_eq!(
            (t.ip.source, t.tcp.source_port),
            PEER,
            "the source stays the peer"
        );
        let i = u32::from(t.tcp.destination_port - 30000);
        assert_eq!(t.ip.destination, host(i).0, "back to flow {i}'s host");
        assert_eq!(
            (t.eth.source, t.eth.destination),
            (LAN_MAC, host_mac(host(i).0))
        );
        if !t.payload.is_empty() {
            assert_eq!(t.payload, format!("page {i}").as_bytes());
        }
        *replies.entry(t.tcp.destination_port).or_default() += 1;
    }
    assert_eq!(replies.len(), FLOWS as usize);
    assert!(replies.values().all(|n| *n == 3), "{replies:?}");
}
