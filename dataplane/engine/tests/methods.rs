//! Worker-level tests of the forwarding methods beside full NAT: NAT (both directions, ICMP
//! errors both ways, two workers), DR (only the destination MAC changes, input-only states)
//! and TUN (IPIP, GUE, GRE outer headers around the byte-identical packet, fragmentation
//! needed). Frames are built and read back with etherparse, never the engine's parser.

mod common;

use common::*;
use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::{IpHeaders, Ipv4Header, PacketBuilder, PacketHeaders, TransportHeader};
use fnat_engine::rules::{Method, Rules, Tunnel, TunnelKind};
use fnat_engine::session::ConnState;
use fnat_engine::{DropReason, Verdict, Worker};
use std::net::{Ipv4Addr, SocketAddrV4};

fn tx(port: u16) -> Verdict {
    Verdict::Transmit { port }
}

/// The lab's rules with every real server of the TCP and UDP services forwarded by `method`
/// (DR keeps the service's port: 80 and 53).
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

fn state_of(w: &Worker, client_port: u16) -> ConnState {
    w.fullnat()
        .sessions()
        .find(|(_, s, _)| s.client_port == client_port)
        .map(|(_, s, _)| s.state)
        .expect("session")
}

fn conns(w: &Worker) -> (u64, u64) {
    let r = &w.stats().services[0].reals;
    (
        r.iter().map(|r| r.active_conns).sum(),
        r.iter().map(|r| r.inactive_conns).sum(),
    )
}

