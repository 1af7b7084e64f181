//! The exception path: frames for a port's own addresses that the dataplane does not consume
//! go to the port's kernel twin (`Verdict::ToKernel`) when it has one, and are dropped as
//! before when it has none. Frames are built by etherparse (ARP bodies by hand, RFC 826).

mod common;

use common::*;
use etherparse::{EtherType, Ethernet2Header, PacketBuilder};
use fnat_engine::{DropReason, Verdict, Worker};

fn worker_with_twins(twins: &[u16]) -> Worker {
    let mut w = workers(1, rules(1024, 1024, 5000)).remove(0);
    w.set_announce(false);
    w.set_kernel_twins(twins);
    w
}

/// An ARP frame to `eth_dst` from `eth_src` (also its sender hardware address).
fn arp(
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    op: u16,
    spa: std::net::Ipv4Addr,
    tha: [u8; 6],
    tpa: std::net::Ipv4Addr,
) -> Vec<u8> {
    arp_frame(eth_dst, eth_src, op, eth_src, spa, tha, tpa)
}

fn echo_reply(src: std::net::Ipv4Addr, dst: std::net::Ipv4Addr) -> Vec<u8> {
    let (_, our_mac, peer_mac) = side_of(sa(dst, 0));
    let mut out = Vec::new();
    PacketBuilder::ethernet2(peer_mac, our_mac)
        .ipv4(src.octets(), dst.octets(), 64)
        .icmpv4_echo_reply(7, 1)
        .write(&mut out, b"pong")
        .unwrap();
    out
}

/// received = transmitted + redirected + dropped + consumed + held + to_kernel.
fn assert_books_close(w: &Worker) {
    let s = w.stats();
    assert_eq!(
        s.received,
        s.transmitted + s.redirected + s.dropped() + s.consumed + s.held + s.to_kernel,
        "{s:?}"
    );
}

#[test]
fn tcp_and_udp_to_the_port_address_go_to_the_twin_unchanged() {
    let mut w = worker_with_twins(&[1]);
    // ssh from a real server's network to the port's own address.
    let syn = tcp(sa(RS1, 40000), sa(PORT1_IP, 22), "S", b"");
    let mut f = syn.clone();
    assert_eq!(run(&mut w, &mut f, S), Verdict::ToKernel { port: 1 });
    assert_eq!(f, syn, "the kernel gets the frame as it came");
    let dns = udp(sa(RS2, 5353), sa(PORT1_IP, 53), b"query");
    let mut f = dns.clone();
    assert_eq!(run(&mut w, &mut f, S), Verdict::ToKernel { port: 1 });
    assert_eq!(f, dns);
    assert_eq!(w.stats().to_kernel, 2);
    assert_eq!(w.stats().dropped(), 0);
    assert_books_close(&w);
}

#[test]
fn without_a_twin_the_same_frames_are_dropped_as_before() {
    let mut w = worker_with_twins(&[]);
    let mut f = tcp(sa(RS1, 40000), sa(PORT1_IP, 22), "S", b"");
    assert_eq!(run(&mut w, &mut f, S), Verdict::Drop(DropReason::NoService));
    let mut f = echo_reply(RS1, PORT1_IP);
    assert_eq!(
        run(&mut w, &mut f, S),
        Verdict::Drop(DropReason::IcmpUnsupported)
    );
    // A twin on the other port does not change this port's verdicts.
    let mut w = worker_with_twins(&[0]);
    let mut f = tcp(sa(RS1, 40000), sa(PORT1_IP, 22), "S", b"");
    assert_eq!(run(&mut w, &mut f, S), Verdict::Drop(DropReason::NoService));
    assert_eq!(w.stats().to_kernel, 0);
    assert_books_close(&w);
}

#[test]
fn echo_requests_are_still_answered_and_echo_replies_go_to_the_kernel() {
    let mut w = worker_with_twins(&[0, 1]);
    let mut f = echo_request(RS1, PORT1_IP, 9, 1);
    assert_eq!(run(&mut w, &mut f, S), Verdict::Transmit { port: 1 });
    let out = decode(&f);
    assert_eq!(*out.dst.ip(), RS1, "{out:?}");
    let mut f = echo_reply(RS1, PORT1_IP);
    assert_eq!(run(&mut w, &mut f, S), Verdict::ToKernel { port: 1 });
    assert_books_close(&w);
}

