//! ipvsadm's listings rendered from typed data, character for character: `-L` and its
//! `--stats`, `--rate`, `--thresholds`, `--persistent-conn` variants, `-Lc` (with DPVS's
//! worker and local-address columns), `--timeout`, `-S` and DPVS's `--get-laddr`.
//!
//! Without `-n`, ipvsadm prints host names and service names where the system has them
//! (`addrport_to_anyname`: gethostbyaddr's `h_name`, getservbyport's `s_name` for the
//! service's protocol, numbers otherwise). The lookups themselves are the caller's
//! ([`Names`]): this crate stays pure; fnatctl resolves through the C library.

use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::ipvsadm::args::ListFormat;
use crate::model::{
    ForwardMethod, IpvsTimeouts, Protocol, Real, RuleSet, Scheduler, Service, ServiceAddr,
    TunnelType,
};
use crate::stats::{ConnEntry, Counters, LaddrStats, Listing, RealStats};

/// The version line `ipvsadm -L` starts with (IPVS 1.2.1, the kernel's default table size).
pub const VERSION_LINE: &str = "IP Virtual Server version 1.2.1 (size=4096)\n";

/// Host and service names for listings without `-n`. `None`: print the number.
pub trait Names {
    /// The name of `addr` (what gethostbyaddr answers as `h_name`).
    fn host(&self, addr: Ipv4Addr) -> Option<String>;
    /// The name of `port` for `protocol` (what getservbyport answers as `s_name`).
    fn service(&self, port: u16, protocol: Protocol) -> Option<String>;
}

/// No names at all: every address and port as a number.
pub struct Numeric;

impl Names for Numeric {
    fn host(&self, _addr: Ipv4Addr) -> Option<String> {
        None
    }
    fn service(&self, _port: u16, _protocol: Protocol) -> Option<String> {
        None
    }
}

/// ipvsadm's `addrport_to_anyname` builds its text in a 60-byte buffer: at most 59 bytes.
const ADDRPORT_MAX: usize = 59;

/// Cuts `s` to at most `max` bytes (ipvsadm writes a NUL there), on a character boundary.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// `ADDR:PORT` as ipvsadm's `addrport_to_anyname` writes it: numbers with `-n`, else the
/// host name (or the address) and the service name for `protocol` (or the port).
pub fn addr_port(
    names: &dyn Names,
    numeric: bool,
    addr: Ipv4Addr,
    port: u16,
    protocol: Protocol,
) -> String {
    let text = if numeric {
        format!("{addr}:{port}")
    } else {
        let host = names.host(addr).unwrap_or_else(|| addr.to_string());
        let service = names
            .service(port, protocol)
            .unwrap_or_else(|| port.to_string());
        format!("{host}:{service}")
    };
    cut(text, ADDRPORT_MAX)
}

/// The protocol ipvsadm looks service names up with: the service's own, and TCP for a
/// firewall-mark service (ipvsadm stores IPPROTO_TCP for `-f`, and lists with it).
pub fn lookup_protocol(addr: &ServiceAddr) -> Protocol {
    match addr {
        ServiceAddr::Inet { protocol, .. } => *protocol,
        ServiceAddr::Fwmark(_) => Protocol::Tcp,
        ServiceAddr::Match(m) if m.proto == crate::model::MatchProto::Udp => Protocol::Udp,
        ServiceAddr::Match(_) => Protocol::Tcp,
    }
}

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

/// ipvsadm's `print_sched_flags`: `sh` and `mh` name only their fallback and port flags
/// (a flag-3 on them prints nothing), the other schedulers print flag-1..flag-3.
pub fn sched_flags(flags: crate::model::SchedFlags, scheduler: Scheduler) -> String {
    use crate::model::SchedFlags as F;
    let names: &[(u8, &str)] = match scheduler {
        Scheduler::Sh => &[(F::FLAG1, "sh-fallback"), (F::FLAG2, "sh-port")],
        Scheduler::Mh => &[(F::FLAG1, "mh-fallback"), (F::FLAG2, "mh-port")],
        _ => &[
            (F::FLAG1, "flag-1"),
            (F::FLAG2, "flag-2"),
            (F::FLAG3, "flag-3"),
        ],
    };
    let set: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| flags.0 & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    set.join(",")
}

/// The service column: `TCP  10.0.0.1:80` (`%-4s %s`, cut at 33 characters as ipvsadm
/// does) or `FWM  7`.
fn service_name(addr: &ServiceAddr, names: &dyn Names, numeric: bool) -> String {
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
            let name = format!(
                "{proto:<4} {}",
                addr_port(names, numeric, *vip, *port, *protocol)
            );
            cut(name, 33)
        }
        ServiceAddr::Fwmark(m) => format!("FWM  {m}"),
        // DPVS lists a match service as `MATCH` and its conditions; fnat writes them as
        // `-H` takes them, whole.
        ServiceAddr::Match(m) => format!("MATCH {m}"),
    }
}