/// A frame from a real server (its MAC) on the servers' port, to anywhere.
fn from_rs(src: SocketAddrV4, dst: SocketAddrV4, flags: &str, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(rs_mac(*src.ip()), PORT1_MAC)
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .tcp(src.port(), dst.port(), 5000, 65535);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(1001);
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// An IP packet (no Ethernet header) of TCP `src` → `dst`: what an ICMP error quotes.
fn ip_tcp(src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .tcp(src.port(), dst.port(), 1, 100)
        .write(&mut out, b"")
        .unwrap();
    out
}

/// The addresses and ports of the packet an ICMP error quotes.
fn quoted(payload: &[u8]) -> (SocketAddrV4, SocketAddrV4) {
    let (q, rest) = Ipv4Header::from_slice(payload).expect("quoted ipv4");
    let port = |i: usize| u16::from_be_bytes([rest[i], rest[i + 1]]);
    (
        sa(Ipv4Addr::from(q.source), port(0)),
        sa(Ipv4Addr::from(q.destination), port(2)),
    )
}

#[test]
fn nat_rewrites_the_destination_in_and_the_source_out() {
    let mut ws = workers(1, rules_with(Method::Nat));
    let w = &mut ws[0];
    let client = sa(CLIENT, 40000);
    let t = 1_000 * S;

    let mut f = tcp(client, sa(VIP, 80), "S", b"");
    assert_eq!(run(w, &mut f, t), tx(1));
    let o = decode(&f);
    assert_eq!(
        (o.src, o.dst),
        (client, sa(RS1, 8080)),
        "only the destination"
    );
    assert_eq!((o.src_mac, o.dst_mac, o.ttl), (PORT1_MAC, RS1_MAC, 63));

    // The reply to the client's own address (not one of ours) comes back through fnatd.
    let mut f = from_rs(sa(RS1, 8080), client, "SA", b"");
    assert_eq!(w.process(1, &mut f, t), tx(0));
    let o = decode(&f);
    assert_eq!((o.src, o.dst), (sa(VIP, 80), client), "only the source");
    assert_eq!((o.src_mac, o.dst_mac, o.ttl), (PORT0_MAC, ROUTER_MAC, 63));
    assert_eq!(state_of(w, 40000), ConnState::SynRecv);

    let mut f = tcp(client, sa(VIP, 80), "A", b"");
    assert_eq!(run(w, &mut f, t), tx(1));
    assert_eq!(state_of(w, 40000), ConnState::Established);
    assert_eq!(conns(w), (1, 0));

    // Established both ways: the fast path, byte for byte the same rewrite.
    let fast = w.stats().fast_path;
    let mut f = tcp(client, sa(VIP, 80), "AP", b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(run(w, &mut f, t), tx(1));
    let o = decode(&f);
    assert_eq!(
        (o.src, o.dst, o.payload.as_slice()),
        (client, sa(RS1, 8080), &b"GET / HTTP/1.0\r\n\r\n"[..])
    );
    let mut f = from_rs(sa(RS1, 8080), client, "A", b"HTTP/1.0 200 OK\r\n");
    assert_eq!(w.process(1, &mut f, t), tx(0));
    let o = decode(&f);
    assert_eq!((o.src, o.dst), (sa(VIP, 80), client));
    assert_eq!(w.stats().fast_path, fast + 2);

    // A reply by the client-side port is refused (spoofed); one for no session is not ours.
    let mut f = from_rs(sa(RS1, 8080), client, "A", b"");
    f[0..6].copy_from_slice(&PORT0_MAC);
    assert_eq!(
        w.process(0, &mut f, t),
        Verdict::Drop(DropReason::WrongIngress)
    );
    let mut f = from_rs(sa(RS1, 8080), sa(CLIENT, 40001), "A", b"");
    assert_eq!(w.process(1, &mut f, t), Verdict::Drop(DropReason::NotForUs));
    // Without NAT real servers, traffic to foreign addresses is not looked at.
    let mut fnat = workers(1, rules(64, 1024, 65535));
    let mut f = from_rs(sa(RS1, 8080), client, "A", b"");
    assert_eq!(
        fnat[0].process(1, &mut f, t),
        Verdict::Drop(DropReason::NotForUs)
    );
}

#[test]
fn nat_translates_icmp_errors_both_ways() {
    let mut ws = workers(1, rules_with(Method::Nat));
    let w = &mut ws[0];
    let client = sa(CLIENT, 40000);
    let t = 1_000 * S;
    let mut f = tcp(client, sa(VIP, 80), "S", b"");
    assert_eq!(run(w, &mut f, t), tx(1));

    // From the real-server side (to the client's address): becomes VIP → client, quoting
    // client → VIP.
    let unreachable = etherparse::Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(RS1_MAC, PORT1_MAC)
        .ipv4(RS1.octets(), CLIENT.octets(), 64)
        .icmpv4(unreachable.clone())
        .write(&mut f, &ip_tcp(client, sa(RS1, 8080)))
        .unwrap();
    assert_eq!(w.process(1, &mut f, t), tx(0));
    let o = decode(&f);
    assert_eq!((*o.src.ip(), *o.dst.ip()), (VIP, CLIENT));
    assert_eq!(quoted(&o.payload), (client, sa(VIP, 80)));

    // From the client side (to the VIP, quoting VIP → client): goes to the real server from
    // the client, quoting RS → client.
    let mut f = icmp_error(CLIENT, VIP, unreachable, &ip_tcp(sa(VIP, 80), client));
    assert_eq!(run(w, &mut f, t), tx(1));
    let o = decode(&f);
    assert_eq!(
        (*o.src.ip(), *o.dst.ip(), o.dst_mac),
        (CLIENT, RS1, RS1_MAC)
    );
    assert_eq!(quoted(&o.payload), (sa(RS1, 8080), client));
    assert_eq!(w.stats().icmp_errors_translated, 2);
}

#[test]
fn nat_with_two_workers_meets_on_the_clients_owner() {
    let mut ws = workers(2, rules_with(Method::Nat));
    let t = 1_000 * S;
    let mut owners = [0usize; 2];
    for i in 0..16u8 {
        let client = sa(Ipv4Addr::new(203, 0, 113, 10 + i), 40000 + u16::from(i));
        // The request arrives on either worker (RSS), the reply on either one too.
        let first = usize::from(i % 2);
        let mut f = tcp(client, sa(VIP, 80), "S", b"");
        let (owner, v) = run_steered(&mut ws, first, &mut f, t);
        assert_eq!(v, tx(1), "{client}");
        let rs = decode(&f).dst;
        owners[owner] += 1;
        for reply_on in [0, 1] {
            let mut f = from_rs(rs, client, "SA", b"");
            let v = ws[reply_on].process(1, &mut f, t);
            let (decided, v) = match v {
                Verdict::Redirect { worker } => (
                    usize::from(worker),
                    ws[usize::from(worker)].process(1, &mut f, t),
                ),
                v => (reply_on, v),
            };
            assert_eq!((decided, v), (owner, tx(0)), "{client} reply on {reply_on}");
            assert_eq!(decode(&f).src, sa(VIP, 80));
        }
        // An ICMP error from the real server about the client's packet finds the owner too.
        for error_on in [0, 1] {
            let mut f = Vec::new();
            PacketBuilder::ethernet2(rs_mac(*rs.ip()), PORT1_MAC)
                .ipv4(rs.ip().octets(), client.ip().octets(), 64)
                .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                    DestUnreachableHeader::Port,
                ))
                .write(&mut f, &ip_tcp(client, rs))
                .unwrap();
            let (decided, v) = match ws[error_on].process(1, &mut f, t) {
                Verdict::Redirect { worker } => (
                    usize::from(worker),
                    ws[usize::from(worker)].process(1, &mut f, t),
                ),
                v => (error_on, v),
            };
            assert_eq!((decided, v), (owner, tx(0)), "{client} error on {error_on}");
            assert_eq!(quoted(&decode(&f).payload), (client, sa(VIP, 80)));
        }
    }
    assert!(owners[0] > 0 && owners[1] > 0, "clients spread: {owners:?}");
    let sessions: u64 = ws.iter().map(|w| w.stats().sessions).sum();
    assert_eq!(sessions, 16);
}

