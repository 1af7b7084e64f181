//! Full-NAT through `fnatd replay --config configs/fnat-replay.toml` with a real capture
//! (dpkt's http.pcap) whose server address is rewritten to the VIP. Inputs are built and
//! outputs checked with etherparse and tshark, never with the engine's own parser.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use fnat_tests::*;

/// Set FNAT_KEEP_REPLAY_DIR to keep the captures for a look with tshark.
const CLIENT: [u8; 4] = [145, 254, 160, 237];
const VIP: [u8; 4] = [198, 18, 0, 100];
const LIP: [u8; 4] = [198, 19, 0, 10];
const WAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const GATEWAY_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const REALS: [([u8; 4], [u8; 6]); 2] = [
    ([198, 19, 1, 10], [2, 0, 0, 0, 1, 0x10]),
    ([198, 19, 1, 11], [2, 0, 0, 0, 1, 0x11]),
];

/// The client's frames of http.pcap, addressed to the VIP and to wan's MAC.
fn client_side(capture: &[CapturedFrame]) -> Vec<CapturedFrame> {
    capture
        .iter()
        .filter_map(|f| {
            let (eth, rest) = etherparse::Ethernet2Header::from_slice(&f.data).ok()?;
            let (ip, _) = etherparse::Ipv4Header::from_slice(rest).ok()?;
            if ip.source != CLIENT {
                return None;
            }
            let data = match TcpFrame::parse(&f.data) {
                Some(mut t) if t.tcp.destination_port == 80 => {
                    t.eth.destination = WAN_MAC;
                    t.ip.destination = VIP;
                    t.to_bytes()
                }
                _ => {
                    // Anything else of the client's (its DNS query) keeps its addresses.
                    let mut data = f.data.clone();
                    data[..6].copy_from_slice(&WAN_MAC);
                    let _ = eth;
                    data
                }
            };
            Some(CapturedFrame {
                ts_ns: f.ts_ns,
                data,
            })
        })
        .collect()
}

fn replay(args: &[String]) -> Finished {
    fnatd_replay_ok(&config("fnat-replay.toml"), args, Duration::from_secs(60))
}

fn drop_count(stdout: &str, reason: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(reason))
                .then(|| words.next()?.parse().ok())
                .flatten()
        })
        .unwrap_or_else(|| panic!("no counter {reason} in:\n{stdout}"))
}

/// Client stream (client port) → (local port, real server) as seen on the lan side.
type Mapping = BTreeMap<u16, (u16, [u8; 4])>;

/// Checks every frame that left lan and returns the per-stream mapping.
fn check_lan_output(input: &[CapturedFrame], lan_out: &Path) -> Mapping {
    let sent = read_pcap(lan_out);
    assert!(
        tshark_bad_checksums(lan_out).is_empty(),
        "tshark finds bad checksums in {}",
        lan_out.display()
    );
    let forwarded: Vec<TcpFrame> = input
        .iter()
        .filter_map(|f| TcpFrame::parse(&f.data))
        .filter(|t| t.tcp.source_port == 3372)
        .collect();
    assert_eq!(
        sent.len(),
        forwarded.len(),
        "every frame of the SYN-started stream is forwarded"
    );
    let mut mapping = Mapping::new();
    for (i, (out, orig)) in sent.iter().zip(&forwarded).enumerate() {
        let t =
            TcpFrame::parse(&out.data).unwrap_or_else(|| panic!("lan frame {i} is not IPv4/TCP"));
        assert!(t.checksums_valid(), "lan frame {i}: bad checksum");
        assert_eq!(
            t.ip.source, LIP,
            "lan frame {i}: source is the local address"
        );
        let (rs, rs_mac) = REALS
            .iter()
            .find(|(a, _)| *a == t.ip.destination)
            .copied()
            .unwrap_or_else(|| panic!("lan frame {i}: {:?} is no real server", t.ip.destination));
        assert_eq!(t.tcp.destination_port, 80);
        assert_eq!(
            (t.eth.source, t.eth.destination),
            (LAN_MAC, rs_mac),
            "lan frame {i}: MACs"
        );
        assert_eq!(
            t.ip.time_to_live,
            orig.ip.time_to_live - 1,
            "lan frame {i}: TTL"
        );
        assert_eq!(t.payload, orig.payload, "lan frame {i}: payload");
        assert_eq!(
            t.tcp.options.as_slice(),
            orig.tcp.options.as_slice(),
            "lan frame {i}: TCP options"
        );
        assert_eq!(
            (t.tcp.sequence_number, t.tcp.acknowledgment_number),
            (orig.tcp.sequence_number, orig.tcp.acknowledgment_number)
        );
        let entry = mapping
            .entry(orig.tcp.source_port)
            .or_insert((t.tcp.source_port, rs));
        assert_eq!(
            *entry,
            (t.tcp.source_port, rs),
            "lan frame {i}: the stream's mapping changed"
        );
    }
    mapping
}

