//! Random valid rule sets (proptest strategies) and the config-file tables that hold them:
//! every kind of service (tcp, udp, port 0, firewall mark), firewall marks, and every field
//! drawn up to its limits. What a config file can say (every real server full-NAT, at least
//! one local address, no device names, no one-packet scheduling), so that the same set can
//! travel config → daemon → save → state file → restart and through control commands.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use fnat_proto::edit::{check_rule_set, Change};
use fnat_proto::model::{
    LocalAddress, Mark, Persistence, PortList, Protocol, Real, RuleSet, SchedFlags, Scheduler,
    Service, ServiceAddr, MAX_THRESHOLD, MAX_TIMEOUT, MAX_WEIGHT,
};
use proptest::prelude::*;
use proptest::sample::subsequence;

/// A value in `0..=max`, with its ends (and 1) more likely than chance.
fn up_to(max: u32) -> BoxedStrategy<u32> {
    prop_oneof![Just(0u32), Just(1u32), Just(max), 0..=max].boxed()
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)]
}

fn scheduler() -> impl Strategy<Value = Scheduler> {
    (0..Scheduler::ALL.len()).prop_map(|i| Scheduler::ALL[i])
}

fn persistence() -> impl Strategy<Value = Persistence> {
    (
        prop_oneof![Just(1u32), Just(MAX_TIMEOUT), 1..=MAX_TIMEOUT],
        0u32..=32,
    )
        .prop_map(|(timeout, prefix)| Persistence {
            timeout,
            netmask: Ipv4Addr::from(u32::MAX.checked_shl(32 - prefix).unwrap_or(0)),
        })
}

/// Ports for a real server: 0 allowed only where the service has no port of its own.
fn real(index: u8, port_zero: bool) -> impl Strategy<Value = Real> {
    let port = if port_zero {
        prop_oneof![Just(0u16), any::<u16>()].boxed()
    } else {
        prop_oneof![Just(1u16), Just(u16::MAX), 1..=u16::MAX].boxed()
    };
    (
        port,
        up_to(MAX_WEIGHT),
        up_to(MAX_THRESHOLD),
        up_to(MAX_THRESHOLD),
    )
        .prop_map(move |(port, weight, a, b)| {
            let mut r = Real::new(Ipv4Addr::new(198, 19, 1, index), port, weight);
            // The lower threshold may not exceed a set upper one.
            let (upper, lower) = if a != 0 && b > a { (b, a) } else { (a, b) };
            r.upper_threshold = upper;
            r.lower_threshold = lower;
            r
        })
}

/// A service at `addr` with up to four reals and one to three local addresses.
fn service(addr: ServiceAddr, needs_persistence: bool) -> impl Strategy<Value = Service> {
    let port_zero = addr.port() == 0;
    let reals = subsequence((1u8..=6).collect::<Vec<_>>(), 0..=4).prop_flat_map(move |idx| {
        idx.into_iter()
            .map(|i| real(i, port_zero))
            .collect::<Vec<_>>()
    });
    let lips = subsequence((10u8..=13).collect::<Vec<_>>(), 1..=3);
    let persistence = if needs_persistence {
        persistence().prop_map(Some).boxed()
    } else {
        proptest::option::of(persistence()).boxed()
    };
    (scheduler(), 0u8..8, persistence, any::<bool>(), reals, lips).prop_map(
        move |(scheduler, flags, persistence, expire, reals, lips)| {
            let mut s = Service::new(addr, scheduler);
            s.sched_flags = SchedFlags(flags);
            s.persistence = persistence;
            s.expire_on_removal = expire;
            s.reals = reals;
            s.local_addresses = lips
                .into_iter()
                .map(|i| LocalAddress {
                    addr: Ipv4Addr::new(198, 19, 0, i),
                    device: None,
                })
                .collect();
            s
        },
    )
}

/// A firewall mark on its own VIP (198.18.1.`index`), so marks never share an endpoint.
fn mark(index: u8) -> impl Strategy<Value = Mark> {
    let ports = prop_oneof![
        proptest::collection::btree_set(1u16..=u16::MAX, 1..5)
            .prop_map(|set| set.into_iter().collect::<Vec<_>>()),
        (1u16..=65000, 0u16..=40).prop_map(|(lo, n)| (lo..=lo + n).collect()),
        Just(vec![u16::MAX]),
    ];
    (
        prop_oneof![Just(1u32), Just(u32::MAX), 1..=u32::MAX],
        protocol(),
        ports,
    )
        .prop_map(move |(number, protocol, ports)| Mark {
            mark: number,
            protocol,
            vip: Ipv4Addr::new(198, 18, 1, index),
            ports: PortList(ports),
            name: Some(format!("group{index}")),
        })
}

