//! ICMP: echo replies, and ICMP errors quoting NATed TCP/UDP/echo packets (RFC 5508), built and
//! checked with etherparse.

mod packet_support;

use etherparse::icmpv4::{DestUnreachableHeader, ParameterProblemHeader, TimeExceededCode};
use etherparse::{IcmpEchoHeader, Icmpv4Type};
use fnat_engine::packet::ether::swap_macs;
use fnat_engine::packet::icmp::{echo_reply_in_place, parse_error, translate_error};
use fnat_engine::packet::{parse, Tuple};
use fnat_engine::DropReason;
use packet_support::*;
use std::net::Ipv4Addr;

const C: [u8; 4] = [192, 0, 2, 10];
const VIP: [u8; 4] = [198, 51, 100, 1];
const LIP: [u8; 4] = [10, 0, 0, 100];
const RS: [u8; 4] = [10, 0, 1, 7];
const ROUTER: [u8; 4] = [10, 0, 0, 254];

fn echo_request(id: u16, seq: u16) -> Icmpv4Type {
    Icmpv4Type::EchoRequest(IcmpEchoHeader { id, seq })
}

fn echo_reply(id: u16, seq: u16) -> Icmpv4Type {
    Icmpv4Type::EchoReply(IcmpEchoHeader { id, seq })
}

// ---- echo ----

fn answer(frame: &mut [u8]) -> Result<(), DropReason> {
    let pkt = parse(frame)?;
    echo_reply_in_place(frame, &pkt, 64)?;
    assert!(swap_macs(frame));
    Ok(())
}

#[test]
fn echo_request_becomes_reply() {
    let payload: Vec<u8> = (0..56).collect();
    let mut frame = icmp_frame(&Ip::new(C, VIP, 57), echo_request(0x1d2c, 9), &payload);
    answer(&mut frame).unwrap();
    let seen = check(&frame);
    assert_eq!(seen.ip.source, VIP);
    assert_eq!(seen.ip.destination, C);
    assert_eq!(seen.ip.time_to_live, 64);
    assert_eq!(icmp_header(&seen).icmp_type, echo_reply(0x1d2c, 9));
    assert_eq!(seen.payload, payload);
    let expected = icmp_frame_macs(
        &Ip::new(VIP, C, 64),
        echo_reply(0x1d2c, 9),
        &payload,
        (MAC_GATEWAY, MAC_CLIENT),
    );
    assert_eq!(frame, expected);
}

#[test]
fn echo_reply_with_all_zero_message_gets_checksum_ffff() {
    // RFC 1624's corner: the reply's data sums to +0, so its checksum is 0xFFFF, which plain
    // eqn. 3 arithmetic (never producing +0) would get wrong as 0x0000.
    let mut frame = icmp_frame(&Ip::new(C, VIP, 64), echo_request(0, 0), b"");
    answer(&mut frame).unwrap();
    let seen = check(&frame);
    assert_eq!(icmp_header(&seen).checksum, 0xFFFF);
    let mut frame = icmp_frame(&Ip::new(C, VIP, 64), echo_request(0, 0), &[0; 8]);
    answer(&mut frame).unwrap();
    assert_eq!(icmp_header(&check(&frame)).checksum, 0xFFFF);
}

#[test]
fn echo_reply_whose_data_sums_to_minus_zero_gets_checksum_0000() {
    let mut frame = icmp_frame(&Ip::new(C, VIP, 64), echo_request(0xFFFF, 0), b"");
    answer(&mut frame).unwrap();
    let seen = check(&frame);
    assert_eq!(icmp_header(&seen).checksum, 0x0000);
}

#[test]
fn echo_request_with_ip_options_keeps_them() {
    let mut ip = Ip::new(C, VIP, 3);
    ip.options = vec![1, 1, 1, 1];
    let mut frame = icmp_frame(&ip, echo_request(5, 6), b"opt");
    answer(&mut frame).unwrap();
    let out = Ip {
        src: VIP,
        dst: C,
        ttl: 64,
        ..ip
    };
    let expected = icmp_frame_macs(&out, echo_reply(5, 6), b"opt", (MAC_GATEWAY, MAC_CLIENT));
    assert_eq!(frame, expected);
}

