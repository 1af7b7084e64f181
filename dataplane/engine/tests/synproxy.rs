//! The SYN proxy through the full-NAT pipeline: frames built with etherparse, the frames that
//! leave decoded and checksum-verified with etherparse (cookie SYN-ACK fields, the SYN toward
//! the real server with the client's options, sequence/acknowledgement numbers, windows and
//! SACK blocks both ways), never with the engine's own parser.

mod common;

use std::net::SocketAddrV4;

use common::*;
use etherparse::{PacketHeaders, TcpHeader, TcpOptionElement, TransportHeader};
use fnat_engine::rules::{ClientAddress, Rules};
use fnat_engine::{DropReason, Verdict, Worker};

const C_ISN: u32 = 0xFFFF_FF00; // the client's stream wraps during the tests
const RS_ISN: u32 = 0x1234_5678;
const CPORT: u16 = 40000;
const T0: u64 = 1_000 * S;

fn rules_with(ca: ClientAddress) -> Rules {
    let mut r = rules(1 << 17, 1024, 65535);
    for s in &mut r.services {
        if s.protocol == fnat_engine::rules::Protocol::Tcp {
            s.options.synproxy = true;
            s.options.client_address = ca;
        }
    }
    r
}

/// A TCP frame with explicit numbers, window and options; `flags` letters S A F R P.
#[allow(clippy::too_many_arguments)]
fn seg(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    flags: &str,
    seq: u32,
    ack: u32,
    window: u16,
    opts: &[TcpOptionElement],
    payload: &[u8],
) -> Vec<u8> {
    let f = TcpFields {
        seq,
        ack,
        window,
        opts,
        ..TcpFields::default()
    };
    tcp_segment(src, dst, flags, f, payload)
}

/// The TCP header and payload of a frame that left, every checksum verified by `decode`.
fn tcp_of(frame: &[u8]) -> (TcpHeader, Vec<u8>) {
    let _ = decode(frame);
    let h = PacketHeaders::from_ethernet_slice(frame).unwrap();
    match h.transport {
        Some(TransportHeader::Tcp(t)) => (t, h.payload.slice().to_vec()),
        other => panic!("not TCP: {other:?}"),
    }
}

fn options(t: &TcpHeader) -> Vec<TcpOptionElement> {
    t.options_iterator().map(|o| o.unwrap()).collect()
}

