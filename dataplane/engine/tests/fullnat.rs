//! Worker-level golden tests of the full-NAT pipeline: frames built with etherparse, results
//! decoded and checksum-verified with etherparse.

mod common;

use std::sync::Arc;

use common::*;
use etherparse::icmpv4::DestUnreachableHeader;
use etherparse::Icmpv4Type;
use fnat_engine::rules::SchedulerKind;
use fnat_engine::session::ConnState;
use fnat_engine::{DropReason, Verdict, Worker};

fn tx(port: u16) -> Verdict {
    Verdict::Transmit { port }
}

fn state_of(w: &Worker, client_port: u16) -> ConnState {
    w.fullnat()
        .sessions()
        .find(|(_, s, _)| s.client_port == client_port)
        .map(|(_, s, _)| s.state)
        .expect("session")
}

fn drops(w: &Worker, r: DropReason) -> u64 {
    w.stats().drops[r as usize]
}

/// Sends a SYN from CLIENT:cport on `w` and returns the LIP:lport and RS:rport it was sent to.
fn open(w: &mut Worker, cport: u16, now: u64) -> (std::net::SocketAddrV4, std::net::SocketAddrV4) {
    let mut f = tcp(sa(CLIENT, cport), sa(VIP, 80), "S", b"");
    assert_eq!(run(w, &mut f, now), tx(1));
    let o = decode(&f);
    (o.src, o.dst)
}

#[test]
fn tcp_handshake_data_and_fin_teardown() {
    let mut ws = workers(1, rules(1024, 1024, 65535));
    let w = &mut ws[0];
    let client = sa(CLIENT, 40000);
    let t = 1_000 * S;

    // SYN: client → VIP:80 becomes LIP1:lport → RS1:8080 out of port 1.
    let mut f = tcp(client, sa(VIP, 80), "S", b"");
    assert_eq!(run(w, &mut f, t), tx(1));
    let o = decode(&f);
    assert_eq!(o.src_mac, PORT1_MAC);
    assert_eq!(o.dst_mac, RS1_MAC);
    assert_eq!(*o.src.ip(), LIP1);
    assert_eq!(o.dst, sa(RS1, 8080));
    assert_eq!(o.ttl, 63);
    assert_eq!(tcp_flags(&o), (true, false, false, false));
    let lip = o.src;
    assert_eq!(state_of(w, 40000), ConnState::SynRecv);

    // SYN-ACK: RS1:8080 → LIP1:lport becomes VIP:80 → client out of port 0.
    let mut f = tcp(sa(RS1, 8080), lip, "SA", b"");
    assert_eq!(run(w, &mut f, t + 1), tx(0));
    let o = decode(&f);
    assert_eq!((o.src, o.dst), (sa(VIP, 80), client));
    assert_eq!((o.src_mac, o.dst_mac), (PORT0_MAC, ROUTER_MAC));
    assert_eq!(tcp_flags(&o), (true, true, false, false));
    assert_eq!(state_of(w, 40000), ConnState::SynRecv);

    // ACK + data both ways.
    for (i, (from_client, flags, data)) in [
        (true, "A", &b""[..]),
        (true, "AP", &b"GET / HTTP/1.0\r\n\r\n"[..]),
        (false, "AP", &b"HTTP/1.0 200 OK\r\n\r\nhello"[..]),
    ]
    .into_iter()
    .enumerate()
    {
        let now = t + 10 + i as u64;
        let mut f = if from_client {
            tcp(client, sa(VIP, 80), flags, data)
        } else {
            tcp(sa(RS1, 8080), lip, flags, data)
        };
        let v = run(w, &mut f, now);
        let o = decode(&f);
        assert_eq!(o.payload, data);
        if from_client {
            assert_eq!(v, tx(1));
            assert_eq!((o.src, o.dst), (lip, sa(RS1, 8080)));
        } else {
            assert_eq!(v, tx(0));
            assert_eq!((o.src, o.dst), (sa(VIP, 80), client));
        }
        assert_eq!(state_of(w, 40000), ConnState::Established);
    }
    let rs = w.stats().real(TCP_SVC, 11).unwrap().clone();
    assert_eq!((rs.active_conns, rs.inactive_conns), (1, 0));

    // Client closes: FIN → CLOSE_WAIT, RS FIN → TIME_WAIT, last ACK stays TIME_WAIT.
    let mut f = tcp(client, sa(VIP, 80), "FA", b"");
    assert_eq!(run(w, &mut f, t + 20), tx(1));
    assert_eq!(tcp_flags(&decode(&f)), (false, true, true, false));
    assert_eq!(state_of(w, 40000), ConnState::CloseWait);
    let mut f = tcp(sa(RS1, 8080), lip, "FA", b"");
    assert_eq!(run(w, &mut f, t + 21), tx(0));
    assert_eq!(state_of(w, 40000), ConnState::TimeWait);
    let mut f = tcp(client, sa(VIP, 80), "A", b"");
    assert_eq!(run(w, &mut f, t + 22), tx(1));
    assert_eq!(state_of(w, 40000), ConnState::TimeWait);

    let st = w.stats();
    let svc = st.service(TCP_SVC).unwrap();
    assert_eq!(svc.traffic.conns, 1);
    assert_eq!(svc.traffic.packets_in, 5);
    assert_eq!(svc.traffic.packets_out, 3);
    let rs = st.real(TCP_SVC, 11).unwrap();
    assert_eq!((rs.active_conns, rs.inactive_conns), (0, 1));
    assert_eq!(rs.traffic.conns, 1);
    assert_eq!(st.transmitted, 8);
    assert_eq!(st.dropped(), 0);
    assert_eq!(st.sessions, 1);

    // TIME_WAIT lasts 120 s after the last packet; then the port is free again.
    assert_eq!(w.housekeeping(t + 22 + 120 * S - 1, 100), 0);
    assert_eq!(w.housekeeping(t + 22 + 121 * S, 100), 1);
    assert_eq!(w.stats().sessions, 0);
    assert_eq!(w.stats().local_addr(LIP1).unwrap().ports_in_use, 0);
    let rs = w.stats().real(TCP_SVC, 11).unwrap();
    assert_eq!((rs.active_conns, rs.inactive_conns), (0, 0));
}

