//! The operator's rule model: virtual services with every ipvsadm attribute, their real
//! servers and their local addresses. The control plane owns it; the engine only ever sees
//! what it compiles to. Keys (service address, real address:port, local address) identify
//! things the way ipvsadm does.

use std::cmp::Ordering;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The IPv4 protocol number (ipvsadm sorts services by it).
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// How a virtual service is addressed: protocol + VIP + port, or a firewall mark.
/// On the wire and in files it is a string: `tcp/10.0.0.1:80`, `udp/10.0.0.1:53`, `fwmark/7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum ServiceAddr {
    Inet {
        protocol: Protocol,
        vip: Ipv4Addr,
        port: u16,
    },
    Fwmark(u32),
    /// DPVS's match service (`-H`): the packets of inside hosts that SNAT rewrites.
    Match(SnatMatch),
}

impl ServiceAddr {
    pub fn tcp(vip: Ipv4Addr, port: u16) -> ServiceAddr {
        ServiceAddr::Inet {
            protocol: Protocol::Tcp,
            vip,
            port,
        }
    }
    pub fn udp(vip: Ipv4Addr, port: u16) -> ServiceAddr {
        ServiceAddr::Inet {
            protocol: Protocol::Udp,
            vip,
            port,
        }
    }
    /// The port real servers default to when ipvsadm's `-r` names no port (0 for fwmark).
    pub fn port(&self) -> u16 {
        match self {
            ServiceAddr::Inet { port, .. } => *port,
            ServiceAddr::Fwmark(_) | ServiceAddr::Match(_) => 0,
        }
    }
    /// ipvsadm's listing order: fwmark, then protocol number, then address, then port
    /// (inet services have fwmark 0, so they come before fwmark services); match services
    /// (DPVS lists them after the others) last, in their text's order.
    pub fn ipvsadm_order(&self, other: &ServiceAddr) -> Ordering {
        let key = |s: &ServiceAddr| match *s {
            ServiceAddr::Inet {
                protocol,
                vip,
                port,
            } => (0u32, protocol.number(), u32::from(vip), port),
            ServiceAddr::Fwmark(m) => (m, Protocol::Tcp.number(), 0, 0),
            ServiceAddr::Match(_) => (u32::MAX, u8::MAX, u32::MAX, u16::MAX),
        };
        key(self)
            .cmp(&key(other))
            .then_with(|| match (self, other) {
                (ServiceAddr::Match(a), ServiceAddr::Match(b)) => a.to_string().cmp(&b.to_string()),
                _ => Ordering::Equal,
            })
    }
}

impl fmt::Display for ServiceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceAddr::Inet {
                protocol,
                vip,
                port,
            } => write!(f, "{}/{vip}:{port}", protocol.name()),
            ServiceAddr::Fwmark(m) => write!(f, "fwmark/{m}"),
            ServiceAddr::Match(m) => write!(f, "match/{m}"),
        }
    }
}

impl FromStr for ServiceAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "'{s}' is not a service address (tcp/VIP:PORT, udp/VIP:PORT, fwmark/MARK or match/proto=…,src-range=…)"
            )
        };
        let (kind, rest) = s.split_once('/').ok_or_else(bad)?;
        match kind {
            "tcp" | "udp" => {
                let sa: SocketAddrV4 = rest.parse().map_err(|_| bad())?;
                let protocol = if kind == "tcp" {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                };
                Ok(ServiceAddr::Inet {
                    protocol,
                    vip: *sa.ip(),
                    port: sa.port(),
                })
            }
            "fwmark" => rest.parse().map(ServiceAddr::Fwmark).map_err(|_| bad()),
            "match" => rest.parse().map(ServiceAddr::Match),
            _ => Err(bad()),
        }
    }
}

impl From<ServiceAddr> for String {
    fn from(s: ServiceAddr) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for ServiceAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// The protocol a match service takes: TCP, UDP or ICMP (echo).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchProto {
    Tcp,
    Udp,
    Icmp,
}

