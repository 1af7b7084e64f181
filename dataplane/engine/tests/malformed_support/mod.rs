//! The malformed-packet corpus: named hostile and edge-case frames, each with the verdict and
//! the one drop counter the dataplane must give it.
//!
//! Frames are built with etherparse (an independent library) and then damaged by hand. The
//! corpus is parameterised by a [`Lab`] (MACs, addresses and one live session), so the same
//! cases run against the engine directly (`dataplane/engine/tests/malformed_corpus.rs`) and
//! through `fnatd replay` (`tests/tests/robust_corpus.rs`, which includes this file by path).
//! Only std, etherparse and `fnat_engine::DropReason` may be used here.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use etherparse::icmpv4::{DestUnreachableHeader, TimeExceededCode};
use etherparse::{Icmpv4Type, PacketBuilder};
use fnat_engine::DropReason;

/// Which port a frame arrives on: `Wan` (port 0) faces the clients, `Lan` (port 1) the real
/// servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Wan,
    Lan,
}

impl Side {
    /// The engine's port index.
    pub fn port(self) -> u16 {
        match self {
            Side::Wan => 0,
            Side::Lan => 1,
        }
    }
}

/// What must happen to a case's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Dropped and counted under exactly this reason.
    Drop(DropReason),
    /// Forwarded (rewritten) out of this side.
    Forward(Side),
}

/// One corpus entry.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub side: Side,
    pub frame: Vec<u8>,
    pub expect: Expect,
}

/// The topology and the established session the corpus is built against.
#[derive(Debug, Clone)]
pub struct Lab {
    pub wan_mac: [u8; 6],
    pub lan_mac: [u8; 6],
    /// The clients' next hop on the wan side.
    pub router_mac: [u8; 6],
    /// The MAC of the session's real server.
    pub rs_mac: [u8; 6],
    pub vip: Ipv4Addr,
    /// The TCP service's port on the VIP.
    pub vport: u16,
    /// A UDP service's port on the VIP.
    pub udp_vport: u16,
    /// An address a port owns that is neither a VIP nor a local address.
    pub own_ip: Ipv4Addr,
    pub lip: Ipv4Addr,
    /// The live session's local port.
    pub lport: u16,
    /// A local port this worker owns that no session holds.
    pub free_lport: u16,
    pub rs: Ipv4Addr,
    pub rport: u16,
    pub client: Ipv4Addr,
    pub cport: u16,
    /// An address nothing in the lab owns.
    pub stranger: Ipv4Addr,
}

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

/// Offsets in an untagged Ethernet + IPv4 frame.
pub const IP: usize = 14;
pub const IP_TOTAL_LEN: usize = IP + 2;
pub const IP_FRAG: usize = IP + 6;
pub const IP_TTL: usize = IP + 8;
pub const IP_PROTO: usize = IP + 9;
pub const L4: usize = IP + 20;

