//! Session sync through the engine: a master's workers note their sessions as the kernel's
//! rules say, the entries cross the wire format (encoded and decoded by fnat-sync), a
//! backup's workers install them where the control side routes them (`sync_owner`), the
//! backup drops traffic to the VIP while it is standby (`vrrp_backup`), and after takeover
//! (the VIP leaves the standby list) the same connections forward mid-flow, both ways, with
//! the master's local address and port. Frames are built and checked with etherparse.

mod common;

use common::*;
use etherparse::PacketBuilder;
use fnat_engine::fnat::sync::{sync_owner, Installed, SyncReject};
use fnat_engine::rules::{Method, Rules};
use fnat_engine::session::ConnState;
use fnat_engine::{DropReason, Verdict, Worker};
use fnat_sync::{Conn, Encoder, Message, SyncRules};
use std::net::SocketAddrV4;
use std::sync::Arc;

const WORKERS: u16 = 2;

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

/// Drains every worker's sync outbox through the wire format: encoded into messages of the
/// kernel's default size, decoded back.
fn over_the_wire(ws: &mut [Worker]) -> Vec<Conn> {
    let mut enc = Encoder::new(7, fnat_sync::DEFAULT_MAXLEN);
    let mut wire: Vec<Vec<u8>> = Vec::new();
    for w in ws.iter_mut() {
        w.drain_sync(|c| {
            if !enc.push(c) {
                wire.push(enc.message().to_vec());
                enc.clear();
                assert!(enc.push(c));
            }
            true
        });
    }
    if !enc.is_empty() {
        wire.push(enc.message().to_vec());
    }
    let mut out = Vec::new();
    for m in wire {
        match fnat_sync::decode(&m).expect("fnatd's own message decodes") {
            Message::Conns { syncid, conns } => {
                assert_eq!(syncid, 7);
                out.extend(conns.into_iter().map(|c| c.expect("entry accepted")));
            }
            other => panic!("{other:?}"),
        }
    }
    out
}

/// One client connection through the master: handshake and two data segments, the real
/// server's replies too where they pass the director. Returns the (lip, lport) the real
/// server saw.
fn master_flow(ws: &mut [Worker], method: Method, client: SocketAddrV4, now: u64) -> SocketAddrV4 {
    let vip = sa(VIP, 80);
    let mut f = tcp(client, vip, "S", b"");
    let (w, v) = run_steered(ws, 0, &mut f, now);
    assert!(matches!(v, Verdict::Transmit { port: 1 }), "{v:?}");
    let seen = decode(&f);
    let rs = seen.dst;
    let back = seen.src;
    if method != Method::Dr {
        let mut r = from_rs(rs, back, "SA", b"");
        let (_, v) = run_steered(ws, (w + 1) % ws.len(), &mut r, now);
        assert_eq!(v, Verdict::Transmit { port: 0 });
    }
    for payload in [&b""[..], b"one", b"two"] {
        let mut f = tcp(client, vip, "A", payload);
        let (_, v) = run_steered(ws, w, &mut f, now);
        assert!(matches!(v, Verdict::Transmit { port: 1 }), "{v:?}");
    }
    back
}

