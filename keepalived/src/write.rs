//! The other direction: the live rules (the one rule model, [`RuleSet`]) written as a
//! keepalived.conf that fnatd's keepalived reader (`--keepalived`, `reload`) turns back into
//! the same services (`fnatctl export-keepalived`).
//!
//! What keepalived.conf cannot say is refused with a named reason ([`Refusal`]) rather than
//! written half: per-service `expire_on_removal` (IPVS's `expire_nodest_conn` is a sysctl, not
//! a keepalived keyword), local-address devices that are not one word. ipvsadm's timeouts
//! (`fnatctl timeout set`) are keepalived's `global_defs { lvs_timeouts … }`. Firewall marks are not rules of keepalived's grammar (keepalived
//! leaves them to iptables): `virtual_server fwmark N` is written, and the mark's
//! definition stays where the reader takes it from, fnatd's config (`[[port_group]]`); the
//! file lists them in a comment. Health checkers are not part of the rule model, so none are
//! written.

use std::fmt::Write;
use std::net::Ipv4Addr;

use fnat_proto::model::{
    ForwardMethod, Protocol, Real, RuleSet, SchedFlags, Service, ServiceAddr, TunnelType,
};

/// Why the live rules cannot be written as keepalived.conf without losing something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The rule that cannot be expressed (`tcp/198.18.0.100:80`, `timeouts`, …).
    pub rule: String,
    /// The setting keepalived.conf has no keyword for.
    pub setting: &'static str,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} cannot be written in keepalived.conf: {}",
            self.rule, self.setting, self.reason
        )
    }
}

/// keepalived's method keyword (`lb_kind`) for a forwarding method.
pub fn method_keyword(method: ForwardMethod) -> &'static str {
    match method {
        ForwardMethod::FullNat => "FNAT",
        ForwardMethod::Masq => "NAT",
        ForwardMethod::Route => "DR",
        ForwardMethod::Tunnel => "TUN",
        ForwardMethod::Snat => "SNAT",
    }
}

/// keepalived's method words for a real server: `lb_kind`'s keyword, with the tunnel's type,
/// port and checksum for a GUE or GRE tunnel (`TUN type gue port 6080 csum`).
fn method_words(r: &Real) -> String {
    let keyword = method_keyword(r.forward);
    let t = &r.tunnel;
    if r.forward != ForwardMethod::Tunnel || t.kind == TunnelType::Ipip {
        return keyword.to_string();
    }
    let csum = if t.csum { " csum" } else { "" };
    match t.kind {
        TunnelType::Gue => format!("{keyword} type gue port {}{csum}", t.port),
        _ => format!("{keyword} type gre{csum}"),
    }
}

fn service_name(s: &Service) -> String {
    match s.addr {
        ServiceAddr::Inet {
            protocol,
            vip,
            port,
        } => format!("{}/{vip}:{port}", protocol.name()),
        ServiceAddr::Fwmark(mark) => format!("fwmark/{mark}"),
        ServiceAddr::Match(ref m) => format!("match/{m}"),
    }
}

/// A word keepalived's reader takes back as itself: no blanks, comments, braces or quotes.
fn is_word(text: &str) -> bool {
    !text.is_empty()
        && !text
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '#' | '!' | '{' | '}' | '"'))
}

