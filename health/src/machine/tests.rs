//! Timelines of keepalived's state machine: outcomes fed in order, with the delays it asks
//! for, the log lines and the overlay checked at each step.

use super::*;
use crate::spec::RealSpec;
use fnat_keepalived::lvs::Timing;
use fnat_keepalived::Location;
use std::net::Ipv4Addr;

fn timing(retry: u32, alpha: bool, inhibit: bool) -> Timing {
    Timing {
        connect_timeout: Duration::from_secs(5),
        retry,
        delay_before_retry: Duration::from_secs(3),
        delay_loop: Duration::from_secs(6),
        warmup: None,
        alpha,
        inhibit_on_failure: inhibit,
    }
}

fn checker(kind: CheckerKind, t: Timing) -> Checker {
    Checker {
        at: Location {
            file: std::sync::Arc::new("t.conf".into()),
            line: 1,
        },
        kind,
        connect_ip: None,
        connect_port: None,
        bindto: None,
        bind_port: None,
        timing: t,
    }
}

fn real(last: u8, weight: u32, checkers: Vec<Checker>) -> RealSpec {
    RealSpec {
        addr: SocketAddrV4::new(Ipv4Addr::new(198, 19, 1, last), 80),
        weight,
        inhibit: checkers.iter().any(|c| c.timing.inhibit_on_failure),
        notify_up: Some(format!("/bin/up {last}")),
        notify_down: Some(format!("/bin/down {last}")),
        checkers,
    }
}

fn service(reals: Vec<RealSpec>) -> ServiceSpec {
    ServiceSpec {
        addr: ServiceAddr::tcp(Ipv4Addr::new(198, 18, 10, 100), 80),
        quorum: 1,
        hysteresis: 0,
        quorum_up: None,
        quorum_down: None,
        omega: false,
        sorry: None,
        sorry_inhibit: false,
        reals,
    }
}

fn down() -> Outcome {
    Outcome::Down {
        reason: "connect refused".into(),
        log: "TCP connection to [198.19.1.11]:tcp:80 failed.".into(),
    }
}

fn logs(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Log(l) => Some(l.as_str()),
            Event::Run(_) | Event::Fifo(_) => None,
        })
        .collect()
}

fn fifo(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Fifo(l) => Some(l.as_str()),
            _ => None,
        })
        .collect()
}

fn runs(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Run(s) => Some(s.as_str()),
            Event::Log(_) | Event::Fifo(_) => None,
        })
        .collect()
}

fn key(last: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(198, 19, 1, last), 80)
}

const T0: SystemTime = SystemTime::UNIX_EPOCH;

/// retry 3: three failures are retried `delay_before_retry` apart, the fourth takes the
/// server out; the next rounds wait `delay_loop`; one success brings it back.
#[test]
fn retry_plus_one_failures_take_a_server_out_one_success_brings_it_back() {
    let (mut m, start) = ServiceMachine::new(service(vec![
        real(
            11,
            100,
            vec![checker(CheckerKind::Tcp, timing(3, false, false))],
        ),
        real(
            12,
            100,
            vec![checker(CheckerKind::Tcp, timing(3, false, false))],
        ),
    ]));
    assert!(start.is_empty(), "{start:?}");
    assert!(m.overlay().is_empty());
    let (d, e) = m.record(0, 0, Outcome::up(), T0);
    assert_eq!((d, e.len()), (Duration::from_secs(6), 0));
    for i in 1..=3 {
        let (d, e) = m.record(0, 0, down(), T0);
        assert_eq!(d, Duration::from_secs(3), "retry {i}");
        assert_eq!(logs(&e), ["TCP connection to [198.19.1.11]:tcp:80 failed."]);
        assert!(m.real_up(0), "still up after {i} failures");
        assert_eq!(m.states[0][0].consecutive_failures, i);
    }
    let (d, e) = m.record(0, 0, down(), T0 + Duration::from_secs(30));
    assert_eq!(d, Duration::from_secs(6));
    assert_eq!(
        logs(&e),
        [
            "TCP connection to [198.19.1.11]:tcp:80 failed.",
            "Check on service [198.19.1.11]:tcp:80 failed after 3 retries.",
            "Removing service [198.19.1.11]:tcp:80 from VS [198.18.10.100]:tcp:80",
        ]
    );
    assert_eq!(runs(&e), ["/bin/down 11"]);
    assert_eq!(
        fifo(&e),
        ["RS [198.19.1.11]:tcp:80 [198.18.10.100]:tcp:80 DOWN"]
    );
    assert!(!m.real_up(0));
    assert_eq!(
        m.states[0][0].last_transition,
        Some(T0 + Duration::from_secs(30))
    );
    assert_eq!(m.overlay().removed, [key(11)]);
    // Down: further failures are not retried, nor logged again.
    let (d, e) = m.record(0, 0, down(), T0);
    assert_eq!((d, e.len()), (Duration::from_secs(6), 0));
    let (d, e) = m.record(0, 0, Outcome::up(), T0);
    assert_eq!(d, Duration::from_secs(6));
    assert_eq!(
        logs(&e),
        [
            "TCP_CHECK on service [198.19.1.11]:tcp:80 success.",
            "Adding service [198.19.1.11]:tcp:80 to VS [198.18.10.100]:tcp:80"
        ]
    );
    assert_eq!(runs(&e), ["/bin/up 11"]);
    assert!(m.overlay().is_empty());
}