fn sync_and_take_over(method: Method) {
    let master_rules = rules_with(method);
    let mut master = workers(WORKERS, master_rules.clone());
    for w in &mut master {
        w.set_sync(Some(SyncRules::default()));
    }
    let mut standby = master_rules.clone();
    standby.standby = vec![VIP];
    let mut backup = workers(WORKERS, standby.clone());
    let now = 10 * S;
    let clients: Vec<SocketAddrV4> = (0..6).map(|i| sa(CLIENT, 40000 + i)).collect();
    let backs: Vec<SocketAddrV4> = clients
        .iter()
        .map(|&c| master_flow(&mut master, method, c, now))
        .collect();
    let entries = over_the_wire(&mut master);
    // Each connection reached ESTABLISHED with its 3rd client packet (threshold 3): one entry
    // each, in the kernel's form.
    assert_eq!(entries.len(), clients.len(), "{entries:#?}");
    for e in &entries {
        assert_eq!(e.state, 1, "ESTABLISHED");
        assert_eq!(e.fullnat.is_some(), method == Method::FullNat);
        let fwd = e.flags & fnat_sync::F_FWD_MASK;
        let want = match method {
            Method::FullNat | Method::Nat => fnat_sync::F_MASQ,
            Method::Dr => fnat_sync::F_DROUTE,
            Method::Tun(_) => fnat_sync::F_TUNNEL,
        };
        assert_eq!(fwd, want);
        assert!(e.timeout_s > 800 && e.timeout_s <= 900, "{}", e.timeout_s);
    }
    // The backup installs each where the control side routes it.
    let later = now + 5 * S;
    for e in &entries {
        let owner = sync_owner(&standby, WORKERS, e).expect("known service");
        assert_eq!(
            backup[owner as usize].install_synced(e, later),
            Ok(Installed::New)
        );
        // The same entry again refreshes.
        assert_eq!(
            backup[owner as usize].install_synced(e, later),
            Ok(Installed::Refreshed)
        );
    }
    let installed: usize = backup.iter().map(|w| w.fullnat().sessions().count()).sum();
    assert_eq!(installed, clients.len());
    for w in &backup {
        for (_, s, deadline) in w.fullnat().sessions() {
            assert_eq!(s.state, ConnState::Established);
            // The master's remaining timeout, from the moment of install.
            assert!(deadline > later + 800 * S && deadline <= later + 900 * S);
        }
    }
    // Standby: the VIP's traffic is dropped, the sessions stay.
    let mut f = tcp(clients[0], sa(VIP, 80), "A", b"x");
    let (_, v) = run_steered(&mut backup, 0, &mut f, later);
    assert_eq!(v, Verdict::Drop(DropReason::VrrpBackup));
    // Takeover: the VIP leaves the standby list.
    let mut active = standby.clone();
    active.standby.clear();
    active.generation += 1;
    let active = Arc::new(active);
    for w in &mut backup {
        w.update_rules(active.clone());
    }
    let t = later + S;
    for (&client, &back) in clients.iter().zip(&backs) {
        let mut f = tcp(client, sa(VIP, 80), "A", b"three");
        let (_, v) = run_steered(&mut backup, 0, &mut f, t);
        assert_eq!(
            v,
            Verdict::Transmit { port: 1 },
            "mid-flow data after takeover"
        );
        let out = decode(&f);
        assert_eq!(out.payload, b"three");
        match method {
            Method::FullNat => assert_eq!(out.src, back, "the master's LIP:lport"),
            Method::Nat => assert_eq!(out.src, client),
            _ => {
                assert_eq!(out.src, client);
                assert_eq!(out.dst, sa(VIP, 80));
                assert!(out.dst_mac == RS1_MAC || out.dst_mac == RS2_MAC);
            }
        }
        if method != Method::Dr {
            let rs = out.dst;
            let mut r = from_rs(rs, back, "A", b"reply");
            let (_, v) = run_steered(&mut backup, 1, &mut r, t);
            assert_eq!(v, Verdict::Transmit { port: 0 }, "reply after takeover");
            let out = decode(&r);
            assert_eq!(out.src, sa(VIP, 80));
            assert_eq!(out.dst, client);
            assert_eq!(out.payload, b"reply");
        }
    }
    // No new session was made: every packet found a synced one.
    let created: u64 = backup.iter().map(|w| w.stats().sessions_created).sum();
    assert_eq!(created, 0);
}

#[test]
fn fullnat_sessions_forward_on_the_backup_after_takeover() {
    sync_and_take_over(Method::FullNat);
}

#[test]
fn nat_sessions_forward_on_the_backup_after_takeover() {
    sync_and_take_over(Method::Nat);
}

#[test]
fn dr_sessions_forward_on_the_backup_after_takeover() {
    sync_and_take_over(Method::Dr);
}

