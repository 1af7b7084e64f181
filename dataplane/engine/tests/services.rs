//! Services through the worker: persistence (across connections, ports and workers, with
//! template expiry on injected time), port groups, port-0 services, thresholds, drain,
//! removal, and connection counts shared between workers. Frames are built and checked with
//! etherparse.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use common::*;
use fnat_engine::rules::{
    Endpoint, Persistence, PortGroup, Protocol, Rules, SchedulerKind, Thresholds,
};
use fnat_engine::{DropReason, Verdict, Worker};

const C2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 8);
const FAR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);

fn persistent(timeout_secs: u32, netmask: Ipv4Addr) -> Rules {
    let mut r = rules(1024, 1024, 65535);
    r.services[0].options.persistence = Some(Persistence {
        timeout_secs,
        netmask,
    });
    r
}

/// A SYN from `client` to VIP:`vport` on worker `first`, following a redirect. Returns the
/// worker that took it and the RS socket it was sent to (None when dropped).
fn syn_on(
    ws: &mut [Worker],
    first: usize,
    client: SocketAddrV4,
    vport: u16,
    now: u64,
) -> (usize, Result<(SocketAddrV4, SocketAddrV4), Verdict>) {
    let mut f = tcp(client, sa(VIP, vport), "S", b"");
    let (w, v) = run_steered(ws, first, &mut f, now);
    match v {
        Verdict::Transmit { port: 1 } => {
            let o = decode(&f);
            assert_eq!(o.src_mac, PORT1_MAC);
            assert_eq!(o.dst_mac, rs_mac(*o.dst.ip()));
            (w, Ok((o.src, o.dst)))
        }
        other => (w, Err(other)),
    }
}

fn rs_of(w: &mut Worker, client: SocketAddrV4, vport: u16, now: u64) -> Ipv4Addr {
    let (_, r) = syn_on(std::slice::from_mut(w), 0, client, vport, now);
    *r.expect("scheduled").1.ip()
}

#[test]
fn persistence_sticks_a_client_across_connections_and_masks_with_the_netmask() {
    // rr alone would alternate RS1, RS2, RS1, ...
    let mut ws = workers(1, persistent(360, Ipv4Addr::new(255, 255, 255, 0)));
    let w = &mut ws[0];
    let first = rs_of(w, sa(CLIENT, 1000), 80, S);
    for p in 1001..1010 {
        assert_eq!(rs_of(w, sa(CLIENT, p), 80, S), first);
        // 203.0.113.8 is in the same /24: same template.
        assert_eq!(rs_of(w, sa(C2, p), 80, S), first);
    }
    // Another network gets scheduled (rr's next server) and sticks there.
    let other = rs_of(w, sa(FAR, 1000), 80, S);
    assert_ne!(other, first);
    assert_eq!(rs_of(w, sa(FAR, 1001), 80, S), other);
    assert_eq!(w.fullnat().templates().unwrap().len(), 2);

    // Without persistence the same sequence alternates: the test can fail.
    let mut ws = workers(1, rules(1024, 1024, 65535));
    let a = rs_of(&mut ws[0], sa(CLIENT, 1000), 80, S);
    assert_ne!(rs_of(&mut ws[0], sa(CLIENT, 1001), 80, S), a);
}