#[test]
fn server_closes_first_and_reset() {
    let mut ws = workers(1, rules(64, 2000, 2999));
    let w = &mut ws[0];
    let client = sa(CLIENT, 41000);
    let (lip, rs) = open(w, 41000, S);
    let steps: [(bool, &str, ConnState); 5] = [
        (false, "SA", ConnState::SynRecv),
        (true, "A", ConnState::Established),
        (false, "FA", ConnState::FinWait),
        (true, "FA", ConnState::TimeWait),
        (false, "A", ConnState::TimeWait),
    ];
    for (from_client, flags, expect) in steps {
        let mut f = if from_client {
            tcp(client, sa(VIP, 80), flags, b"")
        } else {
            tcp(rs, lip, flags, b"")
        };
        assert!(matches!(run(w, &mut f, 2 * S), Verdict::Transmit { .. }));
        decode(&f);
        assert_eq!(state_of(w, 41000), expect, "after {flags}");
    }
    // A reset from the RS on another connection: CLOSE, 10 s.
    let (lip2, rs2) = open(w, 41001, 3 * S);
    let mut f = tcp(rs2, lip2, "RA", b"");
    assert_eq!(run(w, &mut f, 3 * S), tx(0));
    assert_eq!(state_of(w, 41001), ConnState::Close);
    assert_eq!(w.housekeeping(13 * S - 1, 10), 0);
    assert_eq!(w.housekeeping(13 * S, 10), 1);
}

#[test]
fn two_workers_reply_on_the_wrong_worker_is_redirected() {
    let mut ws = workers(2, rules(256, 1024, 65535));
    let client = sa(CLIENT, 42000);
    // The SYN lands on worker 1: its lport is odd.
    let mut f = tcp(client, sa(VIP, 80), "S", b"");
    assert_eq!(run(&mut ws[1], &mut f, S), tx(1));
    let o = decode(&f);
    let (lip, rs) = (o.src, o.dst);
    assert_eq!(lip.port() % 2, 1);

    // The SYN-ACK arrives on worker 0: handed over unchanged, then translated by worker 1.
    let mut f = tcp(rs, lip, "SA", b"");
    let before = f.clone();
    assert_eq!(run(&mut ws[0], &mut f, S), Verdict::Redirect { worker: 1 });
    assert_eq!(f, before);
    assert_eq!(ws[0].stats().redirected, 1);
    assert_eq!(run(&mut ws[1], &mut f, S), tx(0));
    let o = decode(&f);
    assert_eq!((o.src, o.dst), (sa(VIP, 80), client));

    // A SYN on worker 0 gets an even port; its replies steer to worker 0.
    let mut f = tcp(sa(CLIENT, 42001), sa(VIP, 80), "S", b"");
    assert_eq!(run(&mut ws[0], &mut f, S), tx(1));
    let o = decode(&f);
    assert_eq!(o.src.port() % 2, 0);
    let mut r = tcp(o.dst, o.src, "SA", b"");
    let (who, v) = run_steered(&mut ws, 1, &mut r, S);
    assert_eq!((who, v), (0, tx(0)));
    assert_eq!(decode(&r).dst, sa(CLIENT, 42001));
    assert_eq!(ws[1].stats().redirected, 1);
}