impl MatchProto {
    pub const fn name(self) -> &'static str {
        match self {
            MatchProto::Tcp => "tcp",
            MatchProto::Udp => "udp",
            MatchProto::Icmp => "icmp",
        }
    }
    /// The IPv4 protocol number.
    pub const fn number(self) -> u8 {
        match self {
            MatchProto::Tcp => 6,
            MatchProto::Udp => 17,
            MatchProto::Icmp => 1,
        }
    }
    /// The protocol the listings name the service by (ICMP: ipvsadm has no word; DPVS says
    /// ICMP, so does fnat).
    pub fn parse(s: &str) -> Result<MatchProto, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(MatchProto::Tcp),
            "udp" => Ok(MatchProto::Udp),
            "icmp" => Ok(MatchProto::Icmp),
            _ => Err(format!("'{s}' is not one of: tcp, udp, icmp")),
        }
    }
}

/// An inclusive range of IPv4 addresses, `A-B` (or one address `A`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrRange {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl AddrRange {
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        self.first <= a && a <= self.last
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for AddrRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not an address range (A-B or A, IPv4)");
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let first: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
        let last: Ipv4Addr = b.trim().parse().map_err(|_| bad())?;
        if first > last {
            return Err(format!(
                "'{s}': the range's first address is above its last"
            ));
        }
        Ok(AddrRange { first, last })
    }
}

/// A port name (`[[port]] name`) of at most 15 bytes, kept inline so that a service address
/// stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortName {
    len: u8,
    bytes: [u8; PortName::MAX],
}

impl PortName {
    pub const MAX: usize = 15;
    pub fn as_str(&self) -> &str {
        // Built only from a &str cut at its length: always UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for PortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for PortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PortName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= PortName::MAX
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
        if !ok {
            return Err(format!(
                "'{s}' is not a port name (1 to {} letters, digits, '_', '-', '.')",
                PortName::MAX
            ));
        }
        let mut bytes = [0u8; PortName::MAX];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Ok(PortName {
            len: s.len() as u8,
            bytes,
        })
    }
}

/// DPVS's match service (`ipvsadm -H 'proto=tcp,src-range=A-B,dst-range=C-D,iif=P,oif=Q'`):
/// the packets SNAT takes, those of `proto` from an inside host in `src` toward `dst`,
/// arriving on port `iif` and routed out of port `oif`; a condition not given matches
/// everything. Its real servers (`-J`, [`ForwardMethod::Snat`]) are the WAN addresses the
/// sources are rewritten to (port 0: any port of the pool). Written as DPVS writes it,
/// `proto=tcp,src-range=198.19.1.0-198.19.1.255,oif=wan`, in the fixed order proto,
/// src-range, dst-range, iif, oif.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SnatMatch {
    pub proto: MatchProto,
    pub src: Option<AddrRange>,
    pub dst: Option<AddrRange>,
    pub iif: Option<PortName>,
    pub oif: Option<PortName>,
}

impl SnatMatch {
    /// True when nothing but the protocol is given (the validator refuses it: it would take
    /// every packet).
    pub fn is_open(&self) -> bool {
        self.src.is_none() && self.dst.is_none() && self.iif.is_none() && self.oif.is_none()
    }
}

impl fmt::Display for SnatMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "proto={}", self.proto.name())?;
        if let Some(r) = self.src {
            write!(f, ",src-range={r}")?;
        }
        if let Some(r) = self.dst {
            write!(f, ",dst-range={r}")?;
        }
        if let Some(p) = self.iif {
            write!(f, ",iif={p}")?;
        }
        if let Some(p) = self.oif {
            write!(f, ",oif={p}")?;
        }
        Ok(())
    }
}

impl FromStr for SnatMatch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut proto = None;
        let mut m = SnatMatch {
            proto: MatchProto::Tcp,
            src: None,
            dst: None,
            iif: None,
            oif: None,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("match '{s}': '{part}' is not KEY=VALUE"))?;
            let twice = || format!("match '{s}': {k} given twice");
            match k.trim() {
                "proto" => {
                    if proto.replace(MatchProto::parse(v.trim())?).is_some() {
                        return Err(twice());
                    }
                }
                "src-range" if m.src.is_none() => m.src = Some(v.trim().parse()?),
                "dst-range" if m.dst.is_none() => m.dst = Some(v.trim().parse()?),
                "iif" if m.iif.is_none() => m.iif = Some(v.trim().parse()?),
                "oif" if m.oif.is_none() => m.oif = Some(v.trim().parse()?),
                "src-range" | "dst-range" | "iif" | "oif" => return Err(twice()),
                other => {
                    return Err(format!(
                        "match '{s}': unknown key '{other}' (proto, src-range, dst-range, iif, oif)"
                    ))
                }
            }
        }
        m.proto = proto.ok_or_else(|| format!("match '{s}': proto= missing (tcp, udp or icmp)"))?;
        Ok(m)
    }
}

