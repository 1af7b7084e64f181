//! Property tests: rewrites always match etherparse's full recomputation, round trips restore
//! the frame, and no input makes any packet function panic.

mod packet_support;

use std::net::{Ipv4Addr, SocketAddrV4};

use etherparse::icmpv4::{DestUnreachableHeader, TimeExceededCode};
use etherparse::{IcmpEchoHeader, Icmpv4Type};
use fnat_engine::packet::ether::{ethertype, set_macs, swap_macs};
use fnat_engine::packet::icmp::{echo_reply_in_place, parse_error, translate_error};
use fnat_engine::packet::ipv4::parse_ipv4;
use fnat_engine::packet::{parse, translate, translate_by, Tuple};
use fnat_engine::session::{Direction, Session, SessionTable};
use packet_support::*;
use proptest::collection::vec;
use proptest::prelude::*;

/// Raw option bytes: up to `max_words` 32-bit words of anything.
fn options(max_words: usize) -> impl Strategy<Value = Vec<u8>> {
    (0..=max_words).prop_flat_map(|n| vec(any::<u8>(), n * 4))
}

fn ip(min_ttl: u8) -> impl Strategy<Value = Ip> {
    (
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        min_ttl..=255u8,
        options(10),
        any::<u16>(),
    )
        .prop_map(|(src, dst, ttl, options, id)| Ip {
            src,
            dst,
            ttl,
            options,
            id,
        })
}

/// Flag combinations the parser accepts.
fn tcp() -> impl Strategy<Value = Tcp> {
    let flags = prop::sample::select(vec![
        (true, false, false, false, false),
        (true, true, false, false, false),
        (false, true, false, false, false),
        (false, true, false, false, true),
        (false, true, true, false, false),
        (false, false, false, true, false),
        (false, true, false, true, false),
    ]);
    (any::<u16>(), any::<u16>(), any::<u32>(), flags, options(10)).prop_map(
        |(sport, dport, seq, (syn, ack, fin, rst, psh), options)| Tcp {
            sport,
            dport,
            seq,
            syn,
            ack,
            fin,
            rst,
            psh,
            options,
        },
    )
}

#[derive(Debug, Clone)]
enum L4 {
    Tcp(Tcp),
    Udp {
        sport: u16,
        dport: u16,
        checksum: bool,
    },
}

fn l4() -> impl Strategy<Value = L4> {
    prop_oneof![
        tcp().prop_map(L4::Tcp),
        (any::<u16>(), any::<u16>(), any::<bool>()).prop_map(|(sport, dport, checksum)| L4::Udp {
            sport,
            dport,
            checksum
        }),
    ]
}

fn build(ip: &Ip, l4: &L4, payload: &[u8], macs: ([u8; 6], [u8; 6])) -> Vec<u8> {
    match l4 {
        L4::Tcp(tcp) => tcp_frame_macs(ip, tcp, payload, macs),
        L4::Udp {
            sport,
            dport,
            checksum,
        } => udp_frame_macs(ip, *sport, *dport, payload, *checksum, macs),
    }
}

fn with_ports(l4: &L4, src: u16, dst: u16) -> L4 {
    match l4 {
        L4::Tcp(tcp) => L4::Tcp(Tcp {
            sport: src,
            dport: dst,
            ..tcp.clone()
        }),
        L4::Udp { checksum, .. } => L4::Udp {
            sport: src,
            dport: dst,
            checksum: *checksum,
        },
    }
}

fn endpoint() -> impl Strategy<Value = SocketAddrV4> {
    (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| sock(a, p))
}

/// Pads short frames the way a NIC does, sometimes.
fn pad(mut frame: Vec<u8>, padding: bool) -> Vec<u8> {
    if padding && frame.len() < 60 {
        frame.resize(60, 0xA5);
    }
    frame
}

