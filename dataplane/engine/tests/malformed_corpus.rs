//! The malformed-packet corpus against one worker's engine: for every case, no panic, the
//! expected verdict, exactly one counter moved (the expected drop reason, or `transmitted`),
//! and the session set up beforehand with a real handshake unchanged and still forwarding
//! correctly in both directions (checked with etherparse, checksums included).

mod common;
mod malformed_support;

use std::net::Ipv4Addr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use common::*;
use fnat_engine::session::{ConnState, Session};
use fnat_engine::{DropReason, Verdict, Worker, WorkerStats};
use malformed_support::{Case, Expect, Lab, Side};

const CPORT: u16 = 40000;

/// A worker with an ESTABLISHED session CLIENT:40000 → VIP:80 (handshake done), and the lab
/// describing it.
fn worker_with_session(rules: fnat_engine::Rules, t: u64) -> (Worker, Lab) {
    let mut w = Worker::new(0, 1, Arc::new(rules));
    let client = sa(CLIENT, CPORT);
    let mut f = tcp(client, sa(VIP, 80), "S", b"");
    assert_eq!(run(&mut w, &mut f, t), Verdict::Transmit { port: 1 });
    let o = decode(&f);
    let (lip, rs) = (o.src, o.dst);
    let mut f = tcp(rs, lip, "SA", b"");
    assert_eq!(run(&mut w, &mut f, t + 1), Verdict::Transmit { port: 0 });
    let mut f = tcp(client, sa(VIP, 80), "A", b"");
    assert_eq!(run(&mut w, &mut f, t + 2), Verdict::Transmit { port: 1 });
    let lab = Lab {
        wan_mac: PORT0_MAC,
        lan_mac: PORT1_MAC,
        router_mac: ROUTER_MAC,
        rs_mac: rs_mac(*rs.ip()),
        vip: VIP,
        vport: 80,
        udp_vport: 53,
        own_ip: PORT0_IP,
        lip: *lip.ip(),
        lport: lip.port(),
        free_lport: lip.port() + 1000,
        rs: *rs.ip(),
        rport: rs.port(),
        client: CLIENT,
        cport: CPORT,
        stranger: Ipv4Addr::new(192, 0, 2, 99),
    };
    assert_eq!(session(&w).0.state, ConnState::Established);
    (w, lab)
}

/// The live session (CLIENT:40000) and its deadline.
fn session(w: &Worker) -> (Session, u64) {
    w.fullnat()
        .sessions()
        .find(|(_, s, _)| s.client_port == CPORT && s.client_ip == u32::from(CLIENT))
        .map(|(_, s, d)| (*s, d))
        .expect("the live session")
}

/// Data both ways through the live session, checked with etherparse.
fn probe(w: &mut Worker, lab: &Lab, tag: &str, now: u64) {
    let payload = format!("probe after {tag}");
    let mut f = lab.client_data(payload.as_bytes());
    assert_eq!(
        w.process(0, &mut f, now),
        Verdict::Transmit { port: 1 },
        "after {tag}: client data no longer forwarded"
    );
    let o = decode(&f);
    assert_eq!(
        (o.src, o.dst),
        (sa(lab.lip, lab.lport), sa(lab.rs, lab.rport)),
        "after {tag}: request rewritten wrongly"
    );
    assert_eq!(
        (o.src_mac, o.dst_mac),
        (PORT1_MAC, lab.rs_mac),
        "after {tag}"
    );
    assert_eq!(o.payload, payload.as_bytes(), "after {tag}");

    let mut f = lab.rs_data(payload.as_bytes());
    assert_eq!(
        w.process(1, &mut f, now + 1),
        Verdict::Transmit { port: 0 },
        "after {tag}: reply no longer forwarded"
    );
    let o = decode(&f);
    assert_eq!(
        (o.src, o.dst),
        (sa(VIP, 80), sa(CLIENT, CPORT)),
        "after {tag}: reply rewritten wrongly"
    );
    assert_eq!(
        (o.src_mac, o.dst_mac),
        (PORT0_MAC, ROUTER_MAC),
        "after {tag}"
    );
    assert_eq!(o.payload, payload.as_bytes(), "after {tag}");
    assert_eq!(session(w).0.state, ConnState::Established, "after {tag}");
}