/// The 13 IPVS scheduler names. The engine runs only some of them (see the daemon's compile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sed,
    Nq,
    Sh,
    Dh,
    Mh,
    Fo,
    Ovf,
    Lblc,
    Lblcr,
}

impl Scheduler {
    pub const ALL: [Scheduler; 13] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Sh,
        Scheduler::Dh,
        Scheduler::Mh,
        Scheduler::Fo,
        Scheduler::Ovf,
        Scheduler::Lblc,
        Scheduler::Lblcr,
    ];
    pub const fn name(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Sh => "sh",
            Scheduler::Dh => "dh",
            Scheduler::Mh => "mh",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
        }
    }
}

/// ipvsadm's default scheduler.
pub const DEFAULT_SCHEDULER: Scheduler = Scheduler::Wlc;

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheduler {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scheduler::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| format!("unknown scheduler '{s}'"))
    }
}

/// IPVS's three scheduler flags (IP_VS_SVC_F_SCHED1..3). sh and mh name them
/// `*-fallback` and `*-port`; every scheduler accepts `flag-1`, `flag-2`, `flag-3`.
/// Serialized as a list of the generic names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "Vec<String>", try_from = "Vec<String>")]
pub struct SchedFlags(pub u8);

impl SchedFlags {
    pub const FLAG1: u8 = 1;
    pub const FLAG2: u8 = 2;
    pub const FLAG3: u8 = 4;

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// Parses ipvsadm's comma-separated `--sched-flags` list.
    pub fn parse_list(list: &str) -> Result<SchedFlags, String> {
        let mut bits = 0u8;
        for name in list.split(',').filter(|n| !n.is_empty()) {
            bits |= match name {
                "flag-1" | "sh-fallback" | "mh-fallback" => Self::FLAG1,
                "flag-2" | "sh-port" | "mh-port" => Self::FLAG2,
                "flag-3" => Self::FLAG3,
                other => return Err(format!("invalid scheduler flag '{other}'")),
            };
        }
        Ok(SchedFlags(bits))
    }

    /// The names ipvsadm prints for `scheduler`, comma-separated.
    pub fn render(&self, scheduler: Scheduler) -> String {
        let names: [&str; 3] = match scheduler {
            Scheduler::Sh => ["sh-fallback", "sh-port", "flag-3"],
            Scheduler::Mh => ["mh-fallback", "mh-port", "flag-3"],
            _ => ["flag-1", "flag-2", "flag-3"],
        };
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                out.push(*name);
            }
        }
        out.join(",")
    }
}

impl From<SchedFlags> for Vec<String> {
    fn from(f: SchedFlags) -> Vec<String> {
        f.render(Scheduler::Rr)
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

impl TryFrom<Vec<String>> for SchedFlags {
    type Error = String;
    fn try_from(v: Vec<String>) -> Result<Self, String> {
        SchedFlags::parse_list(&v.join(","))
    }
}

/// Longest persistence timeout ipvsadm accepts (31 days).
pub const MAX_TIMEOUT: u32 = 86400 * 31;
/// ipvsadm's `-p` without a value.
pub const DEFAULT_PERSISTENCE: u32 = 360;

/// Client affinity (`-p TIMEOUT [-M NETMASK]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persistence {
    pub timeout: u32,
    #[serde(default = "full_netmask")]
    pub netmask: Ipv4Addr,
}

fn full_netmask() -> Ipv4Addr {
    Ipv4Addr::BROADCAST
}

/// How packets reach a real server (a property of each real server, as in IPVS: one
/// service may mix methods). In files and on the wire: `fullnat`, `masq` (alias `nat`),
/// `route` (alias `dr`), `tunnel` (alias `tun`), `snat`. The native config and `fnatctl`
/// default to full NAT; ipvsadm's face defaults to `route` (`-g`), as ipvsadm does. `Snat` is
/// DPVS's source NAT: the "real servers" of a match service (see [`SnatMatch`]) are the WAN
/// addresses inside hosts are rewritten to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMethod {
    #[default]
    FullNat,
    #[serde(alias = "nat")]
    Masq,
    #[serde(alias = "dr")]
    Route,
    #[serde(alias = "tun")]
    Tunnel,
    Snat,
}

