//! Property tests of the full-NAT worker: random flows and random interleavings of both
//! directions across 2–3 workers, and arbitrary bytes.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};

use common::*;
use fnat_engine::Verdict;
use proptest::prelude::*;
use proptest::sample::Index;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Flow {
    client: SocketAddrV4,
    udp: bool,
}

fn rss(f: &Flow, n: usize) -> usize {
    let o = f.client.ip().octets();
    (o[3] as usize * 31 + f.client.port() as usize * 7 + f.udp as usize) % n
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn replies_translate_back_to_the_original_client(
        n in 2usize..=3,
        raw_flows in prop::collection::vec((1u8..6, 1024u16..1100, any::<bool>()), 1..16),
        ops in prop::collection::vec((any::<Index>(), any::<bool>(), 0usize..3, 0usize..64), 1..120),
        narrow_ports in any::<bool>(),
    ) {
        let (lo, hi) = if narrow_ports { (2000, 2011) } else { (1024, 65535) };
        let mut ws = workers(n as u16, rules(64, lo, hi));
        let mut flows: Vec<Flow> = Vec::new();
        for (host, port, udp) in raw_flows {
            let f = Flow { client: sa(Ipv4Addr::new(203, 0, 113, host), port), udp };
            if !flows.contains(&f) {
                flows.push(f);
            }
        }
        // flow → (lip:lport, rs:rport) as seen on the first forwarded packet
        let mut nat: HashMap<Flow, (SocketAddrV4, SocketAddrV4)> = HashMap::new();
        let now = 5 * S;
        for (k, (idx, from_client, arrival, len)) in ops.into_iter().enumerate() {
            let flow = *idx.get(&flows);
            let vport = if flow.udp { 53 } else { 80 };
            let payload = vec![k as u8; len];
            let t = now + k as u64;
            match nat.get(&flow).copied() {
                Some((lip, rs)) if !from_client => {
                    let mut f = if flow.udp { udp(rs, lip, &payload) } else { tcp(rs, lip, "A", &payload) };
                    let (_, v) = run_steered(&mut ws, arrival % n, &mut f, t);
                    prop_assert_eq!(v, Verdict::Transmit { port: 0 });
                    let o = decode(&f);
                    prop_assert_eq!(o.src, sa(VIP, vport));
                    prop_assert_eq!(o.dst, flow.client);
                    prop_assert_eq!(o.payload, payload);
                }
                known => {
                    let w = rss(&flow, n);
                    let mut f = if flow.udp {
                        udp(flow.client, sa(VIP, vport), &payload)
                    } else if known.is_none() {
                        tcp(flow.client, sa(VIP, vport), "S", &payload)
                    } else {
                        tcp(flow.client, sa(VIP, vport), "AP", &payload)
                    };
                    let v = run(&mut ws[w], &mut f, t);
                    if v == Verdict::Drop(fnat_engine::DropReason::LocalPortsExhausted) {
                        prop_assert!(narrow_ports && known.is_none());
                        continue;
                    }
                    prop_assert_eq!(v, Verdict::Transmit { port: 1 });
                    let o = decode(&f);
                    prop_assert_eq!(o.payload, payload);
                    prop_assert!(*o.src.ip() == LIP1 || *o.src.ip() == LIP2);
                    prop_assert_eq!(o.src.port() as usize % n, w, "lport owned by the worker");
                    prop_assert!(o.src.port() >= lo && o.src.port() <= hi);
                    match known {
                        Some(prev) => prop_assert_eq!((o.src, o.dst), prev),
                        None => {
                            nat.insert(flow, (o.src, o.dst));
                        }
                    }
                }
            }
            // No two live sessions share LIP:lport toward the same RS:rport, on any worker.
            let mut seen = HashSet::new();
            let mut live = 0;
            for w in &ws {
                for (_, s, _) in w.fullnat().sessions() {
                    prop_assert!(seen.insert((s.lip, s.lport, s.rs_ip, s.rs_port, s.proto)));
                    live += 1;
                }
                let st = w.stats();
                prop_assert_eq!(st.received, st.transmitted + st.redirected + st.dropped());
            }
            prop_assert_eq!(live, nat.len());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        port in 0u16..3,
    ) {
        let mut ws = workers(2, rules(16, 1024, 65535));
        let mut f = bytes;
        let _ = ws[0].process(port, &mut f, S);
        let _ = ws[0].housekeeping(2 * S, 8);
    }

    #[test]
    fn mutated_frames_never_panic(
        kind in 0usize..5,
        mutations in prop::collection::vec((any::<Index>(), any::<u8>()), 0..6),
        cut in any::<Index>(),
        truncate in any::<bool>(),
        port in 0u16..2,
    ) {
        let mut ws = workers(2, rules(16, 1024, 65535));
        // Some state to hit: one session per worker.
        let mut a = tcp(sa(CLIENT, 1), sa(VIP, 80), "S", b"");
        ws[0].process(0, &mut a, S);
        let o = decode(&a);
        let mut base = match kind {
            0 => tcp(sa(CLIENT, 1), sa(VIP, 80), "A", b"data"),
            1 => tcp(o.dst, o.src, "SA", b""),
            2 => udp(sa(CLIENT, 2), sa(VIP, 53), b"q"),
            3 => echo_request(CLIENT, VIP, 1, 2),
            _ => {
                let quoted = a[14..].to_vec();
                icmp_error(
                    PORT1_IP,
                    *o.src.ip(),
                    etherparse::Icmpv4Type::DestinationUnreachable(
                        etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
                    ),
                    &quoted,
                )
            }
        };
        for (at, b) in mutations {
            let i = at.index(base.len());
            base[i] = b;
        }
        if truncate {
            base.truncate(cut.index(base.len() + 1));
        }
        for w in ws.iter_mut() {
            let mut f = base.clone();
            let _ = w.process(port, &mut f, 2 * S);
            prop_assert_eq!(f.len(), base.len(), "length never changes");
        }
        for w in &mut ws {
            w.housekeeping(10_000 * S, 64);
            let st = w.stats();
            prop_assert_eq!(st.received, st.transmitted + st.redirected + st.dropped());
        }
    }
}