/// The service as `-S` writes it: `-t 10.0.0.1:80` or `-f 7`.
fn service_switch(addr: &ServiceAddr, names: &dyn Names, numeric: bool) -> String {
    match addr {
        ServiceAddr::Inet {
            protocol,
            vip,
            port,
        } => {
            let switch = match protocol {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
            };
            format!(
                "{switch} {}",
                addr_port(names, numeric, *vip, *port, *protocol)
            )
        }
        ServiceAddr::Fwmark(m) => format!("-f {m}"),
        ServiceAddr::Match(m) => format!("-H {m}"),
    }
}

/// A real server's `ADDR:PORT` (cut at 28 in the listings, whole in `-S`).
fn real_name(s: &Service, r: &Real, names: &dyn Names, numeric: bool) -> String {
    addr_port(names, numeric, r.addr, r.port, lookup_protocol(&s.addr))
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
    } else if format.tun_info {
        format!(
            "{PROT} Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
        )
    } else {
        format!(
            "{PROT} Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        )
    }
}

/// Services in ipvsadm's order (`ipvs_cmp_services`: firewall mark, protocol, address,
/// port), or as configured with `--nosort` (the kernel's and DPVS's unsorted order is their
/// hash tables', which has no equivalent here).
fn ordered<'a>(services: impl Iterator<Item = &'a Service>, nosort: bool) -> Vec<&'a Service> {
    let mut v: Vec<&Service> = services.collect();
    if !nosort {
        v.sort_by(|a, b| a.addr.ipvsadm_order(&b.addr));
    }
    v
}

/// Reals in ipvsadm's order (`ipvs_cmp_dests`: address, then port), or with `--nosort` as
/// the kernel and DPVS keep them: the newest first (they add each destination at the head of
/// the service's list).
fn ordered_reals(service: &Service, nosort: bool) -> Vec<&Real> {
    let mut v: Vec<&Real> = service.reals.iter().collect();
    if nosort {
        v.reverse();
    } else {
        v.sort_by_key(|r| (u32::from(r.addr), r.port));
    }
    v
}

fn service_line(
    out: &mut String,
    s: &Service,
    counters: &Counters,
    format: &ListFormat,
    names: &dyn Names,
) {
    let name = service_name(&s.addr, names, format.numeric);
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
            let _ = write!(out, " ({})", sched_flags(s.sched_flags, s.scheduler));
        }
        if let Some(p) = s.persistence {
            let _ = write!(out, " persistent {}", p.timeout);
            if p.netmask != Ipv4Addr::BROADCAST {
                let _ = write!(out, " mask {}", p.netmask);
            }
        }
        if s.one_packet {
            out.push_str(" ops");
        }
        if !s.proxy_protocol.is_disabled() {
            let _ = write!(out, " proxy-protocol {}", s.proxy_protocol);
        }
        if s.toa {
            out.push_str(" toa");
        }
        if s.synproxy {
            out.push_str(" synproxy");
        }
    }
    out.push('\n');
}

