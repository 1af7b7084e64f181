//! The LVS forwarding methods on real kernels, each set up as the LVS tutorials set up their
//! real servers (scripts/lab/lab.sh `LAB_RS_MODE`), plus the tunnel real server's
//! decapsulation program (scripts/lab/tun_decap.py) on its own. Needs root and network
//! namespaces, and fails loudly without them.

mod lab_support;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use etherparse::{IpNumber, Ipv4Header, PacketBuilder, SlicedPacket};
use fnat_tests::{root, run_with_deadline};
use lab_support::*;

/// Two namespaces of this test's own, joined by a veth; removed on drop (panics included).
struct Pair {
    prefix: String,
    children: Vec<std::process::Child>,
}

impl Pair {
    fn up() -> Pair {
        require_root_and_netns();
        let prefix = format!("ftd{:04x}", std::process::id() & 0xffff);
        let pair = Pair {
            prefix: prefix.clone(),
            children: Vec::new(),
        };
        let p = &prefix;
        let script = format!(
            "set -e
ip netns add {p}a; ip netns add {p}b
ip link add {p}a0 netns {p}a type veth peer name {p}b0 netns {p}b
for n in a b; do
  ip netns exec {p}$n sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  ip -n {p}$n link set lo up; ip -n {p}$n link set {p}${{n}}0 up
done
ip -n {p}a addr add 198.18.30.1/24 dev {p}a0
ip -n {p}b addr add 198.18.30.2/24 dev {p}b0
"
        );
        let done = run_with_deadline(
            Command::new("bash").args(["-c", &script]),
            Duration::from_secs(30),
        );
        assert!(done.status.success(), "namespaces: {}", done.stderr);
        pair
    }
    fn ns(&self, side: &str) -> String {
        format!("{}{side}", self.prefix)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for side in ["a", "b"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(side)])
                .output();
        }
    }
}

const A: [u8; 4] = [198, 18, 30, 1];
const B: [u8; 4] = [198, 18, 30, 2];
const TUN_VIP: [u8; 4] = [198, 18, 31, 100];

/// An ICMP echo request A → VIP, built by etherparse (the inner packet of every tunnel).
fn inner_echo(seq: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(A, TUN_VIP, 64)
        .icmpv4_echo_request(0x77, seq)
        .write(&mut out, b"tunnelled")
        .unwrap();
    out
}

