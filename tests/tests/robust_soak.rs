//! Soak: a large generated capture of mixed valid, malformed and flood traffic through
//! `fnatd replay` with two workers (redirects included). It must end with exit 0, no panic,
//! zero leaked mbufs, every frame accounted for (received = forwarded + dropped by reason,
//! per port and in total), and a long-lived flow that kept flowing throughout.
//!
//! Bounded: about a minute in a debug build. Run it alone with
//! `cargo nextest run -p fnat-tests --test robust_soak` (or `cargo test ... --test robust_soak`);
//! `FNAT_SOAK_FRAMES=N` changes its size (default 250 000 frames).

#[path = "../../dataplane/engine/tests/malformed_support/mod.rs"]
mod corpus;

use std::net::Ipv4Addr;
use std::time::Duration;

use fnat_engine::DropReason;
use fnat_tests::*;

const MS: u128 = 1_000_000;
const US: u128 = 1_000;
const S: u128 = 1_000_000_000;
const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
const CPORT: u16 = 40000;
const LMIN: u16 = 10000;
const LMAX: u16 = 14095;

struct Soak {
    rng: Rng,
    t: u128,
    wan: Vec<CapturedFrame>,
    /// lan frames per queue (worker).
    lan: [Vec<CapturedFrame>; 2],
    /// Client tuples seen, for follow-up segments.
    tuples: Vec<(Ipv4Addr, u16)>,
    corpus: Vec<corpus::Case>,
    lab: corpus::Lab,
    keepalives: u32,
}

impl Soak {
    fn wan(&mut self, data: Vec<u8>) {
        self.wan.push(CapturedFrame {
            ts_ns: self.t,
            data,
        });
    }

    fn lan(&mut self, data: Vec<u8>) {
        let q = self.rng.below(2) as usize;
        self.lan[q].push(CapturedFrame {
            ts_ns: self.t,
            data,
        });
    }

    fn client_tcp(&self, src: (Ipv4Addr, u16), flags: &str, payload: &[u8]) -> Vec<u8> {
        tcp_frame(
            lab::ROUTER_MAC,
            lab::WAN_MAC,
            src,
            (lab::VIP, 80),
            flags,
            1,
            payload,
        )
    }

    fn server_tcp(&self, lport: u16, flags: &str, payload: &[u8]) -> Vec<u8> {
        tcp_frame(
            lab::RS_MAC,
            lab::LAN_MAC,
            (lab::RS, 80),
            (lab::LIP, lport),
            flags,
            1,
            payload,
        )
    }