fn sack_blocks(t: &TcpHeader) -> Vec<(u32, u32)> {
    options(t)
        .into_iter()
        .filter_map(|o| match o {
            TcpOptionElement::SelectiveAcknowledgement(first, rest) => Some(
                std::iter::once(first)
                    .chain(rest.into_iter().flatten())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Option 254 (TOA) read from raw option bytes: (port, address).
fn toa_of(t: &TcpHeader) -> Vec<(u16, [u8; 4])> {
    let o = t.options.as_slice();
    let mut found = Vec::new();
    let mut i = 0;
    while i < o.len() {
        match o[i] {
            0 => break,
            1 => i += 1,
            _ => {
                let len = o[i + 1] as usize;
                if o[i] == 254 {
                    found.push((
                        u16::from_be_bytes([o[i + 2], o[i + 3]]),
                        [o[i + 4], o[i + 5], o[i + 6], o[i + 7]],
                    ));
                }
                i += len.max(2);
            }
        }
    }
    found
}

const LINUX_SYN: [TcpOptionElement; 5] = [
    TcpOptionElement::MaximumSegmentSize(1460),
    TcpOptionElement::SelectiveAcknowledgementPermitted,
    TcpOptionElement::Timestamp(77, 0),
    TcpOptionElement::Noop,
    TcpOptionElement::WindowScale(7),
];

struct Conn {
    w: Worker,
    client: SocketAddrV4,
    t: u64,
    /// The cookie: the ISN the client was given.
    cookie: u32,
    /// LIP:lport and RS:rport as the real server sees them (once the SYN went).
    lip: SocketAddrV4,
    rs: SocketAddrV4,
}

impl Conn {
    fn run(&mut self, f: &mut Vec<u8>) -> Verdict {
        self.t += 1000;
        run(&mut self.w, f, self.t)
    }

    fn sessions(&self) -> u64 {
        self.w.stats().sessions
    }

    fn drops(&self, r: DropReason) -> u64 {
        self.w.stats().drops[r as usize]
    }

    fn client_seg(
        &self,
        flags: &str,
        seq: u32,
        ack: u32,
        opts: &[TcpOptionElement],
        p: &[u8],
    ) -> Vec<u8> {
        seg(self.client, sa(VIP, 80), flags, seq, ack, 502, opts, p)
    }

    fn rs_seg(
        &self,
        flags: &str,
        seq: u32,
        ack: u32,
        win: u16,
        opts: &[TcpOptionElement],
        p: &[u8],
    ) -> Vec<u8> {
        seg(self.rs, self.lip, flags, seq, ack, win, opts, p)
    }

    /// The client's SYN, answered by the worker with a cookie: checks the SYN-ACK.
    fn syn(ca: ClientAddress) -> Conn {
        let w = workers(1, rules_with(ca)).remove(0);
        let mut c = Conn {
            w,
            client: sa(CLIENT, CPORT),
            t: T0,
            cookie: 0,
            lip: sa(LIP1, 0),
            rs: sa(RS1, 0),
        };
        let mut f = c.client_seg("S", C_ISN, 0, &LINUX_SYN, b"");
        assert_eq!(c.run(&mut f), Verdict::Transmit { port: 0 });
        let o = decode(&f);
        assert_eq!((o.src, o.dst), (sa(VIP, 80), c.client));
        assert_eq!((o.src_mac, o.dst_mac), (PORT0_MAC, ROUTER_MAC));
        assert_eq!(tcp_flags(&o), (true, true, false, false));
        let (th, payload) = tcp_of(&f);
        assert!(payload.is_empty());
        assert_eq!(th.acknowledgment_number, C_ISN.wrapping_add(1));
        let opts = options(&th);
        assert!(
            opts.contains(&TcpOptionElement::MaximumSegmentSize(1460)),
            "{opts:?}"
        );
        assert!(
            opts.contains(&TcpOptionElement::SelectiveAcknowledgementPermitted),
            "{opts:?}"
        );
        assert!(opts.contains(&TcpOptionElement::WindowScale(7)), "{opts:?}");
        assert!(
            !opts
                .iter()
                .any(|o| matches!(o, TcpOptionElement::Timestamp(..))),
            "no timestamps: {opts:?}"
        );
        assert_eq!(c.sessions(), 0, "a SYN makes no session");
        assert_eq!(c.w.stats().syn_cookies_sent, 1);
        c.cookie = th.sequence_number;
        c
    }

    /// The client's ACK of the cookie (with `data`): the SYN toward the real server leaves.
    fn ack(&mut self, data: &[u8]) {
        let mut f = self.client_seg(
            "A",
            C_ISN.wrapping_add(1),
            self.cookie.wrapping_add(1),
            &[],
            data,
        );
        assert_eq!(self.run(&mut f), Verdict::Transmit { port: 1 });
        assert_eq!(self.sessions(), 1, "the cookie ACK made the session");
        let o = decode(&f);
        assert_eq!(
            tcp_flags(&o),
            (true, false, false, false),
            "a SYN to the real server"
        );
        assert!(o.payload.is_empty(), "the data is held, not on the SYN");
        let (th, _) = tcp_of(&f);
        assert_eq!(th.sequence_number, C_ISN, "the client's own ISN");
        let opts = options(&th);
        assert!(
            opts.contains(&TcpOptionElement::MaximumSegmentSize(1460)),
            "{opts:?}"
        );
        assert!(
            opts.contains(&TcpOptionElement::SelectiveAcknowledgementPermitted),
            "{opts:?}"
        );
        assert!(
            opts.contains(&TcpOptionElement::WindowScale(7)),
            "the client's scale: {opts:?}"
        );
        assert_eq!(o.dst.port(), 8080);
        self.lip = o.src;
        self.rs = o.dst;
    }

    /// The real server's SYN-ACK (window scale `ws`): the worker's ACK to it leaves, carrying
    /// whatever data was held. Returns it.
    fn rs_syn_ack(&mut self, ws: u8) -> (TcpHeader, Vec<u8>) {
        let mut f = self.rs_seg(
            "SA",
            RS_ISN,
            C_ISN.wrapping_add(1),
            65535,
            &[
                TcpOptionElement::MaximumSegmentSize(1400),
                TcpOptionElement::SelectiveAcknowledgementPermitted,
                TcpOptionElement::WindowScale(ws),
            ],
            b"",
        );
        assert_eq!(self.run(&mut f), Verdict::Transmit { port: 1 });
        let o = decode(&f);
        assert_eq!(
            (o.src, o.dst),
            (self.lip, self.rs),
            "back to the real server"
        );
        let (th, p) = tcp_of(&f);
        assert!(th.ack && !th.syn, "the worker ACKs the SYN-ACK");
        assert_eq!(th.acknowledgment_number, RS_ISN.wrapping_add(1));
        (th, p)
    }

    /// The whole handshake, no data with the ACK.
    fn open(ca: ClientAddress) -> Conn {
        let mut c = Conn::syn(ca);
        c.ack(b"");
        let (th, p) = c.rs_syn_ack(7);
        assert!(p.is_empty());
        assert_eq!(th.sequence_number, C_ISN.wrapping_add(1));
        c
    }

    /// RS→client data at `rs_off` bytes into the server's stream: checks the client's view.
    fn server_data(&mut self, rs_off: u32, client_ack: u32, data: &[u8]) -> TcpHeader {
        let mut f = self.rs_seg(
            "AP",
            RS_ISN.wrapping_add(1 + rs_off),
            client_ack,
            1000,
            &[],
            data,
        );
        assert_eq!(self.run(&mut f), Verdict::Transmit { port: 0 });
        let o = decode(&f);
        assert_eq!((o.src, o.dst), (sa(VIP, 80), self.client));
        assert_eq!(o.payload, data);
        let (th, _) = tcp_of(&f);
        assert_eq!(
            th.sequence_number,
            self.cookie.wrapping_add(1 + rs_off),
            "seq in the cookie's numbers"
        );
        th
    }
}

fn no_ca() -> ClientAddress {
    ClientAddress::default()
}

#[test]
fn syn_gets_a_cookie_syn_ack_and_retransmits_get_it_again() {
    let mut c = Conn::syn(no_ca());
    let mut f = c.client_seg("S", C_ISN, 0, &LINUX_SYN, b"");
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 0 });
    let (th, _) = tcp_of(&f);
    assert_eq!(
        th.sequence_number, c.cookie,
        "same cookie within its period"
    );
    assert_eq!(c.w.stats().syn_cookies_sent, 2);
    assert_eq!(c.sessions(), 0);
    // A SYN without options: MSS only (536 rounded), no SACK, no window scale.
    let mut f = seg(sa(CLIENT, 40001), sa(VIP, 80), "S", 5, 0, 1000, &[], b"");
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 0 });
    let (th, _) = tcp_of(&f);
    assert_eq!(
        options(&th),
        vec![TcpOptionElement::MaximumSegmentSize(1460)]
    );
}

