//! Established flows through the engine's real burst loop (`Worker::process_burst`, the one
//! production runs) against a small reference model written here with etherparse, which
//! shares no code with the engine: random bursts over a mix of TCP and UDP flows, both
//! directions, with frames that match no session or are malformed, and clock jumps that let
//! sessions expire. For every frame the model says what must come out: the verdict, and for
//! a forwarded frame every byte (the full-NAT rewrite of addresses, ports, TTL and MACs,
//! checksums recomputed by etherparse); a dropped frame must come out unchanged.
//!
//! The other tests here pin where the established-flow stage runs and what it leaves to the
//! later stages.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use common::*;
use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
use fnat_engine::{DropReason, Verdict, Worker};
use proptest::prelude::*;
use proptest::sample::Index;

/// Timeouts of the model's rules (seconds): short, so that sessions expire within a case.
const TCP_TIMEOUT: u64 = 4;
const UDP_TIMEOUT: u64 = 3;

/// A flow of the model: a client port, TCP to VIP:80 or UDP to VIP:53, and what the engine
/// mapped it to while its session lives.
#[derive(Debug, Clone, Copy)]
struct Flow {
    client: SocketAddrV4,
    udp: bool,
    /// (LIP:lport, RS:rport), learnt from the frame that created the session.
    nat: Option<(SocketAddrV4, SocketAddrV4)>,
    /// The session ends at this time (ns): the last forwarded frame plus the timeout.
    until: u64,
}

impl Flow {
    fn vip(&self) -> SocketAddrV4 {
        SocketAddrV4::new(VIP, if self.udp { 53 } else { 80 })
    }

    fn live(&self, now: u64) -> Option<(SocketAddrV4, SocketAddrV4)> {
        self.nat.filter(|_| now < self.until)
    }

    fn timeout(&self) -> u64 {
        (if self.udp { UDP_TIMEOUT } else { TCP_TIMEOUT }) * S
    }
}

/// What a generated frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The flow's own frame, from the client or from its real server.
    Data,
    /// To another MAC than the port's.
    WrongMac,
    /// TTL 1: it would expire on the way out.
    Ttl1,
    /// A TCP ACK from a client port no flow uses.
    NoFlow,
    /// A real server's frame that comes in by the client side.
    WrongIngress,
    /// Cut inside the IPv4 header.
    Truncated,
    /// TCP without any flag / UDP length field beyond the datagram.
    BadL4,
}

const KINDS: [Kind; 12] = [
    Kind::Data,
    Kind::Data,
    Kind::Data,
    Kind::Data,
    Kind::Data,
    Kind::Data,
    Kind::WrongMac,
    Kind::Ttl1,
    Kind::NoFlow,
    Kind::WrongIngress,
    Kind::Truncated,
    Kind::BadL4,
];

fn model_rules(capacity: usize) -> fnat_engine::rules::Rules {
    let mut r = rules(capacity, 2000, 2999);
    r.timeouts.tcp_established = TCP_TIMEOUT as u32;
    r.timeouts.udp = UDP_TIMEOUT as u32;
    r
}

/// The frame a flow sends: from the client to the VIP, or from its real server to its local
/// address (then only while the model knows a mapping).
fn frame_of(flow: &Flow, from_client: bool, ttl: u8, ack: bool, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = match flow.nat {
        Some((lip, rs)) if !from_client => (rs, lip),
        _ => (flow.client, flow.vip()),
    };
    if flow.udp {
        let mut f = udp(src, dst, payload);
        if ttl != 64 {
            set_ttl(&mut f, ttl);
        }
        f
    } else {
        let fields = TcpFields {
            seq: 7000 + payload.len() as u32,
            ack: 9000,
            window: 4096,
            ttl,
            opts: &[],
        };
        tcp_segment(src, dst, if ack { "A" } else { "AP" }, fields, payload)
    }
}

/// Sets the TTL and recomputes the IPv4 header checksum (etherparse).
fn set_ttl(f: &mut Vec<u8>, ttl: u8) {
    rebuild(f, |h| {
        if let Some(NetHeaders::Ipv4(ip, _)) = &mut h.net {
            ip.time_to_live = ttl;
        }
    });
}

