//! keepalived's LVS configuration: `virtual_server_group`, `virtual_server` with its
//! `real_server`s and their checkers, with keepalived's defaults and inheritance (a setting on
//! the virtual server is the default of its real servers, a real server's the default of its
//! checkers). `vrrp_instance` blocks are read by [`crate::vrrp`]; other `vrrp_*` blocks are
//! kept for the HA work and reported as not supported yet;
//! unknown keywords are warnings naming file, line and keyword, as keepalived logs them.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use crate::diag::{Diagnostic, Diagnostics, Level, Location};
use crate::source::Reader;
use crate::tree::{build, Node};

/// What one keepalived.conf says, and everything wrong with it.
#[derive(Debug, Default)]
pub struct Config {
    pub router_id: Option<String>,
    /// `global_defs { notify_fifo PATH }`: gets VRRP's lines and the checker's (see
    /// [`Config::vrrp_fifos`], [`Config::lvs_fifos`]).
    pub notify_fifo: Option<String>,
    /// `global_defs { lvs_notify_fifo PATH }`: the checker's `VS …`/`RS …` state lines.
    pub lvs_notify_fifo: Option<String>,
    pub groups: Vec<VirtualServerGroup>,
    pub virtual_servers: Vec<VirtualServer>,
    /// `local_address_group` blocks (DPVS's keepalived).
    pub local_address_groups: Vec<LocalAddressGroup>,
    /// `deny_address_group NAME { A.B.C.D[/LEN] … }` blocks (DPVS's blacklist groups, also
    /// spelled `blklst_addr_group`), named by a virtual server's `daddr_group_name`.
    pub deny_address_groups: Vec<LocalAddressGroup>,
    /// `allow_address_group NAME { … }` (also `whtlst_addr_group`), named by
    /// `waddr_group_name`.
    pub allow_address_groups: Vec<LocalAddressGroup>,
    /// `global_defs { lvs_timeouts … }`: IPVS's timeouts, with where they were set.
    pub lvs_timeouts: Option<(Location, LvsTimeouts)>,
    /// `vrrp_*` blocks other than `vrrp_instance`, untouched, for the HA work.
    pub vrrp: Vec<Node>,
    /// `vrrp_instance` blocks, read (see [`crate::vrrp`]).
    pub vrrp_instances: Vec<crate::vrrp::VrrpInstance>,
    /// `vrrp_sync_group` blocks, read (see [`crate::vrrp::sync_group`]).
    pub vrrp_sync_groups: Vec<crate::vrrp::VrrpSyncGroup>,
    /// `vrrp_script` blocks, read (see [`crate::vrrp::script_block`]).
    pub vrrp_scripts: Vec<crate::vrrp::VrrpScript>,
    /// `global_defs { vrrp_notify_fifo PATH }`: VRRP's `INSTANCE "NAME" STATE PRIORITY` and
    /// `GROUP "NAME" STATE 0` lines.
    pub vrrp_notify_fifo: Option<String>,
    /// `global_defs { lvs_sync_daemon … }` (see [`crate::sync`]).
    pub lvs_sync_daemon: Option<crate::sync::LvsSyncDaemon>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Config {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.level == Level::Error)
    }

    /// Where VRRP's lines go, as keepalived writes them: `notify_fifo` and
    /// `vrrp_notify_fifo` (see [`crate::notify_fifo`]).
    pub fn vrrp_fifos(&self) -> Vec<std::path::PathBuf> {
        fifos(&self.notify_fifo, &self.vrrp_notify_fifo)
    }

    /// Where the checker's lines go: `notify_fifo` and `lvs_notify_fifo`.
    pub fn lvs_fifos(&self) -> Vec<std::path::PathBuf> {
        fifos(&self.notify_fifo, &self.lvs_notify_fifo)
    }
}

fn fifos(global: &Option<String>, own: &Option<String>) -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = Vec::new();
    for p in [global, own].into_iter().flatten() {
        if !out.iter().any(|o| o.as_os_str() == p.as_str()) {
            out.push(p.into());
        }
    }
    out
}

/// keepalived's `lvs_timeouts [tcp N] [tcpfin N] [udp N]` (seconds): what `ipvsadm --set`
/// sets; each one not given stays as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LvsTimeouts {
    pub tcp: Option<u32>,
    pub tcpfin: Option<u32>,
    pub udp: Option<u32>,
}