#[test]
fn only_echo_requests_are_answered() {
    let ip = Ip::new(C, VIP, 64);
    let mut code_one = icmp_frame(&ip, echo_request(1, 1), b"");
    code_one[14 + 20 + 1] = 1;
    for mut frame in [
        icmp_frame(&ip, echo_reply(1, 1), b""),
        icmp_frame(
            &ip,
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
            &[0x45; 28],
        ),
        tcp_frame(&ip, &Tcp::new(1, 2), b""),
        code_one,
    ] {
        let before = frame.clone();
        let pkt = parse(&frame).unwrap();
        assert_eq!(
            echo_reply_in_place(&mut frame, &pkt, 64),
            Err(DropReason::IcmpUnsupported)
        );
        assert_eq!(frame, before);
    }
}

// ---- errors: parsing ----

/// LIP:lport → RS:rport as the gateway sent it, TTL 1 (so a router answers time-exceeded).
fn sent_tcp(payload: &[u8]) -> Vec<u8> {
    let mut tcp = Tcp::new(1025, 8080);
    tcp.syn = true;
    tcp.ack = false;
    tcp.options = SYN_OPTIONS.to_vec();
    tcp_frame(&Ip::new(LIP, RS, 1), &tcp, payload)
}

fn sent_tcp_translated(payload: &[u8]) -> Vec<u8> {
    let mut tcp = Tcp::new(40000, 80);
    tcp.syn = true;
    tcp.ack = false;
    tcp.options = SYN_OPTIONS.to_vec();
    tcp_frame(&Ip::new(C, VIP, 1), &tcp, payload)
}

fn sent_udp(checksum: bool) -> Vec<u8> {
    udp_frame(&Ip::new(LIP, RS, 1), 1026, 53, b"a UDP payload", checksum)
}

fn sent_udp_translated(checksum: bool) -> Vec<u8> {
    udp_frame(&Ip::new(C, VIP, 1), 40001, 53, b"a UDP payload", checksum)
}

fn time_exceeded() -> Icmpv4Type {
    Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit)
}

fn frag_needed() -> Icmpv4Type {
    Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
        next_hop_mtu: 1400,
    })
}

/// An ICMP error from a router to LIP quoting `len` bytes of `sent`.
fn error_frame(icmp_type: Icmpv4Type, sent: &[u8], len: usize) -> Vec<u8> {
    icmp_frame(
        &Ip::new(ROUTER, LIP, 250),
        icmp_type,
        &ip_packet(sent)[..len],
    )
}

#[test]
fn time_exceeded_quoting_tcp() {
    let sent = sent_tcp(b"");
    for len in [28, 48, ip_packet(&sent).len()] {
        let frame = error_frame(time_exceeded(), &sent, len);
        let pkt = parse(&frame).unwrap();
        let err = parse_error(&frame, &pkt).unwrap();
        assert_eq!((err.icmp.icmp_type, err.icmp.code), (11, 0));
        let e = err.embedded;
        assert_eq!((e.l3, e.l4, e.header_len), (42, 62, 20));
        assert_eq!(e.proto, 6);
        assert_eq!((e.src, e.sport), (Ipv4Addr::from(LIP), 1025));
        assert_eq!((e.dst, e.dport), (Ipv4Addr::from(RS), 8080));
        assert_eq!(e.l4_quoted, len - 20);
        assert_eq!(e.tuple(), Tuple::new(6, sock(LIP, 1025), sock(RS, 8080)));
        // The session is found by the key a reply from the RS would carry.
        assert_eq!(
            e.tuple().reverse(),
            Tuple::new(6, sock(RS, 8080), sock(LIP, 1025))
        );
    }
}

#[test]
fn frag_needed_quoting_udp() {
    let frame = error_frame(frag_needed(), &sent_udp(true), 28);
    let pkt = parse(&frame).unwrap();
    let err = parse_error(&frame, &pkt).unwrap();
    assert_eq!(
        (err.icmp.icmp_type, err.icmp.code, err.icmp.seq),
        (3, 4, 1400)
    );
    assert_eq!(
        err.embedded.tuple(),
        Tuple::new(17, sock(LIP, 1026), sock(RS, 53))
    );
    assert_eq!(err.outer, pkt.ip);
}

