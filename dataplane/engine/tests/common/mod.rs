//! Test lab for the full-NAT worker: a two-port topology, frame builders and a checking
//! decoder, all over etherparse (never the engine's own parser).
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use etherparse::{
    IpHeaders, Ipv4Header, LinkHeader, NetHeaders, PacketBuilder, PacketHeaders, TcpOptionElement,
    TransportHeader,
};
use fnat_engine::rules::{
    Ipv4Cidr, Mode, Neighbour, PortRule, Protocol, RealServer, Route, Rules, SchedulerKind,
    Service, ServiceOptions, Timeouts,
};
use fnat_engine::sched::load::LoadBoard;
use fnat_engine::{Verdict, Worker};

pub const S: u64 = 1_000_000_000;

/// Port 0 faces the clients (through a router), port 1 the real servers (on link).
pub const PORT0_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const PORT1_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const ROUTER_MAC: [u8; 6] = [0x0c, 0, 0, 0, 0, 0xfe];
pub const RS1_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 0x11];
pub const RS2_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 0x12];

pub const PORT0_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
pub const PORT1_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const LIP1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
pub const LIP2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 101);
pub const RS1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 11);
pub const RS2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 12);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

pub const TCP_SVC: u32 = 1;
pub const UDP_SVC: u32 = 2;

fn cidr(addr: Ipv4Addr, prefix_len: u8) -> Ipv4Cidr {
    Ipv4Cidr { addr, prefix_len }
}

pub fn rs_mac(ip: Ipv4Addr) -> [u8; 6] {
    if ip == RS1 {
        RS1_MAC
    } else {
        RS2_MAC
    }
}

/// TCP VIP:80 → RS1:8080, RS2:8080 (rr, LIP1 then LIP2); UDP VIP:53 → RS1:5353 (LIP1).
pub fn rules(capacity: usize, lport_min: u16, lport_max: u16) -> Rules {
    Rules {
        generation: 1,
        ports: vec![
            PortRule {
                name: "client".into(),
                mac: PORT0_MAC,
                addresses: vec![cidr(PORT0_IP, 24), cidr(VIP, 32)],
            },
            PortRule {
                name: "servers".into(),
                mac: PORT1_MAC,
                addresses: vec![cidr(PORT1_IP, 24), cidr(LIP1, 32), cidr(LIP2, 32)],
            },
        ],
        mode: Mode::FullNat,
        services: vec![
            Service {
                id: TCP_SVC,
                vip: VIP,
                protocol: Protocol::Tcp,
                port: 80,
                scheduler: SchedulerKind::Rr,
                reals: vec![
                    RealServer {
                        id: 11,
                        addr: RS1,
                        port: 8080,
                        weight: 1,
                        thresholds: Default::default(),
                        method: Default::default(),
                    },
                    RealServer {
                        id: 12,
                        addr: RS2,
                        port: 8080,
                        weight: 1,
                        thresholds: Default::default(),
                        method: Default::default(),
                    },
                ],
                local_addresses: vec![LIP1, LIP2],
                options: ServiceOptions::default(),
            },
            Service {
                id: UDP_SVC,
                vip: VIP,
                protocol: Protocol::Udp,
                port: 53,
                scheduler: SchedulerKind::Rr,
                reals: vec![RealServer {
                    id: 21,
                    addr: RS1,
                    port: 5353,
                    weight: 1,
                    thresholds: Default::default(),
                    method: Default::default(),
                }],
                local_addresses: vec![LIP1],
                options: ServiceOptions::default(),
            },
        ],
        routes: vec![Route {
            prefix: cidr(Ipv4Addr::UNSPECIFIED, 0),
            port: 0,
            via: Some(ROUTER),
        }],
        neighbours: vec![
            Neighbour {
                addr: ROUTER,
                mac: ROUTER_MAC,
                port: 0,
            },
            Neighbour {
                addr: RS1,
                mac: RS1_MAC,
                port: 1,
            },
            Neighbour {
                addr: RS2,
                mac: RS2_MAC,
                port: 1,
            },
        ],
        timeouts: Timeouts::default(),
        session_capacity: capacity,
        lport_min,
        lport_max,
        drop_ip_options: false,
        expire_quiescent_template: false,
        standby: Vec::new(),
        garp: Default::default(),
        edits: None,
    }
}

pub fn workers(n: u16, rules: Rules) -> Vec<Worker> {
    let rules = Arc::new(rules);
    let board = Arc::new(LoadBoard::new(n));
    (0..n)
        .map(|i| Worker::with_board(i, n, rules.clone(), board.clone()))
        .collect()
}