#[test]
fn client_side_of_a_real_capture_goes_out_lip_to_rs() {
    let dir = TempDir::new("fnat-client");
    let input = client_side(&read_pcap(&real_capture("http.pcap")));
    assert_eq!(input.len(), 20);
    let wan_in = dir.join("wan-in.pcap");
    write_pcap(&wan_in, &input);
    let lan_out = dir.join("lan-out.pcap");
    let run = replay(&[
        format!("--rx=wan={}", wan_in.display()),
        format!("--tx=lan={}", lan_out.display()),
    ]);

    if let Ok(keep) = std::env::var("FNAT_KEEP_REPLAY_DIR") {
        for f in [&wan_in, &lan_out] {
            std::fs::copy(f, Path::new(&keep).join(f.file_name().unwrap())).unwrap();
        }
    }
    let mapping = check_lan_output(&input, &lan_out);
    assert_eq!(mapping.len(), 1, "one SYN-started stream");
    // The stream that starts mid-connection in the capture (3 frames) has no session, as in
    // IPVS; the DNS query is not addressed to anything of ours.
    assert_eq!(drop_count(&run.stdout, "no_session"), 3, "{}", run.stdout);
    assert_eq!(drop_count(&run.stdout, "not_for_us"), 1, "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "accounted: RX 20 + originated 0 = forwarded 16 + dropped 4 + consumed 0 + held 0"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn both_sides_replayed_together_translate_back_to_the_client() {
    let dir = TempDir::new("fnat-both");
    let capture = read_pcap(&real_capture("http.pcap"));
    let client = client_side(&capture);
    let wan_in = dir.join("wan-in.pcap");
    write_pcap(&wan_in, &client);

    // First pass: learn which LIP:lport and real server the stream gets.
    let first_lan = dir.join("lan-first.pcap");
    replay(&[
        format!("--rx=wan={}", wan_in.display()),
        format!("--tx=lan={}", first_lan.display()),
    ]);
    let mapping = check_lan_output(&client, &first_lan);
    let (lport, rs) = mapping[&3372];
    let rs_mac = REALS.iter().find(|(a, _)| *a == rs).unwrap().1;

    // The server's frames of that stream, as the real server would send them to LIP:lport.
    let server: Vec<(CapturedFrame, TcpFrame)> = capture
        .iter()
        .filter_map(|f| {
            let orig = TcpFrame::parse(&f.data)?;
            (orig.tcp.source_port == 80 && orig.tcp.destination_port == 3372).then_some((f, orig))
        })
        .map(|(f, orig)| {
            let mut t = orig.clone();
            t.eth.source = rs_mac;
            t.eth.destination = LAN_MAC;
            t.ip.source = rs;
            t.ip.destination = LIP;
            t.tcp.destination_port = lport;
            (
                CapturedFrame {
                    ts_ns: f.ts_ns,
                    data: t.to_bytes(),
                },
                orig,
            )
        })
        .collect();
    assert_eq!(server.len(), 18);
    let lan_in = dir.join("lan-in.pcap");
    write_pcap(
        &lan_in,
        &server.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>(),
    );

    // Second pass: both sides, interleaved by capture time.
    let (lan_out, wan_out) = (dir.join("lan-out.pcap"), dir.join("wan-out.pcap"));
    let run = replay(&[
        format!("--rx=wan={}", wan_in.display()),
        format!("--rx=lan={}", lan_in.display()),
        format!("--tx=lan={}", lan_out.display()),
        format!("--tx=wan={}", wan_out.display()),
    ]);
    // Past the handshake, the stream's frames take the fast path; the handshake and the
    // close do not (they change the TCP state).
    let fast = run
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Fast path (established flows): "))
        .expect("the exit report has the fast-path line");
    let (taken, of) = fast
        .split_once(" of ")
        .map(|(a, b)| {
            let n = |x: &str| x.split_whitespace().next().unwrap().parse::<u64>().unwrap();
            (n(a), n(b))
        })
        .unwrap();
    assert!(taken > 0 && taken < of, "fast path {taken} of {of} frames");
    // Replay is deterministic: the client side comes out exactly as in the first pass.
    let first: Vec<Vec<u8>> = read_pcap(&first_lan).into_iter().map(|f| f.data).collect();
    let second: Vec<Vec<u8>> = read_pcap(&lan_out).into_iter().map(|f| f.data).collect();
    assert_eq!(first, second, "the same input gives the same output");

    let replies = read_pcap(&wan_out);
    assert!(
        tshark_bad_checksums(&wan_out).is_empty(),
        "tshark finds bad checksums"
    );
    assert_eq!(
        replies.len(),
        server.len(),
        "every reply goes back to the client"
    );
    for (i, (out, (_, orig))) in replies.iter().zip(&server).enumerate() {
        let t =
            TcpFrame::parse(&out.data).unwrap_or_else(|| panic!("wan frame {i} is not IPv4/TCP"));
        assert!(t.checksums_valid(), "wan frame {i}: bad checksum");
        assert_eq!(
            (t.ip.source, t.tcp.source_port),
            (VIP, 80),
            "wan frame {i}: from the VIP"
        );
        assert_eq!(
            (t.ip.destination, t.tcp.destination_port),
            (CLIENT, 3372),
            "wan frame {i}: to the client"
        );
        assert_eq!(
            (t.eth.source, t.eth.destination),
            (WAN_MAC, GATEWAY_MAC),
            "wan frame {i}: MACs"
        );
        assert_eq!(
            t.ip.time_to_live,
            orig.ip.time_to_live - 1,
            "wan frame {i}: TTL"
        );
        assert_eq!(t.payload, orig.payload, "wan frame {i}: payload");
    }
    assert!(
        run.stdout.contains(
            "accounted: RX 38 + originated 0 = forwarded 34 + dropped 4 + consumed 0 + held 0"
        ),
        "{}",
        run.stdout
    );
    let _ = Ipv4Addr::from(VIP);
}
