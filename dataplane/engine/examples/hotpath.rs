//! Per-packet cost of the engine's hot paths, for deterministic instruction counts.
//!
//! ```sh
//! CARGO_TARGET_DIR=/tmp/target-fast cargo build --release -p fnat-engine --example hotpath
//! # wall clock (secondary: the VM is shared and noisy)
//! /tmp/target-fast/release/examples/hotpath est 1000 2000000
//! # instructions per packet: only `measure` (the timed loop) is collected
//! valgrind --tool=callgrind --toggle-collect='*hotpath*measure*' \
//!     /tmp/target-fast/release/examples/hotpath est 1000 200000
//! ```
//!
//! Modes (the same rules as `perf/gen.py`'s bench config: one TCP service, 2 real servers,
//! static neighbours, one worker):
//! - `est FLOWS PACKETS`: FLOWS sessions are created first (SYNs, not measured); then PACKETS
//!   ACKs from the clients, each to the next session with a large odd stride over all of
//!   them (every packet a different session, spread over the table), are measured.
//! - `new 0 PACKETS`: PACKETS SYNs, each a flow never seen before: each creates a session.
//! - `churn LIVE PACKETS`: PACKETS unique SYNs at a rate that keeps about LIVE sessions with a
//!   2 s SYN_RECV timeout, housekeeping (expiry) every 32 packets: creation plus expiry.
//! - `copy FLOWS PACKETS`: the harness alone (copying each frame into the work buffer), to
//!   subtract from the others.
//! - `burst FLOWS PACKETS`: as `est`, through `Worker::process_burst` in bursts of 32.
//!
//! - `conn 0 CONNS`: CONNS whole connections, one after the other: SYN, SYN-ACK, ACK, 6 bytes
//!   of request, 6 bytes of answer (with the ACK), ACK, FIN, FIN-ACK, ACK (9 packets, both
//!   ports). Only `step` (one `Worker::process`) is measured: collect `*hotpath*step*` and
//!   divide by CONNS; the frames between are built and read with etherparse outside it.
//! - `steer FLOWS PACKETS` (with `METHOD=nat`): worker 0 of 2 gets ACKs of FLOWS clients whose
//!   NAT owner is worker 1: the cost of deciding to redirect (NAT's return steering).
//!
//! `ACL=N` adds a deny list of N prefixes and an allow list (client admission, issue 17);
//! `RATE=R` a per-/24 new-connection cap of R per second.
//! `CLIENT_ADDR=pp1|pp2|toa|pp2toa` gives the service Proxy Protocol and/or TOA: `est` ACKs
//! then take the full pipeline (sequence state), and with TOA each carries the option (still
//! pending: no data yet); `new` SYNs set up the sequence state.
//!
//! `ESTABLISHED=1` (`est`, `burst`): the prefill also sends each flow's ACK, so that every
//! measured packet belongs to an ESTABLISHED session (without it, a packet's first visit to
//! its session moves it out of SYN_RECV: at FLOWS ≥ PACKETS, every measured packet does).
//!
//! `SYNPROXY=1` makes the service SYN-proxied: `new` SYNs are then each answered with a
//! cookie SYN-ACK built by the worker (no session): SYN-cookie answers per packet.
//!
//! `METHOD=nat|dr|tun|gue|gre` (default `fnat`) forwards by that method instead of full NAT
//! (frames sit in a buffer with an mbuf's 128 bytes of headroom, for TUN's outer header).
//!
//! Instructions are not counted here (run it under callgrind); it prints ns/packet.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use etherparse::PacketBuilder;
use fnat_engine::rules::{
    Ipv4Cidr, Method, Neighbour, Protocol, RealServer, Route, Rules, SchedulerKind, Service,
    Tunnel, TunnelKind,
};
use fnat_engine::{Frame, Verdict, Worker};

const VIP: [u8; 4] = [198, 18, 0, 100];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const FRAME_LEN: usize = 60;

fn cidr(a: [u8; 4], len: u8) -> Ipv4Cidr {
    Ipv4Cidr {
        addr: Ipv4Addr::from(a),
        prefix_len: len,
    }
}