#[test]
fn udp_flow_both_ways() {
    let mut ws = workers(1, rules(64, 1024, 65535));
    let w = &mut ws[0];
    let client = sa(CLIENT, 5555);
    let mut f = udp(client, sa(VIP, 53), b"query");
    assert_eq!(run(w, &mut f, S), tx(1));
    let o = decode(&f);
    assert_eq!(*o.src.ip(), LIP1);
    assert_eq!(o.dst, sa(RS1, 5353));
    assert_eq!(o.payload, b"query");
    assert_eq!(state_of(w, 5555), ConnState::Udp);
    let lip = o.src;

    let mut f = udp(sa(RS1, 5353), lip, b"answer");
    assert_eq!(run(w, &mut f, 2 * S), tx(0));
    let o = decode(&f);
    assert_eq!((o.src, o.dst), (sa(VIP, 53), client));
    assert_eq!(o.payload, b"answer");

    // A datagram without checksum keeps it at 0.
    let mut f = udp(client, sa(VIP, 53), b"again");
    f[14 + 20 + 6] = 0;
    f[14 + 20 + 7] = 0;
    assert_eq!(run(w, &mut f, 3 * S), tx(1));
    assert_eq!(decode(&f).l4, L4::Udp { checksum: 0 });

    let rs = w.stats().real(UDP_SVC, 21).unwrap();
    assert_eq!((rs.active_conns, rs.inactive_conns), (0, 1));
    // UDP timeout: 300 s after the last packet.
    assert_eq!(w.housekeeping(3 * S + 300 * S - 1, 10), 0);
    assert_eq!(w.housekeeping(3 * S + 300 * S, 10), 1);
}

#[test]
fn icmp_echo_to_vip_lip_and_port_address() {
    let mut ws = workers(1, rules(64, 1024, 65535));
    let w = &mut ws[0];
    for (src, dst, port) in [(CLIENT, VIP, 0), (RS1, LIP1, 1), (CLIENT, PORT0_IP, 0)] {
        let mut f = echo_request(src, dst, 77, 3);
        assert_eq!(run(w, &mut f, S), tx(port));
        let o = decode(&f);
        assert_eq!((*o.src.ip(), *o.dst.ip()), (dst, src));
        assert_eq!(
            o.l4,
            L4::Icmp(Icmpv4Type::EchoReply(etherparse::IcmpEchoHeader {
                id: 77,
                seq: 3
            }))
        );
        assert_eq!(o.payload, b"ping payload");
        let (our, peer) = if port == 0 {
            (PORT0_MAC, ROUTER_MAC)
        } else {
            (PORT1_MAC, RS1_MAC)
        };
        assert_eq!((o.src_mac, o.dst_mac), (our, peer));
    }
    assert_eq!(w.stats().icmp_echo_replies, 3);
    // Not ours.
    let mut f = echo_request(CLIENT, std::net::Ipv4Addr::new(198, 18, 0, 99), 1, 1);
    assert_eq!(run(w, &mut f, S), Verdict::Drop(DropReason::NotForUs));
}

