//! Proxy Protocol and TOA through the full-NAT pipeline: frames built with etherparse, the
//! frames that leave decoded and checksum-verified with etherparse (sequence and
//! acknowledgement numbers, SACK blocks, the header bytes, option 254 read from the raw
//! option bytes), never with the engine's own parser.

mod common;

use std::net::SocketAddrV4;

use common::*;
use etherparse::{
    LinkHeader, NetHeaders, PacketBuilder, PacketHeaders, TcpHeader, TcpOptionElement,
    TransportHeader,
};
use fnat_engine::rules::{ClientAddress, Rules};
use fnat_engine::{DropReason, Verdict, Worker};

const C_ISN: u32 = 0xFFFF_FFF0; // the client's stream wraps during the test
const RS_ISN: u32 = 5000;
const CPORT: u16 = 40000;

fn rules_with(ca: ClientAddress) -> Rules {
    let mut r = rules(1024, 1024, 65535);
    for s in &mut r.services {
        s.options.client_address = ca;
    }
    r
}

/// A TCP frame with explicit numbers and options; `flags` letters S A F R P.
fn seg(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    flags: &str,
    seq: u32,
    ack: u32,
    opts: &[TcpOptionElement],
    payload: &[u8],
) -> Vec<u8> {
    let f = TcpFields {
        seq,
        ack,
        opts,
        ..TcpFields::default()
    };
    tcp_segment(src, dst, flags, f, payload)
}

/// A TCP frame whose options are the raw bytes `opts` (a multiple of 4).
fn seg_raw_opts(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    ack: u32,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let (_, our_mac, peer_mac) = side_of(dst);
    let mut b = PacketBuilder::ethernet2(peer_mac, our_mac)
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .tcp(src.port(), dst.port(), seq, 65535)
        .ack(ack);
    b = b.options_raw(opts).unwrap();
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// The TCP header and payload of a frame that left, every checksum verified by `decode`.
fn tcp_of(frame: &[u8]) -> (TcpHeader, Vec<u8>) {
    let _ = decode(frame);
    let h = PacketHeaders::from_ethernet_slice(frame).unwrap();
    assert!(matches!(h.link, Some(LinkHeader::Ethernet2(_))));
    assert!(matches!(h.net, Some(NetHeaders::Ipv4(..))));
    match h.transport {
        Some(TransportHeader::Tcp(t)) => (t, h.payload.slice().to_vec()),
        other => panic!("not TCP: {other:?}"),
    }
}

/// Option 254 (kind, 8, port, IPv4) read from raw option bytes: (port, address).
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
                    assert_eq!(len, 8, "TOA length");
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

struct Conn {
    w: Worker,
    client: SocketAddrV4,
    /// LIP:lport and RS:rport as the real server sees them.
    lip: SocketAddrV4,
    rs: SocketAddrV4,
    t: u64,
}

impl Conn {
    /// SYN, SYN-ACK, ACK through a worker with `ca` on the services.
    fn open(ca: ClientAddress) -> (Conn, Vec<u8>) {
        let mut w = workers(1, rules_with(ca)).remove(0);
        let client = sa(CLIENT, CPORT);
        let t = 1_000 * S;
        let mut f = seg(client, sa(VIP, 80), "S", C_ISN, 0, &[], b"");
        assert_eq!(run(&mut w, &mut f, t), Verdict::Transmit { port: 1 });
        let (th, _) = tcp_of(&f);
        assert!(toa_of(&th).is_empty(), "never TOA on the SYN");
        let o = decode(&f);
        let (lip, rs) = (o.src, o.dst);
        let mut c = Conn {
            w,
            client,
            lip,
            rs,
            t,
        };
        let mut f = c.rs_seg("SA", RS_ISN, C_ISN.wrapping_add(1), &[], b"");
        assert_eq!(c.run(&mut f), Verdict::Transmit { port: 0 });
        let (th, _) = tcp_of(&f);
        assert_eq!(th.acknowledgment_number, C_ISN.wrapping_add(1));
        let mut ack = c.client_seg("A", C_ISN.wrapping_add(1), RS_ISN + 1, &[], b"");
        assert_eq!(c.run(&mut ack), Verdict::Transmit { port: 1 });
        (c, ack)
    }
    fn run(&mut self, f: &mut Vec<u8>) -> Verdict {
        self.t += 1000;
        run(&mut self.w, f, self.t)
    }
    fn client_seg(
        &self,
        flags: &str,
        seq: u32,
        ack: u32,
        opts: &[TcpOptionElement],
        p: &[u8],
    ) -> Vec<u8> {
        seg(self.client, sa(VIP, 80), flags, seq, ack, opts, p)
    }
    fn rs_seg(
        &self,
        flags: &str,
        seq: u32,
        ack: u32,
        opts: &[TcpOptionElement],
        p: &[u8],
    ) -> Vec<u8> {
        seg(self.rs, self.lip, flags, seq, ack, opts, p)
    }
}

fn pp(version: u8, insecure: bool) -> ClientAddress {
    ClientAddress {
        proxy_version: version,
        proxy_insecure: insecure,
        toa: false,
    }
}

fn v2_header(proto: u8) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, proto, 0, 12]);
    h.extend_from_slice(&CLIENT.octets());
    h.extend_from_slice(&VIP.octets());
    h.extend_from_slice(&CPORT.to_be_bytes());
    h.extend_from_slice(&80u16.to_be_bytes());
    h
}

