//! fnatd's sync messages for NAT and DR (and full-NAT) sessions, checked by two independent
//! readers: tshark's `ipvs` dissector (version 1 support, Wireshark 4), field by field, and a
//! parser written here from the kernel's structures (`struct ip_vs_sync_mesg`,
//! `struct ip_vs_sync_v4`, include/net/ip_vs.h flags) with its receive checks in
//! `ip_vs_process_message()` / `ip_vs_proc_sync_conn()`: what a Linux backup would accept
//! (tshark does not say whether a kernel would skip fnat's option; the parser does).
//! The sessions are made by frames built with etherparse, so the expected values come from
//! the test, not from the code under test.

mod common;

use common::*;
use fnat_engine::rules::{Method, Rules};
use fnat_engine::{Verdict, Worker};
use fnat_sync::{Encoder, SyncRules};
use std::net::{Ipv4Addr, SocketAddrV4};

/// One entry as the kernel reads it.
#[derive(Debug)]
struct KernelConn {
    protocol: u8,
    flags: u32,
    state: u16,
    cport: u16,
    vport: u16,
    dport: u16,
    fwmark: u32,
    timeout: u32,
    caddr: Ipv4Addr,
    vaddr: Ipv4Addr,
    daddr: Ipv4Addr,
    /// (type, data) of each option.
    options: Vec<(u8, Vec<u8>)>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The kernel's version-1 receive path, as a test oracle: panics where the kernel would
/// drop the buffer; returns the syncid and the entries it would process.
fn kernel_parse(m: &[u8]) -> (u8, Vec<KernelConn>) {
    // struct ip_vs_sync_mesg: reserved u8, syncid u8, size be16, nr_conns u8, version s8,
    // spare u16.
    assert!(m.len() >= 8, "header too short");
    assert_eq!(be16(m, 2) as usize, m.len(), "size == datagram length");
    assert_eq!(m[0], 0, "reserved (v0's nr_conns) must be 0");
    assert_eq!(m[5], 1, "version 1");
    assert_eq!(
        be16(m, 6),
        0,
        "spare 0, else the kernel reads it as version 0"
    );
    let (syncid, nr) = (m[1], m[4]);
    let mut out = Vec::new();
    let mut p = 8;
    for _ in 0..nr {
        // struct ip_vs_sync_v4 (36 bytes): type u8, protocol u8, ver_size be16, flags be32,
        // state be16, cport, vport, dport be16, fwmark be32, timeout be32, caddr, vaddr,
        // daddr be32.
        assert!(p + 36 <= m.len(), "entry runs past the buffer");
        let e = &m[p..];
        let ver_size = be16(e, 2);
        assert_eq!(ver_size >> 12, 0, "entry version 0");
        let size = usize::from(ver_size & 0x0fff);
        assert!(size >= 36 && p + size <= m.len(), "entry size");
        assert_eq!(e[0], 0, "type: IPv4");
        let mut options = Vec::new();
        let mut o = 36;
        while o < size {
            let (t, l) = (e[o], usize::from(e[o + 1]));
            assert!(l > 0 && o + 2 + l <= size, "option length");
            // ip_vs_proc_sync_conn(): types 1..3 are the kernel's; any other must have
            // IPVS_OPT_F_PARAM (1 << 6) or the entry is dropped ("mandatory param").
            if !(1..=3).contains(&(t & !0x40)) {
                assert_ne!(t & 0x40, 0, "unknown option without IPVS_OPT_F_PARAM");
            }
            options.push((t, e[o + 2..o + 2 + l].to_vec()));
            o += 2 + l;
        }
        out.push(KernelConn {
            protocol: e[1],
            flags: be32(e, 4),
            state: be16(e, 8),
            cport: be16(e, 10),
            vport: be16(e, 12),
            dport: be16(e, 14),
            fwmark: be32(e, 16),
            timeout: be32(e, 20),
            caddr: Ipv4Addr::from(be32(e, 24)),
            vaddr: Ipv4Addr::from(be32(e, 28)),
            daddr: Ipv4Addr::from(be32(e, 32)),
            options,
        });
        // 32-bit alignment between entries.
        p += (size + 3) & !3;
    }
    assert_eq!(p, m.len(), "nothing after the last entry");
    (syncid, out)
}

fn rules_with(method: Method) -> Rules {
    let mut r = rules(1024, 1024, 65535);
    for s in &mut r.services {
        for rs in &mut s.reals {
            rs.method = method;
            if method == Method::Dr {
                rs.port = s.port;
            }
        }
    }
    r
}

fn from_rs(src: SocketAddrV4, dst: SocketAddrV4, flags: &str) -> Vec<u8> {
    let mut b = etherparse::PacketBuilder::ethernet2(rs_mac(*src.ip()), PORT1_MAC)
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .tcp(src.port(), dst.port(), 5000, 65535);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(1001);
    }
    let mut out = Vec::new();
    b.write(&mut out, b"").unwrap();
    out
}