fn real_line(
    out: &mut String,
    s: &Service,
    r: &Real,
    st: &RealStats,
    format: &ListFormat,
    names: &dyn Names,
) {
    let name = cut(real_name(s, r, names, format.numeric), 28);
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
    } else if format.tun_info {
        let _ = writeln!(
            out,
            "  -> {name:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
            r.forward.ipvsadm_name(),
            tunnel_info(r),
            r.weight,
            st.active_conns,
            st.inactive_conns
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

/// The TunnelInfo column of `--tun-info`: `ipip`, `gue:PORT:csum|nocsum`, `gre:csum|nocsum`;
/// `N/A` for a real server that is not tunnelled.
fn tunnel_info(r: &Real) -> String {
    if r.forward != ForwardMethod::Tunnel {
        return "N/A".into();
    }
    let t = &r.tunnel;
    let csum = if t.csum { "csum" } else { "nocsum" };
    match t.kind {
        TunnelType::Ipip => "ipip".into(),
        TunnelType::Gue => format!("gue:{}:{csum}", t.port),
        TunnelType::Gre => format!("gre:{csum}"),
    }
}

/// The `--tun-*` options `-S` writes after `-i` so that `-R` restores the tunnel.
fn tunnel_switches(r: &Real) -> String {
    if r.forward != ForwardMethod::Tunnel {
        return String::new();
    }
    let t = &r.tunnel;
    let csum = if t.csum { "--tun-csum" } else { "--tun-nocsum" };
    match t.kind {
        TunnelType::Ipip => " --tun-type ipip".into(),
        TunnelType::Gue => format!(" --tun-type gue --tun-port {} {csum}", t.port),
        TunnelType::Gre => format!(" --tun-type gre {csum}"),
    }
}

/// One service block (its line and its reals' lines).
fn service_block(
    out: &mut String,
    listing: &Listing,
    s: &Service,
    format: &ListFormat,
    names: &dyn Names,
) {
    let stats = listing.service_stats(&s.addr);
    let zero = Counters::default();
    service_line(
        out,
        s,
        stats.map_or(&zero, |st| &st.counters),
        format,
        names,
    );
    for r in ordered_reals(s, format.nosort) {
        let rs = stats
            .and_then(|st| {
                st.reals
                    .iter()
                    .find(|x| x.addr == Some(r.addr) && x.port == r.port)
            })
            .cloned()
            .unwrap_or_default();
        real_line(out, s, r, &rs, format, names);
    }
}

/// `ipvsadm -L [-n] [--stats|--rate|--thresholds|--persistent-conn]`: every service.
pub fn list_all(listing: &Listing, format: &ListFormat, names: &dyn Names) -> String {
    let mut out = String::from(VERSION_LINE);
    out.push_str(&title(format));
    for s in ordered(listing.rules.services.iter(), format.nosort) {
        service_block(&mut out, listing, s, format, names);
    }
    out
}

/// `ipvsadm -L -t VIP:PORT`: the title and that service (no version line, as ipvsadm).
pub fn list_service(
    listing: &Listing,
    service: &Service,
    format: &ListFormat,
    names: &dyn Names,
) -> String {
    let mut out = title(format);
    service_block(&mut out, listing, service, format, names);
    out
}

/// `ipvsadm -L --timeout`.
pub fn timeouts(t: &IpvsTimeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcp_fin, t.udp
    )
}

/// `ipvsadm -Lc`: the kernel's layout, `IPVS connection entries`, then
/// `pro expire state source virtual destination` (`%-3s %-6s %-11s %-18s %-18s %s`, the
/// protocol in capitals, the time left as `MM:SS`). Sessions that have a local address
/// (full-NAT's LIP:lport, SNAT's WAN address:port) add it in a fifth address column,
/// `local`, after a padded destination; the header names that column only when a row has it,
/// so a listing of NAT/DR/TUN sessions is the kernel's byte for byte. SNAT rows: source is
/// the inside host, virtual and destination the outside peer, local the WAN address:port.
/// Without `-n` the endpoints get host and service names as everywhere else.
pub fn connections(entries: &[ConnEntry], format: &ListFormat, names: &dyn Names) -> String {
    let mut out = String::from("IPVS connection entries\n");
    let any_local = entries.iter().any(ConnEntry::has_local);
    let _ = write!(
        out,
        "pro expire {:<11} {:<18} {:<18} ",
        "state", "source", "virtual"
    );
    if any_local {
        out.push_str(&format!("{:<18} local\n", "destination"));
    } else {
        out.push_str("destination\n");
    }
    for c in entries {
        let expire = format!("{:02}:{:02}", c.expires_in_s / 60, c.expires_in_s % 60);
        let ap = |a: &std::net::SocketAddrV4| {
            addr_port(names, format.numeric, *a.ip(), a.port(), c.protocol)
        };
        let proto = c.protocol.name().to_ascii_uppercase();
        let _ = write!(
            out,
            "{:<3} {:<6} {:<11} {:<18} {:<18} ",
            proto,
            expire,
            c.state,
            ap(&c.client),
            ap(&c.vip),
        );
        if c.has_local() {
            let _ = writeln!(out, "{:<18} {}", ap(&c.rs), ap(&c.lip));
        } else {
            let _ = writeln!(out, "{}", ap(&c.rs));
        }
    }
    out
}

/// `fnatctl conn list`: DPVS's `ipvsadm -Lnc` layout, `[worker]proto expire state client vip
/// lip rs`, no header (one row per session, the worker that owns it first).
pub fn connections_dpvs(entries: &[ConnEntry], format: &ListFormat, names: &dyn Names) -> String {
    let mut out = String::new();
    for c in entries {
        let expire = format!("{}s", c.expires_in_s);
        let ap = |a: &std::net::SocketAddrV4| {
            addr_port(names, format.numeric, *a.ip(), a.port(), c.protocol)
        };
        let _ = writeln!(
            out,
            "[{}]{:<3} {:<6} {:<11} {:<18} {:<18} {:<18} {}",
            c.worker,
            c.protocol.name(),
            expire,
            c.state,
            ap(&c.client),
            ap(&c.vip),
            ap(&c.lip),
            ap(&c.rs)
        );
    }
    out
}

/// `ipvsadm -S [-n]`: the rules as ipvsadm commands (no header), in ipvsadm's order of
/// options (`-A SVC -s SCHED [-p T [-M MASK]] [-o] [-b FLAGS]`, `-a SVC -r RS FWD -w W`);
/// fnat's `-b` takes a flags list as ipvsadm's does (bare, it is DPVS's full-NAT switch).
/// Differences, so that `-R` restores everything: a flag-3 on sh/mh is written (ipvsadm
/// writes an empty `-b `), reals add `-x`/`-y` when thresholds are set, and one `-P` line
/// per local address follows each service. fnat's own lines: the firewall marks first
/// (`--add-mark MARK PROTO VIP PORTS`, always numeric), `--expire-on-removal` and
/// `--conn-rate` on `-A`, and one `-O … -2 PREFIX` (allow) or `-U … -k PREFIX` (deny) line
/// per client list entry (DPVS's whitelist/blacklist commands).
pub fn save(rules: &RuleSet, format: &ListFormat, names: &dyn Names) -> String {
    let mut out = String::new();
    for m in &rules.marks {
        let _ = writeln!(
            out,
            "--add-mark {} {} {} {}",
            m.mark,
            m.protocol.name(),
            m.vip,
            m.ports
        );
    }
    for s in ordered(rules.services.iter(), format.nosort) {
        let svc = service_switch(&s.addr, names, format.numeric);
        let _ = write!(out, "-A {svc} -s {}", s.scheduler);
        if let Some(p) = s.persistence {
            let _ = write!(out, " -p {}", p.timeout);
            if p.netmask != Ipv4Addr::BROADCAST {
                let _ = write!(out, " -M {}", p.netmask);
            }
        }
        if s.one_packet {
            out.push_str(" -o");
        }
        if s.expire_on_removal {
            out.push_str(" --expire-on-removal");
        }
        if let Some(r) = s.conn_rate {
            let _ = write!(out, " --conn-rate {r}");
        }
        if !s.proxy_protocol.is_disabled() {
            let _ = write!(out, " --proxy-protocol {}", s.proxy_protocol);
        }
        if s.toa {
            out.push_str(" --toa");
        }
        if s.synproxy {
            out.push_str(" --synproxy");
        }
        if !s.sched_flags.is_empty() {
            let _ = write!(out, " -b {}", s.sched_flags.render(s.scheduler));
        }
        out.push('\n');
        for r in ordered_reals(s, format.nosort) {
            let _ = write!(
                out,
                "-a {svc} -r {} {} -w {}",
                real_name(s, r, names, format.numeric),
                r.forward.ipvsadm_switch(),
                r.weight
            );
            out.push_str(&tunnel_switches(r));
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
        for p in &s.allow {
            let _ = writeln!(out, "-O {svc} -2 {p}");
        }
        for p in &s.deny {
            let _ = writeln!(out, "-U {svc} -k {p}");
        }
    }
    // Daemons ipvsadm started (the kernel's ipvsadm -S leaves them out; fnat keeps them,
    // and -R reads the lines back).
    use crate::sync::{SyncRole, DEFAULT_GROUP, DEFAULT_PORT, DEFAULT_TTL};
    for role in [SyncRole::Master, SyncRole::Backup] {
        let Some(d) = rules.sync.get(role) else {
            continue;
        };
        let _ = write!(
            out,
            "--start-daemon {} --mcast-interface {} --syncid {}",
            role.name(),
            d.interface,
            d.syncid
        );
        if d.maxlen != 0 {
            let _ = write!(out, " --sync-maxlen {}", d.maxlen);
        }
        if d.group != DEFAULT_GROUP {
            let _ = write!(out, " --mcast-group {}", d.group);
        }
        if d.port != DEFAULT_PORT {
            let _ = write!(out, " --mcast-port {}", d.port);
        }
        if d.ttl != DEFAULT_TTL {
            let _ = write!(out, " --mcast-ttl {}", d.ttl);
        }
        out.push('\n');
    }
    out
}

/// DPVS's `ipvsadm -G`: local addresses per service, always numeric (DPVS lists them so).
/// Title `%-20s %-8s %-20s %-10s %-10s`, a service row `%-20s %-8u ` (VIP:VPORT, how many
/// local addresses), a row per address `%-20s %-8s %-20s %-10lu %-10u` with CONFLICTS (fnat:
/// sessions that found the address out of ports) and CONNS (fnat: its ports held by
/// sessions now), summed over workers. fnat's port pools are per address, so an address
/// that several services share shows its totals under each of them.
pub fn local_addresses<'a>(
    services: impl Iterator<Item = &'a Service>,
    stats: &[LaddrStats],
) -> String {
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
            ServiceAddr::Fwmark(_) | ServiceAddr::Match(_) => "0.0.0.0:0".to_string(),
        };
        let _ = writeln!(out, "{vname:<20} {:<8} ", s.local_addresses.len());
        for l in &s.local_addresses {
            let st = stats.iter().find(|x| x.addr == l.addr);
            let _ = writeln!(
                out,
                "{:<20} {:<8} {:<20} {:<10} {:<10}",
                "",
                "",
                l.addr,
                st.map_or(0, |x| x.exhausted),
                st.map_or(0, |x| x.ports_in_use)
            );
        }
    }
    out
}