/// A frag-needed error from the RS side quoting LIP:lport → RS is translated to one from the
/// VIP quoting client → VIP, and sent to the client; and the other way round.
#[test]
fn icmp_errors_are_translated_to_the_other_side() {
    let mut ws = workers(2, rules(64, 1024, 65535));
    let client = sa(CLIENT, 43000);
    let mut f = tcp(client, sa(VIP, 80), "S", b"");
    assert_eq!(run(&mut ws[0], &mut f, S), tx(1));
    let sent = f[14..].to_vec(); // the LIP → RS packet as it left
    let o = decode(&f);
    let (lip, rs) = (o.src, o.dst);

    let frag_needed =
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1400,
        });
    let mut e = icmp_error(
        common::PORT1_IP,
        *lip.ip(),
        frag_needed.clone(),
        &sent[..28],
    );
    // The error reaches worker 1 first: lport is owned by worker 0.
    let (who, v) = run_steered(&mut ws, 1, &mut e, S);
    assert_eq!((who, v), (0, tx(0)));
    let o = decode(&e);
    assert_eq!((*o.src.ip(), *o.dst.ip()), (VIP, CLIENT));
    assert_eq!((o.src_mac, o.dst_mac), (PORT0_MAC, ROUTER_MAC));
    assert_eq!(o.l4, L4::Icmp(frag_needed.clone()));
    let (q, rest) = etherparse::Ipv4Header::from_slice(&o.payload).unwrap();
    assert_eq!((q.source, q.destination), (CLIENT.octets(), VIP.octets()));
    assert_eq!(u16::from_be_bytes([rest[0], rest[1]]), 43000);
    assert_eq!(u16::from_be_bytes([rest[2], rest[3]]), 80);
    assert_eq!(ws[0].stats().icmp_errors_translated, 1);

    // Whole quoted TCP header this time (its checksum gets fixed too).
    let mut e = icmp_error(common::PORT1_IP, *lip.ip(), frag_needed.clone(), &sent);
    assert_eq!(run(&mut ws[0], &mut e, S), tx(0));
    let o = decode(&e);
    let (q, rest) = etherparse::Ipv4Header::from_slice(&o.payload).unwrap();
    let (th, payload) = etherparse::TcpHeader::from_slice(rest).unwrap();
    assert_eq!(
        th.checksum,
        th.calc_checksum_ipv4(&q, payload).unwrap(),
        "quoted TCP checksum"
    );

    // From the client side: a router says the VIP → client reply was too big.
    let mut r = tcp(rs, lip, "SA", b"");
    assert_eq!(run(&mut ws[0], &mut r, S), tx(0));
    let reply = r[14..].to_vec();
    let mut e = icmp_error(ROUTER, VIP, frag_needed.clone(), &reply[..28]);
    assert_eq!(run(&mut ws[0], &mut e, S), tx(1));
    let o = decode(&e);
    assert_eq!((*o.src.ip(), *o.dst.ip()), (*lip.ip(), *rs.ip()));
    assert_eq!((o.src_mac, o.dst_mac), (PORT1_MAC, RS1_MAC));
    let (q, rest) = etherparse::Ipv4Header::from_slice(&o.payload).unwrap();
    assert_eq!(
        (q.source, q.destination),
        (rs.ip().octets(), lip.ip().octets())
    );
    assert_eq!(u16::from_be_bytes([rest[0], rest[1]]), rs.port());
    assert_eq!(u16::from_be_bytes([rest[2], rest[3]]), lip.port());

    // An error about no session, and an ICMP type we do not handle.
    let mut bogus = sent.clone();
    bogus[20] ^= 0x55; // another source port
    let mut e = icmp_error(common::PORT1_IP, *lip.ip(), frag_needed, &bogus[..28]);
    let (_, v) = run_steered(&mut ws, 0, &mut e, S);
    assert_eq!(v, Verdict::Drop(DropReason::IcmpNoSession));
    let mut ts = echo_request(CLIENT, VIP, 1, 1);
    ts[14 + 20] = 13; // timestamp request
    assert_eq!(
        run(&mut ws[0], &mut ts, S),
        Verdict::Drop(DropReason::IcmpUnsupported)
    );
}