/// DPVS's `local_address_group NAME { IP PORTNAME … }`: full-NAT's local addresses.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalAddressGroup {
    pub at: Location,
    pub name: String,
    /// Each address with the DPVS port (interface) name it lives on, when given.
    pub addresses: Vec<(String, Option<String>)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum VirtualServerKey {
    Address { ip: IpAddr, port: Option<u16> },
    Fwmark(u32),
    Group(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum GroupMember {
    /// An address or range (`192.168.200.3-10`, `a-b`, `a/nn`) and its port.
    Range {
        first: IpAddr,
        last: IpAddr,
        port: Option<u16>,
    },
    Fwmark(u32),
}

#[derive(Clone, Debug, PartialEq)]
pub struct VirtualServerGroup {
    pub at: Location,
    pub name: String,
    pub members: Vec<GroupMember>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Nat,
    Dr,
    Tun {
        kind: TunnelKind,
        checksum: Option<String>,
    },
    /// DPVS's full-NAT.
    FullNat,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TunnelKind {
    Ipip,
    Gue { port: u16 },
    Gre,
}

/// Checker timing, after inheritance: what one probe may take and how often it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    pub connect_timeout: Duration,
    pub retry: u32,
    pub delay_before_retry: Duration,
    pub delay_loop: Duration,
    pub warmup: Option<Duration>,
    pub alpha: bool,
    pub inhibit_on_failure: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VirtualServer {
    pub at: Location,
    pub key: VirtualServerKey,
    pub protocol: Protocol,
    pub scheduler: String,
    pub flags: Vec<String>,
    pub ops: bool,
    /// `proxy_protocol v1|v2|v1-insecure|v2-insecure|disable` (DPVS's keepalived).
    pub proxy_protocol: Option<String>,
    /// `toa`: TCP option 254 toward the real servers.
    pub toa: bool,
    /// `syn_proxy`: SYN cookies answer the clients' SYNs (DPVS's keepalived).
    pub syn_proxy: bool,
    /// `lvs_method`/`lb_kind`; keepalived's default is NAT.
    pub method: Method,
    pub persistence_timeout: Option<u32>,
    pub persistence_granularity: Option<String>,
    pub quorum: u32,
    pub hysteresis: u32,
    pub quorum_up: Option<String>,
    pub quorum_down: Option<String>,
    pub omega: bool,
    pub sorry_server: Option<(IpAddr, Option<u16>)>,
    pub sorry_server_inhibit: bool,
    pub virtualhost: Option<String>,
    pub laddr_group_name: Option<String>,
    /// DPVS's `daddr_group_name` (deny list) and `waddr_group_name` (allow list).
    pub daddr_group_name: Option<String>,
    pub waddr_group_name: Option<String>,
    pub establish_timeout: Option<u32>,
    pub reals: Vec<RealServer>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RealServer {
    pub at: Location,
    pub ip: IpAddr,
    pub port: Option<u16>,
    pub weight: i64,
    pub method: Method,
    pub uthreshold: u32,
    pub lthreshold: u32,
    pub notify_up: Option<String>,
    pub notify_down: Option<String>,
    pub checkers: Vec<Checker>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Checker {
    pub at: Location,
    pub kind: CheckerKind,
    pub connect_ip: Option<IpAddr>,
    pub connect_port: Option<u16>,
    pub bindto: Option<IpAddr>,
    pub bind_port: Option<u16>,
    pub timing: Timing,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CheckerKind {
    Tcp,
    Http {
        tls: bool,
        urls: Vec<Url>,
        http_protocol: Option<String>,
        virtualhost: Option<String>,
    },
    Misc {
        path: String,
        timeout: Option<Duration>,
        dynamic: bool,
    },
    Udp {
        payload: Option<String>,
        require_reply: Option<String>,
    },
    Dns {
        query_type: String,
        name: String,
    },
    Ping,
    Smtp {
        helo_name: Option<String>,
    },
    /// BFD_CHECK and FILE_CHECK: parsed, not run by fnat.
    Other(String),
}

impl CheckerKind {
    /// The keyword that declares this checker in keepalived.conf.
    pub fn keyword(&self) -> &str {
        match self {
            CheckerKind::Tcp => "TCP_CHECK",
            CheckerKind::Http { tls: false, .. } => "HTTP_GET",
            CheckerKind::Http { tls: true, .. } => "SSL_GET",
            CheckerKind::Misc { .. } => "MISC_CHECK",
            CheckerKind::Udp { .. } => "UDP_CHECK",
            CheckerKind::Dns { .. } => "DNS_CHECK",
            CheckerKind::Ping => "PING_CHECK",
            CheckerKind::Smtp { .. } => "SMTP_CHECK",
            CheckerKind::Other(keyword) => keyword,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Url {
    pub path: String,
    pub digest: Option<String>,
    /// Inclusive ranges; keepalived's default is 200-299.
    pub status_codes: Vec<(u16, u16)>,
    pub virtualhost: Option<String>,
}

/// Reads `path` (and what it includes) with keepalived's default config id, the host name
/// up to its first dot.
pub fn read_file(path: &Path) -> Config {
    let mut diags = Diagnostics::default();
    let lines = Reader::new(&default_config_id(), &mut diags).read_file(path);
    finish(&lines, diags)
}

/// Reads `text` as the file `name`.
pub fn read_str(name: &str, text: &str, config_id: &str) -> Config {
    let mut diags = Diagnostics::default();
    let lines = Reader::new(config_id, &mut diags).read_str(name, text);
    finish(&lines, diags)
}

fn default_config_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .split('.')
        .next()
        .unwrap_or("")
        .to_string()
}

fn finish(lines: &[crate::source::Line], mut diags: Diagnostics) -> Config {
    let nodes = build(lines, &mut diags);
    let mut config = Config::default();
    for node in &nodes {
        top_level(node, &mut config, &mut diags);
    }
    // `global_defs { vrrp_version }` applies wherever it stands.
    let version = nodes
        .iter()
        .filter(|n| n.keyword == "global_defs")
        .flat_map(children)
        .filter(|n| n.keyword == "vrrp_version")
        .filter_map(|n| number::<u8>(n, &mut diags))
        .next_back()
        .unwrap_or(2);
    for node in nodes.iter().filter(|n| n.keyword == "vrrp_script") {
        if let Some(s) = crate::vrrp::script_block(node, &mut diags) {
            config.vrrp_scripts.push(s);
        }
    }
    let mut garp = crate::vrrp::GarpDefaults::default();
    for n in nodes
        .iter()
        .filter(|n| n.keyword == "global_defs")
        .flat_map(children)
    {
        garp.read(n, &mut diags);
    }
    for node in nodes.iter().filter(|n| n.keyword == "vrrp_instance") {
        if let Some(mut v) = crate::vrrp::instance(node, version, garp, &mut diags) {
            // As keepalived: an unknown script is a warning, and not tracked.
            v.track_script.retain(|t| {
                let known = config.vrrp_scripts.iter().any(|s| s.name == t.name);
                if !known {
                    diags.warning(
                        &t.at,
                        "track_script",
                        format!("no vrrp_script is named {}: not tracked", t.name),
                    );
                }
                known
            });
            config.vrrp_instances.push(v);
        }
    }
    for node in nodes.iter().filter(|n| n.keyword == "vrrp_sync_group") {
        let g = crate::vrrp::sync_group(
            node,
            &config.vrrp_instances,
            &config.vrrp_sync_groups,
            &mut diags,
        );
        if let Some(g) = g {
            config.vrrp_sync_groups.push(g);
        }
    }
    for vs in &config.virtual_servers {
        if let VirtualServerKey::Group(name) = &vs.key {
            if !config.groups.iter().any(|g| &g.name == name) {
                diags.error(
                    &vs.at,
                    "virtual_server",
                    format!("group {name} is not defined by a virtual_server_group"),
                );
            }
        }
    }
    config.diagnostics = diags.list;
    config
}

fn top_level(node: &Node, config: &mut Config, diags: &mut Diagnostics) {
    match node.keyword.as_str() {
        "global_defs" => {
            for n in children(node) {
                match n.keyword.as_str() {
                    "router_id" => config.router_id = n.args.first().cloned(),
                    "lvs_timeouts" => {
                        if let Some(t) = lvs_timeouts(n, diags) {
                            config.lvs_timeouts = Some((n.at.clone(), t));
                        }
                    }
                    "notify_fifo" => config.notify_fifo = fifo_path(n, diags),
                    "lvs_notify_fifo" => config.lvs_notify_fifo = fifo_path(n, diags),
                    "vrrp_notify_fifo" => config.vrrp_notify_fifo = fifo_path(n, diags),
                    "lvs_sync_daemon" => {
                        config.lvs_sync_daemon = crate::sync::lvs_sync_daemon(n, diags);
                    }
                    // Mail, SNMP, D-Bus and process settings concern keepalived's own daemon.
                    _ => {}
                }
            }
        }
        "virtual_server_group" => {
            if let Some(group) = group(node, diags) {
                config.groups.push(group);
            }
        }
        "virtual_server" => {
            if let Some(vs) = virtual_server(node, diags) {
                config.virtual_servers.push(vs);
            }
        }
        "deny_address_group"
        | "blklst_addr_group"
        | "allow_address_group"
        | "whtlst_addr_group" => {
            let Some(name) = one_arg(node, diags) else {
                return;
            };
            let group = LocalAddressGroup {
                at: node.at.clone(),
                name,
                addresses: children(node)
                    .iter()
                    .map(|n| (n.keyword.clone(), None))
                    .collect(),
            };
            if matches!(
                node.keyword.as_str(),
                "deny_address_group" | "blklst_addr_group"
            ) {
                config.deny_address_groups.push(group);
            } else {
                config.allow_address_groups.push(group);
            }
        }
        "local_address_group" => {
            let Some(name) = one_arg(node, diags) else {
                return;
            };
            let addresses = children(node)
                .iter()
                .map(|n| (n.keyword.clone(), n.args.first().cloned()))
                .collect();
            config.local_address_groups.push(LocalAddressGroup {
                at: node.at.clone(),
                name,
                addresses,
            });
        }
        // Read after the rest (`finish`), with the global `vrrp_version`.
        "vrrp_instance" | "vrrp_sync_group" | "vrrp_script" => {}
        k if k.starts_with("vrrp_")
            || k == "static_ipaddress"
            || k == "static_routes"
            || k == "static_rules" =>
        {
            diags.warning(
                &node.at,
                k,
                "not supported yet (fnat runs vrrp_instance blocks): block kept, not applied",
            );
            config.vrrp.push(node.clone());
        }
        "SSL" | "linkbeat_use_polling" | "track_file" | "bfd_instance" => {}
        k => diags.warning(&node.at, k, "unknown keyword: ignored"),
    }
}

pub(crate) fn children(node: &Node) -> &[Node] {
    node.block.as_deref().unwrap_or(&[])
}

pub(crate) fn one_arg(node: &Node, diags: &mut Diagnostics) -> Option<String> {
    match node.args.first() {
        Some(a) => Some(a.clone()),
        None => {
            diags.error(&node.at, &node.keyword, "a value is required");
            None
        }
    }
}

/// `notify_fifo PATH [username [groupname]]` (and the `vrrp_`/`lvs_` ones): the path. The
/// FIFO's owner is fnatd's (a warning when one is given).
fn fifo_path(node: &Node, diags: &mut Diagnostics) -> Option<String> {
    let path = one_arg(node, diags)?;
    if node.args.len() > 1 {
        diags.warning(
            &node.at,
            &node.keyword,
            "username/groupname not supported: the FIFO is made with fnatd's owner",
        );
    }
    Some(path)
}

/// `lvs_timeouts [tcp N] [tcpfin N] [udp N]`, in any order.
fn lvs_timeouts(node: &Node, diags: &mut Diagnostics) -> Option<LvsTimeouts> {
    let mut t = LvsTimeouts::default();
    let mut args = node.args.iter();
    while let Some(name) = args.next() {
        let slot = match name.as_str() {
            "tcp" => &mut t.tcp,
            "tcpfin" => &mut t.tcpfin,
            "udp" => &mut t.udp,
            other => {
                diags.error(
                    &node.at,
                    &node.keyword,
                    format!("'{other}' is not tcp, tcpfin or udp"),
                );
                return None;
            }
        };
        match args.next().map(|v| (v, v.parse::<u32>())) {
            Some((_, Ok(v))) => *slot = Some(v),
            Some((v, Err(_))) => {
                diags.error(
                    &node.at,
                    &node.keyword,
                    format!("'{v}' is not a number of seconds for {name}"),
                );
                return None;
            }
            None => {
                diags.error(
                    &node.at,
                    &node.keyword,
                    format!("{name} needs a number of seconds"),
                );
                return None;
            }
        }
    }
    Some(t)
}

pub(crate) fn number<T: std::str::FromStr>(node: &Node, diags: &mut Diagnostics) -> Option<T> {
    let arg = one_arg(node, diags)?;
    match arg.parse() {
        Ok(v) => Some(v),
        Err(_) => {
            diags.error(
                &node.at,
                &node.keyword,
                format!("'{arg}' is not a valid number here"),
            );
            None
        }
    }
}

/// keepalived's <TIMER>: seconds, fractions allowed, microsecond resolution.
pub(crate) fn timer(node: &Node, diags: &mut Diagnostics) -> Option<Duration> {
    let arg = one_arg(node, diags)?;
    match arg.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=u32::MAX as f64).contains(&s) => {
            Some(Duration::from_micros((s * 1e6).round() as u64))
        }
        _ => {
            diags.error(
                &node.at,
                &node.keyword,
                format!("'{arg}' is not a time in seconds"),
            );
            None
        }
    }
}

/// keepalived's <BOOL>, where the keyword alone means true.
fn boolean(node: &Node, diags: &mut Diagnostics) -> bool {
    match node.args.first().map(|s| s.to_ascii_lowercase()) {
        None => true,
        Some(v) if matches!(v.as_str(), "on" | "true" | "yes") => true,
        Some(v) if matches!(v.as_str(), "off" | "false" | "no") => false,
        Some(v) => {
            diags.error(
                &node.at,
                &node.keyword,
                format!("'{v}' is not one of on|off|true|false|yes|no"),
            );
            false
        }
    }
}

pub(crate) fn address(text: &str, node: &Node, diags: &mut Diagnostics) -> Option<IpAddr> {
    match text.parse() {
        Ok(ip) => Some(ip),
        Err(_) => {
            diags.error(
                &node.at,
                &node.keyword,
                format!("'{text}' is not an IP address"),
            );
            None
        }
    }
}

fn port(text: &str, node: &Node, diags: &mut Diagnostics) -> Option<u16> {
    match text.parse() {
        Ok(p) => Some(p),
        Err(_) => {
            diags.error(
                &node.at,
                &node.keyword,
                format!("'{text}' is not a port (0 to 65535)"),
            );
            None
        }
    }
}

fn group(node: &Node, diags: &mut Diagnostics) -> Option<VirtualServerGroup> {
    let name = one_arg(node, diags)?;
    let mut members = Vec::new();
    for n in children(node) {
        if n.keyword == "fwmark" {
            if let Some(mark) = number(n, diags) {
                members.push(GroupMember::Fwmark(mark));
            }
            continue;
        }
        let port = match n.args.first() {
            Some(p) => Some(port(p, n, diags)?),
            None => None,
        };
        match range(&n.keyword) {
            Some((first, last)) => members.push(GroupMember::Range { first, last, port }),
            None => diags.error(&n.at, &n.keyword, "not an address, address range or fwmark"),
        }
    }
    Some(VirtualServerGroup {
        at: node.at.clone(),
        name,
        members,
    })
}

/// `a`, `a-b` (last octet or whole address), `a/nn` → first and last address.
fn range(text: &str) -> Option<(IpAddr, IpAddr)> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some((ip, ip));
    }
    if let Some((base, len)) = text.split_once('/') {
        let IpAddr::V4(base) = base.parse().ok()? else {
            return None;
        };
        let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        let first = u32::from(base) & mask;
        return Some((IpAddr::V4(first.into()), IpAddr::V4((first | !mask).into())));
    }
    let (first, last) = text.split_once('-')?;
    let first: IpAddr = first.parse().ok()?;
    if let Ok(last) = last.parse::<IpAddr>() {
        return (first.is_ipv4() == last.is_ipv4() && first <= last).then_some((first, last));
    }
    // Only the last byte (IPv4) or the last group (IPv6, in hex) given after the '-'.
    match first {
        IpAddr::V4(f) => {
            let octet: u8 = last.parse().ok()?;
            let mut o = f.octets();
            (octet >= o[3]).then(|| {
                o[3] = octet;
                (first, IpAddr::from(o))
            })
        }
        IpAddr::V6(f) => {
            let group = u16::from_str_radix(last, 16).ok()?;
            let mut g = f.segments();
            (group >= g[7]).then(|| {
                g[7] = group;
                (first, IpAddr::from(g))
            })
        }
    }
}

fn method(node: &Node, diags: &mut Diagnostics) -> Option<Method> {
    let kind = one_arg(node, diags)?;
    match kind.to_ascii_uppercase().as_str() {
        "NAT" => Some(Method::Nat),
        "DR" => Some(Method::Dr),
        "FNAT" => Some(Method::FullNat),
        "TUN" => {
            let args = &node.args[1..];
            let mut tunnel = TunnelKind::Ipip;
            let mut checksum = None;
            let mut i = 0;
            while i < args.len() {
                match args[i].as_str() {
                    "type" => {
                        match args.get(i + 1).map(String::as_str) {
                            Some("ipip") => tunnel = TunnelKind::Ipip,
                            Some("gre") => tunnel = TunnelKind::Gre,
                            Some("gue") => {
                                let gue_port =
                                    match (args.get(i + 2).map(String::as_str), args.get(i + 3)) {
                                        (Some("port"), Some(p)) => port(p, node, diags)?,
                                        _ => {
                                            diags.error(
                                                &node.at,
                                                &node.keyword,
                                                "TUN type gue needs 'port NUM'",
                                            );
                                            return None;
                                        }
                                    };
                                tunnel = TunnelKind::Gue { port: gue_port };
                                i += 2;
                            }
                            other => {
                                diags.error(
                                    &node.at,
                                    &node.keyword,
                                    format!("unknown tunnel type {other:?}"),
                                );
                                return None;
                            }
                        }
                        i += 2;
                    }
                    c @ ("nocsum" | "csum" | "remcsum") => {
                        checksum = Some(c.to_string());
                        i += 1;
                    }
                    other => {
                        diags.error(&node.at, &node.keyword, format!("unexpected '{other}'"));
                        return None;
                    }
                }
            }
            Some(Method::Tun {
                kind: tunnel,
                checksum,
            })
        }
        other => {
            diags.error(
                &node.at,
                &node.keyword,
                format!("'{other}' is not NAT, DR, TUN or FNAT"),
            );
            None
        }
    }
}

/// Timing settings a block may carry (virtual server, real server, checker): applied over
/// what the enclosing block gave.
fn timing_keyword(n: &Node, timing: &mut Timing, diags: &mut Diagnostics) -> bool {
    match n.keyword.as_str() {
        "connect_timeout" => {
            timing.connect_timeout = timer(n, diags).unwrap_or(timing.connect_timeout)
        }
        // nb_get_retry is keepalived 1.x's name, nb_sock_retry DPVS's.
        "retry" | "nb_get_retry" | "nb_sock_retry" => {
            timing.retry = number(n, diags).unwrap_or(timing.retry)
        }
        "delay_before_retry" => {
            timing.delay_before_retry = timer(n, diags).unwrap_or(timing.delay_before_retry)
        }
        "delay_loop" => timing.delay_loop = timer(n, diags).unwrap_or(timing.delay_loop),
        "warmup" => timing.warmup = timer(n, diags),
        "alpha" => timing.alpha = boolean(n, diags),
        "inhibit_on_failure" => timing.inhibit_on_failure = boolean(n, diags),
        _ => return false,
    }
    true
}

/// What a block set explicitly, so that checker-kind defaults apply only where nothing did.
#[derive(Default, Clone, Copy)]
struct Explicit {
    retry: bool,
    delay_before_retry: bool,
}

fn note_explicit(n: &Node, explicit: &mut Explicit) {
    match n.keyword.as_str() {
        "retry" | "nb_get_retry" | "nb_sock_retry" => explicit.retry = true,
        "delay_before_retry" => explicit.delay_before_retry = true,
        _ => {}
    }
}

fn virtual_server(node: &Node, diags: &mut Diagnostics) -> Option<VirtualServer> {
    let key = match node.args.as_slice() {
        [kind, mark] if kind == "fwmark" => match mark.parse() {
            Ok(m) => VirtualServerKey::Fwmark(m),
            Err(_) => {
                diags.error(
                    &node.at,
                    &node.keyword,
                    format!("'{mark}' is not a firewall mark"),
                );
                return None;
            }
        },
        [kind, name] if kind == "group" => VirtualServerKey::Group(name.clone()),
        [ip] => VirtualServerKey::Address {
            ip: address(ip, node, diags)?,
            port: None,
        },
        [ip, p] => VirtualServerKey::Address {
            ip: address(ip, node, diags)?,
            port: Some(port(p, node, diags)?),
        },
        _ => {
            diags.error(
                &node.at,
                &node.keyword,
                "expected IP [PORT], fwmark N or group NAME",
            );
            return None;
        }
    };
    let mut vs = VirtualServer {
        at: node.at.clone(),
        key,
        protocol: Protocol::Tcp,
        scheduler: "wlc".into(),
        flags: Vec::new(),
        ops: false,
        proxy_protocol: None,
        toa: false,
        syn_proxy: false,
        method: Method::Nat,
        persistence_timeout: None,
        persistence_granularity: None,
        quorum: 1,
        hysteresis: 0,
        quorum_up: None,
        quorum_down: None,
        omega: false,
        sorry_server: None,
        sorry_server_inhibit: false,
        virtualhost: None,
        laddr_group_name: None,
        daddr_group_name: None,
        waddr_group_name: None,
        establish_timeout: None,
        reals: Vec::new(),
    };
    let mut timing = Timing {
        connect_timeout: Duration::from_secs(5),
        retry: 1,
        delay_before_retry: Duration::from_secs(1),
        delay_loop: Duration::from_secs(60),
        warmup: None,
        alpha: false,
        inhibit_on_failure: false,
    };
    let mut explicit = Explicit::default();
    let mut real_nodes = Vec::new();
    for n in children(node) {
        note_explicit(n, &mut explicit);
        if timing_keyword(n, &mut timing, diags) {
            continue;
        }
        match n.keyword.as_str() {
            "lvs_sched" | "lb_algo" => {
                vs.scheduler = one_arg(n, diags).unwrap_or(vs.scheduler.clone())
            }
            "lvs_method" | "lb_kind" => vs.method = method(n, diags).unwrap_or(vs.method.clone()),
            "protocol" => match one_arg(n, diags).map(|p| p.to_ascii_uppercase()).as_deref() {
                Some("TCP") => vs.protocol = Protocol::Tcp,
                Some("UDP") => vs.protocol = Protocol::Udp,
                Some("SCTP") => vs.protocol = Protocol::Sctp,
                Some(other) => diags.error(
                    &n.at,
                    "protocol",
                    format!("'{other}' is not TCP, UDP or SCTP"),
                ),
                None => {}
            },
            "persistence_timeout" => {
                // Without a value keepalived takes ipvsadm's 360 s.
                vs.persistence_timeout = if n.args.is_empty() {
                    Some(360)
                } else {
                    number(n, diags)
                }
            }
            "persistence_granularity" => vs.persistence_granularity = one_arg(n, diags),
            "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port"
            | "mh-fallback" => vs.flags.push(n.keyword.clone()),
            "ops" => vs.ops = true,
            "proxy_protocol" => vs.proxy_protocol = one_arg(n, diags),
            "toa" => vs.toa = true,
            "syn_proxy" => vs.syn_proxy = true,
            "quorum" => vs.quorum = number(n, diags).unwrap_or(vs.quorum),
            "hysteresis" => vs.hysteresis = number(n, diags).unwrap_or(0),
            "quorum_up" => vs.quorum_up = Some(n.args.join(" ")),
            "quorum_down" => vs.quorum_down = Some(n.args.join(" ")),
            "omega" => vs.omega = true,
            "sorry_server" => {
                vs.sorry_server = match n.args.as_slice() {
                    [ip] => address(ip, n, diags).map(|ip| (ip, None)),
                    [ip, p] => address(ip, n, diags).zip(port(p, n, diags).map(Some)),
                    _ => {
                        diags.error(&n.at, "sorry_server", "expected IP [PORT]");
                        None
                    }
                }
            }
            "sorry_server_inhibit" => vs.sorry_server_inhibit = true,
            "virtualhost" => vs.virtualhost = one_arg(n, diags),
            "laddr_group_name" => vs.laddr_group_name = one_arg(n, diags),
            "daddr_group_name" => vs.daddr_group_name = one_arg(n, diags),
            "waddr_group_name" => vs.waddr_group_name = one_arg(n, diags),
            "establish_timeout" => vs.establish_timeout = number(n, diags),
            "real_server" => real_nodes.push(n),
            // keepalived settings that change nothing fnat does.
            "ha_suspend"
            | "smtp_alert"
            | "snmp_name"
            | "ip_family"
            | "persistence_engine"
            | "sorry_server_lvs_method"
            | "retry_interval" => {}
            k => diags.warning(&n.at, k, "unknown keyword in virtual_server: ignored"),
        }
    }
    for n in real_nodes {
        if let Some(rs) = real_server(n, &vs, &timing, explicit, diags) {
            vs.reals.push(rs);
        }
    }
    Some(vs)
}

fn real_server(
    node: &Node,
    vs: &VirtualServer,
    inherited: &Timing,
    explicit: Explicit,
    diags: &mut Diagnostics,
) -> Option<RealServer> {
    let (ip, port_) = match node.args.as_slice() {
        [ip] => (address(ip, node, diags)?, None),
        [ip, p] => (address(ip, node, diags)?, Some(port(p, node, diags)?)),
        _ => {
            diags.error(&node.at, &node.keyword, "expected IP [PORT]");
            return None;
        }
    };
    let mut rs = RealServer {
        at: node.at.clone(),
        ip,
        port: port_,
        weight: 1,
        method: vs.method.clone(),
        uthreshold: 0,
        lthreshold: 0,
        notify_up: None,
        notify_down: None,
        checkers: Vec::new(),
    };
    let mut timing = inherited.clone();
    let mut explicit = explicit;
    let mut checker_nodes = Vec::new();
    for n in children(node) {
        note_explicit(n, &mut explicit);
        if timing_keyword(n, &mut timing, diags) {
            continue;
        }
        match n.keyword.as_str() {
            "weight" => rs.weight = number(n, diags).unwrap_or(1),
            "lvs_method" | "lb_kind" => rs.method = method(n, diags).unwrap_or(rs.method.clone()),
            "uthreshold" => rs.uthreshold = number(n, diags).unwrap_or(0),
            "lthreshold" => rs.lthreshold = number(n, diags).unwrap_or(0),
            "notify_up" => rs.notify_up = Some(n.args.join(" ")),
            "notify_down" => rs.notify_down = Some(n.args.join(" ")),
            "smtp_alert" | "snmp_name" | "virtualhost" => {}
            k if k.ends_with("_CHECK") || k == "HTTP_GET" || k == "SSL_GET" => {
                checker_nodes.push(n)
            }
            k => diags.warning(&n.at, k, "unknown keyword in real_server: ignored"),
        }
    }
    for n in checker_nodes {
        if let Some(c) = checker(n, vs, &timing, explicit, diags) {
            rs.checkers.push(c);
        }
    }
    Some(rs)
}

fn checker(
    node: &Node,
    vs: &VirtualServer,
    inherited: &Timing,
    explicit: Explicit,
    diags: &mut Diagnostics,
) -> Option<Checker> {
    let mut timing = inherited.clone();
    let mut explicit = explicit;
    // Checker kinds with other defaults (keepalived.conf(5)): HTTP/SSL wait 3 s before a
    // retry, MISC_CHECK does not retry, DNS_CHECK retries 3 times after delay_loop.
    let kind_name = node.keyword.as_str();
    let mut checker = Checker {
        at: node.at.clone(),
        kind: CheckerKind::Tcp,
        connect_ip: None,
        connect_port: None,
        bindto: None,
        bind_port: None,
        timing: timing.clone(),
    };
    let mut urls = Vec::new();
    let mut http_protocol = None;
    let mut virtualhost = vs.virtualhost.clone();
    let mut misc_path = None;
    let mut misc_timeout = None;
    let mut misc_dynamic = false;
    let mut payload = None;
    let mut require_reply = None;
    let mut dns_type = "SOA".to_string();
    let mut dns_name = ".".to_string();
    let mut helo = None;
    for n in children(node) {
        note_explicit(n, &mut explicit);
        if timing_keyword(n, &mut timing, diags) {
            continue;
        }
        match n.keyword.as_str() {
            "connect_ip" => checker.connect_ip = n.args.first().and_then(|a| address(a, n, diags)),
            "connect_port" => checker.connect_port = n.args.first().and_then(|a| port(a, n, diags)),
            "bindto" => checker.bindto = n.args.first().and_then(|a| address(a, n, diags)),
            "bind_port" => checker.bind_port = n.args.first().and_then(|a| port(a, n, diags)),
            "url" => urls.push(url(n, diags)),
            "http_protocol" => http_protocol = one_arg(n, diags),
            "virtualhost" => virtualhost = one_arg(n, diags),
            "misc_path" => misc_path = Some(n.args.join(" ")),
            "misc_timeout" => misc_timeout = timer(n, diags),
            "misc_dynamic" => misc_dynamic = true,
            "payload" => payload = Some(n.args.join("")),
            "require_reply" => require_reply = Some(n.args.join("")),
            "type" => dns_type = one_arg(n, diags).unwrap_or(dns_type),
            "name" => dns_name = one_arg(n, diags).unwrap_or(dns_name),
            "helo_name" => helo = one_arg(n, diags),
            "bind_if" | "fwmark" | "log_all_failures" | "enable_sni" | "fast_recovery" | "user"
            | "min_reply_length" | "max_reply_length" | "track_file" | "dynamic" | "weight" => {}
            k => diags.warning(&n.at, k, format!("unknown keyword in {kind_name}: ignored")),
        }
    }
    checker.kind = match kind_name {
        "TCP_CHECK" => CheckerKind::Tcp,
        "HTTP_GET" | "SSL_GET" => {
            if !explicit.delay_before_retry {
                timing.delay_before_retry = Duration::from_secs(3);
            }
            if urls.is_empty() {
                diags.error(&node.at, kind_name, "needs at least one url block");
            }
            CheckerKind::Http {
                tls: kind_name == "SSL_GET",
                urls,
                http_protocol,
                virtualhost,
            }
        }
        "MISC_CHECK" => {
            if !explicit.retry {
                timing.retry = 0;
            }
            let Some(path) = misc_path else {
                diags.error(&node.at, kind_name, "misc_path is required");
                return None;
            };
            CheckerKind::Misc {
                path,
                timeout: misc_timeout,
                dynamic: misc_dynamic,
            }
        }
        "UDP_CHECK" => CheckerKind::Udp {
            payload,
            require_reply,
        },
        "DNS_CHECK" => {
            if !explicit.retry {
                timing.retry = 3;
            }
            if !explicit.delay_before_retry {
                timing.delay_before_retry = timing.delay_loop;
            }
            CheckerKind::Dns {
                query_type: dns_type,
                name: dns_name,
            }
        }
        "PING_CHECK" => CheckerKind::Ping,
        "SMTP_CHECK" => CheckerKind::Smtp { helo_name: helo },
        "BFD_CHECK" | "FILE_CHECK" => {
            diags.warning(
                &node.at,
                kind_name,
                "not supported by fnat: the checker is ignored",
            );
            CheckerKind::Other(kind_name.to_string())
        }
        k => {
            diags.warning(&node.at, k, "unknown checker: ignored");
            return None;
        }
    };
    checker.timing = timing;
    Some(checker)
}

fn url(node: &Node, diags: &mut Diagnostics) -> Url {
    let mut url = Url {
        path: "/".into(),
        digest: None,
        status_codes: Vec::new(),
        virtualhost: None,
    };
    for n in children(node) {
        match n.keyword.as_str() {
            "path" => url.path = one_arg(n, diags).unwrap_or(url.path),
            "digest" => url.digest = one_arg(n, diags),
            "virtualhost" => url.virtualhost = one_arg(n, diags),
            "status_code" => {
                for a in &n.args {
                    let parsed = match a.split_once('-') {
                        Some((lo, hi)) => lo.parse().ok().zip(hi.parse().ok()),
                        None => a.parse().ok().map(|c| (c, c)),
                    };
                    match parsed {
                        Some((lo, hi)) if (100..=599).contains(&lo) && lo <= hi && hi <= 599 => {
                            url.status_codes.push((lo, hi))
                        }
                        _ => diags.error(
                            &n.at,
                            "status_code",
                            format!("'{a}' is not a status code or range of 100-599"),
                        ),
                    }
                }
            }
            "regex" | "regex_no_match" | "regex_options" | "regex_stack" | "regex_min_offset"
            | "regex_max_offset" => diags.warning(
                &n.at,
                &n.keyword,
                "regex matching is not supported yet: ignored",
            ),
            k => diags.warning(&n.at, k, "unknown keyword in url: ignored"),
        }
    }
    if url.status_codes.is_empty() {
        url.status_codes.push((200, 299));
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed tutorial's keepalived.conf (../shared/seeds/003), its one-line form given back
    /// its line breaks, addresses mapped into the lab range.
    const SEED: &str = r#"! Configuration File for keepalived
global_defs {
   notification_email {
     752840649@qq.com
   }
   notification_email_from wgkgood@163.com
   smtp_server 127.0.0.1
   smtp_connect_timeout 30
   router_id LVS_DEVEL
}
# VIP1
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    lvs_sync_daemon_inteface eth0
    virtual_router_id 51
    priority 100
    advert_int 5
    nopreempt
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    virtual_ipaddress {
        198.18.0.100
    }
}
virtual_server 198.18.0.100 80 {
    delay_loop 6
    lb_algo wrr
    lb_kind DR
    persistence_timeout 60
    protocol TCP
    #REAL_SERVER_1
    real_server 198.19.1.10 80 {
        weight 100
        TCP_CHECK {
            connect_timeout 10
            nb_get_retry 3
            delay_before_retry 3
            connect_port 80
        }
    }
    #REAL_SERVER_2
    real_server 198.19.1.11 80 {
        weight 100
        TCP_CHECK {
            connect_timeout 10
            nb_get_retry 3
            delay_before_retry 3
            connect_port 80
        }
    }
}
"#;

    #[test]
    fn the_seed_tutorial_config_reads_with_its_values() {
        let c = read_str("seed.conf", SEED, "h");
        assert_eq!(c.errors().count(), 0, "{:?}", c.diagnostics);
        assert_eq!(c.router_id.as_deref(), Some("LVS_DEVEL"));
        assert!(c.vrrp.is_empty());
        let v = &c.vrrp_instances[0];
        assert_eq!((v.name.as_str(), v.interface.as_str()), ("VI_1", "eth0"));
        assert_eq!((v.virtual_router_id, v.priority), (51, 100));
        assert_eq!(v.advert_int.as_secs(), 5);
        assert!(v.nopreempt);
        assert_eq!(v.auth, crate::vrrp::VrrpAuth::Pass("1111".into()));
        assert_eq!(
            v.virtual_ipaddress,
            ["198.18.0.100".parse::<IpAddr>().unwrap()]
        );
        // As keepalived: nopreempt with state MASTER starts as backup, with a warning.
        assert!(!v.start_as_master);
        let w: Vec<_> = c
            .diagnostics
            .iter()
            .map(|d| (d.at.line, d.keyword.as_str()))
            .collect();
        assert_eq!(w, [(12, "nopreempt")]);
        let vs = &c.virtual_servers[0];
        assert_eq!(
            vs.key,
            VirtualServerKey::Address {
                ip: "198.18.0.100".parse().unwrap(),
                port: Some(80)
            }
        );
        assert_eq!(
            (vs.scheduler.as_str(), &vs.method, vs.persistence_timeout),
            ("wrr", &Method::Dr, Some(60))
        );
        assert_eq!(vs.reals.len(), 2);
        let rs = &vs.reals[1];
        assert_eq!(
            (rs.ip.to_string(), rs.port, rs.weight, &rs.method),
            ("198.19.1.11".into(), Some(80), 100, &Method::Dr)
        );
        let check = &rs.checkers[0];
        assert_eq!(check.kind, CheckerKind::Tcp);
        assert_eq!(check.connect_port, Some(80));
        assert_eq!(
            check.timing,
            Timing {
                connect_timeout: Duration::from_secs(10),
                retry: 3,
                delay_before_retry: Duration::from_secs(3),
                delay_loop: Duration::from_secs(6),
                warmup: None,
                alpha: false,
                inhibit_on_failure: false,
            }
        );
    }

    #[test]
    fn defaults_and_inheritance_follow_keepalived() {
        let text = "virtual_server fwmark 7 {\n connect_timeout 2\n inhibit_on_failure\n real_server 198.19.1.1 {\n  retry 4\n  HTTP_GET { url { path /health } }\n  MISC_CHECK { misc_path \"/bin/true x\"\n misc_dynamic }\n  DNS_CHECK { name example.test }\n }\n}\n";
        let c = read_str("t.conf", text, "h");
        assert_eq!(c.errors().count(), 0, "{:?}", c.diagnostics);
        let vs = &c.virtual_servers[0];
        assert_eq!(vs.key, VirtualServerKey::Fwmark(7));
        assert_eq!(
            (vs.scheduler.as_str(), &vs.method, vs.quorum),
            ("wlc", &Method::Nat, 1)
        );
        let [http, misc, dns] = vs.reals[0].checkers.as_slice() else {
            panic!("three checkers")
        };
        // VS → RS → checker: connect_timeout from the VS, retry from the RS.
        assert_eq!(http.timing.connect_timeout, Duration::from_secs(2));
        assert_eq!(http.timing.retry, 4);
        assert!(http.timing.inhibit_on_failure);
        assert_eq!(http.timing.delay_before_retry, Duration::from_secs(3));
        let CheckerKind::Http { urls, .. } = &http.kind else {
            panic!()
        };
        assert_eq!(urls[0].status_codes, [(200, 299)]);
        assert_eq!(
            misc.timing.retry, 4,
            "an inherited retry holds for MISC_CHECK too"
        );
        assert_eq!(
            misc.kind,
            CheckerKind::Misc {
                path: "/bin/true x".into(),
                timeout: None,
                dynamic: true
            }
        );
        assert_eq!(
            dns.kind,
            CheckerKind::Dns {
                query_type: "SOA".into(),
                name: "example.test".into()
            }
        );
        assert_eq!(dns.timing.delay_before_retry, Duration::from_secs(60));
    }

    #[test]
    fn problems_name_file_line_and_keyword() {
        let text = "virtual_server 198.18.0.1 80 {\n  lb_algo rr\n  frobnicate 3\n  real_server 198.19.1.300 80 {\n  }\n  persistence_timeout soon\n}\nvirtual_server group NOPE {\n}\n";
        let c = read_str("bad.conf", text, "h");
        let shown: Vec<String> = c.diagnostics.iter().map(|d| d.to_string()).collect();
        assert!(
            shown.contains(
                &"bad.conf:3: warning: frobnicate: unknown keyword in virtual_server: ignored"
                    .to_string()
            ),
            "{shown:?}"
        );
        assert!(
            shown.contains(
                &"bad.conf:4: error: real_server: '198.19.1.300' is not an IP address".to_string()
            ),
            "{shown:?}"
        );
        assert!(
            shown.contains(
                &"bad.conf:6: error: persistence_timeout: 'soon' is not a valid number here"
                    .to_string()
            ),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("bad.conf:8: error: virtual_server: group NOPE")),
            "{shown:?}"
        );
    }

    #[test]
    fn groups_ranges_and_tunnels() {
        let text = "virtual_server_group G {\n 198.18.0.1 80\n 198.18.0.3-10 80\n 198.18.1.0/30\n 2001:db8::2-a 80\n fwmark 5\n}\nvirtual_server group G {\n lvs_method TUN type gue port 6080 csum\n real_server 198.19.1.1 80 { lb_kind TUN type gre }\n}\n";
        let c = read_str("t.conf", text, "h");
        assert_eq!(c.errors().count(), 0, "{:?}", c.diagnostics);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            c.groups[0].members,
            [
                GroupMember::Range {
                    first: ip("198.18.0.1"),
                    last: ip("198.18.0.1"),
                    port: Some(80)
                },
                GroupMember::Range {
                    first: ip("198.18.0.3"),
                    last: ip("198.18.0.10"),
                    port: Some(80)
                },
                GroupMember::Range {
                    first: ip("198.18.1.0"),
                    last: ip("198.18.1.3"),
                    port: None
                },
                GroupMember::Range {
                    first: ip("2001:db8::2"),
                    last: ip("2001:db8::a"),
                    port: Some(80)
                },
                GroupMember::Fwmark(5),
            ]
        );
        let vs = &c.virtual_servers[0];
        assert_eq!(
            vs.method,
            Method::Tun {
                kind: TunnelKind::Gue { port: 6080 },
                checksum: Some("csum".into())
            }
        );
        assert_eq!(
            vs.reals[0].method,
            Method::Tun {
                kind: TunnelKind::Gre,
                checksum: None
            }
        );
    }
}