fn rules(capacity: usize) -> Rules {
    // The engine's two-port set-up (port 0's MAC is PORT0_MAC), the VIP on port 0.
    let mut r = fnat_engine::rules::fixture::two_ports(capacity);
    debug_assert_eq!(r.ports[0].mac, PORT0_MAC);
    r.ports[0].addresses.push(cidr(VIP, 32));
    let lips = capacity.div_ceil(64_000).max(1);
    let mut svc = Service::new(1, Ipv4Addr::from(VIP), Protocol::Tcp, 80, SchedulerKind::Rr);
    svc.reals = vec![
        RealServer::new(1, Ipv4Addr::new(198, 19, 1, 10), 80, 1),
        RealServer::new(2, Ipv4Addr::new(198, 19, 1, 11), 80, 1),
    ];
    svc.local_addresses = (0..lips)
        .map(|i| Ipv4Addr::new(198, 19, 100 + (i / 250) as u8, 1 + (i % 250) as u8))
        .collect();
    r.services = vec![svc];
    r.routes = vec![
        Route {
            prefix: cidr([198, 19, 1, 0], 24),
            port: 1,
            via: None,
        },
        Route {
            prefix: cidr([0, 0, 0, 0], 0),
            port: 0,
            via: Some(Ipv4Addr::new(198, 18, 0, 254)),
        },
    ];
    r.neighbours = vec![
        Neighbour {
            addr: Ipv4Addr::new(198, 19, 1, 10),
            mac: [2, 0, 0, 0, 1, 0x10],
            port: 1,
        },
        Neighbour {
            addr: Ipv4Addr::new(198, 19, 1, 11),
            mac: [2, 0, 0, 0, 1, 0x11],
            port: 1,
        },
        Neighbour {
            addr: Ipv4Addr::new(198, 18, 0, 254),
            mac: [2, 0, 0, 0, 0, 0xfe],
            port: 0,
        },
    ];
    r.session_capacity = capacity;
    r
}

/// Client address and port of flow `k` (as `fnatd bench`).
fn flow_addr(k: u64) -> ([u8; 4], u16) {
    (
        0x0a00_0000u32
            .wrapping_add((k / 60_000) as u32)
            .to_be_bytes(),
        1024 + (k % 60_000) as u16,
    )
}

/// A 60-byte Ethernet/IPv4/TCP frame from flow `k` to the VIP.
fn frame(k: u64, syn: bool) -> [u8; FRAME_LEN] {
    let (ip, port) = flow_addr(k);
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0xc1, 1], PORT0_MAC)
        .ipv4(ip, VIP, 64)
        .tcp(port, 80, 1000, 65535);
    let b = if syn { b.syn() } else { b.ack(1) };
    let payload = [0u8; 6];
    let mut v = Vec::with_capacity(FRAME_LEN);
    b.write(&mut v, &payload).expect("frame");
    v.resize(FRAME_LEN, 0);
    let mut f = [0u8; FRAME_LEN];
    f.copy_from_slice(&v);
    f
}

/// Headroom in front of each frame, as a DPDK mbuf's (`RTE_PKTMBUF_HEADROOM`): where TUN's
/// outer header goes.
const HEADROOM: usize = 128;
/// Room after each frame, for a Proxy Protocol header or TOA option (`CLIENT_ADDR`).
const TAILROOM: usize = 128;

/// A frame in a fixed buffer with headroom, as an mbuf holds it.
struct Buf {
    mem: [u8; HEADROOM + FRAME_LEN + TAILROOM],
    start: usize,
    len: usize,
}

impl Buf {
    fn new() -> Buf {
        Buf {
            mem: [0; HEADROOM + FRAME_LEN + TAILROOM],
            start: HEADROOM,
            len: FRAME_LEN,
        }
    }
    /// Puts `f` into the buffer (the harness's copy per packet).
    #[inline(always)]
    fn load(&mut self, f: &[u8; FRAME_LEN]) {
        self.start = HEADROOM;
        self.len = FRAME_LEN;
        self.mem[HEADROOM..HEADROOM + FRAME_LEN].copy_from_slice(f);
    }
}

impl Frame for Buf {
    fn data(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.len]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.start + self.len]
    }
    fn set_len(&mut self, len: usize) -> bool {
        if self.start + len > self.mem.len() {
            return false;
        }
        self.len = len;
        true
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        self.len += n;
        true
    }
}

const NOW: u64 = 1_000_000_000_000;

