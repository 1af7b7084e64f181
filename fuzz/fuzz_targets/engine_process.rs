//! Arbitrary frames into `Worker::process`, on both ports of two workers with live sessions.
//!
//! Input: a sequence of records `[ctl: u8][len: u16 BE][len bytes]` (a short tail is one last
//! frame). `ctl` bit 0: the port (0 = clients, 1 = real servers); bit 1: the worker; bits 2..8:
//! how far the clock moves before the frame, in milliseconds. Redirects are followed as the
//! driver's steering ring would (and must never bounce a second time).
//!
//! After every frame: the books balance (received + originated = transmitted + redirected +
//! dropped + consumed + held + to_kernel; port 1 has a kernel twin), the session gauge matches the table, every session
//! holds exactly one local port. At the end, data both ways on the sessions set up first is
//! either rewritten exactly as the worker's table says (checked with etherparse, checksums
//! included) or, if the session is gone, dropped as `no_session`.
//!
//! VIP:81 is a SYN-proxied service with Proxy Protocol v2 and TOA. A keyed cookie cannot be
//! guessed, so the harness plays the peers of what the workers send: a cookie SYN-ACK gets
//! the client's ACK (with data), a SYN toward a real server gets the server's SYN-ACK. Any
//! SYN the fuzzer sends to VIP:81 thus reaches the cookie check, the session creation, the
//! held data and the sequence reconciliation, and its later frames meet a live session.
#![no_main]

#[path = "../../dataplane/engine/tests/common/mod.rs"]
mod common;

use common::*;
use fnat_engine::{DropReason, Verdict, Worker};
use libfuzzer_sys::fuzz_target;

/// Sessions set up before the fuzzed frames: (client port, worker that owns the flow).
const CLIENT_PORTS: [u16; 3] = [40000, 40001, 40002];

/// The SYN-proxied service's port.
const SYNPROXY_PORT: u16 = 81;

fn setup(t: u64) -> Vec<Worker> {
    let mut r = rules(256, 1024, 2047);
    let mut sp = r.services[0].clone();
    sp.id = 3;
    sp.port = SYNPROXY_PORT;
    sp.options.synproxy = true;
    sp.options.client_address = fnat_engine::rules::ClientAddress {
        proxy_version: 2,
        proxy_insecure: false,
        toa: true,
    };
    r.services.push(sp);
    let mut ws = workers(2, r);
    for (i, &cport) in CLIENT_PORTS.iter().enumerate() {
        let client = sa(CLIENT, cport);
        let first = i % 2;
        let mut f = tcp(client, sa(VIP, 80), "S", b"");
        let (w, v) = run_steered(&mut ws, first, &mut f, t);
        assert_eq!(v, Verdict::Transmit { port: 1 });
        let o = decode(&f);
        let mut f = tcp(o.dst, o.src, "SA", b"");
        let (_, v) = run_steered(&mut ws, 1 - w, &mut f, t + 1);
        assert_eq!(v, Verdict::Transmit { port: 0 });
        let mut f = tcp(client, sa(VIP, 80), "A", b"");
        let (_, v) = run_steered(&mut ws, w, &mut f, t + 2);
        assert_eq!(v, Verdict::Transmit { port: 1 });
    }
    // A UDP session too.
    let mut f = udp(sa(CLIENT, 50000), sa(VIP, 53), b"q");
    let (_, v) = run_steered(&mut ws, 0, &mut f, t + 3);
    assert_eq!(v, Verdict::Transmit { port: 1 });
    // The real servers' port has a kernel twin (the exception path), the clients' has none:
    // both ways of treating frames for the ports' own addresses are fuzzed.
    for w in ws.iter_mut() {
        w.set_kernel_twins(&[1]);
    }
    ws
}

fn check_invariants(w: &Worker) {
    let s = w.stats();
    assert_eq!(
        s.received + s.originated,
        s.transmitted + s.redirected + s.dropped() + s.consumed + s.held + s.to_kernel,
        "worker {}: books",
        w.id()
    );
    let live = w.fullnat().sessions().count() as u64;
    assert_eq!(s.sessions, live, "worker {}: session gauge", w.id());
    let ports: u64 = s.local_addrs.iter().map(|l| l.ports_in_use).sum();
    assert_eq!(ports, live, "worker {}: local ports held", w.id());
}

/// Processes `frame` on worker `first` and follows one redirect.
fn steer(ws: &mut [Worker], first: usize, port: u16, frame: &mut Vec<u8>, now: u64) -> Verdict {
    let v = ws[first].process(port, frame, now);
    if let Verdict::Redirect { worker } = v {
        let w = worker as usize;
        assert!(w < ws.len() && w != first, "redirect to {w} from {first}");
        let v2 = ws[w].process(port, frame, now);
        assert!(
            !matches!(v2, Verdict::Redirect { .. }),
            "a frame redirected twice"
        );
        return v2;
    }
    v
}

