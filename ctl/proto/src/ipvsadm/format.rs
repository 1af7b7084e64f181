//! ipvsadm's listings rendered from typed data, character for character: `-Ln` and its
//! `--stats`, `--rate`, `--thresholds`, `--persistent-conn` variants, `-Lnc` (with DPVS's
//! worker and local-address columns), `--timeout`, `-S -n` and DPVS's `--get-laddr`.
//! Addresses are always numeric: fnat resolves no names.

use std::fmt::Write;

use crate::ipvsadm::args::ListFormat;
use crate::model::{IpvsTimeouts, Protocol, Real, RuleSet, Service, ServiceAddr};
use crate::stats::{ConnEntry, Counters, Listing, RealStats};

/// The version line `ipvsadm -L` starts with (IPVS 1.2.1, the kernel's default table size).
pub const VERSION_LINE: &str = "IP Virtual Server version 1.2.1 (size=4096)\n";

/// ipvsadm's large-number column: 9 wide, scaled to K/M/G/T unless exact.
pub fn largenum(out: &mut String, n: u64, exact: bool) {
    if exact {
        let len = n.to_string().len();
        let width = if len <= 8 { 9 } else { len + 1 };
        let _ = write!(out, "{n:>width$}");
        return;
    }
    let _ = match n {
        n if n < 100_000_000 => write!(out, "{n:>9}"),
        n if n < 1_000_000_000 => write!(out, "{:>8}K", n / 1_000),
        n if n < 100_000_000_000 => write!(out, "{:>8}M", n / 1_000_000),
        n if n < 100_000_000_000_000 => write!(out, "{:>8}G", n / 1_000_000_000),
        n => write!(out, "{:>8}T", n / 1_000_000_000_000),
    };
}

/// The service column: `TCP  10.0.0.1:80` (cut at 33 characters as ipvsadm does) or `FWM  7`.
fn service_name(addr: &ServiceAddr) -> String {
    match addr {
        ServiceAddr::Inet {
            protocol,
            vip,
            port,
        } => {
            let proto = match protocol {
                Protocol::Tcp => "TCP",
                Protocol::Udp => "UDP",
            };
            let mut name = format!("{proto}  {vip}:{port}");
            name.truncate(33);
            name
        }
        ServiceAddr::Fwmark(m) => format!("FWM  {m}"),
    }
}

/// The service as `-S` writes it: `-t 10.0.0.1:80` or `-f 7`.
fn service_switch(addr: &ServiceAddr) -> String {
    match addr {
        ServiceAddr::Inet {
            protocol: Protocol::Tcp,
            vip,
            port,
        } => format!("-t {vip}:{port}"),
        ServiceAddr::Inet {
            protocol: Protocol::Udp,
            vip,
            port,
        } => format!("-u {vip}:{port}"),
        ServiceAddr::Fwmark(m) => format!("-f {m}"),
    }
}

fn real_name(r: &Real) -> String {
    let mut name = format!("{}:{}", r.addr, r.port);
    name.truncate(28);
    name
}

fn title(format: &ListFormat) -> String {
    const PROT: &str = "Prot LocalAddress:Port";
    const REMOTE: &str = "  -> RemoteAddress:Port\n";
    let numbers = |cols: [&str; 5]| {
        let [a, b, c, d, e] = cols;
        format!("{PROT:<33} {a:>8} {b:>8} {c:>8} {d:>8} {e:>8}\n{REMOTE}")
    };
    let words = |cols: [&str; 4], w: [usize; 4]| {
        format!(
            "{PROT:<33} {:<w0$} {:<w1$} {:<w2$} {:<w3$}\n{REMOTE}",
            cols[0],
            cols[1],
            cols[2],
            cols[3],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3]
        )
    };
    if format.stats {
        numbers(["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"])
    } else if format.rate {
        numbers(["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"])
    } else if format.thresholds {
        words(
            ["Uthreshold", "Lthreshold", "ActiveConn", "InActConn"],
            [10, 10, 10, 10],
        )
    } else if format.persistent_conn {
        words(
            ["Weight", "PersistConn", "ActiveConn", "InActConn"],
            [9, 11, 10, 10],
        )
    } else {
        format!(
            "{PROT} Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        )
    }
}