#[test]
fn parameter_problem_and_port_unreachable_are_errors_too() {
    let sent = sent_udp(true);
    for ty in [
        Icmpv4Type::ParameterProblem(ParameterProblemHeader::PointerIndicatesError(9)),
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Host),
    ] {
        let frame = error_frame(ty, &sent, 36);
        let pkt = parse(&frame).unwrap();
        assert!(parse_error(&frame, &pkt).is_ok());
    }
}

#[test]
fn quoted_echo_uses_its_identifier() {
    let sent = icmp_frame(&Ip::new(LIP, RS, 1), echo_request(777, 1), b"ping");
    let frame = error_frame(time_exceeded(), &sent, 28);
    let pkt = parse(&frame).unwrap();
    let e = parse_error(&frame, &pkt).unwrap().embedded;
    assert_eq!(e.tuple(), Tuple::new(1, sock(LIP, 777), sock(RS, 777)));
}

#[test]
fn quoted_ip_options_are_skipped() {
    let mut ip = Ip::new(LIP, RS, 1);
    ip.options = vec![1, 1, 1, 1, 1, 1, 1, 0];
    let sent = udp_frame(&ip, 7, 8, b"x", true);
    let frame = error_frame(time_exceeded(), &sent, 36);
    let pkt = parse(&frame).unwrap();
    let e = parse_error(&frame, &pkt).unwrap().embedded;
    assert_eq!(
        (e.header_len, e.l4 - e.l3, e.sport, e.dport),
        (28, 28, 7, 8)
    );
}

fn assert_error_drop(frame: &[u8], reason: DropReason) {
    let pkt = parse(frame).unwrap();
    assert_eq!(parse_error(frame, &pkt), Err(reason));
}

#[test]
fn quote_too_short_for_ip_header() {
    let sent = sent_tcp(b"");
    for len in [0, 1, 19] {
        assert_error_drop(
            &error_frame(time_exceeded(), &sent, len),
            DropReason::IcmpNoSession,
        );
    }
}

#[test]
fn quote_too_short_for_ports() {
    let sent = sent_tcp(b"");
    for len in [20, 21, 27] {
        assert_error_drop(
            &error_frame(time_exceeded(), &sent, len),
            DropReason::IcmpNoSession,
        );
    }
    // Quoted IP options push the ports past the quote.
    let mut ip = Ip::new(LIP, RS, 1);
    ip.options = vec![1; 40];
    let sent = udp_frame(&ip, 7, 8, b"", true);
    assert_error_drop(
        &error_frame(time_exceeded(), &sent, 64),
        DropReason::IcmpNoSession,
    );
}

#[test]
fn quote_with_bad_ip_header() {
    let sent = sent_udp(true);
    for (at, value) in [(0usize, 0x65u8), (0, 0x44), (2, 0), (3, 0)] {
        let mut quote = ip_packet(&sent)[..28].to_vec();
        quote[at] = value;
        if at == 2 {
            quote[3] = 19; // total length below the header
        }
        let frame = icmp_frame(&Ip::new(ROUTER, LIP, 250), time_exceeded(), &quote);
        assert_error_drop(&frame, DropReason::IcmpNoSession);
    }
}

#[test]
fn quote_of_a_later_fragment() {
    let mut quote = ip_packet(&sent_udp(true))[..28].to_vec();
    quote[6..8].copy_from_slice(&0x0010u16.to_be_bytes());
    let frame = icmp_frame(&Ip::new(ROUTER, LIP, 250), time_exceeded(), &quote);
    assert_error_drop(&frame, DropReason::IcmpNoSession);
    // A first fragment still has its ports.
    quote[6..8].copy_from_slice(&0x2000u16.to_be_bytes());
    let frame = icmp_frame(&Ip::new(ROUTER, LIP, 250), time_exceeded(), &quote);
    let pkt = parse(&frame).unwrap();
    assert!(parse_error(&frame, &pkt).is_ok());
}

