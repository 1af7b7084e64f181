//! Full-NAT rewrite: the output is compared byte for byte with the frame etherparse builds for
//! the new tuple (so every incremental checksum equals a full recomputation), and checked with
//! etherparse's checksum functions.

mod packet_support;

use etherparse::{IpNumber, Ipv4Header, TransportHeader, UdpHeader};
use fnat_engine::packet::ether::{set_macs, swap_macs};
use fnat_engine::packet::{parse, translate, ttl_expires, Tuple};
use fnat_engine::DropReason;
use packet_support::*;

const C: [u8; 4] = [192, 0, 2, 10];
const VIP: [u8; 4] = [198, 51, 100, 1];
const LIP: [u8; 4] = [10, 0, 0, 100];
const RS: [u8; 4] = [10, 0, 1, 7];
const MAC_RS: [u8; 6] = [0x02, 0, 0, 0, 0, 0x07];

/// Parses and rewrites `frame` towards LIP:lport → RS:rport with new MACs.
fn nat(frame: &mut [u8], lport: u16, rport: u16) {
    let pkt = parse(frame).unwrap();
    translate(
        frame,
        &pkt,
        &Tuple::new(pkt.ip.proto, sock(LIP, lport), sock(RS, rport)),
    )
    .unwrap();
    assert!(set_macs(frame, MAC_GATEWAY, MAC_RS));
}

#[test]
fn tcp_syn_with_options_and_payload() {
    let mut tcp = Tcp::new(40000, 80);
    tcp.syn = true;
    tcp.ack = false;
    tcp.options = SYN_OPTIONS.to_vec();
    let payload = b"GET / HTTP/1.0\r\n\r\n";
    let mut frame = tcp_frame(&Ip::new(C, VIP, 64), &tcp, payload);
    nat(&mut frame, 1025, 8080);

    let seen = check(&frame);
    assert_eq!(seen.ip.source, LIP);
    assert_eq!(seen.ip.destination, RS);
    assert_eq!(seen.ip.time_to_live, 63);
    let TransportHeader::Tcp(out) = &seen.transport else {
        panic!("not TCP")
    };
    assert_eq!((out.source_port, out.destination_port), (1025, 8080));
    assert_eq!(
        out.options.as_slice(),
        &SYN_OPTIONS[..],
        "TCP options untouched"
    );
    assert_eq!(seen.payload, payload, "payload untouched");

    let expected = tcp_frame_macs(
        &Ip::new(LIP, RS, 63),
        &Tcp {
            sport: 1025,
            dport: 8080,
            ..tcp
        },
        payload,
        (MAC_GATEWAY, MAC_RS),
    );
    assert_eq!(frame, expected, "incremental update == full recomputation");
}

#[test]
fn tcp_with_ip_options() {
    let mut ip = Ip::new(C, VIP, 200);
    ip.options = vec![0x94, 4, 0, 0, 1, 1, 1, 0];
    let tcp = Tcp::new(55555, 443);
    let mut frame = tcp_frame(&ip, &tcp, &[0x5A; 333]);
    nat(&mut frame, 2000, 8443);
    check(&frame);
    let out_ip = Ip {
        src: LIP,
        dst: RS,
        ttl: 199,
        ..ip
    };
    let out_tcp = Tcp {
        sport: 2000,
        dport: 8443,
        ..tcp
    };
    let expected = tcp_frame_macs(&out_ip, &out_tcp, &[0x5A; 333], (MAC_GATEWAY, MAC_RS));
    assert_eq!(frame, expected);
}

#[test]
fn udp_with_checksum() {
    let mut frame = udp_frame(&Ip::new(C, VIP, 64), 5353, 53, b"a dns query", true);
    nat(&mut frame, 3000, 5353);
    let seen = check(&frame);
    let TransportHeader::Udp(udp) = seen.transport else {
        panic!()
    };
    assert_ne!(udp.checksum, 0);
    let expected = udp_frame_macs(
        &Ip::new(LIP, RS, 63),
        3000,
        5353,
        b"a dns query",
        true,
        (MAC_GATEWAY, MAC_RS),
    );
    assert_eq!(frame, expected);
}