fn outer(protocol: IpNumber, payload: &[u8]) -> Vec<u8> {
    let h = Ipv4Header::new(payload.len() as u16, 64, protocol, A, B).unwrap();
    let mut out = Vec::new();
    h.write(&mut out).unwrap();
    out.extend_from_slice(payload);
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// tun_decap.py takes IPIP, GRE (with and without checksum) and GUE (variant 0 and 1)
/// packets, writes their inner packets into its TUN device, and the real server's kernel
/// answers the inner packet from the VIP; a GRE packet of another protocol type is counted
/// as bad, never fatal.
#[test]
fn tun_decap_hands_ipip_gre_and_gue_inner_packets_to_the_kernel() {
    let mut pair = Pair::up();
    let log = std::env::temp_dir().join(format!("{}-decap.log", pair.prefix));
    let _ = std::fs::remove_file(&log);
    let decap = root().join("scripts/lab/tun_decap.py");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &pair.ns("b"), "/usr/bin/python3"])
        .arg(&decap)
        .args([
            "--dev",
            &format!("{}t", pair.prefix),
            "--vip",
            "198.18.31.100",
        ])
        .args(["--gue-port", "6080", "--log"])
        .arg(&log)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("tun_decap.py");
    let stdout = child.stdout.take().unwrap();
    pair.children.push(child);
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut ready).unwrap();
    assert_eq!(ready.trim(), "ready");

    // Raw tunnel packets (outer IPv4 header included) and GUE payloads (sent over UDP).
    let ipip = outer(IpNumber::IPV4, &inner_echo(1));
    let mut gre = vec![0, 0, 0x08, 0x00];
    gre.extend(inner_echo(2));
    let gre = outer(IpNumber::GRE, &gre);
    // GRE with the checksum bit: 4 more bytes (checksum, reserved).
    let mut grec = vec![0x80, 0, 0x08, 0x00, 0, 0, 0, 0];
    grec.extend(inner_echo(3));
    let grec = outer(IpNumber::GRE, &grec);
    let bad_gre = outer(IpNumber::GRE, &[0, 0, 0x86, 0xdd, 1, 2, 3, 4]);
    let mut gue0 = vec![0, 4, 0, 0];
    gue0.extend(inner_echo(4));
    let gue1 = inner_echo(5);
    let raw = [hex(&ipip), hex(&gre), hex(&grec), hex(&bad_gre)];
    let gue = [hex(&gue0), hex(&gue1)];
    let py = [
        "import socket,binascii".to_string(),
        "r=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_ICMP);r.settimeout(2)"
            .into(),
        "s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_RAW)".into(),
        format!("for h in {raw:?}: s.sendto(binascii.unhexlify(h),('198.18.30.2',0))"),
        "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)".into(),
        format!("for h in {gue:?}: u.sendto(binascii.unhexlify(h),('198.18.30.2',6080))"),
        "n=0".into(),
        "try:".into(),
        "  while n<5:".into(),
        "    d=r.recv(4096)".into(),
        "    if d[20]==0: print(binascii.hexlify(d).decode()); n+=1".into(),
        "except socket.timeout: pass".into(),
    ]
    .join("\n");
    let done = run_with_deadline(
        Command::new("ip").args([
            "netns",
            "exec",
            &pair.ns("a"),
            "/usr/bin/python3",
            "-c",
            &py,
        ]),
        Duration::from_secs(20),
    );
    assert!(done.status.success(), "{}", done.stderr);
    let mut seqs = Vec::new();
    for line in done.stdout.lines() {
        let bytes: Vec<u8> = (0..line.len() / 2)
            .map(|i| u8::from_str_radix(&line[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let p = SlicedPacket::from_ip(&bytes).expect("echo reply parses");
        let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not IPv4: {line}")
        };
        assert_eq!(ip.header().source_addr(), Ipv4Addr::from(TUN_VIP));
        assert_eq!(ip.header().destination_addr(), Ipv4Addr::from(A));
        let Some(etherparse::TransportSlice::Icmpv4(icmp)) = &p.transport else {
            panic!("not ICMP: {line}")
        };
        match icmp.icmp_type() {
            etherparse::Icmpv4Type::EchoReply(e) => {
                assert_eq!(e.id, 0x77);
                seqs.push(e.seq);
            }
            other => panic!("not an echo reply: {other:?}"),
        }
    }
    seqs.sort();
    assert_eq!(seqs, [1, 2, 3, 4, 5], "{}", done.stdout);

    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    for want in [
        "ipip outer=198.18.30.1>198.18.30.2 ttl=64 df=1 inner=198.18.30.1>198.18.31.100 proto=1",
        "gre outer=198.18.30.1>198.18.30.2 ttl=64 df=1 csum=0 inner=198.18.30.1>198.18.31.100",
        "gre outer=198.18.30.1>198.18.30.2 ttl=64 df=1 csum=1 inner=198.18.30.1>198.18.31.100",
        "bad gre protocol type 0x86dd",
        "gue outer=198.18.30.1>? sport=",
    ] {
        assert!(text.contains(want), "{want}:\n{text}");
    }
    assert_eq!(
        text.lines().filter(|l| l.starts_with("gue ")).count(),
        2,
        "{text}"
    );
}

/// The services of one method lab: `(port, extra real keys)` on VIP, rr over both servers.
fn method_services(method: &str, ports: &[(u16, &str, &str)]) -> String {
    let mut out = String::new();
    for (port, s1_extra, s2_extra) in ports {
        out.push_str(&format!(
            "[[service]]\nvip = \"{VIP}\"\nport = {port}\nprotocol = \"tcp\"\nscheduler = \"rr\"\n\
             real = [ {{ address = \"198.19.1.11\", port = {port}, method = \"{method}\"{s1_extra} }}, \
             {{ address = \"198.19.1.12\", port = {port}, method = \"{method}\"{s2_extra} }} ]\n\n"
        ));
    }
    out
}

/// A lab of `servers` = 2 with the real servers set up for `mode` and `services` (TOML).
fn method_lab(
    mode: &str,
    workers: u32,
    services: &str,
    env: &[(&str, String)],
) -> (Lab, fnat_tests::TempDir) {
    let dir = fnat_tests::TempDir::new(&format!("lab-{mode}"));
    let file = dir.join("services.toml");
    std::fs::write(&file, services).unwrap();
    let mut all = vec![
        ("LAB_RS_MODE", mode.to_string()),
        ("LAB_WORKERS", workers.to_string()),
        ("LAB_SERVICES", file.display().to_string()),
    ];
    all.extend(env.iter().cloned());
    (Lab::up(2, &all), dir)
}

/// Six new connections through `url`: with one worker rr alternates strictly; with two, rr
/// runs on each worker, so rs1 answers 3 or 4 times and rs2 2 or 3 times whichever way the
/// connections spread (each worker starts at rs1).
fn check_rr(lab: &Lab, url: &str, workers: u32) {
    let answers: Vec<String> = (0..6).map(|_| lab.curl(url)).collect();
    let count = |s: &str| answers.iter().filter(|a| *a == s).count();
    assert_eq!(count("rs1") + count("rs2"), 6, "{url}: {answers:?}");
    if workers == 1 {
        for pair in answers.windows(2) {
            assert_ne!(pair[0], pair[1], "{url}: rr must alternate: {answers:?}");
        }
    } else {
        assert!(
            (2..=4).contains(&count("rs1")) && (2..=4).contains(&count("rs2")),
            "{url}: rr per worker: {answers:?}"
        );
    }
}

/// 1 MB from the real servers' /1m.bin through `url`, byte for byte.
fn check_megabyte(lab: &Lab, url: &str) {
    let done = lab.run(
        "c",
        &[
            "sh",
            "-c",
            &format!("curl -sS -m 30 http://{url}/1m.bin | sha256sum"),
        ],
        Duration::from_secs(40),
    );
    assert!(done.status.success(), "{}", done.stderr);
    let want = std::fs::read(lab.state_dir().join("1m.bin")).unwrap();
    assert_eq!(want.len(), 1 << 20);
    let local = run_with_deadline(
        Command::new("sha256sum").arg(lab.state_dir().join("1m.bin")),
        Duration::from_secs(10),
    );
    assert_eq!(
        done.stdout.split_whitespace().next(),
        local.stdout.split_whitespace().next(),
        "1 MB through {url} differs"
    );
}

/// `ipvsadm -Lnc`: the kernel's header (no `local` column: these methods have none) and the
/// rows of the client's sessions to `vport`, as (state, destination).
fn sessions(lab: &Lab, vport: u16) -> Vec<(String, String)> {
    let out = lab.ipvsadm(&["-Lnc"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.starts_with(
            "IPVS connection entries\npro expire state       source             virtual            destination\n"
        ),
        "{text}"
    );
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 6, "{l}");
            assert_eq!(f[0], "TCP", "{l}");
            assert!(f[3].starts_with("198.18.0.2:"), "{l}");
            (f[4] == format!("{VIP}:{vport}")).then(|| (f[2].to_string(), f[5].to_string()))
        })
        .collect()
}