/// Checks that every rule of `rules` can be written; the first that cannot is refused.
pub fn check(rules: &RuleSet) -> Result<(), Refusal> {
    for s in &rules.services {
        if matches!(s.addr, ServiceAddr::Match(_)) {
            return Err(Refusal {
                rule: service_name(s),
                setting: "match",
                reason: "keepalived.conf has no SNAT match service (DPVS's fork only)".into(),
            });
        }
        if s.expire_on_removal {
            return Err(Refusal {
                rule: service_name(s),
                setting: "expire_on_removal",
                reason: "keepalived has no keyword for it (IPVS's expire_nodest_conn is a \
                         sysctl)"
                    .into(),
            });
        }
        if s.conn_rate.is_some() {
            return Err(Refusal {
                rule: service_name(s),
                setting: "conn_rate",
                reason: "keepalived has no keyword for a per-prefix new-connection cap".into(),
            });
        }
        for l in &s.local_addresses {
            if let Some(dev) = &l.device {
                if !is_word(dev) {
                    return Err(Refusal {
                        rule: service_name(s),
                        setting: "local address device",
                        reason: format!("'{dev}' is not one word"),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The name of the `local_address_group` written for the `i`-th service (0-based).
fn laddr_group(i: usize) -> String {
    format!("fnat_laddr_{}", i + 1)
}

/// Writes `rules` as keepalived.conf (after [`check`]): one `virtual_server` per service in
/// rule order, each with its own `local_address_group` when it has local addresses.
pub fn write(rules: &RuleSet) -> Result<String, Refusal> {
    check(rules)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# keepalived.conf written by fnatctl export-keepalived from fnatd's live rules.\n\
         # fnatd reads it back with --keepalived (interfaces name fnatd ports)."
    );
    let t = &rules.timeouts;
    if !t.is_empty() {
        let mut line = String::from("    lvs_timeouts");
        for (name, v) in [("tcp", t.tcp), ("tcpfin", t.tcp_fin), ("udp", t.udp)] {
            if let Some(v) = v {
                let _ = write!(line, " {name} {v}");
            }
        }
        let _ = writeln!(out, "\nglobal_defs {{\n{line}\n}}");
    }
    if !rules.marks.is_empty() {
        let _ = writeln!(
            out,
            "# Firewall marks of the fwmark virtual servers (defined in fnatd's config as \
             [[port_group]]):"
        );
        for m in &rules.marks {
            let _ = writeln!(
                out,
                "#   fwmark {} = {} {} ports {}",
                m.mark,
                m.protocol.name(),
                m.vip,
                m.ports
            );
        }
    }
    for (i, s) in rules.services.iter().enumerate() {
        for (block, entries) in [("deny", &s.deny), ("allow", &s.allow)] {
            if entries.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{block}_address_group fnat_{block}_{} {{", i + 1);
            for p in entries {
                let _ = writeln!(out, "    {p}");
            }
            let _ = writeln!(out, "}}");
        }
    }
    for (i, s) in rules.services.iter().enumerate() {
        if s.local_addresses.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\nlocal_address_group {} {{", laddr_group(i));
        for l in &s.local_addresses {
            match &l.device {
                Some(dev) => {
                    let _ = writeln!(out, "    {} {dev}", l.addr);
                }
                None => {
                    let _ = writeln!(out, "    {}", l.addr);
                }
            }
        }
        let _ = writeln!(out, "}}");
    }
    for (i, s) in rules.services.iter().enumerate() {
        write_service(&mut out, s, i);
    }
    Ok(out)
}

fn write_service(out: &mut String, s: &Service, i: usize) {
    let vport = match s.addr {
        ServiceAddr::Inet {
            protocol,
            vip,
            port,
        } => {
            let _ = writeln!(out, "\nvirtual_server {vip} {port} {{");
            let _ = writeln!(
                out,
                "    protocol {}",
                match protocol {
                    Protocol::Tcp => "TCP",
                    Protocol::Udp => "UDP",
                }
            );
            port
        }
        ServiceAddr::Fwmark(mark) => {
            let _ = writeln!(out, "\nvirtual_server fwmark {mark} {{");
            0
        }
        // Refused by `check`: keepalived.conf has no form for it.
        ServiceAddr::Match(_) => return,
    };
    let _ = writeln!(out, "    lb_algo {}", s.scheduler);
    for (bit, name) in [
        (SchedFlags::FLAG1, "flag-1"),
        (SchedFlags::FLAG2, "flag-2"),
        (SchedFlags::FLAG3, "flag-3"),
    ] {
        if s.sched_flags.0 & bit != 0 {
            let _ = writeln!(out, "    {name}");
        }
    }
    // The service's method is its first real server's; the others say theirs if different.
    let method = s.reals.first().map_or_else(
        || method_keyword(ForwardMethod::FullNat).to_string(),
        method_words,
    );
    let _ = writeln!(out, "    lb_kind {method}");
    if s.one_packet {
        let _ = writeln!(out, "    ops");
    }
    if !s.proxy_protocol.is_disabled() {
        let _ = writeln!(out, "    proxy_protocol {}", s.proxy_protocol);
    }
    if s.toa {
        let _ = writeln!(out, "    toa");
    }
    if s.synproxy {
        let _ = writeln!(out, "    syn_proxy");
    }
    if let Some(p) = s.persistence {
        let _ = writeln!(out, "    persistence_timeout {}", p.timeout);
        if p.netmask != Ipv4Addr::BROADCAST {
            let _ = writeln!(out, "    persistence_granularity {}", p.netmask);
        }
    }
    if !s.local_addresses.is_empty() {
        let _ = writeln!(out, "    laddr_group_name {}", laddr_group(i));
    }
    if !s.deny.is_empty() {
        let _ = writeln!(out, "    daddr_group_name fnat_deny_{}", i + 1);
    }
    if !s.allow.is_empty() {
        let _ = writeln!(out, "    waddr_group_name fnat_allow_{}", i + 1);
    }
    for r in &s.reals {
        if r.port == vport {
            let _ = writeln!(out, "    real_server {} {{", r.addr);
        } else {
            let _ = writeln!(out, "    real_server {} {} {{", r.addr, r.port);
        }
        let _ = writeln!(out, "        weight {}", r.weight);
        let words = method_words(r);
        if words != method {
            let _ = writeln!(out, "        lvs_method {words}");
        }
        if r.upper_threshold != 0 {
            let _ = writeln!(out, "        uthreshold {}", r.upper_threshold);
        }
        if r.lower_threshold != 0 {
            let _ = writeln!(out, "        lthreshold {}", r.lower_threshold);
        }
        let _ = writeln!(out, "    }}");
    }
    let _ = writeln!(out, "}}");
}