#[test]
fn dr_changes_only_the_destination_mac_and_follows_input_only_states() {
    let mut ws = workers(1, rules_with(Method::Dr));
    let w = &mut ws[0];
    let client = sa(CLIENT, 40000);
    let t = 1_000 * S;

    let mut f = tcp(client, sa(VIP, 80), "S", b"");
    let before = f.clone();
    assert_eq!(run(w, &mut f, t), tx(1));
    assert_eq!(&f[0..6], &RS1_MAC, "destination MAC: the real server's");
    assert_eq!(&f[6..12], &PORT1_MAC);
    assert_eq!(
        &f[12..],
        &before[12..],
        "no IP or L4 byte changes (TTL neither)"
    );
    let o = decode(&f);
    assert_eq!((o.src, o.dst, o.ttl), (client, sa(VIP, 80), 64));
    assert_eq!(state_of(w, 40000), ConnState::SynRecv);
    assert_eq!(conns(w), (0, 1));

    // Only the client's segments are seen: its ACK establishes the connection.
    let mut f = tcp(client, sa(VIP, 80), "A", b"");
    assert_eq!(run(w, &mut f, t), tx(1));
    assert_eq!(state_of(w, 40000), ConnState::Established);
    assert_eq!(conns(w), (1, 0));
    let fast = w.stats().fast_path;
    let mut f = tcp(client, sa(VIP, 80), "AP", b"data");
    let before = f.clone();
    assert_eq!(run(w, &mut f, t), tx(1));
    assert_eq!(w.stats().fast_path, fast + 1, "DR takes the fast path");
    assert_eq!((&f[0..6], &f[12..]), (&RS1_MAC[..], &before[12..]));
    let mut f = tcp(client, sa(VIP, 80), "FA", b"");
    assert_eq!(run(w, &mut f, t), tx(1));
    assert_eq!(state_of(w, 40000), ConnState::FinWait);
    assert_eq!(conns(w), (0, 1));

    // Replies never pass fnatd: a DR session has no real-server key.
    let mut f = from_rs(sa(RS1, 80), client, "A", b"");
    assert_eq!(w.process(1, &mut f, t), Verdict::Drop(DropReason::NotForUs));

    // UDP: MAC only as well.
    let mut f = udp(sa(CLIENT, 5000), sa(VIP, 53), b"query");
    let before = f.clone();
    assert_eq!(run(w, &mut f, t), tx(1));
    assert_eq!((&f[0..6], &f[12..]), (&RS1_MAC[..], &before[12..]));
}