/// Re-serialises `frame` with etherparse after `edit`, every checksum recomputed.
fn rebuild(frame: &mut Vec<u8>, edit: impl FnOnce(&mut PacketHeaders)) {
    let h = PacketHeaders::from_ethernet_slice(frame).expect("etherparse reads the frame");
    let payload = h.payload.slice().to_vec();
    let mut h = h;
    edit(&mut h);
    let mut out = Vec::new();
    let Some(etherparse::LinkHeader::Ethernet2(eth)) = &h.link else {
        panic!("ethernet")
    };
    eth.write(&mut out).unwrap();
    let Some(NetHeaders::Ipv4(ip, _)) = &mut h.net else {
        panic!("ipv4")
    };
    ip.header_checksum = ip.calc_header_checksum();
    ip.write(&mut out).unwrap();
    match h.transport.as_mut().expect("transport") {
        TransportHeader::Tcp(t) => {
            t.checksum = t.calc_checksum_ipv4(ip, &payload).unwrap();
            t.write(&mut out).unwrap();
        }
        TransportHeader::Udp(u) => {
            u.checksum = u.calc_checksum_ipv4(ip, &payload).unwrap();
            u.write(&mut out).unwrap();
        }
        other => panic!("unexpected transport {other:?}"),
    }
    out.extend_from_slice(&payload);
    *frame = out;
}

/// The model's full-NAT rewrite: the frame leaves from `src_mac` to `dst_mac` as `src → dst`,
/// TTL one less, everything else (IP identification, flags, TCP numbers, window, payload) as
/// it came; checksums as etherparse computes them.
fn expected(
    input: &[u8],
    (src_mac, dst_mac): ([u8; 6], [u8; 6]),
    src: SocketAddrV4,
    dst: SocketAddrV4,
) -> Vec<u8> {
    let mut out = input.to_vec();
    rebuild(&mut out, |h| {
        if let Some(etherparse::LinkHeader::Ethernet2(eth)) = &mut h.link {
            eth.source = src_mac;
            eth.destination = dst_mac;
        }
        if let Some(NetHeaders::Ipv4(ip, _)) = &mut h.net {
            ip.source = src.ip().octets();
            ip.destination = dst.ip().octets();
            ip.time_to_live -= 1;
        }
        match h.transport.as_mut() {
            Some(TransportHeader::Tcp(t)) => {
                t.source_port = src.port();
                t.destination_port = dst.port();
            }
            Some(TransportHeader::Udp(u)) => {
                u.source_port = src.port();
                u.destination_port = dst.port();
            }
            _ => panic!("tcp or udp"),
        }
    });
    out
}

/// (LIP:lport, RS:rport) of a frame the engine sent toward a real server, checked: from a
/// local address of the service to one of its real servers on the service's real port.
fn mapping_of(out: &[u8], flow: &Flow) -> (SocketAddrV4, SocketAddrV4) {
    let o = decode(out);
    assert!(
        [LIP1, LIP2].contains(o.src.ip()),
        "{:?} from a local address",
        o.src
    );
    assert!(
        [RS1, RS2].contains(o.dst.ip()),
        "{:?} to a real server",
        o.dst
    );
    assert_eq!(o.dst.port(), if flow.udp { 5353 } else { 8080 });
    assert_eq!((o.src_mac, o.dst_mac), (PORT1_MAC, rs_mac(*o.dst.ip())));
    (o.src, o.dst)
}

/// One frame through the burst loop (a burst of one).
fn one(w: &mut Worker, f: Vec<u8>, now: u64) -> (Verdict, Vec<u8>) {
    let mut fs = [f];
    let mut v = [Verdict::Consumed];
    w.process_burst(rx_port(&fs[0]), &mut fs, now, &mut v);
    let [f] = fs;
    (v[0], f)
}

/// Opens `flow` at `now` (a TCP handshake, or a first datagram) outside the model's
/// comparisons, and learns its mapping.
fn open(w: &mut Worker, flow: &mut Flow, now: u64) {
    let first = frame_of(&Flow { nat: None, ..*flow }, true, 64, false, b"hello");
    let first = if flow.udp {
        first
    } else {
        tcp(flow.client, flow.vip(), "S", b"")
    };
    let (v, out) = one(w, first, now);
    assert_eq!(v, Verdict::Transmit { port: 1 }, "{flow:?} opens");
    let (lip, rs) = mapping_of(&out, flow);
    if !flow.udp {
        let (v, _) = one(w, tcp(rs, lip, "SA", b""), now);
        assert_eq!(v, Verdict::Transmit { port: 0 });
        let (v, _) = one(w, tcp(flow.client, flow.vip(), "A", b""), now);
        assert_eq!(v, Verdict::Transmit { port: 1 });
    }
    flow.nat = Some((lip, rs));
    flow.until = now + flow.timeout();
}