#[test]
fn session_expires_exactly_at_its_timeout_and_port_is_reused() {
    // One LIP with a single port for this worker: 5000.
    let mut r = rules(64, 5000, 5000);
    r.services[0].local_addresses = vec![LIP1];
    let mut ws = workers(1, r);
    let w = &mut ws[0];
    let t0 = 50 * S; // SYN_RECV: 60 s
    let (lip, rs) = open(w, 44000, t0);
    assert_eq!(lip, sa(LIP1, 5000));

    // Another client: out of ports.
    let mut f = tcp(sa(CLIENT, 44001), sa(VIP, 80), "S", b"");
    assert_eq!(
        run(w, &mut f, t0 + S),
        Verdict::Drop(DropReason::LocalPortsExhausted)
    );
    assert_eq!(w.stats().local_addr(LIP1).unwrap().exhausted, 1);

    // One nanosecond before the deadline the session still forwards (and is refreshed by
    // this SYN-ACK: SYN_RECV again for 60 s).
    let t1 = t0 + 60 * S - 1;
    let mut f = tcp(rs, lip, "SA", b"");
    assert_eq!(run(w, &mut f, t1), tx(0));
    assert_eq!(w.housekeeping(t1 + 60 * S - 1, 10), 0);
    // At the deadline a packet finds no session (and the session is freed there and then).
    let mut f = tcp(rs, lip, "A", b"");
    assert_eq!(
        run(w, &mut f, t1 + 60 * S),
        Verdict::Drop(DropReason::NoSession)
    );
    assert_eq!(w.stats().sessions, 0);
    assert_eq!(w.stats().local_addr(LIP1).unwrap().ports_in_use, 0);

    // The port is reusable: the other client gets it.
    let mut f = tcp(sa(CLIENT, 44001), sa(VIP, 80), "S", b"");
    assert_eq!(run(w, &mut f, t1 + 61 * S), tx(1));
    assert_eq!(decode(&f).src, sa(LIP1, 5000));

    // With an aligned clock, housekeeping expires exactly at the deadline.
    let t2 = t1 + 61 * S;
    assert_eq!(w.housekeeping(t2 + 60 * S - 1, 10), 0);
    let tick_aligned = (t2 + 60 * S).div_ceil(S) * S;
    assert_eq!(w.housekeeping(tick_aligned, 10), 1);
    assert_eq!(w.stats().sessions_ended, 2);
    let (lip3, _) = open(w, 44002, tick_aligned);
    assert_eq!(lip3, sa(LIP1, 5000));
}

#[test]
fn established_timeout_and_bounded_housekeeping() {
    let mut ws = workers(1, rules(1024, 1024, 65535));
    let w = &mut ws[0];
    let t = 10 * S;
    for i in 0..100u16 {
        let (lip, rs) = open(w, 1000 + i, t);
        let mut f = tcp(rs, lip, "SA", b"");
        assert_eq!(run(w, &mut f, t), tx(0));
        let mut f = tcp(sa(CLIENT, 1000 + i), sa(VIP, 80), "A", b"");
        assert_eq!(run(w, &mut f, t), tx(1));
    }
    let rs1 = w.stats().real(TCP_SVC, 11).unwrap().active_conns;
    let rs2 = w.stats().real(TCP_SVC, 12).unwrap().active_conns;
    assert_eq!((rs1, rs2), (50, 50));
    assert_eq!(w.housekeeping(t + 900 * S - 1, 1000), 0);
    assert_eq!(w.housekeeping(t + 900 * S, 30), 30);
    assert_eq!(w.housekeeping(t + 900 * S, 30), 30);
    assert_eq!(w.housekeeping(t + 900 * S, 1000), 40);
    assert_eq!(w.stats().sessions, 0);
    assert_eq!(w.stats().real(TCP_SVC, 11).unwrap().active_conns, 0);
}

#[test]
fn full_table_refuses_new_flows_while_established_ones_forward() {
    let mut ws = workers(1, rules(2, 1024, 65535));
    let w = &mut ws[0];
    let a = open(w, 45000, S);
    let b = open(w, 45001, S);
    let mut f = tcp(sa(CLIENT, 45002), sa(VIP, 80), "S", b"");
    assert_eq!(
        run(w, &mut f, S),
        Verdict::Drop(DropReason::SessionTableFull)
    );
    let mut f = udp(sa(CLIENT, 45003), sa(VIP, 53), b"x");
    assert_eq!(
        run(w, &mut f, S),
        Verdict::Drop(DropReason::SessionTableFull)
    );
    assert_eq!(drops(w, DropReason::SessionTableFull), 2);
    for (i, (lip, rs)) in [a, b].into_iter().enumerate() {
        let client = sa(CLIENT, 45000 + i as u16);
        let mut f = tcp(rs, lip, "SA", b"");
        assert_eq!(run(w, &mut f, 2 * S), tx(0));
        assert_eq!(decode(&f).dst, client);
        let mut f = tcp(client, sa(VIP, 80), "A", b"data");
        assert_eq!(run(w, &mut f, 2 * S), tx(1));
        assert_eq!(decode(&f).src, lip);
    }
    // Nothing was scheduled for the refused flows.
    assert_eq!(w.stats().service(TCP_SVC).unwrap().traffic.conns, 2);
}