impl ForwardMethod {
    /// The Forward column of `ipvsadm -L` (DPVS spells full-NAT `FullNat`).
    pub const fn ipvsadm_name(self) -> &'static str {
        match self {
            ForwardMethod::FullNat => "FullNat",
            ForwardMethod::Masq => "Masq",
            ForwardMethod::Route => "Route",
            ForwardMethod::Tunnel => "Tunnel",
            ForwardMethod::Snat => "SNAT",
        }
    }
    /// The switch `ipvsadm -S` writes.
    pub const fn ipvsadm_switch(self) -> &'static str {
        match self {
            ForwardMethod::FullNat => "-b",
            ForwardMethod::Masq => "-m",
            ForwardMethod::Route => "-g",
            ForwardMethod::Tunnel => "-i",
            ForwardMethod::Snat => "-J",
        }
    }
    /// The native config's name (`method = "..."`).
    pub const fn config_name(self) -> &'static str {
        match self {
            ForwardMethod::FullNat => "fullnat",
            ForwardMethod::Masq => "nat",
            ForwardMethod::Route => "dr",
            ForwardMethod::Tunnel => "tun",
            ForwardMethod::Snat => "snat",
        }
    }
    /// The method of a native config name (or of its canonical spelling).
    pub fn from_config_name(name: &str) -> Option<ForwardMethod> {
        match name {
            "fullnat" => Some(ForwardMethod::FullNat),
            "nat" | "masq" => Some(ForwardMethod::Masq),
            "dr" | "route" => Some(ForwardMethod::Route),
            "tun" | "tunnel" => Some(ForwardMethod::Tunnel),
            "snat" => Some(ForwardMethod::Snat),
            _ => None,
        }
    }
}

/// The encapsulation of a tunnelled real server (kernel ipvsadm's `--tun-type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelType {
    #[default]
    Ipip,
    Gue,
    Gre,
}

impl TunnelType {
    pub const fn name(self) -> &'static str {
        match self {
            TunnelType::Ipip => "ipip",
            TunnelType::Gue => "gue",
            TunnelType::Gre => "gre",
        }
    }
    pub fn from_name(name: &str) -> Option<TunnelType> {
        match name {
            "ipip" => Some(TunnelType::Ipip),
            "gue" => Some(TunnelType::Gue),
            "gre" => Some(TunnelType::Gre),
            _ => None,
        }
    }
}

/// Tunnel settings of a `tunnel` real server: `--tun-type`, `--tun-port` (GUE's UDP port),
/// `--tun-csum`/`--tun-nocsum` (GUE and GRE checksums; off by default, as ipvsadm).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelOptions {
    #[serde(default, rename = "type")]
    pub kind: TunnelType,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: u16,
    #[serde(default, skip_serializing_if = "is_false")]
    pub csum: bool,
}

fn is_zero(v: &u16) -> bool {
    *v == 0
}

impl TunnelOptions {
    pub fn is_default(&self) -> bool {
        *self == TunnelOptions::default()
    }
}

/// Largest weight: the kernel's (INT_MAX). ipvsadm's own parser stops at 65535; fnat takes
/// the kernel's range on every path (config, control protocol, ipvsadm `-w`, `-R`, state
/// file), so that whatever one path accepts, every other one reads back.
pub const MAX_WEIGHT: u32 = i32::MAX as u32;
/// Largest connection threshold ipvsadm accepts (INT_MAX).
pub const MAX_THRESHOLD: u32 = i32::MAX as u32;

/// A real server (ipvsadm's "destination").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Real {
    pub addr: Ipv4Addr,
    pub port: u16,
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// `-x`: no new connections above this many (0 = no limit).
    #[serde(default)]
    pub upper_threshold: u32,
    /// `-y`: accept again below this many (0 = no limit).
    #[serde(default)]
    pub lower_threshold: u32,
    #[serde(default)]
    pub forward: ForwardMethod,
    /// Tunnel settings (only with `forward = tunnel`; default IPIP).
    #[serde(default, skip_serializing_if = "TunnelOptions::is_default")]
    pub tunnel: TunnelOptions,
}