#[test]
fn handshake_data_with_the_ack_and_byte_exact_numbers_both_ways_with_sack() {
    let mut c = Conn::syn(no_ca());
    c.ack(b"GET /");
    assert_eq!(c.w.stats().synproxy_data_held, 1);
    // The real server scales by 9; the client was told 7: its windows are rescaled.
    let (th, p) = c.rs_syn_ack(9);
    assert_eq!(p, b"GET /", "the held data goes with the ACK");
    assert_eq!(th.sequence_number, C_ISN.wrapping_add(1));
    assert_eq!(th.window_size, 502, "the client's window as it sent it");
    // RS → client: seq shifted into the cookie's numbers, window rescaled 1000·2⁹/2⁷.
    let th = c.server_data(0, C_ISN.wrapping_add(6), b"HTTP/1.1 200 OK\r\n");
    assert_eq!(
        th.acknowledgment_number,
        C_ISN.wrapping_add(6),
        "the client's numbers are its own"
    );
    assert_eq!(th.window_size, 4000);
    // Client → RS: the ACK and SACK blocks map back to the server's numbers.
    let sack = TcpOptionElement::SelectiveAcknowledgement(
        (c.cookie.wrapping_add(100), c.cookie.wrapping_add(200)),
        [None, None, None],
    );
    let mut f = c.client_seg(
        "A",
        C_ISN.wrapping_add(6),
        c.cookie.wrapping_add(18),
        &[TcpOptionElement::Noop, TcpOptionElement::Noop, sack],
        b"more",
    );
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 1 });
    let (th, p) = tcp_of(&f);
    assert_eq!(p, b"more");
    assert_eq!(th.sequence_number, C_ISN.wrapping_add(6));
    assert_eq!(th.acknowledgment_number, RS_ISN.wrapping_add(18));
    assert_eq!(
        sack_blocks(&th),
        vec![(RS_ISN.wrapping_add(100), RS_ISN.wrapping_add(200))]
    );
    // The RS's SYN-ACK again (the worker's ACK lost): never to the client.
    let mut f = c.rs_seg("SA", RS_ISN, C_ISN.wrapping_add(1), 65535, &[], b"");
    assert_eq!(c.run(&mut f), Verdict::Drop(DropReason::SynProxyHandshake));
    assert_eq!(c.sessions(), 1);
}

