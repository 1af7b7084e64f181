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
