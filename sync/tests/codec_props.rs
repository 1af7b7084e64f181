//! Property tests of the sync codec: any bytes decode without panicking; any connection
//! list round-trips through messages of any maxlen; a message never exceeds its maxlen.

use std::net::{Ipv4Addr, SocketAddrV4};

use fnat_sync::{decode, Conn, Encoder, FullNat, Message, F_TEMPLATE, HEADER_LEN};
use proptest::prelude::*;

fn addr() -> impl Strategy<Value = SocketAddrV4> {
    (any::<u32>(), any::<u16>()).prop_map(|(a, p)| SocketAddrV4::new(Ipv4Addr::from(a), p))
}

fn conn() -> impl Strategy<Value = Conn> {
    (
        prop_oneof![Just(6u8), Just(17u8)],
        0u32..5,
        any::<bool>(),
        addr(),
        addr(),
        addr(),
        any::<u32>(),
        any::<u32>(),
        proptest::option::of((
            any::<u32>(),
            any::<u16>(),
            any::<(u16, u8)>(),
            any::<[u32; 3]>(),
        )),
    )
        .prop_map(
            |(protocol, fwd, template, client, vip, dest, fwmark, timeout_s, f)| {
                let flags = fwd | if template { F_TEMPLATE } else { 0 };
                let state = if protocol == 6 {
                    (timeout_s % 11) as u16
                } else {
                    0
                };
                Conn {
                    protocol,
                    flags,
                    state,
                    client,
                    vip,
                    dest,
                    fwmark,
                    timeout_s,
                    fullnat: f.map(|(lip, lport, (adjust_flags, rs_wscale), s)| FullNat {
                        lip: Ipv4Addr::from(lip),
                        lport,
                        adjust_flags,
                        rs_wscale,
                        first_seq: s[0],
                        in_delta: s[1],
                        out_delta: s[2],
                    }),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn mutated_messages_decode_without_panic(
        conns in proptest::collection::vec(conn(), 1..10),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let mut e = Encoder::new(1, 1472);
        for c in &conns {
            if !e.push(c) { break; }
        }
        let mut m = e.message().to_vec();
        for (at, v) in flips {
            let n = m.len();
            m[at % n] = v;
        }
        let _ = decode(&m);
    }

    #[test]
    fn round_trip(conns in proptest::collection::vec(conn(), 0..80), maxlen in 100usize..3000, syncid: u8) {
        let mut e = Encoder::new(syncid, maxlen);
        let mut out = Vec::new();
        let flush = |e: &mut Encoder, out: &mut Vec<Conn>| {
            let m = e.message();
            prop_assert!(m.len() <= e.maxlen());
            match decode(m) {
                Ok(Message::Conns { syncid: s, conns }) => {
                    prop_assert_eq!(s, syncid);
                    for c in conns { out.push(c.unwrap()); }
                }
                other => prop_assert!(false, "{:?}", other),
            }
            e.clear();
            Ok(())
        };
        for c in &conns {
            if !e.push(c) {
                flush(&mut e, &mut out)?;
                prop_assert!(e.push(c));
            }
        }
        if e.message().len() > HEADER_LEN { flush(&mut e, &mut out)?; }
        prop_assert_eq!(out, conns);
    }
}