fn default_weight() -> u32 {
    1
}

impl Real {
    pub fn new(addr: Ipv4Addr, port: u16, weight: u32) -> Real {
        Real {
            addr,
            port,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            forward: ForwardMethod::FullNat,
            tunnel: TunnelOptions::default(),
        }
    }
    pub fn key(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.addr, self.port)
    }
}

/// A local address (LIP) used as the source toward real servers, optionally bound to a device
/// (DPVS's `-F dev`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalAddress {
    pub addr: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// A virtual service with everything ipvsadm can say about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub addr: ServiceAddr,
    #[serde(default = "default_scheduler")]
    pub scheduler: Scheduler,
    #[serde(default, skip_serializing_if = "SchedFlags::is_empty")]
    pub sched_flags: SchedFlags,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    /// `-o`: one-packet scheduling (UDP).
    #[serde(default, skip_serializing_if = "is_false")]
    pub one_packet: bool,
    /// End a real server's sessions when it is removed (IPVS's `expire_nodest_conn`),
    /// instead of letting them run until they expire.
    #[serde(default, skip_serializing_if = "is_false")]
    pub expire_on_removal: bool,
    /// A cap on new connections per second per client prefix (`--conn-rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_rate: Option<ConnRate>,
    /// Clients that may open connections (DPVS's whitelist, `-O`): empty = every client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<ClientPrefix>,
    /// Clients that may not (DPVS's blacklist, `-U`); wins over `allow`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<ClientPrefix>,
    /// Proxy Protocol header sent to the real servers of full-NAT TCP/UDP services
    /// (`--proxy-protocol`, DPVS's ipvsadm).
    #[serde(default, skip_serializing_if = "ProxyProtocol::is_disabled")]
    pub proxy_protocol: ProxyProtocol,
    /// TCP option 254 (TOA: client port and address) on the first segments toward the real
    /// server (`--toa`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub toa: bool,
    /// SYN proxy (`-j/--synproxy`, DPVS's ipvsadm): fnatd answers the client's SYN with a
    /// SYN cookie and opens the connection to the real server only on a valid cookie ACK.
    #[serde(default, skip_serializing_if = "is_false")]
    pub synproxy: bool,
    #[serde(default)]
    pub reals: Vec<Real>,
    #[serde(default)]
    pub local_addresses: Vec<LocalAddress>,
}

/// Which client list of a service: allow (DPVS's whitelist) or deny (blacklist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AclList {
    Allow,
    Deny,
}

impl AclList {
    pub const fn name(self) -> &'static str {
        match self {
            AclList::Allow => "allow",
            AclList::Deny => "deny",
        }
    }
}

/// Entries an allow or deny list may hold.
pub const MAX_ACL_ENTRIES: usize = 1_000_000;

/// A client address or prefix of an allow/deny list: `198.18.0.7` (a /32) or
/// `198.18.0.0/24`; the host bits of a prefix must be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ClientPrefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl fmt::Display for ClientPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 32 {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

impl FromStr for ClientPrefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: Ipv4Addr = a.parse().map_err(|_| {
            format!("'{s}' is not an IPv4 address or prefix (A.B.C.D or A.B.C.D/LEN)")
        })?;
        let len = match l {
            None => 32,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= 32 => n,
                _ => return Err(format!("'{s}': prefix length must be 0 to 32")),
            },
        };
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        if u32::from(addr) & !mask != 0 {
            return Err(format!(
                "'{s}' has host bits set (the network is {}/{len})",
                Ipv4Addr::from(u32::from(addr) & mask)
            ));
        }
        Ok(ClientPrefix { addr, len })
    }
}

impl From<ClientPrefix> for String {
    fn from(p: ClientPrefix) -> String {
        p.to_string()
    }
}

impl TryFrom<String> for ClientPrefix {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// A cap on new connections per second per client prefix, written `RATE[:BURST][/LEN]`
/// (`100:200/24`: 100 per second with bursts of 200 for each /24 of clients). BURST defaults
/// to RATE, LEN to 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ConnRate {
    pub rate: u32,
    pub burst: u32,
    pub prefix_len: u8,
}

