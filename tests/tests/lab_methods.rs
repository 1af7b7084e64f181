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