#[test]
fn template_expires_on_injected_time_but_not_while_it_controls_a_session() {
    let mut ws = workers(1, persistent(100, Ipv4Addr::BROADCAST));
    let w = &mut ws[0];
    let c = |p| sa(CLIENT, p);
    assert_eq!(rs_of(w, c(1), 80, S), RS1);
    // The SYN_RECV session ends at 61 s; the template was armed until 101 s.
    assert_eq!(w.housekeeping(62 * S, 100), 1);
    assert_eq!(w.stats().sessions, 0);
    assert_eq!(
        rs_of(w, c(2), 80, 70 * S),
        RS1,
        "template re-armed to 170 s"
    );
    w.housekeeping(131 * S, 100);
    assert_eq!(rs_of(w, c(3), 80, 169 * S), RS1, "just before its deadline");
    w.housekeeping(230 * S, 100);
    assert_eq!(w.stats().sessions, 0);
    // At the deadline (169 + 100 s) the template is gone: rr picks again (its cursor never
    // moved for template hits, so RS2 comes next).
    assert_eq!(rs_of(w, c(4), 80, 269 * S), RS2);

    // A template outlives its timeout while a session it scheduled lives.
    let mut ws = workers(1, persistent(10, Ipv4Addr::BROADCAST));
    let w = &mut ws[0];
    let (lip, rs) = syn_on(std::slice::from_mut(w), 0, c(1), 80, S).1.unwrap();
    let mut f = tcp(rs, lip, "SA", b"");
    assert_eq!(run(w, &mut f, S), Verdict::Transmit { port: 0 });
    let mut f = tcp(c(1), sa(VIP, 80), "A", b"");
    assert_eq!(run(w, &mut f, S), Verdict::Transmit { port: 1 }); // ESTABLISHED: 900 s
    w.housekeeping(50 * S, 100);
    assert_eq!(w.stats().templates, 1);
    assert_eq!(rs_of(w, c(2), 80, 50 * S), *rs.ip());
}

fn port_group_rules() -> Rules {
    let mut r = persistent(360, Ipv4Addr::BROADCAST);
    let s = &mut r.services[0];
    s.port = 80;
    for rs in &mut s.reals {
        rs.port = 0; // the port the client asked for
    }
    s.options.port_group = Some(PortGroup {
        mark: 7,
        name: "web".into(),
        members: [80, 443]
            .map(|port| Endpoint {
                vip: VIP,
                protocol: Protocol::Tcp,
                port,
            })
            .to_vec(),
    });
    r
}

#[test]
fn port_group_schedules_http_and_https_as_one_persistent_service() {
    let mut ws = workers(1, port_group_rules());
    let w = &mut ws[0];
    for (i, client) in [CLIENT, C2, FAR].into_iter().enumerate() {
        let (_, http) = syn_on(std::slice::from_mut(w), 0, sa(client, 2000), 80, S)
            .1
            .unwrap();
        let (_, https) = syn_on(std::slice::from_mut(w), 0, sa(client, 2001), 443, S)
            .1
            .unwrap();
        assert_eq!(http.port(), 80);
        assert_eq!(https.port(), 443, "RS port 0 keeps the client's port");
        assert_eq!(
            http.ip(),
            https.ip(),
            "client {i}: http and https on one RS"
        );
    }
    // One service: its counters hold both ports' connections.
    assert_eq!(w.stats().service(TCP_SVC).unwrap().traffic.conns, 6);
    // A port outside the group is not served.
    let mut f = tcp(sa(CLIENT, 2002), sa(VIP, 8080), "S", b"");
    assert_eq!(run(w, &mut f, S), Verdict::Drop(DropReason::NoService));
}

#[test]
fn port_zero_service_takes_every_other_port_and_persists_across_them() {
    let mut r = persistent(360, Ipv4Addr::BROADCAST);
    r.services[0].port = 0;
    r.services[0].reals[0].port = 0;
    r.services[0].reals[1].port = 0;
    // An exact VIP:port service wins over the port-0 one (the UDP service stays on 53).
    let mut ws = workers(1, r);
    let w = &mut ws[0];
    let (_, a) = syn_on(std::slice::from_mut(w), 0, sa(CLIENT, 3000), 22, S)
        .1
        .unwrap();
    let (_, b) = syn_on(std::slice::from_mut(w), 0, sa(CLIENT, 3001), 8443, S)
        .1
        .unwrap();
    assert_eq!((a.port(), b.port()), (22, 8443));
    assert_eq!(a.ip(), b.ip());
    let mut f = udp(sa(CLIENT, 3002), sa(VIP, 53), b"q");
    assert_eq!(run(w, &mut f, S), Verdict::Transmit { port: 1 });
    assert_eq!(decode(&f).dst, sa(RS1, 5353));
    let mut f = udp(sa(CLIENT, 3003), sa(VIP, 54), b"q");
    assert_eq!(
        run(w, &mut f, S),
        Verdict::Drop(DropReason::NoService),
        "no UDP port-0"
    );
}

