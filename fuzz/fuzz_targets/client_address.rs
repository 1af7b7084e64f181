//! Arbitrary TCP segments, both ways, on a live full-NAT session of a service that tells the
//! real server the client's address (Proxy Protocol v1/v2, `*-insecure`, TOA): the sequence
//! shifting, the header insertion (and its MTU split), the insecure header pass-through, TOA
//! insertion and the stripping of a client's own option 254.
//!
//! Input: byte 0 chooses the service's options (bits 0-1: Proxy Protocol off/v1/v2, bit 2:
//! insecure, bit 3: TOA). Then records `[ctl u8][seq u32][ack u32][opt words u8][4 × words
//! bytes][len u16]`: ctl bit 0: from the client (else from the real server); bits 1-5: SYN,
//! ACK, FIN, RST, PSH; bit 6: seq is an offset (mod 4096) from the sender's first sequence
//! number (so the first-data paths are reached), else raw; bit 7: the payload starts with a
//! Proxy Protocol header (v1 text or v2 signature, from the seq's low bit). `len` is capped at
//! 1460; the payload bytes are a counter.
//!
//! After every segment: no panic (overflow checks on); a frame that leaves has valid IPv4 and
//! TCP checksums (etherparse, `decode`), is no longer than what came in or the port MTU; toward
//! the real server of a TOA service, every option 254 in it is fnatd's (the client's own
//! address and port), never one the client sent; the worker's books balance.
#![no_main]

#[path = "../../dataplane/engine/tests/common/mod.rs"]
mod common;

use common::*;
use etherparse::{PacketBuilder, PacketHeaders, TransportHeader};
use fnat_engine::rules::ClientAddress;
use fnat_engine::{Verdict, Worker};
use libfuzzer_sys::fuzz_target;

const C_ISN: u32 = 0xFFFF_FF00;
const RS_ISN: u32 = 7000;
const CPORT: u16 = 40000;

fn frame(
    src: std::net::SocketAddrV4,
    dst: std::net::SocketAddrV4,
    bits: u8,
    seq: u32,
    ack: u32,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let (_, our_mac, peer_mac) = side_of(dst);
    let mut b = PacketBuilder::ethernet2(peer_mac, our_mac)
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .tcp(src.port(), dst.port(), seq, 65535);
    if bits & 1 != 0 {
        b = b.syn();
    }
    if bits & 2 != 0 {
        b = b.ack(ack);
    }
    if bits & 4 != 0 {
        b = b.fin();
    }
    if bits & 8 != 0 {
        b = b.rst();
    }
    if bits & 16 != 0 {
        b = b.psh();
    }
    b = b.options_raw(opts).expect("whole words, at most 40 bytes");
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("etherparse writes");
    out
}

/// Every option 254 in the raw TCP options: (port, address) when 8 bytes long.
fn toa_options(opts: &[u8]) -> Vec<Option<(u16, [u8; 4])>> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let Some(&len) = opts.get(i + 1) else { break };
                let len = usize::from(len);
                if len < 2 || i + len > opts.len() {
                    break;
                }
                if kind == 254 {
                    found.push((len == 8).then(|| {
                        (
                            u16::from_be_bytes([opts[i + 2], opts[i + 3]]),
                            [opts[i + 4], opts[i + 5], opts[i + 6], opts[i + 7]],
                        )
                    }));
                }
                i += len;
            }
        }
    }
    found
}

fn check_books(w: &Worker) {
    let s = w.stats();
    assert_eq!(
        s.received + s.originated,
        s.transmitted + s.redirected + s.dropped() + s.consumed + s.held + s.to_kernel,
        "books"
    );
}

fn take<const N: usize>(data: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = data.split_first_chunk::<N>()?;
    *data = rest;
    Some(*head)
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, mut data)) = input.split_first() else {
        return;
    };
    let ca = ClientAddress {
        proxy_version: [0, 1, 2, 2][usize::from(mode & 3)],
        proxy_insecure: mode & 4 != 0,
        toa: mode & 8 != 0,
    };
    let mut r = rules(256, 1024, 2047);
    for s in &mut r.services {
        s.options.client_address = ca;
    }
    let mut w = workers(1, r).remove(0);
    let client = sa(CLIENT, CPORT);
    let vip = sa(VIP, 80);
    let mut t = 1_000 * S;

    // The handshake.
    let mut f = frame(client, vip, 1, C_ISN, 0, &[], b"");
    assert_eq!(run(&mut w, &mut f, t), Verdict::Transmit { port: 1 });
    let o = decode(&f);
    let (lip, rs) = (o.src, o.dst);
    let mut f = frame(rs, lip, 3, RS_ISN, C_ISN.wrapping_add(1), &[], b"");
    t += 1000;
    assert_eq!(run(&mut w, &mut f, t), Verdict::Transmit { port: 0 });

    while let Some([ctl]) = take::<1>(&mut data) {
        let (Some(seq), Some(ack), Some([words])) = (
            take::<4>(&mut data),
            take::<4>(&mut data),
            take::<1>(&mut data),
        ) else {
            break;
        };
        let (seq, ack) = (u32::from_be_bytes(seq), u32::from_be_bytes(ack));
        let words = usize::from(words % 11);
        let Some(opts) = data.get(..4 * words) else {
            break;
        };
        data = &data[4 * words..];
        let Some(len) = take::<2>(&mut data) else {
            break;
        };
        let len = usize::from(u16::from_be_bytes(len) % 1461);
        let from_client = ctl & 1 != 0;
        let bits = (ctl >> 1) & 31;
        let seq = if ctl & 64 != 0 {
            let first = if from_client {
                C_ISN.wrapping_add(1)
            } else {
                RS_ISN + 1
            };
            first.wrapping_add(seq % 4096)
        } else {
            seq
        };
        let mut payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        if ctl & 128 != 0 {
            let hdr: &[u8] = if seq & 1 == 0 {
                b"PROXY TCP4 192.0.2.1 198.18.0.100 1234 80\r\n"
            } else {
                b"\r\n\r\n\0\r\nQUIT\n\x21\x11\0\x0c"
            };
            payload.splice(0..hdr.len().min(len), hdr.iter().copied());
        }
        let (src, dst) = if from_client { (client, vip) } else { (rs, lip) };
        let mut f = frame(src, dst, bits, seq, ack, opts, &payload);
        let in_len = f.len();
        t += 1000;
        let v = run(&mut w, &mut f, t);
        check_books(&w);
        if let Verdict::Transmit { port } = v {
            let _ = decode(&f);
            assert!(f.len() <= in_len.max(14 + 1500), "grew past the MTU");
            if port == 1 && ca.toa {
                let h = PacketHeaders::from_ethernet_slice(&f).expect("decoded above");
                if let Some(TransportHeader::Tcp(th)) = h.transport {
                    for toa in toa_options(th.options.as_slice()) {
                        assert_eq!(
                            toa,
                            Some((CPORT, CLIENT.octets())),
                            "an option 254 toward the real server is fnatd's"
                        );
                    }
                }
            }
        }
    }
});
