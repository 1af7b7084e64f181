//! Shared by the `packet_*` tests: frames are built and checked with etherparse only, never
//! with the engine's own parser or checksum code.
#![allow(dead_code)] // each test crate uses a different part

use std::net::{Ipv4Addr, SocketAddrV4};

use etherparse::{
    Icmpv4Header, Icmpv4Type, IpHeaders, IpNumber, Ipv4Header, NetHeaders, PacketBuilder,
    PacketHeaders, PayloadSlice, TcpHeader, TransportHeader, UdpHeader,
};

pub const ETH: usize = 14;
pub const MAC_CLIENT: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const MAC_GATEWAY: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

pub fn sock(a: [u8; 4], port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(a), port)
}

/// What goes into the IPv4 header of a built frame.
#[derive(Debug, Clone)]
pub struct Ip {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub ttl: u8,
    /// Raw option bytes (multiple of 4, at most 40).
    pub options: Vec<u8>,
    pub id: u16,
}

impl Ip {
    pub fn new(src: [u8; 4], dst: [u8; 4], ttl: u8) -> Self {
        Ip {
            src,
            dst,
            ttl,
            options: Vec::new(),
            id: 0x1234,
        }
    }

    fn header(&self) -> Ipv4Header {
        let mut h = Ipv4Header::new(0, self.ttl, IpNumber::TCP, self.src, self.dst).unwrap();
        h.identification = self.id;
        h.dont_fragment = true;
        h.options = self.options.as_slice().try_into().unwrap();
        h
    }

    fn builder(&self, macs: ([u8; 6], [u8; 6])) -> etherparse::PacketBuilderStep<IpHeaders> {
        PacketBuilder::ethernet2(macs.0, macs.1)
            .ip(IpHeaders::Ipv4(self.header(), Default::default()))
    }
}

/// TCP header fields of a built frame.
#[derive(Debug, Clone)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
    /// Raw option bytes (multiple of 4, at most 40).
    pub options: Vec<u8>,
}

impl Tcp {
    pub fn new(sport: u16, dport: u16) -> Self {
        Tcp {
            sport,
            dport,
            seq: 1000,
            syn: false,
            ack: true,
            fin: false,
            rst: false,
            psh: false,
            options: Vec::new(),
        }
    }

    fn header(&self) -> TcpHeader {
        let mut h = TcpHeader::new(self.sport, self.dport, self.seq, 65000);
        h.syn = self.syn;
        h.ack = self.ack;
        h.acknowledgment_number = if self.ack { 777 } else { 0 };
        h.fin = self.fin;
        h.rst = self.rst;
        h.psh = self.psh;
        h.set_options_raw(&self.options).unwrap();
        h
    }
}

/// Some real TCP options: MSS 1460, SACK permitted, timestamps, NOP, window scale 7.
pub const SYN_OPTIONS: [u8; 20] = [
    2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 1, 3, 3, 7,
];

pub fn tcp_frame(ip: &Ip, tcp: &Tcp, payload: &[u8]) -> Vec<u8> {
    tcp_frame_macs(ip, tcp, payload, (MAC_CLIENT, MAC_GATEWAY))
}

pub fn tcp_frame_macs(ip: &Ip, tcp: &Tcp, payload: &[u8], macs: ([u8; 6], [u8; 6])) -> Vec<u8> {
    let builder = ip.builder(macs).tcp_header(tcp.header());
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, payload).unwrap();
    out
}

/// A UDP frame; `checksum: false` sends it without a checksum (field 0).
pub fn udp_frame(ip: &Ip, sport: u16, dport: u16, payload: &[u8], checksum: bool) -> Vec<u8> {
    udp_frame_macs(
        ip,
        sport,
        dport,
        payload,
        checksum,
        (MAC_CLIENT, MAC_GATEWAY),
    )
}

pub fn udp_frame_macs(
    ip: &Ip,
    sport: u16,
    dport: u16,
    payload: &[u8],
    checksum: bool,
    macs: ([u8; 6], [u8; 6]),
) -> Vec<u8> {
    let builder = ip.builder(macs).udp(sport, dport);
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, payload).unwrap();
    if !checksum {
        let at = ETH + 20 + ip.options.len() + 6;
        out[at..at + 2].copy_from_slice(&[0, 0]);
    }
    out
}

pub fn icmp_frame(ip: &Ip, icmp_type: Icmpv4Type, payload: &[u8]) -> Vec<u8> {
    icmp_frame_macs(ip, icmp_type, payload, (MAC_CLIENT, MAC_GATEWAY))
}