fn set_u16(frame: &mut [u8], at: usize, v: u16) {
    frame[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// `frame` with `f` applied.
fn with(mut frame: Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    f(&mut frame);
    frame
}

/// Recomputes the IPv4 header checksum after a deliberate edit (so that only the edit is wrong).
pub fn fix_ip_checksum(frame: &mut [u8]) {
    let ihl = usize::from(frame[IP] & 0x0F) * 4;
    if frame.len() < IP + ihl || ihl < 20 {
        return;
    }
    frame[IP + 10] = 0;
    frame[IP + 11] = 0;
    let mut sum = 0u32;
    for c in frame[IP..IP + ihl].chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    set_u16(frame, IP + 10, !(sum as u16));
}

impl Lab {
    fn macs(&self, side: Side) -> ([u8; 6], [u8; 6]) {
        match side {
            Side::Wan => (self.router_mac, self.wan_mac),
            Side::Lan => (self.rs_mac, self.lan_mac),
        }
    }

    /// A well-formed TCP frame arriving on `side`; `flags` is a mask of FIN SYN ….
    pub fn tcp(
        &self,
        side: Side,
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        flags: u8,
        ttl: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let (smac, dmac) = self.macs(side);
        let mut b = PacketBuilder::ethernet2(smac, dmac)
            .ipv4(src.0.octets(), dst.0.octets(), ttl)
            .tcp(src.1, dst.1, 1000, 64240);
        if flags & FIN != 0 {
            b = b.fin();
        }
        if flags & SYN != 0 {
            b = b.syn();
        }
        if flags & RST != 0 {
            b = b.rst();
        }
        if flags & PSH != 0 {
            b = b.psh();
        }
        if flags & ACK != 0 {
            b = b.ack(2000);
        }
        if flags & URG != 0 {
            b = b.urg(0);
        }
        if flags & ECE != 0 {
            b = b.ece();
        }
        if flags & CWR != 0 {
            b = b.cwr();
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).expect("etherparse writes tcp");
        out
    }

    pub fn udp(
        &self,
        side: Side,
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        payload: &[u8],
    ) -> Vec<u8> {
        let (smac, dmac) = self.macs(side);
        let mut out = Vec::new();
        PacketBuilder::ethernet2(smac, dmac)
            .ipv4(src.0.octets(), dst.0.octets(), 64)
            .udp(src.1, dst.1)
            .write(&mut out, payload)
            .expect("etherparse writes udp");
        out
    }

    pub fn icmp(
        &self,
        side: Side,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        icmp_type: Icmpv4Type,
        payload: &[u8],
    ) -> Vec<u8> {
        let (smac, dmac) = self.macs(side);
        let mut out = Vec::new();
        PacketBuilder::ethernet2(smac, dmac)
            .ipv4(src.octets(), dst.octets(), 64)
            .icmpv4(icmp_type)
            .write(&mut out, payload)
            .expect("etherparse writes icmp");
        out
    }

    /// A new client's SYN to the TCP service (a fresh session).
    pub fn new_syn(&self, cport: u16) -> Vec<u8> {
        self.tcp(
            Side::Wan,
            (self.client, cport),
            (self.vip, self.vport),
            SYN,
            64,
            b"",
        )
    }

    /// A data segment of the live session from the client.
    pub fn client_data(&self, payload: &[u8]) -> Vec<u8> {
        self.client_segment(ACK | PSH, 64, payload)
    }

    pub fn client_segment(&self, flags: u8, ttl: u8, payload: &[u8]) -> Vec<u8> {
        self.tcp(
            Side::Wan,
            (self.client, self.cport),
            (self.vip, self.vport),
            flags,
            ttl,
            payload,
        )
    }

    /// A data segment of the live session from the real server to LIP:lport.
    pub fn rs_data(&self, payload: &[u8]) -> Vec<u8> {
        self.rs_segment(ACK | PSH, 64, payload)
    }

    pub fn rs_segment(&self, flags: u8, ttl: u8, payload: &[u8]) -> Vec<u8> {
        self.tcp(
            Side::Lan,
            (self.rs, self.rport),
            (self.lip, self.lport),
            flags,
            ttl,
            payload,
        )
    }

    /// An IP packet (no Ethernet header) as a quote inside an ICMP error.
    fn quote_tcp(&self, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4(src.0.octets(), dst.0.octets(), 63)
            .tcp(src.1, dst.1, 1000, 64240)
            .ack(2000)
            .write(&mut out, payload)
            .expect("etherparse writes the quote");
        out
    }

    /// What the balancer sent the real server for the live session (LIP:lport → RS:rport),
    /// cut to the 28 bytes most routers quote (its total length still says more).
    pub fn quote_to_rs(&self) -> Vec<u8> {
        let mut q = self.quote_tcp(
            (self.lip, self.lport),
            (self.rs, self.rport),
            b"some data the rs never got",
        );
        q.truncate(28);
        q
    }

    /// What the balancer sent the client for the live session (VIP:vport → client:cport).
    pub fn quote_to_client(&self) -> Vec<u8> {
        let mut q = self.quote_tcp(
            (self.vip, self.vport),
            (self.client, self.cport),
            b"reply data",
        );
        q.truncate(28);
        q
    }

    /// An ICMP port-unreachable from the real server to the LIP quoting `quote`.
    pub fn rs_unreachable(&self, quote: &[u8]) -> Vec<u8> {
        self.icmp(
            Side::Lan,
            self.rs,
            self.lip,
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
            quote,
        )
    }
}

/// Every case of the corpus, in a fixed order. Cases that create sessions use client ports
/// from 61000 up, so they never touch the live one.
pub fn cases(lab: &Lab) -> Vec<Case> {
    use DropReason::*;
    use Expect::{Drop as D, Forward as F};
    use Side::{Lan, Wan};

    let mut out = Vec::new();
    let mut add = |name: &str, side: Side, frame: Vec<u8>, expect: Expect| {
        out.push(Case {
            name: name.to_string(),
            side,
            frame,
            expect,
        })
    };
    let l = lab;
    let syn = l.new_syn(60000);
    let data = l.client_data(b"hello");
    let vip_tcp = (l.vip, l.vport);

    // ---- Ethernet ----
    add("eth/zero_length", Wan, Vec::new(), D(Truncated));
    add("eth/1_byte", Wan, vec![0x02], D(Truncated));
    add("eth/13_bytes", Wan, syn[..13].to_vec(), D(Truncated));
    add("eth/header_only", Wan, syn[..14].to_vec(), D(Truncated));
    add(
        "eth/ipv6_ethertype",
        Wan,
        with(syn.clone(), |f| set_u16(f, 12, 0x86DD)),
        D(UnsupportedEtherType),
    );
    let mut arp = syn[..12].to_vec();
    arp.extend_from_slice(&[0x08, 0x06, 0, 6, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&l.router_mac);
    arp.extend_from_slice(&[198, 18, 0, 254]);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&l.vip.octets());
    // ARP other than IPv4 over Ethernet (hardware type 6, IEEE 802) is not handled: counted
    // as an unsupported EtherType. (Valid ARP is answered: see tests/neigh_arp.rs.)
    add(
        "eth/arp_request_not_ethernet",
        Wan,
        arp,
        D(UnsupportedEtherType),
    );
    let vlan = |tpid: u16| {
        let mut f = syn[..12].to_vec();
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&[0x00, 0x64]);
        f.extend_from_slice(&syn[12..]);
        f
    };
    add(
        "eth/vlan_8021q_syn",
        Wan,
        vlan(0x8100),
        D(UnsupportedEtherType),
    );
    add(
        "eth/qinq_88a8_syn",
        Wan,
        vlan(0x88A8),
        D(UnsupportedEtherType),
    );
    add(
        "eth/8023_length_field",
        Wan,
        with(syn.clone(), |f| set_u16(f, 12, 0x0040)),
        D(UnsupportedEtherType),
    );
    add(
        "eth/wrong_dst_mac",
        Wan,
        with(syn.clone(), |f| f[..6].copy_from_slice(&[2, 9, 9, 9, 9, 9])),
        D(NotForUs),
    );
    add(
        "eth/broadcast_dst_mac",
        Wan,
        with(syn.clone(), |f| f[..6].copy_from_slice(&[0xFF; 6])),
        D(NotForUs),
    );
    add(
        "eth/lan_mac_arriving_on_wan",
        Wan,
        with(data.clone(), |f| f[..6].copy_from_slice(&l.lan_mac)),
        D(NotForUs),
    );

    // ---- IPv4 header ----
    add(
        "ip/truncated_19_bytes",
        Wan,
        syn[..IP + 19].to_vec(),
        D(Truncated),
    );
    for (name, ver) in [
        ("ip/version_6", 6u8),
        ("ip/version_0", 0),
        ("ip/version_15", 15),
    ] {
        add(
            name,
            Wan,
            with(syn.clone(), |f| f[IP] = (ver << 4) | 5),
            D(BadIpHeader),
        );
    }
    add(
        "ip/ihl_0",
        Wan,
        with(syn.clone(), |f| f[IP] = 0x40),
        D(BadIpHeader),
    );
    add(
        "ip/ihl_4",
        Wan,
        with(syn.clone(), |f| f[IP] = 0x44),
        D(BadIpHeader),
    );
    add(
        "ip/ihl_15_beyond_frame",
        Wan,
        with(syn.clone(), |f| {
            f[IP] = 0x4F;
            f.truncate(IP + 40);
        }),
        D(Truncated),
    );
    add(
        "ip/ihl_15_beyond_total_length",
        Wan,
        with(syn.clone(), |f| {
            f[IP] = 0x4F;
            f.resize(IP + 80, 0);
            set_u16(f, IP_TOTAL_LEN, 40);
        }),
        D(BadIpHeader),
    );
    add(
        "ip/total_length_beyond_frame",
        Wan,
        with(syn.clone(), |f| set_u16(f, IP_TOTAL_LEN, 1500)),
        D(BadIpHeader),
    );
    add(
        "ip/total_length_65535",
        Wan,
        with(syn.clone(), |f| set_u16(f, IP_TOTAL_LEN, 0xFFFF)),
        D(BadIpHeader),
    );
    add(
        "ip/total_length_below_header",
        Wan,
        with(syn.clone(), |f| set_u16(f, IP_TOTAL_LEN, 19)),
        D(BadIpHeader),
    );
    add(
        "ip/total_length_zero",
        Wan,
        with(syn.clone(), |f| set_u16(f, IP_TOTAL_LEN, 0)),
        D(BadIpHeader),
    );
    add(
        "ip/total_length_equals_header",
        Wan,
        with(syn.clone(), |f| set_u16(f, IP_TOTAL_LEN, 20)),
        D(Truncated),
    );
    add(
        "ip/total_length_cuts_tcp_header",
        Wan,
        with(syn.clone(), |f| set_u16(f, IP_TOTAL_LEN, 30)),
        D(Truncated),
    );
    add(
        "ip/total_length_shorter_than_frame_padding",
        Wan,
        with(l.new_syn(61000), |f| f.extend_from_slice(&[0xEE; 30])),
        F(Lan),
    );
    for (name, proto) in [
        ("ip/protocol_gre", 47u8),
        ("ip/protocol_sctp", 132),
        ("ip/protocol_ipv6_in_ipv4", 41),
    ] {
        add(
            name,
            Wan,
            with(syn.clone(), |f| {
                f[IP_PROTO] = proto;
                fix_ip_checksum(f);
            }),
            D(UnsupportedProtocol),
        );
    }
    add(
        "ip/dst_not_ours",
        Wan,
        l.tcp(Wan, (l.client, 60001), (l.stranger, 80), SYN, 64, b""),
        D(NotForUs),
    );
    add(
        "ip/options_syn_forwarded",
        Wan,
        with_ip_options(&l.new_syn(61001)),
        F(Lan),
    );
    add(
        "ip/options_on_session_data_forwarded",
        Wan,
        with_ip_options(&l.client_data(b"opts")),
        F(Lan),
    );

    // ---- Fragments ----
    let frag = |frame: &[u8], mf: bool, offset8: u16| {
        with(frame.to_vec(), |f| {
            set_u16(f, IP_FRAG, if mf { 0x2000 } else { 0 } | offset8);
            fix_ip_checksum(f);
        })
    };
    let big = l.client_data(&[0x55; 400]);
    add(
        "frag/first_of_session",
        Wan,
        frag(&big, true, 0),
        D(Fragment),
    );
    add(
        "frag/middle_of_session",
        Wan,
        frag(&big, true, 50),
        D(Fragment),
    );
    add(
        "frag/last_of_session",
        Wan,
        frag(&big, false, 100),
        D(Fragment),
    );
    add(
        "frag/last_1_byte_no_l4",
        Wan,
        with(frag(&syn, false, 3), |f| {
            set_u16(f, IP_TOTAL_LEN, 21);
            f.truncate(IP + 21);
        }),
        D(Fragment),
    );
    add(
        "frag/first_syn_new_flow",
        Wan,
        frag(&l.new_syn(60002), true, 0),
        D(Fragment),
    );
    add(
        "frag/udp_first",
        Wan,
        frag(
            &l.udp(Wan, (l.client, 60003), (l.vip, l.udp_vport), &[1; 100]),
            true,
            0,
        ),
        D(Fragment),
    );
    add(
        "frag/dont_fragment_bit_is_no_fragment",
        Wan,
        with(l.client_data(b"df"), |f| {
            set_u16(f, IP_FRAG, 0x4000);
            fix_ip_checksum(f);
        }),
        F(Lan),
    );

    // ---- TTL ----
    add(
        "ttl/0_new_syn",
        Wan,
        l.tcp(Wan, (l.client, 60004), vip_tcp, SYN, 0, b""),
        D(TtlExpired),
    );
    add(
        "ttl/1_new_syn",
        Wan,
        l.tcp(Wan, (l.client, 60005), vip_tcp, SYN, 1, b""),
        D(TtlExpired),
    );
    add(
        "ttl/1_session_data",
        Wan,
        l.client_segment(ACK | PSH, 1, b"x"),
        D(TtlExpired),
    );
    add(
        "ttl/0_session_reply",
        Lan,
        l.rs_segment(ACK | PSH, 0, b"x"),
        D(TtlExpired),
    );
    add(
        "ttl/1_session_reply",
        Lan,
        l.rs_segment(ACK | PSH, 1, b"x"),
        D(TtlExpired),
    );
    add(
        "ttl/2_session_data_forwarded",
        Wan,
        l.client_segment(ACK | PSH, 2, b"x"),
        F(Lan),
    );

    // ---- TCP ----
    let cut_tcp = |len: u16| {
        with(syn.clone(), |f| {
            set_u16(f, IP_TOTAL_LEN, 20 + len);
            f.truncate(L4 + usize::from(len));
            fix_ip_checksum(f);
        })
    };
    add("tcp/truncated_0_bytes", Wan, cut_tcp(0), D(Truncated));
    add("tcp/truncated_10_bytes", Wan, cut_tcp(10), D(Truncated));
    add("tcp/truncated_19_bytes", Wan, cut_tcp(19), D(Truncated));
    for (name, offset) in [
        ("tcp/data_offset_0", 0u8),
        ("tcp/data_offset_4", 4),
        ("tcp/data_offset_6_beyond_segment", 6),
        ("tcp/data_offset_15_beyond_segment", 15),
    ] {
        add(
            name,
            Wan,
            with(syn.clone(), |f| f[L4 + 12] = offset << 4),
            D(BadL4Header),
        );
    }
    add(
        "tcp/data_offset_4_on_session",
        Wan,
        with(data.clone(), |f| f[L4 + 12] = 4 << 4),
        D(BadL4Header),
    );
    for (name, flags) in [
        ("tcp/syn_fin", SYN | FIN),
        ("tcp/syn_rst", SYN | RST),
        ("tcp/null_flags", 0),
        ("tcp/ece_cwr_only", ECE | CWR),
        ("tcp/all_flags_xmas", 0xFF),
    ] {
        add(
            name,
            Wan,
            l.tcp(Wan, (l.client, 60010), vip_tcp, flags, 64, b""),
            D(BadTcpFlags),
        );
    }
    add(
        "tcp/syn_fin_on_session",
        Wan,
        l.client_segment(SYN | FIN, 64, b""),
        D(BadTcpFlags),
    );
    add(
        "tcp/null_flags_on_session",
        Wan,
        l.client_segment(0, 64, b"x"),
        D(BadTcpFlags),
    );
    add(
        "tcp/syn_rst_on_session_reply",
        Lan,
        l.rs_segment(SYN | RST, 64, b""),
        D(BadTcpFlags),
    );
    for (name, flags) in [
        ("tcp/fin_psh_urg_new_flow", FIN | PSH | URG),
        ("tcp/ack_new_flow", ACK),
        ("tcp/rst_new_flow", RST),
        ("tcp/syn_ack_new_flow", SYN | ACK),
    ] {
        add(
            name,
            Wan,
            l.tcp(Wan, (l.client, 60011), vip_tcp, flags, 64, b""),
            D(NoSession),
        );
    }
    add(
        "tcp/vip_port_without_service",
        Wan,
        l.tcp(Wan, (l.client, 60012), (l.vip, 81), SYN, 64, b""),
        D(NoService),
    );
    add(
        "tcp/vip_port_0",
        Wan,
        l.tcp(Wan, (l.client, 60013), (l.vip, 0), SYN, 64, b""),
        D(NoService),
    );
    add(
        "tcp/port_address_not_a_vip",
        Wan,
        l.tcp(Wan, (l.client, 60014), (l.own_ip, 80), SYN, 64, b""),
        D(NoService),
    );
    add(
        "tcp/reply_to_free_lport",
        Lan,
        l.tcp(
            Lan,
            (l.rs, l.rport),
            (l.lip, l.free_lport),
            ACK | PSH,
            64,
            b"x",
        ),
        D(NoSession),
    );
    add(
        "tcp/reply_to_lport_outside_range",
        Lan,
        l.tcp(Lan, (l.rs, l.rport), (l.lip, 80), SYN | ACK, 64, b""),
        D(NoSession),
    );
    add(
        "tcp/reply_from_wrong_rs_port",
        Lan,
        l.tcp(Lan, (l.rs, 9999), (l.lip, l.lport), ACK, 64, b""),
        D(NoSession),
    );
    add(
        "tcp/syn_to_lip",
        Lan,
        l.tcp(Lan, (l.rs, 40000), (l.lip, l.lport), SYN, 64, b""),
        D(NoSession),
    );
    add(
        "tcp/jumbo_9000_session_data",
        Wan,
        l.client_data(&vec![0x4A; 9000 - 54]),
        F(Lan),
    );

    // ---- UDP ----
    let udp = l.udp(Wan, (l.client, 60020), (l.vip, l.udp_vport), b"query");
    let cut_udp = |len: u16| {
        with(udp.clone(), |f| {
            set_u16(f, IP_TOTAL_LEN, 20 + len);
            f.truncate(L4 + usize::from(len));
            fix_ip_checksum(f);
        })
    };
    add("udp/truncated_4_bytes", Wan, cut_udp(4), D(Truncated));
    add("udp/truncated_7_bytes", Wan, cut_udp(7), D(Truncated));
    for (name, len) in [
        ("udp/length_0", 0u16),
        ("udp/length_7", 7),
        ("udp/length_beyond_payload", 200),
    ] {
        add(
            name,
            Wan,
            with(udp.clone(), |f| set_u16(f, L4 + 4, len)),
            D(BadL4Header),
        );
    }
    add(
        "udp/length_shorter_than_payload",
        Wan,
        with(
            l.udp(
                Wan,
                (l.client, 61002),
                (l.vip, l.udp_vport),
                b"query+trailer",
            ),
            |f| {
                set_u16(f, L4 + 4, 8 + 5);
                set_u16(f, L4 + 6, 0); // no checksum: the trailer would make it wrong
            },
        ),
        F(Lan),
    );
    add(
        "udp/vip_port_without_service",
        Wan,
        l.udp(Wan, (l.client, 60021), (l.vip, l.udp_vport + 1), b"q"),
        D(NoService),
    );
    add(
        "udp/reply_to_free_lport",
        Lan,
        l.udp(Lan, (l.rs, 53), (l.lip, l.free_lport), b"answer"),
        D(NoSession),
    );

    // ---- ICMP ----
    let echo = l.icmp(
        Wan,
        l.client,
        l.vip,
        Icmpv4Type::EchoRequest(etherparse::IcmpEchoHeader { id: 7, seq: 1 }),
        b"ping",
    );
    add(
        "icmp/truncated_4_bytes",
        Wan,
        with(echo.clone(), |f| {
            set_u16(f, IP_TOTAL_LEN, 24);
            f.truncate(L4 + 4);
            fix_ip_checksum(f);
        }),
        D(Truncated),
    );
    add(
        "icmp/echo_request_to_vip_answered",
        Wan,
        echo.clone(),
        F(Wan),
    );
    add(
        "icmp/echo_request_code_1",
        Wan,
        with(echo.clone(), |f| f[L4 + 1] = 1),
        D(IcmpUnsupported),
    );
    add(
        "icmp/echo_reply_unsolicited",
        Wan,
        with(echo.clone(), |f| f[L4] = 0),
        D(IcmpUnsupported),
    );
    add(
        "icmp/timestamp_request",
        Wan,
        with(echo.clone(), |f| f[L4] = 13),
        D(IcmpUnsupported),
    );
    add(
        "icmp/redirect",
        Wan,
        with(echo.clone(), |f| f[L4] = 5),
        D(IcmpUnsupported),
    );
    add(
        "icmp/source_quench",
        Wan,
        with(echo.clone(), |f| f[L4] = 4),
        D(IcmpUnsupported),
    );
    add(
        "icmp/echo_to_stranger",
        Wan,
        with(echo.clone(), |f| {
            f[IP + 16..IP + 20].copy_from_slice(&l.stranger.octets());
            fix_ip_checksum(f);
        }),
        D(NotForUs),
    );

    // ---- ICMP errors and what they quote ----
    let quote = l.quote_to_rs();
    add(
        "icmp_err/empty_quote",
        Lan,
        l.rs_unreachable(&[]),
        D(IcmpNoSession),
    );
    add(
        "icmp_err/quote_10_bytes",
        Lan,
        l.rs_unreachable(&quote[..10]),
        D(IcmpNoSession),
    );
    add(
        "icmp_err/quote_ip_header_only",
        Lan,
        l.rs_unreachable(&quote[..20]),
        D(IcmpNoSession),
    );
    add(
        "icmp_err/quote_ip_plus_4_bytes",
        Lan,
        l.rs_unreachable(&quote[..24]),
        D(IcmpNoSession),
    );
    add(
        "icmp_err/quote_ihl_15_beyond_quote",
        Lan,
        l.rs_unreachable(&with(quote.clone(), |q| q[0] = 0x4F)),
        D(IcmpNoSession),
    );
    add(
        "icmp_err/quote_ihl_4",
        Lan,
        l.rs_unreachable(&with(quote.clone(), |q| q[0] = 0x44)),
        D(IcmpNoSession),
    );
    add(
        "icmp_err/quote_version_6",
        Lan,
        l.rs_unreachable(&with(quote.clone(), |q| q[0] = 0x65)),
        D(IcmpNoSession),
    );
    add(
        "icmp_err/quote_total_length_below_header",
        Lan,
        l.rs_unreachable(&with(quote.clone(), |q| set_u16(q, 2, 10))),
        D(IcmpNoSession),
    );
    add(
        "icmp_err/quote_non_first_fragment",
        Lan,
        l.rs_unreachable(&with(quote.clone(), |q| set_u16(q, 6, 0x2000 | 20))),
        D(IcmpNoSession),
    );
    add(
        "icmp_err/quote_gre",
        Lan,
        l.rs_unreachable(&with(quote.clone(), |q| q[9] = 47)),
        D(IcmpNoSession),
    );
    add(
        "icmp_err/quote_icmp_echo",
        Lan,
        l.rs_unreachable(&with(quote.clone(), |q| {
            q[9] = 1;
            q[20] = 8;
        })),
        D(IcmpNoSession),
    );
    add(
        "icmp_err/quote_unknown_tcp_flow",
        Lan,
        l.rs_unreachable(&with(quote.clone(), |q| set_u16(q, 20, l.free_lport))),
        D(IcmpNoSession),
    );
    add(
        "icmp_err/quote_unknown_udp_flow",
        Lan,
        l.rs_unreachable(&with(quote.clone(), |q| q[9] = 17)),
        D(IcmpNoSession),
    );
    add(
        "icmp_err/outer_total_length_cuts_quote",
        Lan,
        with(l.rs_unreachable(&quote), |f| {
            set_u16(f, IP_TOTAL_LEN, 20 + 8 + 12);
            fix_ip_checksum(f);
        }),
        D(IcmpNoSession),
    );
    add(
        "icmp_err/quote_to_rs_about_client_side",
        Wan,
        l.icmp(
            Wan,
            l.client,
            l.vip,
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
            &quote,
        ),
        D(IcmpNoSession),
    );
    add(
        "icmp_err/session_quote_ttl_1",
        Lan,
        with(l.rs_unreachable(&quote), |f| {
            f[IP_TTL] = 1;
            fix_ip_checksum(f);
        }),
        D(TtlExpired),
    );
    add(
        "icmp_err/session_unreachable_from_rs_translated",
        Lan,
        l.rs_unreachable(&quote),
        F(Wan),
    );
    add(
        "icmp_err/session_time_exceeded_from_client_side_translated",
        Wan,
        l.icmp(
            Wan,
            Ipv4Addr::new(192, 0, 2, 1),
            l.vip,
            Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit),
            &l.quote_to_client(),
        ),
        F(Lan),
    );
    out
}