/// `ipvsadm -L --daemon`: one line per running sync daemon, as ipvsadm's `list_daemon`
/// prints what the kernel reports (a daemon waiting for its VRRP state is not running).
pub fn daemons(st: &crate::sync::SyncStatus) -> String {
    let mut out = String::new();
    for d in st.daemons.iter().filter(|d| d.active) {
        out.push_str(&format!(
            "{} sync daemon (mcast={}, syncid={}, maxlen={}, group={}, port={}, ttl={})\n",
            d.role.name(),
            d.daemon.interface,
            d.daemon.syncid,
            d.maxlen,
            d.daemon.group,
            d.daemon.port,
            d.daemon.ttl
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use crate::stats::ServiceStats;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn numeric() -> ListFormat {
        ListFormat {
            numeric: true,
            ..ListFormat::default()
        }
    }

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
                marks: Vec::new(),
                services: vec![u, s],
                ..RuleSet::default()
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
        let text = list_all(&listing(), &numeric(), &Numeric);
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
        let text = list_all(&listing(), &f, &Numeric);
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
        let text = list_all(&listing(), &f, &Numeric);
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
        let text = save(&listing().rules, &numeric(), &Numeric);
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
            forward: ForwardMethod::FullNat,
        };
        assert_eq!(
            connections_dpvs(std::slice::from_ref(&c), &numeric(), &Numeric),
            "[1]tcp 899s   ESTABLISHED 1.2.3.4:5555       10.0.0.1:80        10.1.0.1:1025      192.168.1.1:80\n"
        );
        // The kernel's layout; a full-NAT row adds its local address in a `local` column.
        assert_eq!(
            connections(std::slice::from_ref(&c), &numeric(), &Numeric),
            "IPVS connection entries\n\
             pro expire state       source             virtual            destination        local\n\
             TCP 14:59  ESTABLISHED 1.2.3.4:5555       10.0.0.1:80        192.168.1.1:80     10.1.0.1:1025\n"
        );
        // NAT, DR and TUN rows: the kernel's listing byte for byte, no local column.
        let unspecified = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
        let rows: Vec<ConnEntry> = [
            (ForwardMethod::Masq, "ESTABLISHED", 61),
            (ForwardMethod::Route, "FIN_WAIT", 5),
            (ForwardMethod::Tunnel, "SYN_RECV", 3600),
        ]
        .into_iter()
        .map(|(forward, state, expires_in_s)| ConnEntry {
            forward,
            state: state.into(),
            expires_in_s,
            lip: unspecified,
            ..c.clone()
        })
        .collect();
        assert_eq!(
            connections(&rows, &numeric(), &Numeric),
            "IPVS connection entries\n\
             pro expire state       source             virtual            destination\n\
             TCP 01:01  ESTABLISHED 1.2.3.4:5555       10.0.0.1:80        192.168.1.1:80\n\
             TCP 00:05  FIN_WAIT    1.2.3.4:5555       10.0.0.1:80        192.168.1.1:80\n\
             TCP 60:00  SYN_RECV    1.2.3.4:5555       10.0.0.1:80        192.168.1.1:80\n"
        );
        assert_eq!(
            connections(&[], &numeric(), &Numeric),
            "IPVS connection entries\n\
             pro expire state       source             virtual            destination\n"
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

    /// Names as a test's /etc/hosts and /etc/services would give them.
    struct FakeNames;

    impl Names for FakeNames {
        fn host(&self, addr: Ipv4Addr) -> Option<String> {
            match addr.octets() {
                [10, 0, 0, 1] => Some("vip.test".into()),
                [192, 168, 1, 1] => Some("rs1.test".into()),
                [192, 168, 1, 9] => Some("a-rather-long-real-server-name.example.test".into()),
                [10, 0, 0, 9] => Some(format!("{}.test", "v".repeat(70))),
                _ => None,
            }
        }
        fn service(&self, port: u16, protocol: Protocol) -> Option<String> {
            match (port, protocol) {
                (80, Protocol::Tcp) => Some("http".into()),
                (53, Protocol::Udp) => Some("domain".into()),
                _ => None,
            }
        }
    }

    /// ipvsadm's `print_sched_flags`.
    #[test]
    fn sched_flags_print_as_ipvsadm() {
        let f = |bits| SchedFlags(bits);
        assert_eq!(sched_flags(f(3), Scheduler::Sh), "sh-fallback,sh-port");
        assert_eq!(sched_flags(f(2), Scheduler::Mh), "mh-port");
        assert_eq!(sched_flags(f(5), Scheduler::Rr), "flag-1,flag-3");
        assert_eq!(sched_flags(f(4), Scheduler::Sh), "", "sh names no flag-3");
        let mut s = Service::new(
            ServiceAddr::tcp(Ipv4Addr::new(10, 0, 0, 1), 80),
            Scheduler::Sh,
        );
        s.sched_flags = f(4);
        let l = Listing {
            rules: RuleSet {
                services: vec![s],
                ..RuleSet::default()
            },
            ..Listing::default()
        };
        assert!(
            list_all(&l, &numeric(), &Numeric).ends_with("TCP  10.0.0.1:80 sh ()\n"),
            "ipvsadm prints the parentheses whenever a flag is set"
        );
    }

    /// Without -n: `%s:%s` of host name and service name, numbers where none exist; the
    /// service column cut at 33, the real's at 28 (`svc_name[33]`, `dname[28]`).
    #[test]
    fn names_replace_numbers_without_n() {
        let mut l = listing();
        let mut long = Service::new(
            ServiceAddr::tcp(Ipv4Addr::new(10, 0, 0, 9), 8080),
            Scheduler::Wlc,
        );
        long.reals
            .push(Real::new(Ipv4Addr::new(192, 168, 1, 9), 80, 1));
        let mut fw = Service::new(ServiceAddr::Fwmark(3), Scheduler::Rr);
        fw.reals
            .push(Real::new(Ipv4Addr::new(192, 168, 1, 1), 80, 1));
        fw.reals
            .push(Real::new(Ipv4Addr::new(192, 168, 1, 1), 0, 1));
        l.rules.services.push(long);
        l.rules.services.push(fw);
        let text = list_all(&l, &ListFormat::default(), &FakeNames);
        let real = |name: &str, w: u32, a: u32, i: u32| {
            format!("  -> {name:<28} {:<7} {w:<6} {a:<10} {i:<10}\n", "FullNat")
        };
        let long_svc = format!("TCP  {}.test:8080", "v".repeat(70));
        let mut want = String::from(
            "IP Virtual Server version 1.2.1 (size=4096)\n\
             Prot LocalAddress:Port Scheduler Flags\n\
             \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        );
        want.push_str("TCP  vip.test:http rr\n");
        want.push_str(&real("rs1.test:http", 2, 3, 4));
        want.push_str(&real("192.168.1.2:http", 1, 0, 0));
        // addrport_to_anyname's 60-byte buffer keeps 59 bytes, then svc_name[33].
        want.push_str(&format!("{} wlc\n", &long_svc[..33]));
        want.push_str(&real(
            &"a-rather-long-real-server-name.example.test:http"[..28],
            1,
            0,
            0,
        ));
        want.push_str("UDP  vip.test:domain wrr persistent 360 mask 255.255.255.0\n");
        // A firewall-mark service's reals are looked up as TCP (ipvsadm stores TCP for -f).
        want.push_str("FWM  3 rr\n");
        want.push_str(&real("rs1.test:0", 1, 0, 0));
        want.push_str(&real("rs1.test:http", 1, 0, 0));
        assert_eq!(text, want);
        // -n never asks.
        assert_eq!(
            list_all(&l, &numeric(), &FakeNames),
            list_all(&l, &numeric(), &Numeric)
        );
        // -c: every endpoint named with the connection's protocol; `%-18s` pads, never cuts.
        let c = ConnEntry {
            worker: 0,
            protocol: Protocol::Udp,
            client: SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 5555),
            vip: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 53),
            lip: SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 1), 1025),
            rs: SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 9), 53),
            state: "UDP".into(),
            expires_in_s: 300,
            forward: ForwardMethod::FullNat,
        };
        assert_eq!(
            connections(&[c], &ListFormat::default(), &FakeNames),
            format!(
                "IPVS connection entries\n\
                 pro expire state       source             virtual            destination        local\n\
                 {:<3} {:<6} {:<11} {:<18} {:<18} {:<18} {}\n",
                "UDP",
                "05:00",
                "UDP",
                "1.2.3.4:5555",
                "vip.test:domain",
                "a-rather-long-real-server-name.example.test:domain",
                "10.1.0.1:1025",
            )
        );
        // -S without -n writes names too (whole: no column to fit).
        let saved = save(&l.rules, &ListFormat::default(), &FakeNames);
        assert!(
            saved.starts_with(
                "-A -t vip.test:http -s rr\n-a -t vip.test:http -r rs1.test:http -b -w 2\n"
            ),
            "{saved}"
        );
        assert!(
            saved.contains(&format!("-A -t {} -s wlc\n", "v".repeat(59))),
            "cut at 59 bytes like addrport_to_anyname: {saved}"
        );
        assert!(
            saved.contains("-a -f 3 -r rs1.test:http -b -w 1\n"),
            "{saved}"
        );
    }

    /// `--proxy-protocol` and `--toa` are written by `-S` so that `-R` restores them.
    #[test]
    fn save_writes_client_address_options_that_parse_back() {
        let args = |line: &str| {
            line.split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let cmd = crate::ipvsadm::args::parse(&args(
            "-A -t 198.18.0.100:80 -s rr --proxy-protocol v2-insecure --toa",
        ))
        .unwrap();
        let crate::ipvsadm::args::IpvsCommand::Change(crate::edit::Change::ServiceAdd { service }) =
            cmd
        else {
            panic!("not an add: {cmd:?}")
        };
        assert_eq!(
            service.proxy_protocol,
            crate::model::ProxyProtocol::V2Insecure
        );
        assert!(service.toa);
        let rules = RuleSet {
            services: vec![service.clone()],
            ..RuleSet::default()
        };
        let saved = save(&rules, &numeric(), &Numeric);
        assert_eq!(
            saved,
            "-A -t 198.18.0.100:80 -s rr --proxy-protocol v2-insecure --toa\n"
        );
        let again = crate::ipvsadm::args::parse(&args(saved.trim())).unwrap();
        assert_eq!(
            again,
            crate::ipvsadm::args::IpvsCommand::Change(crate::edit::Change::ServiceAdd { service })
        );
        assert!(
            crate::ipvsadm::args::parse(&args("-A -t 198.18.0.100:80 --proxy-protocol v3"))
                .is_err()
        );
    }

    /// `-j` (DPVS's short form) and `--synproxy` set the SYN proxy; `-S` writes it back.
    #[test]
    fn save_writes_synproxy_that_parses_back() {
        let args = |line: &str| {
            line.split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let cmd = crate::ipvsadm::args::parse(&args("-A -t 198.18.0.100:80 -s rr -j")).unwrap();
        let crate::ipvsadm::args::IpvsCommand::Change(crate::edit::Change::ServiceAdd { service }) =
            cmd
        else {
            panic!("not an add: {cmd:?}")
        };
        assert!(service.synproxy);
        let rules = RuleSet {
            services: vec![service.clone()],
            ..RuleSet::default()
        };
        let saved = save(&rules, &numeric(), &Numeric);
        assert_eq!(saved, "-A -t 198.18.0.100:80 -s rr --synproxy\n");
        let again = crate::ipvsadm::args::parse(&args(saved.trim())).unwrap();
        assert_eq!(
            again,
            crate::ipvsadm::args::IpvsCommand::Change(crate::edit::Change::ServiceAdd { service })
        );
    }

    /// `-S`: `-A SVC -s SCHED`, then ` -p %u`, ` -M %s`, ` -o`, then the flags (ipvsadm's
    /// order); reals `-a SVC -r RS FWD -w %d`.
    #[test]
    fn save_orders_options_as_ipvsadm() {
        let mut s = Service::new(
            ServiceAddr::udp(Ipv4Addr::new(10, 0, 0, 1), 53),
            Scheduler::Sh,
        );
        s.sched_flags = SchedFlags(3);
        s.persistence = Some(Persistence {
            timeout: 600,
            netmask: Ipv4Addr::new(255, 255, 0, 0),
        });
        s.one_packet = true;
        let mut r = Real::new(Ipv4Addr::new(192, 168, 1, 1), 53, 4);
        r.upper_threshold = 100;
        s.reals.push(r);
        let rules = RuleSet {
            services: vec![s],
            ..RuleSet::default()
        };
        assert_eq!(
            save(&rules, &numeric(), &Numeric),
            "-A -u 10.0.0.1:53 -s sh -p 600 -M 255.255.0.0 -o -b sh-fallback,sh-port\n\
             -a -u 10.0.0.1:53 -r 192.168.1.1:53 -b -w 4 -x 100\n"
        );
    }

    /// `--nosort`: services as configured, reals newest first (the kernel's and DPVS's
    /// list order); sorted otherwise.
    #[test]
    fn nosort_keeps_the_dataplane_order() {
        let f = ListFormat {
            numeric: true,
            nosort: true,
            ..ListFormat::default()
        };
        let text = list_all(&listing(), &f, &Numeric);
        let lines: Vec<&str> = text.lines().skip(3).collect();
        assert_eq!(
            lines,
            [
                "UDP  10.0.0.1:53 wrr persistent 360 mask 255.255.255.0",
                "TCP  10.0.0.1:80 rr",
                "  -> 192.168.1.1:80               FullNat 2      3          4         ",
                "  -> 192.168.1.2:80               FullNat 1      0          0         ",
            ]
        );
    }

    /// --rate, --thresholds, --persistent-conn rows, from their printf formats.
    #[test]
    fn rate_thresholds_and_persistent_conn_rows() {
        let mut l = listing();
        l.rules.services[1].reals[1].upper_threshold = 1000;
        l.rules.services[1].reals[1].lower_threshold = 10;
        let st = &mut l.stats[0];
        st.counters.cps = 12;
        st.counters.in_bps = 2_000_000_000;
        st.reals[0].counters = Counters {
            cps: 7,
            in_pps: 123_456_789,
            out_pps: 3,
            in_bps: 150_000_000,
            out_bps: 5,
            ..Counters::default()
        };
        st.reals[0].persistent_conns = 9;
        let fmt = |f: fn(&mut ListFormat)| {
            let mut x = numeric();
            f(&mut x);
            list_all(&l, &x, &Numeric)
        };
        let rate = fmt(|f| f.rate = true);
        assert!(rate.contains(&format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )));
        // Service: print_largenum ×5. Real: `%8llu %8llu %8llu` (not scaled), then ×2.
        assert!(
            rate.contains(&format!(
                "{:<33}{:>9}{:>9}{:>9}{:>8}M{:>9}\n",
                "TCP  10.0.0.1:80", 12, 0, 0, 2000, 0
            )),
            "{rate}"
        );
        assert!(
            rate.contains(&format!(
                "  -> {:<28} {:>8} {:>8} {:>8}{:>8}K{:>9}\n",
                "192.168.1.1:80", 7, 123_456_789, 3, 150_000, 5
            )),
            "{rate}"
        );
        let thr = fmt(|f| f.thresholds = true);
        assert!(thr.contains(&format!(
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )));
        assert!(
            thr.contains(&format!(
                "  -> {:<28} {:<10} {:<10} {:<10} {:<10}\n",
                "192.168.1.1:80", 1000, 10, 3, 4
            )),
            "{thr}"
        );
        let pc = fmt(|f| f.persistent_conn = true);
        assert!(pc.contains(&format!(
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        )));
        assert!(
            pc.contains(&format!(
                "  -> {:<28} {:<9} {:<11} {:<10} {:<10}\n",
                "192.168.1.1:80", 2, 9, 3, 4
            )),
            "{pc}"
        );
        // Service rows of these views are the plain `%s %s` line.
        assert!(thr.contains("\nTCP  10.0.0.1:80 rr\n") && pc.contains("\nTCP  10.0.0.1:80 rr\n"));
    }

    /// DPVS's -G: title, `%-20s %-8u ` per service, `%-20s %-8s %-20s %-10lu %-10u` per
    /// address with its counters.
    #[test]
    fn local_addresses_carry_their_counters() {
        let l = listing();
        let stats = [LaddrStats {
            addr: Ipv4Addr::new(10, 1, 0, 1),
            ports_in_use: 42,
            exhausted: 3,
        }];
        let text = local_addresses(ordered(l.rules.services.iter(), false).into_iter(), &stats);
        assert_eq!(
            text,
            format!(
                "{:<20} {:<8} {:<20} {:<10} {:<10}\n{:<20} {:<8} \n{:<20} {:<8} {:<20} {:<10} {:<10}\n{:<20} {:<8} \n",
                "VIP:VPORT", "TOTAL", "SNAT_IP", "CONFLICTS", "CONNS",
                "10.0.0.1:80", 1,
                "", "", "10.1.0.1", 3, 42,
                "10.0.0.1:53", 0
            )
        );
    }
}