pub fn icmp_frame_macs(
    ip: &Ip,
    icmp_type: Icmpv4Type,
    payload: &[u8],
    macs: ([u8; 6], [u8; 6]),
) -> Vec<u8> {
    let builder = ip.builder(macs).icmpv4(icmp_type);
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, payload).unwrap();
    out
}

/// A frame whose IP payload is `payload` as is, under protocol `proto` (for malformed L4).
pub fn raw_ip_frame(ip: &Ip, proto: u8, payload: &[u8]) -> Vec<u8> {
    let builder = ip.builder((MAC_CLIENT, MAC_GATEWAY));
    let mut out = Vec::new();
    builder.write(&mut out, IpNumber(proto), payload).unwrap();
    out
}

/// The IP packet of an Ethernet frame (what an ICMP error quotes).
pub fn ip_packet(frame: &[u8]) -> &[u8] {
    &frame[ETH..]
}

/// What etherparse saw in a frame whose checksums all verified.
#[derive(Debug)]
pub struct Checked {
    pub ip: Ipv4Header,
    pub transport: TransportHeader,
    pub payload: Vec<u8>,
}

/// Parses `frame` with etherparse and asserts that the IPv4 header checksum and the TCP, UDP
/// (unless 0) or ICMP checksum verify.
pub fn check(frame: &[u8]) -> Checked {
    let headers = PacketHeaders::from_ethernet_slice(frame).expect("etherparse parses the frame");
    let ip = match headers.net {
        Some(NetHeaders::Ipv4(ip, _)) => ip,
        other => panic!("not IPv4: {other:?}"),
    };
    assert_eq!(
        ip.header_checksum,
        ip.calc_header_checksum(),
        "IPv4 header checksum"
    );
    let payload: Vec<u8> = match headers.payload {
        PayloadSlice::Tcp(p) | PayloadSlice::Udp(p) | PayloadSlice::Icmpv4(p) => p.to_vec(),
        other => panic!("unexpected payload {other:?}"),
    };
    let transport = headers.transport.expect("a transport header");
    match &transport {
        TransportHeader::Tcp(tcp) => assert_eq!(
            tcp.checksum,
            tcp.calc_checksum_ipv4(&ip, &payload).unwrap(),
            "TCP checksum"
        ),
        TransportHeader::Udp(udp) => {
            if udp.checksum != 0 {
                assert_eq!(
                    udp.checksum,
                    udp.calc_checksum_ipv4(&ip, &payload).unwrap(),
                    "UDP checksum"
                );
            }
        }
        TransportHeader::Icmpv4(icmp) => assert_eq!(
            icmp.checksum,
            icmp.icmp_type.calc_checksum(&payload),
            "ICMP checksum"
        ),
        other => panic!("unexpected transport {other:?}"),
    }
    Checked {
        ip,
        transport,
        payload,
    }
}

/// Asserts that a quoted IP packet (inside an ICMP error) has a valid header checksum, and
/// returns the header and the quoted L4 bytes.
pub fn check_quoted(quoted: &[u8]) -> (Ipv4Header, &[u8]) {
    let (ip, rest) = Ipv4Header::from_slice(quoted).expect("quoted IPv4 header");
    assert_eq!(
        ip.header_checksum,
        ip.calc_header_checksum(),
        "quoted IP checksum"
    );
    (ip, rest)
}

/// Verifies the checksum of a complete quoted UDP datagram.
pub fn check_quoted_udp(ip: &Ipv4Header, l4: &[u8]) -> UdpHeader {
    let (udp, payload) = UdpHeader::from_slice(l4).unwrap();
    if udp.checksum != 0 {
        assert_eq!(
            udp.checksum,
            udp.calc_checksum_ipv4(ip, payload).unwrap(),
            "quoted UDP"
        );
    }
    udp
}

/// Verifies the checksum of a complete quoted TCP segment.
pub fn check_quoted_tcp(ip: &Ipv4Header, l4: &[u8]) -> TcpHeader {
    let (tcp, payload) = TcpHeader::from_slice(l4).unwrap();
    assert_eq!(
        tcp.checksum,
        tcp.calc_checksum_ipv4(ip, payload).unwrap(),
        "quoted TCP"
    );
    tcp
}

pub fn icmp_header(checked: &Checked) -> &Icmpv4Header {
    match &checked.transport {
        TransportHeader::Icmpv4(h) => h,
        other => panic!("not ICMP: {other:?}"),
    }
}