#[test]
fn arp_replies_are_learned_and_passed_to_the_twin_requests_answered_here() {
    let mut w = worker_with_twins(&[1]);
    // A reply to the kernel's request (same MAC and address as the port's own).
    let mut f = arp(PORT1_MAC, RS1_MAC, 2, RS1, PORT1_MAC, PORT1_IP);
    assert_eq!(run(&mut w, &mut f, S), Verdict::ToKernel { port: 1 });
    // A request for the port's address: the engine answers, the kernel is not bothered.
    let mut f = arp([0xff; 6], RS2_MAC, 1, RS2, [0; 6], PORT1_IP);
    assert_eq!(w.process(1, &mut f, S), Verdict::Transmit { port: 1 });
    // Learned: a new connection to RS1 leaves at once instead of waiting for ARP.
    let mut syn = tcp(sa(CLIENT, 1111), sa(VIP, 80), "S", b"");
    assert_eq!(run(&mut w, &mut syn, S), Verdict::Transmit { port: 1 });
    assert_eq!(*decode(&syn).dst.ip(), RS1);
    assert_eq!(w.stats().consumed, 0);
    assert_books_close(&w);
}

#[test]
fn services_and_sessions_are_untouched_by_a_twin() {
    let mut w = worker_with_twins(&[0, 1]);
    let mut syn = tcp(sa(CLIENT, 1111), sa(VIP, 80), "S", b"");
    assert!(matches!(
        run(&mut w, &mut syn, S),
        Verdict::Transmit { port: 1 } | Verdict::Consumed
    ));
    assert_eq!(w.stats().to_kernel, 0);
    // A VIP port with no service: the VIP is a port address, so the kernel's.
    let mut f = tcp(sa(CLIENT, 2222), sa(VIP, 22), "S", b"");
    assert_eq!(run(&mut w, &mut f, S), Verdict::ToKernel { port: 0 });
    assert_books_close(&w);
}

#[test]
fn a_local_address_that_is_a_port_address_keeps_its_port_range() {
    let mut w = worker_with_twins(&[1]);
    // Inside the local port range (1024..=5000): only a session may take it.
    let mut f = tcp(sa(RS1, 8080), sa(LIP1, 3000), "A", b"");
    assert_eq!(run(&mut w, &mut f, S), Verdict::Drop(DropReason::NoSession));
    // Outside it: a reply to a connection the kernel made from that address.
    let mut f = tcp(sa(RS1, 8080), sa(LIP1, 40000), "SA", b"");
    assert_eq!(run(&mut w, &mut f, S), Verdict::ToKernel { port: 1 });
    assert_books_close(&w);
}

#[test]
fn frames_the_ring_refused_are_counted_as_kernel_ring_full() {
    let mut w = worker_with_twins(&[1]);
    for p in 0..3 {
        let mut f = tcp(sa(RS1, 40000 + p), sa(PORT1_IP, 22), "S", b"");
        assert_eq!(run(&mut w, &mut f, S), Verdict::ToKernel { port: 1 });
    }
    w.kernel_failed(2);
    assert_eq!(w.stats().to_kernel, 1);
    assert_eq!(w.stats().drops[DropReason::KernelRingFull as usize], 2);
    assert_books_close(&w);
}

/// An IPv4 frame of protocol `proto` (TTL 255) from RS1 to `dst`, built by etherparse.
fn ip_proto(proto: u8, dst: std::net::Ipv4Addr, eth_dst: [u8; 6]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(RS1_MAC, eth_dst)
        .ipv4(RS1.octets(), dst.octets(), 255)
        .write(
            &mut out,
            etherparse::IpNumber(proto),
            &[0x21, 16, 100, 0, 1, 1, 0, 0],
        )
        .unwrap();
    out
}

#[test]
fn vrrp_adverts_go_to_the_twin_other_protocols_stay_dropped() {
    let group = std::net::Ipv4Addr::new(224, 0, 0, 18);
    let group_mac = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];
    let mut w = worker_with_twins(&[1]);
    // Multicast to 224.0.0.18 and unicast to the port's own address (unicast_peer).
    for (dst, mac) in [(group, group_mac), (PORT1_IP, PORT1_MAC)] {
        let advert = ip_proto(112, dst, mac);
        let mut f = advert.clone();
        // Received on port 1, the side RS1 is on.
        assert_eq!(w.process(1, &mut f, S), Verdict::ToKernel { port: 1 });
        assert_eq!(f, advert, "the kernel gets the frame as it came");
    }
    // Not VRRP, or VRRP to someone else's address: dropped as before.
    let mut f = ip_proto(113, group, group_mac);
    assert_eq!(
        w.process(1, &mut f, S),
        Verdict::Drop(DropReason::UnsupportedProtocol)
    );
    let mut f = ip_proto(112, RS2, PORT1_MAC);
    assert_eq!(
        w.process(1, &mut f, S),
        Verdict::Drop(DropReason::UnsupportedProtocol)
    );
    assert_eq!(w.stats().to_kernel, 2);
    assert_books_close(&w);
    // Without a twin on the port: dropped.
    let mut w = worker_with_twins(&[0]);
    let mut f = ip_proto(112, group, group_mac);
    assert_eq!(
        w.process(1, &mut f, S),
        Verdict::Drop(DropReason::UnsupportedProtocol)
    );
}