#[test]
fn proxy_v2_header_and_sequence_arithmetic_both_ways() {
    // `*-insecure`: the header waits for the client's data (which may bring its own).
    let (mut c, ack) = Conn::open(pp(2, true));
    let first = C_ISN.wrapping_add(1);
    // The handshake-completing ACK goes unchanged.
    let (th, p) = tcp_of(&ack);
    assert_eq!((th.sequence_number, p.len()), (first, 0));

    // Data past the first byte before the first segment came (reordered): dropped, counted.
    let mut f = c.client_seg("AP", first.wrapping_add(5), RS_ISN + 1, &[], b"world");
    assert_eq!(c.run(&mut f), Verdict::Drop(DropReason::ProxyPending));

    // The first data: the header in front, at the client's first sequence number.
    let hdr = v2_header(0x11);
    let d = hdr.len() as u32;
    let mut f = c.client_seg("AP", first, RS_ISN + 1, &[], b"hello");
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 1 });
    let (th, p) = tcp_of(&f);
    assert_eq!(th.sequence_number, first);
    assert_eq!(p, [hdr.as_slice(), b"hello"].concat());
    assert_eq!(c.w.stats().proxy_headers, 1);

    // Its retransmission carries the header again.
    let mut f = c.client_seg("AP", first, RS_ISN + 1, &[], b"hello");
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 1 });
    let (th, p) = tcp_of(&f);
    assert_eq!(
        (th.sequence_number, &p[..d as usize]),
        (first, hdr.as_slice())
    );

    // Later client segments are shifted by the header's length (across the wrap).
    let next = first.wrapping_add(5);
    let mut f = c.client_seg("AP", next, RS_ISN + 1, &[], b"world");
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 1 });
    let (th, p) = tcp_of(&f);
    assert_eq!(
        (th.sequence_number, p.as_slice()),
        (next.wrapping_add(d), &b"world"[..])
    );

    // The real server's acknowledgements and SACK blocks come back in the client's numbers.
    let rs_ack = next.wrapping_add(d).wrapping_add(5);
    let sack = TcpOptionElement::SelectiveAcknowledgement(
        (rs_ack.wrapping_add(100), rs_ack.wrapping_add(200)),
        [
            Some((rs_ack.wrapping_add(300), rs_ack.wrapping_add(400))),
            None,
            None,
        ],
    );
    let mut f = c.rs_seg(
        "AP",
        RS_ISN + 1,
        rs_ack,
        &[TcpOptionElement::Noop, TcpOptionElement::Noop, sack],
        b"resp",
    );
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 0 });
    let (th, p) = tcp_of(&f);
    assert_eq!(th.acknowledgment_number, next.wrapping_add(5));
    assert_eq!(
        th.sequence_number,
        RS_ISN + 1,
        "the server's own numbers untouched"
    );
    assert_eq!(p, b"resp");
    let blocks: Vec<_> = th
        .options_iterator()
        .filter_map(|o| match o.unwrap() {
            TcpOptionElement::SelectiveAcknowledgement(a, rest) => Some((a, rest)),
            _ => None,
        })
        .collect();
    let base = next.wrapping_add(5);
    assert_eq!(
        blocks,
        vec![(
            (base.wrapping_add(100), base.wrapping_add(200)),
            [
                Some((base.wrapping_add(300), base.wrapping_add(400))),
                None,
                None
            ]
        )]
    );

    // Once the header went, the established-flow stage takes the session's packets too.
    assert!(c.w.stats().fast_path >= 3, "{}", c.w.stats().fast_path);

    // An acknowledgement of part of the header only acknowledges nothing of the client's.
    let mut f = c.rs_seg("A", RS_ISN + 5, first.wrapping_add(3), &[], b"");
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 0 });
    assert_eq!(tcp_of(&f).0.acknowledgment_number, first);
}