fn rewrite_to(frame: &mut [u8], src: SocketAddrV4, dst: SocketAddrV4) {
    let pkt = parse(frame).expect("a built frame parses");
    translate(frame, &pkt, &Tuple::new(pkt.ip.proto, src, dst)).expect("rewrite");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (a) Any TCP/UDP packet rewritten to any tuple is byte-identical to the one etherparse
    /// builds for that tuple (incremental == full recompute), and its checksums verify.
    #[test]
    fn rewrite_equals_full_recompute(
        ip in ip(2), l4 in l4(), payload in vec(any::<u8>(), 0..300),
        src in endpoint(), dst in endpoint(), padding in any::<bool>(),
    ) {
        let mut frame = pad(build(&ip, &l4, &payload, (MAC_CLIENT, MAC_GATEWAY)), padding);
        rewrite_to(&mut frame, src, dst);
        prop_assert!(set_macs(&mut frame, MAC_GATEWAY, MAC_CLIENT));
        let seen = check(&frame[..]);
        prop_assert_eq!(seen.ip.time_to_live, ip.ttl - 1);
        prop_assert_eq!(&seen.payload, &payload);
        let out_ip = Ip { src: src.ip().octets(), dst: dst.ip().octets(), ttl: ip.ttl - 1, ..ip };
        let out_l4 = with_ports(&l4, src.port(), dst.port());
        let expected = pad(build(&out_ip, &out_l4, &payload, (MAC_GATEWAY, MAC_CLIENT)), padding);
        prop_assert_eq!(frame, expected);
    }

    /// (c) A → B → A gives back the original frame, except a TTL two lower (and the IP
    /// checksum that goes with it).
    #[test]
    fn round_trip_restores_the_frame(
        ip in ip(3), l4 in l4(), payload in vec(any::<u8>(), 0..200),
        src in endpoint(), dst in endpoint(),
    ) {
        let original = build(&ip, &l4, &payload, (MAC_CLIENT, MAC_GATEWAY));
        let key = parse(&original).unwrap().tuple().unwrap();
        let mut frame = original.clone();
        rewrite_to(&mut frame, src, dst);
        rewrite_to(&mut frame, key.src_addr(), key.dst_addr());
        let l3 = ETH;
        for (i, (a, b)) in frame.iter().zip(&original).enumerate() {
            if i == l3 + 8 {
                prop_assert_eq!(*a, b - 2, "TTL");
            } else if i != l3 + 10 && i != l3 + 11 {
                prop_assert_eq!(a, b, "byte {}", i);
            }
        }
        let older = Ip { ttl: ip.ttl - 2, ..ip };
        prop_assert_eq!(frame, build(&older, &l4, &payload, (MAC_CLIENT, MAC_GATEWAY)));
    }

    /// Echo replies equal etherparse's, whatever id, seq, payload, options and TTLs.
    #[test]
    fn echo_reply_equals_full_recompute(
        ip in ip(0), id in any::<u16>(), seq in any::<u16>(),
        payload in prop_oneof![vec(any::<u8>(), 0..200), vec(Just(0u8), 0..20)],
        ttl in any::<u8>(),
    ) {
        let request = Icmpv4Type::EchoRequest(IcmpEchoHeader { id, seq });
        let mut frame = icmp_frame(&ip, request, &payload);
        let pkt = parse(&frame).unwrap();
        prop_assert_eq!(pkt.tuple(), Some(Tuple::new(1, sock(ip.src, id), sock(ip.dst, id))));
        echo_reply_in_place(&mut frame, &pkt, ttl).unwrap();
        prop_assert!(swap_macs(&mut frame));
        check(&frame);
        let reply = Icmpv4Type::EchoReply(IcmpEchoHeader { id, seq });
        let out = Ip { src: ip.dst, dst: ip.src, ttl, ..ip };
        prop_assert_eq!(frame, icmp_frame_macs(&out, reply, &payload, (MAC_GATEWAY, MAC_CLIENT)));
    }

    /// ICMP errors quoting any TCP/UDP packet (any quote length that keeps the ports) are
    /// translated exactly as etherparse builds the error about the translated packet.
    #[test]
    fn icmp_error_translation_equals_full_recompute(
        outer in ip(2), sent_ip in ip(0), l4 in l4(), payload in vec(any::<u8>(), 0..100),
        cut in any::<prop::sample::Index>(), frag_needed in any::<bool>(),
        outer_src in any::<[u8; 4]>(), outer_dst in any::<[u8; 4]>(),
        qsrc in endpoint(), qdst in endpoint(),
    ) {
        let icmp_type = if frag_needed {
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
                next_hop_mtu: 1280,
            })
        } else {
            Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit)
        };
        let sent = build(&sent_ip, &l4, &payload, (MAC_CLIENT, MAC_GATEWAY));
        let quoted_full = ip_packet(&sent);
        let ihl = 20 + sent_ip.options.len();
        let len = ihl + 8 + cut.index(quoted_full.len() - ihl - 7);
        let quote = &quoted_full[..len];
        let mut frame = icmp_frame(&outer, icmp_type.clone(), quote);

        let pkt = parse(&frame).unwrap();
        let err = parse_error(&frame, &pkt).unwrap();
        let original = err.embedded.tuple();
        let sent_key = parse(&sent).unwrap().tuple().unwrap();
        prop_assert_eq!(original, sent_key);
        translate_error(
            &mut frame, &err, Ipv4Addr::from(outer_src), Ipv4Addr::from(outer_dst), qsrc, qdst,
        ).unwrap();

        let seen = check(&frame);
        check_quoted(&seen.payload);
        let translated_ip = Ip { src: qsrc.ip().octets(), dst: qdst.ip().octets(), ..sent_ip };
        let translated = build(
            &translated_ip, &with_ports(&l4, qsrc.port(), qdst.port()), &payload,
            (MAC_CLIENT, MAC_GATEWAY),
        );
        let mut expected_quote = ip_packet(&translated)[..len].to_vec();
        // A TCP checksum only partly quoted (one byte) cannot be updated and stays as sent.
        if matches!(l4, L4::Tcp(_)) && len - ihl == 17 {
            expected_quote[ihl + 16] = quote[ihl + 16];
        }
        let out = Ip { src: outer_src, dst: outer_dst, ttl: outer.ttl - 1, ..outer };
        prop_assert_eq!(frame, icmp_frame(&out, icmp_type, &expected_quote));
    }

    /// (b) Arbitrary bytes never make any packet function panic.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..2000), ipv4 in any::<bool>(),
        src in endpoint(), dst in endpoint(),
    ) {
        let mut frame = bytes;
        if ipv4 && frame.len() >= 15 {
            // Make it past the EtherType and version checks more often.
            frame[12] = 0x08;
            frame[13] = 0x00;
            frame[14] = 0x40 | (frame[14] & 0x0F);
        }
        exercise(&mut frame, src, dst);
    }

    /// (b) Valid frames with random corruption and truncation never make anything panic.
    #[test]
    fn corrupted_frames_never_panic(
        ip in ip(0), l4 in l4(), payload in vec(any::<u8>(), 0..100),
        error in any::<bool>(), quote_cut in any::<prop::sample::Index>(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(), src in endpoint(), dst in endpoint(),
    ) {
        let mut frame = build(&ip, &l4, &payload, (MAC_CLIENT, MAC_GATEWAY));
        if error {
            let quoted = ip_packet(&frame).to_vec();
            let len = quote_cut.index(quoted.len() + 1);
            let unreachable = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
            frame = icmp_frame(&Ip::new(ip.dst, ip.src, 64), unreachable, &quoted[..len]);
        }
        for (at, value) in flips {
            let i = at.index(frame.len());
            frame[i] = value;
        }
        let len = cut.index(frame.len() + 1);
        let mut short = frame[..len].to_vec();
        exercise(&mut frame, src, dst);
        exercise(&mut short, src, dst);
        // A parse of one frame used on another (a caller bug) must not panic either.
        if let Ok(pkt) = parse(&frame) {
            let _ = translate(&mut short, &pkt, &Tuple::new(pkt.ip.proto, src, dst));
            let _ = echo_reply_in_place(&mut short, &pkt, 64);
            if let Ok(err) = parse_error(&frame, &pkt) {
                let _ = translate_error(&mut short, &err, *src.ip(), *dst.ip(), src, dst);
            }
        }
    }
}