/// A success in the middle of a round of retries starts the count again.
#[test]
fn a_success_between_failures_resets_the_retries() {
    let (mut m, _) = ServiceMachine::new(service(vec![real(
        11,
        1,
        vec![checker(CheckerKind::Tcp, timing(1, false, false))],
    )]));
    m.record(0, 0, down(), T0);
    m.record(0, 0, Outcome::up(), T0);
    m.record(0, 0, down(), T0);
    assert!(m.real_up(0));
    m.record(0, 0, down(), T0);
    assert!(!m.real_up(0));
}

/// With alpha a server starts down and joins at its first success; inhibit keeps a down
/// server at weight 0 instead of removing it.
#[test]
fn alpha_starts_down_and_inhibit_gives_weight_zero() {
    let (mut m, start) = ServiceMachine::new(service(vec![
        real(
            11,
            5,
            vec![checker(CheckerKind::Tcp, timing(0, true, true))],
        ),
        real(
            12,
            5,
            vec![checker(CheckerKind::Tcp, timing(0, false, false))],
        ),
    ]));
    assert!(start.is_empty(), "quorum holds with .12: {start:?}");
    assert_eq!(m.overlay().weights, [(key(11), 0)]);
    assert!(m.overlay().removed.is_empty());
    let (_, e) = m.record(0, 0, Outcome::up(), T0);
    assert_eq!(
        logs(&e)[1],
        "Enabling service [198.19.1.11]:tcp:80 to VS [198.18.10.100]:tcp:80"
    );
    assert!(m.overlay().is_empty());
    let (_, e) = m.record(0, 0, down(), T0);
    assert_eq!(
        logs(&e)[2],
        "Disabling service [198.19.1.11]:tcp:80 from VS [198.18.10.100]:tcp:80"
    );
    assert_eq!(m.overlay().weights, [(key(11), 0)]);
}

/// Several checkers: the server is down while any of them fails.
#[test]
fn a_server_is_down_while_any_checker_fails() {
    let misc = CheckerKind::Misc {
        path: "/bin/true".into(),
        timeout: None,
        dynamic: false,
    };
    let (mut m, _) = ServiceMachine::new(service(vec![real(
        11,
        1,
        vec![
            checker(CheckerKind::Tcp, timing(0, false, false)),
            checker(misc, timing(0, false, false)),
        ],
    )]));
    m.record(0, 1, down(), T0);
    assert!(!m.real_up(0));
    m.record(0, 0, Outcome::up(), T0);
    assert!(!m.real_up(0), "the MISC_CHECK still fails");
    m.record(0, 1, Outcome::up(), T0);
    assert!(m.real_up(0));
}

/// misc_dynamic: exit status − 2 becomes the live weight; exit 0 leaves it.
#[test]
fn misc_dynamic_sets_the_weight() {
    let misc = CheckerKind::Misc {
        path: "/bin/w".into(),
        timeout: None,
        dynamic: true,
    };
    let (mut m, _) = ServiceMachine::new(service(vec![real(
        11,
        10,
        vec![checker(misc, timing(0, false, false))],
    )]));
    let (_, e) = m.record(0, 0, Outcome::Up { weight: Some(3) }, T0);
    assert_eq!(
        logs(&e),
        ["Changing weight from 10 to 3 for [198.19.1.11]:tcp:80 of VS [198.18.10.100]:tcp:80"]
    );
    assert_eq!(m.overlay().weights, [(key(11), 3)]);
    m.record(0, 0, Outcome::up(), T0);
    assert_eq!(
        m.overlay().weights,
        [(key(11), 3)],
        "exit 0 keeps the weight"
    );
}