#[test]
fn unknown_services_and_reals_are_rejected() {
    let r = rules_with(Method::FullNat);
    let mut ws = workers(1, r.clone());
    let conn = Conn {
        protocol: 6,
        flags: 0,
        state: 1,
        client: sa(CLIENT, 1234),
        vip: sa(VIP, 81),
        dest: sa(RS1, 8080),
        fwmark: 0,
        timeout_s: 100,
        fullnat: Some(fnat_sync::FullNat {
            lip: LIP1,
            lport: 2000,
            adjust_flags: 0,
            first_seq: 0,
            in_delta: 0,
            out_delta: 0,
            rs_wscale: 0,
        }),
    };
    assert_eq!(sync_owner(&r, 1, &conn), Err(SyncReject::UnknownService));
    assert_eq!(
        ws[0].install_synced(&conn, S),
        Err(SyncReject::UnknownService)
    );
    let mut c = conn;
    c.vip = sa(VIP, 80);
    c.dest = sa(RS1, 9999);
    assert_eq!(ws[0].install_synced(&c, S), Err(SyncReject::UnknownReal));
    c.dest = sa(RS1, 8080);
    c.fullnat = None;
    assert_eq!(ws[0].install_synced(&c, S), Err(SyncReject::MethodMismatch));
    c.fullnat = conn.fullnat;
    assert_eq!(ws[0].install_synced(&c, S), Ok(Installed::New));
    // The port is now taken: the worker's allocator never hands it out again.
    let mut other = c;
    other.client = sa(CLIENT, 1235);
    assert_eq!(
        ws[0].install_synced(&other, S),
        Err(SyncReject::LocalPortBusy)
    );
    assert_eq!(ws[0].stats().sessions, 1);
}

#[test]
fn sync_multicast_goes_to_the_kernel_twin() {
    let mut ws = workers(1, rules_with(Method::FullNat));
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(ROUTER_MAC, [0x01, 0, 0x5e, 0, 0, 0x51])
        .ipv4(ROUTER.octets(), [224, 0, 0, 81], 1)
        .udp(40000, 8848)
        .write(&mut frame, &fnat_sync::resync_request(1))
        .unwrap();
    // Without a twin: not ours.
    let mut f = frame.clone();
    assert!(matches!(ws[0].process(0, &mut f, S), Verdict::Drop(_)));
    ws[0].set_kernel_twins(&[0]);
    let mut f = frame.clone();
    assert_eq!(ws[0].process(0, &mut f, S), Verdict::ToKernel { port: 0 });
    assert_eq!(f, frame, "unchanged");
}

#[test]
fn persistence_templates_travel_and_steer_new_connections_on_the_backup() {
    use fnat_engine::rules::Persistence;
    let mut r = rules_with(Method::FullNat);
    r.services[0].options.persistence = Some(Persistence {
        timeout_secs: 300,
        netmask: std::net::Ipv4Addr::BROADCAST,
    });
    // One worker: one rr cursor, so the two clients get RS1 and RS2.
    let mut master = workers(1, r.clone());
    for w in &mut master {
        w.set_sync(Some(SyncRules::default()));
    }
    let now = 10 * S;
    let other = std::net::Ipv4Addr::new(203, 0, 113, 8);
    // rr: the other client gets RS1, ours RS2.
    master_flow(&mut master, Method::FullNat, sa(other, 40000), now);
    master_flow(&mut master, Method::FullNat, sa(CLIENT, 40000), now);
    let entries = over_the_wire(&mut master);
    let templates: Vec<&Conn> = entries.iter().filter(|c| c.is_template()).collect();
    assert_eq!(templates.len(), 2, "{entries:#?}");
    for t in &templates {
        assert_eq!(t.client.port(), 0, "a template has no client port");
        assert_eq!(t.state, 0);
        assert!(t.timeout_s > 290 && t.timeout_s <= 300);
    }
    let ours = templates
        .iter()
        .find(|t| *t.client.ip() == CLIENT)
        .expect("our template");
    assert_eq!(*ours.dest.ip(), RS2);
    let mut standby = r.clone();
    standby.standby = vec![VIP];
    let mut backup = workers(1, standby.clone());
    let later = now + S;
    for e in &entries {
        let owner = sync_owner(&standby, 1, e).expect("known service");
        assert_eq!(
            backup[owner as usize].install_synced(e, later),
            Ok(Installed::New),
            "{e:?}"
        );
    }
    let mut active = standby;
    active.standby.clear();
    active.generation += 1;
    let active = Arc::new(active);
    for w in &mut backup {
        w.update_rules(active.clone());
    }
    // A new connection of our client on the backup goes where the master's template says
    // (the backup's own rr would start with RS1).
    let mut syn = tcp(sa(CLIENT, 40100), sa(VIP, 80), "S", b"");
    let (_, v) = run_steered(&mut backup, 0, &mut syn, later + S);
    assert_eq!(v, Verdict::Transmit { port: 1 });
    assert_eq!(*decode(&syn).dst.ip(), RS2, "the synced template decides");
}