#[test]
fn udp_without_checksum_stays_without() {
    let mut frame = udp_frame(&Ip::new(C, VIP, 64), 5353, 53, b"odd", false);
    nat(&mut frame, 3001, 53);
    let seen = check(&frame);
    let TransportHeader::Udp(udp) = seen.transport else {
        panic!()
    };
    assert_eq!(udp.checksum, 0, "0 means none and stays 0");
    let expected = udp_frame_macs(
        &Ip::new(LIP, RS, 63),
        3001,
        53,
        b"odd",
        false,
        (MAC_GATEWAY, MAC_RS),
    );
    assert_eq!(frame, expected);
}

/// The source port for which the UDP checksum of LIP:port → RS:53 carrying `payload`
/// computes to 0, i.e. goes on the wire as 0xFFFF (found with etherparse).
fn port_with_zero_udp_checksum(payload: &[u8]) -> u16 {
    let ip = Ipv4Header::new(0, 63, IpNumber::UDP, LIP, RS).unwrap();
    (0..=u16::MAX)
        .find(|&port| {
            let udp = UdpHeader {
                source_port: port,
                destination_port: 53,
                length: (8 + payload.len()) as u16,
                checksum: 0,
            };
            udp.calc_checksum_ipv4(&ip, payload).unwrap() == 0xFFFF
        })
        .expect("one port sums to zero")
}

#[test]
fn udp_checksum_computing_to_zero_is_sent_as_ffff() {
    let payload = b"zero";
    let lport = port_with_zero_udp_checksum(payload);
    let mut frame = udp_frame(&Ip::new(C, VIP, 64), 5353, 53, payload, true);
    nat(&mut frame, lport, 53);
    let TransportHeader::Udp(udp) = check(&frame).transport else {
        panic!()
    };
    assert_eq!(udp.checksum, 0xFFFF);
    // And back: from 0xFFFF to an ordinary checksum.
    let pkt = parse(&frame).unwrap();
    translate(
        &mut frame,
        &pkt,
        &Tuple::new(pkt.ip.proto, sock(VIP, 53), sock(C, 5353)),
    )
    .unwrap();
    let TransportHeader::Udp(udp) = check(&frame).transport else {
        panic!()
    };
    assert_ne!(udp.checksum, 0);
}

#[test]
fn ethernet_padding_is_left_alone() {
    let mut frame = udp_frame(&Ip::new(C, VIP, 64), 1, 2, b"hi", true);
    frame.resize(60, 0xEE);
    nat(&mut frame, 4000, 4001);
    check(&frame);
    assert_eq!(&frame[44..], &[0xEE; 16]);
    let mut expected = udp_frame_macs(
        &Ip::new(LIP, RS, 63),
        4000,
        4001,
        b"hi",
        true,
        (MAC_GATEWAY, MAC_RS),
    );
    expected.resize(60, 0xEE);
    assert_eq!(frame, expected);
}

#[test]
fn ttl_expiry() {
    assert!(ttl_expires(0));
    assert!(ttl_expires(1));
    assert!(!ttl_expires(2));
    for ttl in [0u8, 1] {
        let mut frame = tcp_frame(&Ip::new(C, VIP, ttl), &Tcp::new(1, 2), b"x");
        let before = frame.clone();
        let pkt = parse(&frame).unwrap();
        assert_eq!(
            translate(
                &mut frame,
                &pkt,
                &Tuple::new(pkt.ip.proto, sock(LIP, 3), sock(RS, 4))
            ),
            Err(DropReason::TtlExpired)
        );
        assert_eq!(frame, before, "nothing written");
    }
    let mut frame = tcp_frame(&Ip::new(C, VIP, 2), &Tcp::new(1, 2), b"x");
    nat(&mut frame, 3, 4);
    assert_eq!(check(&frame).ip.time_to_live, 1);
}