/// Services in ipvsadm's order (unless `--nosort`).
fn ordered<'a>(services: impl Iterator<Item = &'a Service>, nosort: bool) -> Vec<&'a Service> {
    let mut v: Vec<&Service> = services.collect();
    if !nosort {
        v.sort_by(|a, b| a.addr.ipvsadm_order(&b.addr));
    }
    v
}

/// Reals in ipvsadm's order: by address, then port (unless `--nosort`).
fn ordered_reals(service: &Service, nosort: bool) -> Vec<&Real> {
    let mut v: Vec<&Real> = service.reals.iter().collect();
    if !nosort {
        v.sort_by_key(|r| (u32::from(r.addr), r.port));
    }
    v
}

fn service_line(out: &mut String, s: &Service, counters: &Counters, format: &ListFormat) {
    let name = service_name(&s.addr);
    let nums = [
        [
            counters.conns,
            counters.in_packets,
            counters.out_packets,
            counters.in_bytes,
            counters.out_bytes,
        ],
        [
            counters.cps,
            counters.in_pps,
            counters.out_pps,
            counters.in_bps,
            counters.out_bps,
        ],
    ];
    if format.stats || format.rate {
        let _ = write!(out, "{name:<33}");
        for n in nums[usize::from(!format.stats)] {
            largenum(out, n, format.exact);
        }
    } else {
        let _ = write!(out, "{name} {}", s.scheduler);
        if !s.sched_flags.is_empty() {
            let _ = write!(out, " ({})", s.sched_flags.render(s.scheduler));
        }
        if let Some(p) = s.persistence {
            let _ = write!(out, " persistent {}", p.timeout);
            if p.netmask != std::net::Ipv4Addr::BROADCAST {
                let _ = write!(out, " mask {}", p.netmask);
            }
        }
        if s.one_packet {
            out.push_str(" ops");
        }
    }
    out.push('\n');
}

fn real_line(out: &mut String, r: &Real, st: &RealStats, format: &ListFormat) {
    let name = real_name(r);
    let c = &st.counters;
    if format.stats {
        let _ = write!(out, "  -> {name:<28}");
        for n in [
            c.conns,
            c.in_packets,
            c.out_packets,
            c.in_bytes,
            c.out_bytes,
        ] {
            largenum(out, n, format.exact);
        }
        out.push('\n');
    } else if format.rate {
        let _ = write!(
            out,
            "  -> {name:<28} {:>8} {:>8} {:>8}",
            c.cps, c.in_pps, c.out_pps
        );
        largenum(out, c.in_bps, format.exact);
        largenum(out, c.out_bps, format.exact);
        out.push('\n');
    } else if format.thresholds {
        let _ = writeln!(
            out,
            "  -> {name:<28} {:<10} {:<10} {:<10} {:<10}",
            r.upper_threshold, r.lower_threshold, st.active_conns, st.inactive_conns
        );
    } else if format.persistent_conn {
        let _ = writeln!(
            out,
            "  -> {name:<28} {:<9} {:<11} {:<10} {:<10}",
            r.weight, st.persistent_conns, st.active_conns, st.inactive_conns
        );
    } else {
        let _ = writeln!(
            out,
            "  -> {name:<28} {:<7} {:<6} {:<10} {:<10}",
            r.forward.ipvsadm_name(),
            r.weight,
            st.active_conns,
            st.inactive_conns
        );
    }
}

/// One service block (its line and its reals' lines).
fn service_block(out: &mut String, listing: &Listing, s: &Service, format: &ListFormat) {
    let stats = listing.service_stats(&s.addr);
    let zero = Counters::default();
    service_line(out, s, stats.map_or(&zero, |st| &st.counters), format);
    for r in ordered_reals(s, format.nosort) {
        let rs = stats
            .and_then(|st| {
                st.reals
                    .iter()
                    .find(|x| x.addr == Some(r.addr) && x.port == r.port)
            })
            .cloned()
            .unwrap_or_default();
        real_line(out, r, &rs, format);
    }
}

/// `ipvsadm -L [-n] [--stats|--rate|--thresholds|--persistent-conn]`: every service.
pub fn list_all(listing: &Listing, format: &ListFormat) -> String {
    let mut out = String::from(VERSION_LINE);
    out.push_str(&title(format));
    for s in ordered(listing.rules.services.iter(), format.nosort) {
        service_block(&mut out, listing, s, format);
    }
    out
}

