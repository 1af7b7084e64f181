//! ARP and neighbour resolution in the engine: answers for owned addresses, learning, frames
//! held until their next hop resolves (across workers), overflow and timeout counting,
//! gratuitous ARP. Ethernet headers come from etherparse; ARP bodies are written here by hand
//! from RFC 826, never by the engine's own builder.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use common::*;
use etherparse::{EtherType, Ethernet2Header};
use fnat_engine::neigh::NeighTimers;
use fnat_engine::{DropReason, Emit, NeighTable, Verdict, Worker};

const BCAST: [u8; 6] = [0xff; 6];

/// (op, sha, spa, tha, tpa) of an ARP frame, read by hand; the Ethernet header by etherparse.
fn read_arp(f: &[u8]) -> (Ethernet2Header, u16, [u8; 6], Ipv4Addr, [u8; 6], Ipv4Addr) {
    let (eth, rest) = Ethernet2Header::from_slice(f).unwrap();
    assert_eq!(eth.ether_type, EtherType::ARP);
    assert_eq!(&rest[..6], &[0, 1, 8, 0, 6, 4], "IPv4 over Ethernet");
    let mac = |o: usize| -> [u8; 6] { rest[o..o + 6].try_into().unwrap() };
    let ip = |o: usize| Ipv4Addr::new(rest[o], rest[o + 1], rest[o + 2], rest[o + 3]);
    (
        eth,
        u16::from_be_bytes([rest[6], rest[7]]),
        mac(8),
        ip(14),
        mac(18),
        ip(24),
    )
}

/// Rules of the common lab without any static neighbour: everything resolves by ARP.
fn arp_rules() -> fnat_engine::Rules {
    let mut r = rules(1024, 1024, 65535);
    r.neighbours.clear();
    r
}

fn shared_workers(n: u16, r: fnat_engine::Rules) -> Vec<Worker> {
    let table = Arc::new(NeighTable::new(256));
    let mut ws = workers(n, r);
    for w in &mut ws {
        w.share_neighbours(Arc::clone(&table));
    }
    ws
}

/// Everything `drain_originated` hands out: (port, bytes).
fn drain(w: &mut Worker, now: u64) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    w.drain_originated(now, |p, b| {
        out.push((p, b.to_vec()));
        Emit::Sent
    });
    out
}

/// received + originated = transmitted + redirected + dropped + consumed + held.
fn assert_books(w: &Worker) {
    let s = w.stats();
    assert_eq!(
        s.received + s.originated,
        s.transmitted + s.redirected + s.dropped() + s.consumed + s.held,
        "{s:?}"
    );
}