/// An ICMP echo's identifier stands for both ports (SNAT): it leaves with the tuple's source
/// port as identifier, byte for byte the frame etherparse builds for it. Other ICMP has no
/// ports: refused, nothing written.
#[test]
fn icmp_echo_takes_the_identifier_other_icmp_is_not_rewritten() {
    for (before, after) in [
        (
            etherparse::Icmpv4Type::EchoRequest(etherparse::IcmpEchoHeader { id: 1, seq: 2 }),
            etherparse::Icmpv4Type::EchoRequest(etherparse::IcmpEchoHeader { id: 3, seq: 2 }),
        ),
        (
            etherparse::Icmpv4Type::EchoReply(etherparse::IcmpEchoHeader { id: 0xfffe, seq: 9 }),
            etherparse::Icmpv4Type::EchoReply(etherparse::IcmpEchoHeader { id: 3, seq: 9 }),
        ),
    ] {
        let mut frame = icmp_frame(&Ip::new(C, VIP, 64), before.clone(), b"ping payload");
        let pkt = parse(&frame).unwrap();
        translate(
            &mut frame,
            &pkt,
            &Tuple::new(pkt.ip.proto, sock(LIP, 3), sock(RS, 3)),
        )
        .unwrap();
        assert_eq!(
            frame,
            icmp_frame(&Ip::new(LIP, RS, 63), after, b"ping payload"),
            "{before:?}"
        );
    }
    let other = etherparse::Icmpv4Type::TimestampRequest(etherparse::icmpv4::TimestampMessage {
        id: 1,
        seq: 2,
        originate_timestamp: 0,
        receive_timestamp: 0,
        transmit_timestamp: 0,
    });
    let mut frame = icmp_frame(&Ip::new(C, VIP, 64), other, b"");
    let unchanged = frame.clone();
    let pkt = parse(&frame).unwrap();
    assert_eq!(
        translate(
            &mut frame,
            &pkt,
            &Tuple::new(pkt.ip.proto, sock(LIP, 3), sock(RS, 4))
        ),
        Err(DropReason::IcmpUnsupported)
    );
    assert_eq!(frame, unchanged);
}

#[test]
fn a_packet_that_does_not_describe_the_frame_is_refused_without_writing() {
    let frame = tcp_frame(&Ip::new(C, VIP, 64), &Tcp::new(1, 2), &[7; 100]);
    let pkt = parse(&frame).unwrap();
    for len in [0, 13, 20, 40, 50, 60, 100] {
        let mut short = frame[..len].to_vec();
        let before = short.clone();
        assert_eq!(
            translate(
                &mut short,
                &pkt,
                &Tuple::new(pkt.ip.proto, sock(LIP, 3), sock(RS, 4))
            ),
            Err(DropReason::Truncated)
        );
        assert_eq!(short, before);
    }
}

#[test]
fn a_bad_checksum_stays_bad() {
    let mut frame = tcp_frame(&Ip::new(C, VIP, 64), &Tcp::new(1, 2), b"payload");
    frame[14 + 20 + 16] ^= 0x01; // corrupt the TCP checksum
    nat(&mut frame, 3, 4);
    let seen = etherparse::PacketHeaders::from_ethernet_slice(&frame).unwrap();
    let (Some(etherparse::NetHeaders::Ipv4(ip, _)), Some(TransportHeader::Tcp(tcp))) =
        (seen.net, seen.transport)
    else {
        panic!()
    };
    let payload = b"payload";
    assert_ne!(tcp.checksum, tcp.calc_checksum_ipv4(&ip, payload).unwrap());
}

#[test]
fn round_trip_restores_everything_but_the_ttl() {
    let mut tcp = Tcp::new(40000, 80);
    tcp.options = SYN_OPTIONS.to_vec();
    let original = tcp_frame(&Ip::new(C, VIP, 64), &tcp, b"round trip");
    let mut frame = original.clone();
    let pkt = parse(&frame).unwrap();
    translate(
        &mut frame,
        &pkt,
        &Tuple::new(pkt.ip.proto, sock(LIP, 1234), sock(RS, 8080)),
    )
    .unwrap();
    let pkt = parse(&frame).unwrap();
    translate(
        &mut frame,
        &pkt,
        &Tuple::new(pkt.ip.proto, sock(C, 40000), sock(VIP, 80)),
    )
    .unwrap();
    let expected = tcp_frame(&Ip::new(C, VIP, 62), &tcp, b"round trip");
    assert_eq!(frame, expected);
}

#[test]
fn mac_helpers() {
    let mut frame = udp_frame(&Ip::new(C, VIP, 64), 1, 2, b"", true);
    assert!(swap_macs(&mut frame));
    assert_eq!(&frame[..6], &MAC_CLIENT);
    assert_eq!(&frame[6..12], &MAC_GATEWAY);
    assert!(set_macs(&mut frame, [1; 6], [2; 6]));
    assert_eq!(&frame[..12], &[2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1]);
    assert!(!swap_macs(&mut frame[..11]));
    assert!(!set_macs(&mut frame[..11], [1; 6], [2; 6]));
}