#[test]
fn dr_with_two_workers_keeps_each_flow_where_it_arrives() {
    let mut ws = workers(2, rules_with(Method::Dr));
    let t = 1_000 * S;
    for i in 0..8u16 {
        let client = sa(CLIENT, 41000 + i);
        let on = usize::from(i % 2);
        let mut rs_mac = None;
        for flags in ["S", "A", "AP"] {
            let mut f = tcp(client, sa(VIP, 80), flags, b"");
            assert_eq!(run(&mut ws[on], &mut f, t), tx(1), "{client} {flags}");
            let mac: [u8; 6] = f[0..6].try_into().unwrap();
            assert_eq!(*rs_mac.get_or_insert(mac), mac, "one flow, one real server");
        }
    }
    assert_eq!(ws[0].stats().sessions + ws[1].stats().sessions, 8);
    assert_eq!(ws[0].stats().redirected + ws[1].stats().redirected, 0);
}

fn tun(kind: TunnelKind, port: u16, csum: bool) -> Method {
    Method::Tun(Tunnel { kind, port, csum })
}

/// Ones'-complement sum over `data` (RFC 1071), written here for the test.
fn ones_complement(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn tun_wraps_the_untouched_packet_in_ipip_gue_and_gre() {
    let t = 1_000 * S;
    for (method, proto) in [
        (tun(TunnelKind::Ipip, 0, false), 4u8),
        (tun(TunnelKind::Gue, 6080, false), 17),
        (tun(TunnelKind::Gue, 6080, true), 17),
        (tun(TunnelKind::Gre, 0, false), 47),
        (tun(TunnelKind::Gre, 0, true), 47),
    ] {
        let mut ws = workers(1, rules_with(method));
        let w = &mut ws[0];
        let client = sa(CLIENT, 40000);
        let mut f = tcp(client, sa(VIP, 80), "S", b"");
        // Ethernet padding is not part of the packet and does not go into the tunnel.
        let inner = f[14..].to_vec();
        f.extend_from_slice(&[0; 6]);
        assert_eq!(run(w, &mut f, t), tx(1), "{method:?}");
        assert_eq!(&f[0..6], &RS1_MAC);
        assert_eq!(&f[6..12], &PORT1_MAC);
        let (outer, rest) = Ipv4Header::from_slice(&f[14..]).expect("outer ipv4");
        assert_eq!(outer.header_checksum, outer.calc_header_checksum());
        assert_eq!(outer.protocol.0, proto, "{method:?}");
        assert_eq!(
            Ipv4Addr::from(outer.source),
            PORT1_IP,
            "the port's address toward RS1"
        );
        assert_eq!(Ipv4Addr::from(outer.destination), RS1);
        assert_eq!(outer.time_to_live, 64);
        assert!(outer.dont_fragment, "DF copied from the inner header");
        let inner_out = match method {
            Method::Tun(Tunnel {
                kind: TunnelKind::Ipip,
                ..
            }) => rest,
            Method::Tun(Tunnel {
                kind: TunnelKind::Gue,
                csum,
                ..
            }) => {
                let h = PacketHeaders::from_ip_slice(&f[14..]).expect("udp");
                let Some(TransportHeader::Udp(u)) = h.transport else {
                    panic!("not udp")
                };
                assert_eq!(u.destination_port, 6080);
                assert!(u.source_port >= 49152, "{}", u.source_port);
                assert_eq!(usize::from(u.length), 8 + 4 + inner.len());
                let body = h.payload.slice();
                if csum {
                    assert_eq!(u.checksum, u.calc_checksum_ipv4(&outer, body).unwrap());
                } else {
                    assert_eq!(u.checksum, 0);
                }
                assert_eq!(&body[..4], &[0, 4, 0, 0], "GUE: version 0, IPIP inside");
                &body[4..]
            }
            Method::Tun(Tunnel {
                kind: TunnelKind::Gre,
                csum,
                ..
            }) => {
                if csum {
                    assert_eq!(&rest[..4], &[0x80, 0, 0x08, 0x00]);
                    assert_eq!(ones_complement(rest), 0, "GRE checksum");
                    &rest[8..]
                } else {
                    assert_eq!(&rest[..4], &[0, 0, 0x08, 0x00]);
                    &rest[4..]
                }
            }
            _ => unreachable!(),
        };
        assert_eq!(
            inner_out,
            &inner[..],
            "{method:?}: inner packet byte-identical"
        );
        assert_eq!(state_of(w, 40000), ConnState::SynRecv);
        // The client's next segment takes the same path (input-only states).
        let mut f = tcp(client, sa(VIP, 80), "A", b"");
        assert_eq!(run(w, &mut f, t), tx(1));
        assert_eq!(state_of(w, 40000), ConnState::Established);
    }
}

#[test]
fn gue_source_ports_follow_the_flow() {
    let mut ws = workers(1, rules_with(tun(TunnelKind::Gue, 6080, false)));
    let w = &mut ws[0];
    let t = 1_000 * S;
    let sport = |f: &[u8]| u16::from_be_bytes([f[34], f[35]]);
    let mut seen = std::collections::BTreeSet::new();
    for cport in 40000..40016 {
        let mut a = tcp(sa(CLIENT, cport), sa(VIP, 80), "S", b"");
        assert_eq!(run(w, &mut a, t), tx(1));
        let mut b = tcp(sa(CLIENT, cport), sa(VIP, 80), "A", b"");
        assert_eq!(run(w, &mut b, t), tx(1));
        assert_eq!(sport(&a), sport(&b), "one flow, one source port");
        seen.insert(sport(&a));
    }
    assert!(seen.len() > 8, "flows spread over source ports: {seen:?}");
}

/// A TCP frame from the client of `len` IP bytes, DF as given.
fn big(client: SocketAddrV4, len: usize, df: bool) -> Vec<u8> {
    let mut ip = Ipv4Header::new(
        0,
        64,
        etherparse::IpNumber::TCP,
        client.ip().octets(),
        VIP.octets(),
    )
    .unwrap();
    ip.dont_fragment = df;
    let payload = vec![0x5a; len - 20 - 20];
    let mut out = Vec::new();
    PacketBuilder::ethernet2(ROUTER_MAC, PORT0_MAC)
        .ip(IpHeaders::Ipv4(ip, Default::default()))
        .tcp(client.port(), 80, 1, 100)
        .syn()
        .write(&mut out, &payload)
        .unwrap();
    out
}

#[test]
fn tun_answers_too_big_df_packets_with_fragmentation_needed() {
    let t = 1_000 * S;
    for (method, overhead) in [
        (tun(TunnelKind::Ipip, 0, false), 20u16),
        (tun(TunnelKind::Gue, 6080, true), 32),
        (tun(TunnelKind::Gre, 0, true), 28),
    ] {
        let mut ws = workers(1, rules_with(method));
        let w = &mut ws[0];
        let client = sa(CLIENT, 40000);
        // Just fits.
        let mut f = big(client, 1500 - usize::from(overhead), true);
        assert_eq!(run(w, &mut f, t), tx(1), "{method:?}");
        assert_eq!(f.len(), 14 + 1500);
        // One byte more: ICMP fragmentation needed from the VIP to the client.
        let mut f = big(sa(CLIENT, 40001), 1501 - usize::from(overhead), true);
        let inner = f[14..14 + 28].to_vec();
        assert_eq!(run(w, &mut f, t), tx(0), "{method:?}");
        let o = decode(&f);
        assert_eq!((*o.src.ip(), *o.dst.ip()), (VIP, CLIENT));
        assert_eq!((o.src_mac, o.dst_mac), (PORT0_MAC, ROUTER_MAC));
        assert_eq!(
            o.l4,
            L4::Icmp(etherparse::Icmpv4Type::DestinationUnreachable(
                DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 1500 - overhead
                }
            ))
        );
        assert_eq!(o.payload, inner, "quotes the header and 8 bytes");
        assert_eq!(w.stats().tunnel_frag_needed, 1);
        // Without DF: dropped (fnatd does not fragment), counted.
        let mut f = big(sa(CLIENT, 40002), 1501 - usize::from(overhead), false);
        assert_eq!(run(w, &mut f, t), Verdict::Drop(DropReason::TooBig));
        assert_eq!(w.stats().drops[DropReason::TooBig as usize], 1);
    }
}