#[test]
fn drops_are_counted_by_reason() {
    let mut r = rules(64, 1024, 65535);
    r.services[1].reals.clear(); // UDP service without real servers
    let mut ws = workers(1, r);
    let w = &mut ws[0];
    let c = sa(CLIENT, 46000);
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (tcp(c, sa(VIP, 81), "S", b""), DropReason::NoService),
        (
            tcp(c, sa(std::net::Ipv4Addr::new(198, 18, 0, 77), 80), "S", b""),
            DropReason::NotForUs,
        ),
        (tcp(c, sa(VIP, 80), "A", b""), DropReason::NoSession),
        (tcp(c, sa(VIP, 80), "SA", b""), DropReason::NoSession),
        (
            tcp(sa(RS1, 8080), sa(LIP1, 3000), "SA", b""),
            DropReason::NoSession,
        ),
        (tcp_ttl(c, sa(VIP, 80), "S", b"", 1), DropReason::TtlExpired),
        (udp(c, sa(VIP, 53), b"q"), DropReason::NoRealServer),
        (vec![1, 2, 3], DropReason::Truncated),
    ];
    for (mut f, reason) in cases {
        assert_eq!(run(w, &mut f, S), Verdict::Drop(reason), "{reason:?}");
    }
    // Wrong destination MAC.
    let mut f = tcp(c, sa(VIP, 80), "S", b"");
    f[5] ^= 1;
    assert_eq!(w.process(0, &mut f, S), Verdict::Drop(DropReason::NotForUs));
    // Fragment (MF set).
    let mut f = tcp(c, sa(VIP, 80), "S", b"");
    f[14 + 6] |= 0x20;
    assert_eq!(run(w, &mut f, S), Verdict::Drop(DropReason::Fragment));
    // No session was created by any of these.
    assert_eq!(w.stats().sessions, 0);
    assert_eq!(w.stats().received, w.stats().dropped());
}

#[test]
fn no_route_and_no_neighbour() {
    let mut r = rules(64, 1024, 65535);
    r.neighbours.retain(|n| n.addr != RS2); // RS2 unreachable at L2
    let mut ws = workers(1, r.clone());
    let w = &mut ws[0];
    let (_, rs) = open(w, 47000, S);
    assert_eq!(rs, sa(RS1, 8080));
    // RS2 has no static neighbour: the SYN waits for ARP (held), and is dropped as
    // no_neighbour when nobody answers within the hold time.
    let mut f = tcp(sa(CLIENT, 47001), sa(VIP, 80), "S", b"");
    assert_eq!(run(w, &mut f, S), Verdict::Consumed);
    assert_eq!(w.stats().held, 1);
    w.drain_originated(5 * S, |_, _| fnat_engine::Emit::Sent);
    assert_eq!(w.stats().held, 0);
    assert_eq!(w.stats().drops[DropReason::NoNeighbour as usize], 1);

    r.routes.clear(); // no way back to clients
    let mut ws = workers(1, r);
    let w = &mut ws[0];
    let (lip, rs) = open(w, 47002, S);
    let mut f = tcp(rs, lip, "SA", b"");
    assert_eq!(run(w, &mut f, S), Verdict::Drop(DropReason::NoRoute));
}

#[test]
fn ip_options_forwarded_or_dropped_and_counted() {
    let mut ws = workers(1, rules(64, 1024, 65535));
    let mut f = tcp_with_options(sa(CLIENT, 48000), sa(VIP, 80), "S");
    assert_eq!(run(&mut ws[0], &mut f, S), tx(1));
    let o = decode(&f);
    assert_eq!(o.ip_options, vec![1, 1, 1, 0]);
    assert_eq!(o.dst, sa(RS1, 8080));
    assert_eq!(ws[0].stats().ip_options, 1);

    let mut r = rules(64, 1024, 65535);
    r.drop_ip_options = true;
    let mut ws = workers(1, r);
    let mut f = tcp_with_options(sa(CLIENT, 48000), sa(VIP, 80), "S");
    assert_eq!(
        run(&mut ws[0], &mut f, S),
        Verdict::Drop(DropReason::IpOptions)
    );
    assert_eq!(ws[0].stats().ip_options, 1);
}

