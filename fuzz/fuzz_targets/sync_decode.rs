//! Arbitrary bytes into the session sync decoder (crate fnat-sync): a datagram from the sync
//! group is untrusted. It must decode to a message or an error, never panic; every
//! connection it accepts re-encodes to an entry that decodes back to itself.
#![no_main]

use fnat_sync::{decode, Encoder, Message, MAX_MESSAGE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Message::Conns { syncid, conns }) = decode(data) {
        let mut e = Encoder::new(syncid, MAX_MESSAGE);
        let ok: Vec<_> = conns.into_iter().flatten().collect();
        for c in &ok {
            assert!(e.push(c), "an accepted entry fits a fresh maximal message");
        }
        match decode(e.message()) {
            Ok(Message::Conns { conns, .. }) => {
                let again: Vec<_> = conns.into_iter().flatten().collect();
                assert_eq!(again, ok, "re-encoded entries decode to themselves");
            }
            other => panic!("re-encoded message: {other:?}"),
        }
    }
});