/// LVS-NAT as the tutorial sets it up: the real servers' default route is fnatd, which
/// rewrites the destination in and the source back out; two workers (replies find the
/// session's owner whichever worker they land on).
#[test]
fn lab_nat_real_servers_route_via_fnatd() {
    let services = method_services("nat", &[(80, "", "")]);
    let (lab, _dir) = method_lab("nat", 2, &services, &[]);
    let ln = lab.ipvsadm(&["-Ln"]);
    let text = String::from_utf8_lossy(&ln.stdout);
    assert!(
        text.contains("  -> 198.19.1.11:80               Masq    1      "),
        "{text}"
    );
    check_rr(&lab, VIP, 2);
    check_megabyte(&lab, VIP);
    let rows = sessions(&lab, 80);
    assert!(rows.len() >= 7, "{rows:?}");
    for (state, dest) in &rows {
        assert!(
            dest == "198.19.1.11:80" || dest == "198.19.1.12:80",
            "{rows:?}"
        );
        // Both directions pass fnatd: the full TCP state machine ends in TIME_WAIT.
        assert!(
            ["TIME_WAIT", "SYN_RECV"].contains(&state.as_str()),
            "{rows:?}"
        );
    }
    assert!(
        rows.iter().filter(|(s, _)| s == "TIME_WAIT").count() >= 7,
        "{rows:?}"
    );
    let log = lab.down();
    assert_clean_exit(&log);
    // The kernel's fanout spread the flows' packets over both workers; the non-owner handed
    // them to the client's NAT owner (all of 16+ flow directions landing on the owner by
    // chance: under 1 in 65 000).
    assert!(
        report_number(&log, "Redirected between workers:") > 0,
        "{log}"
    );
}

