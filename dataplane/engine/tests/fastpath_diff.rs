//! The established-flow fast path against the full pipeline: two workers with the same rules
//! get the same random traffic (handshakes, data, closes, resets, UDP, replies, bad TTLs,
//! damaged headers, wrong MACs), the same clock jumps, housekeeping and rule changes; one
//! takes the fast path (`process_burst`, bursts of random size), the other has it turned
//! off. Every verdict, every output byte, every counter and every session (with its
//! deadline) must be the same.
//!
//! `fast_path_is_taken` checks that the fast path really runs where it should.

mod common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use common::*;
use fnat_engine::rules::{Method, Rules, Tunnel, TunnelKind};
use fnat_engine::{Verdict, Worker};
use proptest::prelude::*;
use proptest::sample::Index;

/// A flow of the test: a client port, TCP to VIP:80 or UDP to VIP:53.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Flow {
    client: SocketAddrV4,
    udp: bool,
}

const FLAGS: [&str; 10] = ["S", "A", "AP", "A", "AP", "SA", "FA", "RA", "R", "F"];

/// Rule sets the two workers switch between (same ids throughout).
fn variant(k: usize) -> Rules {
    let mut r = rules(64, 2000, 2063);
    match k {
        // The TCP service leaves: its sessions end (purge, then the check is off again).
        1 => r.services.retain(|s| s.id != TCP_SVC),
        // The TCP service moves to port 81 (same id): port 80 has no service any more.
        2 => r.services[0].port = 81,
        // Both services move to another VIP: the old one is no address of ours any more.
        3 => {
            for s in &mut r.services {
                s.vip = Ipv4Addr::new(198, 18, 0, 101);
            }
            r.ports[0].addresses.push(fnat_engine::rules::Ipv4Cidr {
                addr: Ipv4Addr::new(198, 18, 0, 101),
                prefix_len: 32,
            });
        }
        // Short timeouts: sessions expire within the test's clock jumps.
        4 => {
            r.timeouts.tcp_established = 3;
            r.timeouts.udp = 2;
        }
        // RS2 leaves a service that ends the sessions of removed real servers.
        5 => {
            r.services[0].options.expire_on_removal = true;
            r.services[0].reals.retain(|x| x.addr != RS2);
        }
        // The next hop of RS1 is learned by ARP (no static neighbour): unresolved.
        6 => r.neighbours.retain(|n| n.addr != RS1),
        // Other forwarding methods (the same ids: a real server changes method in place).
        7 => set_methods(&mut r, |i| {
            if i == 0 {
                Method::Nat
            } else {
                tun(TunnelKind::Gue, 6080, true)
            }
        }),
        8 => set_methods(&mut r, |_| Method::Dr),
        9 => set_methods(&mut r, |i| {
            if i == 0 {
                tun(TunnelKind::Ipip, 0, false)
            } else {
                Method::Nat
            }
        }),
        _ => {}
    }
    r
}

fn tun(kind: TunnelKind, port: u16, csum: bool) -> Method {
    Method::Tun(Tunnel { kind, port, csum })
}

/// Real server i of every service forwarded by `method(i)` (DR keeps the service's port).
fn set_methods(r: &mut Rules, method: impl Fn(usize) -> Method) {
    for s in &mut r.services {
        let port = s.port;
        for (i, rs) in s.reals.iter_mut().enumerate() {
            rs.method = method(i);
            if rs.method == Method::Dr {
                rs.port = port;
            }
        }
    }
}

/// Damages a frame the way a hostile or broken peer might.
fn damage(f: &mut Vec<u8>, how: u8, arg: u8) {
    match how {
        1 => f.truncate(usize::from(arg) % f.len().max(1)),
        2 => f[14] = 0x46,                               // IHL 6 without options
        3 => f[20] |= 0x20,                              // more fragments
        4 => f[0] ^= 0x01,                               // not our MAC
        5 => f[16] = f[16].wrapping_add(1),              // total length beyond the frame
        6 => f[22] = arg % 3,                            // TTL 0, 1 or 2
        7 if f.len() > 46 && f[23] == 6 => f[46] = 0x40, // TCP data offset 4
        8 if f.len() > 47 && f[23] == 6 => f[47] = arg,  // any TCP flags
        9 if f.len() > 38 && f[23] == 17 => f[38..40].copy_from_slice(&[0, 4]), // UDP length 4
        10 => f.extend_from_slice(&[0xAB; 7]),           // Ethernet padding after the packet
        11 if f.len() > 41 && f[23] == 17 => f[40..42].copy_from_slice(&[0, 0]), // no UDP checksum
        12 if f.len() > 46 && f[23] == 6 => f[46] = 0xF0, // TCP header longer than the segment
        13 => f[..6].copy_from_slice(&PORT0_MAC),        // in by the client side (a spoofed reply)
        _ => {}
    }
}