pub fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// Which side a frame arrives from: the clients' router on port 0, or a real server on port 1.
pub fn side_of(dst: SocketAddrV4) -> (u16, [u8; 6], [u8; 6]) {
    if dst.ip().octets()[0] == 10 {
        (1, PORT1_MAC, RS1_MAC)
    } else {
        (0, PORT0_MAC, ROUTER_MAC)
    }
}

/// A TCP frame; `flags` letters: S A F R P. Arrives on the port facing `src`.
pub fn tcp(src: SocketAddrV4, dst: SocketAddrV4, flags: &str, payload: &[u8]) -> Vec<u8> {
    tcp_ttl(src, dst, flags, payload, 64)
}

pub fn tcp_ttl(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    flags: &str,
    payload: &[u8],
    ttl: u8,
) -> Vec<u8> {
    tcp_segment(
        src,
        dst,
        flags,
        TcpFields {
            ttl,
            ..TcpFields::default()
        },
        payload,
    )
}

/// The numbers, window, TTL and options of a frame [`tcp_segment`] builds.
#[derive(Clone, Copy)]
pub struct TcpFields<'a> {
    pub seq: u32,
    /// Sent only with the `A` flag.
    pub ack: u32,
    pub window: u16,
    pub ttl: u8,
    pub opts: &'a [TcpOptionElement],
}

impl Default for TcpFields<'_> {
    fn default() -> Self {
        TcpFields {
            seq: 1000,
            ack: 2000,
            window: 65535,
            ttl: 64,
            opts: &[],
        }
    }
}

/// A TCP frame; `flags` letters: S A F R P. Arrives on the port facing `src`.
pub fn tcp_segment(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    flags: &str,
    f: TcpFields,
    payload: &[u8],
) -> Vec<u8> {
    let (_, our_mac, peer_mac) = side_of(dst);
    let mut b = PacketBuilder::ethernet2(peer_mac, our_mac)
        .ipv4(src.ip().octets(), dst.ip().octets(), f.ttl)
        .tcp(src.port(), dst.port(), f.seq, f.window);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(f.ack);
    }
    if flags.contains('F') {
        b = b.fin();
    }
    if flags.contains('R') {
        b = b.rst();
    }
    if flags.contains('P') {
        b = b.psh();
    }
    if !f.opts.is_empty() {
        b = b.options(f.opts).unwrap();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

pub fn udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let (_, our_mac, peer_mac) = side_of(dst);
    let mut out = Vec::new();
    PacketBuilder::ethernet2(peer_mac, our_mac)
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .udp(src.port(), dst.port())
        .write(&mut out, payload)
        .unwrap();
    out
}

pub fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16) -> Vec<u8> {
    let (_, our_mac, peer_mac) = side_of(sa(dst, 0));
    let mut out = Vec::new();
    PacketBuilder::ethernet2(peer_mac, our_mac)
        .ipv4(src.octets(), dst.octets(), 64)
        .icmpv4_echo_request(id, seq)
        .write(&mut out, b"ping payload")
        .unwrap();
    out
}

/// An ICMP error from `src` to `dst` quoting `quoted` (an IP packet, no Ethernet header).
pub fn icmp_error(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    icmp_type: etherparse::Icmpv4Type,
    quoted: &[u8],
) -> Vec<u8> {
    let (_, our_mac, peer_mac) = side_of(sa(dst, 0));
    let mut out = Vec::new();
    PacketBuilder::ethernet2(peer_mac, our_mac)
        .ipv4(src.octets(), dst.octets(), 64)
        .icmpv4(icmp_type)
        .write(&mut out, quoted)
        .unwrap();
    out
}

/// A TCP frame whose IPv4 header carries 4 bytes of options (NOP NOP NOP EOL).
pub fn tcp_with_options(src: SocketAddrV4, dst: SocketAddrV4, flags: &str) -> Vec<u8> {
    let (_, our_mac, peer_mac) = side_of(dst);
    let mut ip = Ipv4Header::new(
        0,
        64,
        etherparse::IpNumber::TCP,
        src.ip().octets(),
        dst.ip().octets(),
    )
    .unwrap();
    ip.options = [1u8, 1, 1, 0][..].try_into().unwrap();
    let mut b = PacketBuilder::ethernet2(peer_mac, our_mac)
        .ip(IpHeaders::Ipv4(ip, Default::default()))
        .tcp(src.port(), dst.port(), 1, 100);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(1);
    }
    let mut out = Vec::new();
    b.write(&mut out, b"opt").unwrap();
    out
}

/// What etherparse reads back from a frame the engine produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub ttl: u8,
    pub ip_options: Vec<u8>,
    pub l4: L4,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L4 {
    Tcp {
        syn: bool,
        ack: bool,
        fin: bool,
        rst: bool,
    },
    Udp {
        checksum: u16,
    },
    Icmp(etherparse::Icmpv4Type),
}