#[test]
fn wrr_through_the_worker_and_weight_zero_drains() {
    let mut r = rules(256, 1024, 65535);
    r.services[0].scheduler = SchedulerKind::Wrr;
    r.services[0].reals[0].weight = 3;
    r.services[0].reals[1].weight = 1;
    let mut ws = workers(1, r.clone());
    let w = &mut ws[0];
    let picks: Vec<_> = (0..8).map(|i| *open(w, 100 + i, S).1.ip()).collect();
    assert_eq!(picks, [RS1, RS1, RS1, RS2, RS1, RS1, RS1, RS2]);

    // Drain RS1: new flows all go to RS2, RS1's sessions keep forwarding.
    r.generation += 1;
    r.services[0].reals[0].weight = 0;
    w.update_rules(Arc::new(r.clone()));
    for i in 0..4 {
        assert_eq!(*open(w, 200 + i, S).1.ip(), RS2);
    }
    let mut f = tcp(sa(CLIENT, 100), sa(VIP, 80), "A", b"");
    assert_eq!(run(w, &mut f, S), tx(1));
    assert_eq!(*decode(&f).dst.ip(), RS1);
}

#[test]
fn rules_update_keeps_sessions_of_removed_real_servers_and_ends_removed_services() {
    let r = rules(256, 1024, 65535);
    let mut ws = workers(1, r.clone());
    let w = &mut ws[0];
    let (lip1, rs1) = open(w, 100, S); // RS1
    let (lip2, rs2) = open(w, 101, S); // RS2
    assert_eq!((*rs1.ip(), *rs2.ip()), (RS1, RS2));
    let mut f = udp(sa(CLIENT, 102), sa(VIP, 53), b"q");
    assert_eq!(run(w, &mut f, S), tx(1));

    // Remove RS2 from the TCP service and the whole UDP service.
    let mut r2 = r.clone();
    r2.generation = 2;
    r2.services[0].reals.retain(|x| x.id != 12);
    r2.services.retain(|s| s.id != UDP_SVC);
    w.update_rules(Arc::new(r2));

    // RS2's session keeps forwarding; new flows go to RS1 only.
    let mut f = tcp(rs2, lip2, "SA", b"");
    assert_eq!(run(w, &mut f, 2 * S), tx(0));
    assert_eq!(decode(&f).dst, sa(CLIENT, 101));
    let mut f = tcp(rs1, lip1, "SA", b"");
    assert_eq!(run(w, &mut f, 2 * S), tx(0));
    assert_eq!(*open(w, 103, 2 * S).1.ip(), RS1);
    assert_eq!(*open(w, 104, 2 * S).1.ip(), RS1);
    assert!(w.stats().real(TCP_SVC, 12).is_none(), "hidden once removed");

    // The UDP service's session is ended by housekeeping, long before its timeout.
    assert_eq!(w.stats().sessions, 5);
    assert_eq!(w.housekeeping(3 * S, 100), 1);
    assert_eq!(w.stats().sessions, 4);
    let mut f = udp(sa(CLIENT, 102), sa(VIP, 53), b"q");
    assert_eq!(run(w, &mut f, 3 * S), Verdict::Drop(DropReason::NoService));
}