/// The measured loop (callgrind collects only this function).
#[inline(never)]
fn measure(
    w: &mut Worker,
    mode: &str,
    frames: &[[u8; FRAME_LEN]],
    packets: usize,
    flows: u64,
) -> u64 {
    let mut ok = 0u64;
    let n = frames.len();
    match mode {
        "copy" => {
            let mut buf = Buf::new();
            for i in 0..packets {
                buf.load(&frames[i % n]);
                ok += u64::from(black_box(&buf).mem[HEADROOM]);
            }
        }
        "burst" => {
            const B: usize = 32;
            let mut bufs: Vec<Buf> = (0..B).map(|_| Buf::new()).collect();
            let mut verdicts = [Verdict::Consumed; B];
            let mut i = 0;
            while i < packets {
                let m = B.min(packets - i);
                for (j, b) in bufs[..m].iter_mut().enumerate() {
                    b.load(&frames[(i + j) % n]);
                }
                w.process_burst(0, &mut bufs[..m], NOW, &mut verdicts[..m]);
                ok += verdicts[..m]
                    .iter()
                    .filter(|v| matches!(v, Verdict::Transmit { .. }))
                    .count() as u64;
                i += m;
            }
        }
        "churn" => {
            // New connections at a steady rate with a 2 s SYN_RECV timeout: `flows` live
            // sessions, housekeeping every 32 packets expires as many as are created.
            let live = flows.max(1);
            let step = 2_000_000_000 / live;
            let mut buf = Buf::new();
            for i in 0..packets {
                let now = NOW + i as u64 * step;
                buf.load(&frames[i % n]);
                if let Verdict::Transmit { .. } = w.process(0, &mut buf, now) {
                    ok += 1;
                }
                if i % 32 == 31 {
                    w.housekeeping(now, 256);
                }
            }
        }
        "steer" => {
            // The non-owner's half of NAT's return steering: each frame found to belong to
            // the other worker (Redirect), as a worker does for packets RSS gave it.
            let mut buf = Buf::new();
            for i in 0..packets {
                buf.load(&frames[i % n]);
                if let Verdict::Redirect { .. } = w.process(0, &mut buf, NOW) {
                    ok += 1;
                }
            }
        }
        _ => {
            let mut buf = Buf::new();
            for i in 0..packets {
                buf.load(&frames[i % n]);
                if let Verdict::Transmit { .. } = w.process(0, &mut buf, NOW) {
                    ok += 1;
                }
            }
        }
    }
    ok
}

/// One packet through the worker: all that `conn` mode measures (callgrind `*hotpath*step*`).
#[inline(never)]
fn step(w: &mut Worker, port: u16, buf: &mut Buf, now: u64) -> Verdict {
    w.process(port, buf, now)
}

/// A frame padded to the harness's fixed length (Ethernet padding after the IP packet).
fn padded(v: Vec<u8>) -> [u8; FRAME_LEN] {
    assert!(v.len() <= FRAME_LEN, "frame of {} bytes", v.len());
    let mut f = [0u8; FRAME_LEN];
    f[..v.len()].copy_from_slice(&v);
    f
}

/// An IPv4 address and port.
type Endpoint = ([u8; 4], u16);

/// (source, destination, seq, ack, payload length) of a TCP frame that left.
fn tcp_out(buf: &Buf) -> (Endpoint, Endpoint, u32, u32, usize) {
    let h = etherparse::SlicedPacket::from_ethernet(buf.data()).expect("a frame left");
    let Some(etherparse::NetSlice::Ipv4(ip)) = h.net else {
        panic!("not IPv4")
    };
    let Some(etherparse::TransportSlice::Tcp(t)) = h.transport else {
        panic!("not TCP")
    };
    let (src, dst) = (ip.header().source(), ip.header().destination());
    (
        (src, t.source_port()),
        (dst, t.destination_port()),
        t.sequence_number(),
        t.acknowledgment_number(),
        t.payload().len(),
    )
}