/// `frame` (untagged IPv4) with 4 bytes of IP options (NOP NOP NOP EOL) inserted; lengths and
/// the IP header checksum fixed. L4 checksums do not cover IP options, so they stay right.
pub fn with_ip_options(frame: &[u8]) -> Vec<u8> {
    let mut f = frame[..L4].to_vec();
    f.extend_from_slice(&[1, 1, 1, 0]);
    f.extend_from_slice(&frame[L4..]);
    f[IP] = 0x46;
    let total = u16::from_be_bytes([f[IP_TOTAL_LEN], f[IP_TOTAL_LEN + 1]]) + 4;
    set_u16(&mut f, IP_TOTAL_LEN, total);
    fix_ip_checksum(&mut f);
    f
}

/// The drop reasons the corpus must exercise at the engine level.
pub const ENGINE_REASONS: &[DropReason] = &[
    DropReason::Truncated,
    DropReason::BadIpHeader,
    DropReason::BadL4Header,
    DropReason::BadTcpFlags,
    DropReason::UnsupportedEtherType,
    DropReason::UnsupportedProtocol,
    DropReason::NotForUs,
    DropReason::Fragment,
    DropReason::TtlExpired,
    DropReason::NoService,
    DropReason::NoSession,
    DropReason::IcmpUnsupported,
    DropReason::IcmpNoSession,
];