/// Peer B's rules: the same service, its own local address (not A's).
const LIP_B: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 0, 0, 102);

fn peer_rules() -> Rules {
    let mut r = rules_with(Method::FullNat);
    r.ports[1].addresses = vec![
        fnat_engine::rules::Ipv4Cidr {
            addr: PORT1_IP,
            prefix_len: 24,
        },
        fnat_engine::rules::Ipv4Cidr {
            addr: LIP_B,
            prefix_len: 32,
        },
    ];
    for s in &mut r.services {
        s.local_addresses = vec![LIP_B];
    }
    r
}

/// Two ACTIVE appliances syncing both ways (each a master and a backup): B installs A's
/// full-NAT sessions although their local address is A's (a foreign session: no port of
/// B's pool is claimed, none freed when it ends), and forwards a client packet of one with
/// A's local address and port as source, so that the real server's reply goes back to A,
/// which holds the session. B's own packets of it go back to A as refreshes, never as a
/// port clash.
#[test]
fn active_peers_forward_each_others_sessions_from_the_owners_local_address() {
    let mut a = workers(WORKERS, rules_with(Method::FullNat));
    let b_rules = peer_rules();
    let mut b = workers(WORKERS, b_rules.clone());
    let peers = SyncRules {
        active_peers: true,
        ..SyncRules::default()
    };
    for w in a.iter_mut().chain(b.iter_mut()) {
        w.set_sync(Some(peers));
    }
    let now = 10 * S;
    let clients: Vec<SocketAddrV4> = (0..6).map(|i| sa(CLIENT, 41000 + i)).collect();
    let backs: Vec<SocketAddrV4> = clients
        .iter()
        .map(|&c| master_flow(&mut a, Method::FullNat, c, now))
        .collect();
    for back in &backs {
        assert!(*back.ip() == LIP1 || *back.ip() == LIP2, "{back}");
    }
    let entries = over_the_wire(&mut a);
    // Each connection twice: at the SYN-ACK (active peers) and at the 3rd client packet.
    assert_eq!(entries.len(), 2 * clients.len());
    assert_eq!(
        entries.iter().filter(|e| e.state == 3).count(),
        clients.len()
    );
    let later = now + S;
    let mut owners = std::collections::BTreeSet::new();
    let mut new = 0;
    for e in &entries {
        let owner = sync_owner(&b_rules, WORKERS, e).expect("known service");
        assert_eq!(
            owner,
            fnat_engine::fnat::foreign_owner(u32::from(*e.client.ip()), e.client.port(), WORKERS),
            "a foreign session goes by its client, not the peer's local port"
        );
        owners.insert(owner);
        match b[owner as usize].install_synced(e, later) {
            Ok(Installed::New) => new += 1,
            Ok(Installed::Refreshed) => assert_eq!(e.state, 1, "the ESTABLISHED update"),
            Err(r) => panic!("{r:?}"),
        }
    }
    assert_eq!(new, clients.len());
    assert_eq!(owners.len(), 2, "the clients spread over B's 2 workers");
    let foreign: usize = b
        .iter()
        .map(|w| {
            w.fullnat()
                .sessions()
                .filter(|(_, s, _)| s.is_foreign())
                .count()
        })
        .sum();
    assert_eq!(
        foreign,
        clients.len(),
        "every one of A's sessions is foreign on B"
    );
    let ports_held = |ws: &[Worker]| -> u64 {
        ws.iter()
            .flat_map(|w| w.stats().local_addrs.iter())
            .map(|l| l.ports_in_use)
            .sum()
    };
    assert_eq!(ports_held(&b), 0, "B claims no port for A's sessions");
    for w in &b {
        assert!(
            w.stats().local_addrs.iter().all(|l| l.addr == LIP_B),
            "no pool made for A's address"
        );
    }
    // The router moved the clients to B: their data leaves B from A's LIP:lport.
    let t = later + S;
    for (&client, &back) in clients.iter().zip(&backs) {
        // Whichever of B's workers its RSS picks: at most one redirect to the session.
        for rss in 0..usize::from(WORKERS) {
            let mut f = tcp(client, sa(VIP, 80), "A", b"moved");
            let (_, v) = run_steered(&mut b, rss, &mut f, t);
            assert_eq!(v, Verdict::Transmit { port: 1 }, "client data on B");
            let out = decode(&f);
            assert_eq!(out.src, back, "A's local address and port");
            assert_eq!(out.payload, b"moved");
            // The real server answers A (its route to A's LIP): A still forwards it.
            let mut r = from_rs(out.dst, back, "A", b"reply");
            let (_, v) = run_steered(&mut a, 1, &mut r, t);
            assert_eq!(v, Verdict::Transmit { port: 0 }, "reply through A");
            let out = decode(&r);
            assert_eq!((out.src, out.dst), (sa(VIP, 80), client));
        }
    }
    let created: u64 = b.iter().map(|w| w.stats().sessions_created).sum();
    assert_eq!(created, 0, "B made no session of its own for them");
    // B's own new connection still gets B's address.
    let mut f = tcp(sa(CLIENT, 42000), sa(VIP, 80), "S", b"");
    let (_, v) = run_steered(&mut b, 0, &mut f, t);
    assert!(matches!(v, Verdict::Transmit { port: 1 }), "{v:?}");
    assert_eq!(*decode(&f).src.ip(), LIP_B);
    assert_eq!(ports_held(&b), 1);
    // The clients close through B: B sends A the state (CLOSE_WAIT) of A's own sessions,
    // which A takes as refreshes; no port clash.
    for &client in &clients {
        let mut f = tcp(client, sa(VIP, 80), "FA", b"");
        let (_, v) = run_steered(&mut b, 0, &mut f, t);
        assert_eq!(v, Verdict::Transmit { port: 1 });
    }
    let from_b = over_the_wire(&mut b);
    let to_a: Vec<&Conn> = from_b
        .iter()
        .filter(|c| c.fullnat.is_some_and(|f| f.lip != LIP_B))
        .collect();
    assert_eq!(to_a.len(), clients.len(), "{from_b:#?}");
    for c in to_a {
        assert_eq!(
            c.state, 7,
            "CLOSE_WAIT (the kernel's state after the client's FIN)"
        );
        let owner = sync_owner(&rules_with(Method::FullNat), WORKERS, c).unwrap();
        assert_eq!(
            a[owner as usize].install_synced(c, t),
            Ok(Installed::Refreshed)
        );
    }
    let closing = a
        .iter()
        .flat_map(|w| w.fullnat().sessions())
        .filter(|(_, s, _)| s.state == ConnState::CloseWait)
        .count();
    assert_eq!(
        closing,
        clients.len(),
        "A learned its sessions' CLOSE_WAIT from B"
    );
    // The foreign sessions expire on B without touching its pool.
    for w in &mut b {
        w.housekeeping(t + 3600 * S, usize::MAX);
    }
    assert_eq!(
        b.iter()
            .map(|w| w.fullnat().sessions().count())
            .sum::<usize>(),
        0
    );
    assert_eq!(ports_held(&b), 0, "only B's own port was freed");
}