#[test]
fn arp_requests_for_owned_addresses_are_answered_on_their_port() {
    let mut ws = workers(1, arp_rules());
    let w = &mut ws[0];
    w.set_announce(false);
    // Who has the VIP? (asked on the client port by the router)
    let mut f = arp_frame(BCAST, ROUTER_MAC, 1, ROUTER_MAC, ROUTER, [0; 6], VIP);
    assert_eq!(w.process(0, &mut f, S), Verdict::Transmit { port: 0 });
    let (eth, op, sha, spa, tha, tpa) = read_arp(&f);
    assert_eq!((eth.destination, eth.source), (ROUTER_MAC, PORT0_MAC));
    assert_eq!(
        (op, sha, spa, tha, tpa),
        (2, PORT0_MAC, VIP, ROUTER_MAC, ROUTER)
    );
    assert_eq!(f.len(), 60);
    // The requester was learned.
    let e = w.fullnat().neighbours().table().get(0, u32::from(ROUTER));
    assert_eq!(e.and_then(|e| e.mac), Some(ROUTER_MAC));
    assert_eq!(w.stats().neighbours_learned, 1);

    // A LIP and the interface address on the server port, asked by a real server.
    for target in [LIP1, LIP2, PORT1_IP] {
        let mut f = arp_frame(BCAST, RS1_MAC, 1, RS1_MAC, RS1, [0; 6], target);
        assert_eq!(w.process(1, &mut f, S), Verdict::Transmit { port: 1 });
        let (_, op, sha, spa, _, tpa) = read_arp(&f);
        assert_eq!((op, sha, spa, tpa), (2, PORT1_MAC, target, RS1));
    }
    // A LIP asked on the wrong port, and addresses nobody owns: not for us.
    for (port, target) in [
        (0, LIP1),
        (1, Ipv4Addr::new(10, 0, 0, 50)),
        (0, Ipv4Addr::new(198, 18, 0, 9)),
    ] {
        let mut f = arp_frame(BCAST, RS2_MAC, 1, RS2_MAC, RS2, [0; 6], target);
        assert_eq!(
            w.process(port, &mut f, S),
            Verdict::Drop(DropReason::NotForUs),
            "{target} on {port}"
        );
    }
    // Unicast to someone else's MAC; truncated; not IPv4-over-Ethernet.
    let mut f = arp_frame(RS2_MAC, RS1_MAC, 1, RS1_MAC, RS1, [0; 6], LIP1);
    assert_eq!(w.process(1, &mut f, S), Verdict::Drop(DropReason::NotForUs));
    let mut f = arp_frame(BCAST, RS1_MAC, 1, RS1_MAC, RS1, [0; 6], LIP1);
    f.truncate(30);
    assert_eq!(
        w.process(1, &mut f, S),
        Verdict::Drop(DropReason::Truncated)
    );
    let mut f = arp_frame(BCAST, RS1_MAC, 1, RS1_MAC, RS1, [0; 6], LIP1);
    f[15] = 6; // hardware type 6 (IEEE 802)
    assert_eq!(
        w.process(1, &mut f, S),
        Verdict::Drop(DropReason::UnsupportedEtherType)
    );
    assert_eq!(w.stats().arp_replies_sent, 4);
    assert_books(w);
}

#[test]
fn held_packet_goes_out_when_the_reply_arrives() {
    let mut ws = workers(1, arp_rules());
    let w = &mut ws[0];
    w.set_announce(false);
    // The client's router is known (it asked for the VIP); the real servers are not.
    let mut f = arp_frame(BCAST, ROUTER_MAC, 1, ROUTER_MAC, ROUTER, [0; 6], VIP);
    assert_eq!(w.process(0, &mut f, S), Verdict::Transmit { port: 0 });

    let client = sa(CLIENT, 40000);
    let mut syn = tcp(client, sa(VIP, 80), "S", b"hello");
    assert_eq!(w.process(0, &mut syn, S), Verdict::Consumed);
    assert_eq!(w.stats().held, 1);
    assert_eq!(w.stats().sessions, 1);

    // One ARP request for RS1 out of the server port, from its interface address.
    let out = drain(w, S);
    assert_eq!(out.len(), 1, "{out:?}");
    let (port, req) = &out[0];
    assert_eq!(*port, 1);
    let (eth, op, sha, spa, tha, tpa) = read_arp(req);
    assert_eq!((eth.destination, eth.source), (BCAST, PORT1_MAC));
    assert_eq!(
        (op, sha, spa, tha, tpa),
        (1, PORT1_MAC, PORT1_IP, [0; 6], RS1)
    );
    assert_eq!(req.len(), 60);
    // Rate limited: nothing new within the second, the packet still waits.
    assert!(drain(w, S + S / 2).is_empty());
    assert_eq!(w.stats().held, 1);

    // RS1 answers: the reply is absorbed, and the held SYN leaves rewritten.
    let mut reply = arp_frame(PORT1_MAC, RS1_MAC, 2, RS1_MAC, RS1, PORT1_MAC, PORT1_IP);
    assert_eq!(w.process(1, &mut reply, S + S / 2), Verdict::Consumed);
    let out = drain(w, S + S / 2);
    assert_eq!(out.len(), 1);
    let (port, frame) = &out[0];
    assert_eq!(*port, 1);
    let o = decode(frame);
    assert_eq!(o.dst_mac, RS1_MAC);
    assert_eq!(o.src_mac, PORT1_MAC);
    assert_eq!(o.dst, sa(RS1, 8080));
    assert_eq!(*o.src.ip(), LIP1);
    assert_eq!(o.payload, b"hello");
    assert_eq!(w.stats().held, 0);
    assert_eq!(w.stats().held_released, 1);

    // The next packet of the flow goes straight out.
    let mut ack = tcp(client, sa(VIP, 80), "A", b"");
    assert_eq!(w.process(0, &mut ack, 2 * S), Verdict::Transmit { port: 1 });
    assert_books(w);
}