#[test]
fn quote_of_other_protocols() {
    let gre = raw_ip_frame(&Ip::new(LIP, RS, 1), 47, &[0; 8]);
    assert_error_drop(
        &error_frame(time_exceeded(), &gre, 28),
        DropReason::IcmpNoSession,
    );
    // An error about an error is never matched.
    let inner = icmp_frame(&Ip::new(LIP, RS, 1), time_exceeded(), &[0x45; 28]);
    assert_error_drop(
        &error_frame(time_exceeded(), &inner, 28),
        DropReason::IcmpNoSession,
    );
}

#[test]
fn non_error_types_are_unsupported() {
    let ip = Ip::new(ROUTER, LIP, 250);
    for frame in [
        icmp_frame(&ip, echo_request(1, 1), &[0x45; 28]),
        icmp_frame(&ip, echo_reply(1, 1), &[0x45; 28]),
        icmp_frame(
            &ip,
            Icmpv4Type::Unknown {
                type_u8: 5,
                code_u8: 1,
                bytes5to8: [0; 4],
            },
            &ip_packet(&sent_udp(true))[..28],
        ),
        udp_frame(&ip, 1, 2, b"", true),
    ] {
        assert_error_drop(&frame, DropReason::IcmpUnsupported);
    }
}

// ---- errors: translation ----

/// Translates an error about LIP:lport → RS:rport into one about C:cport → VIP:vport sent by
/// the VIP to the client, as the gateway does for the client side of a full-NAT session.
fn translate_to_client(frame: &mut [u8], cport: u16, vport: u16) -> Result<(), DropReason> {
    let pkt = parse(frame)?;
    let err = parse_error(frame, &pkt)?;
    translate_error(
        frame,
        &err,
        Ipv4Addr::from(VIP),
        Ipv4Addr::from(C),
        sock(C, cport),
        sock(VIP, vport),
    )
}

/// What the translated frame must be, byte for byte: built by etherparse around `quote`.
fn expected_error(icmp_type: Icmpv4Type, quote: &[u8]) -> Vec<u8> {
    icmp_frame(&Ip::new(VIP, C, 249), icmp_type, quote)
}

#[test]
fn time_exceeded_about_tcp_whole_segment_quoted() {
    let sent = sent_tcp(b"SYN data");
    let mut frame = error_frame(time_exceeded(), &sent, ip_packet(&sent).len());
    translate_to_client(&mut frame, 40000, 80).unwrap();

    let seen = check(&frame);
    assert_eq!((seen.ip.source, seen.ip.destination), (VIP, C));
    assert_eq!(seen.ip.time_to_live, 249);
    let (quoted_ip, quoted_l4) = check_quoted(&seen.payload);
    assert_eq!((quoted_ip.source, quoted_ip.destination), (C, VIP));
    let tcp = check_quoted_tcp(&quoted_ip, quoted_l4);
    assert_eq!((tcp.source_port, tcp.destination_port), (40000, 80));

    let expected = expected_error(
        time_exceeded(),
        ip_packet(&sent_tcp_translated(b"SYN data")),
    );
    assert_eq!(frame, expected);
}

#[test]
fn time_exceeded_about_tcp_eight_bytes_quoted() {
    // The TCP checksum (offset 16) is not quoted, so only the ports change in the quote.
    let sent = sent_tcp(b"");
    let mut frame = error_frame(time_exceeded(), &sent, 28);
    translate_to_client(&mut frame, 40000, 80).unwrap();
    let seen = check(&frame);
    let (quoted_ip, quoted_l4) = check_quoted(&seen.payload);
    assert_eq!((quoted_ip.source, quoted_ip.destination), (C, VIP));
    assert_eq!(quoted_l4, &ip_packet(&sent_tcp_translated(b""))[20..28]);
    let expected = expected_error(time_exceeded(), &ip_packet(&sent_tcp_translated(b""))[..28]);
    assert_eq!(frame, expected);
}