/// Decodes a frame with etherparse and asserts that every checksum in it is valid (IPv4
/// header, TCP/UDP over the pseudo header, ICMP; for ICMP errors also the quoted IPv4 header).
pub fn decode(frame: &[u8]) -> Out {
    let h = PacketHeaders::from_ethernet_slice(frame).expect("etherparse accepts the frame");
    let Some(LinkHeader::Ethernet2(eth)) = h.link else {
        panic!("no ethernet")
    };
    let Some(NetHeaders::Ipv4(ip, _)) = h.net else {
        panic!("not ipv4")
    };
    assert_eq!(
        ip.header_checksum,
        ip.calc_header_checksum(),
        "IPv4 header checksum"
    );
    let payload = h.payload.slice();
    let (sport, dport, l4) = match h.transport.expect("transport") {
        TransportHeader::Tcp(t) => {
            assert_eq!(
                t.checksum,
                t.calc_checksum_ipv4(&ip, payload).unwrap(),
                "TCP checksum"
            );
            (
                t.source_port,
                t.destination_port,
                L4::Tcp {
                    syn: t.syn,
                    ack: t.ack,
                    fin: t.fin,
                    rst: t.rst,
                },
            )
        }
        TransportHeader::Udp(u) => {
            if u.checksum != 0 {
                assert_eq!(
                    u.checksum,
                    u.calc_checksum_ipv4(&ip, payload).unwrap(),
                    "UDP checksum"
                );
            }
            (
                u.source_port,
                u.destination_port,
                L4::Udp {
                    checksum: u.checksum,
                },
            )
        }
        TransportHeader::Icmpv4(i) => {
            assert_eq!(
                i.checksum,
                i.icmp_type.calc_checksum(payload),
                "ICMP checksum"
            );
            if matches!(
                i.icmp_type,
                etherparse::Icmpv4Type::DestinationUnreachable(_)
                    | etherparse::Icmpv4Type::TimeExceeded(_)
            ) {
                let (q, _) = Ipv4Header::from_slice(payload).expect("quoted ipv4");
                assert_eq!(
                    q.header_checksum,
                    q.calc_header_checksum(),
                    "quoted IPv4 checksum"
                );
            }
            (0, 0, L4::Icmp(i.icmp_type))
        }
        other => panic!("unexpected transport {other:?}"),
    };
    Out {
        src_mac: eth.source,
        dst_mac: eth.destination,
        src: sa(Ipv4Addr::from(ip.source), sport),
        dst: sa(Ipv4Addr::from(ip.destination), dport),
        ttl: ip.time_to_live,
        ip_options: ip.options.as_slice().to_vec(),
        l4,
        payload: payload.to_vec(),
    }
}

/// The port a frame arrives on, from its destination MAC.
pub fn rx_port(frame: &[u8]) -> u16 {
    if frame.get(0..6) == Some(&PORT1_MAC[..]) {
        1
    } else {
        0
    }
}

/// Processes a frame on `w` (arrival port from its destination MAC).
pub fn run(w: &mut Worker, frame: &mut Vec<u8>, now: u64) -> Verdict {
    let port = rx_port(frame);
    w.process(port, frame, now)
}

/// Processes a frame arriving on worker `first`, following one redirect (as the driver's
/// steering ring would). Returns the verdict of the worker that decided and its index.
pub fn run_steered(
    ws: &mut [Worker],
    first: usize,
    frame: &mut Vec<u8>,
    now: u64,
) -> (usize, Verdict) {
    let v = run(&mut ws[first], frame, now);
    if let Verdict::Redirect { worker } = v {
        let w = worker as usize;
        assert_ne!(w, first, "redirected to itself");
        let v2 = run(&mut ws[w], frame, now);
        assert!(!matches!(v2, Verdict::Redirect { .. }), "redirected twice");
        return (w, v2);
    }
    (first, v)
}

pub fn tcp_flags(o: &Out) -> (bool, bool, bool, bool) {
    match o.l4 {
        L4::Tcp { syn, ack, fin, rst } => (syn, ack, fin, rst),
        _ => panic!("not tcp"),
    }
}

/// An ARP frame (Ethernet II by etherparse, RFC 826 body by hand), padded to 60 bytes.
pub fn arp_frame(
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    op: u16,
    sha: [u8; 6],
    spa: Ipv4Addr,
    tha: [u8; 6],
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let mut out = Vec::new();
    etherparse::Ethernet2Header {
        source: eth_src,
        destination: eth_dst,
        ether_type: etherparse::EtherType::ARP,
    }
    .write(&mut out)
    .unwrap();
    out.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    out.extend_from_slice(&op.to_be_bytes());
    out.extend_from_slice(&sha);
    out.extend_from_slice(&spa.octets());
    out.extend_from_slice(&tha);
    out.extend_from_slice(&tpa.octets());
    out.resize(60, 0);
    out
}
