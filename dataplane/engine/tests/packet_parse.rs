//! Parser: golden frames from etherparse, and every malformed case with its exact drop reason.

mod packet_support;

use std::net::Ipv4Addr;

use etherparse::{IcmpEchoHeader, Icmpv4Type};
use fnat_engine::packet::ether::ethertype;
use fnat_engine::packet::ipv4::parse_ipv4;
use fnat_engine::packet::{parse, FragmentKind, TcpFlags, Transport, Tuple};
use fnat_engine::DropReason;
use packet_support::*;

const C: [u8; 4] = [192, 0, 2, 10];
const VIP: [u8; 4] = [198, 51, 100, 1];

fn tcp_syn() -> Vec<u8> {
    let mut tcp = Tcp::new(40000, 80);
    tcp.syn = true;
    tcp.ack = false;
    tcp.options = SYN_OPTIONS.to_vec();
    tcp_frame(&Ip::new(C, VIP, 64), &tcp, b"")
}

/// IPv4 header offset helpers for corrupting built frames.
const IP_VER_IHL: usize = ETH;
const IP_TOTAL_LEN: usize = ETH + 2;
const IP_FRAG: usize = ETH + 6;
const IP_PROTO: usize = ETH + 9;
const L4: usize = ETH + 20;

fn set16(frame: &mut [u8], at: usize, v: u16) {
    frame[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

// ---- golden ----

#[test]
fn tcp_syn_with_options() {
    let frame = tcp_syn();
    let pkt = parse(&frame).unwrap();
    assert_eq!(pkt.ip.l3(), 14);
    assert_eq!(pkt.ip.l4, 34);
    assert_eq!(pkt.ip.end(), frame.len());
    assert_eq!(Ipv4Addr::from(pkt.ip.src), Ipv4Addr::from(C));
    assert_eq!(Ipv4Addr::from(pkt.ip.dst), Ipv4Addr::from(VIP));
    assert_eq!(pkt.ip.ttl, 64);
    assert_eq!(pkt.ip.proto, 6);
    assert!(!pkt.ip.has_options());
    assert!(!pkt.ip.is_fragment());
    assert_eq!(pkt.ip.l4_len(), 40);
    match pkt.transport {
        Transport::Tcp(t) => {
            assert_eq!((t.sport, t.dport), (40000, 80));
            assert_eq!(t.header_len, 40);
            assert!(t.flags.syn() && !t.flags.ack());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pkt.ports(), Some((40000, 80)));
    assert_eq!(pkt.tcp_flags(), Some(TcpFlags(TcpFlags::SYN)));
    let key = pkt.tuple().unwrap();
    assert_eq!(
        key,
        Tuple::new(6, sock(C, 40000), sock(VIP, 80)),
        "flow key of the SYN"
    );
    assert_eq!(key.reverse(), Tuple::new(6, sock(VIP, 80), sock(C, 40000)));
    assert_eq!(key.reverse().reverse(), key);
}

#[test]
fn ip_options_are_reported_and_skipped() {
    let mut ip = Ip::new(C, VIP, 9);
    ip.options = vec![1, 1, 1, 0, 0x94, 4, 0, 0]; // NOP NOP NOP EOL, Router Alert
    let frame = tcp_frame(&ip, &Tcp::new(1, 2), b"data");
    let pkt = parse(&frame).unwrap();
    assert!(pkt.ip.has_options());
    assert_eq!(pkt.ip.header_len(), 28);
    assert_eq!(pkt.ip.l4, 14 + 28);
    assert_eq!(pkt.ports(), Some((1, 2)));
    assert_eq!(pkt.ip.l4_len(), 20 + 4);
}

#[test]
fn udp_and_its_checksum_field() {
    let frame = udp_frame(&Ip::new(C, VIP, 64), 5353, 53, b"query", true);
    let pkt = parse(&frame).unwrap();
    match pkt.transport {
        Transport::Udp(u) => {
            assert_eq!((u.sport, u.dport, u.length), (5353, 53, 13));
            assert_ne!(u.checksum, 0);
        }
        other => panic!("{other:?}"),
    }
    let frame = udp_frame(&Ip::new(C, VIP, 64), 5353, 53, b"query", false);
    match parse(&frame).unwrap().transport {
        Transport::Udp(u) => assert_eq!(u.checksum, 0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ethernet_padding_is_not_payload() {
    // 14 + 20 + 8 + 2 = 44 bytes; the NIC pads to 60.
    let mut frame = udp_frame(&Ip::new(C, VIP, 64), 1, 2, b"hi", true);
    assert_eq!(frame.len(), 44);
    frame.resize(60, 0xAA);
    let pkt = parse(&frame).unwrap();
    assert_eq!(pkt.ip.end(), 44);
    assert_eq!(pkt.ip.total_len, 30);
    assert_eq!(pkt.ip.l4_len(), 10);
}

#[test]
fn icmp_echo_key_uses_the_identifier_as_both_ports() {
    let echo = Icmpv4Type::EchoRequest(IcmpEchoHeader { id: 0x4242, seq: 7 });
    let frame = icmp_frame(&Ip::new(C, VIP, 64), echo, b"ping");
    let pkt = parse(&frame).unwrap();
    let icmp = pkt.icmp().unwrap();
    assert_eq!(
        (icmp.icmp_type, icmp.code, icmp.id, icmp.seq),
        (8, 0, 0x4242, 7)
    );
    assert!(icmp.is_echo() && !icmp.is_error());
    assert_eq!(pkt.ports(), None);
    assert_eq!(
        pkt.tuple(),
        Some(Tuple::new(1, sock(C, 0x4242), sock(VIP, 0x4242)))
    );
    let unreachable =
        Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Port);
    let frame = icmp_frame(&Ip::new(C, VIP, 64), unreachable, &[0x45; 28]);
    let pkt = parse(&frame).unwrap();
    assert!(pkt.icmp().unwrap().is_error());
    assert_eq!(pkt.tuple(), None, "errors are keyed by what they quote");
}

#[test]
fn ethertype_is_exposed_for_arp() {
    let mut frame = tcp_syn();
    set16(&mut frame, 12, 0x0806);
    assert_eq!(ethertype(&frame), Ok(0x0806));
    assert_eq!(ethertype(&frame[..13]), Err(DropReason::Truncated));
}

// ---- malformed: one test per reason and case ----

fn assert_drop(frame: &[u8], reason: DropReason) {
    assert_eq!(parse(frame), Err(reason), "frame {frame:02x?}");
}

#[test]
fn truncated_ethernet() {
    let frame = tcp_syn();
    assert_drop(&[], DropReason::Truncated);
    assert_drop(&frame[..13], DropReason::Truncated);
}

#[test]
fn truncated_ip_header() {
    let frame = tcp_syn();
    assert_drop(&frame[..14], DropReason::Truncated);
    assert_drop(&frame[..14 + 19], DropReason::Truncated);
}

#[test]
fn truncated_ip_options() {
    // IHL 15 (60 bytes) but the frame holds only 40 bytes of IP.
    let mut frame = tcp_syn();
    frame[IP_VER_IHL] = 0x4F;
    frame.truncate(14 + 40);
    assert_drop(&frame, DropReason::Truncated);
}

#[test]
fn truncated_tcp_header() {
    let frame = raw_ip_frame(&Ip::new(C, VIP, 64), 6, &[0u8; 19]);
    assert_drop(&frame, DropReason::Truncated);
}

#[test]
fn truncated_udp_header() {
    let frame = raw_ip_frame(&Ip::new(C, VIP, 64), 17, &[0u8; 7]);
    assert_drop(&frame, DropReason::Truncated);
}

#[test]
fn truncated_icmp_header() {
    let frame = raw_ip_frame(&Ip::new(C, VIP, 64), 1, &[8, 0, 0, 0, 0, 0, 0]);
    assert_drop(&frame, DropReason::Truncated);
}

#[test]
fn l4_header_cut_by_total_length_not_frame_length() {
    // The TCP header is in the frame, but IP total length says only 10 bytes of it are the
    // packet's (the rest is padding): that is a truncated TCP header.
    let mut frame = tcp_syn();
    set16(&mut frame, IP_TOTAL_LEN, 30);
    assert_drop(&frame, DropReason::Truncated);
}

#[test]
fn bad_ip_version() {
    let mut frame = tcp_syn();
    frame[IP_VER_IHL] = 0x65;
    assert_drop(&frame, DropReason::BadIpHeader);
}

#[test]
fn bad_ihl_below_five() {
    let mut frame = tcp_syn();
    frame[IP_VER_IHL] = 0x44;
    assert_drop(&frame, DropReason::BadIpHeader);
}

#[test]
fn bad_total_length_beyond_frame() {
    let mut frame = tcp_syn();
    let len = (frame.len() - 14 + 1) as u16;
    set16(&mut frame, IP_TOTAL_LEN, len);
    assert_drop(&frame, DropReason::BadIpHeader);
}

#[test]
fn bad_total_length_below_header() {
    let mut frame = tcp_syn();
    set16(&mut frame, IP_TOTAL_LEN, 19);
    assert_drop(&frame, DropReason::BadIpHeader);
    let mut ip = Ip::new(C, VIP, 9);
    ip.options = vec![1; 8];
    let mut frame = tcp_frame(&ip, &Tcp::new(1, 2), b"");
    set16(&mut frame, IP_TOTAL_LEN, 24); // below the 28-byte header
    assert_drop(&frame, DropReason::BadIpHeader);
}

#[test]
fn bad_tcp_data_offset_below_five() {
    let mut frame = tcp_syn();
    frame[L4 + 12] = 4 << 4;
    assert_drop(&frame, DropReason::BadL4Header);
}

#[test]
fn bad_tcp_data_offset_beyond_segment() {
    // Data offset 15 (60 bytes) in a 40-byte segment.
    let mut frame = tcp_syn();
    frame[L4 + 12] = 15 << 4;
    assert_drop(&frame, DropReason::BadL4Header);
}

#[test]
fn bad_udp_length_below_header() {
    let mut frame = udp_frame(&Ip::new(C, VIP, 64), 1, 2, b"abc", true);
    set16(&mut frame, L4 + 4, 7);
    assert_drop(&frame, DropReason::BadL4Header);
}

#[test]
fn bad_udp_length_beyond_ip_payload() {
    let mut frame = udp_frame(&Ip::new(C, VIP, 64), 1, 2, b"abc", true);
    set16(&mut frame, L4 + 4, 12);
    assert_drop(&frame, DropReason::BadL4Header);
}

#[test]
fn udp_length_shorter_than_ip_payload_is_accepted() {
    let mut frame = udp_frame(&Ip::new(C, VIP, 64), 1, 2, b"abc", true);
    set16(&mut frame, L4 + 4, 8);
    assert!(parse(&frame).is_ok());
}

fn tcp_with(flags: impl Fn(&mut Tcp)) -> Vec<u8> {
    let mut tcp = Tcp::new(1, 2);
    tcp.ack = false;
    flags(&mut tcp);
    tcp_frame(&Ip::new(C, VIP, 64), &tcp, b"")
}

#[test]
fn bad_tcp_flags_syn_fin() {
    let frame = tcp_with(|t| {
        t.syn = true;
        t.fin = true;
    });
    assert_drop(&frame, DropReason::BadTcpFlags);
}

#[test]
fn bad_tcp_flags_syn_rst() {
    let frame = tcp_with(|t| {
        t.syn = true;
        t.rst = true;
    });
    assert_drop(&frame, DropReason::BadTcpFlags);
}

#[test]
fn bad_tcp_flags_none() {
    assert_drop(&tcp_with(|_| {}), DropReason::BadTcpFlags);
    let mut frame = tcp_with(|_| {});
    frame[L4 + 13] = 0xC0; // ECE + CWR only
    assert_drop(&frame, DropReason::BadTcpFlags);
}

#[test]
fn good_tcp_flags() {
    for (syn, ack, fin, rst, psh) in [
        (true, false, false, false, false),
        (true, true, false, false, false),
        (false, true, false, false, false),
        (false, true, true, false, false),
        (false, false, false, true, false),
        (false, true, false, true, false),
        (false, true, false, false, true),
    ] {
        let frame = tcp_with(|t| {
            t.syn = syn;
            t.ack = ack;
            t.fin = fin;
            t.rst = rst;
            t.psh = psh;
        });
        assert!(parse(&frame).is_ok(), "{syn} {ack} {fin} {rst} {psh}");
    }
}

#[test]
fn unsupported_ethertypes() {
    for ty in [0x8100u16, 0x0806, 0x86DD, 0x88A8] {
        let mut frame = tcp_syn();
        set16(&mut frame, 12, ty);
        assert_drop(&frame, DropReason::UnsupportedEtherType);
    }
    // An Ethernet header alone is enough to know the EtherType.
    let mut frame = tcp_syn();
    set16(&mut frame, 12, 0x0806);
    assert_drop(&frame[..14], DropReason::UnsupportedEtherType);
}

#[test]
fn unsupported_protocols() {
    for proto in [0u8, 2, 4, 41, 47, 50, 132, 255] {
        let frame = raw_ip_frame(&Ip::new(C, VIP, 64), proto, &[0u8; 40]);
        assert_drop(&frame, DropReason::UnsupportedProtocol);
    }
}

#[test]
fn fragments_are_reported() {
    // First fragment: MF set, offset 0.
    let mut first = tcp_syn();
    set16(&mut first, IP_FRAG, 0x2000);
    assert_drop(&first, DropReason::Fragment);
    assert_eq!(parse_ipv4(&first).unwrap().frag, FragmentKind::First);
    // Later fragment: offset 185 (1480 bytes), MF clear (last) or set (middle).
    for flags in [0x00B9u16, 0x20B9, 0x40B9] {
        let mut later = tcp_syn();
        set16(&mut later, IP_FRAG, flags);
        assert_drop(&later, DropReason::Fragment);
        let ip = parse_ipv4(&later).unwrap();
        assert_eq!(ip.frag, FragmentKind::Later);
        assert!(ip.is_fragment());
    }
    // DF alone is not a fragment.
    let mut whole = tcp_syn();
    set16(&mut whole, IP_FRAG, 0x4000);
    assert_eq!(parse_ipv4(&whole).unwrap().frag, FragmentKind::Unfragmented);
    assert!(parse(&whole).is_ok());
}

#[test]
fn a_later_fragment_without_l4_header_is_a_fragment_not_truncated() {
    let ip = Ip::new(C, VIP, 64);
    let mut frame = raw_ip_frame(&ip, 6, &[0xAB; 3]);
    set16(&mut frame, IP_FRAG, 0x0010);
    assert_drop(&frame, DropReason::Fragment);
}

#[test]
fn protocol_is_checked_before_fragment() {
    let mut frame = raw_ip_frame(&Ip::new(C, VIP, 64), 47, &[0; 8]);
    set16(&mut frame, IP_FRAG, 0x2000);
    assert_drop(&frame, DropReason::UnsupportedProtocol);
    frame[IP_PROTO] = 17;
    assert_drop(&frame, DropReason::Fragment);
}