#[test]
fn proxy_v1_text_header() {
    let (mut c, _) = Conn::open(pp(1, true));
    let first = C_ISN.wrapping_add(1);
    let mut f = c.client_seg("AP", first, RS_ISN + 1, &[], b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 1 });
    let (_, p) = tcp_of(&f);
    let text = format!("PROXY TCP4 {CLIENT} {VIP} {CPORT} 80\r\nGET / HTTP/1.0\r\n\r\n");
    assert_eq!(String::from_utf8(p).unwrap(), text);
}

/// Server-speaks-first (SMTP, MySQL, nginx's `return`): the header goes alone on the
/// handshake-completing ACK; the client's data follows shifted; housekeeping sends the header
/// again until the real server acknowledges it.
#[test]
fn header_goes_on_the_handshake_ack_and_again_until_acknowledged() {
    let (mut c, ack) = Conn::open(pp(1, false));
    let first = C_ISN.wrapping_add(1);
    let text = format!("PROXY TCP4 {CLIENT} {VIP} {CPORT} 80\r\n");
    let d = text.len() as u32;
    let (th, p) = tcp_of(&ack);
    assert_eq!((th.sequence_number, p.as_slice()), (first, text.as_bytes()));
    assert_eq!(th.acknowledgment_number, RS_ISN + 1);
    // The client's first data: shifted, no second header.
    let mut f = c.client_seg("AP", first, RS_ISN + 1, &[], b"HELO");
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 1 });
    let (th, p) = tcp_of(&f);
    assert_eq!(
        (th.sequence_number, p.as_slice()),
        (first.wrapping_add(d), &b"HELO"[..])
    );
    // Not acknowledged for 200 ms: housekeeping sends it again, through the originate queue.
    let originated = |c: &mut Conn, t: u64| {
        c.w.housekeeping(t, 64);
        let mut out = Vec::new();
        c.w.drain_originated(t, &mut |port, frame: &[u8]| {
            // IPv4 only (the worker's gratuitous ARPs go out here too).
            if frame[12..14] == [8, 0] {
                out.push((port, frame.to_vec()));
            }
            fnat_engine::neigh::Emit::Sent
        });
        out
    };
    let t = c.t;
    assert!(
        originated(&mut c, t + 100_000_000).is_empty(),
        "not due yet"
    );
    let again = originated(&mut c, t + 300_000_000);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0, 1);
    let o = decode(&again[0].1);
    assert_eq!((o.src, o.dst), (c.lip, c.rs));
    assert_eq!((o.src_mac, o.dst_mac), (PORT1_MAC, RS1_MAC));
    let (th, p) = tcp_of(&again[0].1);
    assert_eq!((th.sequence_number, p.as_slice()), (first, text.as_bytes()));
    assert_eq!(th.acknowledgment_number, RS_ISN + 1);
    assert_eq!(c.w.stats().proxy_headers_resent, 1);
    // The server acknowledges header and data: the client sees its 4 bytes acknowledged, and
    // nothing is sent again.
    let mut f = c.rs_seg("AP", RS_ISN + 1, first.wrapping_add(d + 4), &[], b"220 ok");
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 0 });
    assert_eq!(tcp_of(&f).0.acknowledgment_number, first.wrapping_add(4));
    let t = c.t;
    assert!(originated(&mut c, t + 10_000_000_000).is_empty());
    assert_eq!(c.w.stats().proxy_headers_resent, 1);
}