    fn random_client(&mut self) -> (Ipv4Addr, u16) {
        let ip =
            Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 51, 100, 0)) + self.rng.below(2000) as u32);
        (ip, 1024 + self.rng.below(60000) as u16)
    }

    /// One step of traffic: a frame or a burst of them.
    fn step(&mut self) {
        self.t += u128::from(self.rng.below(4000)) * US + 1;
        let dice = self.rng.below(100);
        match dice {
            0..=24 => {
                let c = self.random_client();
                self.tuples.push(c);
                let f = self.client_tcp(c, "S", b"");
                self.wan(f);
            }
            25..=44 if !self.tuples.is_empty() => {
                let c = self.tuples[self.rng.below(self.tuples.len() as u64) as usize];
                let flags = ["A", "AP", "AP", "AF", "R", "AR"][self.rng.below(6) as usize];
                let f = self.client_tcp(c, flags, b"client data");
                self.wan(f);
            }
            45..=59 => {
                // Any local port but the long-lived flow's (a random RST would end it).
                let lport = LMIN + 1 + self.rng.below(u64::from(LMAX - LMIN)) as u16;
                let flags = ["SA", "A", "AP", "AF", "R"][self.rng.below(5) as usize];
                let f = self.server_tcp(lport, flags, b"server data");
                self.lan(f);
            }
            60..=69 => {
                let case = self.corpus[self.rng.below(self.corpus.len() as u64) as usize].clone();
                match case.side {
                    corpus::Side::Wan => self.wan(case.frame),
                    corpus::Side::Lan => self.lan(case.frame),
                }
            }
            70..=71 => {
                // A flood burst of spoofed SYNs.
                for _ in 0..100 {
                    self.t += 5 * US;
                    let ip = Ipv4Addr::from(0x6440_0000 + self.rng.below(1 << 22) as u32);
                    let port = 1024 + self.rng.below(60000) as u16;
                    let f = self.client_tcp((ip, port), "S", b"");
                    self.wan(f);
                }
            }
            72..=79 => {
                let c = self.random_client();
                let mut f = Vec::new();
                etherparse::PacketBuilder::ethernet2(lab::ROUTER_MAC, lab::WAN_MAC)
                    .ipv4(c.0.octets(), lab::VIP.octets(), 64)
                    .udp(c.1, 53)
                    .write(&mut f, b"query")
                    .unwrap();
                self.wan(f);
                let lport = LMIN + self.rng.below(u64::from(LMAX - LMIN) + 1) as u16;
                let mut r = Vec::new();
                etherparse::PacketBuilder::ethernet2(lab::RS_MAC, lab::LAN_MAC)
                    .ipv4(lab::RS.octets(), lab::LIP.octets(), 64)
                    .udp(53, lport)
                    .write(&mut r, b"answer")
                    .unwrap();
                self.lan(r);
            }
            80..=89 => {
                // A valid frame with a few random bytes flipped, or cut short.
                let c = self.random_client();
                let mut f = self.client_tcp(c, "S", b"mutant");
                if self.rng.below(2) == 0 {
                    for _ in 0..1 + self.rng.below(4) {
                        let i = self.rng.below(f.len() as u64) as usize;
                        f[i] ^= 1 << self.rng.below(8);
                    }
                } else {
                    f.truncate(self.rng.below(f.len() as u64) as usize);
                }
                if self.rng.below(2) == 0 {
                    self.wan(f);
                } else {
                    self.lan(f);
                }
            }
            _ => {
                // Garbage with our MAC in front.
                let len = self.rng.below(200) as usize;
                let mut f: Vec<u8> = (0..len).map(|_| self.rng.next_u64() as u8).collect();
                if f.len() >= 6 {
                    f[..6].copy_from_slice(&lab::WAN_MAC);
                }
                self.wan(f);
            }
        }
    }

    /// Data of the long-lived flow, both ways.
    fn keepalive(&mut self) {
        let payload = format!("keepalive-{}", self.keepalives);
        self.keepalives += 1;
        let f = self.client_tcp((CLIENT, CPORT), "AP", payload.as_bytes());
        self.wan(f);
        self.t += 10 * US;
        let f = self.server_tcp(LMIN, "AP", payload.as_bytes());
        // Replies of the flow arrive on either worker's queue: worker 1 redirects them.
        self.lan(f);
    }
}