/// A generated frame with what the model expects of it.
struct Case {
    frame: Vec<u8>,
    port: u16,
    verdict: Verdict,
    /// The bytes that must come out (a drop: the input unchanged).
    out: Vec<u8>,
    /// Index of the flow whose session it refreshes (forwarded on the fast path).
    refreshes: Option<usize>,
}

/// What the model expects of frame `kind` of `flow` (`from_client`) at `now`.
#[allow(clippy::too_many_arguments)]
fn case(
    flows: &[Flow],
    i: usize,
    from_client: bool,
    kind: Kind,
    ack_only: bool,
    payload: &[u8],
    stranger: u16,
    now: u64,
) -> Case {
    let flow = &flows[i];
    let live = flow.live(now);
    // A UDP client frame of a flow without a session would open one: the model opens flows
    // between bursts (`open`), so in a burst such a frame is its real server's (to the
    // mapping the session had).
    let from_client = from_client && !(flow.udp && live.is_none());
    let drop = |frame: Vec<u8>, reason: DropReason| Case {
        port: rx_port(&frame),
        out: frame.clone(),
        frame,
        verdict: Verdict::Drop(reason),
        refreshes: None,
    };
    let mut frame = frame_of(flow, from_client, 64, ack_only, payload);
    match kind {
        Kind::Data => {}
        Kind::WrongMac => {
            frame[5] ^= 0x80;
            return drop(frame, DropReason::NotForUs);
        }
        Kind::Ttl1 => {
            set_ttl(&mut frame, 1);
            return drop(frame, DropReason::TtlExpired);
        }
        Kind::NoFlow => {
            let f = tcp(sa(*flow.client.ip(), stranger), sa(VIP, 80), "A", payload);
            return drop(f, DropReason::NoSession);
        }
        Kind::WrongIngress if !from_client => {
            frame[..6].copy_from_slice(&PORT0_MAC);
            let reason = match live {
                Some(_) => DropReason::WrongIngress,
                None => DropReason::NoSession,
            };
            return drop(frame, reason);
        }
        Kind::WrongIngress => {} // a client frame: it comes in by the client side anyway
        Kind::Truncated => {
            frame.truncate(14 + 12);
            return drop(frame, DropReason::Truncated);
        }
        Kind::BadL4 => {
            if flow.udp {
                // UDP length 4: below its own header.
                frame[38..40].copy_from_slice(&4u16.to_be_bytes());
                return drop(frame, DropReason::BadL4Header);
            }
            frame[47] = 0; // no TCP flag at all
            return drop(frame, DropReason::BadTcpFlags);
        }
    }
    let Some((lip, rs)) = live else {
        return drop(frame, DropReason::NoSession);
    };
    let (port, macs, src, dst) = if from_client {
        (1, (PORT1_MAC, rs_mac(*rs.ip())), lip, rs)
    } else {
        (0, (PORT0_MAC, ROUTER_MAC), flow.vip(), flow.client)
    };
    Case {
        port: rx_port(&frame),
        out: expected(&frame, macs, src, dst),
        frame,
        verdict: Verdict::Transmit { port },
        refreshes: Some(i),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn established_flows_follow_the_model(
        raw_flows in prop::collection::vec((1u8..4, 1024u16..1100, any::<bool>()), 1..9),
        bursts in prop::collection::vec(
            (
                prop::collection::vec(
                    (any::<Index>(), any::<bool>(), 0usize..KINDS.len(), any::<bool>(), 0usize..40),
                    1..40,
                ),
                // Half-seconds to the next burst, reopen closed flows first, housekeeping after.
                0u64..7,
                any::<bool>(),
                any::<bool>(),
            ),
            1..24,
        ),
        // Prefetch stages always, or never (a table small enough to stay in cache).
        prefetch_from in prop::sample::select(vec![0usize, 1 << 20]),
    ) {
        let mut w = workers(1, model_rules(256)).remove(0);
        w.set_announce(false);
        w.set_prefetch_from(prefetch_from);
        let mut flows: Vec<Flow> = Vec::new();
        for (host, port, udp) in raw_flows {
            let client = sa(Ipv4Addr::new(203, 0, 113, host), port);
            if !flows.iter().any(|f| f.client == client && f.udp == udp) {
                flows.push(Flow { client, udp, nat: None, until: 0 });
            }
        }
        let mut now = 10 * S;
        for f in &mut flows {
            open(&mut w, f, now);
        }
        for (b, (ops, dt, reopen, housekeeping)) in bursts.into_iter().enumerate() {
            if reopen {
                for f in flows.iter_mut().filter(|f| f.live(now).is_none()) {
                    open(&mut w, f, now);
                }
            }
            let cases: Vec<Case> = ops
                .into_iter()
                .map(|(idx, from_client, kind, ack_only, len)| {
                    let i = idx.index(flows.len());
                    // A client port no flow uses (the flows' ports are below 1100).
                    let stranger = 1100 + len as u16;
                    let payload = vec![b as u8 ^ len as u8; len];
                    case(&flows, i, from_client, KINDS[kind], ack_only, &payload, stranger, now)
                })
                .collect();
            // One burst is one RX port: split where the port changes.
            let mut start = 0;
            while start < cases.len() {
                let port = cases[start].port;
                let end = (start..cases.len())
                    .find(|&i| cases[i].port != port)
                    .unwrap_or(cases.len());
                let burst = &cases[start..end];
                let mut frames: Vec<Vec<u8>> = burst.iter().map(|c| c.frame.clone()).collect();
                let mut verdicts = vec![Verdict::Consumed; frames.len()];
                let fast_before = w.stats().fast_path;
                w.process_burst(port, &mut frames[..], now, &mut verdicts);
                let mut forwarded = 0;
                for (j, c) in burst.iter().enumerate() {
                    let at = start + j;
                    prop_assert_eq!(verdicts[j], c.verdict, "verdict of frame {} burst {}", at, b);
                    prop_assert_eq!(&frames[j], &c.out, "bytes of frame {} of burst {}", at, b);
                    if let Some(i) = c.refreshes {
                        let f = &mut flows[i];
                        f.until = now + f.timeout();
                        forwarded += 1;
                    }
                }
                // Every frame of a live established flow took the established-flow stage.
                let fast = w.stats().fast_path - fast_before;
                prop_assert_eq!(fast, forwarded, "fast path in burst {}", b);
                start = end;
            }
            now += dt * S / 2;
            if housekeeping {
                let _ = w.housekeeping(now, 64);
            }
        }
        // The sessions the engine holds are the ones the model says are live.
        let live = flows.iter().filter(|f| f.live(now).is_some()).count();
        let held = w.fullnat().sessions().filter(|(_, _, d)| *d > now).count();
        prop_assert_eq!(held, live);
    }
}

/// The model's rewrite is what an independent decoder reads back (a check of the model).
#[test]
fn the_model_rewrite_decodes() {
    let flow = Flow {
        client: sa(CLIENT, 40000),
        udp: false,
        nat: Some((sa(LIP1, 2000), sa(RS1, 8080))),
        until: u64::MAX,
    };
    let input = frame_of(&flow, true, 64, false, b"data");
    let out = expected(&input, (PORT1_MAC, RS1_MAC), sa(LIP1, 2000), sa(RS1, 8080));
    let o = decode(&out);
    assert_eq!((o.src, o.dst, o.ttl), (sa(LIP1, 2000), sa(RS1, 8080), 63));
    assert_eq!((o.src_mac, o.dst_mac), (PORT1_MAC, RS1_MAC));
    assert_eq!(o.payload, b"data");
    assert_eq!(out.len(), input.len());
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
    let mut w = workers(1, rules(64, 2000, 2063)).remove(0);
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

thread_local! {
    static KEPT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    static STREAMED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn count_kept(_: *const u8) {
    KEPT.with(|c| c.set(c.get() + 1));
}

fn count_streamed(_: *const u8) {
    STREAMED.with(|c| c.set(c.get() + 1));
}

/// (normal hints, streaming hints) given so far on this thread.
fn hints() -> (usize, usize) {
    (KEPT.with(|c| c.get()), STREAMED.with(|c| c.get()))
}

/// A burst's lookups in a table past `stream_from` live sessions load their index and
/// session lines with the streaming hint, one of each per established frame; SYNs keep the
/// normal hint (their lines are written); below the threshold everything keeps it.
#[test]
fn large_tables_stream_their_lookup_lines() {
    let mut w = workers(1, rules(64, 2000, 2063)).remove(0);
    w.set_prefetch_from(0);
    w.set_stream_from(0);
    w.set_prefetch(count_kept);
    w.set_prefetch_streaming(count_streamed);
    let vip = sa(VIP, 80);
    let clients: Vec<SocketAddrV4> = (0..4).map(|i| sa(CLIENT, 41000 + i)).collect();
    let run_burst = |w: &mut Worker, mut fs: Vec<Vec<u8>>| -> Vec<Vec<u8>> {
        let mut v = vec![Verdict::Consumed; fs.len()];
        let port = rx_port(&fs[0]);
        w.process_burst(port, &mut fs[..], 20 * S, &mut v);
        assert!(
            v.iter().all(|v| matches!(v, Verdict::Transmit { .. })),
            "{v:?}"
        );
        fs
    };
    let before = hints();
    let syns = run_burst(
        &mut w,
        clients.iter().map(|&c| tcp(c, vip, "S", b"")).collect(),
    );
    let after = hints();
    assert_eq!(after.1, before.1, "SYNs keep the normal hint");
    assert!(after.0 >= before.0 + 4, "each SYN's index line is hinted");
    let nat: Vec<_> = syns
        .iter()
        .map(|f| decode(f))
        .map(|o| (o.src, o.dst))
        .collect();
    run_burst(
        &mut w,
        nat.iter()
            .map(|&(lip, rs)| tcp(rs, lip, "SA", b""))
            .collect(),
    );
    run_burst(
        &mut w,
        clients.iter().map(|&c| tcp(c, vip, "A", b"")).collect(),
    );
    let data = || {
        clients
            .iter()
            .map(|&c| tcp(c, vip, "AP", b"data"))
            .collect::<Vec<_>>()
    };
    let fast = w.stats().fast_path;
    let before = hints();
    run_burst(&mut w, data());
    assert_eq!(w.stats().fast_path, fast + 4);
    assert_eq!(
        hints(),
        (before.0, before.1 + 8),
        "an index and a session line per established frame, streamed"
    );
    w.set_stream_from(usize::MAX);
    let before = hints();
    run_burst(&mut w, data());
    assert_eq!(
        hints(),
        (before.0 + 8, before.1),
        "below the threshold: kept"
    );
}

/// A real server's reply is taken only from the port that leads to that server: the same
/// frame sent in from the client side (a client spoofing the server to inject into a
/// connection) is dropped as `wrong_ingress`, on the fast path and the full one, and leaves
/// the session as it was.
#[test]
fn replies_only_from_the_real_servers_side() {
    for fast_path in [true, false] {
        let mut w = workers(1, rules(64, 2000, 2063)).remove(0);
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
    let mut fast = workers(1, rules(64, 2000, 2063)).remove(0);
    let mut full = workers(1, rules(64, 2000, 2063)).remove(0);
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
    let mut r = rules(64, 2000, 2063);
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

/// An established flow whose VIP becomes standby (this director turned VRRP backup): its
/// client packets are dropped as `vrrp_backup`, on the fast path as on the full one, and the
/// session stays; its real server's replies to the local address (not standby) still go
/// through. Once the VIP is ours again the flow goes on (docs/vrrp.md).
#[test]
fn a_standby_vip_stops_its_established_flows() {
    for fast_path in [true, false] {
        let mut r = rules(64, 2000, 2063);
        let mut w = workers(1, r.clone()).remove(0);
        w.set_fast_path(fast_path);
        let mut flow = Flow {
            client: sa(CLIENT, 40010),
            udp: false,
            nat: None,
            until: 0,
        };
        open(&mut w, &mut flow, 20 * S);
        let (lip, rs) = flow.nat.unwrap();
        r.standby = vec![VIP];
        r.generation = 2;
        w.update_rules(Arc::new(r.clone()));
        let sessions = w.fullnat().sessions().count();
        let original = tcp(flow.client, flow.vip(), "AP", b"while backup");
        let (v, out) = one(&mut w, original.clone(), 21 * S);
        assert_eq!(
            v,
            Verdict::Drop(DropReason::VrrpBackup),
            "fast path {fast_path}"
        );
        assert_eq!(out, original, "a dropped frame is not rewritten");
        assert_eq!(
            w.fullnat().sessions().count(),
            sessions,
            "the session stays"
        );
        let (v, out) = one(&mut w, tcp(rs, lip, "AP", b"reply"), 21 * S);
        assert_eq!(v, Verdict::Transmit { port: 0 });
        assert_eq!(decode(&out).src, flow.vip());
        r.standby.clear();
        r.generation = 3;
        w.update_rules(Arc::new(r));
        let (v, out) = one(
            &mut w,
            tcp(flow.client, flow.vip(), "AP", b"master"),
            22 * S,
        );
        assert_eq!(v, Verdict::Transmit { port: 1 });
        assert_eq!((decode(&out).src, decode(&out).dst), (lip, rs));
        assert_eq!(
            w.stats().drops[DropReason::VrrpBackup as usize],
            1,
            "fast path {fast_path}"
        );
    }
}