#[test]
fn frag_needed_about_udp_keeps_the_mtu() {
    for (len, checksum) in [(28, true), (28, false), (41, true), (41, false)] {
        let sent = sent_udp(checksum);
        assert_eq!(ip_packet(&sent).len(), 41);
        let mut frame = error_frame(frag_needed(), &sent, len);
        translate_to_client(&mut frame, 40001, 53).unwrap();
        let seen = check(&frame);
        assert_eq!(icmp_header(&seen).icmp_type, frag_needed(), "MTU 1400 kept");
        let (quoted_ip, quoted_l4) = check_quoted(&seen.payload);
        if len == 41 {
            let udp = check_quoted_udp(&quoted_ip, quoted_l4);
            assert_eq!((udp.source_port, udp.destination_port), (40001, 53));
        }
        let quoted_checksum = u16::from_be_bytes([quoted_l4[6], quoted_l4[7]]);
        assert_eq!(
            quoted_checksum == 0,
            !checksum,
            "0 stays 0, others are updated"
        );
        let expected = expected_error(
            frag_needed(),
            &ip_packet(&sent_udp_translated(checksum))[..len],
        );
        assert_eq!(frame, expected, "len {len} checksum {checksum}");
    }
}

#[test]
fn error_about_echo_rewrites_identifier_and_echo_checksum() {
    let sent = icmp_frame(&Ip::new(LIP, RS, 1), echo_request(777, 3), b"ping");
    let mut frame = error_frame(time_exceeded(), &sent, ip_packet(&sent).len());
    translate_to_client(&mut frame, 4242, 4242).unwrap();
    let translated = icmp_frame(&Ip::new(C, VIP, 1), echo_request(4242, 3), b"ping");
    assert_eq!(
        frame,
        expected_error(time_exceeded(), ip_packet(&translated))
    );
    check(&frame);
}

#[test]
fn error_towards_the_real_server_side() {
    // A router on the client side reports a reply VIP:vport → C:cport; the gateway forwards
    // the error to the RS as one about RS:rport → LIP:lport.
    let reply = udp_frame(&Ip::new(VIP, C, 1), 53, 40001, b"answer", true);
    let mut frame = icmp_frame(
        &Ip::new([203, 0, 113, 1], VIP, 10),
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
        ip_packet(&reply),
    );
    let pkt = parse(&frame).unwrap();
    let err = parse_error(&frame, &pkt).unwrap();
    assert_eq!(
        err.embedded.tuple().reverse(),
        Tuple::new(17, sock(C, 40001), sock(VIP, 53)),
        "the client-side session key"
    );
    translate_error(
        &mut frame,
        &err,
        Ipv4Addr::from(LIP),
        Ipv4Addr::from(RS),
        sock(RS, 53),
        sock(LIP, 1026),
    )
    .unwrap();
    let seen = check(&frame);
    let (quoted_ip, quoted_l4) = check_quoted(&seen.payload);
    check_quoted_udp(&quoted_ip, quoted_l4);
    let translated = udp_frame(&Ip::new(RS, LIP, 1), 53, 1026, b"answer", true);
    let expected = icmp_frame(
        &Ip::new(LIP, RS, 9),
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
        ip_packet(&translated),
    );
    assert_eq!(frame, expected);
}

#[test]
fn translate_refuses_expired_ttl_without_writing() {
    let sent = sent_udp(true);
    for ttl in [0, 1] {
        let mut frame = icmp_frame(
            &Ip::new(ROUTER, LIP, ttl),
            time_exceeded(),
            &ip_packet(&sent)[..28],
        );
        let before = frame.clone();
        assert_eq!(
            translate_to_client(&mut frame, 1, 2),
            Err(DropReason::TtlExpired)
        );
        assert_eq!(frame, before);
    }
}

#[test]
fn translate_refuses_a_frame_the_error_does_not_describe() {
    let sent = sent_tcp(b"");
    let frame = error_frame(time_exceeded(), &sent, ip_packet(&sent).len());
    let pkt = parse(&frame).unwrap();
    let err = parse_error(&frame, &pkt).unwrap();
    for len in [0, 14, 34, 42, 61, 62, 69, 80] {
        let mut short = frame[..len].to_vec();
        let before = short.clone();
        let result = translate_error(
            &mut short,
            &err,
            Ipv4Addr::from(VIP),
            Ipv4Addr::from(C),
            sock(C, 1),
            sock(VIP, 2),
        );
        assert_eq!(result, Err(DropReason::Truncated), "len {len}");
        assert_eq!(short, before);
    }
}