#[test]
fn data_before_the_servers_syn_ack_is_held_then_released() {
    let mut c = Conn::syn(no_ca());
    c.ack(b"");
    let mut f = c.client_seg(
        "AP",
        C_ISN.wrapping_add(1),
        c.cookie.wrapping_add(1),
        &[],
        b"hello",
    );
    assert_eq!(c.run(&mut f), Verdict::Consumed);
    // Its retransmission, while the first copy is held: dropped, counted.
    let mut f = c.client_seg(
        "AP",
        C_ISN.wrapping_add(1),
        c.cookie.wrapping_add(1),
        &[],
        b"hello",
    );
    assert_eq!(c.run(&mut f), Verdict::Drop(DropReason::SynProxyHandshake));
    let (th, p) = c.rs_syn_ack(7);
    assert_eq!(p, b"hello");
    assert_eq!(th.sequence_number, C_ISN.wrapping_add(1));
    let th = c.server_data(0, C_ISN.wrapping_add(6), b"ok");
    assert_eq!(th.window_size, 1000, "same scale: the window is untouched");
}

#[test]
fn rst_from_the_real_server_reaches_the_client_shifted() {
    // Refused at the handshake: RST+ACK to the SYN.
    let mut c = Conn::syn(no_ca());
    c.ack(b"early");
    let mut f = c.rs_seg("RA", 0, C_ISN.wrapping_add(1), 0, &[], b"");
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 0 });
    let o = decode(&f);
    assert_eq!((o.src, o.dst), (sa(VIP, 80), c.client));
    let (th, _) = tcp_of(&f);
    assert!(th.rst);
    assert_eq!(
        th.sequence_number,
        c.cookie.wrapping_add(1),
        "where the client expects it"
    );
    // Reset once established: shifted like any segment.
    let mut c = Conn::open(no_ca());
    let mut f = c.rs_seg("R", RS_ISN.wrapping_add(1), 0, 0, &[], b"");
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 0 });
    let (th, _) = tcp_of(&f);
    assert!(th.rst);
    assert_eq!(th.sequence_number, c.cookie.wrapping_add(1));
}

#[test]
fn bad_and_stale_cookies_are_dropped_by_reason_and_make_no_session() {
    let mut c = Conn::syn(no_ca());
    let mut f = c.client_seg(
        "A",
        C_ISN.wrapping_add(1),
        c.cookie.wrapping_add(2),
        &[],
        b"",
    );
    let v = c.run(&mut f);
    assert!(
        matches!(
            v,
            Verdict::Drop(DropReason::SynCookieInvalid | DropReason::SynCookieStale)
        ),
        "{v:?}"
    );
    // Another client sequence number: the cookie is bound to the ISN.
    let mut f = c.client_seg(
        "A",
        C_ISN.wrapping_add(2),
        c.cookie.wrapping_add(1),
        &[],
        b"",
    );
    assert!(matches!(c.run(&mut f), Verdict::Drop(_)));
    // The right cookie three minutes later: stale.
    c.t += 180 * S;
    let mut f = c.client_seg(
        "A",
        C_ISN.wrapping_add(1),
        c.cookie.wrapping_add(1),
        &[],
        b"",
    );
    assert_eq!(c.run(&mut f), Verdict::Drop(DropReason::SynCookieStale));
    assert_eq!(c.sessions(), 0);
    assert_eq!(c.w.stats().sessions_created, 0);
    assert_eq!(
        c.drops(DropReason::SynCookieStale) + c.drops(DropReason::SynCookieInvalid),
        3
    );
}

/// A tiny deterministic generator (the flood's sources and numbers).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 32) as u32
    }
}