/// `conn` mode: `conns` whole connections (9 packets each) through `w`; returns how many
/// packets were transmitted.
fn connections(w: &mut Worker, conns: u64) -> u64 {
    const RS_ISN: u32 = 5000;
    let mut buf = Buf::new();
    let mut ok = 0u64;
    let mut now = NOW;
    let c_mac = [2, 0, 0, 0, 0xc1, 1];
    let lan_mac = [2, 0, 0, 0, 0, 2];
    let mut run = |w: &mut Worker, port: u16, f: Vec<u8>, buf: &mut Buf| {
        buf.load(&padded(f));
        now += 1000;
        let v = step(w, port, buf, now);
        assert!(matches!(v, Verdict::Transmit { .. }), "{v:?}");
        ok += 1;
    };
    for k in 0..conns {
        let (ip, port) = flow_addr(k);
        let client = |seq: u32, ack: Option<u32>, syn: bool, fin: bool, data: &[u8]| {
            let b = PacketBuilder::ethernet2(c_mac, PORT0_MAC)
                .ipv4(ip, VIP, 64)
                .tcp(port, 80, seq, 65535);
            let b = if syn { b.syn() } else { b };
            let b = if fin { b.fin() } else { b };
            let b = match ack {
                Some(a) => b.ack(a),
                None => b,
            };
            let mut v = Vec::new();
            b.write(&mut v, data).expect("frame");
            v
        };
        run(w, 0, client(1000, None, true, false, b""), &mut buf);
        let (lip, rs, _, _, _) = tcp_out(&buf);
        let server = |seq: u32, ack: u32, syn: bool, fin: bool, data: &[u8]| {
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 1, 0x10], lan_mac)
                .ipv4(rs.0, lip.0, 64)
                .tcp(rs.1, lip.1, seq, 65535);
            let b = if syn { b.syn() } else { b };
            let b = if fin { b.fin() } else { b };
            let mut v = Vec::new();
            b.ack(ack).write(&mut v, data).expect("frame");
            v
        };
        run(w, 1, server(RS_ISN, 1001, true, false, b""), &mut buf);
        run(
            w,
            0,
            client(1001, Some(RS_ISN + 1), false, false, b""),
            &mut buf,
        );
        run(
            w,
            0,
            client(1001, Some(RS_ISN + 1), false, false, b"GET /\n"),
            &mut buf,
        );
        // The real server acknowledges what it received (the header included).
        let (_, _, seq, _, len) = tcp_out(&buf);
        let got = seq.wrapping_add(len as u32);
        run(
            w,
            1,
            server(RS_ISN + 1, got, false, false, b"HTTP \n"),
            &mut buf,
        );
        run(
            w,
            0,
            client(1007, Some(RS_ISN + 7), false, false, b""),
            &mut buf,
        );
        run(
            w,
            0,
            client(1007, Some(RS_ISN + 7), false, true, b""),
            &mut buf,
        );
        let (_, _, fin_seq, _, _) = tcp_out(&buf);
        run(
            w,
            1,
            server(RS_ISN + 7, fin_seq.wrapping_add(1), false, true, b""),
            &mut buf,
        );
        run(
            w,
            0,
            client(1008, Some(RS_ISN + 8), false, false, b""),
            &mut buf,
        );
    }
    ok
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("est", String::as_str).to_string();
    let flows: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let packets: usize = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);

    let capacity = match mode.as_str() {
        "new" | "conn" => packets + 16,
        "churn" => flows as usize * 2 + 1024,
        _ => flows as usize + 16,
    };
    let mut r = rules(capacity);
    r.timeouts.tcp_syn_recv = 2;
    // METHOD=fnat (default) | nat | dr | tun (IPIP) | gue | gre: the real servers' method.
    let method = std::env::var("METHOD").unwrap_or_else(|_| "fnat".into());
    let tun = |kind, port| {
        Method::Tun(Tunnel {
            kind,
            port,
            csum: false,
        })
    };
    let method = match method.as_str() {
        "fnat" => Method::FullNat,
        "nat" => Method::Nat,
        "dr" => Method::Dr,
        "tun" => tun(TunnelKind::Ipip, 0),
        "gue" => tun(TunnelKind::Gue, 6080),
        "gre" => tun(TunnelKind::Gre, 0),
        other => panic!("METHOD={other}: fnat, nat, dr, tun, gue or gre"),
    };
    for rs in &mut r.services[0].reals {
        rs.method = method;
    }
    // ACL=N: a deny list of N prefixes none of the clients is in (half /24, 40 % /32, 10 %
    // /16) and an allow list of 10.0.0.0/8 (where the clients are): every new connection
    // probes both lists. RATE=R: a conn_rate cap of R per second per /24 (high enough that
    // no client is refused).
    if let Some(n) = std::env::var("ACL")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        use fnat_engine::acl::{ClientAcl, PrefixSet};
        let deny = (0..n).map(|i| match i % 10 {
            // Kept out of 10.0.0.0/8 for N up to 200 000.
            0 => (0x1400_0000u32.wrapping_add((i / 10) << 16), 16),
            1..=4 => (0xAC00_0000u32.wrapping_add(i), 32),
            _ => (0x6400_0000u32.wrapping_add(i << 8), 24),
        });
        r.services[0].options.acl = Some(Arc::new(ClientAcl {
            allow: PrefixSet::new([(0x0A00_0000, 8)]),
            deny: PrefixSet::new(deny),
        }));
    }
    if let Some(rate) = std::env::var("RATE")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        r.services[0].options.conn_rate = Some(fnat_engine::acl::ConnRateLimit {
            rate,
            burst: rate,
            prefix_len: 24,
        });
    }
    // CLIENT_ADDR=pp1|pp2|toa|pp2toa: the service sends the client's address
    // (docs/client-address.md).
    let ca = std::env::var("CLIENT_ADDR").unwrap_or_default();
    r.services[0].options.client_address = fnat_engine::rules::ClientAddress {
        proxy_version: match ca.as_str() {
            "pp1" => 1,
            "pp2" | "pp2toa" => 2,
            _ => 0,
        },
        proxy_insecure: false,
        toa: ca.contains("toa"),
    };
    r.services[0].options.synproxy = std::env::var_os("SYNPROXY").is_some();
    let workers = if mode == "steer" { 2 } else { 1 };
    let mut w = Worker::new(0, workers, Arc::new(r));
    if mode == "conn" {
        let t0 = Instant::now();
        let ok = connections(&mut w, packets as u64);
        let dt = t0.elapsed().as_secs_f64();
        println!(
            "mode conn connections {packets}: {:.1} ns/connection, transmitted {ok}/{}, headers {}, toa {}",
            dt * 1e9 / packets as f64,
            packets * 9,
            w.stats().proxy_headers,
            w.stats().toa_added
        );
        return;
    }
    let frames: Vec<[u8; FRAME_LEN]> = if mode == "steer" {
        // One flow per client address (flow k's address is 10.0.0.0 + k / 60000).
        (0..)
            .map(|i: u64| i * 60_000)
            .filter(|&k| fnat_engine::fnat::nat_owner(u32::from_be_bytes(flow_addr(k).0), 2) == 1)
            .take(flows as usize)
            .map(|k| frame(k, false))
            .collect()
    } else if mode == "new" || mode == "churn" {
        (0..packets as u64).map(|k| frame(k, true)).collect()
    } else {
        // Prefill: one SYN per flow (not measured); with ESTABLISHED=1 also its ACK, so that
        // every measured packet is one of an established session.
        let establish = std::env::var_os("ESTABLISHED").is_some();
        for k in 0..flows {
            let mut b = Buf::new();
            b.load(&frame(k, true));
            let v = w.process(0, &mut b, NOW - 1_000_000);
            assert!(matches!(v, Verdict::Transmit { .. }), "prefill {k}: {v:?}");
            if establish {
                b.load(&frame(k, false));
                let v = w.process(0, &mut b, NOW - 1_000_000);
                assert!(
                    matches!(v, Verdict::Transmit { .. }),
                    "prefill ACK {k}: {v:?}"
                );
            }
        }
        // Every packet a different session, spread over the table (stride ≈ 0.618·N, odd and
        // coprime with N so the walk covers every flow). At most 1M distinct frames.
        let n = flows.max(1);
        let mut stride = ((n as f64 * 0.618) as u64) | 1;
        while gcd(stride, n) != 1 {
            stride += 2;
        }
        let count = (n as usize).min(packets).min(1 << 20);
        let mut k = 0u64;
        (0..count)
            .map(|_| {
                k = (k + stride) % n;
                frame(k, false)
            })
            .collect()
    };

    let t0 = Instant::now();
    let ok = measure(&mut w, &mode, &frames, packets, flows);
    let dt = t0.elapsed().as_secs_f64();
    let expect = if mode == "copy" { ok } else { packets as u64 };
    println!(
        "mode {mode} flows {flows} packets {packets}: {:.1} ns/packet, transmitted {ok}/{expect}, sessions {}",
        dt * 1e9 / packets as f64,
        w.stats().sessions
    );
    if mode != "copy" && ok != packets as u64 {
        eprintln!("drops: {:?}", w.stats().drops);
        std::process::exit(1);
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