/// Checks that exactly the expected counter moved by one.
fn check_counters(case: &Case, before: &WorkerStats, after: &WorkerStats) {
    let name = &case.name;
    assert_eq!(after.received, before.received + 1, "{name}: received");
    assert_eq!(after.redirected, before.redirected, "{name}: redirected");
    let moved: Vec<(DropReason, u64)> = DropReason::ALL
        .iter()
        .map(|&r| (r, after.drops[r as usize] - before.drops[r as usize]))
        .filter(|&(_, n)| n != 0)
        .collect();
    match case.expect {
        Expect::Drop(reason) => {
            assert_eq!(moved, vec![(reason, 1)], "{name}: drop counters moved");
            assert_eq!(after.transmitted, before.transmitted, "{name}: transmitted");
            assert_eq!(after.sessions, before.sessions, "{name}: sessions");
            assert_eq!(
                after.sessions_created, before.sessions_created,
                "{name}: sessions created"
            );
        }
        Expect::Forward(_) => {
            assert!(moved.is_empty(), "{name}: drop counters moved: {moved:?}");
            assert_eq!(
                after.transmitted,
                before.transmitted + 1,
                "{name}: transmitted"
            );
        }
    }
}

/// Runs one case on `w` at `now`: verdict, counters, and (for drops) the session untouched.
fn run_case(w: &mut Worker, case: &Case, now: u64) {
    let before = w.stats().clone();
    let live_before = session(w);
    let mut frame = case.frame.clone();
    let verdict = catch_unwind(AssertUnwindSafe(|| {
        w.process(case.side.port(), &mut frame, now)
    }))
    .unwrap_or_else(|_| panic!("{}: the engine panicked", case.name));
    let expected = match case.expect {
        Expect::Drop(reason) => Verdict::Drop(reason),
        Expect::Forward(side) => Verdict::Transmit { port: side.port() },
    };
    assert_eq!(verdict, expected, "{}: verdict", case.name);
    check_counters(case, &before, w.stats());
    match case.expect {
        Expect::Drop(_) => {
            assert_eq!(frame.len(), case.frame.len(), "{}: length", case.name);
            assert_eq!(
                session(w),
                live_before,
                "{}: a dropped frame changed the live session",
                case.name
            );
        }
        // What is forwarded must be a well-formed frame with valid checksums.
        Expect::Forward(_) => {
            let _ = decode(&frame);
        }
    }
}

#[test]
fn every_case_has_its_verdict_and_counter_and_sessions_survive() {
    let t = 1_000 * S;
    let (mut w, lab) = worker_with_session(rules(4096, 1024, 65535), t);
    let cases = malformed_support::cases(&lab);
    assert!(cases.len() >= 80, "the corpus has {} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    for (i, case) in cases.iter().enumerate() {
        assert!(names.insert(case.name.clone()), "{} twice", case.name);
        let now = t + (i as u64 + 1) * 10_000_000;
        run_case(&mut w, case, now);
        probe(&mut w, &lab, &case.name, now + 1_000);
    }
    // Every engine-level reason is exercised by at least one case.
    for reason in malformed_support::ENGINE_REASONS {
        assert!(
            cases.iter().any(|c| c.expect == Expect::Drop(*reason)),
            "no corpus case for {}",
            reason.name()
        );
    }
    let s = w.stats();
    assert_eq!(
        s.received + s.originated,
        s.transmitted + s.redirected + s.dropped() + s.consumed + s.held
    );
}

#[test]
fn the_corpus_twice_in_a_row_gives_the_same_drops() {
    // Replaying everything again (sessions created by the first pass now exist) must not
    // panic, and every case expected to drop still drops for the same reason.
    let t = 1_000 * S;
    let (mut w, lab) = worker_with_session(rules(4096, 1024, 65535), t);
    let cases = malformed_support::cases(&lab);
    for pass in 0..2u64 {
        for (i, case) in cases.iter().enumerate() {
            let now = t + pass * S + (i as u64 + 1) * 1_000_000;
            let mut frame = case.frame.clone();
            let v = w.process(case.side.port(), &mut frame, now);
            if let Expect::Drop(reason) = case.expect {
                assert_eq!(v, Verdict::Drop(reason), "pass {pass}: {}", case.name);
            }
        }
        probe(&mut w, &lab, "a whole pass", t + pass * S + 900_000_000);
    }
}