/// The largest rate and burst of a [`ConnRate`].
pub const MAX_CONN_RATE: u32 = 100_000_000;

impl fmt::Display for ConnRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.rate, self.burst, self.prefix_len)
    }
}

impl FromStr for ConnRate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("'{s}' is not RATE[:BURST][/LEN]: {why}");
        let (head, len) = match s.split_once('/') {
            Some((h, l)) => (h, Some(l)),
            None => (s, None),
        };
        let (rate, burst) = match head.split_once(':') {
            Some((r, b)) => (r, Some(b)),
            None => (head, None),
        };
        let num = |t: &str, what: &str| match t.parse::<u32>() {
            Ok(n) if (1..=MAX_CONN_RATE).contains(&n) => Ok(n),
            _ => Err(bad(&format!("{what} must be 1 to {MAX_CONN_RATE}"))),
        };
        let rate = num(rate, "RATE")?;
        let burst = match burst {
            Some(b) => num(b, "BURST")?,
            None => rate,
        };
        let prefix_len = match len {
            None => 32,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= 32 => n,
                _ => return Err(bad("LEN must be 0 to 32")),
            },
        };
        Ok(ConnRate {
            rate,
            burst,
            prefix_len,
        })
    }
}

impl From<ConnRate> for String {
    fn from(r: ConnRate) -> String {
        r.to_string()
    }
}

impl TryFrom<String> for ConnRate {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

fn default_scheduler() -> Scheduler {
    DEFAULT_SCHEDULER
}

/// Which Proxy Protocol header (if any) a full-NAT service puts in front of its clients' data
/// toward the real servers. `*-insecure` passes on a header the client already sent (a proxy in
/// front); otherwise a client-sent header is refused (the segment dropped and counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyProtocol {
    #[default]
    Disable,
    V1,
    V2,
    V1Insecure,
    V2Insecure,
}

impl ProxyProtocol {
    pub const NAMES: &'static str = "v1, v2, v1-insecure, v2-insecure, disable";
    pub fn is_disabled(&self) -> bool {
        *self == ProxyProtocol::Disable
    }
    pub fn name(&self) -> &'static str {
        match self {
            ProxyProtocol::Disable => "disable",
            ProxyProtocol::V1 => "v1",
            ProxyProtocol::V2 => "v2",
            ProxyProtocol::V1Insecure => "v1-insecure",
            ProxyProtocol::V2Insecure => "v2-insecure",
        }
    }
}

impl fmt::Display for ProxyProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ProxyProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "disable" | "none" => ProxyProtocol::Disable,
            "v1" => ProxyProtocol::V1,
            "v2" => ProxyProtocol::V2,
            "v1-insecure" => ProxyProtocol::V1Insecure,
            "v2-insecure" => ProxyProtocol::V2Insecure,
            _ => {
                return Err(format!(
                    "'{s}' is not a Proxy Protocol setting ({})",
                    ProxyProtocol::NAMES
                ))
            }
        })
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Service {
    pub fn new(addr: ServiceAddr, scheduler: Scheduler) -> Service {
        Service {
            addr,
            scheduler,
            sched_flags: SchedFlags::default(),
            persistence: None,
            one_packet: false,
            expire_on_removal: false,
            conn_rate: None,
            proxy_protocol: ProxyProtocol::Disable,
            toa: false,
            synproxy: false,
            reals: Vec::new(),
            local_addresses: Vec::new(),
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }
    pub fn real(&self, key: SocketAddrV4) -> Option<&Real> {
        self.reals.iter().find(|r| r.key() == key)
    }
    /// The allow or deny list.
    pub fn acl(&self, list: AclList) -> &Vec<ClientPrefix> {
        match list {
            AclList::Allow => &self.allow,
            AclList::Deny => &self.deny,
        }
    }
    pub fn acl_mut(&mut self, list: AclList) -> &mut Vec<ClientPrefix> {
        match list {
            AclList::Allow => &mut self.allow,
            AclList::Deny => &mut self.deny,
        }
    }
}

/// ipvsadm's three settable timeouts (`--set tcp tcpfin udp`); `None` keeps the config's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_fin: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<u32>,
}

impl TimeoutOverrides {
    pub fn is_empty(&self) -> bool {
        self.tcp.is_none() && self.tcp_fin.is_none() && self.udp.is_none()
    }
}