/// LVS-DR as the tutorial sets it up: the VIP on the real servers' `lo` with arp_ignore=1
/// and arp_announce=2, replies through a router namespace, never through fnatd; two workers.
#[test]
fn lab_dr_replies_bypass_fnatd() {
    let services = method_services("dr", &[(80, "", "")]);
    let (lab, _dir) = method_lab("dr", 2, &services, &[]);
    let ln = lab.ipvsadm(&["-Ln"]);
    let text = String::from_utf8_lossy(&ln.stdout);
    assert!(
        text.contains("  -> 198.19.1.11:80               Route   1      "),
        "{text}"
    );
    let router_tx = || -> u64 {
        let done = lab.run(
            "r",
            &[
                "cat",
                &format!("/sys/class/net/{}r1/statistics/tx_bytes", lab.prefix),
            ],
            Duration::from_secs(5),
        );
        done.stdout.trim().parse().unwrap()
    };
    let before = router_tx();
    check_rr(&lab, VIP, 2);
    check_megabyte(&lab, VIP);
    // The megabyte came back by the router.
    assert!(
        router_tx() - before > 1 << 20,
        "replies did not pass the router"
    );
    // Inbound-only state machine: the client's FIN leaves the session in FIN_WAIT.
    let rows = sessions(&lab, 80);
    assert!(rows.len() >= 7, "{rows:?}");
    for (state, dest) in &rows {
        assert!(
            dest == "198.19.1.11:80" || dest == "198.19.1.12:80",
            "{rows:?}"
        );
        assert!(
            ["FIN_WAIT", "ESTABLISHED", "SYN_RECV", "CLOSE"].contains(&state.as_str()),
            "{rows:?}"
        );
    }
    assert!(rows.iter().any(|(s, _)| s == "FIN_WAIT"), "{rows:?}");
    assert_clean_exit(&lab.down());
}

/// The seed tutorial's DR + firewall-mark lab, unchanged, through the `ipvsadm` symlink:
/// mark 66 for the VIP's http and https ports, two DR real servers, the listing ipvsadm
/// prints, and rr alternating over both ports.
#[test]
fn lab_seed_dr_firewall_mark() {
    let (lab, dir) = method_lab("dr", 1, "", &[("LAB_WAIT", "socket".into())]);
    let links = fnat_tests::ipvsadm_dir(&dir);
    let socket = lab.socket();
    let run = |line: &str| {
        let args: Vec<&str> = line.split_whitespace().collect();
        let done = fnat_tests::ipvsadm(&links, &socket, &args);
        assert_eq!(done.code(), Some(0), "ipvsadm {line}: {}", done.stderr);
        done.stdout
    };
    // iptables -t mangle -A PREROUTING -d VIP -p tcp -m multiport --dports 80,443 -j MARK
    // --set-mark 66, as fnat's own mark table:
    run(&format!("--add-mark 66 tcp {VIP} 80,443"));
    run("-A -f 66 -s rr");
    run("-a -f 66 -r 198.19.1.11 -g");
    run("-a -f 66 -r 198.19.1.12 -g");
    assert_eq!(
        run("-Ln"),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n\
         \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         FWM  66 rr\n\
         \x20 -> 198.19.1.11:0                Route   1      0          0         \n\
         \x20 -> 198.19.1.12:0                Route   1      0          0         \n"
    );
    let answers: Vec<String> = [VIP, "198.18.10.100:443"]
        .iter()
        .cycle()
        .take(6)
        .map(|u| lab.curl(u))
        .collect();
    for pair in answers.windows(2) {
        assert_ne!(pair[0], pair[1], "rr over the mark: {answers:?}");
    }
    let ln = run("-Ln");
    assert!(
        ln.contains("  -> 198.19.1.11:0                Route   1      "),
        "{ln}"
    );
    let https = sessions(&lab, 443);
    assert_eq!(https.len(), 3, "{https:?}");
    for (_, dest) in &https {
        assert!(dest.ends_with(":443"), "{https:?}");
    }
    assert_clean_exit(&lab.down());
}

