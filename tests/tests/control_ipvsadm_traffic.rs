//! ipvsadm's views of a dataplane that carries sessions: DPVS's `-G` with per-address
//! counters summed over workers, the `--stats`/`--exact`/`--rate` rows, and `-c` with
//! names. fnatd runs with two workers on net_pcap ports: each worker reads its own capture
//! of SYNs, so the sessions (and the local ports they hold) are known exactly.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use fnat_tests::*;

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const WAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];

/// Two workers, two LIPs, local ports 1024..=1031: each worker owns 4 ports per LIP
/// (worker w: the ports p with p % 2 == w).
fn config(dir: &TempDir) -> String {
    let d = dir.path().display();
    format!(
        r#"
[dataplane]
workers = 2
rx_desc = 512
tx_desc = 512

[[port]]
name = "wan"
device = "net_pcap0,rx_pcap={d}/wan0.pcap,rx_pcap={d}/wan1.pcap,tx_pcap=/dev/null,tx_pcap=/dev/null"
mac = "02:00:00:00:00:01"
addresses = ["198.18.0.1/24", "198.18.0.100"]

[[port]]
name = "lan"
device = "net_pcap1,rx_pcap={d}/empty.pcap,rx_pcap={d}/empty.pcap,tx_pcap={d}/lan0.pcap,tx_pcap={d}/lan1.pcap"
mac = "02:00:00:00:00:02"
addresses = ["198.19.0.1/24", "198.19.0.10", "198.19.0.11"]

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "rr"
local_addresses = ["198.19.0.10", "198.19.0.11"]
real = [ {{ address = "198.19.1.10", port = 80 }} ]

[[route]]
prefix = "198.19.1.0/24"
port = "lan"

[[route]]
prefix = "0.0.0.0/0"
port = "wan"
via = "198.18.0.254"

[[neighbour]]
address = "198.19.1.10"
mac = "02:00:00:00:01:10"
port = "lan"

[[neighbour]]
address = "198.18.0.254"
mac = "02:00:00:00:00:fe"
port = "wan"

[session]
local_port_range = [1024, 1031]
"#
    )
}

/// SYNs to VIP:80 from `clients` (198.18.`net`.1..), one each, 40 IP bytes apiece.
fn syns(path: &Path, net: u8, clients: u8) {
    let frames: Vec<CapturedFrame> = (1..=clients)
        .map(|i| CapturedFrame {
            ts_ns: 1_000_000_000 + u128::from(i) * 1_000,
            data: tcp_frame(
                CLIENT_MAC,
                WAN_MAC,
                (Ipv4Addr::new(198, 18, net, i), 40000 + u16::from(i)),
                (VIP, 80),
                "S",
                1,
                &[],
            ),
        })
        .collect();
    write_pcap(path, &frames);
}

/// `-G` as DPVS prints it for this test's service, from its printf formats.
fn expected_laddrs(rows: &[(&str, u64, u64)]) -> String {
    let mut want = format!(
        "{:<20} {:<8} {:<20} {:<10} {:<10}\n",
        "VIP:VPORT", "TOTAL", "SNAT_IP", "CONFLICTS", "CONNS"
    );
    want.push_str(&format!("{:<20} {:<8} \n", "198.18.0.100:80", rows.len()));
    for (lip, conflicts, conns) in rows {
        want.push_str(&format!(
            "{:<20} {:<8} {:<20} {:<10} {:<10}\n",
            "", "", lip, conflicts, conns
        ));
    }
    want
}