#[test]
fn one_service_mixes_methods() {
    let mut r = rules(1024, 1024, 65535);
    r.services[0].reals[0].method = Method::Nat;
    r.services[0].reals[1].method = tun(TunnelKind::Ipip, 0, false);
    let mut ws = workers(1, r);
    let w = &mut ws[0];
    let t = 1_000 * S;
    let mut a = tcp(sa(CLIENT, 40000), sa(VIP, 80), "S", b"");
    assert_eq!(run(w, &mut a, t), tx(1));
    assert_eq!(decode(&a).dst, sa(RS1, 8080), "rr: RS1 by NAT");
    let mut b = tcp(sa(CLIENT, 40001), sa(VIP, 80), "S", b"");
    assert_eq!(run(w, &mut b, t), tx(1));
    assert_eq!(b[14 + 9], 4, "RS2 by IPIP");
    assert_eq!(
        w.stats()
            .local_addrs
            .iter()
            .map(|l| l.ports_in_use)
            .sum::<u64>(),
        0,
        "no local port taken"
    );
    // Sessions end cleanly (no local port to give back).
    w.housekeeping(t + 3_600 * S, 1024);
    assert_eq!(w.stats().sessions, 0);
}

#[test]
fn a_nat_reply_key_taken_by_another_session_is_a_counted_clash() {
    let mut r = rules_with(Method::Nat);
    // A second TCP service to the same real servers: VIP:81 → RS1:8080, RS2:8080.
    let mut second = r.services[0].clone();
    second.id = 9;
    second.port = 81;
    r.services.push(second);
    let mut ws = workers(1, r);
    let w = &mut ws[0];
    let t = 1_000 * S;
    let client = sa(CLIENT, 40000);
    let mut f = tcp(client, sa(VIP, 80), "S", b"");
    assert_eq!(run(w, &mut f, t), tx(1));
    assert_eq!(decode(&f).dst, sa(RS1, 8080));
    // The same client port to VIP:81 is scheduled to RS1:8080 too (rr starts there): its
    // reply would be indistinguishable from the first session's.
    let mut f = tcp(client, sa(VIP, 81), "S", b"");
    assert_eq!(run(w, &mut f, t), Verdict::Drop(DropReason::SessionClash));
    assert_eq!(w.stats().drops[DropReason::SessionClash as usize], 1);
    assert_eq!(w.stats().sessions, 1);
}