/// Entries a worker noted since the last drain.
fn noted(w: &mut Worker) -> usize {
    let mut n = 0;
    w.drain_sync(|_| {
        n += 1;
        true
    });
    n
}

/// `sync_refresh_period` (the kernel's sysctl): with sync_period 0, a connection's state is
/// sent again on its next packet once its expiry moved by the refresh period, never more
/// often, though nothing changed; off (0), a steady connection past its threshold is not
/// sent again until its period comes round.
#[test]
fn sync_refresh_period_resends_a_steady_session_at_most_every_period() {
    let r = rules_with(Method::FullNat);
    let client = sa(CLIENT, 43000);
    let vip = sa(VIP, 80);
    let refresh = SyncRules {
        threshold: 3,
        period: 0,
        refresh_period_s: 10,
        active_peers: false,
    };
    let mut ws = workers(1, r.clone());
    ws[0].set_sync(Some(refresh));
    let t0 = 10 * S;
    let mut f = tcp(client, vip, "S", b"");
    assert!(matches!(
        run(&mut ws[0], &mut f, t0),
        Verdict::Transmit { .. }
    ));
    assert_eq!(noted(&mut ws[0]), 0, "SYN_RECV is not synced");
    let mut f = tcp(client, vip, "A", b"");
    assert!(matches!(
        run(&mut ws[0], &mut f, t0),
        Verdict::Transmit { .. }
    ));
    assert_eq!(noted(&mut ws[0]), 1, "ESTABLISHED: the first sync");
    // One data packet a second: held back for 10 s, then sent, then held again.
    let mut sent_at = Vec::new();
    for sec in 1..=25u64 {
        let mut f = tcp(client, vip, "A", b"data");
        assert!(matches!(
            run(&mut ws[0], &mut f, t0 + sec * S),
            Verdict::Transmit { .. }
        ));
        if noted(&mut ws[0]) > 0 {
            sent_at.push(sec);
        }
    }
    assert_eq!(sent_at, [10, 20], "resent every 10 s, never between");
    // A forced change (the client's FIN) goes at once.
    let mut f = tcp(client, vip, "FA", b"");
    assert!(matches!(
        run(&mut ws[0], &mut f, t0 + 21 * S),
        Verdict::Transmit { .. }
    ));
    assert_eq!(
        noted(&mut ws[0]),
        1,
        "FIN_WAIT is sent whatever the refresh period"
    );

    // Off (the default rules): past the threshold nothing more within the period.
    let mut ws = workers(1, r);
    ws[0].set_sync(Some(SyncRules::default()));
    let client = sa(CLIENT, 43001);
    let mut total = 0;
    for (i, flags) in ["S", "A", "A", "A", "A", "A"].iter().enumerate() {
        let mut f = tcp(client, vip, flags, b"x");
        run(&mut ws[0], &mut f, t0 + (i as u64) * 20 * S);
        total += noted(&mut ws[0]);
    }
    assert_eq!(total, 1, "only the threshold packet (the 3rd)");
}