/// The three timeouts in force, as `ipvsadm -L --timeout` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpvsTimeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// The ports of a firewall mark, in the order given, without repeats. Written as ipvsadm-style
/// text: `80,443,8000-8100` (a rising run of consecutive ports is written as a range).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct PortList(pub Vec<u16>);

impl fmt::Display for PortList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut i = 0;
        let ports = &self.0;
        while i < ports.len() {
            let mut j = i;
            while j + 1 < ports.len() && ports[j] != u16::MAX && ports[j + 1] == ports[j] + 1 {
                j += 1;
            }
            if i > 0 {
                f.write_str(",")?;
            }
            if j > i {
                write!(f, "{}-{}", ports[i], ports[j])?;
            } else {
                write!(f, "{}", ports[i])?;
            }
            i = j + 1;
        }
        Ok(())
    }
}

impl FromStr for PortList {
    type Err = String;
    /// `80,443,8000-8100`. Zero and repeats are left to the validator (they name the port).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            |part: &str| format!("'{part}' is not a port or a range of ports (80, 8000-8100)");
        let mut ports = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let number = |t: &str| t.trim().parse::<u16>().map_err(|_| bad(part));
            match part.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (number(lo)?, number(hi)?);
                    if lo > hi {
                        return Err(bad(part));
                    }
                    ports.extend(lo..=hi);
                }
                None => ports.push(number(part)?),
            }
            // More can only repeat a port: refuse before a long text grows a huge list.
            if ports.len() > usize::from(u16::MAX) {
                return Err(format!("'{s}' lists more than {} ports", u16::MAX));
            }
        }
        Ok(PortList(ports))
    }
}

impl From<PortList> for String {
    fn from(p: PortList) -> String {
        p.to_string()
    }
}

impl TryFrom<String> for PortList {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// A firewall mark: the VIP:ports of one protocol that lead to the service `fwmark/MARK`
/// (what `iptables -t mangle … -j MARK --set-mark MARK` says to LVS). In config files a
/// `[[port_group]]`; at run time `fnatctl mark add`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mark {
    pub mark: u32,
    pub protocol: Protocol,
    pub vip: Ipv4Addr,
    pub ports: PortList,
    /// A label (the config's port-group name); nothing depends on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Mark {
    /// `MARK PROTO VIP PORTS` as `fnatctl mark add` and ipvsadm's `--add-mark` take them
    /// (`66 tcp 198.18.0.100 80,443`); value checks are the validator's.
    pub fn from_words(mark: &str, protocol: &str, vip: &str, ports: &str) -> Result<Mark, String> {
        let number = mark
            .parse::<u32>()
            .map_err(|_| format!("invalid fwmark value `{mark}' specified"))?;
        let protocol = match protocol {
            "tcp" | "TCP" => Protocol::Tcp,
            "udp" | "UDP" => Protocol::Udp,
            other => return Err(format!("'{other}' is not one of: tcp, udp")),
        };
        let vip = vip
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("'{vip}' is not an IPv4 address"))?;
        Ok(Mark {
            mark: number,
            protocol,
            vip,
            ports: ports.parse()?,
            name: None,
        })
    }
}

/// Everything the operator configured: what `save` writes and `restore` reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    #[serde(default, skip_serializing_if = "TimeoutOverrides::is_empty")]
    pub timeouts: TimeoutOverrides,
    #[serde(default, rename = "mark", skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<Mark>,
    #[serde(default, rename = "service")]
    pub services: Vec<Service>,
    /// Session sync daemons `ipvsadm --start-daemon` started (the config files' are theirs):
    /// kept by save/restore and the state file like the rules.
    #[serde(default, skip_serializing_if = "crate::sync::SyncDaemons::is_empty")]
    pub sync: crate::sync::SyncDaemons,
}