#[test]
fn hold_queue_overflow_and_timeout_are_counted() {
    let mut ws = workers(1, arp_rules());
    let w = &mut ws[0];
    w.set_announce(false);
    let mut held = 0;
    let mut full = 0;
    for i in 0..80u16 {
        let mut syn = tcp(sa(CLIENT, 41000 + i), sa(VIP, 80), "S", b"");
        match w.process(0, &mut syn, S) {
            Verdict::Consumed => held += 1,
            Verdict::Drop(DropReason::NeighbourQueueFull) => full += 1,
            v => panic!("unexpected {v:?}"),
        }
    }
    assert_eq!((held, full), (64, 16));
    assert_eq!(w.stats().drops[DropReason::NeighbourQueueFull as usize], 16);
    // Two requests (RS1, RS2), whatever the number of waiting packets.
    let out = drain(w, S);
    assert_eq!(out.len(), 2);
    // Retransmitted once a second while packets wait.
    assert_eq!(drain(w, 2 * S + 1).len(), 2);
    assert_eq!(w.stats().held, 64);
    // Hold time (3 s) over: every waiting packet is dropped as no_neighbour.
    drain(w, 4 * S + 1);
    assert_eq!(w.stats().held, 0);
    assert_eq!(w.stats().drops[DropReason::NoNeighbour as usize], 64);
    assert_eq!(w.stats().arp_requests_sent, 4);
    assert_books(w);
    // And the queue takes frames again.
    let mut syn = tcp(sa(CLIENT, 42000), sa(VIP, 80), "S", b"");
    assert_eq!(w.process(0, &mut syn, 5 * S), Verdict::Consumed);
}

#[test]
fn gratuitous_arp_at_start_and_for_added_addresses() {
    let r = arp_rules();
    let mut ws = workers(2, r.clone());
    let garps = drain(&mut ws[0], 0);
    let mut seen: Vec<(u16, Ipv4Addr)> = garps
        .iter()
        .map(|(port, f)| {
            let (eth, op, sha, spa, tha, tpa) = read_arp(f);
            let mac = if *port == 0 { PORT0_MAC } else { PORT1_MAC };
            assert_eq!((eth.destination, eth.source), (BCAST, mac));
            assert_eq!((op, sha, tha), (1, mac, [0; 6]));
            assert_eq!(spa, tpa, "gratuitous: sender = target");
            (*port, spa)
        })
        .collect();
    seen.sort();
    let mut want = vec![(0, PORT0_IP), (0, VIP), (1, PORT1_IP), (1, LIP1), (1, LIP2)];
    want.sort();
    assert_eq!(seen, want);
    assert!(drain(&mut ws[0], 1).is_empty(), "announced once");
    assert!(
        drain(&mut ws[1], 0).is_empty(),
        "worker 0 announces for all"
    );
    assert_eq!(ws[0].stats().gratuitous_arps_sent, 5);

    // A rules change adds a VIP (on the client port's prefix): announced, and only it.
    let vip2 = Ipv4Addr::new(198, 18, 0, 101);
    let mut r2 = r;
    r2.generation += 1;
    let mut svc = r2.services[0].clone();
    svc.id = 99;
    svc.vip = vip2;
    r2.services.push(svc);
    ws[0].update_rules(Arc::new(r2));
    let garps = drain(&mut ws[0], 2);
    assert_eq!(garps.len(), 1);
    assert_eq!(garps[0].0, 0);
    assert_eq!(read_arp(&garps[0].1).3, vip2);
    // The new VIP answers ARP too.
    let mut f = arp_frame(BCAST, ROUTER_MAC, 1, ROUTER_MAC, ROUTER, [0; 6], vip2);
    assert_eq!(ws[0].process(0, &mut f, 3), Verdict::Transmit { port: 0 });
    for w in &ws {
        assert_books(w);
    }
}

