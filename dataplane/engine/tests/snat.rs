//! Worker-level tests of SNAT (DPVS's match service): inside hosts behind port 1 reach the
//! outside by port 0 with their source rewritten to a WAN address:port of the pool, replies
//! mapped back; TCP, UDP and ICMP echo, one and two workers, the rule's conditions. Frames are
//! built and read back with etherparse, never the engine's parser.

mod common;

use common::*;
use etherparse::{Icmpv4Type, PacketBuilder};
use fnat_engine::rules::{
    Protocol, RealServer, Rules, SchedulerKind, Service, ServiceOptions, SnatRule,
};
use fnat_engine::{DropReason, Verdict, Worker};
use std::net::{Ipv4Addr, SocketAddrV4};

/// The SNAT pool's addresses (the outside sees these).
const WAN1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 50);
const WAN2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 51);
/// An outside host, reached through the router on port 0.
const PEER: Ipv4Addr = CLIENT;

fn tx(port: u16) -> Verdict {
    Verdict::Transmit { port }
}

fn snat_service(id: u32, proto: u8, pool: &[Ipv4Addr]) -> Service {
    let mut s = Service::new(
        id,
        Ipv4Addr::UNSPECIFIED,
        if proto == 17 {
            Protocol::Udp
        } else {
            Protocol::Tcp
        },
        0,
        SchedulerKind::Rr,
    );
    s.reals = pool
        .iter()
        .enumerate()
        .map(|(i, a)| RealServer::new(id * 10 + i as u32, *a, 0, 1))
        .collect();
    s.local_addresses = pool.to_vec();
    s.options = ServiceOptions {
        snat: Some(SnatRule {
            proto,
            src: Some((u32::from(RS1), u32::from(RS2))),
            dst: None,
            iif: Some(1),
            oif: Some(0),
        }),
        ..Default::default()
    };
    s
}

/// The lab's rules plus SNAT for the servers' network: TCP over WAN1 and WAN2 (rr), UDP and
/// ICMP echo over WAN1.
fn snat_rules() -> Rules {
    let mut r = rules(1024, 1024, 65535);
    r.services.push(snat_service(7, 6, &[WAN1, WAN2]));
    r.services.push(snat_service(8, 17, &[WAN1]));
    r.services.push(snat_service(9, 1, &[WAN1]));
    r
}