/// VRRP backup: a virtual address in `Rules::standby` is not answered by ARP and its traffic
/// is dropped as `vrrp_backup`; once it leaves the list (takeover) both work again.
#[test]
fn a_standby_vip_is_neither_answered_nor_served_until_takeover() {
    let mut standby = rules(1024, 1024, 5000);
    standby.standby = vec![VIP];
    let mut w = workers(1, standby.clone()).remove(0);
    w.set_announce(false);
    let who_has_vip = || arp([0xff; 6], ROUTER_MAC, 1, ROUTER, [0; 6], VIP);
    let mut f = who_has_vip();
    assert!(
        !matches!(w.process(0, &mut f, S), Verdict::Transmit { .. }),
        "a backup answered ARP for the VIP"
    );
    let mut f = tcp(sa(CLIENT, 40000), sa(VIP, 80), "S", b"");
    assert_eq!(
        run(&mut w, &mut f, S),
        Verdict::Drop(DropReason::VrrpBackup)
    );
    assert_eq!(w.stats().drops[DropReason::VrrpBackup as usize], 1);
    // The port's own address is still answered.
    let mut f = arp([0xff; 6], ROUTER_MAC, 1, ROUTER, [0; 6], PORT0_IP);
    assert_eq!(w.process(0, &mut f, S), Verdict::Transmit { port: 0 });
    // Takeover: the next snapshot no longer lists it.
    let mut master = standby;
    master.standby.clear();
    master.generation += 1;
    w.update_rules(std::sync::Arc::new(master));
    let mut f = who_has_vip();
    assert_eq!(w.process(0, &mut f, S), Verdict::Transmit { port: 0 });
    let mut f = tcp(sa(CLIENT, 40000), sa(VIP, 80), "S", b"");
    assert_eq!(run(&mut w, &mut f, S), Verdict::Transmit { port: 1 });
    assert_books_close(&w);
}

/// VRRP's gratuitous-ARP schedule (keepalived's `garp_master_repeat`, `_delay`, `_refresh`):
/// worker 0 announces each owned address as many times as its total in `Rules::garp` grew
/// (two requests coalesced into one snapshot included); the same totals again announce
/// nothing, and an address this director does not own (standby) is never announced.
/// Checked with etherparse.
#[test]
fn a_vrrp_garp_round_announces_each_owned_address_repeat_times() {
    let mut rules = rules(1024, 1024, 5000);
    let mut w = workers(1, rules.clone()).remove(0);
    let drain = |w: &mut Worker| {
        let mut sent: Vec<(u16, [u8; 4], [u8; 4])> = Vec::new();
        for _ in 0..8 {
            w.drain_originated(S, |port, bytes| {
                let (eth, rest) = Ethernet2Header::from_slice(bytes).unwrap();
                assert_eq!(eth.ether_type, EtherType::ARP);
                assert_eq!(eth.destination, [0xff; 6]);
                // RFC 826 body: sender and target protocol addresses at 14 and 24.
                let spa: [u8; 4] = rest[14..18].try_into().unwrap();
                let tpa: [u8; 4] = rest[24..28].try_into().unwrap();
                sent.push((port, spa, tpa));
                fnat_engine::Emit::Sent
            });
        }
        sent
    };
    // The start's announcements of every owned address, once.
    let start = drain(&mut w);
    assert!(start.iter().all(|(_, spa, tpa)| spa == tpa));
    // Two requests (1 and 2) before the worker takes the snapshot: 3 in all.
    rules
        .garp
        .add(&[VIP, std::net::Ipv4Addr::new(198, 18, 99, 1)], 1);
    rules.garp.add(&[VIP], 2);
    rules.generation += 1;
    w.update_rules(std::sync::Arc::new(rules.clone()));
    let vip = VIP.octets();
    let sent = drain(&mut w);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent
        .iter()
        .all(|(port, spa, tpa)| *port == 0 && *spa == vip && *tpa == vip));
    // The same totals in a later snapshot: nothing more.
    rules.generation += 1;
    w.update_rules(std::sync::Arc::new(rules.clone()));
    assert!(drain(&mut w).is_empty());
    // A standby VIP is not announced, whatever the totals say.
    rules.standby = vec![VIP];
    rules.garp.add(&[VIP], 5);
    rules.generation += 1;
    w.update_rules(std::sync::Arc::new(rules.clone()));
    assert!(drain(&mut w).is_empty());
}