/// LVS-TUN: IPIP on port 80, GUE (UDP 6080) on 443, GRE (checksummed toward rs2) on 8443;
/// the real servers decapsulate with tun_decap.py into a TUN device holding the VIP and answer
/// through the router. The outer headers as tshark reads them on the real server's link.
#[test]
fn lab_tun_ipip_gue_gre() {
    let services = method_services(
        "tun",
        &[
            (80, "", ""),
            (
                443,
                ", tunnel_type = \"gue\", tunnel_port = 6080",
                ", tunnel_type = \"gue\", tunnel_port = 6080",
            ),
            (
                8443,
                ", tunnel_type = \"gre\"",
                ", tunnel_type = \"gre\", tunnel_csum = true",
            ),
        ],
    );
    let (lab, _dir) = method_lab("tun", 1, &services, &[]);
    let pcap = lab.state_dir().join("s1.pcap");
    let mut capture = lab.cmd("s1", "tshark");
    capture
        .args(["-q", "-i", &format!("{}s1", lab.prefix), "-w"])
        .arg(&pcap)
        .args(["-f", "ip proto 4 or ip proto 47 or udp port 6080"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut capture = capture.spawn().expect("tshark");
    // tshark says "Capturing on" once it listens.
    {
        use std::io::Read;
        let mut err = capture.stderr.take().unwrap();
        let mut buf = [0u8; 256];
        let mut seen = String::new();
        while !seen.contains("Capturing on") {
            let n = err.read(&mut buf).unwrap_or(0);
            assert!(n > 0, "tshark did not start: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = err.read_to_end(&mut sink);
        });
    }
    for port in [80u16, 443, 8443] {
        check_rr(&lab, &format!("{VIP}:{port}"), 1);
    }
    check_megabyte(&lab, VIP);
    std::thread::sleep(Duration::from_millis(500));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(capture.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = capture.wait();

    let fields = |filter: &str, f: &[&str]| -> Vec<String> {
        let mut c = Command::new("tshark");
        c.arg("-r").arg(&pcap).args(["-Y", filter, "-T", "fields"]);
        for x in f {
            c.args(["-e", x]);
        }
        let done = run_with_deadline(&mut c, Duration::from_secs(30));
        assert!(done.status.success(), "tshark: {}", done.stderr);
        done.stdout.lines().map(str::to_string).collect()
    };
    // IPIP: outer 198.19.1.1 → rs1, protocol 4, the client's packet to the VIP inside.
    let ipip = fields("ip.proto == 4", &["ip.src", "ip.dst", "ip.ttl"]);
    assert!(!ipip.is_empty(), "no IPIP packets");
    for l in &ipip {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(
            &f[..2],
            &["198.19.1.1,198.18.0.2", "198.19.1.11,198.18.10.100"],
            "{l}"
        );
    }
    // GRE: protocol type IPv4, no checksum toward rs1, the client's packet inside.
    let gre = fields("gre", &["gre.proto", "gre.flags_and_version", "ip.dst"]);
    assert!(!gre.is_empty(), "no GRE packets");
    for l in &gre {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(f[0], "0x0800", "{l}");
        assert_eq!(f[1], "0x0000", "no checksum toward rs1: {l}");
        assert_eq!(f[2], "198.19.1.11,198.18.10.100", "{l}");
    }
    // GUE: UDP to 6080 from 198.19.1.1, a 4-byte GUE header (version 0, protocol 4) and
    // the client's IPv4 packet.
    let gue = fields(
        "udp.dstport == 6080",
        &["ip.src", "udp.srcport", "data.data"],
    );
    assert!(!gue.is_empty(), "no GUE packets");
    for l in &gue {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(f[0], "198.19.1.1", "{l}");
        assert!(f[2].starts_with("0004000045"), "GUE header + IPv4: {l}");
    }

    // The decapsulation logs: every tunnel type reached each server, GRE to rs2 checksummed.
    let log =
        |i: u32| std::fs::read_to_string(lab.state_dir().join(format!("decap{i}.pkts"))).unwrap();
    let (l1, l2) = (log(1), log(2));
    for (l, server) in [(&l1, "198.19.1.11"), (&l2, "198.19.1.12")] {
        assert!(
            l.contains(&format!("ipip outer=198.19.1.1>{server} ttl=")),
            "{l}"
        );
        assert!(
            l.contains(&format!("gre outer=198.19.1.1>{server} ttl=")),
            "{l}"
        );
        assert!(l.contains("gue outer=198.19.1.1>? sport="), "{l}");
        assert!(!l.contains("bad "), "{l}");
    }
    assert!(l1.contains(" csum=0 ") && !l1.contains(" csum=1 "), "{l1}");
    assert!(l2.contains(" csum=1 ") && !l2.contains(" csum=0 "), "{l2}");

    let rows = sessions(&lab, 443);
    assert!(rows.len() >= 6, "{rows:?}");
    assert_clean_exit(&lab.down());
}