#[test]
fn soak_mixed_valid_malformed_and_flood_traffic() {
    let frames: usize = std::env::var("FNAT_SOAK_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(250_000);
    let lab_ = corpus::Lab {
        wan_mac: lab::WAN_MAC,
        lan_mac: lab::LAN_MAC,
        router_mac: lab::ROUTER_MAC,
        rs_mac: lab::RS_MAC,
        vip: lab::VIP,
        vport: 80,
        udp_vport: 53,
        own_ip: lab::WAN_IP,
        lip: lab::LIP,
        lport: LMIN,
        free_lport: LMAX,
        rs: lab::RS,
        rport: 80,
        client: CLIENT,
        cport: CPORT,
        stranger: Ipv4Addr::new(192, 0, 2, 99),
    };
    let mut soak = Soak {
        rng: Rng::new(0x50a4),
        t: S,
        wan: Vec::new(),
        lan: [Vec::new(), Vec::new()],
        tuples: Vec::new(),
        corpus: corpus::cases(&lab_),
        lab: lab_,
        keepalives: 0,
    };
    // The long-lived flow: worker 0 (wan queue 0) takes its SYN first, so its local port is
    // the first even one, LMIN.
    let f = soak.client_tcp((CLIENT, CPORT), "S", b"");
    soak.wan(f);
    soak.t += MS;
    let f = soak.server_tcp(LMIN, "SA", b"");
    soak.lan[0].push(CapturedFrame {
        ts_ns: soak.t,
        data: f,
    });
    soak.t += MS;
    let f = soak.client_tcp((CLIENT, CPORT), "A", b"");
    soak.wan(f);
    let mut next_keepalive = soak.t + 500 * MS;
    while soak.wan.len() + soak.lan[0].len() + soak.lan[1].len() < frames {
        soak.step();
        if soak.t >= next_keepalive {
            soak.keepalive();
            next_keepalive = soak.t + 500 * MS;
        }
    }
    let _ = &soak.lab;

    let dir = TempDir::new("soak");
    let wan_in = dir.join("wan0.pcap");
    let lan_in = [dir.join("lan0.pcap"), dir.join("lan1.pcap")];
    write_pcap(&wan_in, &soak.wan);
    write_pcap(&lan_in[0], &soak.lan[0]);
    write_pcap(&lan_in[1], &soak.lan[1]);
    let (wan_out, lan_out) = (dir.join("wan0-out.pcap"), dir.join("lan0-out.pcap"));
    let run = replay_with_config(
        &dir,
        &fnat_lab_config(
            "",
            "workers = 2",
            &format!("capacity = 1500\nlocal_port_range = [{LMIN}, {LMAX}]"),
            "tcp_established = 30\ntcp_syn_recv = 5\ntcp_fin_wait = 5\ntcp_time_wait = 2\n\
             tcp_close = 2\ntcp_close_wait = 5\ntcp_last_ack = 5\nudp = 5",
        ),
        &[
            format!("--rx=wan:0={}", wan_in.display()),
            format!("--rx=lan:0={}", lan_in[0].display()),
            format!("--rx=lan:1={}", lan_in[1].display()),
            format!("--tx=wan:0={}", wan_out.display()),
            format!("--tx=lan:0={}", lan_out.display()),
        ],
        Duration::from_secs(240),
    );
    let out = &run.stdout;
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);

    // The books: exact, in total, per reason and per port.
    let books = Books::parse(out);
    books.assert_sound(out);
    books.assert_no_engine_frames(out);
    let by_reason: u64 = DropReason::ALL
        .iter()
        .map(|r| drop_counter(out, r.name()))
        .sum();
    assert_eq!(by_reason, books.dropped, "drops by reason add up\n{out}");
    let wan = port_stats(out, 0);
    let lan = port_stats(out, 1);
    assert_eq!(
        (wan.rx, wan.rx_dropped),
        (soak.wan.len() as u64, 0),
        "{out}"
    );
    assert_eq!(
        (lan.rx, lan.rx_dropped),
        ((soak.lan[0].len() + soak.lan[1].len()) as u64, 0),
        "{out}"
    );
    assert_eq!(books.rx, wan.rx + lan.rx, "{out}");
    assert_eq!(books.forwarded, wan.tx + lan.tx, "{out}");

    // Every kind of trouble happened, and was counted.
    for reason in corpus::ENGINE_REASONS
        .iter()
        .chain(&[DropReason::SessionTableFull])
    {
        assert!(
            drop_counter(out, reason.name()) > 0,
            "no {} drop in the soak\n{out}",
            reason.name()
        );
    }
    let redirected: u64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Redirected between workers:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("redirected line");
    assert!(redirected > 0, "{out}");

    // The long-lived flow flowed all along, both ways, rewritten exactly.
    for (file, src, dst) in [
        (&lan_out, (lab::LIP, LMIN), (lab::RS, 80)),
        (&wan_out, (lab::VIP, 80), (CLIENT, CPORT)),
    ] {
        let seen = tcp_with_payload(&read_pcap(file), b"keepalive-");
        assert_eq!(
            seen.len(),
            soak.keepalives as usize,
            "{}: keepalives out",
            file.display()
        );
        for (k, t) in seen.iter().enumerate() {
            assert_eq!(t.payload, format!("keepalive-{k}").as_bytes());
            assert!(t.checksums_valid());
            assert_eq!(
                (
                    Ipv4Addr::from(t.ip.source),
                    t.tcp.source_port,
                    Ipv4Addr::from(t.ip.destination),
                    t.tcp.destination_port
                ),
                (src.0, src.1, dst.0, dst.1)
            );
        }
    }
}