#[test]
fn ip_options_are_dropped_and_counted_when_the_rules_say_so() {
    let t = 1_000 * S;
    let mut r = rules(1024, 1024, 65535);
    r.drop_ip_options = true;
    let (mut w, lab) = worker_with_session(r, t);
    let cases = [
        Case {
            name: "ip/options_syn_dropped".into(),
            side: Side::Wan,
            frame: malformed_support::with_ip_options(&lab.new_syn(61001)),
            expect: Expect::Drop(DropReason::IpOptions),
        },
        Case {
            name: "ip/options_on_session_data_dropped".into(),
            side: Side::Wan,
            frame: malformed_support::with_ip_options(&lab.client_data(b"opts")),
            expect: Expect::Drop(DropReason::IpOptions),
        },
        Case {
            name: "ip/options_on_session_reply_dropped".into(),
            side: Side::Lan,
            frame: malformed_support::with_ip_options(&lab.rs_data(b"opts")),
            expect: Expect::Drop(DropReason::IpOptions),
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let now = t + (i as u64 + 1) * S;
        run_case(&mut w, case, now);
        probe(&mut w, &lab, &case.name, now + 1);
    }
    assert_eq!(w.stats().ip_options, 3, "options seen are counted too");
}

#[test]
fn corrupting_the_sessions_own_frames_never_panics_and_never_breaks_it() {
    // Every single-byte corruption and every truncation of the live session's own frames (both
    // directions, and a SYN of a new flow): no panic, the books balance, and afterwards the
    // session still forwards correctly. State changes a corrupted byte may cause (FIN/RST
    // flags) are allowed; rewriting must stay exact.
    let t = 1_000 * S;
    let (mut w, lab) = worker_with_session(rules(1 << 16, 1024, 65535), t);
    let originals = [
        (Side::Wan, lab.client_data(b"0123456789")),
        (Side::Lan, lab.rs_data(b"abcdefghij")),
        (Side::Wan, lab.new_syn(62000)),
        (Side::Lan, lab.rs_unreachable(&lab.quote_to_rs()[..28])),
    ];
    let mut now = t + S;
    let mut n = 0u64;
    for (side, original) in &originals {
        let variants = (0..original.len())
            .flat_map(|i| {
                [0x01u8, 0x80, 0xFF].into_iter().map(move |x| {
                    let mut f = original.clone();
                    f[i] ^= x;
                    f
                })
            })
            .chain((0..original.len()).map(|len| original[..len].to_vec()));
        for mut f in variants {
            now += 1_000;
            n += 1;
            let _ = catch_unwind(AssertUnwindSafe(|| w.process(side.port(), &mut f, now)))
                .unwrap_or_else(|_| panic!("panic on a variant of a {side:?} frame"));
        }
    }
    let s = w.stats();
    assert_eq!(s.received, n + 3);
    assert_eq!(
        s.received + s.originated,
        s.transmitted + s.redirected + s.dropped() + s.consumed + s.held
    );
    // Corrupted flags may have moved the session out of ESTABLISHED: a fresh handshake-free
    // check of the rewrite only.
    let payload = b"after corruption";
    let mut f = lab.client_data(payload);
    assert_eq!(w.process(0, &mut f, now + 1), Verdict::Transmit { port: 1 });
    let o = decode(&f);
    assert_eq!(
        (o.src, o.dst),
        (sa(lab.lip, lab.lport), sa(lab.rs, lab.rport))
    );
    let mut f = lab.rs_data(payload);
    assert_eq!(w.process(1, &mut f, now + 2), Verdict::Transmit { port: 0 });
    let o = decode(&f);
    assert_eq!((o.src, o.dst), (sa(VIP, 80), sa(CLIENT, CPORT)));
}

/// The seed corpus of the `engine_process` fuzz target (fuzz/ at the top) is this corpus,
/// one record `[ctl][len u16 BE][frame]` per case followed by a frame of the live session (see
/// that target's docs). This test fails when the committed seeds drift from the corpus;
/// `FNAT_WRITE_FUZZ_SEEDS=1 cargo test -p fnat-engine --test malformed_corpus fuzz_seeds`
/// rewrites them.
#[test]
fn fuzz_seeds_match_the_corpus() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/engine_process");
    let write = std::env::var_os("FNAT_WRITE_FUZZ_SEEDS").is_some();
    // The fuzz target's first session: CLIENT:40000 on worker 0, lport 1024, RS1:8080.
    let (_, lab) = worker_with_session(rules(256, 1024, 2047), 1_000 * S);
    let mut expected = std::collections::BTreeMap::new();
    for case in malformed_support::cases(&lab) {
        if case.frame.len() > 4000 {
            continue; // beyond the smoke run's -max_len
        }
        let mut seed = vec![case.side.port() as u8];
        seed.extend_from_slice(&(case.frame.len() as u16).to_be_bytes());
        seed.extend_from_slice(&case.frame);
        // Then a frame of the live session, so that seeds also walk the forwarding path.
        let probe = lab.client_data(b"after");
        seed.push(0);
        seed.extend_from_slice(&(probe.len() as u16).to_be_bytes());
        seed.extend_from_slice(&probe);
        expected.insert(case.name.replace('/', "-"), seed);
    }
    if write {
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        for (name, seed) in &expected {
            std::fs::write(dir.join(name), seed).unwrap();
        }
    }
    let mut committed = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("fuzz seed directory") {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        committed.insert(name, std::fs::read(entry.path()).unwrap());
    }
    let stale: Vec<&String> = committed
        .keys()
        .filter(|k| expected.get(*k) != committed.get(*k))
        .chain(expected.keys().filter(|k| !committed.contains_key(*k)))
        .collect();
    assert!(
        stale.is_empty(),
        "fuzz seeds out of date ({stale:?}): rerun with FNAT_WRITE_FUZZ_SEEDS=1"
    );
}