/// Runs every entry point on `frame`; only panics matter.
fn exercise(frame: &mut [u8], src: SocketAddrV4, dst: SocketAddrV4) {
    let _ = ethertype(frame);
    let _ = parse_ipv4(frame);
    let Ok(pkt) = parse(frame) else { return };
    let _ = pkt.tuple();
    let mut copy = frame.to_vec();
    if translate(&mut copy, &pkt, &Tuple::new(pkt.ip.proto, src, dst)).is_ok() {
        assert!(parse(&copy).is_ok(), "a rewritten packet still parses");
    }
    let mut copy = frame.to_vec();
    let _ = echo_reply_in_place(&mut copy, &pkt, 64);
    if let Ok(err) = parse_error(frame, &pkt) {
        let _ = err.embedded.tuple().reverse();
        let _ = translate_error(frame, &err, *src.ip(), *dst.ip(), src, dst);
    }
}

/// A full-NAT session of client `client` → `vip`, real server `rs` ← local `lip`, as the table
/// keeps it (with the checksum changes it computes on insertion).
fn session_of(
    proto: u8,
    (client, vip): (SocketAddrV4, SocketAddrV4),
    (rs, lip): (SocketAddrV4, SocketAddrV4),
) -> Option<Session> {
    let mut s = Session::default();
    (s.client_ip, s.client_port) = (u32::from(*client.ip()), client.port());
    (s.vip, s.vport) = (u32::from(*vip.ip()), vip.port());
    (s.rs_ip, s.rs_port) = (u32::from(*rs.ip()), rs.port());
    (s.lip, s.lport) = (u32::from(*lip.ip()), lip.port());
    s.proto = proto;
    let mut table = SessionTable::new(4, 1);
    let id = table.insert(s).ok()?; // two equal keys are no session
    table.get(id).copied()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A session's stored rewrite (its checksum changes computed once, on insertion) gives,
    /// in both directions, the bytes etherparse builds for the tuple the packet leaves with:
    /// TCP and UDP, with a UDP checksum or without (0 stays 0).
    #[test]
    fn session_rewrite_equals_full_recompute(
        ip in ip(2), l4 in l4(), payload in vec(any::<u8>(), 0..300),
        ends in (endpoint(), endpoint(), endpoint(), endpoint()),
    ) {
        let (client, vip, rs, lip) = ends;
        let proto = match l4 { L4::Tcp(_) => 6, L4::Udp { .. } => 17 };
        let Some(s) = session_of(proto, (client, vip), (rs, lip)) else { return Ok(()) };
        for (dir, from, to) in [
            (Direction::Input, (client, vip), (lip, rs)),
            (Direction::Output, (rs, lip), (vip, client)),
        ] {
            let arriving = Ip { src: from.0.ip().octets(), dst: from.1.ip().octets(), ..ip.clone() };
            let in_l4 = with_ports(&l4, from.0.port(), from.1.port());
            let mut frame = build(&arriving, &in_l4, &payload, (MAC_CLIENT, MAC_GATEWAY));
            let pkt = parse(&frame).expect("a built frame parses");
            let (tuple, delta) = s.rewrite(dir);
            prop_assert_eq!(tuple, Tuple::new(proto, to.0, to.1));
            translate_by(&mut frame, &pkt, &tuple, delta).expect("rewrite");
            let seen = check(&frame[..]);
            prop_assert_eq!(seen.ip.time_to_live, ip.ttl - 1);
            let out_ip = Ip { src: to.0.ip().octets(), dst: to.1.ip().octets(), ttl: ip.ttl - 1, ..ip.clone() };
            let out_l4 = with_ports(&l4, to.0.port(), to.1.port());
            let expected = build(&out_ip, &out_l4, &payload, (MAC_CLIENT, MAC_GATEWAY));
            prop_assert_eq!(frame, expected, "{:?}", dir);
        }
    }
}