/// The peer's answer to a frame a worker sent (etherparse reads it): the client's ACK (with
/// data) to a cookie SYN-ACK from the SYN-proxied service, the real server's SYN-ACK to a SYN.
fn peer_answer(frame: &[u8], port: u16) -> Option<(u16, Vec<u8>)> {
    use etherparse::{PacketBuilder, PacketHeaders, TransportHeader};
    let h = PacketHeaders::from_ethernet_slice(frame).ok()?;
    let Some(etherparse::NetHeaders::Ipv4(ip, _)) = h.net else {
        return None;
    };
    let Some(TransportHeader::Tcp(t)) = h.transport else {
        return None;
    };
    if !t.syn {
        return None;
    }
    let src = sa(ip.destination.into(), t.destination_port);
    let dst = sa(ip.source.into(), t.source_port);
    let (_, our_mac, peer_mac) = side_of(dst);
    let b =
        PacketBuilder::ethernet2(peer_mac, our_mac).ipv4(src.ip().octets(), dst.ip().octets(), 64);
    let mut out = Vec::new();
    match (port, t.ack) {
        (0, true) if t.source_port == SYNPROXY_PORT => b
            .tcp(src.port(), dst.port(), t.acknowledgment_number, 502)
            .ack(t.sequence_number.wrapping_add(1))
            .psh()
            .write(&mut out, b"held")
            .ok()?,
        (1, false) => b
            .tcp(src.port(), dst.port(), 0x5000_0000, 65535)
            .syn()
            .ack(t.sequence_number.wrapping_add(1))
            .options(&[etherparse::TcpOptionElement::WindowScale(9)])
            .ok()?
            .write(&mut out, b"")
            .ok()?,
        _ => return None,
    }
    Some((port, out))
}

/// Data from the client on `cport` must follow the session the table holds for it.
fn probe(ws: &mut [Worker], cport: u16, now: u64) {
    let payload = b"probe";
    // Client frames are not steered (RSS keeps a client's flow on one queue): send the probe
    // to the worker whose table has the flow, if any.
    let find = |ws: &[Worker]| {
        ws.iter().enumerate().find_map(|(i, w)| {
            w.fullnat()
                .sessions()
                .find(|(_, s, _)| {
                    s.client_port == cport
                        && s.client_ip == u32::from(CLIENT)
                        && s.vport == 80
                        && s.proto == 6
                })
                .map(|(_, s, _)| (i, *s))
        })
    };
    let owner = find(ws).map_or(0, |(i, _)| i);
    let mut f = tcp(sa(CLIENT, cport), sa(VIP, 80), "AP", payload);
    let v = steer(ws, owner, 0, &mut f, now);
    let session = find(ws).map(|(_, s)| s);
    match (v, session) {
        (Verdict::Transmit { port: 1 }, Some(s)) => {
            let o = decode(&f);
            let lip = sa(s.lip.into(), s.lport);
            let rs = sa(s.rs_ip.into(), s.rs_port);
            assert_eq!((o.src, o.dst), (lip, rs), "client data of {cport}");
            assert_eq!(o.payload, payload);
            // And the reply path of the same session.
            let mut r = tcp(rs, lip, "AP", payload);
            let v = steer(ws, 1, 1, &mut r, now + 1);
            assert_eq!(v, Verdict::Transmit { port: 0 }, "reply of {cport}");
            let o = decode(&r);
            assert_eq!((o.src, o.dst), (sa(VIP, 80), sa(CLIENT, cport)));
        }
        (Verdict::Drop(DropReason::NoSession), None) => {}
        other => panic!("client {cport}: verdict and table disagree: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let t0 = 1_000 * S;
    let mut ws = setup(t0);
    let mut now = t0 + S;
    let mut rest = data;
    while let Some((&ctl, tail)) = rest.split_first() {
        let (mut frame, next) = match tail {
            [hi, lo, body @ ..] => {
                let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(body.len());
                (body[..len].to_vec(), &body[len..])
            }
            short => (short.to_vec(), &[][..]),
        };
        rest = next;
        let port = u16::from(ctl & 1);
        let first = usize::from((ctl >> 1) & 1);
        now += u64::from(ctl >> 2) * 1_000_000;
        let mut v = steer(&mut ws, first, port, &mut frame, now);
        // The peers answer what the workers sent (at most the two steps of a handshake).
        for _ in 0..2 {
            let Verdict::Transmit { port: out } = v else {
                break;
            };
            let Some((to, mut answer)) = peer_answer(&frame, out) else {
                break;
            };
            frame = std::mem::take(&mut answer);
            v = steer(
                &mut ws,
                if to == 1 { 1 } else { first },
                to,
                &mut frame,
                now,
            );
        }
        for w in ws.iter_mut() {
            w.housekeeping(now, 64);
            check_invariants(w);
        }
    }
    for cport in CLIENT_PORTS {
        probe(&mut ws, cport, now + 10);
    }
    for w in &ws {
        check_invariants(w);
    }
});