#[test]
fn a_reply_on_one_worker_resolves_for_all() {
    let mut ws = shared_workers(2, arp_rules());
    for w in &mut ws {
        w.set_announce(false);
    }
    let mut syn = tcp(sa(CLIENT, 43000), sa(VIP, 80), "S", b"x");
    assert_eq!(ws[0].process(0, &mut syn, S), Verdict::Consumed);
    // Worker 0 asks; worker 1, wanting the same neighbour within the second, does not.
    assert_eq!(drain(&mut ws[0], S).len(), 1);
    let mut syn = tcp(sa(CLIENT, 43001), sa(VIP, 80), "S", b"y");
    assert_eq!(ws[1].process(0, &mut syn, S), Verdict::Consumed);
    assert!(drain(&mut ws[1], S).is_empty(), "rate limit is shared");
    // The reply lands on worker 1's queue.
    let mut reply = arp_frame(PORT1_MAC, RS1_MAC, 2, RS1_MAC, RS1, PORT1_MAC, PORT1_IP);
    assert_eq!(ws[1].process(1, &mut reply, S), Verdict::Consumed);
    // Both workers release their frames.
    for (w, payload) in [(0usize, b"x"), (1, b"y")] {
        let out = drain(&mut ws[w], S + 1);
        assert_eq!(out.len(), 1, "worker {w}");
        let o = decode(&out[0].1);
        assert_eq!((o.dst_mac, o.dst), (RS1_MAC, sa(RS1, 8080)));
        assert_eq!(o.payload, payload);
    }
    for w in &ws {
        assert_books(w);
    }
}

#[test]
fn stale_entries_are_refreshed_and_expired_ones_resolved_again() {
    let mut ws = workers(1, arp_rules());
    let w = &mut ws[0];
    w.set_announce(false);
    let t = NeighTimers::default();
    let mut f = arp_frame(BCAST, ROUTER_MAC, 1, ROUTER_MAC, ROUTER, [0; 6], VIP);
    w.process(0, &mut f, S);
    let mut f = arp_frame(BCAST, RS1_MAC, 1, RS1_MAC, RS1, [0; 6], LIP1);
    w.process(1, &mut f, S);
    // REACHABLE: straight out, no request.
    let mut syn = tcp(sa(CLIENT, 44000), sa(VIP, 80), "S", b"");
    assert_eq!(w.process(0, &mut syn, 2 * S), Verdict::Transmit { port: 1 });
    assert!(drain(w, 2 * S).is_empty());
    // STALE: still used, and a refresh request goes out.
    let stale = S + t.reachable_ns + S;
    let mut p = tcp(sa(CLIENT, 44000), sa(VIP, 80), "A", b"");
    assert_eq!(w.process(0, &mut p, stale), Verdict::Transmit { port: 1 });
    let out = drain(w, stale);
    assert_eq!(out.len(), 1);
    assert_eq!(read_arp(&out[0].1).5, RS1);
    // Past the stale time without an answer: the packet waits for a fresh resolution.
    let gone = S + t.reachable_ns + t.stale_ns + S;
    let mut p = tcp(sa(CLIENT, 44000), sa(VIP, 80), "A", b"");
    assert_eq!(w.process(0, &mut p, gone), Verdict::Consumed);
    assert_books(w);
}

#[test]
fn not_for_us_is_dropped_never_routed() {
    let mut ws = workers(1, arp_rules());
    let w = &mut ws[0];
    // To an address we do not own (but have a route for).
    let mut f = tcp(
        sa(CLIENT, 45000),
        sa(Ipv4Addr::new(198, 18, 0, 77), 80),
        "S",
        b"",
    );
    assert_eq!(w.process(0, &mut f, S), Verdict::Drop(DropReason::NotForUs));
    // To our address but another MAC (a switch flooding).
    let mut f = tcp(sa(CLIENT, 45000), sa(VIP, 80), "S", b"");
    f[0..6].copy_from_slice(&RS2_MAC);
    assert_eq!(w.process(0, &mut f, S), Verdict::Drop(DropReason::NotForUs));
    // Echo requests to owned addresses are answered.
    let mut f = echo_request(CLIENT, PORT0_IP, 1, 1);
    assert_eq!(w.process(0, &mut f, S), Verdict::Transmit { port: 0 });
    assert_books(w);
}