/// A valid rule set: up to three marks (some with a service), up to five inet services on
/// 198.18.0.100-102 (tcp and udp, port 0 ones persistent).
pub fn rule_set() -> impl Strategy<Value = RuleSet> {
    let marks = proptest::collection::vec(mark(0), 0..=3).prop_map(|mut marks| {
        marks.sort_by_key(|m| m.mark);
        marks.dedup_by_key(|m| m.mark);
        for (i, m) in marks.iter_mut().enumerate() {
            m.vip = Ipv4Addr::new(198, 18, 1, i as u8 + 1);
            m.name = Some(format!("group{i}"));
        }
        marks
    });
    let inet_keys = proptest::collection::btree_set(
        (
            protocol(),
            100u8..=102,
            prop_oneof![Just(0u16), Just(u16::MAX), any::<u16>()],
        ),
        0..=5,
    );
    (marks, inet_keys, any::<u64>())
        .prop_flat_map(|(marks, keys, which)| {
            let mut addrs: Vec<(ServiceAddr, bool)> = keys
                .into_iter()
                .map(|(protocol, host, port)| {
                    let addr = ServiceAddr::Inet {
                        protocol,
                        vip: Ipv4Addr::new(198, 18, 0, host),
                        port,
                    };
                    (addr, port == 0)
                })
                .collect();
            for (i, m) in marks.iter().enumerate() {
                if which >> i & 1 == 1 {
                    addrs.push((ServiceAddr::Fwmark(m.mark), false));
                }
            }
            let services: Vec<_> = addrs
                .into_iter()
                .map(|(addr, persistent)| service(addr, persistent))
                .collect();
            (Just(marks), services)
        })
        .prop_map(|(marks, services)| {
            let rules = RuleSet {
                timeouts: Default::default(),
                marks,
                services,
                ..RuleSet::default()
            };
            debug_assert!(check_rule_set(&rules).is_ok());
            rules
        })
}

/// The rule set as a config file's `[[port_group]]` and `[[service]]` tables.
pub fn config_tables(rules: &RuleSet) -> String {
    let mut out = String::new();
    for m in &rules.marks {
        let ports: Vec<String> = m.ports.0.iter().map(u16::to_string).collect();
        let _ = write!(
            out,
            "[[port_group]]\nname = \"{}\"\nmark = {}\nprotocol = \"{}\"\nvip = \"{}\"\nports = [{}]\n\n",
            m.name.as_deref().unwrap_or("group"),
            m.mark,
            m.protocol.name(),
            m.vip,
            ports.join(", ")
        );
    }
    for s in &rules.services {
        out.push_str("[[service]]\n");
        match s.addr {
            ServiceAddr::Inet {
                protocol,
                vip,
                port,
            } => {
                let _ = writeln!(
                    out,
                    "vip = \"{vip}\"\nport = {port}\nprotocol = \"{}\"",
                    protocol.name()
                );
            }
            ServiceAddr::Fwmark(m) => {
                let _ = writeln!(out, "fwmark = {m}");
            }
            ServiceAddr::Match(m) => {
                let mut parts = vec![format!("proto = \"{}\"", m.proto.name())];
                for (k, v) in [
                    ("src-range", m.src.map(|r| r.to_string())),
                    ("dst-range", m.dst.map(|r| r.to_string())),
                    ("iif", m.iif.map(|p| p.to_string())),
                    ("oif", m.oif.map(|p| p.to_string())),
                ] {
                    if let Some(v) = v {
                        parts.push(format!("{k} = \"{v}\""));
                    }
                }
                let _ = writeln!(out, "match = {{ {} }}", parts.join(", "));
            }
        }
        let _ = writeln!(out, "scheduler = \"{}\"", s.scheduler);
        let flags: Vec<String> = ["flag-1", "flag-2", "flag-3"]
            .iter()
            .enumerate()
            .filter(|(i, _)| s.sched_flags.0 & (1 << i) != 0)
            .map(|(_, n)| format!("\"{n}\""))
            .collect();
        let _ = writeln!(out, "flags = [{}]", flags.join(", "));
        if let Some(p) = s.persistence {
            let _ = writeln!(
                out,
                "persistence_timeout = {}\npersistence_netmask = \"{}\"",
                p.timeout, p.netmask
            );
        }
        let _ = writeln!(out, "expire_on_removal = {}", s.expire_on_removal);
        let lips: Vec<String> = s
            .local_addresses
            .iter()
            .map(|l| format!("\"{}\"", l.addr))
            .collect();
        let _ = writeln!(out, "local_addresses = [{}]", lips.join(", "));
        out.push_str("real = [");
        for (i, r) in s.reals.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(
                out,
                "{{ address = \"{}\", port = {}, weight = {}, upper_threshold = {}, lower_threshold = {} }}",
                r.addr, r.port, r.weight, r.upper_threshold, r.lower_threshold
            );
        }
        out.push_str("]\n\n");
    }
    out
}

/// The control commands that build the rule set from nothing, one change at a time, in the
/// order that gives the same engine ids as loading it whole: the marks, then each service
/// followed by its real servers and local addresses.
pub fn as_changes(rules: &RuleSet) -> Vec<Change> {
    let mut changes: Vec<Change> = rules
        .marks
        .iter()
        .map(|m| Change::MarkAdd { mark: m.clone() })
        .collect();
    for s in &rules.services {
        let mut bare = s.clone();
        bare.reals.clear();
        bare.local_addresses.clear();
        changes.push(Change::ServiceAdd { service: bare });
        for r in &s.reals {
            changes.push(Change::RealAdd {
                service: s.addr,
                real: *r,
            });
        }
        for l in &s.local_addresses {
            changes.push(Change::LaddrAdd {
                service: s.addr,
                laddr: l.clone(),
            });
        }
    }
    changes
}