#[test]
fn persistence_is_consistent_across_workers() {
    for n in [2u16, 3] {
        let mut ws = workers(n, port_group_rules());
        for client in [CLIENT, C2, FAR] {
            let mut rs_seen = None;
            let mut owner_seen = None;
            for k in 0..12u16 {
                let first = (k % n) as usize; // RSS spreads the client's flows
                let port = if k % 2 == 0 { 80 } else { 443 };
                let (owner, r) = syn_on(&mut ws, first, sa(client, 4000 + k), port, S);
                let (lip, rs) = r.unwrap();
                assert_eq!(*rs_seen.get_or_insert(*rs.ip()), *rs.ip(), "{n} workers");
                assert_eq!(*owner_seen.get_or_insert(owner), owner);
                // The reply to LIP:lport lands on the same worker, wherever it arrives.
                let mut f = tcp(rs, lip, "SA", b"");
                let (w, v) = run_steered(&mut ws, (k as usize + 1) % n as usize, &mut f, S);
                assert_eq!((w, v), (owner, Verdict::Transmit { port: 0 }));
                assert_eq!(decode(&f).dst, sa(client, 4000 + k));
                // So do the client's next packets.
                let mut f = tcp(sa(client, 4000 + k), sa(VIP, port), "A", b"");
                let (w, v) = run_steered(&mut ws, first, &mut f, S);
                assert_eq!((w, v), (owner, Verdict::Transmit { port: 1 }));
            }
        }
        let templates: usize = ws
            .iter()
            .map(|w| w.fullnat().templates().map_or(0, |t| t.len()))
            .sum();
        assert_eq!(templates, 3, "one template per client, on its owner only");
    }
    // Without persistence, per-worker rr cursors send one client to both servers.
    let mut ws = workers(2, rules(1024, 1024, 65535));
    let seen: std::collections::HashSet<_> = (0..4u16)
        .map(|k| {
            *syn_on(&mut ws, (k % 2) as usize, sa(CLIENT, 5000 + k), 80, S)
                .1
                .unwrap()
                .1
                .ip()
        })
        .collect();
    assert_eq!(seen.len(), 2);
}

#[test]
fn sessions_living_on_a_worker_survive_persistence_being_switched_on() {
    let r = rules(1024, 1024, 65535);
    let mut ws = workers(2, r.clone());
    // Sessions of one client on both workers, before persistence.
    let mut open = Vec::new();
    for k in 0..4u16 {
        let (w, res) = syn_on(&mut ws, (k % 2) as usize, sa(CLIENT, 6000 + k), 80, S);
        assert_eq!(w, (k % 2) as usize);
        open.push((w, res.unwrap()));
    }
    let mut r2 = persistent(360, Ipv4Addr::BROADCAST);
    r2.generation = 2;
    for w in ws.iter_mut() {
        w.update_rules(Arc::new(r2.clone()));
    }
    for (k, (w, (lip, rs))) in open.iter().enumerate() {
        let mut f = tcp(sa(CLIENT, 6000 + k as u16), sa(VIP, 80), "A", b"");
        assert_eq!(
            run(&mut ws[*w], &mut f, 2 * S),
            Verdict::Transmit { port: 1 }
        );
        assert_eq!((decode(&f).src, decode(&f).dst), (*lip, *rs));
    }
}

#[test]
fn thresholds_stop_new_sessions_until_below_the_lower_one() {
    for (lower, back_at_one) in [(0u32, true), (1, false)] {
        let mut r = rules(1024, 1024, 65535);
        r.services[0].reals[0].thresholds = Thresholds { upper: 2, lower };
        let mut ws = workers(1, r);
        let w = &mut ws[0];
        let c = |p| sa(CLIENT, p);
        assert_eq!(rs_of(w, c(1), 80, S), RS1);
        assert_eq!(rs_of(w, c(2), 80, S), RS2);
        assert_eq!(rs_of(w, c(3), 80, 20 * S), RS1); // RS1 reaches 2: overloaded
        for p in 4..8 {
            assert_eq!(rs_of(w, c(p), 80, 20 * S), RS2, "RS1 overloaded");
        }
        // c1 and c2 time out (SYN_RECV, 60 s): RS1 is down to 1 connection. Below 3/4 of
        // the upper threshold (lower = 0), it takes sessions again; not below lower = 1.
        w.housekeeping(62 * S, 100);
        assert_eq!(w.stats().real(TCP_SVC, 11).unwrap().inactive_conns, 1);
        let next = rs_of(w, c(9), 80, 62 * S);
        assert_eq!(next == RS1, back_at_one, "lower {lower}");
    }
}