/// One established connection from `client` through a fresh worker running `method`, and
/// the sync message fnatd sends for it. Returns the message and where the client's first
/// packet went (the real server and the source it saw).
fn message_for(method: Method, client: SocketAddrV4) -> (Vec<u8>, SocketAddrV4, SocketAddrV4) {
    let mut w = Worker::new(0, 1, std::sync::Arc::new(rules_with(method)));
    w.set_sync(Some(SyncRules::default()));
    let vip = sa(VIP, 80);
    let now = 5 * S;
    let mut syn = tcp(client, vip, "S", b"");
    assert_eq!(run(&mut w, &mut syn, now), Verdict::Transmit { port: 1 });
    let mut seen = decode(&syn);
    if method == Method::Dr {
        // Only the MAC changed: the real server is the one whose MAC the frame went to.
        let rs = if seen.dst_mac == RS1_MAC { RS1 } else { RS2 };
        seen.dst = sa(rs, seen.dst.port());
    } else {
        let mut r = from_rs(seen.dst, seen.src, "SA");
        assert_eq!(run(&mut w, &mut r, now), Verdict::Transmit { port: 0 });
    }
    for p in [&b""[..], b"x"] {
        let mut f = tcp(client, vip, "A", p);
        assert_eq!(run(&mut w, &mut f, now), Verdict::Transmit { port: 1 });
    }
    let mut enc = Encoder::new(42, fnat_sync::DEFAULT_MAXLEN);
    w.drain_sync(|c| enc.push(c));
    assert_eq!(
        enc.len(),
        1,
        "one entry: the third client packet, ESTABLISHED"
    );
    (enc.message().to_vec(), seen.dst, seen.src)
}

#[test]
fn nat_entry_is_the_kernels() {
    let client = sa(CLIENT, 40001);
    let (m, rs, _) = message_for(Method::Nat, client);
    let (syncid, conns) = kernel_parse(&m);
    assert_eq!(syncid, 42);
    assert_eq!(conns.len(), 1);
    let c = &conns[0];
    assert_eq!(c.protocol, 6);
    assert_eq!(c.flags & 0x7, 0, "IP_VS_CONN_F_MASQ");
    assert_eq!(c.flags & 0x80, 0, "NAT has output packets (no NOOUTPUT)");
    assert_eq!(c.flags & 0x100, 0, "established: not INACTIVE");
    assert_eq!(c.state, 1, "IP_VS_TCP_S_ESTABLISHED");
    assert_eq!((c.caddr, c.cport), (CLIENT, 40001));
    assert_eq!((c.vaddr, c.vport), (VIP, 80));
    assert_eq!((c.daddr, c.dport), (*rs.ip(), rs.port()));
    assert_eq!(c.fwmark, 0);
    assert_eq!(c.timeout, 900, "tcp timeout left, seconds");
    assert!(c.options.is_empty(), "a kernel NAT entry carries no option");
    assert_eq!(m.len(), 8 + 36);
}

#[test]
fn dr_entry_is_the_kernels() {
    let client = sa(CLIENT, 40002);
    let (m, rs, _) = message_for(Method::Dr, client);
    let (_, conns) = kernel_parse(&m);
    let c = &conns[0];
    assert_eq!(c.flags & 0x7, 3, "IP_VS_CONN_F_DROUTE");
    assert_ne!(
        c.flags & 0x80,
        0,
        "IP_VS_CONN_F_NOOUTPUT, as the kernel sets for DR"
    );
    assert_eq!(c.state, 1);
    assert_eq!((c.caddr, c.cport), (CLIENT, 40002));
    assert_eq!((c.vaddr, c.vport), (VIP, 80));
    assert_eq!(
        (c.daddr, c.dport),
        (*rs.ip(), 80),
        "DR keeps the service port"
    );
    assert!(c.options.is_empty());
}