fn sessions(w: &Worker) -> Vec<String> {
    w.fullnat()
        .sessions()
        .map(|(id, s, deadline)| format!("{id}:{s:?}@{deadline}"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn fast_path_equals_full_pipeline(
        raw_flows in prop::collection::vec((1u8..5, 1024u16..1040, any::<bool>()), 1..10),
        ops in prop::collection::vec(
            (any::<Index>(), any::<bool>(), 0usize..FLAGS.len(), (0u8..30, any::<u8>()), 0u64..3, 0usize..40),
            1..160,
        ),
        changes in prop::collection::vec((0usize..160, 0usize..10), 0..4),
        prefetch_from in prop::sample::select(vec![0usize, 3, 1 << 20]),
        // Full NAT, or other forwarding methods from the start.
        base in prop::sample::select(vec![0usize, 0, 7, 8, 9]),
    ) {
        let mut fast = workers(1, variant(base)).remove(0);
        // Prefetch stages always, once a few sessions live, or never (small tables).
        fast.set_prefetch_from(prefetch_from);
        let mut full = workers(1, variant(base)).remove(0);
        fast.set_announce(false);
        full.set_announce(false);
        full.set_fast_path(false);
        let mut flows: Vec<Flow> = Vec::new();
        for (host, port, udp) in raw_flows {
            let f = Flow { client: sa(Ipv4Addr::new(203, 0, 113, host), port), udp };
            if !flows.contains(&f) {
                flows.push(f);
            }
        }
        // Flow → (LIP:lport, RS:rport), from the first client frame forwarded for it.
        let mut nat: HashMap<Flow, (SocketAddrV4, SocketAddrV4)> = HashMap::new();
        let mut now = 10 * S;
        let mut pending: Vec<Vec<u8>> = Vec::new();
        for (k, (idx, from_client, flags, (how, arg), dt, burst)) in ops.into_iter().enumerate() {
            for &(at, v) in &changes {
                if at == k {
                    let r = Arc::new(variant(v));
                    fast.update_rules(r.clone());
                    full.update_rules(r);
                }
            }
            let flow = *idx.get(&flows);
            let vip = SocketAddrV4::new(VIP, if flow.udp { 53 } else { 80 });
            // Long enough for a 60-byte frame (Ethernet's minimum), or not.
            let payload = vec![k as u8; if k % 5 == 0 { 2 } else { 20 }];
            let mut f = match nat.get(&flow) {
                Some(&(lip, rs)) if !from_client => {
                    let mut f = if flow.udp { udp(rs, lip, &payload) } else { tcp(rs, lip, FLAGS[flags], &payload) };
                    // A NAT reply goes to the client's own address, from the servers' side.
                    if lip.ip() == flow.client.ip() {
                        f[..6].copy_from_slice(&PORT1_MAC);
                    }
                    f
                }
                _ if flow.udp => udp(flow.client, vip, &payload),
                _ => tcp(flow.client, vip, FLAGS[flags], &payload),
            };
            if how < 14 {
                damage(&mut f, how, arg);
            }
            pending.push(f);
            // A burst ends here: both workers take it, at the same time.
            if burst < 8 || k % 32 == 31 {
                let mut a = pending.clone();
                let mut b = std::mem::take(&mut pending);
                // One burst is one RX port: split where the port changes.
                let mut start = 0;
                while start < a.len() {
                    let port_here = rx_port(&a[start]);
                    let end = (start..a.len()).find(|&i| rx_port(&a[i]) != port_here).unwrap_or(a.len());
                    let mut va = vec![Verdict::Consumed; end - start];
                    fast.process_burst(port_here, &mut a[start..end], now, &mut va);
                    let vb: Vec<Verdict> = b[start..end].iter_mut().map(|fr| full.process(port_here, fr, now)).collect();
                    prop_assert_eq!(&va, &vb, "verdicts of burst at op {}", k);
                    for i in start..end {
                        prop_assert_eq!(&a[i], &b[i], "bytes of frame {} at op {}", i, k);
                    }
                    start = end;
                }
                let mut counted = fast.stats().clone();
                counted.fast_path = 0;
                prop_assert_eq!(&counted, full.stats(), "counters after op {}", k);
                prop_assert_eq!(sessions(&fast), sessions(&full), "sessions after op {}", k);
            }
            now += dt * S / 2;
            if dt == 2 {
                let (x, y) = (fast.housekeeping(now, 64), full.housekeeping(now, 64));
                prop_assert_eq!(x, y);
            }
            // The mapping of each flow, read from the reference worker's sessions.
            nat.clear();
            for (_, s, _) in full.fullnat().sessions() {
                let fl = Flow {
                    client: sa(Ipv4Addr::from(s.client_ip), s.client_port),
                    udp: s.proto == 17,
                };
                nat.insert(fl, (sa(Ipv4Addr::from(s.lip), s.lport), sa(Ipv4Addr::from(s.rs_ip), s.rs_port)));
            }
        }
        prop_assert_eq!(full.stats().fast_path, 0);
    }
}

/// A connection's data frames take the fast path both ways once it is ESTABLISHED (and
/// only then); a UDP flow's from its second datagram on; a FIN leaves it.
#[test]
fn fast_path_is_taken() {
    for prefetch_from in [0, usize::MAX] {
        fast_path_is_taken_with(prefetch_from);
    }
}

fn fast_path_is_taken_with(prefetch_from: usize) {
    let mut w = workers(1, variant(0)).remove(0);
    w.set_prefetch_from(prefetch_from);
    let client = sa(CLIENT, 40000);
    let vip = sa(VIP, 80);
    let burst = |w: &mut Worker, f: Vec<u8>| -> (Verdict, Vec<u8>) {
        let mut fs = [f];
        let mut v = [Verdict::Consumed];
        w.process_burst(rx_port(&fs[0]), &mut fs, 20 * S, &mut v);
        let [f] = fs;
        (v[0], f)
    };
    let (v, syn) = burst(&mut w, tcp(client, vip, "S", b""));
    assert_eq!(v, Verdict::Transmit { port: 1 });
    let o = decode(&syn);
    let (lip, rs) = (o.src, o.dst);
    assert_eq!(
        w.stats().fast_path,
        0,
        "a SYN creates a session: full pipeline"
    );
    burst(&mut w, tcp(rs, lip, "SA", b""));
    burst(&mut w, tcp(client, vip, "A", b""));
    assert_eq!(
        w.stats().fast_path,
        0,
        "the handshake moves the state: full pipeline"
    );
    for i in 0..5u8 {
        let (v, f) = burst(&mut w, tcp(client, vip, "AP", &[i; 10]));
        assert_eq!(v, Verdict::Transmit { port: 1 });
        let o = decode(&f);
        assert_eq!((o.src, o.dst, o.payload), (lip, rs, vec![i; 10]));
        let (v, f) = burst(&mut w, tcp(rs, lip, "A", &[i; 3]));
        assert_eq!(v, Verdict::Transmit { port: 0 });
        let o = decode(&f);
        assert_eq!((o.src, o.dst, o.dst_mac), (vip, client, ROUTER_MAC));
    }
    assert_eq!(w.stats().fast_path, 10);
    burst(&mut w, tcp(client, vip, "FA", b""));
    burst(&mut w, tcp(client, vip, "A", b""));
    assert_eq!(
        w.stats().fast_path,
        10,
        "after a FIN the state is not ESTABLISHED"
    );

    let dns = sa(VIP, 53);
    burst(&mut w, udp(client, dns, b"query number 1"));
    assert_eq!(w.stats().fast_path, 10);
    let (v, f) = burst(&mut w, udp(client, dns, b"query number 2"));
    assert_eq!(v, Verdict::Transmit { port: 1 });
    assert_eq!(decode(&f).payload, b"query number 2");
    assert_eq!(w.stats().fast_path, 11);

    let sessions = w.fullnat().sessions().count();
    w.set_fast_path(false);
    burst(&mut w, udp(client, dns, b"query number 3"));
    assert_eq!(w.stats().fast_path, 11, "turned off");
    assert_eq!(w.fullnat().sessions().count(), sessions);
}

/// A real server's reply is taken only from the port that leads to that server: the same
/// frame sent in from the client side (a client spoofing the server to inject into a
/// connection) is dropped as `wrong_ingress`, on the fast path and the full one, and leaves
/// the session as it was.
#[test]
fn replies_only_from_the_real_servers_side() {
    for fast_path in [true, false] {
        let mut w = workers(1, variant(0)).remove(0);
        w.set_fast_path(fast_path);
        let client = sa(CLIENT, 40001);
        let vip = sa(VIP, 80);
        let mut syn = tcp(client, vip, "S", b"");
        assert_eq!(run(&mut w, &mut syn, 20 * S), Verdict::Transmit { port: 1 });
        let o = decode(&syn);
        let (lip, rs) = (o.src, o.dst);
        for flags in ["SA", "A"] {
            let mut f = tcp(rs, lip, flags, b"");
            assert_eq!(run(&mut w, &mut f, 20 * S), Verdict::Transmit { port: 0 });
        }
        let mut ack = tcp(client, vip, "A", b"");
        assert_eq!(run(&mut w, &mut ack, 20 * S), Verdict::Transmit { port: 1 });
        let before = w
            .fullnat()
            .sessions()
            .map(|(_, s, d)| (*s, d))
            .collect::<Vec<_>>();

        // The server's data, but in by port 0 with port 0's MAC.
        let mut fs = [tcp(rs, lip, "AP", b"injected")];
        fs[0][..6].copy_from_slice(&PORT0_MAC);
        let original = fs[0].clone();
        let mut v = [Verdict::Consumed];
        w.process_burst(0, &mut fs, 21 * S, &mut v);
        assert_eq!(
            v[0],
            Verdict::Drop(fnat_engine::DropReason::WrongIngress),
            "fast path {fast_path}"
        );
        assert_eq!(fs[0], original, "a dropped frame is not rewritten");
        let after = w
            .fullnat()
            .sessions()
            .map(|(_, s, d)| (*s, d))
            .collect::<Vec<_>>();
        assert_eq!(before, after, "the session did not move");
        assert_eq!(
            w.stats().drops[fnat_engine::DropReason::WrongIngress as usize],
            1
        );

        // The genuine one still goes through.
        let mut fs = [tcp(rs, lip, "AP", b"genuine")];
        w.process_burst(1, &mut fs, 21 * S, &mut v);
        assert_eq!(v[0], Verdict::Transmit { port: 0 });
        assert_eq!(decode(&fs[0]).payload, b"genuine");
    }
}

/// A UDP checksum that computes to 0 goes on the wire as 0xFFFF (0 means "none"): one
/// datagram in 65 536, so random traffic never meets it. Every value of one payload word,
/// through the fast path and the full pipeline: the same bytes, and the case does occur.
#[test]
fn udp_checksum_computing_to_zero_is_sent_as_ffff_on_both_paths() {
    let mut fast = workers(1, variant(0)).remove(0);
    let mut full = workers(1, variant(0)).remove(0);
    full.set_fast_path(false);
    let client = sa(CLIENT, 40002);
    let dns = sa(VIP, 53);
    let payload = |w: u16| {
        let mut p = vec![0x5A; 20];
        p[..2].copy_from_slice(&w.to_be_bytes());
        p
    };
    let mut saw_ffff = 0;
    for w in 0..=u16::MAX {
        let f = udp(client, dns, &payload(w));
        let mut a = [f.clone()];
        let mut va = [Verdict::Consumed];
        fast.process_burst(0, &mut a, 20 * S, &mut va);
        let mut b = f;
        let vb = full.process(0, &mut b, 20 * S);
        assert_eq!((va[0], &a[0]), (vb, &b), "payload word {w:#06x}");
        assert_eq!(vb, Verdict::Transmit { port: 1 });
        if b[40..42] == [0xFF, 0xFF] {
            saw_ffff += 1;
        }
    }
    assert!(saw_ffff >= 1, "no datagram's checksum computed to 0");
    assert!(
        fast.stats().fast_path >= 65_535,
        "all but the first took the fast path"
    );
}

/// Removing a service turns the per-packet liveness check on only while its sessions are
/// being ended: once none is left (here there never was one), established flows of the other
/// services keep the fast path through that change and every later one.
#[test]
fn fast_path_survives_the_removal_of_another_service() {
    let mut r = variant(0);
    let mut w = workers(1, r.clone()).remove(0);
    let client = sa(CLIENT, 40003);
    let vip = sa(VIP, 80);
    let send = |w: &mut Worker, f: Vec<u8>, now: u64| {
        let mut fs = [f];
        let mut v = [Verdict::Consumed];
        w.process_burst(rx_port(&fs[0]), &mut fs, now, &mut v);
        let [f] = fs;
        (v[0], f)
    };
    let (_, syn) = send(&mut w, tcp(client, vip, "S", b""), 20 * S);
    let o = decode(&syn);
    send(&mut w, tcp(o.dst, o.src, "SA", b""), 20 * S);
    send(&mut w, tcp(client, vip, "A", b""), 20 * S);
    r.services.retain(|s| s.id != UDP_SVC);
    r.generation = 2;
    w.update_rules(Arc::new(r.clone()));
    r.services[0].reals[1].weight = 3;
    r.generation = 3;
    w.update_rules(Arc::new(r));
    w.housekeeping(20 * S, 64);
    let before = w.stats().fast_path;
    let (v, _) = send(&mut w, tcp(client, vip, "AP", b"still fast"), 21 * S);
    assert_eq!(v, Verdict::Transmit { port: 1 });
    assert_eq!(w.stats().fast_path, before + 1);
}