/// IPVS's default (`expire_quiescent_template` off): a drained server keeps the clients its
/// templates send it, new clients go elsewhere, and the template ends as usual.
#[test]
fn weight_zero_keeps_persistent_clients_by_default() {
    let mut r = persistent(360, Ipv4Addr::BROADCAST);
    r.services[0].options.persistence = Some(Persistence {
        timeout_secs: 360,
        netmask: Ipv4Addr::new(255, 255, 255, 0),
    });
    let mut ws = workers(1, r.clone());
    let w = &mut ws[0];
    assert_eq!(rs_of(w, sa(CLIENT, 1), 80, S), RS1);
    r.generation = 2;
    r.services[0].reals[0].weight = 0;
    w.update_rules(Arc::new(r.clone()));
    assert_eq!(
        rs_of(w, sa(CLIENT, 2), 80, S),
        RS1,
        "the persistent client stays on the drained server"
    );
    let stranger = Ipv4Addr::new(203, 0, 114, 9);
    assert_eq!(
        rs_of(w, sa(stranger, 1), 80, S),
        RS2,
        "a new client does not"
    );
    // With the sysctl's behaviour, the same client is moved at once.
    r.generation = 3;
    r.expire_quiescent_template = true;
    w.update_rules(Arc::new(r));
    assert_eq!(rs_of(w, sa(CLIENT, 3), 80, S), RS2);
}

/// With `expire_quiescent_template`: weight 0 drains persistent clients too.
#[test]
fn weight_zero_drains_even_persistent_clients_and_keeps_their_sessions() {
    let mut r = persistent(360, Ipv4Addr::BROADCAST);
    r.expire_quiescent_template = true;
    let mut ws = workers(1, r.clone());
    let w = &mut ws[0];
    let (lip, rs) = syn_on(std::slice::from_mut(w), 0, sa(CLIENT, 1), 80, S)
        .1
        .unwrap();
    assert_eq!(*rs.ip(), RS1);
    r.generation = 2;
    r.services[0].reals[0].weight = 0;
    w.update_rules(Arc::new(r.clone()));
    assert_eq!(
        rs_of(w, sa(CLIENT, 2), 80, S),
        RS2,
        "no new session on a drained RS"
    );
    let mut f = tcp(rs, lip, "SA", b"");
    assert_eq!(run(w, &mut f, S), Verdict::Transmit { port: 0 });
    // The template now points at RS2, and a weight change never moves sessions.
    r.generation = 3;
    r.services[0].reals[0].weight = 5;
    w.update_rules(Arc::new(r));
    assert_eq!(rs_of(w, sa(CLIENT, 3), 80, S), RS2);
    let mut f = tcp(sa(CLIENT, 1), sa(VIP, 80), "A", b"");
    assert_eq!(run(w, &mut f, S), Verdict::Transmit { port: 1 });
    assert_eq!(decode(&f).dst, rs);
}