/// Quorum 150 with hysteresis 50 over two reals of 100: lost below 100, gained back at 200;
/// without it the sorry server replaces every real server; scripts run.
#[test]
fn quorum_loss_swaps_in_the_sorry_server_with_hysteresis() {
    let mut spec = service(vec![
        real(
            11,
            100,
            vec![checker(CheckerKind::Tcp, timing(0, false, false))],
        ),
        real(
            12,
            100,
            vec![checker(CheckerKind::Tcp, timing(0, false, false))],
        ),
    ]);
    spec.quorum = 150;
    spec.hysteresis = 50;
    spec.sorry = Some(Real::new(Ipv4Addr::new(198, 19, 1, 99), 80, 1));
    spec.quorum_up = Some("/bin/qup".into());
    spec.quorum_down = Some("/bin/qdown".into());
    let (mut m, _) = ServiceMachine::new(spec);
    // 100 alive: 100 >= 150 - 50, the quorum holds.
    m.record(0, 0, down(), T0);
    assert!(m.quorum_up);
    assert_eq!(m.overlay().removed, [key(11)]);
    let (_, e) = m.record(1, 0, down(), T0);
    assert!(!m.quorum_up);
    assert_eq!(
        logs(&e)[2..],
        [
            "Removing service [198.19.1.12]:tcp:80 from VS [198.18.10.100]:tcp:80",
            "Lost quorum 150-50=100 > 0 for VS [198.18.10.100]:tcp:80",
            "Adding sorry server [198.19.1.99]:tcp:80 to VS [198.18.10.100]:tcp:80",
            "Removing alive servers from the pool for VS [198.18.10.100]:tcp:80",
        ]
    );
    assert!(runs(&e).contains(&"/bin/qdown"));
    assert_eq!(
        fifo(&e),
        [
            "RS [198.19.1.12]:tcp:80 [198.18.10.100]:tcp:80 DOWN",
            "VS [198.18.10.100]:tcp:80 DOWN"
        ]
    );
    let o = m.overlay();
    assert_eq!(o.removed, [key(11), key(12)]);
    assert_eq!(
        o.sorry.as_ref().map(|s| s.key().to_string()),
        Some("198.19.1.99:80".into())
    );
    // One back (100 < 150 + 50): still no quorum, the sorry server stays, .11 stays out.
    m.record(0, 0, Outcome::up(), T0);
    assert!(!m.quorum_up);
    assert_eq!(m.overlay().removed, [key(11), key(12)]);
    let (_, e) = m.record(1, 0, Outcome::up(), T0);
    assert!(m.quorum_up);
    assert!(logs(&e).contains(&"Gained quorum 150+50=200 <= 200 for VS [198.18.10.100]:tcp:80"));
    assert!(runs(&e).contains(&"/bin/qup"));
    assert!(m.overlay().is_empty());
}

/// sorry_server_inhibit: the sorry server sits in the table at weight 0 until used.
#[test]
fn sorry_server_inhibit_keeps_it_at_weight_zero() {
    let mut spec = service(vec![real(
        11,
        1,
        vec![checker(CheckerKind::Tcp, timing(0, false, false))],
    )]);
    spec.sorry = Some(Real::new(Ipv4Addr::new(198, 19, 1, 99), 80, 1));
    spec.sorry_inhibit = true;
    let (mut m, _) = ServiceMachine::new(spec);
    assert_eq!(m.overlay().sorry.map(|s| s.weight), Some(0));
    m.record(0, 0, down(), T0);
    assert_eq!(m.overlay().sorry.map(|s| s.weight), Some(1));
}

/// A reload keeps the state of checkers it did not change.
#[test]
fn inherit_keeps_unchanged_checkers() {
    let spec = service(vec![real(
        11,
        1,
        vec![checker(CheckerKind::Tcp, timing(0, false, false))],
    )]);
    let (mut old, _) = ServiceMachine::new(spec.clone());
    old.record(0, 0, down(), T0);
    let (mut new, _) = ServiceMachine::new(spec.clone());
    new.inherit(&old);
    assert!(!new.real_up(0));
    let mut changed = spec;
    changed.reals[0].checkers[0].timing.retry = 2;
    let (mut fresh, _) = ServiceMachine::new(changed);
    fresh.inherit(&old);
    assert!(fresh.real_up(0), "a changed checker starts afresh");
}