#[test]
fn spoofed_syn_flood_makes_no_session_and_flows_go_on() {
    let mut c = Conn::open(no_ca());
    let mut rng = Lcg(17);
    let flood = 100_000u32;
    let mut answered = 0u32;
    for i in 0..flood {
        let src = sa(
            std::net::Ipv4Addr::from(0x6440_0000 | (rng.next() & 0x3F_FFFF)),
            1024 + (rng.next() % 60000) as u16,
        );
        let mut f = seg(src, sa(VIP, 80), "S", rng.next(), 0, 1024, &LINUX_SYN, b"");
        if c.run(&mut f) == (Verdict::Transmit { port: 0 }) {
            answered += 1;
        }
        if i % 10_000 == 0 {
            // The established flow keeps flowing both ways.
            let off = i / 10_000;
            let th = c.server_data(off, C_ISN.wrapping_add(1), b"x");
            assert_eq!(th.acknowledgment_number, C_ISN.wrapping_add(1));
        }
    }
    assert_eq!(answered, flood, "every SYN answered with a cookie");
    // Spoofed ACKs guessing cookies: refused.
    for _ in 0..10_000 {
        let src = sa(
            std::net::Ipv4Addr::from(0x6440_0000 | (rng.next() & 0x3F_FFFF)),
            2000,
        );
        let mut f = seg(
            src,
            sa(VIP, 80),
            "A",
            rng.next(),
            rng.next(),
            1024,
            &[],
            b"",
        );
        assert!(matches!(
            c.run(&mut f),
            Verdict::Drop(DropReason::SynCookieStale | DropReason::SynCookieInvalid)
        ));
    }
    assert_eq!(c.sessions(), 1, "the flood made no session");
    assert_eq!(c.w.stats().sessions_created, 1);
    assert_eq!(
        c.drops(DropReason::SynCookieStale) + c.drops(DropReason::SynCookieInvalid),
        10_000
    );
    // A new legitimate client still gets through.
    let mut n = Conn {
        w: c.w,
        client: sa(CLIENT, 40999),
        t: c.t,
        cookie: 0,
        lip: c.lip,
        rs: c.rs,
    };
    let mut f = n.client_seg("S", 7, 0, &LINUX_SYN, b"");
    assert_eq!(n.run(&mut f), Verdict::Transmit { port: 0 });
    let (th, _) = tcp_of(&f);
    n.cookie = th.sequence_number;
    let mut f = n.client_seg("A", 8, n.cookie.wrapping_add(1), &[], b"");
    assert_eq!(n.run(&mut f), Verdict::Transmit { port: 1 });
    assert_eq!(n.sessions(), 2);
}

#[test]
fn synproxy_with_proxy_protocol_shifts_both_offsets() {
    let ca = ClientAddress {
        proxy_version: 1,
        proxy_insecure: false,
        toa: false,
    };
    let mut c = Conn::syn(ca);
    c.ack(b"GET");
    let (th, p) = c.rs_syn_ack(7);
    let header = format!("PROXY TCP4 {CLIENT} {VIP} {CPORT} 80\r\n");
    let mut want = header.clone().into_bytes();
    want.extend_from_slice(b"GET");
    assert_eq!(p, want, "the header in front of the held data");
    assert_eq!(th.sequence_number, C_ISN.wrapping_add(1));
    let h = header.len() as u32;
    // The server acknowledges header and data: the client sees its own 3 bytes acknowledged.
    let th = c.server_data(0, C_ISN.wrapping_add(1 + h + 3), b"200");
    assert_eq!(th.acknowledgment_number, C_ISN.wrapping_add(4));
    // Client → RS: seq past the header, ack back in the server's numbers.
    let mut f = c.client_seg(
        "A",
        C_ISN.wrapping_add(4),
        c.cookie.wrapping_add(4),
        &[],
        b"!",
    );
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 1 });
    let (th, _) = tcp_of(&f);
    assert_eq!(th.sequence_number, C_ISN.wrapping_add(4 + h));
    assert_eq!(th.acknowledgment_number, RS_ISN.wrapping_add(4));
}

#[test]
fn synproxy_with_toa_puts_it_on_the_handshake_completing_ack() {
    let ca = ClientAddress {
        proxy_version: 0,
        proxy_insecure: false,
        toa: true,
    };
    let mut c = Conn::syn(ca);
    c.ack(b"");
    let (th, _) = c.rs_syn_ack(7);
    assert_eq!(toa_of(&th), vec![(CPORT, CLIENT.octets())]);
    let mut f = c.client_seg(
        "AP",
        C_ISN.wrapping_add(1),
        c.cookie.wrapping_add(1),
        &[],
        b"hi",
    );
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 1 });
    let (th, p) = tcp_of(&f);
    assert_eq!(p, b"hi");
    assert_eq!(
        toa_of(&th),
        vec![(CPORT, CLIENT.octets())],
        "and on the first data"
    );
    assert_eq!(th.acknowledgment_number, RS_ISN.wrapping_add(1));
}