#[test]
fn fullnat_entry_is_a_nat_entry_with_a_skippable_option() {
    let client = sa(CLIENT, 40003);
    let (m, rs, local) = message_for(Method::FullNat, client);
    let (_, conns) = kernel_parse(&m);
    let c = &conns[0];
    assert_eq!(c.flags & 0x7, 0, "a kernel backup keeps it as NAT");
    assert_eq!((c.caddr, c.cport), (CLIENT, 40003));
    assert_eq!((c.daddr, c.dport), (*rs.ip(), rs.port()));
    assert_eq!(c.options.len(), 1);
    let (t, data) = &c.options[0];
    assert_eq!(*t, 0x50, "fnat's option: IPVS_OPT_F_PARAM | 0x10");
    assert_eq!(data.len(), 24);
    assert_eq!(Ipv4Addr::from(be32(data, 0)), *local.ip(), "local address");
    assert_eq!(be16(data, 4), local.port(), "local port");
    assert_eq!(m.len(), 8 + 64, "36 + 2 + 24 = 62, padded to 64");
}

/// The message in an Ethernet/IPv4/UDP frame to 224.0.0.81:8848, as the master's twin sends it.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    etherparse::PacketBuilder::ethernet2(PORT1_MAC, [0x01, 0, 0x5e, 0, 0, 0x51])
        .ipv4(PORT1_IP.octets(), [224, 0, 0, 81], 1)
        .udp(8848, 8848)
        .write(&mut out, message)
        .unwrap();
    out
}

/// tshark's reading of each frame of `frames`: one map of field → value per frame.
fn tshark_fields(frames: &[Vec<u8>], fields: &[&str]) -> Vec<Vec<String>> {
    let dir = std::env::temp_dir().join(format!("fnat-sync-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sync.pcap");
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut w = pcap_file::pcap::PcapWriter::new(file).unwrap();
        for (i, f) in frames.iter().enumerate() {
            let ts = std::time::Duration::from_millis(i as u64);
            w.write_packet(&pcap_file::pcap::PcapPacket::new(ts, f.len() as u32, f))
                .unwrap();
        }
    }
    let mut cmd = std::process::Command::new("tshark");
    cmd.args(["-n", "-r"]).arg(&path).args([
        "-d",
        "udp.port==8848,ipvs",
        "-T",
        "fields",
        "-E",
        "separator=;",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd
        .output()
        .expect("tshark must be installed (scripts/setup-debian.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split(';').map(str::to_string).collect())
        .collect()
}

#[test]
fn tshark_decodes_nat_and_dr_messages_field_by_field() {
    let (nat, nat_rs, _) = message_for(Method::Nat, sa(CLIENT, 40011));
    let (dr, dr_rs, _) = message_for(Method::Dr, sa(CLIENT, 40012));
    let fields = [
        "ipvs.syncid",
        "ipvs.conncount",
        "ipvs.version",
        "ipvs.size",
        "ipvs.type",
        "ipvs.proto",
        "ipvs.size.v1",
        "ipvs.flags.v1",
        "ipvs.state",
        "ipvs.cport",
        "ipvs.vport",
        "ipvs.dport",
        "ipvs.fwmark",
        "ipvs.timeout",
        "ipvs.caddr",
        "ipvs.vaddr",
        "ipvs.daddr",
    ];
    let rows = tshark_fields(&[frame(&nat), frame(&dr)], &fields);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let expect = |rs: SocketAddrV4, cport: u16, flags: &str, size: usize| -> Vec<String> {
        [
            "42",
            "1",
            "1",
            &size.to_string(),
            "0",
            "0x06",
            "36",
            flags,
            "0x0001",
            &cport.to_string(),
            "80",
            &rs.port().to_string(),
            "0x00000000",
            "900",
            &CLIENT.to_string(),
            &VIP.to_string(),
            &rs.ip().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // NAT: IP_VS_CONN_F_MASQ, nothing else; DR: DROUTE | NOOUTPUT.
    assert_eq!(rows[0], expect(nat_rs, 40011, "0x00000000", nat.len()));
    assert_eq!(rows[1], expect(dr_rs, 40012, "0x00000083", dr.len()));
}