#[test]
fn client_sent_header_is_refused_or_passed_on_when_insecure() {
    let client_hdr = b"PROXY TCP4 192.0.2.1 198.18.0.100 1234 80\r\nGET /\r\n";
    let first = C_ISN.wrapping_add(1);

    // Our header went on the handshake-completing ACK; the client's own is still refused.
    let (mut c, _) = Conn::open(pp(1, false));
    let mut f = c.client_seg("AP", first, RS_ISN + 1, &[], client_hdr);
    assert_eq!(c.run(&mut f), Verdict::Drop(DropReason::ProxyFromClient));
    assert_eq!(c.w.stats().drops[DropReason::ProxyFromClient as usize], 1);

    let (mut c, _) = Conn::open(pp(2, true));
    let mut f = c.client_seg("AP", first, RS_ISN + 1, &[], client_hdr);
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 1 });
    let (th, p) = tcp_of(&f);
    assert_eq!((th.sequence_number, p.as_slice()), (first, &client_hdr[..]));
    // Nothing shifted afterwards.
    let mut f = c.rs_seg("A", RS_ISN + 1, first.wrapping_add(10), &[], b"");
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 0 });
    assert_eq!(tcp_of(&f).0.acknowledgment_number, first.wrapping_add(10));
}

#[test]
fn full_size_segment_gives_up_its_tail_for_the_header() {
    let (mut c, _) = Conn::open(pp(2, true));
    let first = C_ISN.wrapping_add(1);
    let data: Vec<u8> = (0..1460u32).map(|i| i as u8).collect();
    let mut f = c.client_seg("AFP", first, RS_ISN + 1, &[], &data);
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 1 });
    let (th, p) = tcp_of(&f);
    assert_eq!(20 + th.header_len() + p.len(), 1500, "fits the MTU");
    assert!(!th.fin, "the FIN waits for the bytes given up");
    assert_eq!(&p[..28], v2_header(0x11).as_slice());
    assert_eq!(&p[28..], &data[..1460 - 28]);
    assert_eq!(c.w.stats().proxy_split, 1);
}

#[test]
fn udp_first_datagram_gets_a_v2_header() {
    let mut w = workers(1, rules_with(pp(2, false))).remove(0);
    let client = sa(CLIENT, CPORT);
    let mut f = udp(client, sa(VIP, 53), b"query-1");
    assert_eq!(run(&mut w, &mut f, S), Verdict::Transmit { port: 1 });
    let o = decode(&f);
    let mut hdr = v2_header(0x12);
    hdr[26..28].copy_from_slice(&53u16.to_be_bytes());
    assert_eq!(o.payload, [hdr.as_slice(), b"query-1"].concat());
    let mut f = udp(client, sa(VIP, 53), b"query-2");
    assert_eq!(run(&mut w, &mut f, 2 * S), Verdict::Transmit { port: 1 });
    assert_eq!(decode(&f).payload, b"query-2");
}

#[test]
fn toa_on_handshake_ack_and_first_data_only_client_option_stripped() {
    let ca = ClientAddress {
        proxy_version: 0,
        proxy_insecure: false,
        toa: true,
    };
    let (mut c, ack) = Conn::open(ca);
    let want = vec![(CPORT, CLIENT.octets())];
    let (th, _) = tcp_of(&ack);
    assert_eq!(toa_of(&th), want, "TOA on the handshake-completing ACK");
    let first = C_ISN.wrapping_add(1);
    // The client's own option 254 (a forged address) is removed, ours added.
    let forged = [254u8, 8, 0, 1, 192, 0, 2, 66];
    let mut f = seg_raw_opts(c.client, sa(VIP, 80), first, RS_ISN + 1, &forged, b"data");
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 1 });
    let (th, p) = tcp_of(&f);
    assert_eq!(toa_of(&th), want);
    assert_eq!(p, b"data");
    assert_eq!(th.sequence_number, first, "TOA shifts no sequence number");
    // Later segments: no TOA, and a client's 254 still removed.
    let mut f = seg_raw_opts(
        c.client,
        sa(VIP, 80),
        first + 4,
        RS_ISN + 1,
        &forged,
        b"more",
    );
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 1 });
    let (th, p) = tcp_of(&f);
    assert!(toa_of(&th).is_empty());
    assert_eq!(p, b"more");
    assert_eq!(c.w.stats().toa_added, 2);
    assert_eq!(
        c.w.stats().toa_stripped,
        2,
        "the two forged options, not the clean ACK"
    );
}

