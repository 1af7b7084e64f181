//! NAT, DR and TUN through `fnatd replay` (the dataplane fnatd runs, on pcap devices), frames
//! built and checked with etherparse: NAT both directions with 2 workers (replies delivered to
//! either worker), DR with 2 workers (only the destination MAC changes), TUN IPIP/GUE/GRE
//! (outer headers, the inner packet byte-identical) and fragmentation needed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use etherparse::{Ipv4Header, PacketHeaders, TransportHeader};
use fnat_tests::*;

const VIP: [u8; 4] = [198, 18, 0, 100];
const WAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const LAN_IP: [u8; 4] = [198, 19, 0, 1];
const FLOWS: u32 = 40;

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
    tcp_frame(
        macs.0,
        macs.1,
        (src.0.into(), src.1),
        (dst.0.into(), dst.1),
        flags,
        seq,
        payload,
    )
}

/// The client's frames of flow i: SYN, ACK+data, FIN.
fn client_frames(i: u32) -> Vec<CapturedFrame> {
    let (m, c, v) = ((ROUTER_MAC, WAN_MAC), client(i), (VIP, 80));
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

/// The replay config with `workers` workers and real servers `reals` (a TOML array body);
/// the real servers 198.19.0.20/21 are on lan's own network, 198.19.1.10/11 behind a route.
fn config_text(workers: usize, reals: &str) -> String {
    let text = std::fs::read_to_string(config("fnat-replay.toml")).unwrap();
    let line = "real = [ { address = \"198.19.1.10\", port = 80 }, { address = \"198.19.1.11\", port = 80 } ]";
    assert!(text.contains(line));
    let mut text = text
        .replace(line, &format!("real = [ {reals} ]"))
        .replace("workers = 1", &format!("workers = {workers}"));
    for (ip, mac) in [
        ("198.19.0.20", "02:00:00:00:01:20"),
        ("198.19.0.21", "02:00:00:00:01:21"),
    ] {
        text.push_str(&format!(
            "\n[[neighbour]]\naddress = \"{ip}\"\nmac = \"{mac}\"\nport = \"lan\"\n"
        ));
    }
    text
}

fn write_config(dir: &TempDir, workers: usize, reals: &str) -> std::path::PathBuf {
    let path = dir.join("fnat.toml");
    std::fs::write(&path, config_text(workers, reals)).unwrap();
    path
}

fn replay(cfg: &std::path::Path, args: &[String]) -> Finished {
    fnatd_replay_ok(cfg, args, Duration::from_secs(60))
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

/// The worker a NAT session of `client` lives on, computed here from the documented rule
/// (docs/packet-path.md): the fnat_engine function is the one the dataplane runs.
fn nat_owner(client: [u8; 4], workers: usize) -> usize {
    usize::from(fnat_engine::fnat::nat_owner(
        u32::from(Ipv4Addr::from(client)),
        workers as u16,
    ))
}

#[test]
fn nat_both_directions_with_two_workers_and_replies_on_either() {
    let workers = 2;
    let dir = TempDir::new("replay-nat");
    let cfg = write_config(
        &dir,
        workers,
        "{ address = \"198.19.1.10\", port = 8080, method = \"nat\" }, { address = \"198.19.1.11\", port = 8080, method = \"nat\" }",
    );
    // Flow i's client frames on wan queue i mod 2 (RSS), whatever its owner.
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
    accounted(&first, FLOWS * 3);
    // Only the destination changes: client:cport → RS:8080, from the client's owner.
    let mut rs_of: BTreeMap<u16, [u8; 4]> = BTreeMap::new();
    for (q, file) in lan_first.iter().enumerate() {
        for f in read_pcap(file) {
            let t = TcpFrame::parse(&f.data).expect("IPv4/TCP on lan");
            assert!(t.checksums_valid(), "bad checksum on lan queue {q}");
            let i = u32::from(t.tcp.source_port - 40000);
            assert_eq!((t.ip.source, t.tcp.source_port), client(i));
            assert_eq!(t.tcp.destination_port, 8080);
            assert_eq!((t.eth.source, t.ip.time_to_live), (LAN_MAC, 63));
            assert_eq!(
                q,
                nat_owner(client(i).0, workers),
                "flow {i} left by its owner"
            );
            let rs = *rs_of.entry(t.tcp.source_port).or_insert(t.ip.destination);
            assert_eq!(rs, t.ip.destination, "flow {i}: one real server");
        }
    }
    assert_eq!(rs_of.len(), FLOWS as usize);
    // Flows whose queue is not their owner's crossed a redirect ring: every frame of them.
    let crossing = (0..FLOWS)
        .filter(|&i| i as usize % workers != nat_owner(client(i).0, workers))
        .count() as u32;
    assert!(crossing > 0 && crossing < FLOWS, "{crossing}");
    assert!(
        first
            .stdout
            .contains(&format!("Redirected between workers: {}", crossing * 3)),
        "{}",
        first.stdout
    );

    // The servers' replies to the client's own address, flow i's on lan queue (i + 1) mod 2:
    // half land on their owner, half on the other worker.
    let mut lan_in: Vec<Vec<CapturedFrame>> = vec![Vec::new(); workers];
    for i in 0..FLOWS {
        let c = client(i);
        let rs = rs_of[&c.1];
        let m = ([2, 0, 0, 0, 1, rs[3]], LAN_MAC);
        let q = (i as usize + 1) % workers;
        for (step, flags, payload) in [
            (1, "SA", String::new()),
            (3, "AP", format!("page {i}")),
            (5, "AF", String::new()),
        ] {
            lan_in[q].push(CapturedFrame {
                ts_ns: replay_ts(i, step),
                data: tcp(m, (rs, 8080), c, 5000, flags, payload.as_bytes()),
            });
        }
    }
    for q in &mut lan_in {
        q.sort_by_key(|f| f.ts_ns);
    }
    let mut args: Vec<String> = Vec::new();
    let wan_out: Vec<_> = (0..workers)
        .map(|q| dir.join(&format!("wan-out-{q}.pcap")))
        .collect();
    for q in 0..workers {
        let lan_file = dir.join(&format!("lan-in-{q}.pcap"));
        write_pcap(&lan_file, &lan_in[q]);
        args.push(format!("--rx=wan:{q}={}", wan_files[q].display()));
        args.push(format!("--rx=lan:{q}={}", lan_file.display()));
        args.push(format!(
            "--tx=lan:{q}={}",
            dir.join(&format!("lan-out-{q}.pcap")).display()
        ));
        args.push(format!("--tx=wan:{q}={}", wan_out[q].display()));
    }
    let second = replay(&cfg, &args);
    accounted(&second, FLOWS * 6);
    let replies_crossing = (0..FLOWS)
        .filter(|&i| (i as usize + 1) % workers != nat_owner(client(i).0, workers))
        .count() as u32;
    assert!(
        second.stdout.contains(&format!(
            "Redirected between workers: {}",
            (crossing + replies_crossing) * 3
        )),
        "{}",
        second.stdout
    );
    // Every reply leaves as VIP:80 → its client, through its owner, payload intact.
    let mut replies: BTreeMap<u16, usize> = BTreeMap::new();
    for (q, file) in wan_out.iter().enumerate() {
        for f in read_pcap(file) {
            let t = TcpFrame::parse(&f.data).expect("IPv4/TCP on wan");
            assert!(t.checksums_valid(), "bad checksum on wan queue {q}");
            assert_eq!((t.ip.source, t.tcp.source_port), (VIP, 80));
            assert_eq!((t.eth.source, t.eth.destination), (WAN_MAC, ROUTER_MAC));
            let i = u32::from(t.tcp.destination_port - 40000);
            assert_eq!(t.ip.destination, client(i).0);
            assert_eq!(q, nat_owner(client(i).0, workers), "reply of flow {i}");
            if !t.payload.is_empty() {
                assert_eq!(t.payload, format!("page {i}").as_bytes());
            }
            *replies.entry(t.tcp.destination_port).or_default() += 1;
        }
    }
    assert_eq!(replies.len(), FLOWS as usize);
    assert!(replies.values().all(|n| *n == 3));
}

#[test]
fn dr_changes_only_the_mac_with_two_workers() {
    let workers = 2;
    let dir = TempDir::new("replay-dr");
    let cfg = write_config(
        &dir,
        workers,
        "{ address = \"198.19.0.20\", port = 80, method = \"dr\" }, { address = \"198.19.0.21\", port = 80, method = \"dr\" }",
    );
    let mut wan_in: Vec<Vec<CapturedFrame>> = vec![Vec::new(); workers];
    for i in 0..FLOWS {
        wan_in[i as usize % workers].extend(client_frames(i));
    }
    let mut args: Vec<String> = Vec::new();
    let lan_out: Vec<_> = (0..workers)
        .map(|q| dir.join(&format!("lan-out-{q}.pcap")))
        .collect();
    for q in 0..workers {
        let f = dir.join(&format!("wan-in-{q}.pcap"));
        write_pcap(&f, &wan_in[q]);
        args.push(format!("--rx=wan:{q}={}", f.display()));
        args.push(format!("--tx=lan:{q}={}", lan_out[q].display()));
    }
    let run = replay(&cfg, &args);
    accounted(&run, FLOWS * 3);
    // Each frame leaves by the worker it arrived on, with the RS's MAC and nothing else
    // changed; a flow's frames go to one real server.
    let mut rs_of: BTreeMap<u16, [u8; 6]> = BTreeMap::new();
    for (q, file) in lan_out.iter().enumerate() {
        let sent: Vec<Vec<u8>> = wan_in[q].iter().map(|f| f.data.clone()).collect();
        let out = read_pcap(file);
        assert_eq!(out.len(), sent.len(), "queue {q}");
        for (o, s) in out.iter().zip(&sent) {
            assert_eq!(&o.data[12..], &s[12..], "queue {q}: L3 and L4 untouched");
            assert_eq!(&o.data[6..12], &LAN_MAC);
            let mac: [u8; 6] = o.data[0..6].try_into().unwrap();
            assert!(
                mac == [2, 0, 0, 0, 1, 0x20] || mac == [2, 0, 0, 0, 1, 0x21],
                "{mac:?}"
            );
            let t = TcpFrame::parse(&o.data).unwrap();
            assert_eq!(*rs_of.entry(t.tcp.source_port).or_insert(mac), mac);
        }
    }
    assert!(
        run.stdout.contains("Redirected between workers: 0"),
        "{}",
        run.stdout
    );
}

#[test]
fn tun_wraps_untouched_packets_and_answers_frag_needed() {
    for (tunnel, proto, overhead) in [
        ("", 4u8, 20usize),
        (", tunnel_type = \"ipip\"", 4, 20),
        (", tunnel_type = \"gue\", tunnel_port = 6080", 17, 32),
        (
            ", tunnel_type = \"gue\", tunnel_port = 6080, tunnel_csum = true",
            17,
            32,
        ),
        (", tunnel_type = \"gre\"", 47, 24),
        (", tunnel_type = \"gre\", tunnel_csum = true", 47, 28),
    ] {
        let dir = TempDir::new("replay-tun");
        let cfg = write_config(
            &dir,
            1,
            &format!("{{ address = \"198.19.1.10\", port = 80, method = \"tun\"{tunnel} }}"),
        );
        let mut frames: Vec<CapturedFrame> = (0..4).flat_map(client_frames).collect();
        // A DF segment too big for the tunnel by one byte.
        let big = tcp(
            (ROUTER_MAC, WAN_MAC),
            client(9),
            (VIP, 80),
            1,
            "S",
            &vec![7u8; 1501 - overhead - 40],
        );
        frames.push(CapturedFrame {
            ts_ns: replay_ts(9, 0),
            data: big.clone(),
        });
        let (wan_in, lan_out, wan_out) = (
            dir.join("wan-in.pcap"),
            dir.join("lan-out.pcap"),
            dir.join("wan-out.pcap"),
        );
        write_pcap(&wan_in, &frames);
        let run = replay(
            &cfg,
            &[
                format!("--rx=wan={}", wan_in.display()),
                format!("--tx=lan={}", lan_out.display()),
                format!("--tx=wan={}", wan_out.display()),
            ],
        );
        accounted(&run, 13);
        let out = read_pcap(&lan_out);
        assert_eq!(out.len(), 12, "{tunnel}");
        for (o, s) in out.iter().zip(&frames) {
            assert_eq!(
                &o.data[0..12],
                &[[2, 0, 0, 0, 1, 0x10], LAN_MAC].concat()[..]
            );
            let (outer, rest) = Ipv4Header::from_slice(&o.data[14..]).expect("outer IPv4");
            assert_eq!(
                outer.header_checksum,
                outer.calc_header_checksum(),
                "{tunnel}"
            );
            assert_eq!(outer.protocol.0, proto, "{tunnel}");
            assert_eq!(
                (outer.source, outer.destination),
                (LAN_IP, [198, 19, 1, 10])
            );
            assert_eq!((outer.time_to_live, outer.dont_fragment), (64, true));
            let inner = &s.data[14..];
            assert_eq!(
                usize::from(outer.total_len),
                overhead + inner.len(),
                "{tunnel}"
            );
            if proto == 17 {
                let h = PacketHeaders::from_ip_slice(&o.data[14..]).unwrap();
                let Some(TransportHeader::Udp(u)) = h.transport else {
                    panic!("GUE is UDP")
                };
                assert_eq!(u.destination_port, 6080);
                if tunnel.contains("csum") {
                    assert_eq!(
                        u.checksum,
                        u.calc_checksum_ipv4(&outer, h.payload.slice()).unwrap()
                    );
                } else {
                    assert_eq!(u.checksum, 0);
                }
            }
            assert_eq!(
                &rest[overhead - 20..],
                inner,
                "{tunnel}: inner packet untouched"
            );
        }
        // The client of the big segment learns the tunnel's MTU from the VIP.
        let icmp = read_pcap(&wan_out);
        assert_eq!(icmp.len(), 1, "{tunnel}");
        let h = PacketHeaders::from_ethernet_slice(&icmp[0].data).unwrap();
        let Some(etherparse::NetHeaders::Ipv4(ip, _)) = h.net else {
            panic!("ipv4")
        };
        assert_eq!((ip.source, ip.destination), (VIP, client(9).0));
        let Some(TransportHeader::Icmpv4(i)) = h.transport else {
            panic!("icmp")
        };
        assert_eq!(i.checksum, i.icmp_type.calc_checksum(h.payload.slice()));
        assert_eq!(
            i.icmp_type,
            etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: (1500 - overhead) as u16
                }
            )
        );
        assert_eq!(h.payload.slice(), &big[14..14 + 28]);
    }
}