/// Active peers (`active_peers`): a connection moved to the peer in its handshake (SYN
/// through A, the client's ACK and data through B) still forwards, because A sent it when
/// the real server's SYN-ACK passed. The kernel's rules alone wait for the 3rd packet,
/// which A then never sees.
#[test]
fn active_peers_send_a_connection_at_its_first_reply() {
    let peer = SyncRules {
        active_peers: true,
        ..SyncRules::default()
    };
    let mut a = workers(1, rules_with(Method::FullNat));
    let b_rules = peer_rules();
    let mut b = workers(1, b_rules.clone());
    a[0].set_sync(Some(peer));
    let (client, vip, now) = (sa(CLIENT, 44000), sa(VIP, 80), 10 * S);
    let mut f = tcp(client, vip, "S", b"");
    assert!(matches!(
        run(&mut a[0], &mut f, now),
        Verdict::Transmit { port: 1 }
    ));
    let syn = decode(&f);
    assert_eq!(noted(&mut a[0]), 0, "nothing at the SYN");
    let mut r = from_rs(syn.dst, syn.src, "SA", b"");
    assert_eq!(run(&mut a[0], &mut r, now), Verdict::Transmit { port: 0 });
    let entries = over_the_wire(&mut a);
    assert_eq!(entries.len(), 1, "sent at the first reply");
    assert_eq!(entries[0].state, 3, "SYN_RECV");
    assert_eq!(
        b[0].install_synced(&entries[0], now),
        Ok(Installed::New),
        "B installs it (foreign)"
    );
    for (flags, payload) in [("A", &b""[..]), ("A", b"GET /")] {
        let mut f = tcp(client, vip, flags, payload);
        assert_eq!(run(&mut b[0], &mut f, now), Verdict::Transmit { port: 1 });
        let out = decode(&f);
        assert_eq!(out.src, syn.src, "from A's LIP:lport");
        assert_eq!(out.payload, payload);
    }
    // The kernel's rules alone (not peers): nothing at the first reply.
    let mut a = workers(1, rules_with(Method::FullNat));
    a[0].set_sync(Some(SyncRules::default()));
    let mut f = tcp(client, vip, "S", b"");
    run(&mut a[0], &mut f, now);
    let syn = decode(&f);
    let mut r = from_rs(syn.dst, syn.src, "SA", b"");
    run(&mut a[0], &mut r, now);
    assert_eq!(noted(&mut a[0]), 0);
}