/// `ipvsadm -L -t VIP:PORT`: the title and that service (no version line, as ipvsadm).
pub fn list_service(listing: &Listing, service: &Service, format: &ListFormat) -> String {
    let mut out = title(format);
    service_block(&mut out, listing, service, format);
    out
}

/// `ipvsadm -L --timeout`.
pub fn timeouts(t: &IpvsTimeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcp_fin, t.udp
    )
}

/// `ipvsadm -Lnc` as DPVS prints it: `[worker]proto expire state client vip lip rs`.
pub fn connections(entries: &[ConnEntry]) -> String {
    let mut out = String::new();
    for c in entries {
        let expire = format!("{}s", c.expires_in_s);
        let _ = writeln!(
            out,
            "[{}]{:<3} {:<6} {:<11} {:<18} {:<18} {:<18} {}",
            c.worker,
            c.protocol.name(),
            expire,
            c.state,
            c.client.to_string(),
            c.vip.to_string(),
            c.lip.to_string(),
            c.rs
        );
    }
    out
}

/// `ipvsadm -S -n`: the rules as ipvsadm commands (no header), plus one `-P` line per local
/// address so that `-R` restores them too. Thresholds are written only when set.
pub fn save(rules: &RuleSet, format: &ListFormat) -> String {
    let mut out = String::new();
    for s in ordered(rules.services.iter(), format.nosort) {
        let svc = service_switch(&s.addr);
        let _ = write!(out, "-A {svc} -s {}", s.scheduler);
        if !s.sched_flags.is_empty() {
            let _ = write!(out, " --sched-flags {}", s.sched_flags.render(s.scheduler));
        }
        if let Some(p) = s.persistence {
            let _ = write!(out, " -p {}", p.timeout);
            if p.netmask != std::net::Ipv4Addr::BROADCAST {
                let _ = write!(out, " -M {}", p.netmask);
            }
        }
        if s.one_packet {
            out.push_str(" -o");
        }
        out.push('\n');
        for r in ordered_reals(s, format.nosort) {
            let _ = write!(
                out,
                "-a {svc} -r {}:{} {} -w {}",
                r.addr,
                r.port,
                r.forward.ipvsadm_switch(),
                r.weight
            );
            if r.upper_threshold != 0 {
                let _ = write!(out, " -x {}", r.upper_threshold);
            }
            if r.lower_threshold != 0 {
                let _ = write!(out, " -y {}", r.lower_threshold);
            }
            out.push('\n');
        }
        for l in &s.local_addresses {
            let _ = write!(out, "-P {svc} -z {}", l.addr);
            if let Some(dev) = &l.device {
                let _ = write!(out, " -F {dev}");
            }
            out.push('\n');
        }
    }
    out
}