/// A client that reuses the source port of a connection it closed (TIME_WAIT) sends a SYN that
/// matches the old session: as IPVS's conn_reuse_mode, the old session ends and the SYN is
/// scheduled afresh (here away from a drained server, on a new local port). A SYN on a session
/// that is still open is not rescheduled.
#[test]
fn syn_reusing_a_closed_connections_port_is_scheduled_afresh() {
    let mut r = rules(1024, 1024, 65535);
    let mut ws = workers(1, r.clone());
    let w = &mut ws[0];
    let client = sa(CLIENT, 40000);
    let t = 1_000 * S;
    let (lip, rs) = open(w, 40000, t);
    assert_eq!(rs, sa(RS1, 8080), "rr starts with RS1");
    for (i, (from_client, flags)) in [
        (false, "SA"),
        (true, "A"),
        (true, "FA"),
        (false, "FA"),
        (true, "A"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut f = if from_client {
            tcp(client, sa(VIP, 80), flags, b"")
        } else {
            tcp(rs, lip, flags, b"")
        };
        run(w, &mut f, t + 1 + i as u64);
    }
    assert_eq!(state_of(w, 40000), ConnState::TimeWait);

    // RS1 drained; the same client port opens a new connection.
    r.services[0].reals[0].weight = 0;
    w.update_rules(Arc::new(r.clone()));
    let mut f = tcp(client, sa(VIP, 80), "S", b"");
    assert_eq!(run(w, &mut f, t + 10), tx(1));
    let o = decode(&f);
    assert_eq!(
        *o.dst.ip(),
        RS2,
        "a reused port is scheduled again, away from the drained RS1"
    );
    assert_ne!(
        o.src, lip,
        "on a new local port (the old one may still be in TIME_WAIT on RS1)"
    );
    assert_eq!(state_of(w, 40000), ConnState::SynRecv);
    assert_eq!(w.stats().sessions, 1, "the old session ended");
    assert_eq!(w.stats().service(TCP_SVC).unwrap().traffic.conns, 2);

    // A SYN while that connection is open (a retransmission) stays on its session.
    let mut f = tcp(client, sa(VIP, 80), "S", b"");
    assert_eq!(run(w, &mut f, t + 11), tx(1));
    assert_eq!(decode(&f).src, o.src);
    assert_eq!(w.stats().service(TCP_SVC).unwrap().traffic.conns, 2);
}

/// A full table whose sessions are all due is not "full" for a new flow: the SYN reaps due
/// sessions before it would be refused, even before any housekeeping has run.
#[test]
fn a_full_table_of_expired_sessions_takes_new_flows_at_once() {
    let mut ws = workers(1, rules(4, 1024, 65535));
    let w = &mut ws[0];
    let t = 1_000 * S;
    let mut opened = 0;
    for cport in 40000..40100 {
        let mut f = tcp(sa(CLIENT, cport), sa(VIP, 80), "S", b"");
        match run(w, &mut f, t) {
            Verdict::Transmit { .. } => opened += 1,
            Verdict::Drop(DropReason::SessionTableFull) => break,
            v => panic!("unexpected {v:?}"),
        }
    }
    let capacity = w.fullnat().table().capacity();
    assert_eq!(opened, capacity, "the table fills to its capacity");
    let mut f = tcp(sa(CLIENT, 41000), sa(VIP, 80), "S", b"");
    assert_eq!(
        run(w, &mut f, t + 1),
        Verdict::Drop(DropReason::SessionTableFull)
    );
    // Past the SYN_RECV timeout, with no housekeeping in between: a new SYN gets a session.
    let later = t + 61 * S;
    let mut f = tcp(sa(CLIENT, 41001), sa(VIP, 80), "S", b"");
    assert_eq!(run(w, &mut f, later), tx(1));
    assert_eq!(state_of(w, 41001), ConnState::SynRecv);
}

#[test]
fn new_connections_take_the_local_addresses_in_turn_and_skip_a_full_one() {
    // Two LIPs with two ports each for this worker: 5000 and 5001.
    let mut ws = workers(1, rules(64, 5000, 5001));
    let w = &mut ws[0];
    let t0 = 50 * S; // SYN_RECV: 60 s
    let opened: Vec<_> = (0..4).map(|i| open(w, 45000 + i, t0)).collect();
    let lips: Vec<_> = opened.iter().map(|(lip, _)| *lip.ip()).collect();
    // In turn, as DPVS and IPVS full NAT share them; not the first address until it is full.
    assert_eq!(lips, [LIP1, LIP2, LIP1, LIP2]);

    // Both full: the next SYN is dropped and each address counts one exhaustion.
    let mut f = tcp(sa(CLIENT, 45010), sa(VIP, 80), "S", b"");
    assert_eq!(
        run(w, &mut f, t0),
        Verdict::Drop(DropReason::LocalPortsExhausted)
    );
    assert_eq!(w.stats().local_addr(LIP1).unwrap().exhausted, 1);
    assert_eq!(w.stats().local_addr(LIP2).unwrap().exhausted, 1);

    // Keep LIP1's two sessions alive (a SYN-ACK refreshes SYN_RECV) and let LIP2's expire.
    for (lip, rs) in [opened[0], opened[2]] {
        let mut f = tcp(rs, lip, "SA", b"");
        assert_eq!(run(w, &mut f, t0 + 30 * S), tx(0));
    }
    assert_eq!(w.housekeeping(t0 + 61 * S, 10), 2);
    assert_eq!(w.stats().local_addr(LIP2).unwrap().ports_in_use, 0);

    // The turn is LIP1's, which is full: the search goes on to LIP2.
    let (lip, _) = open(w, 45011, t0 + 61 * S);
    assert_eq!(*lip.ip(), LIP2);
    assert_eq!(w.stats().local_addr(LIP1).unwrap().exhausted, 2);
    assert_eq!(w.stats().local_addr(LIP2).unwrap().exhausted, 1);
    // And the turn after it is LIP1's again (still full), then LIP2's last free port.
    let (lip, _) = open(w, 45012, t0 + 61 * S);
    assert_eq!(*lip.ip(), LIP2);
    assert_eq!(w.stats().local_addr(LIP1).unwrap().exhausted, 3);
}