impl RuleSet {
    pub fn mark(&self, mark: u32) -> Option<&Mark> {
        self.marks.iter().find(|m| m.mark == mark)
    }
    pub fn service(&self, addr: &ServiceAddr) -> Option<&Service> {
        self.services.iter().find(|s| s.addr == *addr)
    }
    pub fn service_mut(&mut self, addr: &ServiceAddr) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| s.addr == *addr)
    }
    pub fn real_count(&self) -> usize {
        self.services.iter().map(|s| s.reals.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_addr_round_trips_as_text() {
        for text in ["tcp/10.0.0.1:80", "udp/192.168.1.1:53", "fwmark/7"] {
            let addr: ServiceAddr = text.parse().unwrap();
            assert_eq!(addr.to_string(), text);
        }
        assert!("tcp/10.0.0.1".parse::<ServiceAddr>().is_err());
        assert!("sctp/10.0.0.1:80".parse::<ServiceAddr>().is_err());
        assert!("tcp/10.0.0.300:80".parse::<ServiceAddr>().is_err());
        assert!("fwmark/x".parse::<ServiceAddr>().is_err());
    }

    #[test]
    fn match_services_read_dpvs_text_and_write_it_in_one_order() {
        let a: ServiceAddr = "match/oif=wan,proto=icmp,src-range=198.19.1.0-198.19.1.255"
            .parse()
            .unwrap();
        assert_eq!(
            a.to_string(),
            "match/proto=icmp,src-range=198.19.1.0-198.19.1.255,oif=wan"
        );
        let ServiceAddr::Match(m) = a else { panic!() };
        assert!(m.src.unwrap().contains(Ipv4Addr::new(198, 19, 1, 7)));
        assert!(!m.src.unwrap().contains(Ipv4Addr::new(198, 19, 2, 0)));
        assert_eq!(m.oif.unwrap().as_str(), "wan");
        let b: SnatMatch = "proto=udp,dst-range=1.2.3.4,iif=lan".parse().unwrap();
        assert_eq!(b.to_string(), "proto=udp,dst-range=1.2.3.4-1.2.3.4,iif=lan");
        for bad in [
            "src-range=1.1.1.1-1.1.1.2",
            "proto=sctp",
            "proto=tcp,proto=udp",
            "proto=tcp,src-range=2.0.0.0-1.0.0.0",
            "proto=tcp,oif=a-name-longer-than-15",
            "proto=tcp,colour=red",
            "proto=tcp,iif",
        ] {
            assert!(bad.parse::<SnatMatch>().is_err(), "{bad}");
        }
    }

    #[test]
    fn port_lists_write_runs_as_ranges_and_read_back() {
        for (text, ports) in [
            ("80,443", vec![80, 443]),
            ("8000-8003", vec![8000, 8001, 8002, 8003]),
            ("443,80-81,65535", vec![443, 80, 81, 65535]),
            ("65534-65535,1", vec![65534, 65535, 1]),
        ] {
            let list: PortList = text.parse().unwrap();
            assert_eq!(list.0, ports);
            assert_eq!(list.to_string(), text);
        }
        assert_eq!("80, 81".parse::<PortList>().unwrap().to_string(), "80-81");
        for bad in ["", "x", "90-80", "70000", "1-2-3", "1-65535,1"] {
            assert!(bad.parse::<PortList>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_ipvs_scheduler_name_parses() {
        for s in Scheduler::ALL {
            assert_eq!(s.name().parse::<Scheduler>(), Ok(s));
        }
        assert_eq!(Scheduler::ALL.len(), 13);
        assert!("fastest".parse::<Scheduler>().is_err());
    }

    #[test]
    fn sched_flags_use_the_scheduler_specific_names() {
        let f = SchedFlags::parse_list("sh-fallback,sh-port").unwrap();
        assert_eq!(f.render(Scheduler::Sh), "sh-fallback,sh-port");
        assert_eq!(f.render(Scheduler::Rr), "flag-1,flag-2");
        assert!(SchedFlags::parse_list("flag-9").is_err());
    }

    #[test]
    fn ipvsadm_order_puts_inet_before_fwmark_and_sorts_by_address() {
        let a = ServiceAddr::tcp(Ipv4Addr::new(10, 0, 0, 2), 80);
        let b = ServiceAddr::tcp(Ipv4Addr::new(10, 0, 0, 10), 80);
        let u = ServiceAddr::udp(Ipv4Addr::new(1, 0, 0, 1), 53);
        let f = ServiceAddr::Fwmark(1);
        let mut v = vec![f, u, b, a];
        v.sort_by(|x, y| x.ipvsadm_order(y));
        assert_eq!(v, vec![a, b, u, f]);
    }
}