/// A TCP frame from an inside host (its MAC) arriving on port 1, to anywhere.
fn inside_tcp(src: SocketAddrV4, dst: SocketAddrV4, flags: &str, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(rs_mac(*src.ip()), PORT1_MAC)
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .tcp(src.port(), dst.port(), 7000, 65535);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(1);
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// A TCP frame from the outside (the router's MAC) arriving on port 0.
fn outside_tcp(src: SocketAddrV4, dst: SocketAddrV4, flags: &str, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(ROUTER_MAC, PORT0_MAC)
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .tcp(src.port(), dst.port(), 9000, 65535);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(7001);
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn icmp_of(o: &Out) -> Icmpv4Type {
    match &o.l4 {
        L4::Icmp(t) => t.clone(),
        other => panic!("not ICMP: {other:?}"),
    }
}

fn on(w: &mut Worker, port: u16, frame: &mut Vec<u8>) -> Verdict {
    w.process(port, frame, 1_000 * S)
}

#[test]
fn snat_rewrites_the_source_out_and_the_destination_back() {
    let mut ws = workers(1, snat_rules());
    let w = &mut ws[0];
    let host = sa(RS1, 40000);
    let peer = sa(PEER, 80);

    let mut f = inside_tcp(host, peer, "S", b"");
    assert_eq!(on(w, 1, &mut f), tx(0));
    let o = decode(&f);
    assert_eq!(*o.src.ip(), WAN1, "the first address of the pool");
    assert_eq!(o.dst, peer, "the destination stays");
    assert_eq!((o.src_mac, o.dst_mac, o.ttl), (PORT0_MAC, ROUTER_MAC, 63));
    let wan = o.src;
    assert!(wan.port() >= 1024);

    let mut f = outside_tcp(peer, wan, "SA", b"");
    assert_eq!(on(w, 0, &mut f), tx(1));
    let o = decode(&f);
    assert_eq!(
        (o.src, o.dst),
        (peer, host),
        "mapped back to the inside host"
    );
    assert_eq!((o.src_mac, o.dst_mac, o.ttl), (PORT1_MAC, RS1_MAC, 63));

    let mut f = inside_tcp(host, peer, "A", b"");
    assert_eq!(on(w, 1, &mut f), tx(0));
    let mut f = inside_tcp(host, peer, "AP", b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(on(w, 1, &mut f), tx(0));
    let o = decode(&f);
    assert_eq!((o.src, o.dst), (wan, peer));
    assert_eq!(o.payload, b"GET / HTTP/1.0\r\n\r\n");
    let mut f = outside_tcp(peer, wan, "A", b"HTTP/1.0 200 OK\r\n");
    assert_eq!(on(w, 0, &mut f), tx(1));
    let o = decode(&f);
    assert_eq!(
        (o.src, o.dst, o.payload.as_slice()),
        (peer, host, &b"HTTP/1.0 200 OK\r\n"[..])
    );

    // The session as -Lnc sees it: client = inside host, VIP = RS = the peer, LIP = WAN.
    let (_, s, _) = w.fullnat().sessions().next().expect("one session");
    assert_eq!(
        (
            sa(Ipv4Addr::from(s.client_ip), s.client_port),
            sa(Ipv4Addr::from(s.vip), s.vport),
            sa(Ipv4Addr::from(s.rs_ip), s.rs_port),
            sa(Ipv4Addr::from(s.lip), s.lport),
        ),
        (host, peer, peer, wan)
    );

    // rr over the pool: the next connection goes out as WAN2.
    let mut f = inside_tcp(sa(RS2, 40001), peer, "S", b"");
    assert_eq!(on(w, 1, &mut f), tx(0));
    assert_eq!(*decode(&f).src.ip(), WAN2);

    // A reply for no session is dropped; an outside packet to a foreign address is not ours.
    let mut f = outside_tcp(peer, sa(WAN1, 9), "A", b"");
    assert_eq!(on(w, 0, &mut f), Verdict::Drop(DropReason::NoSession));
    let mut f = outside_tcp(peer, sa(Ipv4Addr::new(198, 18, 0, 77), 80), "S", b"");
    assert_eq!(on(w, 0, &mut f), Verdict::Drop(DropReason::NotForUs));
}

#[test]
fn snat_takes_only_what_its_rule_says() {
    let mut ws = workers(1, snat_rules());
    let w = &mut ws[0];
    let peer = sa(PEER, 80);
    // A source outside src-range.
    let mut f = inside_tcp(sa(Ipv4Addr::new(10, 0, 0, 30), 40000), peer, "S", b"");
    assert_eq!(on(w, 1, &mut f), Verdict::Drop(DropReason::NotForUs));
    // The right source arriving on the wrong port (iif).
    let mut f = inside_tcp(sa(RS1, 40000), peer, "S", b"");
    f[0..6].copy_from_slice(&PORT0_MAC);
    assert_eq!(on(w, 0, &mut f), Verdict::Drop(DropReason::NotForUs));
    // A destination that does not route out of the oif (the servers' own network).
    let mut f = inside_tcp(
        sa(RS1, 40000),
        sa(Ipv4Addr::new(10, 0, 0, 40), 80),
        "S",
        b"",
    );
    assert_eq!(on(w, 1, &mut f), Verdict::Drop(DropReason::NotForUs));
    // A mid-connection segment starts nothing.
    let mut f = inside_tcp(sa(RS1, 40000), peer, "A", b"");
    assert_eq!(on(w, 1, &mut f), Verdict::Drop(DropReason::NoSession));
    assert_eq!(w.fullnat().sessions().count(), 0);
}

#[test]
fn snat_carries_udp_and_icmp_echo() {
    let mut ws = workers(1, snat_rules());
    let w = &mut ws[0];
    let host = sa(RS1, 5000);
    let dns = sa(PEER, 53);

    let mut f = Vec::new();
    PacketBuilder::ethernet2(RS1_MAC, PORT1_MAC)
        .ipv4(RS1.octets(), PEER.octets(), 64)
        .udp(host.port(), dns.port())
        .write(&mut f, b"query")
        .unwrap();
    assert_eq!(on(w, 1, &mut f), tx(0));
    let o = decode(&f);
    assert_eq!((*o.src.ip(), o.dst), (WAN1, dns));
    let wan = o.src;
    let mut f = Vec::new();
    PacketBuilder::ethernet2(ROUTER_MAC, PORT0_MAC)
        .ipv4(PEER.octets(), WAN1.octets(), 64)
        .udp(dns.port(), wan.port())
        .write(&mut f, b"answer")
        .unwrap();
    assert_eq!(on(w, 0, &mut f), tx(1));
    let o = decode(&f);
    assert_eq!(
        (o.src, o.dst, o.payload.as_slice()),
        (dns, host, &b"answer"[..])
    );

    // ICMP echo: the identifier plays the port; the reply comes back with the host's own.
    let mut f = Vec::new();
    PacketBuilder::ethernet2(RS1_MAC, PORT1_MAC)
        .ipv4(RS1.octets(), PEER.octets(), 64)
        .icmpv4_echo_request(0x1234, 7)
        .write(&mut f, b"ping")
        .unwrap();
    assert_eq!(on(w, 1, &mut f), tx(0));
    let o = decode(&f);
    assert_eq!((*o.src.ip(), *o.dst.ip()), (WAN1, PEER));
    let Icmpv4Type::EchoRequest(e) = icmp_of(&o) else {
        panic!("{o:?}")
    };
    assert_eq!(e.seq, 7);
    let wan_id = e.id;
    let mut f = Vec::new();
    PacketBuilder::ethernet2(ROUTER_MAC, PORT0_MAC)
        .ipv4(PEER.octets(), WAN1.octets(), 64)
        .icmpv4_echo_reply(wan_id, 7)
        .write(&mut f, b"ping")
        .unwrap();
    assert_eq!(on(w, 0, &mut f), tx(1));
    let o = decode(&f);
    assert_eq!((*o.src.ip(), *o.dst.ip()), (PEER, RS1));
    let Icmpv4Type::EchoReply(e) = icmp_of(&o) else {
        panic!("{o:?}")
    };
    assert_eq!((e.id, e.seq), (0x1234, 7));
    assert_eq!(o.payload, b"ping");
    // An echo reply with an identifier no session gave is not forwarded.
    let mut f = Vec::new();
    PacketBuilder::ethernet2(ROUTER_MAC, PORT0_MAC)
        .ipv4(PEER.octets(), WAN1.octets(), 64)
        .icmpv4_echo_reply(wan_id.wrapping_add(1), 7)
        .write(&mut f, b"ping")
        .unwrap();
    assert!(matches!(
        on(w, 0, &mut f),
        Verdict::Drop(_) | Verdict::Redirect { .. }
    ));
}

#[test]
fn snat_replies_find_their_session_on_either_worker() {
    let mut ws = workers(2, snat_rules());
    let peer = sa(PEER, 80);
    for (i, port) in [40000u16, 40001, 40002, 40003].into_iter().enumerate() {
        let host = sa(RS1, port);
        let first = i % 2;
        let mut f = inside_tcp(host, peer, "S", b"");
        let (owner, v) = run_steered(&mut ws, first, &mut f, 1_000 * S);
        assert_eq!((owner, v), (first, tx(0)), "created where it arrived");
        let wan = decode(&f).src;
        // The reply lands on the other worker: it goes to the owner of its local port.
        let mut f = outside_tcp(peer, wan, "SA", b"");
        let (owner, v) = run_steered(&mut ws, 1 - first, &mut f, 1_000 * S);
        assert_eq!((owner, v), (first, tx(1)), "reply {i} at the owner");
        assert_eq!(decode(&f).dst, host);
    }
}

/// NAT real servers inside SNAT's src-range: their replies (to a client's own address, not
/// ours) stay NAT's on whichever worker they land, and an SNAT flow of the same hosts still
/// goes out through SNAT and comes back.
#[test]
fn nat_replies_stay_nat_beside_snat_with_two_workers() {
    let mut r = snat_rules();
    for rs in &mut r.services[0].reals {
        rs.method = fnat_engine::rules::Method::Nat;
    }
    let mut ws = workers(2, r);
    let client = sa(CLIENT, 40000);
    let owner = usize::from(fnat_engine::fnat::nat_owner(u32::from(CLIENT), 2));
    let mut f = Vec::new();
    PacketBuilder::ethernet2(ROUTER_MAC, PORT0_MAC)
        .ipv4(CLIENT.octets(), VIP.octets(), 64)
        .tcp(40000, 80, 1000, 65535)
        .syn()
        .write(&mut f, b"")
        .unwrap();
    let (w, v) = run_steered(&mut ws, 1 - owner, &mut f, 1_000 * S);
    assert_eq!((w, v), (owner, tx(1)));
    let rs = decode(&f).dst;
    // The real server's SYN-ACK to the client lands on the other worker: NAT's, not SNAT's.
    let mut f = inside_tcp(rs, client, "SA", b"");
    let (w, v) = run_steered(&mut ws, 1 - owner, &mut f, 1_000 * S);
    assert_eq!((w, v), (owner, tx(0)));
    let o = decode(&f);
    assert_eq!((o.src, o.dst), (sa(VIP, 80), client), "NAT's reply rewrite");
    // A connection of the same host to the outside: SNAT, on whichever worker it lands.
    for first in [0, 1] {
        let peer = sa(PEER, 443);
        let host = sa(RS1, 50000 + first as u16);
        let mut f = inside_tcp(host, peer, "S", b"");
        let (w, v) = run_steered(&mut ws, first, &mut f, 1_000 * S);
        assert_eq!(v, tx(0));
        let o = decode(&f);
        assert!([WAN1, WAN2].contains(o.src.ip()), "{o:?}");
        assert_eq!(o.dst, peer);
        let mut f = outside_tcp(peer, o.src, "SA", b"");
        let (w2, v) = run_steered(&mut ws, 1 - w, &mut f, 1_000 * S);
        assert_eq!((w2, v), (w, tx(1)));
        assert_eq!(decode(&f).dst, host);
    }
}