#[test]
fn removing_a_real_server_with_and_without_expire_on_removal() {
    for expire in [false, true] {
        let mut r = rules(1024, 1024, 65535);
        r.services[0].options.expire_on_removal = expire;
        let mut ws = workers(1, r.clone());
        let w = &mut ws[0];
        let (lip1, rs1) = syn_on(std::slice::from_mut(w), 0, sa(CLIENT, 1), 80, S)
            .1
            .unwrap();
        let (lip2, rs2) = syn_on(std::slice::from_mut(w), 0, sa(CLIENT, 2), 80, S)
            .1
            .unwrap();
        assert_eq!((*rs1.ip(), *rs2.ip()), (RS1, RS2));
        r.generation = 2;
        r.services[0].reals.retain(|x| x.addr != RS2);
        w.update_rules(Arc::new(r.clone()));
        let mut f = tcp(rs2, lip2, "SA", b"");
        let v = run(w, &mut f, 2 * S);
        if expire {
            assert_eq!(v, Verdict::Drop(DropReason::NoSession));
            assert_eq!(w.stats().sessions, 1);
        } else {
            assert_eq!(v, Verdict::Transmit { port: 0 });
            assert_eq!(decode(&f).dst, sa(CLIENT, 2));
            assert_eq!(w.stats().sessions, 2);
        }
        let mut f = tcp(rs1, lip1, "SA", b"");
        assert_eq!(run(w, &mut f, 2 * S), Verdict::Transmit { port: 0 });
        assert_eq!(rs_of(w, sa(CLIENT, 3), 80, 2 * S), RS1);
    }
    // With expiry, housekeeping ends the removed server's sessions without any packet.
    let mut r = rules(1024, 1024, 65535);
    r.services[0].options.expire_on_removal = true;
    let mut ws = workers(1, r.clone());
    let w = &mut ws[0];
    for p in 1..=6 {
        rs_of(w, sa(CLIENT, p), 80, S);
    }
    r.generation = 2;
    r.services[0].reals.retain(|x| x.addr != RS2);
    w.update_rules(Arc::new(r));
    assert_eq!(w.housekeeping(2 * S, 100), 3);
    assert_eq!(w.stats().sessions, 3);
}

#[test]
fn removing_a_port_group_service_ends_its_sessions_on_every_port() {
    let r = port_group_rules();
    let mut ws = workers(1, r.clone());
    let w = &mut ws[0];
    rs_of(w, sa(CLIENT, 1), 80, S);
    rs_of(w, sa(CLIENT, 2), 443, S);
    let mut r2 = r;
    r2.generation = 2;
    r2.services.remove(0);
    w.update_rules(Arc::new(r2));
    assert_eq!(w.housekeeping(2 * S, 100), 2);
    for port in [80, 443] {
        let mut f = tcp(sa(CLIENT, 9), sa(VIP, port), "S", b"");
        assert_eq!(run(w, &mut f, 2 * S), Verdict::Drop(DropReason::NoService));
    }
}

#[test]
fn least_connection_sees_the_other_workers_counts_after_they_publish() {
    let mut r = rules(1024, 1024, 65535);
    r.services[0].scheduler = SchedulerKind::Lc;
    let mut ws = workers(2, r);
    // Worker 0: lc balances its own sessions exactly: RS1, RS2, RS1.
    let picks: Vec<_> = (1..=3)
        .map(|p| rs_of(&mut ws[0], sa(CLIENT, p), 80, S))
        .collect();
    assert_eq!(picks, [RS1, RS2, RS1]);
    // Worker 1 has not seen them yet: both servers look idle, the first wins.
    assert_eq!(rs_of(&mut ws[1], sa(C2, 1), 80, S), RS1);
    // After both publish (every millisecond, in housekeeping), worker 1 sees RS1 = 3
    // (2 of worker 0 + its own) against RS2 = 1.
    ws[0].housekeeping(S + 2_000_000, 10);
    ws[1].housekeeping(S + 2_000_000, 10);
    assert_eq!(rs_of(&mut ws[1], sa(C2, 2), 80, S + 2_000_000), RS2);
    assert_eq!(rs_of(&mut ws[1], sa(C2, 3), 80, S + 2_000_000), RS2);
    assert_eq!(rs_of(&mut ws[1], sa(C2, 4), 80, S + 2_000_000), RS1);
}

#[test]
fn every_scheduler_forwards_through_the_worker() {
    for kind in SchedulerKind::ALL {
        let mut r = rules(1024, 1024, 65535);
        r.services[0].scheduler = kind;
        let mut ws = workers(1, r);
        let w = &mut ws[0];
        for p in 1..=8 {
            let rs = rs_of(w, sa(Ipv4Addr::new(198, 51, 100, p as u8), p), 80, S);
            assert!(rs == RS1 || rs == RS2, "{kind:?}");
        }
        assert_eq!(w.stats().sessions, 8, "{kind:?}");
    }
}