#[test]
fn dataplane_counters_fill_ipvsadm_views() {
    let dir = TempDir::new("ctl-traffic");
    // The LIPs take new connections in turn. Worker 0: 10 SYNs for its 8 ports (4 on each
    // LIP in turn; the last 2 find both out: 2 conflicts on .10, 2 on .11, dropped).
    // Worker 1: 5 SYNs (3 on .10, 2 on .11, no conflict).
    syns(&dir.join("wan0.pcap"), 5, 10);
    syns(&dir.join("wan1.pcap"), 6, 5);
    write_pcap(&dir.join("empty.pcap"), &[]);
    let cfg = dir.join("fnatd.toml");
    std::fs::write(&cfg, config(&dir)).expect("write config");
    let socket = dir.join("ctl.sock");
    let daemon = Daemon::start(&cfg, &socket, &[]);
    let links = ipvsadm_dir(&dir);

    // Sessions live 60 s (SYN_RECV); counters are published every 100 ms.
    let want = expected_laddrs(&[("198.19.0.10", 2, 7), ("198.19.0.11", 2, 6)]);
    let start = Instant::now();
    let mut got = String::new();
    while start.elapsed() < Duration::from_secs(20) {
        got = ipvsadm(&links, &socket, &["-G"]).stdout;
        if got == want {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(got, want, "ipvsadm -G");
    assert_eq!(
        ipvsadm(&links, &socket, &["-G", "-t", "198.18.0.100:80"]).stdout,
        want
    );
    let native = fnatctl(&socket, &["laddr", "list"]);
    assert_eq!(native.stdout, want, "{}", native.stderr);

    // --stats and --exact: `%-33s` / `  -> %-28s`, then print_largenum ×5 (9 wide).
    let row = |name: &str, n: [u64; 5]| {
        format!(
            "{name}{:>9}{:>9}{:>9}{:>9}{:>9}\n",
            n[0], n[1], n[2], n[3], n[4]
        )
    };
    let stats_title = format!(
        "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
        "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
    );
    let counts = [13, 13, 0, 13 * 40, 0];
    let stats_want = format!(
        "IP Virtual Server version 1.2.1 (size=4096)\n{stats_title}{}{}",
        row(&format!("{:<33}", "TCP  198.18.0.100:80"), counts),
        row(&format!("  -> {:<28}", "198.19.1.10:80"), counts)
    );
    assert_eq!(
        ipvsadm(&links, &socket, &["-Ln", "--stats"]).stdout,
        stats_want
    );
    assert_eq!(
        ipvsadm(&links, &socket, &["-Ln", "--stats", "--exact"]).stdout,
        stats_want,
        "--exact: numbers under 10^8 print the same"
    );
    // Connection gauges in the other views: 13 SYN_RECV sessions are InActConn.
    let list = ipvsadm(&links, &socket, &["-Ln"]).stdout;
    assert!(
        list.ends_with(&format!(
            "TCP  198.18.0.100:80 rr\n  -> {:<28} {:<7} {:<6} {:<10} {:<10}\n",
            "198.19.1.10:80", "FullNat", 1, 0, 13
        )),
        "{list}"
    );
    let thr = ipvsadm(&links, &socket, &["-Ln", "--thresholds"]).stdout;
    assert!(
        thr.ends_with(&format!(
            "  -> {:<28} {:<10} {:<10} {:<10} {:<10}\n",
            "198.19.1.10:80", 0, 0, 0, 13
        )),
        "{thr}"
    );
    let pc = ipvsadm(&links, &socket, &["-Ln", "--persistent-conn"]).stdout;
    assert!(
        pc.ends_with(&format!(
            "  -> {:<28} {:<9} {:<11} {:<10} {:<10}\n",
            "198.19.1.10:80", 1, 0, 0, 13
        )),
        "{pc}"
    );
    // --rate: whatever the rates are, each row is laid out as ipvsadm's printf formats.
    let rate = ipvsadm(&links, &socket, &["-Ln", "--rate"]).stdout;
    let lines: Vec<&str> = rate.lines().collect();
    assert_eq!(lines.len(), 5, "{rate}");
    assert_eq!(
        format!("{}\n{}\n", lines[1], lines[2]),
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    );
    let nums = |line: &str, skip: usize| -> Vec<u64> {
        line.split_whitespace()
            .skip(skip)
            .map(|n| n.parse().unwrap_or_else(|_| panic!("{n} in {line:?}")))
            .collect()
    };
    let s = nums(lines[3], 2);
    assert_eq!(
        lines[3],
        format!(
            "{:<33}{:>9}{:>9}{:>9}{:>9}{:>9}",
            "TCP  198.18.0.100:80", s[0], s[1], s[2], s[3], s[4]
        )
    );
    let r = nums(lines[4], 2);
    assert_eq!(
        lines[4],
        format!(
            "  -> {:<28} {:>8} {:>8} {:>8}{:>9}{:>9}",
            "198.19.1.10:80", r[0], r[1], r[2], r[3], r[4]
        )
    );

    // -c without -n: every endpoint named where the system has a name.
    let etc = write_etc(
        &dir,
        [
            "198.18.0.100 vip.fnat.test\n198.18.5.3 client3.fnat.test\n\
             198.19.0.10 lip10.fnat.test\n198.19.1.10 rs1.fnat.test\n",
            "http 80/tcp\nfnat-lport 1024/tcp\n",
            "hosts: files\nservices: files\n",
            "",
        ],
    );
    // DPVS lists -G numerically whatever the names.
    let g = ipvsadm_with_etc(&links, &socket, &etc, &["-G"], "");
    assert_eq!(g.stdout, want, "{}", g.stderr);
    let numeric = ipvsadm(&links, &socket, &["-Lnc"]).stdout;
    let named = ipvsadm_with_etc(&links, &socket, &etc, &["-Lc"], "");
    assert_eq!(named.code(), Some(0), "{}", named.stderr);
    let host = |a: &str| {
        match a {
            "198.18.0.100" => "vip.fnat.test",
            "198.18.5.3" => "client3.fnat.test",
            "198.19.0.10" => "lip10.fnat.test",
            "198.19.1.10" => "rs1.fnat.test",
            other => other,
        }
        .to_string()
    };
    let name = |ep: &str| {
        let (a, p) = ep.rsplit_once(':').expect("addr:port");
        let port = match p {
            "80" => "http",
            "1024" => "fnat-lport",
            other => other,
        };
        format!("{}:{port}", host(a))
    };
    // The kernel's layout: two header lines, then proto, expire, state, client, vip, rs and
    // (full-NAT) the local address. The expire column ticks between the two listings, so it
    // is taken from the named line itself.
    let header = "IPVS connection entries\n\
                  pro expire state       source             virtual            destination        local\n";
    assert!(numeric.starts_with(header), "{numeric}");
    assert!(named.stdout.starts_with(header), "{}", named.stdout);
    let mut want_named: Vec<Vec<String>> = numeric
        .lines()
        .skip(2)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 7, "{l}");
            let mut v: Vec<String> = f.iter().map(|s| s.to_string()).collect();
            for ep in &mut v[3..] {
                *ep = name(ep);
            }
            v
        })
        .collect();
    let mut got_named: Vec<Vec<String>> = Vec::new();
    for l in named.stdout.lines().skip(2) {
        let f: Vec<String> = l.split_whitespace().map(str::to_string).collect();
        assert_eq!(f.len(), 7, "{l}");
        assert_eq!(f[0], "TCP");
        // `%-3s %-6s %-11s %-18s %-18s %-18s %s`, the expire as MM:SS.
        assert!(
            f[1].len() == 5 && f[1].as_bytes()[2] == b':',
            "expire MM:SS: {l}"
        );
        assert_eq!(
            l,
            format!(
                "{:<3} {:<6} {:<11} {:<18} {:<18} {:<18} {}",
                f[0], f[1], f[2], f[3], f[4], f[5], f[6]
            )
        );
        got_named.push(f);
    }
    assert_eq!(got_named.len(), 13, "{}", named.stdout);
    let key = |v: &Vec<String>| (v[3].clone(), v[0].clone());
    want_named.sort_by_key(key);
    got_named.sort_by_key(key);
    for (g, w) in got_named.iter_mut().zip(&mut want_named) {
        w[1] = g[1].clone();
    }
    assert_eq!(got_named, want_named);
    assert!(
        named.stdout.contains(" client3.fnat.test:40003 ")
            && named.stdout.contains(" vip.fnat.test:http ")
            && named.stdout.contains(" lip10.fnat.test:fnat-lport\n")
            && named.stdout.contains(" rs1.fnat.test:http "),
        "{}",
        named.stdout
    );

    // -Z zeroes traffic counters, not the ports sessions hold.
    assert_eq!(ipvsadm(&links, &socket, &["-Z"]).code(), Some(0));
    assert_eq!(ipvsadm(&links, &socket, &["-G"]).stdout, want);
    let stop = daemon.stop();
    assert!(
        drop_counter(&stop.stdout, "local_ports_exhausted") == 2,
        "{}",
        stop.stdout
    );
}
