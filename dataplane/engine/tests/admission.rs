//! Client admission through the worker: allow/deny lists and the per-prefix cap on new
//! connections, checked for new sessions only. Frames are built and checked with etherparse.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use common::*;
use fnat_engine::acl::{ClientAcl, ConnRateLimit, PrefixSet};
use fnat_engine::rules::Rules;
use fnat_engine::{DropReason, Verdict, Worker};

const OTHER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);

fn drops(w: &Worker, r: DropReason) -> u64 {
    w.stats().drops[r as usize]
}

fn with_acl(mut r: Rules, allow: &[(Ipv4Addr, u8)], deny: &[(Ipv4Addr, u8)]) -> Rules {
    let set = |l: &[(Ipv4Addr, u8)]| PrefixSet::new(l.iter().map(|&(a, n)| (u32::from(a), n)));
    r.services[0].options.acl = Some(Arc::new(ClientAcl {
        allow: set(allow),
        deny: set(deny),
    }));
    r
}

fn syn(w: &mut Worker, client: Ipv4Addr, cport: u16, now: u64) -> Verdict {
    let mut f = tcp(sa(client, cport), sa(VIP, 80), "S", b"");
    let v = run(w, &mut f, now);
    if v == (Verdict::Transmit { port: 1 }) {
        // Rewritten toward a real server (checked by etherparse).
        let o = decode(&f);
        assert!(o.dst.ip() == &RS1 || o.dst.ip() == &RS2, "{o:?}");
    }
    v
}

const TX: Verdict = Verdict::Transmit { port: 1 };

#[test]
fn deny_list_refuses_new_connections_and_counts_them() {
    let r = with_acl(rules(1024, 1024, 65535), &[], &[(CLIENT, 32)]);
    let mut ws = workers(1, r);
    let w = &mut ws[0];
    assert_eq!(
        syn(w, CLIENT, 1000, S),
        Verdict::Drop(DropReason::ClientDenied)
    );
    assert_eq!(syn(w, OTHER, 1000, S), TX);
    assert_eq!(drops(w, DropReason::ClientDenied), 1);
    assert_eq!(w.stats().sessions, 1);
}

#[test]
fn allow_list_admits_only_its_prefixes_and_deny_wins() {
    let r = with_acl(
        rules(1024, 1024, 65535),
        &[(Ipv4Addr::new(203, 0, 113, 0), 24)],
        &[(Ipv4Addr::new(203, 0, 113, 8), 32)],
    );
    let mut ws = workers(1, r);
    let w = &mut ws[0];
    assert_eq!(syn(w, CLIENT, 1000, S), TX);
    assert_eq!(
        syn(w, OTHER, 1000, S),
        Verdict::Drop(DropReason::ClientNotAllowed)
    );
    assert_eq!(
        syn(w, Ipv4Addr::new(203, 0, 113, 8), 1000, S),
        Verdict::Drop(DropReason::ClientDenied)
    );
    assert_eq!(drops(w, DropReason::ClientNotAllowed), 1);
    assert_eq!(drops(w, DropReason::ClientDenied), 1);
}

#[test]
fn established_flows_keep_running_after_a_deny_is_added() {
    let mut ws = workers(1, rules(1024, 1024, 65535));
    let w = &mut ws[0];
    assert_eq!(syn(w, CLIENT, 1000, S), TX);
    // Now the client is denied: its open connection carries on, a new one is refused.
    let mut r = with_acl(rules(1024, 1024, 65535), &[], &[(CLIENT, 24)]);
    r.generation = 2;
    w.update_rules(Arc::new(r));
    let mut f = tcp(sa(CLIENT, 1000), sa(VIP, 80), "A", b"hello");
    assert_eq!(run(w, &mut f, S + 1), TX);
    let o = decode(&f);
    assert_eq!(o.payload, b"hello");
    assert_eq!(
        syn(w, CLIENT, 1001, S + 2),
        Verdict::Drop(DropReason::ClientDenied)
    );
    // Lifting the deny admits it again.
    let mut r = rules(1024, 1024, 65535);
    r.generation = 3;
    w.update_rules(Arc::new(r));
    assert_eq!(syn(w, CLIENT, 1002, S + 3), TX);
}

#[test]
fn conn_rate_caps_new_connections_per_prefix_but_not_established_ones() {
    let mut r = rules(1024, 1024, 65535);
    r.services[0].options.conn_rate = Some(ConnRateLimit {
        rate: 2,
        burst: 2,
        prefix_len: 24,
    });
    let mut ws = workers(1, r);
    let w = &mut ws[0];
    assert_eq!(syn(w, CLIENT, 1000, S), TX);
    assert_eq!(syn(w, Ipv4Addr::new(203, 0, 113, 99), 1001, S), TX);
    // The /24's burst is spent; another prefix is not affected.
    assert_eq!(
        syn(w, CLIENT, 1002, S),
        Verdict::Drop(DropReason::ClientRateLimited)
    );
    assert_eq!(syn(w, OTHER, 1000, S), TX);
    // The established connection is not counted against the cap.
    for i in 0..10 {
        let mut f = tcp(sa(CLIENT, 1000), sa(VIP, 80), "A", b"x");
        assert_eq!(run(w, &mut f, S + i), TX);
    }
    // Half a second later (2 per second) one more.
    assert_eq!(syn(w, CLIENT, 1003, S + S / 2), TX);
    assert_eq!(
        syn(w, CLIENT, 1004, S + S / 2),
        Verdict::Drop(DropReason::ClientRateLimited)
    );
    assert_eq!(drops(w, DropReason::ClientRateLimited), 2);
}

mod prop {
    use fnat_engine::acl::PrefixSet;
    use fnat_engine::rules::prefix_mask;
    use proptest::prelude::*;

    /// The oracle: a linear scan over the prefixes.
    fn naive(prefixes: &[(u32, u8)], addr: u32) -> bool {
        prefixes
            .iter()
            .any(|&(a, l)| a & prefix_mask(l) == addr & prefix_mask(l))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn prefix_set_agrees_with_a_naive_scan(
            // Few distinct bases so that probes hit and miss.
            prefixes in prop::collection::vec((0u32..64, 0u8..=32), 0..200),
            probes in prop::collection::vec((0u32..64, any::<u32>()), 1..200),
            spread in 0u32..32,
        ) {
            // Spread the bases across the address space, then probe near them.
            let place = |b: u32| b.rotate_right(spread) ^ 0xC612_0000;
            let prefixes: Vec<(u32, u8)> =
                prefixes.into_iter().map(|(b, l)| (place(b), l)).collect();
            let set = PrefixSet::new(prefixes.iter().copied());
            for (b, noise) in probes {
                let addr = place(b) ^ (noise >> (noise % 33).min(31));
                prop_assert_eq!(set.contains(addr), naive(&prefixes, addr), "addr {:#x}", addr);
            }
        }
    }
}