/// DPVS's `ipvsadm -G`: local addresses per service. fnat counts no per-address conflicts
/// or connections yet, so those columns are 0.
pub fn local_addresses<'a>(services: impl Iterator<Item = &'a Service>) -> String {
    let mut out = String::new();
    for (i, s) in services.enumerate() {
        if i == 0 {
            let _ = writeln!(
                out,
                "{:<20} {:<8} {:<20} {:<10} {:<10}",
                "VIP:VPORT", "TOTAL", "SNAT_IP", "CONFLICTS", "CONNS"
            );
        }
        let vname = match s.addr {
            ServiceAddr::Inet { vip, port, .. } => format!("{vip}:{port}"),
            ServiceAddr::Fwmark(_) => "0.0.0.0:0".to_string(),
        };
        let _ = writeln!(out, "{vname:<20} {:<8} ", s.local_addresses.len());
        for l in &s.local_addresses {
            let _ = writeln!(
                out,
                "{:<20} {:<8} {:<20} {:<10} {:<10}",
                "", "", l.addr, 0, 0
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use crate::stats::ServiceStats;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn listing() -> Listing {
        let vip = ServiceAddr::tcp(Ipv4Addr::new(10, 0, 0, 1), 80);
        let mut s = Service::new(vip, Scheduler::Rr);
        s.reals
            .push(Real::new(Ipv4Addr::new(192, 168, 1, 2), 80, 1));
        s.reals
            .push(Real::new(Ipv4Addr::new(192, 168, 1, 1), 80, 2));
        s.local_addresses.push(LocalAddress {
            addr: Ipv4Addr::new(10, 1, 0, 1),
            device: None,
        });
        let mut u = Service::new(
            ServiceAddr::udp(Ipv4Addr::new(10, 0, 0, 1), 53),
            Scheduler::Wrr,
        );
        u.persistence = Some(Persistence {
            timeout: 360,
            netmask: Ipv4Addr::new(255, 255, 255, 0),
        });
        Listing {
            rules: RuleSet {
                timeouts: TimeoutOverrides::default(),
                services: vec![u, s],
            },
            timeouts: None,
            stats: vec![ServiceStats {
                service: vip,
                counters: Counters {
                    conns: 123_456_789,
                    in_packets: 5,
                    ..Counters::default()
                },
                reals: vec![RealStats {
                    addr: Some(Ipv4Addr::new(192, 168, 1, 1)),
                    port: 80,
                    counters: Counters::default(),
                    active_conns: 3,
                    inactive_conns: 4,
                    persistent_conns: 0,
                }],
            }],
            ..Listing::default()
        }
    }

    #[test]
    fn list_numeric_matches_ipvsadm() {
        let text = list_all(&listing(), &ListFormat::default());
        let want = "IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port Scheduler Flags\n\
\x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
TCP  10.0.0.1:80 rr\n\
\x20 -> 192.168.1.1:80               FullNat 2      3          4         \n\
\x20 -> 192.168.1.2:80               FullNat 1      0          0         \n\
UDP  10.0.0.1:53 wrr persistent 360 mask 255.255.255.0\n";
        assert_eq!(text, want);
    }

    #[test]
    fn stats_scale_unless_exact() {
        let f = ListFormat {
            stats: true,
            ..ListFormat::default()
        };
        let text = list_all(&listing(), &f);
        let want = format!(
            "{:<33}  123456K        5        0        0        0\n",
            "TCP  10.0.0.1:80"
        );
        assert!(text.contains(&want), "{text}");
        let f = ListFormat {
            stats: true,
            exact: true,
            ..ListFormat::default()
        };
        let text = list_all(&listing(), &f);
        let want = format!("{:<33} 123456789        5", "TCP  10.0.0.1:80");
        assert!(text.contains(&want), "{text}");
    }

    #[test]
    fn largenum_scales_like_ipvsadm() {
        let cases = [
            (0u64, "        0"),
            (99_999_999, " 99999999"),
            (100_000_000, "  100000K"),
            (1_000_000_000, "    1000M"),
            (100_000_000_000, "     100G"),
            (100_000_000_000_000, "     100T"),
        ];
        for (n, want) in cases {
            let mut s = String::new();
            largenum(&mut s, n, false);
            assert_eq!(s, want);
        }
        let mut s = String::new();
        largenum(&mut s, 1_234_567_890, true);
        assert_eq!(s, " 1234567890");
    }

    #[test]
    fn save_writes_rules_and_local_addresses() {
        let text = save(&listing().rules, &ListFormat::default());
        assert_eq!(
            text,
            "-A -t 10.0.0.1:80 -s rr\n\
-a -t 10.0.0.1:80 -r 192.168.1.1:80 -b -w 2\n\
-a -t 10.0.0.1:80 -r 192.168.1.2:80 -b -w 1\n\
-P -t 10.0.0.1:80 -z 10.1.0.1\n\
-A -u 10.0.0.1:53 -s wrr -p 360 -M 255.255.255.0\n"
        );
    }

    #[test]
    fn connections_and_timeouts() {
        let c = ConnEntry {
            worker: 1,
            protocol: Protocol::Tcp,
            client: SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 5555),
            vip: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
            lip: SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 1), 1025),
            rs: SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 1), 80),
            state: "ESTABLISHED".into(),
            expires_in_s: 899,
        };
        assert_eq!(
            connections(&[c]),
            "[1]tcp 899s   ESTABLISHED 1.2.3.4:5555       10.0.0.1:80        10.1.0.1:1025      192.168.1.1:80\n"
        );
        assert_eq!(
            timeouts(&IpvsTimeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300
            }),
            "Timeout (tcp tcpfin udp): 900 120 300\n"
        );
    }
}