#[test]
fn sessions_made_before_a_service_had_nat_run_on_where_they_are() {
    let mut ws = workers(2, rules(1024, 1024, 65535));
    let t = 1_000 * S;
    // A full-NAT connection from a client whose NAT owner is the other worker.
    let (client, on) = (0..64u8)
        .map(|i| Ipv4Addr::new(203, 0, 113, 100 + i))
        .find_map(|ip| {
            let owner = fnat_engine::fnat::nat_owner(u32::from(ip), 2);
            (owner == 1).then_some((sa(ip, 40000), 0usize))
        })
        .expect("a client owned by worker 1");
    let mut f = tcp(client, sa(VIP, 80), "S", b"");
    assert_eq!(run(&mut ws[on], &mut f, t), tx(1));
    // RS2 becomes a NAT real server: the service now steers new clients to their owner...
    let mut r = rules(1024, 1024, 65535);
    r.services[0].reals[1].method = Method::Nat;
    let r = std::sync::Arc::new(r);
    for w in &mut ws {
        w.update_rules(r.clone());
    }
    // ...but the running connection stays on its worker.
    let mut f = tcp(client, sa(VIP, 80), "A", b"");
    assert_eq!(run(&mut ws[on], &mut f, t), tx(1));
    assert_eq!(*decode(&f).src.ip(), LIP1, "still full NAT");
    // A new connection of that client goes to its owner.
    let mut f = tcp(sa(*client.ip(), 40001), sa(VIP, 80), "S", b"");
    assert_eq!(run(&mut ws[on], &mut f, t), Verdict::Redirect { worker: 1 });
}