#[test]
fn toa_is_readable_behind_a_malformed_or_ended_option_list() {
    let ca = ClientAddress {
        proxy_version: 0,
        proxy_insecure: false,
        toa: true,
    };
    let first = C_ISN.wrapping_add(1);
    // A forged 254 whose length (10) runs past the options (found by the client_address fuzz
    // target: appended behind it, fnatd's option was swallowed into the client's), and an
    // end-of-list followed by padding.
    for opts in [
        [254u8, 10, 192, 0, 2, 66, 0, 42],
        [2u8, 4, 5, 0xb4, 0, 0, 0, 0],
    ] {
        let (mut c, _) = Conn::open(ca);
        let mut f = seg_raw_opts(c.client, sa(VIP, 80), first, RS_ISN + 1, &opts, b"data");
        assert_eq!(c.run(&mut f), Verdict::Transmit { port: 1 });
        let (th, p) = tcp_of(&f);
        // toa_of reads as a receiver does (stops at end-of-list, lengths checked).
        assert_eq!(toa_of(&th), vec![(CPORT, CLIENT.octets())], "{opts:?}");
        assert_eq!(p, b"data");
        if opts[0] == 2 {
            assert_eq!(&th.options.as_slice()[..4], &[2, 4, 5, 0xb4], "MSS kept");
        }
    }
}

#[test]
fn toa_without_room_goes_without_and_is_counted() {
    let ca = ClientAddress {
        proxy_version: 2,
        proxy_insecure: true,
        toa: true,
    };
    let (mut c, _) = Conn::open(ca);
    let first = C_ISN.wrapping_add(1);
    // 40 bytes of options (NOPs and one SACK-permitted): no room for 8 more.
    let mut opts = [1u8; 40];
    opts[0] = 4;
    opts[1] = 2;
    let mut f = seg_raw_opts(c.client, sa(VIP, 80), first, RS_ISN + 1, &opts, b"x");
    assert_eq!(c.run(&mut f), Verdict::Transmit { port: 1 });
    let (th, p) = tcp_of(&f);
    assert!(toa_of(&th).is_empty());
    assert_eq!(&p[28..], b"x", "the Proxy Protocol header still goes");
    assert_eq!(c.w.stats().toa_no_room, 1);
}

mod arbitrary {
    use super::*;
    use proptest::prelude::*;

    /// Segment: (from the client, flag letters S A F R P as bits, seq, ack, raw options,
    /// payload length).
    type Seg = (bool, u8, u32, u32, Vec<u8>, usize);

    fn segment() -> impl Strategy<Value = Seg> {
        (
            any::<bool>(),
            0u8..32,
            prop_oneof![Just(C_ISN.wrapping_add(1)), any::<u32>()],
            any::<u32>(),
            prop::collection::vec(any::<u8>(), 0..=10).prop_map(|v| {
                // 0..=40 bytes: whole words, arbitrary (often malformed) options.
                v.into_iter()
                    .flat_map(|b| [b, b.wrapping_mul(7), 254, 8])
                    .collect()
            }),
            prop_oneof![Just(0usize), 1usize..64, Just(1460usize)],
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        /// Arbitrary segments (options malformed or not, any numbers and flags, full-size
        /// payloads) on a Proxy Protocol v1 + TOA session never panic, and every frame that
        /// leaves has valid checksums (`decode`) and, if it grew, fits the port MTU.
        #[test]
        fn arbitrary_segments_leave_valid(segs in prop::collection::vec(segment(), 1..10)) {
            let ca = ClientAddress { proxy_version: 1, proxy_insecure: false, toa: true };
            let (mut c, _) = Conn::open(ca);
            for (from_client, bits, seq, ack, opts, len) in segs {
                let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let (src, dst) = if from_client { (c.client, sa(VIP, 80)) } else { (c.rs, c.lip) };
                let (_, our_mac, peer_mac) = side_of(dst);
                let mut b = PacketBuilder::ethernet2(peer_mac, our_mac)
                    .ipv4(src.ip().octets(), dst.ip().octets(), 64)
                    .tcp(src.port(), dst.port(), seq, 65535);
                if bits & 1 != 0 { b = b.syn(); }
                if bits & 2 != 0 { b = b.ack(ack); }
                if bits & 4 != 0 { b = b.fin(); }
                if bits & 8 != 0 { b = b.rst(); }
                if bits & 16 != 0 { b = b.psh(); }
                b = b.options_raw(&opts).unwrap();
                let mut f = Vec::new();
                b.write(&mut f, &payload).unwrap();
                let in_len = f.len() - 14;
                if let Verdict::Transmit { .. } = c.run(&mut f) {
                    let _ = decode(&f);
                    // What grew fits the MTU (what came in larger is not fnatd's to cut).
                    prop_assert!(f.len() - 14 <= in_len.max(1500));
                }
            }
        }
    }
}
